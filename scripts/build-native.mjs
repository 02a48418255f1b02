// Builds the native addon from source into native/ with napi-rs.
import { spawnSync } from 'node:child_process';
import { cargoEnv, ensureNativeToolchain } from './native-env.mjs';

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
    '--output-dir',
    'native',
    '--js',
    'index.cjs',
    '--dts',
    'index.d.cts',
    '--no-const-enum',
  ],
  { stdio: 'inherit', env },
);
process.exit(result.status ?? 1);
