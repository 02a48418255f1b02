/**
 * {@link WindowedStreamRunner}: runs one windowed stream resolver against an open
 * Tessera, exactly once (docs/semantics.md section 6.1).
 *
 * Each poll is one batch. Every message is parsed, checked by the resolver's zod schema,
 * timed (its `timestamp` field, zoned, or the source's time) and keyed; a message that
 * fails is a dead letter naming the field. Then ONE atomic commit stores the batch's
 * messages (continuous: kept by key and time; tumbling: held in each window's open
 * period), its dead letters, its source positions and the watermark (the newest event
 * time). After that commit, every tumbling period whose end the watermark passed is
 * closed: the resolver runs on its held messages, once per key (or once for the period
 * without `keys`), and one more commit stores the values, observed at the period's end,
 * and drops the held messages. A crash between the two commits leaves periods to close,
 * which the next run closes first; a crash before the first re-reads the batch from the
 * stored positions. So every message counts exactly once.
 *
 * A tumbling message whose period of some window already closed (its end at or before
 * the watermark when the message is read) is late for that window: it is held for the
 * windows whose periods are still open, and kept as a dead letter naming the windows it
 * was late for (`lateEvents`). A continuous message older than the largest window before
 * the watermark is late the same way.
 */
import type { DeadLetterRecord, SourcePositionInput, WindowedRecordsInput } from '../native.js';
import { timeProblem } from '../rows/time.js';
import type { SourceMessage } from '../sources/source.js';
import type { Tessera } from '../tessera.js';
import { fieldReader } from './stream-resolver.js';
import {
  type BoundWindowed,
  type WindowContext,
  type WindowedStreamResolver,
  windowedValueProblem,
} from './windowed.js';
import { lazySql } from './windowed-sql.js';

/** Options of {@link WindowedStreamRunner}. */
export interface WindowedStreamRunnerOptions {
  /** Most messages per batch (one atomic commit each); default 4,096. */
  readonly batchSize?: number;
  /** How long a poll waits for the first message; default 100 ms. */
  readonly maxWaitMs?: number;
  /** Processing time, the dead letters' `receivedAtMs` (default `Date.now`). */
  readonly clock?: () => number;
  /** Called after each batch is stored and its due periods closed. */
  readonly onBatch?: (report: WindowedBatchReport) => void;
}

/** What one batch did. */
export interface WindowedBatchReport {
  readonly messages: number;
  readonly accepted: number;
  readonly deadLetters: number;
  readonly lateEvents: number;
  readonly periodsClosed: number;
  readonly watermarkMs: number | null;
}

/** A windowed runner's counters since it was created. */
export interface WindowedStreamMetrics {
  readonly resolver: string;
  readonly running: boolean;
  /** Messages consumed, good and bad. */
  readonly messages: number;
  /** Messages kept for the resolver's windows. */
  readonly accepted: number;
  /** Messages kept as dead letters (bad ones, and late ones). */
  readonly deadLetters: number;
  /** Messages late for at least one window (also dead letters). */
  readonly lateEvents: number;
  /** Tumbling periods closed (per window). */
  readonly periodsClosed: number;
  /** Times the resolver ran. */
  readonly resolverRuns: number;
  /** Period values the resolver could not give (it threw, or gave a bad value). */
  readonly resolverErrors: number;
  readonly lastResolverError: string | null;
  /** Atomic commits written. */
  readonly commits: number;
  /** The newest event time read, Unix ms. */
  readonly watermarkMs: number | null;
}

/**
 * The records one commit writes for one resolver, gathered as the columns the engine
 * takes (`WindowedRecordsInput`): one object per commit, not one per record.
 */
class WindowedRecords {
  private readonly kinds: number[] = [];
  private readonly keyIndexes: number[] = [];
  private readonly keys: string[] = [];
  private readonly keyIndex = new Map<string, number>();
  private readonly times: number[] = [];
  private readonly windows: number[] = [];
  private readonly starts: number[] = [];
  private readonly partitions: number[] = [];
  private readonly offsets: number[] = [];
  private readonly payloads: Buffer[] = [];
  private readonly ends: number[] = [];
  private bytes = 0;

  constructor(private readonly resolver: string) {}

  get length(): number {
    return this.kinds.length;
  }

  private add(
    kind: number,
    key: string,
    t: number,
    windowMs: number,
    periodStartMs: number,
    raw: SourceMessage | null,
    payload: Buffer | null,
  ): void {
    let index = this.keyIndex.get(key);
    if (index === undefined) {
      index = this.keys.length;
      this.keys.push(key);
      this.keyIndex.set(key, index);
    }
    this.kinds.push(kind);
    this.keyIndexes.push(index);
    this.times.push(t);
    this.windows.push(windowMs);
    this.starts.push(periodStartMs);
    this.partitions.push(raw?.partition ?? 0);
    this.offsets.push(raw?.offset ?? 0);
    if (payload !== null) {
      this.payloads.push(payload);
      this.bytes += payload.length;
    }
    this.ends.push(this.bytes);
  }

  /** A continuous resolver's message, kept for its largest window. */
  retain(raw: SourceMessage, key: string, t: number, body: Buffer): void {
    this.add(0, key, t, 0, 0, raw, body);
  }

  /** A tumbling resolver's message, held in its period of `windowMs` starting at `startMs`. */
  hold(
    raw: SourceMessage,
    key: string,
    t: number,
    windowMs: number,
    startMs: number,
    body: Buffer,
  ): void {
    this.add(1, key, t, windowMs, startMs, raw, body);
  }

  /** A closed period's value for `key`, observed at `endMs`. */
  value(key: string, windowMs: number, endMs: number, value: unknown): void {
    this.add(2, key, endMs, windowMs, 0, null, Buffer.from(JSON.stringify(value)));
  }

  /** Closes a period: its held messages go. */
  close(windowMs: number, startMs: number): void {
    this.add(3, '', 0, windowMs, startMs, null, null);
  }

  toInput(): WindowedRecordsInput {
    return {
      resolver: this.resolver,
      kinds: Uint8Array.from(this.kinds),
      keys: this.keys,
      keyIndexes: Uint32Array.from(this.keyIndexes),
      timesMs: Float64Array.from(this.times),
      windowsMs: Float64Array.from(this.windows),
      periodStartsMs: Float64Array.from(this.starts),
      partitions: Int32Array.from(this.partitions),
      offsets: Float64Array.from(this.offsets),
      payload: Buffer.concat(this.payloads, this.bytes),
      payloadEnds: Uint32Array.from(this.ends),
    };
  }
}

interface Accepted {
  readonly raw: SourceMessage;
  readonly t: number;
  readonly key: string;
  readonly body: Buffer;
}

/**
 * Runs a windowed stream resolver given to `Tessera.open({ windowedResolvers })`.
 *
 * @example
 * const tessera = Tessera.open({ path, features: [User], windowedResolvers: [failedLogins] });
 * const runner = new WindowedStreamRunner(tessera, failedLogins);
 * await runner.run(); // until stop(), or until a finite source ends
 * tessera.query({ input: { 'user.id': [42] }, output: [User.num_failed_logins['10m']] });
 */
export class WindowedStreamRunner {
  private readonly bound: BoundWindowed;
  private readonly keyReaders: ((m: unknown) => unknown)[];
  private readonly batchSize: number;
  private readonly maxWaitMs: number;
  private readonly clock: () => number;
  private readonly sql = lazySql('A SQL windowed resolver');
  private watermark = Number.NEGATIVE_INFINITY;
  /** Tumbling: per window, the starts of the periods holding messages. */
  private readonly open = new Map<number, Set<number>>();
  private stopRequested = false;
  private running = false;
  private counters = {
    messages: 0,
    accepted: 0,
    deadLetters: 0,
    lateEvents: 0,
    periodsClosed: 0,
    resolverRuns: 0,
    resolverErrors: 0,
    commits: 0,
  };
  private lastResolverError: string | null = null;
  /** Next offset per partition after everything read so far. */
  private readonly next = new Map<number, number>();

  constructor(
    private readonly tessera: Tessera,
    readonly resolver: WindowedStreamResolver,
    private readonly options: WindowedStreamRunnerOptions = {},
  ) {
    this.bound = tessera.windowedResolver(resolver);
    this.keyReaders = resolver.keys.map((k) => fieldReader(k.field, () => undefined));
    this.batchSize = options.batchSize ?? 4096;
    this.maxWaitMs = options.maxWaitMs ?? 100;
    this.clock = options.clock ?? Date.now;
  }

  get name(): string {
    return this.resolver.name;
  }

  metrics(): WindowedStreamMetrics {
    return {
      resolver: this.resolver.name,
      running: this.running,
      ...this.counters,
      lastResolverError: this.lastResolverError,
      watermarkMs: Number.isFinite(this.watermark) ? this.watermark : null,
    };
  }

  /** Asks a running {@link run} to stop after the batch in hand. */
  async stop(): Promise<void> {
    this.stopRequested = true;
  }

  /**
   * Consumes the source from the stored positions until {@link stop} or the end of a
   * finite source, closing tumbling periods as the watermark passes their ends.
   */
  async run(): Promise<WindowedStreamMetrics> {
    if (this.running) throw new Error(`windowed stream resolver ${this.name} is running already`);
    this.running = true;
    this.stopRequested = false;
    const engine = this.tessera.engine;
    const source = this.resolver.source;
    try {
      const stored = this.tessera.positions(this.name);
      this.next.clear();
      for (const p of stored) this.next.set(p.partition, p.offset);
      const state = engine.resolverState(this.name);
      this.watermark = state?.watermarkMs ?? Number.NEGATIVE_INFINITY;
      this.open.clear();
      if (this.resolver.mode === 'tumbling') {
        for (const w of this.resolver.windows) {
          this.open.set(w.ms, new Set(engine.heldPeriods(this.name, w.ms)));
        }
        // Periods a crash left due: closed before anything new is read.
        await this.closeDue();
      }
      await source.start(stored.map(({ partition, offset }) => ({ partition, offset })));
      try {
        while (!this.stopRequested) {
          const messages = await source.poll(this.batchSize, this.maxWaitMs);
          if (messages.length === 0) {
            if (source.ended) break;
            continue;
          }
          await this.batch(messages);
        }
      } finally {
        await source.close();
      }
    } finally {
      this.running = false;
      this.sql.close();
    }
    return this.metrics();
  }

  /** One poll: decode, one commit of messages and positions, then the periods it closes. */
  private async batch(messages: readonly SourceMessage[]): Promise<void> {
    const now = this.clock();
    const writes = new WindowedRecords(this.name);
    const deadLetters: DeadLetterRecord[] = [];
    const touched = new Set<number>();
    let accepted = 0;
    let late = 0;
    const name = this.name;
    const resolver = this.resolver;
    for (const raw of messages) {
      touched.add(raw.partition);
      const next = this.next.get(raw.partition);
      if (next === undefined || raw.offset + 1 > next) this.next.set(raw.partition, raw.offset + 1);
      const decoded = this.decode(raw);
      if ('reason' in decoded) {
        deadLetters.push(this.deadLetter(raw, decoded.reason, decoded.field, now));
        continue;
      }
      const { t, key, body } = decoded;
      const watermark = this.watermark;
      if (t > this.watermark) this.watermark = t;
      if (resolver.mode === 'continuous') {
        if (t <= watermark - this.bound.largestMs) {
          late += 1;
          deadLetters.push(
            this.deadLetter(
              raw,
              `late: older than the largest window (${resolver.windows.at(-1)?.declared ?? ''}) before the newest event time ${new Date(watermark).toISOString()}`,
              resolver.timestampField ?? undefined,
              now,
            ),
          );
          continue;
        }
        writes.retain(raw, key, t, body);
        accepted += 1;
        continue;
      }
      const lateFor: string[] = [];
      for (const w of resolver.windows) {
        const start = Math.floor(t / w.ms) * w.ms;
        if (start + w.ms <= watermark) {
          lateFor.push(`${w.declared} (period ${new Date(start).toISOString()} closed)`);
          continue;
        }
        this.open.get(w.ms)?.add(start);
        writes.hold(raw, key, t, w.ms, start, body);
      }
      if (lateFor.length > 0) {
        late += 1;
        deadLetters.push(
          this.deadLetter(
            raw,
            `late for ${lateFor.join(', ')}`,
            resolver.timestampField ?? undefined,
            now,
          ),
        );
      }
      if (lateFor.length < resolver.windows.length) accepted += 1;
    }
    const positions: SourcePositionInput[] = [];
    for (const partition of touched) {
      const offset = this.next.get(partition);
      if (offset !== undefined) positions.push({ source: name, partition, offset });
    }
    await this.tessera.engine.commitBatchesAsync([], {
      positions,
      ...(deadLetters.length > 0 ? { deadLetters } : {}),
      ...(writes.length > 0 ? { windowed: [writes.toInput()] } : {}),
      resolverStates: [
        {
          resolver: name,
          replayFrom: [],
          ...(Number.isFinite(this.watermark) ? { watermarkMs: this.watermark } : {}),
        },
      ],
    });
    this.counters.commits += 1;
    const source = resolver.source;
    void source
      .commit(positions.map(({ partition, offset }) => ({ partition, offset })))
      .catch(() => undefined);
    const closed = resolver.mode === 'tumbling' ? await this.closeDue() : 0;
    const c = this.counters;
    c.messages += messages.length;
    c.accepted += accepted;
    c.deadLetters += deadLetters.length;
    c.lateEvents += late;
    this.options.onBatch?.({
      messages: messages.length,
      accepted,
      deadLetters: deadLetters.length,
      lateEvents: late,
      periodsClosed: closed,
      watermarkMs: Number.isFinite(this.watermark) ? this.watermark : null,
    });
  }

  /** A message's time, key and checked body, or why it is a dead letter. */
  private decode(raw: SourceMessage): Accepted | { reason: string; field?: string } {
    let json: unknown;
    try {
      json = JSON.parse(raw.value.toString('utf8'));
    } catch (error) {
      return { reason: `not JSON: ${(error as Error).message}` };
    }
    const parsed = this.resolver.messageType.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue?.path.join('.') ?? '';
      return {
        reason: `does not match the message schema: ${field === '' ? '' : `${field}: `}${issue?.message ?? 'invalid'}`,
        ...(field === '' ? {} : { field }),
      };
    }
    const message = parsed.data as Record<string, unknown>;
    let t = raw.timestampMs;
    if (this.resolver.timestamp !== null) {
      const out = { ms: 0 };
      const problem = timeProblem(this.resolver.timestamp(message), out);
      const field = this.resolver.timestampField ?? 'timestamp';
      if (problem !== null) return { reason: `${field} ${problem}`, field };
      t = out.ms;
    }
    let key = '[]';
    if (this.resolver.keys.length > 0) {
      const text = this.bound.keyText(this.keyReaders.map((read) => read(message)));
      if ('problem' in text) {
        const field =
          this.resolver.keys.find((k) => k.column === text.column)?.field ?? text.column;
        return { reason: `key ${field} ${text.problem}`, field };
      }
      key = text.text;
    }
    return { raw, t, key, body: Buffer.from(JSON.stringify(message)) };
  }

  private deadLetter(
    raw: SourceMessage,
    reason: string,
    field: string | undefined,
    now: number,
  ): DeadLetterRecord {
    return {
      source: this.name,
      partition: raw.partition,
      offset: raw.offset,
      reason,
      ...(field === undefined ? {} : { field }),
      raw: raw.value,
      receivedAtMs: now,
    };
  }

  /**
   * Closes every held period whose end is at or before the watermark, oldest first, each
   * in one commit of its values and the removal of its messages. Returns how many closed.
   */
  private async closeDue(): Promise<number> {
    const engine = this.tessera.engine;
    let closed = 0;
    for (const w of this.resolver.windows) {
      const starts = this.open.get(w.ms);
      if (starts === undefined) continue;
      const due = [...starts].filter((s) => s + w.ms <= this.watermark).sort((a, b) => a - b);
      for (const start of due) {
        const held = engine.heldMessages(this.name, w.ms, start);
        const context = { window: w.declared, windowMs: w.ms, startMs: start, endMs: start + w.ms };
        const values = await this.periodValues(held, context);
        const writes = new WindowedRecords(this.name);
        for (const { key, value } of values) writes.value(key, w.ms, start + w.ms, value);
        writes.close(w.ms, start);
        await engine.commitBatchesAsync([], { windowed: [writes.toInput()] });
        this.counters.commits += 1;
        starts.delete(start);
        closed += 1;
        this.counters.periodsClosed += 1;
      }
    }
    return closed;
  }

  /** The values of one closed period: per key with `keys`, else from the rows. */
  private async periodValues(
    held: readonly { key: string; messages: string }[],
    window: Omit<WindowContext, 'key'>,
  ): Promise<{ key: string; value: unknown }[]> {
    const out: { key: string; value: unknown }[] = [];
    const fail = (problem: string) => {
      this.counters.resolverErrors += 1;
      this.lastResolverError = `${this.name} ${window.window} period ${new Date(window.startMs).toISOString()}: ${problem}`;
    };
    for (const { key, messages: text } of held) {
      const messages = JSON.parse(text) as Record<string, unknown>[];
      const keyValues = this.resolver.keys.length > 0 ? keyObject(this.resolver, key) : null;
      let result: unknown;
      try {
        this.counters.resolverRuns += 1;
        result = await this.bound.invoke(messages, { ...window, key: keyValues }, this.sql.get);
      } catch (error) {
        fail(`the resolver failed: ${(error as Error).message}`);
        continue;
      }
      if (this.resolver.keys.length > 0) {
        const value = this.bound.valueOf(result);
        if (value === undefined) continue;
        const problem = windowedValueProblem(value);
        if (problem !== null) fail(`its value ${problem}`);
        else out.push({ key, value });
        continue;
      }
      for (const row of this.bound.rowsOf(result)) {
        if ('problem' in row) {
          fail(row.problem);
          continue;
        }
        const problem = windowedValueProblem(row.value ?? null);
        if (problem !== null) fail(`its value for ${row.key} ${problem}`);
        else out.push({ key: row.key, value: row.value ?? null });
      }
    }
    return out;
  }
}

/** The key's values by message field, from its text. */
function keyObject(resolver: WindowedStreamResolver, text: string): Record<string, unknown> {
  const parts = JSON.parse(text) as unknown[];
  return Object.fromEntries(resolver.keys.map((k, i) => [k.field, parts[i]]));
}
