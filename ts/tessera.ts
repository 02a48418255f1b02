/**
 * {@link Tessera}: the engine API. Opens a store from feature definitions (through the
 * planner's frozen plan, the only thing the native engine receives), ingests rows of
 * feature classes into every materialized aggregation they feed, and answers online
 * queries for many keys and many feature windows in one native round trip.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InvalidOptionError, InvalidQueryError, InvalidRowsError } from './api/errors.js';
import { ClassIngest, type IngestRows, type PreparedBatch, type SeriesFed } from './api/ingest.js';
import { type OfflineQueryRequest, type OfflineQueryResult, offlineQuery } from './api/offline.js';
import { type IncompleteWindow, openReport, type TesseraOpenReport } from './api/open-report.js';
import { type ParityOptions, type ParityResult, parity } from './api/parity.js';
import {
  type OutputRef,
  QueryPlanner,
  type QueryRequest,
  type QueryResult,
  type WindowedNeed,
} from './api/query.js';
import { toTimeMs } from './api/values.js';
import { continuousValues, tumblingValues } from './api/windowed-query.js';
import {
  type BackfillContext,
  type BackfillOptions,
  type BackfillPlan,
  type BackfillReport,
  incompleteWindows,
  planBackfill,
  runBackfill,
  type StartedBackfill,
  startBackfill,
} from './batch/backfill.js';
import { type BatchResolver, BatchResolverError, isBatchResolver } from './batch/resolver.js';
import {
  BackfillScheduler,
  backfillJobs,
  isScheduledAggregateBackfill,
  type ScheduledAggregateBackfillJob,
  type SchedulerOptions,
} from './batch/schedules.js';
import { BucketEngine } from './bucket-engine.js';
import { isOnlineResolver, type OnlineResolver } from './buffer/online-resolver.js';
import { attachBufferRows, bufferResolvers } from './buffer/rows.js';
import { DefinitionError, type Diagnostic } from './dsl/errors.js';
import { type AnyFeatureClass, definitionOf, isFeatureClass } from './dsl/feature-class.js';
import type {
  CommitOptions,
  CommitReportOutput,
  EngineStats,
  OpenOptions,
  SourcePositionInput,
} from './native.js';
import { compile, type PlanInput } from './planner/compile.js';
import { type SeriesSummary, summarize } from './planner/series-summary.js';
import { toStoreDescription } from './planner/store-description.js';
import type { Plan } from './planner/types.js';
import {
  BoundWindowed,
  isWindowedStreamResolver,
  type WindowedStreamResolver,
} from './resolvers/windowed.js';
import { lazySql } from './resolvers/windowed-sql.js';

/** A stream position committed atomically with the buckets it produced. */
export type SourcePosition = SourcePositionInput;

/** Options of {@link Tessera.open}. */
export interface TesseraOptions {
  /** The store directory (created when missing). */
  readonly path: string;
  /**
   * The feature classes: a list (`[User, Transaction]`) or a module's exports. Classes
   * reached through relations are planned too.
   */
  readonly features: PlanInput;
  /** Create the store when missing (default true). */
  readonly createIfMissing?: boolean;
  /** Fsync the write-ahead log on every commit (default false; the WAL is always written). */
  readonly syncCommits?: boolean;
  /** Block cache for reads, in bytes (default 128 MiB). */
  readonly blockCacheBytes?: number;
  /**
   * A commit of at least this many buckets that carries no source positions is written
   * as one table file and ingested atomically, bypassing the WAL and the memtable
   * (default 131,072). Such a commit is durable when it returns, and so is every commit
   * before it.
   */
  readonly bulkCommitBuckets?: number;
  /**
   * Pins the engine clock from the start, as {@link Tessera.setClock} does later (for
   * replays and tests): what opening records, such as where a new series' buckets are
   * complete from, is judged by it.
   */
  readonly clock?: Date | number | string;
  /**
   * Where backfills read historical rows ({@link makeBatchResolver}); names must be
   * unique. See {@link Tessera.backfill}.
   */
  readonly batchResolvers?: readonly BatchResolver[];
  /**
   * Where continuous buffers read the raw rows of a window's most recent part at query
   * time ({@link makeOnlineResolver}), at most one per class; a class without one is read
   * through its batch resolvers (docs/semantics.md section 9.6).
   */
  readonly onlineResolvers?: readonly OnlineResolver[];
  /**
   * Scheduled backfill jobs declared with {@link ScheduledAggregateBackfill}, besides
   * those of the features' `backfillSchedule`. See {@link Tessera.schedules}.
   */
  readonly scheduledBackfills?: readonly ScheduledAggregateBackfillJob[];
  /**
   * Where offline tiles are written and read (docs/semantics.md section 11.2), created
   * when a backfill first writes one: a directory of its own, which may be on a shared
   * mount (default: `tiles` inside the store directory).
   */
  readonly tileDirectory?: string;
  /**
   * The windowed stream resolvers ({@link makeWindowedStreamResolver}) that compute this
   * Tessera's windowed features without an expression: their values are stored with the
   * buckets and served by {@link Tessera.query} (tumbling) and {@link Tessera.queryAsync}
   * (both modes); run each with a {@link WindowedStreamRunner} (docs/semantics.md section
   * 6.1). Names must be unique, one resolver per feature.
   */
  readonly windowedResolvers?: readonly WindowedStreamResolver[];
}

/** Options of {@link Tessera.ingest}. */
export interface IngestOptions {
  /**
   * The columns this batch writes, as `column` or `column@version` (the relevance rule
   * of stream resolvers). An aggregation over a versioned column is updated only when
   * its version is written: `'amount@2'` updates aggregations over `amount@2`, never
   * those over `amount` v1; a bare `'amount'` means the column's default version. An
   * aggregation over an unversioned column is updated by a write of that column,
   * whichever version of the windowed feature reads it. `count()` of rows counts when
   * the feature-time column is written.
   *
   * Default: every column present in the rows, as written (a bare versioned column
   * meaning its default version). The value of `column@version` is taken from a
   * property named `column@version` when the rows have one, else from `column`.
   * An empty list updates nothing (positions are still committed).
   */
  readonly writes?: readonly string[];
  /**
   * Commit with the fold (default true): the batch is folded and written in one atomic
   * write, so a later query sees it. With `false` the batch is only staged in memory
   * and the caller commits later ({@link Tessera.commit}), e.g. once per poll of a
   * stream; queries see only committed data. Staged rows are written by
   * {@link Tessera.commit} alone, never by another ingest's or a stream runner's commit.
   */
  readonly commit?: boolean;
  /**
   * Stream positions (source, partition -> offset) written in the same atomic write as
   * the buckets (exactly-once folding). Only with `commit` (the default); with
   * `commit: false` pass them to {@link Tessera.commit} instead.
   */
  readonly positions?: readonly SourcePosition[];
  /** Replace stored buckets instead of merging into them (backfills). Needs `commit`. */
  readonly replace?: boolean;
}

/** What one ingest call did. */
export interface IngestResult {
  /** Rows in the batch. */
  readonly rows: number;
  /** Every series the batch was relevant to, with the rows that passed its filters. */
  readonly series: readonly SeriesFed[];
  /** The commit's report, or `null` with `commit: false`. */
  readonly commit: CommitReportOutput | null;
}

/**
 * An open Tessera store.
 *
 * @example
 * import { Tessera } from 'tessera-engine';
 * import { Transaction, User } from './features.js';
 *
 * const tessera = Tessera.open({ path: '.tessera/store', features: [User, Transaction] });
 * tessera.ingest(Transaction, [
 *   { id: 1, user_id: 7, amount: 12.5, ts: new Date() },
 *   { id: 2, user_id: 7, amount: 30, ts: '2026-01-31T12:00:00Z' },
 * ]);
 * const { rows } = tessera.query({
 *   input: { 'user.id': [7, 8] },
 *   output: [User.total['1d'], User.total_7d, 'user.total__2592000__'],
 * });
 * rows[0]?.values; // [42.5, 42.5, 42.5]
 * tessera.close();
 */
export class Tessera {
  /** The frozen plan the store was opened with. */
  readonly plan: Plan;
  /**
   * Which series are new, kept (and how a definition change altered their rules) and
   * orphaned, each with a readable description, and which windows need a backfill.
   */
  readonly openReport: TesseraOpenReport;
  /** Warnings of the definitions (errors make {@link Tessera.open} throw). */
  readonly warnings: readonly Diagnostic[];
  /** The store directory, absolute. */
  readonly path: string;
  private readonly store: BucketEngine;
  private readonly ingestTargets = new Map<string, ClassIngest>();
  private readonly queries: QueryPlanner;
  /** The batch resolvers backfills read from. */
  readonly batchResolvers: readonly BatchResolver[];
  /** The online resolvers continuous buffers read from. */
  readonly onlineResolvers: readonly OnlineResolver[];
  private readonly declaredSchedules: readonly ScheduledAggregateBackfillJob[];
  /** Where offline tiles are written and read. */
  readonly tileDirectory: string;
  /** The windowed stream resolvers, bound to the plan, by `namespace.feature`. */
  private readonly windowed: ReadonlyMap<string, BoundWindowed>;
  /** DuckDB for SQL resolvers of continuous windows computed at query time. */
  private readonly windowSql = lazySql('A SQL windowed resolver');
  private scheduler: BackfillScheduler | undefined;

  private constructor(
    path: string,
    plan: Plan,
    warnings: readonly Diagnostic[],
    store: BucketEngine,
    report: TesseraOpenReport,
    batchResolvers: readonly BatchResolver[],
    onlineResolvers: readonly OnlineResolver[],
    declaredSchedules: readonly ScheduledAggregateBackfillJob[],
    tileDirectory: string,
    windowed: ReadonlyMap<string, BoundWindowed>,
  ) {
    this.path = path;
    this.tileDirectory = tileDirectory;
    this.windowed = windowed;
    this.plan = plan;
    this.warnings = warnings;
    this.store = store;
    this.openReport = report;
    this.queries = new QueryPlanner(plan, windowed);
    this.batchResolvers = batchResolvers;
    this.onlineResolvers = onlineResolvers;
    this.declaredSchedules = declaredSchedules;
  }

  /**
   * Plans `features` and opens (or creates) the store at `path` for them. Series keep
   * their data when their identity did not change, even when their rules did (every
   * bucket still valid is kept, docs/semantics.md section 9.4); the open report says
   * which series are new, kept, changed and orphaned, and which windows need a backfill.
   * Prints nothing.
   *
   * @throws {DefinitionError} when a definition has errors (all diagnostics attached).
   * @example
   * const tessera = Tessera.open({ path: '.tessera/store', features: [User, Transaction] });
   * tessera.openReport.newSeries.map((s) => s.description);
   * // ['transaction.amount by user_id: sum per 1d']
   */
  static open(options: TesseraOptions): Tessera {
    const { plan, diagnostics } = compile(options.features);
    if (diagnostics.some((d) => d.severity === 'error')) throw new DefinitionError(diagnostics);
    const path = resolve(options.path);
    if (options.createIfMissing !== false) mkdirSync(path, { recursive: true });
    const openOptions: OpenOptions = {};
    if (options.createIfMissing !== undefined)
      openOptions.createIfMissing = options.createIfMissing;
    if (options.syncCommits !== undefined) openOptions.syncCommits = options.syncCommits;
    if (options.blockCacheBytes !== undefined)
      openOptions.blockCacheBytes = options.blockCacheBytes;
    if (options.bulkCommitBuckets !== undefined)
      openOptions.bulkCommitBuckets = options.bulkCommitBuckets;
    if (options.clock !== undefined) openOptions.clockMs = toTimeMs(options.clock, 'clock');
    if (
      options.tileDirectory !== undefined &&
      (typeof options.tileDirectory !== 'string' || options.tileDirectory.length === 0)
    ) {
      throw new InvalidOptionError('Tessera.open: tileDirectory must be a directory path');
    }
    const tileDirectory = resolve(options.tileDirectory ?? join(path, 'tiles'));
    const resolvers = checkedBatchResolvers(options.batchResolvers ?? [], plan);
    const online = checkedOnlineResolvers(options.onlineResolvers ?? [], plan, resolvers);
    const declared = options.scheduledBackfills ?? [];
    if (!Array.isArray(declared) || !declared.every(isScheduledAggregateBackfill)) {
      throw new InvalidOptionError(
        'Tessera.open: scheduledBackfills takes jobs made by ScheduledAggregateBackfill',
      );
    }
    // Checks the jobs (names, features, schedules) before the store opens.
    backfillJobs(plan, declared);
    const windowed = boundWindowedResolvers(options.windowedResolvers ?? [], plan);
    const store = BucketEngine.open(path, toStoreDescription(plan), openOptions);
    // A continuous resolver keeps its messages for its largest window, whoever compacts.
    for (const bound of windowed.values()) {
      if (bound.resolver.mode === 'continuous') {
        store.setWindowedRetention(bound.resolver.name, bound.largestMs);
      }
    }
    const report = openReport(store.openReport, incompleteWindows(plan, store, null), plan);
    return new Tessera(
      path,
      plan,
      Object.freeze([...diagnostics]),
      store,
      report,
      resolvers,
      online,
      Object.freeze([...declared]),
      tileDirectory,
      windowed,
    );
  }

  /** The native bucket engine underneath (for clocks, stats and raw bucket reads). */
  get engine(): BucketEngine {
    return this.store;
  }

  /** A readable description of every series of the plan. */
  get series(): readonly SeriesSummary[] {
    return this.plan.series.map(summarize);
  }

  private target(cls: AnyFeatureClass): ClassIngest {
    if (!isFeatureClass(cls)) {
      throw new InvalidRowsError(
        'ingest takes a feature class (the result of features(...)) as its first argument',
      );
    }
    return this.classTarget(definitionOf(cls).namespace);
  }

  /** The ingest of one planned class, built once. */
  private classTarget(ns: string): ClassIngest {
    let target = this.ingestTargets.get(ns);
    if (target === undefined) {
      const classPlan = this.plan.classes.find((c) => c.namespace === ns);
      if (classPlan === undefined) {
        throw new InvalidRowsError(
          `${ns} is not one of this Tessera's feature classes (${this.plan.classes.map((c) => c.namespace).join(', ')})`,
        );
      }
      target = new ClassIngest(classPlan, this.plan);
      this.ingestTargets.set(ns, target);
    }
    return target;
  }

  private prepareIngest(
    cls: AnyFeatureClass,
    rows: unknown,
    options: IngestOptions | undefined,
  ): PreparedBatch {
    const commit = options?.commit !== false;
    if (!commit && options?.positions !== undefined) {
      throw new InvalidOptionError(
        'ingest: positions are written by a commit; with commit: false pass them to commit(positions)',
      );
    }
    if (!commit && options?.replace === true) {
      throw new InvalidOptionError('ingest: replace applies to a commit; pass it to commit()');
    }
    return this.target(cls).prepare(rows, options?.writes);
  }

  /**
   * Folds a batch of rows of `cls` into every materialized aggregation it feeds (through
   * the has-many relations that read it, after each aggregation's ingest filters, keyed
   * by the series' join keys, bucketed by the feature-time column), in ONE native call:
   * one columnar batch per fed series. Rows are row objects or columns
   * (`{ amount: Float64Array, ts: [...] }`). Times are Dates, ISO strings with a zone, or
   * epoch ms. A row whose key is null belongs to no group and is skipped; a row without
   * a feature time, or with a value of the wrong type, is an error naming the class, the
   * column and the row, and nothing of the batch is ingested.
   *
   * @example
   * tessera.ingest(Transaction, { id: ids, user_id: users, amount: amounts, ts: times });
   * tessera.ingest(Transaction, rows, { writes: ['amount@2'], commit: false });
   */
  ingest<C extends AnyFeatureClass>(
    cls: C,
    rows: IngestRows<C>,
    options?: IngestOptions,
  ): IngestResult {
    const prepared = this.prepareIngest(cls, rows, options);
    if (options?.commit === false) {
      if (prepared.batches.length > 0) this.store.stage(prepared.batches);
      return { rows: prepared.rows, series: prepared.series, commit: null };
    }
    const commit = this.store.commitBatches(prepared.batches, commitOptions(options));
    return { rows: prepared.rows, series: prepared.series, commit };
  }

  /**
   * {@link ingest} with the native fold (and commit) off the event loop. The rows are
   * converted on the calling thread; typed arrays given as columns may be passed to the
   * engine as they are, so do not modify them until the promise settles.
   */
  async ingestAsync<C extends AnyFeatureClass>(
    cls: C,
    rows: IngestRows<C>,
    options?: IngestOptions,
  ): Promise<IngestResult> {
    const prepared = this.prepareIngest(cls, rows, options);
    if (options?.commit === false) {
      if (prepared.batches.length > 0) await this.store.stageAsync(prepared.batches);
      return { rows: prepared.rows, series: prepared.series, commit: null };
    }
    const commit = await this.store.commitBatchesAsync(prepared.batches, commitOptions(options));
    return { rows: prepared.rows, series: prepared.series, commit };
  }

  /**
   * Writes everything staged by `ingest(..., { commit: false })` since the last commit,
   * and `positions`, in one atomic write. Staged rows are only ever written by this call:
   * an `ingest` that commits, or a stream runner's commit, writes its own rows alone.
   */
  commit(positions?: readonly SourcePosition[], options?: CommitOptions): CommitReportOutput {
    return this.store.commitStaged(stagedCommitOptions(positions, options));
  }

  /** {@link commit} off the event loop. */
  commitAsync(
    positions?: readonly SourcePosition[],
    options?: CommitOptions,
  ): Promise<CommitReportOutput> {
    return this.store.commitStagedAsync(stagedCommitOptions(positions, options));
  }

  /** Drops the rows staged since the last commit. */
  discardPending(): void {
    this.store.discardStaged();
  }

  /** The committed positions of one source, by partition. */
  positions(source: string): SourcePosition[] {
    return this.store.positions(source);
  }

  /**
   * Reads feature windows for one or many keys, in one native round trip. Each output
   * is a window reference in any form (`User.total['7d']`, `User.total_7d`, ...) or a
   * name (`'user.total__604800__'`, `'user.total_spend__2592000__@2'`); values come back
   * typed per output, in order (`rows[i].values`) and by canonical name
   * (`rows[i].byName`). A window without data gives the feature's default (0 for
   * count-like aggregations, else `null` unless declared). `explain: true` attaches the
   * buckets each value merged.
   *
   * @example
   * const result = tessera.query({
   *   input: [{ id: 7 }, { id: 8 }],
   *   output: [User.total['7d'], User.count_1d] as const,
   *   explain: true,
   * });
   * const [total, count] = result.rows[0]!.values; // number | null, number | null
   */
  query<const O extends readonly OutputRef[]>(request: QueryRequest<O>): QueryResult<O> {
    const prepared = this.queries.prepare(request);
    const buffered = prepared.buffered.flatMap((b) => b.outputs);
    if (buffered.length > 0) {
      throw new InvalidQueryError(
        `query: ${buffered.join(', ')} ${buffered.length === 1 ? 'has' : 'have'} a continuous buffer, read from raw rows at query time; use await tessera.queryAsync(...)`,
      );
    }
    const results = this.store.query(prepared.queries);
    if (prepared.windowed.length === 0) return prepared.finish(results);
    const continuous = prepared.windowed.filter((w) => w.bound.resolver.mode === 'continuous');
    if (continuous.length > 0) {
      throw new InvalidQueryError(
        `query: ${continuous.map((w) => w.canonical).join(', ')} ${continuous.length === 1 ? 'is a continuous window' : 'are continuous windows'}, computed by ${continuous[0]?.bound.resolver.name} from its messages at query time; use await tessera.queryAsync(...)`,
      );
    }
    const now = prepared.nowMs ?? this.store.clockMs();
    return prepared.finish(
      results,
      prepared.windowed.map((w) => tumblingValues(this.store, w, () => now)),
    );
  }

  /** The values of a query's windowed outputs at each row's time. */
  private async windowedValues(
    needs: readonly WindowedNeed[],
    atMs: (row: number) => number,
  ): Promise<unknown[][]> {
    const out: unknown[][] = [];
    for (const need of needs) {
      if (need.bound.resolver.mode === 'tumbling') {
        out.push(tumblingValues(this.store, need, atMs));
      } else {
        const keptFrom = this.store.clockMs() - need.bound.largestMs;
        out.push(await continuousValues(this.store, need, atMs, this.windowSql.get, keptFrom));
      }
    }
    return out;
  }

  /**
   * A windowed stream resolver given to {@link Tessera.open}, bound to the plan (for
   * {@link WindowedStreamRunner}); an error for one it was not given.
   *
   * @internal
   */
  windowedResolver(resolver: WindowedStreamResolver): BoundWindowed {
    const bound = this.windowed.get(`${resolver.namespace}.${resolver.feature}`);
    if (bound === undefined || bound.resolver.name !== resolver.name) {
      throw new InvalidOptionError(
        `windowed stream resolver ${resolver.name} was not given to Tessera.open (windowedResolvers): its values would be stored where no query reads them`,
      );
    }
    return bound;
  }

  /**
   * {@link query} with the native read off the event loop. It also serves features with
   * a continuous buffer: the most recent part of their windows is folded from raw rows
   * that the class's online resolver (or its batch resolvers) returns for the query's
   * keys (docs/semantics.md section 9.6); `explain` says which part.
   */
  async queryAsync<const O extends readonly OutputRef[]>(
    request: QueryRequest<O>,
  ): Promise<QueryResult<O>> {
    const prepared = this.queries.prepare(request);
    if (prepared.buffered.length > 0) {
      await attachBufferRows(
        {
          plan: this.plan,
          engine: this.store,
          onlineResolvers: this.onlineResolvers,
          batchResolvers: this.batchResolvers,
          classIngest: (ns) => this.classTarget(ns),
        },
        prepared.queries,
        prepared.buffered,
      );
    }
    const results = await this.store.queryAsync(prepared.queries);
    if (prepared.windowed.length === 0) return prepared.finish(results);
    const now = prepared.nowMs ?? this.store.clockMs();
    return prepared.finish(results, await this.windowedValues(prepared.windowed, () => now));
  }

  /**
   * Feature values as they were at each input key's own time (docs/semantics.md section
   * 11), for training sets; nothing after a key's time is read. By default each window
   * `(t - W, t]` is recomputed exactly from the raw rows of the class's batch resolvers;
   * `plannerOptions.alignOfflineChalkWindowWithMaterialization` rounds each window's start
   * down to a bucket edge; `plannerOptions.useMaterializedOfflineQuery` merges the store's
   * complete buckets before the time's bucket edge, and a window that reaches buckets
   * retention removed is an error naming it.
   *
   * @example
   * const { rows } = await tessera.offlineQuery({
   *   input: { 'user.id': [7, 7, 8] },
   *   inputTimes: ['2026-03-01T00:00:00Z', '2026-03-08T00:00:00Z', '2026-03-08T00:00:00Z'],
   *   output: [User.total['7d']] as const,
   * });
   * rows[1]?.time; // 2026-03-08T00:00:00.000Z
   */
  offlineQuery<const O extends readonly OutputRef[]>(
    request: OfflineQueryRequest<O>,
  ): Promise<OfflineQueryResult<O>> {
    return offlineQuery(
      {
        plan: this.plan,
        planner: this.queries,
        engine: this.store,
        batchResolvers: this.batchResolvers,
        tileDirectory: this.tileDirectory,
        classIngest: (ns) => this.classTarget(ns),
        windowedValues: (needs, atMs) => this.windowedValues(needs, atMs),
      },
      request,
    );
  }

  /**
   * The parity check (docs/semantics.md section 11, "Parity check"): for sampled keys
   * and times, compares what the online store serves with the same windows recomputed
   * from the batch resolvers' raw rows, as the store serves them (the bucket holding the
   * time whole). Each output reports how many values it compared and every difference
   * beyond its aggregation's tolerance (the catalog's, evaluated by the engine), with the
   * key, the time and both values.
   *
   * @example
   * const report = await tessera.parity({ sample: 50, at: ['2026-03-01T00:00:00Z'] });
   * report.differences; // 0 when the store and the raw rows agree
   */
  parity(options?: ParityOptions): Promise<ParityResult> {
    return parity(
      {
        plan: this.plan,
        planner: this.queries,
        engine: this.store,
        batchResolvers: this.batchResolvers,
        classIngest: (ns) => this.classTarget(ns),
      },
      options,
    );
  }

  /**
   * Rebuilds the buckets of `features` from the batch resolvers' rows
   * (docs/semantics.md section 9). A backfill replaces: for every group key the run's
   * rows hold, every bucket of the range (widened to bucket edges) of every layout the
   * features read is replaced by the state of the run's rows, and cleared where the key
   * has no rows in it. Keys the run does not return keep their buckets. The run is
   * folded in bounded memory and applied in one atomic step: queries see the old
   * buckets or the new ones, and a run that fails or is killed applies nothing.
   *
   * @example
   * const report = await tessera.backfill({
   *   features: [User.total],
   *   lowerBound: '2026-01-01T00:00:00Z',
   *   upperBound: '2026-02-01T00:00:00Z',
   * });
   * report.rows; // rows read from the resolvers
   */
  backfill(options: BackfillOptions): Promise<BackfillReport> {
    return runBackfill(this.backfillContext(), options);
  }

  /**
   * {@link backfill}, started: the options are checked and the layouts and ranges
   * resolved before it returns (a bad option throws a `BackfillError` here), and the run
   * goes on in `done`. A service uses it to refuse a bad request before accepting it.
   *
   * @example
   * const { plan, done } = tessera.startBackfill({ features: ['user.total'] });
   * plan.layouts.map((l) => [l.from, l.to]);
   * const report = await done;
   */
  startBackfill(options: BackfillOptions): StartedBackfill {
    return startBackfill(this.backfillContext(), options);
  }

  /**
   * The feature windows that read buckets from before their layout is complete, at
   * `now` (default: the engine clock): a series registered after its data began holds
   * nothing from before, until a backfill reaches back (docs/semantics.md section 9.4).
   */
  incompleteWindows(now?: Date | number | string): IncompleteWindow[] {
    return incompleteWindows(
      this.plan,
      this.store,
      null,
      now === undefined ? undefined : toTimeMs(now, 'incompleteWindows now'),
    );
  }

  /** What {@link backfill} would do with `options`, without writing: layouts, ranges, estimates. */
  planBackfill(options: BackfillOptions): Promise<BackfillPlan> {
    return planBackfill(this.backfillContext(), options);
  }

  /**
   * The scheduler of this Tessera's backfill jobs: every feature with a
   * `backfillSchedule` (one job per `backfillTags` set) and every declared
   * `ScheduledAggregateBackfill` (docs/semantics.md section 10). `start()` runs them on
   * their schedules until `stop()`; `status()` lists them with their last and next runs.
   */
  get schedules(): BackfillScheduler {
    this.scheduler ??= this.scheduleWith({});
    return this.scheduler;
  }

  /** A scheduler of this Tessera's jobs with its own options (a controlled clock, say). */
  scheduleWith(options: SchedulerOptions): BackfillScheduler {
    return new BackfillScheduler(
      {
        backfill: (o) => this.backfill(o),
        putBackfillRun: (entry) => this.store.putBackfillRun(entry),
        backfillRuns: (job) => this.store.backfillRuns(job),
      },
      backfillJobs(this.plan, this.declaredSchedules),
      options,
    );
  }

  private backfillContext(): BackfillContext {
    return {
      plan: this.plan,
      engine: this.store,
      resolvers: this.batchResolvers,
      tileDirectory: this.tileDirectory,
      classIngest: (namespace: string) => this.classTarget(namespace),
    };
  }

  /**
   * Pins the engine clock (the default query time, and the time retention is judged
   * by), or unpins it with `null`. For tests and replays.
   */
  setClock(now: Date | number | string | null): void {
    this.store.setClock(now === null ? null : toTimeMs(now, 'setClock'));
  }

  /** Counts and sizes, for monitoring. */
  stats(): EngineStats {
    return this.store.stats();
  }

  /** Closes the store; uncommitted folds are dropped. */
  close(): void {
    // A scheduler started on this Tessera stops firing; a run in progress fails (CLOSED).
    void this.scheduler?.stop();
    this.windowSql.close();
    this.store.close();
  }
}

/** The native commit options of an ingest that commits. */
function commitOptions(options: IngestOptions | undefined): CommitOptions | undefined {
  if (options?.positions === undefined && options?.replace !== true) return undefined;
  const out: CommitOptions = {};
  if (options.positions !== undefined) out.positions = [...options.positions];
  if (options.replace === true) out.replace = true;
  return out;
}

/** The native commit options of {@link Tessera.commit}. */
function stagedCommitOptions(
  positions: readonly SourcePosition[] | undefined,
  options: CommitOptions | undefined,
): CommitOptions | undefined {
  if (positions === undefined) return options;
  return { ...options, positions: [...positions] };
}

/**
 * The online resolvers of {@link TesseraOptions}, checked: made by makeOnlineResolver,
 * unique names, one per planned class; and every feature with a continuous buffer has a
 * class whose rows some resolver reads.
 */
function checkedOnlineResolvers(
  given: readonly unknown[],
  plan: Plan,
  batch: readonly BatchResolver[],
): readonly OnlineResolver[] {
  if (!Array.isArray(given) || !given.every(isOnlineResolver)) {
    throw new InvalidOptionError(
      'Tessera.open: onlineResolvers takes online resolvers made by makeOnlineResolver',
    );
  }
  const resolvers = given as OnlineResolver[];
  for (const [i, r] of resolvers.entries()) {
    if (!plan.classes.some((c) => c.namespace === r.namespace)) {
      throw new BatchResolverError(
        `online resolver ${r.name}: its output class ${r.namespace} is not among the planned classes`,
      );
    }
    const twin = resolvers
      .slice(0, i)
      .find((o) => o.namespace === r.namespace || o.name === r.name);
    if (twin !== undefined) {
      throw new BatchResolverError(
        twin.name === r.name
          ? `online resolver ${r.name}: two online resolvers have this name`
          : `online resolver ${r.name}: ${twin.name} already reads ${r.namespace} (one online resolver per class)`,
      );
    }
  }
  const series = new Map(plan.series.map((s) => [s.id, s]));
  for (const read of plan.reads) {
    if ((read.continuousBufferMs ?? 0) === 0) continue;
    const namespace = series.get(read.series)?.namespace ?? '';
    if (
      bufferResolvers({ onlineResolvers: resolvers, batchResolvers: batch }, namespace) === null
    ) {
      throw new InvalidOptionError(
        `${read.feature}: materialization.continuousBufferDuration reads raw rows of ${namespace} at query time, and no resolver reads them: pass an online resolver (makeOnlineResolver) or a batch resolver of ${namespace} to Tessera.open`,
      );
    }
  }
  return Object.freeze([...resolvers]);
}

/** The batch resolvers of {@link TesseraOptions}, checked: made by makeBatchResolver, unique names, planned classes. */
function checkedBatchResolvers(given: readonly unknown[], plan: Plan): readonly BatchResolver[] {
  if (!Array.isArray(given)) {
    throw new InvalidOptionError('Tessera.open: batchResolvers must be a list of batch resolvers');
  }
  const names = new Set<string>();
  for (const r of given) {
    if (!isBatchResolver(r)) {
      throw new InvalidOptionError(
        'Tessera.open: batchResolvers takes batch resolvers made by makeBatchResolver',
      );
    }
    if (names.has(r.name)) {
      throw new BatchResolverError(`batch resolver ${r.name}: two batch resolvers have this name`);
    }
    names.add(r.name);
    if (!plan.classes.some((c) => c.namespace === r.namespace)) {
      throw new BatchResolverError(
        `batch resolver ${r.name}: its output class ${r.namespace} is not among the planned classes`,
      );
    }
  }
  return Object.freeze([...(given as BatchResolver[])]);
}

/**
 * The windowed stream resolvers of {@link TesseraOptions}, checked and bound to the plan:
 * made by makeWindowedStreamResolver, unique names, one per feature, each computing a
 * planned windowed feature without an expression.
 */
function boundWindowedResolvers(
  given: readonly unknown[],
  plan: Plan,
): ReadonlyMap<string, BoundWindowed> {
  if (!Array.isArray(given) || !given.every(isWindowedStreamResolver)) {
    throw new InvalidOptionError(
      'Tessera.open: windowedResolvers takes resolvers made by makeWindowedStreamResolver',
    );
  }
  const out = new Map<string, BoundWindowed>();
  const names = new Set<string>();
  for (const resolver of given as WindowedStreamResolver[]) {
    const feature = `${resolver.namespace}.${resolver.feature}`;
    if (names.has(resolver.name)) {
      throw new InvalidOptionError(
        `Tessera.open: two windowed stream resolvers are named ${resolver.name}`,
      );
    }
    const twin = out.get(feature);
    if (twin !== undefined) {
      throw new InvalidOptionError(
        `Tessera.open: windowed stream resolvers ${twin.resolver.name} and ${resolver.name} both compute ${feature}`,
      );
    }
    names.add(resolver.name);
    out.set(feature, new BoundWindowed(resolver, plan));
  }
  return out;
}
