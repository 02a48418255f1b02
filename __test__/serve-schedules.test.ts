/**
 * `tessera serve` runs the scheduled backfills of its features (docs/semantics.md
 * section 10) and lists them on `GET /v1/schedules`; closing the server stops the
 * scheduler before the store closes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TesseraServer } from '../ts/server/server.js';
import { nightly, sourceA, sourceB, Transaction, User } from './fixtures/scheduled-backfills.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-serve-schedules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tessera serve and scheduled backfills', () => {
  it('registers every job when it starts and lists them with their next times', async () => {
    const clockMs = Date.parse('2026-03-01T10:07:00Z');
    const server = await TesseraServer.start({
      path: join(dir, 'store'),
      features: [User, Transaction],
      store: { batchResolvers: [sourceA, sourceB], scheduledBackfills: [nightly] },
      port: 0,
      clockMs,
    });
    try {
      const response = await fetch(`${server.url}/v1/schedules`);
      expect(response.status).toBe(200);
      const body = (await response.json()) as {
        running: boolean;
        jobs: { name: string; schedule: string; last: { status: string } | null; nextMs: number }[];
      };
      expect(body.running).toBe(true);
      expect(
        body.jobs.map((j) => [
          j.name,
          j.schedule,
          j.last?.status,
          new Date(j.nextMs).toISOString(),
        ]),
      ).toEqual([
        ['user.total', '*/15 * * * *', 'REGISTERED', '2026-03-01T10:15:00.000Z'],
        ['user.total[source:a]', '*/15 * * * *', 'REGISTERED', '2026-03-01T10:15:00.000Z'],
        ['nightly_purchases', '0 0 * * *', 'REGISTERED', '2026-03-02T00:00:00.000Z'],
      ]);
    } finally {
      await server.close();
    }
    // The scheduler stopped with the server: the store opens again at once.
    const again = await TesseraServer.start({
      path: join(dir, 'store'),
      features: [User, Transaction],
      port: 0,
      schedules: false,
    });
    const listed = (await (await fetch(`${again.url}/v1/schedules`)).json()) as {
      running: boolean;
    };
    expect(listed.running).toBe(false);
    await again.close();
  });
});
