/**
 * {@link BucketEngine}: a thin typed wrapper over the native engine. Its input is a plain,
 * serialisable {@link StoreDescription} (series, rules, retention) that the planner
 * produces; its batches and queries are columnar (typed arrays), never one call per
 * event. Errors are {@link TesseraError}s with a stable `code`.
 */
import { fromNative } from './errors.js';
import {
  type CommitOptions,
  type CommitReportOutput,
  type DeadLetterQuery,
  type DeadLetterRecord,
  type EngineStats,
  type IngestReportOutput,
  type KeyPart,
  type NativeEngine,
  native,
  type OpenOptions,
  type OpenReportOutput,
  type SeriesBatchInput,
  type SourcePositionInput,
  type StoreDescription,
  type StoredBucketOutput,
  type WindowQuery,
  type WindowQueryResult,
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
 * engine.ingestAndCommit([{ seriesId: 's1', keys: [{ ints: new Float64Array([7]) }],
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
   * before it was opened; every stored series is active (and listed as kept in
   * {@link openReport}); writes fail.
   */
  static openReadOnly(path: string): BucketEngine {
    return new BucketEngine(call(() => native.NativeEngine.openReadOnly(path)));
  }

  /** Which series opening found new, kept, and orphaned (stored but no longer described). */
  get openReport(): OpenReportOutput {
    return this.inner.openReport;
  }

  /** Folds batches in memory; nothing is written until {@link commit}. */
  ingest(batches: SeriesBatchInput[]): IngestReportOutput {
    return call(() => this.inner.ingest(batches));
  }

  /** {@link ingest} off the event loop. Do not modify the arrays until it settles. */
  ingestAsync(batches: SeriesBatchInput[]): Promise<IngestReportOutput> {
    return callAsync(() => this.inner.ingestAsync(batches));
  }

  /** Writes all folded buckets and `positions` in one atomic write. */
  commit(positions?: SourcePositionInput[], options?: CommitOptions): CommitReportOutput {
    return call(() => this.inner.commit(positions, options));
  }

  commitAsync(
    positions?: SourcePositionInput[],
    options?: CommitOptions,
  ): Promise<CommitReportOutput> {
    return callAsync(() => this.inner.commitAsync(positions, options));
  }

  /** Folds and commits in one atomic write: acknowledged when it returns. */
  ingestAndCommit(
    batches: SeriesBatchInput[],
    positions?: SourcePositionInput[],
    options?: CommitOptions,
  ): CommitReportOutput {
    return call(() => this.inner.ingestAndCommit(batches, positions, options));
  }

  ingestAndCommitAsync(
    batches: SeriesBatchInput[],
    positions?: SourcePositionInput[],
    options?: CommitOptions,
  ): Promise<CommitReportOutput> {
    return callAsync(() => this.inner.ingestAndCommitAsync(batches, positions, options));
  }

  /** Reads windows of committed data for many keys and rules in one native call. */
  query(queries: WindowQuery[]): WindowQueryResult[] {
    return call(() => this.inner.query(queries));
  }

  queryAsync(queries: WindowQuery[]): Promise<WindowQueryResult[]> {
    return callAsync(() => this.inner.queryAsync(queries));
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

  /** Kept dead letters (messages that could not be folded), in source position order. */
  deadLetters(query?: DeadLetterQuery): DeadLetterRecord[] {
    return call(() => this.inner.deadLetters(query));
  }

  /** How many dead letters are kept, of one source or all. */
  deadLetterCount(source?: string): number {
    return call(() => this.inner.deadLetterCount(source));
  }

  discardPending(): void {
    call(() => this.inner.discardPending());
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

  /** Pins the engine clock (retention, default query time), or unpins it with `null`. */
  setClock(nowMs: number | null): void {
    this.inner.setClock(nowMs ?? undefined);
  }

  close(): void {
    call(() => this.inner.close());
  }
}
