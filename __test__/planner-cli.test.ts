/** `tessera aggregate list --features <module>`, through `main(argv, io)`. */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { CliIO, Command } from '../ts/cli/command.js';
import { commands } from '../ts/cli/commands.js';
import { main } from '../ts/cli/main.js';

const here = fileURLToPath(new URL('.', import.meta.url));

async function run(
  argv: string[],
  extra?: readonly Command[],
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = { out: (t) => out.push(t), err: (t) => err.push(t), cwd: here };
  const code = await main(argv, io, extra ? [...commands, ...extra] : commands);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('tessera aggregate list', () => {
  it('prints the reference table and the storage estimate', async () => {
    const r = await run(['aggregate', 'list', '--features', 'fixtures/group-by-windowed.ts']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      ' 1       transaction  user_id merchant_id  amount  1d      30d        sum          user.txn_sum_by_merchant merchant.txn_sum_by_user',
    );
    expect(r.out).toContain('Storage estimate (state bytes per key):');
    expect(r.out).toMatchSnapshot();
  });

  it('accepts --features=<path> and prints JSON with --json', async () => {
    const r = await run(['aggregate', 'list', '--features=fixtures/versioned.ts', '--json']);
    expect(r.code).toBe(0);
    const parsed = JSON.parse(r.out) as { plan: { series: unknown[] }; diagnostics: unknown[] };
    expect(parsed.plan.series).toHaveLength(2);
    expect(parsed.diagnostics).toEqual([]);
  });

  it('prints diagnostics to stderr and exits 1 on errors', async () => {
    const r = await run(['aggregate', 'list', '--features', 'fixtures/broken-features.ts']);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      "error[window_claimed_twice] user.total (7d): user.total: window '7d' is claimed by several bucket sizes in materialization.bucketDurations ('1d', '7d'); list it under one size only",
    );
  });

  it('reports usage errors with exit code 2', async () => {
    const missing = await run(['aggregate', 'list']);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('missing required option --features <module>');
    const unknownFlag = await run(['aggregate', 'list', '--feature', 'x.ts']);
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.err).toContain("Unknown option '--feature'");
    const noFile = await run(['aggregate', 'list', '--features', 'fixtures/nope.ts']);
    expect(noFile.code).toBe(2);
    expect(noFile.err).toContain('feature module not found');
    const noClasses = await run(['aggregate', 'list', '--features', 'fixtures/no-features.ts']);
    expect(noClasses.code).toBe(2);
    expect(noClasses.err).toContain('exports no feature classes');
    const unknown = await run(['aggregate', 'frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain("unknown command 'aggregate frobnicate'");
  });

  it('prints help', async () => {
    const overview = await run(['--help']);
    expect(overview.code).toBe(0);
    expect(overview.out).toMatch(/aggregate list +List the materialized aggregations/);
    expect(overview.out).toMatch(/aggregate backfill +Rebuild the buckets of features/);
    expect(overview.out).toMatch(/aggregate schedules +List the scheduled backfills/);
    const help = await run(['aggregate', 'list', '--help']);
    expect(help.out).toContain('--features <module>');
    expect(help.out).toContain('(required)');
    expect((await run(['help', 'aggregate', 'list'])).out).toBe(help.out);
  });

  it('takes more commands from the table', async () => {
    const hello: Command = {
      path: ['hello'],
      summary: 'Say hello',
      options: { fast: { type: 'boolean', description: 'go fast' } },
      async run({ options, io }) {
        io.out(`hello fast=${String(options.fast)}`);
        return 0;
      },
    };
    const r = await run(['hello', '--fast'], [hello]);
    expect(r).toEqual({ code: 0, out: 'hello fast=true', err: '' });
  });
});
