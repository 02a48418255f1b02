/**
 * {@link TesseraServer}: one process that holds a store, runs its stream resolvers and
 * answers over HTTP. It opens the store once; every stream runner and every request use
 * that one {@link Tessera}, so the exactly-once rules of the embedded API hold as they
 * are (each polled batch is one atomic commit of buckets, positions and dead letters).
 *
 * It also runs the scheduled backfill jobs of its features (docs/semantics.md section
 * 10) unless told not to. Offline queries are not served yet.
 */
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { BackfillScheduler } from '../batch/schedules.js';
import { requireOptionalPeer } from '../optional-peer.js';
import type { PlanInput } from '../planner/compile.js';
import { StreamRunner, type StreamRunnerOptions } from '../resolvers/runner.js';
import type { StreamResolver } from '../resolvers/stream-resolver.js';
import type { WindowedStreamResolver } from '../resolvers/windowed.js';
import { WindowedStreamRunner } from '../resolvers/windowed-runner.js';
import { Tessera, type TesseraOptions } from '../tessera.js';
import { buildApp } from './app.js';
import { HttpBackfills } from './backfills.js';
import { bindProblem, resolveLimits, type ServeLimits } from './limits.js';
import { registerTesseraMetrics, type TesseraMetrics } from './metrics.js';

/** Options of {@link TesseraServer.start}. */
export interface ServeOptions {
  /** The store directory. */
  readonly path: string;
  /** The feature classes (as for {@link Tessera.open}). */
  readonly features: PlanInput;
  /** Stream resolvers to run, each with its own runner (default none). */
  readonly streams?: readonly StreamResolver[];
  /**
   * Windowed stream resolvers to run, each with its own runner, and whose features the
   * routes serve (default none).
   */
  readonly windowed?: readonly WindowedStreamResolver[];
  /** Address to bind (default `127.0.0.1`); a non-loopback address needs `token`. */
  readonly host?: string;
  /** Port (default 8080; 0 picks a free one, see {@link TesseraServer.port}). */
  readonly port?: number;
  /** Bearer token every route but `/healthz` and `/readyz` requires. */
  readonly token?: string;
  readonly limits?: Partial<ServeLimits>;
  /**
   * Pins the engine clock (the default query time, retention, and the runners' clock
   * for late-arrival deadlines) to this Unix time in ms: for replays and tests.
   */
  readonly clockMs?: number;
  /** Options of every stream runner (batch size, poll wait, lag interval). */
  readonly runner?: Omit<StreamRunnerOptions, 'clock' | 'onBatch'>;
  /** Options of the store (sync commits, block cache, bulk commits). */
  readonly store?: Omit<TesseraOptions, 'path' | 'features'>;
  /**
   * Run the scheduled backfill jobs (features' `backfillSchedule`, and the
   * `scheduledBackfills` of `store`) on their schedules (default true).
   */
  readonly schedules?: boolean;
  /** Reports a stream that failed (it stops; the server keeps answering). */
  readonly onStreamError?: (resolver: string, error: unknown) => void;
}

/**
 * A running server.
 *
 * @example
 * const server = await TesseraServer.start({ path: '.tessera/store', features: [User, Transaction],
 *   streams: [processTransactions], port: 8080 });
 * process.on('SIGTERM', () => void server.close());
 */
export class TesseraServer {
  private closing: Promise<void> | null = null;
  private readonly failures = new Map<string, string>();
  private readonly runs: Promise<unknown>[];

  private constructor(
    readonly tessera: Tessera,
    readonly streams: readonly StreamRunner[],
    /** The windowed stream runners. */
    readonly windowed: readonly WindowedStreamRunner[],
    /** The scheduler of the backfill jobs, when the server runs them. */
    readonly schedules: BackfillScheduler | undefined,
    /** Backfills started over HTTP. */
    readonly backfills: HttpBackfills,
    readonly registry: Registry,
    readonly metrics: TesseraMetrics,
    private readonly app: FastifyInstance,
    /** The address bound. */
    readonly host: string,
    /** The port bound. */
    readonly port: number,
    onStreamError: ((resolver: string, error: unknown) => void) | undefined,
  ) {
    this.runs = [...streams, ...windowed].map((runner) =>
      runner.run().catch((error: unknown) => {
        this.failures.set(
          runner.name,
          `stream ${runner.name} failed: ${error instanceof Error ? error.message : String(error)}`,
        );
        onStreamError?.(runner.name, error);
      }),
    );
  }

  /**
   * Opens the store, starts every stream and listens.
   *
   * @throws when the bind needs a token, a limit is not valid, the store cannot be opened
   * (e.g. another process holds it) or the address is taken; nothing is left running.
   */
  static async start(options: ServeOptions): Promise<TesseraServer> {
    const host = options.host ?? '127.0.0.1';
    const port = options.port ?? 8080;
    if (!Number.isInteger(port) || port < 0 || port > 65_535) {
      throw new RangeError(`port must be a whole number from 0 to 65535, got ${String(port)}`);
    }
    const problem = bindProblem(host, options.token);
    if (problem !== null) throw new Error(problem);
    const limits = resolveLimits(options.limits);
    const tessera = Tessera.open({
      ...options.store,
      ...(options.clockMs === undefined ? {} : { clock: options.clockMs }),
      path: options.path,
      features: options.features,
      ...(options.windowed === undefined ? {} : { windowedResolvers: options.windowed }),
    });
    let app: FastifyInstance | undefined;
    try {
      const clockMs = options.clockMs;
      if (clockMs !== undefined) tessera.setClock(clockMs);
      const names = new Set<string>();
      const runners = (options.streams ?? []).map((resolver) => {
        if (names.has(resolver.name)) {
          throw new Error(`two stream resolvers are named ${resolver.name}`);
        }
        names.add(resolver.name);
        return new StreamRunner(tessera, resolver, {
          ...options.runner,
          ...(clockMs === undefined ? {} : { clock: () => clockMs }),
        });
      });
      const windowedRunners = (options.windowed ?? []).map((resolver) => {
        if (names.has(resolver.name)) {
          throw new Error(`two stream resolvers are named ${resolver.name}`);
        }
        names.add(resolver.name);
        return new WindowedStreamRunner(tessera, resolver, {
          ...(options.runner?.batchSize === undefined
            ? {}
            : { batchSize: options.runner.batchSize }),
          ...(options.runner?.maxWaitMs === undefined
            ? {}
            : { maxWaitMs: options.runner.maxWaitMs }),
          ...(clockMs === undefined ? {} : { clock: () => clockMs }),
        });
      });
      const prom = requireOptionalPeer<typeof import('prom-client')>(
        'prom-client',
        'tessera serve',
      );
      const registry = new prom.Registry();
      prom.collectDefaultMetrics({ register: registry });
      const metrics = registerTesseraMetrics(registry, {
        tessera,
        streams: runners,
        windowed: windowedRunners,
      });
      const schedules =
        options.schedules === false
          ? undefined
          : tessera.scheduleWith({
              ...(clockMs === undefined ? {} : { clock: () => clockMs }),
              onRun: (record) => metrics.observeScheduledRun(record),
            });
      let server: TesseraServer | undefined;
      const backfills = new HttpBackfills(tessera, metrics);
      app = buildApp({
        tessera,
        streams: runners,
        backfills,
        ...(schedules === undefined ? {} : { schedules }),
        registry,
        metrics,
        limits,
        token: options.token,
        notReady: () => (server === undefined ? 'starting' : server.notReady()),
      });
      await app.listen({ host, port });
      const address = app.server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : port;
      server = new TesseraServer(
        tessera,
        runners,
        windowedRunners,
        schedules,
        backfills,
        registry,
        metrics,
        app,
        host,
        bound,
        options.onStreamError,
      );
      if (schedules !== undefined && schedules.jobs.length > 0) schedules.start();
      return server;
    } catch (error) {
      await app?.close().catch(() => undefined);
      tessera.close();
      throw error;
    }
  }

  /** `http://host:port`. */
  get url(): string {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `http://${host}:${this.port}`;
  }

  /** Why the server is not ready (a stream not started yet, or failed), or `null`. */
  notReady(): string | null {
    if (this.closing !== null) return 'shutting down';
    for (const failure of this.failures.values()) return failure;
    const waiting = this.streams.filter((r) => r.metrics().startedAtMs === null);
    if (waiting.length > 0) {
      return `waiting for ${waiting.map((r) => r.name).join(', ')} to start`;
    }
    return null;
  }

  /**
   * Shuts down gracefully: stops accepting connections and waits for the requests in
   * flight, then lets each stream finish and commit the batch in flight, then closes
   * the store. Calling it again returns the same promise.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.app.close();
      } finally {
        await Promise.all([...this.streams, ...this.windowed].map((r) => r.stop()));
        await Promise.all(this.runs);
        await this.schedules?.stop();
        await this.backfills.close();
        this.metrics.unregister();
        this.tessera.close();
      }
    })();
    return this.closing;
  }
}
