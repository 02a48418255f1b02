/**
 * Errors raised by Tessera. Native errors arrive as `[CODE] message`; {@link fromNative}
 * turns them into the class for their code, so callers can use `instanceof` or `code`.
 */

/** Base class of every Tessera error. `code` is stable; `message` names the culprit. */
export class TesseraError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An ingest batch or a query does not fit the store (lengths, kinds, unknown rule). */
export class InvalidBatchError extends TesseraError {}
/** A store description (series, rules) is not usable, or a series id is unknown. */
export class InvalidDescriptionError extends TesseraError {}
/** The store directory was written by an incompatible format version. */
export class IncompatibleFormatError extends TesseraError {}
/** A stored state could not be decoded: truncated, corrupted or of an unknown version. */
export class CorruptStateError extends TesseraError {}
/** A duration, bucket or aggregation argument is invalid. */
export class InvalidArgumentError extends TesseraError {}
/** RocksDB reported an error (I/O, lock held by another process, ...). */
export class StorageError extends TesseraError {}
/** The engine was closed. */
export class ClosedError extends TesseraError {}
/** A broken invariant inside the engine (a caught panic). Please report it. */
export class InternalError extends TesseraError {}

const classes: Record<
  string,
  new (
    code: string,
    message: string,
    options?: { cause?: unknown },
  ) => TesseraError
> = {
  INVALID_BATCH: InvalidBatchError,
  INVALID_INPUT: InvalidBatchError,
  INVALID_DESCRIPTION: InvalidDescriptionError,
  UNKNOWN_SERIES: InvalidDescriptionError,
  INCOMPATIBLE_FORMAT: IncompatibleFormatError,
  CORRUPT_STATE: CorruptStateError,
  STATE_MISMATCH: CorruptStateError,
  INVALID_DURATION: InvalidArgumentError,
  INVALID_BUCKET: InvalidArgumentError,
  INVALID_AGGREGATION: InvalidArgumentError,
  STORAGE: StorageError,
  CLOSED: ClosedError,
  INTERNAL: InternalError,
};

/** Converts an error thrown by the native binding into a {@link TesseraError}. */
export function fromNative(error: unknown): unknown {
  if (!(error instanceof Error) || error instanceof TesseraError) return error;
  const match = /^\[([A-Z_]+)\] ([\s\S]*)$/.exec(error.message);
  if (!match) return error;
  const [, code = 'INTERNAL', message = ''] = match;
  const ErrorClass = classes[code] ?? TesseraError;
  return new ErrorClass(code, message, { cause: error });
}
