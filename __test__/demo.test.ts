/**
 * The main job: `tessera demo` generates a workload, ingests it into a fresh store and
 * prints users' windowed features and the storage estimate.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CliIO } from '../ts/cli/command.js';
import { main } from '../ts/cli/main.js';

const root = mkdtempSync(join(tmpdir(), 'tessera-demo-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function capture(): CliIO & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    out: (text) => stdout.push(text),
    err: (text) => stderr.push(text),
    cwd: root,
  };
}

describe('tessera demo', () => {
  it('ingests a workload and prints five users and the storage estimate', async () => {
    const io = capture();
    const code = await main(['demo', '--path', 'store', '--users', '300', '--days', '3'], io);
    expect(io.stderr).toEqual([]);
    expect(code).toBe(0);
    const lines = io.stdout.join('\n').split('\n');
    expect(lines[0]).toBe('Tessera demo: 300 users, 3 days, 7,200 transactions');
    const header = lines.findIndex((l) =>
      /^user\s+total 1h\s+total 1d\s+total 7d\s+count 1d\s+mean 7d$/.test(l),
    );
    expect(header).toBeGreaterThan(0);
    const rows = lines.slice(header + 1, header + 6);
    expect(rows.map((r) => r.trim().split(/\s+/)[0])).toEqual(['1', '2', '3', '4', '5']);
    for (const row of rows) {
      // user, five values: totals and mean with two decimals, the count whole.
      expect(row.trim()).toMatch(/^\d+(\s+[\d,]+\.\d\d){3}\s+[\d,]+\s+([\d,]+\.\d\d|-)$/);
    }
    // With 8 transactions per user and day, the 7d total covers all three days.
    const sevenDay = rows.map((r) => Number(r.trim().split(/\s+/)[3]?.replace(/,/g, '')));
    expect(sevenDay.every((v) => v > 0)).toBe(true);
    expect(lines.some((l) => /^Storage estimate: [\d.]+ (B|KiB) per user key/.test(l))).toBe(true);
    expect(existsSync(join(root, 'store', 'CURRENT'))).toBe(true);

    // Running again wipes the store first: every series is new again.
    const again = capture();
    expect(await main(['demo', '--path', 'store', '--users', '50', '--days', '1'], again)).toBe(0);
    expect(again.stdout.join('\n')).toMatch(/50 users, 1 days, 400 transactions/);
  });

  it('refuses to wipe a directory that is not a Tessera store', async () => {
    mkdirSync(join(root, 'precious'));
    writeFileSync(join(root, 'precious', 'notes.txt'), 'keep me');
    const io = capture();
    expect(await main(['demo', '--path', 'precious', '--users', '10'], io)).toBe(2);
    expect(io.stderr.join('\n')).toMatch(
      /refusing to wipe .*precious: it is not empty and not a Tessera store/,
    );
    expect(existsSync(join(root, 'precious', 'notes.txt'))).toBe(true);
  });

  it('checks its options', async () => {
    const io = capture();
    expect(await main(['demo', '--users', 'many'], io)).toBe(2);
    expect(io.stderr.join('\n')).toMatch(/--users must be a whole number >= 5/);
  });

  it('is listed in the help', async () => {
    const io = capture();
    expect(await main(['help'], io)).toBe(0);
    expect(io.stdout.join('\n')).toMatch(/demo\s+Generate a transaction workload/);
  });
});
