/**
 * The planner's entry points: `compile` (plan + diagnostics), `plan` (throws on
 * errors) and `validate` (diagnostics only).
 */
import {
  canonicalWindowName,
  formatDuration,
  MAX_DURATION_MS,
  tryParseDuration,
  windowSecondsName,
} from '../dsl/duration.js';
import { DefinitionError, type Diagnostic } from '../dsl/errors.js';
import type { WindowedDefinition, WindowedVersionDefinition } from '../dsl/nodes.js';
import { isCountLike } from './aggregations.js';
import { DiagnosticList } from './diagnostics.js';
import { type ResolvedExpression, resolveExpression } from './expression.js';
import { deepFreeze } from './freeze.js';
import { assignBuckets, type PlannedWindow } from './materialization.js';
import {
  featureClassesOf,
  type PlanInput,
  type ResolvedClass,
  resolveSchema,
  type Schema,
} from './resolve.js';
import { canonicalJson, identityText, type SeriesIdentity, seriesId } from './series.js';
import { bucketsKept, bytesPerBucket } from './storage.js';
import {
  type AggregationDescription,
  type ClassPlan,
  type DependentWindow,
  type FeaturePlan,
  type JsonValue,
  type Plan,
  type ReadPlan,
  type ResultType,
  type RulePlan,
  type SeriesPlan,
  VALUE_KIND,
} from './types.js';

export type { PlanInput } from './resolve.js';

/** The result of {@link compile}: a plan of every valid feature, and every diagnostic. */
export interface CompileResult {
  readonly plan: Plan;
  readonly diagnostics: readonly Diagnostic[];
}

/**
 * Plans the feature classes in `input` (a list, or a module's exports) and every class
 * they reach through relations. Features with errors are left out of the plan; every
 * problem is in `diagnostics`. Never throws for problems in definitions.
 *
 * @example
 * const { plan, diagnostics } = compile([User, Transaction]);
 * for (const d of diagnostics) console.error(formatDiagnostic(d));
 */
export function compile(input: PlanInput): CompileResult {
  const diags = new DiagnosticList();
  const schema = resolveSchema(featureClassesOf(input), diags);
  const assembler = new PlanAssembler();
  for (const cls of schema.classes) {
    for (const def of cls.windowed) compileFeature(cls, def, assembler, diags);
  }
  const plan = deepFreeze(assembler.finish(classPlans(schema)));
  return Object.freeze({ plan, diagnostics: Object.freeze([...diags.items]) });
}

/**
 * Plans the feature classes in `input`, throwing a {@link DefinitionError} (with every
 * diagnostic in `.diagnostics`) when any definition has an error. Warnings do not throw.
 *
 * @example
 * const p = plan([User]);
 * toStoreDescription(p); // what the native engine receives
 */
export function plan(input: PlanInput): Plan {
  const result = compile(input);
  if (result.diagnostics.some((d) => d.severity === 'error')) {
    throw new DefinitionError(result.diagnostics);
  }
  return result.plan;
}

/**
 * Every diagnostic for the feature classes in `input` (errors and warnings).
 *
 * @example
 * validate([User]).filter((d) => d.severity === 'error')
 */
export function validate(input: PlanInput): readonly Diagnostic[] {
  return compile(input).diagnostics;
}

function classPlans(schema: Schema): ClassPlan[] {
  return schema.classes.map((cls) => ({
    namespace: cls.namespace,
    primaryKey: [...cls.primaryKey],
    featureTime: cls.featureTime,
    columns: [...cls.columns.values()].map((c) => ({
      name: c.name,
      type: { ...c.type },
      versions: c.def.versions
        ? {
            defaultVersion: c.def.versions.defaultVersion,
            types: c.def.versions.types.map((t) => ({ version: t.version, type: { ...t.type } })),
          }
        : null,
      references: c.references ? `${c.references.namespace}.${c.references.column}` : null,
    })),
    relations: [...cls.relations.values()]
      .filter((r) => r.target !== null)
      .map((r) => ({
        name: r.name,
        target: r.target?.namespace ?? '',
        join: (r.join ?? []).map((p) => ({ ...p })),
      })),
  }));
}

function compileFeature(
  cls: ResolvedClass,
  def: WindowedDefinition,
  assembler: PlanAssembler,
  diags: DiagnosticList,
): void {
  const base = `${cls.namespace}.${def.name}`;
  for (const p of def.problems) diags.error(base, 'invalid_version', `${base}: ${p}`);
  if (def.problems.length > 0) return;
  for (const version of def.versions) compileVersion(cls, def, version, assembler, diags);
}

function compileVersion(
  cls: ResolvedClass,
  def: WindowedDefinition,
  v: WindowedVersionDefinition,
  assembler: PlanAssembler,
  diags: DiagnosticList,
): void {
  const ns = cls.namespace;
  const feature = `${ns}.${def.name}${v.version === null ? '' : `@${v.version}`}`;
  const before = diags.errorCount();
  for (const p of v.problems) diags.error(feature, 'invalid_definition', `${feature}: ${p}`);

  const windows = planWindows(feature, v.windows, diags);
  if (v.windows.length === 0) {
    diags.error(
      feature,
      'missing_windows',
      `${feature} declares no window; give windowed('1d', ...) at least one`,
    );
  }

  let expression: ResolvedExpression | null = null;
  if (v.expression !== null) {
    expression = resolveExpression(feature, cls, v.expression, def.grouped, diags);
    if (cls.primaryKey.length === 0) {
      diags.error(
        feature,
        'missing_primary_key',
        `${feature}: ${ns} has no primary key to key its aggregations by; mark one with .primary() or name it id`,
      );
    }
  } else if (v.materialization !== null) {
    diags.error(
      feature,
      'missing_expression',
      `${feature} is materialized but has no expression to aggregate`,
    );
  }
  let maxStalenessMs: number | undefined;
  if (v.maxStaleness !== null) {
    if (v.expression !== null) {
      diags.error(
        feature,
        'invalid_definition',
        `${feature}: maxStaleness applies to windowed features a windowed stream resolver computes (without an expression); a materialized window is always fresh to its last commit`,
      );
    } else {
      const parsed = tryParseDuration(v.maxStaleness);
      if (!parsed.ok || parsed.ms < 0) {
        diags.error(
          feature,
          'invalid_definition',
          `${feature}: maxStaleness '${v.maxStaleness}' is not a duration such as '10m' or 'infinity'`,
        );
      } else if (parsed.ms < MAX_DURATION_MS) maxStalenessMs = parsed.ms;
    }
  }

  const buckets =
    expression !== null && v.materialization !== null
      ? assignBuckets(feature, windows, v.materialization, diags)
      : null;
  if (expression !== null && v.materialization === null) {
    diags.warning(
      feature,
      'not_materialized',
      `${feature} has an expression but no materialization; Tessera serves windowed aggregations from buckets, so add materialization: true or { bucketDuration: ... }`,
    );
  }

  const resultType: ResultType = expression?.resultType ?? { kind: 'unknown' };
  const dflt = defaultValue(feature, v, resultType, expression, diags);
  if (diags.errorCount() > before) return;

  const kind: FeaturePlan['kind'] =
    expression === null ? 'resolver' : buckets === null ? 'unmaterialized' : 'materialized';
  assembler.addFeature({
    feature,
    namespace: ns,
    name: def.name,
    version: v.version,
    defaultVersion: def.defaultVersion,
    kind,
    grouped: def.grouped,
    windows: windows.map((w) => ({
      declared: w.declared,
      window: formatDuration(w.ms),
      windowMs: w.ms,
      canonical: canonicalWindowName(ns, def.name, w.ms, v.version),
      bucketSizeMs: buckets?.bucketSizes.get(w.ms) ?? null,
    })),
    source:
      expression === null
        ? null
        : {
            namespace: expression.target.namespace,
            relation: expression.relation.name,
            column: expression.column,
            by: expression.by,
            groupBy: [...expression.groupBy],
            filters: expression.filters,
            aggregation: expression.aggregation,
          },
    materialization: buckets?.plan ?? null,
    resultType,
    default: dflt ?? null,
    ...(maxStalenessMs === undefined ? {} : { maxStalenessMs }),
  });
  if (expression === null || buckets === null) return;

  const groupKey = [
    ...new Set([...expression.join.map((p) => p.target), ...expression.groupBy]),
  ].sort(
    (a, b) =>
      (expression.target.columns.get(a)?.order ?? 0) -
      (expression.target.columns.get(b)?.order ?? 0),
  );
  const valueKind = expression.columnType ? VALUE_KIND[expression.columnType.kind] : 'number';
  const identity: SeriesIdentity = {
    namespace: expression.target.namespace,
    groupKey,
    column: expression.column,
    by: expression.by,
    filters: expression.filters.map((f) => f.text),
    timeColumn: expression.timeColumn,
    valueKind,
    vectorDim: valueKind === 'vector' ? (expression.columnType?.dim ?? null) : null,
    bucketOriginMs: buckets.plan.bucketOriginMs,
  };
  // The owner's features give the join-key part of the series key; the rest are groups.
  const joinTargets = new Set(expression.join.map((p) => p.target));
  const key = groupKey
    .filter((c) => joinTargets.has(c))
    .map((c) => ({
      seriesColumn: c,
      ownerColumn: expression.join.find((p) => p.target === c)?.owner ?? '',
    }));
  const groupColumns = groupKey.filter((c) => !joinTargets.has(c));
  for (const w of windows) {
    const bucketSizeMs = buckets.bucketSizes.get(w.ms);
    if (bucketSizeMs === undefined) continue;
    const canonical = canonicalWindowName(ns, def.name, w.ms, v.version);
    const window = formatDuration(w.ms);
    const rule = assembler.addRule(identity, expression, bucketSizeMs, {
      feature,
      window,
      windowMs: w.ms,
      canonical,
    });
    assembler.addRead({
      canonical,
      feature,
      namespace: ns,
      name: def.name,
      version: v.version,
      isDefaultVersion: v.version === null || v.version === def.defaultVersion,
      declared: w.declared,
      window,
      windowMs: w.ms,
      series: rule.seriesId,
      rule: -1,
      ruleKey: rule.ruleKey,
      key,
      groupBy: groupColumns,
      default: dflt ?? null,
      resultType,
      returnTotalWeight: expression.returnTotalWeight,
      continuousBufferMs: buckets.plan.continuousBufferMs,
    });
  }
}

function planWindows(
  feature: string,
  declared: readonly string[],
  diags: DiagnosticList,
): PlannedWindow[] {
  const out: PlannedWindow[] = [];
  for (const w of declared) {
    const parsed = tryParseDuration(String(w));
    if (!parsed.ok) {
      diags.error(
        feature,
        'invalid_duration',
        `${feature}: window '${w}' is not a duration: ${parsed.error.message}`,
        w,
      );
      continue;
    }
    if (parsed.ms <= 0) {
      diags.error(
        feature,
        'invalid_window',
        `${feature}: window '${w}' must be longer than zero`,
        w,
      );
      continue;
    }
    if (windowSecondsName(parsed.ms) === undefined) {
      diags.error(
        feature,
        'invalid_window',
        `${feature}: window '${w}' is not a whole number of seconds`,
        w,
      );
      continue;
    }
    const same = out.find((o) => o.ms === parsed.ms);
    if (same !== undefined) {
      diags.error(
        feature,
        'duplicate_window',
        `${feature}: window '${w}' is the same length as window '${same.declared}'`,
        w,
      );
      continue;
    }
    out.push({ declared: w, ms: parsed.ms });
  }
  return out;
}

/** The effective default as JSON (count-like aggregations default to 0), checked. */
function defaultValue(
  feature: string,
  v: WindowedVersionDefinition,
  resultType: ResultType,
  expression: ResolvedExpression | null,
  diags: DiagnosticList,
): JsonValue | undefined {
  if (!v.hasDefault) {
    const kind = expression?.aggregation.kind;
    return kind !== undefined && isCountLike(kind) ? 0 : null;
  }
  const json = toJson(v.default);
  if (json === undefined) {
    diags.error(
      feature,
      'default_type_mismatch',
      `${feature}: default ${String(v.default)} is not a JSON value, a Date or a list of them`,
    );
    return undefined;
  }
  const expected = resultType.kind === 'grouped' ? resultType.value : resultType;
  const problem = checkValue(json, expected);
  if (problem !== null) {
    diags.error(
      feature,
      problem.code,
      `${feature}: default ${truncate(JSON.stringify(json))} ${problem.message}`,
    );
    return undefined;
  }
  return json;
}

function truncate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

function toJson(value: unknown): JsonValue | undefined {
  if (value === null) return null;
  if (value instanceof Date) {
    const ms = value.getTime();
    return Number.isNaN(ms) ? undefined : ms;
  }
  switch (typeof value) {
    case 'number':
      return Number.isFinite(value) ? value : undefined;
    case 'string':
    case 'boolean':
      return value;
    case 'object': {
      if (Array.isArray(value)) {
        const out: JsonValue[] = [];
        for (const item of value) {
          const j = toJson(item);
          if (j === undefined) return undefined;
          out.push(j);
        }
        return out;
      }
      const out: Record<string, JsonValue> = {};
      for (const [k, item] of Object.entries(value)) {
        const j = toJson(item);
        if (j === undefined) return undefined;
        out[k] = j;
      }
      return out;
    }
    default:
      return undefined;
  }
}

function checkValue(
  value: JsonValue,
  type: ResultType,
): { code: 'default_type_mismatch' | 'vector_dim_mismatch'; message: string } | null {
  if (value === null) return null;
  const mismatch = (what: string) => ({
    code: 'default_type_mismatch' as const,
    message: `is not ${what}`,
  });
  switch (type.kind) {
    case 'int':
    case 'float':
      return typeof value === 'number' ? null : mismatch(`a number (the feature is ${type.kind})`);
    case 'string':
      return typeof value === 'string' ? null : mismatch('a string');
    case 'boolean':
      return typeof value === 'boolean' ? null : mismatch('a boolean');
    case 'datetime':
      return typeof value === 'number' ? null : mismatch('a Date');
    case 'vector':
      if (!Array.isArray(value) || !value.every((x) => typeof x === 'number')) {
        return mismatch(`a vector of ${type.dim} numbers`);
      }
      return value.length === type.dim
        ? null
        : {
            code: 'vector_dim_mismatch',
            message: `has ${value.length} components but the aggregated vector column has ${type.dim}`,
          };
    case 'list':
    case 'weighted_list':
      return Array.isArray(value) ? null : mismatch('a list');
    case 'grouped':
    case 'unknown':
      return null;
  }
}

interface ReadDraft extends ReadPlan {
  readonly ruleKey: string;
}

interface RuleDraft {
  readonly key: string;
  readonly aggregation: AggregationDescription;
  readonly bucketSizeMs: number;
  retentionMs: number;
  readonly dependents: DependentWindow[];
}

interface SeriesDraft {
  /** Provisional key: the identity (what the id hashes, without the format). */
  readonly key: string;
  readonly identity: SeriesIdentity;
  readonly filters: ResolvedExpression['filters'];
  readonly rules: RuleDraft[];
}

/** Accumulates features, series, rules and reads in definition order. */
class PlanAssembler {
  private readonly features: FeaturePlan[] = [];
  private readonly series = new Map<string, SeriesDraft>();
  private readonly reads: ReadDraft[] = [];

  addFeature(f: FeaturePlan): void {
    this.features.push(f);
  }

  addRule(
    identity: SeriesIdentity,
    expression: ResolvedExpression,
    bucketSizeMs: number,
    dependent: DependentWindow,
  ): { seriesId: string; ruleKey: string } {
    const key = canonicalJson(identity);
    let s = this.series.get(key);
    if (s === undefined) {
      s = { key, identity, filters: expression.filters, rules: [] };
      this.series.set(key, s);
    }
    const ruleKey = `${JSON.stringify(expression.aggregation)}|${bucketSizeMs}`;
    let rule = s.rules.find((r) => r.key === ruleKey);
    if (rule === undefined) {
      rule = {
        key: ruleKey,
        aggregation: expression.aggregation,
        bucketSizeMs,
        retentionMs: 0,
        dependents: [],
      };
      s.rules.push(rule);
    }
    rule.retentionMs = Math.max(rule.retentionMs, dependent.windowMs);
    rule.dependents.push(dependent);
    return { seriesId: key, ruleKey };
  }

  addRead(read: ReadDraft): void {
    this.reads.push(read);
  }

  finish(classes: ClassPlan[]): Plan {
    const ids = new Map<string, string>();
    const series: SeriesPlan[] = [...this.series.values()].map((s, i) => {
      const { identity } = s;
      const id = seriesId(identity);
      ids.set(s.key, id);
      const rules: RulePlan[] = s.rules.map((r, index) => {
        const perBucket = bytesPerBucket(r.aggregation, identity.valueKind, identity.vectorDim);
        const kept = bucketsKept(r.retentionMs, r.bucketSizeMs);
        return {
          index,
          aggregation: { ...r.aggregation },
          bucketSizeMs: r.bucketSizeMs,
          bucketOriginMs: identity.bucketOriginMs,
          retentionMs: r.retentionMs,
          dependents: r.dependents,
          bytesPerBucket: perBucket,
          bucketsKept: kept,
          bytesPerKey: perBucket * kept,
        };
      });
      return {
        id,
        number: i + 1,
        namespace: identity.namespace,
        groupKey: [...identity.groupKey],
        column: identity.column,
        by: identity.by,
        filters: s.filters,
        timeColumn: identity.timeColumn,
        valueKind: identity.valueKind,
        vectorDim: identity.vectorDim,
        bucketOriginMs: identity.bucketOriginMs,
        retentionMs: Math.max(...rules.map((r) => r.retentionMs)),
        rules,
        bytesPerKey: rules.reduce((sum, r) => sum + r.bytesPerKey, 0),
        identity: identityText(identity),
      };
    });
    const reads: ReadPlan[] = this.reads.map(({ ruleKey, ...read }) => ({
      ...read,
      series: ids.get(read.series) ?? read.series,
      rule: this.series.get(read.series)?.rules.findIndex((r) => r.key === ruleKey) ?? -1,
    }));
    return {
      formatVersion: 1,
      classes,
      features: this.features,
      series,
      reads,
      bytesPerKey: series.reduce((sum, s) => sum + s.bytesPerKey, 0),
    };
  }
}
