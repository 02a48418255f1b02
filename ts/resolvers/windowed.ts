/**
 * Windowed stream resolvers: the resolver receives the messages of a window, as a list or a
 * {@link DataFrame}, and returns the feature's value, or a SQL string over the messages
 * that DuckDB runs.
 *
 * - `mode: 'tumbling'` (default): fixed, non-overlapping periods of each declared window
 *   (`[k·W, (k+1)·W)` on the epoch); the resolver runs once per period when the newest
 *   event time passes its end (or when the source ends), and the period's values are
 *   served until the next period closes.
 * - `mode: 'continuous'`: needs `keys`; messages are retained per key for the largest
 *   window, and a query computes the exact window `(now - W, now]` on demand.
 *
 * Values live in the runner (in memory) and are read with {@link WindowedStreamRunner.query};
 * they are not written to the bucket store, which holds mergeable states only.
 */
import type { z } from 'zod';
import { timeOf } from '../api/values.js';
import { parseWindows } from '../dsl/window-ref.js';
import { importOptionalPeer } from '../optional-peer.js';
import type { Source, SourceMessage } from '../sources/source.js';
import { fieldReader, StreamResolverError } from './stream-resolver.js';

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
  if (typeof options.name !== 'string' || options.name === '') fail('needs a name');
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
    input: options.input ?? 'list',
    resolve: options.resolve as WindowedStreamResolver['resolve'],
    default: options.default ?? null,
  });
}

/** A key given as columns, in a canonical order (numbers and numeric strings alike). */
function rowKey(columns: Readonly<Record<string, unknown>>): string {
  return JSON.stringify(
    Object.entries(columns)
      .map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v])
      .sort(([a], [b]) => String(a).localeCompare(String(b))),
  );
}

interface Retained {
  readonly t: number;
  readonly message: Record<string, unknown>;
}

/** The counters of a windowed runner. */
export interface WindowedStreamMetrics {
  readonly messages: number;
  readonly invalid: number;
  readonly resolverRuns: number;
  readonly periodsClosed: number;
}

/** One SQL runner per process, created on first use. */
let duck:
  | Promise<{
      run: (
        sql: string,
        table: string,
        rows: readonly Record<string, unknown>[],
      ) => Promise<Record<string, unknown>[]>;
    }>
  | undefined;

async function duckdb() {
  duck ??= (async () => {
    const api = await importOptionalPeer(
      '@duckdb/node-api',
      'A SQL windowed resolver',
      () => import('@duckdb/node-api'),
    );
    const instance = await api.DuckDBInstance.create(':memory:', { threads: '1' });
    const connection = await instance.connect();
    let queue: Promise<unknown> = Promise.resolve();
    const run = async (sql: string, table: string, rows: readonly Record<string, unknown>[]) => {
      const task = queue.then(async () => {
        const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
        const types = columns.map((c) => {
          const v = rows.find((r) => r[c] !== undefined && r[c] !== null)?.[c];
          return typeof v === 'number' ? 'DOUBLE' : typeof v === 'boolean' ? 'BOOLEAN' : 'VARCHAR';
        });
        const quoted = (name: string) => `"${name.replace(/"/g, '""')}"`;
        await connection.run(
          `CREATE OR REPLACE TEMP TABLE ${quoted(table)} (${columns.map((c, i) => `${quoted(c)} ${types[i]}`).join(', ') || 'dummy INTEGER'})`,
        );
        if (columns.length > 0 && rows.length > 0) {
          const appender = await connection.createAppender(table);
          for (const row of rows) {
            columns.forEach((c, i) => {
              const v = row[c];
              if (v === undefined || v === null) appender.appendNull();
              else if (types[i] === 'DOUBLE') appender.appendDouble(Number(v));
              else if (types[i] === 'BOOLEAN') appender.appendBoolean(Boolean(v));
              else appender.appendVarchar(typeof v === 'string' ? v : JSON.stringify(v));
            });
            appender.endRow();
          }
          appender.closeSync();
        }
        const reader = await connection.runAndReadAll(sql);
        return reader
          .getRowObjectsJS()
          .map((r) =>
            Object.fromEntries(
              Object.entries(r).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v]),
            ),
          );
      });
      queue = task.catch(() => undefined);
      return task;
    };
    return { run };
  })();
  return duck;
}

/**
 * Runs a windowed stream resolver: consumes its source, keeps the messages its windows
 * need, runs the resolver per window (tumbling) or per query (continuous).
 *
 * @example
 * const runner = new WindowedStreamRunner(failedLogins);
 * await runner.run(); // a finite source: until it ends
 * await runner.query({ id: 42 }, '10m'); // the value of the last closed 10m period
 */
export class WindowedStreamRunner {
  private readonly retained = new Map<string, Retained[]>();
  private readonly keyValues = new Map<string, Record<string, unknown>>();
  /** Tumbling: per window, the open periods' messages by key, by period start. */
  private readonly open = new Map<number, Map<number, Map<string, Retained[]>>>();
  /** Tumbling: per window, the last closed period and its values by key. */
  private readonly closed = new Map<
    number,
    { startMs: number; endMs: number; values: Map<string, unknown> }
  >();
  private watermark = Number.NEGATIVE_INFINITY;
  private stopRequested = false;
  private counters = { messages: 0, invalid: 0, resolverRuns: 0, periodsClosed: 0 };
  private readonly keyReaders: ((m: unknown) => unknown)[];
  private readonly largestMs: number;

  constructor(
    readonly resolver: WindowedStreamResolver,
    private readonly options: { batchSize?: number; maxWaitMs?: number } = {},
  ) {
    this.keyReaders = resolver.keys.map((k) => fieldReader(k.field, () => undefined));
    this.largestMs = Math.max(...resolver.windows.map((w) => w.ms));
  }

  metrics(): WindowedStreamMetrics {
    return { ...this.counters };
  }

  /** Consumes until {@link stop} or the end of a finite source (then closes every period). */
  async run(): Promise<WindowedStreamMetrics> {
    const source = this.resolver.source;
    this.stopRequested = false;
    await source.start([]);
    try {
      while (!this.stopRequested) {
        const batch = await source.poll(
          this.options.batchSize ?? 4096,
          this.options.maxWaitMs ?? 100,
        );
        if (batch.length === 0) {
          if (source.ended) break;
          continue;
        }
        for (const raw of batch) this.accept(raw);
        if (this.resolver.mode === 'tumbling') await this.closePeriods(this.watermark);
      }
      if (this.resolver.mode === 'tumbling') await this.closePeriods(Number.POSITIVE_INFINITY);
    } finally {
      await source.close();
    }
    return this.metrics();
  }

  async stop(): Promise<void> {
    this.stopRequested = true;
  }

  /** Adds one message (also usable without a source, e.g. from tests). */
  accept(raw: SourceMessage): void {
    this.counters.messages += 1;
    let json: unknown;
    try {
      json = JSON.parse(raw.value.toString('utf8'));
    } catch {
      this.counters.invalid += 1;
      return;
    }
    const parsed = this.resolver.messageType.safeParse(json);
    if (!parsed.success) {
      this.counters.invalid += 1;
      return;
    }
    const message = parsed.data as Record<string, unknown>;
    let t = raw.timestampMs;
    if (this.resolver.timestamp !== null) {
      const out = { ms: 0 };
      if (timeOf(this.resolver.timestamp(message), out) !== null) {
        this.counters.invalid += 1;
        return;
      }
      t = out.ms;
    }
    const keyParts = this.keyReaders.map((read) => read(message));
    if (keyParts.some((k) => k === undefined || k === null)) {
      this.counters.invalid += 1;
      return;
    }
    const key = JSON.stringify(keyParts);
    if (!this.keyValues.has(key)) {
      this.keyValues.set(
        key,
        Object.fromEntries(this.resolver.keys.map((k, i) => [k.field, keyParts[i]])),
      );
    }
    if (t > this.watermark) this.watermark = t;
    const entry = { t, message };
    if (this.resolver.mode === 'continuous') {
      let list = this.retained.get(key);
      if (list === undefined) {
        list = [];
        this.retained.set(key, list);
      }
      list.push(entry);
      return;
    }
    for (const w of this.resolver.windows) {
      const start = Math.floor(t / w.ms) * w.ms;
      const last = this.closed.get(w.ms);
      if (last !== undefined && start < last.endMs) continue; // its period already closed
      let periods = this.open.get(w.ms);
      if (periods === undefined) {
        periods = new Map();
        this.open.set(w.ms, periods);
      }
      let byKey = periods.get(start);
      if (byKey === undefined) {
        byKey = new Map();
        periods.set(start, byKey);
      }
      const list = byKey.get(key);
      if (list === undefined) byKey.set(key, [entry]);
      else list.push(entry);
    }
  }

  private async closePeriods(watermark: number): Promise<void> {
    for (const w of this.resolver.windows) {
      const periods = this.open.get(w.ms);
      if (periods === undefined) continue;
      const ready = [...periods.keys()].filter((s) => s + w.ms <= watermark).sort((a, b) => a - b);
      for (const start of ready) {
        const byKey = periods.get(start) ?? new Map<string, Retained[]>();
        periods.delete(start);
        const values = new Map<string, unknown>();
        const context = { window: w.declared, windowMs: w.ms, startMs: start, endMs: start + w.ms };
        for (const [key, entries] of byKey) {
          const messages = entries.map((e) => e.message);
          if (this.resolver.keys.length > 0) {
            values.set(key, await this.compute(messages, context, key));
            continue;
          }
          // Without keys the resolver sees the whole period and returns rows: the
          // feature's column, and the key columns that say whose value it is.
          for (const row of await this.rows(messages, context)) {
            const { [this.resolver.feature]: value, ...keyColumns } = row;
            values.set(rowKey(keyColumns), value);
          }
        }
        this.closed.set(w.ms, { startMs: start, endMs: start + w.ms, values });
        this.counters.periodsClosed += 1;
      }
    }
  }

  /** Runs the resolver on a whole period (no keys); returns its rows. */
  private async rows(
    messages: Record<string, unknown>[],
    window: Omit<WindowContext, 'key'>,
  ): Promise<Record<string, unknown>[]> {
    const result = await this.invoke(messages, { ...window, key: null });
    const list = Array.isArray(result) ? result : result === null ? [] : [result];
    return list.filter((r): r is Record<string, unknown> => typeof r === 'object' && r !== null);
  }

  /** Calls the resolver (list or frame), running a returned SQL string with DuckDB. */
  private async invoke(
    messages: Record<string, unknown>[],
    context: WindowContext,
  ): Promise<unknown> {
    const frame = new DataFrame(messages, `${this.resolver.name}_messages`);
    const input =
      this.resolver.input === 'dataframe'
        ? frame
        : Object.assign([...messages], {
            tableName: frame.tableName,
            toString: () => frame.tableName,
          });
    this.counters.resolverRuns += 1;
    const result = (await this.resolver.resolve(input as never, context)) as unknown;
    if (typeof result !== 'string') return result;
    const sql = await duckdb();
    return sql.run(result, frame.tableName, messages);
  }

  /** Runs the resolver on one key's messages; returns the feature's value. */
  private async compute(
    messages: Record<string, unknown>[],
    window: Omit<WindowContext, 'key'>,
    key: string,
  ): Promise<unknown> {
    const keyValue = this.resolver.keys.length > 0 ? (this.keyValues.get(key) ?? null) : null;
    return this.valueOf(await this.invoke(messages, { ...window, key: keyValue }));
  }

  /** The feature value in a resolver's result (a value, a row, or the first row). */
  private valueOf(result: unknown): unknown {
    const row = Array.isArray(result) ? result[0] : result;
    if (row === undefined) return this.resolver.default;
    if (typeof row !== 'object' || row === null) return row;
    const record = row as Record<string, unknown>;
    if (this.resolver.feature in record) return record[this.resolver.feature];
    const values = Object.values(record);
    return values.length === 1 ? values[0] : (values[values.length - 1] ?? this.resolver.default);
  }

  /**
   * The feature's value for `key` (key column -> value, as in `keys`) over `window`:
   * tumbling, the last closed period's; continuous, the exact window `(now - W, now]`.
   */
  async query(
    key: Readonly<Record<string, unknown>>,
    window: string,
    now: number = Date.now(),
  ): Promise<unknown> {
    const w = this.resolver.windows.find(
      (x) => x.declared === window || parseWindows([window])[0]?.ms === x.ms,
    );
    if (w === undefined) {
      throw new StreamResolverError(
        `${this.resolver.namespace}.${this.resolver.feature} has no window ${window} (windows: ${this.resolver.windows.map((x) => x.declared).join(', ')})`,
      );
    }
    const parts = this.resolver.keys.map((k) => key[k.column] ?? key[k.field]);
    const id = this.resolver.keys.length > 0 ? JSON.stringify(parts) : rowKey(key);
    if (this.resolver.mode === 'tumbling') {
      const last = this.closed.get(w.ms);
      if (last === undefined) return this.resolver.default;
      return last.values.has(id) ? last.values.get(id) : this.resolver.default;
    }
    const entries = (this.retained.get(id) ?? []).filter((e) => e.t > now - w.ms && e.t <= now);
    // Forget what no window needs any more.
    const list = this.retained.get(id);
    if (list !== undefined) {
      const keep = list.filter((e) => e.t > this.watermark - this.largestMs);
      if (keep.length < list.length) this.retained.set(id, keep);
    }
    if (entries.length === 0) return this.resolver.default;
    return this.compute(
      entries.map((e) => e.message),
      { window: w.declared, windowMs: w.ms, startMs: now - w.ms, endMs: now },
      id,
    );
  }
}
