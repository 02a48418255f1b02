/**
 * The per-message work of a stream resolver, against one plan: decode the bytes as JSON,
 * validate them with the message schema, map them to rows of the output class, and check
 * every value the aggregations will read, so that the batch handed to the engine never
 * fails. A message that fails any step becomes a dead letter naming the reason and the
 * field; it never stops the stream.
 */
import { timeOf } from '../engine/values.js';
import { type DeadLetterRecord, type DecodedMessageColumns, native } from '../native.js';
import type { ClassPlan, ColumnPlan, Plan } from '../planner/types.js';
import type { SourceMessage } from '../sources/source.js';
import { dedupeKey } from './dedupe.js';
import { compileMessagePlan, type OutputShape, type PlannedRead } from './message-plan.js';
import type { MessageContext, OutputColumn, StreamResolver } from './stream-resolver.js';
import { StreamResolverError } from './stream-resolver.js';

/** Why a message could not be used. */
export interface BadMessage {
  readonly reason: string;
  readonly field?: string;
}

const VERSIONED = /^(.+)@(\d+)$/;

/** One column of a batch: numbers (NaN = null) or other values. */
export class BatchColumn {
  numbers: Float64Array | null;
  others: unknown[] | null;

  constructor(
    readonly name: string,
    readonly kind: 'number' | 'other',
    capacity: number,
  ) {
    this.numbers = kind === 'number' ? new Float64Array(capacity).fill(Number.NaN) : null;
    this.others = kind === 'other' ? new Array<unknown>(capacity) : null;
  }

  grow(capacity: number): void {
    if (this.numbers !== null) {
      const grown = new Float64Array(capacity).fill(Number.NaN);
      grown.set(this.numbers);
      this.numbers = grown;
    } else if (this.others !== null) {
      this.others.length = capacity;
    }
  }
}

/** Columns of a batch being built, as the engine's ingest reads them. */
export class ColumnBatch {
  rows = 0;
  private capacity: number;
  private readonly byName = new Map<string, BatchColumn>();
  /** The columns of a declarative resolver's slots, in slot order (set on first use). */
  slotColumns: (BatchColumn | undefined)[] | null = null;

  constructor(kinds: ReadonlyMap<string, 'number' | 'other'>, capacity = 1024) {
    this.capacity = Math.max(1, capacity);
    for (const [name, kind] of kinds)
      this.byName.set(name, new BatchColumn(name, kind, this.capacity));
  }

  column(name: string): BatchColumn | undefined {
    return this.byName.get(name);
  }

  /** Reserves row `this.rows` and returns its index. */
  addRow(): number {
    if (this.rows === this.capacity) {
      this.capacity *= 2;
      for (const column of this.byName.values()) column.grow(this.capacity);
    }
    return this.rows++;
  }

  /** Drops the rows from `rows` on (a message that turned out bad, late or a duplicate). */
  truncate(rows: number): void {
    if (rows >= this.rows) return;
    for (const column of this.byName.values()) {
      column.numbers?.fill(Number.NaN, rows, this.rows);
      column.others?.fill(undefined, rows, this.rows);
    }
    this.rows = rows;
  }

  /** The column `name`, added when the batch does not have it (rows so far are null). */
  ensure(name: string, kind: 'number' | 'other'): BatchColumn {
    let column = this.byName.get(name);
    if (column === undefined) {
      column = new BatchColumn(name, kind, this.capacity);
      this.byName.set(name, column);
    }
    return column;
  }

  /** The columns, each exactly `rows` long. The batch must not be used afterwards. */
  columns(): Record<string, ArrayLike<unknown>> {
    const out: Record<string, ArrayLike<unknown>> = {};
    for (const [name, column] of this.byName) {
      if (column.numbers !== null) out[name] = column.numbers.subarray(0, this.rows);
      else if (column.others !== null) {
        column.others.length = this.rows;
        out[name] = column.others;
      }
    }
    return out;
  }
}

/** How one output column's values are checked and stored. */
interface ColumnSlot {
  /** `column` or `column@version`. */
  readonly key: string;
  readonly column: ColumnPlan;
  readonly kind: ColumnPlan['type']['kind'];
  /** The field named in messages (for dead letters). */
  readonly field: string;
  readonly read: ((m: unknown) => unknown) | null;
  readonly isKey: boolean;
  readonly isTime: boolean;
}

/** A stream resolver compiled against a plan. */
export class BoundResolver {
  readonly namespace: string;
  readonly cls: ClassPlan;
  /** The feature-time column rows are bucketed by, or `null` when no series reads it. */
  readonly timeColumn: string | null;
  /** What the batches write (`null`: every column the rows carry). */
  readonly writes: readonly string[] | null;
  /** Group-key columns some fed series needs: a row without one is a bad message. */
  readonly keyColumns: ReadonlySet<string>;
  private readonly columnPlans: ReadonlyMap<string, ColumnPlan>;
  private readonly slots: readonly ColumnSlot[];
  private readonly kinds: Map<string, 'number' | 'other'>;
  /** Columns of the class that some series reads. */
  private readonly needed: ReadonlySet<string>;
  private readonly scratch = { ms: 0 };
  /** Per series: the row properties that feed it, and its key columns. */
  private readonly triggers: readonly { columns: readonly string[]; keys: readonly string[] }[];
  /**
   * The native decoder of a declarative resolver whose schema allows it (`null`
   * otherwise): outputs 0..slots-1 are the slots, then the `timestamp` field, then the
   * dedupe field, each present when the resolver has it.
   */
  private readonly fast: {
    readonly decoder: InstanceType<typeof native.JsonMessageDecoder>;
    readonly shapes: readonly OutputShape[];
    readonly timeOutput: number | null;
    readonly dedupeOutput: number | null;
  } | null;

  constructor(
    readonly resolver: StreamResolver,
    plan: Plan,
  ) {
    const fail = (problem: string): never => {
      throw new StreamResolverError(`stream resolver ${resolver.name}: ${problem}`);
    };
    this.namespace = resolver.namespace;
    const cls = plan.classes.find((c) => c.namespace === resolver.namespace);
    if (cls === undefined) {
      throw new StreamResolverError(
        `stream resolver ${resolver.name}: ` +
          `its output class ${resolver.namespace} is not one of this Tessera's classes (${plan.classes.map((c) => c.namespace).join(', ')})`,
      );
    }
    this.cls = cls;
    this.columnPlans = new Map(cls.columns.map((c) => [c.name, c]));
    const series = plan.series.filter((s) => s.namespace === cls.namespace);
    this.timeColumn = cls.featureTime ?? series[0]?.timeColumn ?? null;

    const slots: ColumnSlot[] = [];
    const written: string[] = [];
    for (const out of resolver.columns ?? []) {
      const column = this.checkedColumn(out, fail);
      written.push(out.key);
      slots.push({
        key: out.key,
        column,
        kind: column.type.kind,
        field: out.field,
        read: out.read,
        isKey: false,
        isTime: out.column === this.timeColumn,
      });
    }
    if (resolver.columns !== null && this.timeColumn !== null) {
      // The event time is always written: from the mapped column, the `timestamp`
      // field, or the source's time for the message.
      if (!written.includes(this.timeColumn)) written.push(this.timeColumn);
    }
    let writes: string[] | null =
      resolver.columns !== null ? written : resolver.writes === null ? null : [...resolver.writes];
    if (!resolver.updatesMaterializedAggregations) writes = [];
    this.writes = writes;

    // The key columns of every series these writes feed.
    const keys = new Set<string>();
    const normalized = writes === null ? null : new Set(writes.map((w) => this.normalize(w)));
    for (const s of series) {
      const trigger =
        s.column === null
          ? s.timeColumn
          : s.column.version === null
            ? s.column.name
            : `${s.column.name}@${s.column.version}`;
      if (normalized === null || normalized.has(trigger)) for (const k of s.groupKey) keys.add(k);
    }
    this.keyColumns = keys;
    this.triggers = series.map((s) => ({
      columns:
        s.column === null
          ? [s.timeColumn]
          : s.column.version === null
            ? [s.column.name]
            : s.column.version ===
                cls.columns.find((c) => c.name === s.column?.name)?.versions?.defaultVersion
              ? [`${s.column.name}@${s.column.version}`, s.column.name]
              : [`${s.column.name}@${s.column.version}`],
      keys: s.groupKey,
    }));
    this.slots = slots.map((s) => ({ ...s, isKey: keys.has(s.column.name) }));
    // Only columns some series reads (value, `by`, filter, key, time) are kept in the
    // batch; the others are checked and dropped.
    const needed = new Set<string>();
    for (const s of series) {
      for (const k of s.groupKey) needed.add(k);
      if (s.column !== null) needed.add(s.column.name);
      if (s.by !== null) needed.add(s.by.name);
      for (const f of s.filters) needed.add(f.column);
      needed.add(s.timeColumn);
    }
    this.needed = needed;
    this.kinds = new Map();
    for (const slot of this.slots) {
      if (needed.has(slot.column.name)) this.kinds.set(slot.key, storageKind(slot.kind));
    }
    if (this.timeColumn !== null) this.kinds.set(this.timeColumn, 'number');
    this.fast = this.compileFastPath(resolver);
  }

  private compileFastPath(resolver: StreamResolver): BoundResolver['fast'] {
    const columns = resolver.columns;
    if (columns === null) return null;
    // A null value of a slot is skipped by the aggregations (a key's is a bad message); a
    // null `timestamp` is a bad message; a null dedupe field dedupes nothing.
    const reads: PlannedRead[] = columns.map((c, i) => {
      const slot = this.slots[i] as ColumnSlot;
      // Columns no series reads are checked, not returned.
      return { path: c.path, as: slot.kind, nullable: !slot.isKey, keep: this.kinds.has(slot.key) };
    });
    const timeOutput = resolver.timestamp === null ? null : reads.length;
    if (resolver.timestamp !== null) {
      reads.push({ path: resolver.timestamp.field, as: 'datetime', nullable: false, keep: true });
    }
    const dedupeOutput = resolver.dedupe === null ? null : reads.length;
    if (resolver.dedupe !== null) {
      reads.push({ path: resolver.dedupe.field, as: 'dedupe', nullable: true, keep: true });
    }
    const plan = compileMessagePlan(resolver.messageType, reads);
    if (plan === null) return null;
    return {
      decoder: new native.JsonMessageDecoder(plan.description),
      shapes: plan.shapes,
      timeOutput,
      dedupeOutput,
    };
  }

  /** Whether polls go through the native decoder first. */
  get hasFastPath(): boolean {
    return this.fast !== null;
  }

  /**
   * Decodes what the native decoder can of a poll, or `null` without a fast path.
   * Message `i` was decoded when `decoded[i] === 1`; {@link mapDecoded} then appends its
   * row, and the others take {@link parse} and {@link map}.
   */
  decodeFast(messages: readonly SourceMessage[]): DecodedMessageColumns | null {
    if (this.fast === null) return null;
    const values = new Array<Buffer>(messages.length);
    const offsets = new Uint32Array(messages.length + 1);
    let end = 0;
    for (let i = 0; i < messages.length; i++) {
      const value = (messages[i] as SourceMessage).value;
      values[i] = value;
      end += value.length;
      offsets[i + 1] = end;
    }
    return this.fast.decoder.decode(Buffer.concat(values, end), offsets);
  }

  /** {@link map} for message `i` of a fast-decoded poll (which the decoder accepted). */
  mapDecoded(
    decoded: DecodedMessageColumns,
    i: number,
    raw: SourceMessage,
    batch: ColumnBatch,
  ): { ok: true; eventTimeMs: number } {
    const fast = this.fast as NonNullable<BoundResolver['fast']>;
    const start = batch.rows;
    const row = batch.addRow();
    batch.slotColumns ??= this.slots.map((s) => batch.column(s.key));
    const columns = batch.slotColumns;
    const shapes = fast.shapes;
    for (let j = 0; j < columns.length; j++) {
      const column = columns[j];
      if (column === undefined) continue;
      if (shapes[j] === 'string') setOther(column, row, stringAt(decoded, j, i));
      else setNumber(column, row, decoded.numbers[j]?.[i] ?? Number.NaN);
    }
    const explicitTime =
      fast.timeOutput === null ? undefined : decoded.numbers[fast.timeOutput]?.[i];
    return this.finishTimes(batch, start, explicitTime, raw);
  }

  /** The dedupe key of message `i` of a fast-decoded poll. */
  decodedDedupeKey(decoded: DecodedMessageColumns, i: number): string | undefined {
    const fast = this.fast;
    if (fast === null || fast.dedupeOutput === null) return undefined;
    const o = fast.dedupeOutput;
    if (fast.shapes[o] === 'string') return dedupeKey(stringAt(decoded, o, i));
    const value = decoded.numbers[o]?.[i] ?? Number.NaN;
    // NaN is how the decoder says null: no key.
    return Number.isNaN(value) ? undefined : dedupeKey(value);
  }

  /** The key columns of the series a row (with default writes) feeds. */
  private keysFedBy(record: Readonly<Record<string, unknown>>): Set<string> {
    const keys = new Set<string>();
    for (const t of this.triggers) {
      if (t.columns.some((c) => record[c] !== undefined)) for (const k of t.keys) keys.add(k);
    }
    return keys;
  }

  /** `amount` -> `amount@<default>` for a versioned column; as-is otherwise. */
  private normalize(write: string): string {
    const m = VERSIONED.exec(write);
    const name = m?.[1] ?? write;
    const column = this.columnPlans.get(name);
    if (column?.versions && m === null) return `${name}@${column.versions.defaultVersion}`;
    return write;
  }

  private checkedColumn(out: OutputColumn, fail: (p: string) => never): ColumnPlan {
    const column = this.columnPlans.get(out.column);
    if (column === undefined) {
      return fail(
        `outputFeatures names ${this.namespace}.${out.column}, which is not a column of ${this.namespace} (columns: ${[...this.columnPlans.keys()].join(', ')})`,
      );
    }
    if (out.version !== null) {
      if (column.versions === null) {
        return fail(
          `outputFeatures writes ${out.key}, but ${this.namespace}.${out.column} is not versioned`,
        );
      }
      if (!column.versions.types.some((t) => t.version === out.version)) {
        return fail(
          `outputFeatures writes ${out.key}, but ${this.namespace}.${out.column} has versions ${column.versions.types.map((t) => t.version).join(', ')}`,
        );
      }
    }
    return column;
  }

  /** A new, empty batch of this resolver's columns. */
  newBatch(capacity: number): ColumnBatch {
    return new ColumnBatch(this.kinds, capacity);
  }

  /** Bytes -> validated message, or why not. */
  parse(raw: SourceMessage): { ok: true; message: unknown } | { ok: false; bad: BadMessage } {
    if (raw.value.length === 0) return { ok: false, bad: { reason: 'empty message' } };
    let json: unknown;
    try {
      json = JSON.parse(raw.value.toString('utf8'));
    } catch (e) {
      return {
        ok: false,
        bad: { reason: `not JSON: ${e instanceof Error ? e.message : String(e)}` },
      };
    }
    const result = this.resolver.messageType.safeParse(json);
    if (result.success) return { ok: true, message: result.data };
    const issue = result.error.issues[0];
    const path = issue?.path.map(String).join('.') ?? '';
    const value = issue === undefined ? undefined : valueAt(json, issue.path);
    if (typeof value === 'number' && !Number.isFinite(value)) {
      return { ok: false, bad: { reason: `non-finite number (${value})`, field: path } };
    }
    const bad: BadMessage =
      path === ''
        ? { reason: `schema mismatch: ${issue?.message ?? 'invalid'}` }
        : { reason: `schema mismatch: ${issue?.message ?? 'invalid'}`, field: path };
    return { ok: false, bad };
  }

  /**
   * Appends the rows of one validated message to `batch` and returns its event time, or
   * why the message is bad (then nothing is appended).
   */
  map(
    message: unknown,
    raw: SourceMessage,
    batch: ColumnBatch,
  ): { ok: true; eventTimeMs: number } | { ok: false; bad: BadMessage } {
    const start = batch.rows;
    let explicitTime: number | undefined;
    const ts = this.resolver.timestamp;
    if (ts !== null) {
      const value = ts.read(message);
      const problem = this.time(value);
      if (problem !== null) return { ok: false, bad: { reason: problem, field: ts.field } };
      explicitTime = this.scratch.ms;
    }
    if (this.resolver.columns !== null) {
      const row = batch.addRow();
      const bad = this.fillDeclared(message, row, batch);
      if (bad !== null) {
        batch.truncate(start);
        return { ok: false, bad };
      }
      return this.finishTimes(batch, start, explicitTime, raw);
    }
    let rows: unknown;
    try {
      rows = this.resolver.resolve?.(message, context(raw));
    } catch (e) {
      return {
        ok: false,
        bad: { reason: `resolver failed: ${e instanceof Error ? e.message : String(e)}` },
      };
    }
    const list = rows === null || rows === undefined ? [] : Array.isArray(rows) ? rows : [rows];
    for (const r of list) {
      const bad = this.fillRow(r, batch);
      if (bad !== null) {
        batch.truncate(start);
        return { ok: false, bad };
      }
    }
    if (list.length === 0) {
      return { ok: true, eventTimeMs: explicitTime ?? raw.timestampMs };
    }
    return this.finishTimes(batch, start, explicitTime, raw);
  }

  /** Sets the time column of rows `start..` (explicit > row's own > source time). */
  private finishTimes(
    batch: ColumnBatch,
    start: number,
    explicitTime: number | undefined,
    raw: SourceMessage,
  ): { ok: true; eventTimeMs: number } {
    const tc = this.timeColumn;
    if (tc === null) return { ok: true, eventTimeMs: explicitTime ?? raw.timestampMs };
    const times = batch.column(tc)?.numbers;
    if (times == null) return { ok: true, eventTimeMs: explicitTime ?? raw.timestampMs };
    for (let r = start; r < batch.rows; r++) {
      if (explicitTime !== undefined) times[r] = explicitTime;
      else if (Number.isNaN(times[r] ?? Number.NaN)) times[r] = raw.timestampMs;
    }
    return { ok: true, eventTimeMs: times[start] ?? raw.timestampMs };
  }

  private fillDeclared(message: unknown, row: number, batch: ColumnBatch): BadMessage | null {
    const slots = this.slots;
    batch.slotColumns ??= slots.map((s) => batch.column(s.key));
    const columns = batch.slotColumns;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i] as ColumnSlot;
      const bad = this.store(slot, slot.read?.(message), row, columns[i]);
      if (bad !== null) return bad;
    }
    return null;
  }

  private fillRow(value: unknown, batch: ColumnBatch): BadMessage | null {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return { reason: `resolver returned ${typeof value}, not a row object` };
    }
    const row = batch.addRow();
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const m = VERSIONED.exec(key);
      const name = m?.[1] ?? key;
      const column = this.columnPlans.get(name);
      if (column === undefined) continue; // not a column: ignored, as by ingest
      let target: BatchColumn | undefined;
      if (this.needed.has(name)) {
        let kind = this.kinds.get(key);
        if (kind === undefined) {
          kind = storageKind(column.type.kind);
          this.kinds.set(key, kind);
        }
        target = batch.ensure(key, kind);
      }
      const slot: ColumnSlot = {
        key,
        column,
        kind: column.type.kind,
        field: key,
        read: null,
        isKey: this.keyColumns.has(name) && m === null,
        isTime: name === this.timeColumn,
      };
      const bad = this.store(slot, record[key], row, target);
      if (bad !== null) return bad;
    }
    const needed = this.writes === null ? this.keysFedBy(record) : this.keyColumns;
    for (const k of needed) {
      if (record[k] === undefined || record[k] === null) {
        return { reason: `missing key: ${this.namespace}.${k}`, field: k };
      }
    }
    return null;
  }

  /** Checks one value and stores it in `column` (when the aggregations read it). */
  private store(
    slot: ColumnSlot,
    value: unknown,
    row: number,
    column: BatchColumn | undefined,
  ): BadMessage | null {
    if (value === undefined || value === null) {
      if (slot.isKey)
        return { reason: `missing key: ${this.namespace}.${slot.key}`, field: slot.field };
      return null; // a null value is skipped by every aggregation
    }
    switch (slot.kind) {
      case 'float':
      case 'int': {
        if (typeof value !== 'number') {
          return { reason: `${slot.key} is ${typeof value}, not a number`, field: slot.field };
        }
        if (!Number.isFinite(value)) {
          return { reason: `non-finite number (${value})`, field: slot.field };
        }
        if (slot.kind === 'int' && !Number.isSafeInteger(value)) {
          return {
            reason: `${slot.key} is ${value}, not a whole number within 2^53`,
            field: slot.field,
          };
        }
        setNumber(column, row, value);
        return null;
      }
      case 'boolean': {
        if (typeof value === 'boolean') setNumber(column, row, value ? 1 : 0);
        else if (value === 0 || value === 1) setNumber(column, row, value);
        else return { reason: `${slot.key} is ${typeof value}, not a boolean`, field: slot.field };
        return null;
      }
      case 'datetime': {
        const problem = this.time(value);
        if (problem !== null) return { reason: problem, field: slot.field };
        setNumber(column, row, this.scratch.ms);
        return null;
      }
      case 'string': {
        if (typeof value !== 'string') {
          return { reason: `${slot.key} is ${typeof value}, not a string`, field: slot.field };
        }
        setOther(column, row, value);
        return null;
      }
      case 'vector': {
        const dim = slot.column.type.kind === 'vector' ? slot.column.type.dim : 0;
        if (!Array.isArray(value) || value.length !== dim) {
          return { reason: `${slot.key} is not a vector of ${dim} numbers`, field: slot.field };
        }
        for (const x of value) {
          if (typeof x !== 'number') {
            return {
              reason: `${slot.key} has a component that is not a number`,
              field: slot.field,
            };
          }
          if (!Number.isFinite(x)) {
            return { reason: `non-finite number (${x}) in a vector`, field: slot.field };
          }
        }
        setOther(column, row, value);
        return null;
      }
    }
  }

  /** Checks an event time into `scratch.ms`: zoned ISO strings, Dates or epoch ms. */
  private time(value: unknown): string | null {
    if (value === undefined || value === null) return 'missing timestamp';
    if (typeof value === 'number' && !Number.isFinite(value)) {
      return `non-finite number (${value}) as a timestamp`;
    }
    if (typeof value === 'string') {
      const ms = fastIsoMs(value);
      if (ms !== undefined) {
        this.scratch.ms = ms;
        return null;
      }
    }
    const problem = timeOf(value, this.scratch);
    if (problem === null) return null;
    if (typeof value === 'string' && NAIVE.test(value.trim())) {
      return `naive timestamp '${value}': it must carry a time zone ('Z' or '+02:00')`;
    }
    return `bad timestamp: ${problem}`;
  }

  /** A dead letter for `raw`. */
  deadLetter(raw: SourceMessage, bad: BadMessage, receivedAtMs: number): DeadLetterRecord {
    const letter: DeadLetterRecord = {
      source: this.resolver.name,
      partition: raw.partition,
      offset: raw.offset,
      reason: bad.reason,
      raw: raw.value,
      receivedAtMs,
    };
    if (bad.field !== undefined) letter.field = bad.field;
    return letter;
  }
}

const ZERO = 48;

function digits(s: string, from: number, count: number): number {
  let v = 0;
  for (let i = from; i < from + count; i++) {
    const d = s.charCodeAt(i) - ZERO;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * The common shape `YYYY-MM-DDTHH:MM:SS[.fff]Z` (or `+HH:MM`) read without a regular
 * expression or `Date.parse`; `undefined` for anything else (the general parser decides).
 */
export function fastIsoMs(s: string): number | undefined {
  const n = s.length;
  if (n < 20 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(10) !== 84) {
    return undefined;
  }
  if (s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return undefined;
  const year = digits(s, 0, 4);
  const month = digits(s, 5, 2);
  const day = digits(s, 8, 2);
  const hour = digits(s, 11, 2);
  const minute = digits(s, 14, 2);
  const second = digits(s, 17, 2);
  if ((year | month | day | hour | minute | second) < 0) return undefined;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    return undefined;
  }
  let i = 19;
  let ms = 0;
  if (s.charCodeAt(i) === 46) {
    let scale = 100;
    i += 1;
    const start = i;
    while (i < n) {
      const d = s.charCodeAt(i) - ZERO;
      if (d < 0 || d > 9) break;
      ms += d * scale;
      scale /= 10;
      i += 1;
    }
    if (i === start) return undefined;
    ms = Math.floor(ms);
  }
  let offsetMinutes = 0;
  const z = s.charCodeAt(i);
  if (z === 90 || z === 122) {
    if (i + 1 !== n) return undefined;
  } else if (z === 43 || z === 45) {
    if (i + 6 !== n || s.charCodeAt(i + 3) !== 58) return undefined;
    const oh = digits(s, i + 1, 2);
    const om = digits(s, i + 4, 2);
    if (oh < 0 || om < 0 || oh > 23 || om > 59) return undefined;
    offsetMinutes = (z === 43 ? 1 : -1) * (oh * 60 + om);
  } else return undefined;
  // Day 31 of a 30-day month (or Feb 29 of a common year): the general parser decides.
  if (day > 28 && day > daysInMonth(year, month)) return undefined;
  return Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMinutes * 60_000;
}

/** A date-time without a zone: `2026-01-31T12:00:00`, `2026-01-31 12:00`. */
const NAIVE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$/;

/** Message `i`'s string of output `o` of a fast-decoded poll. */
function stringAt(decoded: DecodedMessageColumns, o: number, i: number): string | undefined {
  const column = decoded.strings[o];
  const code = column?.codes[i];
  return code === undefined ? undefined : column?.dict[code];
}

function setNumber(column: BatchColumn | undefined, row: number, value: number): void {
  const numbers = column?.numbers;
  if (numbers != null) numbers[row] = value;
}

function setOther(column: BatchColumn | undefined, row: number, value: unknown): void {
  const others = column?.others;
  if (others != null) others[row] = value;
}

function storageKind(kind: ColumnPlan['type']['kind']): 'number' | 'other' {
  return kind === 'string' || kind === 'vector' ? 'other' : 'number';
}

function valueAt(json: unknown, path: readonly PropertyKey[]): unknown {
  let v = json;
  for (const p of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function context(raw: SourceMessage): MessageContext {
  return {
    partition: raw.partition,
    offset: raw.offset,
    key: raw.key,
    timestampMs: raw.timestampMs,
  };
}
