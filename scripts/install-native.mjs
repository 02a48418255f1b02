// `npm install` hook: use the native engine when one loads (a prebuilt per-platform
// package or an earlier build), otherwise build it from source; then compile the
// TypeScript façade so the CLI and the demo run.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

function loads() {
  if (!existsSync('native/index.cjs')) return false;
  try {
    createRequire(import.meta.url)('../native/index.cjs');
    return true;
  } catch {
    return false;
  }
}

function run(script) {
  const result = spawnSync('npm', ['run', '--silent', script], { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

if (process.env.TESSERA_SKIP_NATIVE_BUILD !== '1' && !loads()) run('build:native');
if (existsSync('tsconfig.build.json')) run('build:ts');
