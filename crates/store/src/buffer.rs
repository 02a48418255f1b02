//! Continuous buffers (docs/semantics.md section 9.6): the most recent part of a window
//! computed at query time from raw rows instead of from buckets.
//!
//! Each layout keeps a "filled until" record: the end of the latest range a backfill
//! replaced (the largest end when several did). A buffered window at `now` then reads:
//! - when `now - buffer` is at or before that point (the buffer reaches the filled
//!   buckets): the buckets before the most recently filled one, and raw rows from that
//!   bucket's start to `now`, so that bucket comes whole from raw rows and nothing is
//!   counted twice;
//! - otherwise: every bucket before that point, the raw rows of `(now - buffer, now]`,
//!   and nothing between the two (the gap, named in the explanation).
//!
//! Buckets at or after the filled point are never read by a buffered window: the buffer
//! serves that part. A layout no backfill has filled has no such point: its buffered
//! windows read no bucket at all.
//!
//! Kept in the meta column family under `filled/<series id>\0<bucket size u64 BE>` as the
//! end of the filled range (i64 LE).

use tessera_core::BucketSpan;

use crate::error::StoreResult;
use crate::store::BucketStore;

const FILLED_PREFIX: &[u8] = b"filled/";

fn filled_key(series_id: &str, bucket_size_ms: i64) -> Vec<u8> {
    let mut key = FILLED_PREFIX.to_vec();
    key.extend_from_slice(series_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&(bucket_size_ms as u64).to_be_bytes());
    key
}

/// Where the parts of one buffered window come from, at one `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferPlan {
    /// Stored buckets are read when they start before this (and are in the window).
    pub buckets_before_ms: i64,
    /// Raw rows with a time in `[raw_from_ms, raw_to_ms]` are folded into the value; none
    /// when `raw_from_ms > raw_to_ms`.
    pub raw_from_ms: i64,
    pub raw_to_ms: i64,
    /// The part of the window `[from, to)` that neither buckets nor raw rows serve.
    pub gap: Option<(i64, i64)>,
    /// The end of the filled buckets of the layout, if a backfill filled any.
    pub filled_until_ms: Option<i64>,
}

/// The plan of a window of `span` whose first bucket starts at `first_start`, served at
/// `now_ms` with a buffer of `buffer_ms` (> 0), given the layout's filled point.
pub fn buffer_plan(
    span: BucketSpan,
    first_start: i64,
    now_ms: i64,
    buffer_ms: i64,
    filled_until_ms: Option<i64>,
) -> BufferPlan {
    let size = span.size_ms();
    // Buckets after the one holding `now` hold nothing a window at `now` may read.
    let filled = filled_until_ms.map(|end| end.min(span.start_of(now_ms).saturating_add(size)));
    let buffer_start = now_ms.saturating_sub(buffer_ms);
    match filled {
        Some(filled) if buffer_start <= filled => {
            let last_filled = filled.saturating_sub(size);
            BufferPlan {
                buckets_before_ms: last_filled,
                raw_from_ms: last_filled.max(first_start),
                raw_to_ms: now_ms,
                gap: None,
                filled_until_ms,
            }
        }
        _ => {
            let raw_from = buffer_start.saturating_add(1).max(first_start);
            let gap_from = filled.unwrap_or(first_start).max(first_start);
            BufferPlan {
                buckets_before_ms: filled.unwrap_or(i64::MIN),
                raw_from_ms: raw_from,
                raw_to_ms: now_ms,
                gap: (gap_from < raw_from).then_some((gap_from, raw_from)),
                filled_until_ms,
            }
        }
    }
}

impl BucketStore {
    /// The end of the range backfills filled in one layout, if any did.
    pub fn filled_until(&self, series_id: &str, bucket_size_ms: i64) -> StoreResult<Option<i64>> {
        Ok(self
            .db
            .get_cf(self.meta(), filled_key(series_id, bucket_size_ms))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(i64::from_le_bytes))
    }

    /// Records that a backfill filled a layout up to `end_ms` (kept when a later point is
    /// already recorded).
    pub(crate) fn extend_filled(
        &self,
        series_id: &str,
        bucket_size_ms: i64,
        end_ms: i64,
    ) -> StoreResult<()> {
        if self
            .filled_until(series_id, bucket_size_ms)?
            .is_none_or(|until| until < end_ms)
        {
            self.db.put_cf(
                self.meta(),
                filled_key(series_id, bucket_size_ms),
                end_ms.to_le_bytes(),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn hourly() -> BucketSpan {
        BucketSpan::new(H, 0).unwrap()
    }

    #[test]
    fn a_buffer_reaching_the_filled_buckets_reads_the_last_filled_bucket_raw() {
        // Filled to 10:00, now 12:30, buffer 3h: the buffer starts at 09:30, before 10:00.
        let plan = buffer_plan(hourly(), 0, 12 * H + H / 2, 3 * H, Some(10 * H));
        assert_eq!(plan.buckets_before_ms, 9 * H);
        assert_eq!((plan.raw_from_ms, plan.raw_to_ms), (9 * H, 12 * H + H / 2));
        assert_eq!(plan.gap, None);
    }

    #[test]
    fn a_short_buffer_leaves_a_gap_after_the_filled_buckets() {
        // Filled to 10:00, now 12:30, buffer 1h: raw rows of (11:30, 12:30], no data in
        // [10:00, 11:30].
        let plan = buffer_plan(hourly(), 0, 12 * H + H / 2, H, Some(10 * H));
        assert_eq!(plan.buckets_before_ms, 10 * H);
        assert_eq!(
            (plan.raw_from_ms, plan.raw_to_ms),
            (11 * H + H / 2 + 1, 12 * H + H / 2)
        );
        assert_eq!(plan.gap, Some((10 * H, 11 * H + H / 2 + 1)));
    }

    #[test]
    fn without_filled_buckets_only_the_buffer_serves() {
        let plan = buffer_plan(hourly(), 2 * H, 12 * H, H, None);
        assert_eq!(plan.buckets_before_ms, i64::MIN);
        assert_eq!(plan.raw_from_ms, 11 * H + 1);
        assert_eq!(plan.gap, Some((2 * H, 11 * H + 1)));
    }

    #[test]
    fn a_filled_point_after_now_counts_up_to_the_bucket_holding_now() {
        let plan = buffer_plan(hourly(), 0, 5 * H + 10, H, Some(100 * H));
        assert_eq!(plan.buckets_before_ms, 5 * H);
        assert_eq!(plan.raw_from_ms, 5 * H);
        assert_eq!(plan.gap, None);
    }

    #[test]
    fn raw_rows_never_start_before_the_window() {
        let plan = buffer_plan(hourly(), 8 * H, 9 * H, 48 * H, Some(9 * H));
        assert_eq!(plan.raw_from_ms, 8 * H);
        assert_eq!(plan.buckets_before_ms, 8 * H);
    }
}
