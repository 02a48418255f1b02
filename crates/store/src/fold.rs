//! Ingest: columnar batches folded in memory into per-(series, key, layout, bucket)
//! states. Nothing here touches RocksDB; a commit turns the pending delta into one
//! coalesced update per touched bucket.

use rustc_hash::FxHashMap;
use tessera_core::{AggState, Aggregation, Item, NumericSummary, StartCache};

use crate::bucket_table::{BucketSlot, BucketTable};
use crate::error::{invalid_batch, StoreResult};
use crate::key::{bucket_key, check_group_keys, int_key_part, push_int_part, push_text_part};
use crate::layout::{Layout, SeriesLayout, ValueKind};
use tessera_core::aggregation::FoldInput;
use tessera_core::hint::prefetch;

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

/// The buckets of one (series, layout) touched since the last commit.
///
/// `Summaries` is the fast path for a numeric series whose rules at this size are all
/// sum/count/mean/min/max: one 32-byte summary per bucket, kept in the hash table's slot,
/// serves them all. Otherwise each slot `s` owns `states[s * stride .. (s + 1) * stride]`,
/// one state per rule of the layout.
enum LayoutDelta {
    Summaries {
        /// Single-integer group keys.
        ints: BucketTable<NumericSummary>,
        /// Other group keys, by interned id.
        interned: BucketTable<NumericSummary>,
    },
    States(RuleStates),
}

/// The buckets of a layout whose rules each keep their own state.
struct RuleStates {
    /// (key, start) -> slot, for single-integer keys and interned ids.
    int_slots: BucketTable<u32>,
    interned_slots: BucketTable<u32>,
    slot_keys: Vec<(KeyToken, i64)>,
    stride: usize,
    states: Vec<AggState>,
}

impl RuleStates {
    /// The slot of (key, bucket start), created with empty states.
    #[inline]
    fn slot(&mut self, key: KeyToken, start: i64, series: &SeriesLayout, rules: &[usize]) -> usize {
        let (slot, inserted) = match key {
            KeyToken::Int(k) => self.int_slots.entry(k, start),
            KeyToken::Interned(k) => self.interned_slots.entry(i64::from(k), start),
        };
        if inserted {
            *slot = self.slot_keys.len() as u32;
            self.slot_keys.push((key, start));
            self.states.extend(
                rules
                    .iter()
                    .map(|&r| AggState::new(&series.rules[r].aggregation)),
            );
        }
        *slot as usize
    }

    /// Folds row `row` of `batch` into the bucket (key, start) of `layout`.
    #[inline]
    fn fold_row(
        &mut self,
        key: KeyToken,
        start: i64,
        series: &SeriesLayout,
        layout: &crate::layout::Layout,
        batch: &SeriesBatch<'_>,
        row: usize,
    ) {
        let dim = series.spec.vector_dim.unwrap_or(0) as usize;
        let slot = self.slot(key, start, series, &layout.rules);
        let states = &mut self.states[slot * self.stride..(slot + 1) * self.stride];
        for (state, &rule) in states.iter_mut().zip(&layout.rules) {
            let rule = &series.rules[rule];
            // A retired rule's state stays empty: its slot is kept, never fed.
            if !rule.retired {
                fold_value(state, rule.input, &rule.aggregation, batch, row, dim);
            }
        }
    }
}

impl LayoutDelta {
    fn new(series: &SeriesLayout, layout: &crate::layout::Layout) -> Self {
        let summarised = series.spec.value_kind == ValueKind::Number
            && layout.rules.iter().all(|&r| {
                let rule = &series.rules[r];
                rule.retired
                    || (rule.input == FoldInput::Number
                        && NumericSummary::covers(&rule.aggregation))
            });
        if summarised {
            Self::Summaries {
                ints: BucketTable::default(),
                interned: BucketTable::default(),
            }
        } else {
            Self::States(RuleStates {
                int_slots: BucketTable::default(),
                interned_slots: BucketTable::default(),
                slot_keys: Vec::new(),
                stride: layout.rules.len(),
                states: Vec::new(),
            })
        }
    }

    fn bucket_count(&self) -> usize {
        match self {
            Self::Summaries { ints, interned } => ints.len() + interned.len(),
            Self::States(rule_states) => rule_states.slot_keys.len(),
        }
    }

    fn clear(&mut self) {
        match self {
            Self::Summaries { ints, interned } => {
                ints.clear();
                interned.clear();
            }
            Self::States(rule_states) => {
                rule_states.int_slots.clear();
                rule_states.interned_slots.clear();
                rule_states.slot_keys.clear();
                rule_states.states.clear();
            }
        }
    }
}

/// How many rows ahead the summary fold prefetches its hash slot: enough misses in
/// flight to cover a memory access, few enough to stay in the line-fill buffers.
const PREFETCH_AHEAD: usize = 8;

/// Bucket states folded in memory since the last commit.
#[derive(Default)]
pub struct PendingDelta {
    /// Indexed by [series index][layout index].
    layouts: Vec<Vec<LayoutDelta>>,
    interned: FxHashMap<Vec<u8>, u32>,
    interned_bytes: Vec<Vec<u8>>,
    rows: u64,
    /// The buffers of the sorts a commit makes, kept between commits so each commit does
    /// not fault in fresh pages for them.
    sort_scratch: SortScratch,
}

/// Receives the buckets of a delta in key order, layout by layout
/// ([`PendingDelta::emit_sorted`]).
pub(crate) trait BucketSink {
    /// The buckets of `layout` of `series` follow.
    fn layout(&mut self, series: &SeriesLayout, layout: &Layout);
    /// One bucket: its key, the group key inside it, its start, and its record (`None`
    /// when its rows held no value).
    fn bucket(&mut self, key: &[u8], group_key: &[u8], start: i64, record: Option<&[u8]>);
}

/// The buffers of [`PendingDelta::emit_sorted`]'s sorts.
#[derive(Default)]
struct SortScratch {
    /// Summaries with their place in key order (see `sort_int_summaries`), and the
    /// second buffer of their radix sort.
    placed: Vec<(u64, NumericSummary)>,
    radix: Vec<(u64, NumericSummary)>,
    /// Summaries of other keys, sorted by value.
    slots: Vec<BucketSlot<NumericSummary>>,
}

/// How a place packs a (key, bucket start): `(key - min_key) * buckets + (start -
/// min_start) / size`.
#[derive(Clone, Copy)]
struct Packing {
    min_key: i64,
    min_start: i64,
    size: i64,
    buckets: u64,
}

impl Packing {
    #[inline]
    fn place(&self, key: i64, start: i64) -> u64 {
        let bucket = (start as i128 - self.min_start as i128) as u64 / self.size as u64;
        (key as i128 - self.min_key as i128) as u64 * self.buckets + bucket
    }

    #[inline]
    fn key_and_start(&self, place: u64) -> (i64, i64) {
        let key = (self.min_key as i128 + (place / self.buckets) as i128) as i64;
        let start =
            (self.min_start as i128 + ((place % self.buckets) * self.size as u64) as i128) as i64;
        (key, start)
    }
}

impl SortScratch {
    /// The summaries of `table` (single-integer keys) in key order: by key, then bucket
    /// start. When its keys and buckets span a range whose product fits 64 bits (the usual
    /// case: a spill or a commit covers some thousands of keys over some days), each
    /// (key, start) is packed into one integer and the (place, summary) pairs are
    /// radix-sorted, a few sequential passes instead of a comparison sort of the slots;
    /// otherwise the slots are sorted by comparison. Returns the packing used, or `None`
    /// when the sorted slots are in `self.slots`.
    fn sort_int_summaries(
        &mut self,
        table: &BucketTable<NumericSummary>,
        size_ms: i64,
    ) -> Option<Packing> {
        self.placed.clear();
        self.slots.clear();
        let ((kmin, kmax), (smin, smax)) = table.bounds()?;
        // Every start of a layout's table is one of its bucket edges (`BucketSpan::start_of`),
        // so `(start - smin) / size` is exact.
        let size = size_ms.max(1);
        let keys = (kmax as i128 - kmin as i128) as u128 + 1;
        let buckets = (smax as i128 - smin as i128) as u128 / size as u128 + 1;
        if keys * buckets > u128::from(u64::MAX) {
            self.slots.extend(table.iter().copied());
            self.slots.sort_unstable_by_key(|s| (s.key, s.start));
            return None;
        }
        let packing = Packing {
            min_key: kmin,
            min_start: smin,
            size,
            buckets: buckets as u64,
        };
        let top = keys * buckets - 1;
        let bits = (u128::BITS - top.leading_zeros()).max(1);
        // As few passes as digits of at most 11 bits (2,048 counters) allow.
        let passes = bits.div_ceil(11);
        let digit_bits = bits.div_ceil(passes);
        let mut counts = vec![[0usize; 1 << 11]; passes as usize];
        let mask = (1u64 << digit_bits) - 1;
        self.placed.extend(table.iter().map(|s| {
            debug_assert_eq!((s.start as i128 - smin as i128) % size as i128, 0);
            let place = packing.place(s.key, s.start);
            for (pass, count) in counts.iter_mut().enumerate() {
                count[((place >> (pass as u32 * digit_bits)) & mask) as usize] += 1;
            }
            (place, s.value)
        }));
        self.radix.clear();
        self.radix
            .resize(self.placed.len(), (0, NumericSummary::default()));
        for (pass, count) in counts.iter_mut().enumerate() {
            let shift = pass as u32 * digit_bits;
            let mut sum = 0;
            for offset in count.iter_mut() {
                let n = *offset;
                *offset = sum;
                sum += n;
            }
            for &entry in &self.placed {
                let digit = ((entry.0 >> shift) & mask) as usize;
                self.radix[count[digit]] = entry;
                count[digit] += 1;
            }
            std::mem::swap(&mut self.placed, &mut self.radix);
        }
        Some(packing)
    }
}

/// What [`PendingDelta::write_records`] wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordsWritten {
    pub buckets: u64,
    pub bytes: u64,
}

impl PendingDelta {
    /// Rows folded since the last commit.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Buckets touched since the last commit.
    pub fn bucket_count(&self) -> usize {
        self.layouts
            .iter()
            .flatten()
            .map(LayoutDelta::bucket_count)
            .sum()
    }

    /// Hands every touched bucket that holds a value to `emit` as (bucket key, record),
    /// the record being the states of its layout's rules in order. Buckets come in key
    /// order within each (series, layout), which is what RocksDB's memtable inserts
    /// fastest; `series` is the store's active list, indexed as at fold time.
    pub fn write_records(
        &mut self,
        series: &[SeriesLayout],
        mut emit: impl FnMut(&[u8], &[u8]),
    ) -> RecordsWritten {
        self.emit_records(series, false, |key, record| {
            if let Some(record) = record {
                emit(key, record);
            }
        })
    }

    /// [`PendingDelta::write_records`], also handing over, as `None`, the buckets whose
    /// rows held no value (a key a backfill saw, whose buckets it must still clear).
    pub fn write_records_and_empty(
        &mut self,
        series: &[SeriesLayout],
        emit: impl FnMut(&[u8], Option<&[u8]>),
    ) -> RecordsWritten {
        self.emit_records(series, true, emit)
    }

    fn emit_records(
        &mut self,
        series: &[SeriesLayout],
        with_empty: bool,
        emit: impl FnMut(&[u8], Option<&[u8]>),
    ) -> RecordsWritten {
        struct Adapter<F> {
            emit: F,
            written: RecordsWritten,
        }
        impl<F: FnMut(&[u8], Option<&[u8]>)> BucketSink for Adapter<F> {
            fn layout(&mut self, _: &SeriesLayout, _: &Layout) {}
            fn bucket(&mut self, key: &[u8], _: &[u8], _: i64, record: Option<&[u8]>) {
                if let Some(record) = record {
                    self.written.buckets += 1;
                    self.written.bytes += (key.len() + record.len()) as u64;
                }
                (self.emit)(key, record);
            }
        }
        let mut adapter = Adapter {
            emit,
            written: RecordsWritten::default(),
        };
        self.emit_sorted(series, with_empty, &mut adapter);
        adapter.written
    }

    /// Hands every touched bucket to `sink`, one (series, layout) after another (series
    /// by number, layouts in the series' order), each layout's buckets in key order;
    /// with `with_empty`, the buckets whose rows held no value too, as `None`.
    pub(crate) fn emit_sorted(
        &mut self,
        series: &[SeriesLayout],
        with_empty: bool,
        sink: &mut impl BucketSink,
    ) {
        let mut scratch = std::mem::take(&mut self.sort_scratch);
        let (mut key, mut group_key, mut record) = (
            Vec::with_capacity(64),
            Vec::with_capacity(32),
            Vec::with_capacity(256),
        );
        let mut emit_one = |sink: &mut _,
                            series: &SeriesLayout,
                            size_ms: i64,
                            group_key: &[u8],
                            start: i64,
                            record: Option<&[u8]>| {
            bucket_key(&mut key, series.number, group_key, size_ms, start);
            BucketSink::bucket(sink, &key, group_key, start, record);
        };
        let interned_bytes = &self.interned_bytes;
        let mut order: Vec<usize> = (0..self.layouts.len().min(series.len())).collect();
        order.sort_unstable_by_key(|&i| series[i].number);
        for index in order {
            let series = &series[index];
            for (layout, delta) in series.layouts.iter().zip(&mut self.layouts[index]) {
                if delta.bucket_count() == 0 {
                    continue;
                }
                sink.layout(series, layout);
                let size_ms = layout.span.size_ms();
                match delta {
                    LayoutDelta::Summaries { ints, interned } => {
                        let mut write = |sink: &mut _,
                                         slot: &BucketSlot<NumericSummary>,
                                         group_key: &[u8]| {
                            if slot.value.is_empty() {
                                if with_empty {
                                    emit_one(sink, series, size_ms, group_key, slot.start, None);
                                }
                                return;
                            }
                            record.clear();
                            for &r in &layout.rules {
                                let rule = &series.rules[r];
                                if rule.retired {
                                    AggState::new(&rule.aggregation).encode(&mut record);
                                } else {
                                    slot.value.encode_state(&rule.aggregation, &mut record);
                                }
                            }
                            emit_one(sink, series, size_ms, group_key, slot.start, Some(&record));
                        };
                        // Integer keys.
                        match scratch.sort_int_summaries(ints, size_ms) {
                            Some(packing) => {
                                for &(place, value) in &scratch.placed {
                                    let (key, start) = packing.key_and_start(place);
                                    let slot = BucketSlot { key, start, value };
                                    group_key.clear();
                                    push_int_part(&mut group_key, key);
                                    write(sink, &slot, &group_key);
                                }
                            }
                            None => {
                                for slot in &scratch.slots {
                                    group_key.clear();
                                    push_int_part(&mut group_key, slot.key);
                                    write(sink, slot, &group_key);
                                }
                            }
                        }
                        let slots = &mut scratch.slots;
                        slots.clear();
                        slots.extend(interned.iter().copied());
                        slots.sort_unstable_by(|a, b| {
                            interned_order(interned_bytes, a.key as u32, b.key as u32)
                                .then(a.start.cmp(&b.start))
                        });
                        for slot in slots.iter() {
                            let bytes = &interned_bytes[slot.key as usize];
                            write(sink, slot, bytes);
                        }
                        slots.clear();
                    }
                    LayoutDelta::States(RuleStates {
                        slot_keys,
                        stride,
                        states,
                        ..
                    }) => {
                        // (key, start, slot), built in slot order (sequential reads) and
                        // sorted into key order; integer keys first, as their shorter
                        // encoding sorts first in the store.
                        let mut ints: Vec<(i64, i64, u32)> = Vec::new();
                        let mut interned: Vec<(u32, i64, u32)> = Vec::new();
                        for (slot, &(token, start)) in slot_keys.iter().enumerate() {
                            match token {
                                KeyToken::Int(k) => ints.push((k, start, slot as u32)),
                                KeyToken::Interned(id) => interned.push((id, start, slot as u32)),
                            }
                        }
                        ints.sort_unstable();
                        interned.sort_unstable_by(|a, b| {
                            interned_order(interned_bytes, a.0, b.0).then(a.1.cmp(&b.1))
                        });
                        let ordered =
                            ints.iter()
                                .map(|&(k, start, slot)| (KeyToken::Int(k), start, slot))
                                .chain(interned.iter().map(|&(id, start, slot)| {
                                    (KeyToken::Interned(id), start, slot)
                                }));
                        let slot_of = |i: usize| {
                            ints.get(i)
                                .map(|e| e.2)
                                .or_else(|| interned.get(i - ints.len()).map(|e| e.2))
                        };
                        let stride = *stride;
                        for (i, (token, start, slot)) in ordered.enumerate() {
                            // The states are read in key order, not in the order they were
                            // created: ask for the ones a few buckets ahead early, and for
                            // what their boxes hold once the states themselves are in.
                            if let Some(ahead) = slot_of(i + 2 * PREFETCH_AHEAD) {
                                prefetch(&states[ahead as usize * stride]);
                            }
                            if let Some(ahead) = slot_of(i + PREFETCH_AHEAD) {
                                let ahead = ahead as usize * stride;
                                states[ahead..ahead + stride]
                                    .iter()
                                    .for_each(AggState::prefetch_heap);
                            }
                            let slot = slot as usize;
                            let states = &mut states[slot * stride..(slot + 1) * stride];
                            if states.iter().all(AggState::is_empty) {
                                if with_empty {
                                    group_key_of(interned_bytes, token, &mut group_key);
                                    emit_one(sink, series, size_ms, &group_key, start, None);
                                }
                                continue;
                            }
                            record.clear();
                            // The pending states are dropped after the commit: a sketch may
                            // compact itself rather than a copy.
                            states
                                .iter_mut()
                                .for_each(|state| state.encode_compacting(&mut record));
                            group_key_of(interned_bytes, token, &mut group_key);
                            emit_one(sink, series, size_ms, &group_key, start, Some(&record));
                        }
                    }
                }
            }
        }
        self.sort_scratch = scratch;
    }

    /// Swaps the buffers of the sorts with `other`'s (a backfill hands its one set to
    /// whichever delta it spills next).
    pub(crate) fn swap_sort_scratch(&mut self, other: &mut PendingDelta) {
        std::mem::swap(&mut self.sort_scratch, &mut other.sort_scratch);
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
        if let Some(row) = first_bad_row(batch.selection, batch.timestamps_ms, bad_time) {
            let t = batch.timestamps_ms[row];
            return Err(invalid_batch(format!(
                "series '{id}': timestamp at row {row} is {t}, not a time in milliseconds"
            )));
        }
        for column in &batch.keys {
            if let KeyColumn::Ints(v) = column {
                // NaN is a null key; anything else must be a safe integer.
                let bad_key = |k: f64| k.abs() > 9_007_199_254_740_991.0 || (k as i64) as f64 != k;
                let bad_key = |k: f64| !k.is_nan() && bad_key(k);
                if let Some(row) = first_bad_row(batch.selection, v, bad_key) {
                    int_key_part(v[row], row, &format!("series '{id}'"))?;
                }
            }
        }
        check_group_keys(&batch.keys, batch.selection, &format!("series '{id}'"))
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
        if self.fold_single_layout(series_index, series, batch) {
            return;
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

    /// The fast path: one integer key column and one layout. Each row's hash slot is
    /// prefetched a few rows ahead, so that the cache misses of many keys overlap.
    /// Returns false, having done nothing, when the batch is not of this shape.
    fn fold_single_layout(
        &mut self,
        series_index: usize,
        series: &SeriesLayout,
        batch: &SeriesBatch<'_>,
    ) -> bool {
        let ([KeyColumn::Ints(keys)], [delta], [layout]) = (
            batch.keys.as_slice(),
            self.layouts[series_index].as_mut_slice(),
            series.layouts.as_slice(),
        ) else {
            return false;
        };
        let mut starts = StartCache::new(layout.span);
        let ts = batch.timestamps_ms;
        let n = batch.selection.map_or(ts.len(), <[u32]>::len);
        let row_at = |i: usize| batch.selection.map_or(i, |s| s[i] as usize);
        let locate = |r: usize| {
            let k = keys[r];
            (k as i64, starts.start_of(floor_ms(ts[r])), !k.is_nan())
        };
        let folded = match (delta, batch.values) {
            (LayoutDelta::Summaries { ints, .. }, ValueColumn::Numbers(values)) => prefetched_rows(
                n,
                row_at,
                locate,
                ints,
                |ints, k, s| ints.prefetch(k, s),
                |ints, r, k, s| ints.entry(k, s).0.update(values[r]),
            ),
            (LayoutDelta::Summaries { .. }, _) => return false,
            (LayoutDelta::States(rule_states), _) => prefetched_rows(
                n,
                row_at,
                locate,
                rule_states,
                |t, k, s| t.int_slots.prefetch(k, s),
                |t, r, k, s| t.fold_row(KeyToken::Int(k), s, series, layout, batch, r),
            ),
        };
        self.rows += folded;
        true
    }

    fn fold_rows(
        &mut self,
        series_index: usize,
        series: &SeriesLayout,
        batch: &SeriesBatch<'_>,
        rows: impl Iterator<Item = usize>,
    ) {
        let mut key_buf = Vec::with_capacity(32);
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
            let t = floor_ms(batch.timestamps_ms[row]);
            self.rows += 1;
            for (layout, delta) in series.layouts.iter().zip(&mut self.layouts[series_index]) {
                let start = layout.span.start_of(t);
                match delta {
                    LayoutDelta::Summaries { ints, interned } => {
                        if let ValueColumn::Numbers(v) = batch.values {
                            let summary = match key {
                                KeyToken::Int(k) => ints.entry(k, start).0,
                                KeyToken::Interned(id) => interned.entry(i64::from(id), start).0,
                            };
                            summary.update(v[row]);
                        }
                    }
                    LayoutDelta::States(rule_states) => {
                        rule_states.fold_row(key, start, series, layout, batch, row);
                    }
                }
            }
        }
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

/// The first row (of the selection, or of all rows) whose value is bad. Without a
/// selection the common case, no bad row, is one branch-free pass the compiler vectorises.
#[inline]
fn first_bad_row(
    selection: Option<&[u32]>,
    column: &[f64],
    bad: impl Fn(f64) -> bool,
) -> Option<usize> {
    match selection {
        None => column
            .iter()
            .fold(false, |any, &x| any | bad(x))
            .then(|| column.iter().position(|&x| bad(x)))
            .flatten(),
        Some(rows) => rows.iter().map(|&r| r as usize).find(|&r| bad(column[r])),
    }
}

/// The millisecond holding `t`: `t.floor()` for the checked range (|t| <= 8.64e15), without
/// the call into libm that `floor` costs on baseline x86-64.
#[inline]
pub(crate) fn floor_ms(t: f64) -> i64 {
    let truncated = t as i64;
    truncated - i64::from((truncated as f64) > t)
}

/// Runs `fold(context, row, key, start)` over `n` rows (row `i` is `row_at(i)`, its key
/// and bucket start `locate(row)`, skipped when the key is null), calling
/// `prefetch(context, key, start)` for each row `PREFETCH_AHEAD` rows before folding it.
/// Returns the rows folded.
fn prefetched_rows<C: ?Sized>(
    n: usize,
    row_at: impl Fn(usize) -> usize,
    mut locate: impl FnMut(usize) -> (i64, i64, bool),
    context: &mut C,
    prefetch: impl Fn(&C, i64, i64),
    mut fold: impl FnMut(&mut C, usize, i64, i64),
) -> u64 {
    // (row, key, start, present) of the rows ahead, so each start is computed once.
    let mut ahead = [(0usize, 0i64, 0i64, false); PREFETCH_AHEAD];
    for (i, slot) in ahead.iter_mut().enumerate().take(n) {
        let row = row_at(i);
        let (k, s, present) = locate(row);
        *slot = (row, k, s, present);
        if present {
            prefetch(context, k, s);
        }
    }
    let mut folded = 0;
    for i in 0..n {
        let (row, key, start, present) = ahead[i % PREFETCH_AHEAD];
        if i + PREFETCH_AHEAD < n {
            let next = row_at(i + PREFETCH_AHEAD);
            let (k, s, p) = locate(next);
            if p {
                prefetch(context, k, s);
            }
            ahead[i % PREFETCH_AHEAD] = (next, k, s, p);
        }
        if present {
            folded += 1;
            fold(context, row, key, start);
        }
    }
    folded
}

/// The encoded group key of `token` into `out` (cleared first).
fn group_key_of(interned_bytes: &[Vec<u8>], token: KeyToken, out: &mut Vec<u8>) {
    out.clear();
    match token {
        KeyToken::Int(k) => push_int_part(out, k),
        KeyToken::Interned(id) => out.extend_from_slice(&interned_bytes[id as usize]),
    }
}

/// The order of two interned group keys in the store: by length, then bytes.
fn interned_order(interned_bytes: &[Vec<u8>], a: u32, b: u32) -> std::cmp::Ordering {
    let (a, b) = (&interned_bytes[a as usize], &interned_bytes[b as usize]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
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
pub(crate) fn fold_value(
    state: &mut AggState,
    input: FoldInput,
    aggregation: &Aggregation,
    batch: &SeriesBatch<'_>,
    row: usize,
    dim: usize,
) {
    let by = || batch.by.map_or(f64::NAN, |b| b[row]);
    match (input, batch.values) {
        (FoldInput::Number, ValueColumn::Numbers(v)) => state.update_number(v[row]),
        (FoldInput::Item, ValueColumn::Strings { dict, codes }) => {
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
        (FoldInput::Item, ValueColumn::Numbers(v)) => {
            let _ = state.update_item(&Item::Number(v[row]));
        }
        (FoldInput::Weighted, ValueColumn::Numbers(v)) => {
            let _ = state.update_weighted(Item::Number(v[row]), by());
        }
        (FoldInput::Weighted, ValueColumn::Strings { dict, codes }) => {
            let code = codes[row];
            let weight = by();
            // Skipped rows (null value, null or non-positive weight) copy no string.
            if code != NULL_CODE && weight.is_finite() && weight > 0.0 {
                let _ = state.update_weighted(Item::Text(dict[code as usize].clone()), weight);
            }
        }
        (FoldInput::Ranked, ValueColumn::Numbers(v)) if v[row].is_finite() => {
            state.update_ranked(by(), Item::Number(v[row]));
        }
        (FoldInput::Ranked, ValueColumn::Strings { dict, codes }) => {
            let code = codes[row];
            if code != NULL_CODE {
                state.update_ranked(by(), Item::Text(dict[code as usize].clone()));
            }
        }
        (FoldInput::Vector, ValueColumn::Vectors(flat)) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The (key, start, count) of every slot, in the order `sort_int_summaries` gives.
    fn sorted(table: &BucketTable<NumericSummary>, size_ms: i64) -> Vec<(i64, i64, u64)> {
        let mut scratch = SortScratch::default();
        match scratch.sort_int_summaries(table, size_ms) {
            Some(packing) => scratch
                .placed
                .iter()
                .map(|&(place, value)| {
                    let (key, start) = packing.key_and_start(place);
                    (key, start, value.count())
                })
                .collect(),
            None => scratch
                .slots
                .iter()
                .map(|s| (s.key, s.start, s.value.count()))
                .collect(),
        }
    }

    #[test]
    fn integer_keys_come_in_key_order_packed_or_compared() {
        let size = 3_600_000;
        let mut x = 11u64;
        // Keys and starts spanning small ranges (packed into places, radix-sorted), and
        // ranges too wide to pack (compared), negative keys and starts included.
        for (key_range, bucket_range) in [(1_000i64, 30i64), (300_000, 200), (i64::MAX, 5)] {
            let mut table = BucketTable::<NumericSummary>::default();
            let mut expected = std::collections::BTreeMap::new();
            for _ in 0..20_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = (x % key_range as u64) as i64 - key_range / 2;
                let start = ((x >> 40) % bucket_range as u64) as i64 * size - 5 * size;
                table.entry(key, start).0.update(1.0);
                *expected.entry((key, start)).or_insert(0u64) += 1;
            }
            let want: Vec<_> = expected.into_iter().map(|((k, s), n)| (k, s, n)).collect();
            assert_eq!(sorted(&table, size), want, "keys over {key_range}");
        }
        assert!(sorted(&BucketTable::default(), size).is_empty());
    }
}
