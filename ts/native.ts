/**
 * Loads the native binding (built by `napi build` into `native/`, or a prebuilt
 * per-platform package that the generated loader finds). Works from `ts/` (vitest) and
 * from the compiled `dist/ts/` alike, by finding the package root.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Binding from '../native/index.cjs';

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'Cargo.toml')) || !existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the Tessera package root');
    dir = parent;
  }
  return dir;
}

function load(): typeof Binding {
  const loader = join(packageRoot(), 'native', 'index.cjs');
  if (!existsSync(loader)) {
    throw new Error(
      `Tessera's native engine is not built (${loader} is missing). Run \`npm install\` or \`npm run build:native\`.`,
    );
  }
  return createRequire(import.meta.url)(loader) as typeof Binding;
}

/** The generated binding. */
export const native: typeof Binding = load();

export type {
  AggregationArgumentEntry,
  AggregationCatalog,
  AggregationCatalogEntry,
  AggregationDescription,
  CommitOptions,
  CommitReportOutput,
  DeadLetterQuery,
  DeadLetterRecord,
  DecodedMessageColumns,
  DecodedStrings,
  EngineStats,
  IngestReportOutput,
  JsonMessageDecoder,
  KeyPart,
  ListValue,
  MessageFieldDescription,
  MessageOutputDescription,
  MessageOutputKind,
  MessagePlanDescription,
  NativeEngine,
  OpenOptions,
  OpenReportOutput,
  PartitionOffset,
  ReportedSeriesSummary,
  ResolverStateRecord,
  RuleDescription,
  RuleValue,
  SeriesBatchInput,
  SeriesDescription,
  SeriesSummaryDescription,
  SourcePositionInput,
  StateBytesEntry,
  StoreDescription,
  StoredBucketOutput,
  ValueExplanation,
  ValueKind,
  WindowQuery,
  WindowQueryResult,
  WindowReadInput,
} from '../native/index.cjs';
