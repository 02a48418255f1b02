/** A short, safe rendering of a value for problem texts. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') {
    const shown = value.length > 40 ? `${value.slice(0, 37)}...` : value;
    // A lone surrogate is written as its escape, so the text survives UTF-8 (a dead
    // letter's reason is stored as UTF-8).
    return `'${shown.replace(/\p{Cs}/gu, (c) => `\\u${c.charCodeAt(0).toString(16)}`)}'`;
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
