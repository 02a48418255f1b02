/**
 * `tessera aggregate backfill` (docs/semantics.md section 9.4) over a Parquet file that
 * DuckDB writes: `--plan` prints the layouts with their widened ranges (section 9.2), the
 * resolvers and a row count without writing; `--json` prints the report, and the store
 * then answers what DuckDB computes from the file by the bucket-overlap rule (section
 * 5.1); in a real terminal (tmux) a progress bar is drawn on standard error, and plain
 * lines are written there when it is a pipe; a bad value fails the run naming the
 * resolver, the row and the column, and applies nothing (section 9.1).
 *
 * The CLI reads the wall clock, so the runs are given explicit bounds in January 2026;
 * the test process pins the engine clock inside the range before it queries.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../ts/cli/main.js';
import { Tessera } from '../ts/index.js';
import { FILE_VARIABLE, Transaction, User } from './fixtures/backfill-cli-features.js';

const run = promisify(execFile);

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const ROWS = 1_000_000;
const USERS = 500;
/** The file's rows run from here, one every STEP_MS, to past the end of the range. */
const FIRST_MS = Date.UTC(2025, 11, 31, 22);
const STEP_MS = Math.floor((7 * DAY + 4 * HOUR) / ROWS);
/** The requested bounds, and the range they widen to on 1h bucket edges (section 9.2). */
const LOWER = '2026-01-01T00:30:00Z';
const UPPER = '2026-01-07T23:10:00Z';
const FROM = '2026-01-01T00:00:00.000Z';
const TO = '2026-01-08T00:00:00.000Z';
const FROM_MS = Date.parse(FROM);
const TO_MS = Date.parse(TO);
/** The engine clock of the querying process: inside the last bucket of the range. */
const NOW = Date.UTC(2026, 0, 7, 23, 30);
/** A row of the bad file, inside the range, well past the first batch DuckDB hands over. */
const BAD_ID = 600_000;

const CLI = fileURLToPath(new URL('./fixtures/serve-cli.mjs', import.meta.url));
const FEATURES = fileURLToPath(new URL('./fixtures/backfill-cli-features.ts', import.meta.url));
const REPO = fileURLToPath(new URL('..', import.meta.url));
const OUTPUTS = ['user.total__86400__', 'user.total__604800__', 'user.high__86400__'] as const;
const WINDOWS = [
  { output: OUTPUTS[0], windowMs: DAY, aggregate: 'sum(amount)', fallback: 0 },
  { output: OUTPUTS[1], windowMs: 7 * DAY, aggregate: 'sum(amount)', fallback: 0 },
  { output: OUTPUTS[2], windowMs: DAY, aggregate: 'max(amount)', fallback: null },
];
const users = Array.from({ length: USERS }, (_, i) => i);
const fmt = (n: number) => n.toLocaleString('en-US');
const floorHour = (t: number) => Math.floor(t / HOUR) * HOUR;

const dir = mkdtempSync(join(tmpdir(), 'tessera-backfill-cli-'));
const goodFile = join(dir, 'transactions.parquet');
const badFile = join(dir, 'transactions-bad.parquet');
let db: DuckDBInstance;
let sql: DuckDBConnection;

beforeAll(async () => {
  db = await DuckDBInstance.create(':memory:');
  sql = await db.connect();
  const rows = (amount: string) =>
    `SELECT i AS id, CAST((i * 7919) % ${USERS} AS INTEGER) AS user_id, ${amount} AS amount,
       make_timestamp(CAST((${FIRST_MS} + i * ${STEP_MS}) * 1000 AS BIGINT)) AS ts
     FROM range(${ROWS}) t(i)`;
  await sql.run(
    `COPY (${rows('CAST((i * 31) % 97 AS DOUBLE) / 4')}) TO '${goodFile}' (FORMAT parquet)`,
  );
  // The bad file's amount is text: missing everywhere (a null value, skipped) but one 'x'.
  await sql.run(
    `COPY (${rows(`CAST(CASE WHEN i = ${BAD_ID} THEN 'x' END AS VARCHAR)`)}) TO '${badFile}' (FORMAT parquet)`,
  );
});

afterAll(() => {
  sql?.closeSync();
  db?.closeSync();
  rmSync(dir, { recursive: true, force: true });
});

async function scalar(query: string): Promise<number> {
  const reader = await sql.runAndReadAll(query);
  return Number(reader.getRows()[0]?.[0]);
}

/** `WHERE` of the file's rows with feature time in `[lo, hi)`. */
const within = (lo: number, hi: number) => `epoch_ms(ts) >= ${lo} AND epoch_ms(ts) < ${hi}`;

/** Rows of the good file inside the widened range. */
const rowsInRange = () =>
  scalar(`SELECT count(*) FROM read_parquet('${goodFile}') WHERE ${within(FROM_MS, TO_MS)}`);

/**
 * What each user's windows are at NOW once the range is backfilled into an empty store:
 * a window merges the buckets from the one holding NOW - W + 1 ms to the one holding NOW
 * (section 5.1), and the store holds buckets of the range only.
 */
async function expectedAnswers(): Promise<(number | null)[][]> {
  const out = users.map(() => WINDOWS.map((w) => w.fallback as number | null));
  for (const [i, w] of WINDOWS.entries()) {
    const lo = Math.max(floorHour(NOW - w.windowMs + 1), FROM_MS);
    const hi = Math.min(floorHour(NOW) + HOUR, TO_MS);
    const reader = await sql.runAndReadAll(
      `SELECT user_id, ${w.aggregate} FROM read_parquet('${goodFile}')
       WHERE ${within(lo, hi)} GROUP BY user_id`,
    );
    for (const [user, value] of reader.getRows()) {
      const row = out[Number(user)];
      if (row !== undefined && value !== null) row[i] = Number(value);
    }
  }
  return out;
}

/** The store's answers at NOW, opened (and closed) in this process with the clock pinned. */
function answers(path: string): unknown[][] {
  const tessera = Tessera.open({ path, features: [User, Transaction] });
  try {
    tessera.setClock(NOW);
    return tessera
      .query({ input: { 'user.id': users }, output: [...OUTPUTS], now: NOW })
      .rows.map((r) => [...r.values]);
  } finally {
    tessera.close();
  }
}

/** Runs `tessera aggregate backfill` in this process over `file`. */
async function backfill(
  file: string,
  args: readonly string[],
): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  process.env[FILE_VARIABLE] = file;
  try {
    const code = await main(['aggregate', 'backfill', '--features', FEATURES, ...args], {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
      cwd: dir,
    });
    return { code, out, err };
  } finally {
    delete process.env[FILE_VARIABLE];
  }
}

// The CLI's engine clock is pinned too, so retention (judged by it) keeps January 2026.
const bounds = [
  '--feature',
  'user.total',
  '--lower-bound',
  LOWER,
  '--upper-bound',
  UPPER,
  '--clock',
  new Date(NOW).toISOString(),
];

describe('tessera aggregate backfill', () => {
  it('--plan prints the layout with its widened range, the resolvers and the row count, and writes nothing', async () => {
    const n = await rowsInRange();
    // The records a run writes: the distinct (user, hour) pairs of the range's rows.
    const buckets = await scalar(
      `SELECT count(*) FROM (SELECT DISTINCT user_id, floor(epoch_ms(ts) / ${HOUR}) FROM read_parquet('${goodFile}') WHERE ${within(FROM_MS, TO_MS)})`,
    );
    expect(buckets).toBeLessThan(n);
    const unwidened = await scalar(
      `SELECT count(*) FROM read_parquet('${goodFile}') WHERE ${within(Date.parse(LOWER), Date.parse(UPPER))}`,
    );
    // The file has rows outside the range on both sides, and rows the widening takes in.
    expect(n).toBeGreaterThan(unwidened);
    expect(n).toBeLessThan(ROWS);
    const path = join(dir, 'plan');

    const text = await backfill(goodFile, [
      '--path',
      path,
      ...bounds,
      '--tags',
      'source:file',
      '--plan',
    ]);
    expect(text.err).toEqual([]);
    expect(text.code).toBe(0);
    const lines = text.out.join('\n').split('\n');
    const perKey = (TO_MS - FROM_MS) / HOUR;
    expect(lines[0]).toBe('Backfill of user.total');
    expect(lines[1]).toBe(
      `  resolvers asked for [${FROM}, ${TO}) with tags source:file: transactions_file`,
    );
    expect(lines[2]).toMatch(/^ {2}s_[0-9a-f]{12} transaction\.amount by user_id: /);
    expect(lines[3]).toBe(
      `    1h buckets [${FROM}, ${TO}): ${perKey} per key; rules sum per 1h, max per 1h`,
    );
    expect(lines[4]).toBe('    also rebuilt from the same rows (shared records): user.high');
    expect(lines[5]).toMatch(
      new RegExp(
        `^ {2}rows to read: ${fmt(n)}; bucket records to write: at most ${fmt(buckets)}; bytes: at most [\\d.]+ (B|KiB|MiB|GiB) of states$`,
      ),
    );
    expect(lines).toHaveLength(6);

    const json = await backfill(goodFile, [
      '--path',
      path,
      ...bounds,
      '--tags',
      'source:file',
      '--plan',
      '--json',
    ]);
    expect(json.code).toBe(0);
    const plan = JSON.parse(json.out.join('\n'));
    expect(plan).toMatchObject({
      features: ['user.total'],
      lowerBound: FROM,
      upperBound: TO,
      tags: ['source:file'],
      resolvers: [{ name: 'transactions_file', namespace: 'transaction' }],
      estimate: { rows: n, buckets },
    });
    expect(plan.layouts).toHaveLength(1);
    expect(plan.layouts[0]).toMatchObject({
      bucketSize: '1h',
      from: FROM,
      to: TO,
      fromMs: FROM_MS,
      toMs: TO_MS,
      buckets: perKey,
      features: ['user.total'],
      sharedWith: ['user.high'],
    });

    // Untagged, every resolver of the class takes part; the function one cannot count.
    const untagged = await backfill(goodFile, ['--path', path, ...bounds, '--plan']);
    expect(untagged.code).toBe(0);
    expect(untagged.out.join('\n')).toContain(
      `  resolvers asked for [${FROM}, ${TO}): transactions_file, transactions_api`,
    );
    expect(untagged.out.join('\n')).toContain(
      '  rows to read: unknown (a function resolver); bucket records to write: unknown; bytes: unknown',
    );

    // Nothing was written: every window is the feature's default.
    expect(answers(path)).toEqual(users.map(() => [0, 0, null]));
  });

  it('--json prints the report, and the store then answers what DuckDB computes from the file', async () => {
    const n = await rowsInRange();
    const inRange = `FROM read_parquet('${goodFile}') WHERE ${within(FROM_MS, TO_MS)}`;
    const keys = await scalar(`SELECT count(DISTINCT user_id) ${inRange}`);
    const buckets = await scalar(
      `SELECT count(*) FROM (SELECT DISTINCT user_id, floor(epoch_ms(ts) / ${HOUR}) ${inRange})`,
    );
    const path = join(dir, 'json');
    const { code, out, err } = await backfill(goodFile, ['--path', path, ...bounds, '--json']);
    expect(err.filter((l) => l.startsWith('tessera '))).toEqual([]);
    expect(code).toBe(0);
    const report = JSON.parse(out.join('\n'));
    expect(report.rows).toBe(n);
    expect(report.rowsPerResolver).toEqual({ transactions_file: n, transactions_api: 0 });
    expect([report.lowerBound, report.upperBound]).toEqual([FROM, TO]);
    expect(report.layouts).toHaveLength(1);
    expect([report.layouts[0].fromMs, report.layouts[0].toMs]).toEqual([FROM_MS, TO_MS]);
    expect(report.native).toMatchObject({
      bucketsWritten: buckets,
      keyRangesCleared: keys,
      rowsOutsideRange: 0,
    });
    expect(report.elapsedMs).toBeGreaterThan(0);

    const expected = await expectedAnswers();
    expect(expected.some((row) => row[0] !== 0)).toBe(true);
    expect(answers(path)).toEqual(expected);
  });

  it('draws a progress bar in a terminal, and writes plain progress lines to a pipe', async () => {
    const n = await rowsInRange();
    const command = (path: string) => [
      CLI,
      'aggregate',
      'backfill',
      '--features',
      FEATURES,
      '--path',
      path,
      ...bounds,
      '--tags',
      'source:file',
    ];
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

    // A terminal: a detached tmux session on its own server, 160 x 40.
    const socket = `tessera-backfill-cli-${process.pid}`;
    const tmux = (...a: string[]) => run('tmux', ['-L', socket, ...a]);
    const ttyStore = join(dir, 'tty');
    const frames: string[] = [];
    let final = '';
    try {
      await tmux(
        'new-session',
        '-d',
        '-s',
        'backfill',
        '-x',
        '160',
        '-y',
        '40',
        '-c',
        REPO,
        '-e',
        `${FILE_VARIABLE}=${goodFile}`,
        `${[process.execPath, ...command(ttyStore)].map(quote).join(' ')}; echo "exit $?"; sleep 30`,
      );
      const deadline = Date.now() + 20_000;
      for (;;) {
        const { stdout } = await tmux('capture-pane', '-p', '-J', '-t', 'backfill');
        if (/^ {2}read /m.test(stdout) && /^exit \d+$/m.test(stdout)) {
          final = stdout;
          break;
        }
        if (stdout.trim() !== '') frames.push(stdout);
        if (Date.now() > deadline) throw new Error(`no report within 20 s:\n${stdout}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      try {
        execFileSync('tmux', ['-L', socket, 'kill-server'], { stdio: 'ignore' });
      } catch {
        // The server is already gone.
      }
    }
    // While it ran: the bar, out of the rows counted up front, without the report yet.
    const bars = frames.filter(
      (f) =>
        f.includes(' backfill |') &&
        f.includes('rows/s') &&
        f.includes('ETA') &&
        f.includes(`/${n} rows`) &&
        !/^ {2}read /m.test(f),
    );
    expect(bars.length, `frames seen:\n${frames.join('\n---\n')}`).toBeGreaterThan(0);
    // At the end: the full bar, the report, no plain progress lines.
    expect(final).toMatch(/^exit 0$/m);
    expect(final).toContain(` backfill |${'█'.repeat(40)}| 100% | ${n}/${n} rows | `);
    expect(final).toContain(`  resolvers asked for [${FROM}, ${TO}) with tags source:file`);
    expect(final).toMatch(new RegExp(`^ {2}read ${fmt(n)} rows in `, 'm'));
    expect(final).not.toContain('backfill reading:');
    expect(final).not.toContain('backfill done:');

    // A pipe: plain lines on standard error, no bar, no terminal control sequences.
    const pipeStore = join(dir, 'pipe');
    const child = spawn(process.execPath, command(pipeStore), {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, [FILE_VARIABLE]: goodFile },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const exitCode = await new Promise<number | null>((done, fail) => {
      const watchdog = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('error', fail);
      child.on('exit', (c) => {
        clearTimeout(watchdog);
        done(c);
      });
    });
    expect(exitCode, stderr).toBe(0);
    const plain = stderr.split('\n').filter((l) => l !== '');
    expect(plain.every((l) => /^backfill (counting|reading|ingesting|done): /.test(l))).toBe(true);
    expect(plain[0]).toMatch(/^backfill counting: 0 rows, /);
    expect(plain.at(-2)).toMatch(new RegExp(`^backfill ingesting: ${fmt(n)} of ${fmt(n)} rows, `));
    expect(plain.at(-1)).toMatch(
      new RegExp(`^backfill done: ${fmt(n)} of ${fmt(n)} rows, [\\d,]+ rows/s, \\d+\\.\\d s$`),
    );
    expect(stderr).not.toContain(' backfill |');
    expect(stderr).not.toContain('\u001b[');
    expect(stdout).toMatch(new RegExp(`^ {2}read ${fmt(n)} rows in `, 'm'));

    // Both runs wrote the same buckets: what DuckDB computes from the file.
    const expected = await expectedAnswers();
    expect(answers(ttyStore)).toEqual(expected);
    expect(answers(pipeStore)).toEqual(expected);
  });

  it('a bad value fails the run naming the resolver, the row and the column, and applies nothing', async () => {
    const path = join(dir, 'bad');
    const good = await backfill(goodFile, ['--path', path, ...bounds, '--tags', 'source:file']);
    expect(good.code).toBe(0);
    const before = answers(path);
    expect(before).toEqual(await expectedAnswers());

    // The row number counts the rows of the run: those the query returns for the range.
    const row = await scalar(
      `SELECT count(*) FROM read_parquet('${badFile}') WHERE ${within(FROM_MS, TO_MS)} AND id < ${BAD_ID}`,
    );
    expect(row).toBeGreaterThan(65_536);
    const bad = await backfill(badFile, ['--path', path, ...bounds, '--tags', 'source:file']);
    expect(bad.code).toBe(1);
    expect(bad.out).toEqual([]);
    const failure = bad.err.filter((l) => l.startsWith('tessera '));
    expect(failure).toHaveLength(1);
    expect(failure[0]).toMatch(
      new RegExp(
        `^tessera aggregate backfill: backfill failed, nothing applied: batch resolver transactions_file row ${row}: amount is ['"]x['"], not a number \\(float\\)$`,
      ),
    );
    // The old buckets answer, and the run left no table files behind.
    expect(answers(path)).toEqual(before);
    const staging = join(path, 'backfill');
    expect(existsSync(staging) ? readdirSync(staging) : []).toEqual([]);
  });
});
