/**
 * The limits and the bind rule of `tessera serve`: how large a request may be, and when
 * a bearer token is required.
 */
import { isIP } from 'node:net';

/** Request limits of the HTTP API. */
export interface ServeLimits {
  /** Largest request body, in bytes (default 1 MiB): larger gets 413. */
  readonly maxBodyBytes: number;
  /** Most keys (result rows) per query (default 1,000). */
  readonly maxKeys: number;
  /** Most outputs (feature windows) per query (default 200). */
  readonly maxOutputs: number;
  /** Most dead letters per page of `GET /v1/deadletters` (default 1,000). */
  readonly maxDeadLetters: number;
}

/** The defaults of {@link ServeLimits}. */
export const DEFAULT_LIMITS: ServeLimits = Object.freeze({
  maxBodyBytes: 1 << 20,
  maxKeys: 1000,
  maxOutputs: 200,
  maxDeadLetters: 1000,
});

/** The environment variable `tessera serve` reads its bearer token from. */
export const TOKEN_ENV = 'TESSERA_TOKEN';

/**
 * Checks and completes limits given in part; each must be a whole number >= 1.
 *
 * @throws {RangeError} naming the limit.
 */
export function resolveLimits(given: Partial<ServeLimits> = {}): ServeLimits {
  const limits = { ...DEFAULT_LIMITS, ...given };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`limit ${name} must be a whole number >= 1, got ${String(value)}`);
    }
  }
  return Object.freeze(limits);
}

/**
 * True for addresses only this machine can reach: `localhost`, 127.0.0.0/8, `::1` and
 * IPv4-mapped loopback (`::ffff:127.0.0.1`).
 */
export function isLoopback(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) {
    const lower = h.toLowerCase();
    return lower === '::1' || lower.startsWith('::ffff:127.');
  }
  return false;
}

/**
 * The bind rule: loopback binds may go without a token; any other address needs one.
 * Returns the problem, or `null` when the bind is allowed.
 */
export function bindProblem(host: string, token: string | undefined): string | null {
  if (isLoopback(host) || (token !== undefined && token.length > 0)) return null;
  return (
    `binding to ${host} (not a loopback address) needs a bearer token: ` +
    `give --token <token> or set ${TOKEN_ENV}`
  );
}
