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
import { groupKeyColumnsProblem, groupKeyName, numberKeyProblem } from '../rows/keys.js';
import {
  columnKey,
  missingColumnProblem,
  parseColumnName,
  seriesLabel,
  seriesTrigger,
  writtenColumns,
} from '../rows/names.js';
import { MAX_TIME_MS, timeProblem } from '../rows/time.js';
import {
  isNullValue,
  type NumericKind,
  numberProblem,
  stringProblem,
  typedColumnProblem,
  typedVectorProblem,
  vectorProblem,
  wellFormedProblem,
} from '../rows/values.js';
import { InvalidRowsError } from './errors.js';
import { describeValue, isTypedArray, NULL_CODE, StringDictionary } from './values.js';

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
      feeds.push({ series, trigger: seriesTrigger(series), label: seriesLabel(series) });
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
   * versioned column without `@version` meaning its default version. With `only`,
   * batches are built for those series alone (a backfill rebuilding some series).
   */
  prepare(
    rows: unknown,
    writes: readonly string[] | undefined,
    only?: ReadonlySet<string>,
  ): PreparedBatch {
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
      if (only !== undefined && !only.has(feed.series.id)) continue;
      const s = feed.series;
      const batch: SeriesBatchInput = {
        seriesId: s.id,
        keys: convert.groupKey(s.groupKey, feed.label),
        timestampsMs: convert.time(s.timeColumn),
      };
      if (s.column === null) {
        batch.numbers = convert.ones();
      } else {
        const name = convert.sourceName(s.column.name, s.column.version, feed.label, 'aggregates');
        if (s.valueKind === 'string') {
          const encoded = convert.strings(name);
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
    // Columns no series reads are checked all the same, as a stream resolver checks them.
    for (const name of source.names()) convert.check(name);
    return { rows: n, batches, series: fed };
  }

  /** The set of written `column` / `column@version` keys. */
  private written(names: Iterable<string>, explicit: boolean): Set<string> {
    return writtenColumns(this.cls, names, explicit, (problem) => {
      throw new InvalidRowsError(`${this.namespace}: ${problem}`);
    });
  }
}

/**
 * Converts the columns of one batch, each at most once, through the conversion path every
 * way rows enter shares (`ts/rows/`): a bad value throws the problem a stream resolver's
 * dead letter states for it, after the class and the row.
 */
class Converter {
  private readonly n: number;
  private readonly ns: string;
  private readonly columns: ReadonlyMap<string, ColumnPlan>;
  private readonly numberCache = new Map<string, Float64Array>();
  private readonly stringCache = new Map<string, { strings: string[]; codes: Uint32Array }>();
  private readonly keyCache = new Map<string, KeyPart>();
  private readonly groupKeyCache = new Map<string, KeyPart[]>();
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
    throw InvalidRowsError.atRow(this.ns, row, `${column} ${problem}`);
  }

  /** The property holding `name` at `version`: `name@version` if present, else `name`. */
  sourceName(name: string, version: number | null, label: string, role: string): string {
    if (version !== null && this.source.has(`${name}@${version}`)) return `${name}@${version}`;
    if (this.source.has(name)) return name;
    const shown = columnKey(name, version);
    throw new InvalidRowsError(`${this.ns} rows ${missingColumnProblem(shown, label, role)}`);
  }

  private type(name: string): ColumnPlan['type'] {
    const c = this.columns.get(name);
    if (c === undefined) throw new Error(`column ${name} is not in the plan`);
    return c.type;
  }

  /** The column's kind as one number per row (string and vector columns have none). */
  private numericKind(column: string): NumericKind {
    const kind = this.type(column).kind;
    return kind === 'string' || kind === 'vector' ? 'float' : kind;
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
    const missing = 'is missing; every row needs its feature time';
    let out: Float64Array;
    if (values instanceof Float64Array) {
      out = this.checkedLength(values, column);
      const scratch = { ms: 0 };
      for (let i = 0; i < this.n; i++) {
        const v = out[i] as number;
        if (Number.isNaN(v)) this.fail(i, column, missing);
        // In-range ms pass with two comparisons; the rest take the full check.
        if (v - v === 0 && Math.abs(v) <= MAX_TIME_MS) continue;
        const problem = timeProblem(v, scratch);
        if (problem !== null) this.fail(i, column, problem);
      }
    } else {
      out = new Float64Array(this.n);
      const scratch = { ms: 0 };
      for (let i = 0; i < this.n; i++) {
        const v = values[i];
        if (isNullValue(v)) this.fail(i, column, missing);
        const problem = timeProblem(v, scratch);
        if (problem !== null) this.fail(i, column, problem);
        out[i] = scratch.ms;
      }
    }
    this.numberCache.set(cacheKey, out);
    return out;
  }

  private checkedLength(values: Float64Array, name: string): Float64Array {
    if (values.length !== this.n) {
      throw new InvalidRowsError(
        `${this.ns}: column '${name}' has ${values.length} values for ${this.n} rows`,
      );
    }
    return values;
  }

  /** A numeric column (int, float, boolean as 0/1, datetime as ms); NaN = null. */
  numbers(name: string, column: string): Float64Array {
    const cached = this.numberCache.get(name);
    if (cached !== undefined) return cached;
    const kind = this.numericKind(column);
    const values = this.source.column(name);
    let out: Float64Array;
    if (isTypedArray(values)) {
      out = this.checkedLength(
        values instanceof Float64Array ? values : Float64Array.from(values),
        name,
      );
      const bad = typedColumnProblem(kind, out);
      if (bad !== null) this.fail(bad.row, name, bad.problem);
    } else {
      out = new Float64Array(this.n);
      const scratch = { n: 0 };
      for (let i = 0; i < this.n; i++) {
        const v = values[i];
        if (isNullValue(v)) {
          out[i] = Number.NaN;
          continue;
        }
        const problem = numberProblem(kind, v, scratch);
        if (problem !== null) this.fail(i, name, problem);
        out[i] = scratch.n;
      }
    }
    this.numberCache.set(name, out);
    return out;
  }

  /** A string column, dictionary-encoded. */
  strings(name: string): { strings: string[]; codes: Uint32Array } {
    const cached = this.stringCache.get(name);
    if (cached !== undefined) return cached;
    const values = this.source.column(name);
    const dictionary = new StringDictionary();
    const codes = new Uint32Array(this.n);
    for (let i = 0; i < this.n; i++) {
      const v = values[i];
      if (v === null || v === undefined) {
        codes[i] = NULL_CODE;
        continue;
      }
      if (typeof v !== 'string') this.fail(i, name, stringProblem(v) as string);
      const before = dictionary.strings.length;
      const code = dictionary.code(v);
      if (code === before) {
        // Each distinct string is checked once.
        const problem = wellFormedProblem(v);
        if (problem !== null) this.fail(i, name, problem);
      }
      codes[i] = code;
    }
    const out = { strings: dictionary.strings, codes };
    this.stringCache.set(name, out);
    return out;
  }

  /** Checks the column `name` (`column` / `column@version`) of the class, if it is one. */
  check(name: string): void {
    const { column } = parseColumnName(name);
    const plan = this.columns.get(column);
    if (plan === undefined || this.numberCache.has(`time:${name}`)) return;
    const kind = plan.type.kind;
    if (kind === 'string') this.strings(name);
    else if (kind === 'vector') this.vectors(name, column, plan.type.dim ?? 0);
    else this.numbers(name, column);
  }

  /** A vector column as one row-major array; a null vector is all NaN (skipped). */
  vectors(name: string, column: string, dim: number): Float64Array {
    const cached = this.numberCache.get(`vector:${name}`);
    if (cached !== undefined) return cached;
    const out = this.convertVectors(name, column, dim);
    this.numberCache.set(`vector:${name}`, out);
    return out;
  }

  private convertVectors(name: string, column: string, dim: number): Float64Array {
    const values = this.source.column(name);
    if (values instanceof Float64Array && values.length === this.n * dim) {
      const bad = typedVectorProblem(values, dim);
      if (bad !== null) this.fail(bad.row, name, bad.problem);
      return values;
    }
    const out = new Float64Array(this.n * dim);
    for (let i = 0; i < this.n; i++) {
      const v = values[i];
      if (v === null || v === undefined) {
        out.fill(Number.NaN, i * dim, (i + 1) * dim);
        continue;
      }
      const problem = vectorProblem(v, dim, this.ns, column, out, i * dim);
      if (problem !== null) this.fail(i, name, problem);
    }
    return out;
  }

  /**
   * The parts of a group key: integers (NaN = null) or dictionary-encoded strings, each
   * a key the store encodes exactly (whole numbers within 2^53, well-formed strings, and
   * within the key format's byte budget together).
   */
  groupKey(columns: readonly string[], label: string): KeyPart[] {
    const cacheKey = columns.join('\u0000');
    const cached = this.groupKeyCache.get(cacheKey);
    if (cached !== undefined) return cached;
    const parts = columns.map((c) => this.key(c, label));
    const bad = groupKeyColumnsProblem(columns, parts as never, this.n);
    if (bad !== null) this.fail(bad.row, groupKeyName(columns), bad.problem);
    this.groupKeyCache.set(cacheKey, parts);
    return parts;
  }

  /** One part of a group key. */
  private key(column: string, label: string): KeyPart {
    const cached = this.keyCache.get(column);
    if (cached !== undefined) return cached;
    const name = this.sourceName(column, null, label, 'is keyed by');
    const kind = this.type(column).kind;
    let part: KeyPart;
    if (kind === 'string') {
      const { strings, codes } = this.strings(name);
      part = { strings, codes };
    } else {
      const ints = this.numbers(name, column);
      // An int column's conversion has already refused every value that is not a whole
      // number within 2^53; other kinds (datetime, boolean, float) are checked here.
      if (kind !== 'int') {
        for (let i = 0; i < this.n; i++) {
          const v = ints[i] as number;
          const problem = Number.isNaN(v) ? null : numberKeyProblem(v);
          if (problem !== null) this.fail(i, name, problem);
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
        const { strings, codes } = this.strings(name);
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
