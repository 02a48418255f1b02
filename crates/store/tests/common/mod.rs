//! What the store's recompute tests share: a seeded generator, and which raw rows a
//! window must read. (Each test crate uses a part of it.)
#![allow(dead_code)]

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

/// SplitMix64: a seeded generator, so a failure replays exactly.
pub struct TestRng(pub u64);

impl TestRng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A uniform number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() <= p
    }

    /// A standard normal number (Box-Muller).
    pub fn gaussian(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}
