/**
 * The definition tree: what the DSL builders produce and the planner reads. Every node
 * is a frozen, readonly plain object with a `kind` (the Kysely operation-node idea).
 * The only non-data members are the thunks that refer to other classes (`hasMany`
 * targets, `references(() => User.id)`, join conditions), which the planner calls once
 * every module has been evaluated.
 */
import type { AggregationKind } from '../planner/aggregations.js';

/** The type of a scalar feature column. */
export type ScalarKind = 'int' | 'float' | 'string' | 'boolean' | 'datetime' | 'vector';

/** A scalar type: its kind, plus the dimension for vectors. */
export interface ScalarType {
  readonly kind: ScalarKind;
  /** Number of components, for `vector` only. */
  readonly dim?: number;
}

/** A column of the related class in an expression, optionally at a version. */
export interface ColumnNode {
  readonly kind: 'column';
  /** The class the column was taken from, or `null` when written through a row scope. */
  readonly namespace: string | null;
  readonly name: string;
  /** Explicit version (`t.amount.version(2)`), or `null` for the default version. */
  readonly version: number | null;
}

/** One of the two special times of an expression. */
export interface TimeNode {
  readonly kind: 'time';
  /** `now` is `chalk_now` (the query time); `window_start` is `chalk_window`. */
  readonly bound: 'now' | 'window_start';
}

/** A literal value in a filter. Dates are kept as epoch milliseconds. */
export interface LiteralNode {
  readonly kind: 'literal';
  readonly type: 'number' | 'string' | 'boolean' | 'null' | 'datetime' | 'invalid';
  readonly value: number | string | boolean | null;
}

/** A list of literals, the right-hand side of `in`. */
export interface ListNode {
  readonly kind: 'list';
  readonly values: readonly LiteralNode[];
}

/** An operand of a comparison. */
export type OperandNode = ColumnNode | TimeNode | LiteralNode | ListNode;

/** The comparison operators, as a Python feature class spells them. */
export type CompareOp = '==' | '!=' | '>' | '<' | '>=' | '<=' | 'in';

/** `left op right`. */
export interface CompareNode {
  readonly kind: 'compare';
  readonly op: CompareOp;
  readonly left: OperandNode;
  readonly right: OperandNode;
}

/** A conjunction of conditions. */
export interface AndNode {
  readonly kind: 'and';
  readonly conditions: readonly ConditionNode[];
}

/** A filter or join condition. */
export type ConditionNode = CompareNode | AndNode;

/** The aggregation names of the DSL: the names of the aggregation catalog. */
export type { AggregationKind };

/** The aggregation step of an expression with its raw (unvalidated) arguments. */
export interface AggregationNode {
  readonly kind: AggregationKind;
  /** `min_by_n` / `max_by_n`: how many values to keep. */
  readonly n?: unknown;
  /** `approx_top_k`: how many items. */
  readonly k?: unknown;
  /** `min_by_n` / `max_by_n` ordering column, `approx_top_k` weight column. */
  readonly by?: ColumnNode | null;
  /** `approx_top_k`: return `{ value, weight }` pairs. */
  readonly returnTotalWeight?: unknown;
  /** `approx_percentile`: the quantile in [0, 1]. */
  readonly quantile?: unknown;
  /** `approx_percentile`: sketch size (t-digest compression). */
  readonly sketchSize?: unknown;
  /** `approx_count_distinct`: log2 of the CPC sketch's K. */
  readonly lgK?: unknown;
}

/** A relation of the owning class, as named by an expression. */
export interface RelationNode {
  readonly kind: 'relation';
  readonly namespace: string;
  readonly name: string;
}

/**
 * A whole aggregation expression: traverse `relation`, keep rows passing `filters`,
 * take `column` (absent for `count()` of rows), group by `groupBy`, aggregate.
 */
export interface AggregateNode {
  readonly kind: 'aggregate';
  readonly relation: RelationNode;
  readonly column: ColumnNode | null;
  readonly filters: readonly ConditionNode[];
  readonly groupBy: readonly ColumnNode[];
  readonly aggregation: AggregationNode;
  /** Problems met while building (a selector that returned no column, ...). */
  readonly problems: readonly string[];
}

/** The target of a foreign key: `'user.id'` or a thunk returning a column. */
export type ReferenceNode =
  | { readonly kind: 'name'; readonly text: string }
  | { readonly kind: 'thunk'; readonly get: () => unknown };

/** Materialization options as the user wrote them (validated by the planner). */
export interface MaterializationConfig {
  /** One bucket size for every window not listed in `bucketDurations`, e.g. `'1d'`. */
  readonly bucketDuration?: string;
  /** Bucket size -> the windows that use it: `{ '1d': ['7d', '30d'], '5d': ['60d'] }`. */
  readonly bucketDurations?: Readonly<Record<string, string | readonly string[]>>;
  /** Bucket origin: a `Date`, an ISO-8601 string or epoch milliseconds (default: epoch). */
  readonly bucketStart?: Date | string | number;
  /**
   * Cron expression (`'0 0 * * *'`, UTC) or duration (`'1h'`) on which the feature is
   * backfilled by `tessera.schedules` (docs/semantics.md section 10).
   */
  readonly backfillSchedule?: string;
  /**
   * The most recent part of a window to compute from raw rows at query time, read
   * through the class's online resolver (or its batch resolvers) instead of from
   * buckets (docs/semantics.md section 9.6). Served by `queryAsync`.
   */
  readonly continuousBufferDuration?: string;
  /** One scheduled backfill job per tag set: `[[], ['source:a'], ['source:b']]`. */
  readonly backfillTags?: readonly (readonly string[])[];
}

/** `true` (each window gets buckets as long as itself) or a configuration. */
export type Materialization = true | MaterializationConfig;

/** A scalar feature of a class. */
export interface ScalarDefinition {
  readonly kind: 'scalar';
  readonly name: string;
  readonly type: ScalarType;
  readonly primary: boolean;
  readonly featureTime: boolean;
  readonly references: ReferenceNode | null;
  /** Version map of a versioned scalar, `null` when unversioned. */
  readonly versions: {
    readonly defaultVersion: number;
    readonly types: readonly { readonly version: number; readonly type: ScalarType }[];
  } | null;
  readonly problems: readonly string[];
}

/** A has-many relation of a class. */
export interface HasManyDefinition {
  readonly kind: 'has_many';
  readonly name: string;
  /** Returns the related feature class. */
  readonly target: () => unknown;
  /** Explicit join condition, given the related class's row scope; `null` for implicit. */
  readonly condition: ((row: unknown) => unknown) | null;
}

/** One version of a windowed feature (the only one when unversioned). */
export interface WindowedVersionDefinition {
  /** The version number, `null` when the feature is not versioned. */
  readonly version: number | null;
  /** Windows as written (`'7d'`, `'1h30m'`, `'all'`). */
  readonly windows: readonly string[];
  readonly expression: AggregateNode | null;
  readonly materialization: Materialization | null;
  readonly hasDefault: boolean;
  readonly default: unknown;
  /** How old a windowed stream resolver's value may be before the default is served. */
  readonly maxStaleness: string | null;
  readonly problems: readonly string[];
}

/** A windowed feature (`windowed` or `groupByWindowed`), possibly versioned. */
export interface WindowedDefinition {
  readonly kind: 'windowed';
  readonly name: string;
  /** `true` for `groupByWindowed`. */
  readonly grouped: boolean;
  readonly versions: readonly WindowedVersionDefinition[];
  /** Default version of a versioned feature, `null` when unversioned. */
  readonly defaultVersion: number | null;
  readonly problems: readonly string[];
}

/** A value in a feature class that is not a feature builder. */
export interface InvalidDefinition {
  readonly kind: 'invalid';
  readonly name: string;
  readonly problems: readonly string[];
}

/** Any feature of a class. */
export type FeatureDefinition =
  | ScalarDefinition
  | HasManyDefinition
  | WindowedDefinition
  | InvalidDefinition;

/** Everything the planner needs to know about one feature class. */
export interface ClassDefinition {
  readonly kind: 'class';
  readonly namespace: string;
  /** Order of definition in the process, used only to order output like the source. */
  readonly sequence: number;
  readonly features: readonly FeatureDefinition[];
}

/** Freezes a node and returns it typed as itself. */
export function node<const T extends object>(value: T): T {
  return Object.freeze(value);
}
