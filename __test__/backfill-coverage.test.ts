/**
 * Coverage (docs/semantics.md section 9.4): a series registered after its data began is
 * incomplete until a backfill reaches back; the open report and `incompleteWindows` name
 * each incomplete window with its range; a widened window keeps its series, and is
 * incomplete back from the first bucket the old retention kept, and `tessera aggregate
 * backfill` without `--feature` fills exactly those features, after which every window
 * equals the sum of the rows it covers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../ts/cli/main.js';
import { renderOpenReport, Tessera } from '../ts/index.js';
import { coverageModule, feed } from './fixtures/coverage-features.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** When the store is first opened: 10:20, inside the hourly bucket of 10:00. */
const T0 = Date.UTC(2026, 2, 10, 10, 20);
const dir = mkdtempSync(join(tmpdir(), 'tessera-coverage-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const iso = (ms: number) => new Date(ms).toISOString();

// 40 days of rows for 5 users, one every 37 minutes.
feed.rows = Array.from({ length: Math.floor((40 * DAY) / (37 * 60_000)) }, (_, i) => ({
  id: i + 1,
  user_id: 1 + (i % 5),
  amount: (i % 13) + 0.25,
  ts: T0 - 40 * DAY + i * 37 * 60_000,
}));

/** The sum of the rows a window W reads at `now` under 1h buckets (section 5.1). */
function expectedSum(user: number, windowMs: number, now: number): number {
  const first = Math.floor((now - windowMs + 1) / HOUR) * HOUR;
  const end = Math.floor(now / HOUR) * HOUR + HOUR;
  return feed.rows
    .filter((r) => r.user_id === user && r.ts >= first && r.ts < end)
    .reduce((s, r) => s + r.amount, 0);
}

describe('coverage and the windows that need a backfill', () => {
  const path = join(dir, 'store');

  it('names every window of a new series, and a backfill that reaches back completes them', async () => {
    const narrow = coverageModule(false);
    let tessera = Tessera.open({
      path,
      features: [narrow.User, narrow.Transaction],
      batchResolvers: [narrow.history],
      clock: T0,
    });
    const atT0 = tessera.openReport.needsBackfill;
    expect(tessera.incompleteWindows()).toEqual(atT0);
    expect(atT0.map((w) => [w.feature, w.window, w.from, w.to])).toEqual(
      [
        ['user.total', '1d', iso(T0 - DAY - 20 * 60_000 + HOUR), iso(Date.UTC(2026, 2, 10, 11))],
        [
          'user.total',
          '7d',
          iso(T0 - 7 * DAY - 20 * 60_000 + HOUR),
          iso(Date.UTC(2026, 2, 10, 11)),
        ],
      ].map(([f, w, , to]) => [f, w, expect.any(String), to]),
    );
    for (const w of atT0) {
      expect(w.fromMs).toBe(
        Math.floor((T0 - (w.window === '1d' ? DAY : 7 * DAY) + 1) / HOUR) * HOUR,
      );
    }
    tessera.close();

    // Later the same day: a backfill with the default bounds reaches the complete point.
    const T1 = T0 + 3 * HOUR;
    tessera = Tessera.open({
      path,
      features: [narrow.User, narrow.Transaction],
      batchResolvers: [narrow.history],
      clock: T1,
    });
    expect(tessera.openReport.newSeries).toEqual([]);
    await tessera.backfill({ features: ['user.total'] });
    expect(tessera.incompleteWindows()).toEqual([]);
    expect(
      renderOpenReport({ ...tessera.openReport, needsBackfill: tessera.incompleteWindows() }),
    ).not.toContain('needs a backfill');
    const { rows } = tessera.query({
      input: { 'user.id': [1, 2, 3, 4, 5] },
      output: ['user.total_7d'],
      now: T1,
    });
    // The rows end before T1's bucket, so every row the window reads was backfilled.
    expect(rows.map((r) => r.values[0])).toEqual(
      [1, 2, 3, 4, 5].map((u) => expectedSum(u, 7 * DAY, T1)),
    );
    tessera.close();
  });

  it('a widened window keeps its series, incomplete before what the old retention kept until aggregate backfill without --feature fills it', async () => {
    const T2 = T0 + 6 * HOUR;
    const wide = coverageModule(true);
    let tessera = Tessera.open({
      path,
      features: [wide.User, wide.Transaction],
      batchResolvers: [wide.history],
      clock: T2,
    });
    expect(tessera.openReport.newSeries).toEqual([]);
    expect(tessera.openReport.orphanedSeries).toEqual([]);
    expect(tessera.openReport.changedSeries.map((c) => [c.added, c.retired, c.widened])).toEqual([
      [[], [], [{ bucket: '1h', from: '7d', to: '30d' }]],
    ]);
    // At 16:20 the 7d retention (plus one bucket) had kept the buckets from 15:00 seven
    // days before (docs/semantics.md section 5.4); the 1d window reads none older.
    const kept = iso(Date.UTC(2026, 2, 3, 15));
    const before = tessera.incompleteWindows();
    expect(before.map((w) => [w.feature, w.window, w.to])).toEqual([['user.total', '30d', kept]]);
    expect(tessera.openReport.needsBackfill).toEqual(before);
    expect(renderOpenReport(tessera.openReport)).toContain(
      `user.total (30d) needs a backfill from ${before[0]?.from} to ${kept}`,
    );
    expect(renderOpenReport(tessera.openReport)).toContain(
      'retention of 1h buckets widened from 7d to 30d',
    );
    // The 1d window kept its buckets.
    const { rows: kept1d } = tessera.query({
      input: { 'user.id': [1, 2, 3, 4, 5] },
      output: ['user.total_1d'],
      now: T0 + 3 * HOUR,
    });
    expect(kept1d.map((r) => r.values[0])).toEqual(
      [1, 2, 3, 4, 5].map((u) => expectedSum(u, DAY, T0 + 3 * HOUR)),
    );
    tessera.close();

    const out: string[] = [];
    const err: string[] = [];
    const module = fileURLToPath(new URL('./fixtures/coverage-wide.ts', import.meta.url));
    const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t), cwd: dir };
    // Two hours on, the default upper bound (18:00) reaches the complete point (17:00).
    const later = iso(T2 + 2 * HOUR);
    expect(
      await main(
        ['aggregate', 'backfill', '--features', module, '--path', path, '--clock', later, '--json'],
        io,
      ),
    ).toBe(0);
    expect(err.filter((l) => l.includes('needs a backfill'))).toEqual([
      `user.total (30d) needs a backfill from ${iso(Math.floor((T2 + 2 * HOUR - 30 * DAY + 1) / HOUR) * HOUR)} to ${kept}`,
    ]);
    const report = JSON.parse(out.join('\n')) as { features: string[]; rows: number };
    expect(report.features).toEqual(['user.total']);
    // Done: a second run finds nothing to do.
    out.length = 0;
    expect(
      await main(
        ['aggregate', 'backfill', '--features', module, '--path', path, '--clock', later],
        io,
      ),
    ).toBe(0);
    expect(out).toEqual(['Every feature window is complete: nothing needs a backfill.']);

    tessera = Tessera.open({
      path,
      features: [wide.User, wide.Transaction],
      batchResolvers: [wide.history],
    });
    tessera.setClock(T2 + 2 * HOUR);
    expect(tessera.openReport.needsBackfill).toEqual([]);
    // At the clock the CLI ran with: the window starts where the backfill did.
    const now = T2 + 2 * HOUR;
    const { rows } = tessera.query({
      input: { 'user.id': [1, 2, 3, 4, 5] },
      output: ['user.total_30d'],
      now,
    });
    expect(rows.map((r) => r.values[0])).toEqual(
      [1, 2, 3, 4, 5].map((u) => expectedSum(u, 30 * DAY, now)),
    );
    tessera.close();
  });
});
