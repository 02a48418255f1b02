// Shared by the build and test scripts: the persistent cargo target directory and the
// system packages the native build needs.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Cargo builds RocksDB from C++ source (10-15 minutes on 2 cores): keep one target
 * directory outside the clone so every clone, rebuild and CI run reuses it. */
export function cargoEnv() {
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return {
    ...process.env,
    CARGO_TARGET_DIR: process.env.CARGO_TARGET_DIR || join(cache, 'tessera', 'target'),
  };
}

function hasLibclang() {
  const roots = ['/usr/lib', '/usr/lib64', '/usr/local/lib'];
  const llvm = existsSync('/usr/lib')
    ? readdirSync('/usr/lib')
        .filter((d) => d.startsWith('llvm-'))
        .map((d) => join('/usr/lib', d, 'lib'))
    : [];
  for (const dir of [
    ...roots,
    ...llvm,
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
  ]) {
    if (!existsSync(dir)) continue;
    if (readdirSync(dir).some((f) => /^libclang(-[\d.]+)?\.so/.test(f))) return true;
  }
  return Boolean(process.env.LIBCLANG_PATH);
}

function fail(message) {
  console.error(`\n[tessera] ${message}\n`);
  process.exit(1);
}

/** The host's target triple. `napi build` always passes `--target`, which gives cargo a
 * separate output directory; clippy and tests pass the same triple to share its build of
 * RocksDB instead of compiling it a second time. */
export function hostTriple() {
  const info = spawnSync('rustc', ['-vV'], { encoding: 'utf8' });
  const line = (info.stdout || '').split('\n').find((l) => l.startsWith('host: '));
  return line ? line.slice('host: '.length).trim() : undefined;
}

/** Checks the toolchain; installs libclang-dev with apt-get when running as root. */
export function ensureNativeToolchain() {
  if (spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status !== 0) {
    fail(
      'Building the native engine needs Rust (cargo 1.88 or later). Install it with rustup, then run `npm install` again.',
    );
  }
  if (process.platform === 'linux' && !hasLibclang()) {
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    const apt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
    if (root && apt) {
      console.log('[tessera] installing libclang-dev (needed to build RocksDB bindings)');
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
      execFileSync('apt-get', ['install', '-y', '-qq', 'libclang-dev'], {
        stdio: 'inherit',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    } else {
      fail(
        'Building the native engine needs libclang. Install it (Debian/Ubuntu: `sudo apt-get install libclang-dev`; Fedora: `sudo dnf install clang-devel`), then run `npm install` again.',
      );
    }
  }
}
