/**
 * Ingest scenarios: typed-array batches of 4,096 events through the TypeScript API into
 * hourly buckets of sum/count/mean/min/max, against a plain JS Map fold and the Rust
 * in-memory ceiling (and DuckDB for the durable scenario), on the same events.
 */
import { DOUBLE, DuckDBDataChunk, DuckDBInstance } from '@duckdb/node-api';
import { BucketEngine } from '../ts/bucket-engine.js';
import type { StoreDescription } from '../ts/native.js';
import { benchFoldCeiling } from './fold-ceiling.js';
import {
  type BenchContext,
  median,
  perSecond,
  repeat,
  type ScenarioResult,
  seededRandom,
  withTempDir,
} from './harness.js';

const HOUR = 3_600_000;
const BATCH = 4_096;
const START = Date.UTC(2026, 0, 1);

/** A time-ordered stream: `events` events over `keys` keys spread over `hours` hours. */
export interface EventStream {
  keys: Float64Array;
  timestampsMs: Float64Array;
  values: Float64Array;
}

export function generateStream(events: number, keys: number, hours: number, seed = 1): EventStream {
  const random = seededRandom(seed);
  const stream: EventStream = {
    keys: new Float64Array(events),
    timestampsMs: new Float64Array(events),
    values: new Float64Array(events),
  };
  const step = (hours * HOUR) / events;
  for (let i = 0; i < events; i++) {
    stream.keys[i] = Math.floor(random() * keys);
    stream.timestampsMs[i] = START + Math.floor(i * step);
    stream.values[i] = Math.round(random() * 10_000) / 100;
  }
  return stream;
}

const rules = ['sum', 'count', 'mean', 'min', 'max'] as const;

export const ingestDescription: StoreDescription = {
  series: [
    {
      id: 'txn_amount',
      valueKind: 'number',
      rules: rules.map((kind) => ({
        aggregation: { kind },
        bucketSizeMs: HOUR,
        bucketOriginMs: 0,
        retentionMs: 30 * 24 * HOUR,
      })),
    },
  ],
};

/** How an ingest run's commits were written. */
interface CommitCounts {
  commits: number;
  /** Commits written as one ingested table file (bulk commits). */
  tableFiles: number;
}

/** Feeds the stream in batches of 4,096 and commits every `commitEvery` events. */
function tesseraIngest(
  engine: BucketEngine,
  stream: EventStream,
  commitEvery: number,
): CommitCounts {
  const n = stream.keys.length;
  const counts: CommitCounts = { commits: 0, tableFiles: 0 };
  const commit = () => {
    const report = engine.commitStaged();
    counts.commits += 1;
    if (report.tableFile) counts.tableFiles += 1;
  };
  let sinceCommit = 0;
  for (let offset = 0; offset < n; offset += BATCH) {
    const end = Math.min(n, offset + BATCH);
    engine.stage([
      {
        seriesId: 'txn_amount',
        keys: [{ ints: stream.keys.subarray(offset, end) }],
        timestampsMs: stream.timestampsMs.subarray(offset, end),
        numbers: stream.values.subarray(offset, end),
      },
    ]);
    sinceCommit += end - offset;
    if (sinceCommit >= commitEvery) {
      commit();
      sinceCommit = 0;
    }
  }
  commit();
  return counts;
}

interface MapState {
  sum: number;
  count: number;
  min: number;
  max: number;
}

/** The peer a TypeScript developer would write: a Map keyed by (key, hour). */
function jsMapFold(stream: EventStream): number {
  const map = new Map<number, MapState>();
  const n = stream.keys.length;
  for (let i = 0; i < n; i++) {
    const bucket = Math.floor((stream.timestampsMs[i] ?? 0) / HOUR);
    const id = (stream.keys[i] ?? 0) * 1_000_000 + (bucket % 1_000_000);
    const v = stream.values[i] ?? 0;
    const state = map.get(id);
    if (state === undefined) map.set(id, { sum: v, count: 1, min: v, max: v });
    else {
      state.sum += v;
      state.count += 1;
      if (v < state.min) state.min = v;
      if (v > state.max) state.max = v;
    }
  }
  return map.size;
}

async function duckdbIngest(stream: EventStream): Promise<number> {
  const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
  const connection = await instance.connect();
  await connection.run('CREATE TABLE events (k DOUBLE, t DOUBLE, v DOUBLE)');
  const started = performance.now();
  const appender = await connection.createAppender('events');
  const n = stream.keys.length;
  const chunkRows = 2_048;
  for (let offset = 0; offset < n; offset += chunkRows) {
    const end = Math.min(n, offset + chunkRows);
    const chunk = DuckDBDataChunk.create([DOUBLE, DOUBLE, DOUBLE], end - offset);
    chunk.setColumns([
      Array.from(stream.keys.subarray(offset, end)),
      Array.from(stream.timestampsMs.subarray(offset, end)),
      Array.from(stream.values.subarray(offset, end)),
    ]);
    appender.appendDataChunk(chunk);
  }
  appender.closeSync();
  await connection.run(
    `CREATE TABLE buckets AS SELECT k, floor(t / ${HOUR}) AS bucket, sum(v), count(v), avg(v), min(v), max(v)
     FROM events GROUP BY ALL`,
  );
  const elapsed = performance.now() - started;
  connection.closeSync();
  instance.closeSync();
  return perSecond(n, elapsed);
}

async function ingestScenario(
  context: BenchContext,
  name: string,
  keys: number,
  events: number,
  options: { durable: boolean; duckdb: boolean },
): Promise<ScenarioResult> {
  const hours = Math.max(1, Math.round(events / 1_000_000));
  const stream = generateStream(events, keys, hours);
  // Both commit every ~1M events (a fraction of a second of stream); durable also
  // fsyncs the WAL on every commit.
  const commitEvery = 1_048_576;
  const perCpuSecond: number[] = [];
  let counts: CommitCounts = { commits: 0, tableFiles: 0 };
  const tessera = await repeat(context.repetitions, () =>
    withTempDir((dir) => {
      const engine = BucketEngine.open(dir, ingestDescription, { syncCommits: options.durable });
      const started = performance.now();
      const cpu = process.cpuUsage();
      counts = tesseraIngest(engine, stream, commitEvery);
      const elapsed = performance.now() - started;
      const used = process.cpuUsage(cpu);
      engine.close();
      perCpuSecond.push(perSecond(events, (used.user + used.system) / 1000));
      return perSecond(events, elapsed);
    }),
  );
  const jsMap = await repeat(context.repetitions, () => {
    const started = performance.now();
    jsMapFold(stream);
    return perSecond(events, performance.now() - started);
  });
  const ceilingNs = benchFoldCeiling(
    stream.keys,
    stream.timestampsMs,
    stream.values,
    HOUR,
    context.repetitions,
  );
  const rustFold = 1e9 / ceilingNs;
  const peers: Record<string, number> = { js_map: jsMap, rust_fold: rustFold };
  const ratios: Record<string, number> = {
    vs_js_map: tessera / jsMap,
    of_rust_fold: tessera / rustFold,
  };
  if (options.duckdb) {
    const duck = await repeat(context.repetitions, () => duckdbIngest(stream));
    peers.duckdb = duck;
    ratios.vs_duckdb = tessera / duck;
  }
  return {
    name,
    unit: 'events/s',
    tessera,
    peers,
    ratios,
    notes: {
      events,
      keys,
      batch: BATCH,
      commit_every_events: commitEvery,
      fsync_each_commit: options.durable,
      aggregations: rules.join('/'),
      bucket: '1h',
      measure:
        'wall clock of the calling thread (RocksDB flushes and compactions run on threads of their own)',
      events_per_cpu_second: Math.round(median(perCpuSecond)),
      commits: counts.commits,
      // Commits of >= 131,072 buckets are ingested as synced table files (bulk commits);
      // the others go through the WAL and the memtable.
      table_file_commits: counts.tableFiles,
    },
  };
}

export async function ingestScenarios(context: BenchContext): Promise<ScenarioResult[]> {
  const scale = context.quick ? 0.05 : 1;
  return [
    await ingestScenario(
      context,
      'ingest.batched.10k_keys',
      10_000,
      Math.round(8_000_000 * scale),
      {
        durable: false,
        duckdb: false,
      },
    ),
    await ingestScenario(
      context,
      'ingest.batched.1m_keys',
      1_000_000,
      Math.round(8_000_000 * scale),
      {
        durable: false,
        duckdb: false,
      },
    ),
    await ingestScenario(
      context,
      'ingest.durable.100k_keys',
      100_000,
      Math.round(8_000_000 * scale),
      {
        durable: true,
        duckdb: true,
      },
    ),
  ];
}
