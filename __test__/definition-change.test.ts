/**
 * Definition changes (docs/semantics.md sections 5.3 and 9.4): a store opened with a sum
 * over 7d, fed rows, and reopened with the window widened to 30d and a mean added beside
 * the sum keeps its buckets (the 7d sum is unchanged); the open report names what became
 * incomplete, with its range; a backfill of the features `incompleteWindows()` names
 * (through the API, then through `tessera aggregate backfill` without `--feature`) makes
 * every window complete, each equal to a recompute from the raw rows. A rule removed
 * and added again starts incomplete again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { BucketEngine } from '../ts/bucket-engine.js';
import { main } from '../ts/cli/main.js';
import { compile, renderOpenReport, Tessera, toStoreDescription } from '../ts/index.js';
import { definitionModule, feed, type Version } from './fixtures/definition-change.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 2, 10);
/** Definition A is opened before the first row: its rule is complete from then on. */
const TA = T0 - 10 * DAY - HOUR;
/** Definition B is opened at 00:30, two days after T0. */
const T1 = T0 + 2 * DAY + 30 * 60_000;
const USERS = [1, 2, 3, 4, 5];
const dir = mkdtempSync(join(tmpdir(), 'tessera-definition-change-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const iso = (ms: number) => new Date(ms).toISOString();
const hourOf = (ms: number) => Math.floor(ms / HOUR) * HOUR;

// Twelve days of rows for 5 users, one every 37 minutes, all before T1's bucket. The
// amounts are quarters, so every sum is exact in any order.
feed.rows = Array.from({ length: Math.floor((12 * DAY) / (37 * 60_000)) }, (_, i) => ({
  id: i + 1,
  user_id: 1 + (i % 5),
  amount: (i % 13) + 0.25,
  ts: T0 - 10 * DAY + i * 37 * 60_000,
}));

/** A window W at `now` under 1h buckets (section 5.1), recomputed from the raw rows. */
function recompute(kind: 'sum' | 'mean', user: number, windowMs: number, now: number) {
  const first = hourOf(now - windowMs + 1);
  const end = hourOf(now) + HOUR;
  const amounts = feed.rows
    .filter((r) => r.user_id === user && r.ts >= first && r.ts < end)
    .map((r) => r.amount);
  const sum = amounts.reduce((s, a) => s + a, 0);
  if (kind === 'sum') return sum;
  return amounts.length === 0 ? null : sum / amounts.length;
}

function open(path: string, version: Version, clock: number): Tessera {
  const m = definitionModule(version);
  return Tessera.open({
    path,
    features: [m.User, m.Transaction],
    batchResolvers: [m.history],
    clock,
  });
}

function values(tessera: Tessera, output: string, now: number): unknown[] {
  const { rows } = tessera.query({ input: { 'user.id': USERS }, output: [output], now });
  return rows.map((r) => r.values[0]);
}

/** Opens definition A, ingests every row, and returns the 7d sums at T1. */
function storeOfDefinitionA(path: string): unknown[] {
  const tessera = open(path, 'A', TA);
  const m = definitionModule('A');
  tessera.ingest(m.Transaction, feed.rows);
  expect(tessera.incompleteWindows(T1)).toEqual([]);
  const sums = values(tessera, 'user.total_7d', T1);
  expect(sums).toEqual(USERS.map((u) => recompute('sum', u, 7 * DAY, T1)));
  tessera.close();
  return sums;
}

/**
 * What B's open must report at T1: the sum's hourly layout widened from 7d to 30d, so
 * the 30d window is complete only from the first bucket that 7d retention (plus one
 * bucket) had kept at T1, 23:00 five days and an hour before T0 + 2d (section 5.4); the
 * mean is new, complete from the hour after T1.
 */
const kept = T0 - 5 * DAY - HOUR;
const expectedAtT1 = [
  ['user.total', '30d', iso(hourOf(T1 - 30 * DAY + 1)), iso(kept)],
  ['user.avg', '7d', iso(hourOf(T1 - 7 * DAY + 1)), iso(hourOf(T1) + HOUR)],
];

function expectDefinitionBReport(tessera: Tessera, sumsBefore: unknown[]) {
  const report = tessera.openReport;
  expect(report.newSeries).toEqual([]);
  expect(report.orphanedSeries).toEqual([]);
  expect(report.keptSeries.length).toBe(1);
  expect(report.changedSeries.map((c) => [c.added, c.retired, c.widened])).toEqual([
    [['mean per 1h'], [], [{ bucket: '1h', from: '7d', to: '30d' }]],
  ]);
  expect(report.needsBackfill.map((w) => [w.feature, w.window, w.from, w.to])).toEqual(
    expectedAtT1,
  );
  expect(tessera.incompleteWindows()).toEqual(report.needsBackfill);
  const text = renderOpenReport(report);
  expect(text).toContain('added mean per 1h; retention of 1h buckets widened from 7d to 30d');
  expect(text).toContain(
    `user.total (30d) needs a backfill from ${expectedAtT1[0]?.[2]} to ${iso(kept)}`,
  );
  expect(text).toContain(`user.avg (7d) needs a backfill from ${expectedAtT1[1]?.[2]}`);
  // The old buckets were kept: the 7d sum is what it was before the change.
  expect(values(tessera, 'user.total_7d', T1)).toEqual(sumsBefore);
}

function expectEveryWindowRecomputed(tessera: Tessera, now: number, withMean = true) {
  expect(values(tessera, 'user.total_7d', now)).toEqual(
    USERS.map((u) => recompute('sum', u, 7 * DAY, now)),
  );
  expect(values(tessera, 'user.total_30d', now)).toEqual(
    USERS.map((u) => recompute('sum', u, 30 * DAY, now)),
  );
  if (!withMean) return;
  expect(values(tessera, 'user.avg_7d', now)).toEqual(
    USERS.map((u) => recompute('mean', u, 7 * DAY, now)),
  );
}

describe('a definition change keeps the buckets that are still valid', () => {
  it('widening a window and adding a mean: the API backfills what incompleteWindows names', async () => {
    const path = join(dir, 'api');
    const sumsBefore = storeOfDefinitionA(path);
    let tessera = open(path, 'B', T1);
    expectDefinitionBReport(tessera, sumsBefore);
    // Nothing of the mean yet: it was not folded before the change.
    expect(values(tessera, 'user.avg_7d', T1)).toEqual(USERS.map(() => null));

    // Two hours on, the default upper bound (02:00) reaches the mean's complete point.
    const T2 = T1 + 2 * HOUR;
    tessera.setClock(T2);
    const features = [...new Set(tessera.incompleteWindows().map((w) => w.feature))];
    expect(features).toEqual(['user.total', 'user.avg']);
    await tessera.backfill({ features });
    expect(tessera.incompleteWindows()).toEqual([]);
    expectEveryWindowRecomputed(tessera, T2);
    tessera.close();

    // The mean removed (retired in its slot), then requested again: it is a new rule,
    // incomplete again, whatever its old slot held.
    const T3 = T2 + HOUR;
    tessera = open(path, 'C', T3);
    expect(tessera.openReport.changedSeries.map((c) => [c.added, c.retired])).toEqual([
      [[], ['mean per 1h']],
    ]);
    expect(tessera.incompleteWindows()).toEqual([]);
    expectEveryWindowRecomputed(tessera, T3, false);
    tessera.close();
    const T4 = T3 + HOUR;
    tessera = open(path, 'B', T4);
    expect(tessera.openReport.changedSeries.map((c) => [c.added, c.retired])).toEqual([
      [['mean per 1h'], []],
    ]);
    expect(
      tessera.openReport.needsBackfill.map((w) => [w.feature, w.window, w.from, w.to]),
    ).toEqual([['user.avg', '7d', iso(hourOf(T4 - 7 * DAY + 1)), iso(hourOf(T4) + HOUR)]]);
    expect(values(tessera, 'user.avg_7d', T4)).toEqual(USERS.map(() => null));
    // The sum's windows are untouched.
    expect(values(tessera, 'user.total_30d', T4)).toEqual(
      USERS.map((u) => recompute('sum', u, 30 * DAY, T4)),
    );
    tessera.close();
  });

  it('the same change, filled by aggregate backfill without --feature', async () => {
    const path = join(dir, 'cli');
    const sumsBefore = storeOfDefinitionA(path);
    const out: string[] = [];
    const err: string[] = [];
    const module = fileURLToPath(new URL('./fixtures/definition-change-b.ts', import.meta.url));
    const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t), cwd: dir };
    // `aggregate list --path` shows what opening the store with B would do (judged by
    // the system clock), and writes nothing.
    expect(await main(['aggregate', 'list', '--features', module, '--path', path], io)).toBe(0);
    const listed = out.join('\n');
    expect(listed).toContain('series: 0 new, 1 kept, 0 orphaned');
    expect(listed).toContain('added mean per 1h; retention of 1h buckets widened from 7d to 30d');
    expect(listed).toContain('user.total (30d) needs a backfill from');
    expect(listed).toContain('user.avg (7d) needs a backfill from');
    out.length = 0;
    const tessera = open(path, 'B', T1);
    expectDefinitionBReport(tessera, sumsBefore);
    tessera.close();

    const T2 = T1 + 2 * HOUR;
    const args = ['aggregate', 'backfill', '--features', module, '--path', path];
    expect(await main([...args, '--clock', iso(T2), '--json'], io)).toBe(0);
    expect(err.filter((l) => l.includes('needs a backfill'))).toEqual([
      `user.total (30d) needs a backfill from ${iso(hourOf(T2 - 30 * DAY + 1))} to ${iso(kept)}`,
      `user.avg (7d) needs a backfill from ${iso(hourOf(T2 - 7 * DAY + 1))} to ${iso(hourOf(T1) + HOUR)}`,
    ]);
    const report = JSON.parse(out.join('\n')) as { features: string[] };
    expect(report.features).toEqual(['user.total', 'user.avg']);
    out.length = 0;
    expect(await main([...args, '--clock', iso(T2)], io)).toBe(0);
    expect(out).toEqual(['Every feature window is complete: nothing needs a backfill.']);

    const reopened = open(path, 'B', T2);
    expect(reopened.openReport.changedSeries).toEqual([]);
    expect(reopened.openReport.needsBackfill).toEqual([]);
    expectEveryWindowRecomputed(reopened, T2);
    reopened.close();
  });

  it('a series the previous version stored under its former id is adopted with its buckets', () => {
    const path = join(dir, 'former');
    // The store as the previous version wrote it: the series under the id that hashed
    // its rules too (formerSeriesId), fed every row.
    const a = definitionModule('A');
    const description = toStoreDescription(compile([a.User, a.Transaction]).plan);
    const [series] = description.series;
    if (series?.formerId === undefined) throw new Error('the description gives a former id');
    const { formerId, ...previous } = series;
    const engine = BucketEngine.open(
      path,
      { series: [{ ...previous, id: formerId }] },
      {
        clockMs: TA,
      },
    );
    const rows = feed.rows;
    engine.commitBatches([
      {
        seriesId: formerId,
        keys: [{ ints: Float64Array.from(rows, (r) => r.user_id) }],
        timestampsMs: Float64Array.from(rows, (r) => r.ts),
        numbers: Float64Array.from(rows, (r) => r.amount),
      },
    ]);
    engine.close();

    // Upgraded with the same definition: the former id is the one it stored.
    let tessera = open(path, 'A', T1);
    const report = tessera.openReport;
    expect(report.newSeries).toEqual([]);
    expect(report.orphanedSeries).toEqual([]);
    expect(report.keptSeries.map((s) => s.id)).toEqual([series.id]);
    expect(report.changedSeries.map((c) => [c.adoptedFrom, c.added, c.retired])).toEqual([
      [formerId, [], []],
    ]);
    expect(renderOpenReport(report)).toContain(`changed  ${series.id}  adopted from ${formerId}`);
    expect(report.needsBackfill).toEqual([]);
    const sumsBefore = values(tessera, 'user.total_7d', T1);
    expect(sumsBefore).toEqual(USERS.map((u) => recompute('sum', u, 7 * DAY, T1)));
    tessera.close();
    // Then changed as in the first case: kept under its new id.
    tessera = open(path, 'B', T1);
    expectDefinitionBReport(tessera, sumsBefore);
    tessera.close();
  });
});
