/**
 * Stream resolvers against a real Kafka broker (started once per run by
 * `setup/kafka-broker.ts`): good, bad, late and duplicate messages on several
 * partitions, two resolvers writing different versions of `amount`; every window must
 * equal the oracle recomputed from the good messages, and the dead letters must be
 * exactly the bad messages.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeStreamResolver, StreamRunner } from '../ts/resolvers/index.js';
import { KafkaSource } from '../ts/sources/index.js';
import { Tessera } from '../ts/tessera.js';
import {
  DEDUPE,
  featureClasses,
  LATE_DEADLINE,
  NOW,
  oracle,
  readWindows,
  Transaction,
  TransactionMsg,
  type UserWindows,
  workload,
} from './fixtures/stream-workload.js';
import { committedOffsets, createTopic, kafkaBootstrap, produce } from './setup/kafka.js';

const USERS = 40;
const PARTITIONS = 3;
let bootstrap = '';
const dir = mkdtempSync(join(tmpdir(), 'tessera-kafka-stream-'));

beforeAll(() => {
  bootstrap = kafkaBootstrap();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function merge(a: Map<string, UserWindows>, b: Map<string, UserWindows>): Map<string, UserWindows> {
  const out = new Map<string, UserWindows>();
  for (const [user, x] of a) {
    const y = b.get(user);
    if (y === undefined) throw new Error(`no ${user}`);
    const round = (v: number) => Math.round(v * 100) / 100;
    out.set(user, {
      total_1d: round(x.total_1d + y.total_1d),
      total_7d: round(x.total_7d + y.total_7d),
      total_v2_1d: round(x.total_v2_1d + y.total_v2_1d),
      total_v2_7d: round(x.total_v2_7d + y.total_v2_7d),
      count_1d: x.count_1d + y.count_1d,
      count_7d: x.count_7d + y.count_7d,
      max_7d:
        x.max_7d === null ? y.max_7d : y.max_7d === null ? x.max_7d : Math.max(x.max_7d, y.max_7d),
    });
  }
  return out;
}

/** Runs `runner` until it has consumed `total` messages. */
async function consumeAll(runner: StreamRunner, total: number): Promise<void> {
  const done = runner.run();
  const deadline = Date.now() + 90_000;
  while (runner.metrics().messages < total) {
    if (Date.now() > deadline) {
      await runner.stop();
      throw new Error(`consumed ${runner.metrics().messages} of ${total} messages in 90 s`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await runner.stop();
  await done;
}

describe('stream resolvers on a real Kafka broker', () => {
  it('folds every good message exactly once and keeps exactly the bad ones as dead letters', async () => {
    const [topicV1, topicV2] = await Promise.all([
      createTopic(bootstrap, 'payments', PARTITIONS),
      createTopic(bootstrap, 'repriced', PARTITIONS),
    ]);
    const v1 = workload(6000, { users: USERS, partitions: PARTITIONS, seed: 1, prefix: 'a' });
    const v2 = workload(3000, { users: USERS, partitions: PARTITIONS, seed: 2, prefix: 'b' });
    const [offsetsV1, offsetsV2] = await Promise.all([
      produce(bootstrap, topicV1, v1),
      produce(bootstrap, topicV2, v2),
    ]);
    expect(new Set(v1.map((m) => m.kind))).toEqual(new Set(['good', 'bad', 'late', 'duplicate']));

    const tessera = Tessera.open({ path: join(dir, 'store'), features: featureClasses });
    tessera.setClock(NOW);
    const common = {
      messageType: TransactionMsg,
      output: Transaction,
      lateArrivalDeadline: LATE_DEADLINE,
      dedupe: DEDUPE,
    } as const;
    // v1: `amount`; v2: `amount @ 2` only (per-version isolation, docs/semantics.md section 5.3).
    const payments = makeStreamResolver({
      ...common,
      name: 'payments',
      source: new KafkaSource({ brokers: bootstrap, topic: topicV1, groupId: `g-${topicV1}` }),
      outputFeatures: { id: 'id', user_id: 'user_id', amount: 'amount', ts: 'ts' },
    });
    const repriced = makeStreamResolver({
      ...common,
      name: 'repriced',
      source: new KafkaSource({ brokers: bootstrap, topic: topicV2, groupId: `g-${topicV2}` }),
      outputFeatures: [
        [Transaction.id, 'id'],
        [Transaction.user_id, 'user_id'],
        [Transaction.amount.version(2), 'amount'],
        [Transaction.ts, 'ts'],
      ],
    });
    const runners = [
      new StreamRunner(tessera, payments, { clock: () => NOW, batchSize: 500 }),
      new StreamRunner(tessera, repriced, { clock: () => NOW, batchSize: 500 }),
    ];
    await Promise.all([
      consumeAll(runners[0] as StreamRunner, v1.length),
      consumeAll(runners[1] as StreamRunner, v2.length),
    ]);

    // Every window equals the oracle.
    const expected = merge(
      oracle(v1, { v1: true, v2: false }, USERS),
      oracle(v2, { v1: false, v2: true }, USERS),
    );
    const got = readWindows((r) => tessera.query(r as never), USERS);
    expect(got).toEqual(expected);

    // The counters add up, message by message.
    const count = (list: typeof v1, kind: string) => list.filter((m) => m.kind === kind).length;
    const [m1, m2] = runners.map((r) => r.metrics());
    expect(m1).toMatchObject({
      messages: v1.length,
      deadLetters: count(v1, 'bad'),
      lateDropped: count(v1, 'late'),
      duplicatesSkipped: count(v1, 'duplicate'),
    });
    expect(m2?.deadLetters).toBe(count(v2, 'bad'));

    // The dead letters are exactly the bad messages: same positions, same bytes.
    for (const [name, list, offsets] of [
      ['payments', v1, offsetsV1],
      ['repriced', v2, offsetsV2],
    ] as const) {
      const letters = tessera.engine.deadLetters({ source: name, limit: 100_000 });
      const bad = list
        .map((m, i) => ({ m, offset: offsets[i] }))
        .filter(({ m }) => m.kind === 'bad')
        .map(({ m, offset }) => `${m.partition}/${offset}/${m.value.toString('base64')}`)
        .sort();
      expect(
        letters.map((l) => `${l.partition}/${l.offset}/${l.raw.toString('base64')}`).sort(),
      ).toEqual(bad);
      for (const l of letters) expect(l.reason).not.toBe('');
    }

    // Stored positions are the ends of the partitions, and were committed to the group
    // (for lag monitoring).
    const ends = new Map<number, number>();
    for (const m of v1) ends.set(m.partition, (ends.get(m.partition) ?? 0) + 1);
    const stored = new Map(tessera.positions('payments').map((p) => [p.partition, p.offset]));
    expect(stored).toEqual(ends);
    const committed = await committedOffsets(bootstrap, `g-${topicV1}`, topicV1);
    expect(committed).toEqual(ends);
    tessera.close();
  });

  it('resumes from the stored positions, not from the consumer group', async () => {
    const topic = await createTopic(bootstrap, 'resume', 2);
    const first = workload(800, { users: 10, partitions: 2, seed: 3, prefix: 'r' });
    await produce(bootstrap, topic, first);
    const path = join(dir, 'resume');
    const resolver = () =>
      makeStreamResolver({
        name: 'resume',
        // A new group each time: its committed offsets must not matter.
        source: new KafkaSource({
          brokers: bootstrap,
          topic,
          groupId: `g-${topic}-${Math.random()}`,
          startFrom: 'earliest',
        }),
        messageType: TransactionMsg,
        output: Transaction,
        outputFeatures: { id: 'id', user_id: 'user_id', amount: 'amount', ts: 'ts' },
        lateArrivalDeadline: LATE_DEADLINE,
        dedupe: DEDUPE,
      });
    let tessera = Tessera.open({ path, features: featureClasses });
    tessera.setClock(NOW);
    await consumeAll(new StreamRunner(tessera, resolver(), { clock: () => NOW }), first.length);
    tessera.close();

    const second = workload(600, { users: 10, partitions: 2, seed: 4, prefix: 's' });
    await produce(bootstrap, topic, second);
    tessera = Tessera.open({ path, features: featureClasses });
    tessera.setClock(NOW);
    const runner = new StreamRunner(tessera, resolver(), { clock: () => NOW });
    await consumeAll(runner, second.length);
    expect(runner.metrics().messages).toBe(second.length);
    // The first run's messages were read again only to rebuild the dedupe memory.
    expect(runner.metrics().replayed).toBeGreaterThan(0);
    const expected = oracle([...first, ...second], { v1: true, v2: false }, 10);
    expect(readWindows((r) => tessera.query(r as never), 10)).toEqual(expected);
    tessera.close();
  });
});
