/**
 * Spines from files (docs/semantics.md section 11.1): the keys and times of an offline
 * query read from Parquet and CSV through DuckDB give the same answers as the same keys
 * and times given in memory; bad files are refused naming the column and the row.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../ts/cli/seeded-random.js';
import {
  features,
  hasMany,
  int,
  makeBatchResolver,
  readSpine,
  Tessera,
  windowed,
} from '../ts/index.js';
import { Transaction } from './fixtures/transactions.js';

const DAY = 86_400_000;
const START = Date.UTC(2026, 6, 1);

const User = features(
  'user',
  { id: int().primary(), transactions: hasMany(() => Transaction) },
  (user) => ({
    spend: windowed('2d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).sum(),
      default: 0,
    }),
  }),
);

const dir = mkdtempSync(join(tmpdir(), 'tessera-spine-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('spines from files', () => {
  it('read keys and times from Parquet and CSV as the in-memory input', async () => {
    const random = seededRandom(3);
    const users = Array.from({ length: 500 }, () => 1 + Math.floor(random() * 20));
    const times = Array.from({ length: 500 }, () => START + Math.floor(random() * 5 * DAY));
    const db = await DuckDBInstance.create(':memory:');
    const sql = await db.connect();
    const parquet = join(dir, 'labels.parquet');
    const csv = join(dir, 'labels.csv');
    try {
      await sql.run("SET TimeZone = 'UTC'");
      await sql.run('CREATE TABLE labels (user_id BIGINT, label_time TIMESTAMPTZ, label INTEGER)');
      const values = users
        .map((u, i) => `(${u}, make_timestamp(${times[i]}::BIGINT * 1000), ${i % 2})`)
        .join(', ');
      await sql.run(`INSERT INTO labels VALUES ${values}`);
      await sql.run(`COPY labels TO '${parquet}' (FORMAT parquet)`);
    } finally {
      sql.closeSync();
      db.closeSync();
    }
    writeFileSync(
      csv,
      `user_id,label_time\n${users.map((u, i) => `${u},${new Date(times[i] ?? 0).toISOString()}`).join('\n')}\n`,
    );
    const rows = Array.from({ length: 3000 }, (_, i) => ({
      id: i + 1,
      user_id: 1 + Math.floor(random() * 20),
      amount: Math.round(random() * 10_000) / 100,
      ts: START - DAY + Math.floor(random() * 6 * DAY),
    }));
    const tessera = Tessera.open({
      path: join(dir, 'store'),
      features: [User, Transaction],
      batchResolvers: [
        makeBatchResolver({ name: 'history', output: Transaction, rows: () => [rows] }),
      ],
    });
    try {
      const query = (input: Record<string, readonly (number | string | null)[]>, t: Float64Array) =>
        tessera.offlineQuery({
          input,
          inputTimes: t,
          output: [User.spend['2d']],
        });
      const want = await query({ 'user.id': users }, Float64Array.from(times));
      const fromParquet = await readSpine(parquet, {
        time: 'label_time',
        keys: { 'user.id': 'user_id' },
      });
      expect(fromParquet.input['user.id']).toEqual(users);
      expect([...fromParquet.inputTimes]).toEqual(times);
      const fromCsv = await readSpine(csv, { time: 'label_time', keys: { 'user.id': 'user_id' } });
      expect([...fromCsv.inputTimes]).toEqual(times);
      for (const spine of [fromParquet, fromCsv]) {
        const got = await query(
          spine.input as Record<string, readonly (number | string | null)[]>,
          spine.inputTimes,
        );
        expect(got.rows).toEqual(want.rows);
      }
      expect(want.rows.filter((r) => r.values[0] !== 0).length).toBeGreaterThan(100);
    } finally {
      tessera.close();
    }
  });

  it('refuses a missing column, a bad time type and an inexact integer, naming them', async () => {
    const file = join(dir, 'bad.csv');
    writeFileSync(file, 'user_id,label_time,note\n9007199254740993,2026-07-01T00:00:00Z,x\n');
    await expect(readSpine(file, { time: 'ts' })).rejects.toThrow(
      `readSpine: ${file} has no column ts (it has user_id, label_time, note)`,
    );
    await expect(readSpine(file, { time: 'note' })).rejects.toThrow(
      `readSpine: ${file} column note is VARCHAR; a time column is TIMESTAMP, TIMESTAMPTZ, DATE or Unix ms`,
    );
    await expect(
      readSpine(file, { time: 'label_time', keys: { 'user.id': 'user_id' } }),
    ).rejects.toThrow(
      `readSpine: ${file} row 0: user_id is 9007199254740993, past the integers a key holds exactly (2^53)`,
    );
    await expect(readSpine(join(dir, 'labels.xlsx'), { time: 't' })).rejects.toThrow(
      /is not a .parquet, .csv/,
    );
  });
});
