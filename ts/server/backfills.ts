/**
 * Backfills started over HTTP (`POST /v1/backfills`): one run at a time, each with an id,
 * its progress while it reads and its report or error when it ends. Runs are kept in
 * memory (the latest {@link KEPT_RUNS}); the buckets a run replaced are in the store.
 * Closing the server cancels a run in flight, which then applies nothing
 * (docs/semantics.md section 9.3).
 */
import { randomUUID } from 'node:crypto';
import type {
  BackfillOptions,
  BackfillPlan,
  BackfillProgress,
  BackfillReport,
} from '../batch/backfill.js';
import type { Tessera } from '../tessera.js';
import type { TesseraMetrics } from './metrics.js';

/** How many ended runs the server remembers. */
export const KEPT_RUNS = 100;

/** Where a run is. */
export type HttpBackfillStatus = 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELED';

/** A run as `GET /v1/backfills/:id` shows it. */
export interface HttpBackfillRun {
  readonly id: string;
  readonly status: HttpBackfillStatus;
  readonly startedAt: string;
  readonly endedAt: string | null;
  readonly plan: Omit<BackfillPlan, 'estimate'>;
  readonly progress: BackfillProgress | null;
  readonly report: BackfillReport | null;
  readonly error: string | null;
}

/** A run is in flight; the request was not started. */
export class BackfillBusyError extends Error {
  readonly statusCode = 409;
  readonly code = 'BACKFILL_RUNNING';
  constructor(running: string) {
    super(`backfill ${running} is running; wait for it to end (GET /v1/backfills/${running})`);
    this.name = 'BackfillBusyError';
  }
}

interface Tracked {
  run: HttpBackfillRun;
  readonly abort: AbortController;
  readonly done: Promise<unknown>;
}

/** What a run's progress calls write (they start before the run is tracked). */
interface ProgressBox {
  progress: BackfillProgress | null;
}

/** The server's backfill runs. */
export class HttpBackfills {
  private readonly runs = new Map<string, Tracked>();
  private current: Tracked | undefined;

  constructor(
    private readonly tessera: Tessera,
    private readonly metrics: TesseraMetrics,
  ) {}

  /**
   * Starts a run. Bad options throw (the `BackfillError` of {@link Tessera.startBackfill})
   * and a run in flight throws {@link BackfillBusyError}, before anything starts.
   */
  start(options: Omit<BackfillOptions, 'onProgress' | 'signal'>): HttpBackfillRun {
    if (this.current !== undefined) throw new BackfillBusyError(this.current.run.id);
    const abort = new AbortController();
    const id = randomUUID();
    const box: ProgressBox = { progress: null };
    const started = this.tessera.startBackfill({
      ...options,
      signal: abort.signal,
      onProgress: (progress) => {
        this.metrics.observeBackfillRows(progress.rows - (box.progress?.rows ?? 0));
        box.progress = progress;
      },
    });
    const tracked: Tracked = {
      run: {
        id,
        status: 'RUNNING',
        startedAt: new Date().toISOString(),
        endedAt: null,
        plan: started.plan,
        get progress() {
          return box.progress;
        },
        report: null,
        error: null,
      },
      abort,
      done: started.done.then(
        (report) => this.end(tracked, 'COMPLETED', report, null),
        (error: unknown) =>
          this.end(tracked, abort.signal.aborted ? 'CANCELED' : 'FAILED', null, error),
      ),
    };
    this.current = tracked;
    this.runs.set(id, tracked);
    this.metrics.observeBackfillStarted();
    return tracked.run;
  }

  /** A run by id, or `undefined`. */
  get(id: string): HttpBackfillRun | undefined {
    return this.runs.get(id)?.run;
  }

  /** Every run remembered, the latest first. */
  list(): HttpBackfillRun[] {
    return [...this.runs.values()].map((t) => t.run).reverse();
  }

  /** Cancels a run in flight (it applies nothing); false when it is not running. */
  cancel(id: string): boolean {
    const tracked = this.runs.get(id);
    if (tracked === undefined || tracked.run.status !== 'RUNNING') return false;
    tracked.abort.abort();
    return true;
  }

  /** Cancels the run in flight and waits for it to end. */
  async close(): Promise<void> {
    const current = this.current;
    if (current === undefined) return;
    current.abort.abort();
    await current.done;
  }

  private end(
    tracked: Tracked,
    status: Exclude<HttpBackfillStatus, 'RUNNING'>,
    report: BackfillReport | null,
    error: unknown,
  ): void {
    tracked.run = {
      ...tracked.run,
      status,
      endedAt: new Date().toISOString(),
      report,
      error: error === null ? null : error instanceof Error ? error.message : String(error),
    };
    if (this.current === tracked) this.current = undefined;
    this.metrics.observeBackfillEnded(status);
    // Forget the oldest ended runs beyond the limit.
    for (const [id, t] of this.runs) {
      if (this.runs.size <= KEPT_RUNS) break;
      if (t.run.status !== 'RUNNING') this.runs.delete(id);
    }
  }
}
