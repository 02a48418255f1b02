/** Loading a user's feature module for CLI commands. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type BatchResolver, isBatchResolver } from '../batch/resolver.js';
import {
  isScheduledAggregateBackfill,
  type ScheduledAggregateBackfillJob,
} from '../batch/schedules.js';
import { isOnlineResolver, type OnlineResolver } from '../buffer/online-resolver.js';
import { type AnyFeatureClass, isFeatureClass } from '../dsl/feature-class.js';
import { isWindowedStreamResolver, type WindowedStreamResolver } from '../resolvers/windowed.js';
import { UsageError } from './command.js';

/** What a feature module exports that commands use. */
export interface FeatureModule {
  readonly classes: AnyFeatureClass[];
  /** Exported batch resolvers (`makeBatchResolver`), for backfills. */
  readonly batchResolvers: BatchResolver[];
  /** Exported scheduled backfill jobs (`ScheduledAggregateBackfill`). */
  readonly scheduledBackfills: ScheduledAggregateBackfillJob[];
  /** Exported online resolvers (`makeOnlineResolver`), for continuous buffers. */
  readonly onlineResolvers: OnlineResolver[];
  /** Exported windowed stream resolvers (`makeWindowedStreamResolver`). */
  readonly windowedResolvers: WindowedStreamResolver[];
}

/**
 * Imports the module at `path` (relative to `cwd`) and returns the feature classes it
 * exports: any export that is a feature class, and the members of an exported list or
 * object of them (e.g. `export default [User, Transaction]`).
 */
export async function loadFeatureClasses(path: string, cwd: string): Promise<AnyFeatureClass[]> {
  return (await loadFeatureModule(path, cwd)).classes;
}

/**
 * Imports the module at `path` (relative to `cwd`): its feature classes (as
 * {@link loadFeatureClasses} finds them), batch resolvers, online resolvers and scheduled
 * backfills, found the same way.
 */
export async function loadFeatureModule(path: string, cwd: string): Promise<FeatureModule> {
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
  const resolvers = new Set<BatchResolver>();
  const schedules = new Set<ScheduledAggregateBackfillJob>();
  const online = new Set<OnlineResolver>();
  const windowed = new Set<WindowedStreamResolver>();
  const take = (value: unknown): boolean => {
    if (isFeatureClass(value)) found.add(value);
    else if (isBatchResolver(value)) resolvers.add(value);
    else if (isScheduledAggregateBackfill(value)) schedules.add(value);
    else if (isOnlineResolver(value)) online.add(value);
    else if (isWindowedStreamResolver(value)) windowed.add(value);
    else return false;
    return true;
  };
  const visit = (value: unknown): void => {
    if (take(value)) return;
    if (Array.isArray(value)) value.forEach(take);
    else if (typeof value === 'object' && value !== null && !(value instanceof Date)) {
      for (const v of Object.values(value)) take(v);
    }
  };
  for (const value of Object.values(mod)) visit(value);
  if (found.size === 0) {
    throw new UsageError(
      `${file} exports no feature classes (export the results of features(...))`,
    );
  }
  return {
    classes: [...found],
    batchResolvers: [...resolvers],
    scheduledBackfills: [...schedules],
    onlineResolvers: [...online],
    windowedResolvers: [...windowed],
  };
}
