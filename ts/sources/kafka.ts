/**
 * {@link KafkaSource}: a Kafka topic read with `@platformatic/kafka` (pure JavaScript).
 *
 * Positions stored in the Tessera store win: partitions with a stored position resume
 * there (the consumer stream runs in `manual` mode), the others start at `startFrom`.
 * Offsets are committed to the consumer group after each store write, but only so that
 * the usual tools can show the group's lag: Tessera never resumes from them.
 */
import type { Consumer, Message, MessagesStream } from '@platformatic/kafka';
import { importOptionalPeer } from '../optional-peer.js';
import type { PartitionLag, PartitionPosition, Source, SourceMessage } from './source.js';

/** Options of {@link KafkaSource}. */
export interface KafkaSourceOptions {
  /** Bootstrap brokers, `host:port` (a list, or a comma-separated string). */
  brokers: readonly string[] | string;
  topic: string;
  /** Consumer group, for partition assignment and lag monitoring (default `tessera-<topic>`). */
  groupId?: string;
  /** Default `tessera`. */
  clientId?: string;
  /**
   * Static group membership (KIP-345): a restarted consumer with the same id takes its
   * partitions back without waiting for the old session to expire.
   */
  groupInstanceId?: string;
  /** Where partitions without a stored position start (default `earliest`). */
  startFrom?: 'earliest' | 'latest';
  /** Messages buffered ahead of the runner before fetching pauses (default 20,000). */
  bufferMessages?: number;
  /** Consumer group session timeout (default 10 s). */
  sessionTimeoutMs?: number;
  /** Heartbeat interval (default 1 s). */
  heartbeatIntervalMs?: number;
  /** Longest a fetch waits for data on the broker (default 100 ms). */
  maxWaitMs?: number;
  /** Per fetch (default 10 MiB). */
  maxBytes?: number;
}

/**
 * A Kafka topic as a stream resolver's source.
 *
 * @example
 * const source = new KafkaSource({ brokers: '127.0.0.1:9092', topic: 'transactions' });
 */
export class KafkaSource implements Source {
  readonly description: string;
  readonly topic: string;
  private readonly options: KafkaSourceOptions;
  private consumer: Consumer | undefined;
  private stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  private buffer: SourceMessage[] = [];
  private head = 0;
  private paused = false;
  private failure: Error | undefined;
  private waiter: (() => void) | undefined;
  /** Next offset to deliver, per partition (what `lag` compares with the end). */
  private readonly delivered = new Map<number, number>();
  private closed = false;

  constructor(options: KafkaSourceOptions) {
    this.options = options;
    this.topic = options.topic;
    this.description = `kafka:${options.topic}`;
  }

  get brokers(): string[] {
    const b = this.options.brokers;
    return (typeof b === 'string' ? b.split(',') : [...b]).map((s) => s.trim()).filter(Boolean);
  }

  /** Kafka never ends. */
  get ended(): boolean {
    return false;
  }

  async start(positions: readonly PartitionPosition[]): Promise<void> {
    const o = this.options;
    const groupOptions =
      o.groupInstanceId === undefined ? {} : { groupInstanceId: o.groupInstanceId };
    // Loaded on first use: importing Tessera does not load a Kafka client.
    const { Consumer } = await importOptionalPeer(
      '@platformatic/kafka',
      'KafkaSource',
      () => import('@platformatic/kafka'),
    );
    const consumer = new Consumer({
      clientId: o.clientId ?? 'tessera',
      bootstrapBrokers: this.brokers,
      groupId: o.groupId ?? `tessera-${o.topic}`,
      ...groupOptions,
      sessionTimeout: o.sessionTimeoutMs ?? 10_000,
      heartbeatInterval: o.heartbeatIntervalMs ?? 1_000,
      rebalanceTimeout: Math.max(o.sessionTimeoutMs ?? 10_000, 10_000),
      autocommit: false,
      maxWaitTime: o.maxWaitMs ?? 100,
      maxBytes: o.maxBytes ?? 10 << 20,
      retries: 10,
      retryDelay: 200,
    });
    this.consumer = consumer;
    const startFrom = o.startFrom ?? 'earliest';
    const offsets = positions.map((p) => ({
      topic: o.topic,
      partition: p.partition,
      offset: BigInt(p.offset),
    }));
    for (const p of positions) this.delivered.set(p.partition, p.offset);
    const stream = await consumer.consume(
      offsets.length > 0
        ? { topics: [o.topic], mode: 'manual', offsets, fallbackMode: startFrom, autocommit: false }
        : { topics: [o.topic], mode: startFrom, autocommit: false },
    );
    this.stream = stream;
    const limit = o.bufferMessages ?? 20_000;
    stream.on('data', (m: Message<Buffer, Buffer, Buffer, Buffer>) => {
      this.buffer.push({
        partition: m.partition,
        offset: Number(m.offset),
        key: m.key ?? null,
        value: m.value ?? Buffer.alloc(0),
        timestampMs: Number(m.timestamp),
      });
      if (!this.paused && this.buffer.length - this.head >= limit) {
        this.paused = true;
        stream.pause();
      }
      this.wake();
    });
    stream.on('error', (error: Error) => {
      this.failure = error;
      this.wake();
    });
  }

  async poll(maxMessages: number, maxWaitMs: number): Promise<SourceMessage[]> {
    if (this.buffer.length - this.head === 0 && !this.closed && maxWaitMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, maxWaitMs);
        const self = this;
        function done(): void {
          clearTimeout(timer);
          if (self.waiter === done) self.waiter = undefined;
          resolve();
        }
        this.waiter = done;
      });
    }
    if (this.failure) throw this.failure;
    const end = Math.min(this.buffer.length, this.head + maxMessages);
    const out = this.buffer.slice(this.head, end);
    this.head = end;
    if (this.head > 4096 && this.head * 2 > this.buffer.length) {
      this.buffer = this.buffer.slice(this.head);
      this.head = 0;
    }
    for (const m of out) this.delivered.set(m.partition, m.offset + 1);
    if (
      this.paused &&
      this.buffer.length - this.head < (this.options.bufferMessages ?? 20_000) / 2
    ) {
      this.paused = false;
      this.stream?.resume();
    }
    return out;
  }

  async commit(positions: readonly PartitionPosition[]): Promise<void> {
    const consumer = this.consumer;
    if (consumer === undefined || positions.length === 0 || this.closed) return;
    try {
      await consumer.commit({
        offsets: positions.map((p) => ({
          topic: this.topic,
          partition: p.partition,
          offset: BigInt(p.offset),
          leaderEpoch: -1,
        })),
      });
    } catch {
      // Lag monitoring only: a failed commit (e.g. during a rebalance) loses nothing.
    }
  }

  async lag(): Promise<PartitionLag[]> {
    const consumer = this.consumer;
    if (consumer === undefined || this.closed) return [];
    const ends = await consumer.listOffsets({ topics: [this.topic] });
    const list = ends.get(this.topic) ?? [];
    return list.map((end, partition) => {
      const endOffset = Number(end);
      // Before the first message of a partition, where the stream will start fetching.
      const fetching = this.stream?.offsetsToFetch.get(`${this.topic}:${partition}`);
      const position =
        this.delivered.get(partition) ?? (fetching === undefined ? 0 : Number(fetching));
      return { partition, endOffset, position, lag: Math.max(0, endOffset - position) };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wake();
    try {
      await this.stream?.close();
    } finally {
      await this.consumer?.close(true);
    }
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}
