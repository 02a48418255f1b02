/**
 * The plan: a frozen, JSON-serialisable description of every series, rule, bucket and
 * read that the feature definitions need. `StoreDescription` is exactly what the native
 * engine receives (`toStoreDescription`); the rest of the plan is what the TypeScript
 * layer needs at ingest time (which rows feed which series, under which key) and at
 * query time (which rule serves a window, the default, the result type).
 */
import type { CompareOp, ScalarKind, ScalarType } from '../dsl/nodes.js';
import type { SeriesSummaryDescription } from '../native.js';
import type { AggregationKind } from './aggregations.js';

// ---------------------------------------------------------------------------------------
// What the native engine receives. The binding declares the same types; names must match.
// ---------------------------------------------------------------------------------------

/** Every series the store keeps. */
export interface StoreDescription {
  series: SeriesDescription[];
}

/** One stored time series. */
export interface SeriesDescription {
  /** Stable id (`s_` + 12 hex digits of sha256 of the series identity). */
  id: string;
  /**
   * The id the previous identity format (which hashed the rules too) gave the series: a
   * store written by that version holds it there, and adopts it under `id`.
   */
  formerId?: string;
  /** What the aggregated column holds. */
  valueKind: 'number' | 'string' | 'vector';
  /** Number of components, for `vector`. */
  vectorDim?: number;
  /** Rule index = position in this array. */
  rules: RuleDescription[];
  /** The readable summary the store keeps in the series record. */
  summary?: SeriesSummaryDescription;
}

/** A readable description of a series (see `planner/series-summary.ts`). */
export type { SeriesSummaryDescription } from '../native.js';

/** One (aggregation, bucket size) of a series. */
export interface RuleDescription {
  aggregation: AggregationDescription;
  bucketSizeMs: number;
  /** Bucket origin; 0 = Unix epoch. Same for every rule of a series. */
  bucketOriginMs: number;
  /** The largest window this rule serves (the store keeps one bucket more). */
  retentionMs: number;
}

/**
 * An aggregation and the parameters its state depends on. `kind` and the argument names
 * are those of the aggregation catalog, which also gives each argument's range and
 * default.
 */
export interface AggregationDescription {
  kind: AggregationKind;
  /** `min_by_n` / `max_by_n`. */
  n?: number;
  /** `approx_top_k`. */
  k?: number;
  /** `approx_top_k` with `by` (always present for approx_top_k). */
  weighted?: boolean;
  /** `approx_percentile`. */
  quantile?: number;
  /** `approx_count_distinct` (always present: the catalog's default when not given). */
  lgK?: number;
  /** `approx_percentile` (always present: the catalog's default when not given). */
  sketchSize?: number;
}

// ---------------------------------------------------------------------------------------
// The plan.
// ---------------------------------------------------------------------------------------

/** A column of the source class, at a version (`null` = unversioned). */
export interface ColumnAtVersion {
  readonly name: string;
  readonly version: number | null;
}

/** A filter applied to each row at ingest: `column op value`. */
export interface IngestFilter {
  readonly column: string;
  /** Version of the column the filter reads (`null` = unversioned). */
  readonly version: number | null;
  readonly op: CompareOp;
  /** A literal (datetimes as epoch ms), or the sorted, de-duplicated list for `in`. */
  readonly value: FilterValue | readonly FilterValue[];
  /** Canonical text, e.g. `category in [1,2]`; part of the series identity. */
  readonly text: string;
}

/** A literal in a filter. */
export type FilterValue = number | string | boolean | null;

/** A JSON value (defaults are kept as JSON; datetimes as epoch ms). */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

/** The type of a feature's value. */
export type ResultType =
  | { readonly kind: 'int' | 'float' | 'string' | 'boolean' | 'datetime' }
  | { readonly kind: 'vector'; readonly dim: number }
  | { readonly kind: 'list'; readonly of: ResultType }
  /** `approx_top_k` with `returnTotalWeight`: `{ value, weight }` pairs. */
  | { readonly kind: 'weighted_list'; readonly of: ResultType }
  /** `groupByWindowed`: one `{ group, value }` per group. */
  | {
      readonly kind: 'grouped';
      readonly groupBy: readonly ScalarType[];
      readonly value: ResultType;
    }
  /** A windowed feature without expression (computed by a resolver). */
  | { readonly kind: 'unknown' };

/** How to run scheduled backfills. */
export type BackfillSchedule =
  | { readonly kind: 'cron'; readonly expression: string }
  | { readonly kind: 'interval'; readonly everyMs: number };

/** A rule's dependent: one window of one feature (version). */
export interface DependentWindow {
  /** `user.total` (`user.total_spend@2` for a version). */
  readonly feature: string;
  readonly window: string;
  readonly windowMs: number;
  readonly canonical: string;
}

/** One (aggregation, bucket size) of a series, with what it serves and costs. */
export interface RulePlan extends RuleDescription {
  readonly index: number;
  readonly dependents: readonly DependentWindow[];
  /** Estimated encoded state per bucket. */
  readonly bytesPerBucket: number;
  /** Buckets kept per key: ceil(retention / bucket size) + 1. */
  readonly bucketsKept: number;
  /** bytesPerBucket × bucketsKept. */
  readonly bytesPerKey: number;
}

/**
 * One stored series: the rows of `namespace` that pass `filters`, keyed by `groupKey`,
 * taking `column` (and `by`), bucketed by `timeColumn`.
 */
export interface SeriesPlan {
  readonly id: string;
  /** 1-based number in definition order (the `Series` column of `aggregate list`). */
  readonly number: number;
  /** The aggregated (source) class. */
  readonly namespace: string;
  /** Columns of the source class forming the key: join keys plus group-by columns. */
  readonly groupKey: readonly string[];
  /** The aggregated column, or `null` for `count()` of rows. */
  readonly column: ColumnAtVersion | null;
  /** Ordering column (min_by_n / max_by_n) or weight column (approx_top_k). */
  readonly by: ColumnAtVersion | null;
  /** Row filters applied at ingest (conjunction). */
  readonly filters: readonly IngestFilter[];
  /** The column holding each row's event time. */
  readonly timeColumn: string;
  readonly valueKind: SeriesDescription['valueKind'];
  readonly vectorDim: number | null;
  readonly bucketOriginMs: number;
  /** Max retention over the rules. */
  readonly retentionMs: number;
  readonly rules: readonly RulePlan[];
  /** Sum of the rules' bytes per key. */
  readonly bytesPerKey: number;
  /** The canonical JSON that the id hashes. */
  readonly identity: string;
}

/** How one window of one feature (version) is served. */
export interface ReadPlan {
  /** `user.total__604800__` (with `@<version>` for versioned features). */
  readonly canonical: string;
  /** `user.total` (`user.total_spend@2` for a version). */
  readonly feature: string;
  readonly namespace: string;
  readonly name: string;
  readonly version: number | null;
  /** True for the default version of a versioned feature (and unversioned ones). */
  readonly isDefaultVersion: boolean;
  /** The window as declared. */
  readonly declared: string;
  /** The window, canonically printed. */
  readonly window: string;
  readonly windowMs: number;
  /** Series id. */
  readonly series: string;
  /** Rule index within the series. */
  readonly rule: number;
  /** How to build the series key from the owner's features, in `groupKey` order. */
  readonly key: readonly { readonly seriesColumn: string; readonly ownerColumn: string }[];
  /** Series key columns that are groups (supplied or enumerated at query time). */
  readonly groupBy: readonly string[];
  /** Value when the window holds no data (count-like aggregations: 0). */
  readonly default: JsonValue;
  readonly resultType: ResultType;
  /** `approx_top_k` only: return `{ value, weight }` pairs. */
  readonly returnTotalWeight: boolean;
  /** Part of the window to compute from raw events (continuous buffer), or `null`. */
  readonly continuousBufferMs: number | null;
}

/** One window of a feature plan. */
export interface FeatureWindowPlan {
  readonly declared: string;
  readonly window: string;
  readonly windowMs: number;
  readonly canonical: string;
  /** Bucket size serving it (`null` when not materialized). */
  readonly bucketSizeMs: number | null;
}

/** Materialization settings of a feature, as planned. */
export interface MaterializationPlan {
  readonly bucketOriginMs: number;
  readonly backfillSchedule: BackfillSchedule | null;
  readonly backfillTags: readonly (readonly string[])[];
  readonly continuousBufferMs: number | null;
}

/** What a feature's expression aggregates. */
export interface FeatureSourcePlan {
  readonly namespace: string;
  readonly relation: string;
  readonly column: ColumnAtVersion | null;
  readonly by: ColumnAtVersion | null;
  readonly groupBy: readonly string[];
  readonly filters: readonly IngestFilter[];
  readonly aggregation: AggregationDescription;
}

/** One windowed feature (one version of a versioned one). */
export interface FeaturePlan {
  readonly feature: string;
  readonly namespace: string;
  readonly name: string;
  readonly version: number | null;
  readonly defaultVersion: number | null;
  /**
   * `materialized`: served from series; `unmaterialized`: has an expression but no
   * materialization; `resolver`: no expression (written by a windowed stream resolver).
   */
  readonly kind: 'materialized' | 'unmaterialized' | 'resolver';
  readonly grouped: boolean;
  readonly windows: readonly FeatureWindowPlan[];
  readonly source: FeatureSourcePlan | null;
  readonly materialization: MaterializationPlan | null;
  readonly resultType: ResultType;
  readonly default: JsonValue;
  /**
   * A feature a windowed stream resolver computes: how old its latest value may be
   * before the default is served (absent: any age).
   */
  readonly maxStalenessMs?: number;
}

/** A column of a class. */
export interface ColumnPlan {
  readonly name: string;
  readonly type: ScalarType;
  /** Versions of a versioned column. */
  readonly versions: {
    readonly defaultVersion: number;
    readonly types: readonly { readonly version: number; readonly type: ScalarType }[];
  } | null;
  /** Foreign key target, `namespace.column`. */
  readonly references: string | null;
}

/** A has-many relation and its join. */
export interface RelationPlan {
  readonly name: string;
  readonly target: string;
  /** Pairs (column of the related class, column of this class). */
  readonly join: readonly { readonly target: string; readonly owner: string }[];
}

/** A feature class. */
export interface ClassPlan {
  readonly namespace: string;
  readonly primaryKey: readonly string[];
  readonly featureTime: string | null;
  readonly columns: readonly ColumnPlan[];
  readonly relations: readonly RelationPlan[];
}

/** The whole plan. */
export interface Plan {
  readonly formatVersion: 1;
  readonly classes: readonly ClassPlan[];
  readonly features: readonly FeaturePlan[];
  readonly series: readonly SeriesPlan[];
  readonly reads: readonly ReadPlan[];
  /** Upper bound of state bytes per key, summed over every series. */
  readonly bytesPerKey: number;
}

/** The value kinds a series may hold, by column kind. */
export const VALUE_KIND: Readonly<Record<ScalarKind, SeriesDescription['valueKind']>> =
  Object.freeze({
    int: 'number',
    float: 'number',
    boolean: 'number',
    datetime: 'number',
    string: 'string',
    vector: 'vector',
  });
