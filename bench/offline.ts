/**
 * Offline (point-in-time) scenarios, docs/semantics.md section 11, on one generated
 * history: 100K keys, 31 days of events in a Parquet file, backfilled into daily buckets
 * (sum, count, mean; every feature declares 1d, 7d and 30d windows, so each rule keeps
 * 30d + 1 bucket); points at random keys and random times within the 24 days before the
 * engine clock, so that the 7d windows read stay within retention.
 *
 * - materialized point reads (`useMaterializedOfflineQuery`) of 1M points through
 *   `Tessera.offlineQuery`, against DuckDB answering the same points from the same daily
 *   buckets (a `GROUP BY key, day` table of the same rows with per-key running sums,
 *   built before the clock starts) with ASOF joins at the bucket edges: the same answers,
 *   checked on a sample;
 * - the exact recompute from raw rows (the default mode, rows read through a SQL batch
 *   resolver over the Parquet file on every call) against DuckDB's range join over the
 *   same rows loaded in a table, `(t - W, t]`: the same answers, checked on a sample;
 * - a training set of 1M points written to Parquet with `writeTrainingSet`, read back by
 *   DuckDB and compared value by value with the in-memory result, in a process of its own
 *   (`offline-child.ts`) so that the peak RSS of the 1M-point call is its own.
 * DuckDB runs on one thread (the bars are per core; Tessera's read runs on one thread);
 * its time on two threads is in the notes.
 */
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIGINT, type DuckDBConnection, DuckDBDataChunk, DuckDBInstance } from '@duckdb/node-api';
import {
  datetime,
  features,
  float,
  hasMany,
  int,
  makeBatchResolver,
  type OfflineQueryResult,
  type OutputRef,
  Tessera,
  windowed,
} from '../ts/index.js';
import {
  type BenchContext,
  median,
  perSecond,
  type ScenarioResult,
  seededRandom,
  withTempDir,
} from './harness.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** The engine clock: the end of the generated history (mid-bucket). */
export const OFFLINE_NOW = Date.UTC(2026, 5, 1) + 7 * HOUR + 123;
const HISTORY_DAYS = 31;
/** Points fall within this many days before the clock (7d windows stay within 31d). */
const POINT_DAYS = 24;

export const Transaction = features('transaction', {
  id: int().primary(),
  user_id: int().references('user.id'),
  amount: float(),
  ts: datetime().featureTime(),
});

export const User = features(
  'user',
  { id: int().primary(), transactions: hasMany(() => Transaction) },
  (user) => ({
    total: windowed('1d', '7d', '30d', {
      materialization: { bucketDuration: '1d' },
      expression: user.transactions.select((t) => t.amount).sum(),
    }),
    purchases: windowed('1d', '7d', '30d', {
      materialization: { bucketDuration: '1d' },
      expression: user.transactions.select((t) => t.amount).count(),
    }),
    average: windowed('1d', '7d', '30d', {
      materialization: { bucketDuration: '1d' },
      expression: user.transactions.select((t) => t.amount).mean(),
    }),
  }),
);

/** The outputs every scenario asks for, in this order. */
export const OUTPUTS = [
  'user.total__7d__',
  'user.purchases__7d__',
  'user.average__7d__',
  'user.total__1d__',
] as const satisfies readonly OutputRef[];

/** The sizes of a run. */
export function offlineSizes(quick: boolean): { keys: number; events: number; points: number } {
  return quick
    ? { keys: 10_000, events: 500_000, points: 100_000 }
    : { keys: 100_000, events: 5_000_000, points: 1_000_000 };
}

/** `n` points: random keys in 1..keys and random times within POINT_DAYS before the clock. */
export function offlinePoints(
  n: number,
  keys: number,
  seed: number,
): { users: Float64Array; times: Float64Array } {
  const random = seededRandom(seed);
  const users = new Float64Array(n);
  const times = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    users[i] = 1 + Math.floor(random() * keys);
    times[i] = OFFLINE_NOW - Math.floor(random() * POINT_DAYS * DAY);
  }
  return { users, times };
}

/** The SQL batch resolver over the history file. */
export function historyResolver(file: string) {
  return makeBatchResolver({
    name: 'history_parquet',
    output: Transaction,
    sql: `SELECT id, user_id, amount, ts FROM read_parquet('${file}')`,
  });
}

/** Writes `events` events over `keys` keys and the 31 days before the clock to Parquet. */
async function writeHistory(file: string, events: number, keys: number): Promise<void> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const start = OFFLINE_NOW - HISTORY_DAYS * DAY;
  const stepMs = (HISTORY_DAYS * DAY) / events;
  await connection.run(`
    COPY (
      SELECT i AS id,
             CAST(hash(i) % ${keys} AS BIGINT) + 1 AS user_id,
             CAST(hash(i * 13 + 2) % 1000000 AS DOUBLE) / 100 AS amount,
             make_timestamp(CAST((${start} + floor(i * ${stepMs})) * 1000 AS BIGINT)) AS ts
      FROM range(${events}) t(i)
    ) TO '${file}' (FORMAT parquet, ROW_GROUP_SIZE 122880)`);
  connection.closeSync();
  instance.closeSync();
}

/** A DuckDB peer on `threads` threads holding the raw rows, the daily buckets and the points. */
async function duckPeer(
  file: string,
  threads: number,
): Promise<{ connection: DuckDBConnection; close(): void; setupMs: number }> {
  const instance = await DuckDBInstance.create(':memory:', { threads: String(threads) });
  const connection = await instance.connect();
  const started = performance.now();
  await connection.run(
    `CREATE TABLE raw AS SELECT user_id, epoch_ms(ts) AS ts, amount FROM read_parquet('${file}') ORDER BY user_id, ts`,
  );
  // The same daily buckets the store holds, with per-key running sums: what the ASOF
  // joins read. Built once, as the store's buckets are built once by the backfill.
  await connection.run(`
    CREATE TABLE cum AS
    SELECT user_id, day,
           sum(s) OVER w AS cs,
           sum(c) OVER w AS cc
    FROM (SELECT user_id, ts - ts % ${DAY} AS day, sum(amount) AS s, count(amount) AS c
          FROM raw GROUP BY ALL)
    WINDOW w AS (PARTITION BY user_id ORDER BY day ROWS UNBOUNDED PRECEDING)`);
  return {
    connection,
    setupMs: performance.now() - started,
    close: () => {
      connection.closeSync();
      instance.closeSync();
    },
  };
}

/** Loads points into DuckDB table `name` (i, user_id, t). */
async function loadPoints(
  connection: DuckDBConnection,
  name: string,
  points: { users: Float64Array; times: Float64Array },
): Promise<void> {
  await connection.run(`CREATE OR REPLACE TABLE ${name} (i BIGINT, user_id BIGINT, t BIGINT)`);
  const appender = await connection.createAppender(name);
  const n = points.users.length;
  for (let offset = 0; offset < n; offset += 2_048) {
    const end = Math.min(n, offset + 2_048);
    const chunk = DuckDBDataChunk.create([BIGINT, BIGINT, BIGINT], end - offset);
    chunk.setColumns([
      Array.from({ length: end - offset }, (_, i) => BigInt(offset + i)),
      Array.from(points.users.subarray(offset, end), BigInt),
      Array.from(points.times.subarray(offset, end), BigInt),
    ]);
    appender.appendDataChunk(chunk);
  }
  appender.closeSync();
}

/**
 * DuckDB's materialized answer for every point, into a table: `e` the day edge at or
 * before `t`, the window's buckets those with `e - W <= day < e`, as running sums at
 * the last bucket before `e` less those at the last bucket before `e - W`. Returns ms.
 */
async function duckAsof(connection: DuckDBConnection): Promise<number> {
  const started = performance.now();
  await connection.run(`
    CREATE OR REPLACE TABLE asof_answer AS
    WITH q AS (SELECT i, user_id, t - t % ${DAY} AS e FROM points),
    j AS (
      SELECT q.i,
             coalesce(a.cs, 0) - coalesce(w.cs, 0) AS s7, coalesce(a.cc, 0) - coalesce(w.cc, 0) AS c7,
             coalesce(a.cs, 0) - coalesce(d.cs, 0) AS s1, coalesce(a.cc, 0) - coalesce(d.cc, 0) AS c1
      FROM q
      ASOF LEFT JOIN cum a ON q.user_id = a.user_id AND q.e > a.day
      ASOF LEFT JOIN cum w ON q.user_id = w.user_id AND q.e - ${7 * DAY} > w.day
      ASOF LEFT JOIN cum d ON q.user_id = d.user_id AND q.e - ${DAY} > d.day)
    SELECT i,
           CASE WHEN c7 = 0 THEN NULL ELSE s7 END AS total7,
           c7 AS purchases7,
           CASE WHEN c7 = 0 THEN NULL ELSE s7 / c7 END AS average7,
           CASE WHEN c1 = 0 THEN NULL ELSE s1 END AS total1
    FROM j`);
  return performance.now() - started;
}

/** DuckDB's exact answer for every point of `rpoints`: the rows of `(t - W, t]`. Returns ms. */
async function duckRange(connection: DuckDBConnection): Promise<number> {
  const started = performance.now();
  await connection.run(`
    CREATE OR REPLACE TABLE range_answer AS
    SELECT p.i,
           sum(r.amount) AS total7,
           count(r.amount) AS purchases7,
           avg(r.amount) AS average7,
           sum(r.amount) FILTER (WHERE r.ts > p.t - ${DAY}) AS total1
    FROM rpoints p
    LEFT JOIN raw r ON r.user_id = p.user_id AND r.ts > p.t - ${7 * DAY} AND r.ts <= p.t
    GROUP BY p.i`);
  return performance.now() - started;
}

/**
 * Throws unless every `stride`-th point of `result` equals DuckDB's row in `table` (by
 * point index): counts exactly, sums and means within 1e-9 relative (DuckDB adds in
 * another order), no data as null on both sides. Returns the values compared.
 */
async function checkSample(
  connection: DuckDBConnection,
  table: string,
  result: OfflineQueryResult<typeof OUTPUTS>,
  stride: number,
): Promise<number> {
  const reader = await connection.runAndReadAll(
    `SELECT i, total7, purchases7, average7, total1 FROM ${table} WHERE i % ${stride} = 0 ORDER BY i`,
  );
  let compared = 0;
  for (const row of reader.getRowsJS()) {
    const i = Number(row[0]);
    const got = result.rows[i]?.values;
    if (got === undefined) throw new Error(`offline bench: no row ${i} in Tessera's answer`);
    for (let j = 0; j < OUTPUTS.length; j++) {
      const want = row[j + 1] === null ? null : Number(row[j + 1]);
      const value = got[j] as number | null;
      const equal =
        want === null || value === null
          ? want === value
          : Math.abs(value - want) <= 1e-9 * Math.max(1, Math.abs(want));
      if (!equal) {
        throw new Error(
          `offline bench: ${table} disagrees with Tessera at point ${i}, ${OUTPUTS[j]}: DuckDB ${want}, Tessera ${value}`,
        );
      }
      compared++;
    }
  }
  if (compared === 0) throw new Error(`offline bench: nothing compared in ${table}`);
  return compared;
}

/** The training-set child's report. */
export interface TrainingSetReport {
  points: number;
  queryMs: number;
  rssBeforeMb: number;
  maxRssMb: number;
  writeMs: number;
  fileMb: number;
  valuesCompared: number;
}

function trainingSetChild(dir: string, file: string, quick: boolean): TrainingSetReport {
  const child = spawnSync(
    process.execPath,
    [
      fileURLToPath(new URL('./offline-child.js', import.meta.url)),
      dir,
      file,
      quick ? 'quick' : 'full',
    ],
    { encoding: 'utf8', maxBuffer: 1 << 20 },
  );
  if (child.status !== 0) throw new Error(`offline training-set child failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').at(-1) ?? '{}');
}

export async function offlineScenarios(context: BenchContext): Promise<ScenarioResult[]> {
  const { keys, events, points: n } = offlineSizes(context.quick);
  return withTempDir(async (dir) => {
    const file = join(dir, 'history.parquet');
    await writeHistory(file, events, keys);
    const storeDir = join(dir, 'store');
    const tessera = Tessera.open({
      path: storeDir,
      features: [User, Transaction],
      batchResolvers: [historyResolver(file)],
    });
    tessera.setClock(OFFLINE_NOW);
    const results: ScenarioResult[] = [];
    const load = loadavg()[0] ?? 0;
    try {
      const backfill = await tessera.backfill({
        features: ['user.total', 'user.purchases', 'user.average'],
        lowerBound: new Date(OFFLINE_NOW - HISTORY_DAYS * DAY),
        upperBound: new Date(OFFLINE_NOW),
      });
      tessera.engine.compact();
      const points = offlinePoints(n, keys, 21);
      const materialized = { useMaterializedOfflineQuery: true } as const;
      const ask = () =>
        tessera.offlineQuery({
          input: { 'user.id': points.users },
          inputTimes: points.times,
          output: OUTPUTS,
          plannerOptions: materialized,
        });
      // Warm the block cache once, as for every path measured. Only one answer is alive
      // at a time, as in a user's process.
      let answer: OfflineQueryResult<typeof OUTPUTS> | undefined = await ask();
      const reads = answer.outputs.map((o) => ({
        seriesId: o.series,
        rule: o.rule,
        windowMs: o.windowMs,
      }));
      const duck = await duckPeer(file, 1);
      const duck2 = await duckPeer(file, 2);
      try {
        await loadPoints(duck.connection, 'points', points);
        await loadPoints(duck2.connection, 'points', points);
        const tesseraMs: number[] = [];
        const nativeMs: number[] = [];
        const asofMs: number[] = [];
        const asof2Ms: number[] = [];
        for (let r = 0; r < context.repetitions; r++) {
          answer = undefined;
          let started = performance.now();
          answer = await ask();
          tesseraMs.push(performance.now() - started);
          started = performance.now();
          await tessera.engine.queryPointsAsync({
            keys: [{ ints: points.users }],
            timesMs: points.times,
            reads,
          });
          nativeMs.push(performance.now() - started);
          asofMs.push(await duckAsof(duck.connection));
          asof2Ms.push(await duckAsof(duck2.connection));
        }
        if (answer === undefined) throw new Error('offline bench: no answer');
        const sampled = await checkSample(duck.connection, 'asof_answer', answer, 97);
        answer = undefined;
        const t = perSecond(n, median(tesseraMs));
        const asof = perSecond(n, median(asofMs));
        const native = perSecond(n, median(nativeMs));
        results.push({
          name: 'offline.materialized.random_points',
          unit: 'points/s',
          tessera: t,
          peers: { duckdb_asof: asof, duckdb_asof_2_threads: perSecond(n, median(asof2Ms)) },
          ratios: { vs_duckdb_asof: t / asof, native_vs_duckdb_asof: native / asof },
          notes: {
            points: n,
            keys,
            outputs: OUTPUTS.length,
            buckets_per_key: HISTORY_DAYS,
            bucket_records: backfill.native.bucketsWritten,
            tessera_ms: round(median(tesseraMs)),
            native_points_per_s: round(native),
            native_ms: round(median(nativeMs)),
            duckdb_asof_ms: round(median(asofMs)),
            duckdb_setup_ms: round(duck.setupMs),
            duckdb_reads: 'daily buckets with per-key running sums (built before timing)',
            values_checked_equal: sampled,
            load_average_1m: load,
            bar: 1_000_000,
            bar_vs_duckdb: 3,
            meets_bar: t >= 1_000_000 && t / asof >= 3,
          },
        });

        // The exact recompute from raw rows, on fewer points (the peer joins every row).
        const rn = Math.round(n / 5);
        const rawPoints = offlinePoints(rn, keys, 22);
        await loadPoints(duck.connection, 'rpoints', rawPoints);
        await loadPoints(duck2.connection, 'rpoints', rawPoints);
        const exact = () =>
          tessera.offlineQuery({
            input: { 'user.id': rawPoints.users },
            inputTimes: rawPoints.times,
            output: OUTPUTS,
          });
        let exactAnswer: OfflineQueryResult<typeof OUTPUTS> | undefined = await exact();
        const exactMs: number[] = [];
        const rangeMs: number[] = [];
        const range2Ms: number[] = [];
        for (let r = 0; r < context.repetitions; r++) {
          exactAnswer = undefined;
          const started = performance.now();
          exactAnswer = await exact();
          exactMs.push(performance.now() - started);
          rangeMs.push(await duckRange(duck.connection));
          range2Ms.push(await duckRange(duck2.connection));
        }
        if (exactAnswer === undefined) throw new Error('offline bench: no exact answer');
        const exactSampled = await checkSample(duck.connection, 'range_answer', exactAnswer, 19);
        const te = perSecond(rn, median(exactMs));
        const range = perSecond(rn, median(rangeMs));
        results.push({
          name: 'offline.recompute_exact.random_points',
          unit: 'points/s',
          tessera: te,
          peers: {
            duckdb_range_join: range,
            duckdb_range_join_2_threads: perSecond(rn, median(range2Ms)),
          },
          ratios: { vs_duckdb_range_join: te / range },
          notes: {
            points: rn,
            keys,
            raw_rows: events,
            tessera_ms: round(median(exactMs)),
            duckdb_range_join_ms: round(median(rangeMs)),
            tessera_reads: 'the Parquet file through a SQL batch resolver, every call',
            duckdb_reads: 'the same rows, loaded in a table sorted by key and time',
            values_checked_equal: exactSampled,
            load_average_1m: load,
          },
        });
      } finally {
        duck.close();
        duck2.close();
      }
    } finally {
      tessera.close();
    }

    // The training set, in a process of its own over the same store.
    const training = trainingSetChild(storeDir, join(dir, 'training.parquet'), context.quick);
    results.push({
      name: 'offline.training_set.parquet',
      unit: 'rows/s',
      tessera: perSecond(training.points, training.writeMs),
      peers: {},
      ratios: {},
      notes: {
        points: training.points,
        file_mb: round(training.fileMb),
        values_compared: training.valuesCompared,
        query_ms: round(training.queryMs),
        write_ms: round(training.writeMs),
      },
    });
    results.push({
      name: 'offline.materialized.peak_rss',
      unit: 'MB',
      tessera: round(training.maxRssMb),
      peers: { before_the_call: round(training.rssBeforeMb) },
      ratios: { peak_over_before: training.maxRssMb / training.rssBeforeMb },
      notes: { points: training.points, outputs: OUTPUTS.length },
    });
    return results;
  });
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
