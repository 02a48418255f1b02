// Packs the package as it would be published: the main package (npm pack, with its
// `files`) and the per-platform package of one target (npm/<suffix>/ with the binary
// from native/), so the packing test, `npm run pack:check` and the release workflow use
// the same tarballs.
//
// The main package is packed from a staged copy whose package.json has no `prepare`
// script: that hook builds from source in a clone, and npm lists any install-time
// lifecycle script of an installed package for the user to approve, although a registry
// install never runs `prepare`. The published manifest carries none of them.
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Size budgets, in bytes: a tarball over one fails the packing test and pack:check. */
export const SIZE_BUDGET = {
  // The compiled façade, its declarations and the CLI: 0.15 MB packed, 0.53 MB unpacked
  // when the budget was set.
  main: { packed: 300_000, unpacked: 1_200_000 },
  // One native engine (RocksDB, DataSketches and the binding in one shared library, not
  // stripped): 5.0 MB packed, 13.0 MB unpacked on linux-x64-gnu when the budget was set.
  platform: { packed: 8_000_000, unpacked: 24_000_000 },
};

/** Paths the main tarball must never carry: sources of other kinds, tests, CI. */
export const FORBIDDEN = [
  /^crates\//,
  /^__test__\//,
  /^bench\//,
  /^dist\/bench\//,
  /^\.github\//,
  /^\.ci\//,
  /^scripts\//,
  /^npm\//,
  /^ts\//,
  /^native\//,
  /\.node$/,
  /\.map$/,
  /^Cargo\./,
];

/** Scripts npm runs when a package is installed; none may ship in the manifest. */
export const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall', 'prepare'];

function npmPack(dir, destination, extra = []) {
  const out = execFileSync(
    'npm',
    ['pack', '--json', '--ignore-scripts', ...extra, '--pack-destination', destination],
    // npm is a .cmd script on Windows, which only a shell runs.
    {
      cwd: dir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      shell: process.platform === 'win32',
    },
  );
  const [info] = JSON.parse(out);
  return {
    name: info.name,
    version: info.version,
    tarball: join(destination, info.filename),
    size: info.size,
    unpackedSize: info.unpackedSize,
    files: info.files.map((f) => ({ path: f.path, size: f.size })),
  };
}

/** Packs the main package from the compiled dist/ (run `npm run build:ts` first). */
export function packMain(destination) {
  if (!existsSync(join(root, 'dist/ts/index.js'))) {
    throw new Error('dist/ts is not built: run `npm run build:ts` first');
  }
  // What npm would pack from the clone, copied as it is, with the manifest minus the
  // install-time scripts.
  const listed = npmPack(root, destination, ['--dry-run']).files;
  const stage = mkdtempSync(join(tmpdir(), 'tessera-main-'));
  try {
    for (const { path } of listed) {
      mkdirSync(dirname(join(stage, path)), { recursive: true });
      copyFileSync(join(root, path), join(stage, path));
    }
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    for (const script of INSTALL_SCRIPTS) delete manifest.scripts?.[script];
    writeFileSync(join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    return npmPack(stage, destination);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/**
 * Packs the per-platform package for `suffix` (e.g. `linux-x64-gnu`) with the binary of
 * the local build, `native/<binaryName>.<suffix>.node`, as `napi artifacts` would put it
 * into npm/<suffix>/.
 */
export function packPlatform(suffix, destination) {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const binary = `${manifest.napi.binaryName}.${suffix}.node`;
  const built = join(root, 'native', binary);
  if (!existsSync(built)) throw new Error(`${built} is not built: run \`npm run build:native\``);
  const stage = mkdtempSync(join(tmpdir(), `tessera-${suffix}-`));
  try {
    for (const file of ['package.json', 'README.md']) {
      copyFileSync(join(root, 'npm', suffix, file), join(stage, file));
    }
    copyFileSync(built, join(stage, binary));
    return npmPack(stage, destination);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/** The budget problems of a packed tarball, as sentences (none when it fits). */
export function overBudget(packed, budget) {
  const problems = [];
  if (packed.size > budget.packed) {
    problems.push(`${packed.name} packs to ${packed.size} bytes, over its ${budget.packed}`);
  }
  if (packed.unpackedSize > budget.unpacked) {
    problems.push(
      `${packed.name} unpacks to ${packed.unpackedSize} bytes, over its ${budget.unpacked}`,
    );
  }
  return problems;
}
