/**
 * Windowed stream resolvers (docs/semantics.md section 6.1): the resolver receives the
 * messages of a window, as a list or a {@link DataFrame}, and returns the feature's value,
 * rows, or a SQL string over the messages that DuckDB runs.
 *
 * - `mode: 'tumbling'` (default): fixed, non-overlapping periods of each declared window
 *   (`[k·W, (k+1)·W)` on the epoch); a period's messages are held in the store until the
 *   newest event time passes its end, then the resolver runs once per period and key and
 *   the values are stored, observed at the period's end.
 * - `mode: 'continuous'`: needs `keys`; every message is kept in the store for the
 *   largest window, and a query computes the exact window `(now - W, now]` on demand.
 *
 * This file holds the definition and what the runner (`windowed-runner.ts`) and the
 * query path (`ts/api/windowed-query.ts`) share: the key text, the resolver call, the
 * check of its values.
 */
import type { z } from 'zod';
import { parseWindows } from '../dsl/window-ref.js';
import type { ClassPlan, Plan } from '../planner/types.js';
import { describeValue } from '../rows/describe.js';
import { numberValueProblem, wellFormedProblem } from '../rows/values.js';
import type { Source } from '../sources/source.js';
import { fieldReader, StreamResolverError } from './stream-resolver.js';
import type { WindowSql } from './windowed-sql.js';

/**
 * A window's messages as columns, for resolvers that want a frame rather than a list.
 * In a template literal it stands for the table DuckDB sees, so a resolver can return
 * `` `select count(*) from ${events} where failed` ``.
 */
export class DataFrame<M extends Record<string, unknown> = Record<string, unknown>> {
  constructor(
    readonly rows: readonly M[],
    /** The name of the table SQL resolvers read. */
    readonly tableName = 'messages',
  ) {}

  get length(): number {
    return this.rows.length;
  }

  /** One column's values. */
  column<K extends keyof M & string>(name: K): M[K][] {
    return this.rows.map((r) => r[name]);
  }

  /** Sum of a numeric column (non-numbers skipped). */
  sum(name: keyof M & string): number {
    let s = 0;
    for (const r of this.rows) {
      const v = r[name];
      if (typeof v === 'number') s += v;
      else if (typeof v === 'boolean') s += v ? 1 : 0;
    }
    return s;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.rows[Symbol.iterator]();
  }

  toString(): string {
    return this.tableName;
  }
}

/** What a windowed resolver is told about the window it computes. */
export interface WindowContext {
  /** The declared window (`10m`). */
  readonly window: string;
  readonly windowMs: number;
  /** The window's bounds, Unix ms: `(start, end]` continuous, `[start, end)` tumbling. */
  readonly startMs: number;
  readonly endMs: number;
  /** The key's values by message field (with `keys`). */
  readonly key: Readonly<Record<string, unknown>> | null;
}

/** What a windowed resolver returns: a value, rows (`{ <key columns>, <feature> }`), or SQL. */
export type WindowedResult =
  | number
  | string
  | boolean
  | null
  | Readonly<Record<string, unknown>>
  | readonly Readonly<Record<string, unknown>>[];

/** The parts of a windowed feature (`User.num_failed_logins`) a resolver needs. */
export interface WindowedOutput {
  readonly kind: 'windowed_feature';
  readonly namespace: string;
  readonly featureName: string;
  readonly windows: readonly string[];
}

/** Options of {@link makeWindowedStreamResolver}. */
export interface WindowedStreamResolverOptions<S extends z.ZodType> {
  name: string;
  source: Source;
  messageType: S;
  /** The windowed feature the resolver computes (a feature without expression). */
  output: WindowedOutput;
  mode?: 'tumbling' | 'continuous';
  /**
   * Message field -> key column of the output's class (`{ user_id: 'id' }`): messages are
   * grouped by these fields and the resolver runs per key. Required with `continuous`.
   */
  keys?: Readonly<Record<string, string>>;
  /** The message field with the event time (zoned); default: the source's time. */
  timestamp?: string;
  /** Hand the resolver a {@link DataFrame} instead of a list (default `list`). */
  input?: 'list' | 'dataframe';
  /**
   * The window's messages -> the value (with `keys`), rows with the key columns and the
   * feature (without), or a SQL string over the messages table.
   */
  resolve: (
    messages: z.output<S>[] & DataFrame<z.output<S> & Record<string, unknown>>,
    context: WindowContext,
  ) => WindowedResult | Promise<WindowedResult>;
  /** The feature's value for a key without messages in a window (default: the feature's). */
  default?: unknown;
}

/** A windowed stream resolver: a frozen definition. */
export interface WindowedStreamResolver {
  readonly kind: 'windowed_stream_resolver';
  readonly name: string;
  readonly source: Source;
  readonly messageType: z.ZodType;
  readonly namespace: string;
  readonly feature: string;
  readonly windows: readonly { readonly declared: string; readonly ms: number }[];
  readonly mode: 'tumbling' | 'continuous';
  readonly keys: readonly { readonly field: string; readonly column: string }[];
  readonly timestamp: ((m: unknown) => unknown) | null;
  /** The message field of `timestamp`, for dead letters. */
  readonly timestampField: string | null;
  readonly input: 'list' | 'dataframe';
  readonly resolve: (messages: never, context: WindowContext) => unknown;
  readonly default: unknown;
}

/**
 * Declares a windowed stream resolver.
 *
 * @example
 * const failedLogins = makeWindowedStreamResolver({
 *   name: 'failed_logins',
 *   source,
 *   messageType: LoginMessage,
 *   output: User.num_failed_logins, // windowed('10m', '30m', '1d', { default: 0 })
 *   keys: { user_id: 'id' },
 *   resolve: (events) => events.filter((e) => e.failed).length,
 * });
 */
export function makeWindowedStreamResolver<S extends z.ZodType>(
  options: WindowedStreamResolverOptions<S>,
): WindowedStreamResolver {
  const fail = (problem: string): never => {
    throw new StreamResolverError(`windowed stream resolver ${options.name}: ${problem}`);
  };
  if (typeof options.name !== 'string' || options.name === '' || options.name.includes('\0')) {
    fail('needs a name (text without NUL)');
  }
  const output = options.output as Partial<WindowedOutput>;
  if (output?.kind !== 'windowed_feature' || output.windows === undefined) {
    fail('output must be a windowed feature (User.num_failed_logins)');
  }
  const windows = parseWindows(output.windows ?? []).map((w) => ({
    declared: w.declared,
    ms: w.ms,
  }));
  if (windows.length === 0) fail('the output feature declares no windows');
  const mode = options.mode ?? 'tumbling';
  if (mode !== 'tumbling' && mode !== 'continuous') fail(`unknown mode '${String(mode)}'`);
  const keys = Object.entries(options.keys ?? {}).map(([field, column]) => ({ field, column }));
  if (mode === 'continuous' && keys.length === 0) fail("mode 'continuous' needs keys");
  if (typeof options.resolve !== 'function') fail('resolve must be a function');
  return Object.freeze({
    kind: 'windowed_stream_resolver',
    name: options.name,
    source: options.source,
    messageType: options.messageType as z.ZodType,
    namespace: output.namespace ?? '',
    feature: output.featureName ?? '',
    windows: Object.freeze(windows),
    mode,
    keys: Object.freeze(keys),
    timestamp:
      options.timestamp === undefined ? null : fieldReader(options.timestamp, () => undefined),
    timestampField: options.timestamp ?? null,
    input: options.input ?? 'list',
    resolve: options.resolve as WindowedStreamResolver['resolve'],
    default: options.default ?? null,
  });
}

/** Whether `value` was made by {@link makeWindowedStreamResolver}. */
export function isWindowedStreamResolver(value: unknown): value is WindowedStreamResolver {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { kind?: unknown }).kind === 'windowed_stream_resolver'
  );
}

/**
 * A resolver bound to a plan: its class, the columns its values are keyed by (the
 * `keys` columns, or the class's primary key without keys) and how each key's text is
 * made, shared by the runner that writes values and the queries that read them.
 */
export class BoundWindowed {
  readonly cls: ClassPlan;
  /** The class columns a value is keyed by, in key order. */
  readonly keyColumns: readonly string[];
  /** Their kinds, for the key text. */
  private readonly keyKinds: readonly string[];
  readonly largestMs: number;
  /** The feature's `maxStaleness`, or `null` (any age). */
  readonly maxStalenessMs: number | null;

  constructor(
    readonly resolver: WindowedStreamResolver,
    plan: Plan,
  ) {
    const fail = (problem: string): never => {
      throw new StreamResolverError(`windowed stream resolver ${resolver.name}: ${problem}`);
    };
    const cls = plan.classes.find((c) => c.namespace === resolver.namespace);
    if (cls === undefined) fail(`its output class ${resolver.namespace} is not planned`);
    this.cls = cls as ClassPlan;
    const feature = plan.features.find(
      (f) => f.namespace === resolver.namespace && f.name === resolver.feature,
    );
    if (feature === undefined || feature.kind !== 'resolver') {
      fail(
        `${resolver.namespace}.${resolver.feature} is not a windowed feature without an expression of the plan`,
      );
    }
    this.keyColumns =
      resolver.keys.length > 0 ? resolver.keys.map((k) => k.column) : this.cls.primaryKey;
    this.keyKinds = this.keyColumns.map((name) => {
      const column = this.cls.columns.find((c) => c.name === name);
      if (column === undefined) {
        fail(`key column ${name} is not a column of ${this.cls.namespace}`);
      }
      return column?.type.kind ?? 'string';
    });
    if (this.keyColumns.length === 0)
      fail(`${this.cls.namespace} has no primary key to key values by`);
    this.largestMs = Math.max(...resolver.windows.map((w) => w.ms));
    this.maxStalenessMs = feature?.maxStalenessMs ?? null;
    if (this.maxStalenessMs !== null && resolver.mode === 'continuous') {
      fail(
        `${resolver.namespace}.${resolver.feature} declares maxStaleness, which applies to tumbling values; a continuous window is computed when it is asked`,
      );
    }
  }

  /**
   * The text a key is stored under: its values in key order, each as its column's kind
   * (`'7'` and `7` are the same int key), or `null` with the column whose value is
   * missing or of another kind.
   */
  keyText(values: readonly unknown[]): { text: string } | { column: string; problem: string } {
    const parts: (number | string | boolean)[] = [];
    for (const [i, kind] of this.keyKinds.entries()) {
      const column = this.keyColumns[i] as string;
      let v = values[i];
      if (typeof v === 'bigint') v = Number(v);
      if (v === null || v === undefined) return { column, problem: 'is missing' };
      if (kind === 'int' || kind === 'float') {
        const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
        if (
          typeof n !== 'number' ||
          !Number.isFinite(n) ||
          (kind === 'int' && !Number.isSafeInteger(n))
        ) {
          return {
            column,
            problem: `is ${describeValue(v)}, not a ${kind === 'int' ? 'whole number within 2^53' : 'number'}`,
          };
        }
        parts.push(n);
      } else if (kind === 'boolean') {
        if (typeof v !== 'boolean')
          return { column, problem: `is ${describeValue(v)}, not a boolean` };
        parts.push(v);
      } else {
        if (typeof v !== 'string' && typeof v !== 'number') {
          return { column, problem: `is ${describeValue(v)}, not a string` };
        }
        parts.push(String(v));
      }
    }
    return { text: JSON.stringify(parts) };
  }

  /** The window of the feature `ms` long (`10m`), or an error naming the windows. */
  window(ms: number): { readonly declared: string; readonly ms: number } {
    const w = this.resolver.windows.find((x) => x.ms === ms);
    if (w === undefined) {
      throw new StreamResolverError(
        `${this.resolver.namespace}.${this.resolver.feature} has no window of ${ms} ms (windows: ${this.resolver.windows.map((x) => x.declared).join(', ')})`,
      );
    }
    return w;
  }

  /**
   * Calls the resolver on `messages` (a list or a frame), running a returned SQL string
   * with `sql`.
   */
  async invoke(
    messages: Record<string, unknown>[],
    context: WindowContext,
    sql: () => Promise<WindowSql>,
  ): Promise<unknown> {
    const frame = new DataFrame(messages, `${this.resolver.name}_messages`);
    const input =
      this.resolver.input === 'dataframe'
        ? frame
        : Object.assign([...messages], {
            tableName: frame.tableName,
            toString: () => frame.tableName,
          });
    const result = (await this.resolver.resolve(input as never, context)) as unknown;
    if (typeof result !== 'string') return result;
    return (await sql()).run(result, frame.tableName, messages);
  }

  /**
   * The feature value in a resolver's result for one key: a value, a row holding the
   * feature's column, or the first row; `undefined` for no row.
   */
  valueOf(result: unknown): unknown {
    const row = Array.isArray(result) ? result[0] : result;
    if (row === undefined) return undefined;
    if (typeof row !== 'object' || row === null) return row;
    const record = row as Record<string, unknown>;
    if (this.resolver.feature in record) return record[this.resolver.feature];
    const values = Object.values(record);
    return values.length === 1 ? values[0] : undefined;
  }

  /**
   * The rows of a whole period's result (no keys): each row's key text and value, or the
   * problem of a row that does not name its key.
   */
  rowsOf(result: unknown): ({ key: string; value: unknown } | { problem: string })[] {
    const list = Array.isArray(result)
      ? result
      : result === null || result === undefined
        ? []
        : [result];
    return list.map((row, i) => {
      if (typeof row !== 'object' || row === null) {
        return {
          problem: `row ${i} is ${describeValue(row)}, not a row of ${this.keyColumns.join(', ')} and ${this.resolver.feature}`,
        };
      }
      const record = row as Record<string, unknown>;
      const key = this.keyText(this.keyColumns.map((c) => record[c]));
      if ('problem' in key) return { problem: `row ${i}: ${key.column} ${key.problem}` };
      return { key: key.text, value: record[this.resolver.feature] };
    });
  }
}

/**
 * Why a resolver's value cannot be stored (the one check of values that rows get,
 * `ts/rows/values.ts`), or `null`: a finite number, a string UTF-8 holds exactly, a
 * boolean or null.
 */
export function windowedValueProblem(value: unknown): string | null {
  if (value === null || typeof value === 'boolean') return null;
  if (typeof value === 'bigint') return numberValueProblem('int', Number(value));
  if (typeof value === 'number') return numberValueProblem('float', value);
  if (typeof value === 'string') return wellFormedProblem(value);
  return `is ${describeValue(value)}, not a number, string, boolean or null`;
}
