// Builds the native addon from source into native/ with napi-rs. `--bench` builds the
// benchmark suite's own addon into native-bench/ instead, with the `fold-ceiling` feature
// (the Rust fold peer that the shipped addon does not carry).
import { spawnSync } from 'node:child_process';
import { cargoEnv, ensureNativeToolchain } from './native-env.mjs';

ensureNativeToolchain();
const env = cargoEnv();
console.log(`[tessera] building the native engine (cargo target: ${env.CARGO_TARGET_DIR})`);
const bench = process.argv.includes('--bench');
const result = spawnSync(
  'npx',
  [
    'napi',
    'build',
    '--platform',
    '--release',
    ...(bench ? ['--features', 'fold-ceiling'] : []),
    '--output-dir',
    bench ? 'native-bench' : 'native',
    '--js',
    'index.cjs',
    '--dts',
    'index.d.cts',
    '--no-const-enum',
  ],
  { stdio: 'inherit', env },
);
process.exit(result.status ?? 1);
