/**
 * Stream resolvers: how messages of a source become rows of a feature class, and so
 * updates of every materialized aggregation those rows feed (docs/semantics.md section 6).
 *
 * Two forms:
 * - declarative: `outputFeatures` maps the class's columns (a versioned one as
 *   `amount@2`) to fields of the validated message;
 * - a function from the validated message to one or more rows.
 *
 * A resolver is only a definition; a {@link StreamRunner} runs it against a Tessera.
 */
import type { z } from 'zod';
import type { Column } from '../dsl/column.js';
import { parseDuration } from '../dsl/duration.js';
import { type AnyFeatureClass, definitionOf, isFeatureClass } from '../dsl/feature-class.js';
import { parseColumnName } from '../rows/names.js';
import type { Source } from '../sources/source.js';

/** A message field: a (dotted) path into the validated message, or a function of it. */
export type FieldRef<M> = string | ((message: M) => unknown);

/** `column` or `column@version` of the output class -> the message field it takes. */
export type OutputFeatureMap<M> = Readonly<Record<string, FieldRef<M>>>;

/**
 * The reference's spelling: `[Transaction.amount.version(2), 'amount']`, one pair per
 * column written. The output class is the columns' class.
 */
export type OutputFeaturePairs<M> = readonly (readonly [Column<unknown>, FieldRef<M>])[];

/** Where a message came from, handed to the function form. */
export interface MessageContext {
  readonly partition: number;
  readonly offset: number;
  readonly key: Buffer | null;
  /** The source's time for the message (Kafka's record timestamp), Unix ms. */
  readonly timestampMs: number;
}

/** A row the function form returns: columns by name (`amount@2` for a version). */
export type ResolvedRow = Readonly<Record<string, unknown>>;

/** Options both forms share. */
export interface StreamResolverCommonOptions<S extends z.ZodType> {
  /**
   * Unique within a store: names the resolver's stored positions and its dead letters.
   */
  name: string;
  source: Source;
  /** The message schema (zod 4); a message that does not match is a dead letter. */
  messageType: S;
  /**
   * The message field holding the event time (a dotted path). It must carry a time
   * zone (`2026-01-31T12:00:00Z`, `...+02:00`) or be epoch milliseconds; a naive
   * date-time is a bad message. Default: the class's feature-time column as the
   * resolver writes it, else the source's own time for the message.
   */
  timestamp?: string;
  /** `false` opts the resolver out of updating materialized aggregations (default true). */
  updatesMaterializedAggregations?: boolean;
  /**
   * Events older than this (event time against processing time) are dropped and
   * counted; without it an event lands in its own bucket however late it is.
   */
  lateArrivalDeadline?: string | number;
  /**
   * Skips a message whose `field` equals that of an earlier accepted message that the
   * source delivered at most `within` (a duration) before it, by the source's own time
   * for messages (Kafka's record timestamp): redeliveries, whatever their event time.
   * Exact across restarts: the memory is rebuilt from the source.
   */
  dedupe?: { field: string; within: string | number };
}

/** The declarative form. */
export interface DeclarativeStreamResolverOptions<S extends z.ZodType>
  extends StreamResolverCommonOptions<S> {
  /** The class rows are written to (needed with the map form of `outputFeatures`). */
  output?: AnyFeatureClass;
  /** Column -> message field, as a map (`{ 'amount@2': 'amount' }`) or as pairs. */
  outputFeatures: OutputFeatureMap<z.output<S>> | OutputFeaturePairs<z.output<S>>;
}

/** The function form. */
export interface FunctionStreamResolverOptions<S extends z.ZodType>
  extends StreamResolverCommonOptions<S> {
  output: AnyFeatureClass;
  /**
   * Message -> rows of `output` (one, several, or none). Throwing sends the message to
   * the dead letters with the error's message.
   */
  resolve: (
    message: z.output<S>,
    context: MessageContext,
  ) => ResolvedRow | readonly ResolvedRow[] | null | undefined;
  /**
   * The columns the rows write (`column` / `column@version`), which decides the
   * aggregations they update. Default: every column of `output` the rows carry.
   */
  writes?: readonly string[];
}

/** One output column of the declarative form. */
export interface OutputColumn {
  /** The class's column. */
  readonly column: string;
  readonly version: number | null;
  /** `column` or `column@version`: the name in the rows and in `writes`. */
  readonly key: string;
  /** The message field, as given (for messages). */
  readonly field: string;
  /** The field's dotted path, or `null` when a function reads the value. */
  readonly path: string | null;
  readonly read: (message: unknown) => unknown;
}

/** A stream resolver: a frozen, validated definition. */
export interface StreamResolver {
  readonly kind: 'stream_resolver';
  readonly name: string;
  readonly source: Source;
  readonly messageType: z.ZodType;
  /** The output class's namespace. */
  readonly namespace: string;
  /** Declarative form: the columns written. */
  readonly columns: readonly OutputColumn[] | null;
  /** Function form. */
  readonly resolve:
    | ((
        message: unknown,
        context: MessageContext,
      ) => ResolvedRow | readonly ResolvedRow[] | null | undefined)
    | null;
  /** Explicit `writes` (function form), else null. */
  readonly writes: readonly string[] | null;
  readonly timestamp: { readonly field: string; readonly read: (m: unknown) => unknown } | null;
  readonly updatesMaterializedAggregations: boolean;
  readonly lateArrivalDeadlineMs: number | null;
  readonly dedupe: {
    readonly field: string;
    readonly read: (m: unknown) => unknown;
    readonly withinMs: number;
  } | null;
}

/** A bad resolver definition. */
export class StreamResolverError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StreamResolverError';
  }
}

/**
 * Declares a stream resolver, in either form.
 *
 * @example
 * const TransactionMsg = z.object({ id: z.string(), user_id: z.string(), amount: z.number(),
 *   ts: z.string() });
 * export const processTransactions = makeStreamResolver({
 *   name: 'process_transaction_topic',
 *   source: new KafkaSource({ brokers: '127.0.0.1:9092', topic: 'transactions' }),
 *   messageType: TransactionMsg,
 *   output: Transaction,
 *   outputFeatures: { id: 'id', user_id: 'user_id', 'amount@2': 'amount', ts: 'ts' },
 * });
 *
 * // The function form: one message, one or more rows.
 * makeStreamResolver({
 *   name: 'split_payments', source, messageType: PaymentMsg, output: Transaction,
 *   resolve: (m) => m.legs.map((leg) => ({ id: leg.id, user_id: m.user, amount: leg.amount,
 *     ts: m.ts })),
 * });
 */
export function makeStreamResolver<S extends z.ZodType>(
  options: DeclarativeStreamResolverOptions<S> | FunctionStreamResolverOptions<S>,
): StreamResolver {
  const o = options as Partial<
    DeclarativeStreamResolverOptions<S> & FunctionStreamResolverOptions<S>
  >;
  const name = o.name;
  if (typeof name !== 'string' || name.length === 0) {
    throw new StreamResolverError('a stream resolver needs a name');
  }
  const fail = (problem: string): never => {
    throw new StreamResolverError(`stream resolver ${name}: ${problem}`);
  };
  if (o.source === undefined || typeof o.source.poll !== 'function') {
    fail('source must be a Source (KafkaSource, MemorySource, JsonLinesSource)');
  }
  if (o.messageType === undefined || typeof o.messageType.safeParse !== 'function') {
    fail('messageType must be a zod schema');
  }
  const hasMap = o.outputFeatures !== undefined;
  const hasFunction = o.resolve !== undefined;
  if (hasMap === hasFunction) fail('give exactly one of outputFeatures and resolve');

  let namespace: string | undefined;
  if (o.output !== undefined) {
    if (!isFeatureClass(o.output)) fail('output must be a feature class (features(...))');
    namespace = definitionOf(o.output as AnyFeatureClass).namespace;
  }

  let columns: OutputColumn[] | null = null;
  if (hasMap) {
    columns = [];
    const entries: [string, number | null, FieldRef<unknown>, string | null][] = [];
    if (Array.isArray(o.outputFeatures)) {
      for (const pair of o.outputFeatures as OutputFeaturePairs<unknown>) {
        const [column, field] = pair;
        if (column?.kind !== 'column' || column.namespace === null) {
          fail('outputFeatures pairs start with a column of the output class (Transaction.amount)');
        }
        if (namespace !== undefined && column.namespace !== namespace) {
          fail(`column ${column.namespace}.${column.name} is not a column of ${namespace}`);
        }
        namespace = column.namespace ?? undefined;
        entries.push([column.name, column.node.version, field, column.namespace]);
      }
    } else {
      if (namespace === undefined) fail('the map form of outputFeatures needs `output`');
      for (const [key, field] of Object.entries(o.outputFeatures as OutputFeatureMap<unknown>)) {
        const { column, version } = parseColumnName(key);
        entries.push([column, version, field, null]);
      }
    }
    if (entries.length === 0) fail('outputFeatures is empty');
    const seen = new Set<string>();
    for (const [column, version, field] of entries) {
      const key = version === null ? column : `${column}@${version}`;
      if (seen.has(key)) fail(`outputFeatures writes ${key} twice`);
      seen.add(key);
      columns.push(
        Object.freeze({
          column,
          version,
          key,
          field: typeof field === 'string' ? field : `<function ${key}>`,
          path: typeof field === 'string' ? field : null,
          read: fieldReader(field, () =>
            fail(`outputFeatures.${key} must be a field name or a function`),
          ),
        }),
      );
    }
  } else if (typeof o.resolve !== 'function') {
    fail('resolve must be a function');
  } else if (namespace === undefined) {
    fail('the function form needs `output` (the feature class of the rows)');
  }

  const lateArrivalDeadlineMs =
    o.lateArrivalDeadline === undefined
      ? null
      : durationMs(o.lateArrivalDeadline, 'lateArrivalDeadline', fail);
  let dedupe: StreamResolver['dedupe'] = null;
  if (o.dedupe !== undefined) {
    if (typeof o.dedupe.field !== 'string' || o.dedupe.field.length === 0) {
      fail('dedupe.field must name a message field');
    }
    dedupe = Object.freeze({
      field: o.dedupe.field,
      read: fieldReader(o.dedupe.field, () => undefined),
      withinMs: durationMs(o.dedupe.within, 'dedupe.within', fail),
    });
  }
  if (o.writes !== undefined && !Array.isArray(o.writes)) fail('writes must be a list of columns');

  return Object.freeze({
    kind: 'stream_resolver',
    name,
    source: o.source as Source,
    messageType: o.messageType as z.ZodType,
    namespace: namespace as string,
    columns: columns === null ? null : Object.freeze(columns),
    resolve: (o.resolve as StreamResolver['resolve']) ?? null,
    writes: o.writes === undefined ? null : Object.freeze([...o.writes]),
    timestamp:
      o.timestamp === undefined
        ? null
        : Object.freeze({ field: o.timestamp, read: fieldReader(o.timestamp, () => undefined) }),
    updatesMaterializedAggregations: o.updatesMaterializedAggregations !== false,
    lateArrivalDeadlineMs,
    dedupe,
  });
}

/** True for the results of {@link makeStreamResolver}. */
export function isStreamResolver(value: unknown): value is StreamResolver {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { kind?: unknown }).kind === 'stream_resolver'
  );
}

function durationMs(value: unknown, what: string, fail: (p: string) => never): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) fail(`${what} must be a duration >= 0`);
    return value;
  }
  if (typeof value !== 'string') return fail(`${what} must be a duration ('1h', '7d') or ms`);
  try {
    return parseDuration(value);
  } catch (e) {
    return fail(`${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** A reader for a field: a dotted path, or a function. */
export function fieldReader(field: unknown, invalid: () => unknown): (message: unknown) => unknown {
  if (typeof field === 'function') return field as (m: unknown) => unknown;
  if (typeof field !== 'string' || field.length === 0) {
    invalid();
    return () => undefined;
  }
  const path = field.split('.');
  if (path.length === 1) {
    return (m) =>
      typeof m === 'object' && m !== null ? (m as Record<string, unknown>)[field] : undefined;
  }
  return (m) => {
    let v: unknown = m;
    for (const part of path) {
      if (typeof v !== 'object' || v === null) return undefined;
      v = (v as Record<string, unknown>)[part];
    }
    return v;
  };
}
