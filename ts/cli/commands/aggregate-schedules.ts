/**
 * `tessera aggregate schedules`: the scheduled backfill jobs of a feature module (its
 * features' `backfillSchedule` and its `ScheduledAggregateBackfill` exports) with their
 * last runs and next times, as the store records them (docs/semantics.md section 10).
 * `--run` runs the scheduler until the process is interrupted.
 */
import { resolve } from 'node:path';
import type { ScheduledJobStatus } from '../../batch/schedules.js';
import type { BackfillRunEntry } from '../../native.js';
import { Tessera } from '../../tessera.js';
import type { Command } from '../command.js';
import { loadFeatureModule } from '../load-features.js';
import { cliTime, clockOption, storePathOption } from '../options.js';

const iso = (ms: number | null | undefined) =>
  typeof ms === 'number' ? new Date(ms).toISOString() : '-';

function runJson(r: BackfillRunEntry) {
  return {
    job: r.job,
    scheduledAt: iso(r.scheduledMs),
    status: r.status,
    startedAt: r.startedMs === undefined ? null : iso(r.startedMs),
    endedAt: r.endedMs === undefined ? null : iso(r.endedMs),
    lowerBound: r.lowerMs === undefined ? null : iso(r.lowerMs),
    upperBound: r.upperMs === undefined ? null : iso(r.upperMs),
    rows: r.rows,
    error: r.error ?? null,
  };
}

function render(
  statuses: readonly ScheduledJobStatus[],
  runs: readonly BackfillRunEntry[],
): string {
  if (statuses.length === 0)
    return 'No scheduled backfills (no backfillSchedule, no ScheduledAggregateBackfill).';
  const header = ['Job', 'Schedule', 'Features', 'Tags', 'Last run', 'Status', 'Rows', 'Next run'];
  const rows = statuses.map((s) => [
    s.job.name,
    s.job.scheduleText,
    s.job.features.join(', '),
    s.job.tags.join(', ') || '-',
    s.last === null || s.last.status === 'REGISTERED' ? '-' : iso(s.last.scheduledMs),
    s.running ? 'RUNNING' : (s.last?.status ?? '-'),
    s.last === null || s.last.status === 'REGISTERED' ? '-' : s.last.rows.toLocaleString('en-US'),
    iso(s.nextMs),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, c) => cell.padEnd(widths[c] ?? 0))
      .join('  ')
      .trimEnd();
  const out = [line(header), ...rows.map(line)];
  const failed = runs.filter((r) => r.status === 'FAILED');
  for (const r of failed.slice(-5))
    out.push(`failed ${r.job} at ${iso(r.scheduledMs)}: ${r.error ?? ''}`);
  return out.join('\n');
}

/**
 * `tessera aggregate schedules --features <module> --path <store> [--json] [--run]`.
 *
 * @example
 * await main(['aggregate', 'schedules', '--features', 'features.mjs', '--path', '.tessera/store']);
 */
export const aggregateSchedules: Command = {
  path: ['aggregate', 'schedules'],
  summary: 'List the scheduled backfills with their last and next runs; --run runs them',
  options: {
    features: {
      type: 'string',
      valueName: '<module>',
      description: 'module exporting the feature classes, batch resolvers and scheduled backfills',
      required: true,
    },
    path: storePathOption,
    json: { type: 'boolean', description: 'print the jobs and every recorded run as JSON' },
    run: { type: 'boolean', description: 'run the scheduler until interrupted (SIGINT, SIGTERM)' },
    clock: clockOption('the engine clock (the scheduler keeps the wall clock)'),
  },
  async run({ options, io }) {
    const module = await loadFeatureModule(String(options.features), io.cwd);
    const clock = typeof options.clock === 'string' ? cliTime(options.clock, '--clock') : undefined;
    const tessera = Tessera.open({
      ...(clock === undefined ? {} : { clock }),
      path: resolve(io.cwd, String(options.path)),
      features: module.classes,
      batchResolvers: module.batchResolvers,
      onlineResolvers: module.onlineResolvers,
      windowedResolvers: module.windowedResolvers,
      scheduledBackfills: module.scheduledBackfills,
    });
    try {
      if (options.run === true) {
        const scheduler = tessera.scheduleWith({
          onRun: (r) =>
            io.out(
              `${iso(r.endedMs)} ${r.job} (${iso(r.scheduledMs)}): ${r.status}${r.status === 'COMPLETED' ? `, ${r.rows.toLocaleString('en-US')} rows` : ''}${r.error === undefined ? '' : `: ${r.error}`}`,
            ),
        });
        io.out(render(scheduler.status(), []));
        scheduler.start();
        await new Promise<void>((done) => {
          const finish = () => {
            process.off('SIGINT', finish);
            process.off('SIGTERM', finish);
            done();
          };
          process.on('SIGINT', finish);
          process.on('SIGTERM', finish);
        });
        await scheduler.stop();
        return 0;
      }
      const statuses = tessera.schedules.status();
      const runs = tessera.engine.backfillRuns();
      if (options.json === true) {
        io.out(
          JSON.stringify(
            {
              jobs: statuses.map((s) => ({
                name: s.job.name,
                schedule: s.job.scheduleText,
                features: s.job.features,
                tags: s.job.tags,
                last: s.last === null ? null : runJson(s.last),
                next: iso(s.nextMs),
              })),
              runs: runs.map(runJson),
            },
            null,
            2,
          ),
        );
      } else {
        io.out(render(statuses, runs));
      }
      return 0;
    } finally {
      tessera.close();
    }
  },
};
