/**
 * Bucket rules of docs/semantics.md section 5: which bucket size serves each window, the bucket
 * origin, and the backfill / continuous-buffer options.
 */
import { formatDuration, tryParseDuration } from '../dsl/duration.js';
import type { Materialization } from '../dsl/nodes.js';
import type { DiagnosticList } from './diagnostics.js';
import { cronProblem, scheduleOf } from './schedule.js';
import type { BackfillSchedule, MaterializationPlan } from './types.js';

/** A declared window that parsed. */
export interface PlannedWindow {
  readonly declared: string;
  readonly ms: number;
}

/** Bucket size per window (by window ms) plus the feature's materialization settings. */
export interface BucketAssignment {
  readonly bucketSizes: ReadonlyMap<number, number>;
  readonly plan: MaterializationPlan;
}

const KNOWN_KEYS = new Set([
  'bucketDuration',
  'bucketDurations',
  'bucketStart',
  'backfillSchedule',
  'continuousBufferDuration',
  'backfillTags',
]);

/**
 * Assigns a bucket size to every window: `true` gives each window buckets as long as
 * itself; `bucketDurations` maps sizes to windows; the rest fall back to
 * `bucketDuration`. A window claimed by two sizes or by none is an error naming it.
 * Returns `null` when an error was reported.
 */
export function assignBuckets(
  feature: string,
  windows: readonly PlannedWindow[],
  materialization: Materialization,
  diags: DiagnosticList,
): BucketAssignment | null {
  const before = diags.errorCount();
  const bucketSizes = new Map<number, number>();
  if (materialization === true) {
    for (const w of windows) bucketSizes.set(w.ms, w.ms);
    return {
      bucketSizes,
      plan: {
        bucketOriginMs: 0,
        backfillSchedule: null,
        backfillTags: [],
        continuousBufferMs: null,
      },
    };
  }
  if (typeof materialization !== 'object' || materialization === null) {
    diags.error(
      feature,
      'invalid_definition',
      `${feature}: materialization must be true or an object such as { bucketDuration: '1d' }`,
    );
    return null;
  }
  for (const key of Object.keys(materialization)) {
    if (!KNOWN_KEYS.has(key)) {
      diags.error(
        feature,
        'invalid_definition',
        `${feature}: unknown materialization option '${key}' (known: ${[...KNOWN_KEYS].join(', ')})`,
      );
    }
  }

  const fallback =
    materialization.bucketDuration === undefined
      ? null
      : bucketSize(
          feature,
          'materialization.bucketDuration',
          materialization.bucketDuration,
          diags,
        );

  // window ms -> the sizes that claim it, with the spelling used
  const claims = new Map<number, { size: number; sizeText: string; windowText: string }[]>();
  for (const [sizeText, listed] of Object.entries(materialization.bucketDurations ?? {})) {
    const size = bucketSize(feature, `materialization.bucketDurations key`, sizeText, diags);
    const list: readonly unknown[] = Array.isArray(listed) ? listed : [listed];
    for (const entry of list) {
      const text = String(entry);
      const parsed = typeof entry === 'string' ? tryParseDuration(entry) : null;
      if (parsed === null || !parsed.ok) {
        diags.error(
          feature,
          'invalid_duration',
          `${feature}: materialization.bucketDurations['${sizeText}'] lists '${text}', which is not a duration${parsed && !parsed.ok ? `: ${parsed.error.message}` : ''}`,
          text,
        );
        continue;
      }
      const window = windows.find((w) => w.ms === parsed.ms);
      if (window === undefined) {
        diags.error(
          feature,
          'unknown_window',
          `${feature}: materialization.bucketDurations['${sizeText}'] lists window '${text}', which ${feature} does not declare (declared: ${windows.map((w) => w.declared).join(', ')})`,
          text,
        );
        continue;
      }
      if (size === null) continue;
      claims.set(window.ms, [
        ...(claims.get(window.ms) ?? []),
        { size, sizeText, windowText: text },
      ]);
    }
  }

  for (const w of windows) {
    const claimed = claims.get(w.ms) ?? [];
    const distinct = [...new Set(claimed.map((c) => c.size))];
    if (distinct.length > 1) {
      diags.error(
        feature,
        'window_claimed_twice',
        `${feature}: window '${w.declared}' is claimed by several bucket sizes in materialization.bucketDurations (${claimed.map((c) => `'${c.sizeText}'`).join(', ')}); list it under one size only`,
        w.declared,
      );
      continue;
    }
    const size = distinct[0] ?? fallback;
    if (size === undefined || size === null) {
      if (materialization.bucketDuration === undefined) {
        diags.error(
          feature,
          'missing_bucket_size',
          `${feature}: window '${w.declared}' has no bucket size; list it in materialization.bucketDurations or set materialization.bucketDuration`,
          w.declared,
        );
      }
      continue;
    }
    bucketSizes.set(w.ms, size);
    if (size > w.ms) {
      diags.warning(
        feature,
        'bucket_larger_than_window',
        `${feature}: window '${w.declared}' uses ${formatDuration(size)} buckets, longer than the window itself; it will read whole buckets`,
        w.declared,
      );
    }
  }

  const bucketOriginMs = bucketOrigin(feature, materialization.bucketStart, diags);
  const backfillSchedule = schedule(feature, materialization.backfillSchedule, diags);
  const backfillTags = tags(feature, materialization.backfillTags, diags);
  let continuousBufferMs: number | null = null;
  if (materialization.continuousBufferDuration !== undefined) {
    const text = String(materialization.continuousBufferDuration);
    const parsed = tryParseDuration(text);
    if (!parsed.ok || parsed.ms < 0) {
      diags.error(
        feature,
        'invalid_duration',
        `${feature}: materialization.continuousBufferDuration '${text}' is not a duration >= 0${!parsed.ok ? `: ${parsed.error.message}` : ''}`,
      );
    } else continuousBufferMs = parsed.ms;
  }
  if (diags.errorCount() > before) return null;
  return {
    bucketSizes,
    plan: {
      bucketOriginMs: bucketOriginMs ?? 0,
      backfillSchedule,
      backfillTags,
      continuousBufferMs,
    },
  };
}

function bucketSize(
  feature: string,
  what: string,
  text: unknown,
  diags: DiagnosticList,
): number | null {
  const parsed = typeof text === 'string' ? tryParseDuration(text) : null;
  if (parsed === null || !parsed.ok) {
    diags.error(
      feature,
      'invalid_duration',
      `${feature}: ${what} '${String(text)}' is not a duration${parsed && !parsed.ok ? `: ${parsed.error.message}` : ''}`,
    );
    return null;
  }
  if (parsed.ms <= 0) {
    diags.error(
      feature,
      'invalid_bucket_duration',
      `${feature}: ${what} '${String(text)}' must be longer than zero`,
    );
    return null;
  }
  return parsed.ms;
}

/** Parses `bucketStart` (Date, ISO-8601 string, epoch ms) to epoch ms. UTC unless zoned. */
export function parseBucketStart(value: unknown): number | null {
  if (value instanceof Date) {
    const ms = value.getTime();
    return Number.isNaN(ms) ? null : ms;
  }
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : null;
  if (typeof value === 'string') {
    const m =
      /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/.exec(
        value.trim(),
      );
    if (m === null) return null;
    // Date-only strings are UTC already; date-times without a zone are read as UTC too.
    const text = value.trim().replace(' ', 'T');
    const zoned = m[1] !== undefined || !text.includes('T') ? text : `${text}Z`;
    const ms = Date.parse(zoned);
    return Number.isNaN(ms) ? null : ms;
  }
  return null;
}

function bucketOrigin(feature: string, value: unknown, diags: DiagnosticList): number | null {
  if (value === undefined) return 0;
  const ms = parseBucketStart(value);
  if (ms === null) {
    diags.error(
      feature,
      'invalid_bucket_start',
      `${feature}: materialization.bucketStart ${JSON.stringify(value) ?? String(value)} is not a Date, an ISO-8601 string or epoch milliseconds`,
    );
  }
  return ms;
}

/** True for cron expressions cron-parser reads (5 or 6 fields, or an `@daily`-style macro). */
export function isCronExpression(text: string): boolean {
  return cronProblem(text) === null;
}

function schedule(feature: string, value: unknown, diags: DiagnosticList): BackfillSchedule | null {
  if (value === undefined || value === null) return null;
  const parsed = scheduleOf(value);
  if (!('problem' in parsed)) return parsed;
  diags.error(
    feature,
    'invalid_backfill_schedule',
    `${feature}: materialization.backfillSchedule ${typeof value === 'string' ? parsed.problem : `${JSON.stringify(value) ?? String(value)} is neither a cron expression ('0 0 * * *') nor a duration ('1h')`}`,
  );
  return null;
}

function tags(feature: string, value: unknown, diags: DiagnosticList): string[][] {
  if (value === undefined) return [];
  if (
    Array.isArray(value) &&
    value.every((set) => Array.isArray(set) && set.every((t) => typeof t === 'string'))
  ) {
    return value.map((set: string[]) => [...set]);
  }
  diags.error(
    feature,
    'invalid_backfill_tags',
    `${feature}: materialization.backfillTags must be a list of tag lists, e.g. [[], ['source:a']]`,
  );
  return [];
}
