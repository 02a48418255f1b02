/**
 * Offline tiles (docs/semantics.md section 11.2): a backfill writes Parquet tiles of its
 * buckets, and `useTileStore` point reads merge them. From the same run, tiles answer
 * every point exactly as the materialized read of the store does, and keep answering
 * once retention has removed the store's buckets; a window no tile covers is an error
 * naming the output, the rule and the range; a scheduled offline backfill adds one tile
 * per run; DuckDB reads the tiles directly.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../ts/cli/main.js';
import { seededRandom } from '../ts/cli/seeded-random.js';
import {
  features,
  hasMany,
  InvalidQueryError,
  int,
  makeBatchResolver,
  ScheduledAggregateBackfill,
  Tessera,
  windowed,
} from '../ts/index.js';
import { Transaction } from './fixtures/transactions.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const START = Date.UTC(2026, 6, 1);
/** The origin of the `visits` buckets: days start at 06:00. */
const ORIGIN = Date.UTC(2026, 0, 1, 6);
const USERS = 25;

const User = features(
  'user',
  { id: int().primary(), transactions: hasMany(() => Transaction) },
  (user) => ({
    spend: windowed('1d', '3d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).sum(),
    }),
    visits: windowed('7d', {
      materialization: { bucketDuration: '1d', bucketStart: new Date(ORIGIN) },
      expression: user.transactions.count(),
      default: 0,
    }),
    distinct: windowed('2d', {
      materialization: { bucketDuration: '1d' },
      expression: user.transactions.select((t) => t.amount).approxCountDistinct(),
    }),
  }),
);

type Txn = { id: number; user_id: number; amount: number | null; ts: number };

function history(seed: number, rows: number, days: number): Txn[] {
  const random = seededRandom(seed);
  return Array.from({ length: rows }, (_, i) => ({
    id: i + 1,
    user_id: 1 + Math.floor(random() * USERS),
    amount: random() < 0.08 ? null : Math.round(random() * 20_000) / 100,
    ts: START + Math.floor(random() * days * DAY),
  }));
}

function resolverOf(txns: readonly Txn[]) {
  return makeBatchResolver({
    name: 'history',
    output: Transaction,
    // Batches of 200 rows, so that a small spill size spills several times.
    rows: function* (run) {
      const inside = txns.filter((r) => r.ts >= run.lowerBoundMs && r.ts < run.upperBoundMs);
      for (let i = 0; i < inside.length; i += 200) yield inside.slice(i, i + 200);
    },
  });
}

const dir = mkdtempSync(join(tmpdir(), 'tessera-tiles-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Manifest {
  format: number;
  tiles: {
    sequence: number;
    seriesId: string;
    bucketSizeMs: number;
    startMs: number;
    endMs: number;
    files: string[];
    rows: number;
  }[];
}

const manifestOf = (tileDir: string): Manifest =>
  JSON.parse(readFileSync(join(tileDir, 'tiles.json'), 'utf8')) as Manifest;

describe('offline tiles', () => {
  it('answer every point as the store does, and still do once retention removed the buckets', async () => {
    const random = seededRandom(21);
    const txns = history(4, 3000, 12);
    const clock = START + 12 * DAY + 20 * 60_000;
    const tessera = Tessera.open({
      path: join(dir, 'same'),
      features: [User, Transaction],
      batchResolvers: [resolverOf(txns)],
      clock,
    });
    try {
      const report = await tessera.backfill({
        features: ['user.spend', 'user.visits', 'user.distinct'],
        target: 'both',
        lowerBound: START - DAY,
        upperBound: clock,
        spillBuckets: 500,
      });
      expect(report.target).toBe('both');
      expect(report.tileDirectory).toBe(join(dir, 'same', 'tiles'));
      // One tile per layout (1h spend, 1d visits from 06:00, 1d distinct), each written
      // over several spills.
      expect(report.native.tilesWritten).toBe(3);
      expect(report.native.spills).toBeGreaterThan(3);
      // Points whose windows stay inside retention at the clock (a layout keeps its
      // largest window and one bucket): the last 50 minutes for the hourly spend (3d
      // kept), the last 22 hours for the daily layouts; on bucket edges and inside.
      const groups = [
        { output: [User.spend['1d'], User.spend['3d']], span: 50 * 60_000 },
        { output: [User.visits['7d'], User.distinct['2d']], span: 22 * HOUR },
      ];
      const asks = groups.map(({ output, span }) => {
        const points = Array.from({ length: 200 }, (_, i) => ({
          user: 1 + Math.floor(random() * (USERS + 2)),
          t: i % 5 === 0 ? Math.floor(clock / HOUR) * HOUR : clock - Math.floor(random() * span),
        }));
        return (useTileStore: boolean) =>
          tessera.offlineQuery({
            input: { 'user.id': points.map((p) => p.user) },
            inputTimes: points.map((p) => p.t),
            output,
            plannerOptions: { useMaterializedOfflineQuery: true, useTileStore },
            explain: true,
          });
      });
      for (const ask of asks) {
        const fromStore = await ask(false);
        const fromTiles = await ask(true);
        expect(fromTiles.rows).toEqual(fromStore.rows);
        const values = fromStore.rows.flatMap((r) => r.values);
        expect(values.filter((v) => v !== null && v !== 0).length).toBeGreaterThan(250);

        // Forty days on, retention removed those buckets from the store; the tiles
        // answer the same points with the same values.
        tessera.setClock(clock + 40 * DAY);
        await expect(ask(false)).rejects.toThrow(/which retention removed/);
        expect((await ask(true)).rows).toEqual(fromStore.rows);
        tessera.setClock(clock);
      }
    } finally {
      tessera.close();
    }
  });

  it('refuse a window no tile covers, naming the output, the rule and the range', async () => {
    const txns = history(8, 400, 6);
    const tileDir = join(dir, 'shared-tiles');
    const tessera = Tessera.open({
      path: join(dir, 'gap'),
      features: [User, Transaction],
      batchResolvers: [resolverOf(txns)],
      tileDirectory: tileDir,
      clock: START + 20 * DAY,
    });
    try {
      await expect(
        tessera.backfill({ features: ['user.visits'], target: 'offline', lowerBound: START }),
      ).rejects.toThrow(
        "backfill: target 'offline' writes offline tiles of a range given whole: upperBound is required (or afterTiles)",
      );
      await expect(
        tessera.backfill({ features: ['user.visits'], allowEmptyTiles: true }),
      ).rejects.toThrow(
        "backfill: allowEmptyTiles applies to offline tiles; give target 'offline' or 'both'",
      );
      const report = await tessera.backfill({
        features: ['user.visits'],
        target: 'offline',
        lowerBound: START + DAY,
        upperBound: START + 5 * DAY,
      });
      expect(report.tileDirectory).toBe(tileDir);
      // The store holds nothing of an offline run.
      const online = tessera.query({
        input: { 'user.id': [1, 2, 3] },
        output: [User.visits['7d']],
        now: START + 5 * DAY,
      });
      expect(online.rows.map((r) => r.values[0])).toEqual([0, 0, 0]);
      // Tiles of 06:00 days from 2026-07-01T06:00 (the day holding the lower bound)
      // to 2026-07-05T06:00: a 7d window ending at 2026-07-05T06:00 starts on 06-28.
      const ask = (t: number) =>
        tessera.offlineQuery({
          input: { 'user.id': [1, 2] },
          inputTimes: [START + 4 * DAY + 7 * HOUR, t],
          output: [User.visits['7d']],
          plannerOptions: { useMaterializedOfflineQuery: true, useTileStore: true },
        });
      await expect(ask(START + 3 * DAY)).rejects.toThrow(
        new InvalidQueryError(
          `offline query: user.visits__604800__ (rule count per 1d of transaction.* by user_id) at 2026-07-05T07:00:00.000Z (input row 0) needs buckets from 2026-06-28T06:00:00.000Z to 2026-07-01T06:00:00.000Z, which no offline tile in ${tileDir} covers; 2 values of this query reach uncovered buckets (write tiles with tessera aggregate backfill --store-offline)`,
        ),
      );
      // A second tile reaching further back closes the gap; its values are the rows'.
      await tessera.backfill({
        features: ['user.visits'],
        target: 'offline',
        lowerBound: START - 7 * DAY,
        upperBound: START + 2 * DAY,
      });
      const t = START + 4 * DAY + 7 * HOUR;
      const answer = await ask(t);
      const edge = ORIGIN + Math.floor((t - ORIGIN) / DAY) * DAY;
      const from = edge - 7 * DAY;
      for (const [i, user] of [1, 2].entries()) {
        const want = txns.filter((r) => r.user_id === user && r.ts >= from && r.ts < edge).length;
        expect(answer.rows[i]?.values[0], `user ${user}`).toBe(want);
      }
    } finally {
      tessera.close();
    }
  });

  it('a scheduled offline backfill adds one tile per run, and DuckDB reads them', async () => {
    const txns = history(12, 2000, 10);
    let now = START + 3 * DAY + 2 * HOUR;
    const job = ScheduledAggregateBackfill({
      name: 'daily_visit_tiles',
      features: ['user.visits'],
      schedule: '1d',
      target: 'offline',
      lowerBound: START,
    });
    const tessera = Tessera.open({
      path: join(dir, 'scheduled'),
      features: [User, Transaction],
      batchResolvers: [resolverOf(txns)],
      scheduledBackfills: [job],
      clock: now,
    });
    try {
      const scheduler = tessera.scheduleWith({ clock: () => now });
      await scheduler.tick(); // registers the job
      const tileDir = tessera.tileDirectory;
      let ends: number[] = [];
      for (let day = 0; day < 4; day++) {
        now += DAY;
        tessera.setClock(now);
        await scheduler.tick();
        const tiles = manifestOf(tileDir).tiles;
        // One new tile per run, starting where the last one ended.
        expect(tiles).toHaveLength(day + 1);
        const tile = tiles.at(-1);
        const edge = ORIGIN + Math.floor((now - ORIGIN) / DAY) * DAY;
        expect(tile?.endMs).toBe(edge);
        if (day === 0)
          expect(tile?.startMs).toBe(ORIGIN + Math.floor((START - ORIGIN) / DAY) * DAY);
        else expect(tile?.startMs).toBe(ends.at(-1));
        if (day > 0) expect((tile?.endMs ?? 0) - (tile?.startMs ?? 0)).toBe(DAY);
        ends = tiles.map((x) => x.endMs);
      }
      const runs = tessera.engine.backfillRuns('daily_visit_tiles');
      expect(runs.filter((r) => r.status === 'COMPLETED')).toHaveLength(4);

      // DuckDB reads the tiles as they are: one row per (rule, key, bucket).
      const db = await DuckDBInstance.create(':memory:');
      const sql = await db.connect();
      try {
        const reader = await sql.runAndReadAll(
          `SELECT series, bucket_ms, rule, key, bucket_start, octet_length(state) AS bytes
           FROM read_parquet('${tileDir}/**/*.parquet', hive_partitioning = false)
           ORDER BY bucket_start, key`,
        );
        const rows = reader.getRowObjectsJS();
        const manifest = manifestOf(tileDir);
        expect(rows).toHaveLength(manifest.tiles.reduce((n, t) => n + t.rows, 0));
        const series = manifest.tiles[0]?.seriesId;
        for (const row of rows) {
          expect(row.series).toBe(series);
          expect(Number(row.bucket_ms)).toBe(DAY);
          expect(row.rule).toBe('{"kind":"count"}');
          expect(Number(row.bytes)).toBeGreaterThan(0);
        }
        // A (key, bucket) of the tiles holds the rows of that user in that 06:00 day.
        const first = rows[0] as { key: string; bucket_start: Date };
        const start = first.bucket_start.getTime();
        expect(
          txns.some((r) => String(r.user_id) === first.key && r.ts >= start && r.ts < start + DAY),
        ).toBe(true);
      } finally {
        sql.closeSync();
        db.closeSync();
      }
    } finally {
      tessera.close();
    }
  });

  it('aggregate backfill --store-offline needs both bounds', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(
      [
        'aggregate',
        'backfill',
        '--features',
        join(import.meta.dirname, 'fixtures', 'transactions.ts'),
        '--path',
        join(dir, 'cli'),
        '--store-offline',
        '--lower-bound',
        '2026-07-01T00:00:00Z',
      ],
      { out: (s) => out.push(s), err: (s) => err.push(s), cwd: dir },
    );
    expect(code).toBe(2);
    expect(err.join('\n')).toContain(
      '--store-offline writes tiles of a range given whole: --upper-bound <ISO time> is required',
    );
  });
});
