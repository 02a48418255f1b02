// `npm test`: every check the project keeps green, in order, failing on the first
// failure: the native build, Rust format/lints/tests, TypeScript types and lints, the API
// reference (typedoc, warnings as errors), the packed tarballs (publint, attw, size),
// vitest. `node scripts/test.mjs <word>...` runs only the steps whose name starts with
// one of the words (e.g. `cargo`, `tsc`, `typedoc`, `pack`, `vitest`).
//
// Every cargo step builds the whole workspace for the host triple, as `napi build` does:
// building a subset (`-p tessera-store`) resolves host-dependency features differently,
// which gives librocksdb-sys another hash and compiles RocksDB a second time.
import { spawnSync } from 'node:child_process';
import { cargoEnv, hostTriple } from './native-env.mjs';

const env = cargoEnv();
const triple = hostTriple();
const target = triple ? ['--target', triple] : [];
const steps = [
  ['native build', 'npm', ['run', '--silent', 'build:native']],
  ['cargo fmt', 'cargo', ['fmt', '--all', '--check']],
  [
    'cargo clippy',
    'cargo',
    ['clippy', '--release', ...target, '--workspace', '--all-targets', '--', '-D', 'warnings'],
  ],
  ['cargo test', 'cargo', ['test', '--release', ...target, '--workspace']],
  ['tsc --noEmit', 'npx', ['tsc', '--noEmit', '-p', 'tsconfig.json']],
  ['biome', 'npx', ['biome', 'check', '.']],
  ['typedoc', 'npx', ['typedoc']],
  ['pack check', 'node', ['scripts/pack-check.mjs']],
  ['vitest', 'npx', ['vitest', 'run']],
];
const only = process.argv.slice(2);
for (const [name, command, args] of steps) {
  if (only.length > 0 && !only.includes(name.split(' ')[0])) continue;
  const started = Date.now();
  console.log(`\n=== ${name} ===`);
  // npm and npx are .cmd scripts on Windows, which only a shell runs.
  const result = spawnSync(command, args, {
    stdio: 'inherit',
    env,
    shell: process.platform === 'win32',
  });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (result.status !== 0) {
    console.error(`\n=== ${name} FAILED (${seconds}s) ===`);
    process.exit(result.status ?? 1);
  }
  console.log(`=== ${name} ok (${seconds}s) ===`);
}
