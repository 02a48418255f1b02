/**
 * Errors of the engine API ({@link Tessera}): problems in the rows handed to `ingest`,
 * in a query's input or outputs, and in option combinations. Like every Tessera error
 * they extend {@link TesseraError} and carry a stable `code`; messages name the feature
 * class, the column and the row (or the output) at fault.
 */
import { TesseraError } from '../errors.js';

/**
 * A row or column of an ingest batch is unusable: a value of the wrong type, a missing
 * feature time, a column the aggregations need but the rows do not carry.
 * Nothing of the batch is ingested.
 */
export class InvalidRowsError extends TesseraError {
  /**
   * For a bad value: the problem, as a stream resolver's dead letter states it for the
   * same value (`amount is 1.5, not a whole number within 2^53 (int)`); `null` otherwise.
   */
  readonly problem: string | null;
  /** For a bad value: its row in the batch. */
  readonly row: number | null;

  constructor(message: string, at?: { readonly row: number; readonly problem: string }) {
    super('INVALID_ROWS', message);
    this.problem = at?.problem ?? null;
    this.row = at?.row ?? null;
  }

  /** `<class> row <row>: <problem>`, for a bad value of one row. */
  static atRow(featureClass: string, row: number, problem: string): InvalidRowsError {
    return new InvalidRowsError(`${featureClass} row ${row}: ${problem}`, { row, problem });
  }
}

/**
 * A query names an output that no materialized feature window serves, or lacks (or
 * mistypes) a key field its outputs need.
 */
export class InvalidQueryError extends TesseraError {
  constructor(message: string) {
    super('INVALID_QUERY', message);
  }
}

/** Options that contradict each other (e.g. `positions` with `commit: false`). */
export class InvalidOptionError extends TesseraError {
  constructor(message: string) {
    super('INVALID_OPTION', message);
  }
}
