import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BucketEngine } from '../ts/bucket-engine.js';
import {
  ClosedError,
  InvalidBatchError,
  InvalidDescriptionError,
  TesseraError,
} from '../ts/errors.js';
import type { StoreDescription } from '../ts/native.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 0, 1);
const NULL_CODE = 0xffffffff;

const dirs: string[] = [];

/** Opens an engine whose clock is pinned to NOW, so retention judges the test data by it. */
function open(dir: string, desc: StoreDescription): BucketEngine {
  const engine = BucketEngine.open(dir, desc);
  engine.setClock(NOW);
  return engine;
}
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-engine-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const rule = (kind: 'sum' | 'count' | 'mean' | 'max_by_n', extra: { n?: number } = {}) => ({
  aggregation: { kind, ...extra },
  bucketSizeMs: HOUR,
  bucketOriginMs: 0,
  retentionMs: 7 * DAY,
});

const description: StoreDescription = {
  series: [
    {
      id: 'amount_by_user',
      valueKind: 'number',
      rules: [rule('sum'), rule('count'), rule('mean')],
    },
    {
      id: 'bank_by_user_bank',
      valueKind: 'string',
      rules: [rule('count'), rule('max_by_n', { n: 2 })],
    },
    { id: 'embedding_by_user', valueKind: 'vector', vectorDim: 2, rules: [rule('mean')] },
  ],
};

describe('BucketEngine', () => {
  it('ingests columns, commits, and answers many keys and rules in one call', () => {
    const engine = open(tempDir(), description);
    const ts = new Float64Array([NOW - 1, NOW - 2 * HOUR, NOW - 3 * DAY, NOW - 5]);
    engine.stage([
      {
        seriesId: 'amount_by_user',
        keys: [{ ints: new Float64Array([1, 1, 1, 2]) }],
        timestampsMs: ts,
        numbers: new Float64Array([10, 20, 40, Number.NaN]),
      },
    ]);
    const committed = engine.commitStaged();
    // Key 2's only value is null: its bucket holds nothing and is not written.
    expect(committed.bucketsWritten).toBe(3);
    const [result] = engine.query([
      {
        keys: [{ ints: new Float64Array([1, 2, 3]) }],
        reads: [
          { seriesId: 'amount_by_user', rule: 0, windowMs: DAY },
          { seriesId: 'amount_by_user', rule: 0, windowMs: 7 * DAY },
          { seriesId: 'amount_by_user', rule: 1, windowMs: 7 * DAY },
          { seriesId: 'amount_by_user', rule: 2, windowMs: 7 * DAY },
        ],
        nowMs: NOW,
        explain: true,
      },
    ]);
    expect(result).toBeDefined();
    const numbers = Array.from(result?.numbers ?? []);
    // key 1: sum 1d = 30, sum 7d = 70, count 3, mean 70/3; key 2 only has a null value.
    expect(numbers.slice(0, 4)).toEqual([30, 70, 3, 70 / 3]);
    expect(numbers.slice(4, 8)).toEqual([Number.NaN, Number.NaN, 0, Number.NaN]);
    // key 3 has no data at all: null everywhere, but a count is 0.
    expect(numbers.slice(8, 12)).toEqual([Number.NaN, Number.NaN, 0, Number.NaN]);
    const explanation = result?.explanations?.[1];
    expect(explanation?.bucketsMerged).toBe(3);
    expect(explanation?.firstBucketStartMs).toBe(NOW - 7 * DAY);
    // `now` itself lies in the bucket that starts at NOW (aligned): it is read whole.
    expect(explanation?.lastBucketStartMs).toBe(NOW);
    engine.close();
  });

  it('handles composite string keys, selections, lists and vectors', async () => {
    const engine = open(tempDir(), description);
    const ts = new Float64Array([NOW - 10, NOW - 20, NOW - 30, NOW - 40]);
    const userKey = { ints: new Float64Array([7, 7, 7, 7]) };
    await engine.commitBatchesAsync([
      {
        seriesId: 'bank_by_user_bank',
        keys: [userKey, { strings: ['acme', 'zeta'], codes: new Uint32Array([0, 0, 1, 0]) }],
        timestampsMs: ts,
        strings: ['x', 'y', 'z'],
        codes: new Uint32Array([0, 1, 2, NULL_CODE]),
        by: new Float64Array([5, 9, 1, 100]),
        selection: new Uint32Array([0, 1, 3]),
      },
      {
        seriesId: 'embedding_by_user',
        keys: [userKey],
        timestampsMs: ts,
        vectors: new Float64Array([1, 2, 3, 4, Number.NaN, 0, 5, 6]),
      },
    ]);
    const [banks, vectors] = await engine.queryAsync([
      {
        keys: [{ ints: new Float64Array([7]) }, { strings: ['acme'], codes: new Uint32Array([0]) }],
        reads: [
          { seriesId: 'bank_by_user_bank', rule: 0, windowMs: DAY },
          { seriesId: 'bank_by_user_bank', rule: 1, windowMs: DAY },
        ],
        nowMs: NOW,
      },
      {
        keys: [{ ints: new Float64Array([7]) }],
        reads: [{ seriesId: 'embedding_by_user', rule: 0, windowMs: DAY }],
        nowMs: NOW,
      },
    ]);
    // Row 2 (bank zeta) was not selected; row 3 has a null value.
    expect(banks?.numbers[0]).toBe(2);
    expect(banks?.lists).toEqual([{ index: 1, items: ['y', 'x'] }]);
    // The vector with a NaN element is skipped whole: mean of (1,2), (3,4), (5,6).
    expect(vectors?.lists).toEqual([{ index: 0, vector: [3, 4] }]);
    engine.close();
  });

  it('reports new, kept and orphaned series on reopen, and keeps positions', () => {
    const dir = tempDir();
    const first = open(dir, description);
    expect(first.openReport.newSeries).toHaveLength(3);
    first.stage([
      {
        seriesId: 'amount_by_user',
        keys: [{ ints: new Float64Array([1]) }],
        timestampsMs: new Float64Array([NOW - 1]),
        numbers: new Float64Array([5]),
      },
    ]);
    first.commitStaged({ positions: [{ source: 'transactions', partition: 2, offset: 99 }] });
    first.close();
    const kept = description.series.slice(0, 1);
    const changed: StoreDescription = {
      series: [...kept, { id: 'new_one', valueKind: 'number', rules: [rule('sum')] }],
    };
    const second = open(dir, changed);
    expect(second.openReport).toEqual({
      newSeries: ['new_one'],
      keptSeries: ['amount_by_user'],
      orphanedSeries: ['bank_by_user_bank', 'embedding_by_user'],
      changedSeries: [],
      // This description gives no readable summaries, so the store keeps none.
      summaries: [],
    });
    expect(second.positions('transactions')).toEqual([
      { source: 'transactions', partition: 2, offset: 99 },
    ]);
    const [result] = second.query([
      {
        keys: [{ ints: new Float64Array([1]) }],
        reads: [{ seriesId: 'amount_by_user', rule: 0, windowMs: DAY }],
        nowMs: NOW,
      },
    ]);
    expect(result?.numbers[0]).toBe(5);
    second.close();
  });

  it('keeps dead letters atomically with the commit that consumed them', () => {
    const dir = tempDir();
    const engine = open(dir, description);
    engine.commitBatches(
      [
        {
          seriesId: 'amount_by_user',
          keys: [{ ints: new Float64Array([1]) }],
          timestampsMs: new Float64Array([NOW - 1]),
          numbers: new Float64Array([5]),
        },
      ],
      {
        positions: [{ source: 'transactions', partition: 0, offset: 8 }],
        deadLetters: [
          {
            source: 'transactions',
            partition: 0,
            offset: 7,
            reason: "field 'amount': expected number, received string",
            field: 'amount',
            raw: Buffer.from('{"amount":"x"}'),
            receivedAtMs: NOW,
          },
        ],
      },
    );
    engine.close();
    const reopened = open(dir, description);
    expect(reopened.deadLetterCount()).toBe(1);
    const [letter] = reopened.deadLetters({ source: 'transactions' });
    expect(letter?.offset).toBe(7);
    expect(letter?.field).toBe('amount');
    expect(letter?.raw.toString()).toBe('{"amount":"x"}');
    expect(reopened.positions('transactions')[0]?.offset).toBe(8);
    reopened.close();
  });

  it('raises errors with a code and a message naming what was wrong', () => {
    const engine = open(tempDir(), description);
    const bad = () =>
      engine.stage([
        {
          seriesId: 'amount_by_user',
          keys: [{ ints: new Float64Array([1, 2]) }],
          timestampsMs: new Float64Array([NOW, Number.POSITIVE_INFINITY]),
          numbers: new Float64Array([1, 2]),
        },
      ]);
    expect(bad).toThrow(InvalidBatchError);
    expect(bad).toThrow(/series 'amount_by_user': timestamp at row 1/);
    try {
      bad();
    } catch (error) {
      expect(error).toBeInstanceOf(TesseraError);
      expect((error as TesseraError).code).toBe('INVALID_BATCH');
    }
    expect(engine.stats().pendingRows).toBe(0);
    expect(() =>
      engine.query([
        {
          keys: [{ ints: new Float64Array([1]) }],
          reads: [{ seriesId: 'nope', rule: 0, windowMs: DAY }],
        },
      ]),
    ).toThrow(InvalidDescriptionError);
    expect(() =>
      BucketEngine.open(tempDir(), {
        series: [{ id: 's', valueKind: 'string', rules: [rule('sum')] }],
      }),
    ).toThrow(
      /series 's' rule 0 \(sum\): invalid aggregation sum: it takes int, float, boolean, vector columns, but the series holds strings/,
    );
    engine.close();
    expect(() => engine.stats()).toThrow(ClosedError);
  });

  it('removes buckets past retention when it compacts, and never serves them', () => {
    const engine = open(tempDir(), {
      series: [{ id: 's', valueKind: 'number', rules: [{ ...rule('sum'), retentionMs: DAY }] }],
    });
    const hours = 72;
    engine.commitBatches([
      {
        seriesId: 's',
        keys: [{ ints: new Float64Array(hours).fill(1) }],
        timestampsMs: Float64Array.from({ length: hours }, (_, h) => NOW - h * HOUR),
        numbers: new Float64Array(hours).fill(1),
      },
    ]);
    expect(engine.countBucketEntries()).toBe(hours);
    const read = () =>
      engine.query([
        {
          keys: [{ ints: new Float64Array([1]) }],
          reads: [{ seriesId: 's', rule: 0, windowMs: 3 * DAY }],
        },
      ])[0]?.numbers[0];
    expect(read()).toBe(26);
    engine.compact();
    expect(engine.countBucketEntries()).toBe(26);
    engine.close();
  });
});
