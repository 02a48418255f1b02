import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { BucketEngine } from '../ts/bucket-engine.js';
import { batchRows, description, HOUR, KEYS, NOW, SOURCE } from './fixtures/crash-workload.mjs';

const dir = mkdtempSync(join(tmpdir(), 'tessera-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the ingesting child, kills it with SIGKILL `delayMs` after its first ack, and
 * returns the batches it acknowledged. */
function ingestUntilKilled(delayMs: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [fileURLToPath(new URL('./fixtures/crash-ingester.mjs', import.meta.url)), dir],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const acked: number[] = [];
    let buffer = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        const [word, n] = line.split(' ');
        if (word === 'ack') {
          acked.push(Number(n));
          timer ??= setTimeout(() => child.kill('SIGKILL'), delayMs);
        }
      }
    });
    child.on('error', reject);
    child.on('exit', (_code, signal) => {
      if (timer) clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`the ingester exited on its own (${signal})`));
      else resolve(acked);
    });
  });
}

function expectedTotals(lastBatch: number): { sum: number[]; count: number[] } {
  const sum = new Array<number>(KEYS).fill(0);
  const count = new Array<number>(KEYS).fill(0);
  for (let b = 0; b <= lastBatch; b++) {
    const { keys, numbers } = batchRows(b);
    keys.forEach((k, j) => {
      sum[k] = (sum[k] ?? 0) + (numbers[j] ?? 0);
      count[k] = (count[k] ?? 0) + 1;
    });
  }
  return { sum, count };
}

describe('a process killed with SIGKILL while ingesting', () => {
  it('keeps every acknowledged batch exactly once and no partial batch', async () => {
    let previous = -1;
    for (let round = 0; round < 6; round++) {
      const acked = await ingestUntilKilled(50 + Math.floor(Math.random() * 400));
      expect(acked.length).toBeGreaterThan(0);
      expect(acked[0]).toBe(previous + 1);

      const engine = BucketEngine.open(dir, description);
      engine.setClock(NOW);
      const [position] = engine.positions(SOURCE);
      const last = position?.offset ?? -1;
      const lastAcked = acked[acked.length - 1] ?? -1;
      // Every acknowledged batch is stored; at most the one batch in flight is stored
      // without its acknowledgement having been printed.
      expect(last).toBeGreaterThanOrEqual(lastAcked);
      expect(last).toBeLessThanOrEqual(lastAcked + 1);

      // The data is exactly batches 0..=last: nothing lost, nothing doubled, no partial
      // batch (a batch touches ~300 buckets over 10 days of 50 keys).
      const { sum, count } = expectedTotals(last);
      const ints = Float64Array.from({ length: KEYS }, (_, k) => k);
      const [result] = engine.query([
        {
          keys: [{ ints }],
          reads: [
            { seriesId: 'events', rule: 0, windowMs: 30 * 24 * HOUR },
            { seriesId: 'events', rule: 1, windowMs: 30 * 24 * HOUR },
          ],
          nowMs: NOW,
        },
      ]);
      const got = result?.numbers ?? new Float64Array();
      for (let k = 0; k < KEYS; k++) {
        expect(got[k * 2], `sum of key ${k} after round ${round}`).toBe(sum[k]);
        expect(got[k * 2 + 1], `count of key ${k} after round ${round}`).toBe(count[k]);
      }
      engine.close();
      previous = last;
    }
  });
});
