/**
 * The contract between a stream resolver's runtime and where its messages come from
 * (Kafka, an in-process queue, a JSON-lines file).
 *
 * A source is a set of partitions, each an ordered log of messages numbered by offset.
 * A position is the offset of the *next* message to read in a partition, the number
 * Kafka commits for a consumer group: after consuming offsets 0..=41 the position is 42.
 * The runtime stores positions in the Tessera store atomically with the buckets the
 * messages produced, and on restart hands them back to {@link Source.start}: stored
 * positions always win over the source's own start position.
 */

/** One message as the source delivered it: raw bytes, never decoded. */
export interface SourceMessage {
  readonly partition: number;
  readonly offset: number;
  /** The message key, or `null`. */
  readonly key: Buffer | null;
  /** The payload (empty for a Kafka tombstone). */
  readonly value: Buffer;
  /** The source's own time for the message (Kafka's record timestamp), Unix ms. */
  readonly timestampMs: number;
}

/** The next offset to read in one partition. */
export interface PartitionPosition {
  readonly partition: number;
  readonly offset: number;
}

/** How far the reader is behind the end of one partition, in messages. */
export interface PartitionLag {
  readonly partition: number;
  /** The end of the partition (Kafka's high watermark): the offset of the next message. */
  readonly endOffset: number;
  /** The next offset the reader will deliver. */
  readonly position: number;
  /** `endOffset - position` (never negative). */
  readonly lag: number;
}

/** Where a stream resolver's messages come from. */
export interface Source {
  /** What this source reads, for messages and metrics (`kafka:transactions`, `memory`). */
  readonly description: string;
  /**
   * Starts reading. Partitions listed in `positions` resume at those offsets; the others
   * start at the source's start position (e.g. Kafka's earliest or latest offset).
   */
  start(positions: readonly PartitionPosition[]): Promise<void>;
  /**
   * Up to `maxMessages` messages, in offset order within each partition. Waits at most
   * `maxWaitMs` for the first one; resolves to an empty list when none came, or when
   * the source has {@link ended}.
   */
  poll(maxMessages: number, maxWaitMs: number): Promise<SourceMessage[]>;
  /**
   * Tells the source that everything before `positions` is stored. Kafka commits them
   * to its consumer group, for lag monitoring only: Tessera never resumes from them.
   */
  commit(positions: readonly PartitionPosition[]): Promise<void>;
  /** How far the reader is behind, per partition (empty when the source cannot say). */
  lag(): Promise<PartitionLag[]>;
  /**
   * True once a finite source (a file, a memory source after `end()`) has delivered its
   * last message: a runner then stops on its own.
   */
  readonly ended: boolean;
  /** Stops reading and releases connections. */
  close(): Promise<void>;
}

/** Where each partition should resume: `positions`, as a map. */
export function positionMap(positions: readonly PartitionPosition[]): Map<number, number> {
  const map = new Map<number, number>();
  for (const { partition, offset } of positions) map.set(partition, offset);
  return map;
}
