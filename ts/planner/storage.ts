/**
 * Storage estimate: encoded state bytes per bucket, by aggregation.
 *
 * | aggregation | bytes per bucket |
 * |---|---|
 * | sum, count, min, max | 9 (tag + 8-byte value; the reference's figure) |
 * | mean | 18 (sum + count; the reference's figure) |
 * | var, std (and `_sample`) | 25 (tag + count + mean + M2) |
 * | vector sum / mean | 5 + 8·dim (+ 8 for mean's count) |
 * | min_by_n, max_by_n | 5 + n·(8 + item) |
 * | approx_count_distinct | ⌈0.6·2^lgK⌉ (CPC; ~1.2 KiB at lgK 11) |
 * | approx_top_k | 16 + 4k·(item + 8) (frequent-items map of ~4k slots, value + weight) |
 * | approx_percentile | 32 + 2·size·16 (t-digest: up to 2·compression centroids) |
 *
 * `item` is 8 bytes for numbers and an assumed 16 bytes for strings. Per key, a rule
 * keeps ⌈retention / bucket⌉ + 1 buckets; the estimate is an upper bound (every bucket
 * filled) and leaves out the key bytes.
 */
import type { AggregationDescription, SeriesDescription } from './types.js';

/** The estimate's formula, printed under the storage table. */
export const STORAGE_FORMULA =
  'bytes per key = Σ rules (ceil(retention / bucket) + 1) × state bytes per bucket; ' +
  'state: 9 B sum/count/min/max, 18 B mean, 25 B var/std, 5+8·dim B vector sum (+8 mean), ' +
  '5+n·(8+item) B min/max_by_n, ceil(0.6·2^lgK) B approx_count_distinct, ' +
  '16+4k·(item+8) B approx_top_k, 32+32·size B approx_percentile; item = 8 B number, 16 B string. ' +
  'Upper bound: every bucket filled; key bytes not included.';

/** Estimated encoded state bytes of one bucket. */
export function bytesPerBucket(
  aggregation: AggregationDescription,
  valueKind: SeriesDescription['valueKind'],
  vectorDim: number | null,
): number {
  const item = valueKind === 'string' ? 16 : 8;
  switch (aggregation.kind) {
    case 'sum':
      return valueKind === 'vector' ? 5 + 8 * (vectorDim ?? 0) : 9;
    case 'mean':
      return valueKind === 'vector' ? 13 + 8 * (vectorDim ?? 0) : 18;
    case 'count':
    case 'min':
    case 'max':
      return 9;
    case 'var':
    case 'var_sample':
    case 'std':
    case 'std_sample':
      return 25;
    case 'min_by_n':
    case 'max_by_n':
      return 5 + (aggregation.n ?? 1) * (8 + item);
    case 'approx_count_distinct':
      return Math.ceil(0.6 * 2 ** (aggregation.lgK ?? 11));
    case 'approx_top_k':
      return 16 + 4 * (aggregation.k ?? 1) * (item + 8);
    case 'approx_percentile':
      return 32 + 2 * (aggregation.sketchSize ?? 100) * 16;
  }
}

/** Buckets a rule keeps per key: ⌈retention / bucket⌉ + 1. */
export function bucketsKept(retentionMs: number, bucketSizeMs: number): number {
  return Math.ceil(retentionMs / bucketSizeMs) + 1;
}

/**
 * Human-readable byte count (binary units).
 *
 * @example formatBytes(279) // '279 B'; formatBytes(1229 * 31) // '37.2 KiB'
 */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}
