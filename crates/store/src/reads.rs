//! Window reads: one contiguous key range per (series, group key, bucket size), merged
//! rule by rule and evaluated. Only committed data is read, from one iterator over one
//! consistent view, and buckets past their retention are skipped.

use std::collections::HashMap;

use tessera_core::{AggState, AggValue};

use crate::buffer::{buffer_plan, BufferPlan};
use crate::error::{invalid_batch, StoreError, StoreErrorKind, StoreResult};
use crate::fold::{floor_ms, KeyColumn, PendingDelta, SeriesBatch, NULL_CODE};
use crate::key::{
    bucket_key, decode_group_key, int_key_part, parse_bucket_key, push_int_part, push_text_part,
    GroupKeyPart,
};
use crate::layout::SeriesLayout;
use crate::record::decode_record;
use crate::store::BucketStore;

/// One window to read: a rule of a series over the `window_ms` before `now`.
#[derive(Debug, Clone)]
pub struct WindowRead {
    pub series_id: String,
    pub rule: usize,
    pub window_ms: i64,
}

/// Which buckets a value merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation {
    /// The first and last bucket starts that the window covers (the bucket-overlap rule, `docs/semantics.md` section 5.1).
    pub first_bucket_start: i64,
    pub last_bucket_start: i64,
    /// How many of those buckets held data and were merged.
    pub buckets_merged: u32,
    /// For a window with a continuous buffer: where its parts came from.
    pub buffer: Option<BufferExplanation>,
}

/// The continuous-buffer part of a value (docs/semantics.md section 9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferExplanation {
    pub plan: BufferPlan,
    /// Raw rows of the value's key, with a time in the plan's raw range, that were folded
    /// into it (after the series' ingest filters).
    pub raw_rows: u32,
}

/// A window read with a continuous buffer, and the raw rows it may take.
#[derive(Debug, Clone, Copy)]
pub struct BufferedReads<'a> {
    /// One entry per read: the buffer in ms, 0 for a read served from buckets alone.
    pub buffers_ms: &'a [i64],
    /// Raw rows of the buffered series (the rows of other keys and times are skipped).
    pub raw: &'a [SeriesBatch<'a>],
}

/// The answer to a window query: `values[row * reads + read]`.
#[derive(Debug, Clone)]
pub struct WindowAnswer {
    pub values: Vec<AggValue>,
    pub explanations: Option<Vec<Explanation>>,
}

/// One stored bucket of one series layout, with the evaluated value of each of its rules.
#[derive(Debug, Clone)]
pub struct StoredBucket {
    pub size_ms: i64,
    pub start: i64,
    /// (requested rule index, evaluated value) of each active rule, by requested index.
    pub values: Vec<(usize, AggValue)>,
}

impl BucketStore {
    /// Reads windows for many group keys at once. `keys` holds one column per key part,
    /// with one row per group key; the answer holds `rows x reads` values. Only committed
    /// data is read, from one consistent snapshot.
    pub fn read_windows(
        &self,
        keys: &[KeyColumn<'_>],
        reads: &[WindowRead],
        now_ms: i64,
        explain: bool,
    ) -> StoreResult<WindowAnswer> {
        self.read_windows_buffered(keys, reads, now_ms, explain, None)
    }

    /// Where each buffered read's parts come from at `now_ms` (`None` for a read without
    /// a buffer): what raw rows a query must supply (docs/semantics.md section 9.6).
    pub fn buffer_plans(
        &self,
        reads: &[WindowRead],
        buffers_ms: &[i64],
        now_ms: i64,
    ) -> StoreResult<Vec<Option<BufferPlan>>> {
        if buffers_ms.len() != reads.len() {
            return Err(invalid_batch(format!(
                "{} buffers for {} reads",
                buffers_ms.len(),
                reads.len()
            )));
        }
        reads
            .iter()
            .zip(buffers_ms)
            .map(|(read, &buffer_ms)| {
                if buffer_ms <= 0 {
                    return Ok(None);
                }
                let series = &self.series[self.series_index(&read.series_id)?];
                let span = series.layouts[series.rule_slot(read.rule)?.layout].span;
                let window = span.window(now_ms, read.window_ms);
                let filled = self.filled_until(&read.series_id, span.size_ms())?;
                Ok(Some(buffer_plan(
                    span,
                    window.first_start,
                    now_ms,
                    buffer_ms,
                    filled,
                )))
            })
            .collect()
    }

    /// [`BucketStore::read_windows`], with reads whose most recent part comes from raw
    /// rows (a continuous buffer): each buffered read merges its stored buckets before the
    /// plan's cut and the raw rows of its key in the plan's raw range, folded by the
    /// same rules as an ingest.
    pub fn read_windows_buffered(
        &self,
        keys: &[KeyColumn<'_>],
        reads: &[WindowRead],
        now_ms: i64,
        explain: bool,
        buffered: Option<BufferedReads<'_>>,
    ) -> StoreResult<WindowAnswer> {
        let rows = key_rows(keys)?;
        let mut groups = self.plan_reads(reads, now_ms)?;
        let overlays = match buffered {
            None => Vec::new(),
            Some(buffered) => self.buffer_overlays(&mut groups, reads, now_ms, buffered)?,
        };
        let wall = self.options.clock.now_ms();
        let mut values = self.empty_values(&groups, rows);
        let mut explanations = explain.then(|| {
            let mut e = Vec::with_capacity(rows * reads.len());
            for _ in 0..rows {
                for plan in &groups.per_read {
                    e.push(Explanation {
                        first_bucket_start: plan.first_start,
                        last_bucket_start: plan.last_start,
                        buckets_merged: 0,
                        buffer: plan
                            .buffer
                            .map(|plan| BufferExplanation { plan, raw_rows: 0 }),
                    });
                }
            }
            e
        });
        let mut merger = BucketMerger::new(self);
        let mut group_key = Vec::with_capacity(32);
        // Which buckets each read takes is the same for every key.
        let group_bounds: Vec<Vec<ReadBounds>> = groups
            .groups
            .iter()
            .map(|group| {
                group
                    .reads
                    .iter()
                    .map(|read| ReadBounds {
                        position: read.position,
                        first_start: read.first_start,
                        before: read.buckets_before,
                    })
                    .collect()
            })
            .collect();
        for row in 0..rows {
            if !encode_key_row(keys, row, &mut group_key)? {
                // A null key has no data: every value stays Null.
                continue;
            }
            for (group, bounds) in groups.groups.iter().zip(&group_bounds) {
                let series = &self.series[group.series];
                let layout = &series.layouts[group.layout];
                let size = layout.span.size_ms();
                merger.merge(
                    series,
                    layout,
                    &group_key,
                    (group.first_start, group.last_start),
                    wall,
                    group.states_read,
                    bounds,
                )?;
                let accumulators = &mut merger.accumulators;
                if let Some(e) = explanations.as_mut() {
                    for (read, count) in group.reads.iter().zip(&merger.merged) {
                        e[row * reads.len() + read.read_index].buckets_merged += count;
                    }
                }
                for (slot, read) in group.reads.iter().enumerate() {
                    let Some(overlay) = read.overlay.map(|o| &overlays[o]) else {
                        continue;
                    };
                    if let Some(buckets) = overlay.buckets.get(&(group_key.clone(), size)) {
                        for (start, states) in buckets {
                            if *start < read.first_start {
                                continue;
                            }
                            let Some(state) = states.get(read.position) else {
                                continue;
                            };
                            merge_into(series, &mut accumulators[slot], state)?;
                        }
                    }
                    if let Some(e) = explanations.as_mut() {
                        if let Some(buffer) = &mut e[row * reads.len() + read.read_index].buffer {
                            buffer.raw_rows = overlay.rows.get(&group_key).copied().unwrap_or(0);
                        }
                    }
                }
                for (slot, read) in group.reads.iter().enumerate() {
                    if let Some(acc) = &accumulators[slot] {
                        values[row * reads.len() + read.read_index] = acc.evaluate();
                    }
                }
            }
        }
        Ok(WindowAnswer {
            values,
            explanations,
        })
    }

    /// The stored buckets of one series and group key between two times (inclusive
    /// bucket starts), each with its rules' values: what a window merged, bucket by bucket.
    pub fn read_buckets(
        &self,
        series_id: &str,
        keys: &[KeyColumn<'_>],
        from_ms: i64,
        to_ms: i64,
    ) -> StoreResult<Vec<StoredBucket>> {
        let series = &self.series[self.series_index(series_id)?];
        if key_rows(keys)? != 1 {
            return Err(invalid_batch("read_buckets takes exactly one group key"));
        }
        let mut group_key = Vec::new();
        if !encode_key_row(keys, 0, &mut group_key)? {
            return Ok(Vec::new());
        }
        let wall = self.options.clock.now_ms();
        let mut out = Vec::new();
        let (mut lo, mut hi) = (Vec::new(), Vec::new());
        let mut iter = self.db.raw_iterator_cf(self.buckets_cf());
        for layout in &series.layouts {
            let size = layout.span.size_ms();
            bucket_key(
                &mut lo,
                series.number,
                &group_key,
                size,
                layout.span.start_of(from_ms),
            );
            bucket_key(
                &mut hi,
                series.number,
                &group_key,
                size,
                layout.span.start_of(to_ms),
            );
            iter.seek(&lo);
            while iter.valid() {
                let (Some(key), Some(value)) = (iter.key(), iter.value()) else {
                    break;
                };
                if key > hi.as_slice() {
                    break;
                }
                let Some(parts) = parse_bucket_key(key) else {
                    break;
                };
                if !layout.span.is_stale(parts.start, layout.retention_ms, wall) {
                    let states = decode_record(value).map_err(|e| corrupt_bucket(series, e))?;
                    // Retired rules are not read; a slot past the record's end (a rule
                    // added after it was written) holds the empty state.
                    let mut values: Vec<(usize, AggValue)> = layout
                        .rules
                        .iter()
                        .enumerate()
                        .filter_map(|(position, &stored)| {
                            let requested = series.requested_index(stored)?;
                            let value = match states.get(position) {
                                Some(state) => state.evaluate(),
                                None => AggState::new(&series.rules[stored].aggregation).evaluate(),
                            };
                            Some((requested, value))
                        })
                        .collect();
                    values.sort_unstable_by_key(|v| v.0);
                    out.push(StoredBucket {
                        size_ms: size,
                        start: parts.start,
                        values,
                    });
                }
                iter.next();
            }
            iter.status()?;
        }
        Ok(out)
    }

    /// Every group key of a series that has a stored bucket the store still serves (not
    /// stale at the engine clock, in a layout that is read), in key order: the keys the
    /// parity check samples from the store (docs/semantics.md section 11, "Parity check").
    /// One seek per key: the buckets of a key are skipped once one is found live.
    pub fn group_keys(&self, series_id: &str) -> StoreResult<Vec<Vec<GroupKeyPart>>> {
        let series = &self.series[self.series_index(series_id)?];
        let wall = self.options.clock.now_ms();
        let prefix = series.number.to_be_bytes();
        let mut out = Vec::new();
        let mut skip = Vec::new();
        let mut iter = self.db.raw_iterator_cf(self.buckets_cf());
        iter.seek(prefix);
        while iter.valid() {
            let Some(key) = iter.key() else {
                break;
            };
            if !key.starts_with(&prefix) {
                break;
            }
            let live = parse_bucket_key(key).filter(|parts| {
                series.layouts.iter().any(|l| {
                    l.span.size_ms() == parts.size_ms
                        && !l.span.is_stale(parts.start, l.retention_ms, wall)
                })
            });
            match live {
                Some(parts) => {
                    if let Some(decoded) = decode_group_key(parts.group_key) {
                        out.push(decoded);
                    }
                    skip.clear();
                    skip.extend_from_slice(&key[..6 + parts.group_key.len()]);
                    skip.extend_from_slice(&[0xFF; 16]);
                    iter.seek(&skip);
                }
                None => iter.next(),
            }
        }
        iter.status()?;
        Ok(out)
    }

    /// Plans the buffered reads of `plan` and folds the raw rows each distinct (series,
    /// raw range) takes into an overlay.
    fn buffer_overlays(
        &self,
        plan: &mut ReadPlan,
        reads: &[WindowRead],
        now_ms: i64,
        buffered: BufferedReads<'_>,
    ) -> StoreResult<Vec<RawOverlay>> {
        let plans = self.buffer_plans(reads, buffered.buffers_ms, now_ms)?;
        let mut overlays: Vec<RawOverlay> = Vec::new();
        let mut overlay_of: HashMap<(usize, i64, i64), usize> = HashMap::new();
        for group in &mut plan.groups {
            for read in &mut group.reads {
                let Some(buffer) = plans[read.read_index] else {
                    continue;
                };
                plan.per_read[read.read_index].buffer = Some(buffer);
                read.buckets_before = buffer.buckets_before_ms;
                if buffer.raw_from_ms > buffer.raw_to_ms {
                    continue;
                }
                let range = (group.series, buffer.raw_from_ms, buffer.raw_to_ms);
                let index = match overlay_of.get(&range) {
                    Some(&index) => index,
                    None => {
                        overlays.push(self.raw_overlay(range, buffered.raw)?);
                        overlay_of.insert(range, overlays.len() - 1);
                        overlays.len() - 1
                    }
                };
                read.overlay = Some(index);
            }
        }
        Ok(overlays)
    }

    /// Folds the rows of `raw` that feed series `series` with a time in `[from, to]`.
    fn raw_overlay(
        &self,
        (series_index, from, to): (usize, i64, i64),
        raw: &[SeriesBatch<'_>],
    ) -> StoreResult<RawOverlay> {
        let series = &self.series[series_index];
        let mut delta = PendingDelta::default();
        let mut rows: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut group_key = Vec::with_capacity(32);
        for batch in raw.iter().filter(|b| b.series_id == series.spec.id) {
            PendingDelta::validate(series, batch)?;
            let in_range = |&r: &u32| {
                let t = floor_ms(batch.timestamps_ms[r as usize]);
                from <= t && t <= to
            };
            let selected: Vec<u32> = match batch.selection {
                Some(selection) => selection.iter().copied().filter(in_range).collect(),
                None => (0..batch.timestamps_ms.len() as u32)
                    .filter(in_range)
                    .collect(),
            };
            for &row in &selected {
                if encode_key_row(&batch.keys, row as usize, &mut group_key)? {
                    *rows.entry(group_key.clone()).or_default() += 1;
                }
            }
            let narrowed = SeriesBatch {
                selection: Some(&selected),
                ..batch.clone()
            };
            delta.fold(series_index, series, &narrowed);
        }
        let mut buckets = OverlayBuckets::new();
        let mut failure = None;
        delta.write_records(&self.series, |key, record| {
            let Some(parts) = parse_bucket_key(key) else {
                return;
            };
            match decode_record(record) {
                Ok(states) => buckets
                    .entry((parts.group_key.to_vec(), parts.size_ms))
                    .or_default()
                    .push((parts.start, states)),
                Err(e) => failure = Some(corrupt_bucket(series, e)),
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(RawOverlay { buckets, rows })
    }

    /// `rows` rows of the values of windows without data: each read's empty state
    /// evaluated (null, or 0 for a count), row-major.
    pub(crate) fn empty_values(&self, plan: &ReadPlan, rows: usize) -> Vec<AggValue> {
        let empty: Vec<AggValue> = plan
            .per_read
            .iter()
            .map(|r| AggState::new(&self.series[r.series].rules[r.rule].aggregation).evaluate())
            .collect();
        let mut values = Vec::with_capacity(rows * empty.len());
        for _ in 0..rows {
            values.extend(empty.iter().cloned());
        }
        values
    }

    pub(crate) fn plan_reads(&self, reads: &[WindowRead], now_ms: i64) -> StoreResult<ReadPlan> {
        let mut plan = ReadPlan::default();
        let mut group_of: HashMap<(usize, usize), usize> = HashMap::new();
        for (read_index, read) in reads.iter().enumerate() {
            let series_index = self.series_index(&read.series_id)?;
            let series = &self.series[series_index];
            let slot = series.rule_slot(read.rule)?;
            let (layout_index, position) = (slot.layout, slot.position);
            if read.window_ms <= 0 {
                return Err(invalid_batch(format!(
                    "series '{}' rule {}: window {} ms is not positive",
                    read.series_id, read.rule, read.window_ms
                )));
            }
            let layout = &series.layouts[layout_index];
            let window = layout.span.window(now_ms, read.window_ms);
            plan.per_read.push(ReadWindow {
                series: series_index,
                rule: slot.stored,
                first_start: window.first_start,
                last_start: window.last_start,
                buffer: None,
            });
            let group = *group_of
                .entry((series_index, layout_index))
                .or_insert_with(|| {
                    plan.groups.push(ReadGroup {
                        series: series_index,
                        layout: layout_index,
                        first_start: window.first_start,
                        last_start: window.last_start,
                        states_read: 0,
                        reads: Vec::new(),
                    });
                    plan.groups.len() - 1
                });
            let group = &mut plan.groups[group];
            group.first_start = group.first_start.min(window.first_start);
            group.states_read = group.states_read.max(position + 1);
            group.reads.push(PlannedRead {
                read_index,
                position,
                first_start: window.first_start,
                buckets_before: i64::MAX,
                overlay: None,
            });
        }
        Ok(plan)
    }
}

#[derive(Default)]
pub(crate) struct ReadPlan {
    pub(crate) groups: Vec<ReadGroup>,
    pub(crate) per_read: Vec<ReadWindow>,
}

pub(crate) struct ReadWindow {
    pub(crate) series: usize,
    /// The stored rule index.
    pub(crate) rule: usize,
    first_start: i64,
    last_start: i64,
    /// A buffered read's plan.
    buffer: Option<BufferPlan>,
}

pub(crate) struct ReadGroup {
    pub(crate) series: usize,
    pub(crate) layout: usize,
    first_start: i64,
    last_start: i64,
    /// How many of a record's states the reads need: one past the last position read.
    pub(crate) states_read: usize,
    pub(crate) reads: Vec<PlannedRead>,
}

pub(crate) struct PlannedRead {
    pub(crate) read_index: usize,
    pub(crate) position: usize,
    first_start: i64,
    /// Stored buckets starting at or after this are not merged (a buffer serves them).
    buckets_before: i64,
    /// The raw-row overlay a buffered read merges.
    overlay: Option<usize>,
}

/// (group key, bucket size) -> (bucket start, the layout's states).
type OverlayBuckets = HashMap<(Vec<u8>, i64), Vec<(i64, Vec<AggState>)>>;

/// The raw rows of one series and one time range, folded into buckets as an ingest would
/// fold them, for the buffered reads that take that range.
struct RawOverlay {
    buckets: OverlayBuckets,
    /// Rows folded per group key.
    rows: HashMap<Vec<u8>, u32>,
}

/// Which buckets one read of a range takes: the state at `position` of the records with
/// a start in `[first_start, before)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadBounds {
    pub(crate) position: usize,
    pub(crate) first_start: i64,
    pub(crate) before: i64,
}

/// Merges stored buckets into accumulators, one (series, group key, layout) range at a
/// time, with its iterator, key buffers and accumulators kept between ranges.
pub(crate) struct BucketMerger<'a> {
    iter: rocksdb::DBRawIterator<'a>,
    lo: Vec<u8>,
    hi: Vec<u8>,
    /// One per read of the last range merged: its merged state, if any bucket held data.
    pub(crate) accumulators: Vec<Option<AggState>>,
    /// One per read of the last range merged: the buckets it merged.
    pub(crate) merged: Vec<u32>,
}

impl<'a> BucketMerger<'a> {
    pub(crate) fn new(store: &'a BucketStore) -> Self {
        Self {
            iter: store.db.raw_iterator_cf(store.buckets_cf()),
            lo: Vec::with_capacity(64),
            hi: Vec::with_capacity(64),
            accumulators: Vec::new(),
            merged: Vec::new(),
        }
    }

    /// Merges the stored, unexpired buckets of `group_key` in `layout` with starts in
    /// `[first, last]` into one accumulator per read (`bounds`). A record's states are
    /// decoded one by one and merged straight into the reads that want them: no list of
    /// states per bucket, and the states after the last one read are not decoded.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn merge(
        &mut self,
        series: &SeriesLayout,
        layout: &crate::layout::Layout,
        group_key: &[u8],
        (first, last): (i64, i64),
        wall_ms: i64,
        states_read: usize,
        bounds: &[ReadBounds],
    ) -> StoreResult<()> {
        let size = layout.span.size_ms();
        bucket_key(&mut self.lo, series.number, group_key, size, first);
        bucket_key(&mut self.hi, series.number, group_key, size, last);
        self.accumulators.clear();
        self.accumulators.resize(bounds.len(), None);
        self.merged.clear();
        self.merged.resize(bounds.len(), 0);
        let iter = &mut self.iter;
        iter.seek(&self.lo);
        while iter.valid() {
            let (Some(key), Some(value)) = (iter.key(), iter.value()) else {
                break;
            };
            if key > self.hi.as_slice() {
                break;
            }
            let Some(parts) = parse_bucket_key(key) else {
                break;
            };
            if layout
                .span
                .is_stale(parts.start, layout.retention_ms, wall_ms)
            {
                iter.next();
                continue;
            }
            let (accumulators, merged) = (&mut self.accumulators, &mut self.merged);
            decode_states(series, value, states_read, |position, state| {
                for (slot, read) in bounds.iter().enumerate() {
                    if read.position != position
                        || parts.start < read.first_start
                        || parts.start >= read.before
                    {
                        continue;
                    }
                    merge_into(series, &mut accumulators[slot], &state)?;
                    merged[slot] += 1;
                }
                Ok(())
            })?;
            iter.next();
        }
        iter.status()?;
        Ok(())
    }
}

/// Decodes the first `states_read` states of a bucket record, in slot order, handing each
/// to `each` with its slot. A record written before a rule was added to the layout ends
/// before that rule's slot: the rule had nothing in that bucket, and nothing is handed.
pub(crate) fn decode_states(
    series: &SeriesLayout,
    record: &[u8],
    states_read: usize,
    mut each: impl FnMut(usize, AggState) -> StoreResult<()>,
) -> StoreResult<()> {
    let mut rest = record;
    for position in 0..states_read {
        if rest.is_empty() {
            break;
        }
        let (state, used) = AggState::decode(rest).map_err(|e| corrupt_bucket(series, e))?;
        rest = &rest[used..];
        each(position, state)?;
    }
    Ok(())
}

/// Merges one bucket's state into an accumulator (the first state starts it).
#[inline]
pub(crate) fn merge_into(
    series: &SeriesLayout,
    acc: &mut Option<AggState>,
    state: &AggState,
) -> StoreResult<()> {
    match acc {
        Some(acc) => acc.merge(state).map_err(|e| corrupt_bucket(series, e)),
        empty => {
            *empty = Some(state.clone());
            Ok(())
        }
    }
}

pub(crate) fn corrupt_bucket(series: &SeriesLayout, e: tessera_core::CoreError) -> StoreError {
    StoreError::new(
        StoreErrorKind::Core(e.kind),
        format!(
            "series '{}': a stored bucket cannot be read: {}",
            series.spec.id, e.message
        ),
    )
}

pub(crate) fn key_rows(keys: &[KeyColumn<'_>]) -> StoreResult<usize> {
    let lens: Vec<usize> = keys
        .iter()
        .map(|k| match k {
            KeyColumn::Ints(v) => v.len(),
            KeyColumn::Strings { codes, .. } => codes.len(),
        })
        .collect();
    match lens.split_first() {
        None => Err(invalid_batch("a query needs at least one group key column")),
        Some((first, rest)) if rest.iter().all(|l| l == first) => Ok(*first),
        Some(_) => Err(invalid_batch(format!(
            "group key columns have different lengths: {lens:?}"
        ))),
    }
}

/// Encodes row `row` of the key columns; false for a null key.
pub(crate) fn encode_key_row(
    keys: &[KeyColumn<'_>],
    row: usize,
    out: &mut Vec<u8>,
) -> StoreResult<bool> {
    out.clear();
    for column in keys {
        match column {
            KeyColumn::Ints(v) => {
                if v[row].is_nan() {
                    return Ok(false);
                }
                push_int_part(out, int_key_part(v[row], row, "query")?);
            }
            KeyColumn::Strings { dict, codes } => match codes[row] {
                NULL_CODE => return Ok(false),
                code => match dict.get(code as usize) {
                    Some(text) => push_text_part(out, text),
                    None => {
                        return Err(invalid_batch(format!(
                            "query key at row {row} has code {code}, the dictionary has {}",
                            dict.len()
                        )))
                    }
                },
            },
        }
    }
    Ok(true)
}
