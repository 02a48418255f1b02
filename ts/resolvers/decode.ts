/**
 * The per-message work of a stream resolver, against one plan: decode the bytes as JSON,
 * validate them with the message schema, map them to rows of the output class, and check
 * every value the aggregations will read, so that the batch handed to the engine never
 * fails. A message that fails any step becomes a dead letter naming the reason and the
 * field; it never stops the stream.
 */
import { type DeadLetterRecord, type DecodedMessageColumns, native } from '../native.js';
import type { ClassPlan, ColumnPlan, Plan, SeriesPlan } from '../planner/types.js';
import {
  GROUP_KEY_FORMAT,
  groupKeyName,
  groupKeyProblem,
  keyPartBytes,
  numberKeyProblem,
} from '../rows/keys.js';
import {
  columnKey,
  missingColumnProblem,
  parseColumnName,
  seriesLabel,
  seriesTrigger,
  writtenColumns,
} from '../rows/names.js';
import { timeProblem } from '../rows/time.js';
import { isNullValue, numberProblem, stringProblem, vectorProblem } from '../rows/values.js';
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
  /** Its index among the group-key columns, or -1 (see `BoundResolver.keyValues`). */
  readonly keyIndex: number;
  readonly isTime: boolean;
}

/** What a row that feeds a series must carry. */
interface SeriesNeeds {
  /** The row properties that make a row feed the series (with default writes). */
  readonly triggers: readonly string[];
  readonly keys: readonly string[];
  /** Columns the series reads besides its keys (value, `by`, filters), and why. */
  readonly columns: readonly {
    readonly names: readonly string[];
    readonly shown: string;
    readonly role: string;
  }[];
  readonly label: string;
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
  /** Per series: what a row feeding it carries (the batch then has every column). */
  private readonly needs: readonly SeriesNeeds[];
  /** The series these writes feed, whatever the row (`null`: by each row's columns). */
  private readonly fedNeeds: readonly SeriesNeeds[] | null;
  /** The distinct group keys of the class's series, as indexes into `keyValues`. */
  private readonly groupKeys: readonly {
    readonly columns: readonly string[];
    readonly parts: readonly number[];
  }[];
  /** The group-key columns, in `keyValues` order. */
  private readonly keyNames: readonly string[];
  /** The current row's group-key values (for the key format's byte budget). */
  private readonly keyValues: unknown[];
  /** Message field of each group-key column of a declarative resolver. */
  private readonly keyFields: readonly string[];
  private readonly numberScratch = { n: 0 };
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
        keyIndex: -1,
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

    const needs = series.map((s) => seriesNeeds(s, cls));
    this.needs = needs;
    // The key columns of every series these writes feed.
    const normalized =
      writes === null ? null : writtenColumns(cls, writes, true, (problem) => fail(problem));
    const fed = needs.filter(
      (_, i) => normalized === null || normalized.has(seriesTrigger(series[i] as SeriesPlan)),
    );
    this.fedNeeds = normalized === null ? null : fed;
    const keys = new Set<string>();
    for (const n of fed) for (const k of n.keys) keys.add(k);
    this.keyColumns = keys;
    const keyNames = [...new Set(series.flatMap((s) => s.groupKey))];
    this.keyNames = keyNames;
    this.keyValues = new Array<unknown>(keyNames.length);
    const distinct = new Map<string, string[]>();
    for (const s of series) distinct.set(s.groupKey.join('+'), [...s.groupKey]);
    this.groupKeys = [...distinct.values()].map((columns) => ({
      columns,
      parts: columns.map((c) => keyNames.indexOf(c)),
    }));
    this.slots = slots.map((s) => ({
      ...s,
      isKey: keys.has(s.column.name),
      keyIndex: s.key === s.column.name ? keyNames.indexOf(s.column.name) : -1,
    }));
    this.keyFields = keyNames.map(
      (k) => this.slots.find((s) => s.keyIndex >= 0 && s.key === k)?.field ?? k,
    );
    if (resolver.columns !== null && this.fedNeeds !== null) {
      // A declarative resolver writes the same columns for every message: one that does
      // not write a column a series it feeds reads is a definition error.
      const wrote = new Set(this.slots.map((s) => s.key));
      if (this.timeColumn !== null) wrote.add(this.timeColumn);
      for (const n of this.fedNeeds) {
        for (const k of n.keys) {
          if (!wrote.has(k))
            fail(
              `outputFeatures does not write ${this.namespace}.${k}, which ${n.label} is keyed by`,
            );
        }
        for (const c of n.columns) {
          if (!c.names.some((name) => wrote.has(name))) {
            fail(
              `outputFeatures does not write ${this.namespace}.${c.shown}, which ${n.label} ${c.role}`,
            );
          }
        }
      }
    }
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
    const decoded = this.fast.decoder.decode(Buffer.concat(values, end), offsets);
    this.leaveOverlongKeys(decoded);
    return decoded;
  }

  /**
   * Leaves to the general path the messages whose group key is over the key format's
   * byte budget, so that their dead letter states it as every other path does.
   */
  private leaveOverlongKeys(decoded: DecodedMessageColumns): void {
    const shapes = (this.fast as NonNullable<BoundResolver['fast']>).shapes;
    const header = GROUP_KEY_FORMAT.stringPartHeaderBytes;
    for (const key of this.groupKeys) {
      // Outputs of the key's parts; a part no slot writes leaves the key to the general path.
      const outputs = key.columns.map((c) => this.slots.findIndex((s) => s.key === c));
      if (outputs.some((o) => o < 0)) continue;
      let bound = 0;
      const lengths: (Int32Array | null)[] = outputs.map((o) => {
        if (shapes[o] !== 'string') {
          bound += GROUP_KEY_FORMAT.intPartBytes;
          return null;
        }
        const dict = decoded.strings[o]?.dict ?? [];
        const bytes = Int32Array.from(dict, (s) =>
          s.length * 3 + header > GROUP_KEY_FORMAT.maxBytes
            ? header + Buffer.byteLength(s, 'utf8')
            : header + s.length * 3,
        );
        bound += bytes.reduce((a, b) => Math.max(a, b), 0);
        return bytes;
      });
      if (bound <= GROUP_KEY_FORMAT.maxBytes) continue;
      for (let i = 0; i < decoded.decoded.length; i++) {
        if (decoded.decoded[i] !== 1) continue;
        let total = 0;
        for (let j = 0; j < outputs.length; j++) {
          const bytes = lengths[j];
          if (bytes == null) total += GROUP_KEY_FORMAT.intPartBytes;
          else {
            const code = decoded.strings[outputs[j] as number]?.codes[i] ?? 0;
            total += bytes[code] ?? 0;
          }
        }
        // An estimate over the budget: the general path counts exactly and decides.
        if (total > GROUP_KEY_FORMAT.maxBytes) decoded.decoded[i] = 0;
      }
    }
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

  /**
   * Why a row does not carry what the series it feeds read, or `null`: a key (not null),
   * and the value, `by` and filter columns (null allowed), as `Tessera.ingest` of that
   * row alone would need them.
   */
  private rowNeeds(record: Readonly<Record<string, unknown>>): BadMessage | null {
    for (const n of this.fedNeeds ?? this.needs) {
      if (this.fedNeeds === null && !n.triggers.some((c) => record[c] !== undefined)) continue;
      for (const k of n.keys) {
        if (record[k] === undefined || record[k] === null) {
          return { reason: `missing key: ${this.namespace}.${k}`, field: k };
        }
      }
      for (const c of n.columns) {
        if (!c.names.some((name) => record[name] !== undefined)) {
          return {
            reason: `rows ${missingColumnProblem(c.shown, n.label, c.role)}`,
            field: c.shown,
          };
        }
      }
    }
    return null;
  }

  /**
   * Why the current row's group keys (in `keyValues`) do not fit the store's key format,
   * or `null`. Every group key of the class whose parts the row carries is checked, so a
   * row is refused here rather than in the batch it joins.
   */
  private keyBudgetProblem(): BadMessage | null {
    const values = this.keyValues;
    const header = GROUP_KEY_FORMAT.stringPartHeaderBytes;
    for (const key of this.groupKeys) {
      let bound = 0;
      let complete = true;
      for (const p of key.parts) {
        const v = values[p];
        if (typeof v === 'string') bound += header + v.length * 3;
        else if (typeof v === 'number') bound += GROUP_KEY_FORMAT.intPartBytes;
        else complete = false;
      }
      if (!complete || bound <= GROUP_KEY_FORMAT.maxBytes) continue;
      let bytes = 0;
      for (const p of key.parts) bytes += keyPartBytes(values[p] as number | string);
      const problem = groupKeyProblem(key.columns, bytes);
      if (problem !== null) {
        const first = key.parts[0] as number;
        return {
          reason: `${groupKeyName(key.columns)} ${problem}`,
          field: this.keyFields[first] as string,
        };
      }
    }
    return null;
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
      // The problem the column's conversion states for the value (the schema refused it
      // first): named by the column a declarative resolver writes the field to.
      const slot = this.slots.find((s) => s.field === path);
      const problem = `is ${value}, not a finite number`;
      const reason =
        slot !== undefined
          ? `${slot.key} ${problem}`
          : (this.vectorComponentReason(issue?.path ?? [], problem) ?? `${path} ${problem}`);
      return { ok: false, bad: { reason, field: path } };
    }
    const bad: BadMessage =
      path === ''
        ? { reason: `schema mismatch: ${issue?.message ?? 'invalid'}` }
        : { reason: `schema mismatch: ${issue?.message ?? 'invalid'}`, field: path };
    return { ok: false, bad };
  }

  /** `embedding component 1 is Infinity, ...` for a component of a vector slot's field. */
  private vectorComponentReason(path: readonly PropertyKey[], problem: string): string | null {
    const last = path[path.length - 1];
    if (typeof last !== 'number') return null;
    const field = path.slice(0, -1).map(String).join('.');
    const slot = this.slots.find((s) => s.field === field && s.kind === 'vector');
    return slot === undefined ? null : `${slot.key} component ${last} ${problem}`;
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
      const problem = this.time(ts.read(message), ts.field);
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
    this.keyValues.fill(undefined);
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i] as ColumnSlot;
      const bad = this.store(slot, slot.read?.(message), row, columns[i]);
      if (bad !== null) return bad;
    }
    return this.keyBudgetProblem();
  }

  private fillRow(value: unknown, batch: ColumnBatch): BadMessage | null {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return { reason: `resolver returned ${typeof value}, not a row object` };
    }
    const row = batch.addRow();
    const record = value as Record<string, unknown>;
    this.keyValues.fill(undefined);
    for (const key of Object.keys(record)) {
      const { column: name, version } = parseColumnName(key);
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
        isKey: this.keyColumns.has(name) && version === null,
        keyIndex: version === null ? this.keyNames.indexOf(name) : -1,
        isTime: name === this.timeColumn,
      };
      const bad = this.store(slot, record[key], row, target);
      if (bad !== null) return bad;
    }
    return this.rowNeeds(record) ?? this.keyBudgetProblem();
  }

  /** Checks one value and stores it in `column` (when the aggregations read it). */
  private store(
    slot: ColumnSlot,
    value: unknown,
    row: number,
    column: BatchColumn | undefined,
  ): BadMessage | null {
    if (isNullValue(value)) {
      if (slot.isKey) {
        return { reason: `missing key: ${this.namespace}.${slot.key}`, field: slot.field };
      }
      return null; // a null value is skipped by every aggregation
    }
    let problem: string | null;
    switch (slot.kind) {
      case 'string':
        problem = stringProblem(value);
        if (problem === null) setOther(column, row, value);
        break;
      case 'vector':
        problem = vectorProblem(value, slot.column.type.dim ?? 0, this.namespace, slot.column.name);
        if (problem === null) setOther(column, row, value);
        break;
      default: {
        const out = this.numberScratch;
        problem = numberProblem(slot.kind, value, out);
        if (problem === null && slot.isKey && slot.kind !== 'int')
          problem = numberKeyProblem(out.n);
        if (problem === null) setNumber(column, row, out.n);
      }
    }
    if (problem !== null) return { reason: `${slot.key} ${problem}`, field: slot.field };
    if (slot.keyIndex >= 0) this.keyValues[slot.keyIndex] = value;
    return null;
  }

  /** Checks the event time of the `timestamp` field into `scratch.ms`. */
  private time(value: unknown, field: string): string | null {
    if (isNullValue(value)) {
      return `${field} is missing; the resolver's timestamp field gives each message its event time`;
    }
    const problem = timeProblem(value, this.scratch);
    return problem === null ? null : `${field} ${problem}`;
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

/** What a row feeding `series` must carry (see `BoundResolver.rowNeeds`). */
function seriesNeeds(series: SeriesPlan, cls: ClassPlan): SeriesNeeds {
  const label = seriesLabel(series);
  // The properties that hold a column at a version, as ingest looks them up.
  const names = (name: string, version: number | null): string[] =>
    version === null ? [name] : [columnKey(name, version), name];
  const columns: { names: string[]; shown: string; role: string }[] = [];
  if (series.column !== null) {
    const { name, version } = series.column;
    columns.push({
      names: names(name, version),
      shown: columnKey(name, version),
      role: 'aggregates',
    });
  }
  if (series.by !== null) {
    const { name, version } = series.by;
    columns.push({
      names: names(name, version),
      shown: columnKey(name, version),
      role: "orders by ('by')",
    });
  }
  for (const f of series.filters) {
    columns.push({
      names: names(f.column, f.version),
      shown: columnKey(f.column, f.version),
      role: `filters on (\`${f.text}\`)`,
    });
  }
  let triggers: string[];
  if (series.column === null) triggers = [series.timeColumn];
  else if (series.column.version === null) triggers = [series.column.name];
  else {
    const { name, version } = series.column;
    const isDefault =
      cls.columns.find((c) => c.name === name)?.versions?.defaultVersion === version;
    triggers = isDefault ? [columnKey(name, version), name] : [columnKey(name, version)];
  }
  return { triggers, keys: series.groupKey, columns, label };
}
