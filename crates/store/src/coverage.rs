//! Where each rule's buckets are complete (docs/semantics.md section 9.4). A rule the store
//! registers now (a new series, or a rule added to a kept one) holds nothing from before
//! that moment, and the bucket holding it only what came after: its coverage record says
//! its buckets are complete from the next bucket edge on. A layout whose retention grows
//! may already have lost older buckets to retention, so its rules become complete from no
//! earlier than the first bucket that was not stale under the old retention. A backfill
//! whose range reaches a rule's point moves it back to the range's start. Rules with no
//! record count as complete.
//!
//! Kept in the meta column family under
//! `coverage/<series id>\0<bucket size u64 BE><stored rule index u32 BE>` as the first
//! complete bucket start (i64 LE). Stores written before coverage was kept per rule have
//! one record per layout, `coverage/<series id>\0<bucket size u64 BE>`: it is the
//! fallback of every rule of the layout without a record of its own.

use rocksdb::WriteBatch;
use tessera_core::BucketSpan;

use crate::error::StoreResult;
use crate::layout::{Layout, SeriesLayout};
use crate::store::BucketStore;

const COVERAGE_PREFIX: &[u8] = b"coverage/";

fn layout_coverage_key(series_id: &str, bucket_size_ms: i64) -> Vec<u8> {
    let mut key = COVERAGE_PREFIX.to_vec();
    key.extend_from_slice(series_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&(bucket_size_ms as u64).to_be_bytes());
    key
}

fn rule_coverage_key(series_id: &str, bucket_size_ms: i64, stored_rule: usize) -> Vec<u8> {
    let mut key = layout_coverage_key(series_id, bucket_size_ms);
    key.extend_from_slice(&(stored_rule as u32).to_be_bytes());
    key
}

/// A window's first bucket and where its rule is complete from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCoverage {
    /// The start of the first bucket the window reads at the time asked.
    pub first_bucket_start_ms: i64,
    /// The first complete bucket start of the rule; `None` when every bucket counts as
    /// complete (no record).
    pub complete_from_ms: Option<i64>,
}

impl WindowCoverage {
    /// Whether the window reads a bucket before its rule is complete.
    pub fn is_incomplete(&self) -> bool {
        self.complete_from_ms
            .is_some_and(|from| self.first_bucket_start_ms < from)
    }
}

/// The first bucket edge after `now_ms`: where a rule registered at `now_ms` is complete
/// from.
pub(crate) fn next_edge(span: BucketSpan, now_ms: i64) -> i64 {
    span.start_of(now_ms) + span.size_ms()
}

impl BucketStore {
    /// Adds the coverage records of a series registered now to `batch`: every rule
    /// complete from the bucket edge after `now_ms`.
    pub(crate) fn record_new_coverage(
        &self,
        batch: &mut WriteBatch,
        series: &SeriesLayout,
        now_ms: i64,
    ) {
        for layout in &series.layouts {
            for rule in series.active_rules(layout) {
                self.record_rule_coverage(
                    batch,
                    series,
                    layout,
                    rule,
                    next_edge(layout.span, now_ms),
                );
            }
        }
    }

    /// Adds to `batch` the coverage record of one rule: complete from `from_ms`.
    pub(crate) fn record_rule_coverage(
        &self,
        batch: &mut WriteBatch,
        series: &SeriesLayout,
        layout: &Layout,
        stored_rule: usize,
        from_ms: i64,
    ) {
        batch.put_cf(
            self.meta(),
            rule_coverage_key(&series.spec.id, layout.span.size_ms(), stored_rule),
            from_ms.to_le_bytes(),
        );
    }

    /// The first complete bucket start of one stored rule: its own record, else its
    /// layout's (written before coverage was kept per rule), else `None` (complete).
    pub fn complete_from(
        &self,
        series_id: &str,
        bucket_size_ms: i64,
        stored_rule: usize,
    ) -> StoreResult<Option<i64>> {
        let read = |key: Vec<u8>| -> StoreResult<Option<i64>> {
            Ok(self
                .meta_get(&key)?
                .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
                .map(i64::from_le_bytes))
        };
        match read(rule_coverage_key(series_id, bucket_size_ms, stored_rule))? {
            Some(from) => Ok(Some(from)),
            None => read(layout_coverage_key(series_id, bucket_size_ms)),
        }
    }

    /// Moves the complete-from point of every active rule of a layout back to `start_ms`
    /// when a backfill of `[start_ms, end_ms)` reached it.
    pub(crate) fn extend_coverage(
        &self,
        series_id: &str,
        bucket_size_ms: i64,
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<()> {
        let series = &self.series[self.series_index(series_id)?];
        let Some(layout) = series
            .layouts
            .iter()
            .find(|l| l.span.size_ms() == bucket_size_ms)
        else {
            return Ok(());
        };
        let mut batch = WriteBatch::default();
        for rule in series.active_rules(layout) {
            if let Some(from) = self.complete_from(series_id, bucket_size_ms, rule)? {
                if end_ms >= from && start_ms < from {
                    self.record_rule_coverage(&mut batch, series, layout, rule, start_ms);
                }
            }
        }
        Ok(self.db.write(batch)?)
    }

    /// For each (series, rule, window) read, at `now_ms`: the window's first bucket and
    /// where its rule is complete from.
    pub fn window_coverage(
        &self,
        reads: &[crate::WindowRead],
        now_ms: i64,
    ) -> StoreResult<Vec<WindowCoverage>> {
        reads
            .iter()
            .map(|read| {
                let series = &self.series[self.series_index(&read.series_id)?];
                let slot = series.rule_slot(read.rule)?;
                let span: BucketSpan = series.layouts[slot.layout].span;
                Ok(WindowCoverage {
                    first_bucket_start_ms: span.window(now_ms, read.window_ms).first_start,
                    complete_from_ms: self.complete_from(
                        &read.series_id,
                        span.size_ms(),
                        slot.stored,
                    )?,
                })
            })
            .collect()
    }
}

/// A layout whose retention grew with a definition change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionChange {
    pub bucket_size_ms: i64,
    pub from_ms: i64,
    pub to_ms: i64,
}

impl BucketStore {
    /// Adds to `batch` the coverage records a definition change of a kept series needs
    /// (docs/semantics.md section 9.4), `before` and `after` being its layouts under the
    /// stored and the reconciled rules:
    /// - a rule `added` now is complete from the bucket edge after `now_ms`;
    /// - when a layout's retention grows from r_old, every other active rule of it is
    ///   complete from no earlier than the first bucket not stale at `now_ms` under r_old
    ///   (older ones may already be gone).
    ///
    /// Returns the layouts whose retention grew.
    pub(crate) fn record_changed_coverage(
        &self,
        batch: &mut WriteBatch,
        before: &SeriesLayout,
        after: &SeriesLayout,
        added: &[usize],
        now_ms: i64,
    ) -> StoreResult<Vec<RetentionChange>> {
        let mut widened = Vec::new();
        for layout in &after.layouts {
            let size = layout.span.size_ms();
            let floor = match before.layout_retention(size) {
                Some(old) if layout.retention_ms > old => {
                    widened.push(RetentionChange {
                        bucket_size_ms: size,
                        from_ms: old,
                        to_ms: layout.retention_ms,
                    });
                    Some(layout.span.first_fresh_start(old, now_ms))
                }
                _ => None,
            };
            for rule in after.active_rules(layout) {
                if added.contains(&rule) {
                    self.record_rule_coverage(
                        batch,
                        after,
                        layout,
                        rule,
                        next_edge(layout.span, now_ms),
                    );
                    continue;
                }
                let Some(floor) = floor else { continue };
                // Read under the id the series was stored with (a former id when it is
                // adopted now: its records move to the new id in the same batch).
                let current = self.complete_from(&before.spec.id, size, rule)?;
                let from = current.map_or(floor, |c| c.max(floor));
                if current != Some(from) {
                    self.record_rule_coverage(batch, after, layout, rule, from);
                }
            }
        }
        Ok(widened)
    }
}

impl BucketStore {
    /// Adds to `batch` the move of every coverage record of `from_id` to `to_id` (a
    /// series adopted under its new id).
    pub(crate) fn move_coverage(
        &self,
        batch: &mut WriteBatch,
        from_id: &str,
        to_id: &str,
    ) -> StoreResult<()> {
        let mut prefix = COVERAGE_PREFIX.to_vec();
        prefix.extend_from_slice(from_id.as_bytes());
        prefix.push(0);
        let mut it = self.db.raw_iterator_cf(self.meta());
        it.seek(&prefix);
        while it.valid() {
            let (Some(key), Some(value)) = (it.key(), it.value()) else {
                break;
            };
            let Some(rest) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let mut moved = COVERAGE_PREFIX.to_vec();
            moved.extend_from_slice(to_id.as_bytes());
            moved.push(0);
            moved.extend_from_slice(rest);
            batch.put_cf(self.meta(), moved, value);
            batch.delete_cf(self.meta(), key);
            it.next();
        }
        it.status()?;
        Ok(())
    }
}
