/**
 * Backfill scenarios: rows of a Parquet file (100K keys over 7 days) backfilled end to
 * end through a SQL batch resolver into hourly buckets of sum/count/mean/min/max, and
 * into hourly CPC sketches (approx_count_distinct), against DuckDB aggregating the same
 * file with `GROUP BY key, hour`. Peak memory: the same backfill of 10M and of 40M rows,
 * each in a child process of its own (`backfill-child.ts`), compared by peak RSS.
 */
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import {
  datetime,
  features,
  float,
  hasMany,
  int,
  makeBatchResolver,
  Tessera,
  windowed,
} from '../ts/index.js';
import {
  type BenchContext,
  median,
  perSecond,
  type ScenarioResult,
  withTempDir,
} from './harness.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
export const BACKFILL_START = Date.UTC(2026, 0, 1);
export const BACKFILL_DAYS = 7;
const KEYS = 100_000;

/** Writes `rows` rows (id, user_id, merchant, amount, ts) over 7 days to a Parquet file. */
export async function writeBackfillFile(file: string, rows: number): Promise<void> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const stepMs = (BACKFILL_DAYS * DAY) / rows;
  await connection.run(`
    COPY (
      SELECT i AS id,
             CAST(hash(i) % ${KEYS} AS BIGINT) AS user_id,
             CAST(hash(i * 7 + 1) % 5000 AS BIGINT) AS merchant,
             CAST(hash(i * 13 + 2) % 1000000 AS DOUBLE) / 100 AS amount,
             make_timestamp(CAST((${BACKFILL_START} + floor(i * ${stepMs})) * 1000 AS BIGINT)) AS ts
      FROM range(${rows}) t(i)
    ) TO '${file}' (FORMAT parquet, ROW_GROUP_SIZE 122880)`);
  connection.closeSync();
  instance.closeSync();
}

export const Transaction = features('transaction', {
  id: int().primary(),
  user_id: int().references('user.id'),
  merchant: int(),
  amount: float(),
  ts: datetime().featureTime(),
});

export const User = features(
  'user',
  { id: int().primary(), transactions: hasMany(() => Transaction) },
  (user) => ({
    total: windowed('1d', '7d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).sum(),
    }),
    purchases: windowed('7d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).count(),
    }),
    average: windowed('7d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).mean(),
    }),
    smallest: windowed('7d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).min(),
    }),
    largest: windowed('7d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).max(),
    }),
    merchants: windowed('7d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.merchant).approxCountDistinct(),
    }),
  }),
);

export const NUMERIC_FEATURES = [
  'user.total',
  'user.purchases',
  'user.average',
  'user.smallest',
  'user.largest',
];

/**
 * Runs one backfill of `features` from `file` into a fresh store; returns its
 * milliseconds, and the CPU milliseconds of the process meanwhile (every thread: DuckDB's,
 * the libuv pool's folds, the spill threads), which the other work on a shared machine
 * disturbs less than the wall clock.
 */
export async function backfillOnce(
  dir: string,
  file: string,
  featureNames: readonly string[],
): Promise<{ ms: number; cpuMs: number; rows: number; buckets: number; spills: number }> {
  const resolver = makeBatchResolver({
    name: 'transactions_parquet',
    output: Transaction,
    sql: `SELECT id, user_id, merchant, amount, ts FROM read_parquet('${file}')`,
  });
  const tessera = Tessera.open({
    path: join(dir, `store-${Math.random().toString(36).slice(2)}`),
    features: [User, Transaction],
    batchResolvers: [resolver],
  });
  tessera.setClock(BACKFILL_START + BACKFILL_DAYS * DAY + HOUR);
  try {
    const started = performance.now();
    const cpu = process.cpuUsage();
    const report = await tessera.backfill({
      features: featureNames,
      lowerBound: new Date(BACKFILL_START),
      upperBound: new Date(BACKFILL_START + BACKFILL_DAYS * DAY),
    });
    const used = process.cpuUsage(cpu);
    return {
      ms: performance.now() - started,
      cpuMs: (used.user + used.system) / 1000,
      rows: report.rows,
      buckets: report.native.bucketsWritten,
      spills: report.native.spills,
    };
  } finally {
    tessera.close();
  }
}

/** DuckDB's GROUP BY key, hour over the same file, into a table. */
async function duckdbGroupBy(dir: string, file: string, aggregates: string): Promise<number> {
  const instance = await DuckDBInstance.create(
    join(dir, `peer-${Math.random().toString(36).slice(2)}.duckdb`),
  );
  const connection = await instance.connect();
  const started = performance.now();
  await connection.run(`
    CREATE TABLE buckets AS
    SELECT user_id, time_bucket(INTERVAL 1 HOUR, ts) AS hour, ${aggregates}
    FROM read_parquet('${file}') GROUP BY ALL`);
  await connection.run('CHECKPOINT');
  const ms = performance.now() - started;
  connection.closeSync();
  instance.closeSync();
  return ms;
}

/** Peak RSS of one backfill of `rows` rows in a child process of its own. */
function childPeak(file: string, dir: string): { ms: number; maxRssMb: number; rows: number } {
  const child = spawnSync(
    process.execPath,
    [fileURLToPath(new URL('./backfill-child.js', import.meta.url)), file, dir],
    { encoding: 'utf8', maxBuffer: 1 << 20 },
  );
  if (child.status !== 0) throw new Error(`backfill child failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').at(-1) ?? '{}');
}

export async function backfillScenarios(context: BenchContext): Promise<ScenarioResult[]> {
  const rows = context.quick ? 1_000_000 : 10_000_000;
  const large = rows * 4;
  return withTempDir(async (dir) => {
    const file = join(dir, 'transactions.parquet');
    await writeBackfillFile(file, rows);
    const results: ScenarioResult[] = [];
    for (const [name, featureNames, aggregates, bar] of [
      [
        'backfill sum/count/mean/min/max',
        NUMERIC_FEATURES,
        'sum(amount), count(amount), avg(amount), min(amount), max(amount)',
        4_000_000,
      ],
      [
        'backfill approx_count_distinct',
        ['user.merchants'],
        'approx_count_distinct(merchant)',
        1_000_000,
      ],
    ] as const) {
      const tessera: number[] = [];
      const cpuMs: number[] = [];
      const peer: number[] = [];
      // What else the machine was running: the figures are only comparable at similar loads.
      const load = loadavg()[0] ?? 0;
      let last = { rows: 0, buckets: 0, spills: 0 };
      for (let r = 0; r < context.repetitions; r++) {
        const run = await backfillOnce(dir, file, featureNames);
        tessera.push(perSecond(run.rows, run.ms));
        cpuMs.push(run.cpuMs);
        last = run;
        peer.push(perSecond(rows, await duckdbGroupBy(dir, file, aggregates)));
      }
      const t = median(tessera);
      const p = median(peer);
      results.push({
        name,
        unit: 'rows/s',
        tessera: t,
        peers: { 'duckdb group by': p },
        ratios: { 'vs duckdb': t / p },
        notes: {
          rows: last.rows,
          keys: KEYS,
          bucketRecords: last.buckets,
          spills: last.spills,
          cpuMsMedian: median(cpuMs),
          loadAverage1m: load,
          bar,
          meetsBar: t >= bar,
        },
      });
    }
    // Peak RSS: the same backfill at 4x the rows, each in a fresh process.
    const largeFile = join(dir, 'transactions-large.parquet');
    await writeBackfillFile(largeFile, large);
    const small = childPeak(file, dir);
    const big = childPeak(largeFile, dir);
    results.push({
      name: 'backfill peak RSS',
      unit: 'MB',
      tessera: big.maxRssMb,
      peers: { [`${rows / 1e6}M rows`]: small.maxRssMb },
      ratios: { [`${large / 1e6}M / ${rows / 1e6}M`]: big.maxRssMb / small.maxRssMb },
      notes: {
        smallRows: small.rows,
        largeRows: big.rows,
        smallRowsPerSecond: perSecond(small.rows, small.ms),
        largeRowsPerSecond: perSecond(big.rows, big.ms),
        bar: 'within 20%',
        meetsBar: big.maxRssMb <= small.maxRssMb * 1.2,
      },
    });
    return results;
  });
}
