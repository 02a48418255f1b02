/**
 * Differential test of backfills (docs/semantics.md section 9): random transactions
 * ingested as a stream would, interleaved with random tagged backfills (over random
 * ranges, or the default range, and random key sets) through three batch resolvers, one
 * per form: SQL over a Parquet file, a function yielding row batches, and typed-array
 * columns. After every step, every window of every user is read with one query and
 * compared with DuckDB computing the documented rule from the raw rows.
 *
 * The oracle works per layout (a series at one bucket size; written out by hand below,
 * not taken from the plan). A backfill of layout L with range [s, e) (the requested
 * bounds widened to L's edges) and the keys its rows hold removes every earlier row of
 * those keys in L's buckets of [s, e), and adds its own rows that fall in them. So a
 * row is served by L unless a later run cleared its key and bucket in L; a run's own
 * row is served by L only inside L's range; rows a resolver returns outside the run's
 * range are not the run's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../ts/cli/seeded-random.js';
import {
  type BatchRun,
  features,
  hasMany,
  int,
  makeBatchResolver,
  Tessera,
  windowed,
} from '../ts/index.js';
import { Transaction } from './fixtures/transactions.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 2, 1);
const ORIGIN = Date.UTC(2026, 0, 1, 5, 30);
/** The engine clock: inside a bucket of every layout, so the default range stops short of it. */
const NOW = T0 + 6 * DAY + 2 * HOUR + 17 * 60_000;
const USERS = 8;

const User = features(
  'user',
  { id: int().primary(), transactions: hasMany(() => Transaction) },
  (user) => ({
    total: windowed('1h', '1d', '3d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).sum(),
      default: 0,
    }),
    amounts: windowed('1d', '3d', {
      materialization: { bucketDurations: { '1h': ['1d'], '6h': ['3d'] } },
      expression: user.transactions.select((t) => t.amount).count(),
    }),
    high: windowed('3d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).max(),
    }),
    avg: windowed('2d', {
      materialization: { bucketDuration: '1d', bucketStart: new Date(ORIGIN) },
      expression: user.transactions.select((t) => t.amount).mean(),
    }),
    low: windowed('1d', {
      materialization: { bucketDuration: '6h', bucketStart: new Date(ORIGIN) },
      expression: user.transactions.select((t) => t.amount).min(),
    }),
  }),
);

/** A layout: bucket size and origin, and the largest window its rules serve. */
interface Layout {
  readonly name: string;
  readonly sizeMs: number;
  readonly originMs: number;
  readonly largestWindowMs: number;
}
const L1: Layout = { name: 'l1', sizeMs: HOUR, originMs: 0, largestWindowMs: 3 * DAY };
const L2: Layout = { name: 'l2', sizeMs: 6 * HOUR, originMs: 0, largestWindowMs: 3 * DAY };
const L3: Layout = { name: 'l3', sizeMs: DAY, originMs: ORIGIN, largestWindowMs: 2 * DAY };
const L4: Layout = { name: 'l4', sizeMs: 6 * HOUR, originMs: ORIGIN, largestWindowMs: DAY };

/** Which layouts a feature reads. */
const READS: Record<string, readonly Layout[]> = {
  'user.total': [L1],
  'user.amounts': [L1, L2],
  'user.high': [L1],
  'user.avg': [L3],
  'user.low': [L4],
};

interface Output {
  readonly name: string;
  readonly windowMs: number;
  readonly layout: Layout;
  readonly aggregate: string;
  readonly fallback?: number;
}
const OUTPUTS: Output[] = [
  ...[HOUR, DAY, 3 * DAY].map((w) => ({
    name: `user.total__${w / 1000}__`,
    windowMs: w,
    layout: L1,
    aggregate: 'sum(amount)',
    fallback: 0,
  })),
  { name: 'user.amounts__86400__', windowMs: DAY, layout: L1, aggregate: 'count(amount)' },
  { name: 'user.amounts__259200__', windowMs: 3 * DAY, layout: L2, aggregate: 'count(amount)' },
  { name: 'user.high__259200__', windowMs: 3 * DAY, layout: L1, aggregate: 'max(amount)' },
  { name: 'user.avg__172800__', windowMs: 2 * DAY, layout: L3, aggregate: 'avg(amount)' },
  { name: 'user.low__86400__', windowMs: DAY, layout: L4, aggregate: 'min(amount)' },
];

const floorTo = (t: number, l: Layout) =>
  Math.floor((t - l.originMs) / l.sizeMs) * l.sizeMs + l.originMs;
const ceilTo = (t: number, l: Layout) => {
  const f = floorTo(t, l);
  return f === t ? f : f + l.sizeMs;
};
/** SQL: the start of the bucket of `ts` (epoch ms) in layout l. */
const bucketSql = (l: Layout) =>
  `(floor((ts - ${l.originMs}) / ${l.sizeMs}) * ${l.sizeMs} + ${l.originMs})`;

interface Txn {
  id: number;
  user_id: number;
  amount: number | null;
  ts: number;
}

describe('backfills against DuckDB over the raw rows', () => {
  let dir: string;
  let db: DuckDBInstance;
  let sql: DuckDBConnection;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-backfill-diff-'));
    db = await DuckDBInstance.create(':memory:');
    sql = await db.connect();
  });
  afterAll(() => {
    sql.closeSync();
    db.closeSync();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: every window equals the recompute after every step`, async () => {
      const random = seededRandom(seed * 7919);
      const below = (n: number) => Math.floor(random() * n);
      let nextId = 1;
      const txn = (user: number, from: number, to: number): Txn => ({
        id: nextId++,
        user_id: user,
        amount: random() < 0.1 ? null : below(400) / 4,
        ts: from + below(to - from),
      });

      // What each resolver returns in the current run; set before each backfill.
      let current: { a: Txn[]; b: Txn[]; c: Txn[] } = { a: [], b: [], c: [] };
      let parquet = '';
      const asked: BatchRun[] = [];
      const fromParquet = makeBatchResolver({
        name: 'parquet',
        output: Transaction,
        tags: ['source:a'],
        sql: (run) => {
          asked.push(run);
          return `SELECT id, user_id, amount, ts FROM read_parquet('${parquet}')`;
        },
      });
      const fromFunction = makeBatchResolver({
        name: 'pages',
        output: Transaction,
        tags: ['source:b'],
        rows: async function* () {
          for (let i = 0; i < current.b.length; i += 5) {
            yield current.b
              .slice(i, i + 5)
              .map((t) => ({ ...t, ts: new Date(t.ts).toISOString() }));
          }
        },
      });
      const fromColumns = makeBatchResolver({
        name: 'columns',
        output: Transaction,
        tags: ['source:c'],
        columns: () => ({
          id: Float64Array.from(current.c, (t) => t.id),
          user_id: Float64Array.from(current.c, (t) => t.user_id),
          amount: Float64Array.from(current.c, (t) => t.amount ?? Number.NaN),
          ts: Float64Array.from(current.c, (t) => t.ts),
        }),
      });

      const tessera = Tessera.open({
        path: join(dir, `store-${seed}`),
        features: [User, Transaction],
        batchResolvers: [fromParquet, fromFunction, fromColumns],
      });
      tessera.setClock(NOW);
      await sql.run(
        'CREATE OR REPLACE TABLE raw (seq INTEGER, user_id INTEGER, amount DOUBLE, ts BIGINT, backfill BOOLEAN)',
      );
      await sql.run(
        'CREATE OR REPLACE TABLE clears (seq INTEGER, layout VARCHAR, user_id INTEGER, s BIGINT, e BIGINT)',
      );
      const insertRows = async (seq: number, rows: readonly Txn[], backfill: boolean) => {
        if (rows.length === 0) return;
        const values = rows
          .map((t) => `(${seq}, ${t.user_id}, ${t.amount ?? 'NULL'}, ${t.ts}, ${backfill})`)
          .join(', ');
        await sql.run(`INSERT INTO raw VALUES ${values}`);
      };

      const check = async (step: string) => {
        const users = Array.from({ length: USERS }, (_, i) => i + 1);
        const { rows } = tessera.query({
          input: { 'user.id': users },
          output: OUTPUTS.map((o) => o.name),
          now: NOW,
        });
        for (const output of OUTPUTS) {
          const l = output.layout;
          const size = l.sizeMs;
          const first = floorTo(NOW - output.windowMs + 1, l);
          const end = floorTo(NOW, l) + size;
          // Rows layout l serves: stream rows, and a run's rows inside its range of l,
          // unless a later run cleared that key and bucket of l.
          const served = `
            SELECT r.user_id, r.amount FROM raw r
            WHERE r.ts >= ${first} AND r.ts < ${end}
              AND (NOT r.backfill OR EXISTS (
                SELECT 1 FROM clears c WHERE c.seq = r.seq AND c.layout = '${l.name}'
                  AND c.user_id = r.user_id AND ${bucketSql(l).replaceAll('ts', 'r.ts')} >= c.s
                  AND ${bucketSql(l).replaceAll('ts', 'r.ts')} < c.e))
              AND NOT EXISTS (
                SELECT 1 FROM clears c WHERE c.seq > r.seq AND c.layout = '${l.name}'
                  AND c.user_id = r.user_id AND ${bucketSql(l).replaceAll('ts', 'r.ts')} >= c.s
                  AND ${bucketSql(l).replaceAll('ts', 'r.ts')} < c.e)`;
          const reader = await sql.runAndReadAll(
            `SELECT u.id AS user_id, (SELECT ${output.aggregate} FROM (${served}) s WHERE s.user_id = u.id) AS v
             FROM range(1, ${USERS + 1}) u(id) ORDER BY u.id`,
          );
          const expected = reader.getRowObjectsJS().map((r) => {
            const v = r.v === null ? null : Number(r.v);
            return v === null || (output.aggregate.startsWith('count') && v === 0)
              ? (output.fallback ?? (output.aggregate.startsWith('count') ? 0 : null))
              : v;
          });
          const index = OUTPUTS.indexOf(output);
          const actual = rows.map((r) => r.values[index]);
          expect(actual, `${step}: ${output.name}`).toEqual(expected);
        }
      };

      let seq = 0;
      for (let step = 0; step < 16; step++) {
        seq++;
        if (random() < 0.5) {
          // Stream-like ingest: merged into whatever the buckets hold.
          const batch = Array.from({ length: 1 + below(25) }, () =>
            txn(1 + below(USERS), NOW - 6 * DAY, NOW),
          );
          tessera.ingest(
            Transaction,
            batch.map((t) => ({ ...t, ts: new Date(t.ts) })),
          );
          await insertRows(seq, batch, false);
          await check(`step ${step} (ingest of ${batch.length})`);
          continue;
        }
        // A backfill of random features, over a random or the default range.
        const names = Object.keys(READS).filter(() => random() < 0.4);
        if (names.length === 0) names.push('user.total');
        const layouts = [...new Set(names.flatMap((n) => READS[n] ?? []))];
        const defaults = random() < 0.25;
        const lower = NOW - 6 * DAY + below(4 * DAY);
        const upper = lower + 1 + below(2 * DAY);
        const ranges = layouts.map((l) =>
          defaults
            ? { l, s: floorTo(NOW - l.largestWindowMs, l), e: floorTo(NOW, l) }
            : { l, s: floorTo(lower, l), e: ceilTo(upper, l) },
        );
        const from = Math.min(...ranges.map((r) => r.s));
        const to = Math.max(...ranges.map((r) => r.e));
        const tagChoice = below(4);
        const tags = tagChoice === 0 ? [] : [`source:${'abc'[tagChoice - 1]}`];
        const keysOf = () =>
          Array.from({ length: USERS }, (_, i) => i + 1).filter(() => random() < 0.5);
        const rowsFor = (keys: number[]) =>
          keys.length === 0
            ? []
            : Array.from({ length: below(30) }, () =>
                // A few rows outside the range: the run must skip them.
                txn(keys[below(keys.length)] as number, from - 3 * HOUR, to + 3 * HOUR),
              );
        current = { a: rowsFor(keysOf()), b: rowsFor(keysOf()), c: rowsFor(keysOf()) };
        const taking = {
          a: tags.length === 0 || tags[0] === 'source:a',
          b: tags.length === 0 || tags[0] === 'source:b',
          c: tags.length === 0 || tags[0] === 'source:c',
        };
        parquet = join(dir, `a-${seed}-${step}.parquet`);
        await sql.run(
          'CREATE OR REPLACE TABLE a_rows (id BIGINT, user_id BIGINT, amount DOUBLE, ts TIMESTAMPTZ)',
        );
        if (current.a.length > 0) {
          await sql.run(
            `INSERT INTO a_rows VALUES ${current.a
              .map(
                (t) =>
                  `(${t.id}, ${t.user_id}, ${t.amount ?? 'NULL'}, to_timestamp(${t.ts / 1000}))`,
              )
              .join(', ')}`,
          );
        }
        await sql.run(`COPY a_rows TO '${parquet}' (FORMAT parquet)`);

        const report = await tessera.backfill({
          features: names,
          ...(defaults ? {} : { lowerBound: new Date(lower), upperBound: new Date(upper) }),
          tags,
          spillBuckets: 1 + below(6),
        });
        const runRows = [
          ...(taking.a ? current.a : []),
          ...(taking.b ? current.b : []),
          ...(taking.c ? current.c : []),
        ].filter((t) => t.ts >= from && t.ts < to);
        // The widened ranges are the engine's, and equal the documented ones.
        expect(
          report.layouts.map((l) => [l.bucketSizeMs, l.fromMs, l.toMs]).sort(),
          `step ${step}: ranges`,
        ).toEqual(ranges.map((r) => [r.l.sizeMs, r.s, r.e]).sort());
        expect(report.lowerBound).toBe(new Date(from).toISOString());
        expect(report.rows).toBe(
          (taking.a ? current.a.filter((t) => t.ts >= from && t.ts < to).length : 0) +
            (taking.b ? current.b.length : 0) +
            (taking.c ? current.c.length : 0),
        );
        if (taking.a) expect(asked.at(-1)?.lowerBoundMs).toBe(from);
        await insertRows(seq, runRows, true);
        const keys = [...new Set(runRows.map((t) => t.user_id))];
        for (const r of ranges) {
          for (const k of keys) {
            await sql.run(
              `INSERT INTO clears VALUES (${seq}, '${r.l.name}', ${k}, ${r.s}, ${r.e})`,
            );
          }
        }
        await check(
          `step ${step} (backfill of ${names.join(', ')} ${defaults ? 'default range' : `${new Date(lower).toISOString()}..${new Date(upper).toISOString()}`}, tags ${tags.join(',') || 'none'}, ${runRows.length} rows)`,
        );
      }
      tessera.close();
    });
  }
});
