/**
 * Query-time reads of windowed stream resolvers (docs/semantics.md section 6.1): a
 * tumbling window's value is the latest closed period's, observed at or before the
 * query's time; a continuous window runs the resolver on the key's kept messages of
 * `(now - W, now]`. Both for many keys in one call, for `Tessera.query`,
 * `Tessera.queryAsync` and `Tessera.offlineQuery` alike.
 */
import type { BucketEngine } from '../bucket-engine.js';
import { windowedValueProblem } from '../resolvers/windowed.js';
import type { WindowSql } from '../resolvers/windowed-sql.js';
import { InvalidQueryError } from './errors.js';
import type { WindowedNeed } from './query.js';

/**
 * Each row's value of a tumbling window at its time: the latest period's that ended at or
 * before it, unless older than the feature's `maxStaleness` (`undefined`: the default).
 */
export function tumblingValues(
  engine: BucketEngine,
  need: WindowedNeed,
  atMs: (row: number) => number,
): unknown[] {
  const rows: number[] = [];
  const keys: string[] = [];
  const at: number[] = [];
  for (const [row, key] of need.keys.entries()) {
    if (key === null) continue;
    rows.push(row);
    keys.push(key);
    at.push(atMs(row));
  }
  const out: unknown[] = new Array(need.keys.length).fill(undefined);
  if (keys.length === 0) return out;
  const found = engine.windowedValues(
    need.bound.resolver.name,
    need.windowMs,
    keys,
    Float64Array.from(at),
  );
  const maxAge = need.bound.maxStalenessMs;
  for (const [i, value] of found.entries()) {
    if (value === null) continue;
    // Older than the feature's maxStaleness: the default.
    if (maxAge !== null && (at[i] as number) - value.endMs > maxAge) continue;
    out[rows[i] as number] = JSON.parse(value.value);
  }
  return out;
}

/**
 * Each row's value of a continuous window `(t - W, t]`, from the messages kept for its
 * key: the resolver runs once per row with messages. `keptFromMs` is the earliest time
 * the store still keeps messages from (the engine clock minus the largest window); a
 * window reaching before it is an error naming the output and the row.
 */
export async function continuousValues(
  engine: BucketEngine,
  need: WindowedNeed,
  atMs: (row: number) => number,
  sql: () => Promise<WindowSql>,
  keptFromMs: number,
): Promise<unknown[]> {
  const bound = need.bound;
  const resolver = bound.resolver;
  const window = bound.window(need.windowMs);
  const out: unknown[] = new Array(need.keys.length).fill(undefined);
  // One read per distinct time: most queries ask every key at one now.
  const byTime = new Map<number, number[]>();
  for (const [row, key] of need.keys.entries()) {
    if (key === null) continue;
    const t = atMs(row);
    if (t - window.ms < keptFromMs) {
      throw new InvalidQueryError(
        `${need.canonical} at ${new Date(t).toISOString()} (input row ${row}) needs messages from ${new Date(t - window.ms).toISOString()}, and ${resolver.name} keeps them from ${new Date(keptFromMs).toISOString()} (its largest window before the engine clock)`,
      );
    }
    const list = byTime.get(t);
    if (list === undefined) byTime.set(t, [row]);
    else list.push(row);
  }
  for (const [t, rows] of byTime) {
    const keys = rows.map((r) => need.keys[r] as string);
    const kept = engine.retainedMessages(resolver.name, keys, t - window.ms, t);
    for (const [i, row] of rows.entries()) {
      const found = kept[i];
      if (found === undefined || found.count === 0) continue;
      const messages = JSON.parse(found.messages) as Record<string, unknown>[];
      const parts = JSON.parse(keys[i] as string) as unknown[];
      const key = Object.fromEntries(resolver.keys.map((k, j) => [k.field, parts[j]]));
      const result = await bound.invoke(
        messages,
        { window: window.declared, windowMs: window.ms, startMs: t - window.ms, endMs: t, key },
        sql,
      );
      const value = bound.valueOf(result);
      if (value === undefined) continue;
      const problem = windowedValueProblem(value);
      if (problem !== null) {
        throw new InvalidQueryError(
          `${need.canonical}: ${resolver.name} gave input row ${row} a value that ${problem}`,
        );
      }
      out[row] = value;
    }
  }
  return out;
}
