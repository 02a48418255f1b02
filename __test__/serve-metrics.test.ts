/**
 * The metrics adapter without `serve`: `registerTesseraMetrics` on an application's own
 * prom-client registry reports an embedded stream's counters as the runner counts them,
 * records embedded query latency, and leaves the registry as it found it on unregister.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { registerTesseraMetrics } from '../ts/index.js';
import { StreamRunner } from '../ts/resolvers/runner.js';
import { MemorySource } from '../ts/sources/memory.js';
import { Tessera } from '../ts/tessera.js';
import { paymentsResolver, SERVE_PARTITIONS, SERVE_USERS } from './fixtures/serve-features.js';
import { kindCounts, usersQuery } from './fixtures/serve-oracle.js';
import { parsePrometheus, sample } from './fixtures/serve-process.js';
import { featureClasses, NOW, workload } from './fixtures/stream-workload.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-serve-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('registerTesseraMetrics', () => {
  it("exposes an embedded stream's counters and query latency on a given registry", async () => {
    const tessera = Tessera.open({ path: dir, features: featureClasses });
    try {
      tessera.setClock(NOW);
      const messages = workload(3000, {
        users: SERVE_USERS,
        partitions: SERVE_PARTITIONS,
        seed: 9,
      });
      const source = new MemorySource({ partitions: SERVE_PARTITIONS });
      for (const m of messages) source.push(m.value, { partition: m.partition, key: m.key });
      source.end();
      const runner = new StreamRunner(tessera, paymentsResolver(source), {
        clock: () => NOW,
        batchSize: 500,
      });
      const registry = new Registry();
      const metrics = registerTesseraMetrics(registry, { tessera }, { prefix: 'app_tessera_' });
      metrics.addStream(runner);
      const before = parsePrometheus(await registry.metrics()).samples;
      expect(sample(before, 'app_tessera_stream_messages_total', { resolver: 'payments' })).toBe(0);

      const final = await runner.run();
      const result = metrics.query(usersQuery(3) as never);
      expect(result.rows).toHaveLength(3);
      expect(() => metrics.query({ input: { 'user.id': [1] }, output: ['user.nope_1d'] })).toThrow(
        /user\.nope_1d/,
      );

      const { samples, types } = parsePrometheus(await registry.metrics());
      const read = (name: string) => sample(samples, name, { resolver: 'payments' });
      const counts = kindCounts(messages);
      expect(read('app_tessera_stream_messages_total')).toBe(final.messages);
      expect(final.messages).toBe(messages.length);
      expect(read('app_tessera_stream_dead_letters_total')).toBe(counts.bad);
      expect(read('app_tessera_stream_late_dropped_total')).toBe(counts.late);
      expect(read('app_tessera_stream_duplicates_skipped_total')).toBe(counts.duplicate);
      expect(read('app_tessera_stream_commits_total')).toBe(final.commits);
      expect(final.commits).toBeGreaterThanOrEqual(Math.ceil(messages.length / 500));
      expect(read('app_tessera_stream_running')).toBe(0);
      expect(types.get('app_tessera_query_duration_seconds')).toBe('histogram');
      expect(sample(samples, 'app_tessera_query_duration_seconds_count', { outcome: 'ok' })).toBe(
        1,
      );
      expect(
        sample(samples, 'app_tessera_query_duration_seconds_count', { outcome: 'error' }),
      ).toBe(1);
      // A second scrape adds nothing: counters are the runner's, not sums of scrapes.
      const again = parsePrometheus(await registry.metrics()).samples;
      expect(sample(again, 'app_tessera_stream_messages_total', { resolver: 'payments' })).toBe(
        messages.length,
      );

      metrics.unregister();
      expect((await registry.metrics()).trim()).toBe('');
    } finally {
      tessera.close();
    }
  });
});
