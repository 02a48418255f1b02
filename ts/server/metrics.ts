/**
 * Tessera's Prometheus metrics, on any `prom-client` registry: what `tessera serve`
 * exposes at `GET /metrics`, and what an embedding application can expose itself.
 *
 * Stream counters are read from each runner's {@link StreamRunner.metrics} when the
 * registry is scraped, so they always equal what the runner reports; store figures come
 * from {@link Tessera.stats}. Query latency is observed by whoever runs the query: the
 * server for HTTP queries, {@link TesseraMetrics.query} for embedded ones.
 */
import type { Counter, Registry } from 'prom-client';
import type { OutputRef, QueryRequest, QueryResult } from '../api/query.js';
import { requireOptionalPeer } from '../optional-peer.js';
import type { StreamMetrics, StreamRunner } from '../resolvers/runner.js';
import type { WindowedStreamMetrics, WindowedStreamRunner } from '../resolvers/windowed-runner.js';
import type { Tessera } from '../tessera.js';

/** What {@link registerTesseraMetrics} reads. */
export interface TesseraMetricsSources {
  /** The store: size, series and pending figures. */
  readonly tessera: Tessera;
  /** The stream runners to report (more can be added with {@link TesseraMetrics.addStream}). */
  readonly streams?: readonly StreamRunner[];
  /** The windowed stream runners to report. */
  readonly windowed?: readonly WindowedStreamRunner[];
}

/** Options of {@link registerTesseraMetrics}. */
export interface TesseraMetricsOptions {
  /** Prefix of every metric name (default `tessera_`). */
  readonly prefix?: string;
  /** Upper bounds of the query latency histogram, in seconds. */
  readonly queryBuckets?: readonly number[];
}

/** The metrics registered on one registry. */
export interface TesseraMetrics {
  /** Reports one more stream runner (its counters from when it was created). */
  addStream(runner: StreamRunner): void;
  /** Records how long one online query took, in seconds, and how it ended. */
  observeQuery(seconds: number, outcome?: 'ok' | 'error'): void;
  /** Records that a backfill started over HTTP. */
  observeBackfillStarted(): void;
  /** Records rows a backfill started over HTTP read (as it reads them). */
  observeBackfillRows(rows: number): void;
  /** Records that a backfill started over HTTP ended, and how. */
  observeBackfillEnded(status: 'COMPLETED' | 'FAILED' | 'CANCELED'): void;
  /** Records a scheduled backfill run that ended (its rows and status). */
  observeScheduledRun(record: { readonly status: string; readonly rows: number }): void;
  /** Runs `tessera.query(request)` and records its latency. */
  query<const O extends readonly OutputRef[]>(request: QueryRequest<O>): QueryResult<O>;
  /** Removes every metric of this adapter from the registry. */
  unregister(): void;
}

/**
 * Query latency buckets (seconds): 25 us to 1 s, dense where online queries live.
 */
export const QUERY_LATENCY_BUCKETS: readonly number[] = Object.freeze([
  0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
  0.5, 1,
]);

type CounterField = keyof Pick<
  StreamMetrics,
  | 'messages'
  | 'accepted'
  | 'rows'
  | 'commits'
  | 'batches'
  | 'deadLetters'
  | 'lateDropped'
  | 'duplicatesSkipped'
  | 'replayed'
>;

/** The stream counters: metric suffix, runner field, help. */
const STREAM_COUNTERS: readonly (readonly [string, CounterField, string])[] = [
  ['stream_messages_total', 'messages', 'Messages consumed (good and bad, not replays)'],
  ['stream_accepted_messages_total', 'accepted', 'Messages whose rows were folded'],
  ['stream_rows_total', 'rows', 'Rows folded into the buckets of materialized aggregations'],
  [
    'stream_commits_total',
    'commits',
    'Atomic commits of buckets, positions and dead letters (one per stored batch)',
  ],
  ['stream_batches_total', 'batches', 'Polled batches processed'],
  ['stream_dead_letters_total', 'deadLetters', 'Messages kept as dead letters'],
  ['stream_late_dropped_total', 'lateDropped', 'Events dropped past the late-arrival deadline'],
  ['stream_duplicates_skipped_total', 'duplicatesSkipped', 'Redelivered messages skipped'],
  ['stream_replayed_total', 'replayed', 'Messages read again to rebuild the dedupe memory'],
];

type WindowedField = keyof Pick<
  WindowedStreamMetrics,
  'messages' | 'accepted' | 'deadLetters' | 'lateEvents' | 'periodsClosed' | 'resolverErrors'
>;

/** The windowed stream runners' counters: metric suffix, runner field, help. */
const WINDOWED_COUNTERS: readonly (readonly [string, WindowedField, string])[] = [
  ['windowed_messages_total', 'messages', 'Messages a windowed stream resolver consumed'],
  ['windowed_accepted_messages_total', 'accepted', 'Messages kept for its windows'],
  ['windowed_dead_letters_total', 'deadLetters', 'Messages kept as dead letters (bad or late)'],
  ['windowed_late_events_total', 'lateEvents', 'Messages late for at least one window'],
  ['windowed_periods_closed_total', 'periodsClosed', 'Tumbling periods closed'],
  [
    'windowed_resolver_errors_total',
    'resolverErrors',
    'Period values the resolver could not give (it threw, or gave a bad value)',
  ],
];

/**
 * Registers Tessera's metrics on `registry` and returns the handle that adds streams
 * and records query latency. Names (with the default prefix):
 * - `tessera_stream_messages_total`, `_accepted_messages_total`, `_rows_total`,
 *   `_commits_total`, `_batches_total`, `_dead_letters_total`, `_late_dropped_total`,
 *   `_duplicates_skipped_total`, `_replayed_total` (counters, label `resolver`);
 * - `tessera_stream_lag_messages` (gauge, labels `resolver`, `partition`),
 *   `tessera_stream_messages_per_second`, `tessera_stream_running`,
 *   `tessera_stream_last_commit_timestamp_seconds` (gauges, label `resolver`);
 * - `tessera_windowed_messages_total`, `_windowed_accepted_messages_total`,
 *   `_windowed_dead_letters_total`, `_windowed_late_events_total`,
 *   `_windowed_periods_closed_total`, `_windowed_resolver_errors_total` (counters, label
 *   `resolver`): windowed stream runners;
 * - `tessera_query_duration_seconds` (histogram, label `outcome`);
 * - `tessera_store_disk_bytes`, `tessera_store_bucket_entries`, `tessera_store_series`,
 *   `tessera_store_pending_rows` (gauges).
 *
 * @example
 * import { Registry } from 'prom-client';
 * import { registerTesseraMetrics } from 'tessera';
 *
 * const registry = new Registry();
 * const metrics = registerTesseraMetrics(registry, { tessera, streams: [runner] });
 * const result = metrics.query({ input: { 'user.id': [7] }, output: [User.total['7d']] });
 * const text = await registry.metrics(); // Prometheus text format
 */
export function registerTesseraMetrics(
  registry: Registry,
  sources: TesseraMetricsSources,
  options: TesseraMetricsOptions = {},
): TesseraMetrics {
  const { Counter, Gauge, Histogram } = requireOptionalPeer<typeof import('prom-client')>(
    'prom-client',
    'registerTesseraMetrics',
  );
  const prefix = options.prefix ?? 'tessera_';
  const runners: StreamRunner[] = [...(sources.streams ?? [])];
  const tessera = sources.tessera;
  const registers = [registry];
  const names: string[] = [];
  const name = (suffix: string): string => {
    const full = `${prefix}${suffix}`;
    names.push(full);
    return full;
  };

  // Counters mirror monotonic runner counters: each scrape adds what changed since the
  // last one (a runner's counters never go down).
  const seen = new Map<StreamRunner, Partial<Record<CounterField, number>>>();
  let snapshot: StreamMetrics[] = [];
  const counters = STREAM_COUNTERS.map(([suffix, field, help]) => {
    const counter: Counter<'resolver'> = new Counter({
      name: name(suffix),
      help,
      labelNames: ['resolver'],
      registers,
      collect() {
        // The first collector of a scrape takes the snapshot the others read.
        if (counter === first()) snapshot = runners.map((r) => r.metrics());
        runners.forEach((runner, i) => {
          const m = snapshot[i];
          if (m === undefined) return;
          const last = seen.get(runner) ?? {};
          const delta = m[field] - (last[field] ?? 0);
          if (delta > 0) counter.inc({ resolver: m.resolver }, delta);
          else counter.inc({ resolver: m.resolver }, 0);
          last[field] = m[field];
          seen.set(runner, last);
        });
      },
    });
    return counter;
  });
  const first = (): Counter<'resolver'> | undefined => counters[0];

  // Windowed runners, mirrored the same way.
  const windowedRunners = [...(sources.windowed ?? [])];
  const windowedSeen = new Map<WindowedStreamRunner, Partial<Record<WindowedField, number>>>();
  for (const [suffix, field, help] of WINDOWED_COUNTERS) {
    const counter: Counter<'resolver'> = new Counter({
      name: name(suffix),
      help,
      labelNames: ['resolver'],
      registers,
      collect() {
        for (const runner of windowedRunners) {
          const m = runner.metrics();
          const last = windowedSeen.get(runner) ?? {};
          counter.inc({ resolver: m.resolver }, Math.max(0, m[field] - (last[field] ?? 0)));
          last[field] = m[field];
          windowedSeen.set(runner, last);
        }
      },
    });
    void counter;
  }

  new Gauge({
    name: name('stream_lag_messages'),
    help: 'Messages behind the end of each partition, as last reported by the source',
    labelNames: ['resolver', 'partition'],
    registers,
    collect() {
      this.reset();
      for (const m of currentStreams()) {
        for (const l of m.lag) this.set({ resolver: m.resolver, partition: l.partition }, l.lag);
      }
    },
  });
  new Gauge({
    name: name('stream_messages_per_second'),
    help: 'Messages consumed per second over the last few seconds',
    labelNames: ['resolver'],
    registers,
    collect() {
      for (const m of currentStreams()) this.set({ resolver: m.resolver }, m.messagesPerSecond);
    },
  });
  new Gauge({
    name: name('stream_running'),
    help: '1 while the stream runner is consuming',
    labelNames: ['resolver'],
    registers,
    collect() {
      for (const m of currentStreams()) this.set({ resolver: m.resolver }, m.running ? 1 : 0);
    },
  });
  new Gauge({
    name: name('stream_last_commit_timestamp_seconds'),
    help: 'Unix time of the last commit of the stream',
    labelNames: ['resolver'],
    registers,
    collect() {
      for (const m of currentStreams()) {
        if (m.lastCommitAtMs !== null) this.set({ resolver: m.resolver }, m.lastCommitAtMs / 1000);
      }
    },
  });
  const latency = new Histogram({
    name: name('query_duration_seconds'),
    help: 'Online query latency (keys resolved, native read, values assembled)',
    labelNames: ['outcome'],
    buckets: [...(options.queryBuckets ?? QUERY_LATENCY_BUCKETS)],
    registers,
  });
  const storeGauge = (suffix: string, help: string, read: () => number): void => {
    new Gauge({
      name: name(suffix),
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  };
  // One stats call per scrape, shared by the store gauges.
  let stats: ReturnType<Tessera['stats']> | null = null;
  const storeStats = (fresh: boolean): ReturnType<Tessera['stats']> => {
    if (fresh || stats === null) stats = tessera.stats();
    return stats;
  };
  storeGauge(
    'store_disk_bytes',
    'Bytes of the bucket table files on disk',
    () => storeStats(true).diskBytes,
  );
  storeGauge(
    'store_bucket_entries',
    'Stored bucket records (RocksDB estimate)',
    () => storeStats(false).bucketEntriesEstimate,
  );
  storeGauge('store_series', 'Series of the open plan', () => storeStats(false).series);
  storeGauge(
    'store_pending_rows',
    'Rows folded and not yet committed',
    () => storeStats(false).pendingRows,
  );

  const backfillRuns = new Counter({
    name: name('backfill_runs_total'),
    help: 'Backfills ended, by status and trigger (http or schedule)',
    labelNames: ['status', 'trigger'],
    registers,
  });
  const backfillRows = new Counter({
    name: name('backfill_rows_total'),
    help: 'Rows read by backfills',
    registers,
  });
  const backfillsRunning = new Gauge({
    name: name('backfills_running'),
    help: 'Backfills started over HTTP in flight',
    registers,
  });

  function currentStreams(): StreamMetrics[] {
    return snapshot.length === runners.length ? snapshot : runners.map((r) => r.metrics());
  }

  return {
    addStream(runner) {
      if (!runners.includes(runner)) runners.push(runner);
    },
    observeQuery(seconds, outcome = 'ok') {
      latency.observe({ outcome }, seconds);
    },
    observeBackfillStarted() {
      backfillsRunning.inc();
    },
    observeBackfillRows(rows) {
      if (rows > 0) backfillRows.inc(rows);
    },
    observeBackfillEnded(status) {
      backfillsRunning.dec();
      backfillRuns.inc({ status, trigger: 'http' });
    },
    observeScheduledRun(record) {
      if (record.rows > 0) backfillRows.inc(record.rows);
      backfillRuns.inc({ status: record.status, trigger: 'schedule' });
    },
    query(request) {
      const started = process.hrtime.bigint();
      let outcome: 'ok' | 'error' = 'error';
      try {
        const result = tessera.query(request);
        outcome = 'ok';
        return result;
      } finally {
        latency.observe({ outcome }, Number(process.hrtime.bigint() - started) / 1e9);
      }
    },
    unregister() {
      for (const n of names) registry.removeSingleMetric(n);
    },
  };
}
