/**
 * Window references (docs/semantics.md section 2): the five forms resolve to one canonical name, the
 * runtime fallback for spellings the types cannot see, and errors naming the feature,
 * the window asked and the windows declared.
 */
import { describe, expect, it } from 'vitest';
import {
  _,
  datetime,
  features,
  float,
  hasMany,
  int,
  WindowReferenceError,
  windowed,
} from '../ts/dsl/index.js';
import { findRead, plan } from '../ts/planner/index.js';
import * as versionedFixture from './fixtures/versioned.js';

const Transaction = features('transaction', {
  id: int().primary(),
  amount: float(),
  user_id: int().references('user.id'),
  ts: datetime().featureTime(),
});

const User = features(
  'user',
  {
    id: int().primary(),
    transactions: hasMany(() => Transaction),
    num_failed_logins: windowed('10m', '1d', '1h30m', { default: 0 }),
  },
  (user) => ({
    count: windowed('10m', '30m', '1d', 'all', {
      materialization: true,
      expression: user.transactions.count(),
    }),
  }),
);

/** Catches what `f` throws. */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describe('the five reference forms', () => {
  it('resolve to the same frozen ref and canonical name', () => {
    const forms = [
      User.count('10m'),
      User.count['10m'],
      User.count_10m,
      User.count__10m__,
      User.count__600__,
    ];
    for (const ref of forms) expect(ref).toBe(forms[0]);
    expect(forms[0]).toMatchObject({
      kind: 'window_ref',
      namespace: 'user',
      feature: 'count',
      qualifiedName: 'user.count',
      window: '10m',
      windowMs: 600_000,
      version: null,
      canonical: 'user.count__600__',
    });
    expect(Object.isFrozen(forms[0])).toBe(true);
  });

  it('work for every window column of the reference table', () => {
    const cases = [
      ['10m', '600'],
      ['1d', '86400'],
      ['1h30m', '5400'],
    ] as const;
    for (const [w, seconds] of cases) {
      const canonical = `user.num_failed_logins__${seconds}__`;
      expect(User.num_failed_logins(w).canonical).toBe(canonical);
      expect(User.num_failed_logins[w].canonical).toBe(canonical);
      expect(User.num_failed_logins[seconds].canonical).toBe(canonical);
    }
    expect(User.num_failed_logins_1h30m.canonical).toBe('user.num_failed_logins__5400__');
    expect(User.num_failed_logins__1h30m__.canonical).toBe('user.num_failed_logins__5400__');
    expect(User.num_failed_logins__5400__.canonical).toBe('user.num_failed_logins__5400__');
  });

  it('name the 100-year window __all__ and accept all / infinity', () => {
    expect(User.count.all.canonical).toBe('user.count__all__');
    expect(User.count.infinity).toBe(User.count.all);
    expect(User.count_all).toBe(User.count.all);
    expect(User.count__all__).toBe(User.count.all);
    expect(User.count('infinity').window).toBe('infinity');
  });

  it('accept any spelling of a declared window at runtime', () => {
    const dynamic = (key: string): unknown => (User.count as (k: string) => unknown)(key);
    expect(dynamic('1440m')).toBe(User.count['1d']);
    expect(dynamic('24h')).toBe(User.count['1d']);
    expect((User.count as unknown as Record<string, unknown>)['0h10m']).toBe(User.count['10m']);
    expect((User as unknown as Record<string, unknown>).count_600s).toBe(User.count['10m']);
    expect((User as unknown as Record<string, unknown>).count__30m__).toBe(User.count['30m']);
  });
});

describe('undeclared windows', () => {
  const declared = 'declared windows: 10m, 30m, 1d, all';

  it('throw a WindowReferenceError naming the feature, the window and the declared windows', () => {
    const forms: (() => unknown)[] = [
      () => (User.count as (k: string) => unknown)('2d'),
      () => (User.count as unknown as Record<string, unknown>)['2d'],
      () => (User as unknown as Record<string, unknown>).count_2d,
      () => (User as unknown as Record<string, unknown>).count__2d__,
      () => (User as unknown as Record<string, unknown>).count__172800__,
    ];
    for (const f of forms) {
      const e = thrown(f);
      expect(e).toBeInstanceOf(WindowReferenceError);
      expect((e as WindowReferenceError).message).toContain('user.count has no window');
      expect((e as WindowReferenceError).message).toContain(declared);
      expect((e as WindowReferenceError).feature).toBe('user.count');
      expect((e as WindowReferenceError).declared).toEqual(['10m', '30m', '1d', 'all']);
      expect((e as WindowReferenceError).code).toBe('UNKNOWN_WINDOW');
    }
    expect((thrown(forms[0] ?? (() => 0)) as Error).message).toBe(
      `user.count has no window '2d'; ${declared}`,
    );
  });

  it('explain a window that is not a duration', () => {
    const e = thrown(() => (User.count as (k: string) => unknown)('2x')) as Error;
    expect(e.message).toBe(
      `user.count has no window '2x' (invalid duration '2x': unknown part '2x'; valid examples: '10m', '1h', '1h30m'); ${declared}`,
    );
  });

  it('leave unrelated properties alone', () => {
    const loose = User as unknown as Record<string, unknown>;
    expect(loose.count_of_things).toBeUndefined();
    expect(loose.then).toBeUndefined();
    expect((User.count as unknown as Record<string, unknown>).then).toBeUndefined();
  });
});

describe('versioned windowed features', () => {
  const { User: VUser } = versionedFixture;

  it('suffix explicit versions with @<version>', () => {
    expect(VUser.total_spend['30d'].canonical).toBe('user.total_spend__2592000__');
    expect(VUser.total_spend.version(2)['30d'].canonical).toBe('user.total_spend__2592000__@2');
    expect(VUser.total_spend.version(1)('30d').version).toBe(1);
    expect(VUser.total_spend_30d).toBe(VUser.total_spend['30d']);
  });

  it('resolve to the default version or the asked one in a plan', () => {
    const p = plan(versionedFixture);
    expect(findRead(p, VUser.total_spend['30d'])?.feature).toBe('user.total_spend@1');
    expect(findRead(p, VUser.total_spend.version(2)['30d'])?.feature).toBe('user.total_spend@2');
    expect(findRead(p, 'user.total_spend__2592000__@2')?.feature).toBe('user.total_spend@2');
    expect(findRead(p, 'user.total_spend_30d')?.version).toBe(1);
  });
});

describe('findRead over the five string forms', () => {
  it('finds the same read', () => {
    const p = plan([User]);
    const read = findRead(p, User.count['10m']);
    expect(read?.canonical).toBe('user.count__600__');
    for (const text of [
      "user.count('10m')",
      'user.count["10m"]',
      'user.count_10m',
      'user.count__10m__',
      'user.count__600__',
    ]) {
      expect(findRead(p, text)).toBe(read);
    }
    expect(findRead(p, 'user.count__2d__')).toBeUndefined();
    expect(findRead(p, 'merchant.count_10m')).toBeUndefined();
  });
});

describe('keyword window forms', () => {
  it('days / hours / minutes add windows named 1d, 2h, 15m', () => {
    const C = features('keyword_demo', {
      id: int(),
      n: windowed({ days: [1, 7], hours: [2], minutes: [15] }),
    });
    expect(C.n.windows).toEqual(['1d', '7d', '2h', '15m']);
    expect(C.n['7d'].canonical).toBe('keyword_demo.n__604800__');
    expect(C.n_15m.canonical).toBe('keyword_demo.n__900__');
  });
});

describe('the DSL is immutable', () => {
  it('builders return new objects and freeze what they produce', () => {
    const base = User.transactions;
    const filtered = base.where((t) => t.amount.gt(0));
    expect(filtered).not.toBe(base);
    const a = filtered.select((t) => t.amount).sum();
    const b = filtered.select((t) => t.amount).sum();
    expect(a).not.toBe(b);
    expect(a.node).toEqual(b.node);
    expect(Object.isFrozen(a.node)).toBe(true);
    expect(Object.isFrozen(a.node.filters)).toBe(true);
    expect(Object.isFrozen(User)).toBe(true);
    const i = int();
    expect(i.primary()).not.toBe(i);
    expect(i.spec.primary).toBe(false);
  });

  it('records filters as data, the special times included', () => {
    const agg = User.transactions
      .where((t) => [t.ts.gt(_.chalk_window), t.ts.lte(t.chalk_now), t.amount.in([3, 1])])
      .select((t) => t.amount)
      .sum();
    expect(agg.node.filters).toEqual([
      {
        kind: 'compare',
        op: '>',
        left: { kind: 'column', namespace: null, name: 'ts', version: null },
        right: { kind: 'time', bound: 'window_start' },
      },
      {
        kind: 'compare',
        op: '<=',
        left: { kind: 'column', namespace: null, name: 'ts', version: null },
        right: { kind: 'time', bound: 'now' },
      },
      {
        kind: 'compare',
        op: 'in',
        left: { kind: 'column', namespace: null, name: 'amount', version: null },
        right: {
          kind: 'list',
          values: [
            { kind: 'literal', type: 'number', value: 3 },
            { kind: 'literal', type: 'number', value: 1 },
          ],
        },
      },
    ]);
    expect(_.now).toBe(_.chalk_now);
    expect(_.windowStart).toBe(_.chalk_window);
  });
});
