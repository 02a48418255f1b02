/**
 * Durations (docs/semantics.md section 1). The Rust core implements the same rules; the tables below
 * are the examples both sides pin.
 */
import { describe, expect, it } from 'vitest';
import {
  canonicalWindowName,
  DurationError,
  formatDuration,
  MAX_DURATION_MS,
  parseDuration,
  windowSecondsName,
} from '../ts/dsl/index.js';

const S = 1_000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;
const W = 7 * D;

describe('parseDuration', () => {
  it.each([
    ['10m', 10 * M],
    ['1h', H],
    ['1h30m', H + 30 * M],
    ['1d12h', D + 12 * H],
    ['2w', 2 * W],
    ['1w2d3h4m5s6ms', W + 2 * D + 3 * H + 4 * M + 5 * S + 6],
    ['1d1h1m1s5ms', D + H + M + S + 5],
    ['250ms', 250],
    ['30m1h', H + 30 * M], // any order
    ['1h 30m', H + 30 * M], // spaces between parts
    ['  1h30m  ', H + 30 * M], // and around
    ['-1h', -H],
    ['- 1h30m', -(H + 30 * M)],
    ['600', 600 * S], // bare integer = seconds
    ['0', 0],
    ['0s', 0],
    ['007m', 7 * M],
    ['infinity', MAX_DURATION_MS],
    ['all', MAX_DURATION_MS],
    ['-infinity', -MAX_DURATION_MS],
    ['36500d', MAX_DURATION_MS],
    ['40000d', MAX_DURATION_MS], // clamped at the maximum
  ])('%j -> %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it('the maximum is 36,500 days', () => {
    expect(MAX_DURATION_MS).toBe(36_500 * D);
  });

  it.each([
    ['1x', "invalid duration '1x': unknown part '1x'; valid examples: '10m', '1h', '1h30m'"],
    ['1h1x', "invalid duration '1h1x': unknown part '1x'; valid examples: '10m', '1h', '1h30m'"],
    ['1.5h', "invalid duration '1.5h': unknown part '1.5h'; valid examples: '10m', '1h', '1h30m'"],
    ['h', "invalid duration 'h': unknown part 'h'; valid examples: '10m', '1h', '1h30m'"],
    ['1h 30', "invalid duration '1h 30': unknown part '30'; valid examples: '10m', '1h', '1h30m'"],
    ['1H', "invalid duration '1H': unknown part '1H'; valid examples: '10m', '1h', '1h30m'"],
    ['1h2h', "invalid duration '1h2h': repeated unit '2h'; valid examples: '10m', '1h', '1h30m'"],
    ['1m 2m', "invalid duration '1m 2m': repeated unit '2m'; valid examples: '10m', '1h', '1h30m'"],
    ['', "invalid duration '': empty duration; valid examples: '10m', '1h', '1h30m'"],
    ['   ', "invalid duration '   ': empty duration; valid examples: '10m', '1h', '1h30m'"],
    ['-', "invalid duration '-': empty duration; valid examples: '10m', '1h', '1h30m'"],
  ])('%j is rejected with a message naming the input and the bad part', (text, message) => {
    const error = (() => {
      try {
        parseDuration(text);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(DurationError);
    expect((error as DurationError).message).toBe(message);
    expect((error as DurationError).code).toBe('INVALID_DURATION');
  });
});

describe('formatDuration', () => {
  it.each([
    [D + H + M + S + 5, '1d1h1m1s5ms'],
    [H + 30 * M, '1h30m'],
    [W, '7d'], // weeks are never printed
    [90 * M, '1h30m'],
    [36 * H, '1d12h'],
    [250, '250ms'],
    [0, '0s'],
    [-H, '-1h'],
    [MAX_DURATION_MS, 'infinity'],
    [MAX_DURATION_MS + 1, 'infinity'],
    [-MAX_DURATION_MS, '-infinity'],
    [365 * D, '365d'],
  ])('%d ms -> %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('round-trips through parseDuration', () => {
    for (const text of ['10m', '1h30m', '1d1h1m1s5ms', '7d', 'infinity', '-2h', '0s']) {
      expect(formatDuration(parseDuration(text))).toBe(text);
    }
  });

  it('rejects fractional milliseconds (a broken invariant, so it throws)', () => {
    expect(() => formatDuration(1.5)).toThrow(RangeError);
  });
});

describe('canonical window names', () => {
  it('names windows by whole seconds, the 100-year window as all', () => {
    expect(windowSecondsName(10 * M)).toBe('600');
    expect(windowSecondsName(D)).toBe('86400');
    expect(windowSecondsName(H + 30 * M)).toBe('5400');
    expect(windowSecondsName(MAX_DURATION_MS)).toBe('all');
    expect(windowSecondsName(1500)).toBeUndefined();
    expect(windowSecondsName(0)).toBeUndefined();
  });

  it('builds namespace.feature__<seconds>__ with an optional @version', () => {
    expect(canonicalWindowName('user', 'count', 10 * M)).toBe('user.count__600__');
    expect(canonicalWindowName('user', 'count', MAX_DURATION_MS)).toBe('user.count__all__');
    expect(canonicalWindowName('user', 'total_spend', 30 * D, 2)).toBe(
      'user.total_spend__2592000__@2',
    );
  });
});
