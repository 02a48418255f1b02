/**
 * Sketch scenarios, each with its peers in the same run on
 * the same values:
 *
 * - `sketch.updates.<cpc|top_k|percentile>`: sketch updates per second through the
 *   engine's ingest (typed-array batches of 4,096, one sketch rule per series, hourly
 *   buckets, commit included), against the same per-bucket fold in JavaScript: an exact
 *   `Set` / `Map` for count-distinct and top-k, and the npm sketches `tdigest` and
 *   `@datadog/sketches-js` (DDSketch) for the percentile.
 * - `backfill.sketch_per_bucket[.count_distinct]`: folding historical rows (10K keys,
 *   hourly buckets over 30 days: most buckets hold one or two rows, the worst case for a
 *   sketch per bucket) into an approx_percentile / approx_count_distinct rule, committed
 *   with replace (as a backfill is), against the JavaScript per-bucket folds.
 * - `storage.sketch_bytes_per_bucket`: the stored bytes of one bucket of each sketch at a
 *   few cardinalities (commit's bytes written, less the bucket key), next to the
 *   reference figures (CPC lgK 11 about 1.2 KB) and DDSketch's protobuf size.
 */
import { join } from 'node:path';
import { DDSketch } from '@datadog/sketches-js';
import { TDigest } from 'tdigest';
import { BucketEngine } from '../ts/bucket-engine.js';
import type { AggregationDescription, SeriesBatchInput, StoreDescription } from '../ts/native.js';
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
const DAY = 24 * HOUR;
const BATCH = 4_096;
const START = Date.UTC(2026, 0, 1);

/** Events in time order: key, time, a numeric value (ids for count-distinct and top-k). */
interface Stream {
  keys: Float64Array;
  timestampsMs: Float64Array;
  /** Integer ids, Zipf-like (a few heavy, a long tail): count-distinct and top-k input. */
  ids: Float64Array;
  /** Log-normal amounts: percentile input. */
  amounts: Float64Array;
}

function generate(events: number, keys: number, hours: number, seed: number): Stream {
  const random = seededRandom(seed);
  const stream: Stream = {
    keys: new Float64Array(events),
    timestampsMs: new Float64Array(events),
    ids: new Float64Array(events),
    amounts: new Float64Array(events),
  };
  const step = (hours * HOUR) / events;
  for (let i = 0; i < events; i++) {
    stream.keys[i] = Math.floor(random() * keys);
    stream.timestampsMs[i] = START + Math.floor(i * step);
    // 1 / u^1.2 is heavy-tailed: ids 1, 2, 3 are common, the tail reaches ~1e6.
    stream.ids[i] = Math.min(1_000_000, Math.floor(1 / (random() + 1e-7) ** 1.2));
    const u1 = 1 - random();
    const u2 = random();
    const gaussian = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    stream.amounts[i] = Math.round(Math.exp(3 + gaussian) * 100) / 100;
  }
  return stream;
}

/** The three sketches, and `sum` as the store's own per-bucket floor in the same shape. */
type Kind = 'cpc' | 'top_k' | 'percentile' | 'sum';

const aggregations: Record<Kind, AggregationDescription> = {
  cpc: { kind: 'approx_count_distinct', lgK: 11 },
  top_k: { kind: 'approx_top_k', k: 10, weighted: false },
  percentile: { kind: 'approx_percentile', quantile: 0.9, sketchSize: 200 },
  sum: { kind: 'sum' },
};

function describe(kind: Kind, retentionMs: number): StoreDescription {
  return {
    series: [
      {
        id: `sketch_${kind}`,
        valueKind: 'number',
        rules: [
          { aggregation: aggregations[kind], bucketSizeMs: HOUR, bucketOriginMs: 0, retentionMs },
        ],
      },
    ],
  };
}

function values(stream: Stream, kind: Kind): Float64Array {
  return kind === 'percentile' || kind === 'sum' ? stream.amounts : stream.ids;
}

/**
 * Ingests the stream in batches of 4,096 and commits every `commitEvery` events and at
 * the end; returns events/s and the last commit's figures.
 */
function tesseraFold(
  dir: string,
  kind: Kind,
  stream: Stream,
  commitEvery: number,
  replace: boolean,
): { perSecond: number; perCpuSecond: number; bytesWritten: number; bucketsWritten: number } {
  const engine = BucketEngine.open(dir, describe(kind, 40 * DAY));
  engine.setClock(START + 31 * DAY);
  const seriesId = `sketch_${kind}`;
  const numbers = values(stream, kind);
  const n = stream.keys.length;
  let bytesWritten = 0;
  let bucketsWritten = 0;
  const commit = () => {
    const report = engine.commitStaged(replace ? { replace: true } : undefined);
    bytesWritten += report.bytesWritten;
    bucketsWritten += report.bucketsWritten;
  };
  const started = performance.now();
  const cpu = process.cpuUsage();
  let sinceCommit = 0;
  for (let offset = 0; offset < n; offset += BATCH) {
    const end = Math.min(n, offset + BATCH);
    const batch: SeriesBatchInput = {
      seriesId,
      keys: [{ ints: stream.keys.subarray(offset, end) }],
      timestampsMs: stream.timestampsMs.subarray(offset, end),
      numbers: numbers.subarray(offset, end),
    };
    engine.stage([batch]);
    sinceCommit += end - offset;
    if (sinceCommit >= commitEvery) {
      commit();
      sinceCommit = 0;
    }
  }
  commit();
  const elapsed = performance.now() - started;
  const used = process.cpuUsage(cpu);
  engine.close();
  return {
    perSecond: perSecond(n, elapsed),
    // Every thread of the process: the caller's and RocksDB's background flushes.
    perCpuSecond: perSecond(n, (used.user + used.system) / 1000),
    bytesWritten,
    bucketsWritten,
  };
}

/** A JavaScript per-(key, hour) fold with one state per bucket; returns events/s. */
function jsFold<S>(stream: Stream, kind: Kind, create: () => S, update: (s: S, v: number) => void) {
  const numbers = values(stream, kind);
  const started = performance.now();
  const map = new Map<number, S>();
  const n = stream.keys.length;
  for (let i = 0; i < n; i++) {
    const bucket = Math.floor((stream.timestampsMs[i] ?? 0) / HOUR);
    const id = (stream.keys[i] ?? 0) * 1_000_000 + (bucket % 1_000_000);
    let state = map.get(id);
    if (state === undefined) {
      state = create();
      map.set(id, state);
    }
    update(state, numbers[i] ?? 0);
  }
  const elapsed = performance.now() - started;
  if (map.size === 0) throw new Error('nothing folded');
  return perSecond(n, elapsed);
}

/** The peers of one sketch kind, each measured on the same stream, one after another. */
async function peersOf(
  kind: Kind,
  stream: Stream,
  repetitions: number,
): Promise<Record<string, number>> {
  const folds: Record<string, () => number> =
    kind === 'cpc'
      ? {
          js_exact_set: () =>
            jsFold(
              stream,
              kind,
              () => new Set<number>(),
              (s, v) => s.add(v),
            ),
        }
      : kind === 'top_k'
        ? {
            js_exact_map: () =>
              jsFold(
                stream,
                kind,
                () => new Map<number, number>(),
                (m, v) => m.set(v, (m.get(v) ?? 0) + 1),
              ),
          }
        : {
            npm_tdigest: () =>
              jsFold(
                stream,
                kind,
                () => new TDigest(),
                (d, v) => d.push(v),
              ),
            npm_ddsketch: () =>
              jsFold(
                stream,
                kind,
                () => new DDSketch(),
                (d, v) => d.accept(v),
              ),
          };
  const out: Record<string, number> = {};
  for (const [name, fold] of Object.entries(folds)) out[name] = await repeat(repetitions, fold);
  return out;
}

function ratiosOf(tessera: number, peers: Record<string, number>): Record<string, number> {
  const ratios: Record<string, number> = {};
  for (const [name, value] of Object.entries(peers)) ratios[`vs_${name}`] = tessera / value;
  return ratios;
}

async function updatesScenario(context: BenchContext, kind: Kind): Promise<ScenarioResult> {
  const events = context.quick ? 200_000 : 2_000_000;
  const keys = 1_000;
  const hours = 24;
  const stream = generate(events, keys, hours, 7);
  const runs: ReturnType<typeof tesseraFold>[] = [];
  const tessera = await repeat(context.repetitions, () =>
    withTempDir((dir) => {
      const run = tesseraFold(dir, kind, stream, 1_048_576, false);
      runs.push(run);
      return run.perSecond;
    }),
  );
  const peers = await peersOf(kind, stream, context.repetitions);
  const last = runs[runs.length - 1];
  return {
    name: `sketch.updates.${kind}`,
    unit: 'updates/s',
    tessera,
    peers,
    ratios: ratiosOf(tessera, peers),
    notes: {
      events,
      keys,
      bucket: '1h',
      buckets: last?.bucketsWritten ?? 0,
      events_per_bucket: Math.round(events / (last?.bucketsWritten || 1)),
      batch: BATCH,
      aggregation: JSON.stringify(aggregations[kind]),
      includes: 'ingest + commit (encode, RocksDB merge writes)',
      peers_fold: 'a JS Map of per-(key, hour) states, in memory, no encoding',
    },
  };
}

/** Events/s of `repetitions` backfills of `stream` into `kind`, and the last run. */
async function backfill(context: BenchContext, kind: Kind, stream: Stream) {
  const runs: ReturnType<typeof tesseraFold>[] = [];
  const perSecond = await repeat(context.repetitions, () =>
    withTempDir((dir) => {
      const run = tesseraFold(dir, kind, stream, 262_144, true);
      runs.push(run);
      return run.perSecond;
    }),
  );
  const last = runs[runs.length - 1];
  return {
    perSecond,
    perCpuSecond: median(runs.map((r) => r.perCpuSecond)),
    buckets: last?.bucketsWritten ?? 0,
    bytesPerBucket: Math.round((last?.bytesWritten ?? 0) / (last?.bucketsWritten || 1)),
  };
}

/**
 * A backfill of a typical feature shape (2M rows, 10K keys, hourly buckets over 30
 * days: ~1.15 rows per bucket, so nearly every row creates, encodes and writes a sketch),
 * with `sum` in the same shape as the store's per-bucket floor, the JS per-bucket folds
 * as peers, and the same rows over 1K keys (~2.8 rows per bucket) in the notes.
 */
async function backfillScenario(context: BenchContext, kind: 'percentile' | 'cpc') {
  const events = context.quick ? 200_000 : 2_000_000;
  const keys = context.quick ? 1_000 : 10_000;
  const denseKeys = keys / 10;
  const hours = 30 * 24;
  const stream = generate(events, keys, hours, 11);
  const main = await backfill(context, kind, stream);
  const sum = await backfill(context, 'sum', stream);
  const dense = await backfill(context, kind, generate(events, denseKeys, hours, 12));
  const peers = {
    ...(await peersOf(kind, stream, context.repetitions)),
    tessera_sum: sum.perSecond,
  };
  const tessera = main.perSecond;
  return {
    name: kind === 'percentile' ? 'backfill.sketch_per_bucket' : 'backfill.sketch_per_bucket.cpc',
    unit: 'events/s',
    tessera,
    peers,
    ratios: { ...ratiosOf(tessera, peers), of_bar_1m: tessera / 1e6 },
    notes: {
      events,
      keys,
      bucket: '1h over 30 days',
      buckets: main.buckets,
      events_per_bucket: Number((events / (main.buckets || 1)).toFixed(2)),
      aggregation: JSON.stringify(aggregations[kind]),
      commit: 'replace, every 262,144 events',
      measure: 'wall clock of the calling thread (RocksDB flushes on its own threads)',
      events_per_cpu_second: Math.round(main.perCpuSecond),
      bytes_per_bucket_with_key: main.bytesPerBucket,
      sum_bytes_per_bucket_with_key: sum.bytesPerBucket,
      [`events_per_s_at_${denseKeys}_keys`]: Math.round(dense.perSecond),
      [`events_per_bucket_at_${denseKeys}_keys`]: Number(
        (events / (dense.buckets || 1)).toFixed(2),
      ),
      bar: '>= 1M events/s per core',
    },
  } satisfies ScenarioResult;
}

/** Stored bytes of one bucket holding `numbers`, for one aggregation: commit's bytes
 * written for the bucket, less its key (measured with a `sum` rule, whose state is 9 B). */
function bucketBytes(dir: string, aggregation: AggregationDescription, numbers: Float64Array) {
  const rule = (a: AggregationDescription) => ({
    aggregation: a,
    bucketSizeMs: HOUR,
    bucketOriginMs: 0,
    retentionMs: DAY,
  });
  const engine = BucketEngine.open(join(dir, 'sketch'), {
    series: [{ id: 's', valueKind: 'number', rules: [rule(aggregation)] }],
  });
  const sum = BucketEngine.open(join(dir, 'sum'), {
    series: [{ id: 's', valueKind: 'number', rules: [rule({ kind: 'sum' })] }],
  });
  try {
    const batch = (values: Float64Array): SeriesBatchInput => ({
      seriesId: 's',
      keys: [{ ints: new Float64Array(values.length).fill(42) }],
      timestampsMs: new Float64Array(values.length).fill(START),
      numbers: values,
    });
    for (let offset = 0; offset < numbers.length; offset += 65_536) {
      engine.stage([batch(numbers.subarray(offset, offset + 65_536))]);
    }
    const written = engine.commitStaged().bytesWritten;
    const keyBytes = sum.commitBatches([batch(new Float64Array([1]))]).bytesWritten - 9;
    return written - keyBytes;
  } finally {
    engine.close();
    sum.close();
  }
}

async function storageScenario(): Promise<ScenarioResult> {
  const random = seededRandom(3);
  const distinct = (n: number) => Float64Array.from({ length: n }, (_, i) => i * 7 + 1);
  const zipf = (n: number) =>
    Float64Array.from({ length: n }, () => Math.floor(1 / (random() + 1e-6) ** 1.1));
  const amounts = (n: number) => Float64Array.from({ length: n }, () => Math.exp(3 + random()));
  const notes: Record<string, number | string> = {};
  const measure = (label: string, aggregation: AggregationDescription, numbers: Float64Array) =>
    withTempDir((dir) => {
      const bytes = bucketBytes(dir, aggregation, numbers);
      notes[label] = bytes;
      return bytes;
    });
  const cpc = aggregations.cpc;
  for (const n of [1, 100, 1_000, 10_000])
    await measure(`cpc_lgk11_${n}_distinct`, cpc, distinct(n));
  const cpcLarge = await measure('cpc_lgk11_100000_distinct', cpc, distinct(100_000));
  for (const n of [100, 10_000]) {
    await measure(`top_k10_${n}_zipf_rows`, aggregations.top_k, zipf(n));
    await measure(`top_k10_${n}_distinct`, aggregations.top_k, distinct(n));
  }
  for (const n of [1, 100, 10_000, 100_000]) {
    await measure(`percentile_size200_${n}_values`, aggregations.percentile, amounts(n));
  }
  // DDSketch (1% relative accuracy) serialized with toProto, for the same values.
  for (const n of [100, 10_000, 100_000]) {
    const sketch = new DDSketch();
    for (const v of amounts(n)) sketch.accept(v);
    notes[`npm_ddsketch_proto_${n}_values`] = sketch.toProto().length;
  }
  notes.reference_cpc_lgk11 = '~1.2 KB at high cardinality (1,332 B at the 99.9th percentile)';
  notes.reference_sum = 9;
  notes.reference_mean = 18;
  notes.includes = 'the encoded state (header, length, sketch image); not the bucket key';
  return {
    name: 'storage.sketch_bytes_per_bucket',
    unit: 'bytes/bucket (CPC lgK 11, 100K distinct)',
    tessera: cpcLarge,
    peers: { reference_cpc_lgk11: 1_200 },
    ratios: { of_reference: cpcLarge / 1_200 },
    notes,
  };
}

export async function sketchScenarios(context: BenchContext): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  for (const kind of ['cpc', 'top_k', 'percentile'] as const) {
    results.push(await updatesScenario(context, kind));
  }
  results.push(await backfillScenario(context, 'percentile'));
  results.push(await backfillScenario(context, 'cpc'));
  results.push(await storageScenario());
  return results;
}
