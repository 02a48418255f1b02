/**
 * The `aggregate list` table (one row per series rule) and the
 * storage estimate, rendered from a plan.
 */
import { formatDuration } from '../dsl/duration.js';
import { aggregationEntry } from './aggregations.js';
import { formatBytes, STORAGE_FORMULA } from './storage.js';
import type { AggregationDescription, ColumnAtVersion, Plan, SeriesPlan } from './types.js';

/** One row of the `aggregate list` table. */
export interface AggregateListRow {
  readonly series: string;
  readonly namespace: string;
  readonly group: string;
  readonly agg: string;
  readonly bucket: string;
  readonly retention: string;
  readonly aggregation: string;
  readonly dependentFeatures: string;
}

const HEADERS: Readonly<Record<keyof AggregateListRow, string>> = {
  series: 'Series',
  namespace: 'Namespace',
  group: 'Group',
  agg: 'Agg',
  bucket: 'Bucket',
  retention: 'Retention',
  aggregation: 'Aggregation',
  dependentFeatures: 'Dependent Features',
};

function columnText(c: ColumnAtVersion): string {
  return c.version === null ? c.name : `${c.name}@${c.version}`;
}

/**
 * `max_by_n(5) by amount`, `approx_top_k(10)`, `approx_percentile(0.9)`, `sum`: the
 * catalog name, then the required arguments, then the others that differ from their
 * catalog default (`approx_count_distinct(lgK=12)`).
 */
export function aggregationText(a: AggregationDescription, by: ColumnAtVersion | null): string {
  const fields = a as unknown as Readonly<Record<string, unknown>>;
  const parts: string[] = [];
  for (const arg of aggregationEntry(a.kind).arguments) {
    const v = fields[arg.name];
    if (v === undefined || arg.kind === 'column' || arg.kind === 'flag') continue;
    if (arg.required) parts.push(String(v));
    else if ('default' in arg && v !== arg.default) parts.push(`${arg.option}=${String(v)}`);
  }
  const text = parts.length === 0 ? a.kind : `${a.kind}(${parts.join(', ')})`;
  return by === null ? text : `${text} by ${columnText(by)}`;
}

function aggText(s: SeriesPlan): string {
  const col = s.column === null ? '*' : columnText(s.column);
  return s.filters.length === 0
    ? col
    : `${col} where ${s.filters.map((f) => f.text).join(' and ')}`;
}

/** The rows of the `aggregate list` table: one per (series, rule). */
export function aggregateListRows(plan: Plan): AggregateListRow[] {
  const rows: AggregateListRow[] = [];
  for (const s of plan.series) {
    for (const r of s.rules) {
      rows.push({
        series: String(s.number),
        namespace: s.namespace,
        group: s.groupKey.join(' '),
        agg: aggText(s),
        bucket: formatDuration(r.bucketSizeMs),
        retention: formatDuration(r.retentionMs),
        aggregation: aggregationText(r.aggregation, s.by),
        dependentFeatures: [...new Set(r.dependents.map((d) => d.feature))].join(' '),
      });
    }
  }
  return rows;
}

/** Renders rows as a table: a header, a rule of `─`, then the rows. */
export function renderTable<K extends string>(
  headers: Readonly<Record<K, string>>,
  rows: readonly Readonly<Record<K, string>>[],
  align: Partial<Record<K, 'right'>> = {},
): string {
  const keys = Object.keys(headers) as K[];
  const widths = keys.map((k) => Math.max(headers[k].length, ...rows.map((r) => r[k].length)));
  const line = (r: Readonly<Record<K, string>>): string =>
    ` ${keys
      .map((k, i) => {
        const w = widths[i] ?? 0;
        return align[k] === 'right' ? r[k].padStart(w) : r[k].padEnd(w);
      })
      .join('  ')}`.trimEnd();
  const total = widths.reduce((a, b) => a + b, 0) + 2 * (keys.length - 1) + 2;
  return [line(headers), '─'.repeat(total), ...rows.map(line)].join('\n');
}

/**
 * The reference's `aggregate list` table: columns Series, Namespace, Group, Agg, Bucket,
 * Retention, Aggregation, Dependent Features; one row per series rule, series numbered
 * from 1 in definition order, durations printed canonically. Ingest filters are shown in
 * the Agg column (`amount where category in [1,2]`).
 *
 * @example
 * console.log(renderAggregateList(plan([User, Merchant])));
 */
export function renderAggregateList(plan: Plan): string {
  if (plan.series.length === 0) return 'No materialized aggregations.';
  return renderTable(HEADERS, aggregateListRows(plan));
}

/**
 * The storage estimate: per series rule, buckets kept per key × state bytes per bucket,
 * summed per series and over all series, followed by the formula.
 *
 * @example
 * console.log(renderStorageEstimate(plan([User])));
 */
export function renderStorageEstimate(plan: Plan): string {
  if (plan.series.length === 0) return 'Storage estimate: nothing is materialized.';
  const headers = {
    series: 'Series',
    id: 'Id',
    aggregation: 'Aggregation',
    bucket: 'Bucket',
    buckets: 'Buckets',
    perBucket: 'Bytes/bucket',
    perKey: 'Bytes/key',
  };
  const rows: Record<keyof typeof headers, string>[] = [];
  for (const s of plan.series) {
    for (const r of s.rules) {
      rows.push({
        series: String(s.number),
        id: s.id,
        aggregation: aggregationText(r.aggregation, s.by),
        bucket: formatDuration(r.bucketSizeMs),
        buckets: String(r.bucketsKept),
        perBucket: formatBytes(r.bytesPerBucket),
        perKey: formatBytes(r.bytesPerKey),
      });
    }
  }
  const perSeries = plan.series
    .map((s) => `series ${s.number}: ${formatBytes(s.bytesPerKey)} per ${s.groupKey.join('+')} key`)
    .join('; ');
  return [
    'Storage estimate (state bytes per key):',
    renderTable(headers, rows, { buckets: 'right', perBucket: 'right', perKey: 'right' }),
    `Per series: ${perSeries}.`,
    `Total, if one key has data in every series: ${formatBytes(plan.bytesPerKey)}.`,
    STORAGE_FORMULA,
  ].join('\n');
}
