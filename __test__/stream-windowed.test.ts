/**
 * Windowed stream resolvers (docs/semantics.md section 6): tumbling windows computed
 * once per period from a list or a DataFrame of messages, continuous windows computed
 * exactly at query time per key, and SQL strings run by DuckDB.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  DataFrame,
  makeWindowedStreamResolver,
  StreamResolverError,
  WindowedStreamRunner,
} from '../ts/resolvers/index.js';
import { MemorySource } from '../ts/sources/index.js';
import { StreamFeature, User } from './fixtures/window-resolvers.js';

const T0 = Date.UTC(2026, 0, 31, 12); // on a 10m, 30m and 1d boundary
const MINUTE = 60_000;
const LoginMessage = z.object({ user_id: z.number(), failed: z.boolean(), at: z.string() });

function logins(source: MemorySource, list: readonly [number, boolean, number][]): void {
  for (const [user, failed, minute] of list) {
    source.push({ user_id: user, failed, at: new Date(T0 + minute * MINUTE).toISOString() });
  }
}

const LOGINS: [number, boolean, number][] = [
  [1, true, 1],
  [1, true, 2],
  [1, false, 3],
  [2, true, 4],
  [1, true, 12], // second 10m period
  [2, true, 14],
  [2, true, 15],
  [1, true, 25], // third 10m period: still open until a later event or the end
];

describe('tumbling windows', () => {
  it('runs once per period and key over a list of messages', async () => {
    const source = new MemorySource();
    logins(source, LOGINS);
    source.end();
    const resolver = makeWindowedStreamResolver({
      name: 'failed_logins',
      source,
      messageType: LoginMessage,
      output: User.num_failed_logins,
      keys: { user_id: 'id' },
      timestamp: 'at',
      resolve: (events) => events.filter((e) => e.failed).length,
      default: 0,
    });
    const runner = new WindowedStreamRunner(resolver);
    const metrics = await runner.run();
    expect(metrics.messages).toBe(LOGINS.length);
    // 10m: the last period [T0+20m, T0+30m) closed at the end of the source.
    expect(await runner.query({ id: 1 }, '10m')).toBe(1);
    expect(await runner.query({ id: 2 }, '10m')).toBe(0); // no logins in that period
    // 30m: one period [T0, T0+30m).
    expect(await runner.query({ id: 1 }, '30m')).toBe(4);
    expect(await runner.query({ id: 2 }, '30m')).toBe(3);
    expect(await runner.query({ id: 1 }, '1d')).toBe(4);
    await expect(runner.query({ id: 1 }, '2h')).rejects.toThrow(/no window 2h/);
  });

  it('takes a DataFrame, and a SQL string over it that DuckDB runs', async () => {
    const source = new MemorySource();
    logins(source, LOGINS);
    source.end();
    const resolver = makeWindowedStreamResolver({
      name: 'failed_logins_sql',
      source,
      messageType: LoginMessage,
      output: User.num_failed_logins,
      timestamp: 'at',
      input: 'dataframe',
      // Without keys: the whole period, one row per user.
      resolve: (events) =>
        `select user_id as id, count(*) as num_failed_logins from ${events} where failed group by 1`,
      default: 0,
    });
    const runner = new WindowedStreamRunner(resolver);
    await runner.run();
    expect(await runner.query({ id: 1 }, '30m')).toBe(4);
    expect(await runner.query({ id: 2 }, '30m')).toBe(3);
    expect(await runner.query({ id: 1 }, '10m')).toBe(1);
    expect(await runner.query({ id: 3 }, '10m')).toBe(0);

    const frame = new DataFrame([{ failed: true }, { failed: false }, { failed: true }]);
    expect(frame.sum('failed')).toBe(2);
    expect(frame.column('failed')).toEqual([true, false, true]);
    expect(`${frame}`).toBe('messages');
  });
});

describe('continuous windows', () => {
  const Msg = z.object({ id: z.string(), value: z.string(), event_timestamp: z.string() });

  it('computes exact, overlapping windows per key at query time', async () => {
    const source = new MemorySource();
    const at = (hours: number) => new Date(T0 - hours * 3_600_000).toISOString();
    for (const [id, hours] of [
      ['a', 1],
      ['a', 30],
      ['a', 100],
      ['a', 200],
      ['b', 2],
    ] as const) {
      source.push({ id, value: 'x', event_timestamp: at(hours) });
    }
    source.end();
    const resolver = makeWindowedStreamResolver({
      name: 'stream_feature_count',
      source,
      messageType: Msg,
      output: StreamFeature.count,
      mode: 'continuous',
      keys: { id: 'id' },
      timestamp: 'event_timestamp',
      resolve: (messages) => messages.length,
      default: 0,
    });
    const runner = new WindowedStreamRunner(resolver);
    await runner.run();
    expect(await runner.query({ id: 'a' }, '1d', T0)).toBe(1);
    expect(await runner.query({ id: 'a' }, '7d', T0)).toBe(3);
    // Windows slide with `now`: 29 hours later the 1h-old event has left the 1d window.
    expect(await runner.query({ id: 'a' }, '1d', T0 + 24 * 3_600_000)).toBe(0);
    expect(await runner.query({ id: 'b' }, '1d', T0)).toBe(1);
    expect(await runner.query({ id: 'zzz' }, '7d', T0)).toBe(0);
  });

  it('needs keys', () => {
    expect(() =>
      makeWindowedStreamResolver({
        name: 'x',
        source: new MemorySource(),
        messageType: Msg,
        output: StreamFeature.count,
        mode: 'continuous',
        resolve: (m) => m.length,
      }),
    ).toThrow(StreamResolverError);
  });
});
