/**
 * Series identity and ids. A series is one stored time series per (namespace of the
 * aggregated class, group key columns, aggregated column and version, `by` column,
 * ingest filters, time column, value kind, bucket origin). Its id hashes that identity
 * together with the series' rules (aggregation, bucket size, retention), so unchanged
 * definitions keep their series across runs.
 *
 * The rules are part of the id because the store lays a series' buckets out by its
 * rules (one record per bucket size holds every rule's state) and refuses to reopen an
 * id whose rules changed. A definition change that adds, removes or widens a rule of a
 * series therefore makes a new series (it starts empty) and orphans the old one; the
 * open report says so.
 *
 * The bucket origin is always part of the identity: features that share everything
 * else but disagree on `bucketStart` get separate series, so every rule of a series has
 * the same origin.
 */
import { createHash } from 'node:crypto';
import type { AggregationDescription, ColumnAtVersion, SeriesDescription } from './types.js';

/** What makes a series itself. Changing any field gives a new series id. */
export interface SeriesIdentity {
  readonly namespace: string;
  /** Key columns in the source class's declaration order (the order keys are encoded in). */
  readonly groupKey: readonly string[];
  readonly column: ColumnAtVersion | null;
  readonly by: ColumnAtVersion | null;
  /** Canonical filter texts, sorted. */
  readonly filters: readonly string[];
  readonly timeColumn: string;
  readonly valueKind: SeriesDescription['valueKind'];
  readonly vectorDim: number | null;
  readonly bucketOriginMs: number;
}

/** One rule as it enters the identity. */
export interface RuleIdentity {
  readonly aggregation: AggregationDescription;
  readonly bucketSizeMs: number;
  readonly retentionMs: number;
}

/** Version of the identity format; bumping it changes every id. */
const IDENTITY_FORMAT = 2;

/** JSON with object keys sorted at every level (arrays keep their order). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** The canonical text of an identity and its rules, in rule order (what the id hashes). */
export function identityText(identity: SeriesIdentity, rules: readonly RuleIdentity[]): string {
  const ruleList = rules.map((r) => ({
    aggregation: r.aggregation,
    bucketSizeMs: r.bucketSizeMs,
    retentionMs: r.retentionMs,
  }));
  return canonicalJson({ format: IDENTITY_FORMAT, ...identity, rules: ruleList });
}

/**
 * The stable id of a series: `s_` + the first 12 hex digits of the sha256 of its
 * canonical identity and rules.
 */
export function seriesId(identity: SeriesIdentity, rules: readonly RuleIdentity[]): string {
  return `s_${createHash('sha256').update(identityText(identity, rules)).digest('hex').slice(0, 12)}`;
}
