/**
 * Has-many relations and the expressions built on them: traverse the relation, keep
 * rows that pass filters, project one column, optionally group, then aggregate once.
 *
 * ```ts
 * user.transactions
 *   .where((t) => [t.ts.gt(t.chalk_window), t.ts.lte(t.chalk_now), t.category.in([1, 2])])
 *   .select((t) => t.amount)
 *   .sum()
 * ```
 *
 * Every method returns a new immutable builder. Which aggregations a projection offers
 * follows the projected column's type, so `select((t) => t.bank).sum()` does not compile;
 * the planner reports the same problem as a diagnostic for untyped callers.
 */
import {
  type Column,
  ColumnImpl,
  type Condition,
  ConditionImpl,
  recordingRow,
  type TimeBound,
  VALUE_TYPE,
} from './column.js';
import {
  type AggregateNode,
  type AggregationKind,
  type AggregationNode,
  type ColumnNode,
  type ConditionNode,
  node,
  type RelationNode,
} from './nodes.js';

/** Phantom key carrying the group type of grouped aggregates. */
export const GROUP_TYPE: unique symbol = Symbol('tessera.groupType');

/**
 * The row scope of a related class `T` inside `select` / `where` / `groupBy` callbacks:
 * its columns plus `chalk_now` and `chalk_window`.
 */
export type Row<T> = {
  readonly [K in keyof T as T[K] extends Column<unknown> ? K : never]: T[K];
} & {
  readonly chalk_now: TimeBound;
  readonly chalk_window: TimeBound;
};

/** A column of `T`: given directly (`Transaction.amount`) or picked from the row scope. */
export type Selector<T, V> = Column<V> | ((row: Row<T>) => Column<V>);

/** Filters: conditions, lists of conditions, or a callback returning either. */
export type FilterInput<T> =
  | Condition
  | readonly Condition[]
  | ((row: Row<T>) => Condition | readonly Condition[]);

/** The value types of a tuple of columns. */
export type ColumnValues<C extends readonly Column<unknown>[]> = {
  -readonly [I in keyof C]: C[I] extends Column<infer V> ? V : never;
};

/**
 * A finished aggregation expression. `R` is the value type it produces, `G` the type of
 * the group-by value (`never` when not grouped).
 */
export interface Aggregate<R, G = never> {
  readonly kind: 'aggregate';
  /** The frozen expression tree. */
  readonly node: AggregateNode;
  /** Whether the expression has a `groupBy` (only `groupByWindowed` accepts those). */
  readonly grouped: [G] extends [never] ? false : true;
  readonly [VALUE_TYPE]?: R;
  readonly [GROUP_TYPE]?: G;
}

/** Options of `approxTopK`. */
export interface TopKOptions<T> {
  /** Weight column: items are ranked by the sum of `by` rather than by count. */
  readonly by?: Selector<T, number>;
  /** Return `{ value, weight }` pairs instead of bare values. */
  readonly returnTotalWeight?: boolean;
}

/** Options of `var` and `std`. */
export interface VarianceOptions {
  /** Sample (n - 1) instead of population (n) statistics. */
  readonly sample?: boolean;
}

/** The steps available before a column is selected. */
export interface RelationQuery<T, G = never> {
  /** Keep only rows passing every condition (the two time bounds are window bounds). */
  where(...filters: readonly FilterInput<T>[]): RelationQuery<T, G>;
  /** Project one column; the aggregations offered follow its type. */
  select<V>(column: Selector<T, V>): Projection<T, V, G>;
  /** Group by several columns (`groupByWindowed` only). */
  groupBy<const C extends readonly [Column<unknown>, ...Column<unknown>[]]>(
    columns: (row: Row<T>) => C,
  ): RelationQuery<T, ColumnValues<C>>;
  /** Group by one column (`groupByWindowed` only). */
  groupBy<V>(column: Selector<T, V>): RelationQuery<T, V>;
  /** Number of rows. */
  count(): Aggregate<number, G>;
}

/** A has-many relation of a feature class, the start of every expression. */
export interface HasMany<T> extends RelationQuery<T> {
  readonly kind: 'has_many';
  /** Namespace of the owning class. */
  readonly namespace: string;
  /** The relation's feature name. */
  readonly name: string;
}

/** Steps available on every projection. */
export interface ProjectionCore<T, V, G> {
  /** Keep only rows passing every condition. */
  where(...filters: readonly FilterInput<T>[]): Projection<T, V, G>;
  /** Group by several columns (`groupByWindowed` only). */
  groupBy<const C extends readonly [Column<unknown>, ...Column<unknown>[]]>(
    columns: (row: Row<T>) => C,
  ): Projection<T, V, ColumnValues<C>>;
  /** Group by one column (`groupByWindowed` only). */
  groupBy<V2>(column: Selector<T, V2>): Projection<T, V, V2>;
  /** Number of non-null values of the column. */
  count(): Aggregate<number, G>;
}

/** Aggregations of numeric columns. */
export interface NumericAggregations<G> {
  /** Sum of the values. */
  sum(): Aggregate<number, G>;
  /** Arithmetic mean. */
  mean(): Aggregate<number, G>;
  /** Variance (population unless `{ sample: true }`); needs 2 values. */
  var(options?: VarianceOptions): Aggregate<number, G>;
  /** Standard deviation (population unless `{ sample: true }`); needs 2 values. */
  std(options?: VarianceOptions): Aggregate<number, G>;
  /**
   * Approximate value below which `quantile` of the values fall (t-digest).
   * `size` is the sketch's compression (default 100).
   */
  approxPercentile(quantile: number, options?: { readonly size?: number }): Aggregate<number, G>;
}

/** `min` / `max` of ordered columns (numbers, dates). */
export interface OrderedAggregations<V, G> {
  /** Smallest value. */
  min(): Aggregate<V, G>;
  /** Largest value. */
  max(): Aggregate<V, G>;
}

/** Aggregations that keep values as items (any scalar column). */
export interface ItemAggregations<T, V, G> {
  /** The `n` values with the smallest `by` (`min_by_n`). */
  minByN(by: Selector<T, number> | Selector<T, Date>, n: number): Aggregate<V[], G>;
  /** The `n` values with the largest `by` (`max_by_n`). */
  maxByN(by: Selector<T, number> | Selector<T, Date>, n: number): Aggregate<V[], G>;
  /** Approximate number of distinct values (CPC sketch, `lgK` default 11). */
  approxCountDistinct(options?: { readonly lgK?: number }): Aggregate<number, G>;
  /** Approximate `k` most frequent values, with their weights when asked. */
  approxTopK(
    k: number,
    options: TopKOptions<T> & { readonly returnTotalWeight: true },
  ): Aggregate<{ value: V; weight: number }[], G>;
  /** Approximate `k` most frequent values (or heaviest by `by`). */
  approxTopK(k: number, options?: TopKOptions<T>): Aggregate<V[], G>;
}

/** Aggregations of boolean columns (true counts as 1). */
export interface BooleanAggregations<G> {
  /** Number of `true` values. */
  sum(): Aggregate<number, G>;
  /** Share of `true` values. */
  mean(): Aggregate<number, G>;
}

/** Element-wise aggregations of vector columns. */
export interface VectorAggregations<G> {
  /** Element-wise sum. */
  sum(): Aggregate<number[], G>;
  /** Element-wise mean. */
  mean(): Aggregate<number[], G>;
}

/** The aggregations offered for a projected column of type `V`. */
export type AggregationsFor<T, V, G> = [V] extends [number]
  ? NumericAggregations<G> & OrderedAggregations<number, G> & ItemAggregations<T, number, G>
  : [V] extends [readonly number[]]
    ? VectorAggregations<G>
    : [V] extends [string]
      ? ItemAggregations<T, string, G>
      : [V] extends [boolean]
        ? BooleanAggregations<G> & ItemAggregations<T, boolean, G>
        : [V] extends [Date]
          ? OrderedAggregations<Date, G> & ItemAggregations<T, Date, G>
          : Record<never, never>;

/** A relation with one projected column: filter, group, or aggregate it. */
export type Projection<T, V, G = never> = ProjectionCore<T, V, G> & AggregationsFor<T, V, G>;

interface QueryState {
  readonly relation: RelationNode;
  readonly column: ColumnNode | null;
  readonly filters: readonly ConditionNode[];
  readonly groupBy: readonly ColumnNode[];
  readonly problems: readonly string[];
}

/** Runtime implementation of an aggregate expression. */
export class AggregateImpl {
  readonly kind = 'aggregate';
  readonly node: AggregateNode;
  readonly grouped: boolean;

  constructor(aggregateNode: AggregateNode) {
    this.node = aggregateNode;
    this.grouped = aggregateNode.groupBy.length > 0;
    Object.freeze(this);
  }
}

/** Runtime implementation of every query step (types restrict what is offered). */
export class QueryImpl {
  protected readonly state: QueryState;

  constructor(state: QueryState) {
    this.state = state;
  }

  where(...filters: readonly unknown[]): QueryImpl {
    const nodes: ConditionNode[] = [];
    const problems: string[] = [];
    for (const f of filters) collectConditions(f, nodes, problems);
    return this.with({
      filters: [...this.state.filters, ...nodes],
      problems: [...this.state.problems, ...problems],
    });
  }

  select(column: unknown): QueryImpl {
    const picked = pickColumns(column, 'select');
    const first = picked.columns[0] ?? null;
    const problems = [...this.state.problems, ...picked.problems];
    if (this.state.column !== null) problems.push('select() was called twice');
    if (picked.columns.length > 1) problems.push('select() takes exactly one column');
    return this.with({ column: first, problems });
  }

  groupBy(columns: unknown): QueryImpl {
    const picked = pickColumns(columns, 'groupBy');
    return this.with({
      groupBy: [...this.state.groupBy, ...picked.columns],
      problems: [...this.state.problems, ...picked.problems],
    });
  }

  count(): AggregateImpl {
    return this.aggregate({ kind: 'count' });
  }

  sum(): AggregateImpl {
    return this.aggregate({ kind: 'sum' });
  }

  mean(): AggregateImpl {
    return this.aggregate({ kind: 'mean' });
  }

  min(): AggregateImpl {
    return this.aggregate({ kind: 'min' });
  }

  max(): AggregateImpl {
    return this.aggregate({ kind: 'max' });
  }

  var(options?: VarianceOptions): AggregateImpl {
    return this.aggregate({ kind: options?.sample === true ? 'var_sample' : 'var' });
  }

  std(options?: VarianceOptions): AggregateImpl {
    return this.aggregate({ kind: options?.sample === true ? 'std_sample' : 'std' });
  }

  minByN(by: unknown, n: unknown): AggregateImpl {
    return this.byAggregate('min_by_n', by, { n });
  }

  maxByN(by: unknown, n: unknown): AggregateImpl {
    return this.byAggregate('max_by_n', by, { n });
  }

  approxCountDistinct(options?: { readonly lgK?: unknown }): AggregateImpl {
    return this.aggregate({ kind: 'approx_count_distinct', lgK: options?.lgK });
  }

  approxTopK(k: unknown, options?: { by?: unknown; returnTotalWeight?: unknown }): AggregateImpl {
    if (options?.by === undefined) {
      return this.aggregate({
        kind: 'approx_top_k',
        k,
        by: null,
        returnTotalWeight: options?.returnTotalWeight,
      });
    }
    return this.byAggregate('approx_top_k', options.by, {
      k,
      returnTotalWeight: options.returnTotalWeight,
    });
  }

  approxPercentile(quantile: unknown, options?: { readonly size?: unknown }): AggregateImpl {
    return this.aggregate({ kind: 'approx_percentile', quantile, sketchSize: options?.size });
  }

  private byAggregate(
    kind: AggregationKind,
    by: unknown,
    rest: Omit<AggregationNode, 'kind' | 'by'>,
  ): AggregateImpl {
    const picked = pickColumns(by, `${kind} by`);
    const problems = picked.columns.length > 1 ? [`${kind}: 'by' must be one column`] : [];
    return this.aggregate({ kind, by: picked.columns[0] ?? null, ...rest }, [
      ...picked.problems,
      ...problems,
    ]);
  }

  private aggregate(aggregation: AggregationNode, problems: readonly string[] = []): AggregateImpl {
    return new AggregateImpl(
      node({
        kind: 'aggregate',
        relation: this.state.relation,
        column: this.state.column,
        filters: Object.freeze([...this.state.filters]),
        groupBy: Object.freeze([...this.state.groupBy]),
        aggregation: node(stripUndefined(aggregation)),
        problems: Object.freeze([...this.state.problems, ...problems]),
      }),
    );
  }

  private with(patch: Partial<QueryState>): QueryImpl {
    const next = new QueryImpl(Object.freeze({ ...this.state, ...patch }));
    Object.freeze(next);
    return next;
  }
}

/** The runtime object behind `User.transactions`. */
export class HasManyImpl extends QueryImpl {
  readonly kind = 'has_many';
  readonly namespace: string;
  readonly name: string;

  constructor(namespace: string, name: string) {
    super(
      Object.freeze({
        relation: node({ kind: 'relation', namespace, name }),
        column: null,
        filters: Object.freeze([]),
        groupBy: Object.freeze([]),
        problems: Object.freeze([]),
      }),
    );
    this.namespace = namespace;
    this.name = name;
    Object.freeze(this);
  }
}

function stripUndefined(a: AggregationNode): AggregationNode {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(a)) if (v !== undefined) out[k] = v;
  return out as unknown as AggregationNode;
}

function collectConditions(input: unknown, out: ConditionNode[], problems: string[]): void {
  const value = typeof input === 'function' ? input(recordingRow()) : input;
  if (Array.isArray(value)) {
    for (const v of value) collectConditions(v, out, problems);
  } else if (value instanceof ConditionImpl) {
    out.push(value.node);
  } else {
    problems.push(`where() expects conditions such as t.amount.gt(0), got ${typeName(value)}`);
  }
}

function pickColumns(input: unknown, what: string): { columns: ColumnNode[]; problems: string[] } {
  const value = typeof input === 'function' ? input(recordingRow()) : input;
  const list: unknown[] = Array.isArray(value) ? value : [value];
  const columns: ColumnNode[] = [];
  const problems: string[] = [];
  for (const v of list) {
    if (v instanceof ColumnImpl) columns.push(v.node);
    else problems.push(`${what}() expects a column such as t.amount, got ${typeName(v)}`);
  }
  return { columns, problems };
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? (value.constructor?.name ?? 'an object') : typeof value;
}
