/**
 * Window references: `User.total('10m')`, `User.total['10m']`, `User.total_10m`,
 * `User.total__10m__` and `User.total__600__` all evaluate to the same frozen
 * {@link WindowRef}, whose `canonical` name is `user.total__600__`.
 */

import { WINDOWS_TYPE } from './builders.js';
import { VALUE_TYPE } from './column.js';
import {
  canonicalWindowName,
  formatDuration,
  MAX_DURATION_MS,
  tryParseDuration,
  windowSecondsName,
} from './duration.js';
import type { WindowKey } from './duration-types.js';
import { WindowReferenceError } from './errors.js';

/** One window of a windowed feature, as used in queries and resolvers. */
export interface WindowRef<V> {
  readonly kind: 'window_ref';
  /** Namespace of the feature's class, e.g. `user`. */
  readonly namespace: string;
  /** The feature's name, e.g. `total`. */
  readonly feature: string;
  /** `namespace.feature`, e.g. `user.total`. */
  readonly qualifiedName: string;
  /** The window, canonically printed (`7d`, `1h30m`, `infinity`). */
  readonly window: string;
  /** The window in milliseconds. */
  readonly windowMs: number;
  /** The version asked for explicitly, or `null` (the default version). */
  readonly version: number | null;
  /** `namespace.feature__<seconds>__` (`__all__` for 100 years) plus `@<version>`. */
  readonly canonical: string;
  readonly [VALUE_TYPE]?: V;
}

/** The parts shared by every windowed feature object. */
export interface WindowedFeatureBase<W extends string, V> {
  /** One window: `User.total('7d')`. */
  (window: WindowKey<W>): WindowRef<V>;
  readonly kind: 'windowed_feature';
  /** Namespace of the class. */
  readonly namespace: string;
  /** The feature's name (also the function's `name`). */
  readonly featureName: string;
  /** `namespace.feature`. */
  readonly qualifiedName: string;
  /** The declared windows as written. */
  readonly windows: readonly string[];
  readonly [VALUE_TYPE]?: V;
  readonly [WINDOWS_TYPE]?: W;
}

/**
 * A windowed feature of a class: callable with a window, and indexable by its declared
 * windows and their seconds spellings (`User.total['7d']`, `User.total['604800']`).
 */
export type WindowedFeature<W extends string, V> = WindowedFeatureBase<W, V> & {
  readonly [P in WindowKey<W>]: WindowRef<V>;
};

/** A window that parsed, with every key it answers to. */
export interface ParsedWindow {
  readonly declared: string;
  readonly ms: number;
  readonly keys: readonly string[];
}

/** Parses declared windows, skipping invalid ones (the planner reports those). */
export function parseWindows(declared: readonly string[]): ParsedWindow[] {
  const out: ParsedWindow[] = [];
  for (const w of declared) {
    const parsed = tryParseDuration(w);
    if (!parsed.ok) continue;
    const seconds = windowSecondsName(parsed.ms);
    if (seconds === undefined) continue;
    const keys = new Set([w, formatDuration(parsed.ms), seconds]);
    if (parsed.ms >= MAX_DURATION_MS) {
      keys.add('all');
      keys.add('infinity');
    }
    out.push({ declared: w, ms: parsed.ms, keys: [...keys] });
  }
  return out;
}

/** Runtime window reference. */
export function makeWindowRef(
  namespace: string,
  feature: string,
  windowMs: number,
  version: number | null,
): WindowRef<unknown> {
  return Object.freeze({
    kind: 'window_ref' as const,
    namespace,
    feature,
    qualifiedName: `${namespace}.${feature}`,
    window: formatDuration(windowMs),
    windowMs,
    version,
    canonical: canonicalWindowName(namespace, feature, windowMs, version),
  });
}

/** Resolves a window key against declared windows or throws a named error. */
export function resolveWindowKey(
  qualifiedName: string,
  key: string,
  windows: readonly ParsedWindow[],
  declared: readonly string[],
): ParsedWindow {
  const parsed = tryParseDuration(key);
  if (!parsed.ok) {
    throw new WindowReferenceError(qualifiedName, key, declared, parsed.error.message);
  }
  const found = windows.find((w) => w.ms === parsed.ms);
  if (found === undefined) throw new WindowReferenceError(qualifiedName, key, declared);
  return found;
}

/** True for keys that look like an attempt at a window (so unknown ones throw). */
export function looksLikeWindow(key: string): boolean {
  return /^\s*-?\s*\d/.test(key) || key === 'all' || key === 'infinity';
}

/**
 * Builds the callable, indexable object behind `User.total`. Declared windows are own
 * properties under every spelling; other duration-like keys resolve through a proxy
 * (`User.total['168h']` finds `7d`) or throw a {@link WindowReferenceError} naming the
 * feature, the window asked and the windows declared.
 */
export function makeWindowedFeature(
  namespace: string,
  name: string,
  declared: readonly string[],
  version: number | null,
  extra: Readonly<Record<string, unknown>> = {},
): unknown {
  const qualifiedName = `${namespace}.${name}`;
  const windows = parseWindows(declared);
  const refs = new Map<number, WindowRef<unknown>>();
  for (const w of windows) refs.set(w.ms, makeWindowRef(namespace, name, w.ms, version));
  const lookup = (key: string): WindowRef<unknown> => {
    const w = resolveWindowKey(qualifiedName, key, windows, declared);
    const ref = refs.get(w.ms);
    if (ref === undefined) throw new WindowReferenceError(qualifiedName, key, declared);
    return ref;
  };
  const fn = (window: unknown): WindowRef<unknown> => lookup(String(window));
  Object.defineProperty(fn, 'name', { value: name });
  Object.assign(fn, {
    kind: 'windowed_feature',
    namespace,
    featureName: name,
    qualifiedName,
    windows: Object.freeze([...declared]),
    ...extra,
  });
  for (const w of windows) {
    const ref = refs.get(w.ms);
    for (const key of w.keys) {
      if (!Object.hasOwn(fn, key)) Object.defineProperty(fn, key, { value: ref, enumerable: true });
    }
  }
  Object.freeze(fn);
  return new Proxy(fn, {
    get(target, prop, receiver) {
      if (typeof prop !== 'string' || Object.hasOwn(target, prop) || prop in target) {
        return Reflect.get(target, prop, receiver);
      }
      return looksLikeWindow(prop) ? lookup(prop) : undefined;
    },
  });
}
