/**
 * Durations, as pinned down by docs/semantics.md section 1. The Rust core implements the same rules;
 * `__test__/dsl-duration.test.ts` pins the examples both sides must agree on.
 *
 * - Units `w d h m s ms`, combined in any order (`1h30m`, `1d12h`), each unit at most
 *   once, optional spaces between parts (and around the whole text), optional leading `-`.
 * - `infinity` and `all` mean {@link MAX_DURATION_MS} (36,500 days). A bare integer
 *   means seconds. Values at or above the maximum are clamped to it.
 * - Canonical printing: largest unit first (`d h m s ms`, no weeks), no zero parts;
 *   at or above the maximum prints `infinity`; zero prints `0s`.
 */
import { DurationError } from './errors.js';

/** 36,500 days (100 years) in milliseconds: what `infinity` / `all` stand for. */
export const MAX_DURATION_MS = 36_500 * 86_400_000;

/** Milliseconds per unit, for parsing. */
const UNIT_MS: Readonly<Record<string, number>> = Object.freeze({
  w: 604_800_000,
  d: 86_400_000,
  h: 3_600_000,
  m: 60_000,
  s: 1_000,
  ms: 1,
});

/** Units in printing order (weeks are accepted but never printed). */
const PRINT_UNITS: readonly (readonly [string, number])[] = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
  ['ms', 1],
];

const PART = /^(\d+)(w|d|h|ms|m|s)$/;
const CHUNK = /\d+(?:\.\d+)?[A-Za-z]*|[^\d\s]+/g;

/**
 * Parses a duration into milliseconds.
 *
 * @throws {DurationError} naming the input and the bad part, e.g.
 *   `invalid duration '1x': unknown part '1x'; valid examples: '10m', '1h', '1h30m'`.
 * @example
 * parseDuration('1h30m') // 5_400_000
 * parseDuration('600')   // 600_000 (a bare integer is seconds)
 * parseDuration('all')   // MAX_DURATION_MS
 */
export function parseDuration(input: string): number {
  let text = input.trim();
  let sign = 1;
  if (text.startsWith('-')) {
    sign = -1;
    text = text.slice(1).trimStart();
  }
  if (text === '') throw new DurationError(input, 'empty duration');
  if (text === 'infinity' || text === 'all') return sign * MAX_DURATION_MS;
  if (/^\d+$/.test(text)) return sign * clamp(Number(text) * 1000);

  const seen = new Set<string>();
  let total = 0;
  for (const part of text.match(CHUNK) ?? []) {
    const m = PART.exec(part);
    const digits = m?.[1];
    const unit = m?.[2];
    const unitMs = unit === undefined ? undefined : UNIT_MS[unit];
    if (digits === undefined || unit === undefined || unitMs === undefined) {
      throw new DurationError(input, 'unknown part', part);
    }
    if (seen.has(unit)) throw new DurationError(input, 'repeated unit', part);
    seen.add(unit);
    total += Number(digits) * unitMs;
  }
  return sign * clamp(total);
}

/**
 * Like {@link parseDuration} but returns the error instead of throwing, for validators
 * that turn problems into diagnostics.
 */
export function tryParseDuration(
  input: string,
): { ok: true; ms: number } | { ok: false; error: DurationError } {
  try {
    return { ok: true, ms: parseDuration(input) };
  } catch (error) {
    if (error instanceof DurationError) return { ok: false, error };
    throw error;
  }
}

/**
 * Prints a duration canonically: largest unit first, no zero parts (`1d1h1m1s5ms`),
 * `infinity` at or above {@link MAX_DURATION_MS}, `0s` for zero, a leading `-` when
 * negative.
 *
 * @example
 * formatDuration(5_400_000)  // '1h30m'
 * formatDuration(604_800_000) // '7d'
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || !Number.isInteger(ms)) {
    throw new RangeError(`formatDuration expects whole milliseconds, got ${ms}`);
  }
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(ms);
  if (rest >= MAX_DURATION_MS) return `${sign}infinity`;
  if (rest === 0) return '0s';
  let out = '';
  for (const [unit, size] of PRINT_UNITS) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return sign + out;
}

/**
 * The canonical spelling of a window length inside feature names: whole seconds, or
 * `all` for the 100-year window. Returns `undefined` for lengths that are not a whole,
 * positive number of seconds.
 *
 * @example
 * windowSecondsName(600_000) // '600'
 * windowSecondsName(MAX_DURATION_MS) // 'all'
 */
export function windowSecondsName(ms: number): string | undefined {
  if (ms >= MAX_DURATION_MS) return 'all';
  if (ms <= 0 || ms % 1000 !== 0) return undefined;
  return String(ms / 1000);
}

/**
 * The canonical fully qualified name of one window of a feature,
 * `namespace.feature__<seconds>__` (`__all__` for the 100-year window), with an
 * `@<version>` suffix when a version is given.
 *
 * @example
 * canonicalWindowName('user', 'total', 604_800_000) // 'user.total__604800__'
 * canonicalWindowName('user', 'total_spend', 2_592_000_000, 2) // 'user.total_spend__2592000__@2'
 */
export function canonicalWindowName(
  namespace: string,
  feature: string,
  windowMs: number,
  version?: number | null,
): string {
  const seconds = windowSecondsName(windowMs);
  if (seconds === undefined) {
    throw new RangeError(`window of ${windowMs} ms is not a whole positive number of seconds`);
  }
  const suffix = version === undefined || version === null ? '' : `@${version}`;
  return `${namespace}.${feature}__${seconds}__${suffix}`;
}

function clamp(ms: number): number {
  return Math.min(ms, MAX_DURATION_MS);
}
