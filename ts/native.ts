/**
 * Loads the native engine. In order:
 * 1. a local build, `native/<binary>.<platform>.node` under the package root (what
 *    `npm install` / `npm run build:native` make in a clone);
 * 2. the per-platform package `<package name>-<platform>` (an `optionalDependency`, so
 *    npm installs only the one matching the machine).
 * Otherwise it throws one error naming the platform, what was tried and how to build
 * from source. The types come from the declarations napi-rs generates from the Rust
 * binding (`native/index.d.cts`, copied next to the compiled package as
 * `dist/native/index.d.cts`).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type * as Binding from '../native/index.cjs';
import { binaryFile, packageFacts, platformPackage, platformSuffix } from './native-platform.js';

function load(): typeof Binding {
  const facts = packageFacts();
  const suffix = platformSuffix();
  const require = createRequire(join(facts.root, 'package.json'));
  const tried: string[] = [];

  const local = join(facts.root, 'native', binaryFile(facts, suffix));
  if (existsSync(local)) return require(local) as typeof Binding;
  tried.push(`no local build at ${local}`);

  const prebuilt = platformPackage(facts, suffix);
  if (facts.prebuilt.includes(suffix)) {
    try {
      return require(prebuilt) as typeof Binding;
    } catch (error) {
      const code = (error as { code?: string }).code;
      tried.push(
        code === 'MODULE_NOT_FOUND'
          ? `the package ${prebuilt} is not installed (was the install run with --omit=optional or --no-optional?)`
          : `the package ${prebuilt} did not load: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  } else {
    tried.push(
      `no prebuilt package exists for ${suffix} (prebuilt: ${facts.prebuilt.join(', ') || 'none'})`,
    );
  }
  throw new Error(
    `Tessera's native engine is not available for ${suffix} (Node ${process.version}): ${tried.join('; ')}. ` +
      `Reinstall ${facts.name} with optional dependencies, or build it from source: clone the ` +
      'repository, then `npm install` (needs Rust >= 1.88 and libclang) or `npm run build:native`.',
  );
}

/** The generated binding. */
export const native: typeof Binding = load();

export type {
  AggregationArgumentEntry,
  AggregationCatalog,
  AggregationCatalogEntry,
  AggregationDescription,
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
  DecodedMessageColumns,
  DecodedStrings,
  EngineStats,
  HeldKeyMessagesOutput,
  IngestReportOutput,
  JsonMessageDecoder,
  KeptMessagesOutput,
  KeyPart,
  ListValue,
  MessageFieldDescription,
  MessageOutputDescription,
  MessageOutputKind,
  MessagePlanDescription,
  NativeBackfill,
  NativeEngine,
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
  RuleDescription,
  RuleValue,
  SeriesBatchInput,
  SeriesChangeOutput,
  SeriesDescription,
  SeriesSummaryDescription,
  SourcePositionInput,
  StaleWindowOutput,
  StateBytesEntry,
  StoreDescription,
  StoredBucketOutput,
  TilePointQuery,
  TilePointResult,
  ToleranceEntry,
  UncoveredWindowOutput,
  ValueExplanation,
  ValueKind,
  WindowCoverageRecord,
  WindowedRecordsInput,
  WindowedValueOutput,
  WindowQuery,
  WindowQueryResult,
  WindowReadInput,
} from '../native/index.cjs';
