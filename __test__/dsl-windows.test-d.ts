/**
 * Type tests: window references are typed by the windows a feature declares; undeclared
 * windows and unknown features do not compile.
 */
import { describe, expectTypeOf, test } from 'vitest';
import {
  datetime,
  features,
  float,
  hasMany,
  int,
  type Seconds,
  type WindowKey,
  type WindowRef,
  windowed,
} from '../ts/dsl/index.js';
import { User as VersionedUser } from './fixtures/versioned.js';

const Transaction = features('transaction', {
  id: int().primary(),
  amount: float(),
  user_id: int().references(() => User.id),
  ts: datetime().featureTime(),
});

const User = features(
  'user',
  { id: int().primary(), transactions: hasMany(() => Transaction) },
  (user) => ({
    total: windowed('1d', '7d', '30d', {
      materialization: { bucketDuration: '1d' },
      expression: user.transactions.select((t) => t.amount).sum(),
      default: 0,
    }),
    logins: windowed('10m', '1h30m', 'all', {
      materialization: true,
      expression: user.transactions.count(),
    }),
    by_keyword: windowed({
      days: [1, 7],
      minutes: [15],
      materialization: true,
      expression: user.transactions.count(),
    }),
  }),
);

describe('window references', () => {
  test('every form of a declared window is a typed ref', () => {
    expectTypeOf(User.total['7d']).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.total('7d')).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.total_7d).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.total__7d__).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.total__604800__).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.total['604800']).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.total('2592000')).toEqualTypeOf<WindowRef<number>>();
  });

  test('combined spellings, all and infinity', () => {
    expectTypeOf(User.logins['1h30m']).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.logins__5400__).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.logins_all).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.logins__all__).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.logins.infinity).toEqualTypeOf<WindowRef<number>>();
  });

  test('keyword forms are captured as literals', () => {
    expectTypeOf(User.by_keyword['7d']).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.by_keyword_15m).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.by_keyword__900__).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(User.by_keyword.windows).toEqualTypeOf<readonly string[]>();
  });

  test('undeclared windows do not compile', () => {
    // @ts-expect-error '2d' is not a window of user.total
    User.total['2d'];
    // @ts-expect-error '2d' is not a window of user.total
    User.total('2d');
    // @ts-expect-error another spelling of a declared window is only resolved at runtime
    User.total('168h');
    // @ts-expect-error no such alias
    User.total_2d;
    // @ts-expect-error no such alias
    User.total__2d__;
    // @ts-expect-error 172800 seconds (2d) is not declared
    User.total__172800__;
    // @ts-expect-error 5400 belongs to user.logins, not user.total
    User.total__5400__;
  });

  test('unknown features do not compile', () => {
    // @ts-expect-error no feature named totals
    User.totals;
    // @ts-expect-error no feature named amount on user
    User.amount;
    // @ts-expect-error scalar columns have no windows
    User.id['7d'];
  });

  test('versioned windowed features', () => {
    expectTypeOf(VersionedUser.total_spend['30d']).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(VersionedUser.total_spend.version(2)['30d']).toEqualTypeOf<WindowRef<number>>();
    expectTypeOf(VersionedUser.total_spend__2592000__).toEqualTypeOf<WindowRef<number>>();
    // @ts-expect-error there is no version 3
    VersionedUser.total_spend.version(3);
    // @ts-expect-error '7d' is not a window of either version
    VersionedUser.total_spend['7d'];
  });
});

describe('type-level seconds', () => {
  test('are computed for whole-second spellings', () => {
    expectTypeOf<Seconds<'7d'>>().toEqualTypeOf<'604800'>();
    expectTypeOf<Seconds<'1h30m'>>().toEqualTypeOf<'5400'>();
    expectTypeOf<Seconds<'2w 3d 4h 5m 6s'>>().toEqualTypeOf<'1483506'>();
    expectTypeOf<Seconds<'600'>>().toEqualTypeOf<'600'>();
    expectTypeOf<Seconds<'365d'>>().toEqualTypeOf<'31536000'>();
    expectTypeOf<Seconds<'36500d'>>().toEqualTypeOf<'all'>();
    expectTypeOf<Seconds<'all'>>().toEqualTypeOf<'all'>();
    expectTypeOf<Seconds<'infinity'>>().toEqualTypeOf<'all'>();
  });

  test('are never for spellings the compiler does not compute', () => {
    expectTypeOf<Seconds<'1x'>>().toBeNever();
    expectTypeOf<Seconds<'500ms'>>().toBeNever();
  });

  test('fall back to string for non-literal windows', () => {
    expectTypeOf<Seconds<string>>().toEqualTypeOf<string>();
    expectTypeOf<WindowKey<'1d'>>().toEqualTypeOf<'1d' | '86400'>();
  });
});
