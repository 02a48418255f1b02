/**
 * `tessera parity`: compares what the online store serves with the same windows
 * recomputed from the feature module's batch resolvers, for sampled keys and times
 * (docs/semantics.md section 11, "Parity check"). Exits 1 when any value differs beyond
 * its aggregation's tolerance.
 */
import { resolve } from 'node:path';
import type { ParityOptions, ParityResult } from '../../api/parity.js';
import type { FeatureValue } from '../../api/query.js';
import { Tessera } from '../../tessera.js';
import { type Command, UsageError } from '../command.js';
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

function whole(value: string | boolean | undefined, option: string): number | undefined {
  if (typeof value !== 'string') return undefined;
  if (!/^\d+$/.test(value.trim())) {
    throw new UsageError(`${option} must be a whole number, got '${value}'`);
  }
  return Number(value);
}

function show(value: FeatureValue): string {
  if (value instanceof Date) return value.toISOString();
  return JSON.stringify(value, (_k, v: unknown) =>
    typeof v === 'number' && !Number.isFinite(v) ? String(v) : v,
  );
}

/** The report as text: per output, the values compared and every difference. */
export function renderParity(result: ParityResult): string {
  const lines = [
    `Parity of the online store and the raw rows at ${result.times.map((t) => t.toISOString()).join(', ')}`,
  ];
  for (const o of result.outputs) {
    const keys = `${o.keys.both} keys in both, ${o.keys.store} only stored, ${o.keys.raw} only in raw rows`;
    lines.push(
      `  ${o.output} (${o.aggregation}; tolerance: ${o.tolerance.rule}): ${o.compared} values compared (${keys}), ${o.differences.length === 0 ? 'no differences' : `${o.differences.length} ${o.differences.length === 1 ? 'difference' : 'differences'}`}`,
    );
    for (const d of o.differences) {
      const key = Object.entries(d.key)
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join(' ');
      const backfill =
        d.needsBackfill === undefined
          ? ''
          : ` (the window needs a backfill from ${d.needsBackfill.from.toISOString()} to ${d.needsBackfill.to.toISOString()})`;
      lines.push(
        `    ${key} at ${d.time.toISOString()}: online ${show(d.online)}, offline ${show(d.offline)} (gap ${d.gap === Infinity ? 'not comparable' : d.gap}, tolerance ${d.tolerance})${backfill}`,
      );
    }
  }
  for (const s of result.skipped) lines.push(`  skipped ${s.output}: ${s.reason}`);
  lines.push(
    result.differences === 0
      ? `${result.compared} values compared: the online store agrees with the raw rows`
      : `${result.compared} values compared: ${result.differences} beyond tolerance`,
  );
  return lines.join('\n');
}

/**
 * `tessera parity --features <module> --path <store> [--output a,b] [--sample N]
 * [--seed N] [--at ISO ...] [--tags a,b] [--clock ISO] [--json]`.
 */
export const parityCommand: Command = {
  path: ['parity'],
  summary: 'Compare what the online store serves with a recompute from the batch resolvers',
  options: {
    features: {
      type: 'string',
      valueName: '<module>',
      description: 'module exporting the feature classes and batch resolvers',
      required: true,
    },
    path: storePathOption,
    output: {
      type: 'string',
      valueName: '<window>[,<window>...]',
      description:
        'the feature windows to compare (user.total__604800__, user.total_7d); default: every ungrouped window without a continuous buffer',
    },
    sample: {
      type: 'string',
      valueName: '<n>',
      description:
        'keys compared per output, sampled from the store and the raw rows (default 100)',
    },
    seed: { type: 'string', valueName: '<n>', description: 'seed of the key sample (default 1)' },
    at: {
      type: 'string',
      valueName: '<ISO time>',
      multiple: true,
      description:
        'a time to compare at (repeat, or separate by commas); default: the engine clock and the ends of the three buckets before it',
    },
    tags: {
      type: 'string',
      valueName: '<tag>[,<tag>...]',
      description: 'use only the batch resolvers carrying every one of these tags',
    },
    clock: clockOption('the engine clock (default times, retention)'),
    json: { type: 'boolean', description: 'print the result as JSON' },
  },
  async run({ options, io }) {
    const module = await loadFeatureModule(String(options.features), io.cwd);
    if (module.batchResolvers.length === 0) {
      throw new UsageError(
        `${String(options.features)} exports no batch resolvers: the parity check recomputes from their rows`,
      );
    }
    const clock = typeof options.clock === 'string' ? cliTime(options.clock, '--clock') : undefined;
    const at = list(options.at)?.map((t) => cliTime(t, '--at'));
    const output = list(options.output);
    if (options.output !== undefined && output === undefined) {
      throw new UsageError('--output names no feature window');
    }
    const sample = whole(options.sample, '--sample');
    const seed = whole(options.seed, '--seed');
    const tags = list(options.tags);
    const request: ParityOptions = {
      ...(output === undefined ? {} : { output }),
      ...(at === undefined ? {} : { at }),
      ...(sample === undefined ? {} : { sample }),
      ...(seed === undefined ? {} : { seed }),
      ...(tags === undefined ? {} : { tags }),
    };
    const tessera = Tessera.open({
      ...(clock === undefined ? {} : { clock }),
      path: resolve(io.cwd, String(options.path)),
      features: module.classes,
      batchResolvers: module.batchResolvers,
      onlineResolvers: module.onlineResolvers,
      windowedResolvers: module.windowedResolvers,
      createIfMissing: false,
    });
    try {
      const result = await tessera.parity(request);
      io.out(options.json === true ? JSON.stringify(result, null, 2) : renderParity(result));
      return result.differences === 0 ? 0 : 1;
    } finally {
      tessera.close();
    }
  },
};
