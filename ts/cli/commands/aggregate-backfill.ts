/**
 * `tessera aggregate backfill`: rebuilds the buckets of features from the batch
 * resolvers their feature module exports (docs/semantics.md section 9). `--plan` prints
 * what a run would do without writing; `--json` prints the plan or the report as JSON.
 * While it runs, a progress bar (rows, rows/s, ETA) is drawn on standard error when that
 * is a terminal, and plain progress lines are written there otherwise.
 */
import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { BackfillOptions, BackfillPlan, BackfillProgress } from '../../batch/backfill.js';
import { formatBytes } from '../../planner/storage.js';
import { Tessera } from '../../tessera.js';
import { type CliIO, type Command, UsageError } from '../command.js';
import { loadFeatureModule } from '../load-features.js';
import { cliTime, clockOption, storePathOption } from '../options.js';

function list(value: string | boolean | undefined): string[] | undefined {
  if (typeof value !== 'string') return undefined;
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return items.length > 0 ? items : undefined;
}

/** The plan (or the replaced ranges of a report) as text. */
export function renderBackfillPlan(
  plan: Omit<BackfillPlan, 'estimate'>,
  estimate?: BackfillPlan['estimate'],
): string {
  const lines = [
    `Backfill of ${plan.features.join(', ')}`,
    ...(plan.target === 'online'
      ? []
      : [
          `  writes offline tiles to ${plan.tileDirectory}${plan.target === 'both' ? ', and the store' : ' (not the store)'}`,
        ]),
    `  resolvers asked for [${plan.lowerBound}, ${plan.upperBound})${plan.tags.length > 0 ? ` with tags ${plan.tags.join(', ')}` : ''}: ${plan.resolvers.map((r) => r.name).join(', ')}`,
  ];
  for (const layout of plan.layouts) {
    lines.push(
      `  ${layout.series} ${layout.description}`,
      `    ${layout.bucketSize} buckets [${layout.from}, ${layout.to}): ${layout.buckets.toLocaleString('en-US')} per key; rules ${layout.rules.join(', ')}`,
    );
    if (layout.sharedWith.length > 0) {
      lines.push(
        `    also rebuilt from the same rows (shared records): ${layout.sharedWith.join(', ')}`,
      );
    }
  }
  if (estimate !== undefined) {
    const rows =
      estimate.rows === null
        ? 'unknown (a function resolver)'
        : estimate.rows.toLocaleString('en-US');
    const buckets =
      estimate.buckets === null ? 'unknown' : `at most ${estimate.buckets.toLocaleString('en-US')}`;
    const bytes =
      estimate.bytes === null ? 'unknown' : `at most ${formatBytes(estimate.bytes)} of states`;
    lines.push(`  rows to read: ${rows}; bucket records to write: ${buckets}; bytes: ${bytes}`);
  }
  return lines.join('\n');
}

/** A progress bar on a terminal; plain lines, at most one every 2 s, otherwise. */
function progressReporter(io: CliIO): { update: (p: BackfillProgress) => void; stop: () => void } {
  if (process.stderr.isTTY === true) {
    const bar = new cliProgress.SingleBar(
      {
        format:
          ' backfill |{bar}| {percentage}% | {value}/{total} rows | {speed} rows/s | ETA {eta_formatted}',
        stream: process.stderr,
        etaBuffer: 50,
        hideCursor: true,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update: (p) => {
        const speed =
          p.elapsedMs > 0 ? Math.round((p.rows / p.elapsedMs) * 1000).toLocaleString('en-US') : '0';
        if (!started && p.phase !== 'counting') {
          // Started at the current count; updating it again with the same count would
          // give the ETA two samples without progress (an infinite ETA).
          bar.start(p.totalRows ?? Math.max(p.rows, 1), p.rows, { speed });
          started = true;
        } else if (started) {
          if (p.totalRows === null) bar.setTotal(Math.max(p.rows, 1));
          bar.update(p.rows, { speed });
        }
      },
      stop: () => {
        if (started) bar.stop();
      },
    };
  }
  let last = Number.NEGATIVE_INFINITY;
  return {
    update: (p) => {
      if (p.phase === 'reading' && p.elapsedMs - last < 2000) return;
      last = p.elapsedMs;
      const total = p.totalRows === null ? '' : ` of ${p.totalRows.toLocaleString('en-US')}`;
      const rate = p.elapsedMs > 0 ? Math.round((p.rows / p.elapsedMs) * 1000) : 0;
      io.err(
        `backfill ${p.phase}: ${p.rows.toLocaleString('en-US')}${total} rows, ${rate.toLocaleString('en-US')} rows/s, ${(p.elapsedMs / 1000).toFixed(1)} s`,
      );
    },
    stop: () => undefined,
  };
}

/**
 * `tessera aggregate backfill --features <module> --path <store> --feature <name>[,...]
 * [--lower-bound ISO] [--upper-bound ISO] [--tags a,b] [--store-offline [--store-online]
 * [--allow-empty-tiles] [--tile-dir DIR]] [--plan] [--json]`.
 *
 * @example
 * await main(['aggregate', 'backfill', '--features', 'features.mjs', '--path', '.tessera/store',
 *   '--feature', 'user.total', '--lower-bound', '2026-01-01T00:00:00Z', '--plan']);
 */
export const aggregateBackfill: Command = {
  path: ['aggregate', 'backfill'],
  summary: 'Rebuild the buckets of features from their batch resolvers (replaces a range)',
  options: {
    features: {
      type: 'string',
      valueName: '<module>',
      description: 'module exporting the feature classes and batch resolvers',
      required: true,
    },
    path: storePathOption,
    feature: {
      type: 'string',
      valueName: '<name>[,<name>...]',
      description:
        'the features to rebuild, as namespace.feature (or namespace.feature@version); default: those whose windows need a backfill',
    },
    'lower-bound': {
      type: 'string',
      valueName: '<ISO time>',
      description: 'first instant to rebuild (default: now minus each rule’s retention)',
    },
    'upper-bound': {
      type: 'string',
      valueName: '<ISO time>',
      description: 'end of the range, exclusive (default: the start of the bucket holding now)',
    },
    tags: {
      type: 'string',
      valueName: '<tag>[,<tag>...]',
      description: 'use only the batch resolvers carrying every one of these tags',
    },
    'store-offline': {
      type: 'boolean',
      description:
        'write offline tiles of the range instead of the store (needs --lower-bound and --upper-bound)',
    },
    'store-online': {
      type: 'boolean',
      description: 'with --store-offline: replace the range in the store too',
    },
    'allow-empty-tiles': {
      type: 'boolean',
      description: 'with --store-offline: record a tile for a layout the run found no rows for',
    },
    'tile-dir': {
      type: 'string',
      valueName: '<dir>',
      description: 'where offline tiles are written (default: tiles inside the store directory)',
    },
    clock: clockOption('the engine clock (default bounds, retention)'),
    plan: { type: 'boolean', description: 'print what the run would do, without writing' },
    json: { type: 'boolean', description: 'print the plan or the report as JSON' },
  },
  async run({ options, io }) {
    const module = await loadFeatureModule(String(options.features), io.cwd);
    const named = list(options.feature);
    if (options.feature !== undefined && named === undefined) {
      throw new UsageError('--feature names no feature');
    }
    const clock = typeof options.clock === 'string' ? cliTime(options.clock, '--clock') : undefined;
    const offline = options['store-offline'] === true;
    for (const flag of ['store-online', 'allow-empty-tiles'] as const) {
      if (options[flag] === true && !offline) {
        throw new UsageError(`--${flag} applies to offline tiles; give --store-offline with it`);
      }
    }
    if (offline) {
      for (const bound of ['lower-bound', 'upper-bound'] as const) {
        if (typeof options[bound] !== 'string') {
          throw new UsageError(
            `--store-offline writes tiles of a range given whole: --${bound} <ISO time> is required`,
          );
        }
      }
    }
    const tileDir = typeof options['tile-dir'] === 'string' ? options['tile-dir'] : undefined;
    const tessera = Tessera.open({
      ...(clock === undefined ? {} : { clock }),
      ...(tileDir === undefined ? {} : { tileDirectory: resolve(io.cwd, tileDir) }),
      path: resolve(io.cwd, String(options.path)),
      features: module.classes,
      batchResolvers: module.batchResolvers,
      onlineResolvers: module.onlineResolvers,
      windowedResolvers: module.windowedResolvers,
    });
    try {
      // Without --feature: the features whose windows read buckets from before their
      // layout is complete (docs/semantics.md section 9.4).
      const incomplete = named === undefined ? tessera.incompleteWindows() : [];
      const features = named ?? [...new Set(incomplete.map((w) => w.feature))];
      if (features.length === 0) {
        io.out('Every feature window is complete: nothing needs a backfill.');
        return 0;
      }
      for (const w of incomplete) {
        io.err(`${w.feature} (${w.window}) needs a backfill from ${w.from} to ${w.to}`);
      }
      const request: BackfillOptions = {
        features,
        ...(typeof options['lower-bound'] === 'string'
          ? { lowerBound: options['lower-bound'] }
          : {}),
        ...(typeof options['upper-bound'] === 'string'
          ? { upperBound: options['upper-bound'] }
          : {}),
        ...(list(options.tags) === undefined ? {} : { tags: list(options.tags) }),
        ...(offline
          ? {
              target: options['store-online'] === true ? ('both' as const) : ('offline' as const),
              ...(options['allow-empty-tiles'] === true ? { allowEmptyTiles: true } : {}),
            }
          : {}),
      };
      if (options.plan === true) {
        const plan = await tessera.planBackfill(request);
        io.out(
          options.json === true
            ? JSON.stringify(plan, null, 2)
            : renderBackfillPlan(plan, plan.estimate),
        );
        return 0;
      }
      const progress = progressReporter(io);
      let report: Awaited<ReturnType<Tessera['backfill']>>;
      try {
        report = await tessera.backfill({ ...request, onProgress: progress.update });
      } finally {
        progress.stop();
      }
      if (options.json === true) {
        io.out(JSON.stringify(report, null, 2));
      } else {
        io.out(renderBackfillPlan(report));
        const seconds = report.elapsedMs / 1000;
        io.out(
          `  read ${report.rows.toLocaleString('en-US')} rows in ${seconds.toFixed(2)} s (${Math.round(report.rows / Math.max(seconds, 1e-9)).toLocaleString('en-US')} rows/s); wrote ${report.native.bucketsWritten.toLocaleString('en-US')} bucket records (${formatBytes(report.native.bytesWritten)}), cleared ${report.native.keyRangesCleared.toLocaleString('en-US')} key ranges, in ${report.native.tableFiles} table files`,
        );
        if (report.target !== 'online') {
          io.out(
            `  wrote ${report.native.tilesWritten} offline tiles (${report.native.tileRows.toLocaleString('en-US')} rows) to ${report.tileDirectory}`,
          );
        }
        if (report.native.rowsOutsideRange > 0) {
          io.out(
            `  skipped ${report.native.rowsOutsideRange.toLocaleString('en-US')} rows outside the range`,
          );
        }
      }
      return 0;
    } finally {
      tessera.close();
    }
  },
};
