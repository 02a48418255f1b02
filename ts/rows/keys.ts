/**
 * Group keys the store can hold exactly. The store writes an encoded group key's length
 * in two bytes, so a key has a byte budget, read from the store itself
 * (`native.groupKeyFormat()`): each integer part and each string part (its UTF-8 plus a
 * header) takes its share. A row whose key is over the budget is refused here, before
 * anything is written; the store refuses it too.
 */
import { native } from '../native.js';

/** The store's group-key format: the byte budget and what each part takes. */
export const GROUP_KEY_FORMAT = native.groupKeyFormat();

/** The longest string a one-part group key may be, in UTF-8 bytes. */
export const MAX_STRING_KEY_BYTES =
  GROUP_KEY_FORMAT.maxBytes - GROUP_KEY_FORMAT.stringPartHeaderBytes;

/** The bytes one part of a group key takes as the store encodes it. */
export function keyPartBytes(part: number | string): number {
  return typeof part === 'number'
    ? GROUP_KEY_FORMAT.intPartBytes
    : GROUP_KEY_FORMAT.stringPartHeaderBytes + Buffer.byteLength(part, 'utf8');
}

/**
 * Why a group key of `bytes` encoded bytes over `columns` cannot be stored, or `null`.
 * The problem follows the key's name (`user_id`, or `user_id+bank` for a composite key).
 */
export function groupKeyProblem(columns: readonly string[], bytes: number): string | null {
  if (bytes <= GROUP_KEY_FORMAT.maxBytes) return null;
  if (columns.length === 1) {
    const utf8 = bytes - GROUP_KEY_FORMAT.stringPartHeaderBytes;
    return `is a string of ${utf8} UTF-8 bytes; a group key string holds at most ${MAX_STRING_KEY_BYTES}`;
  }
  return `is a group key of ${bytes} bytes as the store encodes it; a group key holds at most ${GROUP_KEY_FORMAT.maxBytes} (${GROUP_KEY_FORMAT.intPartBytes} per integer part, ${GROUP_KEY_FORMAT.stringPartHeaderBytes} plus the UTF-8 bytes per string part)`;
}

/** Why a number (not NaN) is not an integer group-key part, or `null`. */
export function numberKeyProblem(value: number): string | null {
  return Number.isSafeInteger(value)
    ? null
    : `is ${value}; a group key must be a whole number within 2^53`;
}

/** The name a group key goes by in problem texts. */
export function groupKeyName(columns: readonly string[]): string {
  return columns.join('+');
}

/** One part of a batch's group-key columns: integers, or dictionary-encoded strings. */
export type KeyColumnParts =
  | { readonly ints: ArrayLike<number> }
  | { readonly strings: readonly string[]; readonly codes: ArrayLike<number> };

const NULL_CODE = 0xffffffff;

/**
 * The first row of the key columns whose group key is over the budget, with its problem,
 * or `null`. Rows only need a look when some dictionary holds a string long enough.
 */
export function groupKeyColumnsProblem(
  columns: readonly string[],
  parts: readonly KeyColumnParts[],
  rows: number,
): { row: number; problem: string } | null {
  const header = GROUP_KEY_FORMAT.stringPartHeaderBytes;
  const partBytes: (Int32Array | null)[] = [];
  let longest = 0;
  for (const part of parts) {
    if ('ints' in part) {
      longest += GROUP_KEY_FORMAT.intPartBytes;
      partBytes.push(null);
      continue;
    }
    let bound = 0;
    for (const s of part.strings) if (s.length > bound) bound = s.length;
    if (header + bound * 3 <= GROUP_KEY_FORMAT.maxBytes - longest) {
      longest += header + bound * 3;
      partBytes.push(null);
      continue;
    }
    const bytes = Int32Array.from(part.strings, (s) => header + Buffer.byteLength(s, 'utf8'));
    longest += bytes.reduce((a, b) => Math.max(a, b), 0);
    partBytes.push(bytes);
  }
  if (longest <= GROUP_KEY_FORMAT.maxBytes) return null;
  for (let row = 0; row < rows; row++) {
    let total = 0;
    let nullKey = false;
    for (let p = 0; p < parts.length; p++) {
      const part = parts[p] as KeyColumnParts;
      if ('ints' in part) {
        const v = part.ints[row] as number;
        if (Number.isNaN(v)) nullKey = true;
        total += GROUP_KEY_FORMAT.intPartBytes;
        continue;
      }
      const code = part.codes[row] as number;
      if (code === NULL_CODE) {
        nullKey = true;
        continue;
      }
      const bytes = partBytes[p];
      total +=
        bytes == null
          ? header + Buffer.byteLength(part.strings[code] as string, 'utf8')
          : (bytes[code] as number);
    }
    if (nullKey) continue;
    const problem = groupKeyProblem(columns, total);
    if (problem !== null) return { row, problem };
  }
  return null;
}
