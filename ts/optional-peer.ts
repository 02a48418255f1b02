/**
 * Optional peer dependencies: packages a feature needs that a plain install of Tessera
 * does not bring (`@duckdb/node-api` for SQL windowed resolvers, `@platformatic/kafka`
 * for Kafka sources and the demo's `--kafka`, `fastify` and `prom-client` for
 * `tessera serve` and the metrics adapter). They are imported on first use, so
 * importing Tessera never loads them, and a missing one is reported with the feature
 * that needs it and the command that installs it.
 */
import { createRequire } from 'node:module';
import { TesseraError } from './errors.js';

/** An optional peer dependency that a feature needs is not installed. */
export class MissingDependencyError extends TesseraError {
  /** The package to install, e.g. `@platformatic/kafka`. */
  readonly dependency: string;
  constructor(dependency: string, feature: string, cause: unknown) {
    super(
      'MISSING_DEPENDENCY',
      `${feature} needs the optional peer dependency ${dependency}, which is not installed: run \`npm install ${dependency}\``,
      { cause },
    );
    this.dependency = dependency;
  }
}

/** True when `error` says that `dependency` itself could not be found (not one of its imports). */
function isMissing(error: unknown, dependency: string): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    typeof message === 'string' &&
    message.includes(`'${dependency}'`)
  );
}

/**
 * Imports an optional peer dependency for `feature`. `load` is the literal
 * `() => import('<dependency>')`, so the module keeps its types.
 *
 * @example
 * const { Consumer } = await importOptionalPeer('@platformatic/kafka', 'KafkaSource', () =>
 *   import('@platformatic/kafka'),
 * );
 */
export async function importOptionalPeer<T>(
  dependency: string,
  feature: string,
  load: () => Promise<T>,
): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (isMissing(error, dependency)) throw new MissingDependencyError(dependency, feature, error);
    throw error;
  }
}

const requireFromHere = createRequire(import.meta.url);

/**
 * Loads a CommonJS optional peer dependency synchronously for `feature` (for APIs that
 * are not async, such as the metrics adapter). Type it with `typeof import('<dependency>')`.
 *
 * @example
 * const prom = requireOptionalPeer<typeof import('prom-client')>('prom-client', 'Tessera metrics');
 */
export function requireOptionalPeer<T>(dependency: string, feature: string): T {
  try {
    return requireFromHere(dependency) as T;
  } catch (error) {
    if (isMissing(error, dependency)) throw new MissingDependencyError(dependency, feature, error);
    throw error;
  }
}
