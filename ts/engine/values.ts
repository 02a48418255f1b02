/**
 * Value conversions shared by ingest and query: event times, and the typed-array column
 * encodings the native engine reads (numbers with NaN for null, dictionary-encoded
 * strings with 0xFFFFFFFF for null).
 */

/** The string code that stands for null. */
export const NULL_CODE = 0xffffffff;

/** An ISO-8601 date-time that ends in a zone (`Z`, `+02:00`, `-0530`). */
const ZONED_ISO =
  /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$/;

/** Why a value is not a time, or `null` when it is one (`out.ms` holds it). */
export function timeOf(value: unknown, out: { ms: number }): string | null {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return `${value} is not a time`;
    out.ms = Math.floor(value);
    return null;
  }
  if (value instanceof Date) {
    const ms = value.getTime();
    if (Number.isNaN(ms)) return 'is an invalid Date';
    out.ms = ms;
    return null;
  }
  if (typeof value === 'string') {
    const text = value.trim();
    if (!ZONED_ISO.test(text)) {
      return `'${value}' is not an ISO-8601 date-time with a time zone (e.g. '2026-01-31T12:00:00Z' or '2026-01-31T14:00:00+02:00')`;
    }
    const ms = Date.parse(text.replace(' ', 'T'));
    if (Number.isNaN(ms)) return `'${value}' is not a valid date-time`;
    out.ms = ms;
    return null;
  }
  return `${describeValue(value)} is not a time (give a Date, an ISO-8601 string with a zone, or epoch milliseconds)`;
}

/** Converts a time given as a Date, a zoned ISO string or epoch ms; throws on anything else. */
export function toTimeMs(value: unknown, what: string): number {
  const out = { ms: 0 };
  const problem = timeOf(value, out);
  if (problem !== null) throw new TypeError(`${what}: ${problem}`);
  return out.ms;
}

/** A short, safe rendering of a value for error messages. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') {
    return `'${value.length > 40 ? `${value.slice(0, 37)}...` : value}'`;
  }
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return String(value);
  }
  if (value instanceof Date) {
    return Number.isNaN(value.getTime()) ? 'an invalid Date' : `Date(${value.toISOString()})`;
  }
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return typeof value === 'object' ? 'an object' : typeof value;
}

/** True for typed arrays (not DataView). */
export function isTypedArray(value: unknown): value is ArrayLike<number> & ArrayBufferView {
  return ArrayBuffer.isView(value) && !(value instanceof DataView);
}

/** Dictionary-encodes strings: each distinct string once, one code per row. */
export class StringDictionary {
  readonly strings: string[] = [];
  private readonly codes = new Map<string, number>();

  code(value: string): number {
    let code = this.codes.get(value);
    if (code === undefined) {
      code = this.strings.length;
      this.strings.push(value);
      this.codes.set(value, code);
    }
    return code;
  }
}
