/** The part of the plan the native engine receives. */
import { formerSeriesId, type SeriesIdentity } from './series.js';
import { summarize } from './series-summary.js';
import type {
  Plan,
  RuleDescription,
  SeriesDescription,
  SeriesPlan,
  SeriesSummaryDescription,
  StoreDescription,
} from './types.js';

/** The identity of a planned series, as `seriesId` hashes it. */
function identityOf(s: SeriesPlan): SeriesIdentity {
  return {
    namespace: s.namespace,
    groupKey: s.groupKey,
    column: s.column,
    by: s.by,
    filters: s.filters.map((f) => f.text),
    timeColumn: s.timeColumn,
    valueKind: s.valueKind,
    vectorDim: s.vectorDim,
    bucketOriginMs: s.bucketOriginMs,
  };
}

/**
 * Exactly what the native engine receives for `plan`: one entry per series with its
 * stable id and the id the previous identity format gave it, value kind, rules (rule
 * index = position; the store maps it to its stored rule list) and readable summary
 * (kept in the store's series record). Fresh, mutable objects with
 * no extra fields, so they cross the napi boundary as-is.
 *
 * @example
 * const description = toStoreDescription(plan([User]));
 * description.series[0]?.rules[0]; // { aggregation: { kind: 'sum' }, bucketSizeMs: 86400000, ... }
 */
export function toStoreDescription(plan: Plan): StoreDescription {
  return {
    series: plan.series.map((s) => {
      const rules: RuleDescription[] = s.rules.map((r) => ({
        aggregation: { ...r.aggregation },
        bucketSizeMs: r.bucketSizeMs,
        bucketOriginMs: r.bucketOriginMs,
        retentionMs: r.retentionMs,
      }));
      const text = summarize(s);
      const summary: SeriesSummaryDescription = {
        namespace: text.namespace,
        groupKey: [...text.groupKey],
        filters: [...text.filters],
        aggregations: [...text.aggregations],
        description: text.description,
      };
      if (text.column !== null) summary.column = text.column;
      const formerId = formerSeriesId(identityOf(s), s.rules);
      const d: SeriesDescription =
        s.valueKind === 'vector' && s.vectorDim !== null
          ? { id: s.id, formerId, valueKind: s.valueKind, vectorDim: s.vectorDim, rules, summary }
          : { id: s.id, formerId, valueKind: s.valueKind, rules, summary };
      return d;
    }),
  };
}
