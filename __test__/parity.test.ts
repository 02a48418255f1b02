/**
 * The parity check (docs/semantics.md section 11, "Parity check"): a store fed by ingest
 * and a batch resolver over the same rows agree at every sampled key and time, for exact
 * and approximate aggregations, at bucket ends and mid-bucket; then a dropped event (a
 * row the store never saw) and a doubled event (a row ingested twice) are each found and
 * named (key, time, output), a key only one side has is compared, and `tessera parity`
 * exits 1. The tests run in order on one store: the second breaks what the first fed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../ts/cli/main.js';
import { seededRandom } from '../ts/cli/seeded-random.js';
import { InvalidQueryError, type ParityResult, Tessera } from '../ts/index.js';
import {
  Payment,
  type PaymentRow,
  paymentRows,
  ROWS_VARIABLE,
  User,
} from './fixtures/parity-features.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const START = Date.UTC(2026, 2, 1);
/** The engine clock: mid-bucket, 3 days and a half after the first payment. */
const NOW = START + 3 * DAY + 12 * HOUR + 17 * 60_000;
const USERS = 25;
const FEATURES = join(import.meta.dirname, 'fixtures', 'parity-features.ts');

const dir = mkdtempSync(join(tmpdir(), 'tessera-parity-'));
const rowsFile = join(dir, 'rows.json');
const storePath = join(dir, 'store');
process.env[ROWS_VARIABLE] = rowsFile;
afterAll(() => {
  delete process.env[ROWS_VARIABLE];
  rmSync(dir, { recursive: true, force: true });
});

function history(seed: number, count: number): PaymentRow[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, (_, i) => ({
    id: i + 1,
    user_id: 1 + Math.floor(random() * USERS),
    // Cents: float sums merged in another order round differently.
    amount: Math.round(random() * 50_000) / 100,
    merchant: `m${Math.floor(random() * random() * 90)}`,
    ts: START + Math.floor(random() * (NOW - START)),
  }));
}

const rows = history(7, 3_000);
/** The times compared: the clock, bucket ends, mid-bucket, and before most data. */
const AT = [NOW, NOW - (NOW % HOUR) - 1, NOW - 5 * HOUR - 123_456, START + 20 * HOUR + 1];
const OUTPUTS = [
  'user.total__86400__',
  'user.total__259200__',
  'user.payment_count__86400__',
  'user.largest__86400__',
  'user.merchants__259200__',
  'user.top_merchants__259200__',
  'user.p90__259200__',
];

/** The store, with the engine clock at `clock` (the first opening registers the rules then). */
function open(clock = NOW): Tessera {
  return Tessera.open({
    path: storePath,
    features: [User, Payment],
    batchResolvers: [paymentRows],
    clock,
  });
}

async function cli(args: readonly string[]): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    ['parity', '--features', FEATURES, '--path', storePath, '--clock', String(NOW), ...args],
    { out: (t) => out.push(t), err: (t) => err.push(t), cwd: dir },
  );
  if (code === 2) throw new Error(err.join('\n'));
  return { code, out: out.join('\n') };
}

function output(result: ParityResult, name: string) {
  const o = result.outputs.find((x) => x.output === name);
  if (o === undefined) throw new Error(`${name} was not compared`);
  return o;
}

/** The events that break parity, and a key each side alone holds. */
const dropped: PaymentRow = {
  id: 90_001,
  user_id: 901,
  amount: 77.5,
  merchant: 'm-dropped',
  ts: NOW - 2 * HOUR - 1_000,
};
const doubled = rows.find((r) => r.ts > NOW - 20 * HOUR && r.ts < NOW - 3 * HOUR) as PaymentRow;
const storeOnly: PaymentRow = {
  id: 90_002,
  user_id: 902,
  amount: 12.25,
  merchant: 'm-store',
  ts: NOW - 30 * HOUR,
};

describe('tessera.parity', () => {
  it('finds no difference when the store was fed the rows the resolvers return', async () => {
    writeFileSync(rowsFile, JSON.stringify(rows));
    // Registered before the first payment, so every window's buckets count as complete.
    const tessera = open(START - HOUR);
    try {
      tessera.setClock(NOW);
      // Fed in shuffled batches, so buckets merge in another order than the recompute folds.
      const shuffled = [...rows].sort((a, b) => ((a.id * 7919) % 3001) - ((b.id * 7919) % 3001));
      for (let i = 0; i < shuffled.length; i += 250) {
        tessera.ingest(Payment, shuffled.slice(i, i + 250));
      }
      const result = await tessera.parity({ at: AT, sample: 1_000 });
      expect(result.outputs.map((o) => o.output).sort()).toEqual([...OUTPUTS].sort());
      for (const o of result.outputs) {
        expect(o.keys).toEqual({ store: 0, raw: 0, both: USERS });
        expect(o.compared).toBe(USERS * AT.length);
        expect(o.differences, o.output).toEqual([]);
      }
      expect(result.compared).toBe(USERS * AT.length * OUTPUTS.length);
      expect(output(result, 'user.merchants__259200__').tolerance.kind).toBe('standardErrors');
      expect(output(result, 'user.top_merchants__259200__').tolerance.kind).toBe('weightShare');
      expect(output(result, 'user.p90__259200__').tolerance.kind).toBe('rank');
      expect(output(result, 'user.payment_count__86400__').tolerance.kind).toBe('exact');

      // The default times: the clock and the last ms of the three hours before its hour.
      const defaults = await tessera.parity({ sample: 3, seed: 5 });
      const hour = NOW - (NOW % HOUR);
      expect(defaults.times.map((t) => t.getTime())).toEqual([
        NOW,
        hour - 1,
        hour - HOUR - 1,
        hour - 2 * HOUR - 1,
      ]);
      expect(defaults.differences).toBe(0);
      // Deterministic by seed: the same seed samples the same keys.
      const again = await tessera.parity({ sample: 3, seed: 5 });
      expect(again).toEqual(defaults);
    } finally {
      tessera.close();
    }
    expect(await cli(['--at', new Date(AT[0] as number).toISOString()])).toMatchObject({ code: 0 });
  });

  it('names a dropped and a doubled event, and the CLI exits 1', async () => {
    expect(doubled).toBeDefined();
    // The resolvers return a row the store never saw (for a user the store never saw);
    // the store got one row twice, and one the resolvers do not have.
    writeFileSync(rowsFile, JSON.stringify([...rows, dropped]));
    const tessera = open();
    let result: ParityResult;
    try {
      tessera.ingest(Payment, [doubled, storeOnly]);
      result = await tessera.parity({ at: AT, sample: 1_000 });
    } finally {
      tessera.close();
    }
    const count = output(result, 'user.payment_count__86400__');
    expect(count.keys).toEqual({ store: 1, raw: 1, both: USERS });
    // Every time whose 1d window holds the event: its key, time and both values.
    const inWindow = (ts: number) =>
      AT.filter(
        (t) =>
          ts >= Math.floor((t - DAY + 1) / HOUR) * HOUR && ts < (Math.floor(t / HOUR) + 1) * HOUR,
      );
    const expected = [
      ...inWindow(dropped.ts).map((t) => ({ user: dropped.user_id, t, online: 0, offline: 1 })),
      ...inWindow(doubled.ts).map((t) => ({ user: doubled.user_id, t })),
      ...inWindow(storeOnly.ts).map((t) => ({ user: storeOnly.user_id, t, online: 1, offline: 0 })),
    ];
    expect(expected.length).toBeGreaterThanOrEqual(4);
    expect(
      count.differences
        .map((d) => ({ user: d.key['user.id'] as number, t: d.time.getTime() }))
        .sort((a, b) => a.user - b.user || a.t - b.t),
    ).toEqual(
      expected.map(({ user, t }) => ({ user, t })).sort((a, b) => a.user - b.user || a.t - b.t),
    );
    for (const d of count.differences) {
      expect(d.tolerance).toBe(0);
      expect(d.gap).toBe(1);
      if (d.key['user.id'] === doubled.user_id) {
        expect(d.online).toBe((d.offline as number) + 1);
      } else if (d.key['user.id'] === dropped.user_id) {
        expect([d.online, d.offline]).toEqual([0, 1]);
      } else {
        expect([d.online, d.offline]).toEqual([1, 0]);
      }
    }
    // The sums name the same windows, with the amounts.
    const total = output(result, 'user.total__86400__');
    const droppedTotal = total.differences.find(
      (d) => d.key['user.id'] === dropped.user_id && d.time.getTime() === NOW,
    );
    expect(droppedTotal).toMatchObject({ online: null, offline: 77.5 });
    const doubledTotal = total.differences.find(
      (d) => d.key['user.id'] === doubled.user_id && d.time.getTime() === NOW,
    );
    expect((doubledTotal?.online as number) - (doubledTotal?.offline as number)).toBeCloseTo(
      doubled.amount,
      6,
    );
    // Users the broken events do not touch still agree.
    const touched = new Set([dropped.user_id, doubled.user_id, storeOnly.user_id]);
    for (const o of result.outputs) {
      for (const d of o.differences) expect(touched.has(d.key['user.id'] as number)).toBe(true);
    }

    const { code, out } = await cli([
      '--at',
      new Date(NOW).toISOString(),
      '--at',
      new Date(AT[1] as number).toISOString(),
    ]);
    expect(code).toBe(1);
    expect(out).toContain(`user.payment_count__86400__ (count; tolerance: equal)`);
    expect(out).toContain(
      `user.id=${dropped.user_id} at ${new Date(NOW).toISOString()}: online 0, offline 1`,
    );
    expect(out).toContain(`user.id=${doubled.user_id} at ${new Date(NOW).toISOString()}:`);
    expect(out).toMatch(/beyond tolerance$/);
    const json = await cli([
      '--at',
      new Date(NOW).toISOString(),
      '--output',
      'user.payment_count_1d',
      '--json',
    ]);
    expect(json.code).toBe(1);
    const parsed = JSON.parse(json.out) as { differences: number; outputs: { output: string }[] };
    expect(parsed.outputs.map((o) => o.output)).toEqual(['user.payment_count__86400__']);
    expect(parsed.differences).toBe(
      [dropped, doubled, storeOnly].filter((r) => inWindow(r.ts).includes(NOW)).length,
    );
  });

  it('refuses bad options, naming them', async () => {
    const tessera = open();
    try {
      await expect(tessera.parity({ sample: 0 })).rejects.toThrow(
        'parity: sample must be a whole number of at least 1, got 0',
      );
      await expect(tessera.parity({ at: ['yesterday'] })).rejects.toThrow(InvalidQueryError);
      await expect(tessera.parity({ output: ['user.nothing_1d'] })).rejects.toThrow(
        "parity: 'user.nothing_1d' names no materialized feature window",
      );
      await expect(
        tessera.parity({ whatever: 1 } as unknown as Parameters<Tessera['parity']>[0]),
      ).rejects.toThrow("parity: unknown option 'whatever'");
    } finally {
      tessera.close();
    }
  });
});
