/**
 * Tessera: an embedded engine for windowed feature aggregations.
 *
 * - Declare features with the DSL (`features`, `windowed`, `hasMany`, ...).
 * - Plan them (`plan`, `compile`, `renderAggregateList`) into a frozen plan.
 * - Open a store with {@link Tessera.open}, `ingest` rows, `query` feature windows.
 * - {@link BucketEngine} is the native engine underneath, for direct columnar use.
 *
 * @example
 * import { datetime, features, float, hasMany, int, Tessera, windowed } from 'tessera-engine';
 *
 * const Transaction = features('transaction', {
 *   id: int().primary(),
 *   user_id: int().references('user.id'),
 *   amount: float(),
 *   ts: datetime().featureTime(),
 * });
 * const User = features('user', { id: int().primary(), transactions: hasMany(() => Transaction) },
 *   (user) => ({
 *     total: windowed('1d', '7d', {
 *       materialization: { bucketDuration: '1h' },
 *       expression: user.transactions.select((t) => t.amount).sum(),
 *       default: 0,
 *     }),
 *   }));
 *
 * const tessera = Tessera.open({ path: '.tessera/store', features: [User, Transaction] });
 * tessera.ingest(Transaction, [{ id: 1, user_id: 7, amount: 12.5, ts: new Date() }]);
 * tessera.query({ input: { 'user.id': [7] }, output: [User.total['7d']] }).rows[0]?.values;
 * // [12.5]
 */

export { InvalidOptionError, InvalidQueryError, InvalidRowsError } from './api/errors.js';
export type {
  ClassColumns,
  IngestColumns,
  IngestRow,
  IngestRows,
  IngestValue,
  SeriesFed,
} from './api/ingest.js';
export type {
  OfflinePlannerOptions,
  OfflineQueryRequest,
  OfflineQueryResult,
  OfflineQueryRow,
} from './api/offline.js';
export {
  type IncompleteWindow,
  renderOpenReport,
  type SeriesChange,
  type TesseraOpenReport,
} from './api/open-report.js';
export type {
  ParityDifference,
  ParityKey,
  ParityOptions,
  ParityOutput,
  ParityResult,
  ParitySkipped,
  ToleranceKind,
} from './api/parity.js';
export type {
  BufferExplanation,
  BufferedRowsNeed,
  FeatureValue,
  GroupedItem,
  KeyValue,
  OutputInfo,
  OutputRef,
  OutputValue,
  OutputValues,
  QueryInput,
  QueryRequest,
  QueryResult,
  QueryRow,
  ScalarValue,
  ValueExplanation,
  WeightedItem,
} from './api/query.js';
export { readSpine, type Spine, type SpineOptions } from './api/spine.js';
export { writeTrainingSet } from './api/training-set.js';
// Batch resolvers and backfills.
export {
  BackfillError,
  type BackfillLayoutPlan,
  type BackfillOptions,
  type BackfillPlan,
  type BackfillProgress,
  type BackfillReport,
  type BackfillTarget,
  type FeatureSelector,
  type StartedBackfill,
} from './batch/backfill.js';
export {
  type ArrowTableLike,
  type ArrowVectorLike,
  type BatchColumns,
  type BatchResolver,
  BatchResolverError,
  type BatchResolverOptions,
  type BatchRows,
  type BatchRun,
  type BatchSource,
  type ColumnsBatchResolverOptions,
  isBatchResolver,
  makeBatchResolver,
  type RowsBatchResolverOptions,
  type SqlBatchResolverOptions,
} from './batch/resolver.js';
export {
  type BackfillJob,
  BackfillScheduler,
  isScheduledAggregateBackfill,
  ScheduledAggregateBackfill,
  type ScheduledAggregateBackfillJob,
  type ScheduledAggregateBackfillOptions,
  type ScheduledJobStatus,
  type SchedulerHost,
  type SchedulerOptions,
} from './batch/schedules.js';
export { BackfillRun, BucketEngine } from './bucket-engine.js';
export {
  isOnlineResolver,
  makeOnlineResolver,
  type OnlineResolver,
  type OnlineResolverOptions,
  type OnlineRowsRequest,
} from './buffer/online-resolver.js';
export { BufferRowsError } from './buffer/rows.js';
export * from './dsl/index.js';
export {
  ClosedError,
  CorruptStateError,
  fromNative,
  IncompatibleFormatError,
  InternalError,
  InvalidArgumentError,
  InvalidBatchError,
  InvalidDescriptionError,
  StorageError,
  TesseraError,
} from './errors.js';
// Stream resolvers and their sources.
export type {
  BackfillLayoutInput,
  BackfillRangeRecord,
  BackfillReportOutput,
  BackfillRunEntry,
  BackfillRunOptions,
  BufferPlanOutput,
  CommitOptions,
  CommitReportOutput,
  DeadLetterQuery,
  DeadLetterRecord,
  EngineStats,
  HeldKeyMessagesOutput,
  IngestReportOutput,
  KeptMessagesOutput,
  KeyPart,
  ListValue,
  NativeBackfill,
  OpenOptions,
  OpenReportOutput,
  ParityPointsResult,
  ParityQuery,
  PartitionOffset,
  PointQuery,
  PointQueryResult,
  QueryBufferPlans,
  RecomputeQuery,
  ReportedSeriesSummary,
  ResolverStateRecord,
  RetentionChangeOutput,
  RuleValue,
  SeriesBatchInput,
  SeriesChangeOutput,
  SourcePositionInput,
  StaleWindowOutput,
  StoredBucketOutput,
  TilePointQuery,
  TilePointResult,
  UncoveredWindowOutput,
  WindowCoverageRecord,
  WindowedRecordsInput,
  WindowedValueOutput,
  WindowQuery,
  WindowQueryResult,
  WindowReadInput,
} from './native.js';
export { MissingDependencyError } from './optional-peer.js';
export * from './planner/index.js';
export {
  type BatchReport,
  DataFrame,
  type DeclarativeStreamResolverOptions,
  type FieldRef,
  type FunctionStreamResolverOptions,
  isStreamResolver,
  type MessageContext,
  makeStreamResolver,
  makeWindowedStreamResolver,
  type OutputColumn,
  type OutputFeatureMap,
  type OutputFeaturePairs,
  type ResolvedRow,
  type StreamMetrics,
  type StreamResolver,
  StreamResolverError,
  StreamRunner,
  type StreamRunnerOptions,
  type WindowContext,
  type WindowedBatchReport,
  type WindowedResult,
  type WindowedStreamMetrics,
  type WindowedStreamResolver,
  type WindowedStreamResolverOptions,
  WindowedStreamRunner,
  type WindowedStreamRunnerOptions,
} from './resolvers/index.js';
export type { WindowedOutput } from './resolvers/windowed.js';
// Prometheus metrics on a prom-client registry (what `tessera serve` exposes at /metrics).
export {
  QUERY_LATENCY_BUCKETS,
  registerTesseraMetrics,
  type TesseraMetrics,
  type TesseraMetricsOptions,
  type TesseraMetricsSources,
} from './server/metrics.js';
export {
  JsonLinesSource,
  type JsonLinesSourceOptions,
  KafkaSource,
  type KafkaSourceOptions,
  MemorySource,
  type MemorySourceOptions,
  type PartitionLag,
  type PartitionPosition,
  type PushOptions,
  type Source,
  type SourceMessage,
} from './sources/index.js';
export {
  type IngestOptions,
  type IngestResult,
  type SourcePosition,
  Tessera,
  type TesseraOptions,
} from './tessera.js';
