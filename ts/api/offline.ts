/**
 * Point-in-time (offline) queries (docs/semantics.md section 11): feature values as they
 * were at each input row's own time, for training sets. This version serves the
 * materialized mode: each time is binned down to the edge of the bucket holding it, per
 * bucket size, and the window is merged from the complete buckets before that edge, so
 * nothing at or after the time is ever read. A window that reaches buckets retention
 * removed is an error naming the output, the point and the range.
 */
import type { BucketEngine } from '../bucket-engine.js';
import type { WindowQueryResult } from '../native.js';
import { InvalidQueryError } from './errors.js';
import type { OutputRef, QueryInput, QueryPlanner, QueryResult, QueryRow } from './query.js';
import { timeOf } from './values.js';

/** How an offline query computes its windows. */
export interface OfflinePlannerOptions {
  /**
   * Bin each time down to its bucket edge and merge the complete buckets of the window
   * from the store. Required in this version: recomputing windows from raw rows is not
   * built yet.
   */
  readonly useMaterializedOfflineQuery?: boolean;
  /** Round each window's lower bound down to a bucket edge (raw recompute; not built yet). */
  readonly alignOfflineChalkWindowWithMaterialization?: boolean;
  /** Read offline tiles (not built yet: this version has no tile store). */
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
  /** Attach an explanation (the buckets merged) to every value. */
  readonly explain?: boolean;
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

const KNOWN_OPTIONS = new Set(['input', 'inputTimes', 'output', 'plannerOptions', 'explain']);

/** Runs an offline query through `planner` and the engine's point reads. */
export async function offlineQuery<const O extends readonly OutputRef[]>(
  planner: QueryPlanner,
  engine: BucketEngine,
  request: OfflineQueryRequest<O>,
): Promise<OfflineQueryResult<O>> {
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
  checkPlannerOptions(request.plannerOptions);
  const prepared = planner.prepare({
    input: request.input,
    output: request.output,
    ...(request.explain === true ? { explain: true } : {}),
  });
  const times = inputTimes(request.inputTimes, prepared.rows);
  const results: WindowQueryResult[] = [];
  for (const [q, query] of prepared.queries.entries()) {
    const point = await engine.queryPointsAsync({
      keys: query.keys,
      timesMs: times,
      reads: query.reads,
      ...(request.explain === true ? { explain: true } : {}),
    });
    const first = point.stale[0];
    if (first !== undefined) {
      const reads = query.reads.length;
      const row = Math.floor(first.cell / reads);
      const output = prepared.readOutputs[q]?.[first.cell % reads] ?? '';
      throw new InvalidQueryError(
        `offline query: ${output} at ${iso(times[row] ?? Number.NaN)} (input row ${row}) reads buckets from ${iso(first.firstBucketStartMs)}, which retention removed (the store keeps buckets from ${iso(first.keptFromMs)}); ${point.stale.length === 1 ? '1 value of this query reaches' : `${point.stale.length} values of this query reach`} removed buckets`,
      );
    }
    results.push(point.answer);
  }
  const result = prepared.finish(results);
  return {
    outputs: result.outputs,
    rows: result.rows.map((row, i) => ({ ...row, time: new Date(times[i] ?? Number.NaN) })),
  };
}

function iso(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);
}

/** Refuses the modes this version does not serve, naming the option. */
function checkPlannerOptions(options: OfflinePlannerOptions | undefined): void {
  const given = (options ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (
      ![
        'useMaterializedOfflineQuery',
        'alignOfflineChalkWindowWithMaterialization',
        'useTileStore',
      ].includes(key)
    ) {
      throw new InvalidQueryError(`offlineQuery: unknown planner option '${key}'`);
    }
  }
  if (given.useTileStore === true) {
    throw new InvalidQueryError(
      'offlineQuery: plannerOptions.useTileStore reads offline tiles, and this version of Tessera has no tile store',
    );
  }
  if (given.useMaterializedOfflineQuery !== true) {
    throw new InvalidQueryError(
      'offlineQuery: this version serves point-in-time queries from the stored buckets only; pass plannerOptions.useMaterializedOfflineQuery: true (recomputing windows from raw rows, the default mode, is not built yet)',
    );
  }
  if (given.alignOfflineChalkWindowWithMaterialization === true) {
    throw new InvalidQueryError(
      'offlineQuery: plannerOptions.alignOfflineChalkWindowWithMaterialization aligns a raw recompute, which this version does not build; the materialized mode is aligned to bucket edges already',
    );
  }
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
