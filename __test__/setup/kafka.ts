/**
 * Helpers for tests against the run's real Kafka broker (started by `kafka-broker.ts`):
 * its address, per-test topics, and a producer that puts messages on chosen partitions.
 */
import { Admin, Producer } from '@platformatic/kafka';
import { inject } from 'vitest';

/** The broker's `127.0.0.1:<port>`; throws with the setup's error when it did not start. */
export function kafkaBootstrap(): string {
  const error = inject('kafkaError');
  if (error) throw new Error(`the test Kafka broker is not running: ${error}`);
  const bootstrap = inject('kafkaBootstrap');
  if (!bootstrap) {
    throw new Error(
      'no test Kafka broker: run this file through vitest with __test__/setup/kafka-broker.ts as global setup',
    );
  }
  return bootstrap;
}

let topicSequence = 0;

/** Creates a fresh topic (unique name) with `partitions` partitions and returns its name. */
export async function createTopic(
  bootstrap: string,
  prefix: string,
  partitions: number,
): Promise<string> {
  topicSequence += 1;
  const topic = `${prefix}-${process.pid}-${Date.now().toString(36)}-${topicSequence}`;
  const admin = new Admin({ clientId: 'tessera-test-admin', bootstrapBrokers: [bootstrap] });
  try {
    await admin.createTopics({ topics: [topic], partitions, replicas: 1 });
    // Wait until every partition has a leader, so that the first produce does not race it.
    for (let attempt = 0; attempt < 100; attempt++) {
      const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
      const t = metadata.topics.get(topic);
      if (t && t.partitionsCount === partitions && t.partitions.every((p) => p.leader >= 0)) {
        return topic;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`topic ${topic} has no leaders after 10 s`);
  } finally {
    await admin.close();
  }
}

/** One message to produce: raw bytes (or a JSON value) on an explicit partition. */
export interface TestMessage {
  readonly partition: number;
  readonly value: Buffer | string | object;
  readonly key?: string;
}

function bytes(value: TestMessage['value']): Buffer {
  if (Buffer.isBuffer(value)) return value;
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
}

/**
 * Produces `messages` in order (per partition, order is kept) in batches, and returns
 * each message's offset, in the order given.
 */
export async function produce(
  bootstrap: string,
  topic: string,
  messages: readonly TestMessage[],
  batch = 1000,
): Promise<number[]> {
  const producer = new Producer({
    clientId: 'tessera-test-producer',
    bootstrapBrokers: [bootstrap],
    acks: -1,
    idempotent: false,
  });
  const next = new Map<number, number>();
  const offsets: number[] = [];
  try {
    for (let i = 0; i < messages.length; i += batch) {
      const slice = messages.slice(i, i + batch);
      await producer.send({
        messages: slice.map((m) => ({
          topic,
          partition: m.partition,
          key: m.key === undefined ? undefined : Buffer.from(m.key),
          value: bytes(m.value),
        })),
      });
    }
  } finally {
    await producer.close();
  }
  // A fresh topic written by one producer in order: offsets count up per partition.
  for (const m of messages) {
    const o = next.get(m.partition) ?? 0;
    offsets.push(o);
    next.set(m.partition, o + 1);
  }
  return offsets;
}

/** The offsets the consumer group committed, by partition. */
export async function committedOffsets(
  bootstrap: string,
  groupId: string,
  topic: string,
): Promise<Map<number, number>> {
  const admin = new Admin({ clientId: 'tessera-test-admin', bootstrapBrokers: [bootstrap] });
  try {
    const groups = await admin.listConsumerGroupOffsets({ groups: [groupId] });
    const out = new Map<number, number>();
    for (const g of groups) {
      for (const t of g.topics) {
        if (t.name !== topic) continue;
        for (const p of t.partitions) out.set(p.partitionIndex, Number(p.committedOffset));
      }
    }
    return out;
  } finally {
    await admin.close();
  }
}
