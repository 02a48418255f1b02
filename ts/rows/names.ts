/**
 * Column names as rows carry them: `column` or `column@version`, and which written
 * columns make a row relevant to a series (its trigger column). Ingest, stream resolvers
 * and the resolver definitions all read names here.
 */
import type { ClassPlan, ColumnPlan, SeriesPlan } from '../planner/types.js';
import { describeValue } from './describe.js';

const VERSIONED = /^(.+)@(\d+)$/;

/** `amount@2` -> `{ column: 'amount', version: 2 }`; `amount` -> version `null`. */
export function parseColumnName(name: string): { column: string; version: number | null } {
  const m = VERSIONED.exec(name);
  if (m === null) return { column: name, version: null };
  return { column: m[1] as string, version: Number(m[2]) };
}

/** `column` or `column@version`. */
export function columnKey(column: string, version: number | null): string {
  return version === null ? column : `${column}@${version}`;
}

/**
 * The written column that makes a row relevant to `series`: the aggregated column at
 * its version, or the time column for `count()` of rows.
 */
export function seriesTrigger(series: SeriesPlan): string {
  return series.column === null
    ? series.timeColumn
    : columnKey(series.column.name, series.column.version);
}

/** How `series` is named in problem texts. */
export function seriesLabel(series: SeriesPlan): string {
  const column =
    series.column === null ? '*' : columnKey(series.column.name, series.column.version);
  return `series ${series.id} (${series.namespace}.${column} by ${series.groupKey.join('+')})`;
}

/** The problem of rows without a column that a series reads, after "<class> rows". */
export function missingColumnProblem(column: string, label: string, role: string): string {
  return `have no column '${column}', which ${label} ${role}`;
}

/**
 * The written columns (`column` / `column@version`) that `names` stand for: a versioned
 * column without `@version` means its default version. With `explicit` (the caller
 * listed them), a name that is not a column, or not at a version the column has, is a
 * problem (thrown through `fail`); otherwise it is ignored.
 */
export function writtenColumns(
  cls: ClassPlan,
  names: Iterable<unknown>,
  explicit: boolean,
  fail: (problem: string) => never,
): Set<string> {
  const columns = new Map<string, ColumnPlan>(cls.columns.map((c) => [c.name, c]));
  const ns = cls.namespace;
  const out = new Set<string>();
  for (const entry of names) {
    if (typeof entry !== 'string') fail(`writes lists ${describeValue(entry)}, not a column name`);
    const name = entry as string;
    const { column: columnName, version } = parseColumnName(name);
    const column = columns.get(columnName);
    if (column === undefined) {
      if (explicit) {
        fail(
          `writes names '${name}', which is not a column of ${ns} (columns: ${[...columns.keys()].join(', ')})`,
        );
      }
      continue;
    }
    if (column.versions === null) {
      if (version !== null) {
        if (explicit) fail(`writes names '${name}', but ${ns}.${columnName} is not versioned`);
        continue;
      }
      out.add(columnName);
      continue;
    }
    const v = version ?? column.versions.defaultVersion;
    if (!column.versions.types.some((t) => t.version === v)) {
      if (explicit) {
        fail(
          `writes names '${name}', but ${ns}.${columnName} has versions ${column.versions.types.map((t) => t.version).join(', ')}`,
        );
      }
      continue;
    }
    out.add(columnKey(columnName, v));
  }
  return out;
}
