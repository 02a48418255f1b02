/**
 * The sketch aggregations (approx_count_distinct, approx_top_k, approx_percentile) through
 * the BucketEngine: a store description as the planner emits it, ingest, commit, window
 * queries, stored buckets, and arguments rejected when the store opens.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BucketEngine } from '../ts/bucket-engine.js';
import { InvalidDescriptionError } from '../ts/errors.js';
import type { AggregationDescription, StoreDescription, WindowQueryResult } from '../ts/native.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 0, 1);

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-sketches-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const rule = (aggregation: AggregationDescription) => ({
  aggregation,
  bucketSizeMs: HOUR,
  bucketOriginMs: 0,
  retentionMs: 7 * DAY,
});

const description: StoreDescription = {
  series: [
    {
      id: 'merchant_by_user',
      valueKind: 'number',
      rules: [
        rule({ kind: 'approx_count_distinct', lgK: 11 }),
        rule({ kind: 'approx_top_k', k: 3, weighted: false }),
        rule({ kind: 'approx_top_k', k: 2, weighted: true }),
      ],
    },
    {
      id: 'amount_by_user',
      valueKind: 'number',
      rules: [
        rule({ kind: 'approx_percentile', quantile: 0.5, sketchSize: 200 }),
        rule({ kind: 'approx_percentile', quantile: 0.9 }),
      ],
    },
    {
      id: 'city_by_user',
      valueKind: 'string',
      rules: [
        rule({ kind: 'approx_count_distinct' }),
        rule({ kind: 'approx_top_k', k: 2, weighted: true }),
      ],
    },
  ],
};

function open(dir: string, desc: StoreDescription = description): BucketEngine {
  const engine = BucketEngine.open(dir, desc);
  engine.setClock(NOW);
  return engine;
}

/** The list value of cell `index`, or undefined. */
function list(result: WindowQueryResult, index: number) {
  return result.lists.find((l) => l.index === index);
}

describe('sketch aggregations through BucketEngine', () => {
  it('folds, commits and answers count-distinct, top-k and percentiles', () => {
    const engine = open(tempDir());
    // Key 1: 2,000 events over 4,000 merchant ids, in two commits across 20 hours.
    const n = 2_000;
    const keys = new Float64Array(n).fill(1);
    const ts = new Float64Array(n);
    const merchants = new Float64Array(n);
    const weights = new Float64Array(n);
    const amounts = new Float64Array(n);
    const exact = new Set<number>();
    for (let i = 0; i < n; i++) {
      ts[i] = NOW - 20 * HOUR + Math.floor((i * 20 * HOUR) / n);
      // Merchant 7 in every fourth event, 8 in every tenth, and once merchant 9 with a
      // big weight (the heaviest item when weighted, a rare one otherwise); the rest are
      // spread over 4,000 ids.
      const merchant =
        i === 5 ? 9 : i % 4 === 0 ? 7 : i % 10 === 1 ? 8 : 1_000 + ((i * 7_919) % 4_000);
      merchants[i] = merchant;
      exact.add(merchant);
      weights[i] = i === 5 ? 10_000 : 1;
      amounts[i] = i + 1;
    }
    const batch = (from: number, to: number) => [
      {
        seriesId: 'merchant_by_user',
        keys: [{ ints: keys.subarray(from, to) }],
        timestampsMs: ts.subarray(from, to),
        numbers: merchants.subarray(from, to),
        by: weights.subarray(from, to),
      },
      {
        seriesId: 'amount_by_user',
        keys: [{ ints: keys.subarray(from, to) }],
        timestampsMs: ts.subarray(from, to),
        numbers: amounts.subarray(from, to),
      },
    ];
    engine.commitBatches(batch(0, 1_200));
    engine.commitBatches(batch(1_200, n));

    const [result] = engine.query([
      {
        keys: [{ ints: new Float64Array([1, 2]) }],
        reads: [
          { seriesId: 'merchant_by_user', rule: 0, windowMs: DAY },
          { seriesId: 'merchant_by_user', rule: 1, windowMs: DAY },
          { seriesId: 'merchant_by_user', rule: 2, windowMs: DAY },
          { seriesId: 'amount_by_user', rule: 0, windowMs: DAY },
          { seriesId: 'amount_by_user', rule: 1, windowMs: DAY },
        ],
      },
    ]);
    if (result === undefined) throw new Error('no result');
    const numbers = Array.from(result.numbers);
    // Count-distinct: a whole number close to exact (past 166 distinct items a CPC sketch
    // of lgK 11: ~1.5% standard error).
    const distinct = numbers[0] ?? Number.NaN;
    expect(exact.size).toBeGreaterThan(166);
    expect(Number.isInteger(distinct)).toBe(true);
    expect(Math.abs(distinct - exact.size) / exact.size).toBeLessThan(0.05);
    // Top-k: items and weights, heaviest first. Estimates are upper bounds, at most
    // 3.5 / 64 of the total weight over (k = 3 keeps a map of 64 slots).
    const top = list(result, 1);
    expect(top?.items).toHaveLength(3);
    expect(top?.items?.slice(0, 2)).toEqual([7, 8]);
    expect(top?.weights?.[0]).toBeGreaterThanOrEqual(500);
    expect(top?.weights?.[0]).toBeLessThanOrEqual(500 + (3.5 / 64) * n);
    expect(Number.isNaN(numbers[1])).toBe(true);
    const weighted = list(result, 2);
    expect(weighted?.items).toEqual([9, 7]);
    expect(weighted?.weights?.[0]).toBeGreaterThanOrEqual(10_000);
    // Percentiles of 1..2000: the median and the 90th percentile, within 0.5% in rank.
    expect(Math.abs((numbers[3] ?? 0) - 1_000)).toBeLessThanOrEqual(10);
    expect(Math.abs((numbers[4] ?? 0) - 1_800)).toBeLessThanOrEqual(10);
    // Key 2 has no data: count-distinct is 0 like count, the others are null.
    expect(numbers.slice(5)).toEqual([0, Number.NaN, Number.NaN, Number.NaN, Number.NaN]);
    expect(result.lists.every((l) => l.index < 5)).toBe(true);

    // Stored buckets evaluate their sketches too.
    const buckets = engine.readBuckets(
      'merchant_by_user',
      [{ ints: new Float64Array([1]) }],
      NOW - DAY,
      NOW,
    );
    expect(buckets).toHaveLength(20);
    for (const bucket of buckets) {
      const [cd, unweighted] = bucket.values;
      expect(cd?.number).toBeGreaterThan(1);
      expect(unweighted?.items?.length).toBeGreaterThan(0);
    }
    engine.close();
  });

  it('counts distinct strings and ranks them by weight', () => {
    const engine = open(tempDir());
    const cities = ['Lyon', 'Paris', 'Oslo', 'Lima', 'Kyiv'];
    const codes = new Uint32Array([0, 1, 1, 2, 0xffffffff, 3, 1, 4, 0]);
    const by = new Float64Array([1.5, 2, 0.25, 9, 100, Number.NaN, 1, 0.5, 1]);
    const rows = codes.length;
    engine.commitBatches([
      {
        seriesId: 'city_by_user',
        keys: [{ strings: ['ana', 'bo'], codes: new Uint32Array(rows).fill(0) }],
        timestampsMs: new Float64Array(rows).fill(NOW - HOUR),
        strings: cities,
        codes,
        by,
      },
    ]);
    const [result] = engine.query([
      {
        keys: [{ strings: ['ana'], codes: new Uint32Array([0]) }],
        reads: [
          { seriesId: 'city_by_user', rule: 0, windowMs: DAY },
          { seriesId: 'city_by_user', rule: 1, windowMs: DAY },
        ],
      },
    ]);
    // Null city (code 0xffffffff) is skipped; the null weight (NaN) skips Lima's only row
    // for the weighted top-k, not for the distinct count. Five cities are well within the
    // exact limit (166 at lgK 11): the count is exactly 5.
    expect(result?.numbers[0]).toBe(5);
    expect(list(result as WindowQueryResult, 1)).toEqual({
      index: 1,
      items: ['Oslo', 'Paris'],
      weights: [9, 3.25],
    });
    engine.close();
  });

  it('rejects bad sketch arguments at open, naming the series and the rule', () => {
    const bad = (aggregation: AggregationDescription, valueKind: 'number' | 'string' = 'number') =>
      ({
        series: [
          { id: 'bad_series', valueKind, rules: [rule({ kind: 'count' }), rule(aggregation)] },
        ],
      }) satisfies StoreDescription;
    const cases: [StoreDescription, RegExp][] = [
      [
        bad({ kind: 'approx_percentile', quantile: 1.5 }),
        /series 'bad_series' rule 1 \(approx_percentile\).*quantile must be a number in \[0, 1\], got 1\.5/,
      ],
      [
        bad({ kind: 'approx_count_distinct', lgK: 40 }),
        /series 'bad_series' rule 1 \(approx_count_distinct\).*lgK must be between 4 and 26, got 40/,
      ],
      [
        bad({ kind: 'approx_top_k', k: 0 }),
        /series 'bad_series' rule 1 \(approx_top_k\).*k must be between 1 and 1000, got 0/,
      ],
      [
        bad({ kind: 'approx_percentile', quantile: 0.5, sketchSize: 5 }),
        /series 'bad_series' rule 1 \(approx_percentile\).*sketchSize must be between 10 and 1000, got 5/,
      ],
      [
        bad({ kind: 'approx_percentile', quantile: 0.5 }, 'string'),
        /series 'bad_series' rule 1 \(approx_percentile\).*takes int, float columns, but the series holds strings/,
      ],
    ];
    for (const [desc, message] of cases) {
      const dir = tempDir();
      let error: unknown;
      try {
        BucketEngine.open(dir, desc);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidDescriptionError);
      expect((error as Error).message).toMatch(message);
    }
  });
});
