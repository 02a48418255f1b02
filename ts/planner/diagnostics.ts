/** Collects diagnostics while planning. */
import type { Diagnostic, DiagnosticCode } from '../dsl/errors.js';

/** An append-only list of diagnostics with helpers for both severities. */
export class DiagnosticList {
  readonly items: Diagnostic[] = [];

  /** Adds an error for `feature` (and `window`, when given). */
  error(feature: string, code: DiagnosticCode, message: string, window?: string): void {
    this.items.push(make('error', feature, code, message, window));
  }

  /** Adds a warning. */
  warning(feature: string, code: DiagnosticCode, message: string, window?: string): void {
    this.items.push(make('warning', feature, code, message, window));
  }

  /** Number of errors recorded so far. */
  errorCount(): number {
    return this.items.filter((d) => d.severity === 'error').length;
  }
}

function make(
  severity: Diagnostic['severity'],
  feature: string,
  code: DiagnosticCode,
  message: string,
  window: string | undefined,
): Diagnostic {
  const d: Diagnostic =
    window === undefined
      ? { severity, code, feature, message }
      : { severity, code, feature, window, message };
  return Object.freeze(d);
}
