/**
 * Training sets: an offline query's result written to a Parquet file through DuckDB
 * (docs/semantics.md section 11): the input's key columns, the input time, and one
 * column per output named by its canonical name. Numbers are DOUBLE (BIGINT for integer
 * results), strings VARCHAR, booleans BOOLEAN, times TIMESTAMP (UTC, ms); lists, vectors
 * and grouped values are JSON text. A value of no data is NULL.
 */
import { importOptionalPeer } from '../optional-peer.js';
import type { ResultType } from '../planner/types.js';
import { InvalidQueryError } from './errors.js';
import type { OfflineQueryResult } from './offline.js';
import type { OutputRef } from './query.js';

type Column = 'DOUBLE' | 'BIGINT' | 'VARCHAR' | 'BOOLEAN' | 'TIMESTAMP';

function columnOf(type: ResultType): Column {
  switch (type.kind) {
    case 'int':
      return 'BIGINT';
    case 'float':
      return 'DOUBLE';
    case 'boolean':
      return 'BOOLEAN';
    case 'datetime':
      return 'TIMESTAMP';
    default:
      return 'VARCHAR';
  }
}

/** A key value's column: from the first row that has one (strings, numbers, times, booleans). */
function keyColumnOf(values: readonly unknown[]): Column {
  const given = values.find((v) => v !== null && v !== undefined);
  if (typeof given === 'string') return 'VARCHAR';
  if (typeof given === 'boolean') return 'BOOLEAN';
  if (given instanceof Date) return 'TIMESTAMP';
  return Number.isInteger(given) || given === undefined ? 'BIGINT' : 'DOUBLE';
}

function quoted(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Writes `result` to the Parquet file `file` (replacing it). Needs the optional peer
 * `@duckdb/node-api`. Returns the rows written.
 *
 * @example
 * const result = await tessera.offlineQuery({ input, inputTimes, output });
 * await writeTrainingSet(result, 'training/2026-03.parquet');
 */
export async function writeTrainingSet<O extends readonly OutputRef[]>(
  result: OfflineQueryResult<O>,
  file: string,
): Promise<number> {
  const duckdb = await importOptionalPeer(
    '@duckdb/node-api',
    'writeTrainingSet',
    () => import('@duckdb/node-api'),
  );
  const keyNames = Object.keys(result.rows[0]?.key ?? {});
  const keyTypes = keyNames.map((k) => keyColumnOf(result.rows.map((r) => r.key[k])));
  const outputTypes = result.outputs.map((o) => columnOf(o.resultType));
  const names = [...keyNames, 'time', ...result.outputs.map((o) => o.canonical)];
  if (new Set(names).size !== names.length) {
    throw new InvalidQueryError(
      `writeTrainingSet: two columns would be named alike among ${names.join(', ')}`,
    );
  }
  const types: Column[] = [...keyTypes, 'TIMESTAMP', ...outputTypes];
  const instance = await duckdb.DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    await connection.run("SET TimeZone = 'UTC'");
    await connection.run(
      `CREATE TABLE training (${names.map((n, i) => `${quoted(n)} ${types[i]}`).join(', ')})`,
    );
    const appender = await connection.createAppender('training');
    const append = (value: unknown, type: Column): void => {
      if (value === null || value === undefined) appender.appendNull();
      else if (type === 'TIMESTAMP') {
        const ms = value instanceof Date ? value.getTime() : Number(value);
        appender.appendTimestamp(new duckdb.DuckDBTimestampValue(BigInt(Math.round(ms)) * 1000n));
      } else if (type === 'BIGINT') appender.appendBigInt(BigInt(Math.round(Number(value))));
      else if (type === 'DOUBLE') appender.appendDouble(Number(value));
      else if (type === 'BOOLEAN') appender.appendBoolean(Boolean(value));
      else appender.appendVarchar(typeof value === 'string' ? value : JSON.stringify(value));
    };
    for (const row of result.rows) {
      for (const [i, k] of keyNames.entries()) append(row.key[k], keyTypes[i] as Column);
      append(row.time, 'TIMESTAMP');
      for (const [i, v] of (row.values as readonly unknown[]).entries()) {
        append(v, outputTypes[i] as Column);
      }
      appender.endRow();
    }
    appender.closeSync();
    await connection.run(
      `COPY training TO '${file.replaceAll("'", "''")}' (FORMAT parquet, COMPRESSION zstd)`,
    );
    return result.rows.length;
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}
