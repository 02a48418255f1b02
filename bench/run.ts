/**
 * `npm run bench [-- --quick]`: runs every scenario with its peers, prints a table and
 * writes `bench/results/latest.json`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backfillScenarios } from './backfill.js';
import type { BenchContext, ScenarioResult } from './harness.js';
import { ingestScenarios } from './ingest.js';
import { offlineScenarios } from './offline.js';
import { queryScenarios } from './query.js';
import { serveScenarios } from './serve.js';
import { sketchScenarios } from './sketches.js';
import { streamScenarios } from './stream.js';
import { windowedScenarios } from './windowed.js';

const quick = process.argv.includes('--quick');
// `--only ingest,stream`: just these groups, written to partial.json (for development).
const onlyArg = process.argv.indexOf('--only');
const only = onlyArg >= 0 ? (process.argv[onlyArg + 1] ?? '').split(',') : undefined;
const context: BenchContext = { quick, repetitions: quick ? 1 : 3 };

function format(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (Math.abs(value) >= 1e3) return `${(value / 1e3).toFixed(1)}K`;
  return value.toFixed(value < 10 ? 2 : 1);
}

const scenarios: ScenarioResult[] = [];
const groups = {
  ingest: ingestScenarios,
  query: queryScenarios,
  stream: streamScenarios,
  sketches: sketchScenarios,
  backfill: backfillScenarios,
  offline: offlineScenarios,
  serve: serveScenarios,
  windowed: windowedScenarios,
};
for (const [name, group] of Object.entries(groups)) {
  if (only !== undefined && !only.includes(name)) continue;
  for (const result of await group(context)) {
    scenarios.push(result);
    const peers = Object.entries(result.peers)
      .map(([k, v]) => `${k} ${format(v)}`)
      .join(', ');
    const ratios = Object.entries(result.ratios)
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(', ');
    console.log(
      `${result.name.padEnd(28)} ${format(result.tessera).padStart(9)} ${result.unit}  | ${peers} | ${ratios}`,
    );
  }
}

// Compiled to dist/bench/run.js: results go to the source tree's bench/results.
const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
mkdirSync(out, { recursive: true });
const file = join(out, only ? 'partial.json' : quick ? 'quick.json' : 'latest.json');
writeFileSync(
  file,
  `${JSON.stringify(
    {
      machine: { cpus: cpus().length, node: process.version, date: new Date().toISOString() },
      quick,
      scenarios,
    },
    null,
    2,
  )}\n`,
);
console.log(`\nwrote ${file}`);
