/**
 * Spines from files (docs/semantics.md section 11.1): the keys and times of an offline
 * query read from a Parquet, CSV or JSON file through DuckDB, as `input` and
 * `inputTimes` for {@link Tessera.offlineQuery}.
 */
import { extname } from 'node:path';
import { importOptionalPeer } from '../optional-peer.js';
import { InvalidQueryError } from './errors.js';
import type { KeyValue } from './query.js';

/** How {@link readSpine} reads a file. */
export interface SpineOptions {
  /** The column holding each row's time: TIMESTAMP, TIMESTAMPTZ, DATE, or Unix ms. */
  readonly time: string;
  /**
   * The input keys and the file columns holding them, `{ 'user.id': 'user_id' }`
   * (default: every other column, under its own name).
   */
  readonly keys?: Readonly<Record<string, string>>;
}

/** A spine: the `input` and `inputTimes` of an offline query. */
export interface Spine {
  readonly input: Readonly<Record<string, readonly KeyValue[]>>;
  readonly inputTimes: Float64Array;
}

const READERS: Readonly<Record<string, string>> = {
  '.parquet': 'read_parquet',
  '.csv': 'read_csv_auto',
  '.tsv': 'read_csv_auto',
  '.json': 'read_json_auto',
  '.ndjson': 'read_json_auto',
  '.jsonl': 'read_json_auto',
};

function quoted(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

const TIME_TYPES =
  /^(TIMESTAMP|TIMESTAMP_MS|TIMESTAMP_S|TIMESTAMP_NS|TIMESTAMP WITH TIME ZONE|DATE)$/;
const NUMBER_TYPES =
  /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|DECIMAL.*)$/;
const INTEGER_TYPES =
  /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT)$/;

/**
 * Reads the keys and times of an offline query from `file` (`.parquet`, `.csv`, `.tsv`,
 * `.json`, `.ndjson`), in file order. Times without a zone are UTC. A key column must be
 * an integer or a string column; an integer past 2^53 is refused with its row. Needs the
 * optional peer `@duckdb/node-api`.
 *
 * @example
 * const spine = await readSpine('labels.parquet', { time: 'label_time', keys: { 'user.id': 'user_id' } });
 * const result = await tessera.offlineQuery({ ...spine, output: [User.total['7d']] });
 */
export async function readSpine(file: string, options: SpineOptions): Promise<Spine> {
  const reader = READERS[extname(file).toLowerCase()];
  if (reader === undefined) {
    throw new InvalidQueryError(
      `readSpine: ${file} is not a .parquet, .csv, .tsv, .json or .ndjson file`,
    );
  }
  if (typeof options?.time !== 'string' || options.time.length === 0) {
    throw new InvalidQueryError('readSpine: options.time names the column of the input times');
  }
  const duckdb = await importOptionalPeer(
    '@duckdb/node-api',
    'readSpine',
    () => import('@duckdb/node-api'),
  );
  const instance = await duckdb.DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    await connection.run("SET TimeZone = 'UTC'");
    const source = `${reader}('${file.replaceAll("'", "''")}')`;
    const described = (await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`))
      .getRowObjectsJS()
      .map((r) => ({ name: String(r.column_name), type: String(r.column_type) }));
    const typeOf = new Map(described.map((c) => [c.name, c.type]));
    const timeType = typeOf.get(options.time);
    if (timeType === undefined) {
      throw new InvalidQueryError(
        `readSpine: ${file} has no column ${options.time} (it has ${described.map((c) => c.name).join(', ')})`,
      );
    }
    let timeSql: string;
    if (TIME_TYPES.test(timeType))
      timeSql = `CAST(epoch_ms(CAST(${quoted(options.time)} AS TIMESTAMP)) AS DOUBLE)`;
    else if (NUMBER_TYPES.test(timeType)) timeSql = `CAST(${quoted(options.time)} AS DOUBLE)`;
    else {
      throw new InvalidQueryError(
        `readSpine: ${file} column ${options.time} is ${timeType}; a time column is TIMESTAMP, TIMESTAMPTZ, DATE or Unix ms`,
      );
    }
    const keys =
      options.keys ??
      Object.fromEntries(
        described.filter((c) => c.name !== options.time).map((c) => [c.name, c.name]),
      );
    const keyNames = Object.keys(keys);
    if (keyNames.length === 0) {
      throw new InvalidQueryError(`readSpine: ${file} has no key column besides ${options.time}`);
    }
    const selected: string[] = [];
    for (const [input, column] of Object.entries(keys)) {
      const type = typeOf.get(column);
      if (type === undefined) {
        throw new InvalidQueryError(
          `readSpine: ${file} has no column ${column} (for ${input}; it has ${described.map((c) => c.name).join(', ')})`,
        );
      }
      if (INTEGER_TYPES.test(type)) selected.push(`CAST(${quoted(column)} AS VARCHAR)`);
      else if (type === 'VARCHAR') selected.push(quoted(column));
      else {
        throw new InvalidQueryError(
          `readSpine: ${file} column ${column} (for ${input}) is ${type}; a key column holds integers or strings`,
        );
      }
    }
    // Integers come as text and are converted here, so that none is rounded on the way.
    const result = await connection.runAndReadAll(
      `SELECT ${timeSql} AS t, ${selected.join(', ')} FROM ${source}`,
    );
    const columns = result.getColumnsJS();
    const times = Float64Array.from((columns[0] ?? []) as (number | null)[], (t, row) => {
      if (t === null || !Number.isFinite(t)) {
        throw new InvalidQueryError(`readSpine: ${file} row ${row}: ${options.time} is null`);
      }
      return t;
    });
    const input: Record<string, KeyValue[]> = {};
    for (const [k, name] of keyNames.entries()) {
      const integer = INTEGER_TYPES.test(typeOf.get(keys[name] as string) ?? '');
      input[name] = ((columns[k + 1] ?? []) as (string | null)[]).map((v, row) => {
        if (v === null || !integer) return v;
        const n = Number(v);
        if (!Number.isSafeInteger(n)) {
          throw new InvalidQueryError(
            `readSpine: ${file} row ${row}: ${keys[name]} is ${v}, past the integers a key holds exactly (2^53)`,
          );
        }
        return n;
      });
    }
    return { input, inputTimes: times };
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}
