/**
 * The open report: which series opening a store found new, kept (with what a definition
 * change did to their rules) and orphaned, each with its readable summary. The summaries
 * come from the store's own series records (written atomically with the series they
 * describe), so orphaned series, whose definitions are gone from the code, are still
 * described.
 */
import { formatDuration } from '../dsl/duration.js';
import type { OpenReportOutput, RuleDescription } from '../native.js';
import { aggregationText } from '../planner/list.js';
import type { SeriesSummary } from '../planner/series-summary.js';
import type { AggregationDescription, ColumnAtVersion, Plan } from '../planner/types.js';

/** What opening a store found, series by series. */
export interface TesseraOpenReport {
  /** Series the definitions need that the store did not hold (they start empty). */
  readonly newSeries: readonly SeriesSummary[];
  /** Series the store already held, with their data. */
  readonly keptSeries: readonly SeriesSummary[];
  /**
   * Series the store holds that the definitions no longer describe (a changed filter,
   * column or bucket origin makes a new series). Their data stays until removed.
   */
  readonly orphanedSeries: readonly SeriesSummary[];
  /**
   * Kept series whose rules changed with the definitions: rules added (incomplete until a
   * backfill), retired (no longer read; their buckets stay until retention passes) and
   * layouts whose retention widened (docs/semantics.md section 9.4). Also the series the
   * store adopted from the id a previous version gave them.
   */
  readonly changedSeries: readonly SeriesChange[];
  /**
   * Feature windows that read buckets from before their rule is complete (a series
   * registered after the data began, a rule a definition change added, a window whose
   * retention it widened), as of the engine clock when the store opened: each needs a
   * backfill from `from` to `to` (docs/semantics.md section 9.4).
   */
  readonly needsBackfill: readonly IncompleteWindow[];
}

/** What a definition change did to one kept series. */
export interface SeriesChange {
  readonly series: SeriesSummary;
  /** The id the store held the series under, when it adopted it under its new id. */
  readonly adoptedFrom: string | null;
  /** Rules added, e.g. `mean per 1h`. */
  readonly added: readonly string[];
  /** Rules no longer requested, e.g. `count per 1h`. */
  readonly retired: readonly string[];
  /** Layouts whose retention grew, e.g. `{ bucket: '1h', from: '7d', to: '30d' }`. */
  readonly widened: readonly {
    readonly bucket: string;
    readonly from: string;
    readonly to: string;
  }[];
}

/** A feature window that reads buckets from before its rule is complete. */
export interface IncompleteWindow {
  /** `user.total` (`user.total@2` for a version). */
  readonly feature: string;
  readonly window: string;
  readonly canonical: string;
  /** The first bucket the window reads, and where its buckets become complete. */
  readonly from: string;
  readonly to: string;
  readonly fromMs: number;
  readonly toMs: number;
}

function unknownSummary(id: string): SeriesSummary {
  return Object.freeze({
    id,
    namespace: '',
    groupKey: Object.freeze([]),
    column: null,
    filters: Object.freeze([]),
    aggregations: Object.freeze([]),
    description: `series ${id} (no description recorded)`,
  });
}

/** `mean per 1h`, with the series' `by` column when the plan still has the series. */
function ruleText(rule: RuleDescription, by: ColumnAtVersion | null): string {
  // The store returns the aggregation as the description gave it, kind included.
  const aggregation = rule.aggregation as AggregationDescription;
  return `${aggregationText(aggregation, by)} per ${formatDuration(rule.bucketSizeMs)}`;
}

/** The changes of the native report, described with the plan's series where it has them. */
function seriesChanges(
  native: OpenReportOutput,
  pick: (id: string) => SeriesSummary,
  plan: Plan | undefined,
): SeriesChange[] {
  return native.changedSeries.map((c) => {
    const by = plan?.series.find((s) => s.id === c.seriesId)?.by ?? null;
    return Object.freeze({
      series: pick(c.seriesId),
      adoptedFrom: c.adoptedFrom ?? null,
      added: Object.freeze(c.added.map((r) => ruleText(r, by))),
      retired: Object.freeze(c.retired.map((r) => ruleText(r, by))),
      widened: Object.freeze(
        c.widened.map((w) =>
          Object.freeze({
            bucket: formatDuration(w.bucketSizeMs),
            from: formatDuration(w.fromMs),
            to: formatDuration(w.toMs),
          }),
        ),
      ),
    });
  });
}

/** The open report of a store from the engine's report. */
export function openReport(
  native: OpenReportOutput,
  needsBackfill: readonly IncompleteWindow[] = [],
  plan?: Plan,
): TesseraOpenReport {
  const stored = new Map(native.summaries.map((s) => [s.id, s.summary]));
  const pick = (id: string): SeriesSummary => {
    const s = stored.get(id);
    if (s === undefined) return unknownSummary(id);
    return Object.freeze({
      id,
      namespace: s.namespace,
      groupKey: Object.freeze([...s.groupKey]),
      column: s.column ?? null,
      filters: Object.freeze([...s.filters]),
      aggregations: Object.freeze([...s.aggregations]),
      description: s.description,
    });
  };
  return Object.freeze({
    newSeries: Object.freeze(native.newSeries.map(pick)),
    keptSeries: Object.freeze(native.keptSeries.map(pick)),
    orphanedSeries: Object.freeze(native.orphanedSeries.map(pick)),
    changedSeries: Object.freeze(seriesChanges(native, pick, plan)),
    needsBackfill: Object.freeze([...needsBackfill]),
  });
}

/**
 * The open report as text: one line per series, grouped by new / kept / orphaned, then
 * one line per changed series and one per window that needs a backfill.
 *
 * @example
 * console.log(renderOpenReport(tessera.openReport));
 */
export function renderOpenReport(report: TesseraOpenReport): string {
  const lines = [
    `series: ${report.newSeries.length} new, ${report.keptSeries.length} kept, ${report.orphanedSeries.length} orphaned`,
  ];
  for (const [label, list] of [
    ['new', report.newSeries],
    ['kept', report.keptSeries],
    ['orphaned', report.orphanedSeries],
  ] as const) {
    for (const s of list) lines.push(`  ${label.padEnd(8)} ${s.id}  ${s.description}`);
  }
  for (const c of report.changedSeries) {
    const parts = [
      ...(c.adoptedFrom === null ? [] : [`adopted from ${c.adoptedFrom}`]),
      ...c.added.map((r) => `added ${r}`),
      ...c.retired.map((r) => `retired ${r}`),
      ...c.widened.map((w) => `retention of ${w.bucket} buckets widened from ${w.from} to ${w.to}`),
    ];
    lines.push(`  ${'changed'.padEnd(8)} ${c.series.id}  ${parts.join('; ')}`);
  }
  for (const w of report.needsBackfill) {
    lines.push(`  ${w.feature} (${w.window}) needs a backfill from ${w.from} to ${w.to}`);
  }
  return lines.join('\n');
}
