/** Loading a user's feature module for CLI commands. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type AnyFeatureClass, isFeatureClass } from '../dsl/feature-class.js';
import { UsageError } from './command.js';

/**
 * Imports the module at `path` (relative to `cwd`) and returns the feature classes it
 * exports: any export that is a feature class, and the members of an exported list or
 * object of them (e.g. `export default [User, Transaction]`).
 */
export async function loadFeatureClasses(path: string, cwd: string): Promise<AnyFeatureClass[]> {
  const file = resolve(cwd, path);
  if (!existsSync(file)) throw new UsageError(`feature module not found: ${file}`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    throw new Error(
      `could not import ${file}: ${e instanceof Error ? e.message : String(e)}` +
        (file.endsWith('.ts')
          ? ' (compile it to JavaScript, or run Node with TypeScript support)'
          : ''),
    );
  }
  const found = new Set<AnyFeatureClass>();
  const visit = (value: unknown): void => {
    if (isFeatureClass(value)) found.add(value);
    else if (Array.isArray(value)) value.forEach(visit);
    else if (typeof value === 'object' && value !== null && !(value instanceof Date)) {
      for (const v of Object.values(value)) if (isFeatureClass(v)) found.add(v);
    }
  };
  for (const value of Object.values(mod)) visit(value);
  if (found.size === 0) {
    throw new UsageError(
      `${file} exports no feature classes (export the results of features(...))`,
    );
  }
  return [...found];
}
