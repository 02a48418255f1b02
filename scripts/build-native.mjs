// `npm run build:native`: builds the native addon from source with napi-rs, for this
// machine into native/ (the local build the loader tries first), with the generated
// loader native/index.cjs and the binding's types native/index.d.cts.
//
// Extra arguments go to `napi build`, e.g. a release build for another target:
//   node scripts/build-native.mjs --target aarch64-unknown-linux-gnu --cross-compile --output-dir out
// (`--cross-compile` builds with cargo-zigbuild and needs `zig` on PATH; give such a
// build its own CARGO_TARGET_DIR, as it compiles RocksDB again for that target).
// `npm run bench` builds its own addon this way into native-bench/, with the
// `fold-ceiling` feature (the Rust fold peer that the shipped addon does not carry).
import { spawnSync } from 'node:child_process';
import { cargoEnv, ensureNativeToolchain } from './native-env.mjs';

const extra = process.argv.slice(2);
const outputDir =
  extra.includes('--output-dir') || extra.includes('-o') ? [] : ['--output-dir', 'native'];

ensureNativeToolchain();
const env = cargoEnv();
console.log(`[tessera] building the native engine (cargo target: ${env.CARGO_TARGET_DIR})`);
const result = spawnSync(
  'npx',
  [
    'napi',
    'build',
    '--platform',
    '--release',
    ...outputDir,
    '--js',
    'index.cjs',
    '--dts',
    'index.d.cts',
    '--no-const-enum',
    ...extra,
  ],
  // npx is a .cmd script on Windows, which only a shell runs.
  { stdio: 'inherit', env, shell: process.platform === 'win32' },
);
process.exit(result.status ?? 1);
