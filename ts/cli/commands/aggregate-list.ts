/** `tessera aggregate list --features <module>`: the series table and storage estimate. */
import { formatDiagnostic } from '../../dsl/errors.js';
import { compile } from '../../planner/compile.js';
import { renderAggregateList, renderStorageEstimate } from '../../planner/list.js';
import type { Command } from '../command.js';
import { loadFeatureClasses } from '../load-features.js';

/**
 * Prints one row per series rule (Series, Namespace, Group, Agg, Bucket, Retention,
 * Aggregation, Dependent Features) and the storage estimate; diagnostics go to stderr,
 * and any error makes the exit code 1. `--json` prints `{ plan, diagnostics }` instead.
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
    json: { type: 'boolean', description: 'print the plan and diagnostics as JSON' },
  },
  async run({ options, io }) {
    const classes = await loadFeatureClasses(String(options.features), io.cwd);
    const { plan, diagnostics } = compile(classes);
    if (options.json === true) {
      io.out(JSON.stringify({ plan, diagnostics }, null, 2));
    } else {
      io.out(renderAggregateList(plan));
      io.out('');
      io.out(renderStorageEstimate(plan));
      for (const d of diagnostics) io.err(formatDiagnostic(d));
    }
    return diagnostics.some((d) => d.severity === 'error') ? 1 : 0;
  },
};
