/**
 * Storage estimate: encoded state bytes per bucket, by aggregation, from the state-size
 * formulas of the aggregation catalog (exact for fixed-size states, an upper bound that
 * the catalog's tests check against real encodings otherwise). Per key, a rule keeps
 * ⌈retention / bucket⌉ + 1 buckets; the estimate assumes every bucket filled and leaves
 * out the key bytes.
 */
import {
  AGGREGATIONS,
  aggregationEntry,
  evaluateStateBytes,
  ITEM_BYTES,
  stateBytesText,
} from './aggregations.js';
import type { AggregationDescription, SeriesDescription } from './types.js';

/** The estimate's formula, printed under the storage table. */
export const STORAGE_FORMULA = [
  'bytes per key = Σ rules (ceil(retention / bucket) + 1) × state bytes per bucket; state:',
  AGGREGATIONS.map((e) => {
    const vector =
      e.vectorStateBytes === undefined ? '' : ` (vectors: ${stateBytesText(e.vectorStateBytes)})`;
    return `${e.name} ${stateBytesText(e.stateBytes)}${vector}`;
  }).join('; ') +
    `; item = ${ITEM_BYTES.number} B number, ${ITEM_BYTES.string} B string (assumed).`,
  'Upper bound: every bucket filled; key bytes not included.',
].join(' ');

/** Estimated encoded state bytes of one bucket (an upper bound unless the state is fixed-size). */
export function bytesPerBucket(
  aggregation: AggregationDescription,
  valueKind: SeriesDescription['valueKind'],
  vectorDim: number | null,
): number {
  const entry = aggregationEntry(aggregation.kind);
  const bytes =
    valueKind === 'vector' ? (entry.vectorStateBytes ?? entry.stateBytes) : entry.stateBytes;
  const item = valueKind === 'string' ? ITEM_BYTES.string : ITEM_BYTES.number;
  return evaluateStateBytes(
    bytes,
    aggregation as unknown as Readonly<Record<string, unknown>>,
    vectorDim ?? 0,
    item,
  );
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
