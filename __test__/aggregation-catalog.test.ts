/**
 * The aggregation catalog is written once, in the Rust core, and reaches TypeScript as a
 * generated file. These tests fail when the checked-in file is stale, when the storage
 * estimate disagrees with what the store really writes, and when an argument the
 * planner accepts at its documented maximum cannot be opened by the engine.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script without types
import { CATALOG_FILE, nativeCatalog, renderCatalog } from '../scripts/generate-catalog.mjs';
import { BucketEngine } from '../ts/bucket-engine.js';
import { datetime, features, float, hasMany, int, string, windowed } from '../ts/dsl/index.js';
import { AGGREGATIONS, aggregationEntry, ITEM_BYTES } from '../ts/planner/aggregations.js';
import { compile } from '../ts/planner/compile.js';
import { bytesPerBucket } from '../ts/planner/storage.js';
import type { AggregationDescription } from '../ts/planner/types.js';
import { Tessera } from '../ts/tessera.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-catalog-'));
  dirs.push(dir);
  return dir;
}

const NOW = Date.UTC(2026, 0, 31, 12);
const HOUR = 3_600_000;
/**
 * Bytes of the bucket key of one integer group key (crates/store/src/key.rs): series
 * number u32, group-key length u16, `i` + i64, bucket size u64, bucket start i64. A
 * commit's `bytesWritten` counts keys and records.
 */
const KEY_BYTES = 4 + 2 + 9 + 8 + 8;

describe('the generated catalog', () => {
  it('is what the native engine reports (run `npm run generate:catalog` when this fails)', () => {
    expect(readFileSync(CATALOG_FILE, 'utf8')).toBe(renderCatalog(nativeCatalog()));
  });

  it('names every aggregation once, with arguments the planner can read', () => {
    const names = AGGREGATIONS.map((a) => a.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain('approx_count_distinct');
    for (const a of AGGREGATIONS) {
      for (const arg of a.arguments) {
        if (arg.kind === 'integer') {
          expect(arg.min).toBeLessThanOrEqual(arg.max ?? Number.NaN);
          expect(arg.required).toBe(!('default' in arg));
        }
      }
    }
    // The percentile sketch's default size is the one its accuracy figures assume.
    const size = aggregationEntry('approx_percentile').arguments.find(
      (a) => a.name === 'sketchSize',
    );
    expect(size && 'default' in size ? size.default : undefined).toBe(200);
  });
});

/** One series per aggregation: a store with one rule, so a commit's bytes are one state. */
function oneRuleStore(aggregation: AggregationDescription, valueKind: 'number' | 'string') {
  return BucketEngine.open(tempDir(), {
    series: [
      {
        id: 's',
        valueKind,
        rules: [{ aggregation, bucketSizeMs: HOUR, bucketOriginMs: 0, retentionMs: 24 * HOUR }],
      },
    ],
  });
}

describe('the storage estimate against real encodings', () => {
  const cases: [AggregationDescription, 'number' | 'string'][] = [
    [{ kind: 'sum' }, 'number'],
    [{ kind: 'count' }, 'number'],
    [{ kind: 'count' }, 'string'],
    [{ kind: 'min' }, 'number'],
    [{ kind: 'max' }, 'number'],
    [{ kind: 'mean' }, 'number'],
    [{ kind: 'var' }, 'number'],
    [{ kind: 'std_sample' }, 'number'],
    [{ kind: 'min_by_n', n: 5 }, 'number'],
    [{ kind: 'max_by_n', n: 5 }, 'string'],
    [{ kind: 'approx_count_distinct', lgK: 8 }, 'number'],
    [{ kind: 'approx_count_distinct', lgK: 11 }, 'string'],
    [{ kind: 'approx_top_k', k: 10, weighted: false }, 'string'],
    [{ kind: 'approx_top_k', k: 10, weighted: true }, 'number'],
    [{ kind: 'approx_percentile', quantile: 0.5, sketchSize: 50 }, 'number'],
  ];
  it.each(cases)('%o over %s columns', (aggregation, valueKind) => {
    const rows = 5_000;
    const engine = oneRuleStore(aggregation, valueKind);
    const strings = Array.from({ length: rows }, (_, i) => `item-${String(i).padStart(11, '0')}`);
    const values =
      valueKind === 'string'
        ? { strings, codes: Uint32Array.from({ length: rows }, (_, i) => i) }
        : { numbers: Float64Array.from({ length: rows }, (_, i) => (i * 7919) % 100_003) };
    const report = engine.commitBatches([
      {
        seriesId: 's',
        keys: [{ ints: new Float64Array(rows).fill(1) }],
        // All in one bucket.
        timestampsMs: new Float64Array(rows).fill(NOW - 1),
        by: Float64Array.from({ length: rows }, (_, i) => 1 + (i % 13)),
        ...values,
      },
    ]);
    engine.close();
    expect(report.bucketsWritten).toBe(1);
    const stateBytes = report.bytesWritten - KEY_BYTES;
    const estimate = bytesPerBucket(aggregation, valueKind, null);
    expect(stateBytes).toBeGreaterThan(0);
    expect(stateBytes).toBeLessThanOrEqual(estimate);
    if (aggregationEntry(aggregation.kind).stateBytes.exact) {
      expect(stateBytes).toBe(estimate);
    }
  });

  it('fixed-size states are the reference figure: 9 bytes for sum, min and max', () => {
    for (const kind of ['sum', 'min', 'max'] as const) {
      expect(bytesPerBucket({ kind }, 'number', null)).toBe(9);
    }
    expect(ITEM_BYTES.number).toBe(9);
  });
});

describe('every argument at its documented maximum', () => {
  it('plans, opens a store, ingests and answers', () => {
    const max = (kind: string, name: string): number => {
      const arg = aggregationEntry(kind as AggregationDescription['kind']).arguments.find(
        (a) => a.name === name,
      );
      if (arg === undefined || !('max' in arg) || arg.max === undefined) {
        throw new Error(`${kind} has no maximum for ${name}`);
      }
      return arg.max;
    };
    const Event = features('event', {
      id: int(),
      user_id: int().references('person.id'),
      amount: float(),
      label: string(),
      ts: datetime(),
    });
    const Person = features('person', { id: int(), events: hasMany(() => Event) }, (p) => ({
      lowest: windowed('1d', {
        materialization: { bucketDuration: '1h' },
        expression: p.events.select((e) => e.label).minByN((e) => e.amount, max('min_by_n', 'n')),
      }),
      highest: windowed('1d', {
        materialization: { bucketDuration: '1h' },
        expression: p.events.select((e) => e.label).maxByN((e) => e.amount, max('max_by_n', 'n')),
      }),
      top: windowed('1d', {
        materialization: { bucketDuration: '1h' },
        expression: p.events.select((e) => e.label).approxTopK(max('approx_top_k', 'k')),
      }),
      distinct: windowed('1d', {
        materialization: { bucketDuration: '1h' },
        expression: p.events
          .select((e) => e.label)
          .approxCountDistinct({ lgK: max('approx_count_distinct', 'lgK') }),
      }),
      largest: windowed('1d', {
        materialization: { bucketDuration: '1h' },
        expression: p.events
          .select((e) => e.amount)
          .approxPercentile(1, { size: max('approx_percentile', 'sketchSize') }),
      }),
    }));
    const { diagnostics } = compile([Person, Event]);
    expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const tessera = Tessera.open({ path: tempDir(), features: [Person, Event] });
    tessera.setClock(NOW);
    tessera.ingest(Event, [
      { id: 1, user_id: 7, amount: 3, label: 'a', ts: new Date(NOW - HOUR) },
      { id: 2, user_id: 7, amount: 5, label: 'b', ts: new Date(NOW - HOUR) },
    ]);
    const { rows } = tessera.query({
      input: { 'person.id': [7] },
      output: [
        Person.lowest['1d'],
        Person.highest['1d'],
        Person.distinct['1d'],
        Person.largest['1d'],
      ] as const,
      now: NOW,
    });
    expect(rows[0]?.values).toEqual([['a', 'b'], ['b', 'a'], 2, 5]);
    tessera.close();

    // One past the maximum is a definition error naming the feature and the argument.
    const Over = features('person', { id: int(), events: hasMany(() => Event) }, (o) => ({
      n: windowed('1d', {
        materialization: { bucketDuration: '1h' },
        expression: o.events
          .select((e) => e.label)
          .minByN((e) => e.amount, max('min_by_n', 'n') + 1),
      }),
    }));
    const over = compile([Over, Event]).diagnostics.map((d) => d.message);
    expect(over, JSON.stringify(over)).toContain(
      `person.n: min_by_n n must be a whole number in [1, ${max('min_by_n', 'n')}], got ${max('min_by_n', 'n') + 1}`,
    );
  });
});
