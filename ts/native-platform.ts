/**
 * Which prebuilt native engine this process needs: the platform suffix napi-rs gives a
 * target (`linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`, ...), the file name of a
 * local build (`native/tessera.<suffix>.node`) and the per-platform package
 * (`<package name>-<suffix>`). Pure: nothing here loads the engine, so the packing
 * scripts and tests can ask the same questions the loader asks.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What the loader needs from the package's `package.json`. */
export interface PackageFacts {
  /** The package root: the folder holding `package.json`. */
  readonly root: string;
  /** The published name, e.g. `tessera-engine`. */
  readonly name: string;
  readonly version: string;
  /** `napi.binaryName`: the stem of every `.node` file, e.g. `tessera`. */
  readonly binaryName: string;
  /** The platform suffixes that have a prebuilt package (`optionalDependencies`). */
  readonly prebuilt: readonly string[];
}

interface Manifest {
  name?: string;
  version?: string;
  napi?: { binaryName?: string };
  optionalDependencies?: Record<string, string>;
}

/**
 * Finds the package root by walking up from this module (it runs from `ts/` under vitest
 * and from `dist/ts/` once compiled or installed) to the first `package.json` that has a
 * `napi.binaryName`: that file names the binary and the platform packages.
 */
export function packageFacts(from: string = dirname(fileURLToPath(import.meta.url))): PackageFacts {
  let dir = from;
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const manifest = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
      const binaryName = manifest.napi?.binaryName;
      if (manifest.name !== undefined && binaryName !== undefined) {
        const prefix = `${manifest.name}-`;
        return {
          root: dir,
          name: manifest.name,
          version: manifest.version ?? '0.0.0',
          binaryName,
          prebuilt: Object.keys(manifest.optionalDependencies ?? {})
            .filter((dep) => dep.startsWith(prefix))
            .map((dep) => dep.slice(prefix.length)),
        };
      }
    }
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error(`Tessera cannot find its package.json (looked upwards from ${from})`);
    }
    dir = parent;
  }
}

/** True when this Linux process runs on musl rather than glibc (Alpine and the like). */
function isMusl(): boolean {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } };
  return report?.header?.glibcVersionRuntime === undefined;
}

/**
 * The napi-rs platform suffix of this process: `<platform>-<arch>` plus the ABI on Linux
 * (`gnu` / `musl`) and Windows (`msvc`), e.g. `linux-x64-gnu` or `darwin-arm64`.
 */
export function platformSuffix(
  platform: NodeJS.Platform = process.platform,
  arch: string = process.arch,
): string {
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/** The file name of the binary for `suffix`, as `napi build --platform` writes it. */
export function binaryFile(facts: PackageFacts, suffix: string): string {
  return `${facts.binaryName}.${suffix}.node`;
}

/** The per-platform package that carries the binary for `suffix`. */
export function platformPackage(facts: PackageFacts, suffix: string): string {
  return `${facts.name}-${suffix}`;
}
