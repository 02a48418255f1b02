/**
 * Vitest global setup: one real Kafka broker (KRaft, 127.0.0.1) for the whole run,
 * started before the first test file and stopped after the last. Test files read its
 * address with `inject('kafkaBootstrap')` (see `kafka.ts` next to this file); each test
 * creates its own topics.
 *
 * The broker starts only when the run includes a test file that needs it
 * (`__test__/kafka*.test.ts`, `__test__/serve-kafka*.test.ts`), so `vitest run __test__/planner` does not pay for a JVM.
 * A failed start does not abort the run: the error is handed to the Kafka tests, which
 * fail with it, and every other test still runs.
 */
import { basename } from 'node:path';
import type { TestProject } from 'vitest/node';
import { type Broker, startBroker, stopBroker } from '../../scripts/kafka/broker.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `127.0.0.1:<port>`, or '' when no broker was started. */
    kafkaBootstrap: string;
    /** Why the broker is not there, or ''. */
    kafkaError: string;
  }
}

/** Whether a test file needs the broker. */
export function needsBroker(file: string): boolean {
  return /^(serve-)?kafka.*\.test\.ts$/.test(basename(file));
}

async function runIncludesKafka(project: TestProject): Promise<boolean> {
  // The CLI filters of this run (an internal field: when it is missing, assume a broker
  // is needed rather than risk failing the Kafka tests).
  const filters = (project.vitest as unknown as { filenamePattern?: string[] }).filenamePattern;
  try {
    const { testFiles } = await project.globTestFiles(filters);
    return testFiles.some(needsBroker);
  } catch {
    return true;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let broker: Broker | undefined;
  project.provide('kafkaBootstrap', '');
  project.provide('kafkaError', '');
  if (await runIncludesKafka(project)) {
    const started = Date.now();
    try {
      broker = await startBroker({ heapMb: 512 });
      project.provide('kafkaBootstrap', broker.bootstrap);
      console.log(
        `[kafka] broker ${broker.version} on ${broker.bootstrap} (${Date.now() - started} ms)`,
      );
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      project.provide('kafkaError', message);
      console.error(`[kafka] the test broker did not start: ${message}`);
    }
  }
  return async () => {
    if (broker) await stopBroker(broker);
  };
}
