/**
 * Stream scenarios: ~100-byte JSON transaction messages through a stream resolver into
 * hourly sum/count/mean/max buckets (decode, validate with zod, map, one atomic write per
 * batch with positions), measured
 * - through the in-process source (the embedded default), next to the decode alone
 *   as a TypeScript consumer does it (`JSON.parse` + zod per message) on the same
 *   messages; Tessera's resolver decodes this plain schema natively instead (see
 *   ts/resolvers/message-plan.ts);
 * - from a real Kafka broker on 127.0.0.1 (started here from the cached jars), next to a
 *   bare consumer reading the same topic;
 * - as consumer lag while a producer (its own thread) holds 100K messages/s for 60 s
 *   (10 s with --quick).
 * The Kafka scenarios are skipped (and say why in their notes) when no broker can start.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Consumer } from '@platformatic/kafka';
import { z } from 'zod';
import type * as BrokerModule from '../scripts/kafka/broker.mjs';
import { datetime, features, float, hasMany, string, Tessera, windowed } from '../ts/index.js';
import { makeStreamResolver, StreamRunner } from '../ts/resolvers/index.js';
import { KafkaSource, MemorySource } from '../ts/sources/index.js';
import {
  type BenchContext,
  median,
  perSecond,
  quantile,
  repeat,
  type ScenarioResult,
  seededRandom,
  withTempDir,
} from './harness.js';

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 0, 31);
const USERS = 10_000;
/** Messages per batch (one atomic write each) in the throughput scenarios. */
const BATCH = Number(process.env.TESSERA_BENCH_STREAM_BATCH ?? 65_536);

const Transaction = features('transaction', {
  id: string().primary(),
  user_id: string().references('user.id'),
  amount: float(),
  ts: datetime().featureTime(),
});
const hourly = { bucketDuration: '1h' } as const;
const User = features(
  'user',
  { id: string().primary(), transactions: hasMany(() => Transaction) },
  (user) => ({
    total: windowed('1d', '7d', {
      materialization: hourly,
      expression: user.transactions.select((t) => t.amount).sum(),
      default: 0,
    }),
    mean_amount: windowed('1d', '7d', {
      materialization: hourly,
      expression: user.transactions.select((t) => t.amount).mean(),
    }),
    max_amount: windowed('7d', {
      materialization: hourly,
      expression: user.transactions.select((t) => t.amount).max(),
    }),
    txn_count: windowed('1d', '7d', {
      materialization: hourly,
      expression: user.transactions.count(),
      default: 0,
    }),
  }),
);

const TransactionMsg = z.object({
  id: z.string(),
  user_id: z.string(),
  amount: z.number(),
  ts: z.string(),
  merchant: z.string(),
});

/**
 * `n` messages of ~100 bytes in time order, their event times spread over the hour
 * before NOW (a live stream: at these rates an hour holds far more than `n` messages).
 */
export function transactionMessages(n: number, seed = 1): Buffer[] {
  const random = seededRandom(seed);
  const out: Buffer[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const message = {
      id: `t${i}`,
      user_id: `u${Math.floor(random() * USERS)}`,
      amount: Math.round(random() * 100_000) / 100,
      ts: new Date(NOW - HOUR + Math.floor((i / n) * HOUR)).toISOString(),
      merchant: `m${Math.floor(random() * 500)}`,
    };
    out[i] = Buffer.from(JSON.stringify(message));
  }
  return out;
}

function resolverFor(name: string, source: MemorySource | KafkaSource) {
  return makeStreamResolver({
    name,
    source,
    messageType: TransactionMsg,
    output: Transaction,
    outputFeatures: { id: 'id', user_id: 'user_id', amount: 'amount', ts: 'ts' },
  });
}

function openStore(dir: string): Tessera {
  const tessera = Tessera.open({ path: dir, features: [User, Transaction] });
  tessera.setClock(NOW);
  return tessera;
}

/** In-process source: messages/s from bytes to stored buckets. */
export async function memoryScenario(context: BenchContext): Promise<ScenarioResult> {
  const n = context.quick ? 200_000 : 2_000_000;
  const messages = transactionMessages(n);
  const bytes = messages.reduce((sum, m) => sum + m.length, 0) / n;
  const wall: number[] = [];
  // Per core: messages per CPU-second of the whole process (the JS thread and the native
  // commits on the libuv pool), so that other load on a shared machine does not count.
  const tessera = await repeat(context.repetitions, () =>
    withTempDir(async (dir) => {
      const store = openStore(dir);
      const source = new MemorySource({ trimCommitted: true });
      const runner = new StreamRunner(store, resolverFor('bench', source), {
        batchSize: BATCH,
        lagIntervalMs: 0,
      });
      const cpu = process.cpuUsage();
      const started = performance.now();
      const done = runner.run();
      // The producer pushes as the stream flows, a batch ahead of the runner.
      for (let i = 0; i < n; i += BATCH) {
        for (let j = i; j < Math.min(n, i + BATCH); j++) {
          source.push(messages[j] as Buffer, { timestampMs: NOW });
        }
        // Waits by sleeping, not spinning: the producer's CPU is not Tessera's.
        while (source.available() > BATCH) await new Promise((r) => setTimeout(r, 1));
      }
      source.end();
      const metrics = await done;
      const elapsed = performance.now() - started;
      const used = process.cpuUsage(cpu);
      store.close();
      if (metrics.accepted !== n) throw new Error(`accepted ${metrics.accepted} of ${n}`);
      wall.push(perSecond(n, elapsed));
      return perSecond(n, (used.user + used.system) / 1000);
    }),
  );
  // What decoding alone costs a TypeScript consumer: bytes -> string -> JSON.parse -> zod,
  // nothing stored.
  const decodeOnly = await repeat(context.repetitions, () => {
    const cpu = process.cpuUsage();
    let ok = 0;
    for (const m of messages) {
      if (TransactionMsg.safeParse(JSON.parse(m.toString('utf8'))).success) ok += 1;
    }
    if (ok !== n) throw new Error('decode failed');
    const used = process.cpuUsage(cpu);
    return perSecond(n, (used.user + used.system) / 1000);
  });
  return {
    name: 'stream.memory.json_100b',
    unit: 'messages/s',
    tessera,
    peers: { decode_only: decodeOnly },
    ratios: { of_decode_only: tessera / decodeOnly, of_bar_500k: tessera / 500_000 },
    notes: {
      measure: 'messages per CPU-second of the process (per core)',
      wall_messages_per_s: Math.round(median(wall)),
      messages: n,
      bytes_per_message: Math.round(bytes),
      users: USERS,
      batch: BATCH,
      aggregations: 'sum/mean/max/count, 1d+7d over 1h buckets',
      decode: 'native JSON fast path (a plain zod object schema)',
      bar_per_core: 500_000,
    },
  };
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'Cargo.toml'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the package root');
    dir = parent;
  }
  return dir;
}

async function loadBroker(): Promise<typeof BrokerModule> {
  const file = join(packageRoot(), 'scripts', 'kafka', 'broker.mjs');
  return (await import(pathToFileURL(file).href)) as typeof BrokerModule;
}

/** Produces `messages` to `topic` (round-robin over partitions), as fast as it can. */
async function produceAll(
  bootstrap: string,
  topic: string,
  messages: Buffer[],
  partitions: number,
) {
  const worker = producerWorker(bootstrap, topic, partitions, { messages, ratePerSecond: 0 });
  return await worker;
}

/**
 * A producer on its own thread: sends `messages` round-robin over the partitions, in
 * batches of 1,000, paced at `ratePerSecond` (0: as fast as it can); resolves to the
 * rate it achieved.
 */
function producerWorker(
  bootstrap: string,
  topic: string,
  partitions: number,
  work: { messages: Buffer[]; ratePerSecond: number },
): Promise<{ sent: number; seconds: number }> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      const { Producer } = await import(workerData.kafka);
      const { bootstrap, topic, partitions, messages, ratePerSecond } = workerData;
      const producer = new Producer({ clientId: 'bench-producer', bootstrapBrokers: [bootstrap], acks: 1 });
      const batch = 1000;
      const started = Date.now();
      let sent = 0;
      const inflight = new Set();
      for (let i = 0; i < messages.length; i += batch) {
        if (ratePerSecond > 0) {
          const due = started + (i / ratePerSecond) * 1000;
          const wait = due - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
        const slice = [];
        for (let j = i; j < Math.min(messages.length, i + batch); j++) {
          slice.push({ topic, partition: j % partitions, value: Buffer.from(messages[j]) });
        }
        const p = producer.send({ messages: slice }).then(() => { sent += slice.length; });
        inflight.add(p);
        p.finally(() => inflight.delete(p));
        if (inflight.size >= 8) await Promise.race(inflight);
      }
      await Promise.all(inflight);
      const seconds = (Date.now() - started) / 1000;
      await producer.close();
      parentPort.postMessage({ sent, seconds });
    })().catch((e) => { parentPort.postMessage({ error: String(e && e.stack || e) }); });
  `;
  const kafka = pathToFileURL(
    join(packageRoot(), 'node_modules', '@platformatic', 'kafka', 'dist', 'index.js'),
  ).href;
  const worker = new Worker(code, {
    eval: true,
    workerData: { kafka, bootstrap, topic, partitions, ...work },
  });
  return new Promise((resolve, reject) => {
    worker.once('message', (m: { sent: number; seconds: number; error?: string }) => {
      void worker.terminate();
      if (m.error) reject(new Error(m.error));
      else resolve(m);
    });
    worker.once('error', reject);
  });
}

async function createTopic(bootstrap: string, topic: string, partitions: number): Promise<void> {
  const { Admin } = await import('@platformatic/kafka');
  const admin = new Admin({ clientId: 'bench-admin', bootstrapBrokers: [bootstrap] });
  try {
    await admin.createTopics({ topics: [topic], partitions, replicas: 1 });
    for (let i = 0; i < 100; i++) {
      const md = await admin.metadata({ topics: [topic], forceUpdate: true });
      if (md.topics.get(topic)?.partitions.every((p) => p.leader >= 0)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await admin.close();
  }
}

/** Runs a runner until it consumed `n` messages; returns messages/s over that time. */
async function consumeN(runner: StreamRunner, n: number): Promise<number> {
  const started = performance.now();
  const done = runner.run();
  while (runner.metrics().messages < n) await new Promise((r) => setTimeout(r, 10));
  const elapsed = performance.now() - started;
  await runner.stop();
  await done;
  return perSecond(n, elapsed);
}

/** A bare consumer reading `n` messages of `topic` from the start: messages/s. */
async function bareConsumer(bootstrap: string, topic: string, n: number): Promise<number> {
  const consumer = new Consumer({
    clientId: 'bench-bare',
    groupId: `bare-${topic}-${Math.random()}`,
    bootstrapBrokers: [bootstrap],
    maxWaitTime: 100,
  });
  const started = performance.now();
  const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false });
  let count = 0;
  await new Promise<void>((resolve) => {
    stream.on('data', () => {
      count += 1;
      if (count === n) resolve();
    });
  });
  const elapsed = performance.now() - started;
  await stream.close();
  await consumer.close(true);
  return perSecond(n, elapsed);
}

function skipped(name: string, unit: string, reason: string): ScenarioResult {
  return {
    name,
    unit,
    tessera: Number.NaN,
    peers: {},
    ratios: {},
    notes: { skipped: reason },
  };
}

async function kafkaScenarios(context: BenchContext): Promise<ScenarioResult[]> {
  let brokers: typeof BrokerModule;
  let broker: BrokerModule.Broker;
  try {
    brokers = await loadBroker();
    broker = await brokers.startBroker({ heapMb: 512 });
  } catch (e) {
    const reason = `no Kafka broker: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
    return [
      skipped('stream.kafka.json_100b', 'messages/s', reason),
      skipped('stream.kafka.lag_at_100k_per_s', 'messages', reason),
    ];
  }
  try {
    const bootstrap = broker.bootstrap;
    const partitions = 3;
    const results: ScenarioResult[] = [];

    // Throughput: a topic filled up front, consumed from the start into the store.
    const n = context.quick ? 100_000 : 1_000_000;
    const messages = transactionMessages(n, 2);
    const topic = `bench-throughput-${Date.now()}`;
    await createTopic(bootstrap, topic, partitions);
    await produceAll(bootstrap, topic, messages, partitions);
    const tessera = await repeat(context.repetitions, () =>
      withTempDir((dir) => {
        const store = openStore(dir);
        const source = new KafkaSource({
          brokers: bootstrap,
          topic,
          groupId: `bench-${Math.random()}`,
          startFrom: 'earliest',
          bufferMessages: 2 * BATCH,
        });
        const runner = new StreamRunner(store, resolverFor('bench', source), { batchSize: BATCH });
        return consumeN(runner, n).finally(() => store.close());
      }),
    );
    const bare = await repeat(context.repetitions, () => bareConsumer(bootstrap, topic, n));
    results.push({
      name: 'stream.kafka.json_100b',
      unit: 'messages/s',
      tessera,
      peers: { bare_consumer: bare },
      ratios: { of_bare_consumer: tessera / bare },
      notes: {
        messages: n,
        partitions,
        batch: BATCH,
        broker: `kafka ${broker.version}, 127.0.0.1, 1 node`,
        measure: 'wall clock, consumer and store in this process',
      },
    });

    // Lag while a producer holds 100K messages/s.
    const seconds = context.quick ? 10 : 60;
    const rate = 100_000;
    const lagTopic = `bench-lag-${Date.now()}`;
    await createTopic(bootstrap, lagTopic, partitions);
    const lagMessages = transactionMessages(rate * seconds, 3);
    const lags: number[] = [];
    const produced = await withTempDir(async (dir) => {
      const store = openStore(dir);
      const source = new KafkaSource({
        brokers: bootstrap,
        topic: lagTopic,
        groupId: `bench-lag-${Math.random()}`,
        startFrom: 'earliest',
        bufferMessages: 2 * BATCH,
      });
      const runner = new StreamRunner(store, resolverFor('lag', source), {
        batchSize: BATCH,
        lagIntervalMs: 500,
      });
      const done = runner.run();
      const producing = producerWorker(bootstrap, lagTopic, partitions, {
        messages: lagMessages,
        ratePerSecond: rate,
      });
      let finished = false;
      const sampler = (async () => {
        while (!finished) {
          await new Promise((r) => setTimeout(r, 1000));
          lags.push(runner.metrics().totalLag);
        }
      })();
      const result = await producing;
      // Let the consumer catch up (bounded), then stop.
      const deadline = Date.now() + 60_000;
      while (runner.metrics().messages < lagMessages.length && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const caughtUpMs = Date.now() - (deadline - 60_000);
      finished = true;
      await sampler;
      await runner.stop();
      await done;
      store.close();
      return { ...result, caughtUpMs, consumed: runner.metrics().messages };
    });
    results.push({
      name: 'stream.kafka.lag_at_100k_per_s',
      unit: 'messages',
      tessera: quantile(lags, 0.99),
      peers: {},
      ratios: {},
      notes: {
        target_rate: rate,
        achieved_producer_rate: Math.round(produced.sent / produced.seconds),
        seconds,
        lag_p50: median(lags),
        lag_max: Math.max(0, ...lags),
        consumed: produced.consumed,
        catch_up_ms_after_producer: produced.caughtUpMs,
        note: 'tessera = p99 of the total lag sampled every second',
      },
    });
    return results;
  } finally {
    await brokers.stopBroker(broker);
  }
}

export async function streamScenarios(context: BenchContext): Promise<ScenarioResult[]> {
  return [await memoryScenario(context), ...(await kafkaScenarios(context))];
}
