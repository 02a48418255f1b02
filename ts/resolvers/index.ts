/**
 * Stream resolvers: messages of a source folded into materialized aggregations, exactly
 * once, with bad messages kept as dead letters.
 */
export { type BadMessage, BoundResolver, ColumnBatch } from './decode.js';
export { DedupeMemory, type DedupeState, dedupeKey } from './dedupe.js';
export {
  type BatchReport,
  type StreamMetrics,
  StreamRunner,
  type StreamRunnerOptions,
} from './runner.js';
export {
  type DeclarativeStreamResolverOptions,
  type FieldRef,
  type FunctionStreamResolverOptions,
  isStreamResolver,
  type MessageContext,
  makeStreamResolver,
  type OutputColumn,
  type OutputFeatureMap,
  type OutputFeaturePairs,
  type ResolvedRow,
  type StreamResolver,
  type StreamResolverCommonOptions,
  StreamResolverError,
} from './stream-resolver.js';
export {
  DataFrame,
  makeWindowedStreamResolver,
  type WindowContext,
  type WindowedResult,
  type WindowedStreamResolver,
  type WindowedStreamResolverOptions,
} from './windowed.js';
export {
  type WindowedBatchReport,
  type WindowedStreamMetrics,
  WindowedStreamRunner,
  type WindowedStreamRunnerOptions,
} from './windowed-runner.js';
