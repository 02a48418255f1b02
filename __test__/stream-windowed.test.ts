/**
 * Windowed stream resolvers (docs/semantics.md section 6.1), through `Tessera.query`:
 * the reference's examples (tumbling `num_failed_logins` over 10m / 30m / 1d in the list,
 * DataFrame and SQL forms; the user/card `keys` example in continuous mode; a custom
 * timestamp, where a naive one is a dead letter); a restart that neither loses nor
 * doubles a window's input; and a differential test of both modes against an oracle
 * over random messages (late, out of order, bad).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { seededRandom } from '../ts/cli/seeded-random.js';
import { features, int, string, windowed } from '../ts/dsl/index.js';
import { InvalidQueryError, Tessera } from '../ts/index.js';
import {
  DataFrame,
  makeWindowedStreamResolver,
  StreamResolverError,
  WindowedStreamRunner,
} from '../ts/resolvers/index.js';
import { MemorySource } from '../ts/sources/index.js';
import { StreamFeature, User } from './fixtures/window-resolvers.js';

const T0 = Date.UTC(2026, 0, 31, 12); // on a 10m and 30m boundary; 1d periods start at 00:00
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const LoginMessage = z.object({ user_id: z.number(), failed: z.boolean(), at: z.string() });

const dir = mkdtempSync(join(tmpdir(), 'tessera-windowed-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let stores = 0;
const path = () => join(dir, `store-${stores++}`);

const LOGINS: [number, boolean, number][] = [
  [1, true, 1],
  [1, true, 2],
  [1, false, 3],
  [2, true, 4],
  [1, true, 12], // second 10m period
  [2, true, 14],
  [2, true, 15],
  [1, true, 25], // third 10m period
  [99, false, 2 * 24 * 60], // two days on: the watermark passes every period above
];

function loginSource(list = LOGINS): MemorySource {
  const source = new MemorySource();
  for (const [user, failed, minute] of list) {
    source.push({ user_id: user, failed, at: new Date(T0 + minute * MINUTE).toISOString() });
  }
  source.end();
  return source;
}

const ask = (tessera: Tessera, now: number, users = [1, 2, 3]) =>
  tessera
    .query({
      input: { 'user.id': users },
      output: [
        User.num_failed_logins['10m'],
        User.num_failed_logins['30m'],
        User.num_failed_logins['1d'],
      ],
      now,
    })
    .rows.map((r) => r.values);

describe('tumbling windows', () => {
  const forms = {
    list: makeWindowedStreamResolver({
      name: 'failed_logins',
      source: loginSource(),
      messageType: LoginMessage,
      output: User.num_failed_logins,
      keys: { user_id: 'id' },
      timestamp: 'at',
      resolve: (events) => events.filter((e) => e.failed).length,
    }),
    dataframe: makeWindowedStreamResolver({
      name: 'failed_logins_frame',
      source: loginSource(),
      messageType: LoginMessage,
      output: User.num_failed_logins,
      keys: { user_id: 'id' },
      timestamp: 'at',
      input: 'dataframe',
      resolve: (events) => events.sum('failed'),
    }),
    sql: makeWindowedStreamResolver({
      name: 'failed_logins_sql',
      source: loginSource(),
      messageType: LoginMessage,
      output: User.num_failed_logins,
      timestamp: 'at',
      input: 'dataframe',
      // Without keys: the whole period, one row per user.
      resolve: (events) =>
        `select user_id as id, count(*) as num_failed_logins from ${events} where failed group by 1`,
    }),
  };
  for (const [form, resolver] of Object.entries(forms)) {
    it(`stores each closed period's value, served by Tessera.query (${form})`, async () => {
      const tessera = Tessera.open({
        path: path(),
        features: [User],
        windowedResolvers: [resolver],
      });
      try {
        const runner = new WindowedStreamRunner(tessera, resolver);
        const metrics = await runner.run();
        expect(metrics.messages).toBe(LOGINS.length);
        expect(metrics.deadLetters).toBe(0);
        // After the closing message: the latest period of each window, observed at its
        // end. User 2 had no login in the third 10m period: its latest value is the
        // second period's. User 3 has none: the default 0.
        expect(ask(tessera, T0 + 2 * DAY)).toEqual([
          [1, 4, 4],
          [2, 3, 3],
          [0, 0, 0],
        ]);
        // Asked at T0 + 15m, the latest 10m period that had ended is [T0, T0 + 10m).
        expect(ask(tessera, T0 + 15 * MINUTE)).toEqual([
          [2, 0, 0],
          [1, 0, 0],
          [0, 0, 0],
        ]);
      } finally {
        tessera.close();
      }
    });
  }

  it('resumes from the stored positions: a restart neither loses nor doubles a period', async () => {
    const resolver = forms.list;
    const source = loginSource();
    const restartable = { ...resolver, source };
    const at = path();
    let tessera = Tessera.open({ path: at, features: [User], windowedResolvers: [restartable] });
    // Stop after the second batch of three: some periods hold messages, none closed.
    let batches = 0;
    const first = new WindowedStreamRunner(tessera, restartable, {
      batchSize: 3,
      onBatch: () => {
        batches += 1;
        if (batches === 2) void first.stop();
      },
    });
    await first.run();
    expect(first.metrics().messages).toBe(6);
    tessera.close();
    tessera = Tessera.open({ path: at, features: [User], windowedResolvers: [restartable] });
    try {
      const second = new WindowedStreamRunner(tessera, restartable, { batchSize: 3 });
      expect((await second.run()).messages).toBe(LOGINS.length - 6);
      expect(ask(tessera, T0 + 2 * DAY)).toEqual([
        [1, 4, 4],
        [2, 3, 3],
        [0, 0, 0],
      ]);
    } finally {
      tessera.close();
    }
  });

  it('serves the default once a value is older than maxStaleness, and values as of a past time offline', async () => {
    const Account = features('account', {
      id: int().primary(),
      failed: windowed('10m', '30m', { default: 0, maxStaleness: '10m' }),
    });
    const resolver = makeWindowedStreamResolver({
      name: 'account_failed',
      source: loginSource(),
      messageType: LoginMessage,
      output: Account.failed,
      keys: { user_id: 'id' },
      timestamp: 'at',
      resolve: (events) => events.filter((e) => e.failed).length,
    });
    const tessera = Tessera.open({
      path: path(),
      features: [Account],
      windowedResolvers: [resolver],
    });
    try {
      await new WindowedStreamRunner(tessera, resolver).run();
      const at = (now: number) =>
        tessera
          .query({ input: { 'account.id': [1, 2] }, output: [Account.failed['10m']], now })
          .rows.map((r) => r.values[0]);
      // At T0 + 35m user 1's latest 10m value ended 5 minutes before, user 2's 15.
      expect(at(T0 + 35 * MINUTE)).toEqual([1, 0]);
      expect(at(T0 + 25 * MINUTE)).toEqual([1, 2]);
      expect(at(T0 + 2 * DAY)).toEqual([0, 0]);
      // Offline, each row at its own time: the value observed then.
      const offline = await tessera.offlineQuery({
        input: { 'account.id': [1, 1, 2, 1] },
        inputTimes: [T0 + 15 * MINUTE, T0 + 35 * MINUTE, T0 + 25 * MINUTE, T0 + 5 * MINUTE],
        output: [Account.failed['10m'], Account.failed['30m']],
      });
      expect(offline.rows.map((r) => r.values)).toEqual([
        [2, 0],
        [1, 4],
        [2, 0],
        [0, 0],
      ]);
    } finally {
      tessera.close();
    }
    expect(() =>
      Tessera.open({
        path: path(),
        features: [
          features('bad', { id: int().primary(), n: windowed('10m', { defualt: 0 } as never) }),
        ],
      }),
    ).toThrow(/bad.n: unknown option 'defualt'/);
  });

  it('refuses a runner for a resolver Tessera.open was not given, and bad definitions', () => {
    const tessera = Tessera.open({ path: path(), features: [User] });
    try {
      expect(() => new WindowedStreamRunner(tessera, forms.list)).toThrow(
        'windowed stream resolver failed_logins was not given to Tessera.open (windowedResolvers)',
      );
      expect(() =>
        tessera.query({ input: { 'user.id': [1] }, output: [User.num_failed_logins['10m']] }),
      ).toThrow(/no windowed stream resolver given to Tessera.open \(windowedResolvers\)/);
    } finally {
      tessera.close();
    }
    expect(() =>
      Tessera.open({ path: path(), features: [User], windowedResolvers: [forms.list, forms.sql] }),
    ).toThrow(
      'Tessera.open: windowed stream resolvers failed_logins and failed_logins_sql both compute user.num_failed_logins',
    );
    const frame = new DataFrame([{ failed: true }, { failed: false }, { failed: true }]);
    expect(frame.sum('failed')).toBe(2);
    expect(frame.column('failed')).toEqual([true, false, true]);
    expect(`${frame}`).toBe('messages');
  });
});

const Card = features('card', { id: string().primary() });
const UserCardInteraction = features('user_card_interaction', {
  id: string().primary(),
  user_id: string(),
  card_id: string(),
  interaction_type: string(),
  count: windowed({ days: [1, 7], default: 0 }),
});

describe('continuous windows', () => {
  const KafkaMessage = z.object({
    card_id: z.string(),
    user_id: z.string(),
    interaction_id: z.string(),
  });

  it('computes exact windows per (user, card) at query time from stored messages', async () => {
    const source = new MemorySource();
    const interactions: [string, string, number][] = [
      ['u1', 'c1', 1],
      ['u1', 'c1', 30],
      ['u1', 'c2', 2],
      ['u2', 'c1', 100],
      ['u1', 'c1', 150],
    ];
    for (const [user, card, hoursAgo] of interactions) {
      source.push(
        { card_id: card, user_id: user, interaction_id: `${user}-${card}-${hoursAgo}` },
        { timestampMs: T0 - hoursAgo * HOUR },
      );
    }
    source.end();
    const resolver = makeWindowedStreamResolver({
      name: 'user_card_aggregation',
      source,
      messageType: KafkaMessage,
      output: UserCardInteraction.count,
      mode: 'continuous',
      keys: { card_id: 'card_id', user_id: 'user_id' },
      resolve: (messages) => messages.length,
    });
    const tessera = Tessera.open({
      path: path(),
      features: [UserCardInteraction, Card],
      windowedResolvers: [resolver],
      clock: T0,
    });
    try {
      await new WindowedStreamRunner(tessera, resolver).run();
      const input = {
        'user_card_interaction.user_id': ['u1', 'u1', 'u2', 'u2'],
        'user_card_interaction.card_id': ['c1', 'c2', 'c1', 'c2'],
      };
      const output = [UserCardInteraction.count['1d'], UserCardInteraction.count['7d']];
      const at = async (now: number) =>
        (await tessera.queryAsync({ input, output, now })).rows.map((r) => r.values);
      expect(await at(T0)).toEqual([
        [1, 3],
        [1, 1],
        [0, 1],
        [0, 0],
      ]);
      // The windows slide with now: 22 hours on, the 1h-old interaction is still in the
      // 1d window, the 2h-old one is not, and the 150h-old one has left the 7d window.
      expect(await at(T0 + 22 * HOUR)).toEqual([
        [1, 2],
        [0, 1],
        [0, 1],
        [0, 0],
      ]);
      expect(() => tessera.query({ input, output })).toThrow(
        new InvalidQueryError(
          'query: user_card_interaction.count__86400__, user_card_interaction.count__604800__ are continuous windows, computed by user_card_aggregation from its messages at query time; use await tessera.queryAsync(...)',
        ),
      );
    } finally {
      tessera.close();
    }
  });

  it('takes a custom timestamp, and keeps a naive one as a dead letter naming it', async () => {
    const Msg = z.object({ id: z.string(), value: z.string(), event_timestamp: z.string() });
    const source = new MemorySource();
    source.push({ id: 'a', value: 'x', event_timestamp: new Date(T0 - HOUR).toISOString() });
    source.push({ id: 'a', value: 'y', event_timestamp: '2026-01-31T10:00:00' }); // naive
    source.push({ id: 'a', value: 'z', event_timestamp: new Date(T0 - 3 * DAY).toISOString() });
    source.push({ id: 'b', value: 'x', event_timestamp: new Date(T0 - 2 * HOUR).toISOString() });
    source.push('not json');
    source.end();
    const resolver = makeWindowedStreamResolver({
      name: 'stream_resolver',
      source,
      messageType: Msg,
      output: StreamFeature.count,
      mode: 'continuous',
      keys: { id: 'id' },
      timestamp: 'event_timestamp',
      input: 'dataframe',
      resolve: (messages) => messages.length,
    });
    const tessera = Tessera.open({
      path: path(),
      features: [StreamFeature],
      windowedResolvers: [resolver],
      clock: T0,
    });
    try {
      const metrics = await new WindowedStreamRunner(tessera, resolver).run();
      expect(metrics.deadLetters).toBe(2);
      const letters = tessera.engine.deadLetters({ source: 'stream_resolver' });
      expect(letters.map((l) => [l.offset, l.field ?? null])).toEqual([
        [1, 'event_timestamp'],
        [4, null],
      ]);
      expect(letters[0]?.reason).toMatch(/event_timestamp .* naive/);
      expect(letters[1]?.reason).toMatch(/^not JSON/);
      expect(letters[1]?.raw.toString()).toBe('not json');
      const result = await tessera.queryAsync({
        input: { 'stream_feature.id': ['a', 'b', 'c'] },
        output: [StreamFeature.count['1d'], StreamFeature.count['7d']],
      });
      expect(result.rows.map((r) => r.values)).toEqual([
        [1, 2],
        [1, 1],
        [0, 0],
      ]);
    } finally {
      tessera.close();
    }
  });

  it('needs keys', () => {
    expect(() =>
      makeWindowedStreamResolver({
        name: 'x',
        source: new MemorySource(),
        messageType: z.object({ id: z.string() }),
        output: StreamFeature.count,
        mode: 'continuous',
        resolve: (m) => m.length,
      }),
    ).toThrow(StreamResolverError);
  });
});

describe('a differential test', () => {
  const Event = z.object({ user: z.number(), failed: z.boolean(), at: z.string() });
  const WINDOWS = [10 * MINUTE, 30 * MINUTE, DAY];

  /** Random messages: out of order, some late (far behind the newest), some bad. */
  function randomMessages(seed: number, n: number) {
    const random = seededRandom(seed);
    const out: { value: unknown; t: number | null; user: number; failed: boolean }[] = [];
    let front = T0;
    for (let i = 0; i < n; i++) {
      front += Math.floor(random() * 4 * MINUTE);
      const r = random();
      const user = 1 + Math.floor(random() * 6);
      const failed = random() < 0.6;
      if (r < 0.06) {
        out.push({ value: { user: 'x', failed, at: 'bad' }, t: null, user, failed });
        continue;
      }
      // Mostly near the front, some an hour or two behind it (late for short windows).
      const behind = r < 0.15 ? Math.floor(random() * 2 * HOUR) : Math.floor(random() * 5 * MINUTE);
      const t = front - behind;
      out.push({ value: { user, failed, at: new Date(t).toISOString() }, t, user, failed });
    }
    return out;
  }

  it('tumbling: every value equals the oracle of the good, timely messages', async () => {
    for (const seed of [1, 2, 3]) {
      const messages = randomMessages(seed, 400);
      const source = new MemorySource();
      for (const m of messages) source.push(m.value);
      source.end();
      const resolver = makeWindowedStreamResolver({
        name: `tumbling_${seed}`,
        source,
        messageType: Event,
        output: User.num_failed_logins,
        keys: { user: 'id' },
        timestamp: 'at',
        resolve: (events) => events.filter((e) => e.failed).length,
      });
      const tessera = Tessera.open({
        path: path(),
        features: [User],
        windowedResolvers: [resolver],
      });
      try {
        const metrics = await new WindowedStreamRunner(tessera, resolver, { batchSize: 37 }).run();
        // The oracle: in read order, a message is late for a window when its period ended
        // at or before the newest earlier time; a period closes once the newest time
        // reaches its end.
        let watermark = Number.NEGATIVE_INFINITY;
        const periods = WINDOWS.map(() => new Map<string, number>());
        let bad = 0;
        let late = 0;
        for (const m of messages) {
          if (m.t === null) {
            bad += 1;
            continue;
          }
          let isLate = false;
          for (const [w, size] of WINDOWS.entries()) {
            const start = Math.floor(m.t / size) * size;
            if (start + size <= watermark) {
              isLate = true;
              continue;
            }
            const k = `${m.user}:${start}`;
            periods[w]?.set(k, (periods[w]?.get(k) ?? 0) + (m.failed ? 1 : 0));
          }
          if (isLate) late += 1;
          watermark = Math.max(watermark, m.t);
        }
        expect(metrics.deadLetters).toBe(bad + late);
        expect(metrics.lateEvents).toBe(late);
        expect(late).toBeGreaterThan(5);
        const random = seededRandom(seed + 100);
        for (let q = 0; q < 30; q++) {
          const now = T0 + Math.floor(random() * (watermark - T0 + HOUR));
          const got = ask(tessera, now, [1, 2, 3, 4, 5, 6, 7]);
          for (const [i, user] of [1, 2, 3, 4, 5, 6, 7].entries()) {
            const want = WINDOWS.map((size, w) => {
              // The latest closed period of the user that ended at or before now.
              let best: { end: number; v: number } | null = null;
              for (const [k, v] of periods[w] ?? []) {
                const [u, s] = k.split(':').map(Number);
                const end = (s as number) + size;
                if (u !== user || end > now || end > watermark) continue;
                if (best === null || end > best.end) best = { end, v };
              }
              return best?.v ?? 0;
            });
            expect(got[i], `seed ${seed}, user ${user} at ${new Date(now).toISOString()}`).toEqual(
              want,
            );
          }
        }
      } finally {
        tessera.close();
      }
    }
  });

  it('continuous: every window equals the oracle of the good, timely messages', async () => {
    for (const seed of [4, 5]) {
      const messages = randomMessages(seed, 400);
      const source = new MemorySource();
      for (const m of messages) source.push(m.value);
      source.end();
      const resolver = makeWindowedStreamResolver({
        name: `continuous_${seed}`,
        source,
        messageType: Event,
        output: User.num_failed_logins,
        mode: 'continuous',
        keys: { user: 'id' },
        timestamp: 'at',
        resolve: (events) => events.filter((e) => e.failed).length,
      });
      const last = Math.max(...messages.map((m) => m.t ?? 0));
      const tessera = Tessera.open({
        path: path(),
        features: [User],
        windowedResolvers: [resolver],
        // Messages are kept from the largest window before the clock: every query below
        // is within it.
        clock: last - HOUR,
      });
      try {
        const metrics = await new WindowedStreamRunner(tessera, resolver, { batchSize: 50 }).run();
        let watermark = Number.NEGATIVE_INFINITY;
        const kept: { user: number; t: number; failed: boolean }[] = [];
        let bad = 0;
        let late = 0;
        for (const m of messages) {
          if (m.t === null) {
            bad += 1;
            continue;
          }
          if (m.t > watermark - DAY) kept.push({ user: m.user, t: m.t, failed: m.failed });
          else late += 1;
          watermark = Math.max(watermark, m.t);
        }
        expect(metrics.deadLetters).toBe(bad + late);
        expect(metrics.lateEvents).toBe(late);
        const random = seededRandom(seed + 200);
        for (let q = 0; q < 20; q++) {
          const now = last + HOUR - Math.floor(random() * 2 * HOUR);
          const users = [1, 2, 3, 4, 5, 6, 7];
          const result = await tessera.queryAsync({
            input: { 'user.id': users },
            output: [
              User.num_failed_logins['10m'],
              User.num_failed_logins['30m'],
              User.num_failed_logins['1d'],
            ],
            now,
          });
          for (const [i, user] of users.entries()) {
            const want = WINDOWS.map(
              (size) =>
                kept.filter((k) => k.user === user && k.failed && k.t > now - size && k.t <= now)
                  .length,
            );
            expect(result.rows[i]?.values, `seed ${seed}, user ${user} at ${now}`).toEqual(want);
          }
        }
        // Older than the largest window before the engine clock: refused, naming it.
        await expect(
          tessera.queryAsync({
            input: { 'user.id': [1] },
            output: [User.num_failed_logins['1d']],
            now: last - 2 * DAY,
          }),
        ).rejects.toThrow(/user.num_failed_logins__86400__ at .* needs messages from/);
      } finally {
        tessera.close();
      }
    }
  });
});
