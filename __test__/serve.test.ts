/**
 * `tessera serve` as a user runs it: a child process on 127.0.0.1 holding a store and
 * streaming an in-process source, queried with a real HTTP client (fetch). Its answers
 * equal the embedded API's on the same messages while the stream folds; `/metrics` is
 * Prometheus text whose counters are the stream's; every bad request gets a 4xx naming
 * the problem; the read commands of the CLI work while the server holds the store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIO } from '../ts/cli/command.js';
import { main } from '../ts/cli/main.js';
import { compile } from '../ts/planner/compile.js';
import { serveWorkload } from './fixtures/serve-features.js';
import {
  embeddedAnswer,
  endsOf,
  kindCounts,
  OUTPUTS,
  offsetsOf,
  positionMap,
  prefixOf,
  usersQuery,
  withinRounding,
} from './fixtures/serve-oracle.js';
import {
  http,
  killAll,
  parsePrometheus,
  runCli,
  SERVE_FEATURES,
  type ServeProcess,
  sample,
  startServe,
} from './fixtures/serve-process.js';
import { featureClasses, NOW } from './fixtures/stream-workload.js';

const USERS = 30;
const ENV = {
  SERVE_FIXTURE_MESSAGES: '12000',
  SERVE_FIXTURE_SEED: '3',
  SERVE_FIXTURE_CHUNK: '150',
  SERVE_FIXTURE_TICK_MS: '75',
};
const messages = serveWorkload(ENV);
const offsets = offsetsOf(messages);
const ends = endsOf(messages);
const dir = mkdtempSync(join(tmpdir(), 'tessera-serve-'));
const store = join(dir, 'store');
const LIMITS = ['--max-keys', '50', '--max-outputs', '8', '--max-body-bytes', '8192'];
let server: ServeProcess;

function capture(): CliIO & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t), cwd: dir };
}

async function streams(url: string) {
  const { status, body } = await http(`${url}/v1/streams`);
  expect(status).toBe(200);
  const [payments] = (
    body as {
      streams: {
        resolver: string;
        messages: number;
        commits: number;
        deadLetters: number;
        lateDropped: number;
        duplicatesSkipped: number;
        rows: number;
        positions: { partition: number; offset: number }[];
      }[];
    }
  ).streams;
  if (payments === undefined) throw new Error('no stream in /v1/streams');
  return { ...payments, positionMap: positionMap(payments.positions) };
}

function same(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): boolean {
  return a.size === b.size && [...a].every(([p, o]) => b.get(p) === o);
}

function complete(positions: ReadonlyMap<number, number>): boolean {
  return same(positions, ends);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  server = await startServe(
    [
      'serve',
      '--features',
      SERVE_FEATURES,
      '--path',
      store,
      '--port',
      '0',
      '--clock',
      new Date(NOW).toISOString(),
      ...LIMITS,
    ],
    ENV,
  );
});
afterAll(async () => {
  if (server !== undefined && server.child.exitCode === null) {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

describe('tessera serve over HTTP', () => {
  it('is healthy at once and ready once its stream has started', async () => {
    expect((await http(`${server.url}/healthz`)).body).toEqual({ status: 'ok' });
    const ready = await waitFor('readiness', async () => {
      const r = await http(`${server.url}/readyz`);
      return r.status === 200 ? r.body : undefined;
    });
    expect(ready).toEqual({ status: 'ready' });
  });

  it('answers queries equal to the embedded API while the stream folds', async () => {
    const request = usersQuery(USERS);
    // A query is bracketed by two reads of the committed positions; when they are the
    // same, no commit happened in between, and the answer must be the embedded API's
    // on exactly the messages before those positions.
    const checkpoints: { positions: Map<number, number>; answer: unknown }[] = [];
    let readOnlyChecked = false;
    await waitFor('the whole workload', async () => {
      const before = await streams(server.url);
      const { status, body } = await http(`${server.url}/v1/query`, { body: request });
      expect(status).toBe(200);
      const after = await streams(server.url);
      const done = complete(after.positionMap);
      const last = checkpoints[checkpoints.length - 1];
      if (
        same(before.positionMap, after.positionMap) &&
        before.positionMap.size > 0 &&
        (last === undefined || !same(last.positions, after.positionMap)) &&
        (checkpoints.length < 3 || done)
      ) {
        checkpoints.push({ positions: after.positionMap, answer: body });
      }
      if (!readOnlyChecked && before.commits > 0 && !done) {
        // While the server writes: the read commands open the store read-only.
        const io = capture();
        expect(await main(['deadletters', '--path', store, '--json'], io)).toBe(0);
        const total = JSON.parse(io.stdout.join('\n')).total as number;
        expect(total).toBeGreaterThanOrEqual(before.deadLetters);
        readOnlyChecked = true;
      }
      return done && complete(checkpoints[checkpoints.length - 1]?.positions ?? new Map())
        ? true
        : undefined;
    });
    expect(readOnlyChecked, 'a read command ran while the stream was folding').toBe(true);
    const midway = checkpoints.filter((c) => !complete(c.positions));
    console.log(
      `in-process: ${checkpoints.length} answers compared, at ${checkpoints.map((c) => [...c.positions.values()].reduce((x, y) => x + y, 0)).join(', ')} of ${messages.length} messages`,
    );
    expect(midway.length, 'answers taken while the stream was folding').toBeGreaterThan(0);
    for (const { positions, answer } of checkpoints) {
      const prefix = prefixOf(messages, offsets, positions);
      const embedded = await embeddedAnswer(prefix, request);
      expect(embedded.positions).toEqual(positions);
      expect(withinRounding(answer, embedded.answer)).toEqual(embedded.answer);
    }
    // The answers are not trivially equal: the last one holds data the first did not.
    expect(checkpoints[0]?.answer).not.toEqual(checkpoints[checkpoints.length - 1]?.answer);
  });

  it('serves /metrics as Prometheus text with the stream counters', async () => {
    const counts = kindCounts(messages);
    const stream = await streams(server.url);
    expect(complete(stream.positionMap)).toBe(true);
    const response = await http(`${server.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const { samples, types } = parsePrometheus(response.text);
    const labels = { resolver: 'payments' };
    const read = (name: string) => sample(samples, name, labels);
    expect(types.get('tessera_stream_messages_total')).toBe('counter');
    expect(read('tessera_stream_messages_total')).toBe(messages.length);
    expect(read('tessera_stream_messages_total')).toBe(stream.messages);
    expect(read('tessera_stream_dead_letters_total')).toBe(counts.bad);
    expect(read('tessera_stream_dead_letters_total')).toBe(stream.deadLetters);
    expect(read('tessera_stream_late_dropped_total')).toBe(counts.late);
    expect(read('tessera_stream_late_dropped_total')).toBe(stream.lateDropped);
    expect(read('tessera_stream_duplicates_skipped_total')).toBe(counts.duplicate);
    expect(read('tessera_stream_duplicates_skipped_total')).toBe(stream.duplicatesSkipped);
    expect(read('tessera_stream_rows_total')).toBe(stream.rows);
    expect(read('tessera_stream_commits_total')).toBe(stream.commits);
    expect(stream.commits).toBeGreaterThan(1);
    expect(read('tessera_stream_running')).toBe(1);
    expect(types.get('tessera_stream_lag_messages')).toBe('gauge');
    expect(types.get('tessera_query_duration_seconds')).toBe('histogram');
    const queries = sample(samples, 'tessera_query_duration_seconds_count', { outcome: 'ok' });
    expect(queries).toBeGreaterThan(3);
    expect(
      sample(samples, 'tessera_query_duration_seconds_bucket', { outcome: 'ok', le: '+Inf' }),
    ).toBe(queries);
    expect(sample(samples, 'tessera_store_series')).toBe(
      compile(featureClasses).plan.series.length,
    );
    expect(sample(samples, 'tessera_store_disk_bytes')).toBeGreaterThanOrEqual(0);
    expect(sample(samples, 'process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('describes features, series and storage, and pages dead letters', async () => {
    const { plan } = compile(featureClasses);
    const features = (await http(`${server.url}/v1/features`)).body as {
      features: { feature: string }[];
      series: { id: string; description: string }[];
      storage: { bytesPerKey: number };
    };
    expect(features.features.map((f) => f.feature)).toEqual(plan.features.map((f) => f.feature));
    expect(features.series.map((s) => s.id)).toEqual(plan.series.map((s) => s.id));
    expect(features.series[0]?.description).toMatch(
      /^transaction\.amount@1 by user_id: sum per 1h/,
    );
    expect(features.storage.bytesPerKey).toBe(plan.bytesPerKey);

    const bad = kindCounts(messages).bad;
    const page = async (query: string) =>
      (await http(`${server.url}/v1/deadletters?${query}`)).body as {
        total: number;
        next: number | null;
        deadLetters: { partition: number; offset: number; reason: string }[];
      };
    const first = await page('limit=5');
    const second = await page(`limit=5&offset=${first.next}`);
    expect(first.total).toBe(bad);
    expect(first.deadLetters).toHaveLength(5);
    expect(first.next).toBe(5);
    const both = await page('limit=10');
    expect([...first.deadLetters, ...second.deadLetters]).toEqual(both.deadLetters);
    const last = await page(`limit=5&offset=${bad - 3}`);
    expect(last.deadLetters).toHaveLength(3);
    expect(last.next).toBeNull();
    expect((await page('source=nobody')).total).toBe(0);
  });

  it('gives every bad request a 4xx naming the problem, and keeps serving', async () => {
    const query = usersQuery(3);
    const cases: {
      name: string;
      init: Parameters<typeof http>[1];
      path?: string;
      status: number;
      code: string;
      message: RegExp;
    }[] = [
      {
        name: 'malformed JSON',
        init: { raw: '{"input": {"user.id": ["u1"]' },
        status: 400,
        code: 'FST_ERR_CTP_INVALID_JSON_BODY',
        message: /JSON/,
      },
      {
        name: 'unknown feature',
        init: { body: { ...query, output: ['user.nope_7d'] } },
        status: 400,
        code: 'INVALID_QUERY',
        message: /user\.nope_7d/,
      },
      {
        name: 'unknown window',
        init: { body: { ...query, output: ['user.txn_count_3d'] } },
        status: 400,
        code: 'INVALID_QUERY',
        message: /user\.txn_count_3d/,
      },
      {
        name: 'wrong key type',
        init: { body: { ...query, input: { 'user.id': [7] } } },
        status: 400,
        code: 'INVALID_QUERY',
        message: /user\.id|id/,
      },
      {
        name: 'too many keys',
        init: { body: usersQuery(51) },
        status: 400,
        code: 'TOO_MANY_KEYS',
        message: /input has 51 keys; at most 50 per query/,
      },
      {
        name: 'too many outputs',
        init: { body: { ...query, output: [...OUTPUTS, ...OUTPUTS] } },
        status: 400,
        code: 'TOO_MANY_OUTPUTS',
        message: /at most 8 per query/,
      },
      {
        name: 'oversized body',
        init: { body: { ...query, explain: false, pad: 'x'.repeat(9000) } },
        status: 413,
        code: 'FST_ERR_CTP_BODY_TOO_LARGE',
        message: /too large/i,
      },
      {
        name: 'missing output',
        init: { body: { input: query.input } },
        status: 400,
        code: 'FST_ERR_VALIDATION',
        message: /body must have required property 'output'/,
      },
      {
        name: 'unknown field',
        init: { body: { ...query, outputs: [] } },
        status: 400,
        code: 'FST_ERR_VALIDATION',
        message: /'outputs'/,
      },
      {
        name: 'output not a list',
        init: { body: { ...query, output: 'user.total_7d' } },
        status: 400,
        code: 'FST_ERR_VALIDATION',
        message: /body\/output must be array/,
      },
      {
        name: 'bad query time',
        init: { body: { ...query, now: 'yesterday' } },
        status: 400,
        code: 'INVALID_QUERY',
        message: /now/,
      },
      {
        name: 'not JSON content',
        init: { raw: 'input=1', headers: { 'content-type': 'text/plain' } },
        status: 415,
        code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE',
        message: /text\/plain/,
      },
      {
        name: 'unknown route',
        init: {},
        path: '/v2/query',
        status: 404,
        code: 'NOT_FOUND',
        message: /GET \/v2\/query/,
      },
      {
        name: 'dead letter limit',
        init: {},
        path: '/v1/deadletters?limit=5000',
        status: 400,
        code: 'LIMIT_TOO_LARGE',
        message: /limit 5000/,
      },
      {
        name: 'dead letter parameter',
        init: {},
        path: '/v1/deadletters?partition=1',
        status: 400,
        code: 'FST_ERR_VALIDATION',
        message: /'partition'/,
      },
    ];
    const seen: string[] = [];
    for (const c of cases) {
      const r = await http(`${server.url}${c.path ?? '/v1/query'}`, c.init);
      const error = (r.body as { error?: { status: number; code: string; message: string } }).error;
      expect({ case: c.name, status: r.status, code: error?.code }).toEqual({
        case: c.name,
        status: c.status,
        code: c.code,
      });
      expect(error?.status).toBe(c.status);
      expect(error?.message, c.name).toMatch(c.message);
      seen.push(`${c.name}: ${r.status} ${error?.message}`);
    }
    console.log(`bad requests:\n  ${seen.join('\n  ')}`);
    const ok = await http(`${server.url}/v1/query`, { body: query });
    expect(ok.status).toBe(200);
    expect((ok.body as { rows: unknown[] }).rows).toHaveLength(3);
    expect(server.child.exitCode).toBeNull();
  });

  it('lets the read commands of the CLI open the store it holds', async () => {
    const letters = await runCli(['deadletters', '--path', store, '--limit', '3']);
    expect(letters.stderr).toBe('');
    expect(letters.code).toBe(0);
    expect(letters.stdout).toMatch(
      new RegExp(`^${kindCounts(messages).bad.toLocaleString('en-US')} dead letters in `),
    );
    const list = await runCli(['aggregate', 'list', '--features', SERVE_FEATURES, '--path', store]);
    expect(list.code).toBe(0);
    const series = compile(featureClasses).plan.series;
    expect(list.stdout).toContain(`series: 0 new, ${series.length} kept, 0 orphaned`);
    expect(list.stdout).toMatch(/bucket records: ~\d/);
    // The server still writes and answers after the read-only opens.
    expect((await http(`${server.url}/v1/query`, { body: usersQuery(2) })).status).toBe(200);
  });
});

describe('tessera serve bind rules', () => {
  it('refuses a non-loopback address without a token, and binds nothing', async () => {
    const other = join(dir, 'refused');
    const r = await runCli(
      ['serve', '--features', SERVE_FEATURES, '--path', other, '--host', '0.0.0.0'],
      { TESSERA_TOKEN: '' },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /binding to 0\.0\.0\.0 \(not a loopback address\) needs a bearer token: give --token <token> or set TESSERA_TOKEN/,
    );
    expect(r.stdout).not.toMatch(/listening/);
  });

  it('with a token, asks for it on every route but the health checks', async () => {
    const guarded = await startServe(
      ['serve', '--features', SERVE_FEATURES, '--path', join(dir, 'guarded'), '--port', '0'],
      { ...ENV, SERVE_FIXTURE_MESSAGES: '100', TESSERA_TOKEN: 's3cret' },
    );
    try {
      expect((await http(`${guarded.url}/healthz`)).status).toBe(200);
      const none = await http(`${guarded.url}/v1/features`);
      expect(none.status).toBe(401);
      expect((none.body as { error: { message: string } }).error.message).toMatch(/bearer token/);
      expect(
        (await http(`${guarded.url}/metrics`, { headers: { authorization: 'Bearer wrong' } }))
          .status,
      ).toBe(401);
      const ok = await http(`${guarded.url}/v1/features`, {
        headers: { authorization: 'Bearer s3cret' },
      });
      expect(ok.status).toBe(200);
    } finally {
      guarded.child.kill('SIGTERM');
      expect((await guarded.exited).code).toBe(0);
    }
  });
});
