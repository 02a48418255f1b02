/**
 * Windowed stream resolvers survive SIGKILL (docs/semantics.md section 6.1): a child
 * process runs a tumbling and a continuous resolver over a JSON-lines file of messages
 * (out of order, late, bad) and is killed at random moments; after the last restart
 * every tumbling value and every continuous window equals what one uninterrupted run
 * gives, and the dead letters are the same: nothing lost, nothing doubled.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../ts/cli/seeded-random.js';
import { Tessera } from '../ts/index.js';
import { WindowedStreamRunner } from '../ts/resolvers/index.js';
import { JsonLinesSource } from '../ts/sources/index.js';
import {
  Account,
  HOUR,
  resolvers,
  T0,
  USERS,
  writeMessages,
} from './fixtures/windowed-workload.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-windowed-kill-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the child until `done`, or kills it `killAfterMs` after its first ack. */
function consume(
  store: string,
  file: string,
  killAfterMs: number | null,
): Promise<{ acks: number; finished: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        fileURLToPath(new URL('./fixtures/windowed-consumer.mjs', import.meta.url)),
        store,
        file,
        killAfterMs === null ? '0' : '40',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let acks = 0;
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    let buffer = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        if (line.startsWith('ack')) {
          acks += 1;
          if (killAfterMs !== null) timer ??= setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        }
        if (line === 'done') finished = true;
      }
    });
    child.on('error', reject);
    child.on('exit', () => {
      if (timer !== undefined) clearTimeout(timer);
      resolve({ acks, finished });
    });
  });
}

describe('windowed stream resolvers under SIGKILL', () => {
  it('end with the values of one uninterrupted run', async () => {
    const file = join(dir, 'logins.jsonl');
    const last = writeMessages(file, 17, 1500);
    // The exactly-once answer: one run, in this process.
    const once = resolvers(new JsonLinesSource(file), new JsonLinesSource(file));
    const reference = Tessera.open({
      path: join(dir, 'reference'),
      features: [Account],
      windowedResolvers: [...once],
      clock: T0,
    });
    const killed = join(dir, 'killed');
    try {
      await Promise.all(
        once.map((r) => new WindowedStreamRunner(reference, r, { batchSize: 23 }).run()),
      );
      const random = seededRandom(8);
      let mid = 0;
      for (let k = 0; k < 6; k++) {
        const run = await consume(killed, file, 50 + Math.floor(random() * 250));
        if (!run.finished && run.acks > 0) mid += 1;
      }
      expect(mid).toBeGreaterThanOrEqual(4);
      const final = await consume(killed, file, null);
      expect(final.finished).toBe(true);

      const restored = Tessera.open({
        path: killed,
        features: [Account],
        windowedResolvers: [...resolvers(new JsonLinesSource(file), new JsonLinesSource(file))],
        clock: T0,
      });
      try {
        const users = Array.from({ length: USERS + 1 }, (_, i) => i + 1);
        let nonZero = 0;
        for (let q = 0; q < 40; q++) {
          const now = T0 + 2 * HOUR + Math.floor(random() * (last - T0));
          const ask = (t: Tessera) =>
            t.queryAsync({
              input: { 'account.id': users },
              output: [
                Account.failed['10m'],
                Account.failed['1h'],
                Account.recent['30m'],
                Account.recent['2h'],
              ],
              now,
            });
          const want = (await ask(reference)).rows.map((r) => r.values);
          const got = (await ask(restored)).rows.map((r) => r.values);
          expect(got, `at ${new Date(now).toISOString()}`).toEqual(want);
          nonZero += want.flat().filter((v) => v !== 0).length;
        }
        expect(nonZero).toBeGreaterThan(300);
        for (const name of ['kill_tumbling', 'kill_continuous']) {
          const letters = (t: Tessera) =>
            t.engine.deadLetters({ source: name, limit: 10_000 }).map((l) => [l.offset, l.reason]);
          expect(letters(restored)).toEqual(letters(reference));
          expect(letters(reference).length).toBeGreaterThan(20);
          expect(restored.positions(name)).toEqual(reference.positions(name));
        }
      } finally {
        restored.close();
      }
    } finally {
      reference.close();
    }
  }, 120_000);
});
