/**
 * The engine API: open reports, ingest (rows and columns, relevance by `writes`,
 * errors naming class, column and row, deferred commits with positions) and queries
 * (input and output forms, defaults, typed values, explanations, errors).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DefinitionError,
  datetime,
  features,
  float,
  groupByWindowed,
  hasMany,
  InvalidOptionError,
  InvalidQueryError,
  InvalidRowsError,
  int,
  renderOpenReport,
  string,
  Tessera,
  TesseraError,
  vector,
  versioned as versionedFeature,
  windowed,
} from '../ts/index.js';
import * as versioned from './fixtures/versioned.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 4, 10, 12);

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-api-'));
  dirs.push(dir);
  return dir;
}
const open: Tessera[] = [];
afterEach(() => {
  for (const t of open.splice(0)) {
    try {
      t.close();
    } catch {
      // already closed by the test
    }
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function openAt(path: string, featureClasses: readonly unknown[]): Tessera {
  const tessera = Tessera.open({ path, features: featureClasses });
  tessera.setClock(NOW);
  open.push(tessera);
  return tessera;
}

const Transaction = features('transaction', {
  id: int().primary(),
  user_id: int().references('user.id'),
  merchant_id: int(),
  bank: string(),
  amount: float(),
  category: int(),
  embedding: vector(2),
  ts: datetime().featureTime(),
});

const User = features(
  'user',
  {
    id: int().primary(),
    bank: string(),
    transactions: hasMany(() => Transaction),
    bank_transactions: hasMany(
      () => Transaction,
      (t) => t.user_id.eq(User.id).and(t.bank.eq(User.bank)),
    ),
  },
  (user) => ({
    total: windowed('1h', '1d', '7d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).sum(),
      default: 0,
    }),
    count: windowed('1d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.count(),
    }),
    count_or_minus_one: windowed('1d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).count(),
      default: -1,
    }),
    latest: windowed('7d', {
      materialization: { bucketDuration: '1d' },
      expression: user.transactions.select((t) => t.ts).max(),
    }),
    centroid: windowed('7d', {
      materialization: { bucketDuration: '1d' },
      expression: user.transactions.select((t) => t.embedding).mean(),
    }),
    recent_banks: windowed('7d', {
      materialization: { bucketDuration: '1d' },
      expression: user.transactions.select((t) => t.bank).maxByN((t) => t.ts, 2),
      default: [],
    }),
    shopping: windowed('1d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions
        .where((t) => [t.category.in([1, 2]), t.bank.ne('zeta')])
        .select((t) => t.amount)
        .sum(),
    }),
    home_bank: windowed('7d', {
      materialization: { bucketDuration: '1d' },
      expression: user.bank_transactions.select((t) => t.amount).sum(),
    }),
    by_merchant: groupByWindowed('7d', {
      materialization: { bucketDuration: '1d' },
      expression: user.transactions
        .groupBy((t) => t.merchant_id)
        .select((t) => t.amount)
        .sum(),
    }),
    failed_logins: windowed('10m', { default: 0 }),
  }),
);

const rows = [
  {
    id: 1,
    user_id: 7,
    merchant_id: 1,
    bank: 'acme',
    amount: 10,
    category: 1,
    embedding: [1, 2],
    ts: new Date(NOW - 10 * 60_000),
  },
  {
    id: 2,
    user_id: 7,
    merchant_id: 2,
    bank: 'zeta',
    amount: 20,
    category: 2,
    embedding: [3, 4],
    ts: '2026-05-10T13:00:00+02:00',
  },
  {
    id: 3,
    user_id: 7,
    merchant_id: 1,
    bank: 'acme',
    amount: 40,
    category: 3,
    embedding: null,
    ts: NOW - 3 * DAY,
  },
  {
    id: 4,
    user_id: 8,
    merchant_id: 1,
    bank: 'acme',
    amount: null,
    category: 1,
    embedding: [5, 6],
    ts: NOW - 2 * HOUR,
  },
  {
    id: 5,
    user_id: null,
    merchant_id: 1,
    bank: 'acme',
    amount: 1000,
    category: 1,
    embedding: null,
    ts: NOW - HOUR,
  },
];

describe('Tessera.open', () => {
  it('plans, creates the store and reports every series as new, with a description', () => {
    const tessera = openAt(tempDir(), [User, Transaction]);
    expect(tessera.openReport.keptSeries).toEqual([]);
    expect(tessera.openReport.orphanedSeries).toEqual([]);
    const described = tessera.openReport.newSeries.map((s) => s.description);
    expect(described).toContain('transaction.amount by user_id: sum per 1h, count per 1h');
    expect(described).toContain(
      'transaction.amount by user_id where bank != "zeta" and category in [1,2]: sum per 1h',
    );
    expect(described).toContain('transaction.amount by user_id+bank: sum per 1d');
    expect(described).toContain('transaction.amount by user_id+merchant_id: sum per 1d');
    expect(tessera.openReport.newSeries.map((s) => s.id).sort()).toEqual(
      tessera.plan.series.map((s) => s.id).sort(),
    );
  });

  it('keeps unchanged series on reopen and names new and orphaned ones', () => {
    const dir = tempDir();
    const first = openAt(dir, [User, Transaction]);
    first.ingest(Transaction, rows);
    first.close();

    // Change one filter: its series is new, the old one orphaned; the rest are kept.
    const T2 = features('transaction', {
      id: int().primary(),
      user_id: int().references('user.id'),
      bank: string(),
      amount: float(),
      category: int(),
      ts: datetime().featureTime(),
    });
    const U2 = features(
      'user',
      { id: int().primary(), transactions: hasMany(() => T2) },
      (user) => ({
        total: windowed('1h', '1d', '7d', {
          materialization: { bucketDuration: '1h' },
          expression: user.transactions.select((t) => t.amount).sum(),
          default: 0,
        }),
        // The same rules as before for this series: (sum, 1h) and (count, 1h).
        amounts: windowed('1d', {
          materialization: { bucketDuration: '1h' },
          expression: user.transactions.select((t) => t.amount).count(),
        }),
        shopping: windowed('1d', {
          materialization: { bucketDuration: '1h' },
          expression: user.transactions
            .where((t) => t.category.in([1, 2, 3]))
            .select((t) => t.amount)
            .sum(),
        }),
      }),
    );
    const second = openAt(dir, [U2, T2]);
    const report = second.openReport;
    expect(report.newSeries.map((s) => s.description)).toEqual([
      'transaction.amount by user_id where category in [1,2,3]: sum per 1h',
    ]);
    expect(report.keptSeries.map((s) => s.description)).toEqual([
      'transaction.amount by user_id: sum per 1h, count per 1h',
    ]);
    expect(report.orphanedSeries.map((s) => s.description)).toContain(
      'transaction.amount by user_id where bank != "zeta" and category in [1,2]: sum per 1h',
    );
    expect(report.orphanedSeries).toHaveLength(first.plan.series.length - 1);
    expect(renderOpenReport(report)).toMatch(/^series: 1 new, 1 kept, \d+ orphaned/);
    // Kept data is still there.
    const total = second.query({ input: { id: 7 }, output: ['user.total__604800__'] });
    expect(total.rows[0]?.values).toEqual([70]);
  });

  it('throws a DefinitionError with every diagnostic for broken definitions', () => {
    const Broken = features(
      'broken',
      { id: int().primary(), transactions: hasMany(() => Transaction) },
      (b) => ({
        x: windowed('1d', {
          materialization: { bucketDurations: { '1h': ['7d'] } },
          expression: b.transactions.select((t) => t.amount).sum(),
        }),
      }),
    );
    expect(() => Tessera.open({ path: tempDir(), features: [Broken] })).toThrow(DefinitionError);
  });
});

describe('Tessera.ingest and query', () => {
  it('feeds every series from row objects and answers every output form alike', () => {
    const tessera = openAt(tempDir(), [User, Transaction]);
    const result = tessera.ingest(Transaction, rows);
    expect(result.rows).toBe(5);
    expect(result.commit?.rows).toBeGreaterThan(0);
    const shopping = result.series.find(
      (s) => tessera.series.find((x) => x.id === s.id)?.filters.length === 2,
    );
    expect(shopping?.rows).toBe(3); // rows 1, 4, 5 pass `category in [1,2]` and `bank != zeta`

    const forms = [
      User.total('1d'),
      User.total['1d'],
      User.total_1d,
      User.total__1d__,
      User.total__86400__,
      'user.total__86400__',
      'user.total_1d',
      'user.total__1d__',
      "user.total('1d')",
      "user.total['1d']",
    ] as const;
    const q = tessera.query({ input: { 'user.id': [7, 8, 9] }, output: forms });
    expect(q.rows.map((r) => r.values)).toEqual([
      Array(forms.length).fill(30),
      Array(forms.length).fill(0), // user 8: only a null amount -> default
      Array(forms.length).fill(0), // user 9: nothing -> default
    ]);
    expect(q.outputs.map((o) => o.canonical)).toEqual(
      Array(forms.length).fill('user.total__86400__'),
    );

    // Lists of names arrive as new arrays (a service's requests): the same names give
    // the same answer, and another list of names, even of the same names, is its own.
    const names = () => ['user.total_1d', 'user.count_1d'];
    const first = tessera.query({ input: { 'user.id': [7] }, output: names() });
    const again = tessera.query({ input: { 'user.id': [7] }, output: names() });
    const swapped = tessera.query({ input: { 'user.id': [7] }, output: names().reverse() });
    expect(again.rows).toEqual(first.rows);
    expect(swapped.rows[0]?.values).toEqual([...(first.rows[0]?.values ?? [])].reverse());
    expect(swapped.outputs.map((o) => o.feature)).toEqual(['user.count', 'user.total']);
    expect(() =>
      tessera.query({ input: { 'user.id': [7] }, output: ['user.total_1d\u0000'] }),
    ).toThrow(/user\.total_1d/);
  });

  it('returns typed values: lists, vectors, Dates, grouped values, composite keys', () => {
    const tessera = openAt(tempDir(), [User, Transaction]);
    tessera.ingest(Transaction, rows);
    const q = tessera.query({
      input: [
        { id: 7, bank: 'acme', merchant_id: 1 },
        { id: 8, bank: 'acme', merchant_id: 2 },
      ],
      output: [
        User.total['7d'],
        User.total['1h'],
        User.count['1d'],
        User.count_or_minus_one['1d'],
        User.latest['7d'],
        User.centroid['7d'],
        User.recent_banks['7d'],
        User.shopping['1d'],
        User.home_bank['7d'],
        User.by_merchant['7d'],
      ],
    });
    const [seven, eight] = q.rows;
    expect(seven?.key).toEqual({ id: 7, bank: 'acme', merchant_id: 1 });
    expect(seven?.values).toEqual([
      70,
      30, // both within the last hour (13:00+02:00 is 11:00Z, bucket 11:00-12:00 is read whole)
      2,
      2,
      new Date(NOW - 10 * 60_000),
      [2, 3],
      ['acme', 'zeta'],
      10,
      50,
      [{ group: 1, value: 50 }],
    ]);
    expect(eight?.values).toEqual([
      0,
      0,
      1,
      -1,
      new Date(NOW - 2 * HOUR),
      [5, 6],
      ['acme'],
      null,
      null,
      [],
    ]);
    expect(seven?.byName['user.home_bank__604800__']).toBe(50);
    expect(seven?.values[4]).toBeInstanceOf(Date);
  });

  it('reads columns (typed and plain arrays) exactly like rows', () => {
    const a = openAt(tempDir(), [User, Transaction]);
    const b = openAt(tempDir(), [User, Transaction]);
    a.ingest(Transaction, rows);
    b.ingest(Transaction, {
      id: rows.map((r) => r.id),
      user_id: Float64Array.from(rows, (r) => r.user_id ?? Number.NaN),
      merchant_id: new Float64Array(rows.map((r) => r.merchant_id)),
      bank: rows.map((r) => r.bank),
      amount: rows.map((r) => r.amount),
      category: Int32Array.from(rows, (r) => r.category),
      embedding: rows.map((r) => r.embedding),
      ts: rows.map((r) => r.ts),
    });
    const outputs = tessera_outputs();
    const input = { id: [7, 8], bank: ['acme', 'acme'], merchant_id: [1, 1] };
    expect(b.query({ input, output: outputs }).rows.map((r) => r.values)).toEqual(
      a.query({ input, output: outputs }).rows.map((r) => r.values),
    );
  });

  it('explains each value: the bucket range of the window and the buckets merged', () => {
    const tessera = openAt(tempDir(), [User, Transaction]);
    tessera.ingest(Transaction, rows);
    const q = tessera.query({
      input: { id: [7, 9] },
      output: [User.total['1d'], User.total['7d']],
      explain: true,
      now: NOW,
    });
    const [day, week] = q.rows[0]?.explanations ?? [];
    expect(day).toMatchObject({
      output: 'user.total__86400__',
      bucketSizeMs: HOUR,
      // (now - 1d, now] starts just after a bucket edge: 25 hourly buckets are covered.
      firstBucketStart: new Date(NOW - DAY),
      lastBucketStart: new Date(NOW),
      bucketsMerged: 1, // rows 1 and 2 share the 11:00 bucket
      defaulted: false,
    });
    expect(week?.bucketsMerged).toBe(2);
    expect(q.rows[1]?.explanations?.[0]).toMatchObject({ bucketsMerged: 0, defaulted: true });
    expect(q.rows[1]?.values).toEqual([0, 0]);
  });

  it('serves many keys and key shapes in one native call', () => {
    const tessera = openAt(tempDir(), [User, Transaction]);
    tessera.ingest(Transaction, rows);
    const calls: number[] = [];
    const engine = tessera.engine;
    const original = engine.query.bind(engine);
    engine.query = (queries) => {
      calls.push(queries.length);
      return original(queries);
    };
    const q = tessera.query({
      input: { 'user.id': [7, 8], 'user.bank': ['acme', 'acme'], merchant_id: [1, 1] },
      output: [User.total['1d'], User.home_bank['7d'], User.by_merchant['7d'], User.count['1d']],
    });
    // Three key shapes (user_id; user_id+bank; user_id+merchant_id), one call.
    expect(calls).toEqual([3]);
    expect(q.rows[0]?.values).toEqual([30, 50, [{ group: 1, value: 50 }], 2]);
  });

  it('handles empty batches, inputs and outputs', () => {
    const tessera = openAt(tempDir(), [User, Transaction]);
    expect(tessera.ingest(Transaction, []).rows).toBe(0);
    expect(tessera.ingest(Transaction, {}).series).toEqual([]);
    expect(tessera.query({ input: { id: [] }, output: [User.total['1d']] }).rows).toEqual([]);
    expect(tessera.query({ input: { id: [7] }, output: [] }).rows[0]?.values).toEqual([]);
  });

  it('queries at a given now, as Date, ISO string or ms', () => {
    const tessera = openAt(tempDir(), [User, Transaction]);
    tessera.ingest(Transaction, rows);
    const at = (now: Date | string | number) =>
      tessera.query({ input: { id: 7 }, output: [User.total['1h']], now }).rows[0]?.values[0];
    expect(at(NOW - 3 * DAY)).toBe(40);
    expect(at(new Date(NOW - 3 * DAY))).toBe(40);
    expect(at(new Date(NOW - 3 * DAY).toISOString())).toBe(40);
    expect(at(NOW - 5 * DAY)).toBe(0);
  });
});

function tessera_outputs() {
  return [
    User.total['1h'],
    User.total['7d'],
    User.count['1d'],
    User.latest['7d'],
    User.centroid['7d'],
    User.recent_banks['7d'],
    User.shopping['1d'],
    User.home_bank['7d'],
    User.by_merchant['7d'],
  ] as const;
}

describe('relevance (writes) and versions', () => {
  const { Transaction: VT, User: VU } = versioned;
  const total = (tessera: Tessera) =>
    tessera.query({
      input: { id: ['u1'] },
      output: [
        VU.total_spend['30d'],
        VU.total_spend.version(2)['30d'],
        'user.total_spend__2592000__@2',
      ],
    }).rows[0]?.values;

  it('updates an aggregation over a versioned column only when its version is written', () => {
    const tessera = openAt(tempDir(), [VU, VT]);
    const base = { id: 't1', user_id: 'u1', ts: NOW - HOUR };
    // Rows carrying `amount`: the default version (1) is written.
    tessera.ingest(VT, [{ ...base, amount: 10 }]);
    expect(total(tessera)).toEqual([10, 0, 0]);
    // A resolver writing amount@2 from the rows' `amount`.
    tessera.ingest(VT, [{ ...base, amount: 7 }], { writes: ['amount@2'] });
    expect(total(tessera)).toEqual([10, 7, 7]);
    // Both versions in one row: `amount` (v1) and `amount@2`.
    tessera.ingest(VT, [{ ...base, amount: 100, 'amount@2': 3 }]);
    expect(total(tessera)).toEqual([110, 10, 10]);
    // Writing nothing relevant updates nothing.
    const none = tessera.ingest(VT, [{ ...base, amount: 1 }], { writes: ['user_id'] });
    expect(none.series).toEqual([]);
    expect(total(tessera)).toEqual([110, 10, 10]);
  });

  it('updates every version of a feature over an unversioned column', () => {
    const T = features('transaction', {
      id: int().primary(),
      user_id: int().references('user.id'),
      amount: float(),
      ts: datetime().featureTime(),
    });
    const U = features('user', { id: int().primary(), transactions: hasMany(() => T) }, (u) => ({
      spend: versionedFeature(
        {
          1: windowed('1d', {
            materialization: true,
            expression: u.transactions.select((t) => t.amount).sum(),
          }),
          2: windowed('1d', {
            materialization: true,
            expression: u.transactions.select((t) => t.amount).count(),
          }),
        },
        { default: 1 },
      ),
    }));
    const tessera = openAt(tempDir(), [U, T]);
    tessera.ingest(T, [{ id: 1, user_id: 1, amount: 5, ts: NOW }], { writes: ['amount', 'ts'] });
    const q = tessera.query({
      input: { id: 1 },
      output: ['user.spend__86400__@1', 'user.spend__86400__@2'],
    });
    expect(q.rows[0]?.values).toEqual([5, 1]);
  });

  it('rejects writes naming unknown columns or versions', () => {
    const tessera = openAt(tempDir(), [VU, VT]);
    const row = { id: 't', user_id: 'u', amount: 1, ts: NOW };
    expect(() => tessera.ingest(VT, [row], { writes: ['amount@3'] })).toThrow(
      /transaction.amount has versions 1, 2/,
    );
    expect(() => tessera.ingest(VT, [row], { writes: ['nope'] })).toThrow(
      /'nope', which is not a column of transaction/,
    );
    expect(() => tessera.ingest(VT, [row], { writes: ['user_id@2'] })).toThrow(/not versioned/);
  });
});

describe('deferred commits and positions', () => {
  it('folds without committing until commit(), then writes positions atomically', async () => {
    const tessera = openAt(tempDir(), [User, Transaction]);
    const r = tessera.ingest(Transaction, rows.slice(0, 2), { commit: false });
    expect(r.commit).toBeNull();
    const read = () =>
      tessera.query({ input: { id: 7 }, output: [User.total['1d']] }).rows[0]?.values[0];
    expect(read()).toBe(0);
    await tessera.ingestAsync(Transaction, rows.slice(2), { commit: false });
    expect(read()).toBe(0);
    const committed = await tessera.commitAsync([
      { source: 'kafka:txns', partition: 0, offset: 41 },
    ]);
    expect(committed.rows).toBeGreaterThan(0);
    expect(read()).toBe(30);
    expect(tessera.positions('kafka:txns')).toEqual([
      { source: 'kafka:txns', partition: 0, offset: 41 },
    ]);
    // positions with the default (committing) ingest, and with nothing relevant to write.
    tessera.ingest(Transaction, [], {
      positions: [{ source: 'kafka:txns', partition: 0, offset: 42 }],
    });
    expect(tessera.positions('kafka:txns')[0]?.offset).toBe(42);
    const later = await tessera.queryAsync({ input: { id: [7] }, output: [User.total['1d']] });
    expect(later.rows[0]?.values).toEqual([30]);
  });

  it('refuses positions or replace without a commit', () => {
    const tessera = openAt(tempDir(), [User, Transaction]);
    expect(() =>
      tessera.ingest(Transaction, rows, {
        commit: false,
        positions: [{ source: 's', partition: 0, offset: 1 }],
      }),
    ).toThrow(InvalidOptionError);
    expect(() => tessera.ingest(Transaction, rows, { commit: false, replace: true })).toThrow(
      InvalidOptionError,
    );
  });
});

describe('errors name the class, the column and the row', () => {
  it('rejects bad rows and ingests nothing of the batch', () => {
    const tessera = openAt(tempDir(), [User, Transaction]);
    const good = rows[0] as (typeof rows)[number];
    const cases: [unknown, RegExp][] = [
      [
        [good, { ...good, ts: null }],
        /transaction row 1: ts is missing; every row needs its feature time/,
      ],
      [
        [good, { ...good, ts: '2026-05-10T10:00:00' }],
        /transaction row 1: ts '2026-05-10T10:00:00' is not an ISO-8601 date-time with a time zone/,
      ],
      [[{ ...good, amount: '12' }], /transaction row 0: amount is '12', not a number \(float\)/],
      [
        [{ ...good, user_id: 1.5 }],
        /transaction row 0: user_id is 1.5, not a whole number within 2\^53 \(int\)/,
      ],
      [[{ ...good, bank: 3 }], /transaction row 0: bank is 3, not a string/],
      [
        [{ ...good, embedding: [1] }],
        /transaction row 0: embedding has 1 components; transaction.embedding has 2/,
      ],
      [[good, 42], /transaction row 1: 42 is not a row object/],
      [{ id: [1, 2], ts: [NOW] }, /column 'id' has 2 values but 'ts' has 1/],
    ];
    for (const [input, message] of cases) {
      expect(() => tessera.ingest(Transaction, input as never)).toThrow(InvalidRowsError);
      expect(() => tessera.ingest(Transaction, input as never)).toThrow(message);
    }
    const { ts: _ts, ...noTime } = good;
    expect(() => tessera.ingest(Transaction, [noTime])).toThrow(
      /transaction rows have no column 'ts', the feature time/,
    );
    const { category: _category, ...noCategory } = good;
    expect(() => tessera.ingest(Transaction, [noCategory])).toThrow(
      /transaction rows have no column 'category', which series s_[0-9a-f]+ \(transaction.amount by user_id\) filters on/,
    );
    expect(tessera.query({ input: { id: 7 }, output: [User.count['1d']] }).rows[0]?.values).toEqual(
      [0],
    );
    // A class that feeds no aggregation ingests nothing.
    expect(tessera.ingest(User, [{ id: 7, bank: 'acme' }]).series).toEqual([]);
  });

  it('rejects unknown outputs and missing keys with a clear message', () => {
    const tessera = openAt(tempDir(), [User, Transaction]);
    const query = (output: readonly unknown[], input: object = { id: 1 }) =>
      tessera.query({ input: input as never, output: output as never });
    expect(() => query(['user.total__2d__'])).toThrow(InvalidQueryError);
    expect(() => query(['user.total__2d__'])).toThrow(
      /user.total has no such window \(windows: 1h, 1d, 7d\)/,
    );
    expect(() => query(['user.failed_logins__10m__'])).toThrow(/has no expression/);
    expect(() => query(['nope.x_1d'])).toThrow(/names no materialized feature window/);
    expect(() => query([User.total])).toThrow(
      /is the windowed feature user.total, not one of its windows/,
    );
    expect(() => query([User.home_bank['7d']])).toThrow(
      /query input lacks 'user.bank' \(or 'bank'\), which user.home_bank__604800__ needs/,
    );
    expect(() => query([User.by_merchant['7d']])).toThrow(/give the groups to read/);
    expect(() => query([User.total['1d']], { id: ['7'] })).toThrow(
      /query input user.id row 0 is '7', not a number/,
    );
    expect(() => query([User.total['1d']], { id: [1, 2], bank: ['a'] })).toThrow(
      /'bank' has 1 values but 'id' has 2/,
    );
    expect(() =>
      tessera.query({ input: { id: 1 }, output: [User.total['1d']], now: 'yesterday' }),
    ).toThrow(/query now 'yesterday' is not an ISO-8601 date-time/);
  });

  it('uses TesseraError codes', () => {
    const tessera = openAt(tempDir(), [User, Transaction]);
    try {
      tessera.ingest(Transaction, [{ id: 1, user_id: 7, amount: 5 }]);
      expect.fail('should throw');
    } catch (error) {
      expect(error).toBeInstanceOf(TesseraError);
      expect((error as TesseraError).code).toBe('INVALID_ROWS');
    }
  });
});
