/**
 * Batch resolvers over Arrow tables (docs/semantics.md section 9.1): an `apache-arrow`
 * Table with 64-bit integer keys, millisecond timestamps and null amounts backfills the
 * same windows as the rows it holds; a key past 2^53 fails the run naming its row.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Float64, Int64, Table, TimestampMillisecond, vectorFromArray } from 'apache-arrow';
import { afterAll, describe, expect, it } from 'vitest';
import { features, hasMany, int, makeBatchResolver, Tessera, windowed } from '../ts/index.js';
import { Transaction } from './fixtures/transactions.js';

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 5, 1, 12);
const dir = mkdtempSync(join(tmpdir(), 'tessera-backfill-arrow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const User = features(
  'user',
  { id: int().primary(), transactions: hasMany(() => Transaction) },
  (user) => ({
    total: windowed('1d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).sum(),
      default: 0,
    }),
    amounts: windowed('1d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).count(),
    }),
  }),
);

function table(users: bigint[], amounts: (number | null)[], times: number[]): Table {
  return new Table({
    id: vectorFromArray(
      users.map((_, i) => BigInt(i + 1)),
      new Int64(),
    ),
    user_id: vectorFromArray(users, new Int64()),
    amount: vectorFromArray(amounts, new Float64()),
    ts: vectorFromArray(
      times.map((t) => new Date(t)),
      new TimestampMillisecond(),
    ),
  });
}

describe('Arrow columns', () => {
  it('backfill the windows of the rows they hold, nulls and 64-bit keys included', async () => {
    const users = [1n, 2n, 1n, 3n, 2n, 1n];
    const amounts = [10, 2.5, null, 4, 1, 7.25];
    const times = [20, 15, 10, 5, 3, 1].map((h) => NOW - h * HOUR);
    const arrow = table(users, amounts, times);
    const tessera = Tessera.open({
      path: join(dir, 'store'),
      features: [User, Transaction],
      batchResolvers: [makeBatchResolver({ name: 'arrow', output: Transaction, columns: arrow })],
      clock: NOW,
    });
    const report = await tessera.backfill({ features: ['user.total'], upperBound: new Date(NOW) });
    expect(report.rows).toBe(6);
    const { rows } = tessera.query({
      input: { 'user.id': [1, 2, 3] },
      output: ['user.total_1d', 'user.amounts_1d'],
      now: NOW - 1,
    });
    const expected = [1, 2, 3].map((u) => {
      const mine = amounts.filter((a, i) => Number(users[i]) === u && a !== null) as number[];
      return [mine.reduce((s, a) => s + a, 0), mine.length];
    });
    expect(rows.map((r) => r.values)).toEqual(expected);
    tessera.close();
  });

  it('a key past 2^53 fails the run naming its row, and applies nothing', async () => {
    const arrow = table([1n, 2n ** 60n], [1, 2], [NOW - 2 * HOUR, NOW - HOUR]);
    const tessera = Tessera.open({
      path: join(dir, 'bad'),
      features: [User, Transaction],
      batchResolvers: [
        makeBatchResolver({ name: 'arrow', output: Transaction, columns: () => arrow }),
      ],
      clock: NOW,
    });
    await expect(
      tessera.backfill({ features: ['user.total'], upperBound: new Date(NOW) }),
    ).rejects.toThrow(/^backfill failed, nothing applied: batch resolver arrow row 1: user_id /);
    const { rows } = tessera.query({
      input: { 'user.id': [1] },
      output: ['user.total_1d'],
      now: NOW - 1,
    });
    expect(rows[0]?.values).toEqual([0]);
    tessera.close();
  });
});
