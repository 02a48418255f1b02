/**
 * Point-in-time (offline) queries (docs/semantics.md section 11): feature values as they
 * were at each input row's own time, for training sets. Three modes:
 * - the default recomputes each window `(t - W, t]` exactly from raw rows read through
 *   the batch resolvers of the aggregated class, folded by the engine with the ingest's
 *   own fold (the same states and sketches as the stored buckets);
 * - `alignOfflineChalkWindowWithMaterialization` rounds each window's start down to a
 *   bucket edge, so the answer is what the store would serve at `t` from complete data;
 * - `useMaterializedOfflineQuery` bins each time down to its bucket edge and merges the
 *   complete buckets of the store before it; a window that reaches buckets retention
 *   removed is an error naming the output, the point and the range.
 * No mode reads anything after the input time.
 */
import { resolversBatches } from '../batch/backfill.js';
import { type BatchResolver, badRowText, selectedByTags } from '../batch/resolver.js';
import type { BucketEngine } from '../bucket-engine.js';
import type {
  KeyPart,
  ListValue,
  SeriesBatchInput,
  StaleWindowOutput,
  ValueExplanation,
  WindowQuery,
  WindowQueryResult,
} from '../native.js';
import { summarize } from '../planner/series-summary.js';
import type { Plan } from '../planner/types.js';
import { InvalidQueryError } from './errors.js';
import type { ClassIngest } from './ingest.js';
import type {
  OutputRef,
  QueryInput,
  QueryPlanner,
  QueryResult,
  QueryRow,
  WindowedNeed,
} from './query.js';
import { timeOf } from './values.js';

/** How an offline query computes its windows. */
export interface OfflinePlannerOptions {
  /**
   * Bin each time down to its bucket edge and merge the complete buckets of the window
   * from the store, instead of recomputing it from raw rows.
   */
  readonly useMaterializedOfflineQuery?: boolean;
  /**
   * Recompute from raw rows with each window's start rounded down to a bucket edge: the
   * value the store would serve at the time from complete data.
   */
  readonly alignOfflineChalkWindowWithMaterialization?: boolean;
  /**
   * With `useMaterializedOfflineQuery`: merge the buckets from the offline tiles
   * (docs/semantics.md section 11.2) instead of the store. A window whose buckets no tile
   * covers is an error naming it.
   */
  readonly useTileStore?: boolean;
}

/** A point-in-time query. */
export interface OfflineQueryRequest<O extends readonly OutputRef[]> {
  /** The keys, as for {@link Tessera.query}: one result row per key. */
  readonly input: QueryInput;
  /** One time per input key: Dates, Unix milliseconds or ISO strings with a zone. */
  readonly inputTimes: readonly (Date | number | string)[] | Float64Array;
  /** The feature windows to read. */
  readonly output: O;
  readonly plannerOptions?: OfflinePlannerOptions;
  /** Raw modes: only batch resolvers carrying every one of these tags are read. */
  readonly tags?: readonly string[];
  /** Materialized mode: attach an explanation (the buckets merged) to every value. */
  readonly explain?: boolean;
}

/** What an offline query needs of the open Tessera. */
export interface OfflineContext {
  readonly plan: Plan;
  readonly planner: QueryPlanner;
  readonly engine: BucketEngine;
  readonly batchResolvers: readonly BatchResolver[];
  /** Where offline tiles are read. */
  readonly tileDirectory: string;
  /** The values of windowed stream resolvers' outputs at each row's time. */
  windowedValues(
    needs: readonly WindowedNeed[],
    atMs: (row: number) => number,
  ): Promise<unknown[][]>;
  classIngest(namespace: string): ClassIngest;
}

/** One row of an offline query's result: a query row with its input time. */
export interface OfflineQueryRow<O extends readonly OutputRef[]> extends QueryRow<O> {
  /** The row's input time. */
  readonly time: Date;
}

/** The answer to an offline query: one row per input key, in input order. */
export interface OfflineQueryResult<O extends readonly OutputRef[]>
  extends Omit<QueryResult<O>, 'rows'> {
  readonly rows: readonly OfflineQueryRow<O>[];
}

const KNOWN_OPTIONS = new Set([
  'input',
  'inputTimes',
  'output',
  'plannerOptions',
  'tags',
  'explain',
]);

/** Runs an offline query: the engine's point reads, or its recompute from raw rows. */
export async function offlineQuery<const O extends readonly OutputRef[]>(
  context: OfflineContext,
  request: OfflineQueryRequest<O>,
): Promise<OfflineQueryResult<O>> {
  const { planner, engine } = context;
  if (typeof request !== 'object' || request === null) {
    throw new InvalidQueryError(
      'offlineQuery takes { input, inputTimes, output, plannerOptions? }',
    );
  }
  for (const key of Object.keys(request)) {
    if (!KNOWN_OPTIONS.has(key)) {
      throw new InvalidQueryError(`offlineQuery: unknown option '${key}'`);
    }
  }
  const mode = modeOf(request.plannerOptions);
  if (mode !== 'materialized' && mode !== 'tiles' && request.explain === true) {
    throw new InvalidQueryError(
      'offlineQuery: explain describes merged buckets, and a recompute from raw rows merges none; use it with plannerOptions.useMaterializedOfflineQuery',
    );
  }
  if ((mode === 'materialized' || mode === 'tiles') && request.tags !== undefined) {
    throw new InvalidQueryError(
      'offlineQuery: tags choose the batch resolvers of a recompute from raw rows; the materialized mode reads the store',
    );
  }
  const prepared = planner.prepare({
    input: request.input,
    output: request.output,
    ...(request.explain === true ? { explain: true } : {}),
  });
  const times = inputTimes(request.inputTimes, prepared.rows);
  // Windows of windowed stream resolvers: the value as of each row's own time, in every
  // mode (a tumbling period's value is observed at its end).
  const windowed =
    prepared.windowed.length === 0
      ? []
      : await context.windowedValues(prepared.windowed, (row) => times[row] ?? Number.NaN);
  // Each row is built with its time: a million-point training set makes no second row.
  const finish = (results: WindowQueryResult[]): OfflineQueryResult<O> =>
    prepared.finish(results, windowed, times) as OfflineQueryResult<O>;
  if (mode === 'tiles') {
    const results: WindowQueryResult[] = [];
    for (const [q, query] of prepared.queries.entries()) {
      const found = await engine.queryTilesAsync({
        keys: query.keys,
        timesMs: times,
        reads: query.reads,
        tileDir: context.tileDirectory,
        ...(request.explain === true ? { explain: true } : {}),
      });
      const first = found.uncovered[0];
      if (first !== undefined) {
        const reads = query.reads.length;
        const row = Math.floor(first.cell / reads);
        const read = query.reads[first.cell % reads];
        const output = prepared.readOutputs[q]?.[first.cell % reads] ?? '';
        throw new InvalidQueryError(
          `offline query: ${output} (${ruleText(context.plan, read?.seriesId, read?.rule)}) at ${iso(times[row] ?? Number.NaN)} (input row ${row}) needs buckets from ${iso(first.fromMs)} to ${iso(first.toMs)}, which no offline tile in ${context.tileDirectory} covers; ${found.uncovered.length === 1 ? '1 value of this query reaches' : `${found.uncovered.length} values of this query reach`} uncovered buckets (write tiles with tessera aggregate backfill --store-offline)`,
        );
      }
      results.push(found.answer);
    }
    return finish(results);
  }
  if (mode !== 'materialized') {
    const raw = await rawRows(context, prepared.queries, times, request.tags ?? []);
    const results: WindowQueryResult[] = [];
    for (const query of prepared.queries) {
      const parts: WindowQueryResult[] = [];
      for (const chunk of chunksOf(query, times)) {
        parts.push(
          await engine.recomputePointsAsync({
            ...chunk,
            raw,
            aligned: mode === 'aligned',
          }),
        );
      }
      results.push(joined(parts, query.reads.length));
    }
    return finish(results);
  }
  const results: WindowQueryResult[] = [];
  for (const [q, query] of prepared.queries.entries()) {
    const parts: WindowQueryResult[] = [];
    let stale = 0;
    let first: StaleWindowOutput | undefined;
    const reads = query.reads.length;
    for (const chunk of chunksOf(query, times)) {
      const point = await engine.queryPointsAsync({
        ...chunk,
        ...(request.explain === true ? { explain: true } : {}),
      });
      const found = point.stale[0];
      if (first === undefined && found !== undefined) {
        first = { ...found, cell: found.cell + chunk.firstRow * reads };
      }
      stale += point.stale.length;
      parts.push(point.answer);
    }
    if (first !== undefined) {
      const row = Math.floor(first.cell / reads);
      const output = prepared.readOutputs[q]?.[first.cell % reads] ?? '';
      throw new InvalidQueryError(
        `offline query: ${output} at ${iso(times[row] ?? Number.NaN)} (input row ${row}) reads buckets from ${iso(first.firstBucketStartMs)}, which retention removed (the store keeps buckets from ${iso(first.keptFromMs)}); ${stale === 1 ? '1 value of this query reaches' : `${stale} values of this query reach`} removed buckets`,
      );
    }
    results.push(joined(parts, reads));
  }
  return finish(results);
}

/**
 * Points per native call (docs/semantics.md section 11): what a call holds beyond its
 * result (the points sorted by key, one key's buckets, the computed values before they
 * cross to JavaScript) is bounded by one chunk, however many points are asked. Each
 * chunk reads the buckets of its own keys, so a chunk should hold several points per
 * key. Not part of the package's exports; the specs lower it to check that chunks join
 * into the same answer.
 */
export const offlineChunking = { points: 1 << 20 };

/** The rows of `query` in chunks of at most `offlineChunking.points`, as views. */
function* chunksOf(
  query: WindowQuery,
  times: Float64Array,
): Generator<{
  firstRow: number;
  keys: KeyPart[];
  timesMs: Float64Array;
  reads: WindowQuery['reads'];
}> {
  const rows = times.length;
  const size = Math.max(1, Math.floor(offlineChunking.points));
  for (let from = 0; ; from += size) {
    const to = Math.min(rows, from + size);
    const whole = from === 0 && to === rows;
    yield {
      firstRow: from,
      keys: whole
        ? query.keys
        : query.keys.map((part) => ({
            ...part,
            ...(part.ints === undefined ? {} : { ints: part.ints.subarray(from, to) }),
            ...(part.codes === undefined ? {} : { codes: part.codes.subarray(from, to) }),
          })),
      timesMs: whole ? times : times.subarray(from, to),
      reads: query.reads,
    };
    if (to >= rows) return;
  }
}

/** The answers of consecutive chunks of one query as one answer. */
function joined(parts: readonly WindowQueryResult[], reads: number): WindowQueryResult {
  const [only] = parts;
  if (parts.length === 1 && only !== undefined) return only;
  const rows = parts.reduce((n, p) => n + p.rows, 0);
  const numbers = new Float64Array(rows * reads);
  const lists: ListValue[] = [];
  const explained = parts.some((p) => p.explanations !== undefined);
  const explanations: ValueExplanation[] = [];
  let offset = 0;
  for (const part of parts) {
    numbers.set(part.numbers, offset);
    for (const list of part.lists) lists.push({ ...list, index: list.index + offset });
    for (const e of part.explanations ?? []) explanations.push(e);
    offset += part.rows * reads;
  }
  return { rows, reads, numbers, lists, ...(explained ? { explanations } : {}) };
}

/**
 * The raw rows the recompute needs: for each aggregated class, the rows of its batch
 * resolvers (chosen by tags) from the earliest window start to the latest time (for
 * `parity`, to the end of the largest bucket holding it, as the parity check reads
 * windows: docs/semantics.md section 11, "Parity check"), as the ingest's batches of the series read. Held in memory for the call.
 */
export async function rawRows(
  context: Pick<OfflineContext, 'plan' | 'batchResolvers' | 'classIngest'>,
  queries: readonly Pick<WindowQuery, 'reads'>[],
  times: Float64Array,
  tags: readonly string[],
  parity = false,
): Promise<SeriesBatchInput[]> {
  const caller = parity ? 'parity' : 'offlineQuery';
  if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) {
    throw new InvalidQueryError(`${caller}: tags must be a list of strings`);
  }
  const series = new Map(context.plan.series.map((s) => [s.id, s]));
  const byClass = new Map<string, { ids: Set<string>; reach: number; bucket: number }>();
  for (const query of queries) {
    for (const read of query.reads) {
      const s = series.get(read.seriesId);
      if (s === undefined) continue;
      const rule = s.rules[read.rule];
      const reach = read.windowMs + (rule?.bucketSizeMs ?? 0);
      const entry = byClass.get(s.namespace) ?? { ids: new Set<string>(), reach: 0, bucket: 0 };
      entry.ids.add(s.id);
      entry.reach = Math.max(entry.reach, reach);
      entry.bucket = Math.max(entry.bucket, rule?.bucketSizeMs ?? 0);
      byClass.set(s.namespace, entry);
    }
  }
  let latest = Number.NEGATIVE_INFINITY;
  let earliest = Number.POSITIVE_INFINITY;
  for (const t of times) {
    latest = Math.max(latest, t);
    earliest = Math.min(earliest, t);
  }
  const raw: SeriesBatchInput[] = [];
  if (times.length === 0) return raw;
  for (const [namespace, { ids, reach, bucket }] of byClass) {
    const resolvers = context.batchResolvers.filter(
      (r) => r.namespace === namespace && selectedByTags(r, tags),
    );
    if (resolvers.length === 0) {
      throw new InvalidQueryError(
        `${caller}: recomputing from raw rows reads ${namespace}, and no batch resolver of ${namespace}${tags.length > 0 ? ` with tags ${tags.join(', ')}` : ''} was given to Tessera.open${parity ? '' : ' (or use plannerOptions.useMaterializedOfflineQuery)'}`,
      );
    }
    // A window reaches back at most its length and one bucket (aligned); the run's end
    // is exclusive, so one past the latest time. Rows after a point's own time are
    // skipped by the engine.
    const lowerBoundMs = Math.floor(earliest) - reach;
    const upperBoundMs = Math.floor(latest) + (parity ? Math.max(bucket, 1) : 1);
    const run = {
      lowerBound: new Date(lowerBoundMs),
      upperBound: new Date(upperBoundMs),
      lowerBoundMs,
      upperBoundMs,
      tags,
    };
    const ingest = context.classIngest(namespace);
    for await (const { batch, resolver, offset } of resolversBatches(
      resolvers,
      context.plan,
      run,
    )) {
      try {
        raw.push(...ingest.prepare(batch, undefined, ids).batches);
      } catch (error) {
        const bad = badRowText(`batch resolver ${resolver.name}`, error, offset);
        throw bad === null
          ? error
          : new InvalidQueryError(`${parity ? 'parity' : 'offline query'}: ${bad}`);
      }
    }
  }
  return raw;
}

function iso(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);
}

/** A rule of the plan as `sum per 1d of transaction.amount by user_id`. */
function ruleText(plan: Plan, seriesId: string | undefined, rule: number | undefined): string {
  const series = plan.series.find((s) => s.id === seriesId);
  if (series === undefined || rule === undefined) return `series ${seriesId ?? '?'}`;
  const summary = summarize(series);
  const name = summary.description.slice(0, summary.description.indexOf(':'));
  return `rule ${summary.aggregations[rule] ?? rule} of ${name}`;
}

/** The mode the planner options ask for; refuses unknown options. */
function modeOf(
  options: OfflinePlannerOptions | undefined,
): 'exact' | 'aligned' | 'materialized' | 'tiles' {
  const given = (options ?? {}) as Record<string, unknown>;
  const known = [
    'useMaterializedOfflineQuery',
    'alignOfflineChalkWindowWithMaterialization',
    'useTileStore',
  ];
  for (const [key, value] of Object.entries(given)) {
    if (!known.includes(key)) {
      throw new InvalidQueryError(`offlineQuery: unknown planner option '${key}'`);
    }
    if (typeof value !== 'boolean') {
      throw new InvalidQueryError(`offlineQuery: plannerOptions.${key} must be true or false`);
    }
  }
  if (given.useTileStore === true) {
    if (given.useMaterializedOfflineQuery !== true) {
      throw new InvalidQueryError(
        'offlineQuery: plannerOptions.useTileStore reads the materialized windows from offline tiles; give useMaterializedOfflineQuery: true with it',
      );
    }
    return 'tiles';
  }
  // The materialized mode is aligned to bucket edges by construction.
  if (given.useMaterializedOfflineQuery === true) return 'materialized';
  return given.alignOfflineChalkWindowWithMaterialization === true ? 'aligned' : 'exact';
}

/** The input times as Unix ms, one per key row. */
function inputTimes(
  given: OfflineQueryRequest<readonly OutputRef[]>['inputTimes'],
  rows: number,
): Float64Array {
  if (
    given === undefined ||
    given === null ||
    typeof (given as { length?: unknown }).length !== 'number'
  ) {
    throw new InvalidQueryError('offlineQuery: inputTimes must give one time per input key');
  }
  if (given.length !== rows) {
    throw new InvalidQueryError(
      `offlineQuery: inputTimes has ${given.length} times for ${rows} input keys; give one time per key`,
    );
  }
  if (given instanceof Float64Array) {
    const bad = given.findIndex((t) => !Number.isFinite(t));
    if (bad >= 0)
      throw new InvalidQueryError(`offlineQuery: inputTimes[${bad}] is ${given[bad]}, not a time`);
    return given;
  }
  const out = new Float64Array(rows);
  const scratch = { ms: 0 };
  for (let i = 0; i < rows; i++) {
    const problem = timeOf(given[i], scratch);
    if (problem !== null) throw new InvalidQueryError(`offlineQuery: inputTimes[${i}] ${problem}`);
    out[i] = scratch.ms;
  }
  return out;
}
