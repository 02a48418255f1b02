/**
 * Stopping `tessera serve` in the middle of a stream. SIGTERM: it stops accepting,
 * finishes the requests in flight and the stream batch in flight, commits it and closes
 * the store; every message acknowledged by a commit (the positions `/v1/streams`
 * reported) is in the store once, and a restart folds the rest. SIGKILL: nothing is
 * finished, and the store still holds exactly the messages before its positions, each
 * once; after the last restart it holds the exactly-once answer for the whole stream.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tessera } from '../ts/tessera.js';
import { SERVE_USERS, serveWorkload } from './fixtures/serve-features.js';
import {
  embeddedAnswer,
  endsOf,
  kindCounts,
  offsetsOf,
  positionMap,
  prefixOf,
  usersQuery,
  withinRounding,
} from './fixtures/serve-oracle.js';
import {
  http,
  killAll,
  SERVE_FEATURES,
  type ServeProcess,
  startServe,
} from './fixtures/serve-process.js';
import {
  featureClasses,
  NOW,
  oracle,
  readWindows,
  type WorkloadMessage,
} from './fixtures/stream-workload.js';

const ENV = {
  SERVE_FIXTURE_MESSAGES: '30000',
  SERVE_FIXTURE_SEED: '11',
  SERVE_FIXTURE_CHUNK: '200',
  SERVE_FIXTURE_TICK_MS: '20',
};
const messages = serveWorkload(ENV);
const offsets = offsetsOf(messages);
const ends = endsOf(messages);
const dir = mkdtempSync(join(tmpdir(), 'tessera-serve-shutdown-'));

afterAll(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

function serve(store: string): Promise<ServeProcess> {
  return startServe(
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
    ],
    ENV,
  );
}

async function committed(
  url: string,
): Promise<{ commits: number; positions: Map<number, number> }> {
  const { body } = await http(`${url}/v1/streams`);
  const [stream] = (
    body as { streams: { commits: number; positions: { partition: number; offset: number }[] }[] }
  ).streams;
  return { commits: stream?.commits ?? 0, positions: positionMap(stream?.positions ?? []) };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function total(positions: ReadonlyMap<number, number>): number {
  return [...positions.values()].reduce((a, b) => a + b, 0);
}

/**
 * Sends a query on a raw connection in two parts: the headers and half of the body now,
 * the rest on `finish()`, which resolves to the whole response.
 */
function halfSentQuery(
  url: string,
  body: unknown,
): {
  headersTaken: Promise<void>;
  finish: () => Promise<string>;
} {
  const { hostname, port } = new URL(url);
  const payload = Buffer.from(JSON.stringify(body));
  const half = Math.floor(payload.length / 2);
  const socket = connect(Number(port), hostname);
  let response = '';
  socket.on('data', (c: Buffer) => {
    response += c.toString();
  });
  const ended = new Promise<string>((done, fail) => {
    socket.on('end', () => done(response));
    socket.on('error', fail);
  });
  const headersTaken = new Promise<void>((done) => {
    socket.on('connect', () => {
      socket.write(
        `POST /v1/query HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${payload.length}\r\nConnection: close\r\n\r\n`,
      );
      socket.write(payload.subarray(0, half));
      // Give the server the time to parse the headers and start the request.
      setTimeout(done, 200);
    });
  });
  return {
    headersTaken,
    finish: () => {
      socket.write(payload.subarray(half));
      return ended;
    },
  };
}

/** Opens the store after the server is gone: it must hold exactly the messages before its positions. */
function checkStore(store: string, round: string): Map<number, number> {
  const tessera = Tessera.open({ path: store, features: featureClasses });
  try {
    tessera.setClock(NOW);
    const positions = positionMap(tessera.positions('payments'));
    const held: WorkloadMessage[] = prefixOf(messages, offsets, positions);
    const got = readWindows((r) => tessera.query(r as never), SERVE_USERS);
    expect(got, `windows after ${round}`).toEqual(
      oracle(held, { v1: true, v2: false }, SERVE_USERS),
    );
    expect(tessera.engine.deadLetterCount('payments'), `dead letters after ${round}`).toBe(
      kindCounts(held).bad,
    );
    return positions;
  } finally {
    tessera.close();
  }
}

/** Restarts the server, lets it fold the rest, and compares with the embedded API. */
async function finish(store: string): Promise<void> {
  const server = await serve(store);
  try {
    await until('the whole workload', async () => {
      const { positions } = await committed(server.url);
      return [...ends].every(([p, o]) => positions.get(p) === o) ? true : undefined;
    });
    const request = usersQuery(SERVE_USERS);
    const answer = (await http(`${server.url}/v1/query`, { body: request })).body;
    const embedded = (await embeddedAnswer(messages, request)).answer;
    expect(withinRounding(answer, embedded)).toEqual(embedded);
  } finally {
    server.child.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
  }
  expect(checkStore(store, 'the last restart')).toEqual(ends);
}

describe('tessera serve stopped in the middle of a stream', () => {
  it('on SIGTERM finishes what is in flight, commits, and loses or doubles nothing', async () => {
    const store = join(dir, 'sigterm');
    const server = await serve(store);
    const acked = await until('a few commits', async () => {
      const c = await committed(server.url);
      return c.commits >= 3 ? c.positions : undefined;
    });
    // A request in flight when the signal lands (headers sent, half of its body): the
    // server has taken it, so it must answer it before it closes.
    const inflight = halfSentQuery(server.url, usersQuery(SERVE_USERS));
    await inflight.headersTaken;
    server.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    const response = await inflight.finish();
    expect(response).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)).rows).toHaveLength(
      SERVE_USERS,
    );
    // New connections are refused once it stops accepting.
    const late = await http(`${server.url}/healthz`).then(
      (r) => r.status,
      (e: Error & { cause?: { code?: string } }) => e.cause?.code ?? e.message,
    );
    expect([503, 'ECONNREFUSED']).toContain(late);
    const exit = await server.exited;
    expect(exit.code).toBe(0);
    expect(server.stdout.join('\n')).toMatch(
      /SIGTERM, finishing requests and stream batches in flight/,
    );
    expect(server.stdout.join('\n')).toMatch(/stopped, store closed; payments: \d+ messages/);

    const stored = checkStore(store, 'SIGTERM');
    for (const [p, o] of acked) expect(stored.get(p) ?? 0).toBeGreaterThanOrEqual(o);
    expect(total(stored), 'SIGTERM landed in the middle of the stream').toBeLessThan(
      messages.length,
    );
    await finish(store);
  });

  it('on SIGKILL keeps exactly the committed messages, and ends exactly once', async () => {
    const store = join(dir, 'sigkill');
    let previous = new Map<number, number>();
    for (let round = 1; round <= 3; round++) {
      const server = await serve(store);
      const acked = await until('a commit', async () => {
        const c = await committed(server.url);
        return c.commits >= 1 ? c.positions : undefined;
      });
      await new Promise((r) => setTimeout(r, 50 + Math.floor(Math.random() * 300)));
      server.child.kill('SIGKILL');
      expect((await server.exited).signal).toBe('SIGKILL');
      const stored = checkStore(store, `kill ${round}`);
      for (const [p, o] of acked) expect(stored.get(p) ?? 0).toBeGreaterThanOrEqual(o);
      for (const [p, o] of previous) expect(stored.get(p) ?? 0).toBeGreaterThanOrEqual(o);
      previous = stored;
    }
    expect(total(previous), 'the kills interrupted the stream').toBeLessThan(messages.length);
    await finish(store);
  });
});
