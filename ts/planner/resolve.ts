/**
 * Schema resolution: collects every feature class reachable from the input, checks
 * names, primary keys, feature times, foreign keys and has-many joins.
 */
import { ColumnImpl, ConditionImpl, recordingRow } from '../dsl/column.js';
import { type AnyFeatureClass, definitionOf, isFeatureClass } from '../dsl/feature-class.js';
import type {
  ClassDefinition,
  ConditionNode,
  HasManyDefinition,
  ReferenceNode,
  ScalarDefinition,
  ScalarType,
  WindowedDefinition,
} from '../dsl/nodes.js';
import { parseWindows } from '../dsl/window-ref.js';
import type { DiagnosticList } from './diagnostics.js';

/** A scalar column of a resolved class. */
export interface ResolvedColumn {
  readonly name: string;
  /** Declaration order within the class. */
  readonly order: number;
  readonly def: ScalarDefinition;
  /** Type of the default version. */
  readonly type: ScalarType;
  /** Types by version, for versioned columns. */
  readonly versions: ReadonlyMap<number, ScalarType> | null;
  readonly defaultVersion: number | null;
  /** Resolved foreign key, `namespace.column`. */
  references: { namespace: string; column: string } | null;
}

/** A resolved has-many relation. */
export interface ResolvedRelation {
  readonly name: string;
  readonly def: HasManyDefinition;
  /** The related class, when it resolved. */
  target: ResolvedClass | null;
  /** Join pairs in the target's declaration order, when the join resolved. */
  join: { target: string; owner: string }[] | null;
}

/** A feature class with its schema resolved. */
export interface ResolvedClass {
  readonly namespace: string;
  readonly def: ClassDefinition;
  readonly columns: Map<string, ResolvedColumn>;
  readonly relations: Map<string, ResolvedRelation>;
  readonly windowed: WindowedDefinition[];
  primaryKey: string[];
  featureTime: string | null;
}

/** The resolved schema of every reachable class. */
export interface Schema {
  /** In definition order. */
  readonly classes: ResolvedClass[];
  readonly byNamespace: ReadonlyMap<string, ResolvedClass>;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED = new Set(['chalk_now', 'chalk_window']);

/** What `plan()` accepts: feature classes, as a list or as a module's exports. */
export type PlanInput = readonly unknown[] | Readonly<Record<string, unknown>>;

/** The feature classes found in a list or a module namespace object. */
export function featureClassesOf(input: PlanInput): AnyFeatureClass[] {
  const values: unknown[] = Array.isArray(input) ? [...input] : Object.values(input);
  const out: AnyFeatureClass[] = [];
  for (const v of values) {
    if (isFeatureClass(v)) out.push(v);
    else if (Array.isArray(v)) out.push(...v.filter(isFeatureClass));
  }
  return out;
}

/** Resolves the schema of every class reachable from `roots`. */
export function resolveSchema(roots: readonly AnyFeatureClass[], diags: DiagnosticList): Schema {
  const defs = collect(roots, diags);
  const byNamespace = new Map<string, ResolvedClass>();
  const classes: ResolvedClass[] = [];
  for (const def of defs) {
    const cls = resolveClass(def, diags);
    byNamespace.set(def.namespace, cls);
    classes.push(cls);
  }
  const schema: Schema = { classes, byNamespace };
  for (const cls of classes) {
    for (const col of cls.columns.values()) {
      if (col.def.references)
        col.references = resolveReference(cls, col, col.def.references, schema, diags);
    }
  }
  for (const cls of classes) {
    for (const rel of cls.relations.values()) resolveRelation(cls, rel, schema, diags);
  }
  return schema;
}

function collect(roots: readonly AnyFeatureClass[], diags: DiagnosticList): ClassDefinition[] {
  const seen = new Map<string, ClassDefinition>();
  const queue = [...roots];
  for (let cls = queue.shift(); cls !== undefined; cls = queue.shift()) {
    const def = definitionOf(cls);
    const existing = seen.get(def.namespace);
    if (existing !== undefined) {
      if (existing !== def && existing.sequence !== def.sequence) {
        diags.error(
          def.namespace,
          'duplicate_namespace',
          `namespace '${def.namespace}' is declared by two different feature classes`,
        );
      }
      continue;
    }
    seen.set(def.namespace, def);
    for (const f of def.features) {
      if (f.kind !== 'has_many') continue;
      const target = callThunk(f.target);
      if (isFeatureClass(target.value)) queue.push(target.value);
    }
  }
  return [...seen.values()].sort((a, b) => a.sequence - b.sequence);
}

function callThunk(thunk: () => unknown): { value: unknown; error: string | null } {
  try {
    return { value: thunk(), error: null };
  } catch (e) {
    return { value: undefined, error: e instanceof Error ? e.message : String(e) };
  }
}

function resolveClass(def: ClassDefinition, diags: DiagnosticList): ResolvedClass {
  const ns = def.namespace;
  if (typeof ns !== 'string' || !IDENTIFIER.test(ns)) {
    diags.error(String(ns), 'invalid_name', `namespace '${String(ns)}' is not an identifier`);
  }
  const cls: ResolvedClass = {
    namespace: ns,
    def,
    columns: new Map(),
    relations: new Map(),
    windowed: [],
    primaryKey: [],
    featureTime: null,
  };
  const names = new Set<string>();
  def.features.forEach((f, order) => {
    const qualified = `${ns}.${f.name}`;
    if (!IDENTIFIER.test(f.name)) {
      diags.error(qualified, 'invalid_name', `${qualified}: '${f.name}' is not an identifier`);
    } else if (RESERVED.has(f.name)) {
      diags.error(
        qualified,
        'reserved_name',
        `${qualified}: '${f.name}' is reserved for the special times of expressions`,
      );
    }
    if (names.has(f.name)) {
      diags.error(qualified, 'duplicate_feature', `${qualified} is defined twice`);
      return;
    }
    names.add(f.name);
    switch (f.kind) {
      case 'invalid':
        for (const p of f.problems)
          diags.error(qualified, 'invalid_definition', `${qualified}: ${p}`);
        return;
      case 'scalar': {
        for (const p of f.problems)
          diags.error(qualified, 'invalid_definition', `${qualified}: ${p}`);
        const versions = f.versions
          ? new Map(f.versions.types.map((t) => [t.version, t.type] as const))
          : null;
        const defaultVersion = f.versions?.defaultVersion ?? null;
        const type =
          (defaultVersion !== null ? versions?.get(defaultVersion) : undefined) ?? f.type;
        cls.columns.set(f.name, {
          name: f.name,
          order,
          def: f,
          type,
          versions,
          defaultVersion,
          references: null,
        });
        return;
      }
      case 'has_many':
        cls.relations.set(f.name, { name: f.name, def: f, target: null, join: null });
        return;
      case 'windowed':
        cls.windowed.push(f);
        return;
    }
  });

  // Window aliases (`total_7d`) must not collide with real features.
  for (const w of cls.windowed) {
    const dflt = w.versions.find((v) => v.version === w.defaultVersion) ?? w.versions[0];
    for (const pw of parseWindows(dflt?.windows ?? [])) {
      for (const key of pw.keys) {
        for (const alias of [`${w.name}_${key}`, `${w.name}__${key}__`]) {
          if (names.has(alias)) {
            diags.error(
              `${ns}.${alias}`,
              'name_collision',
              `${ns}.${alias} collides with window '${pw.declared}' of ${ns}.${w.name} (${ns}.${w.name}_${key})`,
              pw.declared,
            );
          }
        }
      }
    }
  }

  const primary = [...cls.columns.values()].filter((c) => c.def.primary).map((c) => c.name);
  cls.primaryKey = primary.length > 0 ? primary : cls.columns.has('id') ? ['id'] : [];

  const explicit = [...cls.columns.values()].filter((c) => c.def.featureTime);
  const datetimes = [...cls.columns.values()].filter((c) => c.type.kind === 'datetime');
  if (explicit.length > 1) {
    diags.error(
      ns,
      'invalid_definition',
      `${ns} marks ${explicit.length} features with featureTime(): ${explicit.map((c) => c.name).join(', ')}`,
    );
  }
  const chosen = explicit[0];
  if (chosen !== undefined && chosen.type.kind !== 'datetime') {
    diags.error(
      `${ns}.${chosen.name}`,
      'invalid_definition',
      `${ns}.${chosen.name} is marked featureTime() but is ${chosen.type.kind}, not datetime`,
    );
  }
  cls.featureTime =
    chosen?.name ??
    (cls.columns.get('ts')?.type.kind === 'datetime'
      ? 'ts'
      : datetimes.length === 1
        ? (datetimes[0]?.name ?? null)
        : null);
  return cls;
}

function snakeCase(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z])([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
}

/** Finds a class by namespace, accepting the class-name spelling (`User` -> `user`). */
export function findClass(schema: Schema, name: string): ResolvedClass | undefined {
  return schema.byNamespace.get(name) ?? schema.byNamespace.get(snakeCase(name));
}

function resolveReference(
  cls: ResolvedClass,
  col: ResolvedColumn,
  ref: ReferenceNode,
  schema: Schema,
  diags: DiagnosticList,
): { namespace: string; column: string } | null {
  const qualified = `${cls.namespace}.${col.name}`;
  let nsName: string;
  let column: string;
  if (ref.kind === 'name') {
    const dot = ref.text.lastIndexOf('.');
    if (dot <= 0) {
      diags.error(
        qualified,
        'invalid_reference',
        `${qualified} references '${ref.text}', which is not 'namespace.column'`,
      );
      return null;
    }
    nsName = ref.text.slice(0, dot);
    column = ref.text.slice(dot + 1);
  } else {
    const got = callThunk(ref.get);
    if (!(got.value instanceof ColumnImpl) || got.value.namespace === null) {
      diags.error(
        qualified,
        'invalid_reference',
        `${qualified}: references(() => ...) must return a feature column such as User.id${got.error ? ` (it threw: ${got.error})` : ''}`,
      );
      return null;
    }
    nsName = got.value.namespace;
    column = got.value.name;
  }
  const target = findClass(schema, nsName);
  if (target === undefined) {
    // Only a warning: a class absent from the plan joins through nobody.
    diags.warning(
      qualified,
      'invalid_reference',
      `${qualified} references ${nsName}.${column}, but no feature class '${nsName}' is being planned`,
    );
    return null;
  }
  const targetCol = target.columns.get(column);
  if (targetCol === undefined) {
    diags.error(
      qualified,
      'invalid_reference',
      `${qualified} references ${target.namespace}.${column}, which is not a column of ${target.namespace}`,
    );
    return null;
  }
  if (!sameKeyType(col.type, targetCol.type)) {
    diags.warning(
      qualified,
      'join_type_mismatch',
      `${qualified} is ${col.type.kind} but references ${target.namespace}.${column}, which is ${targetCol.type.kind}; keys of different types never match`,
    );
  }
  return { namespace: target.namespace, column };
}

function sameKeyType(a: ScalarType, b: ScalarType): boolean {
  const norm = (k: string): string => (k === 'float' ? 'int' : k);
  return norm(a.kind) === norm(b.kind);
}

function resolveRelation(
  owner: ResolvedClass,
  rel: ResolvedRelation,
  schema: Schema,
  diags: DiagnosticList,
): void {
  const qualified = `${owner.namespace}.${rel.name}`;
  const got = callThunk(rel.def.target);
  if (!isFeatureClass(got.value)) {
    diags.error(
      qualified,
      'unknown_relation',
      `${qualified}: hasMany(() => ...) must return a feature class${got.error ? ` (it threw: ${got.error})` : ''}`,
    );
    return;
  }
  const target = schema.byNamespace.get(definitionOf(got.value).namespace);
  if (target === undefined) return;
  rel.target = target;

  const pairs: { target: string; owner: string }[] = [];
  if (rel.def.condition !== null) {
    let value: unknown;
    try {
      value = rel.def.condition(recordingRow());
    } catch (e) {
      diags.error(
        qualified,
        'invalid_join',
        `${qualified}: the join condition threw: ${e instanceof Error ? e.message : String(e)}`,
      );
      return;
    }
    if (!(value instanceof ConditionImpl)) {
      diags.error(
        qualified,
        'invalid_join',
        `${qualified}: the join condition must return a condition such as t.user_id.eq(User.id)`,
      );
      return;
    }
    if (!joinPairs(value.node, owner, target, pairs, qualified, diags)) return;
  } else {
    const fks = [...target.columns.values()].filter(
      (c) => c.references?.namespace === owner.namespace,
    );
    if (fks.length === 0) {
      diags.error(
        qualified,
        'missing_join',
        `${qualified}: ${target.namespace} has no foreign key to ${owner.namespace} (declare one with references('${owner.namespace}.${owner.primaryKey[0] ?? 'id'}') or give hasMany a join condition)`,
      );
      return;
    }
    const byOwnerColumn = new Map<string, string[]>();
    for (const fk of fks) {
      const ownerColumn = fk.references?.column ?? '';
      byOwnerColumn.set(ownerColumn, [...(byOwnerColumn.get(ownerColumn) ?? []), fk.name]);
    }
    for (const [ownerColumn, cols] of byOwnerColumn) {
      if (cols.length > 1) {
        diags.error(
          qualified,
          'ambiguous_join',
          `${qualified}: ${cols.map((c) => `${target.namespace}.${c}`).join(' and ')} all reference ${owner.namespace}.${ownerColumn}; give hasMany an explicit join condition`,
        );
        return;
      }
      pairs.push({ target: cols[0] ?? '', owner: ownerColumn });
    }
  }
  pairs.sort(
    (a, b) =>
      (target.columns.get(a.target)?.order ?? 0) - (target.columns.get(b.target)?.order ?? 0),
  );
  rel.join = pairs;
}

function joinPairs(
  cond: ConditionNode,
  owner: ResolvedClass,
  target: ResolvedClass,
  out: { target: string; owner: string }[],
  qualified: string,
  diags: DiagnosticList,
): boolean {
  const parts = cond.kind === 'and' ? cond.conditions : [cond];
  for (const part of parts) {
    if (part.kind === 'and') {
      if (!joinPairs(part, owner, target, out, qualified, diags)) return false;
      continue;
    }
    const { left, right } = part;
    if (part.op !== '==' || left.kind !== 'column' || right.kind !== 'column') {
      diags.error(
        qualified,
        'invalid_join',
        `${qualified}: join conditions must be column equalities joined by and(), e.g. t.user_id.eq(User.id).and(t.bank.eq(User.bank))`,
      );
      return false;
    }
    const isTarget = (c: { namespace: string | null }): boolean =>
      c.namespace === null || c.namespace === target.namespace;
    const isOwner = (c: { namespace: string | null }): boolean => c.namespace === owner.namespace;
    const [t, o] =
      isTarget(left) && isOwner(right)
        ? [left, right]
        : isTarget(right) && isOwner(left)
          ? [right, left]
          : [undefined, undefined];
    if (t === undefined || o === undefined) {
      diags.error(
        qualified,
        'invalid_join',
        `${qualified}: each join equality must compare a column of ${target.namespace} with a column of ${owner.namespace}`,
      );
      return false;
    }
    const tc = target.columns.get(t.name);
    const oc = owner.columns.get(o.name);
    if (tc === undefined || oc === undefined) {
      const missing =
        tc === undefined ? `${target.namespace}.${t.name}` : `${owner.namespace}.${o.name}`;
      diags.error(
        qualified,
        'unknown_column',
        `${qualified}: join column ${missing} does not exist`,
      );
      return false;
    }
    if (!sameKeyType(tc.type, oc.type)) {
      diags.warning(
        qualified,
        'join_type_mismatch',
        `${qualified}: ${target.namespace}.${t.name} is ${tc.type.kind} but ${owner.namespace}.${o.name} is ${oc.type.kind}; keys of different types never match`,
      );
    }
    out.push({ target: t.name, owner: o.name });
  }
  return true;
}
