/** `tessera aggregate list --features <module>`: the series table and storage estimate. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { openReport, renderOpenReport } from '../../api/open-report.js';
import { incompleteWindows } from '../../batch/backfill.js';
import { BucketEngine } from '../../bucket-engine.js';
import { formatDiagnostic } from '../../dsl/errors.js';
import { compile } from '../../planner/compile.js';
import { renderAggregateList, renderStorageEstimate } from '../../planner/list.js';
import { formatBytes } from '../../planner/storage.js';
import { toStoreDescription } from '../../planner/store-description.js';
import type { Plan } from '../../planner/types.js';
import { type Command, UsageError } from '../command.js';
import { loadFeatureClasses } from '../load-features.js';

/**
 * What the store at `path` holds for `plan`, read-only (so it works while a stream or
 * `tessera serve` holds the store): what opening it for the plan would find (new, kept,
 * changed and orphaned series) and the windows that would need a backfill.
 */
function describeStore(path: string, plan: Plan) {
  const engine = BucketEngine.openReadOnly(path, toStoreDescription(plan));
  try {
    const report = openReport(engine.openReport, incompleteWindows(plan, engine, null), plan);
    const stats = engine.stats();
    return {
      report,
      bucketEntriesEstimate: stats.bucketEntriesEstimate,
      diskBytes: stats.diskBytes,
    };
  } finally {
    engine.close();
  }
}

/**
 * Prints one row per series rule (Series, Namespace, Group, Agg, Bucket, Retention,
 * Aggregation, Dependent Features) and the storage estimate; diagnostics go to stderr,
 * and any error makes the exit code 1. `--json` prints `{ plan, diagnostics }` instead.
 * With `--path`, also what the store holds: which series are stored (kept, and how the
 * definitions changed their rules), not stored yet (new) and stored but no longer defined
 * (orphaned), the windows that need a backfill, and its size.
 */
export const aggregateList: Command = {
  path: ['aggregate', 'list'],
  summary: 'List the materialized aggregations (series, buckets, retention) and their storage',
  options: {
    features: {
      type: 'string',
      valueName: '<module>',
      description: 'module exporting the feature classes (relative to the current directory)',
      required: true,
    },
    path: {
      type: 'string',
      valueName: '<dir>',
      description: 'also show what this store holds (read-only; works while it is served)',
    },
    json: { type: 'boolean', description: 'print the plan and diagnostics as JSON' },
  },
  async run({ options, io }) {
    const classes = await loadFeatureClasses(String(options.features), io.cwd);
    const { plan, diagnostics } = compile(classes);
    let store: ({ path: string } & ReturnType<typeof describeStore>) | undefined;
    if (typeof options.path === 'string') {
      const path = resolve(io.cwd, options.path);
      if (!existsSync(path)) throw new UsageError(`no store at ${path}`);
      store = { path, ...describeStore(path, plan) };
    }
    if (options.json === true) {
      io.out(
        JSON.stringify(
          store === undefined ? { plan, diagnostics } : { plan, diagnostics, store },
          null,
          2,
        ),
      );
    } else {
      io.out(renderAggregateList(plan));
      io.out('');
      io.out(renderStorageEstimate(plan));
      if (store !== undefined) {
        io.out('');
        io.out(`Store ${store.path}:`);
        io.out(renderOpenReport(store.report));
        io.out(
          `bucket records: ~${store.bucketEntriesEstimate.toLocaleString('en-US')} (RocksDB estimate), ${formatBytes(store.diskBytes)} in table files`,
        );
      }
      for (const d of diagnostics) io.err(formatDiagnostic(d));
    }
    return diagnostics.some((d) => d.severity === 'error') ? 1 : 0;
  },
};
