/** Deep freezing of plans. */

/** Freezes `value` and everything reachable from it; returns it. */
export function deepFreeze<T>(value: T, seen: Set<object> = new Set()): T {
  if (typeof value !== 'object' || value === null || seen.has(value)) return value;
  seen.add(value);
  for (const v of Object.values(value)) deepFreeze(v, seen);
  Object.freeze(value);
  return value;
}
