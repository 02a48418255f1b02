/**
 * Type tests: expressions are typed by the related class; the value type of a windowed
 * feature follows its aggregation; misuse does not compile.
 */
import { describe, expectTypeOf, test } from 'vitest';
import {
  type Aggregate,
  boolean,
  type Column,
  datetime,
  features,
  float,
  type GroupedValue,
  groupByWindowed,
  hasMany,
  int,
  string,
  type ValueOf,
  vector,
  versioned,
  type WindowRef,
  windowed,
} from '../ts/dsl/index.js';

const Transaction = features('transaction', {
  id: int().primary(),
  amount: versioned({ 1: float(), 2: float() }, { default: 1 }),
  category: int(),
  bank: string(),
  flagged: boolean(),
  user_id: int().references(() => User.id),
  merchant_id: int(),
  ts: datetime().featureTime(),
  embedding: vector(384),
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
    total: windowed('7d', {
      materialization: true,
      expression: user.transactions
        .where((t) => [t.ts.gt(t.chalk_window), t.ts.lte(t.chalk_now), t.category.in([1, 2])])
        .select((t) => t.amount)
        .sum(),
      default: 0,
    }),
    total_v2: windowed('7d', {
      materialization: true,
      expression: user.transactions.select((t) => t.amount.version(2)).sum(),
    }),
    rows: windowed('7d', { materialization: true, expression: user.transactions.count() }),
    top_banks: windowed('7d', {
      materialization: true,
      expression: user.bank_transactions.select((t) => t.bank).maxByN((t) => t.amount, 5),
    }),
    top_categories: windowed('7d', {
      materialization: true,
      expression: user.transactions.select((t) => t.category).approxTopK(10),
    }),
    weighted_categories: windowed('7d', {
      materialization: true,
      expression: user.transactions
        .select((t) => t.category)
        .approxTopK(10, { by: (t) => t.amount, returnTotalWeight: true }),
    }),
    avg_embedding: windowed('7d', {
      materialization: true,
      expression: user.transactions.select((t) => t.embedding).mean(),
      default: Array.from({ length: 384 }, () => 0),
    }),
    last_seen: windowed('7d', {
      materialization: true,
      expression: user.transactions.select((t) => t.ts).max(),
    }),
    flagged_share: windowed('7d', {
      materialization: true,
      expression: user.transactions.select((t) => t.flagged).mean(),
    }),
    p90: windowed('7d', {
      materialization: true,
      expression: user.transactions.select((t) => t.amount).approxPercentile(0.9),
    }),
    by_merchant: groupByWindowed('7d', {
      materialization: true,
      expression: user.transactions
        .groupBy((t) => t.merchant_id)
        .select((t) => t.amount)
        .sum(),
    }),
    by_merchant_bank: groupByWindowed('7d', {
      materialization: true,
      expression: user.transactions.groupBy((t) => [t.merchant_id, t.bank]).count(),
    }),
  }),
);

describe('value types follow the aggregation', () => {
  test('numbers, lists, vectors, dates, groups', () => {
    expectTypeOf(User.total['7d']).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.rows['7d']).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.top_banks['7d']).toEqualTypeOf<WindowRef<string[]>>();
    expectTypeOf(User.top_categories['7d']).toEqualTypeOf<WindowRef<number[]>>();
    expectTypeOf(User.weighted_categories['7d']).toEqualTypeOf<
      WindowRef<{ value: number; weight: number }[]>
    >();
    expectTypeOf(User.avg_embedding['7d']).toEqualTypeOf<WindowRef<number[]>>();
    expectTypeOf(User.last_seen['7d']).toEqualTypeOf<WindowRef<Date>>();
    expectTypeOf(User.flagged_share['7d']).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.p90['7d']).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.by_merchant['7d']).toEqualTypeOf<WindowRef<GroupedValue<number, number>>>();
    expectTypeOf(User.by_merchant_bank['7d']).toEqualTypeOf<
      WindowRef<GroupedValue<[number, string], number>>
    >();
    expectTypeOf<ValueOf<typeof User.total_7d>>().toEqualTypeOf<number>();
  });

  test('windowed features without expression take their type from the default', () => {
    const Logins = features('logins', {
      id: int(),
      failed: windowed('10m', '30m', '1d', { default: 0 }),
      anything: windowed('10m'),
    });
    expectTypeOf(Logins.failed['30m']).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(Logins.anything['10m']).toEqualTypeOf<WindowRef<unknown>>();
  });

  test('columns are typed, versioned ones too', () => {
    expectTypeOf(Transaction.bank).toEqualTypeOf<Column<string>>();
    expectTypeOf(Transaction.amount.version(2)).toEqualTypeOf<Column<number>>();
    expectTypeOf<ValueOf<typeof Transaction.ts>>().toEqualTypeOf<Date>();
    // @ts-expect-error amount has versions 1 and 2 only
    Transaction.amount.version(3);
    // @ts-expect-error category is not versioned
    Transaction.category.version(2);
  });
});

describe('misuse does not compile', () => {
  test('numeric aggregations over a string column', () => {
    const strings = User.transactions.select((t) => t.bank);
    // @ts-expect-error sum needs a numeric or vector column
    strings.sum();
    // @ts-expect-error mean needs a numeric or vector column
    strings.mean();
    // @ts-expect-error percentiles need a numeric column
    strings.approxPercentile(0.5);
    expectTypeOf(strings.approxCountDistinct()).toEqualTypeOf<Aggregate<number>>();
  });

  test('vectors only sum and mean', () => {
    const vectors = User.transactions.select((t) => t.embedding);
    // @ts-expect-error no max over vectors
    vectors.max();
    // @ts-expect-error no top-k over vectors
    vectors.approxTopK(3);
  });

  test('by columns of min_by_n / max_by_n must be numeric', () => {
    // @ts-expect-error bank is a string
    User.transactions.select((t) => t.category).maxByN((t) => t.bank, 5);
  });

  test('filters are typed by their column', () => {
    // @ts-expect-error amounts are not times
    User.transactions.where((t) => t.amount.gt(t.chalk_window));
    // @ts-expect-error categories are numbers
    User.transactions.where((t) => t.category.in(['a']));
    // @ts-expect-error no such column
    User.transactions.where((t) => t.amout.gt(0));
    // @ts-expect-error no such column
    User.transactions.select((t) => t.nope);
  });

  test('one projection only', () => {
    // @ts-expect-error select() is not offered twice
    User.transactions.select((t) => t.amount).select((t) => t.bank);
  });

  test('groupBy only in groupByWindowed, and groupByWindowed needs one', () => {
    // @ts-expect-error a grouped expression needs groupByWindowed
    windowed('1d', { expression: User.transactions.groupBy((t) => t.bank).count() });
    // @ts-expect-error groupByWindowed needs a grouped expression
    groupByWindowed('1d', { expression: User.transactions.count() });
  });

  test('defaults must fit the value type', () => {
    // @ts-expect-error the value is a number
    windowed('1d', {
      expression: User.transactions.select((t) => t.amount).sum(),
      default: 'zero',
    });
  });
});
