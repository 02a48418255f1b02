/**
 * Backfills over HTTP: `POST /v1/backfills` checks the request and starts one run at a
 * time (202 with its id), `GET /v1/backfills/:id` shows its progress and report,
 * `DELETE` cancels it (nothing applied, docs/semantics.md section 9.3), and `/metrics`
 * counts the runs and their rows. Point-in-time queries over HTTP (`POST
 * /v1/offline-query`, NDJSON). A real server on 127.0.0.1, a real HTTP client.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type BackfillPlan,
  features,
  hasMany,
  int,
  makeBatchResolver,
  windowed,
} from '../ts/index.js';
import type { HttpBackfillRun } from '../ts/server/backfills.js';
import { TesseraServer } from '../ts/server/server.js';
import { Transaction } from './fixtures/transactions.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const CLOCK = Date.parse('2026-06-10T12:30:00Z');
const dir = mkdtempSync(join(tmpdir(), 'tessera-serve-backfills-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const User = features(
  'user',
  { id: int().primary(), transactions: hasMany(() => Transaction) },
  (user) => ({
    total: windowed('1d', {
      materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).sum(),
      default: 0,
    }),
  }),
);

// Two days of rows for users 1..4, every 10 minutes.
const rows = Array.from({ length: (2 * DAY) / (10 * 60_000) }, (_, i) => ({
  id: i + 1,
  user_id: 1 + (i % 4),
  amount: (i % 7) + 0.5,
  ts: CLOCK - 2 * DAY + i * 10 * 60_000,
}));

/** Holds a run at its first batch until released. */
const gate: { held: Promise<void> | null; release: () => void } = {
  held: null,
  release: () => undefined,
};

const history = makeBatchResolver({
  name: 'history',
  output: Transaction,
  rows: async function* (run) {
    if (gate.held !== null) await gate.held;
    yield rows.filter((r) => r.ts >= run.lowerBoundMs && r.ts < run.upperBoundMs);
  },
});

function hold(): void {
  gate.held = new Promise((resolve) => {
    gate.release = () => {
      gate.held = null;
      resolve();
    };
  });
}

/** The JSON bodies the test reads: a run, a plan, a refusal or an answer. */
interface Reply {
  readonly run?: HttpBackfillRun | null;
  readonly reason?: string;
  readonly plan?: BackfillPlan;
  readonly error?: { readonly code: string; readonly message: string };
  readonly rows?: readonly { readonly values: readonly number[] }[];
}

async function post(url: string, body: unknown) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Reply,
  };
}

async function ended(url: string, id: string): Promise<HttpBackfillRun> {
  for (let i = 0; i < 500; i++) {
    const { run } = (await (await fetch(`${url}/v1/backfills/${id}`)).json()) as {
      run: HttpBackfillRun;
    };
    if (run.status !== 'RUNNING') return run;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`backfill ${id} did not end`);
}

/** The 1d sum at the clock under 1h buckets, for the rows before `end`. */
function expectedTotal(user: number, end: number): number {
  const first = Math.floor((CLOCK - DAY + 1) / HOUR) * HOUR;
  return rows
    .filter((r) => r.user_id === user && r.ts >= first && r.ts < end)
    .reduce((s, r) => s + r.amount, 0);
}

describe('backfills over HTTP', () => {
  it('runs, reports, refuses bad requests, cancels, and counts in /metrics', async () => {
    const server = await TesseraServer.start({
      path: join(dir, 'store'),
      features: [User, Transaction],
      store: { batchResolvers: [history] },
      port: 0,
      clockMs: CLOCK,
    });
    const url = server.url;
    const total = async () =>
      (
        (
          await post(`${url}/v1/query`, {
            input: { 'user.id': [1, 2, 3, 4] },
            output: ['user.total_1d'],
          })
        ).body as { rows: { values: number[] }[] }
      ).rows.map((r) => r.values[0]);
    try {
      // The plan, without running.
      const planned = await post(`${url}/v1/backfills`, { features: ['user.total'], plan: true });
      expect(planned.status).toBe(200);
      expect(planned.body.plan?.layouts).toHaveLength(1);
      expect(planned.body.plan?.estimate.rows).toBeNull();

      // Bad requests: each a 4xx naming the problem, nothing started.
      const unknown = await post(`${url}/v1/backfills`, { features: ['user.nope'] });
      expect(unknown.status).toBe(400);
      expect(unknown.body.error?.code).toBe('INVALID_OPTION');
      expect(unknown.body.error?.message).toContain('user.nope');
      const extra = await post(`${url}/v1/backfills`, { feature: 'user.total' });
      expect(extra.status).toBe(400);
      expect(extra.body.error?.message).toContain("'feature'");
      const missing = await fetch(`${url}/v1/backfills/not-a-run`);
      expect(missing.status).toBe(404);
      expect(((await missing.json()) as { error: { message: string } }).error.message).toBe(
        'no backfill not-a-run (GET /v1/backfills lists them)',
      );

      // A run held at its first batch: RUNNING, a second request is refused, DELETE
      // cancels it and nothing is applied.
      hold();
      const held = await post(`${url}/v1/backfills`, { features: ['user.total'] });
      expect(held.status).toBe(202);
      const heldRun = held.body.run as HttpBackfillRun;
      expect(held.headers.get('location')).toBe(`/v1/backfills/${heldRun.id}`);
      expect(heldRun.status).toBe('RUNNING');
      const busy = await post(`${url}/v1/backfills`, { features: ['user.total'] });
      expect(busy.status).toBe(409);
      expect(busy.body.error?.code).toBe('BACKFILL_RUNNING');
      const cancel = await fetch(`${url}/v1/backfills/${heldRun.id}`, { method: 'DELETE' });
      expect(cancel.status).toBe(202);
      gate.release();
      const canceled = await ended(url, heldRun.id);
      expect(canceled.status).toBe('CANCELED');
      expect(canceled.error).toContain('canceled, nothing applied');
      expect(await total()).toEqual([0, 0, 0, 0]);
      const again = await fetch(`${url}/v1/backfills/${heldRun.id}`, { method: 'DELETE' });
      expect(again.status).toBe(409);

      // Without features: the features with incomplete windows (all of them, on a store
      // registered at the clock), with the default bounds.
      const started = await post(`${url}/v1/backfills`, {});
      expect(started.status).toBe(202);
      const run = await ended(url, (started.body.run as HttpBackfillRun).id);
      expect(run.status).toBe('COMPLETED');
      expect(run.plan.features).toEqual(['user.total']);
      const end = Math.floor(CLOCK / HOUR) * HOUR;
      expect(run.plan.upperBound).toBe(new Date(end).toISOString());
      const read = rows.filter((r) => r.ts >= Date.parse(run.plan.lowerBound) && r.ts < end).length;
      expect(run.report?.rows).toBe(read);
      expect(run.progress?.phase).toBe('done');
      const totals = await total();
      for (const [i, user] of [1, 2, 3, 4].entries()) {
        expect(totals[i]).toBeCloseTo(expectedTotal(user, end), 6);
      }
      // The default upper bound leaves the bucket holding the clock, which the store only
      // holds from its registration on: the window still reads it, so it is still
      // incomplete until a run covers that bucket too.
      const rest = await post(`${url}/v1/backfills`, {
        features: ['user.total'],
        upperBound: new Date(end + HOUR).toISOString(),
      });
      const restRun = await ended(url, (rest.body.run as HttpBackfillRun).id);
      expect(restRun.status).toBe('COMPLETED');
      const none = await post(`${url}/v1/backfills`, {});
      expect(none.status).toBe(200);
      expect(none.body).toEqual({
        run: null,
        reason: 'every feature window is complete: nothing to backfill',
      });
      const readRest = restRun.report?.rows ?? 0;
      expect(readRest).toBe(
        rows.filter((r) => r.ts >= Date.parse(restRun.plan.lowerBound) && r.ts < end + HOUR).length,
      );

      const listed = (await (await fetch(`${url}/v1/backfills`)).json()) as {
        backfills: HttpBackfillRun[];
      };
      expect(listed.backfills.map((b) => b.status)).toEqual(['COMPLETED', 'COMPLETED', 'CANCELED']);

      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toContain('tessera_backfill_runs_total{status="COMPLETED",trigger="http"} 2');
      expect(metrics).toContain('tessera_backfill_runs_total{status="CANCELED",trigger="http"} 1');
      expect(metrics).toContain(`tessera_backfill_rows_total ${read + readRest}`);
      expect(metrics).toContain('tessera_backfills_running 0');
    } finally {
      gate.release();
      await server.close();
    }
  });

  it('answers point-in-time queries as NDJSON, and refuses bad ones naming the problem', async () => {
    const server = await TesseraServer.start({
      path: join(dir, 'offline'),
      features: [User, Transaction],
      store: { batchResolvers: [history] },
      port: 0,
      clockMs: CLOCK,
    });
    const url = server.url;
    try {
      const times = [CLOCK - 5 * HOUR - 7, CLOCK - DAY / 2, CLOCK];
      const response = await fetch(`${url}/v1/offline-query`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          input: { 'user.id': [1, 2, 3] },
          inputTimes: times.map((t) => new Date(t).toISOString()),
          output: ['user.total_1d'],
        }),
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toContain('application/x-ndjson');
      const lines = (await response.text())
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toHaveLength(4);
      expect(
        ((lines[0]?.outputs ?? []) as { canonical: string }[]).map((o) => o.canonical),
      ).toEqual(['user.total__86400__']);
      for (const [i, user] of [1, 2, 3].entries()) {
        const t = times[i] as number;
        // The exact window (t - 1d, t] from the raw rows.
        const want = rows
          .filter((r) => r.user_id === user && r.ts > t - DAY && r.ts <= t)
          .reduce((s, r) => s + r.amount, 0);
        const line = lines[i + 1] as { key: unknown; time: string; values: number[] };
        expect(line.key).toEqual({ 'user.id': user });
        expect(Date.parse(line.time)).toBe(t);
        expect(line.values[0]).toBeCloseTo(want, 6);
      }
      const bad = await post(`${url}/v1/offline-query`, {
        input: { 'user.id': [1] },
        inputTimes: [CLOCK],
        output: ['user.total_1d'],
        plannerOptions: { useTileStore: true },
      });
      expect(bad.status).toBe(400);
      expect(bad.body.error?.message).toContain('useTileStore');
      const mismatched = await post(`${url}/v1/offline-query`, {
        input: { 'user.id': [1, 2] },
        inputTimes: [CLOCK],
        output: ['user.total_1d'],
      });
      expect(mismatched.status).toBe(400);
      expect(mismatched.body.error?.message).toBe(
        'offlineQuery: inputTimes has 1 times for 2 input keys; give one time per key',
      );
    } finally {
      await server.close();
    }
  });
});
