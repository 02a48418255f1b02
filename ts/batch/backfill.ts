/**
 * Backfills (docs/semantics.md section 9): which layouts a run rebuilds for the features
 * it names, the widened ranges (computed by the native engine, the one place bucket
 * edges are computed), which batch resolvers it asks, and the run itself: rows from the
 * resolvers -> the one conversion path (`ClassIngest.prepare`) -> the native backfill
 * (folded in bounded memory, ingested in one atomic step).
 */
import { InvalidOptionError } from '../api/errors.js';
import type { ClassIngest } from '../api/ingest.js';
import type { IncompleteWindow } from '../api/open-report.js';
import { toTimeMs } from '../api/values.js';
import type { BackfillRun, BucketEngine } from '../bucket-engine.js';
import { formatDuration } from '../dsl/duration.js';
import { TesseraError } from '../errors.js';
import type { BackfillRangeRecord, BackfillReportOutput } from '../native.js';
import { summarize } from '../planner/series-summary.js';
import type { FeaturePlan, Plan, SeriesPlan } from '../planner/types.js';
import {
  arrowColumns,
  type BatchColumns,
  type BatchResolver,
  type BatchRows,
  type BatchRun,
  badRowText,
  isArrowTable,
  selectedByTags,
} from './resolver.js';
import { SqlRunner } from './sql.js';

/**
 * The materialized feature windows that read, at `nowMs` (default: the engine clock),
 * buckets from before their layout is complete (docs/semantics.md section 9.4).
 */
export function incompleteWindows(
  plan: Plan,
  engine: Pick<BucketEngine, 'windowCoverage'>,
  stored: ReadonlySet<string> | null,
  nowMs?: number,
): IncompleteWindow[] {
  const reads = plan.reads.filter((r) => stored === null || stored.has(r.series));
  if (reads.length === 0) return [];
  const coverage = engine.windowCoverage(
    reads.map((r) => ({ seriesId: r.series, rule: r.rule, windowMs: r.windowMs })),
    nowMs,
  );
  const out: IncompleteWindow[] = [];
  reads.forEach((read, i) => {
    const c = coverage[i];
    if (c?.completeFromMs === undefined || c.firstBucketStartMs >= c.completeFromMs) return;
    out.push(
      Object.freeze({
        feature: read.version === null ? read.feature : `${read.feature}@${read.version}`,
        window: read.window,
        canonical: read.canonical,
        from: new Date(c.firstBucketStartMs).toISOString(),
        to: new Date(c.completeFromMs).toISOString(),
        fromMs: c.firstBucketStartMs,
        toMs: c.completeFromMs,
      }),
    );
  });
  return out;
}

/** A feature a backfill names: `'user.total'`, `'user.total@2'`, `User.total`, or a window of it. */
export type FeatureSelector =
  | string
  | { readonly qualifiedName: string; readonly version?: number | null }
  | ((...args: never[]) => unknown);

/** Options of `Tessera.backfill` and `Tessera.planBackfill`. */
export interface BackfillOptions {
  /** The features whose buckets are rebuilt. */
  readonly features: readonly FeatureSelector[];
  /** The first instant to rebuild (default: the engine clock minus each rule's retention). */
  readonly lowerBound?: Date | number | string;
  /**
   * The end of the range, exclusive (default: the start of the bucket holding the engine
   * clock, so buckets a running stream still writes are left alone).
   */
  readonly upperBound?: Date | number | string;
  /** Only batch resolvers carrying every one of these tags take part. */
  readonly tags?: readonly string[];
  /** Called as rows are folded (at most a few times a second) and when the run ends. */
  readonly onProgress?: (progress: BackfillProgress) => void;
  /** Buckets folded in memory before they are written out to a table file. */
  readonly spillBuckets?: number;
  /** Cancels the run: it stops reading, applies nothing, and rejects. */
  readonly signal?: AbortSignal;
  /**
   * Where the run writes (docs/semantics.md section 11.2): `'online'` (the default)
   * replaces the range in the store; `'offline'` writes offline tiles of it instead,
   * leaving the store as it is, and needs both bounds (or `afterTiles`); `'both'` does
   * both from the same rows.
   */
  readonly target?: BackfillTarget;
  /**
   * Offline targets: record a tile for a layout the run found no rows for, so that its
   * range counts as covered (with no data). Without it such a layout gets no tile.
   */
  readonly allowEmptyTiles?: boolean;
  /**
   * Offline targets: start where the tiles of the run's layouts end (the earliest such
   * end), or at `lowerBound` (default: the engine clock minus retention) for a layout
   * without tiles; the upper bound defaults as for the store. A scheduled offline
   * backfill runs this way, adding one tile per run.
   */
  readonly afterTiles?: boolean;
}

/** Where a backfill writes: the store, offline tiles, or both. */
export type BackfillTarget = 'online' | 'offline' | 'both';

/** How far a run is. */
export interface BackfillProgress {
  readonly phase: 'counting' | 'reading' | 'ingesting' | 'done';
  /** Rows read from the resolvers so far. */
  readonly rows: number;
  /** Rows the run will read, when the resolvers could count them up front. */
  readonly totalRows: number | null;
  readonly elapsedMs: number;
  /** The resolver being read. */
  readonly resolver: string | null;
}

/** One layout a run rebuilds. */
export interface BackfillLayoutPlan {
  readonly series: string;
  /** The readable description of the series. */
  readonly description: string;
  readonly bucketSize: string;
  readonly bucketSizeMs: number;
  /** The replaced buckets start in `[from, to)`. */
  readonly from: string;
  readonly to: string;
  readonly fromMs: number;
  readonly toMs: number;
  readonly buckets: number;
  /** The rules whose states the records hold, as `sum per 1h`. */
  readonly rules: readonly string[];
  /** Features named by the run that read this layout. */
  readonly features: readonly string[];
  /**
   * Other features reading the same records: they are rebuilt from the same rows, since
   * a record holds every rule of its series at that bucket size.
   */
  readonly sharedWith: readonly string[];
}

/** What a run does (`--plan`), before it reads anything. */
export interface BackfillPlan {
  readonly features: readonly string[];
  /** Where the run writes; with tiles, `tileDirectory` is where. */
  readonly target: BackfillTarget;
  readonly tileDirectory: string | null;
  readonly layouts: readonly BackfillLayoutPlan[];
  /** The range the resolvers are asked for: the union of the layouts' ranges. */
  readonly lowerBound: string;
  readonly upperBound: string;
  readonly tags: readonly string[];
  readonly resolvers: readonly { readonly name: string; readonly namespace: string }[];
  readonly estimate: {
    /** Rows the resolvers return for the range, when they can count them. */
    readonly rows: number | null;
    /**
     * The bucket records written: for SQL resolvers the distinct (key, bucket) pairs of
     * their rows per layout, counted by DuckDB; for the others at most one per row and
     * layout. `null` when a resolver cannot count its rows.
     */
    readonly buckets: number | null;
    /**
     * An upper bound of the state bytes those records hold, by the storage estimate's
     * per-bucket figures (key bytes not included, as there).
     */
    readonly bytes: number | null;
  };
}

/** What a run did. */
export interface BackfillReport extends Omit<BackfillPlan, 'estimate'> {
  readonly rows: number;
  readonly rowsPerResolver: Readonly<Record<string, number>>;
  readonly native: BackfillReportOutput;
  readonly elapsedMs: number;
}

/** A backfill that cannot run, or a run that failed (nothing of it was applied). */
export class BackfillError extends TesseraError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BACKFILL_FAILED', message, options);
  }
}

/** What a run needs of the open Tessera. */
export interface BackfillContext {
  readonly plan: Plan;
  readonly engine: BucketEngine;
  readonly resolvers: readonly BatchResolver[];
  /** Where offline tiles are written (docs/semantics.md section 11.2). */
  readonly tileDirectory: string;
  classIngest(namespace: string): ClassIngest;
}

/** A run resolved against the plan: its layouts, ranges and resolvers. */
interface ResolvedRun {
  readonly features: readonly FeaturePlan[];
  readonly ranges: readonly BackfillRangeRecord[];
  readonly layouts: readonly BackfillLayoutPlan[];
  readonly resolvers: readonly BatchResolver[];
  readonly run: BatchRun;
  readonly tags: readonly string[];
  readonly target: BackfillTarget;
  readonly allowEmptyTiles: boolean;
  readonly tileDirectory: string | null;
  /** Series rebuilt per namespace. */
  readonly seriesByNamespace: ReadonlyMap<string, ReadonlySet<string>>;
  /** The columns those series read, per namespace (what a SQL resolver selects). */
  readonly columnsByNamespace: ReadonlyMap<string, ReadonlySet<string>>;
}

function featureName(f: FeaturePlan): string {
  return f.version === null ? f.feature : `${f.feature}@${f.version}`;
}

/** The plan's features named by `selectors`, or an error naming the one that is not. */
export function selectFeatures(plan: Plan, selectors: readonly FeatureSelector[]): FeaturePlan[] {
  if (!Array.isArray(selectors) || selectors.length === 0) {
    throw new InvalidOptionError('backfill: features must name at least one feature');
  }
  const out: FeaturePlan[] = [];
  for (const selector of selectors) {
    let name: string;
    let version: number | null = null;
    if (typeof selector === 'string') {
      const at = selector.lastIndexOf('@');
      name = at > 0 ? selector.slice(0, at) : selector;
      if (at > 0) version = Number(selector.slice(at + 1));
    } else {
      const s = selector as { qualifiedName?: unknown; version?: unknown; windows?: unknown };
      if (typeof s.qualifiedName !== 'string') {
        throw new InvalidOptionError(
          `backfill: ${String(selector)} is not a feature (give 'namespace.feature' or User.total)`,
        );
      }
      name = s.qualifiedName;
      version = typeof s.version === 'number' ? s.version : versionOfHandle(selector);
    }
    const candidates = plan.features.filter((f) => f.feature === name);
    const found =
      version === null
        ? (candidates.find((f) => f.version === f.defaultVersion) ?? candidates[0])
        : candidates.find((f) => f.version === version);
    if (found === undefined) {
      const known = plan.features.filter((f) => f.kind === 'materialized').map(featureName);
      throw new InvalidOptionError(
        `backfill: no feature ${version === null ? name : `${name}@${version}`}; materialized features: ${known.join(', ') || 'none'}`,
      );
    }
    if (found.kind !== 'materialized') {
      throw new InvalidOptionError(
        `backfill: ${featureName(found)} is not materialized (it has no buckets to backfill)`,
      );
    }
    if (!out.includes(found)) out.push(found);
  }
  return out;
}

/** The version of a windowed feature handle (its window references carry it). */
function versionOfHandle(handle: unknown): number | null {
  const h = handle as { windows?: readonly string[] } & ((w: string) => { version?: unknown });
  const first = h.windows?.[0];
  if (typeof h !== 'function' || first === undefined) return null;
  const ref = h(first);
  return typeof ref.version === 'number' ? ref.version : null;
}

function optionalTime(value: Date | number | string | undefined, what: string): number | undefined {
  return value === undefined ? undefined : toTimeMs(value, `backfill ${what}`);
}

/** Resolves a run: features -> layouts -> widened ranges -> resolvers. */
function resolveRun(context: BackfillContext, options: BackfillOptions): ResolvedRun {
  const known = new Set([
    'features',
    'lowerBound',
    'upperBound',
    'tags',
    'onProgress',
    'spillBuckets',
    'signal',
    'target',
    'allowEmptyTiles',
    'afterTiles',
  ]);
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw new InvalidOptionError(`backfill: unknown option '${key}'`);
  }
  const { plan, engine } = context;
  const features = selectFeatures(plan, options.features);
  const tags = options.tags ?? [];
  if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) {
    throw new InvalidOptionError('backfill: tags must be a list of strings');
  }
  const target = options.target ?? 'online';
  if (target !== 'online' && target !== 'offline' && target !== 'both') {
    throw new InvalidOptionError(
      `backfill: target must be 'online', 'offline' or 'both', got ${String(target)}`,
    );
  }
  for (const flag of ['allowEmptyTiles', 'afterTiles'] as const) {
    const value = options[flag];
    if (value !== undefined && typeof value !== 'boolean') {
      throw new InvalidOptionError(`backfill: ${flag} must be true or false`);
    }
    if (value !== undefined && target === 'online') {
      throw new InvalidOptionError(
        `backfill: ${flag} applies to offline tiles; give target 'offline' or 'both'`,
      );
    }
  }
  const afterTiles = options.afterTiles === true;
  if (target !== 'online' && !afterTiles) {
    for (const bound of ['lowerBound', 'upperBound'] as const) {
      if (options[bound] === undefined) {
        throw new InvalidOptionError(
          `backfill: target '${target}' writes offline tiles of a range given whole: ${bound} is required (or afterTiles)`,
        );
      }
    }
  }
  let lower = optionalTime(options.lowerBound, 'lowerBound');
  const upper = optionalTime(options.upperBound, 'upperBound');
  if (lower !== undefined && upper !== undefined && upper <= lower) {
    throw new InvalidOptionError(
      `backfill: upperBound ${new Date(upper).toISOString()} is not after lowerBound ${new Date(lower).toISOString()}`,
    );
  }
  if (options.spillBuckets !== undefined) {
    const n = options.spillBuckets;
    if (!Number.isInteger(n) || n < 1 || n > 0xffff_ffff) {
      throw new InvalidOptionError(`backfill: spillBuckets must be a whole number >= 1, got ${n}`);
    }
  }

  // Layouts: (series, bucket size) of every read of the named features.
  const seriesById = new Map(plan.series.map((s) => [s.id, s]));
  const layoutKeys = new Map<
    string,
    { series: SeriesPlan; sizeMs: number; features: Set<string> }
  >();
  const names = new Set(features.map(featureName));
  for (const read of plan.reads) {
    const feature = features.find((f) => f.feature === read.feature && f.version === read.version);
    if (feature === undefined) continue;
    const series = seriesById.get(read.series);
    const rule = series?.rules[read.rule];
    if (series === undefined || rule === undefined) continue;
    const key = `${series.id}\u0000${rule.bucketSizeMs}`;
    const entry = layoutKeys.get(key) ?? { series, sizeMs: rule.bucketSizeMs, features: new Set() };
    entry.features.add(featureName(feature));
    layoutKeys.set(key, entry);
  }
  const entries = [...layoutKeys.values()];
  const layoutInputs = entries.map((e) => ({ seriesId: e.series.id, bucketSizeMs: e.sizeMs }));
  if (afterTiles) {
    // From the earliest end of the layouts' tiles; a layout without tiles starts at the
    // lower bound (its default when none is given).
    const ends = engine.tileCoveredEnd(context.tileDirectory, layoutInputs);
    if (ends.every((e) => e !== null)) {
      const earliest = Math.min(...(ends as number[]));
      lower = lower === undefined ? earliest : Math.max(lower, earliest);
    }
  }
  // A range the tiles cover up to its upper bound already comes back empty (end = start).
  const ranges = engine.backfillRanges(layoutInputs, lower, upper);
  const layouts: BackfillLayoutPlan[] = entries.map((e, i) => {
    const range = ranges[i] as BackfillRangeRecord;
    const rules = e.series.rules.filter((r) => r.bucketSizeMs === e.sizeMs);
    const readers = new Set<string>();
    for (const rule of rules) for (const d of rule.dependents) readers.add(d.feature);
    const summary = summarize(e.series);
    return {
      series: e.series.id,
      description: summary.description,
      bucketSize: formatDuration(e.sizeMs),
      bucketSizeMs: e.sizeMs,
      from: new Date(range.startMs).toISOString(),
      to: new Date(range.endMs).toISOString(),
      fromMs: range.startMs,
      toMs: range.endMs,
      buckets: Math.max(0, (range.endMs - range.startMs) / e.sizeMs),
      rules: summary.aggregations.filter((_, r) => e.series.rules[r]?.bucketSizeMs === e.sizeMs),
      features: [...e.features],
      sharedWith: [...readers].filter(
        (f) => !names.has(f) && ![...names].some((n) => n.split('@')[0] === f),
      ),
    };
  });

  const seriesByNamespace = new Map<string, Set<string>>();
  const columnsByNamespace = new Map<string, Set<string>>();
  for (const e of entries) {
    const set = seriesByNamespace.get(e.series.namespace) ?? new Set<string>();
    set.add(e.series.id);
    seriesByNamespace.set(e.series.namespace, set);
    const columns = columnsByNamespace.get(e.series.namespace) ?? new Set<string>();
    const s = e.series;
    for (const c of [...s.groupKey, s.timeColumn, s.column?.name, s.by?.name]) {
      if (c !== undefined) columns.add(c);
    }
    for (const f of s.filters) columns.add(f.column);
    columnsByNamespace.set(e.series.namespace, columns);
  }
  const resolvers: BatchResolver[] = [];
  for (const namespace of seriesByNamespace.keys()) {
    const forClass = context.resolvers.filter((r) => r.namespace === namespace);
    const chosen = forClass.filter((r) => selectedByTags(r, tags));
    if (chosen.length === 0) {
      const what = tags.length === 0 ? '' : ` with the tags ${tags.join(', ')}`;
      const have = forClass.map((r) => `${r.name} [${r.tags.join(', ')}]`).join('; ');
      throw new BackfillError(
        `backfill of ${[...names].join(', ')}: no batch resolver for ${namespace}${what}` +
          (have === ''
            ? ' (declare one with makeBatchResolver and pass it to Tessera.open)'
            : ` (have: ${have})`),
      );
    }
    resolvers.push(...chosen);
  }
  const fromMs = Math.min(...ranges.map((r) => r.startMs));
  const toMs = Math.max(...ranges.map((r) => r.endMs));
  const run: BatchRun = Object.freeze({
    lowerBound: new Date(fromMs),
    upperBound: new Date(toMs),
    lowerBoundMs: fromMs,
    upperBoundMs: toMs,
    tags: Object.freeze([...tags]),
  });
  return {
    features,
    ranges,
    layouts,
    resolvers,
    run,
    tags,
    target,
    allowEmptyTiles: options.allowEmptyTiles === true,
    tileDirectory: target === 'online' ? null : context.tileDirectory,
    seriesByNamespace,
    columnsByNamespace,
  };
}

/**
 * A batch resolver's rows for a run, as batches of rows or columns; `columns` narrows a
 * SQL resolver's result to the columns the run needs.
 */
export async function* resolverBatches(
  resolver: BatchResolver,
  plan: Plan,
  run: BatchRun,
  sql: () => Promise<SqlRunner>,
  columns: ReadonlySet<string> | undefined,
): AsyncGenerator<BatchRows> {
  const source = resolver.source;
  if (source.kind === 'sql') {
    const runner = await sql();
    const text = typeof source.sql === 'string' ? source.sql : source.sql(run);
    const cls = classPlan(plan, resolver.namespace);
    yield* runner.batches(await runner.plan(text, cls, run, columns));
  } else if (source.kind === 'rows') {
    yield* source.rows(run);
  } else {
    const given = typeof source.columns === 'function' ? await source.columns(run) : source.columns;
    yield isArrowTable(given) ? arrowColumns(given) : (given as BatchColumns);
  }
}

/** Rows a resolver will return for the run, when it can tell without reading them. */
async function countRows(
  resolver: BatchResolver,
  context: BackfillContext,
  run: BatchRun,
  sql: () => Promise<SqlRunner>,
): Promise<number | null> {
  const source = resolver.source;
  if (source.kind === 'sql') {
    const runner = await sql();
    const text = typeof source.sql === 'string' ? source.sql : source.sql(run);
    const cls = classPlan(context.plan, resolver.namespace);
    return runner.count(await runner.plan(text, cls, run, new Set([cls.featureTime ?? ''])));
  }
  if (source.kind === 'columns') {
    const given = typeof source.columns === 'function' ? await source.columns(run) : source.columns;
    return batchLength(isArrowTable(given) ? arrowColumns(given) : (given as BatchColumns));
  }
  return null;
}

/** The distinct (key, bucket) pairs a SQL resolver's rows fill in one layout. */
async function distinctBuckets(
  resolver: BatchResolver,
  context: BackfillContext,
  run: BatchRun,
  sql: () => Promise<SqlRunner>,
  series: SeriesPlan,
  layout: BackfillLayoutPlan,
): Promise<number> {
  const source = resolver.source;
  if (source.kind !== 'sql') throw new Error('distinctBuckets reads SQL resolvers');
  const runner = await sql();
  const text = typeof source.sql === 'string' ? source.sql : source.sql(run);
  const cls = classPlan(context.plan, resolver.namespace);
  const plan = await runner.plan(text, cls, run, new Set([...series.groupKey, series.timeColumn]));
  return runner.distinctBuckets(plan, series.groupKey, series.timeColumn, {
    sizeMs: layout.bucketSizeMs,
    originMs: series.bucketOriginMs,
    fromMs: layout.fromMs,
    toMs: layout.toMs,
  });
}

/** Rows in one batch of rows or columns. */
export function batchLength(rows: BatchRows): number {
  if (Array.isArray(rows)) return rows.length;
  for (const column of Object.values(rows as BatchColumns)) return column.length;
  return 0;
}

function classPlan(plan: Plan, namespace: string) {
  const cls = plan.classes.find((c) => c.namespace === namespace);
  if (cls === undefined) throw new BackfillError(`backfill: ${namespace} is not a planned class`);
  return cls;
}

/**
 * The rows of several batch resolvers for one run, batch by batch, each with its
 * resolver and the run's row number of its first row; one DuckDB database serves the SQL
 * ones and is closed at the end.
 */
export async function* resolversBatches(
  resolvers: readonly BatchResolver[],
  plan: Plan,
  run: BatchRun,
): AsyncGenerator<{ batch: BatchRows; resolver: BatchResolver; offset: number }> {
  const session = sqlSession();
  try {
    for (const resolver of resolvers) {
      let offset = 0;
      for await (const batch of resolverBatches(resolver, plan, run, session.get, undefined)) {
        yield { batch, resolver, offset };
        offset += batchLength(batch);
      }
    }
  } finally {
    session.close();
  }
}

/** A lazily opened DuckDB database for a run, closed with it. */
export function sqlSession(): { get: () => Promise<SqlRunner>; close: () => void } {
  let opened: Promise<SqlRunner> | undefined;
  return {
    get: () => {
      opened ??= SqlRunner.open();
      return opened;
    },
    close: () => {
      opened?.then((r) => r.close()).catch(() => undefined);
    },
  };
}

/** What a run would do, without writing. */
export async function planBackfill(
  context: BackfillContext,
  options: BackfillOptions,
): Promise<BackfillPlan> {
  const resolved = resolveRun(context, options);
  const session = sqlSession();
  try {
    const counts: (number | null)[] = [];
    for (const resolver of resolved.resolvers) {
      counts.push(await countRows(resolver, context, resolved.run, session.get));
    }
    const rows = counts.some((n) => n === null)
      ? null
      : counts.reduce<number>((sum, n) => sum + (n ?? 0), 0);
    // Bucket records per layout: for a SQL resolver the distinct (key, bucket) pairs its
    // rows fill (DuckDB counts them); for the others at most one per row.
    let buckets: number | null = 0;
    let bytes: number | null = 0;
    for (const layout of resolved.layouts) {
      const series = context.plan.series.find((s) => s.id === layout.series);
      if (series === undefined) continue;
      const perBucket = series.rules
        .filter((r) => r.bucketSizeMs === layout.bucketSizeMs)
        .reduce((sum, r) => sum + r.bytesPerBucket, 0);
      for (const [i, resolver] of resolved.resolvers.entries()) {
        if (resolver.namespace !== series.namespace) continue;
        const n =
          resolver.source.kind === 'sql'
            ? await distinctBuckets(resolver, context, resolved.run, session.get, series, layout)
            : counts[i];
        if (n === null || n === undefined || buckets === null || bytes === null) {
          buckets = null;
          bytes = null;
        } else {
          buckets += n;
          bytes += n * perBucket;
        }
      }
    }
    return {
      ...describe(resolved),
      estimate: { rows, buckets, bytes },
    };
  } finally {
    session.close();
  }
}

function describe(resolved: ResolvedRun): Omit<BackfillPlan, 'estimate'> {
  return {
    features: resolved.features.map(featureName),
    target: resolved.target,
    tileDirectory: resolved.tileDirectory,
    layouts: resolved.layouts,
    lowerBound: resolved.run.lowerBound.toISOString(),
    upperBound: resolved.run.upperBound.toISOString(),
    tags: resolved.tags,
    resolvers: resolved.resolvers.map((r) => ({ name: r.name, namespace: r.namespace })),
  };
}

/** Progress calls at most this often while reading. */
const PROGRESS_EVERY_MS = 200;

/** A backfill whose options were checked, running. */
export interface StartedBackfill {
  /** What the run does: features, layouts with their ranges, tags, resolvers. */
  readonly plan: Omit<BackfillPlan, 'estimate'>;
  /** Settles with the run's report, or rejects when the run failed (nothing applied). */
  readonly done: Promise<BackfillReport>;
}

/**
 * Starts a backfill: checks its options and resolves its layouts now (throwing a
 * {@link BackfillError} for a bad one), then runs it.
 */
export function startBackfill(context: BackfillContext, options: BackfillOptions): StartedBackfill {
  const resolved = resolveRun(context, options);
  return { plan: describe(resolved), done: executeBackfill(context, resolved, options) };
}

/** Runs a backfill: every row is folded, then the run replaces its ranges in one step. */
export async function runBackfill(
  context: BackfillContext,
  options: BackfillOptions,
): Promise<BackfillReport> {
  return startBackfill(context, options).done;
}

async function executeBackfill(
  context: BackfillContext,
  resolved: ResolvedRun,
  options: BackfillOptions,
): Promise<BackfillReport> {
  const started = performance.now();
  const session = sqlSession();
  const onProgress = options.onProgress;
  let totalRows: number | null = null;
  let rows = 0;
  let current: string | null = null;
  let lastProgress = 0;
  const progress = (phase: BackfillProgress['phase'], force = false) => {
    if (onProgress === undefined) return;
    const now = performance.now();
    if (!force && now - lastProgress < PROGRESS_EVERY_MS) return;
    lastProgress = now;
    onProgress({ phase, rows, totalRows, elapsedMs: now - started, resolver: current });
  };
  let native: BackfillRun | undefined;
  try {
    if (onProgress !== undefined) {
      progress('counting', true);
      let total: number | null = 0;
      for (const resolver of resolved.resolvers) {
        const n = await countRows(resolver, context, resolved.run, session.get);
        total = total === null || n === null ? null : total + n;
      }
      totalRows = total;
    }
    native = context.engine.beginBackfill([...resolved.ranges], {
      ...(options.spillBuckets === undefined ? {} : { spillBuckets: options.spillBuckets }),
      online: resolved.target !== 'offline',
      ...(resolved.target === 'online'
        ? {}
        : { tileDir: context.tileDirectory, allowEmptyTiles: resolved.allowEmptyTiles }),
    });
    const rowsPerResolver: Record<string, number> = {};
    // One fold in flight while the next batch is read and converted: the native fold runs
    // on the libuv pool, so reading and folding overlap.
    let inflight: Promise<unknown> | null = null;
    const settle = async () => {
      const pending = inflight;
      inflight = null;
      if (pending !== null) await pending;
    };
    for (const resolver of resolved.resolvers) {
      current = resolver.name;
      const ingest = context.classIngest(resolver.namespace);
      const only = resolved.seriesByNamespace.get(resolver.namespace);
      const columns = resolved.columnsByNamespace.get(resolver.namespace);
      let offset = 0;
      try {
        for await (const batch of resolverBatches(
          resolver,
          context.plan,
          resolved.run,
          session.get,
          columns,
        )) {
          let prepared: ReturnType<ClassIngest['prepare']>;
          try {
            prepared = ingest.prepare(batch, undefined, only);
          } catch (error) {
            throw rowError(resolver, error, offset);
          }
          await settle();
          if (prepared.batches.length > 0) {
            const first = offset;
            const last = offset + prepared.rows - 1;
            const run = native;
            inflight = run.foldAsync(prepared.batches).catch((error: unknown) => {
              throw new BackfillError(
                `backfill: batch resolver ${resolver.name}, rows ${first}..${last}: ${(error as Error).message}`,
                { cause: error },
              );
            });
          }
          offset += prepared.rows;
          rows += prepared.rows;
          progress('reading');
          if (options.signal?.aborted === true) {
            throw new BackfillError('backfill canceled, nothing applied');
          }
        }
        await settle();
      } catch (error) {
        await settle().catch(() => undefined);
        throw error;
      }
      rowsPerResolver[resolver.name] = offset;
    }
    current = null;
    if (options.signal?.aborted === true)
      throw new BackfillError('backfill canceled, nothing applied');
    progress('ingesting', true);
    const report = await native.finishAsync();
    native = undefined;
    progress('done', true);
    return {
      ...describe(resolved),
      rows,
      rowsPerResolver,
      native: report,
      elapsedMs: performance.now() - started,
    };
  } finally {
    native?.abort();
    session.close();
  }
}

/** A bad row of a resolver, named by the resolver and its row number in the run. */
function rowError(resolver: BatchResolver, error: unknown, offset: number): Error {
  const bad = badRowText(`batch resolver ${resolver.name}`, error, offset);
  if (bad !== null) {
    return new BackfillError(`backfill failed, nothing applied: ${bad}`, { cause: error });
  }
  return error instanceof Error ? error : new Error(String(error));
}
