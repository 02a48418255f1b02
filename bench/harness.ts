/**
 * The benchmark harness: scenarios measure Tessera and its peers in the same process on
 * the same generated data, repeat, and report medians and ratios.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One scenario's figures, as written to `bench/results/latest.json`. */
export interface ScenarioResult {
  name: string;
  unit: string;
  tessera: number;
  peers: Record<string, number>;
  ratios: Record<string, number>;
  /** Extra facts worth keeping (bar, sizes, settings). */
  notes?: Record<string, number | string | boolean>;
}

export interface BenchContext {
  quick: boolean;
  repetitions: number;
}

/** Median of a list of numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? Number.NaN)
    : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** The `p`-quantile (0..1) of a list of numbers. */
export function quantile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
}

/** Runs `f` `times` times and returns the median of what it returns. */
export async function repeat(times: number, f: () => Promise<number> | number): Promise<number> {
  const results: number[] = [];
  for (let i = 0; i < times; i++) results.push(await f());
  return median(results);
}

/** Events per second for `events` events that took `ms` milliseconds. */
export function perSecond(events: number, ms: number): number {
  return (events / ms) * 1000;
}

/** A scratch directory removed after `f`. */
export async function withTempDir<T>(f: (dir: string) => Promise<T> | T): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-'));
  try {
    return await f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A seeded generator, so every peer sees the same data. */
export { seededRandom } from '../ts/cli/seeded-random.js';
