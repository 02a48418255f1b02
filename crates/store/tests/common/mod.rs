//! What the store's recompute tests share: which raw rows a window must read.

use tessera_core::{BucketSpan, WindowBuckets};
use tessera_store::RuleSpec;

/// The buckets a window of `window_ms` at `now` reads under `rule`, and whether a row at
/// time `t` belongs to it: every bucket overlapping (now - W, now], less what retention
/// (the largest window plus one bucket, judged by the engine clock `clock`) has dropped,
/// even for a query at an earlier `now`.
pub fn window_rows(
    rule: &RuleSpec,
    now: i64,
    window_ms: i64,
    clock: i64,
) -> (WindowBuckets, impl Fn(i64) -> bool) {
    let span = BucketSpan::new(rule.bucket_size_ms, rule.bucket_origin_ms).unwrap();
    let window = span.window(now, window_ms);
    let size = rule.bucket_size_ms;
    let end = window.last_start + size;
    let oldest_kept = clock - rule.retention_ms - size;
    let first = window.first_start;
    let reads = move |t: i64| t >= first && t < end && span.start_of(t) + size > oldest_kept;
    (window, reads)
}
