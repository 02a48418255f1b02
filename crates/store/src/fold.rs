//! Ingest: columnar batches folded in memory into per-(series, key, layout, bucket)
//! states. Nothing here touches RocksDB; a commit turns the pending delta into one
//! coalesced update per touched bucket.

use rustc_hash::FxHashMap;
use tessera_core::{AggState, Aggregation, Item, NumericSummary};

use crate::error::{invalid_batch, StoreResult};
use crate::key::{int_key_part, push_int_part, push_text_part};
use crate::layout::{RuleInput, SeriesLayout, ValueKind};

/// The string-column code that stands for null.
pub const NULL_CODE: u32 = u32::MAX;

/// One part of the group key of every row: a column of integers (JS numbers; NaN is a
/// null key) or a dictionary-encoded string column (`NULL_CODE` is a null key). Rows with
/// a null key part belong to no group and are skipped.
#[derive(Debug, Clone, Copy)]
pub enum KeyColumn<'a> {
    Ints(&'a [f64]),
    Strings {
        dict: &'a [String],
        codes: &'a [u32],
    },
}

/// The aggregated column of a batch.
#[derive(Debug, Clone, Copy)]
pub enum ValueColumn<'a> {
    /// One number per row; NaN is null.
    Numbers(&'a [f64]),
    /// Dictionary-encoded strings; `NULL_CODE` is null.
    Strings {
        dict: &'a [String],
        codes: &'a [u32],
    },
    /// Row-major vectors of the series' dimension.
    Vectors(&'a [f64]),
}

/// The rows of one ingest call that feed one series.
#[derive(Debug, Clone)]
pub struct SeriesBatch<'a> {
    pub series_id: &'a str,
    pub keys: Vec<KeyColumn<'a>>,
    pub timestamps_ms: &'a [f64],
    pub values: ValueColumn<'a>,
    /// The `by` column of min_by_n / max_by_n, or the weight of a weighted top-k.
    pub by: Option<&'a [f64]>,
    /// Which rows to take (after the series' ingest filters); all rows when `None`.
    pub selection: Option<&'a [u32]>,
}

impl SeriesBatch<'_> {
    fn rows(&self) -> usize {
        self.timestamps_ms.len()
    }
}

/// Where a pending bucket's group key lives: a single integer part is kept as the integer
/// itself (one hash probe per event, no interning); other keys are interned bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyToken {
    Int(i64),
    Interned(u32),
}

/// The states of a layout's buckets. `Summaries` is the fast path for a numeric series
/// whose rules at this size are all sum/count/mean/min/max: one 32-byte summary per
/// bucket serves them all. Otherwise each slot `s` owns
/// `states[s * stride .. (s + 1) * stride]`, one state per rule of the layout.
enum SlotStates {
    Summaries(Vec<NumericSummary>),
    States {
        stride: usize,
        states: Vec<AggState>,
    },
}

/// The buckets of one (series, layout) touched since the last commit.
struct LayoutDelta {
    int_slots: FxHashMap<(i64, i64), u32>,
    interned_slots: FxHashMap<(u32, i64), u32>,
    slot_keys: Vec<(KeyToken, i64)>,
    states: SlotStates,
}

impl LayoutDelta {
    fn new(series: &SeriesLayout, layout: &crate::layout::Layout) -> Self {
        let summarised = series.spec.value_kind == ValueKind::Number
            && layout.rules.iter().all(|&r| {
                let rule = &series.rules[r];
                rule.input == RuleInput::Number && NumericSummary::covers(&rule.aggregation)
            });
        Self {
            int_slots: FxHashMap::default(),
            interned_slots: FxHashMap::default(),
            slot_keys: Vec::new(),
            states: if summarised {
                SlotStates::Summaries(Vec::new())
            } else {
                SlotStates::States {
                    stride: layout.rules.len(),
                    states: Vec::new(),
                }
            },
        }
    }

    /// The slot of (key, bucket start), creating it with empty states.
    #[inline]
    fn slot(&mut self, key: KeyToken, start: i64, series: &SeriesLayout, rules: &[usize]) -> usize {
        let next = self.slot_keys.len() as u32;
        let slot = match key {
            KeyToken::Int(k) => *self.int_slots.entry((k, start)).or_insert(next),
            KeyToken::Interned(k) => *self.interned_slots.entry((k, start)).or_insert(next),
        };
        if slot == next {
            self.slot_keys.push((key, start));
            match &mut self.states {
                SlotStates::Summaries(summaries) => summaries.push(NumericSummary::EMPTY),
                SlotStates::States { states, .. } => states.extend(
                    rules
                        .iter()
                        .map(|&r| AggState::new(&series.rules[r].aggregation)),
                ),
            }
        }
        slot as usize
    }

    fn clear(&mut self) {
        self.int_slots.clear();
        self.interned_slots.clear();
        self.slot_keys.clear();
        match &mut self.states {
            SlotStates::Summaries(summaries) => summaries.clear(),
            SlotStates::States { states, .. } => states.clear(),
        }
    }
}

/// One touched bucket of the pending delta.
#[derive(Debug, Clone, Copy)]
pub struct PendingBucket {
    /// Index of the series in the store's active series list.
    pub series: usize,
    pub layout: usize,
    slot: u32,
}

/// Bucket states folded in memory since the last commit.
#[derive(Default)]
pub struct PendingDelta {
    /// Indexed by [series index][layout index].
    layouts: Vec<Vec<LayoutDelta>>,
    interned: FxHashMap<Vec<u8>, u32>,
    interned_bytes: Vec<Vec<u8>>,
    rows: u64,
    buckets: usize,
}

impl PendingDelta {
    /// Rows folded since the last commit.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Buckets touched since the last commit.
    pub fn bucket_count(&self) -> usize {
        self.buckets
    }

    /// Every touched bucket, in no particular order.
    pub fn buckets(&self) -> Vec<PendingBucket> {
        let mut out = Vec::with_capacity(self.buckets);
        for (series, layouts) in self.layouts.iter().enumerate() {
            for (layout, delta) in layouts.iter().enumerate() {
                out.extend((0..delta.slot_keys.len()).map(|slot| PendingBucket {
                    series,
                    layout,
                    slot: slot as u32,
                }));
            }
        }
        out
    }

    fn delta(&self, bucket: &PendingBucket) -> &LayoutDelta {
        &self.layouts[bucket.series][bucket.layout]
    }

    /// Writes the bucket's encoded group key into `out` (cleared first).
    pub fn write_group_key(&self, bucket: &PendingBucket, out: &mut Vec<u8>) {
        out.clear();
        match self.delta(bucket).slot_keys[bucket.slot as usize].0 {
            KeyToken::Int(k) => push_int_part(out, k),
            KeyToken::Interned(id) => out.extend_from_slice(&self.interned_bytes[id as usize]),
        }
    }

    /// The bucket's start.
    pub fn start(&self, bucket: &PendingBucket) -> i64 {
        self.delta(bucket).slot_keys[bucket.slot as usize].1
    }

    /// Appends the bucket's record (the states of its layout's rules, in order) to `out`;
    /// false, with nothing written, when the bucket holds no value at all.
    pub fn write_record(
        &self,
        bucket: &PendingBucket,
        series: &SeriesLayout,
        out: &mut Vec<u8>,
    ) -> bool {
        let slot = bucket.slot as usize;
        match &self.delta(bucket).states {
            SlotStates::Summaries(summaries) => {
                let summary = &summaries[slot];
                if summary.is_empty() {
                    return false;
                }
                for &r in &series.layouts[bucket.layout].rules {
                    summary.state(&series.rules[r].aggregation).encode(out);
                }
            }
            SlotStates::States { stride, states } => {
                let states = &states[slot * stride..(slot + 1) * stride];
                if states.iter().all(AggState::is_empty) {
                    return false;
                }
                states.iter().for_each(|state| state.encode(out));
            }
        }
        true
    }

    /// Forgets everything, keeping the allocations for the next round.
    pub fn clear(&mut self) {
        self.layouts
            .iter_mut()
            .flatten()
            .for_each(LayoutDelta::clear);
        self.interned.clear();
        self.interned_bytes.clear();
        self.rows = 0;
        self.buckets = 0;
    }

    /// Checks a batch against its series before anything is folded, so that a bad batch
    /// leaves the pending delta untouched.
    pub fn validate(series: &SeriesLayout, batch: &SeriesBatch<'_>) -> StoreResult<()> {
        let id = &series.spec.id;
        let rows = batch.rows();
        let same_len = |what: &str, len: usize| -> StoreResult<()> {
            if len == rows {
                Ok(())
            } else {
                Err(invalid_batch(format!(
                    "series '{id}': {what} has {len} rows, timestamps have {rows}"
                )))
            }
        };
        if batch.keys.is_empty() {
            return Err(invalid_batch(format!(
                "series '{id}': no group key columns"
            )));
        }
        for (part, column) in batch.keys.iter().enumerate() {
            match column {
                KeyColumn::Ints(v) => same_len(&format!("group key part {part}"), v.len())?,
                KeyColumn::Strings { dict, codes } => {
                    same_len(&format!("group key part {part}"), codes.len())?;
                    check_codes(id, &format!("group key part {part}"), dict.len(), codes)?;
                }
            }
        }
        let dim = series.spec.vector_dim.unwrap_or(0) as usize;
        match (series.spec.value_kind, batch.values) {
            (ValueKind::Number, ValueColumn::Numbers(v)) => same_len("values", v.len())?,
            (ValueKind::String, ValueColumn::Strings { dict, codes }) => {
                same_len("values", codes.len())?;
                check_codes(id, "values", dict.len(), codes)?;
            }
            (ValueKind::Vector, ValueColumn::Vectors(v)) => {
                if v.len() != rows * dim {
                    return Err(invalid_batch(format!(
                        "series '{id}': vectors hold {} numbers, expected {rows} rows x dimension {dim}",
                        v.len()
                    )));
                }
            }
            (kind, _) => {
                return Err(invalid_batch(format!(
                    "series '{id}' holds {kind:?} values but the batch carries another kind"
                )))
            }
        }
        match batch.by {
            Some(by) => same_len("by", by.len())?,
            None if series.needs_by => {
                return Err(invalid_batch(format!(
                    "series '{id}' has a rule that needs the `by` column, and the batch has none"
                )))
            }
            None => {}
        }
        if let Some(selection) = batch.selection {
            if let Some(bad) = selection.iter().find(|&&r| r as usize >= rows) {
                return Err(invalid_batch(format!(
                    "series '{id}': selection names row {bad}, the batch has {rows}"
                )));
            }
        }
        // Checked column by column so the common case is a tight loop without branches
        // that allocate; the message is only built for the first bad row.
        let bad_time = |t: f64| !t.is_finite() || t.abs() > 8.64e15;
        let first_bad = |bad: &dyn Fn(usize) -> bool| -> Option<usize> {
            match batch.selection {
                None => (0..rows).find(|&r| bad(r)),
                Some(selection) => selection.iter().map(|&r| r as usize).find(|&r| bad(r)),
            }
        };
        if let Some(row) = first_bad(&|r| bad_time(batch.timestamps_ms[r])) {
            let t = batch.timestamps_ms[row];
            return Err(invalid_batch(format!(
                "series '{id}': timestamp at row {row} is {t}, not a time in milliseconds"
            )));
        }
        for column in &batch.keys {
            if let KeyColumn::Ints(v) = column {
                let bad_key = |r: usize| {
                    let k = v[r];
                    !k.is_nan() && (k.fract() != 0.0 || k.abs() > 9_007_199_254_740_991.0)
                };
                if let Some(row) = first_bad(&bad_key) {
                    int_key_part(v[row], row, &format!("series '{id}'"))?;
                }
            }
        }
        Ok(())
    }

    /// Folds a validated batch into the delta. `series_index` is the series' position in
    /// the store's active list.
    pub fn fold(&mut self, series_index: usize, series: &SeriesLayout, batch: &SeriesBatch<'_>) {
        if self.layouts.len() <= series_index {
            self.layouts.resize_with(series_index + 1, Vec::new);
        }
        if self.layouts[series_index].is_empty() {
            self.layouts[series_index] = series
                .layouts
                .iter()
                .map(|layout| LayoutDelta::new(series, layout))
                .collect();
        }
        match batch.selection {
            None => self.fold_rows(series_index, series, batch, 0..batch.rows()),
            Some(rows) => self.fold_rows(
                series_index,
                series,
                batch,
                rows.iter().map(|&r| r as usize),
            ),
        }
    }

    fn fold_rows(
        &mut self,
        series_index: usize,
        series: &SeriesLayout,
        batch: &SeriesBatch<'_>,
        rows: impl Iterator<Item = usize>,
    ) {
        let dim = series.spec.vector_dim.unwrap_or(0) as usize;
        let mut key_buf = Vec::with_capacity(32);
        let before: usize = self.layouts[series_index]
            .iter()
            .map(|d| d.slot_keys.len())
            .sum();
        let single_int = match batch.keys.as_slice() {
            [KeyColumn::Ints(v)] => Some(*v),
            _ => None,
        };
        for row in rows {
            let key = match single_int {
                Some(v) if v[row].is_nan() => continue,
                Some(v) => KeyToken::Int(v[row] as i64),
                None => match self.intern_key(&batch.keys, row, &mut key_buf) {
                    Some(id) => KeyToken::Interned(id),
                    None => continue,
                },
            };
            let t = batch.timestamps_ms[row].floor() as i64;
            self.rows += 1;
            for (layout, delta) in series.layouts.iter().zip(&mut self.layouts[series_index]) {
                let slot = delta.slot(key, layout.span.start_of(t), series, &layout.rules);
                match (&mut delta.states, batch.values) {
                    (SlotStates::Summaries(summaries), ValueColumn::Numbers(v)) => {
                        summaries[slot].update(v[row]);
                    }
                    (SlotStates::Summaries(_), _) => {}
                    (SlotStates::States { stride, states }, _) => {
                        let states = &mut states[slot * *stride..(slot + 1) * *stride];
                        for (state, &r) in states.iter_mut().zip(&layout.rules) {
                            let rule = &series.rules[r];
                            fold_value(state, rule.input, &rule.aggregation, batch, row, dim);
                        }
                    }
                }
            }
        }
        let after: usize = self.layouts[series_index]
            .iter()
            .map(|d| d.slot_keys.len())
            .sum();
        self.buckets += after - before;
    }

    fn intern_key(&mut self, keys: &[KeyColumn<'_>], row: usize, buf: &mut Vec<u8>) -> Option<u32> {
        buf.clear();
        for column in keys {
            match column {
                KeyColumn::Ints(v) => {
                    if v[row].is_nan() {
                        return None;
                    }
                    push_int_part(buf, v[row] as i64);
                }
                KeyColumn::Strings { dict, codes } => {
                    let code = codes[row];
                    if code == NULL_CODE {
                        return None;
                    }
                    push_text_part(buf, &dict[code as usize]);
                }
            }
        }
        if let Some(&id) = self.interned.get(buf.as_slice()) {
            return Some(id);
        }
        let id = self.interned_bytes.len() as u32;
        self.interned_bytes.push(buf.clone());
        self.interned.insert(buf.clone(), id);
        Some(id)
    }
}

fn check_codes(id: &str, what: &str, dict_len: usize, codes: &[u32]) -> StoreResult<()> {
    match codes
        .iter()
        .position(|&c| c != NULL_CODE && c as usize >= dict_len)
    {
        Some(row) => Err(invalid_batch(format!(
            "series '{id}': {what} at row {row} has code {}, the dictionary has {dict_len} entries",
            codes[row]
        ))),
        None => Ok(()),
    }
}

#[inline]
fn fold_value(
    state: &mut AggState,
    input: RuleInput,
    aggregation: &Aggregation,
    batch: &SeriesBatch<'_>,
    row: usize,
    dim: usize,
) {
    let by = || batch.by.map_or(f64::NAN, |b| b[row]);
    match (input, batch.values) {
        (RuleInput::Number, ValueColumn::Numbers(v)) => state.update_number(v[row]),
        (RuleInput::Item, ValueColumn::Strings { dict, codes }) => {
            let code = codes[row];
            if code == NULL_CODE {
                return;
            }
            if matches!(aggregation, Aggregation::Count) {
                // A count only needs to know the value is present.
                state.update_number(0.0);
            } else {
                // No owned copy unless the state keeps the string (top-k).
                let _ = state.update_text(&dict[code as usize]);
            }
        }
        (RuleInput::Item, ValueColumn::Numbers(v)) => {
            let _ = state.update_item(&Item::Number(v[row]));
        }
        (RuleInput::Weighted, ValueColumn::Numbers(v)) => {
            let _ = state.update_weighted(Item::Number(v[row]), by());
        }
        (RuleInput::Weighted, ValueColumn::Strings { dict, codes }) => {
            let code = codes[row];
            let weight = by();
            // Skipped rows (null value, null or non-positive weight) copy no string.
            if code != NULL_CODE && weight.is_finite() && weight > 0.0 {
                let _ = state.update_weighted(Item::Text(dict[code as usize].clone()), weight);
            }
        }
        (RuleInput::Ranked, ValueColumn::Numbers(v)) if v[row].is_finite() => {
            state.update_ranked(by(), Item::Number(v[row]));
        }
        (RuleInput::Ranked, ValueColumn::Strings { dict, codes }) => {
            let code = codes[row];
            if code != NULL_CODE {
                state.update_ranked(by(), Item::Text(dict[code as usize].clone()));
            }
        }
        (RuleInput::Vector, ValueColumn::Vectors(flat)) => {
            let vector = &flat[row * dim..(row + 1) * dim];
            if matches!(aggregation, Aggregation::Count) {
                if vector.iter().all(|x| x.is_finite()) {
                    state.update_number(0.0);
                }
            } else {
                // The dimension was checked by validate; a non-finite vector is skipped.
                let _ = state.update_vector(vector);
            }
        }
        // validate() and SeriesLayout::new() rule out every other pairing.
        _ => {}
    }
}
