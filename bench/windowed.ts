/**
 * Windowed stream resolver scenarios (docs/semantics.md section 6.1), through the
 * in-process source:
 * - messages/s through a tumbling resolver (10m, 1h, 1d windows, 10K users), in the list
 *   form and the SQL form (DuckDB over each period's messages), next to the same messages
 *   through a stream resolver feeding bucket counts of the same windows;
 * - the latency of a continuous window (1d of messages of one key, one every 10 s)
 *   computed at query time, next to a materialized count of the same window;
 * - memory: continuous mode over 1M distinct keys (100K with --quick) that nobody queries,
 *   with the engine clock following the stream so that retention evicts as RocksDB
 *   compacts: RSS as the feed goes, and what the store still keeps at the end.
 */
import { z } from 'zod';
import { datetime, features, hasMany, int, string, Tessera, windowed } from '../ts/index.js';
import {
  makeStreamResolver,
  makeWindowedStreamResolver,
  StreamRunner,
  WindowedStreamRunner,
} from '../ts/resolvers/index.js';
import { MemorySource } from '../ts/sources/index.js';
import {
  type BenchContext,
  median,
  perSecond,
  quantile,
  type ScenarioResult,
  seededRandom,
  withTempDir,
} from './harness.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 0, 31);
const USERS = 10_000;

const Login = features('login', {
  id: string().primary(),
  user_id: int().references('user.id'),
  failed: int(),
  ts: datetime().featureTime(),
});
const User = features(
  'user',
  {
    id: int().primary(),
    logins: hasMany(() => Login),
    num_failed_logins: windowed('10m', '1h', '1d', { default: 0 }),
    recent: windowed('1d', { default: 0 }),
  },
  (user) => ({
    failed_count: windowed('10m', '1h', '1d', {
      materialization: { bucketDuration: '10m' },
      expression: user.logins.select((l) => l.failed).sum(),
      default: 0,
    }),
  }),
);
const LoginMessage = z.object({
  id: z.string(),
  user_id: z.number(),
  failed: z.number(),
  at: z.string(),
});

/** `n` login messages over `spanMs` from T0, in time order, users at random. */
function messages(n: number, spanMs: number, users: number, seed: number): string[] {
  const random = seededRandom(seed);
  const out: string[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const t = T0 + Math.floor((i / n) * spanMs);
    out[i] = JSON.stringify({
      id: `m${i}`,
      user_id: 1 + Math.floor(random() * users),
      failed: random() < 0.3 ? 1 : 0,
      at: new Date(t).toISOString(),
    });
  }
  return out;
}

function sourceOf(lines: readonly string[]): MemorySource {
  const source = new MemorySource();
  for (const line of lines) source.push(line);
  source.end();
  return source;
}

async function tumblingRate(
  dir: string,
  lines: readonly string[],
  form: 'list' | 'sql',
): Promise<{ rate: number; periods: number }> {
  const resolver = makeWindowedStreamResolver({
    name: `failed_${form}`,
    source: sourceOf(lines),
    messageType: LoginMessage,
    output: User.num_failed_logins,
    timestamp: 'at',
    ...(form === 'list'
      ? {
          keys: { user_id: 'id' },
          resolve: (events: { failed: number }[]) => events.reduce((s, e) => s + e.failed, 0),
        }
      : {
          input: 'dataframe' as const,
          resolve: (events: unknown) =>
            `select user_id as id, sum(failed) as num_failed_logins from ${events} group by 1`,
        }),
  });
  const tessera = Tessera.open({
    path: `${dir}/${form}`,
    features: [User, Login],
    windowedResolvers: [resolver],
  });
  try {
    const runner = new WindowedStreamRunner(tessera, resolver, { batchSize: 8192 });
    const started = performance.now();
    const metrics = await runner.run();
    return {
      rate: perSecond(lines.length, performance.now() - started),
      periods: metrics.periodsClosed,
    };
  } finally {
    tessera.close();
  }
}

async function bucketRate(dir: string, lines: readonly string[]): Promise<number> {
  const resolver = makeStreamResolver({
    name: 'failed_buckets',
    source: sourceOf(lines),
    messageType: LoginMessage,
    output: Login,
    outputFeatures: { id: 'id', user_id: 'user_id', failed: 'failed', ts: 'at' },
  });
  const tessera = Tessera.open({ path: `${dir}/buckets`, features: [User, Login] });
  try {
    const started = performance.now();
    await new StreamRunner(tessera, resolver, { batchSize: 8192 }).run();
    return perSecond(lines.length, performance.now() - started);
  } finally {
    tessera.close();
  }
}

async function continuousLatency(dir: string, context: BenchContext): Promise<ScenarioResult> {
  // One key, one message every 10 s for a day, plus 1,000 other keys around it.
  const random = seededRandom(5);
  const lines: string[] = [];
  for (let t = T0; t < T0 + DAY; t += 10_000) {
    lines.push(
      JSON.stringify({
        id: `k${t}`,
        user_id: 1,
        failed: random() < 0.3 ? 1 : 0,
        at: new Date(t).toISOString(),
      }),
    );
    lines.push(
      JSON.stringify({
        id: `o${t}`,
        user_id: 2 + Math.floor(random() * 1000),
        failed: 1,
        at: new Date(t).toISOString(),
      }),
    );
  }
  const resolver = makeWindowedStreamResolver({
    name: 'recent',
    source: sourceOf(lines),
    messageType: LoginMessage,
    output: User.recent,
    mode: 'continuous',
    keys: { user_id: 'id' },
    timestamp: 'at',
    resolve: (events) => events.reduce((s, e) => s + e.failed, 0),
  });
  const buckets = makeStreamResolver({
    name: 'failed_buckets',
    source: sourceOf(lines),
    messageType: LoginMessage,
    output: Login,
    outputFeatures: { id: 'id', user_id: 'user_id', failed: 'failed', ts: 'at' },
  });
  const now = T0 + DAY;
  const tessera = Tessera.open({
    path: `${dir}/continuous`,
    features: [User, Login],
    windowedResolvers: [resolver],
    clock: now,
  });
  try {
    await new WindowedStreamRunner(tessera, resolver, { batchSize: 8192 }).run();
    await new StreamRunner(tessera, buckets, { batchSize: 8192 }).run();
    const n = context.quick ? 50 : 300;
    const continuous: number[] = [];
    const materialized: number[] = [];
    let check = 0;
    for (let i = 0; i < n; i++) {
      // Online queries at the engine clock, as a service asks them.
      const at = now;
      let started = performance.now();
      const a = await tessera.queryAsync({
        input: { 'user.id': [1] },
        output: [User.recent['1d']],
        now: at,
      });
      continuous.push(performance.now() - started);
      started = performance.now();
      tessera.query({ input: { 'user.id': [1] }, output: [User.failed_count['1d']], now: at });
      materialized.push(performance.now() - started);
      check += Number(a.rows[0]?.values[0] ?? 0);
    }
    return {
      name: 'windowed continuous query',
      unit: 'ms p50',
      tessera: median(continuous),
      peers: { 'materialized count p50': median(materialized) },
      ratios: {},
      notes: {
        p99: quantile(continuous, 0.99),
        materializedP99: quantile(materialized, 0.99),
        messagesPerWindow: DAY / 10_000,
        queries: n,
        checksum: check,
      },
    };
  } finally {
    tessera.close();
  }
}

async function continuousMemory(dir: string, context: BenchContext): Promise<ScenarioResult> {
  const keys = context.quick ? 100_000 : 1_000_000;
  const windowMs = DAY;
  // Ten messages per window's span: six days of feed, one distinct key per message.
  const span = 6 * windowMs;
  const source = new MemorySource();
  const resolver = makeWindowedStreamResolver({
    name: 'memory',
    source,
    messageType: LoginMessage,
    output: User.recent,
    mode: 'continuous',
    keys: { user_id: 'id' },
    timestamp: 'at',
    resolve: (events) => events.length,
  });
  const tessera = Tessera.open({
    path: `${dir}/memory`,
    features: [User, Login],
    windowedResolvers: [resolver],
    clock: T0,
  });
  try {
    const runner = new WindowedStreamRunner(tessera, resolver, {
      batchSize: 8192,
      // The engine clock follows the stream, as the wall clock would.
      onBatch: (report) => {
        if (report.watermarkMs !== null) tessera.setClock(report.watermarkMs);
      },
    });
    const running = runner.run();
    const rss: number[] = [];
    const chunk = 50_000;
    const started = performance.now();
    for (let i = 0; i < keys; i += chunk) {
      for (let j = i; j < Math.min(keys, i + chunk); j++) {
        const t = T0 + Math.floor((j / keys) * span);
        source.push(
          `{"id":"m${j}","user_id":${j + 1},"failed":0,"at":"${new Date(t).toISOString()}"}`,
        );
      }
      while (runner.metrics().messages < Math.min(keys, i + chunk)) {
        await new Promise((done) => setTimeout(done, 5));
      }
      rss.push(process.memoryUsage().rss);
    }
    source.end();
    await running;
    const elapsed = performance.now() - started;
    tessera.engine.compact();
    // The store keeps the keys of the last window only.
    const sample = [1, Math.floor(keys / 2), keys];
    const kept = tessera.engine
      .retainedMessages(
        'memory',
        sample.map((k) => JSON.stringify([k])),
        T0 - 30 * DAY,
        T0 + 30 * DAY,
      )
      .map((l) => l.count);
    const quarter = rss[Math.floor(rss.length / 4)] ?? 0;
    const peak = Math.max(...rss);
    return {
      name: 'windowed continuous memory',
      unit: 'MiB RSS growth',
      tessera: (peak - quarter) / 2 ** 20,
      peers: {},
      ratios: {},
      notes: {
        keys,
        messagesPerSecond: perSecond(keys, elapsed),
        rssAtQuarterMiB: quarter / 2 ** 20,
        rssPeakMiB: peak / 2 ** 20,
        rssEndMiB: (rss.at(-1) ?? 0) / 2 ** 20,
        keptFirstMiddleLast: kept.join('/'),
        // RSS after each tenth of the keys, MiB.
        rssMiBByTenth: Array.from({ length: 10 }, (_, i) =>
          Math.round((rss[Math.floor(((i + 1) * rss.length) / 10) - 1] ?? 0) / 2 ** 20),
        ).join(' '),
      },
    };
  } finally {
    tessera.close();
  }
}

export async function windowedScenarios(context: BenchContext): Promise<ScenarioResult[]> {
  return withTempDir(async (dir) => {
    const n = context.quick ? 40_000 : 200_000;
    const lines = messages(n, 2 * DAY, USERS, 1);
    const results: ScenarioResult[] = [];
    const buckets = await bucketRate(dir, lines);
    for (const form of ['list', 'sql'] as const) {
      const { rate, periods } = await tumblingRate(dir, lines, form);
      results.push({
        name: `windowed tumbling ${form}`,
        unit: 'msg/s',
        tessera: rate,
        peers: { 'bucket stream resolver': buckets },
        ratios: { 'vs buckets': rate / buckets },
        notes: { messages: n, users: USERS, windows: '10m,1h,1d', periodsClosed: periods },
      });
    }
    results.push(await continuousLatency(dir, context));
    results.push(await continuousMemory(dir, context));
    return results;
  });
}
