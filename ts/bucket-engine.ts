/**
 * {@link BucketEngine}: a thin typed wrapper over the native engine. Its input is a plain,
 * serialisable {@link StoreDescription} (series, rules, retention) that the planner
 * produces; its batches and queries are columnar (typed arrays), never one call per
 * event. Errors are {@link TesseraError}s with a stable `code`.
 */
import { fromNative } from './errors.js';
import {
  type BackfillLayoutInput,
  type BackfillRangeRecord,
  type BackfillReportOutput,
  type BackfillRunEntry,
  type BackfillRunOptions,
  type CommitOptions,
  type CommitReportOutput,
  type DeadLetterQuery,
  type DeadLetterRecord,
  type EngineStats,
  type HeldKeyMessagesOutput,
  type IngestReportOutput,
  type KeptMessagesOutput,
  type KeyPart,
  type NativeBackfill,
  type NativeEngine,
  native,
  type OpenOptions,
  type OpenReportOutput,
  type ParityPointsResult,
  type ParityQuery,
  type PointQuery,
  type PointQueryResult,
  type QueryBufferPlans,
  type RecomputeQuery,
  type ResolverStateRecord,
  type SeriesBatchInput,
  type SourcePositionInput,
  type StoreDescription,
  type StoredBucketOutput,
  type TilePointQuery,
  type TilePointResult,
  type WindowCoverageRecord,
  type WindowedValueOutput,
  type WindowQuery,
  type WindowQueryResult,
  type WindowReadInput,
} from './native.js';

function call<T>(f: () => T): T {
  try {
    return f();
  } catch (error) {
    throw fromNative(error);
  }
}

async function callAsync<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (error) {
    throw fromNative(error);
  }
}

/**
 * An open bucket store.
 *
 * @example
 * ```ts
 * const engine = BucketEngine.open('/tmp/store', { series: [{ id: 's1', valueKind: 'number',
 *   rules: [{ aggregation: { kind: 'sum' }, bucketSizeMs: 3_600_000, bucketOriginMs: 0,
 *             retentionMs: 86_400_000 }] }] });
 * engine.commitBatches([{ seriesId: 's1', keys: [{ ints: new Float64Array([7]) }],
 *   timestampsMs: new Float64Array([Date.now()]), numbers: new Float64Array([12.5]) }]);
 * const [result] = engine.query([{ keys: [{ ints: new Float64Array([7]) }],
 *   reads: [{ seriesId: 's1', rule: 0, windowMs: 86_400_000 }] }]);
 * ```
 */
export class BucketEngine {
  private constructor(private readonly inner: NativeEngine) {}

  /** Opens or creates the store at `path` holding the series of `description`. */
  static open(path: string, description: StoreDescription, options?: OpenOptions): BucketEngine {
    return new BucketEngine(call(() => native.NativeEngine.open(path, description, options)));
  }

  /**
   * Opens the store at `path` for reading only, without its lock, so that it works while
   * another process (a stream, `tessera serve`) holds the store. It sees the commits made
   * before it was opened; writes fail. Without a description every stored series is
   * active (and listed as kept in {@link openReport}). With one, {@link openReport} and
   * the coverage are what opening the store for it would find and record (its rules
   * reconciled with the stored ones, docs/semantics.md section 9.4), and reads take its
   * rule indexes; nothing is written.
   */
  static openReadOnly(path: string, description?: StoreDescription): BucketEngine {
    return new BucketEngine(call(() => native.NativeEngine.openReadOnly(path, description)));
  }

  /** Which series opening found new, kept, and orphaned (stored but no longer described). */
  get openReport(): OpenReportOutput {
    return this.inner.openReport;
  }

  /**
   * Folds `batches` and writes them, with the options' positions, dead letters and
   * resolver states, in one atomic write: acknowledged when it returns. Staged rows
   * ({@link stage}) are not part of it, so a commit carries exactly the rows its
   * positions account for.
   */
  commitBatches(batches: SeriesBatchInput[], options?: CommitOptions): CommitReportOutput {
    return call(() => this.inner.commitBatches(batches, options));
  }

  /** {@link commitBatches} off the event loop. Do not modify the arrays until it settles. */
  commitBatchesAsync(
    batches: SeriesBatchInput[],
    options?: CommitOptions,
  ): Promise<CommitReportOutput> {
    return callAsync(() => this.inner.commitBatchesAsync(batches, options));
  }

  /** Folds batches into the staging area; nothing is written until {@link commitStaged}. */
  stage(batches: SeriesBatchInput[]): IngestReportOutput {
    return call(() => this.inner.stage(batches));
  }

  /** {@link stage} off the event loop. Do not modify the arrays until it settles. */
  stageAsync(batches: SeriesBatchInput[]): Promise<IngestReportOutput> {
    return callAsync(() => this.inner.stageAsync(batches));
  }

  /** Writes every staged row, with the options' records, in one atomic write. */
  commitStaged(options?: CommitOptions): CommitReportOutput {
    return call(() => this.inner.commitStaged(options));
  }

  /** {@link commitStaged} off the event loop. */
  commitStagedAsync(options?: CommitOptions): Promise<CommitReportOutput> {
    return callAsync(() => this.inner.commitStagedAsync(options));
  }

  /** Drops the staged rows without writing them. */
  discardStaged(): void {
    call(() => this.inner.discardStaged());
  }

  /** Reads windows of committed data for many keys and rules in one native call. */
  query(queries: WindowQuery[]): WindowQueryResult[] {
    return call(() => this.inner.query(queries));
  }

  queryAsync(queries: WindowQuery[]): Promise<WindowQueryResult[]> {
    return callAsync(() => this.inner.queryAsync(queries));
  }

  /**
   * Reads windows for many keys, each at its own time, from the complete buckets before
   * the edge of the bucket holding it (docs/semantics.md section 11), off the event loop.
   */
  queryPointsAsync(query: PointQuery): Promise<PointQueryResult> {
    return callAsync(() => this.inner.queryPointsAsync(query));
  }

  /**
   * Reads windows for many keys, each at its own time, from the offline tiles of
   * `tileDir`: the materialized mode's windows, merged from tiles instead of the store
   * (docs/semantics.md section 11.2).
   */
  queryTilesAsync(query: TilePointQuery): Promise<TilePointResult> {
    return callAsync(() => this.inner.queryTilesAsync(query));
  }

  /**
   * For each layout: up to where the tiles of `tileDir` cover all its rules, or null when
   * a rule has no tile.
   */
  tileCoveredEnd(tileDir: string, layouts: BackfillLayoutInput[]): (number | null)[] {
    return call(() => this.inner.tileCoveredEnd(tileDir, layouts)).map((end) => end ?? null);
  }

  /**
   * Recomputes windows from raw rows (`raw`, an ingest's batches), each key at its own
   * time, exactly or aligned to bucket edges (docs/semantics.md section 11).
   */
  recomputePointsAsync(query: RecomputeQuery): Promise<WindowQueryResult> {
    return callAsync(() => this.inner.recomputePointsAsync(query));
  }

  /**
   * The parity check's recompute (docs/semantics.md section 11, "Parity check"): each
   * window as the online store serves it at the key's time, from raw rows, with its
   * tolerance and, for percentiles, the ranks of `online` and of the recomputed value.
   */
  parityPointsAsync(query: ParityQuery): Promise<ParityPointsResult> {
    return callAsync(() => this.inner.parityPointsAsync(query));
  }

  /** Every group key of a series with a bucket the store still serves, as key parts. */
  groupKeys(seriesId: string): (number | string)[][] {
    return call(() => this.inner.groupKeys(seriesId));
  }

  /** The engine clock in Unix ms: the pinned time, else the system clock. */
  clockMs(): number {
    return this.inner.clockMs();
  }

  /**
   * Where the buffered reads (`bufferMs`) of each query take their parts from at its
   * now: which stored buckets they merge and which raw rows they need in `raw`
   * (docs/semantics.md section 9.6).
   */
  bufferPlans(queries: WindowQuery[]): QueryBufferPlans[] {
    return call(() => this.inner.bufferPlans(queries));
  }

  /** The stored buckets of one series and key between two bucket starts (inclusive). */
  readBuckets(
    seriesId: string,
    key: KeyPart[],
    fromMs: number,
    toMs: number,
  ): StoredBucketOutput[] {
    return call(() => this.inner.readBuckets(seriesId, key, fromMs, toMs));
  }

  /** The stored positions of one source, by partition. */
  positions(source: string): SourcePositionInput[] {
    return call(() => this.inner.positions(source));
  }

  /** The state a resolver committed last (watermark, dedupe horizon), or `null`. */
  resolverState(resolver: string): ResolverStateRecord | null {
    return call(() => this.inner.resolverState(resolver)) ?? null;
  }

  /**
   * The messages a continuous windowed resolver kept for each key (its key text) with
   * times in `(afterMs, untilMs]`, in time order.
   */
  retainedMessages(
    resolver: string,
    keys: string[],
    afterMs: number,
    untilMs: number,
  ): KeptMessagesOutput[] {
    return call(() => this.inner.retainedMessages(resolver, keys, afterMs, untilMs));
  }

  /** The starts of the periods of `windowMs` a tumbling windowed resolver holds messages for. */
  heldPeriods(resolver: string, windowMs: number): number[] {
    return call(() => this.inner.heldPeriods(resolver, windowMs));
  }

  /** The messages a tumbling windowed resolver holds in one period, by key then time. */
  heldMessages(resolver: string, windowMs: number, periodStartMs: number): HeldKeyMessagesOutput[] {
    return call(() => this.inner.heldMessages(resolver, windowMs, periodStartMs));
  }

  /**
   * For each key, the value of the latest closed period of `windowMs` observed at or
   * before its time in `atMs`.
   */
  windowedValues(
    resolver: string,
    windowMs: number,
    keys: string[],
    atMs: Float64Array,
  ): (WindowedValueOutput | null)[] {
    return call(() => this.inner.windowedValues(resolver, windowMs, keys, atMs)).map(
      (v) => v ?? null,
    );
  }

  /** Keeps a continuous windowed resolver's messages for `retentionMs`, by the engine clock. */
  setWindowedRetention(resolver: string, retentionMs: number): void {
    call(() => this.inner.setWindowedRetention(resolver, retentionMs));
  }

  /** Kept dead letters (messages that could not be folded), in source position order. */
  deadLetters(query?: DeadLetterQuery): DeadLetterRecord[] {
    return call(() => this.inner.deadLetters(query));
  }

  /** How many dead letters are kept, of one source or all. */
  deadLetterCount(source?: string): number {
    return call(() => this.inner.deadLetterCount(source));
  }

  flush(): void {
    call(() => this.inner.flush());
  }

  /** Compacts now; buckets past their retention are removed. */
  compact(): void {
    call(() => this.inner.compact());
  }

  stats(): EngineStats {
    return call(() => this.inner.stats());
  }

  countBucketEntries(): number {
    return call(() => this.inner.countBucketEntries());
  }

  /**
   * The bucket ranges a backfill of `layouts` replaces for `[lowerMs, upperMs)`, widened
   * to each layout's bucket edges (docs/semantics.md section 9).
   */
  backfillRanges(
    layouts: BackfillLayoutInput[],
    lowerMs?: number,
    upperMs?: number,
  ): BackfillRangeRecord[] {
    return call(() => this.inner.backfillRanges(layouts, lowerMs, upperMs));
  }

  /**
   * For each read, at `nowMs` (default: the engine clock): the first bucket the window
   * reads and where its layout is complete from (docs/semantics.md section 9.4).
   */
  windowCoverage(reads: WindowReadInput[], nowMs?: number): WindowCoverageRecord[] {
    return call(() => this.inner.windowCoverage(reads, nowMs));
  }

  /** Writes (or overwrites) the record of one run of a scheduled backfill job, synced. */
  putBackfillRun(entry: BackfillRunEntry): void {
    call(() => this.inner.putBackfillRun(entry));
  }

  /** The records of one job's runs (or of every job's), oldest scheduled time first. */
  backfillRuns(job?: string): BackfillRunEntry[] {
    return call(() => this.inner.backfillRuns(job));
  }

  /** Starts a backfill of `ranges`; nothing is visible until it finishes. */
  beginBackfill(ranges: BackfillRangeRecord[], options?: BackfillRunOptions): BackfillRun {
    return new BackfillRun(call(() => this.inner.beginBackfill(ranges, options)));
  }

  /** Pins the engine clock (retention, default query time), or unpins it with `null`. */
  setClock(nowMs: number | null): void {
    this.inner.setClock(nowMs ?? undefined);
  }

  close(): void {
    call(() => this.inner.close());
  }
}

/** A backfill in progress in the native engine (see {@link BucketEngine.beginBackfill}). */
export class BackfillRun {
  constructor(private readonly inner: NativeBackfill) {}

  /** Folds batches off the event loop; a bad batch folds nothing. Resolves to the rows folded. */
  foldAsync(batches: SeriesBatchInput[]): Promise<number> {
    return callAsync(() => this.inner.foldAsync(batches));
  }

  /** Rows folded so far. */
  get rows(): number {
    return this.inner.rows;
  }

  /** Ingests the run in one atomic step, off the event loop. */
  finishAsync(): Promise<BackfillReportOutput> {
    return callAsync(() => this.inner.finishAsync());
  }

  /** Discards the run; nothing of it is written. */
  abort(): void {
    this.inner.abort();
  }
}
