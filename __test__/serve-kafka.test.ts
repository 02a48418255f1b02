/**
 * `tessera serve` streaming a real Kafka topic (the run's test broker on 127.0.0.1):
 * while a producer writes the second half of the workload, the server's HTTP answers
 * equal the embedded API's on the messages before its committed positions, and at the
 * end `/metrics` counts every message and reports each partition's lag.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVE_PARTITIONS, SERVE_USERS } from './fixtures/serve-features.js';
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
import { http, killAll, parsePrometheus, sample, startServe } from './fixtures/serve-process.js';
import { NOW, workload } from './fixtures/stream-workload.js';
import { createTopic, kafkaBootstrap, produce } from './setup/kafka.js';

const FEATURES = fileURLToPath(new URL('./fixtures/serve-kafka-features.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tessera-serve-kafka-'));
let bootstrap = '';

beforeAll(() => {
  bootstrap = kafkaBootstrap();
});
afterAll(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

async function positions(url: string): Promise<Map<number, number>> {
  const { body } = await http(`${url}/v1/streams`);
  const [s] = (body as { streams: { positions: { partition: number; offset: number }[] }[] })
    .streams;
  return positionMap(s?.positions ?? []);
}

function same(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): boolean {
  return a.size === b.size && [...a].every(([p, o]) => b.get(p) === o);
}

describe('tessera serve with a Kafka source', () => {
  it('answers as the embedded API while it folds a topic, and counts it in /metrics', async () => {
    const messages = workload(20_000, {
      users: SERVE_USERS,
      partitions: SERVE_PARTITIONS,
      seed: 5,
    });
    const offsets = offsetsOf(messages);
    const topic = await createTopic(bootstrap, 'serve', SERVE_PARTITIONS);
    const half = messages.length / 2;
    await produce(bootstrap, topic, messages.slice(0, half));
    const server = await startServe(
      [
        'serve',
        '--features',
        FEATURES,
        '--path',
        join(dir, 'store'),
        '--port',
        '0',
        '--clock',
        new Date(NOW).toISOString(),
      ],
      {
        SERVE_KAFKA_BOOTSTRAP: bootstrap,
        SERVE_KAFKA_TOPIC: topic,
        SERVE_KAFKA_GROUP: `g-${topic}`,
      },
    );
    try {
      const request = usersQuery(SERVE_USERS);
      const checkpoints: { positions: Map<number, number>; answer: unknown }[] = [];
      const take = async (): Promise<Map<number, number>> => {
        const before = await positions(server.url);
        const { status, body } = await http(`${server.url}/v1/query`, { body: request });
        expect(status).toBe(200);
        const after = await positions(server.url);
        const last = checkpoints[checkpoints.length - 1];
        if (
          same(before, after) &&
          after.size > 0 &&
          (last === undefined || !same(last.positions, after))
        ) {
          checkpoints.push({ positions: after, answer: body });
        }
        return after;
      };
      const wait = async (ends: Map<number, number>) => {
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline) {
          const p = await take();
          if (
            same(p, ends) &&
            same(checkpoints[checkpoints.length - 1]?.positions ?? new Map(), ends)
          )
            return;
          await new Promise((r) => setTimeout(r, 20));
        }
        throw new Error('timed out waiting for the stream to reach the end of the topic');
      };
      await wait(endsOf(messages.slice(0, half)));
      // The second half arrives while the server folds and answers.
      const producing = produce(bootstrap, topic, messages.slice(half), 250);
      while (!(await Promise.race([producing.then(() => true), take().then(() => false)]))) {
        /* keep querying while the producer writes */
      }
      await wait(endsOf(messages));
      expect(checkpoints.length).toBeGreaterThanOrEqual(2);
      console.log(
        `kafka: ${checkpoints.length} answers compared, at ${checkpoints.map((c) => [...c.positions.values()].reduce((x, y) => x + y, 0)).join(', ')} of ${messages.length} messages`,
      );
      for (const { positions: at, answer } of checkpoints) {
        const embedded = await embeddedAnswer(prefixOf(messages, offsets, at), request);
        expect(embedded.positions).toEqual(at);
        expect(withinRounding(answer, embedded.answer)).toEqual(embedded.answer);
      }

      const counts = kindCounts(messages);
      const metrics = await http(`${server.url}/metrics`);
      const { samples } = parsePrometheus(metrics.text);
      const labels = { resolver: 'payments' };
      expect(sample(samples, 'tessera_stream_messages_total', labels)).toBe(messages.length);
      expect(sample(samples, 'tessera_stream_dead_letters_total', labels)).toBe(counts.bad);
      expect(sample(samples, 'tessera_stream_late_dropped_total', labels)).toBe(counts.late);
      expect(sample(samples, 'tessera_stream_duplicates_skipped_total', labels)).toBe(
        counts.duplicate,
      );
      // The source reports lag per partition (once a second): every partition, at 0 by now.
      const lag = await (async () => {
        const deadline = Date.now() + 20_000;
        for (;;) {
          const { samples: s } = parsePrometheus((await http(`${server.url}/metrics`)).text);
          const values = [0, 1, 2].map((p) =>
            sample(s, 'tessera_stream_lag_messages', { ...labels, partition: String(p) }),
          );
          if (values.every((v) => v === 0) || Date.now() > deadline) return values;
          await new Promise((r) => setTimeout(r, 200));
        }
      })();
      expect(lag).toEqual([0, 0, 0]);
    } finally {
      server.child.kill('SIGTERM');
      expect((await server.exited).code).toBe(0);
    }
  });
});
