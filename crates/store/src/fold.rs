//! Ingest: columnar batches folded in memory into per-(series, key, layout, bucket)
//! states. Nothing here touches RocksDB; a commit turns the pending delta into one
//! coalesced update per touched bucket.

use rustc_hash::FxHashMap;
use tessera_core::{AggState, Aggregation, Item};

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

    fn selected(&self) -> impl Iterator<Item = usize> + '_ {
        let all = self.selection.is_none();
        let n = if all { self.rows() } else { 0 };
        (0..n).chain(
            self.selection
                .into_iter()
                .flat_map(|s| s.iter().map(|&r| r as usize)),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SlotKey {
    series: u32,
    layout: u32,
    key: u32,
    start: i64,
}

/// One touched bucket of the pending delta.
#[derive(Debug, Clone, Copy)]
pub struct PendingBucket {
    /// Index of the series in the store's active series list.
    pub series: usize,
    pub layout: usize,
    /// Index into [`PendingDelta::group_key`].
    pub key: u32,
    pub start: i64,
    state_offset: u32,
    state_count: u32,
}

/// Bucket states folded in memory since the last commit.
#[derive(Default)]
pub struct PendingDelta {
    int_keys: FxHashMap<i64, u32>,
    byte_keys: FxHashMap<Vec<u8>, u32>,
    key_bytes: Vec<Vec<u8>>,
    slots: FxHashMap<SlotKey, u32>,
    buckets: Vec<PendingBucket>,
    states: Vec<AggState>,
    rows: u64,
}

impl PendingDelta {
    /// Rows folded since the last commit.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Buckets touched since the last commit.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    pub fn buckets(&self) -> &[PendingBucket] {
        &self.buckets
    }

    pub fn group_key(&self, key: u32) -> &[u8] {
        &self.key_bytes[key as usize]
    }

    pub fn states(&self, bucket: &PendingBucket) -> &[AggState] {
        let start = bucket.state_offset as usize;
        &self.states[start..start + bucket.state_count as usize]
    }

    /// Forgets everything, keeping the allocations for the next round.
    pub fn clear(&mut self) {
        self.int_keys.clear();
        self.byte_keys.clear();
        self.key_bytes.clear();
        self.slots.clear();
        self.buckets.clear();
        self.states.clear();
        self.rows = 0;
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
        for row in batch.selected() {
            let t = batch.timestamps_ms[row];
            if !t.is_finite() || t.abs() > 8.64e15 {
                return Err(invalid_batch(format!(
                    "series '{id}': timestamp at row {row} is {t}, not a time in milliseconds"
                )));
            }
            for column in &batch.keys {
                if let KeyColumn::Ints(v) = column {
                    if !v[row].is_nan() {
                        int_key_part(v[row], row, &format!("series '{id}'"))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Folds a validated batch into the delta. `series_index` is the series' position in
    /// the store's active list.
    pub fn fold(&mut self, series_index: usize, series: &SeriesLayout, batch: &SeriesBatch<'_>) {
        let dim = series.spec.vector_dim.unwrap_or(0) as usize;
        let mut key_buf = Vec::with_capacity(32);
        for row in batch.selected() {
            let Some(key) = self.intern_key(&batch.keys, row, &mut key_buf) else {
                continue;
            };
            let t = batch.timestamps_ms[row].floor() as i64;
            self.rows += 1;
            for (layout_index, layout) in series.layouts.iter().enumerate() {
                let slot = SlotKey {
                    series: series_index as u32,
                    layout: layout_index as u32,
                    key,
                    start: layout.span.start_of(t),
                };
                let offset = match self.slots.get(&slot) {
                    Some(&b) => self.buckets[b as usize].state_offset as usize,
                    None => {
                        let offset = self.states.len();
                        for &r in &layout.rules {
                            self.states
                                .push(AggState::new(&series.rules[r].aggregation));
                        }
                        self.slots.insert(slot, self.buckets.len() as u32);
                        self.buckets.push(PendingBucket {
                            series: series_index,
                            layout: layout_index,
                            key,
                            start: slot.start,
                            state_offset: offset as u32,
                            state_count: layout.rules.len() as u32,
                        });
                        offset
                    }
                };
                for (position, &r) in layout.rules.iter().enumerate() {
                    let rule = &series.rules[r];
                    let state = &mut self.states[offset + position];
                    fold_value(state, rule.input, &rule.aggregation, batch, row, dim);
                }
            }
        }
    }

    fn intern_key(&mut self, keys: &[KeyColumn<'_>], row: usize, buf: &mut Vec<u8>) -> Option<u32> {
        if let [KeyColumn::Ints(v)] = keys {
            let value = v[row];
            if value.is_nan() {
                return None;
            }
            let value = value as i64;
            if let Some(&id) = self.int_keys.get(&value) {
                return Some(id);
            }
            let mut bytes = Vec::with_capacity(9);
            push_int_part(&mut bytes, value);
            let id = self.key_bytes.len() as u32;
            self.key_bytes.push(bytes);
            self.int_keys.insert(value, id);
            return Some(id);
        }
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
        if let Some(&id) = self.byte_keys.get(buf.as_slice()) {
            return Some(id);
        }
        let id = self.key_bytes.len() as u32;
        self.key_bytes.push(buf.clone());
        self.byte_keys.insert(buf.clone(), id);
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
                let _ = state.update_item(&Item::Text(dict[code as usize].clone()));
            }
        }
        (RuleInput::Item, ValueColumn::Numbers(v)) => {
            let _ = state.update_item(&Item::Number(v[row]));
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
