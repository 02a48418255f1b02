/**
 * The SQL form of a batch resolver: a DuckDB query, wrapped so that DuckDB returns only
 * the class's columns, in shapes the row conversion reads fast (numbers and times as
 * DOUBLE, epoch milliseconds for times), and only the rows of the run's time range
 * (compared on the feature-time column in its own type, so DuckDB can prune files and
 * row groups). Values are not checked here: the batches go through the one conversion
 * path of every ingest (`ts/api/ingest.ts`), which names the column and the row.
 *
 * One DuckDB database per backfill run, closed with it.
 */

import { createRequire } from 'node:module';
import { importOptionalPeer } from '../optional-peer.js';
import type { ClassPlan } from '../planner/types.js';
import type { BatchColumns, BatchRun } from './resolver.js';

type DuckDB = typeof import('@duckdb/node-api');
type Bindings = typeof import('@duckdb/node-bindings');
type RawChunk = InstanceType<DuckDB['DuckDBDataChunk']>;
type Connection = Awaited<ReturnType<InstanceType<DuckDB['DuckDBInstance']>['connect']>>;

/** Rows handed to the conversion at once. */
const BATCH_ROWS = 65_536;
/** The largest integer a double holds exactly. */
const MAX_SAFE = '9007199254740991';

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** A DuckDB database for one run. */
export class SqlRunner {
  private constructor(
    private readonly instance: { closeSync(): void },
    private readonly connection: Connection,
    private readonly bindings: Bindings,
  ) {}

  /** Opens an in-memory database (DuckDB reads the files the queries name). */
  static async open(): Promise<SqlRunner> {
    const api = await importOptionalPeer(
      '@duckdb/node-api',
      'A SQL batch resolver',
      () => import('@duckdb/node-api'),
    );
    // The C API binding under @duckdb/node-api, resolved from it: its vectors are read as
    // whole typed arrays rather than one value at a time.
    const bindings = createRequire(createRequire(import.meta.url).resolve('@duckdb/node-api'))(
      '@duckdb/node-bindings',
    ) as Bindings;
    const instance = await api.DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    await connection.run("SET TimeZone = 'UTC'").catch(() => undefined);
    return new SqlRunner(instance, connection, bindings);
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }

  /** The result columns of `sql`: name -> DuckDB type. */
  async describe(sql: string): Promise<Map<string, string>> {
    const reader = await this.connection.runAndReadAll(
      `DESCRIBE SELECT * FROM (${stripSemicolon(sql)}) AS tessera_source`,
    );
    const out = new Map<string, string>();
    for (const row of reader.getRowObjectsJS()) {
      out.set(String(row.column_name), String(row.column_type));
    }
    return out;
  }

  /** The query that reads the run's rows of `sql` for class `cls`. */
  async plan(
    sql: string,
    cls: ClassPlan,
    run: BatchRun,
    needed?: ReadonlySet<string>,
  ): Promise<SqlPlan> {
    const types = await this.describe(sql);
    const select: string[] = [];
    const columns: SqlColumn[] = [];
    for (const column of cls.columns) {
      const type = types.get(column.name);
      if (type === undefined || (needed !== undefined && !needed.has(column.name))) continue;
      const c = quote(column.name);
      const kind = column.type.kind;
      let expression: string;
      let shape: SqlColumn['shape'];
      if (isTimeType(type)) {
        expression = `CAST(epoch_ms(${c}) AS DOUBLE)`;
        shape = 'number';
      } else if (isNumericType(type) || type === 'BOOLEAN') {
        expression = `CAST(${c} AS DOUBLE)`;
        shape = 'number';
      } else if (kind === 'vector' && /\[\d*\]$/.test(type)) {
        expression = `CAST(${c} AS DOUBLE[])`;
        shape = 'list';
      } else if (type === 'VARCHAR') {
        expression = c;
        shape = 'string';
      } else {
        // Anything else reaches the conversion as text, which refuses it by name.
        expression = `CAST(${c} AS VARCHAR)`;
        shape = 'string';
      }
      columns.push({ name: column.name, shape, unsafe: null });
      select.push(`${expression} AS ${c}`);
      if (kind === 'int' && isWideIntegerType(type)) {
        // A 64-bit integer past 2^53 would be rounded by DOUBLE: carry it as text so the
        // conversion refuses it with its row.
        const alias = `tessera_unsafe_${columns.length}`;
        columns[columns.length - 1] = { name: column.name, shape, unsafe: alias };
        select.push(
          `CASE WHEN abs(${c}) > ${MAX_SAFE} THEN CAST(${c} AS VARCHAR) END AS ${quote(alias)}`,
        );
      }
    }
    const time = cls.featureTime;
    const where: string[] = [];
    const timeType = time === null ? undefined : types.get(time);
    if (time !== null && timeType !== undefined) {
      const c = quote(time);
      const [lo, hi] = [run.lowerBoundMs, run.upperBoundMs];
      if (timeType === 'TIMESTAMP' || timeType === 'DATETIME') {
        where.push(
          `${c} >= make_timestamp(${lo * 1000}::BIGINT)`,
          `${c} < make_timestamp(${hi * 1000}::BIGINT)`,
        );
      } else if (timeType === 'TIMESTAMP WITH TIME ZONE' || timeType === 'TIMESTAMPTZ') {
        where.push(`${c} >= to_timestamp(${lo / 1000})`, `${c} < to_timestamp(${hi / 1000})`);
      } else if (isTimeType(timeType)) {
        where.push(`epoch_ms(${c}) >= ${lo}`, `epoch_ms(${c}) < ${hi}`);
      } else if (isNumericType(timeType)) {
        where.push(`${c} >= ${lo}`, `${c} < ${hi}`);
      }
      // Text times are compared after conversion, by the backfill itself.
    }
    const source = `(${stripSemicolon(sql)}) AS tessera_source`;
    const filter = where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
    return {
      query: `SELECT ${select.join(', ') || '1 AS tessera_empty'} FROM ${source}${filter}`,
      count: `SELECT count(*) AS n FROM ${source}${filter}`,
      columns,
    };
  }

  /** How many rows `plan` reads. */
  async count(plan: SqlPlan): Promise<number> {
    const reader = await this.connection.runAndReadAll(plan.count);
    const n = reader.getRowObjectsJS()[0]?.n;
    return Number(n ?? 0);
  }

  /**
   * How many distinct (group key, bucket) pairs the rows of `plan` fill in a layout of
   * `sizeMs` buckets from `originMs`, among the buckets starting in `[fromMs, toMs)`:
   * the bucket records a backfill of that layout writes from these rows.
   */
  async distinctBuckets(
    plan: SqlPlan,
    keys: readonly string[],
    timeColumn: string,
    layout: { sizeMs: number; originMs: number; fromMs: number; toMs: number },
  ): Promise<number> {
    const t = quote(timeColumn);
    const bucket = `floor((${t} - ${layout.originMs}) / ${layout.sizeMs})`;
    const present = keys.map((k) => `${quote(k)} IS NOT NULL`);
    const inRange = `${bucket} * ${layout.sizeMs} + ${layout.originMs}`;
    const sql = `SELECT count(*) AS n FROM (SELECT DISTINCT ${[...keys.map(quote), bucket].join(', ')}
      FROM (${plan.query}) AS tessera_rows
      WHERE ${[...present, `${inRange} >= ${layout.fromMs}`, `${inRange} < ${layout.toMs}`].join(' AND ')})`;
    const reader = await this.connection.runAndReadAll(sql);
    return Number(reader.getRowObjectsJS()[0]?.n ?? 0);
  }

  /** The rows of `plan`, in batches of columns. */
  async *batches(plan: SqlPlan): AsyncGenerator<BatchColumns> {
    const result = await this.connection.stream(plan.query);
    const chunks: RawChunk[] = [];
    let pending = 0;
    const flush = (): BatchColumns => {
      const out = gather(plan, chunks, pending, this.bindings);
      chunks.length = 0;
      pending = 0;
      return out;
    };
    for (;;) {
      const chunk = await result.fetchChunk();
      if (chunk === null || chunk.rowCount === 0) break;
      chunks.push(chunk);
      pending += chunk.rowCount;
      if (pending >= BATCH_ROWS) yield flush();
    }
    if (pending > 0) yield flush();
  }
}

/** A wrapped query and how to read its columns. */
export interface SqlPlan {
  readonly query: string;
  readonly count: string;
  readonly columns: readonly SqlColumn[];
}

interface SqlColumn {
  readonly name: string;
  readonly shape: 'number' | 'string' | 'list';
  /** The alias of the text of values past 2^53, for 64-bit integer columns. */
  readonly unsafe: string | null;
}

/** One batch of columns from DuckDB chunks. */
function gather(
  plan: SqlPlan,
  chunks: readonly RawChunk[],
  rows: number,
  bindings: Bindings,
): BatchColumns {
  const out: Record<string, ArrayLike<unknown>> = {};
  let vectorIndex = 0;
  for (const column of plan.columns) {
    const at = vectorIndex++;
    const unsafeAt = column.unsafe === null ? -1 : vectorIndex++;
    if (column.shape === 'number') {
      const values = new Float64Array(rows);
      let i = 0;
      let unsafe: (string | null)[] | null = null;
      for (const chunk of chunks) {
        const n = chunk.rowCount;
        copyDoubles(bindings, bindings.data_chunk_get_vector(chunk.chunk, at), n, values, i);
        if (
          unsafeAt >= 0 &&
          !allNull(bindings, bindings.data_chunk_get_vector(chunk.chunk, unsafeAt), n)
        ) {
          const texts = chunk.getColumnVector(unsafeAt);
          for (let r = 0; r < n; r++) {
            const t = texts.getItem(r);
            if (t !== null) {
              unsafe ??= [];
              unsafe[i + r] = String(t);
            }
          }
        }
        i += n;
      }
      if (unsafe === null) {
        out[column.name] = values;
      } else {
        // Plain values, with the exact integers that do not fit a double as bigints.
        const mixed: unknown[] = Array.from(values, (v) => (Number.isNaN(v) ? null : v));
        unsafe.forEach((t, r) => {
          if (t !== undefined && t !== null) mixed[r] = BigInt(t);
        });
        out[column.name] = mixed;
      }
    } else {
      const values: unknown[] = new Array(rows);
      let i = 0;
      for (const chunk of chunks) {
        const vector = chunk.getColumnVector(at);
        for (let r = 0; r < chunk.rowCount; r++) {
          const v = vector.getItem(r);
          values[i++] =
            column.shape === 'list' && v !== null ? [...(v as { items: unknown[] }).items] : v;
        }
      }
      out[column.name] = values;
    }
  }
  return out;
}

/** Whether the first `n` values of a vector are all null (its validity bits all clear). */
function allNull(
  bindings: Bindings,
  vector: ReturnType<Bindings['data_chunk_get_vector']>,
  n: number,
): boolean {
  const validity = bindings.vector_get_validity(vector, Math.ceil(n / 64) * 8);
  if (!validity) return false;
  for (let i = 0; i < Math.ceil(n / 8); i++) {
    const byte = validity[i] as number;
    const used = i === Math.ceil(n / 8) - 1 && n % 8 !== 0 ? (1 << (n % 8)) - 1 : 0xff;
    if ((byte & used) !== 0) return false;
  }
  return true;
}

/** Copies `n` doubles of a DOUBLE vector into `out` at `at`, nulls as NaN. */
function copyDoubles(
  bindings: Bindings,
  vector: ReturnType<Bindings['data_chunk_get_vector']>,
  n: number,
  out: Float64Array,
  at: number,
): void {
  const data = bindings.vector_get_data(vector, n * 8);
  out.set(new Float64Array(data.buffer, data.byteOffset, n), at);
  const words = Math.ceil(n / 64);
  const validity = bindings.vector_get_validity(vector, words * 8);
  if (!validity) return;
  const bits = new Uint32Array(validity.buffer, validity.byteOffset, words * 2);
  for (let w = 0; w < bits.length; w++) {
    const word = bits[w] as number;
    if (word === 0xffff_ffff) continue;
    for (let b = 0; b < 32; b++) {
      const r = w * 32 + b;
      if (r < n && (word & (1 << b)) === 0) out[at + r] = Number.NaN;
    }
  }
}

function stripSemicolon(sql: string): string {
  return sql.trim().replace(/;\s*$/, '');
}

function isTimeType(type: string): boolean {
  return type.startsWith('TIMESTAMP') || type === 'DATE' || type === 'DATETIME';
}

function isNumericType(type: string): boolean {
  return /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|DOUBLE|REAL|DECIMAL(\(\d+,\s*\d+\))?)$/.test(
    type,
  );
}

function isWideIntegerType(type: string): boolean {
  return /^(BIGINT|HUGEINT|UBIGINT|UHUGEINT|DECIMAL.*)$/.test(type);
}
