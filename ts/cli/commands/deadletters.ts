/**
 * `tessera deadletters`: the messages stream resolvers could not use, kept in the store
 * atomically with the batch that consumed them: source (the resolver), partition,
 * offset, why (naming the field), when, and the raw bytes.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { BucketEngine } from '../../bucket-engine.js';
import type { DeadLetterRecord } from '../../native.js';
import { type Command, UsageError } from '../command.js';
import { DEMO_PATH } from './demo.js';

/** True when `raw` has control bytes other than tab, newline and carriage return. */
function hasControlBytes(raw: Buffer): boolean {
  for (const byte of raw) if (byte < 32 && byte !== 9 && byte !== 10 && byte !== 13) return true;
  return false;
}

/** A printable, single-line rendering of raw bytes (UTF-8 when it is, else hex). */
export function renderRaw(raw: Buffer, max = 60): string {
  if (raw.length === 0) return '(empty)';
  const text = raw.toString('utf8');
  const printable = Buffer.from(text, 'utf8').equals(raw) && !hasControlBytes(raw);
  const shown = printable
    ? text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t')
    : `0x${raw.toString('hex')}`;
  return shown.length > max ? `${shown.slice(0, max - 3)}...` : shown;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, c) => (c === cells.length - 1 ? cell : cell.padEnd(widths[c] ?? 0)))
      .join('  ');
  return [line(header), ...rows.map(line)];
}

/** One dead letter as JSON: the raw bytes in base64 and as text. */
export function letterJson(l: DeadLetterRecord): Record<string, unknown> {
  return {
    source: l.source,
    partition: l.partition,
    offset: l.offset,
    reason: l.reason,
    field: l.field ?? null,
    receivedAt: new Date(l.receivedAtMs).toISOString(),
    raw: l.raw.toString('base64'),
    rawText: l.raw.toString('utf8'),
  };
}

/**
 * `tessera deadletters [--path <store>] [--source <resolver>] [--limit <n>] [--json]`.
 *
 * @example
 * await main(['deadletters', '--path', '.tessera/demo', '--limit', '20']);
 */
export const deadletters: Command = {
  path: ['deadletters'],
  summary: 'List the messages stream resolvers kept as dead letters (reason, position, bytes)',
  options: {
    path: {
      type: 'string',
      valueName: '<dir>',
      description: `the store directory (default ${DEMO_PATH})`,
    },
    source: {
      type: 'string',
      valueName: '<name>',
      description: "one stream resolver's letters only",
    },
    limit: { type: 'string', valueName: '<n>', description: 'at most this many (default 100)' },
    json: { type: 'boolean', description: 'print JSON (raw bytes in base64 and as text)' },
  },
  async run({ options, io }) {
    const path = resolve(io.cwd, typeof options.path === 'string' ? options.path : DEMO_PATH);
    if (!existsSync(path)) throw new UsageError(`no store at ${path} (give --path)`);
    const limit = options.limit === undefined ? 100 : Number(options.limit);
    if (!Number.isInteger(limit) || limit < 1) {
      throw new UsageError(`--limit must be a whole number >= 1, got '${String(options.limit)}'`);
    }
    const source = typeof options.source === 'string' ? options.source : undefined;
    // Read-only: works while a stream or `tessera serve` holds the store.
    const engine = BucketEngine.openReadOnly(path);
    try {
      const total = engine.deadLetterCount(source);
      const query = source === undefined ? { limit } : { source, limit };
      const letters = engine.deadLetters(query);
      if (options.json === true) {
        io.out(JSON.stringify({ total, deadLetters: letters.map(letterJson) }, null, 2));
        return 0;
      }
      const scope = source === undefined ? '' : ` of ${source}`;
      if (total === 0) {
        io.out(`No dead letters${scope} in ${path}.`);
        return 0;
      }
      io.out(
        `${total.toLocaleString('en-US')} dead letter${total === 1 ? '' : 's'}${scope} in ${path}${letters.length < total ? ` (showing ${letters.length})` : ''}:`,
      );
      io.out('');
      const rows = letters.map((l) => [
        l.source,
        String(l.partition),
        String(l.offset),
        new Date(l.receivedAtMs).toISOString(),
        l.field ?? '-',
        l.reason,
        renderRaw(l.raw),
      ]);
      for (const line of table(
        ['source', 'partition', 'offset', 'received', 'field', 'reason', 'raw'],
        rows,
      )) {
        io.out(line);
      }
      return 0;
    } finally {
      engine.close();
    }
  },
};
