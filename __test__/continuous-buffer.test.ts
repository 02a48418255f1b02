/**
 * Continuous buffers (docs/semantics.md section 9.6), against an oracle that applies the
 * documented rule to the raw rows: with no buffer a window is served from its buckets;
 * with a buffer reaching the filled buckets, from the buckets before the most recently
 * filled one plus the raw rows from that bucket's start to now; with a buffer shorter
 * than the gap, from the filled buckets plus the raw rows of the last `buffer`, the gap
 * having no data. Random histories, random query times, several keys per query.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../ts/cli/seeded-random.js';
import {
  features,
  hasMany,
  InvalidOptionError,
  InvalidQueryError,
  int,
  makeBatchResolver,
  makeOnlineResolver,
  type OnlineRowsRequest,
  Tessera,
  windowed,
} from '../ts/index.js';
import { Transaction } from './fixtures/transactions.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const START = Date.UTC(2026, 4, 1);
const dir = mkdtempSync(join(tmpdir(), 'tessera-buffer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Row = { id: number; user_id: number; amount: number; ts: number };

const User = features(
  'user',
  { id: int().primary(), transactions: hasMany(() => Transaction) },
  (user) => {
    const amount = () => user.transactions.select((t) => t.amount);
    const hourly = (buffer?: string) => ({
      bucketDuration: '1h',
      ...(buffer === undefined ? {} : { continuousBufferDuration: buffer }),
    });
    return {
      total: windowed('1d', '2d', { materialization: hourly(), expression: amount().sum() }),
      total_short: windowed('1d', '2d', {
        materialization: hourly('2h'),
        expression: amount().sum(),
      }),
      total_long: windowed('1d', '2d', {
        materialization: hourly('9h'),
        expression: amount().sum(),
      }),
      count_long: windowed('1d', { materialization: hourly('9h'), expression: amount().count() }),
      largest_short: windowed('1d', { materialization: hourly('2h'), expression: amount().max() }),
    };
  },
);

type Case = 'none' | 'short' | 'long';

/**
 * The documented answer of a window `W` at `now` over hourly buckets, with `buffer` (0:
 * none): the rows the stored buckets hold that the window reads, plus the raw rows of
 * the buffer's range. `stored` are the rows in the store (backfilled, then streamed);
 * `raw` the rows the online resolver knows; `filledUntil` where the backfill ended.
 */
function oracle(
  stored: readonly Row[],
  raw: readonly Row[],
  user: number,
  windowMs: number,
  now: number,
  bufferMs: number,
  filledUntil: number,
): { rows: Row[]; kind: Case } {
  const first = Math.floor((now - windowMs + 1) / HOUR) * HOUR;
  const holdingNow = Math.floor(now / HOUR) * HOUR;
  const inWindow = (r: Row, from: number, to: number) =>
    r.user_id === user && r.ts >= from && r.ts < to;
  if (bufferMs === 0) {
    return { rows: stored.filter((r) => inWindow(r, first, holdingNow + HOUR)), kind: 'none' };
  }
  const filled = Math.min(filledUntil, holdingNow + HOUR);
  if (now - bufferMs <= filled) {
    const lastFilled = filled - HOUR;
    return {
      rows: [
        ...stored.filter((r) => inWindow(r, first, lastFilled)),
        ...raw.filter((r) => inWindow(r, Math.max(lastFilled, first), now + 1)),
      ],
      kind: 'long',
    };
  }
  return {
    rows: [
      ...stored.filter((r) => inWindow(r, first, filled)),
      ...raw.filter((r) => inWindow(r, Math.max(now - bufferMs + 1, first), now + 1)),
    ],
    kind: 'short',
  };
}

describe('continuous buffers', () => {
  it('serves each case of the buffer rule, equal to the oracle, with explanations', async () => {
    const random = seededRandom(20261204);
    const users = [1, 2, 3, 4, 5, 6];
    // 4 days of history; a backfill fills the first 3 days (its end on an hour edge).
    const history: Row[] = Array.from({ length: 1500 }, (_, i) => ({
      id: i + 1,
      user_id: users[Math.floor(random() * users.length)] as number,
      amount: Math.round(random() * 10_000) / 100,
      ts: START + Math.floor(random() * 4 * DAY),
    }));
    const filledUntil = START + 3 * DAY;
    const backfilled = history.filter((r) => r.ts < filledUntil);
    // Rows a stream wrote after the backfill's end: buffered windows never read their
    // buckets (the buffer serves that part), the unbuffered ones do.
    const streamed = history.filter((r) => r.ts >= filledUntil && r.id % 3 === 0);
    const requests: OnlineRowsRequest[] = [];
    const online = makeOnlineResolver({
      name: 'recent_transactions',
      output: Transaction,
      // Returns every row it knows, of every key and time: the engine keeps the rows of
      // each read's key and range.
      rows: async (request) => {
        requests.push(request);
        return history.map((r) => ({ ...r, ts: new Date(r.ts) }));
      },
    });
    const batch = makeBatchResolver({
      name: 'history',
      output: Transaction,
      rows: (run) => [
        backfilled.filter((r) => r.ts >= run.lowerBoundMs && r.ts < run.upperBoundMs),
      ],
    });
    const tessera = Tessera.open({
      path: join(dir, 'cases'),
      features: [User, Transaction],
      batchResolvers: [batch],
      onlineResolvers: [online],
      clock: START + 4 * DAY,
    });
    try {
      await tessera.backfill({
        features: [User.total, User.count_long, User.largest_short],
        lowerBound: new Date(START),
        upperBound: new Date(filledUntil),
      });
      tessera.ingest(Transaction, streamed);
      const stored = [...backfilled, ...streamed];

      const outputs = [
        [User.total['1d'], 0, 'sum'],
        [User.total['2d'], 0, 'sum'],
        [User.total_short['1d'], 2 * HOUR, 'sum'],
        [User.total_short['2d'], 2 * HOUR, 'sum'],
        [User.total_long['1d'], 9 * HOUR, 'sum'],
        [User.total_long['2d'], 9 * HOUR, 'sum'],
        [User.count_long['1d'], 9 * HOUR, 'count'],
        [User.largest_short['1d'], 2 * HOUR, 'max'],
      ] as const;
      const seen = new Set<Case>();
      // Query times from inside the last filled bucket to 20 hours past the filled end.
      const times = [
        filledUntil - HOUR / 2,
        filledUntil,
        filledUntil + 1,
        filledUntil + 90 * 60_000,
        ...Array.from({ length: 12 }, () => filledUntil + Math.floor(random() * 20 * HOUR)),
      ];
      for (const now of times) {
        requests.length = 0;
        // Retention is judged by the engine clock: queried at its own time, every window
        // is inside it.
        tessera.setClock(now);
        const result = await tessera.queryAsync({
          input: { 'user.id': [...users, 99] },
          output: outputs.map((o) => o[0]),
          now,
          explain: true,
        });
        // One resolver call for the query, from the earliest raw row any read needs to now.
        expect(requests).toHaveLength(1);
        expect(requests[0]?.keys).toEqual({ user_id: [...users, 99] });
        expect(requests[0]?.upperBoundMs).toBe(now);
        for (const [row, user] of [...users, 99].entries()) {
          for (const [j, [, bufferMs, agg]] of outputs.entries()) {
            const windowMs = outputs[j]?.[0].windowMs ?? 0;
            const { rows, kind } = oracle(
              stored,
              history,
              user,
              windowMs,
              now,
              bufferMs,
              filledUntil,
            );
            seen.add(kind);
            const amounts = rows.map((r) => r.amount);
            const expected =
              agg === 'count'
                ? amounts.length
                : amounts.length === 0
                  ? null
                  : agg === 'max'
                    ? Math.max(...amounts)
                    : amounts.reduce((a, b) => a + b, 0);
            const value = result.rows[row]?.values[j];
            const where = `user ${user}, ${outputs[j]?.[0].canonical} at ${new Date(now).toISOString()} (${kind})`;
            if (typeof expected === 'number' && typeof value === 'number') {
              expect(value, where).toBeCloseTo(expected, 6);
            } else {
              expect(value, where).toBe(expected);
            }
            const explanation = result.rows[row]?.explanations?.[j];
            if (bufferMs === 0) {
              expect(explanation?.buffer, where).toBeUndefined();
              continue;
            }
            const buffer = explanation?.buffer;
            expect(buffer?.bufferMs, where).toBe(bufferMs);
            expect(buffer?.filledUntil?.getTime(), where).toBe(filledUntil);
            expect(buffer?.rawTo.getTime(), where).toBe(now);
            const first = Math.floor((now - windowMs + 1) / HOUR) * HOUR;
            const rawFrom = buffer?.rawFrom.getTime() ?? Number.NaN;
            expect(buffer?.rawRows, where).toBe(
              history.filter((r) => r.user_id === user && r.ts >= rawFrom && r.ts <= now).length,
            );
            if (kind === 'short') {
              const filled = Math.min(filledUntil, Math.floor(now / HOUR) * HOUR + HOUR);
              expect(rawFrom, where).toBe(Math.max(now - bufferMs + 1, first));
              expect(buffer?.gap, where).toEqual({
                from: new Date(Math.max(filled, first)),
                to: new Date(rawFrom),
              });
            } else {
              expect(buffer?.gap, where).toBeNull();
            }
          }
        }
      }
      expect([...seen].sort()).toEqual(['long', 'none', 'short']);
    } finally {
      tessera.close();
    }
  });

  it('reads raw rows through the batch resolvers when the class has no online resolver', async () => {
    const now = START + 2 * DAY + 5 * HOUR + 17 * 60_000;
    const rows: Row[] = Array.from({ length: 200 }, (_, i) => ({
      id: i + 1,
      user_id: 1 + (i % 3),
      amount: i + 0.5,
      ts: START + Math.floor((i * 2 * DAY + 6 * HOUR) / 200),
    }));
    const asked: { lowerBoundMs: number; upperBoundMs: number }[] = [];
    const batch = makeBatchResolver({
      name: 'history',
      output: Transaction,
      rows: (run) => {
        asked.push({ lowerBoundMs: run.lowerBoundMs, upperBoundMs: run.upperBoundMs });
        return [rows.filter((r) => r.ts >= run.lowerBoundMs && r.ts < run.upperBoundMs)];
      },
    });
    const tessera = Tessera.open({
      path: join(dir, 'batch'),
      features: [User, Transaction],
      batchResolvers: [batch],
      clock: now,
    });
    try {
      // Filled to 02:00 of day 2; at 05:17 a 9h buffer reaches back past it.
      await tessera.backfill({
        features: [User.total_long],
        lowerBound: new Date(START),
        upperBound: new Date(START + 2 * DAY + 2 * HOUR),
      });
      asked.length = 0;
      const result = await tessera.queryAsync({
        input: { 'user.id': [1, 2, 3] },
        output: [User.total_long['1d']],
        explain: true,
      });
      // The run covers the raw range, its end one past now (a run's end is exclusive).
      expect(asked).toEqual([{ lowerBoundMs: START + 2 * DAY + HOUR, upperBoundMs: now + 1 }]);
      for (const [i, user] of [1, 2, 3].entries()) {
        const first = Math.floor((now - DAY + 1) / HOUR) * HOUR;
        const expected = rows
          .filter((r) => r.user_id === user && r.ts >= first && r.ts <= now)
          .reduce((s, r) => s + r.amount, 0);
        expect(result.rows[i]?.values[0]).toBeCloseTo(expected, 6);
        expect(result.rows[i]?.explanations?.[0]?.buffer?.rawFrom).toEqual(
          new Date(START + 2 * DAY + HOUR),
        );
      }
    } finally {
      tessera.close();
    }
  });

  it('is refused by the synchronous query, and without any resolver of the class', () => {
    const online = makeOnlineResolver({ name: 'none', output: Transaction, rows: () => [] });
    const tessera = Tessera.open({
      path: join(dir, 'sync'),
      features: [User, Transaction],
      onlineResolvers: [online],
    });
    try {
      expect(() =>
        tessera.query({
          input: { 'user.id': [1] },
          output: [User.total['1d'], User.total_long['1d']],
        }),
      ).toThrow(
        new InvalidQueryError(
          'query: user.total_long__86400__ has a continuous buffer, read from raw rows at query time; use await tessera.queryAsync(...)',
        ),
      );
      // Outputs without a buffer are still served synchronously.
      expect(
        tessera.query({ input: { 'user.id': [1] }, output: [User.total['1d']] }).rows[0]?.values,
      ).toEqual([null]);
    } finally {
      tessera.close();
    }
    expect(() => Tessera.open({ path: join(dir, 'none'), features: [User, Transaction] })).toThrow(
      InvalidOptionError,
    );
    expect(() => Tessera.open({ path: join(dir, 'none'), features: [User, Transaction] })).toThrow(
      /user\.total_short: materialization\.continuousBufferDuration reads raw rows of transaction at query time, and no resolver reads them/,
    );
  });

  it('fails the query naming the resolver, row and column of a bad raw row', async () => {
    const online = makeOnlineResolver({
      name: 'recent',
      output: Transaction,
      rows: () => [
        { id: 1, user_id: 1, amount: 3, ts: START },
        { id: 2, user_id: 1, amount: 'lots', ts: START },
      ],
    });
    const tessera = Tessera.open({
      path: join(dir, 'bad'),
      features: [User, Transaction],
      onlineResolvers: [online],
      clock: START + HOUR,
    });
    try {
      await expect(
        tessera.queryAsync({ input: { 'user.id': [1] }, output: [User.total_short['1d']] }),
      ).rejects.toThrow(
        "continuous buffer of user.total_short__86400__: online resolver recent row 1: amount is 'lots', not a number (float)",
      );
    } finally {
      tessera.close();
    }
  });
});
