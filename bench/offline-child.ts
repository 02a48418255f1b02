/**
 * The training set of the offline scenarios, in a process of its own so that the peak
 * RSS of the 1M-point call is its own: `node dist/bench/offline-child.js <store dir>
 * <parquet file> quick|full` opens the store the parent backfilled, asks the 1M points in
 * the materialized mode, writes the result with `writeTrainingSet`, reads the file back
 * with DuckDB and compares it value by value with the in-memory result (any difference
 * throws). Prints a `TrainingSetReport` as its last line.
 */
import { statSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { Tessera, writeTrainingSet } from '../ts/index.js';
import {
  OFFLINE_NOW,
  OUTPUTS,
  offlinePoints,
  offlineSizes,
  type TrainingSetReport,
  Transaction,
  User,
} from './offline.js';

const [dir, file, size] = process.argv.slice(2);
if (dir === undefined || file === undefined) {
  throw new Error('usage: offline-child <store dir> <parquet file> quick|full');
}
const { keys, points: n } = offlineSizes(size === 'quick');
const points = offlinePoints(n, keys, 21);
const tessera = Tessera.open({ path: dir, features: [User, Transaction], clock: OFFLINE_NOW });
try {
  const rssBeforeMb = process.memoryUsage().rss / 2 ** 20;
  let started = performance.now();
  const result = await tessera.offlineQuery({
    input: { 'user.id': points.users },
    inputTimes: points.times,
    output: OUTPUTS,
    plannerOptions: { useMaterializedOfflineQuery: true },
  });
  const queryMs = performance.now() - started;
  const maxRssMb = process.resourceUsage().maxRSS / 1024;
  started = performance.now();
  const written = await writeTrainingSet(result, file);
  const writeMs = performance.now() - started;
  if (written !== n) throw new Error(`writeTrainingSet wrote ${written} rows, not ${n}`);

  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const reader = await connection.runAndReadAll(
    `SELECT "user.id", epoch_ms("time") AS t, ${result.outputs.map((o) => `"${o.canonical}"`).join(', ')} FROM read_parquet('${file}')`,
  );
  const columns = reader.getColumnsJS();
  connection.closeSync();
  instance.closeSync();
  let compared = 0;
  const fail = (row: number, what: string, got: unknown, want: unknown): never => {
    throw new Error(
      `training set: row ${row} ${what} reads back as ${String(got)}, the result has ${String(want)}`,
    );
  };
  const [ids, times, ...values] = columns;
  if (ids?.length !== n) throw new Error(`training set: ${ids?.length} rows read back, not ${n}`);
  for (let i = 0; i < n; i++) {
    const row = result.rows[i];
    if (row === undefined) throw new Error(`training set: no row ${i} in the result`);
    if (Number(ids[i]) !== points.users[i]) fail(i, 'user.id', ids[i], points.users[i]);
    if (Number(times?.[i]) !== row.time.getTime()) fail(i, 'time', times?.[i], row.time);
    for (let j = 0; j < OUTPUTS.length; j++) {
      const back = values[j]?.[i];
      const want = row.values[j] ?? null;
      const got = back === null || back === undefined ? null : Number(back);
      if (got !== want) fail(i, OUTPUTS[j] ?? '', got, want);
      compared++;
    }
  }
  const report: TrainingSetReport = {
    points: n,
    queryMs,
    rssBeforeMb,
    maxRssMb,
    writeMs,
    fileMb: statSync(file).size / 2 ** 20,
    valuesCompared: compared,
  };
  console.log(JSON.stringify(report));
} finally {
  tessera.close();
}
