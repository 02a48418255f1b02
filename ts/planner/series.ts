/**
 * Series identity and ids. A series is one stored time series per (namespace of the
 * aggregated class, group key columns, aggregated column and version, `by` column,
 * ingest filters, time column, value kind, bucket origin). Its id hashes that identity
 * alone, so unchanged definitions keep their series across runs, and so does a series
 * whose rules (aggregation, bucket size, retention) change: the store reconciles its
 * stored rules with the requested ones, keeping every bucket that is still valid, and
 * records which windows became incomplete (docs/semantics.md sections 5.3 and 9.4).
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

/** One rule as it entered the identity of format 2 ({@link formerSeriesId}). */
export interface RuleIdentity {
  readonly aggregation: AggregationDescription;
  readonly bucketSizeMs: number;
  readonly retentionMs: number;
}

/** Version of the identity format; bumping it changes every id. */
const IDENTITY_FORMAT = 3;

/** The previous identity format, which hashed the rules too. */
const FORMER_IDENTITY_FORMAT = 2;

/** JSON with object keys sorted at every level (arrays keep their order). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** The canonical text of an identity (what the id hashes). */
export function identityText(identity: SeriesIdentity): string {
  return canonicalJson({ format: IDENTITY_FORMAT, ...identity });
}

function hashId(text: string): string {
  return `s_${createHash('sha256').update(text).digest('hex').slice(0, 12)}`;
}

/**
 * The stable id of a series: `s_` + the first 12 hex digits of the sha256 of its
 * canonical identity.
 */
export function seriesId(identity: SeriesIdentity): string {
  return hashId(identityText(identity));
}

/**
 * The id the previous identity format (2) gave the same series: the hash of its identity
 * and its rules, in rule order. A store written by that version holds the series under
 * this id; the store adopts it under the new id (docs/semantics.md section 5.3).
 */
export function formerSeriesId(identity: SeriesIdentity, rules: readonly RuleIdentity[]): string {
  const ruleList = rules.map((r) => ({
    aggregation: r.aggregation,
    bucketSizeMs: r.bucketSizeMs,
    retentionMs: r.retentionMs,
  }));
  return hashId(canonicalJson({ format: FORMER_IDENTITY_FORMAT, ...identity, rules: ruleList }));
}
