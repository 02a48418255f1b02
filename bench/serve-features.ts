/**
 * The serve benchmark's feature module, loaded by a `tessera serve` child process:
 * users with 10 windowed features over daily buckets (the 1 key x 10 features query),
 * and a stream resolver over an in-process source that a feeder fills at
 * `BENCH_SERVE_STREAM_RATE` messages per second (0, the default: the stream idles).
 */
import { z } from 'zod';
import { datetime, features, float, hasMany, int, windowed } from '../ts/dsl/index.js';
import { makeStreamResolver } from '../ts/resolvers/stream-resolver.js';
import { MemorySource } from '../ts/sources/memory.js';
import type { PartitionPosition, Source } from '../ts/sources/source.js';

export const BenchTransaction = features('transaction', {
  id: int().primary(),
  user_id: int().references('user.id'),
  amount: float(),
  ts: datetime().featureTime(),
});

const daily = { bucketDuration: '1d' } as const;

export const BenchUser = features(
  'user',
  { id: int().primary(), transactions: hasMany(() => BenchTransaction) },
  (user) => {
    const amount = user.transactions.select((t) => t.amount);
    return {
      total: windowed('1d', '7d', '30d', { materialization: daily, expression: amount.sum() }),
      count: windowed('7d', '30d', {
        materialization: daily,
        expression: user.transactions.count(),
      }),
      mean: windowed('30d', { materialization: daily, expression: amount.mean() }),
      low: windowed('30d', { materialization: daily, expression: amount.min() }),
      high: windowed('30d', { materialization: daily, expression: amount.max() }),
      spread: windowed('30d', { materialization: daily, expression: amount.std() }),
      variance: windowed('30d', { materialization: daily, expression: amount.var() }),
    };
  },
);

/** The 10 feature windows of the benchmark's query, by name. */
export const BENCH_OUTPUTS: readonly string[] = [
  'user.total_1d',
  'user.total_7d',
  'user.total_30d',
  'user.count_7d',
  'user.count_30d',
  'user.mean_30d',
  'user.low_30d',
  'user.high_30d',
  'user.spread_30d',
  'user.variance_30d',
];

/** Users with history. */
export const BENCH_USERS = 10_000;

const BenchMessage = z.object({
  id: z.number(),
  user_id: z.number(),
  amount: z.number(),
  ts: z.string(),
});

/** Pushes pre-encoded messages into an in-process source at a fixed rate once started. */
class PacedSource implements Source {
  private readonly memory = new MemorySource({ description: 'memory:bench-feed' });
  private timer: NodeJS.Timeout | undefined;
  /** Messages pushed so far. */
  pushed = 0;

  constructor(private readonly ratePerSecond: number) {}

  get description(): string {
    return this.memory.description;
  }

  get ended(): boolean {
    return this.memory.ended;
  }

  async start(positions: readonly PartitionPosition[]): Promise<void> {
    await this.memory.start(positions);
    if (this.ratePerSecond <= 0 || this.timer !== undefined) return;
    // 64K distinct messages of the last day, cycled (the figures measure folding, not ids).
    const now = Date.now();
    const pool = Array.from({ length: 65_536 }, (_, i) =>
      Buffer.from(
        JSON.stringify({
          id: i,
          user_id: (i * 7919) % BENCH_USERS,
          amount: ((i * 31) % 10_000) / 100,
          ts: new Date(now - ((i * 104_729) % 86_400_000)).toISOString(),
        }),
      ),
    );
    const started = performance.now();
    this.timer = setInterval(() => {
      const due = Math.floor(((performance.now() - started) / 1000) * this.ratePerSecond);
      // Never more than a second ahead of the stream: what a real producer would queue.
      const room = Math.max(0, this.ratePerSecond - this.memory.available());
      const end = Math.min(due, this.pushed + room);
      for (; this.pushed < end; this.pushed++) {
        this.memory.push(pool[this.pushed % pool.length] as Buffer);
      }
    }, 5);
  }

  poll(max: number, waitMs: number) {
    return this.memory.poll(max, waitMs);
  }

  commit(positions: readonly PartitionPosition[]) {
    return this.memory.commit(positions);
  }

  lag() {
    return this.memory.lag();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.memory.close();
  }
}

/** The benchmark's stream. */
export const benchFeed = makeStreamResolver({
  name: 'bench_feed',
  source: new PacedSource(Number(process.env.BENCH_SERVE_STREAM_RATE ?? 0)),
  messageType: BenchMessage,
  output: BenchTransaction,
  outputFeatures: { id: 'id', user_id: 'user_id', amount: 'amount', ts: 'ts' },
});
