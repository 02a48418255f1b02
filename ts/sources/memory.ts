/**
 * {@link MemorySource}: an in-process message log, the embedded default. Producers
 * `push` messages (bytes, strings or JSON values); a stream runner in the same process
 * consumes them exactly like a Kafka topic: partitions, offsets, positions.
 */
import type { PartitionLag, PartitionPosition, Source, SourceMessage } from './source.js';

/** Options of {@link MemorySource}. */
export interface MemorySourceOptions {
  /** Number of partitions (default 1). Keyed messages go to `hash(key) % partitions`. */
  partitions?: number;
  /** Shown in metrics and errors (default `memory`). */
  description?: string;
  /**
   * Forget messages before the committed positions (default true), so that a long run
   * does not keep every message it ever consumed.
   */
  trimCommitted?: boolean;
}

/** Where to put one pushed message. */
export interface PushOptions {
  key?: string | Buffer | null;
  /** Explicit partition (default: from the key, else 0). */
  partition?: number;
  /** The message's source time (default now). */
  timestampMs?: number;
}

interface PartitionLog {
  /** Offset of `messages[0]`. */
  base: number;
  messages: SourceMessage[];
  /** Next offset to deliver. */
  cursor: number;
}

/**
 * An in-process partitioned log.
 *
 * @example
 * const source = new MemorySource();
 * source.push({ id: 't1', user_id: 'u1', amount: 12.5, ts: '2026-01-01T10:00:00Z' });
 * source.end(); // a runner stops once it has consumed everything
 */
export class MemorySource implements Source {
  readonly description: string;
  private readonly logs: PartitionLog[];
  private readonly trimCommitted: boolean;
  private waiters: (() => void)[] = [];
  private finished = false;
  private closed = false;
  private next = 0;

  constructor(options: MemorySourceOptions = {}) {
    const partitions = options.partitions ?? 1;
    if (!Number.isInteger(partitions) || partitions < 1) {
      throw new RangeError(`partitions must be a whole number >= 1, got ${partitions}`);
    }
    this.description = options.description ?? 'memory';
    this.trimCommitted = options.trimCommitted ?? true;
    this.logs = Array.from({ length: partitions }, () => ({ base: 0, messages: [], cursor: 0 }));
  }

  /** Number of partitions. */
  get partitions(): number {
    return this.logs.length;
  }

  /**
   * Appends one message and returns where it landed. Objects are JSON-encoded; strings
   * are UTF-8; buffers are taken as they are (so bad bytes can be pushed too).
   */
  push(value: unknown, options: PushOptions = {}): PartitionPosition {
    if (this.finished) throw new Error(`${this.description}: push after end()`);
    const bytes = toBytes(value);
    const key =
      options.key === undefined || options.key === null
        ? null
        : Buffer.isBuffer(options.key)
          ? options.key
          : Buffer.from(options.key);
    const partition = options.partition ?? (key === null ? 0 : hashBytes(key) % this.logs.length);
    const log = this.logs[partition];
    if (log === undefined) {
      throw new RangeError(`${this.description} has no partition ${partition}`);
    }
    const offset = log.base + log.messages.length;
    log.messages.push({
      partition,
      offset,
      key,
      value: bytes,
      timestampMs: options.timestampMs ?? Date.now(),
    });
    this.wake();
    return { partition, offset };
  }

  /** Appends many messages (same options for each). */
  pushAll(values: Iterable<unknown>, options: PushOptions = {}): void {
    for (const value of values) this.push(value, options);
  }

  /** No more messages will come: a runner stops once it has consumed the rest. */
  end(): void {
    this.finished = true;
    this.wake();
  }

  get ended(): boolean {
    return (this.finished || this.closed) && this.available() === 0;
  }

  /** Messages pushed and not yet delivered. */
  available(): number {
    let n = 0;
    for (const log of this.logs) n += log.base + log.messages.length - log.cursor;
    return n;
  }

  async start(positions: readonly PartitionPosition[]): Promise<void> {
    this.closed = false;
    for (const log of this.logs) log.cursor = log.base;
    for (const { partition, offset } of positions) {
      const log = this.logs[partition];
      if (log === undefined) {
        throw new RangeError(`${this.description} has no partition ${partition} (stored position)`);
      }
      log.cursor = Math.max(log.base, offset);
    }
  }

  async poll(maxMessages: number, maxWaitMs: number): Promise<SourceMessage[]> {
    if (this.available() === 0 && !this.finished && !this.closed && maxWaitMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, maxWaitMs);
        const waiter = (): void => done();
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.push(waiter);
      });
    }
    return this.take(maxMessages);
  }

  /** Up to `maxMessages` messages, round-robin over partitions in slices. */
  private take(maxMessages: number): SourceMessage[] {
    const out: SourceMessage[] = [];
    const n = this.logs.length;
    for (let i = 0; i < n && out.length < maxMessages; i++) {
      const log = this.logs[(this.next + i) % n];
      if (log === undefined) continue;
      const from = log.cursor - log.base;
      const to = Math.min(log.messages.length, from + (maxMessages - out.length));
      for (let j = from; j < to; j++) {
        const m = log.messages[j];
        if (m !== undefined) out.push(m);
      }
      log.cursor = log.base + to;
    }
    this.next = (this.next + 1) % n;
    return out;
  }

  async commit(positions: readonly PartitionPosition[]): Promise<void> {
    if (!this.trimCommitted) return;
    for (const { partition, offset } of positions) {
      const log = this.logs[partition];
      if (log === undefined) continue;
      const drop = Math.min(offset, log.cursor) - log.base;
      // Trim in large steps: splicing the front of an array is linear.
      if (drop > 0 && drop >= log.messages.length / 2) {
        log.messages.splice(0, drop);
        log.base += drop;
      }
    }
  }

  async lag(): Promise<PartitionLag[]> {
    return this.logs.map((log, partition) => {
      const endOffset = log.base + log.messages.length;
      return { partition, endOffset, position: log.cursor, lag: endOffset - log.cursor };
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

function toBytes(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (typeof value === 'string') return Buffer.from(value);
  return Buffer.from(JSON.stringify(value));
}

/** FNV-1a over the key bytes: a stable partitioner. */
export function hashBytes(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i] ?? 0;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
