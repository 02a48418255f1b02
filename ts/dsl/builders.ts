/**
 * Feature builders: the values of the object given to `features()`. Each is immutable;
 * chained calls return new builders.
 */
import { VALUE_TYPE } from './column.js';
import type { KeywordWindows } from './duration-types.js';
import {
  type AggregateNode,
  type Materialization,
  node,
  type ReferenceNode,
  type ScalarType,
} from './nodes.js';
import { type Aggregate, AggregateImpl, GROUP_TYPE, type Row } from './relation.js';

/** Phantom key carrying the windows of windowed builders and features. */
export const WINDOWS_TYPE: unique symbol = Symbol('tessera.windowsType');
/** Phantom key carrying the related class of has-many builders. */
export const TARGET_TYPE: unique symbol = Symbol('tessera.targetType');

/** What a scalar builder records. */
export interface ScalarSpec {
  readonly type: ScalarType;
  readonly primary: boolean;
  readonly featureTime: boolean;
  readonly references: ReferenceNode | null;
  readonly problems: readonly string[];
}

/** A scalar feature being defined (`int()`, `float().primary()`, ...). */
export interface ScalarBuilder<V> {
  readonly kind: 'scalar';
  readonly spec: ScalarSpec;
  /** Mark as (part of) the primary key. Without any, a feature named `id` is the key. */
  primary(): ScalarBuilder<V>;
  /** Mark as the feature-time column (the row's event time for bucketing). */
  featureTime(): ScalarBuilder<V>;
  /**
   * Declare a foreign key, the implicit join of `hasMany`: `'user.id'` or a thunk
   * returning the column, `() => User.id`. The thunk's return type is deliberately not
   * checked by the compiler (so that two classes may refer to each other without type
   * annotations); the planner checks it.
   */
  references(target: string | (() => void)): ScalarBuilder<V>;
  readonly [VALUE_TYPE]?: V;
}

class ScalarBuilderImpl {
  readonly kind = 'scalar';
  readonly spec: ScalarSpec;

  constructor(spec: ScalarSpec) {
    this.spec = Object.freeze(spec);
    Object.freeze(this);
  }

  primary(): ScalarBuilderImpl {
    return new ScalarBuilderImpl({ ...this.spec, primary: true });
  }

  featureTime(): ScalarBuilderImpl {
    return new ScalarBuilderImpl({ ...this.spec, featureTime: true });
  }

  references(target: unknown): ScalarBuilderImpl {
    if (typeof target === 'string') {
      return new ScalarBuilderImpl({
        ...this.spec,
        references: node({ kind: 'name', text: target }),
      });
    }
    if (typeof target === 'function') {
      const get = target as () => unknown;
      return new ScalarBuilderImpl({ ...this.spec, references: node({ kind: 'thunk', get }) });
    }
    return new ScalarBuilderImpl({
      ...this.spec,
      problems: [
        ...this.spec.problems,
        "references() expects 'namespace.column' or () => Class.column",
      ],
    });
  }
}

function scalar<V>(type: ScalarType, problems: readonly string[] = []): ScalarBuilder<V> {
  return new ScalarBuilderImpl({
    type: node(type),
    primary: false,
    featureTime: false,
    references: null,
    problems: Object.freeze([...problems]),
  }) as unknown as ScalarBuilder<V>;
}

/**
 * An integer feature.
 *
 * @example
 * const Transaction = features('transaction', { id: int().primary(), category: int() });
 */
export function int(): ScalarBuilder<number> {
  return scalar({ kind: 'int' });
}

/** A floating-point feature. @example features('transaction', { amount: float() }) */
export function float(): ScalarBuilder<number> {
  return scalar({ kind: 'float' });
}

/** A string feature. @example features('user', { bank: string() }) */
export function string(): ScalarBuilder<string> {
  return scalar({ kind: 'string' });
}

/** A boolean feature. @example features('login', { failed: boolean() }) */
export function boolean(): ScalarBuilder<boolean> {
  return scalar({ kind: 'boolean' });
}

/**
 * A timestamp feature (UTC). Mark the event time with `.featureTime()`; without one, a
 * datetime feature named `ts` (or the class's only datetime feature) is used.
 *
 * @example features('transaction', { ts: datetime().featureTime() })
 */
export function datetime(): ScalarBuilder<Date> {
  return scalar({ kind: 'datetime' });
}

/**
 * A fixed-length vector of numbers (an embedding).
 *
 * @example features('transaction', { embedding: vector(384) })
 */
export function vector(dim: number): ScalarBuilder<number[]> {
  const ok = Number.isInteger(dim) && dim >= 1;
  return scalar(
    { kind: 'vector', dim: ok ? dim : 0 },
    ok ? [] : [`vector() needs a whole number of dimensions >= 1, got ${String(dim)}`],
  );
}

/** A has-many relation being defined. */
export interface HasManyBuilder<T> {
  readonly kind: 'has_many';
  readonly spec: {
    readonly target: () => unknown;
    readonly condition: ((row: unknown) => unknown) | null;
  };
  readonly [TARGET_TYPE]?: T;
}

/**
 * A has-many relation to another feature class, joined implicitly by the related
 * class's foreign keys to this class, or by an explicit condition (composite keys).
 * Both functions are called by the planner, once every class exists, so classes may be
 * declared in any order. The condition's return type is not checked by the compiler
 * (so that it can name the owning class inside its own definition); the planner checks
 * that it is a conjunction of column equalities.
 *
 * @example
 * // implicit: Transaction.user_id references user.id
 * transactions: hasMany(() => Transaction)
 * // composite
 * transactions: hasMany(() => Transaction, (t) => t.user_id.eq(User.id).and(t.bank.eq(User.bank)))
 */
export function hasMany<T>(target: () => T, condition?: (row: Row<T>) => void): HasManyBuilder<T> {
  return Object.freeze({
    kind: 'has_many' as const,
    spec: Object.freeze({
      target: target as () => unknown,
      condition: (condition ?? null) as ((row: unknown) => unknown) | null,
    }),
  });
}

/** What one windowed builder records. */
export interface WindowedSpec {
  readonly windows: readonly string[];
  readonly expression: AggregateNode | null;
  readonly materialization: Materialization | null;
  readonly hasDefault: boolean;
  readonly default: unknown;
  readonly maxStaleness: string | null;
  readonly problems: readonly string[];
}

/** A windowed feature being defined. `W` are its windows, `V` its value type. */
export interface WindowedBuilder<W extends string, V> {
  readonly kind: 'windowed';
  readonly grouped: false;
  readonly spec: WindowedSpec;
  readonly [VALUE_TYPE]?: V;
  readonly [WINDOWS_TYPE]?: W;
}

/** A `groupByWindowed` feature being defined; `G` is the group value type. */
export interface GroupedWindowedBuilder<W extends string, V, G> {
  readonly kind: 'windowed';
  readonly grouped: true;
  readonly spec: WindowedSpec;
  readonly [VALUE_TYPE]?: V;
  readonly [WINDOWS_TYPE]?: W;
  readonly [GROUP_TYPE]?: G;
}

/** Window keyword forms: `days: [1, 7]` adds windows `1d` and `7d`. */
export interface WindowKeywords<
  D extends readonly number[],
  H extends readonly number[],
  M extends readonly number[],
> {
  /** Windows in days. */
  readonly days?: D;
  /** Windows in hours. */
  readonly hours?: H;
  /** Windows in minutes. */
  readonly minutes?: M;
}

/** Options of an aggregation-backed windowed feature. */
export interface WindowedOptions<
  E,
  R,
  D extends readonly number[],
  H extends readonly number[],
  M extends readonly number[],
> extends WindowKeywords<D, H, M> {
  /** The aggregation, e.g. `user.transactions.select((t) => t.amount).sum()`. */
  readonly expression: E;
  /** How to bucket it: `true`, or `{ bucketDuration: '1d', ... }`. */
  readonly materialization?: Materialization;
  /** Returned when a window holds no data. */
  readonly default?: NoInfer<R>;
}

/** Options of a windowed feature computed elsewhere (by a windowed stream resolver). */
export interface ResolvedWindowedOptions<
  V,
  D extends readonly number[],
  H extends readonly number[],
  M extends readonly number[],
> extends WindowKeywords<D, H, M> {
  readonly expression?: undefined;
  /** Returned when a window holds no data; also gives the feature its value type. */
  readonly default?: V;
  /**
   * How old the latest value of a tumbling windowed stream resolver may be (`'10m'`,
   * `'infinity'`, the default) before queries serve the default instead.
   */
  readonly maxStaleness?: string;
}

/**
 * A feature with one value per window, e.g. "sum of the user's transactions over the
 * last 1, 7 and 30 days". Windows are given positionally (`'10m'`, `'1h30m'`, `'all'`)
 * and/or as `days` / `hours` / `minutes` lists; they are captured as literal types, so
 * `User.total['7d']` type-checks and `User.total['2d']` does not.
 *
 * @example
 * const User = features('user', { id: int().primary(), transactions: hasMany(() => Transaction) },
 *   (user) => ({
 *     total: windowed('1d', '7d', '30d', {
 *       materialization: { bucketDuration: '1d' },
 *       expression: user.transactions
 *         .where((t) => [t.ts.gt(t.chalk_window), t.ts.lte(t.chalk_now)])
 *         .select((t) => t.amount)
 *         .sum(),
 *       default: 0,
 *     }),
 *     failed_logins: windowed({ minutes: [10, 30], days: [1], default: 0 }), // no expression
 *   }));
 */
export function windowed<
  const W extends readonly string[],
  R,
  const D extends readonly number[] = [],
  const H extends readonly number[] = [],
  const M extends readonly number[] = [],
>(
  ...args: [...windows: W, options: WindowedOptions<Aggregate<R, never>, R, D, H, M>]
): WindowedBuilder<W[number] | KeywordWindows<D, H, M>, R>;
export function windowed<
  const W extends readonly string[],
  V = unknown,
  const D extends readonly number[] = [],
  const H extends readonly number[] = [],
  const M extends readonly number[] = [],
>(
  ...args: [...windows: W, options: ResolvedWindowedOptions<V, D, H, M>]
): WindowedBuilder<W[number] | KeywordWindows<D, H, M>, V>;
export function windowed<const W extends readonly string[]>(
  ...windows: W
): WindowedBuilder<W[number], unknown>;
export function windowed(...args: readonly unknown[]): unknown {
  return buildWindowed(args, false);
}

/** Options of a `groupByWindowed` feature. */
export interface GroupedWindowedOptions<
  E,
  R,
  D extends readonly number[],
  H extends readonly number[],
  M extends readonly number[],
> extends WindowKeywords<D, H, M> {
  /** A grouped aggregation: `user.transactions.groupBy((t) => t.merchant_id).select(...).sum()`. */
  readonly expression: E;
  /** How to bucket it. */
  readonly materialization?: Materialization;
  /** Returned for a group when a window holds no data for it. */
  readonly default?: NoInfer<R>;
}

/** The value of a grouped windowed feature: one entry per group. */
export type GroupedValue<G, V> = { readonly group: G; readonly value: V }[];

/**
 * A windowed aggregation grouped by one more column (`group_by_windowed`
 * in a Python feature class). Its series are keyed by the join keys plus the group-by
 * column(s), so `user.txn_sum_by_merchant` and `merchant.txn_sum_by_user` share one
 * series keyed by `(user_id, merchant_id)`.
 *
 * @example
 * txn_sum_by_merchant: groupByWindowed('1d', '7d', '30d', {
 *   materialization: { bucketDuration: '1d' },
 *   expression: user.transactions.groupBy((t) => t.merchant_id).select((t) => t.amount).sum(),
 * })
 */
export function groupByWindowed<
  const W extends readonly string[],
  R,
  G,
  const D extends readonly number[] = [],
  const H extends readonly number[] = [],
  const M extends readonly number[] = [],
>(
  ...args: [
    ...windows: W,
    options: GroupedWindowedOptions<Aggregate<R, G> & { readonly grouped: true }, R, D, H, M>,
  ]
): GroupedWindowedBuilder<W[number] | KeywordWindows<D, H, M>, R, G>;
export function groupByWindowed(...args: readonly unknown[]): unknown {
  return buildWindowed(args, true);
}

function buildWindowed(args: readonly unknown[], grouped: boolean): unknown {
  const windows: string[] = [];
  const problems: string[] = [];
  let options: Record<string, unknown> = {};
  args.forEach((arg, i) => {
    if (typeof arg === 'string') windows.push(arg);
    else if (
      i === args.length - 1 &&
      typeof arg === 'object' &&
      arg !== null &&
      !Array.isArray(arg)
    ) {
      options = arg as Record<string, unknown>;
    } else problems.push(`windowed() argument ${i + 1} is neither a window nor the options object`);
  });
  for (const [key, unit] of [
    ['days', 'd'],
    ['hours', 'h'],
    ['minutes', 'm'],
  ] as const) {
    const list = options[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) {
      problems.push(`${key} must be a list of numbers`);
      continue;
    }
    for (const n of list) {
      if (typeof n === 'number' && Number.isInteger(n) && n > 0) windows.push(`${n}${unit}`);
      else problems.push(`${key} lists ${String(n)}, which is not a whole number > 0`);
    }
  }
  const known = [
    'days',
    'hours',
    'minutes',
    'expression',
    'materialization',
    'default',
    'maxStaleness',
  ];
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      problems.push(`unknown option '${key}' (options: ${known.join(', ')})`);
    }
  }
  if (options.maxStaleness !== undefined && typeof options.maxStaleness !== 'string') {
    problems.push(`maxStaleness must be a duration such as '10m' or 'infinity'`);
  }
  let expression: AggregateNode | null = null;
  if (options.expression instanceof AggregateImpl) expression = options.expression.node;
  else if (options.expression !== undefined) {
    problems.push('expression must be an aggregation such as user.transactions.select(...).sum()');
  }
  const materialization = (options.materialization ?? null) as Materialization | null;
  const spec: WindowedSpec = Object.freeze({
    windows: Object.freeze(windows),
    expression,
    materialization:
      materialization !== null && typeof materialization === 'object'
        ? Object.freeze({ ...materialization })
        : materialization,
    hasDefault: 'default' in options && options.default !== undefined,
    default: options.default,
    maxStaleness: typeof options.maxStaleness === 'string' ? options.maxStaleness : null,
    problems: Object.freeze(problems),
  });
  return Object.freeze({ kind: 'windowed', grouped, spec });
}

/** A versioned scalar feature; the plain column is the default version. */
export interface VersionedScalarBuilder<
  VM extends Readonly<Record<number, ScalarBuilder<unknown>>>,
  D extends keyof VM & number,
> {
  readonly kind: 'versioned_scalar';
  readonly members: VM;
  readonly defaultVersion: D;
}

/** A versioned windowed feature; each version is its own windowed feature. */
export interface VersionedWindowedBuilder<
  VM extends Readonly<Record<number, WindowedBuilder<string, unknown>>>,
  D extends keyof VM & number,
> {
  readonly kind: 'versioned_windowed';
  readonly members: VM;
  readonly defaultVersion: D;
}

/**
 * Versions of a feature: scalar versions (in a Python feature class
 * `amount = feature(versions={1: ..., 2: ...}, default_version=1)`) or windowed versions
 * whose expressions may aggregate different versions of a column. Each version of a
 * windowed feature gets its own series.
 *
 * @example
 * amount: versioned({ 1: float(), 2: float() }, { default: 1 }),
 * total_spend: versioned({
 *   1: windowed('30d', { expression: user.transactions.select((t) => t.amount).sum(), materialization: true, default: 0 }),
 *   2: windowed('30d', { expression: user.transactions.select((t) => t.amount.version(2)).sum(), materialization: true, default: 0 }),
 * }, { default: 1 })
 */
export function versioned<
  const VM extends Readonly<Record<number, ScalarBuilder<unknown>>>,
  D extends keyof VM & number,
>(versions: VM, options: { readonly default: D }): VersionedScalarBuilder<VM, D>;
export function versioned<
  const VM extends Readonly<Record<number, WindowedBuilder<string, unknown>>>,
  D extends keyof VM & number,
>(versions: VM, options: { readonly default: D }): VersionedWindowedBuilder<VM, D>;
export function versioned(
  versions: Readonly<Record<number, unknown>>,
  options: { readonly default: number },
): unknown {
  const members = Object.values(versions ?? {});
  const windowedMembers = members.some(
    (m) => typeof m === 'object' && m !== null && (m as { kind?: unknown }).kind === 'windowed',
  );
  return Object.freeze({
    kind: windowedMembers ? 'versioned_windowed' : 'versioned_scalar',
    members: Object.freeze({ ...versions }),
    defaultVersion: options?.default,
  });
}
