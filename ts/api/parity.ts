/**
 * The parity check (docs/semantics.md section 11, "Parity check"): for sampled keys and
 * times, what the online store serves against the same windows recomputed from the raw
 * rows of the batch resolvers. The recompute reads each window as the online store does
 * at `t` (the bucket-overlap rule of section 5.1: the bucket holding `t` whole, stale
 * buckets left out), so on complete data the two mean the same thing and any gap beyond
 * the aggregation's tolerance is a difference: an event the store missed or counted
 * twice, a backfill that did not run, a bug.
 *
 * Tolerances are facts of the aggregations and live in the Rust catalog
 * (`crates/core/src/aggregation/catalog.rs`); the engine evaluates them per window
 * (`parityPointsAsync`), and this module only applies them by the catalog's kind.
 */
import type { BatchResolver } from '../batch/resolver.js';
import type { BucketEngine } from '../bucket-engine.js';
import { seededRandom } from '../cli/seeded-random.js';
import type { KeyPart, ListValue, SeriesBatchInput, WindowQueryResult } from '../native.js';
import { aggregationEntry, type Tolerance } from '../planner/aggregations.js';
import { findRead } from '../planner/lookup.js';
import type { Plan, ReadPlan, SeriesPlan } from '../planner/types.js';
import { InvalidQueryError } from './errors.js';
import type { ClassIngest } from './ingest.js';
import { rawRows } from './offline.js';
import type { FeatureValue, OutputRef, QueryPlanner } from './query.js';
import { NULL_CODE, timeOf } from './values.js';

/** Options of {@link Tessera.parity}. */
export interface ParityOptions {
  /** The feature windows to compare (default: every ungrouped one without a buffer). */
  readonly output?: readonly OutputRef[];
  /**
   * The times to compare at: Dates, Unix ms or ISO strings with a zone. Default: the
   * engine clock and the last millisecond of each of the three buckets before the one
   * holding it, at the smallest bucket size of the outputs compared.
   */
  readonly at?: readonly (Date | number | string)[];
  /** Keys compared per output, sampled from the store's and the raw rows' keys (default 100). */
  readonly sample?: number;
  /** Seed of the key sample (default 1): the same seed, store and rows give the same keys. */
  readonly seed?: number;
  /** Only the batch resolvers carrying every one of these tags are read. */
  readonly tags?: readonly string[];
}

/** A group key of a compared window, by the owner's input fields (`{ 'user.id': 7 }`). */
export type ParityKey = Readonly<Record<string, number | string>>;

/** How an aggregation's two values are judged: the catalog's tolerance kind. */
export type ToleranceKind = Tolerance['kind'];

/** One window where the online store and the recompute differ beyond the tolerance. */
export interface ParityDifference {
  readonly key: ParityKey;
  readonly time: Date;
  /** What the online store serves (the feature's value, its default where it has no data). */
  readonly online: FeatureValue;
  /** What the raw rows give. */
  readonly offline: FeatureValue;
  /**
   * The tolerance applied, in the unit of its kind: 0 (exact), a relative gap (rounding,
   * standard errors), a weight (weight share), a normalized rank gap (rank).
   */
  readonly tolerance: number;
  /**
   * The gap found, in the same unit (the difference for exact numbers; Infinity where one
   * side has no value or the items differ).
   */
  readonly gap: number;
  /**
   * Set when the window reads buckets from before its rule's buckets are complete
   * (docs/semantics.md section 9.4): the store was never given that part, and a backfill
   * from `from` to `to` would fill it.
   */
  readonly needsBackfill?: { readonly from: Date; readonly to: Date };
}

/** The comparison of one output. */
export interface ParityOutput {
  /** `user.total__604800__`. */
  readonly output: string;
  readonly feature: string;
  readonly window: string;
  /** The aggregation, as `aggregate list` names it (`sum`, `approx_count_distinct`). */
  readonly aggregation: string;
  readonly tolerance: { readonly kind: ToleranceKind; readonly rule: string };
  /** Keys sampled: from the store only, from the raw rows only, from both. */
  readonly keys: { readonly store: number; readonly raw: number; readonly both: number };
  /** Values compared: keys × times. */
  readonly compared: number;
  readonly differences: readonly ParityDifference[];
}

/** An output the check leaves out, and why. */
export interface ParitySkipped {
  readonly output: string;
  readonly reason: string;
}

/** The result of {@link Tessera.parity}. */
export interface ParityResult {
  readonly times: readonly Date[];
  readonly outputs: readonly ParityOutput[];
  readonly skipped: readonly ParitySkipped[];
  /** Values compared over every output. */
  readonly compared: number;
  /** Differences over every output. */
  readonly differences: number;
}

/** What the parity check needs of the open Tessera. */
export interface ParityContext {
  readonly plan: Plan;
  readonly planner: QueryPlanner;
  readonly engine: BucketEngine;
  readonly batchResolvers: readonly BatchResolver[];
  classIngest(namespace: string): ClassIngest;
}

const KNOWN_OPTIONS = new Set(['output', 'at', 'sample', 'seed', 'tags']);
const DEFAULT_SAMPLE = 100;
const DEFAULT_BUCKETS_BACK = 3;

/** Runs the parity check. */
export async function parity(
  context: ParityContext,
  options: ParityOptions = {},
): Promise<ParityResult> {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidQueryError('parity takes { output?, at?, sample?, seed?, tags? }');
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw new InvalidQueryError(`parity: unknown option '${key}'`);
  }
  const sample = wholeOption(options.sample, 'sample', DEFAULT_SAMPLE, 1);
  const seed = wholeOption(options.seed, 'seed', 1, 0);
  const tags = options.tags ?? [];
  const { plan, engine } = context;
  const seriesById = new Map(plan.series.map((s) => [s.id, s]));
  const skipped: ParitySkipped[] = [];
  const reads = chooseReads(plan, options.output, skipped);
  const times = parityTimes(options.at, reads, seriesById, engine);
  const outputs: ParityOutput[] = [];
  if (reads.length > 0) {
    // One read of the raw rows for every output: the recompute takes the rows of each
    // class over the union of the windows, to the end of the bucket holding the latest time.
    const windows = reads.map((r) => ({ seriesId: r.series, rule: r.rule, windowMs: r.windowMs }));
    const raw = await rawRows(context, [{ reads: windows }], Float64Array.from(times), tags, true);
    for (const read of reads) {
      const series = seriesById.get(read.series);
      if (series === undefined) continue;
      outputs.push(await compareOutput(context, read, series, raw, times, sample, seed));
    }
  }
  return {
    times: times.map((t) => new Date(t)),
    outputs,
    skipped,
    compared: outputs.reduce((n, o) => n + o.compared, 0),
    differences: outputs.reduce((n, o) => n + o.differences.length, 0),
  };
}

function wholeOption(value: unknown, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidQueryError(
      `parity: ${name} must be a whole number of at least ${min}, got ${String(value)}`,
    );
  }
  return value;
}

/** The reads to compare: the named outputs, or every ungrouped, unbuffered one. */
function chooseReads(
  plan: Plan,
  output: readonly OutputRef[] | undefined,
  skipped: ParitySkipped[],
): ReadPlan[] {
  const why = (read: ReadPlan): string | null => {
    if (read.groupBy.length > 0) {
      return 'a groupByWindowed feature is read for the groups a query names; the check compares ungrouped windows';
    }
    if (read.continuousBufferMs !== null && read.continuousBufferMs > 0) {
      return 'its continuous buffer is served from raw rows up to the query time, not from the bucket holding it';
    }
    return null;
  };
  if (output === undefined) {
    const chosen: ReadPlan[] = [];
    for (const read of plan.reads) {
      const reason = why(read);
      if (reason === null) chosen.push(read);
      else skipped.push({ output: read.canonical, reason });
    }
    return chosen;
  }
  if (!Array.isArray(output) || output.length === 0) {
    throw new InvalidQueryError('parity: output must be a non-empty list of feature windows');
  }
  const chosen = new Map<string, ReadPlan>();
  for (const ref of output) {
    const read = findRead(plan, ref as Parameters<typeof findRead>[1]);
    if (read === undefined) {
      throw new InvalidQueryError(
        `parity: ${typeof ref === 'string' ? `'${ref}'` : 'an output'} names no materialized feature window`,
      );
    }
    const reason = why(read);
    if (reason !== null) throw new InvalidQueryError(`parity: ${read.canonical}: ${reason}`);
    chosen.set(read.canonical, read);
  }
  return [...chosen.values()];
}

/** The times given, or the default: the clock and the ends of the buckets before it. */
function parityTimes(
  at: ParityOptions['at'],
  reads: readonly ReadPlan[],
  seriesById: ReadonlyMap<string, SeriesPlan>,
  engine: BucketEngine,
): number[] {
  if (at !== undefined) {
    if (!Array.isArray(at) || at.length === 0) {
      throw new InvalidQueryError('parity: at must be a non-empty list of times');
    }
    const scratch = { ms: 0 };
    return at.map((t, i) => {
      const problem = timeOf(t, scratch);
      if (problem !== null) throw new InvalidQueryError(`parity: at[${i}] ${problem}`);
      return Math.floor(scratch.ms);
    });
  }
  const clock = engine.clockMs();
  let size = Number.POSITIVE_INFINITY;
  let origin = 0;
  for (const read of reads) {
    const series = seriesById.get(read.series);
    const rule = series?.rules[read.rule];
    if (series !== undefined && rule !== undefined && rule.bucketSizeMs < size) {
      size = rule.bucketSizeMs;
      origin = series.bucketOriginMs;
    }
  }
  const times = [clock];
  if (Number.isFinite(size)) {
    const start = origin + Math.floor((clock - origin) / size) * size;
    for (let i = 0; i < DEFAULT_BUCKETS_BACK; i++) times.push(start - i * size - 1);
  }
  return times;
}

/** A group key as parts in the series' key order. */
type Parts = readonly (number | string)[];

/** Compares one output at every time for its sampled keys. */
async function compareOutput(
  context: ParityContext,
  read: ReadPlan,
  series: SeriesPlan,
  raw: readonly SeriesBatchInput[],
  times: readonly number[],
  sample: number,
  seed: number,
): Promise<ParityOutput> {
  const { engine, planner } = context;
  const rule = series.rules[read.rule];
  if (rule === undefined) throw new Error(`${read.canonical}: rule ${read.rule} not planned`);
  const kind = rule.aggregation.kind;
  const entry = aggregationEntry(kind);
  const toleranceKind: ToleranceKind = entry.tolerance.kind;

  // Keys: the store's and the raw rows', so a key only one side has is compared too.
  const stored = new Map<string, Parts>();
  for (const parts of engine.groupKeys(series.id)) stored.set(JSON.stringify(parts), parts);
  const rawKeys = keysOfRows(raw, series.id);
  const all = new Map([...stored, ...rawKeys]);
  const ids = [...all.keys()].sort();
  const random = seededRandom(seed);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [ids[i], ids[j]] = [ids[j] as string, ids[i] as string];
  }
  const chosen = ids.slice(0, sample).sort();
  const keys = { store: 0, raw: 0, both: 0 };
  for (const id of chosen) {
    const inStore = stored.has(id);
    const inRaw = rawKeys.has(id);
    if (inStore && inRaw) keys.both++;
    else if (inStore) keys.store++;
    else keys.raw++;
  }
  const fields = read.key.map((k) => `${read.namespace}.${k.ownerColumn}`);
  const keyParts = chosen.map((id) => all.get(id) as Parts);
  const input = (rows: readonly Parts[]): Record<string, (number | string)[]> =>
    Object.fromEntries(fields.map((f, i) => [f, rows.map((parts) => parts[i] as number | string)]));
  const output = [read.canonical];
  const aggregation = aggregationName(rule.aggregation);
  const base = {
    output: read.canonical,
    feature: read.version === null ? read.feature : `${read.feature}@${read.version}`,
    window: read.window,
    aggregation,
    tolerance: { kind: toleranceKind, rule: entry.tolerance.doc },
    keys,
  };
  if (keyParts.length === 0) return { ...base, compared: 0, differences: [] };

  // Online: one query per time, every key at once.
  const cells = keyParts.length * times.length;
  const onlineCells: Cell[] = new Array(cells);
  const onlineValues: FeatureValue[] = new Array(cells);
  const incomplete: ({ from: Date; to: Date } | undefined)[] = [];
  for (const [ti, t] of times.entries()) {
    const prepared = planner.prepare({ input: input(keyParts), output, now: t });
    const results = await engine.queryAsync(prepared.queries);
    const decoded = prepared.finish(results);
    const result = results[0] as WindowQueryResult;
    for (let k = 0; k < keyParts.length; k++) {
      onlineCells[ti * keyParts.length + k] = cellOf(result, k);
      onlineValues[ti * keyParts.length + k] = decoded.rows[k]?.values[0] ?? null;
    }
    const [c] = engine.windowCoverage(
      [{ seriesId: read.series, rule: read.rule, windowMs: read.windowMs }],
      t,
    );
    incomplete.push(
      c?.completeFromMs !== undefined && c.firstBucketStartMs < c.completeFromMs
        ? { from: new Date(c.firstBucketStartMs), to: new Date(c.completeFromMs) }
        : undefined,
    );
  }

  // Offline: every (time, key) cell in one recompute, as the store serves it.
  const rows = times.flatMap(() => keyParts);
  const prepared = planner.prepare({ input: input(rows), output });
  const query = prepared.queries[0];
  if (query === undefined) throw new Error(`${read.canonical}: no native query`);
  const online = new Float64Array(cells);
  for (let c = 0; c < cells; c++) {
    const cell = onlineCells[c];
    online[c] = cell?.kind === 'number' ? cell.value : Number.NaN;
  }
  const timesMs = Float64Array.from(times.flatMap((t) => keyParts.map(() => t)));
  const recomputed = await engine.parityPointsAsync({
    keys: query.keys,
    timesMs,
    reads: query.reads,
    raw: [...raw],
    online,
  });
  const decoded = prepared.finish([recomputed.answer]);
  const integer = read.resultType.kind === 'int';

  const differences: ParityDifference[] = [];
  for (let c = 0; c < cells; c++) {
    const tolerance = recomputed.tolerance[c] ?? 0;
    const a = onlineCells[c] as Cell;
    const b = cellOf(recomputed.answer, c);
    let gap: number;
    if (toleranceKind === 'rank' && a.kind === 'number' && b.kind === 'number') {
      gap = rankGap(recomputed.onlineRank, recomputed.recomputedRank, c);
    } else {
      gap = cellGap(a, b, toleranceKind, integer, tolerance);
    }
    if (gap <= tolerance) continue;
    const ti = Math.floor(c / keyParts.length);
    const parts = keyParts[c % keyParts.length] as Parts;
    const needsBackfill = incomplete[ti];
    differences.push({
      key: Object.fromEntries(fields.map((f, i) => [f, parts[i] as number | string])),
      time: new Date(times[ti] ?? Number.NaN),
      online: onlineValues[c] ?? null,
      offline: decoded.rows[c]?.values[0] ?? null,
      tolerance,
      gap,
      ...(needsBackfill === undefined ? {} : { needsBackfill }),
    });
  }
  return { ...base, compared: cells, differences };
}

/** The distinct group keys of a series' raw rows (rows with a null part belong to none). */
function keysOfRows(raw: readonly SeriesBatchInput[], seriesId: string): Map<string, Parts> {
  const out = new Map<string, Parts>();
  for (const batch of raw) {
    if (batch.seriesId !== seriesId) continue;
    const n = batch.selection?.length ?? batch.timestampsMs.length;
    for (let i = 0; i < n; i++) {
      const row = batch.selection === undefined ? i : (batch.selection[i] as number);
      const parts = batch.keys.map((k) => keyPartAt(k, row));
      if (parts.some((p) => p === null)) continue;
      const id = JSON.stringify(parts);
      if (!out.has(id)) out.set(id, parts as Parts);
    }
  }
  return out;
}

function keyPartAt(part: KeyPart, row: number): number | string | null {
  if (part.ints !== undefined) {
    const v = part.ints[row];
    return v === undefined || Number.isNaN(v) ? null : v;
  }
  const code = part.codes?.[row];
  if (code === undefined || code === NULL_CODE) return null;
  return part.strings?.[code] ?? null;
}

/** One engine cell: nothing, a number, items (with weights), or a vector. */
type Cell =
  | { readonly kind: 'none' }
  | { readonly kind: 'number'; readonly value: number }
  | {
      readonly kind: 'items';
      readonly items: readonly (number | string)[];
      readonly weights: readonly number[] | undefined;
    }
  | { readonly kind: 'vector'; readonly value: readonly number[] };

function cellOf(result: WindowQueryResult, cell: number): Cell {
  const list: ListValue | undefined = result.lists.find((l) => l.index === cell);
  if (list?.vector !== undefined) return { kind: 'vector', value: list.vector };
  if (list?.items !== undefined) {
    return { kind: 'items', items: list.items, weights: list.weights };
  }
  const value = result.numbers[cell] ?? Number.NaN;
  return Number.isNaN(value) ? { kind: 'none' } : { kind: 'number', value };
}

/**
 * The gap between two cells in the unit of the tolerance kind (the difference for exact
 * numbers, a relative gap for rounding and counts, a weight for top-k): 0 when they
 * agree exactly, Infinity when they cannot be compared (one side has nothing, other items).
 */
function cellGap(
  a: Cell,
  b: Cell,
  kind: ToleranceKind,
  integer: boolean,
  tolerance: number,
): number {
  if (a.kind === 'none' || b.kind === 'none') return a.kind === b.kind ? 0 : Infinity;
  if (a.kind === 'number' && b.kind === 'number') {
    if (a.value === b.value) return 0;
    // Exact values (and integer results, which rounding leaves alone) differ by their
    // difference; the tolerance there is 0.
    if (kind === 'exact' || (kind === 'rounding' && integer)) return Math.abs(a.value - b.value);
    return relativeGap(a.value, b.value);
  }
  if (a.kind === 'vector' && b.kind === 'vector') {
    if (a.value.length !== b.value.length) return Infinity;
    let gap = 0;
    for (let i = 0; i < a.value.length; i++) {
      const x = a.value[i] as number;
      const y = b.value[i] as number;
      if (x === y) continue;
      gap = Math.max(gap, kind === 'exact' ? Math.abs(x - y) : relativeGap(x, y));
    }
    return gap;
  }
  if (a.kind === 'items' && b.kind === 'items') {
    if (kind === 'weightShare') return topKGap(a, b, tolerance);
    const same =
      a.items.length === b.items.length &&
      a.items.every((x, i) => x === b.items[i]) &&
      (a.weights ?? []).every((w, i) => w === b.weights?.[i]);
    return same ? 0 : Infinity;
  }
  return Infinity;
}

function relativeGap(x: number, y: number): number {
  const scale = Math.max(Math.abs(x), Math.abs(y));
  return scale === 0 ? 0 : Math.abs(x - y) / scale;
}

/**
 * Top-k lists: an item on both lists may differ in weight by the tolerance (each
 * estimate overshoots its true weight by at most the error bound); an item on one list
 * only may weigh no more than the tolerance above what the other list leaves out (its
 * lightest item when it is full, nothing otherwise) plus the tolerance. The gap is the
 * largest excess over those allowances plus the tolerance, so it is at most the
 * tolerance exactly when the lists agree.
 */
function topKGap(
  a: Extract<Cell, { kind: 'items' }>,
  b: Extract<Cell, { kind: 'items' }>,
  tolerance: number,
): number {
  const weightsOf = (c: typeof a): Map<number | string, number> =>
    new Map(c.items.map((item, i) => [item, c.weights?.[i] ?? Number.NaN]));
  const wa = weightsOf(a);
  const wb = weightsOf(b);
  const full = Math.max(a.items.length, b.items.length);
  const lightest = (m: Map<number | string, number>, length: number): number =>
    length < full ? 0 : Math.min(...m.values());
  let excess = 0;
  const check = (
    mine: Map<number | string, number>,
    theirs: Map<number | string, number>,
    theirLength: number,
  ) => {
    for (const [item, w] of mine) {
      const other = theirs.get(item);
      const allowed =
        other === undefined
          ? Math.max(lightest(theirs, theirLength), tolerance) + tolerance
          : other + tolerance;
      const low = other === undefined ? 0 : other - tolerance;
      if (Number.isNaN(w)) excess = Infinity;
      else excess = Math.max(excess, w - allowed, low - w);
    }
  };
  check(wa, wb, b.items.length);
  check(wb, wa, a.items.length);
  return excess > 0 ? tolerance + excess : 0;
}

/** The gap between two normalized rank ranges (0 when they overlap). */
function rankGap(online: Float64Array, recomputed: Float64Array, cell: number): number {
  const a = [online[cell * 2] ?? Number.NaN, online[cell * 2 + 1] ?? Number.NaN];
  const b = [recomputed[cell * 2] ?? Number.NaN, recomputed[cell * 2 + 1] ?? Number.NaN];
  if ([...a, ...b].some(Number.isNaN)) return Infinity;
  return Math.max(0, (a[0] as number) - (b[1] as number), (b[0] as number) - (a[1] as number));
}

/** `sum`, `approx_top_k(10)`, `approx_count_distinct(lgK 11)`, ... */
function aggregationName(a: SeriesPlan['rules'][number]['aggregation']): string {
  const args: string[] = [];
  if (a.n !== undefined) args.push(String(a.n));
  if (a.k !== undefined) args.push(String(a.k));
  if (a.quantile !== undefined) args.push(String(a.quantile));
  if (a.lgK !== undefined) args.push(`lgK ${a.lgK}`);
  if (a.sketchSize !== undefined) args.push(`size ${a.sketchSize}`);
  return args.length === 0 ? a.kind : `${a.kind}(${args.join(', ')})`;
}
