/** Finding how a window reference is served. */
import { tryParseDuration } from '../dsl/duration.js';
import type { Plan, ReadPlan } from './types.js';

/** The parts of a window reference a lookup needs (a `WindowRef` has them all). */
export interface WindowRefLike {
  readonly qualifiedName: string;
  readonly windowMs: number;
  readonly version: number | null;
}

/**
 * Finds the read serving a window reference: a `WindowRef` (`User.total['7d']`) or a
 * string in any of the five forms, fully qualified: `user.total__604800__`,
 * `user.total__7d__`, `user.total_7d`, `user.total('7d')`, `user.total['7d']`, each with
 * an optional `@<version>` suffix. Without a version, a versioned feature resolves to
 * its default version. Returns `undefined` when nothing in the plan serves it.
 *
 * @example
 * findRead(plan, User.total['7d'])?.rule; // rule index within the read's series
 * findRead(plan, 'user.total_7d') === findRead(plan, 'user.total__604800__'); // true
 */
export function findRead(plan: Plan, ref: WindowRefLike | string): ReadPlan | undefined {
  const parsed = typeof ref === 'string' ? parseReference(plan, ref) : ref;
  if (parsed === undefined) return undefined;
  const matches = plan.reads.filter(
    (r) => `${r.namespace}.${r.name}` === parsed.qualifiedName && r.windowMs === parsed.windowMs,
  );
  return parsed.version === null
    ? matches.find((r) => r.isDefaultVersion)
    : matches.find((r) => r.version === parsed.version);
}

function parseReference(plan: Plan, text: string): WindowRefLike | undefined {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)\.(.+?)(?:@(\d+))?$/.exec(text.trim());
  if (m === null) return undefined;
  const [, ns = '', rest = '', version] = m;
  const names = [...new Set(plan.reads.filter((r) => r.namespace === ns).map((r) => r.name))].sort(
    (a, b) => b.length - a.length,
  );
  for (const name of names) {
    if (!rest.startsWith(name)) continue;
    const tail = rest.slice(name.length);
    const key =
      /^__(.+)__$/.exec(tail)?.[1] ??
      /^\(\s*['"](.+)['"]\s*\)$/.exec(tail)?.[1] ??
      /^\[\s*['"](.+)['"]\s*\]$/.exec(tail)?.[1] ??
      /^_(.+)$/.exec(tail)?.[1];
    if (key === undefined) continue;
    const ms = tryParseDuration(key);
    if (!ms.ok) continue;
    return {
      qualifiedName: `${ns}.${name}`,
      windowMs: ms.ms,
      version: version === undefined ? null : Number(version),
    };
  }
  return undefined;
}
