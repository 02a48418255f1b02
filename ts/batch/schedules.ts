/**
 * Scheduled backfills (docs/semantics.md section 10): the jobs of a plan (a feature's
 * `backfillSchedule`, one job per `backfillTags` set) and of `ScheduledAggregateBackfill`
 * values, when each fires (cron expressions stepped by cron-parser in UTC, or durations
 * aligned on the epoch), and the scheduler that runs them, one run of a job at a time,
 * recording every run in the store so that a restart neither repeats a completed run nor
 * forgets a due one.
 */
import { InvalidOptionError } from '../api/errors.js';
import { toTimeMs } from '../api/values.js';
import { formatDuration } from '../dsl/duration.js';
import type { BackfillRunEntry } from '../native.js';
import { nextTime, parseSchedule, previousTime } from '../planner/schedule.js';
import type { BackfillSchedule, Plan } from '../planner/types.js';
import { type BackfillReport, type FeatureSelector, selectFeatures } from './backfill.js';

const SCHEDULED_BACKFILL = Symbol.for('tessera.scheduledAggregateBackfill');

/** Options of {@link ScheduledAggregateBackfill}. */
export interface ScheduledAggregateBackfillOptions {
  /** The job's name, unique among the jobs of a Tessera. */
  readonly name: string;
  readonly features: readonly FeatureSelector[];
  /** A cron expression (UTC; `'0 0 * * *'`) or a duration (`'6h'`, aligned on the epoch). */
  readonly schedule: string;
  /**
   * `'online'` (the default): the store's buckets, over the run's range. `'offline'`:
   * offline tiles, each run adding one tile per layout from where the tiles end (from
   * `lowerBound`, default the engine clock minus retention, the first time) to the start
   * of the bucket holding the engine clock (or `upperBound`).
   */
  readonly target?: 'online' | 'offline';
  /** Offline target: record a tile for a layout a run found no rows for. */
  readonly allowEmptyTiles?: boolean;
  readonly lowerBound?: Date | number | string;
  readonly upperBound?: Date | number | string;
  /** The tags of the run: only batch resolvers carrying all of them take part. */
  readonly queryTags?: readonly string[];
}

/** A declared scheduled backfill (see {@link ScheduledAggregateBackfill}). */
export interface ScheduledAggregateBackfillJob extends ScheduledAggregateBackfillOptions {
  readonly [SCHEDULED_BACKFILL]: true;
}

/**
 * Declares a scheduled backfill job; export it from the features module (or pass it to
 * `Tessera.open({ scheduledBackfills })`).
 *
 * @example
 * export const nightly = ScheduledAggregateBackfill({
 *   name: 'nightly_totals',
 *   features: ['user.total'],
 *   schedule: '0 2 * * *',
 *   queryTags: ['source:warehouse'],
 * });
 */
export function ScheduledAggregateBackfill(
  options: ScheduledAggregateBackfillOptions,
): ScheduledAggregateBackfillJob {
  const name = options?.name;
  if (typeof name !== 'string' || name.length === 0 || name.includes('\0')) {
    throw new InvalidOptionError('ScheduledAggregateBackfill needs a name');
  }
  const known = new Set([
    'name',
    'features',
    'schedule',
    'target',
    'lowerBound',
    'upperBound',
    'queryTags',
    'allowEmptyTiles',
  ]);
  for (const key of Object.keys(options)) {
    if (!known.has(key)) {
      throw new InvalidOptionError(`ScheduledAggregateBackfill ${name}: unknown option '${key}'`);
    }
  }
  if (options.target !== undefined && options.target !== 'online' && options.target !== 'offline') {
    throw new InvalidOptionError(
      `ScheduledAggregateBackfill ${name}: target must be 'online' or 'offline', got ${String(options.target)}`,
    );
  }
  if (options.allowEmptyTiles !== undefined && options.target !== 'offline') {
    throw new InvalidOptionError(
      `ScheduledAggregateBackfill ${name}: allowEmptyTiles applies to target 'offline'`,
    );
  }
  if (options.allowEmptyTiles !== undefined && typeof options.allowEmptyTiles !== 'boolean') {
    throw new InvalidOptionError(
      `ScheduledAggregateBackfill ${name}: allowEmptyTiles must be true or false`,
    );
  }
  parseSchedule(options.schedule, `ScheduledAggregateBackfill ${name}`);
  return Object.freeze({ ...options, [SCHEDULED_BACKFILL]: true as const });
}

/** Whether `value` was made by {@link ScheduledAggregateBackfill}. */
export function isScheduledAggregateBackfill(
  value: unknown,
): value is ScheduledAggregateBackfillJob {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[SCHEDULED_BACKFILL] === true
  );
}

/** One job the scheduler runs. */
export interface BackfillJob {
  readonly name: string;
  readonly features: readonly string[];
  readonly schedule: BackfillSchedule;
  /** The schedule as written in the definitions (`0 0 * * *`, `6h`). */
  readonly scheduleText: string;
  readonly tags: readonly string[];
  readonly lowerBound?: Date | number | string;
  readonly upperBound?: Date | number | string;
  /** Where its runs write: the store (the default) or offline tiles. */
  readonly target?: 'online' | 'offline';
  readonly allowEmptyTiles?: boolean;
}

/** Every job of a plan (features with a `backfillSchedule`) and of the declared jobs. */
export function backfillJobs(
  plan: Plan,
  declared: readonly ScheduledAggregateBackfillJob[],
): BackfillJob[] {
  const jobs: BackfillJob[] = [];
  for (const f of plan.features) {
    const schedule = f.materialization?.backfillSchedule;
    if (f.kind !== 'materialized' || schedule === null || schedule === undefined) continue;
    const name = f.version === null ? f.feature : `${f.feature}@${f.version}`;
    const tagSets = f.materialization?.backfillTags ?? [];
    for (const tags of tagSets.length > 0 ? tagSets : [[]]) {
      jobs.push({
        name: tags.length > 0 ? `${name}[${tags.join(',')}]` : name,
        features: [name],
        schedule,
        scheduleText:
          schedule.kind === 'cron' ? schedule.expression : formatDuration(schedule.everyMs),
        tags: [...tags],
      });
    }
  }
  for (const d of declared) {
    const features = selectFeatures(plan, d.features).map((f) =>
      f.version === null ? f.feature : `${f.feature}@${f.version}`,
    );
    const job: BackfillJob = {
      name: d.name,
      features,
      schedule: parseSchedule(d.schedule, `ScheduledAggregateBackfill ${d.name}`),
      scheduleText: d.schedule.trim(),
      tags: [...(d.queryTags ?? [])],
      ...(d.lowerBound === undefined ? {} : { lowerBound: d.lowerBound }),
      ...(d.upperBound === undefined ? {} : { upperBound: d.upperBound }),
      ...(d.target === undefined ? {} : { target: d.target }),
      ...(d.allowEmptyTiles === undefined ? {} : { allowEmptyTiles: d.allowEmptyTiles }),
    };
    jobs.push(job);
  }
  const names = new Set<string>();
  for (const j of jobs) {
    if (names.has(j.name))
      throw new InvalidOptionError(`two scheduled backfills are named ${j.name}`);
    names.add(j.name);
  }
  return jobs;
}

/** What the scheduler needs of the open Tessera. */
export interface SchedulerHost {
  backfill(options: {
    features: readonly string[];
    tags: readonly string[];
    lowerBound?: Date | number | string;
    upperBound?: Date | number | string;
    signal?: AbortSignal;
    target?: 'online' | 'offline';
    afterTiles?: boolean;
    allowEmptyTiles?: boolean;
  }): Promise<BackfillReport>;
  putBackfillRun(entry: BackfillRunEntry): void;
  backfillRuns(job?: string): BackfillRunEntry[];
}

/** A job with its last run and next time. */
export interface ScheduledJobStatus {
  readonly job: BackfillJob;
  /** The latest record of the job (a run, or `REGISTERED`), if any. */
  readonly last: BackfillRunEntry | null;
  /** When it fires next (already due when at or before now). */
  readonly nextMs: number;
  readonly running: boolean;
}

/** Options of the {@link BackfillScheduler}. */
export interface SchedulerOptions {
  /** The scheduler's clock (default `Date.now`); tests pass a controlled one. */
  readonly clock?: () => number;
  /** Called after each run ends (completed, failed or canceled). */
  readonly onRun?: (record: BackfillRunEntry) => void;
}

const RUNNING_STATES = new Set(['INITIALIZING', 'RUNNING']);

/**
 * Runs scheduled backfills. {@link tick} starts every job that is due at the clock's
 * time; {@link start} ticks on a timer until {@link stop}. A job fires at each time of
 * its schedule after the first time the scheduler saw it (recorded as `REGISTERED`);
 * times missed while no scheduler ran are collapsed into one run, for the latest of
 * them. A run left `RUNNING` by a process that died is run again.
 */
export class BackfillScheduler {
  private readonly clock: () => number;
  private readonly running = new Map<string, { promise: Promise<void>; abort: AbortController }>();
  private timer: NodeJS.Timeout | undefined;
  private started = false;

  constructor(
    private readonly host: SchedulerHost,
    readonly jobs: readonly BackfillJob[],
    private readonly options: SchedulerOptions = {},
  ) {
    this.clock = options.clock ?? Date.now;
  }

  /** Every job with its last record and next time. */
  status(): ScheduledJobStatus[] {
    const now = this.clock();
    return this.jobs.map((job) => {
      const records = this.host.backfillRuns(job.name);
      const last = records.at(-1) ?? null;
      const nextMs =
        last === null
          ? nextTime(job.schedule, now)
          : RUNNING_STATES.has(last.status) && !this.running.has(job.name)
            ? last.scheduledMs
            : nextTime(job.schedule, last.scheduledMs);
      return { job, last, nextMs, running: this.running.has(job.name) };
    });
  }

  /**
   * Starts every job due at `now` (the clock's time by default) that is not running, and
   * resolves when the runs it started have ended.
   */
  async tick(now = this.clock()): Promise<void> {
    const started: Promise<void>[] = [];
    for (const job of this.jobs) {
      if (this.running.has(job.name)) continue;
      const records = this.host.backfillRuns(job.name);
      const last = records.at(-1);
      if (last === undefined) {
        this.host.putBackfillRun({
          job: job.name,
          scheduledMs: now,
          status: 'REGISTERED',
          rows: 0,
        });
        continue;
      }
      let scheduledMs: number | null = null;
      if (RUNNING_STATES.has(last.status)) {
        scheduledMs = last.scheduledMs; // interrupted by a crash: run it again
      } else if (nextTime(job.schedule, last.scheduledMs) <= now) {
        scheduledMs = previousTime(job.schedule, now);
      }
      if (scheduledMs !== null) started.push(this.launch(job, scheduledMs));
    }
    await Promise.all(started);
  }

  private launch(job: BackfillJob, scheduledMs: number): Promise<void> {
    const abort = new AbortController();
    const promise = this.run(job, scheduledMs, abort.signal).finally(() => {
      this.running.delete(job.name);
    });
    this.running.set(job.name, { promise, abort });
    return promise;
  }

  private async run(job: BackfillJob, scheduledMs: number, signal: AbortSignal): Promise<void> {
    const startedMs = this.clock();
    const base: BackfillRunEntry = {
      job: job.name,
      scheduledMs,
      status: 'INITIALIZING',
      startedMs,
      rows: 0,
    };
    this.host.putBackfillRun(base);
    let record: BackfillRunEntry;
    try {
      this.host.putBackfillRun({ ...base, status: 'RUNNING' });
      const report = await this.host.backfill({
        features: job.features,
        tags: job.tags,
        ...(job.lowerBound === undefined ? {} : { lowerBound: job.lowerBound }),
        ...(job.upperBound === undefined ? {} : { upperBound: job.upperBound }),
        ...(job.target === 'offline'
          ? {
              target: 'offline' as const,
              afterTiles: true,
              ...(job.allowEmptyTiles === undefined
                ? {}
                : { allowEmptyTiles: job.allowEmptyTiles }),
            }
          : {}),
        signal,
      });
      record = {
        ...base,
        status: 'COMPLETED',
        endedMs: this.clock(),
        lowerMs: toTimeMs(report.lowerBound, 'lowerBound'),
        upperMs: toTimeMs(report.upperBound, 'upperBound'),
        rows: report.rows,
      };
    } catch (error) {
      record = {
        ...base,
        status: signal.aborted ? 'CANCELED' : 'FAILED',
        endedMs: this.clock(),
        error: error instanceof Error ? error.message : String(error),
      };
    }
    this.host.putBackfillRun(record);
    this.options.onRun?.(record);
  }

  /** Ticks on a timer: at each job's next time (checked at least once a minute). */
  start(): void {
    if (this.started) return;
    this.started = true;
    const loop = () => {
      if (!this.started) return;
      void this.tick().catch(() => undefined);
      const now = this.clock();
      const next = Math.min(now + 60_000, ...this.status().map((s) => s.nextMs));
      this.timer = setTimeout(loop, Math.max(10, next - now));
      this.timer.unref?.();
    };
    loop();
  }

  /** Stops ticking, cancels the runs in progress (recorded `CANCELED`) and waits for them. */
  async stop(): Promise<void> {
    this.started = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    const runs = [...this.running.values()];
    for (const r of runs) r.abort.abort();
    await Promise.all(runs.map((r) => r.promise));
  }
}
