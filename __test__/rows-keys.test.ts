/**
 * Every group key the conversion path (`ts/rows/`) accepts is stored exactly: it reads
 * back the value written. String keys up to the key format's limit (in UTF-8 bytes, so
 * multi-byte characters count as such), integer keys to +/-(2^53 - 1), composite keys up
 * to the format's byte budget; the first byte past a limit is refused and nothing of its
 * batch is written.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { InvalidRowsError } from '../ts/api/errors.js';
import { datetime, features, float, hasMany, int, string, windowed } from '../ts/dsl/index.js';
import { GROUP_KEY_FORMAT, MAX_STRING_KEY_BYTES } from '../ts/rows/keys.js';
import { Tessera } from '../ts/tessera.js';

const NOW = Date.UTC(2026, 0, 31, 12);
const TS = '2026-01-31T11:00:00Z';

const Payment = features('payment', {
  user_id: string().references('user.id'),
  bank: string(),
  acct: int(),
  amount: float(),
  ts: datetime().featureTime(),
});

const User = features(
  'user',
  {
    id: string(),
    bank: string(),
    acct: int(),
    payments: hasMany(() => Payment),
    bank_payments: hasMany(
      () => Payment,
      (p) => p.user_id.eq(User.id).and(p.bank.eq(User.bank)),
    ),
    acct_payments: hasMany(
      () => Payment,
      (p) => p.acct.eq(User.acct),
    ),
  },
  (user) => ({
    total: windowed('1d', {
      materialization: { bucketDuration: '1h' },
      expression: user.payments.select((p) => p.amount).sum(),
      default: 0,
    }),
    bank_total: windowed('1d', {
      materialization: { bucketDuration: '1h' },
      expression: user.bank_payments.select((p) => p.amount).sum(),
      default: 0,
    }),
    acct_total: windowed('1d', {
      materialization: { bucketDuration: '1h' },
      expression: user.acct_payments.select((p) => p.amount).sum(),
      default: 0,
    }),
  }),
);

const dirs: string[] = [];
const stores: Tessera[] = [];
function open(): Tessera {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-keys-'));
  dirs.push(dir);
  const tessera = Tessera.open({ path: dir, features: [User, Payment] });
  tessera.setClock(NOW);
  stores.push(tessera);
  return tessera;
}

afterEach(() => {
  for (const t of stores.splice(0)) t.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');
const header = GROUP_KEY_FORMAT.stringPartHeaderBytes;

/** Strings of exactly `bytes` UTF-8 bytes, built from 1-, 2-, 3- and 4-byte characters. */
function stringsOf(bytes: number): string[] {
  const out: string[] = [];
  for (const [char, width] of [
    ['k', 1],
    ['é', 2],
    ['€', 3],
    ['😀', 4],
  ] as const) {
    const s = char.repeat(Math.floor(bytes / width)) + 'k'.repeat(bytes % width);
    expect(utf8(s)).toBe(bytes);
    out.push(s);
  }
  return out;
}

describe('every key the conversion path accepts reads back what was written', () => {
  it('derives its limits from the store: a two-byte key length', () => {
    expect(GROUP_KEY_FORMAT).toEqual({
      maxBytes: 65_535,
      intPartBytes: 9,
      stringPartHeaderBytes: 5,
    });
    expect(MAX_STRING_KEY_BYTES).toBe(65_530);
  });

  it('string keys up to the limit, and the first byte past it refused', () => {
    const tessera = open();
    const keys = [
      'u',
      '',
      'é',
      '😀',
      ...stringsOf(1000),
      ...stringsOf(MAX_STRING_KEY_BYTES - 1),
      ...stringsOf(MAX_STRING_KEY_BYTES),
    ];
    // Distinct amounts per key, so a key that read another's bucket would show. No bank:
    // the (user_id, bank) key is null, so each string is a one-part key.
    const rows = keys.map((user_id, i) => ({
      user_id,
      bank: null,
      acct: i,
      amount: i + 1,
      ts: TS,
    }));
    tessera.ingest(Payment, rows);
    const { rows: read } = tessera.query({
      input: { 'user.id': keys },
      output: [User.total['1d']] as const,
      now: NOW,
    });
    expect(read.map((r) => r.values[0])).toEqual(keys.map((_, i) => i + 1));

    for (const past of stringsOf(MAX_STRING_KEY_BYTES + 1)) {
      expect(() =>
        tessera.ingest(Payment, [
          { user_id: 'fine', bank: null, acct: 1, amount: 5, ts: TS },
          { user_id: past, bank: null, acct: 1, amount: 5, ts: TS },
        ]),
      ).toThrow(
        `payment row 1: user_id is a string of ${MAX_STRING_KEY_BYTES + 1} UTF-8 bytes; a group key string holds at most ${MAX_STRING_KEY_BYTES}`,
      );
    }
    const after = tessera.query({
      input: { 'user.id': ['fine', ...stringsOf(MAX_STRING_KEY_BYTES + 1)] },
      output: [User.total['1d']] as const,
      now: NOW,
    });
    expect(after.rows.map((r) => r.values[0])).toEqual([0, 0, 0, 0, 0]);
  });

  it('integer keys to +/-(2^53 - 1), and a fraction or 2^53 refused', () => {
    const tessera = open();
    const accts = [
      0,
      -0,
      1,
      -1,
      2 ** 31,
      -(2 ** 31) - 1,
      2 ** 32,
      Number.MAX_SAFE_INTEGER,
      Number.MIN_SAFE_INTEGER,
      Number.MAX_SAFE_INTEGER - 1,
    ];
    tessera.ingest(Payment, {
      user_id: accts.map(() => 'u'),
      bank: accts.map(() => 'b'),
      acct: Float64Array.from(accts),
      amount: Float64Array.from(accts, (_, i) => i + 1),
      ts: accts.map(() => TS),
    });
    const { rows } = tessera.query({
      input: { 'user.acct': accts.slice(1) },
      output: [User.acct_total['1d']] as const,
      now: NOW,
    });
    // 0 and -0 are one key.
    expect(rows.map((r) => r.values[0])).toEqual([3, 3, 4, 5, 6, 7, 8, 9, 10]);
    for (const bad of [2 ** 53, -(2 ** 53), 0.5]) {
      expect(() =>
        tessera.ingest(Payment, [{ user_id: 'u', bank: 'b', acct: bad, amount: 1, ts: TS }]),
      ).toThrow(/acct is .*, not a whole number within 2\^53 \(int\)/);
    }
  });

  it('composite keys to the byte budget, and one byte more refused', () => {
    const tessera = open();
    const budget = GROUP_KEY_FORMAT.maxBytes;
    const pairs: [string, string][] = [
      ['u', 'b'],
      ['😀', 'é'],
      ['u', 'k'.repeat(budget - 2 * header - 1)],
      ['k'.repeat(budget - 2 * header - 4), '😀'],
      ['é'.repeat(16_000), 'k'.repeat(budget - 2 * header - 32_000)],
    ];
    for (const [id, bank] of pairs) {
      expect(header + utf8(id) + header + utf8(bank)).toBeLessThanOrEqual(budget);
    }
    const rows = pairs.map(([user_id, bank], i) => ({
      user_id,
      bank,
      acct: i,
      amount: 10 * (i + 1),
      ts: TS,
    }));
    tessera.ingest(Payment, rows);
    const { rows: read } = tessera.query({
      input: { 'user.id': pairs.map((p) => p[0]), 'user.bank': pairs.map((p) => p[1]) },
      output: [User.bank_total['1d']] as const,
      now: NOW,
    });
    expect(read.map((r) => r.values[0])).toEqual(pairs.map((_, i) => 10 * (i + 1)));

    // At exactly the budget, and one byte past it.
    const exact = 'k'.repeat(budget - 2 * header - 1);
    expect(header + 1 + header + utf8(exact)).toBe(budget);
    const error = (() => {
      try {
        tessera.ingest(Payment, [{ user_id: 'v', bank: `${exact}k`, acct: 1, amount: 1, ts: TS }]);
      } catch (e) {
        return e as InvalidRowsError;
      }
      return null;
    })();
    expect(error?.problem).toBe(
      `user_id+bank is a group key of ${budget + 1} bytes as the store encodes it; a group key holds at most ${budget} (9 per integer part, 5 plus the UTF-8 bytes per string part)`,
    );
    const refused = tessera.query({
      input: { 'user.id': ['v'] },
      output: [User.total['1d']] as const,
      now: NOW,
    });
    expect(refused.rows[0]?.values).toEqual([0]);
  });

  it('the store itself refuses a key past the format, whoever calls it', () => {
    const tessera = open();
    const series = tessera.plan.series.find((s) => s.groupKey.join('+') === 'user_id');
    if (series === undefined) throw new Error('no series by user_id');
    const batch = (key: string) => [
      {
        seriesId: series.id,
        keys: [{ strings: [key], codes: Uint32Array.of(0) }],
        timestampsMs: Float64Array.of(Date.parse(TS)),
        numbers: Float64Array.of(1),
      },
    ];
    expect(() => tessera.engine.stage(batch('k'.repeat(MAX_STRING_KEY_BYTES + 1)))).toThrow(
      `series '${series.id}': the group key at row 0 encodes to ${GROUP_KEY_FORMAT.maxBytes + 1} bytes; a group key holds at most ${GROUP_KEY_FORMAT.maxBytes}`,
    );
    expect(() => tessera.engine.stage(batch('k'.repeat(MAX_STRING_KEY_BYTES)))).not.toThrow();
  });
});
