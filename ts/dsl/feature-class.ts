/**
 * `features()`: declares a feature class, the TypeScript counterpart of a
 * Python feature store's `@features class User: ...`.
 */
import type {
  GroupedValue,
  GroupedWindowedBuilder,
  HasManyBuilder,
  ScalarBuilder,
  VersionedScalarBuilder,
  VersionedWindowedBuilder,
  WindowedBuilder,
  WindowedSpec,
} from './builders.js';
import { type Column, ColumnImpl, type ValueOf, type VersionedColumn } from './column.js';
import type { Seconds } from './duration-types.js';
import type {
  ClassDefinition,
  FeatureDefinition,
  ScalarDefinition,
  WindowedDefinition,
  WindowedVersionDefinition,
} from './nodes.js';
import { node } from './nodes.js';
import { type HasMany, HasManyImpl } from './relation.js';
import {
  looksLikeWindow,
  makeWindowedFeature,
  parseWindows,
  resolveWindowKey,
  type WindowedFeature,
  type WindowRef,
} from './window-ref.js';

/** Key under which every feature class carries its {@link ClassDefinition}. */
export const FEATURE_CLASS: unique symbol = Symbol('tessera.featureClass');
/** Phantom key carrying a feature class's namespace literal. */
export const NAMESPACE_TYPE: unique symbol = Symbol('tessera.namespaceType');

/** Anything produced by {@link features}. */
export interface AnyFeatureClass {
  readonly [FEATURE_CLASS]: ClassDefinition;
}

/** Any value accepted in the shape given to {@link features}. */
export type AnyFeatureBuilder =
  | ScalarBuilder<unknown>
  | VersionedScalarBuilder<Readonly<Record<number, ScalarBuilder<unknown>>>, number>
  | HasManyBuilder<unknown>
  | WindowedBuilder<string, unknown>
  | GroupedWindowedBuilder<string, unknown, unknown>
  | VersionedWindowedBuilder<Readonly<Record<number, WindowedBuilder<string, unknown>>>, number>;

/** The shape given to {@link features}: feature name -> builder. */
export type FeatureShape = Readonly<Record<string, AnyFeatureBuilder>>;

type VersionValues<VM> = { [K in keyof VM]: ValueOf<VM[K]> };

/** The windows of a windowed builder (the default version's for versioned ones). */
export type WindowsOfBuilder<B> =
  B extends VersionedWindowedBuilder<infer VM, infer D>
    ? WindowsOfBuilder<VM[D]>
    : B extends { readonly kind: 'windowed'; readonly spec: WindowedSpec }
      ? B extends WindowedBuilder<infer W, unknown>
        ? W
        : B extends GroupedWindowedBuilder<infer W, unknown, unknown>
          ? W
          : never
      : never;

/** The value type of a windowed builder's windows. */
export type WindowValueOfBuilder<B> =
  B extends VersionedWindowedBuilder<infer VM, infer D>
    ? WindowValueOfBuilder<VM[D]>
    : B extends GroupedWindowedBuilder<string, infer V, infer G>
      ? B extends { readonly grouped: true }
        ? GroupedValue<G, V>
        : never
      : B extends WindowedBuilder<string, infer V>
        ? V
        : never;

/** A versioned windowed feature: the default version, plus `.version(n)`. */
export type VersionedWindowedFeature<
  VM extends Readonly<Record<number, WindowedBuilder<string, unknown>>>,
  D extends keyof VM,
> = WindowedFeature<WindowsOfBuilder<VM[D]>, WindowValueOfBuilder<VM[D]>> & {
  /** This feature at version `v`; its refs carry `@v` in their canonical names. */
  version<N extends keyof VM & number>(
    v: N,
  ): WindowedFeature<WindowsOfBuilder<VM[N]>, WindowValueOfBuilder<VM[N]>>;
};

/** What a builder becomes on the class object. */
export type FeatureOf<B> =
  B extends VersionedScalarBuilder<infer VM, infer D>
    ? VersionedColumn<VersionValues<VM>, D>
    : B extends ScalarBuilder<infer V>
      ? Column<V>
      : B extends HasManyBuilder<infer T>
        ? HasMany<T>
        : B extends VersionedWindowedBuilder<infer VM, infer D>
          ? VersionedWindowedFeature<VM, D>
          : B extends { readonly kind: 'windowed' }
            ? WindowedFeature<WindowsOfBuilder<B>, WindowValueOfBuilder<B>>
            : never;

type AliasKeys<K extends string, W extends string> = W extends string
  ? `${K}_${W}` | `${K}__${W}__` | `${K}__${Seconds<W>}__`
  : never;

/** The property forms of windows: `total_7d`, `total__7d__`, `total__604800__`. */
export type WindowAliases<S> = {
  readonly [K in keyof S & string as AliasKeys<K, WindowsOfBuilder<S[K]>>]: WindowRef<
    WindowValueOfBuilder<S[K]>
  >;
};

/**
 * A feature class: one property per feature (columns, relations, windowed features),
 * the window aliases of its windowed features, and its definition under
 * {@link FEATURE_CLASS}.
 */
export type FeatureClass<NS extends string, S> = {
  readonly [K in keyof S & string]: FeatureOf<S[K]>;
} & WindowAliases<S> &
  AnyFeatureClass & { readonly [NAMESPACE_TYPE]?: NS };

let sequence = 0;

/**
 * Declares a feature class under `namespace`. The optional third argument derives more
 * features from the class's own relations; it receives the class built from `base` so
 * that expressions are fully typed (`user.transactions.select((t) => t.amount)`).
 * Definitions are never validated here: `plan()` / `validate()` report problems.
 *
 * @example
 * export const Transaction = features('transaction', {
 *   id: int().primary(),
 *   amount: float(),
 *   user_id: int().references('user.id'),
 *   ts: datetime().featureTime(),
 * });
 * export const User = features(
 *   'user',
 *   { id: int().primary(), transactions: hasMany(() => Transaction) },
 *   (user) => ({
 *     total: windowed('1d', '7d', '30d', {
 *       materialization: { bucketDuration: '1d' },
 *       expression: user.transactions.select((t) => t.amount).sum(),
 *       default: 0,
 *     }),
 *   }),
 * );
 * User.total['7d'].canonical; // 'user.total__604800__'
 */
export function features<const NS extends string, const B extends FeatureShape>(
  namespace: NS,
  base: B,
): FeatureClass<NS, B>;
export function features<
  const NS extends string,
  const B extends FeatureShape,
  const D extends FeatureShape,
>(namespace: NS, base: B, derive: (self: FeatureClass<NS, B>) => D): FeatureClass<NS, B & D>;
export function features(
  namespace: string,
  base: Readonly<Record<string, unknown>>,
  derive?: (self: never) => Readonly<Record<string, unknown>>,
): unknown {
  sequence += 1;
  const baseEntries = Object.entries(base ?? {});
  if (derive === undefined) return buildClass(namespace, baseEntries, sequence);
  const stage = buildClass(namespace, baseEntries, sequence);
  const derived = Object.entries(derive(stage as never) ?? {});
  return buildClass(namespace, [...baseEntries, ...derived], sequence);
}

/** True for objects made by {@link features}. */
export function isFeatureClass(value: unknown): value is AnyFeatureClass {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    FEATURE_CLASS in value
  );
}

/** The definition behind a feature class. */
export function definitionOf(cls: AnyFeatureClass): ClassDefinition {
  return cls[FEATURE_CLASS];
}

function buildClass(
  namespace: string,
  entries: readonly (readonly [string, unknown])[],
  seq: number,
): unknown {
  const defs: FeatureDefinition[] = [];
  const props: Record<string, unknown> = {};
  const windowedFeatures = new Map<string, { declared: readonly string[]; ref: unknown }>();

  for (const [name, value] of entries) {
    const def = defineFeature(name, value);
    defs.push(def);
    if (Object.hasOwn(props, name)) continue; // duplicate: reported by the planner
    switch (def.kind) {
      case 'scalar': {
        const type = def.versions
          ? (def.versions.types.find((t) => t.version === def.versions?.defaultVersion)?.type ??
            def.type)
          : def.type;
        props[name] = new ColumnImpl(
          node({ kind: 'column', namespace, name, version: null }),
          type,
        );
        break;
      }
      case 'has_many':
        props[name] = new HasManyImpl(namespace, name);
        break;
      case 'windowed': {
        const ref = windowedObject(namespace, def);
        props[name] = ref;
        const dflt = defaultVersionOf(def);
        if (dflt) windowedFeatures.set(name, { declared: dflt.windows, ref });
        break;
      }
      case 'invalid':
        break;
    }
  }

  // Window aliases, never shadowing a real feature (collisions are diagnosed).
  for (const [name, { declared, ref }] of windowedFeatures) {
    for (const w of parseWindows(declared)) {
      const windowRef = (ref as (k: string) => unknown)(w.declared);
      for (const key of w.keys) {
        for (const alias of [`${name}_${key}`, `${name}__${key}__`]) {
          if (!Object.hasOwn(props, alias)) props[alias] = windowRef;
        }
      }
    }
  }

  const definition: ClassDefinition = node({
    kind: 'class',
    namespace,
    sequence: seq,
    features: Object.freeze(defs),
  });
  const target = Object.freeze({ ...props, [FEATURE_CLASS]: definition });
  const names = [...windowedFeatures.keys()].sort((a, b) => b.length - a.length);
  return new Proxy(target, {
    get(t, prop, receiver) {
      if (typeof prop !== 'string' || Object.hasOwn(t, prop)) return Reflect.get(t, prop, receiver);
      for (const name of names) {
        const windowKey = aliasWindowKey(prop, name);
        if (windowKey === undefined || !looksLikeWindow(windowKey)) continue;
        const info = windowedFeatures.get(name);
        if (info === undefined) continue;
        const w = resolveWindowKey(
          `${namespace}.${name}`,
          windowKey,
          parseWindows(info.declared),
          info.declared,
        );
        return (info.ref as (k: string) => unknown)(w.declared);
      }
      return undefined;
    },
  });
}

function aliasWindowKey(prop: string, name: string): string | undefined {
  if (prop.startsWith(`${name}__`) && prop.endsWith('__') && prop.length > name.length + 4) {
    return prop.slice(name.length + 2, -2);
  }
  if (prop.startsWith(`${name}_`) && prop.length > name.length + 1) {
    return prop.slice(name.length + 1);
  }
  return undefined;
}

function defaultVersionOf(def: WindowedDefinition): WindowedVersionDefinition | undefined {
  return def.versions.find((v) => v.version === def.defaultVersion) ?? def.versions[0];
}

function windowedObject(namespace: string, def: WindowedDefinition): unknown {
  if (def.defaultVersion === null) {
    return makeWindowedFeature(namespace, def.name, def.versions[0]?.windows ?? [], null);
  }
  const byVersion = new Map<number, unknown>();
  for (const v of def.versions) {
    if (v.version !== null) {
      byVersion.set(v.version, makeWindowedFeature(namespace, def.name, v.windows, v.version));
    }
  }
  const version = (n: number): unknown => {
    const found = byVersion.get(n);
    if (found === undefined) {
      throw new RangeError(
        `${namespace}.${def.name} has no version ${n}; versions: ${[...byVersion.keys()].join(', ')}`,
      );
    }
    return found;
  };
  return makeWindowedFeature(namespace, def.name, defaultVersionOf(def)?.windows ?? [], null, {
    version,
    versions: Object.freeze([...byVersion.keys()]),
    defaultVersion: def.defaultVersion,
  });
}

function kindOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const kind = (value as { kind?: unknown }).kind;
  return typeof kind === 'string' ? kind : undefined;
}

function defineFeature(name: string, value: unknown): FeatureDefinition {
  const kind = kindOf(value);
  if (kind === 'scalar') {
    const { spec } = value as ScalarBuilder<unknown>;
    return scalarDefinition(name, spec, null);
  }
  if (kind === 'versioned_scalar') {
    return versionedScalar(name, value as VersionedScalarBuilder<Record<number, never>, never>);
  }
  if (kind === 'has_many') {
    const { spec } = value as HasManyBuilder<unknown>;
    return node({ kind: 'has_many', name, target: spec.target, condition: spec.condition });
  }
  if (kind === 'windowed') {
    const b = value as { grouped: boolean; spec: WindowedSpec };
    return node({
      kind: 'windowed',
      name,
      grouped: b.grouped,
      versions: Object.freeze([versionDefinition(b.spec, null)]),
      defaultVersion: null,
      problems: Object.freeze([]),
    });
  }
  if (kind === 'versioned_windowed') {
    return versionedWindowed(name, value as VersionedWindowedBuilder<Record<number, never>, never>);
  }
  return node({
    kind: 'invalid',
    name,
    problems: Object.freeze([
      `is not a feature builder (int(), float(), hasMany(...), windowed(...), ...)`,
    ]),
  });
}

function scalarDefinition(
  name: string,
  spec: ScalarBuilder<unknown>['spec'],
  versions: ScalarDefinition['versions'],
  problems: readonly string[] = [],
): ScalarDefinition {
  return node({
    kind: 'scalar',
    name,
    type: spec.type,
    primary: spec.primary,
    featureTime: spec.featureTime,
    references: spec.references,
    versions,
    problems: Object.freeze([...spec.problems, ...problems]),
  });
}

function versionEntries(members: Readonly<Record<string, unknown>>): {
  entries: [number, unknown][];
  problems: string[];
} {
  const entries: [number, unknown][] = [];
  const problems: string[] = [];
  for (const [key, member] of Object.entries(members)) {
    const n = Number(key);
    if (!Number.isInteger(n) || n < 1) problems.push(`version '${key}' is not a whole number >= 1`);
    else entries.push([n, member]);
  }
  entries.sort((a, b) => a[0] - b[0]);
  if (entries.length === 0) problems.push('versioned() needs at least one version');
  return { entries, problems };
}

function checkDefault(
  defaultVersion: unknown,
  entries: readonly [number, unknown][],
  problems: string[],
): number | null {
  const first = entries[0]?.[0] ?? null;
  if (typeof defaultVersion !== 'number' || !entries.some(([n]) => n === defaultVersion)) {
    problems.push(
      `default version ${String(defaultVersion)} is not one of the versions ${entries.map(([n]) => n).join(', ')}`,
    );
    return first;
  }
  return defaultVersion;
}

function versionedScalar(
  name: string,
  b: { members: Readonly<Record<string, unknown>>; defaultVersion: unknown },
): FeatureDefinition {
  const { entries, problems } = versionEntries(b.members);
  const types: { version: number; type: ScalarBuilder<unknown>['spec']['type'] }[] = [];
  let defaultSpec: ScalarBuilder<unknown>['spec'] | undefined;
  const defaultVersion = checkDefault(b.defaultVersion, entries, problems);
  for (const [n, member] of entries) {
    if (kindOf(member) !== 'scalar') {
      problems.push(`version ${n} is not a scalar builder`);
      continue;
    }
    const spec = (member as ScalarBuilder<unknown>).spec;
    types.push(node({ version: n, type: spec.type }));
    if (n === defaultVersion || defaultSpec === undefined) defaultSpec = spec;
  }
  if (defaultSpec === undefined || defaultVersion === null) {
    return node({ kind: 'invalid', name, problems: Object.freeze(problems) });
  }
  return scalarDefinition(
    name,
    defaultSpec,
    node({ defaultVersion, types: Object.freeze(types) }),
    problems,
  );
}

function versionDefinition(spec: WindowedSpec, version: number | null): WindowedVersionDefinition {
  return node({
    version,
    windows: spec.windows,
    expression: spec.expression,
    materialization: spec.materialization,
    hasDefault: spec.hasDefault,
    default: spec.default,
    maxStaleness: spec.maxStaleness,
    problems: spec.problems,
  });
}

function versionedWindowed(
  name: string,
  b: { members: Readonly<Record<string, unknown>>; defaultVersion: unknown },
): FeatureDefinition {
  const { entries, problems } = versionEntries(b.members);
  const defaultVersion = checkDefault(b.defaultVersion, entries, problems);
  const versions: WindowedVersionDefinition[] = [];
  let grouped: boolean | undefined;
  for (const [n, member] of entries) {
    if (kindOf(member) !== 'windowed') {
      problems.push(`version ${n} is not a windowed(...) builder`);
      continue;
    }
    const w = member as { grouped: boolean; spec: WindowedSpec };
    if (grouped !== undefined && grouped !== w.grouped) {
      problems.push('versions mix windowed() and groupByWindowed()');
    }
    grouped ??= w.grouped;
    versions.push(versionDefinition(w.spec, n));
  }
  if (versions.length === 0 || defaultVersion === null) {
    return node({ kind: 'invalid', name, problems: Object.freeze(problems) });
  }
  return node({
    kind: 'windowed',
    name,
    grouped: grouped ?? false,
    versions: Object.freeze(versions),
    defaultVersion,
    problems: Object.freeze(problems),
  });
}
