/**
 * Scheduled backfills on a controlled clock (docs/semantics.md section 10): cron and
 * duration schedules fire at the right instants, a job never runs twice at once, a
 * restart neither repeats a completed run nor forgets a due one (one catch-up run after
 * downtime), tag sets give one run each, and the run records are readable from the CLI.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../ts/cli/main.js';
import { InvalidOptionError, ScheduledAggregateBackfill, Tessera } from '../ts/index.js';
import { nextTime, previousTime, scheduleOf } from '../ts/planner/schedule.js';
import type { BackfillSchedule } from '../ts/planner/types.js';
import {
  feed,
  nightly,
  sourceA,
  sourceB,
  Transaction,
  User,
} from './fixtures/scheduled-backfills.js';

const MINUTE = 60_000;
const dir = mkdtempSync(join(tmpdir(), 'tessera-schedules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const at = (iso: string) => Date.parse(iso);
const schedule = (text: string) => scheduleOf(text) as BackfillSchedule;

describe('schedule times', () => {
  it('steps cron expressions in UTC: */15, a month boundary, and a leap day', () => {
    const quarter = schedule('*/15 * * * *');
    expect(new Date(nextTime(quarter, at('2026-01-31T23:50:00Z'))).toISOString()).toBe(
      '2026-02-01T00:00:00.000Z',
    );
    expect(new Date(nextTime(quarter, at('2026-03-01T10:15:00Z'))).toISOString()).toBe(
      '2026-03-01T10:30:00.000Z',
    );
    const monthly = schedule('0 0 1 * *');
    expect(new Date(nextTime(monthly, at('2026-01-31T12:00:00Z'))).toISOString()).toBe(
      '2026-02-01T00:00:00.000Z',
    );
    expect(
      new Date(nextTime(schedule('0 6 29 2 *'), at('2026-03-01T00:00:00Z'))).toISOString(),
    ).toBe('2028-02-29T06:00:00.000Z');
    expect(new Date(previousTime(quarter, at('2026-03-01T10:44:59Z'))).toISOString()).toBe(
      '2026-03-01T10:30:00.000Z',
    );
    expect(new Date(previousTime(quarter, at('2026-03-01T10:45:00Z'))).toISOString()).toBe(
      '2026-03-01T10:45:00.000Z',
    );
  });

  it('steps durations on multiples since the epoch', () => {
    const six = schedule('6h');
    expect(new Date(nextTime(six, at('2026-03-01T05:59:59Z'))).toISOString()).toBe(
      '2026-03-01T06:00:00.000Z',
    );
    expect(new Date(nextTime(six, at('2026-03-01T06:00:00Z'))).toISOString()).toBe(
      '2026-03-01T12:00:00.000Z',
    );
  });

  it('refuses options that do not apply and bad schedules by name', () => {
    expect(() =>
      ScheduledAggregateBackfill({
        name: 'tiles',
        features: ['user.total'],
        schedule: '0 0 * * *',
        allowEmptyTiles: true,
      }),
    ).toThrow("ScheduledAggregateBackfill tiles: allowEmptyTiles applies to target 'offline'");
    expect(() =>
      ScheduledAggregateBackfill({ name: 'bad', features: ['user.total'], schedule: '61 * * * *' }),
    ).toThrow(InvalidOptionError);
  });
});

describe('the scheduler', () => {
  const path = join(dir, 'store');
  let now = at('2026-03-01T10:07:00Z');
  const open = () => {
    const tessera = Tessera.open({
      path,
      features: [User, Transaction],
      batchResolvers: [sourceA, sourceB],
      scheduledBackfills: [nightly],
    });
    tessera.setClock(now);
    return tessera;
  };
  const row = (id: number, user: number, minutesAgo: number) => ({
    id,
    user_id: user,
    amount: id,
    ts: now - minutesAgo * MINUTE,
  });

  it('fires each job at its times, once per tag set, never twice at once, and survives restarts', async () => {
    feed.a = [row(1, 1, 120), row(2, 2, 90)];
    feed.b = [row(3, 1, 100)];
    let tessera = open();
    let scheduler = tessera.scheduleWith({ clock: () => now });
    expect(scheduler.jobs.map((j) => [j.name, j.scheduleText, j.tags])).toEqual([
      ['user.total', '*/15 * * * *', []],
      ['user.total[source:a]', '*/15 * * * *', ['source:a']],
      ['nightly_purchases', '0 0 * * *', []],
    ]);
    // The first check registers the jobs; nothing is due yet.
    await scheduler.tick();
    const registered = tessera.engine.backfillRuns();
    expect(registered.map((r) => [r.job, r.status])).toEqual([
      ['nightly_purchases', 'REGISTERED'],
      ['user.total', 'REGISTERED'],
      ['user.total[source:a]', 'REGISTERED'],
    ]);
    expect(scheduler.status().map((s) => new Date(s.nextMs).toISOString())).toEqual([
      '2026-03-01T10:15:00.000Z',
      '2026-03-01T10:15:00.000Z',
      '2026-03-02T00:00:00.000Z',
    ]);
    now = at('2026-03-01T10:14:59Z');
    await scheduler.tick();
    expect(tessera.engine.backfillRuns().filter((r) => r.status !== 'REGISTERED')).toEqual([]);

    // 10:15: both tag sets of user.total run, each with its own resolvers.
    now = at('2026-03-01T10:15:00Z');
    tessera.setClock(now);
    await scheduler.tick();
    const completed = () => tessera.engine.backfillRuns().filter((r) => r.status === 'COMPLETED');
    expect(completed().map((r) => [r.job, new Date(r.scheduledMs).toISOString(), r.rows])).toEqual([
      ['user.total', '2026-03-01T10:15:00.000Z', 3],
      ['user.total[source:a]', '2026-03-01T10:15:00.000Z', 2],
    ]);
    const untagged = completed()[0];
    expect(untagged?.startedMs).toBe(now);
    expect(untagged?.upperMs).toBe(at('2026-03-01T10:00:00Z'));

    // 10:30: a run held by its resolver; checks while it runs start no second run.
    let release: () => void = () => undefined;
    feed.gate = new Promise((r) => {
      release = r;
    });
    now = at('2026-03-01T10:30:00Z');
    tessera.setClock(now);
    const held = scheduler.tick();
    await new Promise((r) => setTimeout(r, 20));
    expect(scheduler.status().find((s) => s.job.name === 'user.total')?.running).toBe(true);
    now = at('2026-03-01T10:45:00Z');
    await Promise.race([scheduler.tick(), new Promise((r) => setTimeout(r, 50))]);
    const during = tessera.engine.backfillRuns('user.total');
    expect(during.filter((r) => r.status === 'RUNNING').length).toBe(1);
    release();
    feed.gate = null;
    await held;
    // 10:45 came while the 10:30 run ran: the next check takes it.
    await scheduler.tick();
    expect(
      tessera.engine
        .backfillRuns('user.total')
        .filter((r) => r.status === 'COMPLETED')
        .map((r) => new Date(r.scheduledMs).toISOString()),
    ).toEqual(['2026-03-01T10:15:00.000Z', '2026-03-01T10:30:00.000Z', '2026-03-01T10:45:00.000Z']);

    // A restart at the same time repeats nothing.
    tessera.close();
    tessera = open();
    scheduler = tessera.scheduleWith({ clock: () => now });
    const before = tessera.engine.backfillRuns().length;
    await scheduler.tick();
    expect(tessera.engine.backfillRuns().length).toBe(before);

    // Downtime across seven quarter hours and midnight: one catch-up run per job, for the
    // latest missed time.
    tessera.close();
    now = at('2026-03-02T00:31:00Z');
    tessera = open();
    scheduler = tessera.scheduleWith({ clock: () => now });
    await scheduler.tick();
    const caughtUp = tessera.engine
      .backfillRuns()
      .filter((r) => r.scheduledMs > at('2026-03-01T10:45:00Z'))
      .map((r) => [r.job, new Date(r.scheduledMs).toISOString(), r.status]);
    expect(caughtUp).toEqual([
      ['nightly_purchases', '2026-03-02T00:00:00.000Z', 'COMPLETED'],
      ['user.total', '2026-03-02T00:30:00.000Z', 'COMPLETED'],
      ['user.total[source:a]', '2026-03-02T00:30:00.000Z', 'COMPLETED'],
    ]);

    // A run a dead process left RUNNING is run again.
    tessera.engine.putBackfillRun({
      job: 'user.total',
      scheduledMs: at('2026-03-02T00:45:00Z'),
      status: 'RUNNING',
      startedMs: at('2026-03-02T00:45:00Z'),
      rows: 0,
    });
    now = at('2026-03-02T00:50:00Z');
    await scheduler.tick();
    const rerun = tessera.engine.backfillRuns('user.total').at(-1);
    expect([rerun?.status, rerun && new Date(rerun.scheduledMs).toISOString()]).toEqual([
      'COMPLETED',
      '2026-03-02T00:45:00.000Z',
    ]);

    // stop() cancels a run in progress: it applies nothing and is recorded CANCELED.
    let resume: () => void = () => undefined;
    feed.gate = new Promise((r) => {
      resume = r;
    });
    now = at('2026-03-02T01:00:00Z');
    const cancelled = scheduler.tick();
    await new Promise((r) => setTimeout(r, 20));
    const stopping = scheduler.stop();
    resume();
    feed.gate = null;
    await stopping;
    await cancelled;
    const canceled = tessera.engine.backfillRuns('user.total').at(-1);
    expect([canceled?.status, canceled?.error]).toEqual([
      'CANCELED',
      'backfill canceled, nothing applied',
    ]);
    tessera.close();

    // The records, as the CLI prints them.
    const out: string[] = [];
    const features = fileURLToPath(new URL('./fixtures/scheduled-backfills.ts', import.meta.url));
    const code = await main(
      ['aggregate', 'schedules', '--features', features, '--path', path, '--json'],
      {
        out: (t) => out.push(t),
        err: () => undefined,
        cwd: dir,
      },
    );
    expect(code).toBe(0);
    const printed = JSON.parse(out.join('\n')) as {
      jobs: { name: string; next: string }[];
      runs: { job: string; status: string; scheduledAt: string }[];
    };
    expect(printed.jobs.map((j) => j.name)).toEqual([
      'user.total',
      'user.total[source:a]',
      'nightly_purchases',
    ]);
    // user.total and its source:a twin: 10:15, 10:30, 10:45, 00:30, 00:45; nightly: 00:00.
    expect(printed.runs.filter((r) => r.status === 'COMPLETED').length).toBe(11);
    // Both jobs of user.total read source_a, which held them at 01:00.
    expect(printed.runs.filter((r) => r.status === 'CANCELED').length).toBe(2);
  });
});
