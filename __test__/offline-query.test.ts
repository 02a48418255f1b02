/**
 * Point-in-time queries (docs/semantics.md section 11), in each mode: the exact recompute
 * from raw rows, the recompute aligned to bucket edges, and the materialized read of the
 * store. Random histories (nulls, two bucket sizes, a non-epoch origin) and random points
 * (on bucket edges, before any data, mid-bucket): every value equals DuckDB computing
 * that mode's documented rule from the raw rows. No leakage: events after each point's
 * time change no answer, in every mode. A window reaching buckets retention removed is an
 * error naming it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { offlineChunking } from '../ts/api/offline.js';
import { seededRandom } from '../ts/cli/seeded-random.js';
import {
  features,
  hasMany,
  InvalidQueryError,
  int,
  makeBatchResolver,
  type OfflinePlannerOptions,
  Tessera,
  windowed,
  writeTrainingSet,
} from '../ts/index.js';
import { Transaction } from './fixtures/transactions.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const START = Date.UTC(2026, 6, 1);
/** The origin of the `visits` buckets: days start at 06:00. */
const ORIGIN = Date.UTC(2026, 0, 1, 6);
const USERS = 30;

const User = features(
  'user',
  { id: int().primary(), transactions: hasMany(() => Transaction) },
  (user) => ({
    spend: windowed('1d', '10d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).sum(),
    }),
    visits: windowed('7d', {
      materialization: { bucketDuration: '1d', bucketStart: new Date(ORIGIN) },
      expression: user.transactions.select((t) => t.amount).count(),
    }),
    largest: windowed('3d', {
      materialization: { bucketDuration: '1d' },
      expression: user.transactions.select((t) => t.amount).max(),
    }),
  }),
);

/** Each output with its bucket size, origin, window and SQL aggregate. */
const OUTPUTS = [
  { ref: User.spend['1d'], size: HOUR, origin: 0, window: DAY, sql: 'sum(r.amount)' },
  { ref: User.spend['10d'], size: HOUR, origin: 0, window: 10 * DAY, sql: 'sum(r.amount)' },
  { ref: User.visits['7d'], size: DAY, origin: ORIGIN, window: 7 * DAY, sql: 'count(r.amount)' },
  { ref: User.largest['3d'], size: DAY, origin: 0, window: 3 * DAY, sql: 'max(r.amount)' },
] as const;

type Txn = { id: number; user_id: number; amount: number | null; ts: number };

const dir = mkdtempSync(join(tmpdir(), 'tessera-offline-'));
let db: DuckDBInstance;
let sql: DuckDBConnection;
beforeAll(async () => {
  db = await DuckDBInstance.create(':memory:');
  sql = await db.connect();
});
afterAll(() => {
  sql.closeSync();
  db.closeSync();
  rmSync(dir, { recursive: true, force: true });
});

function history(seed: number, rows: number): Txn[] {
  const random = seededRandom(seed);
  return Array.from({ length: rows }, (_, i) => ({
    id: i + 1,
    user_id: 1 + Math.floor(random() * USERS),
    amount: random() < 0.08 ? null : Math.round(random() * 40_000) / 100,
    ts: START + Math.floor(random() * 12 * DAY),
  }));
}

type Mode = 'exact' | 'aligned' | 'materialized';

const MODES: readonly [Mode, OfflinePlannerOptions][] = [
  ['exact', {}],
  ['aligned', { alignOfflineChalkWindowWithMaterialization: true }],
  ['materialized', { useMaterializedOfflineQuery: true }],
];

/** A batch resolver over `txns` (the raw rows of the recompute modes). */
function resolverOf(txns: readonly Txn[]) {
  return makeBatchResolver({
    name: 'history',
    output: Transaction,
    rows: (run) => [txns.filter((r) => r.ts >= run.lowerBoundMs && r.ts < run.upperBoundMs)],
  });
}

/**
 * DuckDB's answer per point for one output in one mode: exact, the rows of (t - W, t];
 * aligned, from the bucket edge at or before t - W + 1 to t; materialized, the rows of
 * [lo, e), e the edge at or before t and lo the edge at or before e - W.
 */
async function expected(
  txns: readonly Txn[],
  points: readonly { user: number; t: number }[],
  output: (typeof OUTPUTS)[number],
  mode: Mode,
): Promise<(number | null)[]> {
  await sql.run('CREATE OR REPLACE TABLE txn (user_id BIGINT, amount DOUBLE, ts BIGINT)');
  const appender = await sql.createAppender('txn');
  for (const r of txns) {
    appender.appendBigInt(BigInt(r.user_id));
    if (r.amount === null) appender.appendNull();
    else appender.appendDouble(r.amount);
    appender.appendBigInt(BigInt(r.ts));
    appender.endRow();
  }
  appender.closeSync();
  await sql.run('CREATE OR REPLACE TABLE points (i BIGINT, user_id BIGINT, t BIGINT)');
  const pointRows = points.map((p, i) => `(${i}, ${p.user}, ${p.t})`).join(', ');
  await sql.run(`INSERT INTO points VALUES ${pointRows}`);
  const { size, origin, window } = output;
  const edgeOf = (t: string) =>
    `(${origin} + CAST(floor((${t} - ${origin}) / ${size}) AS BIGINT) * ${size})`;
  const range =
    mode === 'exact'
      ? `r.ts > p.t - ${window} AND r.ts <= p.t`
      : mode === 'aligned'
        ? `r.ts >= ${edgeOf(`p.t - ${window} + 1`)} AND r.ts <= p.t`
        : `r.ts >= ${edgeOf(`${edgeOf('p.t')} - ${window}`)} AND r.ts < ${edgeOf('p.t')}`;
  const reader = await sql.runAndReadAll(`
    SELECT p.i, ${output.sql} AS v FROM points p
    LEFT JOIN txn r ON r.user_id = p.user_id AND ${range}
    GROUP BY p.i ORDER BY p.i`);
  return reader.getRowObjectsJS().map((r) => (r.v === null ? null : Number(r.v)));
}

describe('point-in-time queries', () => {
  it('equals DuckDB applying the documented rule, for random points', async () => {
    const random = seededRandom(42);
    const txns = history(7, 4000);
    const tessera = Tessera.open({
      path: join(dir, 'diff'),
      features: [User, Transaction],
      batchResolvers: [resolverOf(txns)],
    });
    try {
      tessera.ingest(Transaction, txns);
      // Retention is judged by the engine clock (a rule keeps its largest window and one
      // bucket more): each round sets the clock within the hour after its points, on
      // hours after a day edge of either origin, before the data, or anywhere.
      let nonEmpty = 0;
      for (let round = 0; round < 9; round++) {
        const anywhere = START - DAY + Math.floor(random() * 15 * DAY);
        const origin = round % 3 === 1 ? ORIGIN : 0;
        const dayEdge = origin + Math.floor((anywhere - origin) / DAY) * DAY;
        const base = round === 0 ? START - 3 * HOUR : round % 3 === 2 ? anywhere : dayEdge;
        const hourEdge = Math.floor(base / HOUR) * HOUR;
        const clock = hourEdge + Math.floor(random() * 50 * 60_000);
        tessera.setClock(clock);
        const points = Array.from({ length: 40 }, (_, i) => ({
          user: 1 + Math.floor(random() * USERS),
          // Some points on the hour edge (a day edge in two rounds of three).
          t: i % 4 === 0 ? hourEdge : hourEdge + Math.floor(random() * (clock - hourEdge + 1)),
        }));
        for (const [mode, plannerOptions] of MODES) {
          const result = await tessera.offlineQuery({
            input: { 'user.id': points.map((p) => p.user) },
            inputTimes: points.map((p) => p.t),
            output: OUTPUTS.map((o) => o.ref),
            plannerOptions,
          });
          expect(result.rows.map((r) => r.time.getTime())).toEqual(points.map((p) => p.t));
          for (const [j, output] of OUTPUTS.entries()) {
            const want = await expected(txns, points, output, mode);
            const got = result.rows.map((r) => r.values[j] as number | null);
            nonEmpty += got.filter((v) => v !== null && v !== 0).length;
            for (const [i, value] of got.entries()) {
              const where = `round ${round}, ${mode}, ${output.ref.canonical}, user ${points[i]?.user} at ${new Date(points[i]?.t ?? 0).toISOString()}`;
              if (value === null || want[i] === null) expect(value, where).toBe(want[i]);
              else expect(value, where).toBeCloseTo(want[i] as number, 6);
            }
          }
        }
      }
      // The rounds compare values, not only empty windows.
      expect(nonEmpty).toBeGreaterThan(1500);
    } finally {
      tessera.close();
    }
  });

  it('never reads an event after a point: adding later events changes no answer', async () => {
    const random = seededRandom(5);
    const txns = history(11, 2500);
    const clock = START + 10 * DAY + 50 * 60_000;
    // One point per user, so an event added after one point is on no other point's key;
    // within the hour before the clock, so that every window is inside retention.
    const points = Array.from({ length: USERS }, (_, i) => ({
      user: i + 1,
      t: clock - Math.floor(random() * 50 * 60_000),
    }));
    const later: Txn[] = points.flatMap((p, i) => [
      // Just after t (inside the bucket holding t), and days after it.
      { id: 100_000 + 2 * i, user_id: p.user, amount: 1000, ts: p.t + 1 },
      { id: 100_001 + 2 * i, user_id: p.user, amount: 2000, ts: p.t + 2 * DAY },
    ]);
    const ask = async (tessera: Tessera, at: (p: { t: number }) => number) =>
      (
        await tessera.offlineQuery({
          input: { 'user.id': points.map((p) => p.user) },
          inputTimes: points.map(at),
          output: OUTPUTS.map((o) => o.ref),
          plannerOptions: { useMaterializedOfflineQuery: true },
        })
      ).rows.map((r) => r.values);
    const before = Tessera.open({
      path: join(dir, 'before'),
      features: [User, Transaction],
      clock,
    });
    const after = Tessera.open({ path: join(dir, 'after'), features: [User, Transaction], clock });
    try {
      before.ingest(Transaction, txns);
      after.ingest(Transaction, [...txns, ...later]);
      expect(await ask(after, (p) => p.t)).toEqual(await ask(before, (p) => p.t));
      // The later events are there to be found: asked three days on, every mode's
      // answers differ.
      after.setClock(clock + 3 * DAY);
      before.setClock(clock + 3 * DAY);
      const laterAfter = await ask(after, (p) => p.t + 3 * DAY);
      const laterBefore = await ask(before, (p) => p.t + 3 * DAY);
      for (const [m] of MODES.entries()) expect(laterAfter[m]).not.toEqual(laterBefore[m]);
    } finally {
      before.close();
      after.close();
    }
  });

  it('writes a training set to Parquet that DuckDB reads back value by value', async () => {
    const random = seededRandom(9);
    const txns = history(13, 3000);
    const tessera = Tessera.open({
      path: join(dir, 'training'),
      features: [User, Transaction],
      batchResolvers: [resolverOf(txns)],
    });
    try {
      const n = 20_000;
      const users = Array.from({ length: n }, () => 1 + Math.floor(random() * USERS));
      const times = Array.from({ length: n }, () => START + Math.floor(random() * 13 * DAY));
      const result = await tessera.offlineQuery({
        input: { 'user.id': users },
        inputTimes: times,
        output: OUTPUTS.map((o) => o.ref),
      });
      const file = join(dir, 'training.parquet');
      expect(await writeTrainingSet(result, file)).toBe(n);
      // DuckDB keeps the file's row order (preserve_insertion_order).
      const reader = await sql.runAndReadAll(`SELECT * FROM read_parquet('${file}')`);
      expect(reader.columnNames()).toEqual([
        'user.id',
        'time',
        ...OUTPUTS.map((o) => o.ref.canonical),
      ]);
      const back = reader.getRowObjectsJS();
      expect(back).toHaveLength(n);
      let compared = 0;
      for (const [i, row] of back.entries()) {
        expect(Number(row['user.id'])).toBe(users[i]);
        expect((row.time as Date).getTime()).toBe(times[i]);
        for (const [j, output] of OUTPUTS.entries()) {
          const written = row[output.ref.canonical];
          const value = result.rows[i]?.values[j];
          expect(
            written === null ? null : Number(written),
            `row ${i} ${output.ref.canonical}`,
          ).toBe(value);
          compared++;
        }
      }
      expect(compared).toBe(n * OUTPUTS.length);
    } finally {
      tessera.close();
    }
  });

  it('answers the same when the points go to the engine in chunks', async () => {
    const random = seededRandom(17);
    const txns = history(19, 2000);
    const clock = START + 11 * DAY + 20 * 60_000;
    const tessera = Tessera.open({
      path: join(dir, 'chunks'),
      features: [User, Transaction],
      batchResolvers: [resolverOf(txns)],
      clock,
    });
    const chunkPoints = offlineChunking.points;
    try {
      tessera.ingest(Transaction, txns);
      // The same key often, so that chunks split a key's points; times within the hour
      // before the clock, so that every window is inside retention.
      const points = Array.from({ length: 101 }, () => ({
        user: 1 + Math.floor(random() * 6),
        t: clock - Math.floor(random() * 50 * 60_000),
      }));
      for (const [mode, plannerOptions] of MODES) {
        const ask = (t: (p: { t: number }) => number = (p) => p.t) =>
          tessera.offlineQuery({
            input: { 'user.id': points.map((p) => p.user) },
            inputTimes: points.map(t),
            output: OUTPUTS.map((o) => o.ref),
            plannerOptions,
            ...(mode === 'materialized' ? { explain: true } : {}),
          });
        offlineChunking.points = chunkPoints;
        const whole = await ask();
        offlineChunking.points = 7;
        const chunked = await ask();
        expect(chunked.rows, mode).toEqual(whole.rows);
        expect(
          whole.rows.filter((r) => r.values.some((v) => v !== null && v !== 0)).length,
        ).toBeGreaterThan(50);
        if (mode === 'materialized') {
          expect(chunked.rows[60]?.explanations?.[0]?.bucketsMerged).toBeGreaterThan(0);
          // A stale window in a later chunk is named by its own input row.
          const far = (p: { t: number }, i: number) => (i === 52 ? START - 30 * DAY : p.t);
          await expect(
            tessera.offlineQuery({
              input: { 'user.id': points.map((p) => p.user) },
              inputTimes: points.map(far),
              output: [User.visits['7d']],
              plannerOptions,
            }),
          ).rejects.toThrow(
            /\(input row 52\) reads buckets from .*; 1 value of this query reaches removed buckets/,
          );
        }
      }
    } finally {
      offlineChunking.points = chunkPoints;
      tessera.close();
    }
  });

  it('refuses a window that reaches buckets retention removed, naming it', async () => {
    const tessera = Tessera.open({
      path: join(dir, 'stale'),
      features: [User, Transaction],
      clock: START + 30 * DAY,
    });
    try {
      tessera.ingest(Transaction, history(3, 100));
      const ask = (t: number) =>
        tessera.offlineQuery({
          input: [{ id: 4 }, { id: 5 }],
          inputTimes: [START + 29 * DAY + 12 * HOUR, t],
          output: [User.visits['7d']],
          plannerOptions: { useMaterializedOfflineQuery: true },
        });
      // 7d of 06:00-origin days, kept for 7d + 1d: at day 30 00:00 the store keeps the
      // buckets that end after day 22 00:00, from day 21 06:00 on.
      await expect(ask(START + 10 * DAY)).rejects.toThrow(
        new InvalidQueryError(
          'offline query: user.visits__604800__ at 2026-07-11T00:00:00.000Z (input row 1) reads buckets from 2026-07-03T06:00:00.000Z, which retention removed (the store keeps buckets from 2026-07-22T06:00:00.000Z); 1 value of this query reaches removed buckets',
        ),
      );
      const inside = await ask(START + 29 * DAY);
      expect(inside.rows).toHaveLength(2);
    } finally {
      tessera.close();
    }
  });

  it('refuses the modes this version does not serve and mismatched times, naming them', async () => {
    const tessera = Tessera.open({ path: join(dir, 'modes'), features: [User, Transaction] });
    try {
      const base = {
        input: { 'user.id': [1, 2] },
        inputTimes: [START, START],
        output: [User.spend['1d']],
      };
      await expect(tessera.offlineQuery(base)).rejects.toThrow(
        'offlineQuery: recomputing from raw rows reads transaction, and no batch resolver of transaction was given to Tessera.open (or use plannerOptions.useMaterializedOfflineQuery)',
      );
      await expect(tessera.offlineQuery({ ...base, explain: true })).rejects.toThrow(
        /explain describes merged buckets/,
      );
      await expect(
        tessera.offlineQuery({
          ...base,
          plannerOptions: { useTileStore: true },
        }),
      ).rejects.toThrow(
        'offlineQuery: plannerOptions.useTileStore reads the materialized windows from offline tiles; give useMaterializedOfflineQuery: true with it',
      );
      await expect(
        tessera.offlineQuery({
          ...base,
          inputTimes: [START],
          plannerOptions: { useMaterializedOfflineQuery: true },
        }),
      ).rejects.toThrow(
        'offlineQuery: inputTimes has 1 times for 2 input keys; give one time per key',
      );
      await expect(
        tessera.offlineQuery({
          ...base,
          inputTimes: [START, 'yesterday'],
          plannerOptions: { useMaterializedOfflineQuery: true },
        }),
      ).rejects.toThrow(/offlineQuery: inputTimes\[1\]/);
    } finally {
      tessera.close();
    }
  });
});
