/**
 * Online resolvers: where a continuous buffer (docs/semantics.md section 9.6) reads the
 * raw rows of the most recent part of a window at query time, for the keys a query
 * asks about, e.g. from an application database. A class with a buffered feature and no
 * online resolver has its buffer read through its batch resolvers instead.
 */

import { BatchResolverError, type BatchRows } from '../batch/resolver.js';
import { type AnyFeatureClass, definitionOf, isFeatureClass } from '../dsl/feature-class.js';

/** What a query asks an online resolver for: the rows of some keys in `[lowerBound, upperBound]`. */
export interface OnlineRowsRequest {
  /**
   * The group keys of the query, as columns of the class (`{ user_id: [7, 8] }`), one
   * entry per key; rows of other keys may be returned and are not counted.
   */
  readonly keys: Readonly<Record<string, readonly (number | string | boolean | Date)[]>>;
  /** The first instant, inclusive. */
  readonly lowerBound: Date;
  /** The last instant, inclusive: the query's now. */
  readonly upperBound: Date;
  readonly lowerBoundMs: number;
  readonly upperBoundMs: number;
}

/** The options of {@link makeOnlineResolver}. */
export interface OnlineResolverOptions {
  /** Unique among the online resolvers of a Tessera; named in its errors. */
  readonly name: string;
  /** The feature class the rows belong to. */
  readonly output: AnyFeatureClass;
  /** The rows of the request's keys and range: row objects or columns, at once or in batches. */
  readonly rows: (
    request: OnlineRowsRequest,
  ) => BatchRows | Promise<BatchRows> | AsyncIterable<BatchRows> | Iterable<BatchRows>;
}

const ONLINE_RESOLVER = Symbol.for('tessera.onlineResolver');

/** A declared online resolver (see {@link makeOnlineResolver}). */
export interface OnlineResolver {
  readonly [ONLINE_RESOLVER]: true;
  readonly name: string;
  /** The namespace of the output class. */
  readonly namespace: string;
  readonly output: AnyFeatureClass;
  readonly rows: OnlineResolverOptions['rows'];
}

/**
 * Declares an online resolver: the raw rows continuous buffers read at query time.
 *
 * @example
 * export const recentTransactions = makeOnlineResolver({
 *   name: 'recent_transactions',
 *   output: Transaction,
 *   rows: ({ keys, lowerBound, upperBound }) =>
 *     db.query('SELECT * FROM txn WHERE user_id = ANY($1) AND ts BETWEEN $2 AND $3', [
 *       keys.user_id, lowerBound, upperBound,
 *     ]),
 * });
 */
export function makeOnlineResolver(options: OnlineResolverOptions): OnlineResolver {
  const o = options as Partial<OnlineResolverOptions>;
  if (typeof o.name !== 'string' || o.name.length === 0) {
    throw new BatchResolverError('an online resolver needs a name');
  }
  const name = o.name;
  const fail = (problem: string): never => {
    throw new BatchResolverError(`online resolver ${name}: ${problem}`);
  };
  if (o.output === undefined || !isFeatureClass(o.output)) {
    fail('output must be a feature class (features(...))');
  }
  if (typeof o.rows !== 'function') {
    fail(
      'rows must be a function of the request ({ keys, lowerBound, upperBound }) returning rows',
    );
  }
  for (const key of Object.keys(o)) {
    if (!['name', 'output', 'rows'].includes(key)) fail(`unknown option '${key}'`);
  }
  const output = o.output as AnyFeatureClass;
  return Object.freeze({
    [ONLINE_RESOLVER]: true as const,
    name,
    namespace: definitionOf(output).namespace,
    output,
    rows: o.rows as OnlineResolverOptions['rows'],
  });
}

/** Whether `value` was made by {@link makeOnlineResolver}. */
export function isOnlineResolver(value: unknown): value is OnlineResolver {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[ONLINE_RESOLVER] === true
  );
}
