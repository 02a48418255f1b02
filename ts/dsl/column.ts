/**
 * Columns, conditions and the two special times of expressions.
 *
 * A {@link Column} is what `User.id`, `Transaction.amount` and `t.amount` (inside an
 * expression's row scope) evaluate to. Its comparison methods build {@link Condition}s:
 * `t.ts.gt(t.chalk_window)`, `t.category.in([1, 2])`, `t.user_id.eq(User.id)`.
 */
import {
  type ColumnNode,
  type CompareOp,
  type ConditionNode,
  type LiteralNode,
  node,
  type OperandNode,
  type ScalarType,
  type TimeNode,
} from './nodes.js';

/** Phantom key carrying the TypeScript value type of columns, refs and aggregates. */
export const VALUE_TYPE: unique symbol = Symbol('tessera.valueType');

/** One of the special times of an expression: `chalk_now` or `chalk_window`. */
export interface TimeBound extends TimeNode {}

/** The query's time (`chalk_now`). */
export const chalkNow: TimeBound = node({ kind: 'time', bound: 'now' });

/** The query's time minus the window (`chalk_window`). */
export const chalkWindow: TimeBound = node({ kind: 'time', bound: 'window_start' });

/**
 * The special times, as a Python feature class's `_` spells them, plus the aliases `now` and
 * `windowStart`. Row scopes inside expressions offer `chalk_now` / `chalk_window` too.
 *
 * @example
 * User.transactions.where((t) => [t.ts.gt(_.chalk_window), t.ts.lte(_.now)])
 */
export const _: {
  readonly chalk_now: TimeBound;
  readonly chalk_window: TimeBound;
  readonly now: TimeBound;
  readonly windowStart: TimeBound;
} = Object.freeze({
  chalk_now: chalkNow,
  chalk_window: chalkWindow,
  now: chalkNow,
  windowStart: chalkWindow,
});

/** Something a column can be ordered against: a value, a column, or (for dates) a time. */
export type Bound<V> = V | Column<V> | (V extends Date ? TimeBound : never);

/** A boolean condition over a row: a filter, or a join condition. */
export interface Condition {
  readonly kind: 'condition';
  /** The frozen condition tree. */
  readonly node: ConditionNode;
  /** Both this and every other condition. */
  and(...others: readonly Condition[]): Condition;
}

/**
 * A scalar column: a feature of a class or of a related row in an expression.
 * `V` is its TypeScript value type (`number`, `string`, `boolean`, `Date`, `number[]`).
 */
export interface Column<V> {
  readonly kind: 'column';
  /** The column's class, or `null` when written through an expression's row scope. */
  readonly namespace: string | null;
  /** The feature's name within its class. */
  readonly name: string;
  /** The frozen column node (its `version` is `null` for the default version). */
  readonly node: ColumnNode;
  /** `==` */
  eq(value: V | Column<V> | null): Condition;
  /** `!=` */
  ne(value: V | Column<V> | null): Condition;
  /** `>` */
  gt(value: Bound<V>): Condition;
  /** `>=` */
  gte(value: Bound<V>): Condition;
  /** `<` */
  lt(value: Bound<V>): Condition;
  /** `<=` */
  lte(value: Bound<V>): Condition;
  /** Membership in a list of values. */
  in(values: readonly V[]): Condition;
  readonly [VALUE_TYPE]?: V;
}

/**
 * A versioned scalar column. The plain column is the default version; `.version(n)`
 * picks another (`Transaction.amount @ 2` in a Python feature class).
 */
export interface VersionedColumn<VM extends Readonly<Record<number, unknown>>, D extends keyof VM>
  extends Column<VM[D]> {
  /** This column at version `v`. */
  version<N extends keyof VM & number>(v: N): Column<VM[N]>;
}

/** The TypeScript value type of a column, window reference or aggregate. */
export type ValueOf<T> = T extends { readonly [VALUE_TYPE]?: infer V } ? V : never;

/** Runtime implementation of {@link Column} and {@link VersionedColumn}. */
export class ColumnImpl {
  readonly kind = 'column';
  readonly node: ColumnNode;
  /** Declared type when the column came from a class, `null` from a row scope. */
  readonly type: ScalarType | null;

  constructor(columnNode: ColumnNode, type: ScalarType | null) {
    this.node = columnNode;
    this.type = type;
    Object.freeze(this);
  }

  get namespace(): string | null {
    return this.node.namespace;
  }

  get name(): string {
    return this.node.name;
  }

  eq(value: unknown): Condition {
    return compare('==', this.node, value);
  }

  ne(value: unknown): Condition {
    return compare('!=', this.node, value);
  }

  gt(value: unknown): Condition {
    return compare('>', this.node, value);
  }

  gte(value: unknown): Condition {
    return compare('>=', this.node, value);
  }

  lt(value: unknown): Condition {
    return compare('<', this.node, value);
  }

  lte(value: unknown): Condition {
    return compare('<=', this.node, value);
  }

  in(values: unknown): Condition {
    return compare('in', this.node, Array.isArray(values) ? values : [values]);
  }

  /** This column at another version (typed only on versioned columns). */
  version(version: number): ColumnImpl {
    return new ColumnImpl(node({ ...this.node, version }), this.type);
  }
}

/** Runtime implementation of {@link Condition}. */
export class ConditionImpl implements Condition {
  readonly kind = 'condition';
  readonly node: ConditionNode;

  constructor(conditionNode: ConditionNode) {
    this.node = conditionNode;
    Object.freeze(this);
  }

  and(...others: readonly Condition[]): Condition {
    const parts: ConditionNode[] = [];
    for (const c of [this, ...others]) {
      if (c.node.kind === 'and') parts.push(...c.node.conditions);
      else parts.push(c.node);
    }
    return new ConditionImpl(node({ kind: 'and', conditions: Object.freeze(parts) }));
  }
}

/** Turns a user value into an operand node. */
export function operand(value: unknown): OperandNode {
  if (value instanceof ColumnImpl) return value.node;
  if (isTimeNode(value)) return value;
  if (Array.isArray(value)) {
    return node({ kind: 'list', values: Object.freeze(value.map(literal)) });
  }
  return literal(value);
}

function literal(value: unknown): LiteralNode {
  if (value === null) return node({ kind: 'literal', type: 'null', value: null });
  if (value instanceof Date) {
    const ms = value.getTime();
    return Number.isNaN(ms)
      ? node({ kind: 'literal', type: 'invalid', value: 'Invalid Date' })
      : node({ kind: 'literal', type: 'datetime', value: ms });
  }
  switch (typeof value) {
    case 'number':
      return Number.isFinite(value)
        ? node({ kind: 'literal', type: 'number', value })
        : node({ kind: 'literal', type: 'invalid', value: String(value) });
    case 'string':
      return node({ kind: 'literal', type: 'string', value });
    case 'boolean':
      return node({ kind: 'literal', type: 'boolean', value });
    default:
      return node({ kind: 'literal', type: 'invalid', value: describe(value) });
  }
}

function describe(value: unknown): string {
  if (value instanceof ColumnImpl) return `column ${value.name}`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function isTimeNode(value: unknown): value is TimeNode {
  return value === chalkNow || value === chalkWindow;
}

function compare(op: CompareOp, left: ColumnNode, right: unknown): Condition {
  return new ConditionImpl(node({ kind: 'compare', op, left, right: operand(right) }));
}

/** True for conditions built by the DSL. */
export function isCondition(value: unknown): value is Condition {
  return value instanceof ConditionImpl;
}

/**
 * The row scope handed to `select` / `where` / `groupBy` callbacks: every property is a
 * column of the related class (recorded by name, checked by the planner), plus
 * `chalk_now` and `chalk_window`.
 */
export function recordingRow(): unknown {
  return new Proxy(Object.freeze({}), {
    get(_target, prop) {
      if (typeof prop !== 'string') return undefined;
      if (prop === 'chalk_now') return chalkNow;
      if (prop === 'chalk_window') return chalkWindow;
      return new ColumnImpl(
        node({ kind: 'column', namespace: null, name: prop, version: null }),
        null,
      );
    },
  });
}
