/** `tessera deadletters`: the dead letters a stream resolver kept, read from the store. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CliIO } from '../ts/cli/command.js';
import { renderRaw } from '../ts/cli/commands/deadletters.js';
import { main } from '../ts/cli/main.js';
import { makeStreamResolver, StreamRunner } from '../ts/resolvers/index.js';
import { MemorySource } from '../ts/sources/index.js';
import { Tessera } from '../ts/tessera.js';
import { featureClasses, NOW, Transaction, TransactionMsg } from './fixtures/stream-workload.js';

const root = mkdtempSync(join(tmpdir(), 'tessera-stream-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function capture(): CliIO & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t), cwd: root };
}

describe('tessera deadletters', () => {
  it('lists the dead letters of a store, with reason, field, position and bytes', async () => {
    const tessera = Tessera.open({ path: join(root, 'store'), features: featureClasses });
    tessera.setClock(NOW);
    const source = new MemorySource();
    source.push({ id: 'ok', user_id: 'u1', amount: 1, ts: new Date(NOW).toISOString() });
    source.push(Buffer.from('{broken'));
    source.push({ id: 'x', user_id: 'u1', amount: 'many', ts: new Date(NOW).toISOString() });
    source.push(Buffer.from([0xff, 0x00, 0x01]));
    source.end();
    const resolver = makeStreamResolver({
      name: 'payments',
      source,
      messageType: TransactionMsg,
      output: Transaction,
      outputFeatures: { id: 'id', user_id: 'user_id', amount: 'amount', ts: 'ts' },
    });
    await new StreamRunner(tessera, resolver).run();
    tessera.close();

    const io = capture();
    expect(await main(['deadletters', '--path', 'store'], io)).toBe(0);
    expect(io.stderr).toEqual([]);
    expect(io.stdout[0]).toBe(`3 dead letters in ${join(root, 'store')}:`);
    const header = io.stdout[2] ?? '';
    expect(header.split(/\s{2,}/)).toEqual([
      'source',
      'partition',
      'offset',
      'received',
      'field',
      'reason',
      'raw',
    ]);
    const rows = io.stdout.slice(3);
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatch(/^payments\s+0\s+1\s+\S+Z\s+-\s+not JSON.*\{broken$/);
    expect(rows[1]).toMatch(/^payments\s+0\s+2\s+\S+Z\s+amount\s+schema mismatch/);
    expect(rows[2]).toMatch(/0xff0001$/);

    const json = capture();
    expect(
      await main(
        ['deadletters', '--path', 'store', '--source', 'payments', '--limit', '1', '--json'],
        json,
      ),
    ).toBe(0);
    const parsed = JSON.parse(json.stdout.join('\n'));
    expect(parsed.total).toBe(3);
    expect(parsed.deadLetters).toHaveLength(1);
    expect(parsed.deadLetters[0]).toMatchObject({ source: 'payments', partition: 0, offset: 1 });
    expect(Buffer.from(parsed.deadLetters[0].raw, 'base64').toString()).toBe('{broken');

    const none = capture();
    expect(await main(['deadletters', '--path', 'store', '--source', 'other'], none)).toBe(0);
    expect(none.stdout[0]).toMatch(/^No dead letters of other/);
    const missing = capture();
    expect(await main(['deadletters', '--path', 'nowhere'], missing)).toBe(2);
  });

  it('renders raw bytes on one line', () => {
    expect(renderRaw(Buffer.from('a\nb'))).toBe('a\\nb');
    expect(renderRaw(Buffer.alloc(0))).toBe('(empty)');
    expect(renderRaw(Buffer.from('x'.repeat(100)), 10)).toBe('xxxxxxx...');
  });
});
