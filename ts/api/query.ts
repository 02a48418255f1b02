/**
 * Online queries: resolves outputs (window references in any of the five forms,
 * canonical names with `@version`) to the plan's reads, groups them by the shape of
 * their series key so that every key and every output is served by ONE native call
 * (one `WindowQuery` per key shape), and turns the engine's cells into typed values:
 * numbers, Dates, lists, vectors, the feature's default where a window holds no data.
 */

import type { ScalarKind } from '../dsl/nodes.js';
import type { WindowRef } from '../dsl/window-ref.js';
import type {
  BufferPlanOutput,
  KeyPart,
  ListValue,
  ValueExplanation as NativeExplanation,
  WindowQuery,
  WindowQueryResult,
  WindowReadInput,
} from '../native.js';
import { type AggregationKind, isCountLike } from '../planner/aggregations.js';
import { findRead } from '../planner/lookup.js';
import type {
  ClassPlan,
  JsonValue,
  Plan,
  ReadPlan,
  ResultType,
  SeriesPlan,
} from '../planner/types.js';
import type { BoundWindowed } from '../resolvers/windowed.js';
import { InvalidQueryError } from './errors.js';
import { describeValue, NULL_CODE, StringDictionary, timeOf } from './values.js';

/**
 * One output of a query: a window reference (`User.total['7d']`, `User.total('7d')`,
 * `User.total_7d`, `User.total__7d__`, `User.total__604800__`, `User.total_spend.version(2)['30d']`)
 * or a fully qualified name in any of those forms (`'user.total__604800__'`,
 * `'user.total_7d'`, `'user.total_spend__2592000__@2'`).
 */
export type OutputRef = WindowRef<unknown> | string;

/** A scalar value of a feature. */
export type ScalarValue = number | string | boolean | Date;

/** An item of an `approxTopK(k, { returnTotalWeight: true })` feature. */
export interface WeightedItem {
  readonly value: ScalarValue;
  readonly weight: number;
}

/** One group of a `groupByWindowed` feature. */
export interface GroupedItem {
  readonly group: KeyValue | readonly KeyValue[];
  readonly value: FeatureValue;
}

/** Any feature value: what outputs named by string resolve to. */
export type FeatureValue =
  | ScalarValue
  | null
  | readonly number[]
  | readonly ScalarValue[]
  | readonly WeightedItem[]
  | readonly GroupedItem[];

/** The value type of one output: `V | null` for a `WindowRef<V>`, {@link FeatureValue} for a name. */
export type OutputValue<R> = R extends WindowRef<infer V> ? V | null : FeatureValue;

/** The values of a row, one per output, in the order asked. */
export type OutputValues<O extends readonly OutputRef[]> = {
  readonly [I in keyof O]: OutputValue<O[I]>;
};

/** A key value in a query's input. Datetime keys also take zoned ISO strings. */
export type KeyValue = number | string | boolean | Date | null;

/**
 * The keys to query: columns (`{ 'user.id': [1, 2] }`, `{ id: [1, 2], bank: ['a', 'b'] }`),
 * one key (`{ id: 1 }`), or rows (`[{ id: 1 }, { id: 2 }]`). A numeric key column may be a
 * `Float64Array` (`{ 'user.id': ids }`), as a training set's keys often are. A field named
 * `namespace.column` serves the outputs of that namespace; a bare `column` serves every
 * namespace that has it. Composite keys give every column of the join.
 */
export type QueryInput =
  | Readonly<Record<string, KeyValue | readonly KeyValue[] | Float64Array>>
  | readonly Readonly<Record<string, KeyValue>>[];

/** A query. */
export interface QueryRequest<O extends readonly OutputRef[]> {
  /** The keys, one result row per key. */
  readonly input: QueryInput;
  /** The feature windows to read. */
  readonly output: O;
  /** The query's time (default: the engine's clock, i.e. now). */
  readonly now?: Date | number | string;
  /** Attach an explanation to every value. */
  readonly explain?: boolean;
}

/** How one value was computed. */
export interface ValueExplanation {
  /** The output's canonical name. */
  readonly output: string;
  readonly windowMs: number;
  readonly bucketSizeMs: number;
  /** Start of the first bucket the window covers (the window start rounded down to a bucket edge). */
  readonly firstBucketStart: Date;
  /** Start of the last bucket the window covers: the one holding `now`. */
  readonly lastBucketStart: Date;
  readonly firstBucketStartMs: number;
  readonly lastBucketStartMs: number;
  /** Stored buckets (with data) merged into the value. */
  readonly bucketsMerged: number;
  /** True when the window held no data and the value is the feature's default. */
  readonly defaulted: boolean;
  /** For a feature with a continuous buffer: which part came from raw rows. */
  readonly buffer?: BufferExplanation;
}

/** The continuous-buffer part of a value (docs/semantics.md section 9.6). */
export interface BufferExplanation {
  /** The feature's buffer. */
  readonly bufferMs: number;
  /** Stored buckets are merged when they start before this; `null`: no bucket is. */
  readonly bucketsBefore: Date | null;
  /** The raw rows of the key with a time in `[rawFrom, rawTo]` were folded in. */
  readonly rawFrom: Date;
  readonly rawTo: Date;
  /** How many raw rows of the key (after the ingest filters) the value folded. */
  readonly rawRows: number;
  /** The part of the window `[from, to)` that had no data, if any. */
  readonly gap: { readonly from: Date; readonly to: Date } | null;
  /** The end of the buckets backfills filled, `null` when none did. */
  readonly filledUntil: Date | null;
}

/** One row of a query result. */
export interface QueryRow<O extends readonly OutputRef[]> {
  /** This row's key fields, as given. */
  readonly key: Readonly<Record<string, KeyValue>>;
  /** One value per output, in the order asked. */
  readonly values: OutputValues<O>;
  /** The same values by canonical name (`user.total__604800__`). */
  readonly byName: Readonly<Record<string, FeatureValue>>;
  /** One explanation per output (with `explain: true`). */
  readonly explanations?: readonly ValueExplanation[];
}

/** What an output resolved to. */
export interface OutputInfo {
  /** `user.total__604800__` (`@<version>` for versions). */
  readonly canonical: string;
  /** `user.total` (`user.total_spend@2` for a version). */
  readonly feature: string;
  readonly version: number | null;
  /** The window, canonically printed. */
  readonly window: string;
  readonly windowMs: number;
  readonly bucketSizeMs: number;
  readonly resultType: ResultType;
  readonly series: string;
  readonly rule: number;
}

/** The answer to a query: one row per input key. */
export interface QueryResult<O extends readonly OutputRef[]> {
  readonly outputs: readonly OutputInfo[];
  readonly rows: readonly QueryRow<O>[];
}

/** A key field of a series key, and where the input gives it. */
interface KeyField {
  /** Input names, most specific first: `user.id`, `id`. */
  readonly names: readonly [string, string];
  readonly encoding: 'ints' | 'strings';
  readonly kind: ScalarKind;
  /** True for a `groupByWindowed` group column (not a join key). */
  readonly group: boolean;
}

type Decoded = FeatureValue | undefined;

/** An output resolved against the plan. */
interface ResolvedOutput {
  readonly info: OutputInfo;
  readonly fields: readonly KeyField[];
  readonly shape: string;
  readonly read: WindowReadInput;
  /** The cell's value, or `undefined` when the window held no data. */
  readonly decode: (value: number, list: ListValue | undefined) => Decoded;
  readonly fallback: FeatureValue;
  /** The fallback is the aggregation's own value of an empty window (a count's 0). */
  readonly zeroIsOwnValue: boolean;
  readonly grouped: boolean;
  /** The aggregated class, and its columns that make the series key (`fields` order). */
  readonly namespace: string;
  readonly seriesColumns: readonly string[];
  /** The feature's continuous buffer, or 0. */
  readonly bufferMs: number;
  /**
   * A window of a feature a windowed stream resolver computes (docs/semantics.md
   * section 6.1): served from the resolver's records, not from a series (`read` unused).
   */
  readonly windowed?: { readonly bound: BoundWindowed; readonly windowMs: number };
}

/** The outputs of a query, grouped by key shape. */
interface OutputPlan {
  readonly refs: readonly unknown[];
  readonly outputs: readonly ResolvedOutput[];
  readonly infos: readonly OutputInfo[];
  readonly groups: readonly {
    readonly fields: readonly KeyField[];
    readonly reads: WindowReadInput[];
    /** Output index of each read. */
    readonly outputIndexes: readonly number[];
  }[];
  /** For each output: its group and its position among the group's reads. */
  readonly slots: readonly { readonly group: number; readonly read: number }[];
  /** Each group's output names, by read index. */
  readonly readOutputs: readonly (readonly string[])[];
  /** Whether any output has a continuous buffer (most plans: none). */
  readonly buffered: boolean;
  /** The outputs windowed stream resolvers serve, by output index. */
  readonly windowed: readonly number[];
}

/** The input keys as columns. */
interface InputColumns {
  readonly length: number;
  column(name: string): ArrayLike<unknown> | undefined;
  key(row: number): Readonly<Record<string, KeyValue>>;
}

/**
 * What a native query with buffered reads needs: raw rows of some classes, for the keys
 * of the query (docs/semantics.md section 9.6).
 */
export interface BufferedRowsNeed {
  /** The index of the native query. */
  readonly query: number;
  /** The buffered outputs it serves (canonical names). */
  readonly outputs: readonly string[];
  /**
   * One request per aggregated class and key columns: the buffered series it feeds and
   * the query's keys as columns of the class (`{ user_id: [7, 8] }`).
   */
  readonly requests: readonly {
    readonly namespace: string;
    readonly series: ReadonlySet<string>;
    readonly keys: Readonly<Record<string, readonly KeyValue[]>>;
  }[];
}

/**
 * What an output served by a windowed stream resolver needs: the resolver, the window,
 * and each input row's key text (`null` for a row without the key).
 */
export interface WindowedNeed {
  readonly output: number;
  readonly canonical: string;
  readonly bound: BoundWindowed;
  readonly windowMs: number;
  readonly keys: readonly (string | null)[];
}

/** A query prepared for the native call. */
export interface PreparedQuery<O extends readonly OutputRef[]> {
  /** The outputs windowed stream resolvers serve (most queries: none). */
  readonly windowed: readonly WindowedNeed[];
  /** The query's `now`, when it gives one. */
  readonly nowMs: number | undefined;
  readonly queries: WindowQuery[];
  /** The native queries with buffered reads, and the raw rows they need. */
  readonly buffered: readonly BufferedRowsNeed[];
  /** Keys in the input: one result row each. */
  readonly rows: number;
  /** The output each native query's reads serve (canonical names, by read index). */
  readonly readOutputs: readonly (readonly string[])[];
  /**
  /**
   * Reads the answers: the native queries' results; for each windowed need (in order)
   * its value per row (`undefined`: no value, the default applies); and with `times` (a
   * point-in-time query's, one per row), each row's `time`, set as the row is built.
   */
  finish(
    results: WindowQueryResult[],
    windowed?: readonly (readonly unknown[])[],
    times?: Float64Array,
  ): QueryResult<O>;
}

/** How many distinct lists of output names {@link QueryPlanner} keeps planned. */
const PLANS_BY_NAMES_LIMIT = 1024;

/** Resolves outputs and assembles queries and results for one plan. */
export class QueryPlanner {
  private readonly byString = new Map<string, ResolvedOutput>();
  private readonly byRef = new WeakMap<object, ResolvedOutput>();
  private readonly plans = new WeakMap<readonly unknown[], OutputPlan>();
  /**
   * Plans of outputs given as names, by the names: a service receives a new array with
   * the same names on every request. Bounded; emptied when full.
   */
  private readonly plansByNames = new Map<string, OutputPlan>();
  private readonly series: ReadonlyMap<string, SeriesPlan>;
  private readonly classes: ReadonlyMap<string, ClassPlan>;

  constructor(
    private readonly plan: Plan,
    /** The windowed stream resolvers of the Tessera, by `namespace.feature`. */
    private readonly windowed: ReadonlyMap<string, BoundWindowed> = new Map(),
  ) {
    this.series = new Map(plan.series.map((s) => [s.id, s]));
    this.classes = new Map(plan.classes.map((c) => [c.namespace, c]));
  }

  /** Builds the native queries for `request` and the function that reads their answers. */
  prepare<O extends readonly OutputRef[]>(request: QueryRequest<O>): PreparedQuery<O> {
    if (typeof request !== 'object' || request === null) {
      throw new InvalidQueryError('query takes { input, output, now?, explain? }');
    }
    const plan = this.outputPlan(request.output);
    const input = normalizeInput(request.input);
    let nowMs: number | undefined;
    if (request.now !== undefined) {
      const scratch = { ms: 0 };
      const problem = timeOf(request.now, scratch);
      if (problem !== null) throw new InvalidQueryError(`query now ${problem}`);
      nowMs = scratch.ms;
    }
    const explain = request.explain === true;
    const parts = new Map<string, KeyPart>();
    const windowed = plan.windowed.map((j) => windowedNeed(plan, j, input));
    const queries: WindowQuery[] = plan.groups.map((g) => {
      const keys = g.fields.map((f) => keyPart(f, input, parts, plan, g.outputIndexes));
      const q: WindowQuery = { keys, reads: g.reads };
      if (nowMs !== undefined) q.nowMs = nowMs;
      if (explain) q.explain = true;
      return q;
    });
    return {
      queries,
      windowed,
      nowMs,
      buffered: plan.buffered ? bufferedNeeds(plan, input) : [],
      rows: input.length,
      readOutputs: plan.readOutputs,
      finish: (results, values, times) =>
        assemble(plan, input, results, explain, values ?? [], times),
    };
  }

  private outputPlan(output: unknown): OutputPlan {
    if (!Array.isArray(output)) {
      throw new InvalidQueryError(
        `query output must be a list of feature windows, e.g. [User.total['7d'], 'user.count_1d'], got ${describeValue(output)}`,
      );
    }
    const cached = this.plans.get(output);
    if (
      cached !== undefined &&
      cached.refs.length === output.length &&
      cached.refs.every((r, i) => r === output[i])
    ) {
      return cached;
    }
    const names = output.every((ref) => typeof ref === 'string') ? JSON.stringify(output) : null;
    if (names !== null) {
      const byNames = this.plansByNames.get(names);
      if (byNames !== undefined) return byNames;
    }
    const outputs = output.map((ref, i) => this.resolve(ref, i));
    const groups: {
      fields: readonly KeyField[];
      reads: WindowReadInput[];
      outputIndexes: number[];
    }[] = [];
    const byShape = new Map<string, number>();
    const windowed: number[] = [];
    const slots = outputs.map((o, i) => {
      if (o.windowed !== undefined) {
        windowed.push(i);
        return { group: -1, read: windowed.length - 1 };
      }
      let g = byShape.get(o.shape);
      if (g === undefined) {
        g = groups.length;
        groups.push({ fields: o.fields, reads: [], outputIndexes: [] });
        byShape.set(o.shape, g);
      }
      const group = groups[g];
      if (group === undefined) throw new Error('unreachable');
      group.reads.push(o.read);
      group.outputIndexes.push(i);
      return { group: g, read: group.reads.length - 1 };
    });
    const plan: OutputPlan = {
      refs: [...output],
      outputs,
      infos: Object.freeze(outputs.map((o) => o.info)),
      groups,
      slots,
      readOutputs: groups.map((g) => g.outputIndexes.map((i) => outputs[i]?.info.canonical ?? '')),
      buffered: outputs.some((o) => o.bufferMs > 0),
      windowed,
    };
    this.plans.set(output, plan);
    if (names !== null) {
      if (this.plansByNames.size >= PLANS_BY_NAMES_LIMIT) this.plansByNames.clear();
      this.plansByNames.set(names, plan);
    }
    return plan;
  }

  private resolve(ref: unknown, index: number): ResolvedOutput {
    if (typeof ref === 'string') {
      let found = this.byString.get(ref);
      if (found === undefined) {
        const read = findRead(this.plan, ref);
        if (read === undefined) {
          found = this.resolveWindowed(ref, undefined);
          if (found === undefined) throw new InvalidQueryError(this.unknownOutput(ref, index));
        } else found = this.resolveRead(read);
        this.byString.set(ref, found);
      }
      return found;
    }
    if (isWindowRef(ref)) {
      let found = this.byRef.get(ref);
      if (found === undefined) {
        const read = findRead(this.plan, ref);
        if (read === undefined) {
          found = this.resolveWindowed(ref.canonical, ref);
          if (found === undefined) {
            throw new InvalidQueryError(
              this.unknownOutput(ref.canonical, index, ref.qualifiedName),
            );
          }
        } else found = this.resolveRead(read);
        this.byRef.set(ref, found);
      }
      return found;
    }
    if (
      (typeof ref === 'function' || typeof ref === 'object') &&
      ref !== null &&
      (ref as { kind?: unknown }).kind === 'windowed_feature'
    ) {
      const name = String((ref as { qualifiedName?: unknown }).qualifiedName);
      throw new InvalidQueryError(
        `query output ${index} is the windowed feature ${name}, not one of its windows; pick a window, e.g. ${name.split('.').pop()}['7d']`,
      );
    }
    throw new InvalidQueryError(
      `query output ${index} is ${describeValue(ref)}; give a window reference (User.total['7d']) or a name ('user.total__604800__')`,
    );
  }

  /**
   * The output of a window of a feature a windowed stream resolver of this Tessera
   * computes, found by its canonical name or window reference; `undefined` otherwise.
   */
  private resolveWindowed(
    canonical: string,
    ref: { readonly qualifiedName: string; readonly windowMs: number } | undefined,
  ): ResolvedOutput | undefined {
    for (const feature of this.plan.features) {
      if (feature.kind !== 'resolver') continue;
      const qualified = `${feature.namespace}.${feature.name}`;
      const window = feature.windows.find((w) =>
        ref === undefined
          ? w.canonical === canonical
          : ref.qualifiedName === qualified && ref.windowMs === w.windowMs,
      );
      if (window === undefined) continue;
      const bound = this.windowed.get(qualified);
      if (bound === undefined) return undefined;
      const fields: KeyField[] = bound.keyColumns.map((column) => ({
        names: [`${feature.namespace}.${column}`, column],
        encoding: 'strings',
        kind: 'string',
        group: false,
      }));
      const info: OutputInfo = Object.freeze({
        canonical: window.canonical,
        feature: feature.feature,
        version: feature.version,
        window: window.window,
        windowMs: window.windowMs,
        bucketSizeMs: 0,
        resultType: feature.resultType,
        series: '',
        rule: -1,
      });
      return {
        info,
        fields,
        shape: `windowed:${qualified}`,
        read: { seriesId: '', rule: 0, windowMs: window.windowMs },
        decode: () => undefined,
        fallback: fromJson(feature.default, feature.resultType),
        zeroIsOwnValue: false,
        grouped: false,
        namespace: feature.namespace,
        seriesColumns: bound.keyColumns,
        bufferMs: 0,
        windowed: { bound, windowMs: window.windowMs },
      };
    }
    return undefined;
  }

  private unknownOutput(text: string, index: number, qualified?: string): string {
    const feature =
      qualified === undefined
        ? this.plan.features.find((f) => text.startsWith(`${f.namespace}.${f.name}`))
        : this.plan.features.find((f) => `${f.namespace}.${f.name}` === qualified);
    if (feature !== undefined && feature.kind !== 'materialized') {
      const why =
        feature.kind === 'resolver'
          ? 'has no expression, and no windowed stream resolver given to Tessera.open (windowedResolvers) computes it'
          : 'has an expression but no materialization';
      return `query output ${index} '${text}': ${feature.feature} ${why}, so no bucket series serves it`;
    }
    if (feature !== undefined) {
      const windows = feature.windows.map((w) => w.window).join(', ');
      return `query output ${index} '${text}': ${feature.feature} has no such window (windows: ${windows})`;
    }
    const known = [...new Set(this.plan.reads.map((r) => r.canonical))];
    const shown = known.slice(0, 8).join(', ');
    return `query output ${index} '${text}' names no materialized feature window of this Tessera (${known.length} served${known.length > 0 ? `: ${shown}${known.length > 8 ? ', ...' : ''}` : ''})`;
  }

  private resolveRead(read: ReadPlan): ResolvedOutput {
    const series = this.series.get(read.series);
    const rule = series?.rules[read.rule];
    const source = series === undefined ? undefined : this.classes.get(series.namespace);
    if (series === undefined || rule === undefined || source === undefined) {
      throw new Error(`plan read ${read.canonical} points at a missing series or rule`);
    }
    const joinOf = new Map(read.key.map((k) => [k.seriesColumn, k.ownerColumn]));
    const fields: KeyField[] = series.groupKey.map((column) => {
      const type = source.columns.find((c) => c.name === column)?.type;
      const kind = type?.kind ?? 'int';
      const encoding = kind === 'string' ? 'strings' : 'ints';
      const owner = joinOf.get(column);
      return owner === undefined
        ? { names: [`${series.namespace}.${column}`, column], encoding, kind, group: true }
        : { names: [`${read.namespace}.${owner}`, owner], encoding, kind, group: false };
    });
    const grouped = read.resultType.kind === 'grouped';
    const valueType = read.resultType.kind === 'grouped' ? read.resultType.value : read.resultType;
    const info: OutputInfo = Object.freeze({
      canonical: read.canonical,
      feature: read.feature,
      version: read.version,
      window: read.window,
      windowMs: read.windowMs,
      bucketSizeMs: rule.bucketSizeMs,
      resultType: read.resultType,
      series: read.series,
      rule: read.rule,
    });
    return {
      info,
      fields,
      shape: fields.map((f) => `${f.names[0]}:${f.encoding}`).join('|'),
      read:
        (read.continuousBufferMs ?? 0) > 0
          ? {
              seriesId: read.series,
              rule: read.rule,
              windowMs: read.windowMs,
              bufferMs: read.continuousBufferMs ?? 0,
            }
          : { seriesId: read.series, rule: read.rule, windowMs: read.windowMs },
      decode: decoder(valueType, rule.aggregation.kind),
      fallback: fromJson(read.default, valueType),
      // A count-like window of nothing is 0 by itself: serving that 0 is no default.
      zeroIsOwnValue: isCountLike(rule.aggregation.kind) && read.default === 0,
      grouped,
      namespace: series.namespace,
      seriesColumns: series.groupKey,
      bufferMs: read.continuousBufferMs ?? 0,
    };
  }
}

function bufferExplanation(
  bufferMs: number,
  plan: BufferPlanOutput,
  native: NativeExplanation,
): BufferExplanation {
  const at = (ms: number | undefined | null) =>
    ms === undefined || ms === null ? null : new Date(ms);
  const gapFrom = at(plan.gapFromMs);
  const gapTo = at(plan.gapToMs);
  return {
    bufferMs,
    bucketsBefore: at(plan.bucketsBeforeMs),
    rawFrom: new Date(plan.rawFromMs),
    rawTo: new Date(plan.rawToMs),
    rawRows: native.bufferRows ?? 0,
    gap: gapFrom === null || gapTo === null ? null : { from: gapFrom, to: gapTo },
    filledUntil: at(plan.filledUntilMs),
  };
}

/** The key text of each input row for a windowed output (`null`: the row lacks the key). */
function windowedNeed(plan: OutputPlan, output: number, input: InputColumns): WindowedNeed {
  const o = plan.outputs[output] as ResolvedOutput;
  const w = o.windowed as NonNullable<ResolvedOutput['windowed']>;
  const columns = o.fields.map((f) => {
    const values = input.column(f.names[0]) ?? input.column(f.names[1]);
    if (values === undefined) {
      throw new InvalidQueryError(
        `query input lacks '${f.names[0]}' (or '${f.names[1]}'), which ${o.info.canonical} needs: ${w.bound.resolver.name} keys its values by ${o.fields.map((x) => x.names[0]).join(', ')}`,
      );
    }
    return values;
  });
  const keys: (string | null)[] = new Array(input.length);
  for (let row = 0; row < input.length; row++) {
    const parts = columns.map((c) => c[row]);
    if (parts.some((p) => p === null || p === undefined)) {
      keys[row] = null;
      continue;
    }
    const text = w.bound.keyText(parts);
    if ('problem' in text) {
      throw new InvalidQueryError(
        `query input ${o.fields[w.bound.keyColumns.indexOf(text.column)]?.names[0] ?? text.column} row ${row} ${text.problem}`,
      );
    }
    keys[row] = text.text;
  }
  return {
    output,
    canonical: o.info.canonical,
    bound: w.bound,
    windowMs: w.windowMs,
    keys,
  };
}

/** The raw rows each native query with buffered reads needs, and for which keys. */
function bufferedNeeds(plan: OutputPlan, input: InputColumns): BufferedRowsNeed[] {
  const needs: BufferedRowsNeed[] = [];
  plan.groups.forEach((group, query) => {
    const outputs = group.outputIndexes
      .map((i) => plan.outputs[i] as ResolvedOutput)
      .filter((o) => o.bufferMs > 0);
    if (outputs.length === 0) return;
    const requests = new Map<
      string,
      { namespace: string; series: Set<string>; keys: Record<string, readonly KeyValue[]> }
    >();
    for (const output of outputs) {
      const id = `${output.namespace}(${output.seriesColumns.join(',')})`;
      let request = requests.get(id);
      if (request === undefined) {
        // Rows with a null key part have no data: they are left out of the request.
        const columns = output.fields.map(
          (f) => input.column(f.names[0]) ?? input.column(f.names[1]) ?? [],
        );
        const rows: number[] = [];
        for (let i = 0; i < input.length; i++) {
          if (columns.every((c) => c[i] !== null && c[i] !== undefined)) rows.push(i);
        }
        const keys: Record<string, readonly KeyValue[]> = {};
        output.seriesColumns.forEach((column, c) => {
          const values = columns[c] ?? [];
          keys[column] = rows.map((i) => values[i] as KeyValue);
        });
        request = { namespace: output.namespace, series: new Set(), keys };
        requests.set(id, request);
      }
      request.series.add(output.info.series);
    }
    needs.push({
      query,
      outputs: outputs.map((o) => o.info.canonical),
      requests: [...requests.values()],
    });
  });
  return needs;
}

function isWindowRef(value: unknown): value is WindowRef<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { kind?: unknown }).kind === 'window_ref'
  );
}

/** Turns a read's cell into a value for `type`; `undefined` means "no data". */
function decoder(
  type: ResultType,
  aggregation: AggregationKind,
): (value: number, list: ListValue | undefined) => Decoded {
  switch (type.kind) {
    case 'int':
    case 'float':
    case 'unknown':
      // A count-like aggregation of nothing is 0, which is also how "no data" reads: the
      // default applies (0 unless the feature declares another).
      return isCountLike(aggregation)
        ? (v) => (Number.isNaN(v) || v === 0 ? undefined : v)
        : (v) => (Number.isNaN(v) ? undefined : v);
    case 'datetime':
      return (v) => (Number.isNaN(v) ? undefined : new Date(v));
    case 'boolean':
      return (v) => (Number.isNaN(v) ? undefined : v !== 0);
    case 'string':
      return (_v, list) => {
        const item = list?.items?.[0];
        return item === undefined ? undefined : String(item);
      };
    case 'vector':
      return (_v, list) => list?.vector;
    case 'list': {
      const item = itemDecoder(type.of);
      return (_v, list) => list?.items?.map(item);
    }
    case 'weighted_list': {
      const item = itemDecoder(type.of);
      return (_v, list) => {
        const items = list?.items;
        if (items === undefined) return undefined;
        const weights = list?.weights;
        return items.map((x, i) => ({ value: item(x), weight: weights?.[i] ?? Number.NaN }));
      };
    }
    case 'grouped':
      return decoder(type.value, aggregation);
  }
}

function itemDecoder(type: ResultType): (item: number | string) => ScalarValue {
  switch (type.kind) {
    case 'datetime':
      return (x) => new Date(Number(x));
    case 'boolean':
      return (x) => x !== 0 && x !== '0' && x !== 'false';
    default:
      return (x) => x;
  }
}

/** A plan default (JSON, datetimes as ms) as a value of `type`. */
function fromJson(value: JsonValue, type: ResultType): FeatureValue {
  if (value === null) return null;
  switch (type.kind) {
    case 'datetime':
      return typeof value === 'number' ? new Date(value) : null;
    case 'list':
    case 'weighted_list':
      return Array.isArray(value)
        ? (value.map((v) => fromJson(v as JsonValue, type.of)) as ScalarValue[])
        : null;
    case 'vector':
      return Array.isArray(value) ? (value as number[]) : null;
    default:
      return typeof value === 'object' ? null : value;
  }
}

/** The query's input as columns of key values. */
function normalizeInput(input: unknown): InputColumns {
  if (Array.isArray(input)) {
    const rows = input as readonly unknown[];
    const cache = new Map<string, unknown[] | undefined>();
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      if (typeof row !== 'object' || row === null || Array.isArray(row)) {
        throw new InvalidQueryError(
          `query input row ${i} is ${describeValue(row)}, not a key object`,
        );
      }
    }
    return {
      length: rows.length,
      column(name) {
        if (cache.has(name)) return cache.get(name);
        let found = false;
        const out = new Array<unknown>(rows.length);
        for (let i = 0; i < rows.length; i++) {
          const row = rows[i] as Readonly<Record<string, unknown>>;
          if (Object.hasOwn(row, name)) found = true;
          out[i] = row[name];
        }
        cache.set(name, found ? out : undefined);
        return found ? out : undefined;
      },
      key: (row) => rows[row] as Readonly<Record<string, KeyValue>>,
    };
  }
  if (typeof input !== 'object' || input === null) {
    throw new InvalidQueryError(
      `query input must be keys such as { 'user.id': [1, 2] } or [{ id: 1 }], got ${describeValue(input)}`,
    );
  }
  const entries = Object.entries(input as Readonly<Record<string, unknown>>);
  const columnar = entries.some(([, v]) => Array.isArray(v) || ArrayBuffer.isView(v));
  if (!columnar) {
    const one = input as Readonly<Record<string, KeyValue>>;
    return {
      length: 1,
      column: (name) => (Object.hasOwn(one, name) ? [one[name]] : undefined),
      key: () => one,
    };
  }
  let length: number | undefined;
  let first = '';
  const columns = new Map<string, ArrayLike<unknown>>();
  for (const [name, value] of entries) {
    if (!Array.isArray(value) && !ArrayBuffer.isView(value)) {
      throw new InvalidQueryError(
        `query input field '${name}' is ${describeValue(value)}; give every field as a list (or give one key as an object of single values)`,
      );
    }
    const column = value as unknown as ArrayLike<unknown>;
    if (length === undefined) {
      length = column.length;
      first = name;
    } else if (column.length !== length) {
      throw new InvalidQueryError(
        `query input field '${name}' has ${column.length} values but '${first}' has ${length}`,
      );
    }
    columns.set(name, column);
  }
  const names = [...columns.keys()];
  return {
    length: length ?? 0,
    column: (name) => columns.get(name),
    key(row) {
      const key: Record<string, KeyValue> = {};
      for (const name of names) key[name] = (columns.get(name)?.[row] ?? null) as KeyValue;
      return key;
    },
  };
}

/** The key part for `field`, converted once per query. */
function keyPart(
  field: KeyField,
  input: InputColumns,
  cache: Map<string, KeyPart>,
  plan: OutputPlan,
  outputIndexes: readonly number[],
): KeyPart {
  const [qualified, bare] = field.names;
  const cacheKey = `${qualified}:${field.encoding}`;
  const cached = cache.get(cacheKey);
  if (cached !== undefined) return cached;
  const values = input.column(qualified) ?? input.column(bare);
  if (values === undefined) {
    const output = plan.outputs[outputIndexes[0] ?? 0]?.info.canonical ?? '';
    const why = field.group
      ? `it is grouped by ${qualified}; give the groups to read (Tessera does not enumerate groups)`
      : `${qualified} is part of the key of its series`;
    throw new InvalidQueryError(
      `query input lacks '${qualified}' (or '${bare}'), which ${output} needs: ${why}`,
    );
  }
  const n = input.length;
  let part: KeyPart;
  if (field.encoding === 'strings') {
    const dictionary = new StringDictionary();
    const codes = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v === null || v === undefined) codes[i] = NULL_CODE;
      else if (typeof v === 'string') codes[i] = dictionary.code(v);
      else {
        throw new InvalidQueryError(
          `query input ${qualified} row ${i} is ${describeValue(v)}, not a string`,
        );
      }
    }
    part = { strings: dictionary.strings, codes };
  } else {
    const ints = new Float64Array(n);
    const scratch = { ms: 0 };
    for (let i = 0; i < n; i++) {
      const v = values[i];
      let x: number;
      if (v === null || v === undefined) x = Number.NaN;
      else if (typeof v === 'number') x = v;
      else if (typeof v === 'boolean') x = v ? 1 : 0;
      else if (field.kind === 'datetime' && timeOf(v, scratch) === null) x = scratch.ms;
      else {
        throw new InvalidQueryError(
          `query input ${qualified} row ${i} is ${describeValue(v)}, not ${field.kind === 'datetime' ? 'a time' : 'a number'}`,
        );
      }
      if (!Number.isNaN(x) && !Number.isSafeInteger(x)) {
        throw new InvalidQueryError(
          `query input ${qualified} row ${i} is ${x}; keys are whole numbers within 2^53`,
        );
      }
      ints[i] = x;
    }
    part = { ints };
  }
  cache.set(cacheKey, part);
  return part;
}

function groupValue(
  output: ResolvedOutput,
  input: InputColumns,
  row: number,
): KeyValue | readonly KeyValue[] {
  const values = output.fields
    .filter((f) => f.group)
    .map((f) => {
      const column = input.column(f.names[0]) ?? input.column(f.names[1]);
      return (column?.[row] ?? null) as KeyValue;
    });
  return values.length === 1 ? (values[0] ?? null) : values;
}

/** Reads the native answers into rows. */
function assemble<O extends readonly OutputRef[]>(
  plan: OutputPlan,
  input: InputColumns,
  results: WindowQueryResult[],
  explain: boolean,
  windowedValues: readonly (readonly unknown[])[],
  times?: Float64Array,
): QueryResult<O> {
  const listsByGroup = results.map((r) => {
    if (r.lists.length === 0) return undefined;
    const map = new Map<number, ListValue>();
    for (const l of r.lists) map.set(l.index, l);
    return map;
  });
  const n = input.length;
  const outputs = plan.outputs;
  const rows: QueryRow<O>[] = new Array(n);
  for (let row = 0; row < n; row++) {
    const values: FeatureValue[] = new Array(outputs.length);
    const byName: Record<string, FeatureValue> = {};
    const explanations: ValueExplanation[] | undefined = explain ? [] : undefined;
    for (let j = 0; j < outputs.length; j++) {
      const output = outputs[j] as ResolvedOutput;
      const slot = plan.slots[j] as { group: number; read: number };
      if (output.windowed !== undefined) {
        const given = windowedValues[slot.read]?.[row];
        const value = (given === undefined ? output.fallback : given) as FeatureValue;
        values[j] = value;
        byName[output.info.canonical] = value;
        if (explanations !== undefined) {
          explanations.push({
            output: output.info.canonical,
            windowMs: output.info.windowMs,
            bucketSizeMs: 0,
            firstBucketStart: new Date(Number.NaN),
            lastBucketStart: new Date(Number.NaN),
            firstBucketStartMs: Number.NaN,
            lastBucketStartMs: Number.NaN,
            bucketsMerged: 0,
            defaulted: given === undefined,
          });
        }
        continue;
      }
      const result = results[slot.group] as WindowQueryResult;
      const cell = row * result.reads + slot.read;
      const decoded = output.decode(
        result.numbers[cell] ?? Number.NaN,
        listsByGroup[slot.group]?.get(cell),
      );
      let value: FeatureValue = decoded === undefined ? output.fallback : decoded;
      if (output.grouped) {
        value = value === null ? [] : [{ group: groupValue(output, input, row), value }];
      }
      values[j] = value;
      byName[output.info.canonical] = value;
      if (explanations !== undefined) {
        const e = result.explanations?.[cell];
        const first = e?.firstBucketStartMs ?? Number.NaN;
        const last = e?.lastBucketStartMs ?? Number.NaN;
        const explanation: ValueExplanation = {
          output: output.info.canonical,
          windowMs: output.info.windowMs,
          bucketSizeMs: output.info.bucketSizeMs,
          firstBucketStart: new Date(first),
          lastBucketStart: new Date(last),
          firstBucketStartMs: first,
          lastBucketStartMs: last,
          bucketsMerged: e?.bucketsMerged ?? 0,
          defaulted: decoded === undefined && !output.zeroIsOwnValue,
        };
        explanations.push(
          e?.buffer === undefined
            ? explanation
            : { ...explanation, buffer: bufferExplanation(output.bufferMs, e.buffer, e) },
        );
      }
    }
    const key = input.key(row);
    const typed = values as unknown as OutputValues<O>;
    // One literal per shape, so that a million-row result adds no property to a built row.
    const r: {
      key: Readonly<Record<string, KeyValue>>;
      values: OutputValues<O>;
      byName: Readonly<Record<string, FeatureValue>>;
      time?: Date;
      explanations?: readonly ValueExplanation[];
    } =
      times === undefined
        ? { key, values: typed, byName }
        : { key, values: typed, byName, time: new Date(times[row] ?? Number.NaN) };
    if (explanations !== undefined) r.explanations = explanations;
    rows[row] = r;
  }
  return { outputs: plan.infos, rows };
}
