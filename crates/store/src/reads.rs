//! Window reads: one contiguous key range per (series, group key, bucket size), merged
//! rule by rule and evaluated. Only committed data is read, from one iterator over one
//! consistent view, and buckets past their retention are skipped.

use std::collections::HashMap;

use tessera_core::{AggState, AggValue};

use crate::error::{invalid_batch, StoreError, StoreErrorKind, StoreResult};
use crate::fold::{KeyColumn, NULL_CODE};
use crate::key::{bucket_key, int_key_part, parse_bucket_key, push_int_part, push_text_part};
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
        let rows = key_rows(keys)?;
        let groups = self.plan_reads(reads, now_ms)?;
        let wall = self.options.clock.now_ms();
        // A window without data evaluates the empty state: null, or 0 for count.
        let empty: Vec<AggValue> = groups
            .per_read
            .iter()
            .map(|r| AggState::new(&self.series[r.series].rules[r.rule].aggregation).evaluate())
            .collect();
        let mut values = Vec::with_capacity(rows * reads.len());
        for _ in 0..rows {
            values.extend(empty.iter().cloned());
        }
        let mut explanations = explain.then(|| {
            let mut e = Vec::with_capacity(rows * reads.len());
            for _ in 0..rows {
                for plan in &groups.per_read {
                    e.push(Explanation {
                        first_bucket_start: plan.first_start,
                        last_bucket_start: plan.last_start,
                        buckets_merged: 0,
                    });
                }
            }
            e
        });
        let mut iter = self.db.raw_iterator_cf(self.buckets_cf());
        let mut group_key = Vec::with_capacity(32);
        let mut lo = Vec::with_capacity(64);
        let mut hi = Vec::with_capacity(64);
        let mut accumulators: Vec<Option<AggState>> = Vec::new();
        for row in 0..rows {
            if !encode_key_row(keys, row, &mut group_key)? {
                // A null key has no data: every value stays Null.
                continue;
            }
            for group in &groups.groups {
                let series = &self.series[group.series];
                let layout = &series.layouts[group.layout];
                let size = layout.span.size_ms();
                bucket_key(&mut lo, series.number, &group_key, size, group.first_start);
                bucket_key(&mut hi, series.number, &group_key, size, group.last_start);
                accumulators.clear();
                accumulators.resize(group.reads.len(), None);
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
                    if layout.span.is_stale(parts.start, layout.retention_ms, wall) {
                        iter.next();
                        continue;
                    }
                    // The record's states are decoded one by one and merged straight into
                    // the reads that want them: no list of states per bucket, and the
                    // states after the last one read are not decoded.
                    let mut rest = value;
                    for position in 0..group.states_read {
                        // A record written before a rule was added to the layout ends
                        // before its slot: the rule had nothing in that bucket.
                        if rest.is_empty() {
                            break;
                        }
                        let (state, used) =
                            AggState::decode(rest).map_err(|e| corrupt_bucket(series, e))?;
                        rest = &rest[used..];
                        for (slot, read) in group.reads.iter().enumerate() {
                            if read.position != position || parts.start < read.first_start {
                                continue;
                            }
                            match &mut accumulators[slot] {
                                Some(acc) => {
                                    acc.merge(&state).map_err(|e| corrupt_bucket(series, e))?
                                }
                                empty => *empty = Some(state.clone()),
                            }
                            if let Some(e) = explanations.as_mut() {
                                e[row * reads.len() + read.read_index].buckets_merged += 1;
                            }
                        }
                    }
                    iter.next();
                }
                iter.status()?;
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

    fn plan_reads(&self, reads: &[WindowRead], now_ms: i64) -> StoreResult<ReadPlan> {
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
            });
        }
        Ok(plan)
    }
}

#[derive(Default)]
struct ReadPlan {
    groups: Vec<ReadGroup>,
    per_read: Vec<ReadWindow>,
}

struct ReadWindow {
    series: usize,
    /// The stored rule index.
    rule: usize,
    first_start: i64,
    last_start: i64,
}

struct ReadGroup {
    series: usize,
    layout: usize,
    first_start: i64,
    last_start: i64,
    /// How many of a record's states the reads need: one past the last position read.
    states_read: usize,
    reads: Vec<PlannedRead>,
}

struct PlannedRead {
    read_index: usize,
    position: usize,
    first_start: i64,
}

fn corrupt_bucket(series: &SeriesLayout, e: tessera_core::CoreError) -> StoreError {
    StoreError::new(
        StoreErrorKind::Core(e.kind),
        format!(
            "series '{}': a stored bucket cannot be read: {}",
            series.spec.id, e.message
        ),
    )
}

fn key_rows(keys: &[KeyColumn<'_>]) -> StoreResult<usize> {
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
fn encode_key_row(keys: &[KeyColumn<'_>], row: usize, out: &mut Vec<u8>) -> StoreResult<bool> {
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
