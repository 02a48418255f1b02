/**
 * HTTP serve scenarios: a real `tessera serve` child process on 127.0.0.1 answering the
 * 1 key x 10 features query (`POST /v1/query`, a different user each request), driven
 * by autocannon from this process:
 * - the most requests/s at 64 connections, next to an empty-handler fastify peer (its own
 *   child process, same route and body) measured in the same run;
 * - p50 / p99 latency at a fixed rate of half that maximum (at most 64 connections), next
 *   to the in-process `Tessera.query` of the same request on the same store. Requests are
 *   sent on a fixed schedule (one every 1/rate s, an open loop) and each latency is taken
 *   from the time the request was due, so a request that waited for a free connection
 *   counts its wait. autocannon's own rate limit sends each second's budget back to back
 *   and then pauses, which measures its own queue, not the server;
 * - the same two figures while the server's own stream folds 50K messages/s.
 * Every run is bounded in time; only loopback is used.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { Tessera } from '../ts/index.js';
import {
  type BenchContext,
  median,
  quantile,
  type ScenarioResult,
  seededRandom,
  withTempDir,
} from './harness.js';
import { BENCH_OUTPUTS, BENCH_USERS, BenchTransaction, BenchUser } from './serve-features.js';

const DAY = 86_400_000;
const CONNECTIONS = 64;
const STREAM_RATE = 50_000;

function here(file: string): string {
  return join(dirname(fileURLToPath(import.meta.url)), file);
}

/** The package's compiled CLI (this file runs from dist/bench). */
function cliPath(): string {
  const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'ts', 'cli', 'main.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build:ts`);
  return cli;
}

interface Child {
  readonly process: ChildProcess;
  readonly url: string;
  stop(): Promise<void>;
}

/** Starts a child that prints `listening on <url>`; killed if it is not up in 60 s. */
function startChild(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Child> {
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<void>((done) => child.on('exit', () => done()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args.join(' ')} did not listen in 60 s:\n${stderr}`));
    }, 60_000);
    let out = '';
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve({ process: child, url: match[1], stop });
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited before listening:\n${stderr}`));
    });
  });
}

/** Request bodies: one user each, the 10 feature windows. */
function bodies(n: number): string[] {
  const random = seededRandom(17);
  return Array.from({ length: n }, () =>
    JSON.stringify({
      input: { 'user.id': [Math.floor(random() * BENCH_USERS)] },
      output: BENCH_OUTPUTS,
    }),
  );
}

interface Load {
  /** Completed 2xx requests per second. */
  readonly requestsPerSecond: number;
  readonly errors: number;
  readonly non2xx: number;
}

interface PacedLoad extends Load {
  /** Per 2xx response, from its due time, in milliseconds. */
  readonly latenciesMs: number[];
}

/** Runs autocannon against `url` for `seconds`, as fast as it goes. */
async function load(url: string, seconds: number): Promise<Load> {
  const pool = bodies(4096);
  let next = 0;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    autocannon(
      {
        url: `${url}/v1/query`,
        connections: CONNECTIONS,
        duration: seconds,
        requests: [
          {
            method: 'POST',
            path: '/v1/query',
            headers: { 'content-type': 'application/json' },
            setupRequest: (request) => ({ ...request, body: pool[next++ % pool.length] as string }),
          },
        ],
      },
      (error: unknown, done: autocannon.Result) => (error ? reject(error) : resolve(done)),
    );
  });
  const ok = result['2xx'];
  return {
    requestsPerSecond: ok / (result.duration || seconds),
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

/**
 * Sends `rate` requests/s to `url` for `seconds` on a fixed schedule, over at most
 * {@link CONNECTIONS} keep-alive connections; each latency runs from the request's due
 * time to its response.
 */
async function pacedLoad(url: string, seconds: number, rate: number): Promise<PacedLoad> {
  const pool = bodies(4096);
  const target = new URL(`${url}/v1/query`);
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const latenciesMs: number[] = [];
  let ok = 0;
  let errors = 0;
  let non2xx = 0;
  const send = (index: number, due: number): Promise<void> =>
    new Promise((done) => {
      const body = pool[index % pool.length] as string;
      const req = httpRequest(
        {
          agent,
          host: target.hostname,
          port: target.port,
          path: target.pathname,
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              ok++;
              latenciesMs.push(performance.now() - due);
            } else {
              non2xx++;
            }
            done();
          });
        },
      );
      req.on('error', () => {
        errors++;
        done();
      });
      req.end(body);
    });
  const total = Math.max(1, Math.round(rate * seconds));
  const started = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait >= 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(send(i, due));
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  return { requestsPerSecond: ok / elapsed, latenciesMs, errors, non2xx };
}

/** Fills a store with 30 days of history for every user (a few transactions a day), compacted. */
function fillStore(dir: string, perUserPerDay: number): void {
  const tessera = Tessera.open({ path: dir, features: [BenchUser, BenchTransaction] });
  try {
    const random = seededRandom(5);
    const now = Date.now();
    const rows = BENCH_USERS * 30 * perUserPerDay;
    const chunk = 200_000;
    for (let start = 0; start < rows; start += chunk) {
      const n = Math.min(chunk, rows - start);
      const id = new Float64Array(n);
      const user = new Float64Array(n);
      const amount = new Float64Array(n);
      const ts = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        id[i] = start + i;
        user[i] = Math.floor(random() * BENCH_USERS);
        amount[i] = Math.round(random() * 100_000) / 100;
        ts[i] = now - Math.floor(random() * 30 * DAY);
      }
      tessera.ingest(BenchTransaction, { id, user_id: user, amount, ts });
    }
    // Compacted, as the query scenarios' stores are: the steady state of a store whose
    // history was loaded long ago, where no read has merge operands left to fold.
    tessera.engine.flush();
    tessera.engine.compact();
  } finally {
    tessera.close();
  }
}

/** p50 / p99 of the in-process query of the same requests (microseconds). */
function inProcess(dir: string, queries: number): { p50: number; p99: number } {
  const tessera = Tessera.open({ path: dir, features: [BenchUser, BenchTransaction] });
  try {
    const requests = bodies(4096).map((b) => JSON.parse(b) as Parameters<Tessera['query']>[0]);
    for (let i = 0; i < 2000; i++) tessera.query(requests[i % requests.length] as never);
    const us: number[] = [];
    for (let i = 0; i < queries; i++) {
      const t = process.hrtime.bigint();
      tessera.query(requests[i % requests.length] as never);
      us.push(Number(process.hrtime.bigint() - t) / 1000);
    }
    return { p50: quantile(us, 0.5), p99: quantile(us, 0.99) };
  } finally {
    tessera.close();
  }
}

async function streamRate(url: string): Promise<number> {
  const response = await fetch(`${url}/v1/streams`);
  const body = (await response.json()) as { streams: { messagesPerSecond: number }[] };
  return body.streams[0]?.messagesPerSecond ?? 0;
}

interface Measured {
  readonly maxRps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly fixedRate: number;
  readonly achievedRps: number;
  readonly errors: number;
  readonly streamRate?: number;
}

/** The most requests/s (median of the repetitions), then latency at half that rate. */
async function measure(url: string, context: BenchContext, streaming: boolean): Promise<Measured> {
  const seconds = context.quick ? 2 : 6;
  const maxima: number[] = [];
  let errors = 0;
  const rates: number[] = [];
  await load(url, 1); // warm-up: JIT, connections, block cache
  for (let r = 0; r < context.repetitions; r++) {
    const run = await load(url, seconds);
    maxima.push(run.requestsPerSecond);
    errors += run.errors + run.non2xx;
    if (streaming) rates.push(await streamRate(url));
  }
  const maxRps = median(maxima);
  const fixedRate = maxRps / 2;
  const p50s: number[] = [];
  const p99s: number[] = [];
  const achieved: number[] = [];
  for (let r = 0; r < context.repetitions; r++) {
    const run = await pacedLoad(url, seconds, fixedRate);
    p50s.push(quantile(run.latenciesMs, 0.5));
    p99s.push(quantile(run.latenciesMs, 0.99));
    achieved.push(run.requestsPerSecond);
    errors += run.errors + run.non2xx;
    if (streaming) rates.push(await streamRate(url));
  }
  return {
    maxRps,
    p50Ms: median(p50s),
    p99Ms: median(p99s),
    fixedRate,
    achievedRps: median(achieved),
    errors,
    ...(streaming ? { streamRate: median(rates) } : {}),
  };
}

/** The serve group. */
export async function serveScenarios(context: BenchContext): Promise<ScenarioResult[]> {
  return withTempDir(async (dir) => {
    const store = join(dir, 'store');
    fillStore(store, context.quick ? 1 : 4);
    const local = inProcess(store, context.quick ? 5_000 : 50_000);

    const empty = await startChild([here('serve-empty.js')]);
    let emptyRps: number;
    try {
      await load(empty.url, 1);
      const runs: number[] = [];
      for (let r = 0; r < context.repetitions; r++) {
        runs.push((await load(empty.url, context.quick ? 2 : 6)).requestsPerSecond);
      }
      emptyRps = median(runs);
    } finally {
      await empty.stop();
    }

    const serveArgs = [
      cliPath(),
      'serve',
      '--features',
      here('serve-features.js'),
      '--path',
      store,
      '--port',
      '0',
    ];
    const idleServer = await startChild(serveArgs, { BENCH_SERVE_STREAM_RATE: '0' });
    let idle: Measured;
    try {
      idle = await measure(idleServer.url, context, false);
    } finally {
      await idleServer.stop();
    }
    const streamingServer = await startChild(serveArgs, {
      BENCH_SERVE_STREAM_RATE: String(STREAM_RATE),
    });
    let streaming: Measured;
    try {
      // Let the stream reach its rate before measuring.
      await new Promise((r) => setTimeout(r, 3000));
      streaming = await measure(streamingServer.url, context, true);
    } finally {
      await streamingServer.stop();
    }

    const scenario = (
      name: string,
      m: Measured,
      extra: Record<string, number | string>,
    ): ScenarioResult[] => [
      {
        name: `serve.${name}.max_rps`,
        unit: 'requests/s',
        tessera: m.maxRps,
        peers: { empty_handler: emptyRps },
        ratios: { of_empty_handler: m.maxRps / emptyRps, of_bar_50pct: m.maxRps / emptyRps / 0.5 },
        notes: {
          connections: CONNECTIONS,
          query: '1 key x 10 features, 30 daily buckets',
          store: 'compacted after the load',
          errors: m.errors,
          ...extra,
        },
      },
      {
        name: `serve.${name}.p99_at_half_max`,
        unit: 'ms',
        tessera: m.p99Ms,
        peers: { in_process_p99: local.p99 / 1000, in_process_p50: local.p50 / 1000 },
        ratios: { of_bar_2ms: m.p99Ms / 2, vs_in_process_p99: m.p99Ms / (local.p99 / 1000) },
        notes: {
          p50_ms: Number(m.p50Ms.toFixed(3)),
          fixed_rate: Math.round(m.fixedRate),
          achieved_rps: Math.round(m.achievedRps),
          connections: CONNECTIONS,
          bar_ms: 2,
          ...extra,
        },
      },
    ];
    return [
      ...scenario('idle', idle, {}),
      ...scenario('streaming_50k', streaming, {
        stream_target_msgs_per_s: STREAM_RATE,
        stream_msgs_per_s: Math.round(streaming.streamRate ?? 0),
      }),
    ];
  });
}
