/**
 * `TesseraServer` runs windowed stream resolvers next to the others (docs/semantics.md
 * section 6.1): their values are served by `POST /v1/query` (a continuous window is
 * computed at query time) and their counters are on `/metrics`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { features, int, windowed } from '../ts/dsl/index.js';
import { makeWindowedStreamResolver } from '../ts/resolvers/index.js';
import { TesseraServer } from '../ts/server/server.js';
import { MemorySource } from '../ts/sources/index.js';

const T0 = Date.UTC(2026, 0, 31, 12);
const MINUTE = 60_000;
const dir = mkdtempSync(join(tmpdir(), 'tessera-serve-windowed-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const Device = features('device', {
  id: int().primary(),
  errors: windowed('10m', { default: 0 }),
  recent: windowed('1h', { default: 0 }),
});
const Report = z.object({ device: z.number(), at: z.string() });

describe('serve with windowed stream resolvers', () => {
  it('streams them, answers their windows over HTTP and counts them', async () => {
    const tumbling = new MemorySource();
    const continuous = new MemorySource();
    for (const [device, minute] of [
      [1, 1],
      [1, 4],
      [2, 5],
      [1, 12],
      [3, 40],
    ] as const) {
      const value = { device, at: new Date(T0 + minute * MINUTE).toISOString() };
      tumbling.push(value);
      continuous.push(value);
    }
    tumbling.push('{broken');
    const server = await TesseraServer.start({
      path: join(dir, 'store'),
      features: [Device],
      windowed: [
        makeWindowedStreamResolver({
          name: 'device_errors',
          source: tumbling,
          messageType: Report,
          output: Device.errors,
          keys: { device: 'id' },
          timestamp: 'at',
          resolve: (reports) => reports.length,
        }),
        makeWindowedStreamResolver({
          name: 'device_recent',
          source: continuous,
          messageType: Report,
          output: Device.recent,
          mode: 'continuous',
          keys: { device: 'id' },
          timestamp: 'at',
          resolve: (reports) => reports.length,
        }),
      ],
      port: 0,
      schedules: false,
      clockMs: T0 + 41 * MINUTE,
    });
    try {
      const deadline = Date.now() + 10_000;
      while (server.windowed.some((r) => r.metrics().messages < 5) && Date.now() < deadline) {
        await new Promise((done) => setTimeout(done, 20));
      }
      const response = await fetch(`${server.url}/v1/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          input: { 'device.id': [1, 2, 3] },
          output: ['device.errors__600__', 'device.recent__3600__'],
        }),
      });
      expect(response.status).toBe(200);
      const body = (await response.json()) as { rows: { values: number[] }[] };
      // 10m periods closed by T0 + 40m: device 1's latest is [T0 + 10m, T0 + 20m).
      expect(body.rows.map((r) => r.values)).toEqual([
        [1, 3],
        [1, 1],
        [0, 1],
      ]);
      const text = await (await fetch(`${server.url}/metrics`)).text();
      expect(text).toContain('tessera_windowed_messages_total{resolver="device_errors"} 6');
      expect(text).toContain('tessera_windowed_dead_letters_total{resolver="device_errors"} 1');
      expect(text).toContain('tessera_windowed_messages_total{resolver="device_recent"} 5');
    } finally {
      await server.close();
    }
  });
});
