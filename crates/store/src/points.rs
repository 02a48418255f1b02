//! Point-in-time reads (docs/semantics.md section 11): every row of a query is asked at
//! a time of its own, as a training set asks for each label's time. In the materialized
//! mode a row's time `t` is binned down to the edge of the bucket holding it, per layout,
//! and the window is served from the complete buckets before that edge: no row at or
//! after the edge is read, so nothing after `t` is.

use std::collections::HashMap;

use tessera_core::{AggState, AggValue, Aggregation};

use crate::error::{invalid_batch, StoreResult};
use crate::fold::{
    floor_ms, fold_value, KeyColumn, PendingDelta, SeriesBatch, ValueColumn, NULL_CODE,
};
use crate::reads::{encode_key_row, key_rows, BucketMerger, Explanation, ReadBounds, WindowRead};
use crate::store::BucketStore;

/// A value whose window reaches buckets that retention removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleWindow {
    /// The cell: `row * reads + read`.
    pub cell: usize,
    /// The first bucket the window reads.
    pub first_bucket_start: i64,
    /// The first bucket the store still keeps.
    pub kept_from: i64,
}

/// The answer to a point-in-time read: `values[row * reads + read]`.
#[derive(Debug, Clone)]
pub struct PointAnswer {
    pub values: Vec<tessera_core::AggValue>,
    pub explanations: Option<Vec<Explanation>>,
    /// The cells whose windows reach removed buckets (their values are incomplete).
    pub stale: Vec<StaleWindow>,
}

impl BucketStore {
    /// Reads windows for many group keys, each row at its own time `times_ms[row]`, in the
    /// materialized mode: per layout, the time is binned down to its bucket edge `e` and
    /// the window `(e - W, e]` is merged from the buckets before `e`. Retention is judged
    /// by the engine clock; a window that reaches a removed bucket is listed in `stale`.
    pub fn read_points(
        &self,
        keys: &[KeyColumn<'_>],
        times_ms: &[i64],
        reads: &[WindowRead],
        explain: bool,
    ) -> StoreResult<PointAnswer> {
        let rows = key_rows(keys)?;
        if times_ms.len() != rows {
            return Err(invalid_batch(format!(
                "{} times for {rows} keys: a point read takes one time per key",
                times_ms.len()
            )));
        }
        let wall = self.options.clock.now_ms();
        let plan = self.plan_reads(reads, wall)?;
        let mut values = self.empty_values(&plan, rows);
        let mut explanations = explain.then(|| Vec::with_capacity(rows * reads.len()));
        if let Some(e) = explanations.as_mut() {
            e.resize(
                rows * reads.len(),
                Explanation {
                    first_bucket_start: 0,
                    last_bucket_start: 0,
                    buckets_merged: 0,
                    buffer: None,
                },
            );
        }
        let mut stale = Vec::new();
        let mut merger = BucketMerger::new(self);
        let mut group_key = Vec::new();
        let mut bounds: Vec<ReadBounds> = Vec::new();
        for (row, &t) in times_ms.iter().enumerate() {
            let has_key = encode_key_row(keys, row, &mut group_key)?;
            for group in &plan.groups {
                let series = &self.series[group.series];
                let layout = &series.layouts[group.layout];
                let span = layout.span;
                // The complete buckets before the edge at or before t: a window at edge - 1.
                let now = span.start_of(t).saturating_sub(1);
                let last = span.start_of(now);
                bounds.clear();
                for read in &group.reads {
                    let window = span.window(now, reads[read.read_index].window_ms);
                    let cell = row * reads.len() + read.read_index;
                    if span.is_stale(window.first_start, layout.retention_ms, wall) {
                        stale.push(StaleWindow {
                            cell,
                            first_bucket_start: window.first_start,
                            kept_from: kept_from(span, layout.retention_ms, wall),
                        });
                    }
                    if let Some(e) = explanations.as_mut() {
                        e[cell].first_bucket_start = window.first_start;
                        e[cell].last_bucket_start = last;
                    }
                    bounds.push(ReadBounds {
                        position: read.position,
                        first_start: window.first_start,
                        before: i64::MAX,
                    });
                }
                if !has_key {
                    continue;
                }
                let first = bounds.iter().map(|b| b.first_start).min().unwrap_or(last);
                merger.merge(
                    series,
                    layout,
                    &group_key,
                    (first, last),
                    wall,
                    group.states_read,
                    &bounds,
                )?;
                for (slot, read) in group.reads.iter().enumerate() {
                    let cell = row * reads.len() + read.read_index;
                    if let Some(acc) = &merger.accumulators[slot] {
                        values[cell] = acc.evaluate();
                    }
                    if let Some(e) = explanations.as_mut() {
                        e[cell].buckets_merged = merger.merged[slot];
                    }
                }
            }
        }
        Ok(PointAnswer {
            values,
            explanations,
            stale,
        })
    }
}

/// How a point's window is recomputed from raw rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecomputedWindow {
    /// Exactly `(t - W, t]`.
    Exact,
    /// From the bucket edge at or before `t - W + 1 ms` to `t`: what the store would
    /// serve at `t` from complete data, without the events after `t`.
    Aligned,
    /// What the online store serves at `t` (docs/semantics.md section 5.1): from the
    /// bucket edge at or before `t - W + 1 ms` to the end of the bucket holding `t`, and
    /// not from buckets that are stale at the engine clock. It reads events after `t` (the
    /// rest of its bucket), so it is for the parity check (section 11, "Parity check"),
    /// never for a training set.
    Served,
}

/// One recomputed window with what the parity check needs to judge it.
#[derive(Debug, Clone)]
pub struct ParityAnswer {
    /// `values[row * reads + read]`, as [`BucketStore::recompute_points`] with
    /// [`RecomputedWindow::Served`].
    pub values: Vec<AggValue>,
    /// Per cell, the catalog's tolerance of the read's aggregation
    /// ([`tessera_core::Aggregation::parity_tolerance`]), evaluated at the window's total
    /// weight for top-k.
    pub tolerance: Vec<f64>,
    /// Per cell, for `approx_percentile` reads: the normalized rank range `[below, at or
    /// below]` among the window's values of the online value given for the cell, and of
    /// the recomputed value. `None` for other reads and for windows without values.
    pub ranks: Vec<Option<[(f64, f64); 2]>>,
}

/// The rows of one series by group key, each key's sorted by time: (time, batch, row).
type RowsByKey = HashMap<Vec<u8>, Vec<(i64, usize, usize)>>;

impl BucketStore {
    /// Recomputes windows from raw rows for many group keys, each row at its own time
    /// (docs/semantics.md section 11): every rule folds the rows of its series, key and
    /// window with the ingest's own fold, into the same states (and sketches) as the
    /// stored buckets hold. Rows of other keys and times are skipped.
    pub fn recompute_points(
        &self,
        keys: &[KeyColumn<'_>],
        times_ms: &[i64],
        reads: &[WindowRead],
        raw: &[SeriesBatch<'_>],
        window: RecomputedWindow,
    ) -> StoreResult<Vec<AggValue>> {
        let mut values = Vec::with_capacity(times_ms.len() * reads.len());
        self.recompute_cells(keys, times_ms, reads, raw, window, |cell| {
            values.push(cell.state.evaluate());
        })?;
        Ok(values)
    }

    /// The parity check's recompute (docs/semantics.md section 11, "Parity check"): every
    /// window as the online store serves it ([`RecomputedWindow::Served`]), folded from
    /// raw rows, with its tolerance and, for percentiles, the ranks of `online[cell]` (the
    /// online store's number for the cell; NaN for none) and of the recomputed value among
    /// the window's values.
    pub fn parity_points(
        &self,
        keys: &[KeyColumn<'_>],
        times_ms: &[i64],
        reads: &[WindowRead],
        raw: &[SeriesBatch<'_>],
        online: &[f64],
    ) -> StoreResult<ParityAnswer> {
        let cells = times_ms.len() * reads.len();
        if online.len() != cells {
            return Err(invalid_batch(format!(
                "{} online values for {cells} cells: the parity check takes one per cell",
                online.len()
            )));
        }
        let mut answer = ParityAnswer {
            values: Vec::with_capacity(cells),
            tolerance: Vec::with_capacity(cells),
            ranks: Vec::with_capacity(cells),
        };
        let mut sorted: Vec<f64> = Vec::new();
        self.recompute_cells(
            keys,
            times_ms,
            reads,
            raw,
            RecomputedWindow::Served,
            |cell| {
                let value = cell.state.evaluate();
                let aggregation = &cell.rule.aggregation;
                let mut total = 0.0;
                if let Aggregation::ApproxTopK { weighted, .. } = aggregation {
                    for &(_, b, r) in cell.rows {
                        total += item_weight(&raw[b], r, *weighted);
                    }
                }
                answer.tolerance.push(aggregation.parity_tolerance(total));
                let ranks = match (aggregation, &value) {
                    (Aggregation::ApproxPercentile { .. }, AggValue::Number(recomputed)) => {
                        sorted.clear();
                        for &(_, b, r) in cell.rows {
                            if let ValueColumn::Numbers(v) = raw[b].values {
                                if v[r].is_finite() {
                                    sorted.push(v[r]);
                                }
                            }
                        }
                        sorted.sort_unstable_by(f64::total_cmp);
                        let rank = |v: f64| {
                            let n = sorted.len().max(1) as f64;
                            let below = sorted.partition_point(|&x| x < v) as f64;
                            let at_or_below = sorted.partition_point(|&x| x <= v) as f64;
                            (below / n, at_or_below / n)
                        };
                        Some([rank(online[cell.index]), rank(*recomputed)])
                    }
                    _ => None,
                };
                answer.ranks.push(ranks);
                answer.values.push(value);
            },
        )?;
        Ok(answer)
    }

    /// Folds every cell's window from the raw rows and hands it to `visit`, in cell order.
    fn recompute_cells(
        &self,
        keys: &[KeyColumn<'_>],
        times_ms: &[i64],
        reads: &[WindowRead],
        raw: &[SeriesBatch<'_>],
        window: RecomputedWindow,
        mut visit: impl FnMut(RecomputedCell<'_>),
    ) -> StoreResult<()> {
        let rows = key_rows(keys)?;
        if times_ms.len() != rows {
            return Err(invalid_batch(format!(
                "{} times for {rows} keys: a point read takes one time per key",
                times_ms.len()
            )));
        }
        let wall = self.options.clock.now_ms();
        let plan = self.plan_reads(reads, wall)?;
        let mut indexed: HashMap<usize, RowsByKey> = HashMap::new();
        for read in &plan.per_read {
            if indexed.contains_key(&read.series) {
                continue;
            }
            let series = &self.series[read.series];
            let mut by_key = RowsByKey::new();
            let mut key = Vec::with_capacity(32);
            for (b, batch) in raw.iter().enumerate() {
                if batch.series_id != series.spec.id {
                    continue;
                }
                PendingDelta::validate(series, batch)?;
                let n = batch
                    .selection
                    .map_or(batch.timestamps_ms.len(), <[u32]>::len);
                for i in 0..n {
                    let row = batch.selection.map_or(i, |s| s[i] as usize);
                    if encode_key_row(&batch.keys, row, &mut key)? {
                        let t = floor_ms(batch.timestamps_ms[row]);
                        by_key.entry(key.clone()).or_default().push((t, b, row));
                    }
                }
            }
            for list in by_key.values_mut() {
                list.sort_unstable();
            }
            indexed.insert(read.series, by_key);
        }
        let mut group_key = Vec::with_capacity(32);
        for (row, &t) in times_ms.iter().enumerate() {
            let has_key = encode_key_row(keys, row, &mut group_key)?;
            for (r, (read, planned)) in reads.iter().zip(&plan.per_read).enumerate() {
                let series = &self.series[planned.series];
                let rule = &series.rules[planned.rule];
                let mut state = AggState::new(&rule.aggregation);
                let listed = has_key
                    .then(|| indexed.get(&planned.series)?.get(&group_key))
                    .flatten();
                let mut window_rows: &[(i64, usize, usize)] = &[];
                if let Some(list) = listed {
                    let earliest = t.saturating_sub(read.window_ms).saturating_add(1);
                    let (from, last) = match window {
                        RecomputedWindow::Exact => (earliest, t),
                        RecomputedWindow::Aligned => {
                            let layout = series.rule_slot(read.rule)?.layout;
                            (series.layouts[layout].span.start_of(earliest), t)
                        }
                        RecomputedWindow::Served => {
                            let layout = &series.layouts[series.rule_slot(read.rule)?.layout];
                            let span = layout.span;
                            let kept = kept_from(span, layout.retention_ms, wall);
                            let end = span.start_of(t).saturating_add(span.size_ms());
                            (span.start_of(earliest).max(kept), end.saturating_sub(1))
                        }
                    };
                    let first = list.partition_point(|&(ts, _, _)| ts < from);
                    let past = list.partition_point(|&(ts, _, _)| ts <= last);
                    window_rows = &list[first..past.max(first)];
                    let dim = series.spec.vector_dim.unwrap_or(0) as usize;
                    for &(_, b, r) in window_rows {
                        fold_value(&mut state, rule.input, &rule.aggregation, &raw[b], r, dim);
                    }
                }
                visit(RecomputedCell {
                    index: row * reads.len() + r,
                    rule,
                    state: &state,
                    rows: window_rows,
                });
            }
        }
        Ok(())
    }
}

/// One recomputed window: its cell, the stored rule, the folded state and the raw rows
/// (time, batch, row) it folded.
struct RecomputedCell<'a> {
    index: usize,
    rule: &'a crate::layout::Rule,
    state: &'a AggState,
    rows: &'a [(i64, usize, usize)],
}

/// The weight a row adds to a top-k window's total: its `by` weight (weighted) or 1,
/// when its value is present and the weight counts (docs/semantics.md section 4).
fn item_weight(batch: &SeriesBatch<'_>, row: usize, weighted: bool) -> f64 {
    let present = match batch.values {
        ValueColumn::Numbers(v) => v[row].is_finite(),
        ValueColumn::Strings { codes, .. } => codes[row] != NULL_CODE,
        ValueColumn::Vectors(_) => false,
    };
    if !present {
        return 0.0;
    }
    if !weighted {
        return 1.0;
    }
    match batch.by.map(|b| b[row]) {
        Some(w) if w.is_finite() && w >= 0.0005 => w,
        _ => 0.0,
    }
}

/// The first bucket start of `span` that is not stale at `wall_ms`.
fn kept_from(span: tessera_core::BucketSpan, retention_ms: i64, wall_ms: i64) -> i64 {
    let size = span.size_ms();
    let horizon = wall_ms
        .saturating_sub(retention_ms)
        .saturating_sub(size.saturating_mul(2));
    span.start_of(horizon).saturating_add(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::BucketSpan;

    #[test]
    fn the_first_kept_bucket_is_the_first_that_is_not_stale() {
        let span = BucketSpan::new(10, 0).unwrap();
        for wall in 100..140 {
            let from = kept_from(span, 30, wall);
            assert!(!span.is_stale(from, 30, wall), "wall {wall}");
            assert!(span.is_stale(from - 10, 30, wall), "wall {wall}");
        }
    }
}
