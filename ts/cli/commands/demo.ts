/**
 * `tessera demo`: the main job, end to end. Generates a time-ordered transaction
 * workload as JSON messages (with a few bad messages and redeliveries among them),
 * streams it through a stream resolver (the in-process source, or a real Kafka topic
 * with `--kafka`) into the materialized aggregations of a fresh store (`.tessera/demo`
 * by default), and prints a few users' windowed features, live on a terminal while the
 * events flow. It ends on its own (or on Ctrl-C), leaving the store and its dead letters
 * (`tessera deadletters`).
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { datetime, features, float, hasMany, int, string, windowed } from '../../dsl/index.js';
import { importOptionalPeer } from '../../optional-peer.js';
import { formatBytes } from '../../planner/storage.js';
import { type StreamMetrics, StreamRunner } from '../../resolvers/runner.js';
import { makeStreamResolver } from '../../resolvers/stream-resolver.js';
import { KafkaSource } from '../../sources/kafka.js';
import { MemorySource } from '../../sources/memory.js';
import type { Source } from '../../sources/source.js';
import { Tessera } from '../../tessera.js';
import { type CliIO, type Command, UsageError } from '../command.js';
import { seededRandom } from '../seeded-random.js';

/** The demo's transactions. */
export const DemoTransaction = features('transaction', {
  id: int().primary(),
  user_id: int().references('user.id'),
  amount: float(),
  category: string(),
  ts: datetime().featureTime(),
});

/** The demo's users: spend over 1h / 1d / 7d, transactions in the last day, mean spend. */
export const DemoUser = features(
  'user',
  { id: int().primary(), transactions: hasMany(() => DemoTransaction) },
  (user) => ({
    total: windowed('1h', '1d', '7d', {
      materialization: { bucketDurations: { '5m': ['1h'], '1h': ['1d', '7d'] } },
      expression: user.transactions
        .where((t) => [t.ts.gt(t.chalk_window), t.ts.lte(t.chalk_now)])
        .select((t) => t.amount)
        .sum(),
      default: 0,
    }),
    count: windowed('1d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.count(),
    }),
    mean: windowed('7d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).mean(),
    }),
  }),
);

/** The demo's message schema: what a payment service would put on a topic. */
export const DemoTransactionMsg = z.object({
  id: z.number().int(),
  user_id: z.number().int(),
  amount: z.number(),
  category: z.string(),
  ts: z.string(),
});

/** The demo store's default location, relative to the working directory. */
export const DEMO_PATH = '.tessera/demo';
/** The demo's stream resolver: its positions and dead letters are stored under this name. */
export const DEMO_RESOLVER = 'demo_transactions';

const DAY = 86_400_000;
const CATEGORIES = ['groceries', 'fuel', 'travel', 'dining', 'online', 'utilities'];
/** How often the live table is redrawn. */
const REFRESH_MS = 250;

/** A whole number option >= `min`. */
function count(value: unknown, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} must be a whole number >= ${min}, got '${String(value)}'`);
  }
  return n;
}

/** Removes a previous demo store, refusing to touch a directory that is not one. */
function wipe(path: string): void {
  if (!existsSync(path)) return;
  const entries = readdirSync(path);
  const isStore = entries.includes('CURRENT');
  if (entries.length > 0 && !isStore) {
    throw new UsageError(`refusing to wipe ${path}: it is not empty and not a Tessera store`);
  }
  rmSync(path, { recursive: true, force: true });
}

function fmt(value: unknown, digits: number): string {
  if (value === null || value === undefined) return '-';
  if (typeof value !== 'number') return String(value);
  return value.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

const int0 = (n: number) => Math.round(n).toLocaleString('en-US');

/**
 * The workload as messages, in time order: `transactions` good ones (about 8 per user and
 * day, some users far busier than others), plus about 0.2% bad messages of every kind
 * and 0.5% redeliveries of a recent message (skipped by dedupe on `id`).
 */
export function demoMessages(
  users: number,
  days: number,
  seed: number,
  endMs: number,
): { messages: Buffer[]; transactions: number; bad: number; redelivered: number } {
  const random = seededRandom(seed);
  const weights = Float64Array.from({ length: users }, () => 0.2 + random() * random() * 4);
  const cumulative = new Float64Array(users);
  let sum = 0;
  for (let i = 0; i < users; i++) {
    sum += weights[i] ?? 0;
    cumulative[i] = sum;
  }
  const transactions = Math.round(users * days * 8);
  const start = endMs - days * DAY;
  const step = (endMs - start) / transactions;
  const messages: Buffer[] = [];
  let bad = 0;
  let redelivered = 0;
  for (let i = 0; i < transactions; i++) {
    const target = random() * sum;
    let lo = 0;
    let hi = users - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cumulative[mid] ?? 0) < target) lo = mid + 1;
      else hi = mid;
    }
    const ts = new Date(Math.floor(start + (i + random()) * step)).toISOString();
    const message = {
      id: i + 1,
      user_id: lo + 1,
      amount: Math.round(Math.exp(1.5 + random() * 3.5) * 100) / 100,
      category: CATEGORIES[Math.floor(random() * CATEGORIES.length)] ?? 'online',
      ts,
    };
    const bytes = Buffer.from(JSON.stringify(message));
    messages.push(bytes);
    const roll = random();
    if (roll < 0.005) {
      messages.push(bytes); // a redelivery
      redelivered += 1;
    } else if (roll < 0.007) {
      bad += 1;
      const kind = bad % 4;
      if (kind === 0) messages.push(Buffer.from(`{"id": ${i + 1}, "user_id": ${lo + 1}, "amou`));
      else if (kind === 1) {
        messages.push(Buffer.from(JSON.stringify({ ...message, id: -i, amount: 'twelve' })));
      } else if (kind === 2) {
        messages.push(Buffer.from(JSON.stringify({ ...message, id: -i, ts: ts.slice(0, 19) })));
      } else {
        const { user_id: _, ...keyless } = message;
        messages.push(Buffer.from(JSON.stringify({ ...keyless, id: -i })));
      }
    }
  }
  return { messages, transactions, bad, redelivered };
}

/** Writes the table (and a status line) in place on a terminal. */
class LiveView {
  private lines = 0;

  constructor(
    private readonly io: CliIO,
    private readonly live: boolean,
  ) {}

  show(lines: readonly string[]): void {
    if (!this.live) return;
    // Back to the first line of the previous frame, and clear from there.
    const rewind = this.lines > 0 ? `\x1b[${this.lines}F\x1b[J` : '';
    this.io.out(`${rewind}${lines.join('\n')}`);
    this.lines = lines.length;
  }

  /** Clears the last frame (before the final output). */
  clear(): void {
    if (this.live && this.lines > 0) this.io.out(`\x1b[${this.lines}F\x1b[J\x1b[1F`);
    this.lines = 0;
  }
}

function kafkaClient() {
  return importOptionalPeer(
    '@platformatic/kafka',
    'The demo with --kafka',
    () => import('@platformatic/kafka'),
  );
}

async function createTopic(brokers: string[], topic: string, partitions: number): Promise<void> {
  const { Admin } = await kafkaClient();
  const admin = new Admin({ clientId: 'tessera-demo', bootstrapBrokers: brokers });
  try {
    await admin.createTopics({ topics: [topic], partitions, replicas: 1 });
    for (let attempt = 0; attempt < 100; attempt++) {
      const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
      if (metadata.topics.get(topic)?.partitions.every((p) => p.leader >= 0)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await admin.close();
  }
}

/** Produces `messages` at `rate` per second, keyed by user so a user stays on a partition. */
interface Producing {
  done: Promise<void>;
  stop(): void;
  produced(): number;
}

function paced(
  messages: readonly Buffer[],
  rate: number,
  send: (chunk: readonly Buffer[]) => Promise<void>,
): Producing {
  let stopped = false;
  let produced = 0;
  const chunk = Math.max(1, Math.round(rate / 50));
  const done = (async () => {
    const started = Date.now();
    for (let i = 0; i < messages.length && !stopped; i += chunk) {
      const due = started + (i / rate) * 1000;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const slice = messages.slice(i, i + chunk);
      await send(slice);
      produced += slice.length;
    }
  })();
  return {
    done,
    stop: () => {
      stopped = true;
    },
    produced: () => produced,
  };
}

function userKey(message: Buffer): string | null {
  const m = /"user_id":(\d+)/.exec(message.toString('utf8', 0, 80));
  return m?.[1] ?? null;
}

/**
 * `tessera demo [--path .tessera/demo] [--users 3000] [--days 5] [--seed 1]
 * [--rate 25000] [--kafka <brokers>] [--plain]`.
 *
 * @example
 * await main(['demo', '--path', '/tmp/demo', '--users', '500']);
 */
export const demo: Command = {
  path: ['demo'],
  summary: 'Generate a transaction workload, stream it into a fresh store, print some users live',
  options: {
    path: {
      type: 'string',
      valueName: '<dir>',
      description: 'store directory, wiped first (default .tessera/demo)',
    },
    users: { type: 'string', valueName: '<n>', description: 'number of users (default 3000)' },
    days: { type: 'string', valueName: '<n>', description: 'days of history (default 5)' },
    seed: { type: 'string', valueName: '<n>', description: 'random seed (default 1)' },
    rate: {
      type: 'string',
      valueName: '<n>',
      description: 'messages per second the producer holds (default 25000)',
    },
    kafka: {
      type: 'string',
      valueName: '<brokers>',
      description: 'stream through a new topic on these Kafka brokers (host:port,...)',
    },
    plain: {
      type: 'boolean',
      description: 'no live table, only the final one (default when not on a terminal)',
    },
  },
  async run({ options, io }) {
    const users = count(options.users, 'users', 3_000, 5);
    const days = count(options.days, 'days', 5, 1);
    const seed = count(options.seed, 'seed', 1, 0);
    const rate = count(options.rate, 'rate', 25_000, 1);
    const kafka = typeof options.kafka === 'string' ? options.kafka : undefined;
    const path = resolve(io.cwd, typeof options.path === 'string' ? options.path : DEMO_PATH);
    const live =
      options.plain !== true && process.stdout.isTTY === true && process.env.VITEST === undefined;
    wipe(path);

    const end = Date.now();
    const workload = demoMessages(users, days, seed, end);
    const { messages, transactions } = workload;

    let source: Source;
    let producing: Producing;
    let topic: string | undefined;
    if (kafka === undefined) {
      const memory = new MemorySource();
      source = memory;
      producing = paced(messages, rate, async (chunk) => {
        for (const m of chunk) memory.push(m);
      });
      void producing.done.finally(() => memory.end());
    } else {
      const brokers = kafka.split(',').map((b) => b.trim());
      topic = `tessera-demo-${Date.now()}`;
      await createTopic(brokers, topic, 3);
      const { Producer } = await kafkaClient();
      const producer = new Producer({ clientId: 'tessera-demo', bootstrapBrokers: brokers });
      const t = topic;
      producing = paced(messages, rate, async (chunk) => {
        await producer.send({
          messages: chunk.map((value) => {
            const key = userKey(value);
            return key === null ? { topic: t, value } : { topic: t, key: Buffer.from(key), value };
          }),
        });
      });
      void producing.done.finally(() => producer.close());
      source = new KafkaSource({ brokers, topic, groupId: `tessera-demo-${topic}` });
    }

    const tessera = Tessera.open({ path, features: [DemoUser, DemoTransaction] });
    const resolver = makeStreamResolver({
      name: DEMO_RESOLVER,
      source,
      messageType: DemoTransactionMsg,
      output: DemoTransaction,
      outputFeatures: {
        id: 'id',
        user_id: 'user_id',
        amount: 'amount',
        category: 'category',
        ts: 'ts',
      },
      dedupe: { field: 'id', within: '1h' },
    });
    const runner = new StreamRunner(tessera, resolver, { maxWaitMs: 50, lagIntervalMs: 500 });
    let interrupted = false;
    let producerError: unknown;
    producing.done.catch((error: unknown) => {
      producerError = error;
      void runner.stop();
    });
    const onSignal = () => {
      interrupted = true;
      producing.stop();
      void runner.stop();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);

    const shown = [1, 2, 3, 4, 5];
    const header = ['user', 'total 1h', 'total 1d', 'total 7d', 'count 1d', 'mean 7d'];
    const renderTable = (): { lines: string[]; queryMs: number } => {
      const started = performance.now();
      const result = tessera.query({
        input: { 'user.id': shown },
        output: [
          DemoUser.total['1h'],
          DemoUser.total['1d'],
          DemoUser.total['7d'],
          DemoUser.count['1d'],
          DemoUser.mean['7d'],
        ],
      });
      const queryMs = performance.now() - started;
      const table = result.rows.map((row, i) => [
        String(shown[i]),
        fmt(row.values[0], 2),
        fmt(row.values[1], 2),
        fmt(row.values[2], 2),
        fmt(row.values[3], 0),
        fmt(row.values[4], 2),
      ]);
      const widths = header.map((h, c) =>
        Math.max(h.length, ...table.map((r) => (r[c] ?? '').length)),
      );
      const line = (cells: readonly string[]) =>
        cells.map((cell, c) => cell.padStart(widths[c] ?? 0)).join('  ');
      return { lines: [line(header), ...table.map(line)], queryMs };
    };
    const status = (m: StreamMetrics): string =>
      `${int0(m.messages)} messages (${int0(m.messagesPerSecond)}/s), lag ${int0(m.totalLag)}, ` +
      `${int0(m.deadLetters)} dead letters, ${int0(m.duplicatesSkipped)} duplicates skipped`;

    io.out(
      `Tessera demo: ${users.toLocaleString('en-US')} users, ${days} days, ${transactions.toLocaleString('en-US')} transactions`,
    );
    io.out(
      `Streaming ${messages.length.toLocaleString('en-US')} JSON messages at ${rate.toLocaleString('en-US')}/s through ${kafka === undefined ? 'the in-process source' : `Kafka topic ${topic} on ${kafka}`} into ${path}`,
    );
    for (const s of tessera.openReport.newSeries) io.out(`  series ${s.id}: ${s.description}`);
    io.out('');

    const view = new LiveView(io, live);
    const started = performance.now();
    const done = runner.run();
    let finished = false;
    void done.finally(() => {
      finished = true;
    });
    try {
      // Kafka never ends: stop once everything produced has been consumed.
      while (!finished) {
        await Promise.race([done, new Promise((r) => setTimeout(r, REFRESH_MS))]);
        if (finished) break;
        const m = runner.metrics();
        view.show([...renderTable().lines, '', status(m)]);
        if (kafka !== undefined && m.messages >= messages.length) await runner.stop();
      }
      const metrics = await done;
      producing.stop();
      if (producerError !== undefined) {
        throw new Error(
          `the demo producer failed: ${producerError instanceof Error ? producerError.message : String(producerError)}`,
        );
      }
      const seconds = (performance.now() - started) / 1000;
      view.clear();

      const { lines, queryMs } = renderTable();
      for (const line of lines) io.out(line);
      io.out('');
      io.out(
        `${interrupted ? 'Interrupted after' : 'Streamed'} ${int0(metrics.messages)} messages in ${seconds.toFixed(2)} s (${int0(metrics.messages / seconds)}/s, ${metrics.batches} atomic batches): ${int0(metrics.rows)} rows folded, ${int0(metrics.duplicatesSkipped)} duplicates skipped, ${int0(metrics.deadLetters)} dead letters (tessera deadletters --path ${path})`,
      );
      tessera.engine.flush();
      const stats = tessera.stats();
      io.out(
        `Storage estimate: ${formatBytes(tessera.plan.bytesPerKey)} per user key at most (${tessera.plan.series.length} series, every bucket filled); on disk now: ${formatBytes(stats.diskBytes)} for ${users.toLocaleString('en-US')} users`,
      );
      io.out(
        `Query: ${shown.length} users x ${header.length - 1} feature windows in one native call, ${queryMs.toFixed(2)} ms`,
      );
    } finally {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      producing.stop();
      await runner.stop();
      tessera.close();
    }
    return 0;
  },
};
