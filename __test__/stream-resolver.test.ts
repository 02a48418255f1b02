/**
 * Stream resolvers through the in-process sources: relevance and
 * per-version isolation, bad messages kept as dead letters, late events, dedupe,
 * the function form, JSON-lines replay, and resuming from stored positions.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { makeStreamResolver, StreamResolverError, StreamRunner } from '../ts/resolvers/index.js';
import { zonedIsoProblem } from '../ts/rows/time.js';
import { JsonLinesSource, MemorySource } from '../ts/sources/index.js';
import { Tessera } from '../ts/tessera.js';
import * as streaming from './fixtures/streaming.js';
import * as versioned from './fixtures/versioned.js';

const NOW = Date.UTC(2026, 0, 31, 12);
const HOUR = 3_600_000;
const iso = (ms: number): string => new Date(ms).toISOString();

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-stream-'));
  dirs.push(dir);
  return dir;
}
/** Opens a store with its clock pinned to NOW (retention is judged by the engine clock). */
function openAt(path: string, features: readonly unknown[]): Tessera {
  const tessera = Tessera.open({ path, features });
  tessera.setClock(NOW);
  return tessera;
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const TransactionMsg = z.object({
  id: z.string(),
  user_id: z.string(),
  amount: z.number(),
  ts: z.string(),
});

function totals(tessera: Tessera, users: string[]): { v1: unknown[]; v2: unknown[] } {
  const { rows } = tessera.query({
    input: { 'user.id': users },
    output: [
      versioned.User.total_spend['30d'],
      versioned.User.total_spend.version(2)['30d'],
    ] as const,
    now: NOW,
  });
  return { v1: rows.map((r) => r.values[0]), v2: rows.map((r) => r.values[1]) };
}

describe('per-version isolation', () => {
  it('a resolver writing amount @ 2 updates only total_spend v2', async () => {
    const tessera = openAt(tempDir(), [versioned.User, versioned.Transaction]);
    // Some history in v1 first, written by a batch ingest of amount (v1).
    tessera.ingest(versioned.Transaction, [
      { id: 'h1', user_id: 'u1', amount: 100, ts: iso(NOW - 2 * HOUR) },
    ]);
    const before = totals(tessera, ['u1', 'u2']);
    expect(before).toEqual({ v1: [100, 0], v2: [0, 0] });

    const source = new MemorySource();
    const resolver = makeStreamResolver({
      name: 'process_transaction_topic',
      source,
      messageType: TransactionMsg,
      outputFeatures: [
        [versioned.Transaction.id, 'id'],
        [versioned.Transaction.user_id, 'user_id'],
        [versioned.Transaction.amount.version(2), 'amount'],
        [versioned.Transaction.ts, 'ts'],
      ],
    });
    source.push({ id: 't1', user_id: 'u1', amount: 10, ts: iso(NOW - HOUR) });
    source.push({ id: 't2', user_id: 'u1', amount: 5.5, ts: iso(NOW - HOUR) });
    source.push({ id: 't3', user_id: 'u2', amount: 7, ts: iso(NOW - 3 * HOUR) });
    source.end();
    const metrics = await new StreamRunner(tessera, resolver).run();
    expect(metrics.accepted).toBe(3);
    expect(metrics.deadLetters).toBe(0);

    const after = totals(tessera, ['u1', 'u2']);
    expect(after.v1).toEqual(before.v1); // v1 untouched
    expect(after.v2).toEqual([15.5, 7]);
    expect(tessera.positions('process_transaction_topic')).toEqual([
      { source: 'process_transaction_topic', partition: 0, offset: 3 },
    ]);
    tessera.close();
  });

  it('an unversioned column updates every aggregation over it (sum and mean)', async () => {
    const tessera = openAt(tempDir(), [streaming.User, streaming.Transaction]);
    const source = new MemorySource();
    const resolver = makeStreamResolver({
      name: 'process_transaction_topic',
      source,
      messageType: TransactionMsg,
      output: streaming.Transaction,
      outputFeatures: { id: 'id', user_id: 'user_id', amount: 'amount', ts: 'ts' },
    });
    for (const amount of [10, 20, 60]) {
      source.push({ id: `t${amount}`, user_id: 'u1', amount, ts: iso(NOW - HOUR) });
    }
    source.end();
    await new StreamRunner(tessera, resolver).run();
    const { rows } = tessera.query({
      input: { 'user.id': ['u1'] },
      output: [
        streaming.User.sum_transaction_amount['30d'],
        streaming.User.mean_transaction_amount['30d'],
      ] as const,
      now: NOW,
    });
    expect(rows[0]?.values).toEqual([90, 30]);
    tessera.close();
  });

  it('updatesMaterializedAggregations: false updates nothing but still stores positions', async () => {
    const tessera = openAt(tempDir(), [streaming.User, streaming.Transaction]);
    const source = new MemorySource();
    const resolver = makeStreamResolver({
      name: 'opted_out',
      source,
      messageType: TransactionMsg,
      output: streaming.Transaction,
      outputFeatures: { id: 'id', user_id: 'user_id', amount: 'amount', ts: 'ts' },
      updatesMaterializedAggregations: false,
    });
    source.push({ id: 't1', user_id: 'u1', amount: 10, ts: iso(NOW - HOUR) });
    source.end();
    await new StreamRunner(tessera, resolver).run();
    const { rows } = tessera.query({
      input: { 'user.id': ['u1'] },
      output: [streaming.User.sum_transaction_amount['30d']] as const,
      now: NOW,
    });
    expect(rows[0]?.values).toEqual([0]);
    expect(tessera.positions('opted_out')).toHaveLength(1);
    tessera.close();
  });
});

describe('bad messages, late events and duplicates', () => {
  it('keeps every bad message as a dead letter with its reason, field, bytes and position', async () => {
    const tessera = openAt(tempDir(), [streaming.User, streaming.Transaction]);
    const source = new MemorySource();
    const resolver = makeStreamResolver({
      name: 'txns',
      source,
      messageType: TransactionMsg.extend({ user_id: z.string().optional() }),
      output: streaming.Transaction,
      outputFeatures: { id: 'id', user_id: 'user_id', amount: 'amount', ts: 'ts' },
    });
    const good = { id: 'g', user_id: 'u1', amount: 1, ts: iso(NOW - HOUR) };
    source.push(good); // 0
    source.push(Buffer.from('{"id": "x", nope')); // 1 not JSON
    source.push({ ...good, amount: 'ten' }); // 2 schema mismatch
    source.push({ id: 'k', amount: 1, ts: iso(NOW - HOUR) }); // 3 missing key
    source.push({ ...good, ts: '2026-01-31T10:00:00' }); // 4 naive timestamp
    source.push({ ...good, ts: 'yesterday' }); // 5 bad timestamp
    source.push(
      Buffer.from('{"id":"n","user_id":"u1","amount":1e999,"ts":"2026-01-31T10:00:00Z"}'),
    ); // 6
    source.push(Buffer.alloc(0)); // 7 empty
    source.push(good); // 8
    source.end();
    const metrics = await new StreamRunner(tessera, resolver).run();
    expect(metrics.messages).toBe(9);
    expect(metrics.accepted).toBe(2);
    expect(metrics.deadLetters).toBe(7);

    const letters = tessera.engine.deadLetters({ source: 'txns' });
    expect(letters.map((l) => l.offset)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const byOffset = new Map(letters.map((l) => [l.offset, l]));
    expect(byOffset.get(1)?.reason).toMatch(/^not JSON/);
    expect(byOffset.get(1)?.raw.toString()).toBe('{"id": "x", nope');
    expect(byOffset.get(2)?.reason).toMatch(/^schema mismatch/);
    expect(byOffset.get(2)?.field).toBe('amount');
    expect(byOffset.get(3)?.reason).toMatch(/^missing key/);
    expect(byOffset.get(3)?.field).toBe('user_id');
    expect(byOffset.get(4)?.reason).toMatch(/^ts '2026-01-31T10:00:00' .* it is naive/);
    expect(byOffset.get(4)?.field).toBe('ts');
    expect(byOffset.get(5)?.reason).toMatch(/^ts 'yesterday' is not an ISO-8601 date-time/);
    expect(byOffset.get(6)?.reason).toBe('amount is Infinity, not a finite number');
    expect(byOffset.get(6)?.field).toBe('amount');
    expect(byOffset.get(7)?.reason).toBe('empty message');
    for (const l of letters) expect(l.partition).toBe(0);
    expect(tessera.engine.deadLetterCount('txns')).toBe(7);

    const { rows } = tessera.query({
      input: { 'user.id': ['u1'] },
      output: [streaming.User.sum_transaction_amount['30d']] as const,
      now: NOW,
    });
    expect(rows[0]?.values).toEqual([2]);
    tessera.close();
  });

  it('drops events past the late-arrival deadline and skips duplicates, counting both', async () => {
    const tessera = openAt(tempDir(), [streaming.User, streaming.Transaction]);
    const source = new MemorySource();
    const resolver = makeStreamResolver({
      name: 'txns',
      source,
      messageType: TransactionMsg,
      output: streaming.Transaction,
      outputFeatures: { id: 'id', user_id: 'user_id', amount: 'amount', ts: 'ts' },
      lateArrivalDeadline: '1d',
      dedupe: { field: 'id', within: '1h' },
    });
    // Source times: the dedupe window is measured on them (redeliveries).
    const at = (minutes: number) => ({ timestampMs: NOW + minutes * 60_000 });
    source.push({ id: 'a', user_id: 'u1', amount: 1, ts: iso(NOW - HOUR) }, at(0));
    source.push({ id: 'a', user_id: 'u1', amount: 1, ts: iso(NOW - HOUR) }, at(1)); // duplicate
    source.push({ id: 'b', user_id: 'u1', amount: 2, ts: iso(NOW - 2 * 86_400_000) }, at(2)); // late
    source.push({ id: 'c', user_id: 'u1', amount: 4, ts: iso(NOW - 20 * HOUR) }, at(3)); // in time
    source.push({ id: 'c', user_id: 'u1', amount: 4, ts: iso(NOW - 20 * HOUR) }, at(30)); // duplicate
    source.push({ id: 'a', user_id: 'u1', amount: 8, ts: iso(NOW - 5 * HOUR) }, at(90)); // 90 min later
    source.end();
    const metrics = await new StreamRunner(tessera, resolver, { clock: () => NOW }).run();
    expect(metrics).toMatchObject({ accepted: 3, lateDropped: 1, duplicatesSkipped: 2 });
    const { rows } = tessera.query({
      input: { 'user.id': ['u1'] },
      output: [streaming.User.sum_transaction_amount['30d']] as const,
      now: NOW,
    });
    expect(rows[0]?.values).toEqual([13]);
    tessera.close();
  });
});

describe('the function form, timestamps and sources', () => {
  it('maps one message to several rows, with the event time from a `timestamp` field', async () => {
    const tessera = openAt(tempDir(), [versioned.User, versioned.Transaction]);
    const Payment = z.object({
      user: z.string(),
      at: z.string(),
      legs: z.array(z.object({ id: z.string(), amount: z.number() })),
    });
    const source = new MemorySource({ partitions: 2 });
    const resolver = makeStreamResolver({
      name: 'split_payments',
      source,
      messageType: Payment,
      output: versioned.Transaction,
      timestamp: 'at',
      resolve: (m) => m.legs.map((leg) => ({ id: leg.id, user_id: m.user, amount: leg.amount })),
    });
    source.push(
      {
        user: 'u1',
        at: iso(NOW - HOUR),
        legs: [
          { id: 'l1', amount: 3 },
          { id: 'l2', amount: 4 },
        ],
      },
      { key: 'u1' },
    );
    source.push(
      { user: 'u2', at: iso(NOW - 70 * 86_400_000), legs: [{ id: 'l3', amount: 9 }] },
      { key: 'u2' },
    );
    source.push({ user: 'u2', at: '2026-01-31 10:00', legs: [] }, { key: 'u2' }); // naive
    source.end();
    const metrics = await new StreamRunner(tessera, resolver).run();
    expect(metrics).toMatchObject({ messages: 3, accepted: 2, rows: 3, deadLetters: 1 });
    // `amount` unqualified is the default version (v1).
    expect(totals(tessera, ['u1', 'u2'])).toEqual({ v1: [7, 0], v2: [0, 0] });
    tessera.close();
  });

  it('replays a JSON-lines file, offsets being line numbers, and resumes after a restart', async () => {
    const dir = tempDir();
    const file = join(dir, 'txns.jsonl');
    const lines = [
      JSON.stringify({ id: 't0', user_id: 'u1', amount: 1, ts: iso(NOW - HOUR) }),
      '',
      JSON.stringify({ id: 't2', user_id: 'u1', amount: 2, ts: iso(NOW - HOUR) }),
      'not json',
      JSON.stringify({ id: 't4', user_id: 'u2', amount: 4, ts: iso(NOW - HOUR) }),
    ];
    writeFileSync(file, `${lines.join('\n')}\n`);
    const features = [streaming.User, streaming.Transaction];
    const store = join(dir, 'store');
    const resolverOn = (source: JsonLinesSource) =>
      makeStreamResolver({
        name: 'replay',
        source,
        messageType: TransactionMsg,
        output: streaming.Transaction,
        outputFeatures: { id: 'id', user_id: 'user_id', amount: 'amount', ts: 'ts' },
      });
    let tessera = openAt(store, features);
    await new StreamRunner(tessera, resolverOn(new JsonLinesSource(file)), { batchSize: 2 }).run();
    expect(tessera.positions('replay')).toEqual([{ source: 'replay', partition: 0, offset: 5 }]);
    expect(tessera.engine.deadLetters().map((l) => [l.offset, l.raw.toString()])).toEqual([
      [3, 'not json'],
    ]);
    tessera.close();

    // More lines, then a restart: only the new lines are folded.
    writeFileSync(
      file,
      `${[...lines, JSON.stringify({ id: 't5', user_id: 'u1', amount: 8, ts: iso(NOW - HOUR) })].join('\n')}\n`,
    );
    tessera = openAt(store, features);
    const metrics = await new StreamRunner(tessera, resolverOn(new JsonLinesSource(file))).run();
    expect(metrics.messages).toBe(1);
    const { rows } = tessera.query({
      input: { 'user.id': ['u1', 'u2'] },
      output: [streaming.User.sum_transaction_amount['30d']] as const,
      now: NOW,
    });
    expect(rows.map((r) => r.values[0])).toEqual([11, 4]);
    tessera.close();
  });

  it('reports definition problems when the resolver is declared or bound', () => {
    const source = new MemorySource();
    expect(() =>
      makeStreamResolver({
        name: 'x',
        source,
        messageType: TransactionMsg,
        outputFeatures: { id: 'id' },
      }),
    ).toThrow(StreamResolverError);
    const tessera = openAt(tempDir(), [versioned.User, versioned.Transaction]);
    const resolver = makeStreamResolver({
      name: 'x',
      source,
      messageType: TransactionMsg,
      output: versioned.Transaction,
      outputFeatures: { id: 'id', 'amount@3': 'amount', nope: 'id' },
    });
    expect(() => new StreamRunner(tessera, resolver)).toThrow(/nope|amount@3/);
    tessera.close();
  });
});

describe('the timestamp reader', () => {
  const read = (s: string): number | string => {
    const out = { ms: 0 };
    return zonedIsoProblem(s, out) ?? out.ms;
  };
  it('agrees with Date.parse on zoned ISO strings and refuses everything else', () => {
    const zoned = [
      '2026-01-31T12:00:00Z',
      '2026-01-31T12:00:00.5Z',
      '2026-01-31T12:00:00.123Z',
      '2026-01-31T12:00:00.123456z',
      '2024-02-29T23:59:59+02:00',
      '1999-12-31T00:00:00-05:30',
      '0099-01-01T00:00:00Z',
    ];
    for (const s of zoned) expect(read(s), s).toBe(Date.parse(s));
    expect(read('2026-01-31 12:00:00Z')).toBe(Date.parse('2026-01-31T12:00:00Z'));
    expect(read('2026-01-31T12:00:00+0200')).toBe(Date.parse('2026-01-31T12:00:00+02:00'));
    expect(read('2026-01-31T12:00+02')).toBe(Date.parse('2026-01-31T12:00:00+02:00'));
    for (const s of [
      '2026-01-31T12:00:00',
      '2026-02-30T12:00:00Z',
      '2025-02-29T12:00:00Z',
      '2026-13-01T12:00:00Z',
      '2026-01-31T24:00:00Z',
      '2026-01-31T12:00:00+24:00',
      '2026-01-31T12:00:00.Z',
      'yesterday at noon, Z',
    ]) {
      expect(typeof read(s), s).toBe('string');
    }
  });
});
