/**
 * End-to-end differential test: random transactions go through the DSL
 * and `Tessera.ingest` in random batches (row objects and columns, Dates, zoned ISO
 * strings and epoch ms, late events, null amounts, keys and categories); after EVERY
 * batch, every feature window of every user is read with one `Tessera.query` and
 * compared with DuckDB computing the same window from the raw rows.
 *
 * DuckDB is the oracle: the SQL below is written by hand from the feature definitions
 * (window, bucket size and origin are spelled out per output, not taken from the
 * plan), under the bucket-overlap rule of docs/semantics.md section 5: a window W at `now` reads every
 * bucket (size B, origin O) overlapping (now - W, now], i.e. rows with
 *   floor((now - W + 1 - O) / B) * B + O  <=  t  <  floor((now - O) / B) * B + O + B.
 * The engine clock is pinned at each query's `now`, so retention hides nothing a window
 * could read.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, describe, expect, it } from 'vitest';
import {
  datetime,
  features,
  float,
  hasMany,
  type IngestResult,
  int,
  string,
  Tessera,
  windowed,
} from '../ts/index.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 2, 1);
/** A bucket origin that is not the epoch: 05:30 UTC. */
const ORIGIN_TEXT = '2026-01-01T05:30:00Z';
const ORIGIN = Date.UTC(2026, 0, 1, 5, 30);
const SPAN = 6 * DAY;

const Transaction = features('transaction', {
  id: int().primary(),
  user_id: int().references('user.id'),
  bank: string(),
  amount: float(),
  category: int(),
  ts: datetime().featureTime(),
});

const User = features(
  'user',
  {
    id: int().primary(),
    bank: string(),
    transactions: hasMany(() => Transaction),
    // A composite join: the user's transactions at the user's own bank.
    bank_transactions: hasMany(
      () => Transaction,
      (t) => t.user_id.eq(User.id).and(t.bank.eq(User.bank)),
    ),
  },
  (user) => ({
    total: windowed('1h', '1d', '3d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions
        .where((t) => [t.ts.gt(t.chalk_window), t.ts.lte(t.chalk_now)])
        .select((t) => t.amount)
        .sum(),
      default: 0,
    }),
    amounts: windowed('1d', '3d', {
      // Two bucket sizes for one feature.
      materialization: { bucketDurations: { '1h': ['1d'], '6h': ['3d'] } },
      expression: user.transactions.select((t) => t.amount).count(),
    }),
    txns: windowed('1d', {
      materialization: true,
      expression: user.transactions.count(),
    }),
    avg: windowed('2d', '5d', {
      materialization: { bucketDuration: '1d', bucketStart: ORIGIN_TEXT },
      expression: user.transactions.select((t) => t.amount).mean(),
    }),
    low: windowed('1d', '5d', {
      materialization: { bucketDuration: '6h', bucketStart: ORIGIN_TEXT },
      expression: user.transactions.select((t) => t.amount).min(),
    }),
    high: windowed('1d', '5d', {
      materialization: { bucketDuration: '6h', bucketStart: ORIGIN_TEXT },
      expression: user.transactions.select((t) => t.amount).max(),
    }),
    variance: windowed('3d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).var(),
    }),
    deviation: windowed('3d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).std(),
    }),
    sample_variance: windowed('3d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).var({ sample: true }),
    }),
    sample_deviation: windowed('3d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).std({ sample: true }),
    }),
    shopping: windowed('1d', '5d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions
        .where((t) => t.category.in([1, 2]))
        .select((t) => t.amount)
        .sum(),
    }),
    big: windowed('3d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions
        .where((t) => t.amount.gt(50))
        .select((t) => t.amount)
        .count(),
    }),
    elsewhere: windowed('3d', {
      materialization: { bucketDuration: '1d' },
      expression: user.transactions.where((t) => t.bank.ne('a')).count(),
    }),
    first3: windowed('3d', {
      materialization: { bucketDuration: '1d' },
      expression: user.transactions.select((t) => t.amount).minByN((t) => t.id, 3),
    }),
    last_banks: windowed('3d', {
      materialization: { bucketDuration: '6h', bucketStart: ORIGIN_TEXT },
      expression: user.transactions.select((t) => t.bank).maxByN((t) => t.id, 2),
    }),
    home_bank: windowed('1d', '5d', {
      materialization: { bucketDuration: '1h' },
      expression: user.bank_transactions.select((t) => t.amount).sum(),
    }),
  }),
);

/** One output and the SQL that recomputes it (window, bucket size and origin by hand). */
interface Oracle {
  readonly output: string;
  readonly windowMs: number;
  readonly bucketMs: number;
  readonly originMs: number;
  /** Aggregate over the joined rows `t`. */
  readonly aggregate: string;
  /** Extra condition on `t`. */
  readonly where?: string;
  /** Join on the user's bank as well (the composite relation). */
  readonly composite?: boolean;
  /** The value when the aggregate is NULL. */
  readonly fallback?: number;
  readonly tolerance?: number;
}

const twoOrMore = (f: string) => `CASE WHEN count(t.amount) >= 2 THEN ${f}(t.amount) END`;

const oracles: Oracle[] = [
  ...[HOUR, DAY, 3 * DAY].map((w) => ({
    output: `user.total__${w / 1000}__`,
    windowMs: w,
    bucketMs: HOUR,
    originMs: 0,
    aggregate: 'sum(t.amount)',
    fallback: 0,
  })),
  {
    output: 'user.amounts__86400__',
    windowMs: DAY,
    bucketMs: HOUR,
    originMs: 0,
    aggregate: 'count(t.amount)',
  },
  {
    output: 'user.amounts__259200__',
    windowMs: 3 * DAY,
    bucketMs: 6 * HOUR,
    originMs: 0,
    aggregate: 'count(t.amount)',
  },
  {
    output: 'user.txns__86400__',
    windowMs: DAY,
    bucketMs: DAY,
    originMs: 0,
    aggregate: 'count(t.id)',
  },
  ...[2 * DAY, 5 * DAY].map((w) => ({
    output: `user.avg__${w / 1000}__`,
    windowMs: w,
    bucketMs: DAY,
    originMs: ORIGIN,
    aggregate: 'avg(t.amount)',
  })),
  ...(['low', 'high'] as const).flatMap((name) =>
    [DAY, 5 * DAY].map((w) => ({
      output: `user.${name}__${w / 1000}__`,
      windowMs: w,
      bucketMs: 6 * HOUR,
      originMs: ORIGIN,
      aggregate: `${name === 'low' ? 'min' : 'max'}(t.amount)`,
    })),
  ),
  ...(
    [
      ['variance', twoOrMore('var_pop')],
      ['deviation', twoOrMore('stddev_pop')],
      ['sample_variance', 'var_samp(t.amount)'],
      ['sample_deviation', 'stddev_samp(t.amount)'],
    ] as const
  ).map(([name, aggregate]) => ({
    output: `user.${name}__259200__`,
    windowMs: 3 * DAY,
    bucketMs: HOUR,
    originMs: 0,
    aggregate,
    tolerance: 1e-7,
  })),
  ...[DAY, 5 * DAY].map((w) => ({
    output: `user.shopping__${w / 1000}__`,
    windowMs: w,
    bucketMs: HOUR,
    originMs: 0,
    aggregate: 'sum(t.amount)',
    where: 't.category IN (1, 2)',
  })),
  {
    output: 'user.big__259200__',
    windowMs: 3 * DAY,
    bucketMs: HOUR,
    originMs: 0,
    aggregate: 'count(t.amount)',
    where: 't.amount > 50',
  },
  {
    output: 'user.elsewhere__259200__',
    windowMs: 3 * DAY,
    bucketMs: DAY,
    originMs: 0,
    aggregate: 'count(t.id)',
    where: "t.bank <> 'a'",
  },
  {
    output: 'user.first3__259200__',
    windowMs: 3 * DAY,
    bucketMs: DAY,
    originMs: 0,
    aggregate: '(list(t.amount ORDER BY t.id ASC) FILTER (WHERE t.amount IS NOT NULL))[1:3]',
  },
  {
    output: 'user.last_banks__259200__',
    windowMs: 3 * DAY,
    bucketMs: 6 * HOUR,
    originMs: ORIGIN,
    aggregate: '(list(t.bank ORDER BY t.id DESC) FILTER (WHERE t.bank IS NOT NULL))[1:2]',
  },
  ...[DAY, 5 * DAY].map((w) => ({
    output: `user.home_bank__${w / 1000}__`,
    windowMs: w,
    bucketMs: HOUR,
    originMs: 0,
    aggregate: 'sum(t.amount)',
    composite: true,
  })),
];

function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
}

interface Txn {
  id: number;
  user_id: number | null;
  bank: string | null;
  amount: number | null;
  category: number | null;
  ts: number;
}

const USERS = 8;
const BANKS = ['a', 'b', 'c'];
const random = seeded(20260301);
const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
const userBanks = Array.from({ length: USERS }, () => pick(BANKS));
// User 8 never transacts: every window of it is the default.
const transactions: Txn[] = Array.from({ length: 420 }, (_, i) => ({
  id: i + 1,
  user_id: random() < 0.03 ? null : 1 + Math.floor(random() * (USERS - 1)),
  bank: random() < 0.05 ? null : pick(BANKS),
  amount: random() < 0.15 ? null : Math.round(random() * 10_000) / 100,
  category: random() < 0.05 ? null : Math.floor(random() * 5),
  ts: T0 + Math.floor(random() * SPAN),
}));
// Arrival order is not time order: late events land in their own (old) buckets.
const arrival = [...transactions].sort(() => random() - 0.5);

function isoWithOffset(ms: number): string {
  // The same instant written at +02:00.
  const local = new Date(ms + 2 * HOUR).toISOString().slice(0, 23);
  return `${local}+02:00`;
}

type Format = 'rows-date' | 'rows-iso' | 'columns-typed' | 'columns-plain';

function ingestBatch(tessera: Tessera, batch: Txn[], format: Format): IngestResult {
  switch (format) {
    case 'rows-date':
      return tessera.ingest(
        Transaction,
        batch.map((t) => ({ ...t, ts: new Date(t.ts) })),
      );
    case 'rows-iso':
      return tessera.ingest(
        Transaction,
        batch.map((t) => ({ ...t, ts: isoWithOffset(t.ts) })),
      );
    case 'columns-typed':
      return tessera.ingest(Transaction, {
        id: Float64Array.from(batch, (t) => t.id),
        user_id: Float64Array.from(batch, (t) => t.user_id ?? Number.NaN),
        bank: batch.map((t) => t.bank),
        amount: Float64Array.from(batch, (t) => t.amount ?? Number.NaN),
        category: batch.map((t) => t.category),
        ts: Float64Array.from(batch, (t) => t.ts),
      });
    case 'columns-plain':
      return tessera.ingest(Transaction, {
        id: batch.map((t) => t.id),
        user_id: batch.map((t) => t.user_id),
        bank: batch.map((t) => t.bank),
        amount: batch.map((t) => t.amount),
        category: batch.map((t) => t.category),
        ts: batch.map((t) => t.ts),
      });
  }
}

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function close(actual: unknown, expected: unknown, tolerance: number): boolean {
  if (typeof actual === 'number' && typeof expected === 'number') {
    return Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected));
  }
  return JSON.stringify(actual) === JSON.stringify(expected);
}

describe('Tessera against DuckDB', () => {
  it('agrees on every window of every user after every batch', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-differential-'));
    dirs.push(dir);
    // Commits of many buckets are ingested as table files, the others go through the WAL
    // and the memtable; at this threshold the random batch sizes take both paths.
    const tessera = Tessera.open({
      path: dir,
      features: [User, Transaction],
      bulkCommitBuckets: 120,
    });
    // Every feature window of the plan has an oracle, and nothing else.
    expect(tessera.plan.reads.map((r) => r.canonical).sort()).toEqual(
      oracles.map((o) => o.output).sort(),
    );

    const duck = await DuckDBInstance.create(':memory:', { threads: '1' });
    const db = await duck.connect();
    await db.run(
      'CREATE TABLE tx (id BIGINT, user_id BIGINT, bank VARCHAR, amount DOUBLE, category BIGINT, ts BIGINT)',
    );
    await db.run('CREATE TABLE users (id BIGINT, bank VARCHAR)');
    await db.run(
      `INSERT INTO users VALUES ${userBanks.map((b, i) => `(${i + 1}, '${b}')`).join(', ')}`,
    );

    const ids = userBanks.map((_, i) => i + 1);
    const outputs = oracles.map((o) => o.output);
    const formats: Format[] = ['rows-date', 'rows-iso', 'columns-typed', 'columns-plain'];
    let offset = 0;
    let batches = 0;
    let compared = 0;
    let nonDefault = 0;
    let tableFiles = 0;
    while (offset < arrival.length) {
      const size = 1 + Math.floor(random() * 40);
      const batch = arrival.slice(offset, offset + size);
      offset += batch.length;
      batches += 1;
      const ingested = ingestBatch(tessera, batch, formats[batches % formats.length] as Format);
      if (ingested.commit?.tableFile) tableFiles += 1;

      const appender = await db.createAppender('tx');
      for (const t of batch) {
        appender.appendBigInt(BigInt(t.id));
        if (t.user_id === null) appender.appendNull();
        else appender.appendBigInt(BigInt(t.user_id));
        if (t.bank === null) appender.appendNull();
        else appender.appendVarchar(t.bank);
        if (t.amount === null) appender.appendNull();
        else appender.appendDouble(t.amount);
        if (t.category === null) appender.appendNull();
        else appender.appendBigInt(BigInt(t.category));
        appender.appendBigInt(BigInt(t.ts));
        appender.endRow();
      }
      appender.closeSync();

      // `now` sweeps forward over the data (plus a day), at an arbitrary millisecond.
      const now = T0 + Math.floor((offset / arrival.length) * (SPAN + DAY)) + 17;
      tessera.setClock(now);
      const result = tessera.query({
        input: { 'user.id': ids, 'user.bank': userBanks },
        output: outputs,
        now: new Date(now),
        explain: true,
      });
      expect(result.rows).toHaveLength(USERS);

      for (const [j, o] of oracles.entries()) {
        const lo = `floor((${now} - ${o.windowMs} + 1 - ${o.originMs}) / ${o.bucketMs}) * ${o.bucketMs} + ${o.originMs}`;
        const hi = `floor((${now} - ${o.originMs}) / ${o.bucketMs}) * ${o.bucketMs} + ${o.originMs} + ${o.bucketMs}`;
        const sql = `
          WITH b AS (SELECT (${lo})::BIGINT AS lo, (${hi})::BIGINT AS hi)
          SELECT u.id::DOUBLE AS id, (${o.aggregate}) AS v, any_value(b.lo)::DOUBLE AS lo,
                 any_value(b.hi)::DOUBLE AS hi
          FROM users u CROSS JOIN b
          LEFT JOIN tx t ON t.user_id = u.id ${o.composite ? 'AND t.bank = u.bank' : ''}
            AND t.ts >= b.lo AND t.ts < b.hi ${o.where ? `AND ${o.where}` : ''}
          GROUP BY u.id ORDER BY u.id`;
        const reader = await db.runAndReadAll(sql);
        const expectedRows = reader.getRowObjectsJS();
        for (const [i, row] of result.rows.entries()) {
          const e = expectedRows[i];
          expect(e?.id).toBe(ids[i]);
          const raw = typeof e?.v === 'bigint' ? Number(e.v) : (e?.v ?? null);
          const empty = raw === null || (o.aggregate.startsWith('count') && raw === 0);
          const expected = raw === null && o.fallback !== undefined ? o.fallback : raw;
          const actual = row.values[j];
          if (!close(actual, expected, o.tolerance ?? 1e-9)) {
            expect.fail(
              `batch ${batches} (now ${new Date(now).toISOString()}): ${o.output} of user ${ids[i]} is ${JSON.stringify(actual)}, DuckDB says ${JSON.stringify(expected)}`,
            );
          }
          // The explanation names exactly the bucket range of the overlap rule.
          const x = row.explanations?.[j];
          expect(x?.firstBucketStartMs).toBe(e?.lo);
          expect(x?.lastBucketStartMs).toBe(Number(e?.hi) - o.bucketMs);
          // A count of nothing is 0 by itself: only a declared default other than 0
          // replaces it.
          const counted = o.aggregate.startsWith('count');
          expect(x?.defaulted).toBe(empty && !(counted && (o.fallback ?? 0) === 0));
          compared += 1;
          if (!empty) nonDefault += 1;
        }
      }
    }
    expect(batches).toBeGreaterThan(10);
    expect(tableFiles, `${tableFiles} of ${batches} commits were table files`).toBeGreaterThan(
      batches / 10,
    );
    expect(tableFiles).toBeLessThan(batches * 0.9);
    expect(compared).toBe(batches * USERS * oracles.length);
    // The comparison is not vacuous: most cells hold data.
    expect(nonDefault).toBeGreaterThan(compared / 2);
    db.closeSync();
    duck.closeSync();
    tessera.close();
  });
});
