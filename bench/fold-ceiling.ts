/**
 * The Rust in-memory fold ceiling (`crates/napi/src/bench.rs`), from the benchmark
 * suite's own build of the addon (`native-bench/`, built by `npm run bench` with the
 * `fold-ceiling` cargo feature), so that the shipped addon does not carry it.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface FoldCeilingBinding {
  benchFoldCeiling(
    keys: Float64Array,
    timestampsMs: Float64Array,
    values: Float64Array,
    bucketMs: number,
    rounds: number,
  ): number;
}

// dist/bench/fold-ceiling.js -> the package root.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

let binding: FoldCeilingBinding | undefined;

/** Nanoseconds per event of the Rust fold, the median of `rounds` runs. */
export function benchFoldCeiling(
  keys: Float64Array,
  timestampsMs: Float64Array,
  values: Float64Array,
  bucketMs: number,
  rounds: number,
): number {
  binding ??= createRequire(import.meta.url)(
    join(root, 'native-bench', 'index.cjs'),
  ) as FoldCeilingBinding;
  return binding.benchFoldCeiling(keys, timestampsMs, values, bucketMs, rounds);
}
