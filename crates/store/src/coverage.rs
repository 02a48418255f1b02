//! Where each layout's buckets are complete (docs/semantics.md section 9.4). A series the
//! store registers for the first time holds nothing from before that moment, and the
//! bucket holding it only what came after: its coverage record says its buckets are
//! complete from the next bucket edge on. A backfill whose range reaches that point moves
//! it back to the range's start. Series registered before coverage was recorded have no
//! record and count as complete.
//!
//! Kept in the meta column family under `coverage/<series id>\0<bucket size u64 BE>` as
//! the first complete bucket start (i64 LE).

use rocksdb::WriteBatch;
use tessera_core::BucketSpan;

use crate::error::StoreResult;
use crate::layout::SeriesLayout;
use crate::store::BucketStore;

const COVERAGE_PREFIX: &[u8] = b"coverage/";

fn coverage_key(series_id: &str, bucket_size_ms: i64) -> Vec<u8> {
    let mut key = COVERAGE_PREFIX.to_vec();
    key.extend_from_slice(series_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&(bucket_size_ms as u64).to_be_bytes());
    key
}

/// A window's first bucket and where its layout is complete from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCoverage {
    /// The start of the first bucket the window reads at the time asked.
    pub first_bucket_start_ms: i64,
    /// The first complete bucket start of the layout; `None` when every bucket counts as
    /// complete (no record).
    pub complete_from_ms: Option<i64>,
}

impl WindowCoverage {
    /// Whether the window reads a bucket before the layout is complete.
    pub fn is_incomplete(&self) -> bool {
        self.complete_from_ms
            .is_some_and(|from| self.first_bucket_start_ms < from)
    }
}

impl BucketStore {
    /// Adds the coverage records of a series registered now to `batch`: complete from the
    /// bucket edge after `now_ms`, per layout.
    pub(crate) fn record_new_coverage(
        &self,
        batch: &mut WriteBatch,
        series: &SeriesLayout,
        now_ms: i64,
    ) {
        for layout in &series.layouts {
            let span = layout.span;
            let from = span.start_of(now_ms) + span.size_ms();
            batch.put_cf(
                self.meta(),
                coverage_key(&series.spec.id, span.size_ms()),
                from.to_le_bytes(),
            );
        }
    }

    /// The first complete bucket start of one layout, if it has a record.
    pub fn complete_from(&self, series_id: &str, bucket_size_ms: i64) -> StoreResult<Option<i64>> {
        Ok(self
            .db
            .get_cf(self.meta(), coverage_key(series_id, bucket_size_ms))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(i64::from_le_bytes))
    }

    /// Moves a layout's complete-from point back to `start_ms` when a backfill of
    /// `[start_ms, end_ms)` reached it.
    pub(crate) fn extend_coverage(
        &self,
        series_id: &str,
        bucket_size_ms: i64,
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<()> {
        if let Some(from) = self.complete_from(series_id, bucket_size_ms)? {
            if end_ms >= from && start_ms < from {
                self.db.put_cf(
                    self.meta(),
                    coverage_key(series_id, bucket_size_ms),
                    start_ms.to_le_bytes(),
                )?;
            }
        }
        Ok(())
    }

    /// For each (series, rule, window) read, at `now_ms`: the window's first bucket and
    /// where its layout is complete from.
    pub fn window_coverage(
        &self,
        reads: &[crate::WindowRead],
        now_ms: i64,
    ) -> StoreResult<Vec<WindowCoverage>> {
        reads
            .iter()
            .map(|read| {
                let series = &self.series[self.series_index(&read.series_id)?];
                let (layout, _) = series.rule_slots.get(read.rule).copied().ok_or_else(|| {
                    crate::error::invalid_batch(format!(
                        "series '{}' has no rule {}",
                        read.series_id, read.rule
                    ))
                })?;
                let span: BucketSpan = series.layouts[layout].span;
                Ok(WindowCoverage {
                    first_bucket_start_ms: span.window(now_ms, read.window_ms).first_start,
                    complete_from_ms: self.complete_from(&read.series_id, span.size_ms())?,
                })
            })
            .collect()
    }
}
