/**
 * Diagnostics: every problem in definitions comes back as data naming the feature (and
 * the window), `plan()` throws a DefinitionError carrying them, and features with errors
 * are left out while the others are planned. Lines marked `@ts-expect-error` are
 * problems the compiler already rejects; the planner reports them for untyped callers.
 */
import { describe, expect, it } from 'vitest';
import {
  type AnyFeatureClass,
  boolean,
  DefinitionError,
  type Diagnostic,
  datetime,
  features,
  float,
  formatDiagnostic,
  groupByWindowed,
  hasMany,
  int,
  string,
  vector,
  versioned,
  windowed,
} from '../ts/dsl/index.js';
import { compile, plan, validate } from '../ts/planner/index.js';

const Transaction = features('transaction', {
  id: int().primary(),
  amount: versioned({ 1: float(), 2: float() }, { default: 1 }),
  category: int(),
  bank: string(),
  flagged: boolean(),
  user_id: int().references('user.id'),
  ts: datetime().featureTime(),
  settled_at: datetime(),
  embedding: vector(384),
});

/** A user class whose derived features are `derive(user)`, planned with Transaction. */
function userWith(
  derive: (user: typeof BaseUser) => Record<string, unknown>,
  namespace = 'user',
): AnyFeatureClass {
  return features(
    namespace,
    { id: int().primary(), transactions: hasMany(() => Transaction) },
    derive as never,
  );
}

const BaseUser = features('user', {
  id: int().primary(),
  transactions: hasMany(() => Transaction),
});

const sumAmount = (user: typeof BaseUser) => user.transactions.select((t) => t.amount).sum();

function diagnose(cls: AnyFeatureClass | readonly AnyFeatureClass[]): readonly Diagnostic[] {
  return validate(Array.isArray(cls) ? cls : [cls]);
}

/** The single diagnostic with `code`, checked to name `feature` (and `window`). */
function one(
  diagnostics: readonly Diagnostic[],
  code: Diagnostic['code'],
  feature: string,
  window?: string,
): Diagnostic {
  const found = diagnostics.filter((d) => d.code === code);
  expect(found, JSON.stringify(diagnostics, null, 2)).toHaveLength(1);
  const d = found[0] as Diagnostic;
  expect(d.feature).toBe(feature);
  expect(d.message).toContain(feature);
  if (window !== undefined) {
    expect(d.window).toBe(window);
    expect(d.message).toContain(`'${window}'`);
  }
  return d;
}

describe('bucket sizes', () => {
  it('a window with no bucket size', () => {
    const d = one(
      diagnose(
        userWith((user) => ({
          total: windowed('7d', '30d', {
            materialization: { bucketDurations: { '1d': ['7d'] } },
            expression: sumAmount(user),
          }),
        })),
      ),
      'missing_bucket_size',
      'user.total',
      '30d',
    );
    expect(d.message).toBe(
      "user.total: window '30d' has no bucket size; list it in materialization.bucketDurations or set materialization.bucketDuration",
    );
    expect(d.severity).toBe('error');
  });

  it('a window claimed by two sizes', () => {
    const d = one(
      diagnose(
        userWith((user) => ({
          total: windowed('7d', '30d', {
            materialization: {
              bucketDuration: '1d',
              bucketDurations: { '1d': ['7d'], '7d': ['168h', '30d'] },
            },
            expression: sumAmount(user),
          }),
        })),
      ),
      'window_claimed_twice',
      'user.total',
      '7d',
    );
    expect(d.message).toContain("('1d', '7d')");
  });

  it('a bucketDurations window the feature does not declare', () => {
    one(
      diagnose(
        userWith((user) => ({
          total: windowed('7d', {
            materialization: { bucketDuration: '1d', bucketDurations: { '1d': ['14d'] } },
            expression: sumAmount(user),
          }),
        })),
      ),
      'unknown_window',
      'user.total',
      '14d',
    );
  });

  it('bad materialization options', () => {
    const diagnostics = diagnose(
      userWith((user) => ({
        total: windowed('7d', {
          materialization: {
            bucketDuration: '0s',
            bucketStart: '2024-13-45',
            backfillSchedule: 'every day',
            backfillTags: ['source:a'] as never,
            continuousBufferDuration: 'soon',
          },
          expression: sumAmount(user),
        }),
      })),
    );
    one(diagnostics, 'invalid_bucket_duration', 'user.total');
    one(diagnostics, 'invalid_bucket_start', 'user.total');
    one(diagnostics, 'invalid_backfill_schedule', 'user.total');
    one(diagnostics, 'invalid_backfill_tags', 'user.total');
    expect(one(diagnostics, 'invalid_duration', 'user.total').message).toContain(
      "continuousBufferDuration 'soon'",
    );
  });

  it('plans a continuous buffer on every read of the feature', () => {
    const { plan: planned, diagnostics } = compile([
      userWith((user) => ({
        total: windowed('7d', '30d', {
          materialization: { bucketDuration: '1d', continuousBufferDuration: '36h' },
          expression: sumAmount(user),
        }),
      })),
    ]);
    expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(planned.reads.map((r) => r.continuousBufferMs)).toEqual([
      36 * 3_600_000,
      36 * 3_600_000,
    ]);
  });

  it('warns about buckets longer than the window', () => {
    const d = one(
      diagnose(
        userWith((user) => ({
          total: windowed('1h', {
            materialization: { bucketDuration: '1d' },
            expression: sumAmount(user),
          }),
        })),
      ),
      'bucket_larger_than_window',
      'user.total',
      '1h',
    );
    expect(d.severity).toBe('warning');
  });
});

describe('windows and durations', () => {
  it('a bad duration names the window and shows valid examples', () => {
    const d = one(
      diagnose(
        userWith((user) => ({
          total: windowed('7d', '1x', { materialization: true, expression: sumAmount(user) }),
        })),
      ),
      'invalid_duration',
      'user.total',
      '1x',
    );
    expect(d.message).toBe(
      "user.total: window '1x' is not a duration: invalid duration '1x': unknown part '1x'; valid examples: '10m', '1h', '1h30m'",
    );
  });

  it('a bad bucket duration', () => {
    const d = one(
      diagnose(
        userWith((user) => ({
          total: windowed('7d', {
            materialization: { bucketDuration: '1y' },
            expression: sumAmount(user),
          }),
        })),
      ),
      'invalid_duration',
      'user.total',
    );
    expect(d.message).toContain("materialization.bucketDuration '1y' is not a duration");
  });

  it('zero, sub-second and duplicate windows', () => {
    const diagnostics = diagnose(
      userWith((user) => ({
        total: windowed('0s', '1500ms', '7d', '168h', {
          materialization: true,
          expression: sumAmount(user),
        }),
        none: windowed({ materialization: true, expression: sumAmount(user) }),
      })),
    );
    expect(diagnostics.filter((d) => d.code === 'invalid_window').map((d) => d.window)).toEqual([
      '0s',
      '1500ms',
    ]);
    expect(one(diagnostics, 'duplicate_window', 'user.total', '168h').message).toContain(
      "window '7d'",
    );
    one(diagnostics, 'missing_windows', 'user.none');
  });
});

describe('expressions', () => {
  it('a numeric aggregation over a string column', () => {
    const d = one(
      diagnose(
        userWith((user) => ({
          bad_sum: windowed('7d', {
            materialization: true,
            // @ts-expect-error sum() is not offered for string columns
            expression: user.transactions.select((t) => t.bank).sum(),
          }),
        })),
      ),
      'aggregation_type_mismatch',
      'user.bad_sum',
    );
    expect(d.message).toBe(
      'user.bad_sum: sum cannot aggregate transaction.bank, which is string (sum accepts int, float, boolean, vector)',
    );
  });

  it('an unknown column and an unknown relation', () => {
    const Merchant = features('merchant', { id: int(), transactions: hasMany(() => Transaction) });
    const diagnostics = diagnose(
      userWith((user) => ({
        typo: windowed('7d', {
          materialization: true,
          // @ts-expect-error no column amout
          expression: user.transactions.select((t) => t.amout).sum(),
        }),
        foreign: windowed('7d', {
          materialization: true,
          expression: Merchant.transactions.select((t) => t.amount).sum(),
        }),
      })),
    );
    expect(one(diagnostics, 'unknown_column', 'user.typo').message).toContain(
      "transaction has no column 'amout'",
    );
    expect(one(diagnostics, 'unknown_relation', 'user.foreign').message).toContain(
      'merchant.transactions, a relation of another class',
    );
  });

  it('bad aggregation arguments', () => {
    const diagnostics = diagnose(
      userWith((user) => ({
        top0: windowed('7d', {
          materialization: true,
          expression: user.transactions.select((t) => t.category).approxTopK(0),
        }),
        top_frac: windowed('7d', {
          materialization: true,
          expression: user.transactions.select((t) => t.category).approxTopK(2.5),
        }),
        p150: windowed('7d', {
          materialization: true,
          expression: user.transactions.select((t) => t.amount).approxPercentile(1.5),
        }),
        n0: windowed('7d', {
          materialization: true,
          expression: user.transactions.select((t) => t.bank).maxByN((t) => t.amount, 0),
        }),
        lgk: windowed('7d', {
          materialization: true,
          expression: user.transactions.select((t) => t.bank).approxCountDistinct({ lgK: 2 }),
        }),
      })),
    );
    const bad = diagnostics.filter((d) => d.code === 'invalid_aggregation_argument');
    expect(bad.map((d) => d.message)).toEqual([
      'user.top0: approx_top_k k must be a whole number in [1, 1000], got 0',
      'user.top_frac: approx_top_k k must be a whole number in [1, 1000], got 2.5',
      'user.p150: approx_percentile quantile must be a number in [0, 1], got 1.5',
      'user.n0: max_by_n n must be a whole number in [1, 1000], got 0',
      'user.lgk: approx_count_distinct lgK must be a whole number in [4, 26], got 2',
    ]);
  });

  it("min_by_n's by column must be numeric", () => {
    const d = one(
      diagnose(
        userWith((user) => ({
          lowest: windowed('7d', {
            materialization: true,
            // @ts-expect-error by must be a number or date column
            expression: user.transactions.select((t) => t.category).minByN((t) => t.bank, 3),
          }),
        })),
      ),
      'by_not_numeric',
      'user.lowest',
    );
    expect(d.message).toContain('orders by transaction.bank, which is string');
  });

  it('a vector default of the wrong dimension', () => {
    const d = one(
      diagnose(
        userWith((user) => ({
          avg_embedding: windowed('30d', {
            materialization: true,
            expression: user.transactions.select((t) => t.embedding).mean(),
            default: [0, 0, 0],
          }),
        })),
      ),
      'vector_dim_mismatch',
      'user.avg_embedding',
    );
    expect(d.message).toBe(
      'user.avg_embedding: default [0,0,0] has 3 components but the aggregated vector column has 384',
    );
  });

  it('a default of the wrong type', () => {
    one(
      diagnose(
        userWith((user) => ({
          total: windowed('7d', {
            materialization: true,
            expression: sumAmount(user),
            default: 'zero' as never,
          }),
        })),
      ),
      'default_type_mismatch',
      'user.total',
    );
  });

  it('filters that cannot run at ingest, bad time bounds, mismatched types', () => {
    const diagnostics = diagnose(
      userWith((user) => ({
        backwards: windowed('7d', {
          materialization: true,
          expression: user.transactions.where((t) => t.ts.lt(t.chalk_window)).count(),
        }),
        other_time: windowed('7d', {
          materialization: true,
          expression: user.transactions.where((t) => t.settled_at.gt(t.chalk_window)).count(),
        }),
        two_columns: windowed('7d', {
          materialization: true,
          expression: user.transactions.where((t) => t.category.eq(t.user_id)).count(),
        }),
        wrong_type: windowed('7d', {
          materialization: true,
          // @ts-expect-error category is a number
          expression: user.transactions.where((t) => t.category.eq('food')).count(),
        }),
      })),
    );
    expect(one(diagnostics, 'invalid_time_filter', 'user.backwards').message).toContain(
      'ts < chalk_window is not a window bound',
    );
    expect(one(diagnostics, 'time_column_mismatch', 'user.other_time').message).toContain(
      "transaction's feature time is ts",
    );
    one(diagnostics, 'unsupported_filter', 'user.two_columns');
    one(diagnostics, 'filter_type_mismatch', 'user.wrong_type');
  });

  it('groupBy belongs to groupByWindowed, which needs one', () => {
    const diagnostics = diagnose(
      userWith((user) => ({
        grouped: windowed('7d', {
          materialization: true,
          expression: user.transactions.groupBy((t) => t.bank).count() as never,
        }),
        ungrouped: groupByWindowed('7d', {
          materialization: true,
          expression: user.transactions.count() as never,
        }),
      })),
    );
    one(diagnostics, 'unexpected_group_by', 'user.grouped');
    one(diagnostics, 'missing_group_by', 'user.ungrouped');
  });

  it('versions that do not exist', () => {
    const diagnostics = diagnose(
      userWith((user) => ({
        v3: windowed('7d', {
          materialization: true,
          // @ts-expect-error amount has versions 1 and 2
          expression: user.transactions.select((t) => t.amount.version(3)).sum(),
        }),
        unversioned: windowed('7d', {
          materialization: true,
          // @ts-expect-error category is not versioned
          expression: user.transactions.select((t) => t.category.version(2)).sum(),
        }),
        bad_default: versioned(
          { 1: windowed('7d', { materialization: true, expression: sumAmount(user) }) },
          { default: 2 as never },
        ),
      })),
    );
    expect(diagnostics.filter((d) => d.code === 'invalid_version').map((d) => d.feature)).toEqual([
      'user.v3',
      'user.unversioned',
      'user.bad_default',
    ]);
  });

  it('an expression without materialization is a warning; materialization without expression an error', () => {
    const diagnostics = diagnose(
      userWith((user) => ({
        raw: windowed('7d', { expression: sumAmount(user) }),
        empty: windowed('7d', { materialization: true } as never),
      })),
    );
    expect(one(diagnostics, 'not_materialized', 'user.raw').severity).toBe('warning');
    one(diagnostics, 'missing_expression', 'user.empty');
  });
});

describe('classes and joins', () => {
  it('a has-many without a foreign key, and one with two', () => {
    const Payment = features('payment', {
      id: int(),
      payer_id: int().references('account.id'),
      payee_id: int().references('account.id'),
      amount: float(),
      ts: datetime(),
    });
    const Note = features('note', { id: int(), body: string(), ts: datetime() });
    const Account = features('account', {
      id: int(),
      payments: hasMany(() => Payment),
      notes: hasMany(() => Note),
    });
    const diagnostics = diagnose(Account);
    expect(one(diagnostics, 'ambiguous_join', 'account.payments').message).toContain(
      'payment.payer_id and payment.payee_id all reference account.id',
    );
    expect(one(diagnostics, 'missing_join', 'account.notes').message).toContain(
      'note has no foreign key to account',
    );
  });

  it('join conditions must be column equalities, of matching types', () => {
    const Other = features('other', {
      id: int(),
      user_ref: string(),
      ts: datetime(),
    });
    const Owner = features('owner', {
      id: int(),
      bad: hasMany(
        () => Other,
        (o) => o.user_ref.eq('x'),
      ),
      mismatched: hasMany(
        () => Other,
        (o) => o.user_ref.eq(Owner.id as never),
      ),
    });
    const diagnostics = diagnose(Owner);
    one(diagnostics, 'invalid_join', 'owner.bad');
    expect(one(diagnostics, 'join_type_mismatch', 'owner.mismatched').severity).toBe('warning');
  });

  it('names: reserved, invalid, duplicated namespaces, window alias collisions', () => {
    const A = features('dup', { id: int(), chalk_now: int() });
    const B = features('dup', { id: int() });
    const C = features('bad-name', { id: int() });
    const D = features('coll', {
      id: int(),
      count_7d: int(),
      count: windowed('7d', { default: 0 }),
    });
    const diagnostics = diagnose([A, B, C, D]);
    one(diagnostics, 'reserved_name', 'dup.chalk_now');
    one(diagnostics, 'duplicate_namespace', 'dup');
    one(diagnostics, 'invalid_name', 'bad-name');
    one(diagnostics, 'name_collision', 'coll.count_7d', '7d');
  });

  it('missing primary key and missing feature time', () => {
    const Event = features('event', {
      account: int().references('keyless.account'),
      value: float(),
    });
    const Keyless = features('keyless', { account: int(), events: hasMany(() => Event) }, (k) => ({
      total: windowed('1d', {
        materialization: true,
        expression: k.events.select((e) => e.value).sum(),
      }),
    }));
    const diagnostics = diagnose(Keyless);
    one(diagnostics, 'missing_primary_key', 'keyless.total');
    one(diagnostics, 'missing_feature_time', 'keyless.total');
  });

  it('a foreign key to a missing column', () => {
    const T = features('t', { id: int(), u: int().references('user.nope') });
    const diagnostics = diagnose([T, BaseUser]);
    expect(one(diagnostics, 'invalid_reference', 't.u').message).toContain(
      'user.nope, which is not a column of user',
    );
  });
});

describe('plan() and compile()', () => {
  const Broken = userWith((user) => ({
    good: windowed('7d', { materialization: true, expression: sumAmount(user) }),
    bad: windowed('7d', '30d', {
      materialization: { bucketDurations: { '1d': ['7d'] } },
      expression: sumAmount(user),
    }),
  }));

  it('plan() throws a DefinitionError carrying every diagnostic', () => {
    let error: unknown;
    try {
      plan([Broken]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DefinitionError);
    const e = error as DefinitionError;
    expect(e.code).toBe('DEFINITION_ERROR');
    expect(e.diagnostics.map((d) => d.code)).toEqual(['missing_bucket_size']);
    expect(e.message).toBe(
      "1 problem in feature definitions:\n  - error[missing_bucket_size] user.bad (30d): user.bad: window '30d' has no bucket size; list it in materialization.bucketDurations or set materialization.bucketDuration",
    );
  });

  it('compile() plans the valid features and reports the rest', () => {
    const { plan: p, diagnostics } = compile([Broken]);
    expect(p.features.map((f) => f.feature)).toEqual(['user.good']);
    expect(p.reads.map((r) => r.canonical)).toEqual(['user.good__604800__']);
    expect(diagnostics.map(formatDiagnostic)).toEqual([
      "error[missing_bucket_size] user.bad (30d): user.bad: window '30d' has no bucket size; list it in materialization.bucketDurations or set materialization.bucketDuration",
    ]);
  });

  it('warnings do not throw', () => {
    const Warned = userWith((user) => ({
      raw: windowed('7d', { expression: sumAmount(user) }),
    }));
    expect(plan([Warned]).features[0]?.kind).toBe('unmaterialized');
  });
});
