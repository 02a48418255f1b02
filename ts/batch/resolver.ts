/**
 * Batch resolvers: where the historical rows of a feature class come from, for backfills
 * (docs/semantics.md section 9). Three forms:
 * - `sql`: a DuckDB query over Parquet, CSV or JSON files (or anything DuckDB reads);
 *   Tessera wraps it, keeps the rows of the run's time range on the feature-time column
 *   (so DuckDB prunes files and row groups) and reads the result in chunks;
 * - `rows`: a function returning an async (or plain) iterable of batches, each a list of
 *   row objects or an object of columns;
 * - `columns`: columns given at once (typed arrays, arrays, or an Arrow table), or a
 *   function of the run returning them.
 * Every form is given the run: its time range and its tags.
 */

import { InvalidRowsError } from '../api/errors.js';
import { type AnyFeatureClass, definitionOf, isFeatureClass } from '../dsl/feature-class.js';
import { TesseraError } from '../errors.js';

/** What a backfill run asks a batch resolver for: `[lowerBound, upperBound)` and its tags. */
export interface BatchRun {
  /** The first instant of the run, inclusive (already widened to bucket edges). */
  readonly lowerBound: Date;
  /** The end of the run, exclusive. */
  readonly upperBound: Date;
  readonly lowerBoundMs: number;
  readonly upperBoundMs: number;
  /** The run's tags (`source:a`); empty for an untagged run. */
  readonly tags: readonly string[];
}

/** Columns by name: typed arrays or arrays of values, one entry per row. */
export type BatchColumns = Readonly<Record<string, ArrayLike<unknown>>>;

/** An Arrow table, as far as a batch resolver reads it (`apache-arrow`'s `Table`). */
export interface ArrowTableLike {
  readonly numRows: number;
  readonly schema: { readonly fields: readonly { readonly name: string }[] };
  getChild(name: string): ArrowVectorLike | null;
}

/** An Arrow column, as far as a batch resolver reads it (`apache-arrow`'s `Vector`). */
export interface ArrowVectorLike {
  readonly length: number;
  readonly nullCount: number;
  /** The value at `i`: a number (epoch ms for timestamps and dates), string, boolean, bigint or null. */
  get(i: number): unknown;
  toArray(): ArrayLike<unknown>;
}

/** One batch of rows: row objects, or columns. */
export type BatchRows = readonly Readonly<Record<string, unknown>>[] | BatchColumns;

interface CommonOptions {
  /** Unique among the batch resolvers of a Tessera; named in every error of its runs. */
  readonly name: string;
  /** The feature class the rows belong to. */
  readonly output: AnyFeatureClass;
  /** Tags selecting this resolver for tagged runs (`['source:a']`). */
  readonly tags?: readonly string[];
}

/** A DuckDB query (`SELECT * FROM read_parquet('data/*.parquet')`). */
export interface SqlBatchResolverOptions extends CommonOptions {
  /** The query, or a function of the run returning it. */
  readonly sql: string | ((run: BatchRun) => string);
}

/** A function returning the run's rows in batches. */
export interface RowsBatchResolverOptions extends CommonOptions {
  readonly rows: (run: BatchRun) => AsyncIterable<BatchRows> | Iterable<BatchRows>;
}

/** Columns at once: typed arrays, arrays, or an Arrow table. */
export interface ColumnsBatchResolverOptions extends CommonOptions {
  readonly columns:
    | BatchColumns
    | ArrowTableLike
    | ((run: BatchRun) => BatchColumns | ArrowTableLike | Promise<BatchColumns | ArrowTableLike>);
}

/** The options of {@link makeBatchResolver}, in one of its three forms. */
export type BatchResolverOptions =
  | SqlBatchResolverOptions
  | RowsBatchResolverOptions
  | ColumnsBatchResolverOptions;

/** How a batch resolver produces its rows. */
export type BatchSource =
  | { readonly kind: 'sql'; readonly sql: string | ((run: BatchRun) => string) }
  | {
      readonly kind: 'rows';
      readonly rows: (run: BatchRun) => AsyncIterable<BatchRows> | Iterable<BatchRows>;
    }
  | { readonly kind: 'columns'; readonly columns: ColumnsBatchResolverOptions['columns'] };

const BATCH_RESOLVER = Symbol.for('tessera.batchResolver');

/** A declared batch resolver (see {@link makeBatchResolver}). */
export interface BatchResolver {
  readonly [BATCH_RESOLVER]: true;
  readonly name: string;
  /** The namespace of the output class. */
  readonly namespace: string;
  readonly output: AnyFeatureClass;
  readonly tags: readonly string[];
  readonly source: BatchSource;
}

/** A bad batch resolver definition, naming the resolver and the option. */
export class BatchResolverError extends TesseraError {
  constructor(message: string) {
    super('INVALID_BATCH_RESOLVER', message);
  }
}

/**
 * Declares a batch resolver. Give exactly one of `sql`, `rows` and `columns`.
 *
 * @example
 * export const transactionsFromParquet = makeBatchResolver({
 *   name: 'transactions_parquet',
 *   output: Transaction,
 *   sql: "SELECT id, user_id, amount, ts FROM read_parquet('data/transactions/*.parquet')",
 *   tags: ['source:parquet'],
 * });
 *
 * makeBatchResolver({
 *   name: 'transactions_api',
 *   output: Transaction,
 *   rows: async function* (run) {
 *     for await (const page of fetchPages(run.lowerBound, run.upperBound)) yield page;
 *   },
 * });
 */
export function makeBatchResolver(options: BatchResolverOptions): BatchResolver {
  const o = options as Partial<
    SqlBatchResolverOptions & RowsBatchResolverOptions & ColumnsBatchResolverOptions
  >;
  if (typeof o.name !== 'string' || o.name.length === 0) {
    throw new BatchResolverError('a batch resolver needs a name');
  }
  const name = o.name;
  const fail = (problem: string): never => {
    throw new BatchResolverError(`batch resolver ${name}: ${problem}`);
  };
  if (o.output === undefined || !isFeatureClass(o.output)) {
    fail('output must be a feature class (features(...))');
  }
  const output = o.output as AnyFeatureClass;
  const forms = (['sql', 'rows', 'columns'] as const).filter((k) => o[k] !== undefined);
  if (forms.length !== 1) {
    fail(`give exactly one of sql, rows and columns (got ${forms.join(', ') || 'none'})`);
  }
  const known = new Set(['name', 'output', 'tags', 'sql', 'rows', 'columns']);
  for (const key of Object.keys(o)) {
    if (!known.has(key)) fail(`unknown option '${key}'`);
  }
  let source: BatchSource;
  if (o.sql !== undefined) {
    if (typeof o.sql !== 'string' && typeof o.sql !== 'function') {
      fail('sql must be a query string or a function of the run returning one');
    }
    if (typeof o.sql === 'string' && o.sql.trim().length === 0) fail('sql is empty');
    source = { kind: 'sql', sql: o.sql };
  } else if (o.rows !== undefined) {
    if (typeof o.rows !== 'function') {
      fail('rows must be a function of the run returning an (async) iterable of batches');
    }
    source = { kind: 'rows', rows: o.rows };
  } else {
    const columns = o.columns;
    if (typeof columns !== 'function' && (typeof columns !== 'object' || columns === null)) {
      fail('columns must be an object of columns, an Arrow table, or a function returning one');
    }
    source = { kind: 'columns', columns: columns as ColumnsBatchResolverOptions['columns'] };
  }
  const tags = o.tags ?? [];
  if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string' || t.length === 0)) {
    fail('tags must be a list of non-empty strings');
  }
  return Object.freeze({
    [BATCH_RESOLVER]: true as const,
    name,
    namespace: definitionOf(output).namespace,
    output,
    tags: Object.freeze([...tags]),
    source,
  });
}

/** Whether `value` was made by {@link makeBatchResolver}. */
export function isBatchResolver(value: unknown): value is BatchResolver {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[BATCH_RESOLVER] === true
  );
}

/** Whether a resolver takes part in a run with `tags`: it carries every one of them. */
export function selectedByTags(resolver: BatchResolver, tags: readonly string[]): boolean {
  return tags.every((t) => resolver.tags.includes(t));
}

/** Whether `value` is an Arrow table (duck-typed: `numRows`, `schema.fields`, `getChild`). */
export function isArrowTable(value: unknown): value is ArrowTableLike {
  const v = value as Partial<ArrowTableLike> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.numRows === 'number' &&
    typeof v.getChild === 'function' &&
    Array.isArray(v.schema?.fields)
  );
}

/**
 * An Arrow table's columns as the row conversion reads them: a column without nulls whose
 * values are a plain typed array as that array; any other column (nulls, 64-bit integers,
 * timestamps, dates, strings, booleans) value by value, timestamps and dates as epoch
 * milliseconds, 64-bit integers as numbers when they fit one exactly (else as the bigint,
 * which the conversion refuses with its row).
 */
export function arrowColumns(table: ArrowTableLike): BatchColumns {
  const out: Record<string, ArrayLike<unknown>> = {};
  for (const field of table.schema.fields) {
    const child = table.getChild(field.name);
    if (child === null) continue;
    const values = child.nullCount === 0 ? child.toArray() : null;
    if (values !== null && ArrayBuffer.isView(values) && !isBigIntArray(values)) {
      out[field.name] = values;
      continue;
    }
    const plain: unknown[] = new Array(child.length);
    for (let i = 0; i < child.length; i++) {
      const v = child.get(i);
      plain[i] =
        typeof v === 'bigint' && v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
    }
    out[field.name] = plain;
  }
  return out;
}

function isBigIntArray(values: ArrayBufferView): boolean {
  return values instanceof BigInt64Array || values instanceof BigUint64Array;
}

/**
 * Where a bad row of a resolver's rows is and what is wrong with it, for `resolver` (a
 * label: `batch resolver pages`) whose batch started at row `offset` of the run:
 * `batch resolver pages row 1207: amount is 'x', not a number (float)`. `null` when
 * `error` is not a bad row.
 */
export function badRowText(resolver: string, error: unknown, offset: number): string | null {
  if (!(error instanceof InvalidRowsError)) return null;
  const where =
    error.row === null
      ? `${resolver} (rows from ${offset})`
      : `${resolver} row ${offset + error.row}`;
  return `${where}: ${error.problem ?? error.message}`;
}
