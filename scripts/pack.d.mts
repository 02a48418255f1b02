/** A tarball written by `npm pack`, with what it holds. */
export interface PackedTarball {
  readonly name: string;
  readonly version: string;
  /** Absolute path of the .tgz file. */
  readonly tarball: string;
  /** Bytes of the .tgz file. */
  readonly size: number;
  /** Bytes of the files it holds. */
  readonly unpackedSize: number;
  readonly files: readonly { readonly path: string; readonly size: number }[];
}

export interface SizeBudget {
  readonly packed: number;
  readonly unpacked: number;
}

export const SIZE_BUDGET: { readonly main: SizeBudget; readonly platform: SizeBudget };
export const FORBIDDEN: readonly RegExp[];
export const INSTALL_SCRIPTS: readonly string[];
export function packMain(destination: string): PackedTarball;
export function packPlatform(suffix: string, destination: string): PackedTarball;
export function overBudget(packed: PackedTarball, budget: SizeBudget): string[];
