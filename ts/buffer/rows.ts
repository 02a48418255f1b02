/**
 * The raw rows of continuous buffers (docs/semantics.md section 9.6): for each native
 * query with buffered reads, asks the engine which raw range each read needs at the
 * query's now, reads the rows of the query's keys in the union of those ranges from the
 * class's online resolver (or, without one, its batch resolvers), and converts them
 * through the one ingest conversion into the query's `raw` batches. The engine then
 * folds, per read, the rows of its key and range.
 */
import type { ClassIngest } from '../api/ingest.js';
import type { BufferedRowsNeed } from '../api/query.js';
import { batchLength, resolversBatches } from '../batch/backfill.js';
import { type BatchResolver, type BatchRows, badRowText } from '../batch/resolver.js';
import type { BucketEngine } from '../bucket-engine.js';
import { TesseraError } from '../errors.js';
import type { SeriesBatchInput, WindowQuery } from '../native.js';
import type { Plan } from '../planner/types.js';
import type { OnlineResolver, OnlineRowsRequest } from './online-resolver.js';

/** A continuous buffer could not read its raw rows; the query is not answered. */
export class BufferRowsError extends TesseraError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BUFFER_ROWS_FAILED', message, options);
  }
}

/** Where buffers read raw rows. */
export interface BufferSources {
  readonly plan: Plan;
  readonly engine: BucketEngine;
  readonly onlineResolvers: readonly OnlineResolver[];
  readonly batchResolvers: readonly BatchResolver[];
  classIngest(namespace: string): ClassIngest;
}

/** Which resolvers serve a class's buffer: its online resolver, else its batch resolvers. */
export function bufferResolvers(
  sources: Pick<BufferSources, 'onlineResolvers' | 'batchResolvers'>,
  namespace: string,
): { online: OnlineResolver } | { batch: readonly BatchResolver[] } | null {
  const online = sources.onlineResolvers.find((r) => r.namespace === namespace);
  if (online !== undefined) return { online };
  const batch = sources.batchResolvers.filter((r) => r.namespace === namespace);
  return batch.length > 0 ? { batch } : null;
}

/** Fills `raw` of every query in `needs` with the rows its buffered reads take. */
export async function attachBufferRows(
  sources: BufferSources,
  queries: WindowQuery[],
  needs: readonly BufferedRowsNeed[],
): Promise<void> {
  const plans = sources.engine.bufferPlans(needs.map((n) => queries[n.query] as WindowQuery));
  for (const [i, need] of needs.entries()) {
    const query = queries[need.query] as WindowQuery;
    const raw: SeriesBatchInput[] = [];
    for (const request of need.requests) {
      let from = Number.POSITIVE_INFINITY;
      let to = Number.NEGATIVE_INFINITY;
      for (const p of plans[i]?.plans ?? []) {
        const read = query.reads[p.read];
        if (read === undefined || !request.series.has(read.seriesId)) continue;
        if (p.rawFromMs > p.rawToMs) continue;
        from = Math.min(from, p.rawFromMs);
        to = Math.max(to, p.rawToMs);
      }
      const keyCount = Object.values(request.keys)[0]?.length ?? 0;
      if (from > to || keyCount === 0) continue;
      const ingest = sources.classIngest(request.namespace);
      const range: OnlineRowsRequest = {
        keys: request.keys as OnlineRowsRequest['keys'],
        lowerBound: new Date(from),
        upperBound: new Date(to),
        lowerBoundMs: from,
        upperBoundMs: to,
      };
      for await (const { batch, resolver, offset } of classRows(
        sources,
        request.namespace,
        range,
      )) {
        try {
          raw.push(...ingest.prepare(batch, undefined, request.series).batches);
        } catch (error) {
          throw bufferRowError(need.outputs, resolver, error, offset);
        }
      }
    }
    query.raw = raw;
  }
}

/** The rows of `request` from the class's resolvers, batch by batch. */
async function* classRows(
  sources: BufferSources,
  namespace: string,
  request: OnlineRowsRequest,
): AsyncGenerator<{ batch: BatchRows; resolver: string; offset: number }> {
  const resolvers = bufferResolvers(sources, namespace);
  if (resolvers === null) {
    // Tessera.open refuses a buffered feature without resolvers; reaching here is a bug.
    throw new BufferRowsError(`no online or batch resolver reads ${namespace}`);
  }
  if ('online' in resolvers) {
    const { online } = resolvers;
    let offset = 0;
    let given: Awaited<ReturnType<OnlineResolver['rows']>>;
    try {
      given = await online.rows(request);
    } catch (error) {
      throw new BufferRowsError(
        `online resolver ${online.name} failed: ${(error as Error).message}`,
        { cause: error },
      );
    }
    for await (const batch of batchesOf(given)) {
      yield { batch, resolver: `online resolver ${online.name}`, offset };
      offset += batchLength(batch);
    }
    return;
  }
  // A batch resolver is asked for the range (its end exclusive, so one past `now`) and
  // returns the rows of every key; the engine folds those of the query's keys alone.
  const run = {
    lowerBound: request.lowerBound,
    upperBound: new Date(request.upperBoundMs + 1),
    lowerBoundMs: request.lowerBoundMs,
    upperBoundMs: request.upperBoundMs + 1,
    tags: [],
  };
  for await (const { batch, resolver, offset } of resolversBatches(
    resolvers.batch,
    sources.plan,
    run,
  )) {
    yield { batch, resolver: `batch resolver ${resolver.name}`, offset };
  }
}

function isIterable(value: unknown): value is Iterable<unknown> | AsyncIterable<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    (Symbol.asyncIterator in value || Symbol.iterator in value)
  );
}

/** An online resolver's answer as batches: one batch of rows or columns, or an iterable of them. */
async function* batchesOf(
  given: Awaited<ReturnType<OnlineResolver['rows']>>,
): AsyncGenerator<BatchRows> {
  if (Array.isArray(given) || !isIterable(given)) {
    yield given as BatchRows;
    return;
  }
  for await (const batch of given as AsyncIterable<BatchRows>) yield batch;
}

function bufferRowError(
  outputs: readonly string[],
  resolver: string,
  error: unknown,
  offset: number,
): Error {
  const what = `continuous buffer of ${outputs.join(', ')}`;
  const problem = badRowText(resolver, error, offset) ?? `${resolver}: ${(error as Error).message}`;
  return new BufferRowsError(`${what}: ${problem}`, { cause: error });
}
