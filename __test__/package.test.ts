/**
 * The package as a user gets it: the main package and this machine's platform package are
 * packed (`scripts/pack.mjs`, the same tarballs `npm run pack:check` checks), installed
 * from those tarballs into an empty project with `npm install --offline` (no network, and
 * no cargo on PATH, so nothing can be compiled), and used there: the README's example as
 * written, an ES module and a CommonJS script, a TypeScript consumer checked with tsc
 * (the binding's types must survive packing, not decay to `any`), the `tessera` bin, and
 * the error for a missing optional peer.
 */
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FORBIDDEN,
  INSTALL_SCRIPTS,
  type PackedTarball,
  packMain,
  packPlatform,
  SIZE_BUDGET,
} from '../scripts/pack.mjs';
import { platformSuffix } from '../ts/native-platform.js';

const repo = join(import.meta.dirname, '..');
const suffix = platformSuffix();
const shell = process.platform === 'win32';

let work: string;
let project: string;
let main: PackedTarball;
let platform: PackedTarball;
let install: SpawnSyncReturns<string>;

function run(command: string, args: string[], cwd: string, env = process.env) {
  return spawnSync(command, args, { cwd, env, encoding: 'utf8', shell });
}

function node(file: string): SpawnSyncReturns<string> {
  return run(process.execPath, [file], project);
}

/** The fenced block of `lang` that follows `after` in the README. */
function readmeBlock(after: string, lang: string): string {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  const start = readme.indexOf(after);
  expect(start, `README has "${after}"`).toBeGreaterThanOrEqual(0);
  const fence = `\`\`\`${lang}\n`;
  const open = readme.indexOf(fence, start);
  const close = readme.indexOf('\n```', open + fence.length);
  expect(open, `a ${lang} block after "${after}"`).toBeGreaterThan(start);
  return readme.slice(open + fence.length, close + 1);
}

/**
 * The installed directories of the package's `dependencies` and of theirs, resolved as
 * Node resolves them (a nested `node_modules` first), each once.
 */
function runtimeDependencyDirs(): string[] {
  const seen = new Map<string, string>();
  const visit = (from: string, names: readonly string[]) => {
    for (const name of names) {
      if (seen.has(name)) continue;
      let found: string | undefined;
      for (let dir = from; found === undefined; dir = dirname(dir)) {
        const candidate = join(dir, 'node_modules', name);
        if (existsSync(join(candidate, 'package.json'))) found = candidate;
        if (dir === repo || dirname(dir) === dir) break;
      }
      if (found === undefined) throw new Error(`dependency ${name} is not installed`);
      seen.set(name, `./${relative(repo, found)}`);
      const manifest = JSON.parse(readFileSync(join(found, 'package.json'), 'utf8')) as {
        dependencies?: Record<string, string>;
      };
      visit(found, Object.keys(manifest.dependencies ?? {}));
    }
  };
  const own = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
  };
  visit(repo, Object.keys(own.dependencies ?? {}));
  return [...seen.values()];
}

beforeAll(() => {
  const build = run('npm', ['run', '--silent', 'build:ts'], repo);
  expect(build.status, build.stderr).toBe(0);
  work = mkdtempSync(join(tmpdir(), 'tessera-package-'));
  main = packMain(work);
  platform = packPlatform(suffix, work);
  // zod is a peer dependency: npm installs it with the package. From a tarball of the
  // copy the clone installed, so the install needs no registry metadata either.
  const zod = run(
    'npm',
    ['pack', '--json', '--ignore-scripts', '--pack-destination', work, './node_modules/zod'],
    repo,
  );
  expect(zod.status, zod.stderr).toBe(0);
  const zodTarball = join(
    work,
    (JSON.parse(zod.stdout) as { filename: string }[])[0]?.filename ?? '',
  );

  // The package's own dependencies (and theirs), packed from the copies the clone
  // installed, for the same reason.
  const dependencyTarballs = runtimeDependencyDirs().map((dir) => {
    const packed = run(
      'npm',
      ['pack', '--json', '--ignore-scripts', '--pack-destination', work, dir],
      repo,
    );
    expect(packed.status, packed.stderr).toBe(0);
    return join(work, (JSON.parse(packed.stdout) as { filename: string }[])[0]?.filename ?? '');
  });

  project = join(work, 'consumer');
  mkdirSync(project);
  writeFileSync(
    join(project, 'package.json'),
    `${JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }, null, 2)}\n`,
  );
  // PATH with node and npm only: no cargo, no rustc, so the install cannot compile.
  const env = {
    ...process.env,
    PATH: [dirname(process.execPath), '/usr/bin', '/bin'].join(delimiter),
  };
  install = run(
    'npm',
    [
      'install',
      '--offline',
      '--no-audit',
      '--no-fund',
      main.tarball,
      platform.tarball,
      zodTarball,
      ...dependencyTarballs,
    ],
    project,
    env,
  );
}, 240_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed tarballs', () => {
  it('hold the compiled package, its types and the binding types, and nothing else', () => {
    const paths = main.files.map((f) => f.path);
    for (const needed of [
      'package.json',
      'README.md',
      'LICENSE',
      'CHANGELOG.md',
      'dist/ts/index.js',
      'dist/ts/index.d.ts',
      'dist/ts/native.js',
      'dist/native/index.d.cts',
      'cjs/index.cjs',
      'cjs/index.d.cts',
      'bin/tessera.mjs',
    ]) {
      expect(paths).toContain(needed);
    }
    expect(paths.filter((p) => FORBIDDEN.some((pattern) => pattern.test(p)))).toEqual([]);
    expect(platform.files.map((f) => f.path).sort()).toEqual(
      ['README.md', 'package.json', `tessera.${suffix}.node`].sort(),
    );
  });

  it('fit their size budgets', () => {
    expect(main.size).toBeLessThanOrEqual(SIZE_BUDGET.main.packed);
    expect(main.unpackedSize).toBeLessThanOrEqual(SIZE_BUDGET.main.unpacked);
    expect(platform.size).toBeLessThanOrEqual(SIZE_BUDGET.platform.packed);
    expect(platform.unpackedSize).toBeLessThanOrEqual(SIZE_BUDGET.platform.unpacked);
  });
});

describe('installed from the tarballs into an empty project, offline', () => {
  it('installs without building anything', () => {
    expect(install.status, `${install.stdout}\n${install.stderr}`).toBe(0);
    const installed = join(project, 'node_modules', 'tessera-engine');
    expect(existsSync(join(installed, 'dist/ts/index.js'))).toBe(true);
    expect(existsSync(join(installed, 'native'))).toBe(false);
    expect(
      existsSync(
        join(project, 'node_modules', `tessera-engine-${suffix}`, `tessera.${suffix}.node`),
      ),
    ).toBe(true);
    expect(existsSync(join(project, 'node_modules', 'zod', 'package.json'))).toBe(true);
    const output = `${install.stdout}${install.stderr}`;
    expect(output).not.toMatch(/cargo|napi build|Compiling/);
    // npm lists the `prepare` scripts of dependencies installed from local tarballs here
    // (cron-parser's, luxon's); none may be Tessera's own.
    const scripted = output.split('\n').filter((line) => line.includes('install-scripts   '));
    expect(scripted.filter((line) => line.includes('tessera-engine'))).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as {
      scripts?: Record<string, string>;
    };
    expect(INSTALL_SCRIPTS.filter((s) => manifest.scripts?.[s] !== undefined)).toEqual([]);
  });

  it("runs the README's example as written", () => {
    writeFileSync(join(project, 'example.mjs'), readmeBlock('A complete program', 'js'));
    const result = node('example.mjs');
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toBe(readmeBlock('It prints:', 'text'));
  });

  it('imports as an ES module and requires as CommonJS: one module, same classes', () => {
    const definitions = `
const Transaction = features('transaction', {
  id: int().primary(),
  user_id: int().references('user.id'),
  amount: float(),
  ts: datetime().featureTime(),
});
const User = features('user', { id: int().primary(), transactions: hasMany(() => Transaction) },
  (user) => ({
    total: windowed('1d', { materialization: { bucketDuration: '1h' },
      expression: user.transactions.select((t) => t.amount).sum(), default: 0 }),
  }));
const now = Date.UTC(2026, 0, 31, 12);
const tessera = Tessera.open({ path: STORE, features: [User, Transaction] });
tessera.setClock(now);
tessera.ingest(Transaction, [
  { id: 1, user_id: 7, amount: 10, ts: new Date(now - 3_600_000) },
  { id: 2, user_id: 7, amount: 5, ts: new Date(now - 7_200_000) },
  { id: 3, user_id: 8, amount: 1, ts: new Date(now - 48 * 3_600_000) },
]);
const { rows } = tessera.query({ input: { 'user.id': [7, 8] }, output: [User.total['1d']] });
const stats = tessera.stats();
tessera.close();
`;
    const names = 'datetime, features, float, hasMany, int, Tessera, TesseraError, windowed';
    writeFileSync(
      join(project, 'esm.mjs'),
      `import { ${names} } from 'tessera-engine';
const STORE = 'esm-store';${definitions}
console.log(JSON.stringify({ values: rows.map((r) => r.values), series: stats.series }));
`,
    );
    writeFileSync(
      join(project, 'cjs.cjs'),
      `const { ${names} } = require('tessera-engine');
const STORE = 'cjs-store';${definitions}
import('tessera-engine').then((esm) => {
  console.log(JSON.stringify({
    values: rows.map((r) => r.values),
    series: stats.series,
    sameModule: esm.Tessera === Tessera && esm.TesseraError === TesseraError,
  }));
});
`,
    );
    // Two rows for user 7 within the day sum to 15; user 8's one row is two days old.
    const esm = node('esm.mjs');
    expect(esm.status, esm.stderr).toBe(0);
    expect(JSON.parse(esm.stdout)).toEqual({ values: [[15], [0]], series: 1 });
    const cjs = node('cjs.cjs');
    expect(cjs.status, cjs.stderr).toBe(0);
    expect(JSON.parse(cjs.stdout)).toEqual({ values: [[15], [0]], series: 1, sameModule: true });
  });

  it('type-checks a TypeScript consumer with the binding types intact (ESM and CommonJS)', () => {
    const typeChecks = `
type IsAny<T> = 0 extends 1 & T ? true : false;
`;
    writeFileSync(
      join(project, 'consumer.mts'),
      `import { type EngineStats, features, float, int, Tessera } from 'tessera-engine';
${typeChecks}
const Row = features('row', { id: int().primary(), x: float() });
const tessera = Tessera.open({ path: 'ts-store', features: [Row] });
const stats: EngineStats = tessera.stats();
// Types generated from the Rust binding, through dist/native/index.d.cts.
export const statsTyped: IsAny<EngineStats> = false;
export const seriesTyped: IsAny<typeof stats.series> = false;
// @ts-expect-error \`series\` is a number, not a string
export const wrong: string = stats.series;
// @ts-expect-error \`path\` is required
Tessera.open({ features: [Row] });
`,
    );
    writeFileSync(
      join(project, 'consumer.cts'),
      `import engine = require('tessera-engine');
${typeChecks}
export const statsTyped: IsAny<engine.EngineStats> = false;
export const openTyped: IsAny<typeof engine.Tessera.open> = false;
// @ts-expect-error \`series\` is a number, not a string
export const wrong: string = ({} as engine.EngineStats).series;
`,
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          strict: true,
          // As most projects have it: with it, a type that fails to resolve inside a
          // package's declarations becomes \`any\` silently, which the checks above catch.
          skipLibCheck: true,
          noEmit: true,
          types: ['node'],
          typeRoots: [join(repo, 'node_modules', '@types')],
        },
        files: ['consumer.mts', 'consumer.cts'],
      }),
    );
    const tsc = run(
      process.execPath,
      [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'],
      project,
    );
    expect(tsc.status, tsc.stdout).toBe(0);
  });

  it('runs `npx tessera --help`', () => {
    const help = run('npx', ['--offline', 'tessera', '--help'], project);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/aggregate list/);
    expect(help.stdout).toMatch(/deadletters/);
  });

  it('names a missing optional peer when the feature that needs it starts', () => {
    expect(existsSync(join(project, 'node_modules', '@platformatic', 'kafka'))).toBe(false);
    writeFileSync(
      join(project, 'kafka.mjs'),
      `import { KafkaSource } from 'tessera-engine';
const source = new KafkaSource({ brokers: '127.0.0.1:9', topic: 'transactions' });
await source.start([]).then(
  () => console.log('started'),
  (e) => console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })),
);
`,
    );
    const result = node('kafka.mjs');
    expect(result.status, result.stderr).toBe(0);
    const error = JSON.parse(result.stdout) as { name: string; code: string; message: string };
    expect(error.name).toBe('MissingDependencyError');
    expect(error.code).toBe('MISSING_DEPENDENCY');
    expect(error.message).toContain(
      'KafkaSource needs the optional peer dependency @platformatic/kafka',
    );
    expect(error.message).toContain('npm install @platformatic/kafka');
  });
});
