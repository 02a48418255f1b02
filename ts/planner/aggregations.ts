/**
 * The aggregation catalog as the TypeScript layers read it. Every fact about an
 * aggregation (its name, the column kinds it takes, its arguments with their ranges and
 * defaults, how its result type follows from the column, what an empty window holds,
 * what a state costs) comes from {@link AGGREGATION_CATALOG}, generated from the Rust
 * core's catalog; this module only looks entries up and evaluates them.
 */
import type { ScalarKind } from '../dsl/nodes.js';
import { AGGREGATION_CATALOG } from './aggregation-catalog.generated.js';

/** One entry of the generated catalog, as TypeScript types it. */
type CatalogEntry = (typeof AGGREGATION_CATALOG.aggregations)[number];

/** The name of an aggregation: `sum`, `var_sample`, `approx_top_k`, ... */
export type AggregationKind = CatalogEntry['name'];

/** One argument of an aggregation, as the catalog describes it. */
export type AggregationArgument = CatalogEntry['arguments'][number];

/** One catalog entry. */
export interface AggregationEntry {
  readonly name: AggregationKind;
  readonly doc: string;
  readonly accepts: readonly ScalarKind[];
  readonly arguments: readonly AggregationArgument[];
  readonly result: CatalogEntry['result'];
  readonly empty: CatalogEntry['empty'];
  readonly approximate: boolean;
  /** How far the online store and the offline recompute may differ (the parity check). */
  readonly tolerance: Tolerance;
  readonly stateBytes: StateBytes;
  readonly vectorStateBytes?: StateBytes;
}

/**
 * An aggregation's parity tolerance (see `ToleranceEntry` in the binding): its kind, its
 * constants and the rule in words. The engine evaluates it per window.
 */
export interface Tolerance {
  readonly kind: 'exact' | 'rounding' | 'standardErrors' | 'weightShare' | 'rank';
  readonly relative?: number;
  readonly standardError?: number;
  readonly sigmas?: number;
  readonly share?: number;
  readonly factor?: number;
  readonly doc: string;
}

/** A state-size formula (see `StateBytesEntry` in the binding). */
export interface StateBytes {
  readonly base: number;
  readonly per: number;
  readonly perItem: boolean;
  readonly scale: 'one' | 'argument' | 'powerOfTwo' | 'vectorDim';
  readonly scaleArgument?: string;
  readonly factor: number;
  readonly minCount: number;
  readonly maxCount: number;
  readonly exact: boolean;
}

const BY_NAME: ReadonlyMap<string, AggregationEntry> = new Map(
  (AGGREGATION_CATALOG.aggregations as readonly AggregationEntry[]).map((e) => [e.name, e]),
);

/** Every aggregation, in catalog order. */
export const AGGREGATIONS: readonly AggregationEntry[] =
  AGGREGATION_CATALOG.aggregations as readonly AggregationEntry[];

/** Bytes of a number item in a state, and the bytes assumed for a string item. */
export const ITEM_BYTES = Object.freeze({
  number: AGGREGATION_CATALOG.numberItemBytes,
  string: AGGREGATION_CATALOG.stringItemBytes,
});

/** Whether `name` is an aggregation of the catalog. */
export function isAggregationKind(name: unknown): name is AggregationKind {
  return typeof name === 'string' && BY_NAME.has(name);
}

/** The catalog entry of `kind`. */
export function aggregationEntry(kind: AggregationKind): AggregationEntry {
  const entry = BY_NAME.get(kind);
  if (entry === undefined) throw new Error(`unknown aggregation '${kind}'`);
  return entry;
}

/** The argument of `kind` whose description field is `name`. */
export function aggregationArgument(
  kind: AggregationKind,
  name: string,
): AggregationArgument | undefined {
  return aggregationEntry(kind).arguments.find((a) => a.name === name);
}

/**
 * Whether a window without data evaluates to 0 rather than to nothing (`count`,
 * `approx_count_distinct`): there a declared default replaces the 0.
 */
export function isCountLike(kind: AggregationKind): boolean {
  return aggregationEntry(kind).empty === 'zero';
}

/** The value of a state-size formula for `args` (the aggregation description). */
export function evaluateStateBytes(
  bytes: StateBytes,
  args: Readonly<Record<string, unknown>>,
  vectorDim: number,
  itemBytes: number,
): number {
  const arg = (name: string | undefined): number => {
    const v = name === undefined ? undefined : args[name];
    return typeof v === 'number' ? v : 0;
  };
  let scale = 0;
  switch (bytes.scale) {
    case 'one':
      scale = 0;
      break;
    case 'argument':
      scale = arg(bytes.scaleArgument);
      break;
    case 'powerOfTwo':
      scale = 2 ** arg(bytes.scaleArgument);
      break;
    case 'vectorDim':
      scale = vectorDim;
      break;
  }
  let count = Math.max(bytes.factor * scale, bytes.minCount);
  if (bytes.maxCount > 0) count = Math.min(count, bytes.maxCount);
  return bytes.base + Math.ceil(count) * (bytes.per + (bytes.perItem ? itemBytes : 0));
}

/** The formula as text: `5 + n × (8 + item) B`. */
export function stateBytesText(bytes: StateBytes): string {
  const per = bytes.perItem ? `(${bytes.per} + item)` : `${bytes.per}`;
  let scale = '';
  switch (bytes.scale) {
    case 'one':
      return `${bytes.exact ? '' : '≤ '}${bytes.base} B`;
    case 'argument':
      scale = bytes.scaleArgument ?? '';
      break;
    case 'powerOfTwo':
      scale = `2^${bytes.scaleArgument ?? ''}`;
      break;
    case 'vectorDim':
      scale = 'dim';
      break;
  }
  const factor = bytes.factor === 1 ? scale : `${bytes.factor}·${scale}`;
  const clamp =
    bytes.minCount > 0 || bytes.maxCount > 0
      ? `clamp(${factor}, ${bytes.minCount}, ${bytes.maxCount > 0 ? bytes.maxCount : '∞'})`
      : factor;
  return bytes.per === 1 && !bytes.perItem
    ? `≤ ${bytes.base} + ${clamp} B`
    : `≤ ${bytes.base} + ${clamp} × ${per} B`;
}
