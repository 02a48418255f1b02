/**
 * Expression resolution: relation -> related class, projected column (and version),
 * time bounds vs ingest filters, group-by columns, aggregation arguments, result type.
 */
import type {
  AggregateNode,
  AggregationKind,
  ColumnNode,
  CompareNode,
  CompareOp,
  ConditionNode,
  LiteralNode,
  ScalarKind,
  ScalarType,
} from '../dsl/nodes.js';
import { type AggregationArgument, aggregationArgument, aggregationEntry } from './aggregations.js';
import type { DiagnosticList } from './diagnostics.js';
import { parseBucketStart } from './materialization.js';
import type { ResolvedClass, ResolvedRelation } from './resolve.js';
import type {
  AggregationDescription,
  ColumnAtVersion,
  FilterValue,
  IngestFilter,
  ResultType,
} from './types.js';

/** An expression checked against the schema. */
export interface ResolvedExpression {
  readonly relation: ResolvedRelation;
  readonly target: ResolvedClass;
  readonly join: readonly { readonly target: string; readonly owner: string }[];
  readonly column: ColumnAtVersion | null;
  readonly columnType: ScalarType | null;
  readonly by: ColumnAtVersion | null;
  readonly filters: readonly IngestFilter[];
  readonly groupBy: readonly string[];
  readonly groupTypes: readonly ScalarType[];
  readonly aggregation: AggregationDescription;
  readonly returnTotalWeight: boolean;
  readonly timeColumn: string;
  readonly resultType: ResultType;
}

/** Column kinds `kind` aggregates, from the catalog. */
function acceptedKinds(kind: AggregationKind): readonly ScalarKind[] {
  return aggregationEntry(kind).accepts;
}

const FLIP: Readonly<Record<CompareOp, CompareOp>> = {
  '==': '==',
  '!=': '!=',
  '>': '<',
  '<': '>',
  '>=': '<=',
  '<=': '>=',
  in: 'in',
};

/** Resolves `expr` of `feature` (owned by `owner`); `null` after reporting errors. */
export function resolveExpression(
  feature: string,
  owner: ResolvedClass,
  expr: AggregateNode,
  grouped: boolean,
  diags: DiagnosticList,
): ResolvedExpression | null {
  const before = diags.errorCount();
  for (const p of expr.problems) diags.error(feature, 'invalid_definition', `${feature}: ${p}`);

  const rel = expr.relation;
  const relation = rel.namespace === owner.namespace ? owner.relations.get(rel.name) : undefined;
  if (relation === undefined) {
    const hint =
      rel.namespace === owner.namespace
        ? `${owner.namespace} has no has-many relation '${rel.name}'`
        : `the expression traverses ${rel.namespace}.${rel.name}, a relation of another class; start from ${owner.namespace}'s own relations`;
    diags.error(feature, 'unknown_relation', `${feature}: ${hint}`);
    return null;
  }
  const target = relation.target;
  const join = relation.join;
  if (target === null || join === null) {
    diags.error(
      feature,
      'unknown_relation',
      `${feature}: relation ${owner.namespace}.${relation.name} did not resolve (see its own diagnostic)`,
    );
    return null;
  }
  const ctx: Ctx = { feature, target, relation: `${owner.namespace}.${relation.name}`, diags };

  // Projected column.
  const projected = expr.column === null ? null : resolveColumn(ctx, expr.column, 'column');
  const kind = expr.aggregation.kind;
  if (expr.column === null && kind !== 'count') {
    diags.error(
      feature,
      'invalid_definition',
      `${feature}: ${kind}() needs a column; select(...) one first`,
    );
  }
  if (projected !== null && !acceptedKinds(kind).includes(projected.type.kind)) {
    diags.error(
      feature,
      'aggregation_type_mismatch',
      `${feature}: ${kind} cannot aggregate ${target.namespace}.${columnText(projected.column)}, which is ${typeText(projected.type)} (${kind} accepts ${acceptedKinds(kind).join(', ')})`,
    );
  }

  // Filters: time bounds and ingest filters.
  const timeColumns = new Set<string>();
  const filters = new Map<string, IngestFilter>();
  for (const cond of flatten(expr.filters)) {
    const filter = classify(ctx, cond, timeColumns);
    if (filter !== null) filters.set(filter.text, filter);
  }
  let timeColumn = target.featureTime;
  for (const used of timeColumns) {
    if (timeColumn === null) timeColumn = used;
    else if (used !== timeColumn) {
      diags.error(
        feature,
        'time_column_mismatch',
        `${feature}: the window bounds filter ${target.namespace}.${used}, but ${target.namespace}'s feature time is ${timeColumn}; bucket rows by one time column`,
      );
    }
  }
  if (timeColumn === null) {
    diags.error(
      feature,
      'missing_feature_time',
      `${feature}: ${target.namespace} has no feature-time column to bucket rows by; mark one with datetime().featureTime()`,
    );
  }

  // Group-by columns.
  const groupBy: string[] = [];
  const groupTypes: ScalarType[] = [];
  for (const g of expr.groupBy) {
    const c = resolveColumn(ctx, g, 'groupBy column');
    if (c === null) continue;
    if (c.type.kind === 'vector') {
      diags.error(
        feature,
        'invalid_definition',
        `${feature}: cannot group by vector column ${target.namespace}.${c.column.name}`,
      );
      continue;
    }
    if (!groupBy.includes(c.column.name)) {
      groupBy.push(c.column.name);
      groupTypes.push(c.type);
    }
  }
  if (grouped && groupBy.length === 0) {
    diags.error(
      feature,
      'missing_group_by',
      `${feature}: groupByWindowed needs an expression with groupBy(...), e.g. user.transactions.groupBy((t) => t.merchant_id).select(...).sum()`,
    );
  }
  if (!grouped && expr.groupBy.length > 0) {
    diags.error(
      feature,
      'unexpected_group_by',
      `${feature}: groupBy(...) is only allowed in groupByWindowed(...)`,
    );
  }

  const agg = resolveAggregation(ctx, expr, projected?.type ?? null);
  if (diags.errorCount() > before || agg === null || timeColumn === null) return null;

  const colType = projected?.type ?? null;
  const value = resultTypeOf(kind, colType, agg.returnTotalWeight);
  return {
    relation,
    target,
    join,
    column: projected?.column ?? null,
    columnType: colType,
    by: agg.by,
    filters: [...filters.values()].sort((a, b) => (a.text < b.text ? -1 : a.text > b.text ? 1 : 0)),
    groupBy,
    groupTypes,
    aggregation: agg.description,
    returnTotalWeight: agg.returnTotalWeight,
    timeColumn,
    resultType: grouped ? { kind: 'grouped', groupBy: groupTypes, value } : value,
  };
}

interface Ctx {
  readonly feature: string;
  readonly target: ResolvedClass;
  readonly relation: string;
  readonly diags: DiagnosticList;
}

function columnText(c: ColumnAtVersion): string {
  return c.version === null ? c.name : `${c.name}@${c.version}`;
}

function typeText(t: ScalarType): string {
  return t.kind === 'vector' ? `vector(${t.dim ?? 0})` : t.kind;
}

/** Resolves a column of the related class, with its version and type. */
function resolveColumn(
  ctx: Ctx,
  col: ColumnNode,
  role: string,
): { column: ColumnAtVersion; type: ScalarType } | null {
  const { feature, target, diags } = ctx;
  if (col.namespace !== null && col.namespace !== target.namespace) {
    diags.error(
      feature,
      'unknown_column',
      `${feature}: ${role} ${col.namespace}.${col.name} is not a column of ${target.namespace}, the class behind ${ctx.relation}`,
    );
    return null;
  }
  const c = target.columns.get(col.name);
  if (c === undefined) {
    const other =
      target.relations.has(col.name) || target.windowed.some((w) => w.name === col.name);
    diags.error(
      feature,
      'unknown_column',
      `${feature}: ${target.namespace} has no column '${col.name}'${other ? ' (it is a relation or windowed feature, not a scalar column)' : ''} (${role} of the expression over ${ctx.relation})`,
    );
    return null;
  }
  if (col.version !== null) {
    if (c.versions === null) {
      diags.error(
        feature,
        'invalid_version',
        `${feature}: ${target.namespace}.${col.name} is not versioned, so version(${col.version}) is invalid`,
      );
      return null;
    }
    const t = c.versions.get(col.version);
    if (t === undefined) {
      diags.error(
        feature,
        'invalid_version',
        `${feature}: ${target.namespace}.${col.name} has no version ${col.version} (versions: ${[...c.versions.keys()].join(', ')})`,
      );
      return null;
    }
    return { column: { name: col.name, version: col.version }, type: t };
  }
  return { column: { name: col.name, version: c.defaultVersion }, type: c.type };
}

function flatten(conds: readonly ConditionNode[]): CompareNode[] {
  const out: CompareNode[] = [];
  for (const c of conds) {
    if (c.kind === 'and') out.push(...flatten(c.conditions));
    else out.push(c);
  }
  return out;
}

/** A time bound (recorded in `timeColumns`) or an ingest filter; `null` otherwise. */
function classify(ctx: Ctx, cond: CompareNode, timeColumns: Set<string>): IngestFilter | null {
  const { feature, target, diags } = ctx;
  let { left, right, op } = cond;
  if (left.kind !== 'column' && right.kind === 'column' && op !== 'in') {
    [left, right] = [right, left];
    op = FLIP[op];
  }
  if (left.kind !== 'column') {
    diags.error(
      feature,
      'unsupported_filter',
      `${feature}: a filter must compare a column of ${target.namespace} with a value`,
    );
    return null;
  }
  const col = resolveColumn(ctx, left, 'filter column');
  if (col === null) return null;
  const name = columnText(col.column);

  if (right.kind === 'time') {
    const special = right.bound === 'now' ? 'chalk_now' : 'chalk_window';
    const ok =
      (right.bound === 'window_start' && (op === '>' || op === '>=')) ||
      (right.bound === 'now' && (op === '<' || op === '<='));
    if (col.type.kind !== 'datetime') {
      diags.error(
        feature,
        'invalid_time_filter',
        `${feature}: ${target.namespace}.${name} ${op} ${special} compares a ${col.type.kind} column with a time`,
      );
    } else if (!ok) {
      diags.error(
        feature,
        'invalid_time_filter',
        `${feature}: ${target.namespace}.${name} ${op} ${special} is not a window bound; use ${name} > chalk_window and ${name} <= chalk_now`,
      );
    } else timeColumns.add(col.column.name);
    return null;
  }
  if (right.kind === 'column') {
    diags.error(
      feature,
      'unsupported_filter',
      `${feature}: filter ${name} ${op} ${right.name} compares two columns; ingest filters compare a column with a value`,
    );
    return null;
  }
  if (col.type.kind === 'vector') {
    diags.error(
      feature,
      'unsupported_filter',
      `${feature}: cannot filter on vector column ${target.namespace}.${name}`,
    );
    return null;
  }

  if (op === 'in') {
    if (right.kind !== 'list') {
      diags.error(
        feature,
        'unsupported_filter',
        `${feature}: ${name} in ... needs a list of values`,
      );
      return null;
    }
    const values: FilterValue[] = [];
    for (const lit of right.values) {
      const v = literalFor(ctx, name, col.type, lit, op);
      if (v === undefined) return null;
      values.push(v);
    }
    const unique = [...new Map(values.map((v) => [JSON.stringify(v), v])).values()].sort(
      compareValues,
    );
    if (unique.length === 0) {
      diags.error(feature, 'unsupported_filter', `${feature}: ${name} in [] matches no row`);
      return null;
    }
    return {
      column: col.column.name,
      version: col.column.version,
      op,
      value: unique,
      text: `${name} in ${JSON.stringify(unique)}`,
    };
  }
  if (right.kind === 'list') {
    diags.error(
      feature,
      'unsupported_filter',
      `${feature}: ${name} ${op} needs a single value, not a list`,
    );
    return null;
  }
  const v = literalFor(ctx, name, col.type, right, op);
  if (v === undefined) return null;
  return {
    column: col.column.name,
    version: col.column.version,
    op,
    value: v,
    text: `${name} ${op} ${JSON.stringify(v)}`,
  };
}

function compareValues(a: FilterValue, b: FilterValue): number {
  const rank = (v: FilterValue): number =>
    v === null ? 0 : typeof v === 'boolean' ? 1 : typeof v === 'number' ? 2 : 3;
  if (rank(a) !== rank(b)) return rank(a) - rank(b);
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const sa = String(a);
  const sb = String(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

/** The filter value for a literal compared with a column of `type`; `undefined` if bad. */
function literalFor(
  ctx: Ctx,
  name: string,
  type: ScalarType,
  lit: LiteralNode,
  op: CompareOp,
): FilterValue | undefined {
  const { feature, target, diags } = ctx;
  const bad = (why: string): undefined => {
    diags.error(
      feature,
      'filter_type_mismatch',
      `${feature}: filter ${name} ${op} ${JSON.stringify(lit.value)}: ${why}`,
    );
    return undefined;
  };
  if (lit.type === 'invalid') return bad(`${String(lit.value)} is not a usable value`);
  if (lit.type === 'null') {
    return op === '==' || op === '!=' ? null : bad('null only compares with == and !=');
  }
  switch (type.kind) {
    case 'int':
    case 'float':
      return lit.type === 'number' ? lit.value : bad(`${target.namespace}.${name} is ${type.kind}`);
    case 'string':
      return lit.type === 'string' ? lit.value : bad(`${target.namespace}.${name} is string`);
    case 'boolean':
      return lit.type === 'boolean' ? lit.value : bad(`${target.namespace}.${name} is boolean`);
    case 'datetime': {
      if (lit.type === 'datetime' || lit.type === 'number') return lit.value;
      const ms = lit.type === 'string' ? parseBucketStart(lit.value) : null;
      return ms ?? bad(`${target.namespace}.${name} is datetime; compare it with a Date`);
    }
    case 'vector':
      return bad('vectors cannot be filtered');
  }
}

/** An integer argument checked against its catalog range, or its default. */
function integerArgument(
  ctx: Ctx,
  kind: string,
  arg: AggregationArgument,
  value: unknown,
): number | null {
  const fallback = 'default' in arg ? arg.default : undefined;
  if (value === undefined && fallback !== undefined) return fallback;
  const min = 'min' in arg ? arg.min : 0;
  const max = 'max' in arg ? arg.max : 0;
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max)
    return value;
  ctx.diags.error(
    ctx.feature,
    'invalid_aggregation_argument',
    `${ctx.feature}: ${kind} ${arg.option} must be a whole number in [${min}, ${max}], got ${JSON.stringify(value) ?? String(value)}`,
  );
  return null;
}

/**
 * The aggregation's description, `by` column and `returnTotalWeight`, with every
 * argument checked as the aggregation catalog says (its kind, range, default, and the
 * column kinds a `by` column may have).
 */
function resolveAggregation(
  ctx: Ctx,
  expr: AggregateNode,
  colType: ScalarType | null,
): {
  description: AggregationDescription;
  by: ColumnAtVersion | null;
  returnTotalWeight: boolean;
} | null {
  const a = expr.aggregation;
  const { feature, target, diags } = ctx;
  const raw = a as unknown as Readonly<Record<string, unknown>>;
  const description: AggregationDescription = { kind: a.kind };
  const fields = description as unknown as Record<string, unknown>;
  let by: ColumnAtVersion | null = null;
  let returnTotalWeight = false;
  let ok = true;
  for (const arg of aggregationEntry(a.kind).arguments) {
    switch (arg.kind) {
      case 'integer': {
        const v = integerArgument(ctx, a.kind, arg, raw[arg.name]);
        if (v === null) ok = false;
        else fields[arg.name] = v;
        break;
      }
      case 'quantile': {
        const q = raw[arg.name];
        if (typeof q !== 'number' || !Number.isFinite(q) || q < 0 || q > 1) {
          diags.error(
            feature,
            'invalid_aggregation_argument',
            `${feature}: ${a.kind} ${arg.option} must be a number in [0, 1], got ${JSON.stringify(q) ?? String(q)}`,
          );
          ok = false;
        } else fields[arg.name] = q;
        break;
      }
      case 'flag': {
        const v = raw[arg.name];
        if (v !== undefined && typeof v !== 'boolean') {
          diags.error(
            feature,
            'invalid_aggregation_argument',
            `${feature}: ${a.kind} ${arg.option} must be a boolean`,
          );
          ok = false;
        } else if (arg.name === 'returnTotalWeight') returnTotalWeight = v === true;
        break;
      }
      case 'column': {
        const accepts = ('accepts' in arg ? arg.accepts : []) as readonly ScalarKind[];
        if (a.by === undefined || a.by === null) {
          if (arg.required) {
            diags.error(
              feature,
              'invalid_aggregation_argument',
              `${feature}: ${a.kind} needs a '${arg.option}' column`,
            );
            ok = false;
          }
          break;
        }
        const resolved = resolveColumn(ctx, a.by, `${a.kind} '${arg.option}'`);
        if (resolved === null) {
          ok = false;
          break;
        }
        if (!accepts.includes(resolved.type.kind)) {
          diags.error(
            feature,
            'by_not_numeric',
            `${feature}: ${a.kind} orders by ${target.namespace}.${columnText(resolved.column)}, which is ${typeText(resolved.type)}; '${arg.option}' must be ${accepts.join(' or ')}`,
          );
          ok = false;
          break;
        }
        by = resolved.column;
        break;
      }
    }
  }
  if (!ok) return null;
  // An optional `by` column weighs the items: the state depends on it.
  const byArgument = aggregationArgument(a.kind, 'by');
  if (byArgument !== undefined && !byArgument.required) description.weighted = by !== null;
  if (colType === null && a.kind !== 'count') return null;
  return { description, by, returnTotalWeight };
}

/** The result type of a scalar column's values. */
export function scalarResult(t: ScalarType): ResultType {
  return t.kind === 'vector' ? { kind: 'vector', dim: t.dim ?? 0 } : { kind: t.kind };
}

/** The result type of `kind` over a column of `col`, by the catalog's result rule. */
function resultTypeOf(
  kind: AggregationKind,
  col: ScalarType | null,
  returnTotalWeight: boolean,
): ResultType {
  const like = (): ResultType => (col ? scalarResult(col) : { kind: 'unknown' });
  switch (aggregationEntry(kind).result) {
    case 'int':
      return { kind: 'int' };
    case 'float':
      return { kind: 'float' };
    case 'likeInput':
      return like();
    case 'sumOfInput':
      if (col?.kind === 'vector') return scalarResult(col);
      return { kind: col?.kind === 'float' ? 'float' : 'int' };
    case 'meanOfInput':
      return col?.kind === 'vector' ? scalarResult(col) : { kind: 'float' };
    case 'listOfInput':
      return { kind: 'list', of: like() };
    case 'topKOfInput':
      return returnTotalWeight
        ? { kind: 'weighted_list', of: like() }
        : { kind: 'list', of: like() };
  }
}
