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

/** Runs the ingesting child in `mode`, kills it with SIGKILL `delayMs` after its first
 * ack, and returns the batches it acknowledged. */
function ingestUntilKilled(storeDir: string, delayMs: number, mode: string[]): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [fileURLToPath(new URL('./fixtures/crash-ingester.mjs', import.meta.url)), storeDir, ...mode],
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

/** Sum and count of every key over 30 days, as stored. */
function storedTotals(engine: BucketEngine): { sum: number[]; count: number[] } {
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
  const got = Array.from(result?.numbers ?? []);
  return {
    sum: got.filter((_, i) => i % 2 === 0).map((v) => (Number.isNaN(v) ? 0 : v)),
    count: got.filter((_, i) => i % 2 === 1).map((v) => (Number.isNaN(v) ? 0 : v)),
  };
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
      const acked = await ingestUntilKilled(dir, 50 + Math.floor(Math.random() * 400), [
        'positions',
      ]);
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
      const stored = storedTotals(engine);
      for (let k = 0; k < KEYS; k++) {
        expect(stored.sum[k], `sum of key ${k} after round ${round}`).toBe(sum[k]);
        expect(stored.count[k], `count of key ${k} after round ${round}`).toBe(count[k]);
      }
      engine.close();
      previous = last;
    }
  });
});

describe('a process killed with SIGKILL while committing table files', () => {
  it('keeps every acknowledged bulk commit exactly once and no partial one', async () => {
    const bulkDir = mkdtempSync(join(tmpdir(), 'tessera-crash-bulk-'));
    try {
      let next = 0;
      for (let round = 0; round < 4; round++) {
        const acked = await ingestUntilKilled(bulkDir, 50 + Math.floor(Math.random() * 400), [
          'bulk',
          String(next),
        ]);
        expect(acked.length).toBeGreaterThan(0);
        expect(acked[0]).toBe(next);
        const lastAcked = acked[acked.length - 1] ?? -1;

        // With no positions, the data itself says which batches are stored: exactly
        // 0..=lastAcked, or one more if the child died after its commit landed but before
        // it printed the ack. Anything else is a lost, doubled or partial commit.
        const engine = BucketEngine.open(bulkDir, description);
        engine.setClock(NOW);
        const stored = storedTotals(engine);
        engine.close();
        const last = [lastAcked, lastAcked + 1].find((m) => {
          const want = expectedTotals(m);
          return (
            want.sum.every((v, k) => v === stored.sum[k]) &&
            want.count.every((v, k) => v === stored.count[k])
          );
        });
        expect(
          last,
          `round ${round}: stored data is not batches 0..=${lastAcked} (or one more)`,
        ).toBeDefined();
        next = (last ?? lastAcked) + 1;
      }
    } finally {
      rmSync(bulkDir, { recursive: true, force: true });
    }
  });
});
