//! Point-in-time reads (docs/semantics.md section 11): every row of a query is asked at
//! a time of its own, as a training set asks for each label's time. In the materialized
//! mode a row's time `t` is binned down to the edge of the bucket holding it, per layout,
//! and the window is served from the complete buckets before that edge: no row at or
//! after the edge is read, so nothing after `t` is.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use tessera_core::{AggState, AggValue, Aggregation, BucketSpan};

use crate::error::{invalid_batch, StoreResult};
use crate::fold::{
    floor_ms, fold_value, KeyColumn, PendingDelta, SeriesBatch, ValueColumn, NULL_CODE,
};
use crate::key::{bucket_key, int_key_part, parse_bucket_key, push_int_part};
use crate::layout::{Layout, SeriesLayout};
use crate::reads::{decode_states, encode_key_row, key_rows, merge_into, Explanation, WindowRead};
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

/// The rows of a point read: as many as the keys have, which must be as many as the
/// times (one time per key).
pub(crate) fn point_rows(keys: &[KeyColumn<'_>], times_ms: &[i64]) -> StoreResult<usize> {
    let rows = key_rows(keys)?;
    if times_ms.len() != rows {
        return Err(invalid_batch(format!(
            "{} times for {rows} keys: a point read takes one time per key",
            times_ms.len()
        )));
    }
    Ok(rows)
}

/// The bucket window a point at `t` merges in the materialized mode (docs/semantics.md
/// section 11): `t` binned down to its bucket edge `e`, and the buckets starting in
/// `[first, e)` of the window `(e - W, e]`.
pub(crate) fn point_window(span: BucketSpan, t: i64, window_ms: i64) -> (i64, i64) {
    let edge = span.start_of(t);
    let window = span.window(edge.saturating_sub(1), window_ms);
    (window.first_start, edge)
}

impl BucketStore {
    /// Reads windows for many group keys, each row at its own time `times_ms[row]`, in the
    /// materialized mode: per layout, the time is binned down to its bucket edge `e` and
    /// the window `(e - W, e]` is merged from the buckets before `e`. Retention is judged
    /// by the engine clock; a window that reaches a removed bucket is listed in `stale`.
    ///
    /// The rows are taken key by key, in the order the store keeps its keys, and each
    /// key's rows by time: per layout, one forward range read of the key's buckets covers
    /// every window of its rows, and each window merges that range's buckets from memory,
    /// oldest first (the order of an online read, so the values are the same bit for
    /// bit). Rows of one key whose times share a bucket edge share their values.
    pub fn read_points(
        &self,
        keys: &[KeyColumn<'_>],
        times_ms: &[i64],
        reads: &[WindowRead],
        explain: bool,
    ) -> StoreResult<PointAnswer> {
        let rows = point_rows(keys, times_ms)?;
        let wall = self.options.clock.now_ms();
        let plan = self.plan_reads(reads, wall)?;
        let width = reads.len();
        let cells_total = rows * width;
        if u32::try_from(cells_total).is_err() {
            return Err(invalid_batch(format!(
                "{rows} points x {width} reads in one read; a point read takes fewer than 2^32 values"
            )));
        }
        // Values are computed key by key, so their rows come in no order: they are pushed
        // in the order computed, and each cell notes where its value is; the answer is
        // gathered in row order at the end (one pass, rather than a scattered write per
        // value).
        let mut computed: Vec<AggValue> = Vec::new();
        let mut position: Vec<u32> = vec![u32::MAX; cells_total];
        let mut explanations = explain.then(|| {
            vec![
                Explanation {
                    first_bucket_start: 0,
                    last_bucket_start: 0,
                    buckets_merged: 0,
                    buffer: None,
                };
                rows * width
            ]
        });
        // The first bucket each group's layout still keeps, for the stale windows' errors.
        let kept_from: Vec<i64> = plan
            .groups
            .iter()
            .map(|g| {
                let layout = &self.series[g.series].layouts[g.layout];
                layout.span.first_fresh_start(layout.retention_ms, wall)
            })
            .collect();
        let mut stale: Vec<StaleWindow> = Vec::new();
        // One cell's window: its explanation's bounds, and whether retention removed part
        // of it. Arithmetic only, for a null key as for any other.
        let place = |cells: &mut Vec<(usize, i64, i64)>,
                     stale: &mut Vec<StaleWindow>,
                     row: usize,
                     g: usize,
                     edge: i64| {
            let group = &plan.groups[g];
            let layout = &self.series[group.series].layouts[group.layout];
            let last = layout.span.start_of(edge.saturating_sub(1));
            cells.clear();
            for read in &group.reads {
                let (first, _) = point_window(layout.span, edge, reads[read.read_index].window_ms);
                let cell = row * width + read.read_index;
                if layout.span.is_stale(first, layout.retention_ms, wall) {
                    stale.push(StaleWindow {
                        cell,
                        first_bucket_start: first,
                        kept_from: kept_from[g],
                    });
                }
                cells.push((cell, first, last));
            }
        };
        let order = PointOrder::new(keys, times_ms)?;
        let mut ranges: Vec<KeyRange<'_>> =
            plan.groups.iter().map(|_| KeyRange::new(self)).collect();
        let mut cells: Vec<(usize, i64, i64)> = Vec::new();
        for (key, points, times) in order.keys() {
            let (Some(&first_time), Some(&last_time)) = (times.first(), times.last()) else {
                continue;
            };
            for (g, (group, range)) in plan.groups.iter().zip(ranges.iter_mut()).enumerate() {
                let series = &self.series[group.series];
                let layout = &series.layouts[group.layout];
                let span = layout.span;
                // Times ascend, so the first row's windows start earliest and the last
                // row's end latest.
                let first_now = span.start_of(first_time).saturating_sub(1);
                let from = group
                    .reads
                    .iter()
                    .map(|r| {
                        span.window(first_now, reads[r.read_index].window_ms)
                            .first_start
                    })
                    .min()
                    .unwrap_or(i64::MAX);
                let to = span.start_of(span.start_of(last_time).saturating_sub(1));
                range.load(series, layout, key, (from, to), wall, group.states_read)?;
                // The last row computed, and its stale windows (a range of `stale`).
                let mut previous: Option<(i64, usize)> = None;
                let mut previous_stale = 0..0;
                for (&row, &t) in points.iter().zip(times) {
                    let row = row as usize;
                    let edge = span.start_of(t);
                    if let Some((previous_edge, previous_row)) = previous {
                        if previous_edge == edge {
                            // The same bucket edge as the key's previous row: the same
                            // windows, the same values.
                            for read in &group.reads {
                                let from_cell = previous_row * width + read.read_index;
                                let to_cell = row * width + read.read_index;
                                let from = position[from_cell];
                                if from != u32::MAX {
                                    position[to_cell] = computed.len() as u32;
                                    computed.push(computed[from as usize].clone());
                                }
                                if let Some(e) = explanations.as_mut() {
                                    e[to_cell] = e[from_cell];
                                }
                            }
                            for i in previous_stale.clone() {
                                let s = stale[i];
                                stale.push(StaleWindow {
                                    cell: row * width + s.cell % width,
                                    ..s
                                });
                            }
                            continue;
                        }
                    }
                    previous = Some((edge, row));
                    let before = stale.len();
                    place(&mut cells, &mut stale, row, g, edge);
                    previous_stale = before..stale.len();
                    for (read, &(cell, first, last)) in group.reads.iter().zip(&cells) {
                        let (acc, merged) = range.merge(series, read.position, (first, last))?;
                        if let Some(acc) = acc {
                            position[cell] = computed.len() as u32;
                            computed.push(acc.evaluate());
                        }
                        if let Some(e) = explanations.as_mut() {
                            e[cell] = Explanation {
                                first_bucket_start: first,
                                last_bucket_start: last,
                                buckets_merged: merged,
                                buffer: None,
                            };
                        }
                    }
                }
            }
        }
        // Rows with a null key: no data, but their windows are explained and judged.
        for &row in &order.null_rows {
            let row = row as usize;
            for (g, group) in plan.groups.iter().enumerate() {
                let span = self.series[group.series].layouts[group.layout].span;
                place(&mut cells, &mut stale, row, g, span.start_of(times_ms[row]));
                for &(cell, first, last) in &cells {
                    if let Some(e) = explanations.as_mut() {
                        e[cell].first_bucket_start = first;
                        e[cell].last_bucket_start = last;
                    }
                }
            }
        }
        // Listed by cell: row after row, each row's reads in order.
        stale.sort_unstable_by_key(|s| s.cell);
        let empty = self.empty_values(&plan, 1);
        let values = position
            .iter()
            .enumerate()
            .map(|(cell, &at)| match at {
                u32::MAX => empty[cell % width].clone(),
                at => std::mem::replace(&mut computed[at as usize], AggValue::Null),
            })
            .collect();
        Ok(PointAnswer {
            values,
            explanations,
            stale,
        })
    }
}

/// The rows of a point read grouped by group key, the keys in the order the store keeps
/// them (within a series and bucket size: by encoded length, then bytes), each key's rows
/// by time. Rows with a null key are apart: they read no data.
struct PointOrder {
    /// The distinct encoded keys, in store order, one after the other: key `k` is
    /// `arena[bounds[k]..bounds[k + 1]]`.
    arena: Vec<u8>,
    bounds: Vec<usize>,
    /// The rows, key after key: key `k`'s are `rows[runs[k]..runs[k + 1]]`; and their
    /// times, so that the walk reads them in order.
    rows: Vec<u32>,
    times: Vec<i64>,
    runs: Vec<usize>,
    null_rows: Vec<u32>,
}

impl PointOrder {
    fn new(keys: &[KeyColumn<'_>], times_ms: &[i64]) -> StoreResult<Self> {
        let rows = times_ms.len();
        if u32::try_from(rows).is_err() {
            return Err(invalid_batch(format!(
                "{rows} points in one read; a point read takes fewer than 2^32"
            )));
        }
        match keys {
            [KeyColumn::Ints(ints)] => Self::of_ints(ints, times_ms),
            _ => Self::of_encoded(keys, times_ms),
        }
    }

    /// One integer key part: every key encodes to the same length, in the order of the
    /// integers, so a sort of (key, time, row) is store order.
    fn of_ints(ints: &[f64], times_ms: &[i64]) -> StoreResult<Self> {
        let mut null_rows = Vec::new();
        let mut sorted: Vec<(i64, i64, u32)> = Vec::with_capacity(ints.len());
        for (row, (&key, &t)) in ints.iter().zip(times_ms).enumerate() {
            if key.is_nan() {
                null_rows.push(row as u32);
            } else {
                sorted.push((int_key_part(key, row, "query")?, t, row as u32));
            }
        }
        sorted.sort_unstable();
        let mut order = Self {
            arena: Vec::new(),
            bounds: vec![0],
            rows: Vec::with_capacity(sorted.len()),
            times: Vec::with_capacity(sorted.len()),
            runs: vec![0],
            null_rows,
        };
        for (i, &(key, t, row)) in sorted.iter().enumerate() {
            if i > 0 && sorted[i - 1].0 != key {
                order.runs.push(i);
            }
            if i == 0 || sorted[i - 1].0 != key {
                push_int_part(&mut order.arena, key);
                order.bounds.push(order.arena.len());
            }
            order.rows.push(row);
            order.times.push(t);
        }
        if !sorted.is_empty() {
            order.runs.push(sorted.len());
        }
        Ok(order)
    }

    /// Any key: each row's key encoded once and numbered in order of appearance, the
    /// distinct keys put in store order, then the rows placed by a counting sort.
    fn of_encoded(keys: &[KeyColumn<'_>], times_ms: &[i64]) -> StoreResult<Self> {
        let rows = times_ms.len();
        let mut ids: FxHashMap<Vec<u8>, u32> = FxHashMap::default();
        let mut distinct: Vec<Vec<u8>> = Vec::new();
        let mut id_of_row: Vec<u32> = Vec::with_capacity(rows);
        let mut null_rows = Vec::new();
        let mut encoded = Vec::with_capacity(32);
        for row in 0..rows {
            if !encode_key_row(keys, row, &mut encoded)? {
                id_of_row.push(u32::MAX);
                null_rows.push(row as u32);
                continue;
            }
            let id = match ids.get(encoded.as_slice()) {
                Some(&id) => id,
                None => {
                    let id = distinct.len() as u32;
                    ids.insert(encoded.clone(), id);
                    distinct.push(encoded.clone());
                    id
                }
            };
            id_of_row.push(id);
        }
        drop(ids);
        let mut by_rank: Vec<u32> = (0..distinct.len() as u32).collect();
        by_rank.sort_unstable_by(|&a, &b| {
            let (a, b) = (&distinct[a as usize], &distinct[b as usize]);
            a.len().cmp(&b.len()).then_with(|| a.cmp(b))
        });
        let mut rank_of_id = vec![0u32; distinct.len()];
        for (rank, &id) in by_rank.iter().enumerate() {
            rank_of_id[id as usize] = rank as u32;
        }
        let mut runs = vec![0usize; distinct.len() + 1];
        for &id in id_of_row.iter().filter(|&&id| id != u32::MAX) {
            runs[rank_of_id[id as usize] as usize + 1] += 1;
        }
        for k in 0..distinct.len() {
            runs[k + 1] += runs[k];
        }
        let mut next = runs.clone();
        let mut ordered = vec![0u32; runs[distinct.len()]];
        for (row, &id) in id_of_row.iter().enumerate() {
            if id == u32::MAX {
                continue;
            }
            let slot = &mut next[rank_of_id[id as usize] as usize];
            ordered[*slot] = row as u32;
            *slot += 1;
        }
        for k in 0..distinct.len() {
            ordered[runs[k]..runs[k + 1]]
                .sort_unstable_by_key(|&row| (times_ms[row as usize], row));
        }
        let mut arena = Vec::new();
        let mut bounds = vec![0];
        for &id in &by_rank {
            arena.extend_from_slice(&distinct[id as usize]);
            bounds.push(arena.len());
        }
        Ok(Self {
            arena,
            bounds,
            times: ordered.iter().map(|&row| times_ms[row as usize]).collect(),
            rows: ordered,
            runs,
            null_rows,
        })
    }

    /// Each distinct key with its rows and their times.
    fn keys(&self) -> impl Iterator<Item = (&[u8], &[u32], &[i64])> {
        self.bounds
            .windows(2)
            .zip(self.runs.windows(2))
            .map(|(b, r)| {
                (
                    &self.arena[b[0]..b[1]],
                    &self.rows[r[0]..r[1]],
                    &self.times[r[0]..r[1]],
                )
            })
    }
}

/// How many records a range read steps over with `next` before it seeks instead: when
/// the points cover most keys, the next key's buckets follow the last ones read.
const STEPS_BEFORE_SEEK: usize = 8;

/// The stored, unexpired buckets of one group key in one layout between two starts, read
/// with one iterator that only moves forward through the layout's keys, and their states
/// kept decoded for the windows of the key's points.
struct KeyRange<'a> {
    iter: rocksdb::DBRawIterator<'a>,
    /// The iterator stands on the first record after the last range read (or at the end):
    /// nothing lies between that range and it.
    after_last: bool,
    lo: Vec<u8>,
    hi: Vec<u8>,
    /// The starts of the buckets read, oldest first.
    starts: Vec<i64>,
    /// `states_read` slots per bucket: the state at each position, `None` past the end of
    /// a record written before its rule was added.
    states: Vec<Option<AggState>>,
    states_read: usize,
}

impl<'a> KeyRange<'a> {
    fn new(store: &'a BucketStore) -> Self {
        Self {
            iter: store.db.raw_iterator_cf(store.buckets_cf()),
            after_last: false,
            lo: Vec::with_capacity(64),
            hi: Vec::with_capacity(64),
            starts: Vec::new(),
            states: Vec::new(),
            states_read: 0,
        }
    }

    /// Reads the buckets of `group_key` in `layout` with starts in `[from, to]`, skipping
    /// stale ones. Keys must come in store order from one call to the next.
    fn load(
        &mut self,
        series: &SeriesLayout,
        layout: &Layout,
        group_key: &[u8],
        (from, to): (i64, i64),
        wall_ms: i64,
        states_read: usize,
    ) -> StoreResult<()> {
        let size = layout.span.size_ms();
        bucket_key(&mut self.lo, series.number, group_key, size, from);
        bucket_key(&mut self.hi, series.number, group_key, size, to);
        self.starts.clear();
        self.states.clear();
        self.states_read = states_read;
        let iter = &mut self.iter;
        let mut placed = false;
        if self.after_last {
            for _ in 0..STEPS_BEFORE_SEEK {
                match iter.key() {
                    Some(key) if key >= self.lo.as_slice() => {
                        placed = true;
                        break;
                    }
                    Some(_) => iter.next(),
                    None => break,
                }
            }
        }
        if !placed {
            iter.seek(&self.lo);
        }
        self.after_last = false;
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            if key > self.hi.as_slice() {
                break;
            }
            let Some(parts) = parse_bucket_key(key) else {
                iter.status()?;
                return Ok(());
            };
            if !layout
                .span
                .is_stale(parts.start, layout.retention_ms, wall_ms)
            {
                self.starts.push(parts.start);
                let base = self.states.len();
                self.states.resize(base + states_read, None);
                let states = &mut self.states[base..];
                decode_states(series, value, states_read, |position, state| {
                    states[position] = Some(state);
                    Ok(())
                })?;
            }
            iter.next();
        }
        iter.status()?;
        self.after_last = iter.valid();
        Ok(())
    }

    /// The state at `position` of the loaded buckets with starts in `[first, last]`,
    /// merged oldest first, and how many buckets held one.
    fn merge(
        &self,
        series: &SeriesLayout,
        position: usize,
        (first, last): (i64, i64),
    ) -> StoreResult<(Option<AggState>, u32)> {
        let mut acc = None;
        let mut merged = 0;
        let begin = self.starts.partition_point(|&s| s < first);
        for (offset, &start) in self.starts[begin..].iter().enumerate() {
            if start > last {
                break;
            }
            if let Some(state) = &self.states[(begin + offset) * self.states_read + position] {
                merge_into(series, &mut acc, state)?;
                merged += 1;
            }
        }
        Ok((acc, merged))
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
        point_rows(keys, times_ms)?;
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
                        // A key's bytes are copied once, not once per row.
                        match by_key.get_mut(key.as_slice()) {
                            Some(list) => list.push((t, b, row)),
                            None => {
                                by_key.insert(key.clone(), vec![(t, b, row)]);
                            }
                        }
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
                            let kept = span.first_fresh_start(layout.retention_ms, wall);
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

#[cfg(test)]
mod tests {
    use super::point_window;
    use tessera_core::BucketSpan;

    #[test]
    fn the_point_window_ends_at_the_edge_before_the_time() {
        let span = BucketSpan::new(10, 3).unwrap();
        // t = 27 lies in the bucket [23, 33): the window (23 - 20, 23] reads [3, 23).
        assert_eq!(point_window(span, 27, 20), (3, 23));
        // On an edge, the bucket starting there is not read.
        assert_eq!(point_window(span, 23, 20), (3, 23));
        assert_eq!(point_window(span, 23, 1), (13, 23));
    }
}
