/**
 * Type tests of the engine API: query results are typed per output (a mapped tuple of
 * the outputs' value types), ingest rows and columns are typed by the class's columns.
 */
import { describe, expectTypeOf, test } from 'vitest';
import {
  datetime,
  type FeatureValue,
  features,
  float,
  hasMany,
  int,
  type QueryResult,
  string,
  type Tessera,
  vector,
  windowed,
} from '../ts/index.js';

const Transaction = features('transaction', {
  id: int().primary(),
  user_id: int().references('user.id'),
  bank: string(),
  amount: float(),
  embedding: vector(2),
  ts: datetime().featureTime(),
});

const User = features(
  'user',
  { id: int().primary(), transactions: hasMany(() => Transaction) },
  (user) => ({
    total: windowed('1d', '7d', {
      materialization: { bucketDuration: '1d' },
      expression: user.transactions.select((t) => t.amount).sum(),
      default: 0,
    }),
    latest: windowed('7d', {
      materialization: true,
      expression: user.transactions.select((t) => t.ts).max(),
    }),
    banks: windowed('7d', {
      materialization: true,
      expression: user.transactions.select((t) => t.bank).maxByN((t) => t.ts, 3),
    }),
    centroid: windowed('7d', {
      materialization: true,
      expression: user.transactions.select((t) => t.embedding).mean(),
    }),
  }),
);

declare const tessera: Tessera;

describe('query', () => {
  test('values are a tuple typed by the outputs', () => {
    const result = tessera.query({
      input: { 'user.id': [1, 2] },
      output: [
        User.total['7d'],
        User.total_1d,
        User.latest['7d'],
        User.banks('7d'),
        User.centroid__7d__,
        'user.total__604800__',
      ],
    });
    const row = result.rows[0];
    if (row === undefined) return;
    expectTypeOf(row.values[0]).toEqualTypeOf<number | null>();
    expectTypeOf(row.values[1]).toEqualTypeOf<number | null>();
    expectTypeOf(row.values[2]).toEqualTypeOf<Date | null>();
    expectTypeOf(row.values[3]).toEqualTypeOf<string[] | null>();
    expectTypeOf(row.values[4]).toEqualTypeOf<number[] | null>();
    expectTypeOf(row.values[5]).toEqualTypeOf<FeatureValue>();
    expectTypeOf(row.byName).toEqualTypeOf<Readonly<Record<string, FeatureValue>>>();
    expectTypeOf(row.values).toHaveProperty('length').toEqualTypeOf<6>();
  });

  test('the result type can be named', () => {
    const output = [User.total['7d']] as const;
    expectTypeOf(tessera.query({ input: [{ id: 1 }], output })).toEqualTypeOf<
      QueryResult<typeof output>
    >();
  });

  test('outputs must be window references or names', () => {
    // @ts-expect-error a windowed feature is not one window
    tessera.query({ input: { id: 1 }, output: [User.total] });
    // @ts-expect-error an undeclared window
    tessera.query({ input: { id: 1 }, output: [User.total['2d']] });
    // @ts-expect-error keys are numbers, strings, booleans, Dates or null
    tessera.query({ input: { id: [{}] }, output: [User.total['1d']] });
  });
});

describe('ingest', () => {
  test('rows are typed by the class columns, extra properties allowed', () => {
    tessera.ingest(Transaction, [
      { id: 1, user_id: 2, bank: 'a', amount: 3.5, embedding: [1, 2], ts: new Date() },
      { id: 2, user_id: null, amount: null, ts: '2026-01-01T00:00:00Z' },
      { id: 3, user_id: 2, amount: 1, ts: 1_767_225_600_000, 'amount@2': 7, note: 'x' },
    ]);
    // @ts-expect-error amount is a number
    tessera.ingest(Transaction, [{ id: 1, amount: '3.5', ts: new Date() }]);
    // @ts-expect-error bank is a string
    tessera.ingest(Transaction, [{ id: 1, bank: 7, ts: new Date() }]);
  });

  test('columns take arrays and typed arrays', () => {
    tessera.ingest(Transaction, {
      id: new Float64Array([1, 2]),
      user_id: [1, null],
      amount: Float64Array.of(1, Number.NaN),
      embedding: new Float64Array(4),
      bank: ['a', null],
      ts: [new Date(), '2026-01-01T00:00:00Z'],
    });
    // @ts-expect-error bank holds strings
    tessera.ingest(Transaction, { bank: [1, 2], ts: [0, 1] });
  });

  test('options are typed', () => {
    tessera.ingest(Transaction, [], {
      writes: ['amount@2', 'ts'],
      commit: false,
    });
    tessera.ingest(Transaction, [], { positions: [{ source: 's', partition: 0, offset: 1 }] });
    // @ts-expect-error commit is a boolean
    tessera.ingest(Transaction, [], { commit: 'yes' });
  });
});
