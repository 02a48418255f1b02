/** The part of the plan the native engine receives. */
import type { Plan, RuleDescription, SeriesDescription, StoreDescription } from './types.js';

/**
 * Exactly what the native engine receives for `plan`: one entry per series with its
 * stable id, value kind and rules (rule index = position). Fresh, mutable objects with
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
      const d: SeriesDescription =
        s.valueKind === 'vector' && s.vectorDim !== null
          ? { id: s.id, valueKind: s.valueKind, vectorDim: s.vectorDim, rules }
          : { id: s.id, valueKind: s.valueKind, rules };
      return d;
    }),
  };
}
