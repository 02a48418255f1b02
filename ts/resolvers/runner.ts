/**
 * {@link StreamRunner}: runs one stream resolver against an open Tessera, exactly once.
 *
 * Each poll of the source is one batch: the messages are decoded, validated and mapped
 * to rows; late events are dropped and counted; duplicates are skipped and counted; bad
 * messages become dead letters. Then ONE atomic write stores the batch's bucket updates,
 * its source positions (partition -> next offset) and its dead letters. On restart the
 * runner resumes from the stored positions, so after any crash every message is folded
 * exactly once. Source offsets are committed back to the source (Kafka) after the write,
 * for lag monitoring only. Decoding the next batch overlaps the write of the previous one.
 */
import { ClassIngest } from '../api/ingest.js';
import type {
  CommitOptions,
  DeadLetterRecord,
  ResolverStateRecord,
  SourcePositionInput,
} from '../native.js';
import type { PartitionLag, PartitionPosition, SourceMessage } from '../sources/source.js';
import type { Tessera } from '../tessera.js';
import { BoundResolver, type ColumnBatch } from './decode.js';
import { DedupeMemory, type DedupeState, dedupeKey } from './dedupe.js';
import type { StreamResolver } from './stream-resolver.js';

/** Options of {@link StreamRunner}. */
export interface StreamRunnerOptions {
  /** Most messages per batch (one atomic write each); default 16,384. */
  batchSize?: number;
  /** How long a poll waits for the first message; default 100 ms. */
  maxWaitMs?: number;
  /** Processing time, for `lateArrivalDeadline` (default `Date.now`). */
  clock?: () => number;
  /** How often to ask the source for its lag; default 1 s (0: never). */
  lagIntervalMs?: number;
  /** Called after each batch is stored. */
  onBatch?: (report: BatchReport) => void;
}

/** What one stored batch did. */
export interface BatchReport {
  readonly messages: number;
  readonly rows: number;
  readonly deadLetters: number;
  readonly lateDropped: number;
  readonly duplicatesSkipped: number;
  /** Messages read again only to rebuild the dedupe memory after a restart. */
  readonly replayed: number;
  /** The stored positions after the batch (next offset per partition). */
  readonly positions: readonly PartitionPosition[];
}

/** A runner's counters since it was created. */
export interface StreamMetrics {
  readonly resolver: string;
  readonly source: string;
  readonly running: boolean;
  /** Messages consumed (good and bad; not replays). */
  readonly messages: number;
  /** Messages whose rows were folded. */
  readonly accepted: number;
  /** Rows folded into the aggregations' buckets. */
  readonly rows: number;
  readonly deadLetters: number;
  readonly lateDropped: number;
  readonly duplicatesSkipped: number;
  readonly replayed: number;
  readonly batches: number;
  /** Atomic commits of buckets, positions and dead letters (batches of replays only make none). */
  readonly commits: number;
  /** Over the last few seconds. */
  readonly messagesPerSecond: number;
  /** Since `run()` started. */
  readonly averageMessagesPerSecond: number;
  /** Per partition, as last reported by the source. */
  readonly lag: readonly PartitionLag[];
  /** Sum of `lag`. */
  readonly totalLag: number;
  readonly startedAtMs: number | null;
  readonly lastCommitAtMs: number | null;
}

interface DecodedBatch {
  readonly batch: ColumnBatch;
  /** Row ranges per accepted message (for the slow path). */
  readonly ranges: { raw: SourceMessage; start: number; end: number }[];
  readonly deadLetters: DeadLetterRecord[];
  readonly positions: SourcePositionInput[];
  /** The resolver's state as of the end of the batch (dedupe horizon, watermark). */
  readonly resolverStates: ResolverStateRecord[];
  readonly messages: number;
  readonly lateDropped: number;
  readonly duplicatesSkipped: number;
  readonly replayed: number;
}

/**
 * Runs a stream resolver.
 *
 * @example
 * const tessera = Tessera.open({ path: '.tessera/store', features: [User, Transaction] });
 * const runner = new StreamRunner(tessera, processTransactions);
 * process.on('SIGINT', () => void runner.stop());
 * await runner.run(); // until stop(), or until a finite source ends
 * runner.metrics(); // { messages, deadLetters, lateDropped, duplicatesSkipped, lag, ... }
 */
export class StreamRunner {
  readonly resolver: StreamResolver;
  private readonly bound: BoundResolver;
  private readonly ingest: ClassIngest;
  private readonly batchSize: number;
  private readonly maxWaitMs: number;
  private readonly clock: () => number;
  private readonly lagIntervalMs: number;
  private readonly onBatch: ((report: BatchReport) => void) | undefined;
  private readonly dedupe: DedupeMemory | null;
  /** Stored next offsets when run() started: messages below are replays. */
  private stored = new Map<number, number>();
  /** Next offset per partition after everything decoded so far. */
  private readonly next = new Map<number, number>();
  private running: Promise<StreamMetrics> | null = null;
  private stopRequested = false;
  private sourceCommits: Promise<void> = Promise.resolve();
  private counters = {
    messages: 0,
    accepted: 0,
    rows: 0,
    deadLetters: 0,
    lateDropped: 0,
    duplicatesSkipped: 0,
    replayed: 0,
    batches: 0,
    commits: 0,
  };
  private rate: { t: number; messages: number }[] = [];
  private lag: PartitionLag[] = [];
  private startedAtMs: number | null = null;
  private lastCommitAtMs: number | null = null;

  constructor(
    readonly tessera: Tessera,
    resolver: StreamResolver,
    options: StreamRunnerOptions = {},
  ) {
    this.resolver = resolver;
    this.bound = new BoundResolver(resolver, tessera.plan);
    this.ingest = new ClassIngest(this.bound.cls, tessera.plan);
    this.batchSize = options.batchSize ?? 16_384;
    this.maxWaitMs = options.maxWaitMs ?? 100;
    this.clock = options.clock ?? Date.now;
    this.lagIntervalMs = options.lagIntervalMs ?? 1000;
    this.onBatch = options.onBatch;
    this.dedupe = resolver.dedupe === null ? null : new DedupeMemory(resolver.dedupe.withinMs);
  }

  /** The resolver's name: its positions and dead letters are stored under it. */
  get name(): string {
    return this.resolver.name;
  }

  /**
   * Consumes until {@link stop} is called or a finite source ends; resolves to the final
   * metrics. Rejects if the store write fails (bad messages never make it fail).
   */
  run(): Promise<StreamMetrics> {
    if (this.running !== null) throw new Error(`stream ${this.name} is already running`);
    this.stopRequested = false;
    this.running = this.loop().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Finishes the batch in flight, stores it, closes the source; resolves when done. */
  async stop(): Promise<void> {
    this.stopRequested = true;
    if (this.running !== null) await this.running.catch(() => undefined);
  }

  /** Current counters, rate and lag. */
  metrics(): StreamMetrics {
    const now = Date.now();
    const c = this.counters;
    const recent = this.rate.filter((r) => r.t >= now - 5000);
    const first = recent[0];
    const last = recent[recent.length - 1];
    const messagesPerSecond =
      first !== undefined && last !== undefined && last.t > first.t
        ? ((last.messages - first.messages) / (last.t - first.t)) * 1000
        : 0;
    const elapsed = this.startedAtMs === null ? 0 : now - this.startedAtMs;
    return {
      resolver: this.name,
      source: this.resolver.source.description,
      running: this.running !== null,
      ...c,
      messagesPerSecond,
      averageMessagesPerSecond: elapsed > 0 ? (c.messages / elapsed) * 1000 : 0,
      lag: this.lag,
      totalLag: this.lag.reduce((sum, l) => sum + l.lag, 0),
      startedAtMs: this.startedAtMs,
      lastCommitAtMs: this.lastCommitAtMs,
    };
  }

  private async loop(): Promise<StreamMetrics> {
    const source = this.resolver.source;
    const stored = this.tessera.positions(this.name);
    this.stored = new Map(stored.map((p) => [p.partition, p.offset]));
    this.next.clear();
    for (const [p, o] of this.stored) this.next.set(p, o);
    const start = new Map(this.stored);
    const state = this.tessera.engine.resolverState(this.name);
    if (this.dedupe !== null && state !== null) {
      // Read again from the dedupe horizon: the values of messages already folded.
      const dedupe: DedupeState = {
        watermarkMs: state.watermarkMs ?? null,
        replayFrom: state.replayFrom,
      };
      this.dedupe.restore(dedupe);
      for (const { partition, offset } of dedupe.replayFrom) {
        const s = start.get(partition);
        if (s !== undefined && offset < s) start.set(partition, offset);
      }
    }
    await source.start([...start].map(([partition, offset]) => ({ partition, offset })));
    this.startedAtMs = Date.now();
    this.rate = [{ t: this.startedAtMs, messages: this.counters.messages }];
    const lagTimer = this.startLagMonitor();
    let inflight: Promise<void> | null = null;
    try {
      while (!this.stopRequested) {
        const messages = await source.poll(this.batchSize, this.maxWaitMs);
        if (messages.length === 0) {
          if (source.ended) break;
          continue;
        }
        const decoded = this.decode(messages);
        if (inflight !== null) await inflight;
        inflight = this.store(decoded);
      }
      if (inflight !== null) await inflight;
    } finally {
      if (lagTimer !== undefined) clearInterval(lagTimer);
      await this.sourceCommits;
      await source.close();
    }
    return this.metrics();
  }

  private startLagMonitor(): NodeJS.Timeout | undefined {
    if (this.lagIntervalMs <= 0) return undefined;
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      this.resolver.source
        .lag()
        .then((lag) => {
          this.lag = lag;
        })
        .catch(() => undefined)
        .finally(() => {
          busy = false;
        });
    }, this.lagIntervalMs);
    timer.unref();
    return timer;
  }

  /** Decodes, validates, maps, dedupes and filters one poll's messages. */
  private decode(messages: readonly SourceMessage[]): DecodedBatch {
    const bound = this.bound;
    const batch = bound.newBatch(messages.length);
    const ranges: DecodedBatch['ranges'] = [];
    const deadLetters: DeadLetterRecord[] = [];
    const now = this.clock();
    const lateMs = this.resolver.lateArrivalDeadlineMs;
    const deadline = lateMs === null ? Number.NEGATIVE_INFINITY : now - lateMs;
    const dedupe = this.dedupe;
    const dedupeField = this.resolver.dedupe;
    const touched = new Set<number>();
    let lateDropped = 0;
    let duplicatesSkipped = 0;
    let replayed = 0;
    let consumed = 0;
    // Declarative resolvers with a plain schema decode the poll natively first; the
    // messages it leaves take the general path below.
    const fast = bound.decodeFast(messages);
    for (let i = 0; i < messages.length; i++) {
      const raw = messages[i] as SourceMessage;
      const replay = raw.offset < (this.stored.get(raw.partition) ?? Number.NEGATIVE_INFINITY);
      if (!replay) {
        consumed += 1;
        touched.add(raw.partition);
        const next = this.next.get(raw.partition);
        if (next === undefined || raw.offset + 1 > next)
          this.next.set(raw.partition, raw.offset + 1);
      } else {
        replayed += 1;
      }
      const start = batch.rows;
      const viaFast = fast !== null && fast.decoded[i] === 1;
      let message: unknown;
      let eventTimeMs: number;
      if (viaFast) {
        eventTimeMs = bound.mapDecoded(fast, i, raw, batch).eventTimeMs;
      } else {
        const parsed = bound.parse(raw);
        if (!parsed.ok) {
          if (!replay) deadLetters.push(bound.deadLetter(raw, parsed.bad, now));
          continue;
        }
        message = parsed.message;
        const mapped = bound.map(message, raw, batch);
        if (!mapped.ok) {
          if (!replay) deadLetters.push(bound.deadLetter(raw, mapped.bad, now));
          continue;
        }
        eventTimeMs = mapped.eventTimeMs;
      }
      if (dedupe !== null && dedupeField !== null) {
        const key = viaFast
          ? bound.decodedDedupeKey(fast, i)
          : dedupeKey(dedupeField.read(message));
        if (key !== undefined) {
          // By the source's time (Kafka's record timestamp): redeliveries come soon after
          // the original whatever their event time, and it is the same on a replay.
          if (dedupe.isDuplicate(key, raw.timestampMs)) {
            batch.truncate(start);
            if (!replay) duplicatesSkipped += 1;
            continue;
          }
          dedupe.register(key, raw.timestampMs, raw.partition, raw.offset);
        }
      }
      if (replay) {
        batch.truncate(start);
        continue;
      }
      if (eventTimeMs < deadline) {
        batch.truncate(start);
        lateDropped += 1;
        continue;
      }
      if (batch.rows > start) ranges.push({ raw, start, end: batch.rows });
    }
    const positions: SourcePositionInput[] = [];
    for (const partition of touched) {
      const offset = this.next.get(partition);
      if (offset !== undefined) positions.push({ source: this.name, partition, offset });
    }
    const resolverStates: ResolverStateRecord[] = [];
    if (dedupe !== null && positions.length > 0) {
      dedupe.evict();
      const state = dedupe.state(this.next);
      resolverStates.push({
        resolver: this.name,
        replayFrom: [...state.replayFrom],
        ...(state.watermarkMs === null ? {} : { watermarkMs: state.watermarkMs }),
      });
    }
    return {
      batch,
      ranges,
      deadLetters,
      positions,
      resolverStates,
      messages: consumed,
      lateDropped,
      duplicatesSkipped,
      replayed,
    };
  }

  /** One atomic write: the batch's buckets, positions and dead letters. */
  private async store(d: DecodedBatch): Promise<void> {
    const engine = this.tessera.engine;
    const writes = this.bound.writes ?? undefined;
    const rows = d.batch.rows;
    const accepted = d.ranges.length;
    const deadLetters = d.deadLetters;
    if (d.positions.length > 0) {
      // The decoder checked every row through the conversion path `ingest` uses
      // (`ts/rows/`), so `prepare` accepts the batch.
      const batches = this.ingest.prepare(d.batch.columns(), writes).batches;
      const options: CommitOptions = { positions: d.positions };
      if (deadLetters.length > 0) options.deadLetters = deadLetters;
      if (d.resolverStates.length > 0) options.resolverStates = d.resolverStates;
      // One native call: these batches, their positions, dead letters and the resolver's
      // state in one atomic write, whatever else is staged or committing on this store.
      await engine.commitBatchesAsync(batches, options);
      this.lastCommitAtMs = Date.now();
      const sourcePositions = d.positions
        .filter((p) => p.source === this.name)
        .map(({ partition, offset }) => ({ partition, offset }));
      const source = this.resolver.source;
      this.sourceCommits = this.sourceCommits
        .then(() => source.commit(sourcePositions))
        .catch(() => undefined);
    }
    const c = this.counters;
    c.messages += d.messages;
    c.accepted += accepted;
    c.rows += rows;
    c.deadLetters += deadLetters.length;
    c.lateDropped += d.lateDropped;
    c.duplicatesSkipped += d.duplicatesSkipped;
    c.replayed += d.replayed;
    c.batches += 1;
    if (d.positions.length > 0) c.commits += 1;
    const t = Date.now();
    this.rate.push({ t, messages: c.messages });
    if (this.rate.length > 256) this.rate = this.rate.filter((r) => r.t >= t - 10_000);
    this.onBatch?.({
      messages: d.messages,
      rows,
      deadLetters: deadLetters.length,
      lateDropped: d.lateDropped,
      duplicatesSkipped: d.duplicatesSkipped,
      replayed: d.replayed,
      positions: d.positions
        .filter((p) => p.source === this.name)
        .map(({ partition, offset }) => ({ partition, offset })),
    });
  }
}
