/**
 * The series catalog: a small JSON file next to the store's data
 * (`<path>/tessera-series.json`) that remembers a readable description of every series
 * the store holds. The native engine knows series only by id; the catalog lets the open
 * report describe orphaned series, whose definitions are gone from the code.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatDuration } from '../dsl/duration.js';
import type { OpenReportOutput } from '../native.js';
import { aggregationText } from '../planner/list.js';
import type { Plan, SeriesPlan } from '../planner/types.js';

/** The catalog's file name inside the store directory. */
export const CATALOG_FILE = 'tessera-series.json';

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
}

interface CatalogFile {
  readonly format: 1;
  readonly series: Record<string, SeriesSummary>;
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

function readCatalog(dir: string): Record<string, SeriesSummary> {
  const file = join(dir, CATALOG_FILE);
  if (!existsSync(file)) return {};
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<CatalogFile>;
    return parsed.format === 1 && typeof parsed.series === 'object' && parsed.series !== null
      ? parsed.series
      : {};
  } catch {
    // A damaged catalog only costs descriptions of orphaned series; never block opening.
    return {};
  }
}

/**
 * Reads the previous catalog, builds the open report from the engine's (ids only), and
 * writes the catalog back: the plan's series plus the orphaned ones still stored.
 */
export function reconcileCatalog(
  dir: string,
  plan: Plan,
  native: OpenReportOutput,
): TesseraOpenReport {
  const previous = readCatalog(dir);
  const current = new Map(plan.series.map((s) => [s.id, summarize(s)]));
  const pick = (id: string): SeriesSummary => current.get(id) ?? unknownSummary(id);
  const orphaned = native.orphanedSeries.map((id) => {
    const known = previous[id];
    return known === undefined ? unknownSummary(id) : Object.freeze({ ...known });
  });
  const series: Record<string, SeriesSummary> = {};
  for (const o of orphaned) series[o.id] = o;
  for (const [id, s] of current) series[id] = s;
  const file = join(dir, CATALOG_FILE);
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ format: 1, series } satisfies CatalogFile, null, 2)}\n`);
  renameSync(tmp, file);
  return Object.freeze({
    newSeries: Object.freeze(native.newSeries.map(pick)),
    keptSeries: Object.freeze(native.keptSeries.map(pick)),
    orphanedSeries: Object.freeze(orphaned),
  });
}

/**
 * What a store holds for a plan, without writing anything (for a store opened
 * read-only): the plan's series it holds (kept), those it does not (new), and the
 * stored series the plan does not name (orphaned, described from the catalog).
 */
export function storedSeriesReport(
  dir: string,
  plan: Plan,
  storedIds: readonly string[],
): TesseraOpenReport {
  const previous = readCatalog(dir);
  const stored = new Set(storedIds);
  const planned = new Set(plan.series.map((s) => s.id));
  return Object.freeze({
    newSeries: Object.freeze(plan.series.filter((s) => !stored.has(s.id)).map(summarize)),
    keptSeries: Object.freeze(plan.series.filter((s) => stored.has(s.id)).map(summarize)),
    orphanedSeries: Object.freeze(
      storedIds
        .filter((id) => !planned.has(id))
        .map((id) => {
          const known = previous[id];
          return known === undefined ? unknownSummary(id) : Object.freeze({ ...known });
        }),
    ),
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
  return lines.join('\n');
}
