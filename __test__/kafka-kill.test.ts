/**
 * The stream kill test: a consumer process folds a Kafka topic (good, bad, late and
 * duplicate messages) into a store and is killed with SIGKILL at random moments, ten
 * times. After every kill the store holds exactly the messages before its stored
 * positions, each folded once (no partial batch); after the last restart it holds the
 * exactly-once answer for the whole topic: no event lost, none counted twice.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tessera } from '../ts/tessera.js';
import {
  featureClasses,
  NOW,
  oracle,
  readWindows,
  type WorkloadMessage,
  workload,
} from './fixtures/stream-workload.js';
import { createTopic, kafkaBootstrap, produce } from './setup/kafka.js';

const USERS = 30;
const PARTITIONS = 3;
const MESSAGES = 30_000;
const KILLS = 10;
const dir = mkdtempSync(join(tmpdir(), 'tessera-kafka-kill-'));
const store = join(dir, 'store');
const children = new Set<ChildProcess>();
let bootstrap = '';

beforeAll(() => {
  bootstrap = kafkaBootstrap();
});
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

type Positions = Map<number, number>;

/**
 * Starts the consumer and resolves with its acknowledged positions once it is dead:
 * killed `killAfterMs` after its first ack, or (with `until`) once its acks reach
 * `until` on every partition.
 */
function consume(
  topic: string,
  group: string,
  options: { killAfterMs?: number; until?: Positions; delayMs: number },
): Promise<{ acks: number; last: Positions }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        fileURLToPath(new URL('./fixtures/stream-kafka-consumer.mjs', import.meta.url)),
        store,
        bootstrap,
        topic,
        group,
        String(options.delayMs),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.add(child);
    let acks = 0;
    const last: Positions = new Map();
    let buffer = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    const watchdog = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('ack ')) continue;
        acks += 1;
        for (const p of JSON.parse(line.slice(4)) as { partition: number; offset: number }[]) {
          last.set(p.partition, p.offset);
        }
        if (options.killAfterMs !== undefined) {
          timer ??= setTimeout(() => child.kill('SIGKILL'), options.killAfterMs);
        }
        const until = options.until;
        if (until && [...until].every(([p, o]) => (last.get(p) ?? 0) >= o)) {
          child.kill('SIGKILL');
        }
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      children.delete(child);
      clearTimeout(watchdog);
      if (timer) clearTimeout(timer);
      if (signal !== 'SIGKILL') {
        reject(new Error(`the consumer exited on its own (${code ?? signal}):\n${stderr}`));
      } else resolve({ acks, last });
    });
  });
}

/** The messages before `positions` (what a store at those positions must hold). */
function prefix(
  messages: readonly WorkloadMessage[],
  offsets: readonly number[],
  positions: Positions,
): WorkloadMessage[] {
  return messages.filter((m, i) => (offsets[i] ?? 0) < (positions.get(m.partition) ?? 0));
}

function check(messages: readonly WorkloadMessage[], offsets: readonly number[], round: string) {
  const tessera = Tessera.open({ path: store, features: featureClasses });
  try {
    tessera.setClock(NOW);
    const positions: Positions = new Map(
      tessera.positions('kill').map((p) => [p.partition, p.offset]),
    );
    const held = prefix(messages, offsets, positions);
    const expected = oracle(held, { v1: true, v2: false }, USERS);
    const got = readWindows((r) => tessera.query(r as never), USERS);
    expect(got, `windows after ${round}`).toEqual(expected);
    // Dead letters: exactly the bad messages before the positions.
    const bad = held.filter((m) => m.kind === 'bad').length;
    expect(tessera.engine.deadLetterCount('kill'), `dead letters after ${round}`).toBe(bad);
    return positions;
  } finally {
    tessera.close();
  }
}

describe('a stream consumer killed with SIGKILL while consuming a topic', () => {
  it('ends with every window equal to the exactly-once answer', async () => {
    const topic = await createTopic(bootstrap, 'kill', PARTITIONS);
    const group = `g-${topic}`;
    const messages = workload(MESSAGES, { users: USERS, partitions: PARTITIONS, seed: 7 });
    const offsets = await produce(bootstrap, topic, messages);
    const ends: Positions = new Map();
    messages.forEach((m, i) => {
      ends.set(m.partition, Math.max(ends.get(m.partition) ?? 0, (offsets[i] ?? 0) + 1));
    });

    let previous: Positions = new Map();
    for (let round = 1; round <= KILLS; round++) {
      const { acks, last } = await consume(topic, group, {
        killAfterMs: 50 + Math.floor(Math.random() * 700),
        delayMs: 20,
      });
      expect(acks, `round ${round} made progress`).toBeGreaterThan(0);
      const stored = check(messages, offsets, `kill ${round}`);
      // Every acknowledged batch is stored (at most one more, whose ack was not printed).
      for (const [p, o] of last) expect(stored.get(p) ?? 0).toBeGreaterThanOrEqual(o);
      for (const [p, o] of previous) expect(stored.get(p) ?? 0).toBeGreaterThanOrEqual(o);
      previous = stored;
    }
    expect(
      [...previous.values()].reduce((a, b) => a + b, 0),
      'the kills interrupted the consumption',
    ).toBeLessThan(MESSAGES);

    // The last restart consumes the rest.
    await consume(topic, group, { until: ends, delayMs: 0 });
    const final = check(messages, offsets, 'the last restart');
    expect(final).toEqual(ends);
  });
});
