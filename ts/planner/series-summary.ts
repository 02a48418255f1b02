/**
 * The readable summary of a series (`transaction.amount by user_id: sum per 1d`): what
 * `aggregate list` and open reports print, and what the store keeps in each series record
 * so that a series whose definition is gone from the code can still be described.
 */
import { formatDuration } from '../dsl/duration.js';
import { aggregationText } from './list.js';
import type { SeriesPlan } from './types.js';

/** A readable description of one stored series. */
export interface SeriesSummary {
  readonly id: string;
  /** The aggregated class (empty when the store never recorded it). */
  readonly namespace: string;
  /** Columns of the group key. */
  readonly groupKey: readonly string[];
  /** The aggregated column (`amount`, `amount@2`), `null` for count() of rows. */
  readonly column: string | null;
  /** Ingest filters, e.g. `category in [1,2]`. */
  readonly filters: readonly string[];
  /** One entry per rule: `sum per 1d`. */
  readonly aggregations: readonly string[];
  /** `transaction.amount by user_id: sum per 1d, count per 1d`. */
  readonly description: string;
}

function columnText(c: { name: string; version: number | null } | null): string | null {
  if (c === null) return null;
  return c.version === null ? c.name : `${c.name}@${c.version}`;
}

/** The summary of a planned series. */
export function summarize(series: SeriesPlan): SeriesSummary {
  const column = columnText(series.column);
  const aggregations = series.rules.map(
    (r) => `${aggregationText(r.aggregation, series.by)} per ${formatDuration(r.bucketSizeMs)}`,
  );
  const filters = series.filters.map((f) => f.text);
  const where = filters.length > 0 ? ` where ${filters.join(' and ')}` : '';
  const origin =
    series.bucketOriginMs === 0
      ? ''
      : ` (buckets from ${new Date(series.bucketOriginMs).toISOString()})`;
  return Object.freeze({
    id: series.id,
    namespace: series.namespace,
    groupKey: Object.freeze([...series.groupKey]),
    column,
    filters: Object.freeze(filters),
    aggregations: Object.freeze(aggregations),
    description: `${series.namespace}.${column ?? '*'} by ${series.groupKey.join('+')}${where}: ${aggregations.join(', ')}${origin}`,
  });
}
