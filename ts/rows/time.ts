/**
 * Event times as every way rows enter reads them: a Date, epoch milliseconds, or an
 * ISO-8601 date-time that carries a zone. The string is read here, field by field, never
 * by `Date.parse`, which rolls an impossible date such as `2026-02-30` over to March 2
 * and reads a naive time in the process's zone. The native message decoder
 * (`crates/message`) reads the canonical shape the same way and leaves everything else
 * here.
 */
import { describeValue } from './describe.js';

/** The largest distance from 1970 a time may have, in ms: that of a JavaScript Date. */
export const MAX_TIME_MS = 8.64e15;

const EXAMPLES = "(e.g. '2026-01-31T12:00:00Z' or '2026-01-31T14:00:00+02:00')";

/** `YYYY-MM-DD[T ]HH:MM[:SS[.fff…]][ ](Z|±HH[[:]MM])`, as parts. */
const ZONED_ISO =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?\s*(?:([zZ])|([+-])(\d{2})(?::?(\d{2}))?)$/;

/** A date or date-time without a zone: `2026-01-31`, `2026-01-31T12:00:00`. */
const NAIVE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$/;

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Days from 1970-01-01 to a proleptic Gregorian date (exact for every 4-digit year). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (month + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/** Why the parts are not a date-time, or `null`; `out.ms` then holds it. */
function fromParts(
  text: string,
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  ms: number,
  offsetHours: number,
  offsetMinutes: number,
  sign: number,
  out: { ms: number },
): string | null {
  const shown = describeValue(text);
  if (month < 1 || month > 12) return `${shown} is not a valid date-time (month ${month})`;
  if (day < 1 || day > daysInMonth(year, month)) {
    return `${shown} is not a date on the calendar (${MONTHS[month - 1]} ${year} has ${daysInMonth(year, month)} days)`;
  }
  if (hour > 23) return `${shown} is not a valid date-time (hour ${hour})`;
  if (minute > 59) return `${shown} is not a valid date-time (minute ${minute})`;
  if (second > 59) return `${shown} is not a valid date-time (second ${second})`;
  if (offsetHours > 23 || offsetMinutes > 59) {
    return `${shown} is not a valid date-time (zone offset ${offsetHours}:${offsetMinutes})`;
  }
  const seconds = daysFromCivil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
  out.ms = seconds * 1000 + ms - sign * (offsetHours * 60 + offsetMinutes) * 60_000;
  return null;
}

const ZERO = 48;

function digits(s: string, from: number, count: number): number {
  let v = 0;
  for (let i = from; i < from + count; i++) {
    const d = s.charCodeAt(i) - ZERO;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/** Milliseconds of a fraction's digits, truncated (digits past the third count for nothing). */
function fractionMs(digitsText: string): number {
  let ms = 0;
  let scale = 100;
  for (let i = 0; i < digitsText.length && scale >= 1; i++) {
    ms += (digitsText.charCodeAt(i) - ZERO) * scale;
    scale /= 10;
  }
  return ms;
}

/**
 * The canonical shape `YYYY-MM-DDTHH:MM:SS[.fff]Z` (or `±HH:MM`), read without a regular
 * expression: the common case of the general path. `undefined` for any other shape.
 */
function canonical(s: string, out: { ms: number }): string | null | undefined {
  const n = s.length;
  if (n < 20 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(10) !== 84) {
    return undefined;
  }
  if (s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return undefined;
  const year = digits(s, 0, 4);
  const month = digits(s, 5, 2);
  const day = digits(s, 8, 2);
  const hour = digits(s, 11, 2);
  const minute = digits(s, 14, 2);
  const second = digits(s, 17, 2);
  if ((year | month | day | hour | minute | second) < 0) return undefined;
  let i = 19;
  let ms = 0;
  if (s.charCodeAt(i) === 46) {
    const start = i + 1;
    i = start;
    while (i < n) {
      const d = s.charCodeAt(i) - ZERO;
      if (d < 0 || d > 9) break;
      i += 1;
    }
    if (i === start) return undefined;
    ms = fractionMs(s.slice(start, i));
  }
  const z = s.charCodeAt(i);
  if (z === 90 || z === 122) {
    if (i + 1 !== n) return undefined;
    return fromParts(s, year, month, day, hour, minute, second, ms, 0, 0, 1, out);
  }
  if ((z === 43 || z === 45) && i + 6 === n && s.charCodeAt(i + 3) === 58) {
    const oh = digits(s, i + 1, 2);
    const om = digits(s, i + 4, 2);
    if (oh < 0 || om < 0) return undefined;
    return fromParts(s, year, month, day, hour, minute, second, ms, oh, om, z === 43 ? 1 : -1, out);
  }
  return undefined;
}

/** Why `text` is not a zoned ISO-8601 date-time, or `null` (then `out.ms` holds it). */
export function zonedIsoProblem(text: string, out: { ms: number }): string | null {
  const fast = canonical(text, out);
  if (fast !== undefined) return fast;
  const trimmed = text.trim();
  const m = ZONED_ISO.exec(trimmed);
  if (m === null) {
    if (NAIVE.test(trimmed)) {
      return `${describeValue(text)} is not an ISO-8601 date-time with a time zone: it is naive (add 'Z' or an offset such as '+02:00')`;
    }
    return `${describeValue(text)} is not an ISO-8601 date-time with a time zone ${EXAMPLES}`;
  }
  const num = (i: number): number => (m[i] === undefined ? 0 : Number(m[i]));
  const sign = m[9] === '-' ? -1 : 1;
  return fromParts(
    text,
    num(1),
    num(2),
    num(3),
    num(4),
    num(5),
    num(6),
    m[7] === undefined ? 0 : fractionMs(m[7]),
    num(10),
    num(11),
    sign,
    out,
  );
}

/**
 * Why `value` is not a time, or `null` when it is one (`out.ms` holds it, epoch ms).
 * The problem reads after the name of what holds the value (`ts 'x' is not ...`).
 */
export function timeProblem(value: unknown, out: { ms: number }): string | null {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return `is ${value}, not a time`;
    if (Math.abs(value) > MAX_TIME_MS) {
      return `is ${value}, past the times a Date holds (within ${MAX_TIME_MS} ms of 1970)`;
    }
    out.ms = Math.floor(value);
    return null;
  }
  if (typeof value === 'string') return zonedIsoProblem(value, out);
  if (value instanceof Date) {
    const ms = value.getTime();
    if (Number.isNaN(ms)) return 'is an invalid Date';
    out.ms = ms;
    return null;
  }
  return `is ${describeValue(value)}, not a time (give a Date, an ISO-8601 string with a zone, or epoch milliseconds)`;
}
