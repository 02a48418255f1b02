/**
 * The planner's rules (docs/semantics.md section 5): series sharing, bucket rules and retention,
 * stable ids, the store description the engine receives, the storage estimate.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  datetime,
  features,
  float,
  hasMany,
  int,
  type Materialization,
  string,
  windowed,
} from '../ts/dsl/index.js';
import {
  bytesPerBucket,
  canonicalJson,
  compile,
  findRead,
  formatBytes,
  isCronExpression,
  plan,
  renderStorageEstimate,
  toStoreDescription,
} from '../ts/planner/index.js';

const DAY = 86_400_000;

const Transaction = features('transaction', {
  id: int().primary(),
  amount: float(),
  category: int(),
  bank: string(),
  user_id: int().references('user.id'),
  ts: datetime().featureTime(),
});

type UserBase = ReturnType<typeof baseUser>;
function baseUser() {
  return features('user', { id: int().primary(), transactions: hasMany(() => Transaction) });
}

function userWith(derive: (user: UserBase) => Record<string, unknown>) {
  return features(
    'user',
    { id: int().primary(), transactions: hasMany(() => Transaction) },
    derive as never,
  );
}

const sumOf = (user: UserBase, materialization: Materialization, ...windows: string[]) =>
  windowed(...windows, {
    materialization,
    expression: user.transactions
      .where((t) => [t.ts.gt(t.chalk_window), t.ts.lte(t.chalk_now)])
      .select((t) => t.amount)
      .sum(),
  });

describe('series sharing', () => {
  it('two features summing transaction.amount by user share a series and a rule', () => {
    const p = plan([
      userWith((user) => ({
        a: sumOf(user, { bucketDuration: '1d' }, '7d'),
        b: sumOf(user, { bucketDuration: '1d' }, '30d'),
      })),
    ]);
    expect(p.series).toHaveLength(1);
    const [rule] = p.series[0]?.rules ?? [];
    expect(p.series[0]?.rules).toHaveLength(1);
    expect(rule?.retentionMs).toBe(30 * DAY);
    expect(rule?.dependents.map((d) => d.canonical)).toEqual([
      'user.a__604800__',
      'user.b__2592000__',
    ]);
    expect(p.reads.map((r) => [r.series, r.rule])).toEqual([
      [p.series[0]?.id, 0],
      [p.series[0]?.id, 0],
    ]);
  });

  it('different bucket sizes are separate rules of one series; retention is the max', () => {
    const p = plan([
      userWith((user) => ({
        hourly: sumOf(user, { bucketDuration: '1h' }, '1d', '2d'),
        daily: sumOf(user, { bucketDuration: '1d' }, '30d'),
      })),
    ]);
    expect(p.series).toHaveLength(1);
    expect(p.series[0]?.rules.map((r) => [r.bucketSizeMs, r.retentionMs])).toEqual([
      [3_600_000, 2 * DAY],
      [DAY, 30 * DAY],
    ]);
    expect(p.series[0]?.retentionMs).toBe(30 * DAY);
  });

  it('materialization: true gives each window buckets as long as itself', () => {
    const p = plan([userWith((user) => ({ t: sumOf(user, true, '1d', '7d') }))]);
    expect(p.series[0]?.rules.map((r) => r.bucketSizeMs)).toEqual([DAY, 7 * DAY]);
  });

  it('filters split series; their order and duplicates do not matter', () => {
    const p = plan([
      userWith((user) => ({
        food: windowed('7d', {
          materialization: true,
          expression: user.transactions
            .where((t) => [t.category.in([2, 1, 2]), t.bank.eq('chase')])
            .select((t) => t.amount)
            .sum(),
        }),
        food_again: windowed('7d', {
          materialization: true,
          expression: user.transactions
            .where((t) => t.bank.eq('chase'))
            .where((t) => t.category.in([1, 2]).and(t.bank.eq('chase')))
            .select((t) => t.amount)
            .mean(),
        }),
        all: sumOf(user, true, '7d'),
      })),
    ]);
    expect(p.series).toHaveLength(2);
    expect(p.series[0]?.filters.map((f) => f.text)).toEqual([
      'bank == "chase"',
      'category in [1,2]',
    ]);
    expect(p.series[0]?.filters[1]).toEqual({
      column: 'category',
      version: null,
      op: 'in',
      value: [1, 2],
      text: 'category in [1,2]',
    });
    expect(p.series[0]?.rules.map((r) => r.aggregation.kind)).toEqual(['sum', 'mean']);
  });

  it('a different bucket origin makes a different series', () => {
    const p = plan([
      userWith((user) => ({
        epoch: sumOf(user, { bucketDuration: '1d' }, '7d'),
        shifted: sumOf(user, { bucketDuration: '1d', bucketStart: '2024-01-01T06:00:00Z' }, '7d'),
        same_shift: sumOf(
          user,
          { bucketDuration: '1h', bucketStart: new Date('2024-01-01T06:00:00Z') },
          '1d',
        ),
      })),
    ]);
    expect(p.series.map((s) => s.bucketOriginMs)).toEqual([0, Date.UTC(2024, 0, 1, 6)]);
    for (const s of toStoreDescription(p).series) {
      const origins = new Set(s.rules.map((r) => r.bucketOriginMs));
      expect(origins.size).toBe(1);
    }
  });
});

describe('series ids', () => {
  const defs = () => [
    userWith((user) => ({
      total: sumOf(user, { bucketDuration: '1d' }, '7d', '30d'),
      top: windowed('7d', {
        materialization: true,
        expression: user.transactions.select((t) => t.category).approxTopK(5),
      }),
    })),
  ];

  it('are stable: sha256 of the canonical identity, first 12 hex digits', () => {
    const p = plan(defs());
    expect(p.series.map((s) => s.id)).toEqual(plan(defs()).series.map((s) => s.id));
    for (const s of p.series) expect(s.id).toMatch(/^s_[0-9a-f]{12}$/);
    expect(p.series[0]?.identity).toBe(
      '{"bucketOriginMs":0,"by":null,"column":{"name":"amount","version":null},"filters":[],"format":3,"groupKey":["user_id"],"namespace":"transaction","timeColumn":"ts","valueKind":"number","vectorDim":null}',
    );
    expect(p.series[0]?.id).toBe(
      `s_${createHash('sha256')
        .update(p.series[0]?.identity ?? '')
        .digest('hex')
        .slice(0, 12)}`,
    );
  });

  it('do not depend on the order classes are given in', () => {
    const [User] = defs();
    const a = plan([User]).series.map((s) => s.id);
    const b = plan([Transaction, User]).series.map((s) => s.id);
    expect(b).toEqual(a);
  });

  it('stay the same when the rules of a series change (docs/semantics.md section 5.3)', () => {
    const base = plan([userWith((user) => ({ x: sumOf(user, { bucketDuration: '1h' }, '7d') }))]);
    const wider = plan([userWith((user) => ({ x: sumOf(user, { bucketDuration: '1h' }, '90d') }))]);
    const coarser = plan([
      userWith((user) => ({ x: sumOf(user, { bucketDuration: '1d' }, '7d') })),
    ]);
    const more = plan([
      userWith((user) => ({
        x: sumOf(user, { bucketDuration: '1h' }, '7d'),
        y: windowed('7d', {
          materialization: { bucketDuration: '1h' },
          expression: user.transactions.select((t) => t.amount).mean(),
        }),
      })),
    ]);
    const plans = [base, wider, coarser, more];
    expect(new Set(plans.map((p) => p.series[0]?.id)).size).toBe(1);
    expect(more.series[0]?.rules.map((r) => r.aggregation.kind)).toEqual(['sum', 'mean']);
    // The former (format 2) ids hashed the rules too, so they all differ.
    const former = plans.map((p) => toStoreDescription(p).series[0]?.formerId);
    expect(new Set(former).size).toBe(4);
    for (const p of plans) {
      for (const r of p.reads) expect(p.series.some((s) => s.id === r.series)).toBe(true);
    }
  });

  it('change with the identity: another filter or bucket origin is another series', () => {
    const base = plan([userWith((user) => ({ x: sumOf(user, { bucketDuration: '1h' }, '7d') }))]);
    const moved = plan([
      userWith((user) => ({
        x: sumOf(user, { bucketDuration: '1h', bucketStart: '2024-01-01T06:00:00Z' }, '7d'),
      })),
    ]);
    expect(moved.series[0]?.id).not.toBe(base.series[0]?.id);
  });

  it('canonical JSON sorts keys at every level', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[2,{"y":2,"z":1}]},"b":1}',
    );
  });
});

describe('store description', () => {
  it('has exactly the fields the engine declares', () => {
    const p = plan([
      userWith((user) => ({
        total: sumOf(user, { bucketDuration: '1d' }, '7d', '30d'),
        p90: windowed('7d', {
          materialization: true,
          expression: user.transactions.select((t) => t.amount).approxPercentile(0.9),
        }),
        distinct: windowed('7d', {
          materialization: true,
          expression: user.transactions.select((t) => t.bank).approxCountDistinct(),
        }),
        heavy: windowed('7d', {
          materialization: true,
          expression: user.transactions
            .select((t) => t.bank)
            .approxTopK(3, { by: (t) => t.amount, returnTotalWeight: true }),
        }),
      })),
    ]);
    const d = toStoreDescription(p);
    expect(Object.keys(d)).toEqual(['series']);
    for (const s of d.series) {
      expect(Object.keys(s).sort()).toEqual(['formerId', 'id', 'rules', 'summary', 'valueKind']);
      expect(Object.keys(s.summary ?? {}).sort()).toEqual([
        'aggregations',
        'column',
        'description',
        'filters',
        'groupKey',
        'namespace',
      ]);
      for (const r of s.rules) {
        expect(Object.keys(r).sort()).toEqual([
          'aggregation',
          'bucketOriginMs',
          'bucketSizeMs',
          'retentionMs',
        ]);
      }
    }
    // p90 shares the amount series with the sum: one more rule, not one more series.
    expect(d.series.map((s) => [s.valueKind, s.rules.map((r) => r.aggregation)])).toEqual([
      ['number', [{ kind: 'sum' }, { kind: 'approx_percentile', quantile: 0.9, sketchSize: 200 }]],
      ['string', [{ kind: 'approx_count_distinct', lgK: 11 }]],
      ['string', [{ kind: 'approx_top_k', k: 3, weighted: true }]],
    ]);
    expect(d.series[0]?.rules[0]).toEqual({
      aggregation: { kind: 'sum' },
      bucketSizeMs: DAY,
      bucketOriginMs: 0,
      retentionMs: 30 * DAY,
    });
    const heavy = findRead(p, 'user.heavy_7d');
    expect(heavy?.returnTotalWeight).toBe(true);
    expect(heavy?.resultType).toEqual({ kind: 'weighted_list', of: { kind: 'string' } });
    expect(p.series[2]?.by).toEqual({ name: 'amount', version: null });
  });

  it('is a fresh mutable copy', () => {
    const p = plan([userWith((user) => ({ t: sumOf(user, true, '7d') }))]);
    const d = toStoreDescription(p);
    expect(Object.isFrozen(d.series[0])).toBe(false);
    expect(toStoreDescription(p)).toEqual(d);
  });
});

describe('storage estimate', () => {
  it('evaluates the catalog formulas: exact figures, bounds for the rest', () => {
    // Fixed-size states: 9 bytes (a tag and one f64).
    expect(bytesPerBucket({ kind: 'sum' }, 'number', null)).toBe(9);
    expect(bytesPerBucket({ kind: 'min' }, 'number', null)).toBe(9);
    // Varint counts: bounds (a count below 128 takes 2 bytes, the bound 11).
    expect(bytesPerBucket({ kind: 'count' }, 'number', null)).toBe(11);
    expect(bytesPerBucket({ kind: 'mean' }, 'number', null)).toBe(18);
    expect(bytesPerBucket({ kind: 'std' }, 'number', null)).toBe(27);
    // 128 + ceil(0.6 * 2^11).
    expect(bytesPerBucket({ kind: 'approx_count_distinct', lgK: 11 }, 'number', null)).toBe(1357);
    // 48 + clamp(12 * 10, 48, 3072) * (11 + 9).
    expect(bytesPerBucket({ kind: 'approx_top_k', k: 10, weighted: false }, 'number', null)).toBe(
      2448,
    );
    // 43 + max(2.1 * 100, 32) * 16.
    expect(
      bytesPerBucket({ kind: 'approx_percentile', quantile: 0.5, sketchSize: 100 }, 'number', null),
    ).toBe(3403);
    // 5 + 5 * (8 + 18).
    expect(bytesPerBucket({ kind: 'max_by_n', n: 5 }, 'string', null)).toBe(135);
    // 14 + 384 * 8.
    expect(bytesPerBucket({ kind: 'mean' }, 'vector', 384)).toBe(3086);
  });

  it('multiplies by the buckets kept (retention / bucket + 1) and sums per series', () => {
    const p = plan([
      userWith((user) => ({
        total: sumOf(user, { bucketDuration: '1d' }, '7d', '30d'),
        mean: windowed('30d', {
          materialization: { bucketDuration: '1d' },
          expression: user.transactions.select((t) => t.amount).mean(),
        }),
      })),
    ]);
    const s = p.series[0];
    expect(s?.rules.map((r) => [r.bucketsKept, r.bytesPerBucket, r.bytesPerKey])).toEqual([
      [31, 9, 279],
      [31, 18, 558],
    ]);
    expect(s?.bytesPerKey).toBe(837);
    expect(p.bytesPerKey).toBe(837);
    expect(formatBytes(837)).toBe('837 B');
    expect(formatBytes(1229 * 31)).toBe('37.2 KiB');
    expect(renderStorageEstimate(p)).toContain('series 1: 837 B per user_id key');
  });
});

describe('aggregations and result types', () => {
  it('map the DSL methods to engine kinds and value types', () => {
    const p = plan([
      userWith((user) => {
        const amounts = user.transactions.select((t) => t.amount);
        return {
          var_pop: windowed('7d', { materialization: true, expression: amounts.var() }),
          var_sample: windowed('7d', {
            materialization: true,
            expression: amounts.var({ sample: true }),
          }),
          std_pop: windowed('7d', { materialization: true, expression: amounts.std() }),
          std_sample: windowed('7d', {
            materialization: true,
            expression: amounts.std({ sample: true }),
          }),
          int_sum: windowed('7d', {
            materialization: true,
            expression: user.transactions.select((t) => t.category).sum(),
          }),
          last_ts: windowed('7d', {
            materialization: true,
            expression: user.transactions.select((t) => t.ts).max(),
          }),
          rows: windowed('7d', { materialization: true, expression: user.transactions.count() }),
        };
      }),
    ]);
    expect(
      p.features.map((f) => [f.name, f.source?.aggregation.kind, f.resultType.kind, f.default]),
    ).toEqual([
      ['var_pop', 'var', 'float', null],
      ['var_sample', 'var_sample', 'float', null],
      ['std_pop', 'std', 'float', null],
      ['std_sample', 'std_sample', 'float', null],
      ['int_sum', 'sum', 'int', null],
      ['last_ts', 'max', 'datetime', null],
      ['rows', 'count', 'int', 0], // count-like aggregations default to 0
    ]);
    expect(p.series.find((s) => s.column === null)?.rules[0]?.aggregation).toEqual({
      kind: 'count',
    });
  });
});

describe('compile on a module namespace', () => {
  it('finds feature classes among exports and reaches related classes', () => {
    const User = userWith((user) => ({ t: sumOf(user, true, '7d') }));
    const { plan: p } = compile({ User, notAClass: 42, helper: () => 0 });
    expect(p.classes.map((c) => c.namespace)).toEqual(['transaction', 'user']);
  });

  it('baseUser has no windowed features', () => {
    expect(plan([baseUser()]).series).toEqual([]);
  });
});

describe('backfill schedules', () => {
  it('accept the cron expressions cron-parser reads, and refuse the rest', () => {
    for (const ok of [
      '0 0 * * *',
      '*/15 9-17 * * MON-FRI',
      '0 30 2 1,15 * ?',
      '30 0 0 * * *',
      '0 0 L * *',
      '0 0 * * 5#3',
      '0 12 * jan-mar 1L',
      '0 0 * * 7',
      '@daily',
    ]) {
      expect([ok, isCronExpression(ok)]).toEqual([ok, true]);
    }
    for (const bad of [
      '61 * * * *',
      '0 24 * * *',
      '0 0 32 * *',
      '0 0 0 * *',
      '0 0 * 13 *',
      '* * * * 8',
      '*/0 * * * *',
      '5-1 * * * *',
      'a b c d e',
      '0 0 * *',
      '@often',
      '0 0 15W * *',
    ]) {
      expect([bad, isCronExpression(bad)]).toEqual([bad, false]);
    }
  });

  it('report a schedule that is neither cron nor a duration', () => {
    const { diagnostics } = compile([
      userWith((user) => ({
        x: sumOf(user, { bucketDuration: '1d', backfillSchedule: '0 25 * * *' }, '7d'),
      })),
    ]);
    expect(diagnostics.map((d) => d.code)).toEqual(['invalid_backfill_schedule']);
  });
});
