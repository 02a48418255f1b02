/**
 * Backfills are atomic (docs/semantics.md section 9): queries issued in a loop while a
 * large backfill runs see the old buckets or the new ones, never a mix; a process
 * killed with SIGKILL at random moments of a backfill leaves the old state, and running
 * the same backfill again gives the answer of an uninterrupted run.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Tessera } from '../ts/index.js';
import {
  backfillResolver,
  historyColumns,
  NOW,
  OUTPUTS,
  Transaction,
  User,
  users,
} from './fixtures/backfill-workload.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-backfill-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BATCHES = 40;
const SIZE = 5_000;

function open(path: string): Tessera {
  const tessera = Tessera.open({
    path,
    features: [User, Transaction],
    batchResolvers: [backfillResolver(BATCHES, SIZE)],
  });
  tessera.setClock(NOW);
  return tessera;
}

/** A store holding the old state: 20,000 rows of another history (salt 2). */
function withOldState(path: string): Tessera {
  const tessera = open(path);
  tessera.ingest(Transaction, historyColumns(0, 20_000, 2));
  return tessera;
}

function answers(tessera: Tessera): string {
  return JSON.stringify(
    tessera
      .query({ input: { 'user.id': users() }, output: OUTPUTS, now: NOW })
      .rows.map((r) => r.values),
  );
}

/** The answers of an uninterrupted backfill over the old state (computed once). */
let reference: Promise<{ before: string; after: string }> | undefined;
function uninterrupted(): Promise<{ before: string; after: string }> {
  reference ??= computeReference();
  return reference;
}

async function computeReference(): Promise<{ before: string; after: string }> {
  const tessera = withOldState(join(dir, 'reference'));
  const before = answers(tessera);
  await tessera.backfill({ features: ['user.total'], spillBuckets: 2000 });
  const after = answers(tessera);
  tessera.close();
  return { before, after };
}

/** Runs the backfilling child and kills it `delayMs` after it started; true if it finished first. */
function backfillUntilKilled(path: string, delayMs: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        fileURLToPath(new URL('./fixtures/backfill-child.mjs', import.meta.url)),
        path,
        String(BATCHES),
        String(SIZE),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      if (text.includes('started')) timer ??= setTimeout(() => child.kill('SIGKILL'), delayMs);
      if (text.includes('done')) done = true;
    });
    child.on('error', reject);
    child.on('exit', () => {
      if (timer) clearTimeout(timer);
      resolve(done);
    });
  });
}

describe('backfill atomicity', () => {
  it('queries during a large backfill see the old buckets or the new ones, never a mix', async () => {
    const { before, after } = await uninterrupted();
    expect(after).not.toBe(before);
    const tessera = withOldState(join(dir, 'concurrent'));
    expect(answers(tessera)).toBe(before);
    let finished = false;
    const run = tessera.backfill({ features: ['user.total'], spillBuckets: 2000 }).finally(() => {
      finished = true;
    });
    const seen = { old: 0, new: 0 };
    while (!finished) {
      const { rows } = await tessera.queryAsync({
        input: { 'user.id': users() },
        output: OUTPUTS,
        now: NOW,
      });
      const got = JSON.stringify(rows.map((r) => r.values));
      if (got === before) seen.old++;
      else if (got === after) seen.new++;
      else throw new Error('a query saw a mix of old and new buckets');
    }
    const report = await run;
    expect(report.rows).toBe(BATCHES * SIZE);
    expect(report.native.spills).toBeGreaterThan(1);
    expect(answers(tessera)).toBe(after);
    // The loop ran while the backfill folded: it saw the old state at least once.
    expect(seen.old).toBeGreaterThan(0);
    tessera.close();
  });

  it('a backfill killed at random moments leaves the old state; running it again completes it', async () => {
    const { before, after } = await uninterrupted();
    const path = join(dir, 'killed');
    withOldState(path).close();
    // Kill points spread over the run (a run lasts a few hundred milliseconds here).
    const delays = [5, 40, 90, 150, 220, 300, 400];
    let interrupted = 0;
    for (const delay of delays) {
      const finished = await backfillUntilKilled(path, delay);
      const tessera = open(path);
      const got = answers(tessera);
      tessera.close();
      // Killed before the atomic ingest: the old state; after it: the new one. Never a mix.
      expect([before, after], `killed ${delay} ms after the start`).toContain(got);
      if (finished || got === after) break;
      interrupted++;
    }
    expect(interrupted).toBeGreaterThan(0);
    const tessera = open(path);
    await tessera.backfill({ features: ['user.total'], spillBuckets: 2000 });
    expect(answers(tessera)).toBe(after);
    tessera.close();
  }, 120_000);
});
