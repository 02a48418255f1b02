// `npm run pack:check` (a step of `npm test`): compiles the façade, packs the main package
// and this machine's platform package, prints what each tarball holds, and fails when a
// tarball is over its size budget, carries a file it must not, or when publint or
// @arethetypeswrong/cli finds a problem with the main package's manifest or types, or
// when the packed manifest has an install-time script.
// `--out <dir>` keeps the tarballs there (the release workflow publishes them).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';
import {
  FORBIDDEN,
  INSTALL_SCRIPTS,
  overBudget,
  packMain,
  packPlatform,
  SIZE_BUDGET,
} from './pack.mjs';

function run(command, args) {
  const result = spawnSync(command, args, {
    stdio: 'inherit',
    shell: process.platform === 'win32',
  });
  return result.status === 0;
}

function show(packed) {
  console.log(`\n${packed.name}@${packed.version}: ${packed.files.length} files`);
  for (const file of packed.files) console.log(`  ${String(file.size).padStart(10)}  ${file.path}`);
  console.log(`  packed ${packed.size} bytes, unpacked ${packed.unpackedSize} bytes`);
}

if (!run('npm', ['run', '--silent', 'build:ts'])) process.exit(1);
// The platform suffix as the loader computes it, from the compiled loader's helpers.
const { platformSuffix } = await import('../dist/ts/native-platform.js');
const keep = process.argv.indexOf('--out');
const out = keep > 0 ? process.argv[keep + 1] : mkdtempSync(join(tmpdir(), 'tessera-pack-'));
if (!out) throw new Error('--out needs a directory');
mkdirSync(out, { recursive: true });
const problems = [];
try {
  const main = packMain(out);
  const platform = packPlatform(platformSuffix(), out);
  show(main);
  show(platform);
  problems.push(
    ...overBudget(main, SIZE_BUDGET.main),
    ...overBudget(platform, SIZE_BUDGET.platform),
  );
  for (const file of main.files) {
    if (FORBIDDEN.some((pattern) => pattern.test(file.path))) {
      problems.push(`${main.name} must not carry ${file.path}`);
    }
  }

  console.log('\n--- publint ---');
  const tarball = readFileSync(main.tarball);
  const lint = await publint({ pack: { tarball: tarball.buffer }, strict: true });
  for (const message of lint.messages) {
    const text = `publint ${message.type}: ${formatMessage(message, lint.pkg)}`;
    console.log(text);
    problems.push(text);
  }
  if (lint.messages.length === 0) console.log('publint: no issues');
  const shipped = INSTALL_SCRIPTS.filter((script) => lint.pkg.scripts?.[script] !== undefined);
  if (shipped.length > 0) problems.push(`the packed manifest has install scripts: ${shipped}`);

  console.log('\n--- @arethetypeswrong/cli ---');
  if (!run('npx', ['attw', main.tarball, '--format', 'table-flipped', '--no-color'])) {
    problems.push('@arethetypeswrong/cli reported problems (above)');
  }
} finally {
  if (keep < 0) rmSync(out, { recursive: true, force: true });
}
if (problems.length > 0) {
  console.error(`\npack check failed:\n- ${problems.join('\n- ')}`);
  process.exit(1);
}
console.log('\npack check: ok');
