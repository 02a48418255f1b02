/**
 * The open report: which series opening a store found new, kept and orphaned, each with
 * its readable summary. The summaries come from the store's own series records (written
 * atomically with the series they describe), so orphaned series, whose definitions are
 * gone from the code, are still described.
 */
import type { OpenReportOutput } from '../native.js';
import { type SeriesSummary, summarize } from '../planner/series-summary.js';
import type { Plan } from '../planner/types.js';

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
   * Feature windows that read buckets from before their layout is complete (a series
   * registered after the data began), as of the engine clock when the store opened: each
   * needs a backfill from `from` to `to` (docs/semantics.md section 9.4).
   */
  readonly needsBackfill: readonly IncompleteWindow[];
}

/** A feature window that reads buckets from before its layout is complete. */
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

/** The open report of a store from the engine's report. */
export function openReport(
  native: OpenReportOutput,
  needsBackfill: readonly IncompleteWindow[] = [],
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
    needsBackfill: Object.freeze([...needsBackfill]),
  });
}

/**
 * What a store holds for a plan, without writing anything (for a store opened
 * read-only, whose report lists every stored series as kept): the plan's series it
 * holds (kept), those it does not (new), and the stored series the plan does not name
 * (orphaned, described by the summaries the store keeps).
 */
export function storedSeriesReport(
  plan: Plan,
  stored: OpenReportOutput,
  needsBackfill: readonly IncompleteWindow[] = [],
): TesseraOpenReport {
  const held = new Set(stored.keptSeries);
  const planned = new Set(plan.series.map((s) => s.id));
  const all = openReport({
    ...stored,
    keptSeries: stored.keptSeries.filter((id) => !planned.has(id)),
  });
  return Object.freeze({
    newSeries: Object.freeze(plan.series.filter((s) => !held.has(s.id)).map(summarize)),
    keptSeries: Object.freeze(plan.series.filter((s) => held.has(s.id)).map(summarize)),
    orphanedSeries: all.keptSeries,
    needsBackfill: Object.freeze([...needsBackfill]),
  });
}

/**
 * The open report as text: one line per series, grouped by new / kept / orphaned.
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
  for (const w of report.needsBackfill) {
    lines.push(`  ${w.feature} (${w.window}) needs a backfill from ${w.from} to ${w.to}`);
  }
  return lines.join('\n');
}
