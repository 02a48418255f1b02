/**
 * Ingest: turns a batch of rows of one feature class into one columnar
 * `SeriesBatchInput` per series that the class feeds. Every array is built once per
 * batch and shared by the series that read the same column: timestamps, key parts,
 * values (numbers, dictionary-encoded strings, row-major vectors), `by` columns and
 * the ingest filters' selections. The columnar path creates no per-row objects.
 */
import type { Column, ValueOf } from '../dsl/column.js';
import type { KeyPart, SeriesBatchInput } from '../native.js';
import type {
  ClassPlan,
  ColumnPlan,
  FilterValue,
  IngestFilter,
  Plan,
  SeriesPlan,
} from '../planner/types.js';
import { InvalidRowsError } from './errors.js';
import { describeValue, isTypedArray, NULL_CODE, StringDictionary, timeOf } from './values.js';

/** The scalar columns of a feature class `C`, with their value types. */
export type ClassColumns<C> = {
  [K in keyof C as K extends string ? (C[K] extends Column<unknown> ? K : never) : never]: ValueOf<
    C[K]
  >;
};

/** What a column of value type `V` accepts at ingest. Datetimes: Date, zoned ISO string or ms. */
export type IngestValue<V> = [V] extends [Date]
  ? Date | string | number
  : [V] extends [readonly number[]]
    ? readonly number[] | Float64Array
    : V;

/**
 * One row of a feature class: its columns by name (any may be null or left out), plus
 * any other properties, e.g. `'amount@2'` for version 2 of a versioned column.
 */
export type IngestRow<C> = {
  readonly [K in keyof ClassColumns<C>]?: IngestValue<ClassColumns<C>[K]> | null;
} & { readonly [column: string]: unknown };

/**
 * Columns of equal length: arrays or typed arrays by column name (a `Float64Array`
 * of epoch ms for a datetime column, NaN for null). A vector column may also be one
 * flat, row-major `Float64Array` of `rows × dim` numbers.
 */
export type IngestColumns<C> = {
  readonly [K in keyof ClassColumns<C>]?:
    | ArrayLike<IngestValue<ClassColumns<C>[K]> | null | undefined>
    | ([ClassColumns<C>[K]] extends [readonly number[]] ? Float64Array : never);
} & { readonly [column: string]: ArrayLike<unknown> | undefined };

/** A batch for `ingest`: row objects, or columns. */
export type IngestRows<C> = readonly IngestRow<C>[] | IngestColumns<C>;

/** What one series received from a batch. */
export interface SeriesFed {
  readonly id: string;
  /** Rows that passed the series' ingest filters (rows with a null key are among them). */
  readonly rows: number;
}

/** The native batches of one ingest call and what they cover. */
export interface PreparedBatch {
  readonly rows: number;
  readonly batches: SeriesBatchInput[];
  readonly series: SeriesFed[];
}

/** `column` or `column@version`. */
function columnKey(name: string, version: number | null): string {
  return version === null ? name : `${name}@${version}`;
}

const VERSIONED = /^(.+)@(\d+)$/;

/** A batch's columns, by name, whatever shape the caller gave them in. */
interface ColumnSource {
  readonly length: number;
  has(name: string): boolean;
  names(): Iterable<string>;
  column(name: string): ArrayLike<unknown>;
}

class RowSource implements ColumnSource {
  readonly length: number;
  private readonly present = new Set<string>();
  private readonly cache = new Map<string, unknown[]>();

  constructor(
    private readonly rows: readonly unknown[],
    namespace: string,
  ) {
    this.length = rows.length;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      if (typeof row !== 'object' || row === null || Array.isArray(row)) {
        throw new InvalidRowsError(
          `${namespace} row ${i}: ${describeValue(row)} is not a row object`,
        );
      }
      for (const key in row) this.present.add(key);
    }
  }

  has(name: string): boolean {
    return this.present.has(name);
  }

  names(): Iterable<string> {
    return this.present;
  }

  column(name: string): ArrayLike<unknown> {
    let out = this.cache.get(name);
    if (out === undefined) {
      out = new Array<unknown>(this.length);
      for (let i = 0; i < this.length; i++) {
        out[i] = (this.rows[i] as Readonly<Record<string, unknown>>)[name];
      }
      this.cache.set(name, out);
    }
    return out;
  }
}

class ColumnarSource implements ColumnSource {
  readonly length: number;
  private readonly columns = new Map<string, ArrayLike<unknown>>();

  constructor(columns: Readonly<Record<string, unknown>>, namespace: string) {
    for (const [name, value] of Object.entries(columns)) {
      if (value === undefined) continue;
      if (
        typeof value !== 'object' ||
        value === null ||
        typeof (value as ArrayLike<unknown>).length !== 'number'
      ) {
        throw new InvalidRowsError(
          `${namespace}: column '${name}' is ${describeValue(value)}, not an array`,
        );
      }
      this.columns.set(name, value as ArrayLike<unknown>);
    }
    // The shortest column gives the row count: a flat vector column (rows × dim) is the
    // only one allowed to be longer, and its length is checked where it is read.
    let length: number | undefined;
    let shortest = '';
    for (const [name, column] of this.columns) {
      if (length === undefined || column.length < length) {
        length = column.length;
        shortest = name;
      }
    }
    this.length = length ?? 0;
    for (const [name, column] of this.columns) {
      if (column.length !== this.length && !(column instanceof Float64Array)) {
        throw new InvalidRowsError(
          `${namespace}: column '${name}' has ${column.length} values but '${shortest}' has ${this.length}`,
        );
      }
    }
  }

  has(name: string): boolean {
    return this.columns.has(name);
  }

  names(): Iterable<string> {
    return this.columns.keys();
  }

  column(name: string): ArrayLike<unknown> {
    const column = this.columns.get(name);
    if (column === undefined) throw new Error(`no column ${name}`);
    return column;
  }
}

/** A series as the ingest path needs it. */
interface Feed {
  readonly series: SeriesPlan;
  /** The written column (`name` or `name@version`) that makes a batch relevant. */
  readonly trigger: string;
  readonly label: string;
}

/** One compiled ingest filter. */
interface CompiledFilter {
  readonly filter: IngestFilter;
  readonly column: ColumnPlan;
}

/**
 * Everything ingest needs to know about one source class, computed once: which series
 * it feeds, under which trigger column, with which filters. {@link Tessera.ingest} uses
 * one per class; the stream runner (`ts/resolvers/runner.ts`) builds its own with
 * `new ClassIngest(classPlan, plan)` and calls {@link ClassIngest.prepare} to fold and
 * commit with its positions, so this constructor and `prepare` are a stable contract.
 */
export class ClassIngest {
  readonly namespace: string;
  private readonly columns: ReadonlyMap<string, ColumnPlan>;
  private readonly feeds: readonly Feed[];
  private readonly filters: ReadonlyMap<string, readonly CompiledFilter[]>;

  constructor(
    private readonly cls: ClassPlan,
    plan: Plan,
  ) {
    this.namespace = cls.namespace;
    this.columns = new Map(cls.columns.map((c) => [c.name, c]));
    const feeds: Feed[] = [];
    const filters = new Map<string, CompiledFilter[]>();
    for (const series of plan.series) {
      if (series.namespace !== cls.namespace) continue;
      const trigger =
        series.column === null
          ? series.timeColumn
          : columnKey(series.column.name, series.column.version);
      const column =
        series.column === null ? '*' : columnKey(series.column.name, series.column.version);
      feeds.push({
        series,
        trigger,
        label: `series ${series.id} (${series.namespace}.${column} by ${series.groupKey.join('+')})`,
      });
      filters.set(
        series.id,
        series.filters.map((filter) => {
          const c = this.columns.get(filter.column);
          if (c === undefined) throw new Error(`filter column ${filter.column} is not in the plan`);
          return { filter, column: c };
        }),
      );
    }
    this.feeds = feeds;
    this.filters = filters;
  }

  /** Whether any materialized aggregation reads this class. */
  get feedsSeries(): boolean {
    return this.feeds.length > 0;
  }

  /**
   * Builds the native batches for `rows`. `writes` lists the written columns
   * (`column` or `column@version`); by default every column present in the rows, a
   * versioned column without `@version` meaning its default version.
   */
  prepare(rows: unknown, writes: readonly string[] | undefined): PreparedBatch {
    const ns = this.namespace;
    if (typeof rows !== 'object' || rows === null) {
      throw new InvalidRowsError(
        `${ns}: ingest takes an array of row objects or an object of columns, got ${describeValue(rows)}`,
      );
    }
    const source: ColumnSource = Array.isArray(rows)
      ? new RowSource(rows, ns)
      : new ColumnarSource(rows as Readonly<Record<string, unknown>>, ns);
    const written = this.written(writes ?? [...source.names()], writes !== undefined);
    const n = source.length;
    const convert = new Converter(this.cls, source);
    const batches: SeriesBatchInput[] = [];
    const fed: SeriesFed[] = [];
    if (n === 0) return { rows: 0, batches, series: fed };
    for (const feed of this.feeds) {
      if (!written.has(feed.trigger)) continue;
      const s = feed.series;
      const batch: SeriesBatchInput = {
        seriesId: s.id,
        keys: s.groupKey.map((c) => convert.key(c, feed.label)),
        timestampsMs: convert.time(s.timeColumn),
      };
      if (s.column === null) {
        batch.numbers = convert.ones();
      } else {
        const name = convert.sourceName(s.column.name, s.column.version, feed.label, 'aggregates');
        if (s.valueKind === 'string') {
          const encoded = convert.strings(name, s.column.name);
          batch.strings = encoded.strings;
          batch.codes = encoded.codes;
        } else if (s.valueKind === 'vector') {
          batch.vectors = convert.vectors(name, s.column.name, s.vectorDim ?? 0);
        } else {
          batch.numbers = convert.numbers(name, s.column.name);
        }
      }
      if (s.by !== null) {
        const byName = convert.sourceName(s.by.name, s.by.version, feed.label, "orders by ('by')");
        batch.by = convert.numbers(byName, s.by.name);
      }
      let selected = n;
      const filters = this.filters.get(s.id) ?? [];
      if (filters.length > 0) {
        const selection = convert.selection(filters, feed.label);
        selected = selection.length;
        if (selected === 0) {
          fed.push({ id: s.id, rows: 0 });
          continue;
        }
        if (selected < n) batch.selection = selection;
      }
      batches.push(batch);
      fed.push({ id: s.id, rows: selected });
    }
    return { rows: n, batches, series: fed };
  }

  /** The set of written `column` / `column@version` keys. */
  private written(names: Iterable<string>, explicit: boolean): Set<string> {
    const out = new Set<string>();
    for (const entry of names) {
      if (typeof entry !== 'string') {
        throw new InvalidRowsError(
          `${this.namespace}: writes lists ${describeValue(entry)}, not a column name`,
        );
      }
      const m = VERSIONED.exec(entry);
      const name = m?.[1] ?? entry;
      const version = m?.[2] === undefined ? null : Number(m[2]);
      const column = this.columns.get(name);
      if (column === undefined) {
        if (explicit) {
          throw new InvalidRowsError(
            `${this.namespace}: writes names '${entry}', which is not a column of ${this.namespace} (columns: ${[...this.columns.keys()].join(', ')})`,
          );
        }
        continue;
      }
      if (column.versions === null) {
        if (version !== null) {
          if (explicit) {
            throw new InvalidRowsError(
              `${this.namespace}: writes names '${entry}', but ${this.namespace}.${name} is not versioned`,
            );
          }
          continue;
        }
        out.add(name);
        continue;
      }
      const v = version ?? column.versions.defaultVersion;
      if (!column.versions.types.some((t) => t.version === v)) {
        if (explicit) {
          throw new InvalidRowsError(
            `${this.namespace}: writes names '${entry}', but ${this.namespace}.${name} has versions ${column.versions.types.map((t) => t.version).join(', ')}`,
          );
        }
        continue;
      }
      out.add(columnKey(name, v));
    }
    return out;
  }
}

/** Converts the columns of one batch, each at most once. */
class Converter {
  private readonly n: number;
  private readonly ns: string;
  private readonly columns: ReadonlyMap<string, ColumnPlan>;
  private readonly numberCache = new Map<string, Float64Array>();
  private readonly stringCache = new Map<string, { strings: string[]; codes: Uint32Array }>();
  private readonly keyCache = new Map<string, KeyPart>();
  private readonly selectionCache = new Map<string, Uint32Array>();
  private onesArray: Float64Array | undefined;

  constructor(
    cls: ClassPlan,
    private readonly source: ColumnSource,
  ) {
    this.n = source.length;
    this.ns = cls.namespace;
    this.columns = new Map(cls.columns.map((c) => [c.name, c]));
  }

  private fail(row: number, column: string, problem: string): never {
    throw new InvalidRowsError(`${this.ns} row ${row}: ${column} ${problem}`);
  }

  /** The property holding `name` at `version`: `name@version` if present, else `name`. */
  sourceName(name: string, version: number | null, label: string, role: string): string {
    if (version !== null && this.source.has(`${name}@${version}`)) return `${name}@${version}`;
    if (this.source.has(name)) return name;
    const shown = columnKey(name, version);
    throw new InvalidRowsError(`${this.ns} rows have no column '${shown}', which ${label} ${role}`);
  }

  private type(name: string): ColumnPlan['type'] {
    const c = this.columns.get(name);
    if (c === undefined) throw new Error(`column ${name} is not in the plan`);
    return c.type;
  }

  /** A constant column for count() of rows. */
  ones(): Float64Array {
    this.onesArray ??= new Float64Array(this.n).fill(1);
    return this.onesArray;
  }

  /** The event times: every row must have one. */
  time(column: string): Float64Array {
    const cacheKey = `time:${column}`;
    const cached = this.numberCache.get(cacheKey);
    if (cached !== undefined) return cached;
    if (!this.source.has(column)) {
      throw new InvalidRowsError(
        `${this.ns} rows have no column '${column}', the feature time that puts each row in its bucket`,
      );
    }
    const values = this.source.column(column);
    let out: Float64Array;
    if (values instanceof Float64Array) {
      out = values;
      if (out.length !== this.n) {
        throw new InvalidRowsError(
          `${this.ns}: column '${column}' has ${out.length} values for ${this.n} rows`,
        );
      }
      for (let i = 0; i < this.n; i++) {
        const v = out[i] ?? Number.NaN;
        if (!Number.isFinite(v)) this.fail(i, column, `is ${v}; every row needs its feature time`);
      }
    } else {
      out = new Float64Array(this.n);
      const scratch = { ms: 0 };
      for (let i = 0; i < this.n; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          this.fail(i, column, 'is missing; every row needs its feature time');
        }
        const problem = timeOf(v, scratch);
        if (problem !== null) this.fail(i, column, problem);
        out[i] = scratch.ms;
      }
    }
    this.numberCache.set(cacheKey, out);
    return out;
  }

  /** A numeric column (int, float, boolean as 0/1, datetime as ms); NaN = null. */
  numbers(name: string, column: string): Float64Array {
    const cached = this.numberCache.get(name);
    if (cached !== undefined) return cached;
    const kind = this.type(column).kind;
    const values = this.source.column(name);
    let out: Float64Array;
    if (isTypedArray(values) && kind !== 'boolean') {
      out = values instanceof Float64Array ? values : Float64Array.from(values);
      if (out.length !== this.n) {
        throw new InvalidRowsError(
          `${this.ns}: column '${name}' has ${out.length} values for ${this.n} rows`,
        );
      }
    } else {
      out = new Float64Array(this.n);
      const scratch = { ms: 0 };
      for (let i = 0; i < this.n; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          out[i] = Number.NaN;
        } else if (kind === 'datetime') {
          const problem = timeOf(v, scratch);
          if (problem !== null) this.fail(i, name, problem);
          out[i] = scratch.ms;
        } else if (kind === 'boolean') {
          if (typeof v === 'boolean') out[i] = v ? 1 : 0;
          else if (v === 0 || v === 1) out[i] = v;
          else this.fail(i, name, `is ${describeValue(v)}, not a boolean`);
        } else if (typeof v === 'number') {
          out[i] = v;
        } else {
          this.fail(i, name, `is ${describeValue(v)}, not a number (${kind})`);
        }
      }
    }
    this.numberCache.set(name, out);
    return out;
  }

  /** A string column, dictionary-encoded. */
  strings(name: string, column: string): { strings: string[]; codes: Uint32Array } {
    const cached = this.stringCache.get(name);
    if (cached !== undefined) return cached;
    const values = this.source.column(name);
    const dictionary = new StringDictionary();
    const codes = new Uint32Array(this.n);
    for (let i = 0; i < this.n; i++) {
      const v = values[i];
      if (v === null || v === undefined) codes[i] = NULL_CODE;
      else if (typeof v === 'string') codes[i] = dictionary.code(v);
      else this.fail(i, name, `is ${describeValue(v)}, not a string (${this.ns}.${column})`);
    }
    const out = { strings: dictionary.strings, codes };
    this.stringCache.set(name, out);
    return out;
  }

  /** A vector column as one row-major array; a null vector is all NaN (skipped). */
  vectors(name: string, column: string, dim: number): Float64Array {
    const values = this.source.column(name);
    if (values instanceof Float64Array && values.length === this.n * dim) {
      return values;
    }
    const out = new Float64Array(this.n * dim);
    for (let i = 0; i < this.n; i++) {
      const v = values[i];
      if (v === null || v === undefined) {
        out.fill(Number.NaN, i * dim, (i + 1) * dim);
        continue;
      }
      if (!(Array.isArray(v) || isTypedArray(v))) {
        this.fail(i, name, `is ${describeValue(v)}, not a vector of ${dim} numbers`);
      }
      const vector = v as ArrayLike<unknown>;
      if (vector.length !== dim) {
        this.fail(i, name, `has ${vector.length} components; ${this.ns}.${column} has ${dim}`);
      }
      for (let j = 0; j < dim; j++) {
        const x = vector[j];
        if (typeof x !== 'number') {
          this.fail(i, name, `component ${j} is ${describeValue(x)}, not a number`);
        }
        out[i * dim + j] = x;
      }
    }
    return out;
  }

  /** One part of the group key: integers (NaN = null) or dictionary-encoded strings. */
  key(column: string, label: string): KeyPart {
    const cached = this.keyCache.get(column);
    if (cached !== undefined) return cached;
    const name = this.sourceName(column, null, label, 'is keyed by');
    const kind = this.type(column).kind;
    let part: KeyPart;
    if (kind === 'string') {
      const { strings, codes } = this.strings(name, column);
      part = { strings, codes };
    } else {
      const ints = this.numbers(name, column);
      for (let i = 0; i < this.n; i++) {
        const v = ints[i] ?? Number.NaN;
        if (!Number.isNaN(v) && !Number.isSafeInteger(v)) {
          this.fail(i, name, `is ${v}; a group key must be a whole number within 2^53`);
        }
      }
      part = { ints };
    }
    this.keyCache.set(column, part);
    return part;
  }

  /** Indexes of the rows passing every filter. */
  selection(filters: readonly CompiledFilter[], label: string): Uint32Array {
    const cacheKey = filters.map((f) => f.filter.text).join(' AND ');
    const cached = this.selectionCache.get(cacheKey);
    if (cached !== undefined) return cached;
    const pass = new Uint8Array(this.n).fill(1);
    for (const { filter, column } of filters) {
      const name = this.sourceName(
        filter.column,
        filter.version,
        label,
        `filters on (\`${filter.text}\`)`,
      );
      if (column.type.kind === 'string') {
        const { strings, codes } = this.strings(name, filter.column);
        const test = stringPredicate(filter);
        const verdicts = strings.map(test);
        const nullVerdict = test(null);
        for (let i = 0; i < this.n; i++) {
          const code = codes[i] ?? NULL_CODE;
          if (!(code === NULL_CODE ? nullVerdict : verdicts[code])) pass[i] = 0;
        }
      } else {
        const values = this.numbers(name, filter.column);
        const test = numberPredicate(filter);
        for (let i = 0; i < this.n; i++) {
          if (pass[i] === 1 && !test(values[i] ?? Number.NaN)) pass[i] = 0;
        }
      }
    }
    let count = 0;
    for (let i = 0; i < this.n; i++) count += pass[i] ?? 0;
    const out = new Uint32Array(count);
    let j = 0;
    for (let i = 0; i < this.n; i++) if (pass[i] === 1) out[j++] = i;
    this.selectionCache.set(cacheKey, out);
    return out;
  }
}

/** A filter literal as a number (booleans 1/0, datetimes ms), `null` for null. */
function numericLiteral(value: FilterValue): number | null {
  if (value === null) return null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'number') return value;
  return Number.NaN; // a string against a number column never matches
}

/**
 * `value op literal` on numbers, NaN standing for null. As in SQL, a comparison with a
 * null value is not true (`!= 5` does not pass null), except the explicit null tests
 * `== null` and `!= null`, and `in` lists that contain null.
 */
function numberPredicate(filter: IngestFilter): (x: number) => boolean {
  const { op } = filter;
  if (op === 'in') {
    const list = (filter.value as readonly FilterValue[]).map(numericLiteral);
    const set = new Set(list.filter((v): v is number => v !== null));
    const hasNull = list.includes(null);
    return (x) => (Number.isNaN(x) ? hasNull : set.has(x));
  }
  const lit = numericLiteral(filter.value as FilterValue);
  if (lit === null) {
    return op === '==' ? (x) => Number.isNaN(x) : (x) => !Number.isNaN(x);
  }
  switch (op) {
    case '==':
      return (x) => x === lit;
    case '!=':
      return (x) => !Number.isNaN(x) && x !== lit;
    case '>':
      return (x) => x > lit;
    case '>=':
      return (x) => x >= lit;
    case '<':
      return (x) => x < lit;
    case '<=':
      return (x) => x <= lit;
  }
}

/** `value op literal` on strings (`null` = a null value); same null rules as numbers. */
function stringPredicate(filter: IngestFilter): (x: string | null) => boolean {
  const { op } = filter;
  if (op === 'in') {
    const list = filter.value as readonly FilterValue[];
    const set = new Set(list.filter((v): v is string => typeof v === 'string'));
    const hasNull = list.includes(null);
    return (x) => (x === null ? hasNull : set.has(x));
  }
  const lit = filter.value as FilterValue;
  if (lit === null) return op === '==' ? (x) => x === null : (x) => x !== null;
  if (typeof lit !== 'string') return () => false;
  switch (op) {
    case '==':
      return (x) => x === lit;
    case '!=':
      return (x) => x !== null && x !== lit;
    case '>':
      return (x) => x !== null && x > lit;
    case '>=':
      return (x) => x !== null && x >= lit;
    case '<':
      return (x) => x !== null && x < lit;
    case '<=':
      return (x) => x !== null && x <= lit;
  }
}
