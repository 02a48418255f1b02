/**
 * One column value converted and checked for the native engine, whichever way its row
 * entered (`Tessera.ingest` rows or columns, a stream resolver's general path, a batch
 * resolver). Each function returns the problem, worded to follow the column's name
 * (`amount is 1.5, not a whole number within 2^53 (int)`), or `null`; the caller puts
 * the name in front and says where (a row of a class, or a dead letter).
 *
 * Null, undefined and NaN are a null value (skipped by every aggregation): NaN is how a
 * typed-array column spells null, so a row object may too.
 */
import type { ScalarKind } from '../dsl/nodes.js';
import { describeValue } from './describe.js';
import { MAX_TIME_MS, timeProblem } from './time.js';

/** The column kinds stored as one number per row. */
export type NumericKind = Exclude<ScalarKind, 'string' | 'vector'>;

/** The largest whole number a JavaScript number holds exactly. */
const SAFE = '2^53';

const timeScratch = { ms: 0 };

/** True for a null value: null, undefined or NaN. */
export function isNullValue(value: unknown): boolean {
  return (
    value === null || value === undefined || (typeof value === 'number' && Number.isNaN(value))
  );
}

/**
 * Why `value` (not null) is not a value of a numeric `kind`, or `null` when it is (then
 * `out.n` holds it: booleans as 1 / 0, datetimes as epoch ms).
 */
export function numberProblem(
  kind: NumericKind,
  value: unknown,
  out: { n: number },
): string | null {
  switch (kind) {
    case 'int':
    case 'float': {
      if (typeof value !== 'number') return `is ${describeValue(value)}, not a number (${kind})`;
      const problem = numberValueProblem(kind, value);
      if (problem === null) out.n = value;
      return problem;
    }
    case 'boolean': {
      if (typeof value === 'boolean') out.n = value ? 1 : 0;
      else if (value === 0 || value === 1) out.n = value;
      else return `is ${describeValue(value)}, not a boolean`;
      return null;
    }
    case 'datetime': {
      const problem = timeProblem(value, timeScratch);
      out.n = timeScratch.ms;
      return problem;
    }
  }
}

/** Why the number `value` (not NaN) does not fit a column of `kind`, or `null`. */
export function numberValueProblem(kind: NumericKind, value: number): string | null {
  if (!Number.isFinite(value)) return `is ${value}, not a finite number`;
  switch (kind) {
    case 'int':
      return Number.isSafeInteger(value)
        ? null
        : `is ${value}, not a whole number within ${SAFE} (int)`;
    case 'boolean':
      return value === 0 || value === 1 ? null : `is ${value}, not a boolean`;
    case 'datetime':
      return timeProblem(value, timeScratch);
    case 'float':
      return null;
  }
}

/**
 * The first bad number of a typed-array column of `kind` (NaN is null), as row and
 * problem, or `null`. One pass without allocation when every value is good.
 */
export function typedColumnProblem(
  kind: NumericKind,
  values: ArrayLike<number>,
): { row: number; problem: string } | null {
  const n = values.length;
  for (let i = 0; i < n; i++) {
    const v = values[i] as number;
    // NaN is null; the common good case costs a comparison or two.
    if (Number.isNaN(v) || good(kind, v)) continue;
    const problem = numberValueProblem(kind, v);
    if (problem !== null) return { row: i, problem };
  }
  return null;
}

function good(kind: NumericKind, v: number): boolean {
  switch (kind) {
    case 'float':
      return v - v === 0;
    case 'int':
      return Number.isSafeInteger(v);
    case 'boolean':
      return v === 0 || v === 1;
    case 'datetime':
      return v - v === 0 && Math.abs(v) <= MAX_TIME_MS;
  }
}

/** A string the engine cannot keep exactly: one with a lone UTF-16 surrogate. */
const LONE_SURROGATE = /\p{Cs}/u;

/** Why `value` (not null) is not a value of a string column, or `null`. */
export function stringProblem(value: unknown): string | null {
  if (typeof value !== 'string') return `is ${describeValue(value)}, not a string`;
  return wellFormedProblem(value);
}

/** Why the string cannot be stored exactly (it becomes UTF-8), or `null`. */
export function wellFormedProblem(value: string): string | null {
  if (!LONE_SURROGATE.test(value)) return null;
  return `is ${describeValue(value)}, a string with a lone UTF-16 surrogate, which UTF-8 cannot hold exactly`;
}

/**
 * Why `value` (not null) is not a vector of `dim` numbers of `ns.column`, or `null` (then
 * its components are in `out` from `at`). A NaN component makes the vector null (every
 * aggregation skips it whole).
 */
export function vectorProblem(
  value: unknown,
  dim: number,
  ns: string,
  column: string,
  out?: Float64Array,
  at = 0,
): string | null {
  if (!(Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView)))) {
    return `is ${describeValue(value)}, not a vector of ${dim} numbers`;
  }
  const vector = value as ArrayLike<unknown>;
  if (vector.length !== dim) return `has ${vector.length} components; ${ns}.${column} has ${dim}`;
  for (let j = 0; j < dim; j++) {
    const x = vector[j];
    if (typeof x !== 'number') return `component ${j} is ${describeValue(x)}, not a number`;
    if (x === Number.POSITIVE_INFINITY || x === Number.NEGATIVE_INFINITY) {
      return `component ${j} is ${x}, not a finite number`;
    }
    if (out !== undefined) out[at + j] = x;
  }
  return null;
}

/** The first bad component of a flat, row-major vector column, as row and problem. */
export function typedVectorProblem(
  values: Float64Array,
  dim: number,
): { row: number; problem: string } | null {
  for (let i = 0; i < values.length; i++) {
    const x = values[i] as number;
    if (x - x === 0 || Number.isNaN(x)) continue;
    return {
      row: Math.floor(i / dim),
      problem: `component ${i % dim} is ${x}, not a finite number`,
    };
  }
  return null;
}
