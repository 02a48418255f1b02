/**
 * Plan snapshots for the example feature modules under fixtures/ (materialized
 * aggregations, joins, bucket durations, backfill settings, streams, versions and
 * windowed resolvers).
 * Each snapshot holds the diagnostics, the plan, the store description and the
 * `aggregate list` output; the assertions next to them pin what each example is about.
 */
import { describe, expect, it } from 'vitest';
import { MAX_DURATION_MS } from '../ts/dsl/index.js';
import {
  compile,
  type Plan,
  type PlanInput,
  renderAggregateList,
  renderStorageEstimate,
  toStoreDescription,
} from '../ts/planner/index.js';
import * as backfillTags from './fixtures/backfill-tags.js';
import * as bucketDurations from './fixtures/bucket-durations.js';
import * as compositeJoin from './fixtures/composite-join.js';
import * as cronBackfill from './fixtures/cron-backfill.js';
import * as groupByWindowed from './fixtures/group-by-windowed.js';
import * as implicitJoin from './fixtures/implicit-join.js';
import * as streaming from './fixtures/streaming.js';
import * as userTransactions from './fixtures/user-transactions.js';
import * as versioned from './fixtures/versioned.js';
import * as windowResolvers from './fixtures/window-resolvers.js';

const DAY = 86_400_000;

const fixtures = {
  'user-transactions': userTransactions,
  'implicit-join': implicitJoin,
  'composite-join': compositeJoin,
  'bucket-durations': bucketDurations,
  'cron-backfill': cronBackfill,
  'backfill-tags': backfillTags,
  'group-by-windowed': groupByWindowed,
  streaming,
  versioned,
  'window-resolvers': windowResolvers,
} as const;

/** Long numeric lists (384-component defaults) abbreviated so snapshots stay readable. */
function abbreviate(value: unknown): unknown {
  if (Array.isArray(value)) {
    if (value.length > 8 && value.every((v) => typeof v === 'number')) {
      return `<${value.length} numbers: ${value.slice(0, 3).join(', ')}, ...>`;
    }
    return value.map(abbreviate);
  }
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, abbreviate(v)]));
  }
  return value;
}

function planOf(mod: PlanInput): Plan {
  const { plan, diagnostics } = compile(mod);
  expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return plan;
}

describe.each(Object.entries(fixtures))('%s', (_name, mod) => {
  it('plans without errors (snapshot)', () => {
    const { plan, diagnostics } = compile(mod);
    expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(abbreviate({ diagnostics, plan })).toMatchSnapshot();
  });

  it('describes the store (snapshot)', () => {
    expect(toStoreDescription(planOf(mod))).toMatchSnapshot();
  });

  it('lists the aggregations and their storage (snapshot)', () => {
    const p = planOf(mod);
    expect(`${renderAggregateList(p)}\n\n${renderStorageEstimate(p)}`).toMatchSnapshot();
  });

  it('is deterministic, frozen and serialisable', () => {
    const a = planOf(mod);
    const b = planOf(mod);
    expect(b).toEqual(a);
    expect(JSON.parse(JSON.stringify(a))).toEqual(a);
    const unfrozen: string[] = [];
    const walk = (v: unknown, path: string): void => {
      if (typeof v !== 'object' || v === null) return;
      if (!Object.isFrozen(v)) unfrozen.push(path);
      for (const [k, child] of Object.entries(v)) walk(child, `${path}.${k}`);
    };
    walk(a, 'plan');
    expect(unfrozen).toEqual([]);
  });
});

describe('what each example pins', () => {
  it('user-transactions: sum, approx_top_k(10), vector mean with a 384-long default', () => {
    const p = planOf(userTransactions);
    expect(p.series.map((s) => [s.column?.name, s.rules.map((r) => r.aggregation)])).toEqual([
      ['amount', [{ kind: 'sum' }]],
      ['category', [{ kind: 'approx_top_k', k: 10, weighted: false }]],
      ['embedding', [{ kind: 'mean' }]],
    ]);
    const vectorSeries = p.series[2];
    expect(vectorSeries).toMatchObject({
      valueKind: 'vector',
      vectorDim: 384,
      retentionMs: MAX_DURATION_MS,
    });
    const avg = p.reads.find((r) => r.canonical === 'user.avg_embedding__all__');
    expect(avg?.resultType).toEqual({ kind: 'vector', dim: 384 });
    expect(avg?.default).toHaveLength(384);
    expect(
      p.reads.find((r) => r.canonical === 'user.most_active_categories__2592000__')?.resultType,
    ).toEqual({
      kind: 'list',
      of: { kind: 'int' },
    });
  });

  it('implicit join: the foreign key becomes the series key', () => {
    const p = planOf(implicitJoin);
    expect(p.series).toHaveLength(1);
    expect(p.series[0]?.groupKey).toEqual(['user_id']);
    expect(p.reads[0]?.key).toEqual([{ seriesColumn: 'user_id', ownerColumn: 'id' }]);
    expect(p.classes.find((c) => c.namespace === 'transaction')?.columns[3]?.references).toBe(
      'user.id',
    );
  });

  it('composite join: (bank, user_id) keys; max_by_n and min_by_n share a series', () => {
    const p = planOf(compositeJoin);
    expect(p.classes.find((c) => c.namespace === 'user')?.relations).toEqual([
      {
        name: 'transactions',
        target: 'transaction',
        join: [
          { target: 'bank', owner: 'bank' },
          { target: 'user_id', owner: 'id' },
        ],
      },
    ]);
    const [sums, banks] = p.series;
    expect(sums?.groupKey).toEqual(['bank', 'user_id']);
    expect(banks?.column?.name).toBe('bank');
    expect(banks?.by?.name).toBe('amount');
    expect(banks?.valueKind).toBe('string');
    expect(banks?.rules.map((r) => r.aggregation)).toEqual([
      { kind: 'max_by_n', n: 5 },
      { kind: 'min_by_n', n: 5 },
    ]);
    expect(p.reads.find((r) => r.feature === 'user.top_5_bank_amounts')?.key).toEqual([
      { seriesColumn: 'bank', ownerColumn: 'bank' },
      { seriesColumn: 'user_id', ownerColumn: 'id' },
    ]);
  });

  it('bucket durations: 1d buckets for 1d/7d/30d, 5d buckets for 60d/90d/180d', () => {
    const p = planOf(bucketDurations);
    const rules = p.series[0]?.rules ?? [];
    expect(
      rules.map((r) => [
        r.bucketSizeMs / DAY,
        r.retentionMs / DAY,
        r.dependents.map((d) => d.window),
      ]),
    ).toEqual([
      [1, 30, ['1d', '7d', '30d']],
      [5, 180, ['60d', '90d', '180d']],
    ]);
    expect(rules.map((r) => r.bucketsKept)).toEqual([31, 37]);
  });

  it('cron backfill schedule', () => {
    const p = planOf(cronBackfill);
    expect(p.features[0]?.materialization).toEqual({
      bucketOriginMs: 0,
      backfillSchedule: { kind: 'cron', expression: '0 0 * * *' },
      backfillTags: [],
      continuousBufferMs: null,
    });
    expect(p.reads.map((r) => r.continuousBufferMs)).toEqual([null, null]);
    expect(p.series[0]?.retentionMs).toBe(90 * DAY);
  });

  it('backfill tags', () => {
    const p = planOf(backfillTags);
    expect(p.features[0]?.materialization?.backfillTags).toEqual([[], ['source:a'], ['source:b']]);
  });

  it('group_by_windowed: the reference aggregate list table', () => {
    const p = planOf(groupByWindowed);
    expect(renderAggregateList(p)).toMatchInlineSnapshot(`
      " Series  Namespace    Group                Agg     Bucket  Retention  Aggregation  Dependent Features
      ─────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────
       1       transaction  user_id merchant_id  amount  1d      30d        sum          user.txn_sum_by_merchant merchant.txn_sum_by_user
       1       transaction  user_id merchant_id  amount  1d      30d        count        user.txn_count_by_merchant
       2       transaction  user_id              amount  1d      30d        sum          user.txn_sum"
    `);
    const merchantRead = p.reads.find((r) => r.feature === 'merchant.txn_sum_by_user');
    expect(merchantRead).toMatchObject({
      key: [{ seriesColumn: 'merchant_id', ownerColumn: 'id' }],
      groupBy: ['user_id'],
      series: p.series[0]?.id,
      rule: 0,
    });
  });

  it('streaming: sum and mean with materialization: true share one series, 30d buckets', () => {
    const p = planOf(streaming);
    expect(p.series).toHaveLength(1);
    expect(p.series[0]?.rules.map((r) => [r.aggregation.kind, r.bucketSizeMs / DAY])).toEqual([
      ['sum', 30],
      ['mean', 30],
    ]);
    expect(p.reads.map((r) => r.default)).toEqual([0, 0]);
  });

  it('versioned: each version of total_spend gets its own series over its own amount version', () => {
    const p = planOf(versioned);
    expect(p.series.map((s) => s.column)).toEqual([
      { name: 'amount', version: 1 },
      { name: 'amount', version: 2 },
    ]);
    expect(new Set(p.series.map((s) => s.id)).size).toBe(2);
    expect(p.reads.map((r) => [r.canonical, r.isDefaultVersion])).toEqual([
      ['user.total_spend__2592000__@1', true],
      ['user.total_spend__2592000__@2', false],
    ]);
  });

  it('window resolvers: features without expression are planned but get no series', () => {
    const p = planOf(windowResolvers);
    expect(p.features.map((f) => [f.feature, f.kind])).toEqual([
      ['user.num_failed_logins', 'resolver'],
      ['user.failed_login_count', 'materialized'],
      ['stream_feature.count', 'resolver'],
    ]);
    expect(p.series).toHaveLength(1);
    expect(p.series[0]?.filters).toEqual([
      { column: 'failed', version: null, op: '==', value: true, text: 'failed == true' },
    ]);
    expect(p.series[0]?.column).toBeNull();
  });
});
