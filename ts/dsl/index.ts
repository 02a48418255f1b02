/**
 * Tessera's feature DSL: feature classes, windowed aggregations, durations, errors.
 *
 * @example
 * import { datetime, features, float, hasMany, int, windowed } from 'tessera-engine';
 *
 * export const Transaction = features('transaction', {
 *   id: int().primary(),
 *   amount: float(),
 *   user_id: int().references('user.id'),
 *   ts: datetime().featureTime(),
 * });
 *
 * export const User = features(
 *   'user',
 *   { id: int().primary(), transactions: hasMany(() => Transaction) },
 *   (user) => ({
 *     total: windowed('1d', '7d', '30d', {
 *       materialization: { bucketDuration: '1d' },
 *       expression: user.transactions
 *         .where((t) => [t.ts.gt(t.chalk_window), t.ts.lte(t.chalk_now)])
 *         .select((t) => t.amount)
 *         .sum(),
 *       default: 0,
 *     }),
 *   }),
 * );
 *
 * User.total['7d'].canonical; // 'user.total__604800__'
 */
export {
  boolean,
  datetime,
  float,
  type GroupedValue,
  type GroupedWindowedBuilder,
  type GroupedWindowedOptions,
  groupByWindowed,
  type HasManyBuilder,
  hasMany,
  int,
  type ResolvedWindowedOptions,
  type ScalarBuilder,
  type ScalarSpec,
  string,
  type VersionedScalarBuilder,
  type VersionedWindowedBuilder,
  vector,
  versioned,
  type WindowedBuilder,
  type WindowedOptions,
  type WindowedSpec,
  type WindowKeywords,
  windowed,
} from './builders.js';
export {
  _,
  type Bound,
  type Column,
  type Condition,
  chalkNow,
  chalkWindow,
  type TimeBound,
  VALUE_TYPE,
  type ValueOf,
  type VersionedColumn,
} from './column.js';
export {
  canonicalWindowName,
  formatDuration,
  MAX_DURATION_MS,
  parseDuration,
  tryParseDuration,
  windowSecondsName,
} from './duration.js';
export type { KeywordWindows, Seconds, WindowKey } from './duration-types.js';
export {
  DefinitionError,
  type Diagnostic,
  type DiagnosticCode,
  type DiagnosticSeverity,
  DurationError,
  formatDiagnostic,
  WindowReferenceError,
} from './errors.js';
export {
  type AnyFeatureBuilder,
  type AnyFeatureClass,
  definitionOf,
  FEATURE_CLASS,
  type FeatureClass,
  type FeatureOf,
  type FeatureShape,
  features,
  isFeatureClass,
  type VersionedWindowedFeature,
  type WindowAliases,
} from './feature-class.js';
export type * from './nodes.js';
export type {
  Aggregate,
  AggregationsFor,
  BooleanAggregations,
  ColumnValues,
  FilterInput,
  HasMany,
  ItemAggregations,
  NumericAggregations,
  OrderedAggregations,
  Projection,
  ProjectionCore,
  RelationQuery,
  Row,
  Selector,
  TopKOptions,
  VarianceOptions,
  VectorAggregations,
} from './relation.js';
export type { WindowedFeature, WindowedFeatureBase, WindowRef } from './window-ref.js';
