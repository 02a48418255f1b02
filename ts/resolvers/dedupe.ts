/**
 * The memory behind a stream resolver's `dedupe: { field, within }`, kept exactly once
 * across restarts without a store of its own.
 *
 * A message is a duplicate when an earlier accepted message had the same field value and
 * a source time (Kafka's record timestamp) within `within` of its own. Values are
 * remembered while their source time is within `within` of the newest source time seen
 * (the watermark); older ones are forgotten. Source times, unlike processing times, are
 * the same when a message is read again, which keeps the decisions the same too. What
 * needs storing is small, and it goes into the same atomic commit as the buckets, as the
 * resolver's state record: the watermark, and per partition the *horizon*, the offset of
 * the oldest message whose value may still be remembered. After a restart the runner
 * reads the source again from the horizon up to the stored positions (messages already
 * folded), only to remember their values, and then resumes.
 */
import type { PartitionPosition } from '../sources/source.js';

interface Entry {
  readonly key: string;
  readonly t: number;
  readonly offset: number;
}

/** What a restart needs to rebuild the memory: stored in the resolver's state record. */
export interface DedupeState {
  /** The newest source time registered (Unix ms), `null` before any. */
  readonly watermarkMs: number | null;
  /** Per partition, where to read again from. */
  readonly replayFrom: readonly PartitionPosition[];
}

/** Remembered values of the dedupe field. */
export class DedupeMemory {
  private readonly seen = new Map<string, number>();
  private readonly queues = new Map<number, { entries: Entry[]; head: number }>();
  /** The newest source time registered. */
  watermark = Number.NEGATIVE_INFINITY;

  constructor(readonly withinMs: number) {}

  /** Number of values remembered. */
  get size(): number {
    return this.seen.size;
  }

  /** Whether `key` at event time `t` repeats a remembered message. */
  isDuplicate(key: string, t: number): boolean {
    const s = this.seen.get(key);
    return (
      s !== undefined && s >= this.watermark - this.withinMs && Math.abs(t - s) <= this.withinMs
    );
  }

  /** Remembers an accepted message. */
  register(key: string, t: number, partition: number, offset: number): void {
    this.seen.set(key, t);
    let queue = this.queues.get(partition);
    if (queue === undefined) {
      queue = { entries: [], head: 0 };
      this.queues.set(partition, queue);
    }
    queue.entries.push({ key, t, offset });
    if (t > this.watermark) this.watermark = t;
  }

  /** Forgets values older than the watermark minus `within` (front of each partition). */
  evict(): void {
    const horizon = this.watermark - this.withinMs;
    for (const queue of this.queues.values()) {
      const { entries } = queue;
      while (queue.head < entries.length) {
        const front = entries[queue.head];
        if (front === undefined || front.t >= horizon) break;
        if (this.seen.get(front.key) === front.t) this.seen.delete(front.key);
        queue.head += 1;
      }
      if (queue.head > 1024 && queue.head * 2 > entries.length) {
        queue.entries = entries.slice(queue.head);
        queue.head = 0;
      }
    }
  }

  /**
   * What a restart needs: per partition the oldest remembered offset (else the
   * partition's next offset), where reading again must start, and the watermark.
   */
  state(next: ReadonlyMap<number, number>): DedupeState {
    const replayFrom: PartitionPosition[] = [];
    const partitions = new Set<number>([...next.keys(), ...this.queues.keys()]);
    for (const partition of partitions) {
      const queue = this.queues.get(partition);
      const front = queue?.entries[queue.head];
      const offset = front?.offset ?? next.get(partition);
      if (offset !== undefined) replayFrom.push({ partition, offset });
    }
    return {
      watermarkMs: Number.isFinite(this.watermark) ? Math.floor(this.watermark) : null,
      replayFrom,
    };
  }

  /** Restores the stored watermark before a replay. */
  restore(state: DedupeState): void {
    if (state.watermarkMs !== null) this.watermark = state.watermarkMs;
  }
}

/** The dedupe key of a field value (`undefined` / `null`: no dedupe). */
export function dedupeKey(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return `s${value}`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return `n${String(value)}`;
  }
  return `j${JSON.stringify(value)}`;
}
