/**
 * Tessera's planner: feature definitions -> a frozen, serialisable plan of series,
 * rules, buckets and reads; the store description the native engine receives; the
 * `aggregate list` table and the storage estimate.
 *
 * @example
 * import { compile, renderAggregateList, toStoreDescription } from 'tessera-engine';
 * const { plan, diagnostics } = compile([User, Transaction]);
 * console.log(renderAggregateList(plan));
 * native.open(toStoreDescription(plan));
 */

export {
  AGGREGATIONS,
  type AggregationArgument,
  type AggregationEntry,
  type AggregationKind,
  aggregationEntry,
  isCountLike,
  type StateBytes,
  type Tolerance,
} from './aggregations.js';
export { type CompileResult, compile, type PlanInput, plan, validate } from './compile.js';
export {
  type AggregateListRow,
  aggregateListRows,
  aggregationText,
  renderAggregateList,
  renderStorageEstimate,
  renderTable,
} from './list.js';
export { findRead, type WindowRefLike } from './lookup.js';
export { isCronExpression, parseBucketStart } from './materialization.js';
export { featureClassesOf } from './resolve.js';
export {
  canonicalJson,
  formerSeriesId,
  type RuleIdentity,
  type SeriesIdentity,
  seriesId,
} from './series.js';
export { type SeriesSummary, summarize as summarizeSeries } from './series-summary.js';
export { bucketsKept, bytesPerBucket, formatBytes, STORAGE_FORMULA } from './storage.js';
export { toStoreDescription } from './store-description.js';
export type * from './types.js';
export { VALUE_KIND } from './types.js';
