/**
 * Value conversions shared by ingest and query: event times, and the typed-array column
 * encodings the native engine reads (numbers with NaN for null, dictionary-encoded
 * strings with 0xFFFFFFFF for null). Times are read by the conversion path every way
 * rows enter shares (`ts/rows/time.ts`).
 */
import { describeValue } from '../rows/describe.js';
import { timeProblem } from '../rows/time.js';

export { describeValue };

/** The string code that stands for null. */
export const NULL_CODE = 0xffffffff;

/**
 * Why a value is not a time (a Date, a zoned ISO-8601 string, epoch ms), or `null` when it
 * is one (`out.ms` holds it). The problem reads after the name of what holds the value.
 */
export function timeOf(value: unknown, out: { ms: number }): string | null {
  return timeProblem(value, out);
}

/** Converts a time given as a Date, a zoned ISO string or epoch ms; throws on anything else. */
export function toTimeMs(value: unknown, what: string): number {
  const out = { ms: 0 };
  const problem = timeOf(value, out);
  if (problem !== null) throw new TypeError(`${what} ${problem}`);
  return out.ms;
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
