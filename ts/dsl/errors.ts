/**
 * Errors and diagnostics of the definition layer (DSL and planner).
 *
 * Problems in user definitions come back as data: a list of {@link Diagnostic}s, each
 * naming the fully qualified feature (`user.total`), the window when there is one, a
 * stable `code` and a message. Only broken invariants throw; {@link DefinitionError}
 * carries the diagnostics when a caller asks for an exception instead of a list.
 * Thrown errors extend the package-wide `TesseraError` (`ts/errors.ts`) and use its
 * UPPER_SNAKE codes (`INVALID_DURATION` is also the Rust core's code).
 */
import { TesseraError } from '../errors.js';

/** How bad a diagnostic is: `error` stops planning of that feature, `warning` does not. */
export type DiagnosticSeverity = 'error' | 'warning';

/** The stable codes of {@link Diagnostic}s. */
export type DiagnosticCode =
  /** A namespace or feature name is not an identifier. */
  | 'invalid_name'
  /** A feature uses a name the DSL reserves (`chalk_now`, `chalk_window`, `$...`). */
  | 'reserved_name'
  /** Two features of one class share a name. */
  | 'duplicate_feature'
  /** Two different feature classes claim one namespace. */
  | 'duplicate_namespace'
  /** A window alias (`total_7d`) collides with a feature of the same name. */
  | 'name_collision'
  /** A value that should be a duration is not one (the message carries the parse error). */
  | 'invalid_duration'
  /** A window is zero, negative or not a whole number of seconds. */
  | 'invalid_window'
  /** Two spellings of one window (`7d` and `168h`). */
  | 'duplicate_window'
  /** A windowed feature declares no window. */
  | 'missing_windows'
  /** A materialized window has no bucket size (not in `bucketDurations`, no `bucketDuration`). */
  | 'missing_bucket_size'
  /** A window appears under two sizes of `bucketDurations`. */
  | 'window_claimed_twice'
  /** `bucketDurations` names a window the feature does not declare. */
  | 'unknown_window'
  /** A bucket size is zero or negative. */
  | 'invalid_bucket_duration'
  /** A bucket is longer than the window it serves (the window then reads whole buckets). */
  | 'bucket_larger_than_window'
  /** `bucketStart` is not a date, an ISO string or a number of milliseconds. */
  | 'invalid_bucket_start'
  /** `backfillSchedule` is neither a cron expression nor a duration. */
  | 'invalid_backfill_schedule'
  /** `backfillTags` is not a list of lists of strings. */
  | 'invalid_backfill_tags'
  /** A foreign key names a feature that does not exist. */
  | 'invalid_reference'
  /** An expression traverses a relation that is not a has-many of the feature's class. */
  | 'unknown_relation'
  /** An expression names a column the related class does not have. */
  | 'unknown_column'
  /** A has-many relation has no foreign key to join on. */
  | 'missing_join'
  /** A has-many relation could join on several foreign keys. */
  | 'ambiguous_join'
  /** A join condition is not a conjunction of column equalities between the two classes. */
  | 'invalid_join'
  /** The two sides of a join key have different types. */
  | 'join_type_mismatch'
  /** A class that owns windowed aggregations has no primary key. */
  | 'missing_primary_key'
  /** The aggregated class has no feature-time column to put rows into buckets. */
  | 'missing_feature_time'
  /** A time bound filters a column other than the class's feature time. */
  | 'time_column_mismatch'
  /** A comparison with `chalk_now` / `chalk_window` that is not a window bound. */
  | 'invalid_time_filter'
  /** A filter that cannot be applied to single rows at ingest (column vs column, ...). */
  | 'unsupported_filter'
  /** A filter compares a column with a value of another type. */
  | 'filter_type_mismatch'
  /** An aggregation over a column type it does not accept (sum over a string, ...). */
  | 'aggregation_type_mismatch'
  /** An aggregation argument out of range (k < 1, quantile > 1, ...). */
  | 'invalid_aggregation_argument'
  /** The `by` column of min_by_n / max_by_n / approx_top_k is not numeric. */
  | 'by_not_numeric'
  /** A vector default or input does not have the column's dimension. */
  | 'vector_dim_mismatch'
  /** A default value does not fit the feature's result type. */
  | 'default_type_mismatch'
  /** `groupByWindowed` without a `groupBy` in its expression. */
  | 'missing_group_by'
  /** `groupBy` used in a plain `windowed` feature. */
  | 'unexpected_group_by'
  /** A bad version map or default version. */
  | 'invalid_version'
  /** A materialized windowed feature without an expression. */
  | 'missing_expression'
  /** An expression without materialization: Tessera cannot serve it from buckets. */
  | 'not_materialized'
  /** A value in a feature class that is not a feature builder. */
  | 'invalid_definition';

/** One problem found in the definitions. */
export interface Diagnostic {
  /** `error` (the feature is left out of the plan) or `warning`. */
  readonly severity: DiagnosticSeverity;
  /** Stable machine-readable code. */
  readonly code: DiagnosticCode;
  /** Fully qualified feature, e.g. `user.total` (`user.total_spend@2` for a version). */
  readonly feature: string;
  /** The window concerned, as the user spelled it, when there is one. */
  readonly window?: string;
  /** Human-readable message; it names the feature (and the window when there is one). */
  readonly message: string;
}

/** Thrown by {@link parseDuration} for text that is not a duration. */
export class DurationError extends TesseraError {
  /** The text that failed to parse. */
  readonly input: string;
  /** What was wrong. */
  readonly reason: 'unknown part' | 'repeated unit' | 'empty duration';
  /** The offending part, when there is one. */
  readonly part: string | undefined;

  constructor(
    input: string,
    reason: 'unknown part' | 'repeated unit' | 'empty duration',
    part?: string,
  ) {
    const detail = part === undefined ? reason : `${reason} '${part}'`;
    super(
      'INVALID_DURATION',
      `invalid duration '${input}': ${detail}; valid examples: '10m', '1h', '1h30m'`,
    );
    this.input = input;
    this.reason = reason;
    this.part = part;
  }
}

/**
 * Thrown by `plan()` (and anything that needs a valid plan) when definitions have
 * errors. `diagnostics` lists every problem found, not only the first.
 */
export class DefinitionError extends TesseraError {
  /** Every diagnostic found (errors and warnings). */
  readonly diagnostics: readonly Diagnostic[];

  constructor(diagnostics: readonly Diagnostic[]) {
    const errors = diagnostics.filter((d) => d.severity === 'error');
    const lines = errors.map((d) => `  - ${formatDiagnostic(d)}`);
    super(
      'DEFINITION_ERROR',
      `${errors.length} problem${errors.length === 1 ? '' : 's'} in feature definitions:\n${lines.join('\n')}`,
    );
    this.diagnostics = diagnostics;
  }
}

/**
 * Thrown when code asks a windowed feature for a window it does not declare, in a way
 * the type checker could not see (`User.total['2d']` from JavaScript, a computed key).
 */
export class WindowReferenceError extends TesseraError {
  /** Fully qualified feature, e.g. `user.total`. */
  readonly feature: string;
  /** The window asked for, as written. */
  readonly window: string;
  /** The windows the feature declares. */
  readonly declared: readonly string[];

  constructor(feature: string, window: string, declared: readonly string[], detail?: string) {
    super(
      'UNKNOWN_WINDOW',
      `${feature} has no window '${window}'${detail ? ` (${detail})` : ''}; declared windows: ${declared.join(', ')}`,
    );
    this.feature = feature;
    this.window = window;
    this.declared = declared;
  }
}

/**
 * One line for a diagnostic: `error[missing_bucket_size] user.total (7d): message`.
 *
 * @example
 * formatDiagnostic(d) // "error[window_claimed_twice] user.total (7d): ..."
 */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.window === undefined ? d.feature : `${d.feature} (${d.window})`;
  return `${d.severity}[${d.code}] ${where}: ${d.message}`;
}
