/**
 * Exactly-once is a property of the engine (docs/semantics.md, "Exactly-once"): a stream
 * runner's commit holds its own batch's rows, positions, dead letters and resolver state,
 * and nothing else. Rows a user stages with `ingest(..., { commit: false })` while a
 * runner commits are never written with the runner's positions; they wait for the user's
 * own `commit()`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { makeStreamResolver, StreamRunner } from '../ts/resolvers/index.js';
import { MemorySource } from '../ts/sources/index.js';
import { Tessera } from '../ts/tessera.js';
import * as streaming from './fixtures/streaming.js';

const NOW = Date.UTC(2026, 0, 31, 12);
const HOUR = 3_600_000;
const iso = (ms: number): string => new Date(ms).toISOString();

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function openStore(): Tessera {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-exactly-once-'));
  dirs.push(dir);
  const tessera = Tessera.open({ path: dir, features: [streaming.User, streaming.Transaction] });
  tessera.setClock(NOW);
  return tessera;
}

const Message = z.object({
  id: z.string(),
  user_id: z.string(),
  amount: z.number(),
  ts: z.string(),
});

function sums(tessera: Tessera, users: readonly string[]): unknown[] {
  const { rows } = tessera.query({
    input: { 'user.id': [...users] },
    output: [streaming.User.sum_transaction_amount['30d']] as const,
    now: NOW,
  });
  return rows.map((r) => r.values[0]);
}

describe('staged rows and a runner on one store', () => {
  it('a runner commits only its own rows while the user stages rows between its batches', async () => {
    const tessera = openStore();
    const source = new MemorySource();
    const resolver = makeStreamResolver({
      name: 'txns',
      source,
      messageType: Message,
      output: streaming.Transaction,
      outputFeatures: { id: 'id', user_id: 'user_id', amount: 'amount', ts: 'ts' },
    });
    const messages = 40;
    for (let i = 0; i < messages; i++) {
      source.push({ id: `s${i}`, user_id: 'stream', amount: i + 1, ts: iso(NOW - HOUR) });
    }
    source.end();
    let staged = 0;
    let batches = 0;
    const stage = (): void => {
      staged += 1;
      tessera.ingest(
        streaming.Transaction,
        [{ id: `u${staged}`, user_id: 'user', amount: 1000, ts: iso(NOW - 2 * HOUR) }],
        { commit: false },
      );
    };
    stage();
    const runner = new StreamRunner(tessera, resolver, {
      batchSize: 4,
      // Between every two commits of the runner, the user stages another row.
      onBatch: () => {
        batches += 1;
        stage();
      },
    });
    const metrics = await runner.run();
    expect(metrics.messages).toBe(messages);
    expect(batches).toBeGreaterThanOrEqual(messages / 4);
    // Every stream message is in, once; none of the staged rows rode on a runner commit.
    expect(sums(tessera, ['stream', 'user'])).toEqual([(messages * (messages + 1)) / 2, 0]);
    expect(tessera.positions('txns')).toEqual([{ source: 'txns', partition: 0, offset: messages }]);
    expect(tessera.stats().pendingRows).toBe(staged);

    // The user's commit writes exactly the staged rows, with the user's own position.
    const report = tessera.commit([{ source: 'manual', partition: 0, offset: staged }]);
    expect(report.rows).toBe(staged);
    expect(sums(tessera, ['stream', 'user'])).toEqual([
      (messages * (messages + 1)) / 2,
      1000 * staged,
    ]);
    expect(tessera.positions('manual')).toEqual([
      { source: 'manual', partition: 0, offset: staged },
    ]);
    expect(tessera.stats().pendingRows).toBe(0);
    tessera.close();
  });

  it('an ingest that commits writes its own rows only, not what was staged before it', () => {
    const tessera = openStore();
    const row = (id: string, user: string, amount: number) => ({
      id,
      user_id: user,
      amount,
      ts: iso(NOW - HOUR),
    });
    tessera.ingest(streaming.Transaction, [row('a', 'staged', 5)], { commit: false });
    const committed = tessera.ingest(streaming.Transaction, [row('b', 'direct', 7)], {
      positions: [{ source: 'direct', partition: 3, offset: 11 }],
    });
    expect(committed.commit?.rows).toBe(1);
    expect(sums(tessera, ['staged', 'direct'])).toEqual([0, 7]);
    tessera.discardPending();
    expect(tessera.commit().rows).toBe(0);
    expect(sums(tessera, ['staged', 'direct'])).toEqual([0, 7]);
    tessera.close();
  });

  it('a dedupe horizon and watermark are stored as the resolver state, with the commit', async () => {
    const tessera = openStore();
    const source = new MemorySource();
    const resolver = makeStreamResolver({
      name: 'deduped',
      source,
      messageType: Message,
      output: streaming.Transaction,
      outputFeatures: { id: 'id', user_id: 'user_id', amount: 'amount', ts: 'ts' },
      dedupe: { field: 'id', within: '1h' },
    });
    const t0 = NOW - 3 * HOUR;
    for (let i = 0; i < 6; i++) {
      source.push(
        { id: `m${i}`, user_id: 'u', amount: 1, ts: iso(t0) },
        { timestampMs: t0 + i * 20 * 60_000 },
      );
    }
    source.end();
    await new StreamRunner(tessera, resolver).run();
    const state = tessera.engine.resolverState('deduped');
    // The newest source time seen, and the oldest offset still remembered (within 1h of it).
    expect(state?.watermarkMs).toBe(t0 + 5 * 20 * 60_000);
    expect(state?.replayFrom).toEqual([{ partition: 0, offset: 2 }]);
    // No position is faked to hold it.
    expect(tessera.positions('deduped:dedupe')).toEqual([]);
    tessera.close();
  });
});
