/**
 * The native decoding fast path of declarative stream resolvers against the general path
 * (JSON.parse, zod, the mapping), message by message on random good and bad messages:
 * every message the fast path accepts must give the same row, event time and dedupe key
 * as the general path, and every message it leaves must be one the general path also
 * handles (accepting it or naming why not). Then a whole stream with the fast path on and
 * one with it off (a schema outside its reach) must store the same windows and the same
 * dead letters.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { seededRandom } from '../bench/harness.js';
import {
  boolean,
  datetime,
  features,
  float,
  hasMany,
  int,
  string,
  windowed,
} from '../ts/dsl/index.js';
import { BoundResolver, type ColumnBatch } from '../ts/resolvers/decode.js';
import { dedupeKey } from '../ts/resolvers/dedupe.js';
import { makeStreamResolver, StreamRunner } from '../ts/resolvers/index.js';
import { compileMessagePlan } from '../ts/resolvers/message-plan.js';
import { MemorySource } from '../ts/sources/index.js';
import type { SourceMessage } from '../ts/sources/source.js';
import { Tessera } from '../ts/tessera.js';

const NOW = Date.UTC(2026, 0, 31, 12);
const HOUR = 3_600_000;

const Order = features('order', {
  id: string(),
  user_id: int().references('user.id'),
  amount: float(),
  qty: int(),
  gift: boolean(),
  ts: datetime().featureTime(),
});

const User = features('user', { id: int(), orders: hasMany(() => Order) }, (user) => ({
  spend: windowed('1d', '7d', {
    materialization: { bucketDuration: '1h' },
    expression: user.orders.select((o) => o.amount).sum(),
    default: 0,
  }),
  items: windowed('1d', {
    materialization: { bucketDuration: '1h' },
    expression: user.orders.select((o) => o.qty).sum(),
    default: 0,
  }),
  gift_share: windowed('7d', {
    materialization: { bucketDuration: '1h' },
    expression: user.orders.select((o) => o.gift).mean(),
  }),
  max_order: windowed('7d', {
    materialization: { bucketDuration: '1h' },
    expression: user.orders.select((o) => o.amount).max(),
  }),
}));

const OrderMsg = z.object({
  id: z.string(),
  user: z.number(),
  amount: z.number(),
  qty: z.number(),
  gift: z.boolean().optional(),
  at: z.string(),
  note: z.string().nullable().optional(),
  shop: z.string(),
});

const outputFeatures = {
  id: 'id',
  user_id: 'user',
  amount: 'amount',
  qty: 'qty',
  gift: 'gift',
  ts: 'at',
} as const;

const dirs: string[] = [];
function open(): Tessera {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-fast-'));
  dirs.push(dir);
  const tessera = Tessera.open({ path: dir, features: [User, Order] });
  tessera.setClock(NOW);
  return tessera;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Random messages: mostly good, with every kind of flaw the decoders must agree on. */
function messages(n: number, seed: number): Buffer[] {
  const random = seededRandom(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  const times = (): string => {
    const ms = NOW - Math.floor(random() * 3 * 24 * HOUR);
    const iso = new Date(ms).toISOString();
    return pick([
      iso,
      iso,
      iso.toLowerCase().replace('t', 'T'),
      iso.replace('Z', '+02:00'),
      iso.replace('Z', '-09:30'),
      iso.replace(/\.\d+Z$/, 'Z'),
      iso.replace(/Z$/, '9871Z'),
      iso.replace('Z', ''),
      iso.replace('T', ' '),
      iso.replace('Z', '+0200'),
      '2026-02-30T10:00:00Z',
      '0099-01-31T10:00:00Z',
      '2024-02-29T23:59:59.999Z',
      'yesterday',
    ]);
  };
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const body: Record<string, unknown> = {
      id: pick([`o${i}`, `o${i % 50}`, 'ü"\\\n', '\u2028']),
      user: pick([1, 2, 3, 17, 2 ** 53 + 2, 4.5, -0, 1e3]),
      amount: pick([12.5, 0.1, -3, 1e21, 5e-324, 0.1 + 0.2, 0, -0, 7]),
      qty: pick([1, 2, 3, 0, -4, 2.5, 2 ** 53 + 2]),
      at: times(),
      shop: pick(['s1', 's2']),
    };
    if (random() < 0.7) body.gift = random() < 0.5;
    if (random() < 0.3) body.note = pick([null, 'hi']);
    if (random() < 0.2) body.extra = { nested: [1, 'two', null] };
    // One flaw in about a third of the messages.
    const flaw = random() < 0.35 ? Math.floor(random() * 14) : -1;
    const field = pick(['id', 'user', 'amount', 'qty', 'gift', 'at', 'note', 'shop']);
    if (flaw === 0) delete body[field];
    if (flaw === 1) body[field] = null;
    if (flaw === 2) body[field] = pick(['text', 5, true, [1], { a: 1 }]);
    let text = JSON.stringify(body);
    if (flaw === 3) text = text.replace('"amount":', '"amount":"1","amount":');
    if (flaw === 4) text = text.replace(/"amount":[^,}]+/, '"amount":1e999');
    if (flaw === 5) text = `${text} x`;
    if (flaw === 6) text = text.slice(0, -1);
    if (flaw === 7) text = '[1,2]';
    if (flaw === 8) text = '';
    if (flaw === 9) text = `\ufeff${text}`;
    if (flaw === 10) text = ` \n${text}\t `;
    if (flaw === 11) text = text.replace('"shop":', '"shop":"x","shop":');
    if (flaw === 12) text = text.replace(/"id":"[^"]*"/, '"id":"\\ud800"');
    const bytes = Buffer.from(text);
    if (flaw === 13) {
      const broken = Buffer.concat([
        Buffer.from('{"id":"'),
        Buffer.from([0xff, 0xfe]),
        bytes.subarray(7),
      ]);
      out.push(broken);
    } else out.push(bytes);
  }
  return out;
}

function resolver(messageType: z.ZodType, source = new MemorySource()) {
  return makeStreamResolver({
    name: 'orders',
    source,
    messageType,
    output: Order,
    outputFeatures,
    dedupe: { field: 'id', within: '1h' },
  });
}

/** The values of row `row` of every column, numbers compared with Object.is. */
function rowOf(batch: ColumnBatch, row: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, column] of Object.entries(batch.columns())) {
    const value = (column as ArrayLike<unknown>)[row];
    out[name] = typeof value === 'number' && Object.is(value, -0) ? '-0' : value;
  }
  return out;
}

describe('the native message fast path', () => {
  it('compiles only plain flat schemas', () => {
    const reads = [{ path: 'a', as: 'float' as const, nullable: false, keep: true }];
    expect(compileMessagePlan(z.object({ a: z.number() }), reads)).not.toBeNull();
    expect(compileMessagePlan(z.object({ a: z.number().int() }), reads)).toBeNull();
    expect(compileMessagePlan(z.object({ a: z.number().default(1) }), reads)).toBeNull();
    expect(compileMessagePlan(z.strictObject({ a: z.number() }), reads)).toBeNull();
    expect(
      compileMessagePlan(z.object({ a: z.number(), b: z.array(z.number()) }), reads),
    ).toBeNull();
    expect(compileMessagePlan(z.object({ a: z.string() }), reads)).toBeNull();
    expect(
      compileMessagePlan(z.object({ a: z.number() }), [
        { path: 'a.b', as: 'float', nullable: false, keep: true },
      ]),
    ).toBeNull();
    expect(
      compileMessagePlan(z.object({ a: z.number() }), [
        { path: null, as: 'float', nullable: false, keep: true },
      ]),
    ).toBeNull();
  });

  it('gives every message it accepts the row, time and dedupe key of the general path', () => {
    const tessera = open();
    const fast = new BoundResolver(resolver(OrderMsg), tessera.plan);
    const general = new BoundResolver(resolver(OrderMsg.passthrough()), tessera.plan);
    expect(fast.hasFastPath).toBe(true);
    expect(general.hasFastPath).toBe(false);
    const values = messages(4000, 11);
    const raws: SourceMessage[] = values.map((value, offset) => ({
      partition: 0,
      offset,
      key: null,
      value,
      timestampMs: NOW,
    }));
    const decoded = fast.decodeFast(raws);
    if (decoded === null) throw new Error('no fast path');
    let accepted = 0;
    let good = 0;
    for (let i = 0; i < raws.length; i++) {
      const raw = raws[i] as SourceMessage;
      const a = fast.newBatch(1);
      const b = general.newBatch(1);
      const parsed = general.parse(raw);
      const mapped = parsed.ok ? general.map(parsed.message, raw, b) : parsed;
      if (mapped.ok) good += 1;
      if (decoded.decoded[i] !== 1) continue;
      accepted += 1;
      const text = raw.value.toString();
      expect(mapped.ok, text).toBe(true);
      if (!parsed.ok || !mapped.ok) continue;
      const viaFast = fast.mapDecoded(decoded, i, raw, a);
      expect(viaFast.eventTimeMs, text).toBe(mapped.eventTimeMs);
      expect(rowOf(a, 0), text).toEqual(rowOf(b, 0));
      const read = general.resolver.dedupe?.read;
      expect(fast.decodedDedupeKey(decoded, i), text).toBe(dedupeKey(read?.(parsed.message)));
    }
    // The fast path took only good messages, and most of them: it leaves the unusual
    // timestamps (a space for the T, +0200, years before 1000, impossible dates),
    // repeated keys, lone surrogates and bytes that are not UTF-8 to the general path.
    expect(accepted).toBeLessThanOrEqual(good);
    expect(accepted, `${accepted} of ${good} good messages`).toBeGreaterThan(good * 0.5);
    tessera.close();
  });

  it('stores the same windows and dead letters as the general path', async () => {
    const values = messages(3000, 5);
    const run = async (messageType: z.ZodType) => {
      const tessera = open();
      const source = new MemorySource();
      for (const value of values) source.push(value, { timestampMs: NOW });
      source.end();
      const runner = new StreamRunner(tessera, resolver(messageType, source), { batchSize: 700 });
      const metrics = await runner.run();
      const users = [1, 2, 3, 17, 1000];
      const { rows } = tessera.query({
        input: { 'user.id': users },
        output: [
          User.spend['1d'],
          User.spend['7d'],
          User.items['1d'],
          User.gift_share['7d'],
          User.max_order['7d'],
        ] as const,
        now: NOW,
      });
      const letters = tessera.engine
        .deadLetters({ source: 'orders', limit: 100_000 })
        .map((l) => `${l.offset} ${l.field ?? ''} ${l.reason}`);
      tessera.close();
      return { metrics, values: rows.map((r) => r.values), letters };
    };
    const fast = await run(OrderMsg);
    const general = await run(OrderMsg.passthrough());
    expect(fast.values).toEqual(general.values);
    expect(fast.letters).toEqual(general.letters);
    expect(fast.letters.length).toBeGreaterThan(100);
    for (const key of ['accepted', 'deadLetters', 'duplicatesSkipped', 'rows'] as const) {
      expect(fast.metrics[key], key).toBe(general.metrics[key]);
    }
  });
});
