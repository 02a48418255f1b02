//! Bucket arithmetic: which bucket a timestamp falls in, which buckets a window reads,
//! and when a bucket is old enough to delete.
//!
//! All times are UTC milliseconds since the Unix epoch. Buckets of one size are aligned
//! on the epoch, or on `bucket_start` when a definition moves the origin:
//! bucket index = floor((t - origin) / size).

use crate::duration::{format_duration, MAX_DURATION_MS};
use crate::error::{CoreError, CoreErrorKind, CoreResult};

/// Clamps an i128 intermediate back into the i64 range. Only times within a bucket of
/// the i64 limits (hundreds of millions of years away) are ever clamped.
fn saturate(value: i128) -> i64 {
    value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// One configured bucket size with its origin: the set of equal, adjacent buckets that
/// every window using this size shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BucketSpan {
    size_ms: i64,
    /// Always in `0..size_ms`: origins a whole number of buckets apart describe the same
    /// buckets, so they are stored (and compare) as one.
    origin_ms: i64,
}

impl BucketSpan {
    /// Buckets of `size_ms` milliseconds whose edges fall on `origin_ms` (0 for epoch
    /// alignment). The size must be between 1 ms and [`MAX_DURATION_MS`].
    pub fn new(size_ms: i64, origin_ms: i64) -> CoreResult<Self> {
        if size_ms <= 0 || size_ms > MAX_DURATION_MS {
            return Err(CoreError::new(
                CoreErrorKind::InvalidBucket,
                format!(
                    "invalid bucket size {size_ms}ms ({}): it must be between 1ms and 36500d",
                    format_duration(size_ms)
                ),
            ));
        }
        Ok(Self {
            size_ms,
            origin_ms: origin_ms.rem_euclid(size_ms),
        })
    }

    /// The length of each bucket in milliseconds.
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// The origin, normalised into `0..size_ms`.
    pub fn origin_ms(&self) -> i64 {
        self.origin_ms
    }

    /// The index of the bucket holding `t_ms`: floor((t - origin) / size), so times before
    /// the origin or the epoch land in negative indices.
    #[inline]
    pub fn index_of(&self, t_ms: i64) -> i64 {
        match t_ms.checked_sub(self.origin_ms) {
            Some(offset) => offset.div_euclid(self.size_ms),
            None => saturate(
                (i128::from(t_ms) - i128::from(self.origin_ms))
                    .div_euclid(i128::from(self.size_ms)),
            ),
        }
    }

    /// The start of the bucket holding `t_ms` (saturating at `i64::MIN`).
    #[inline]
    pub fn start_of(&self, t_ms: i64) -> i64 {
        // The offset into the bucket is computed without the index so that no
        // multiplication can overflow on the ingest path.
        let into_bucket = match t_ms.checked_sub(self.origin_ms) {
            Some(offset) => offset.rem_euclid(self.size_ms),
            None => (i128::from(t_ms) - i128::from(self.origin_ms))
                .rem_euclid(i128::from(self.size_ms)) as i64,
        };
        t_ms.saturating_sub(into_bucket)
    }

    /// The start of the bucket with index `idx` (saturating at the i64 limits).
    #[inline]
    pub fn start_of_index(&self, idx: i64) -> i64 {
        saturate(i128::from(idx) * i128::from(self.size_ms) + i128::from(self.origin_ms))
    }

    /// The buckets to merge when serving a window of `window_ms` at `now_ms`: every
    /// bucket that overlaps (now - W, now], i.e. holds some t with now - W < t <= now.
    /// The first is the bucket holding now - W + 1, the last the one holding now, so a
    /// window reads up to one bucket more than W and never a bucket that starts after
    /// now. A window of zero or negative length reads nothing (`count` is 0).
    pub fn window(&self, now_ms: i64, window_ms: i64) -> WindowBuckets {
        let last_start = self.start_of(now_ms);
        if window_ms <= 0 {
            return WindowBuckets {
                first_start: last_start.saturating_add(self.size_ms),
                last_start,
            };
        }
        let earliest = saturate(i128::from(now_ms) - i128::from(window_ms) + 1);
        WindowBuckets {
            first_start: self.start_of(earliest),
            last_start,
        }
    }

    /// Whether the bucket starting at `bucket_start` is stale at `now_ms`: removable, and
    /// never served again.
    ///
    /// `retention_ms` is the largest window that reads this bucket size. The rule keeps
    /// that window plus one bucket: a bucket is stale once its end (start + size) is at
    /// or before now - retention - size. The largest window reads back to the bucket
    /// holding now - retention + 1, whose end is after now - retention, so nothing it
    /// can read is ever stale; the extra bucket is slack for clocks and late readers.
    pub fn is_stale(&self, bucket_start: i64, retention_ms: i64, now_ms: i64) -> bool {
        let size = i128::from(self.size_ms);
        i128::from(bucket_start) + size <= i128::from(now_ms) - i128::from(retention_ms) - size
    }

    /// The start of the earliest bucket that is not stale at `now_ms` under
    /// `retention_ms` ([`BucketSpan::is_stale`], docs/semantics.md section 5.4): every
    /// bucket before it may already have been removed by retention.
    pub fn first_fresh_start(&self, retention_ms: i64, now_ms: i64) -> i64 {
        // A guess near the edge, then stepped by whole buckets until `is_stale` itself
        // says it is the first fresh one: the staleness rule stays written once.
        let guess = now_ms
            .saturating_sub(retention_ms)
            .saturating_sub(self.size_ms.saturating_mul(2));
        let mut start = self.start_of(guess);
        while self.is_stale(start, retention_ms, now_ms) {
            start = start.saturating_add(self.size_ms);
        }
        while start > i64::MIN + self.size_ms
            && !self.is_stale(start - self.size_ms, retention_ms, now_ms)
        {
            start -= self.size_ms;
        }
        start
    }
}

/// [`BucketSpan::start_of`] for times that mostly come in order, as a batch of a stream
/// does: the last bucket found is remembered, so a time inside it costs two comparisons
/// instead of a division.
#[derive(Debug, Clone, Copy)]
pub struct StartCache {
    span: BucketSpan,
    /// The remembered bucket is `start..end`; empty until the first lookup.
    start: i64,
    end: i64,
}

impl StartCache {
    pub fn new(span: BucketSpan) -> Self {
        Self {
            span,
            start: i64::MAX,
            end: i64::MIN,
        }
    }

    #[inline]
    pub fn start_of(&mut self, t_ms: i64) -> i64 {
        if self.start <= t_ms && t_ms < self.end {
            return self.start;
        }
        let start = self.span.start_of(t_ms);
        // A bucket clamped at the i64 limits is not remembered: its true edges are
        // outside the range.
        if let (true, Some(end)) = (start != i64::MIN, start.checked_add(self.span.size_ms)) {
            self.start = start;
            self.end = end;
        }
        start
    }
}

/// The range of buckets (by start time, inclusive) that a window reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowBuckets {
    /// Start of the earliest bucket read.
    pub first_start: i64,
    /// Start of the latest bucket read: the one holding `now`.
    pub last_start: i64,
}

impl WindowBuckets {
    /// How many buckets of `span` the window reads (0 for an empty window).
    pub fn count(&self, span: &BucketSpan) -> i64 {
        let between = i128::from(self.last_start) - i128::from(self.first_start);
        if between < 0 {
            return 0;
        }
        saturate(between / i128::from(span.size_ms) + 1)
    }

    /// Whether the bucket starting at `bucket_start` is one of the buckets read.
    pub fn contains(&self, bucket_start: i64) -> bool {
        self.first_start <= bucket_start && bucket_start <= self.last_start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MINUTE: i64 = 60_000;
    const DAY: i64 = 86_400_000;

    proptest! {
        #[test]
        fn the_first_fresh_start_is_the_first_bucket_not_stale(
            size in 1i64..10 * DAY,
            origin in -DAY..DAY,
            retention in 1i64..400 * DAY,
            now in -1_000 * DAY..1_000 * DAY,
        ) {
            let span = BucketSpan::new(size, origin).unwrap();
            let first = span.first_fresh_start(retention, now);
            prop_assert_eq!(span.start_of(first), first);
            prop_assert!(!span.is_stale(first, retention, now));
            prop_assert!(span.is_stale(first - size, retention, now));
        }
    }

    #[test]
    fn rejects_sizes_out_of_range_naming_them() {
        for size in [0, -5, MAX_DURATION_MS + 1] {
            let e = BucketSpan::new(size, 0).unwrap_err();
            assert_eq!(e.kind, CoreErrorKind::InvalidBucket);
            assert!(e.message.contains(&format!("{size}ms")), "{}", e.message);
        }
        assert!(BucketSpan::new(MAX_DURATION_MS, 0).is_ok());
        assert!(BucketSpan::new(1, 0).is_ok());
    }

    #[test]
    fn origin_is_normalised() {
        let a = BucketSpan::new(10, 25).unwrap();
        let b = BucketSpan::new(10, 5).unwrap();
        let c = BucketSpan::new(10, -5).unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.origin_ms(), 5);
        assert_eq!(a.size_ms(), 10);
    }

    #[test]
    fn floors_before_the_origin_and_the_epoch() {
        let span = BucketSpan::new(10, 5).unwrap();
        assert_eq!(span.index_of(5), 0);
        assert_eq!(span.index_of(14), 0);
        assert_eq!(span.index_of(15), 1);
        assert_eq!(span.index_of(4), -1);
        assert_eq!(span.start_of(4), -5);
        assert_eq!(span.index_of(-5), -1);
        assert_eq!(span.index_of(-6), -2);
        assert_eq!(span.start_of(-6), -15);
        assert_eq!(span.start_of_index(-2), -15);
        assert_eq!(span.start_of_index(3), 35);

        let epoch = BucketSpan::new(DAY, 0).unwrap();
        assert_eq!(epoch.index_of(-1), -1);
        assert_eq!(epoch.start_of(-1), -DAY);
        assert_eq!(epoch.start_of(DAY + 3), DAY);
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let span = BucketSpan::new(7, 3).unwrap();
        assert_eq!(span.start_of(i64::MIN), i64::MIN);
        let top = span.start_of(i64::MAX);
        assert!(i64::MAX - top < 7 && (top - 3) % 7 == 0);
        assert!(span.index_of(i64::MIN) < 0);
        let w = span.window(i64::MIN, MAX_DURATION_MS);
        assert_eq!(w.first_start, i64::MIN);
        let _ = w.count(&span);
        let w = span.window(i64::MAX, MAX_DURATION_MS);
        assert!(w.count(&span) > 0);
        assert_eq!(span.start_of_index(i64::MAX), i64::MAX);
        assert_eq!(span.start_of_index(i64::MIN), i64::MIN);
    }

    #[test]
    fn window_reads_from_the_bucket_holding_its_start() {
        let span = BucketSpan::new(10 * MINUTE, 0).unwrap();
        // now = 12:34 on day 0, window 30m: (12:04, 12:34] -> buckets 12:00 .. 12:30.
        let now = 12 * 60 * MINUTE + 34 * MINUTE;
        let w = span.window(now, 30 * MINUTE);
        assert_eq!(w.first_start, 12 * 60 * MINUTE);
        assert_eq!(w.last_start, 12 * 60 * MINUTE + 30 * MINUTE);
        assert_eq!(w.count(&span), 4);
        // now on an edge: (12:00, 12:30] reads 12:00 .. 12:30, never the bucket ending
        // at 12:00.
        let now = 12 * 60 * MINUTE + 30 * MINUTE;
        let w = span.window(now, 30 * MINUTE);
        assert_eq!(w.first_start, 12 * 60 * MINUTE);
        assert_eq!(w.count(&span), 4);
        // One millisecond earlier the window starts exactly on the 12:00 edge and the
        // bucket holding now is 12:20.
        let w = span.window(now - 1, 30 * MINUTE);
        assert_eq!(w.first_start, 12 * 60 * MINUTE);
        assert_eq!(w.last_start, 12 * 60 * MINUTE + 20 * MINUTE);
        assert_eq!(w.count(&span), 3);
        assert!(w.contains(12 * 60 * MINUTE));
        assert!(!w.contains(12 * 60 * MINUTE + 30 * MINUTE));
    }

    #[test]
    fn empty_window_reads_nothing() {
        let span = BucketSpan::new(10, 0).unwrap();
        assert_eq!(span.window(55, 0).count(&span), 0);
        assert_eq!(span.window(55, -10).count(&span), 0);
        assert_eq!(span.window(55, 1).count(&span), 1);
    }

    #[test]
    fn hundred_year_window_at_a_realistic_now() {
        let span = BucketSpan::new(DAY, 0).unwrap();
        let now = 1_750_000_000_000;
        let w = span.window(now, MAX_DURATION_MS);
        assert_eq!(w.count(&span), 36_500 + 1);
    }

    #[test]
    fn retention_keeps_the_largest_window_plus_one_bucket() {
        let span = BucketSpan::new(10, 0).unwrap();
        let (retention, now) = (30, 100);
        // The 30ms window at 100 reads buckets 70..=100. 60 is the extra bucket.
        assert!(!span.is_stale(70, retention, now));
        assert!(!span.is_stale(60, retention, now));
        assert!(span.is_stale(50, retention, now));
        assert!(span.is_stale(-1000, retention, now));
        assert!(!span.is_stale(-1000, MAX_DURATION_MS, now));
    }

    fn span_strategy() -> impl Strategy<Value = BucketSpan> {
        let size = prop_oneof![1i64..100, 1i64..=DAY, 1i64..=MAX_DURATION_MS];
        (size, any::<i64>()).prop_map(|(size, origin)| BucketSpan::new(size, origin).unwrap())
    }

    proptest! {
        #[test]
        fn the_start_cache_answers_as_start_of(
            span in span_strategy(),
            base in prop_oneof![
                -4_000_000_000_000_000i64..4_000_000_000_000_000,
                Just(i64::MIN),
                Just(i64::MAX - 1_000_000),
            ],
            steps in proptest::collection::vec(-50_000i64..1_000_000, 1..60),
        ) {
            // Mostly increasing times with some going back, as in a stream, and the
            // edges of each one's bucket.
            let mut cache = StartCache::new(span);
            let mut t = base;
            for step in steps {
                t = t.saturating_add(step);
                let start = span.start_of(t);
                let end = start.saturating_add(span.size_ms());
                for u in [t, start.saturating_sub(1), start, end.saturating_sub(1), end, t] {
                    prop_assert_eq!(cache.start_of(u), span.start_of(u), "t={}", u);
                }
            }
        }

        #[test]
        fn window_covers_exactly_the_buckets_overlapping_it(
            span in span_strategy(),
            now in -4_000_000_000_000_000i64..4_000_000_000_000_000,
            window in prop_oneof![1i64..1000, 1i64..=MAX_DURATION_MS],
            pick in any::<proptest::sample::Index>(),
        ) {
            let w = span.window(now, window);
            let size = span.size_ms();
            let earliest = now - window + 1;
            // Every t in (now - W, now] lies in a bucket between first and last.
            let inside = earliest + pick.index((window) as usize) as i64;
            for t in [earliest, now, inside] {
                let start = span.start_of(t);
                prop_assert!(w.contains(start), "t={t} start={start} {w:?}");
                prop_assert!(start <= t && t < start + size);
            }
            // The first and last buckets each hold a time of the window.
            prop_assert!(w.first_start <= earliest && earliest < w.first_start + size);
            prop_assert!(w.last_start <= now && now < w.last_start + size);
            // Both are bucket edges, and count is the number of edges between them.
            prop_assert_eq!(span.start_of(w.first_start), w.first_start);
            prop_assert_eq!(span.start_of(w.last_start), w.last_start);
            let first = span.index_of(w.first_start);
            let last = span.index_of(w.last_start);
            prop_assert_eq!(w.count(&span), last - first + 1);
            prop_assert_eq!(span.start_of_index(first), w.first_start);
            // Nothing the window reads is stale when retention is that window.
            prop_assert!(!span.is_stale(w.first_start, window, now));
        }

        #[test]
        fn index_and_start_agree(span in span_strategy(), t in -4_000_000_000_000_000i64..4_000_000_000_000_000) {
            let idx = span.index_of(t);
            let start = span.start_of(t);
            prop_assert_eq!(span.start_of_index(idx), start);
            prop_assert!(start <= t && t - start < span.size_ms());
            prop_assert_eq!((start - span.origin_ms()).rem_euclid(span.size_ms()), 0);
        }
    }
}
