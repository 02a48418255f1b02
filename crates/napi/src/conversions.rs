//! Conversions between the boundary's objects and the store's types: borrowed batch
//! columns in, commit records in, evaluated values out.

use napi::bindgen_prelude::{Either, Float64Array};
use tessera_core::{AggValue, Item};
use tessera_store::{
    BufferPlan, Clock, CommitMode, DeadLetter, KeyColumn, OpenReport, ResolverState, RuleSpec,
    SeriesBatch, SourcePosition, ValueColumn, WindowRead,
};

use crate::description::{whole_ms, AggregationDescription, RuleDescription};
use crate::error::js_error;
use crate::objects::{
    BufferPlanOutput, CommitOptions, DeadLetterRecord, KeyPart, ListValue, OpenReportOutput,
    PartitionOffset, ReportedSeriesSummary, ResolverStateRecord, RetentionChangeOutput, RuleValue,
    SeriesBatchInput, SeriesChangeOutput, SourcePositionInput, WindowReadInput,
};

pub(crate) fn key_columns(parts: &[KeyPart]) -> napi::Result<Vec<KeyColumn<'_>>> {
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| match (&p.ints, &p.strings, &p.codes) {
            (Some(ints), None, None) => Ok(KeyColumn::Ints(ints)),
            (None, Some(dict), Some(codes)) => Ok(KeyColumn::Strings { dict, codes }),
            _ => Err(js_error(
                "INVALID_BATCH",
                format!("key part {i} must give either `ints` or `strings` with `codes`"),
            )),
        })
        .collect()
}

/// The store's window reads of a query's (or a coverage request's) reads.
pub(crate) fn window_reads(reads: &[WindowReadInput]) -> napi::Result<Vec<WindowRead>> {
    reads
        .iter()
        .map(|r| {
            Ok(WindowRead {
                series_id: r.series_id.clone(),
                rule: r.rule as usize,
                window_ms: whole_ms(r.window_ms, "windowMs", &r.series_id)?,
            })
        })
        .collect()
}

/// The continuous buffer of each read in ms (0: none).
pub(crate) fn read_buffers(reads: &[WindowReadInput]) -> napi::Result<Vec<i64>> {
    reads
        .iter()
        .map(|r| match r.buffer_ms {
            None => Ok(0),
            Some(ms) if ms >= 0.0 => whole_ms(ms, "bufferMs", &r.series_id),
            Some(ms) => Err(js_error(
                "INVALID_BATCH",
                format!("series '{}': bufferMs is {ms}, not >= 0", r.series_id),
            )),
        })
        .collect()
}

/// A buffered read's plan at the boundary.
pub(crate) fn buffer_plan_output(read: usize, plan: &BufferPlan) -> BufferPlanOutput {
    BufferPlanOutput {
        read: read as u32,
        buckets_before_ms: (plan.buckets_before_ms != i64::MIN)
            .then_some(plan.buckets_before_ms as f64),
        raw_from_ms: plan.raw_from_ms as f64,
        raw_to_ms: plan.raw_to_ms as f64,
        gap_from_ms: plan.gap.map(|(from, _)| from as f64),
        gap_to_ms: plan.gap.map(|(_, to)| to as f64),
        filled_until_ms: plan.filled_until_ms.map(|ms| ms as f64),
    }
}

/// The time a read is asked at: `now_ms` when given (for `what`), else the engine clock.
pub(crate) fn read_time(now_ms: Option<f64>, clock: &Clock, what: &str) -> napi::Result<i64> {
    match now_ms {
        Some(now) => whole_ms(now, "nowMs", what),
        None => Ok(clock.now_ms()),
    }
}

pub(crate) fn series_batches(inputs: &[SeriesBatchInput]) -> napi::Result<Vec<SeriesBatch<'_>>> {
    inputs.iter().map(series_batch).collect()
}

fn series_batch(input: &SeriesBatchInput) -> napi::Result<SeriesBatch<'_>> {
    let values = match (&input.numbers, &input.strings, &input.codes, &input.vectors) {
        (Some(n), None, None, None) => ValueColumn::Numbers(n),
        (None, Some(dict), Some(codes), None) => ValueColumn::Strings { dict, codes },
        (None, None, None, Some(v)) => ValueColumn::Vectors(v),
        _ => {
            return Err(js_error(
                "INVALID_BATCH",
                format!(
                "series '{}': give exactly one of `numbers`, `strings` with `codes`, or `vectors`",
                input.series_id
            ),
            ))
        }
    };
    Ok(SeriesBatch {
        series_id: &input.series_id,
        keys: key_columns(&input.keys)?,
        timestamps_ms: &input.timestamps_ms,
        values,
        by: input.by.as_deref(),
        selection: input.selection.as_deref(),
    })
}

/// A commit's options as the store takes them: mode and the meta records it writes.
pub(crate) struct CommitInput {
    pub mode: CommitMode,
    pub positions: Vec<SourcePosition>,
    pub dead_letters: Vec<DeadLetter>,
    pub resolver_states: Vec<ResolverState>,
    pub windowed: Vec<tessera_store::WindowedWrite>,
}

impl CommitInput {
    pub(crate) fn records(&self) -> tessera_store::CommitRecords<'_> {
        tessera_store::CommitRecords {
            positions: &self.positions,
            dead_letters: &self.dead_letters,
            resolver_states: &self.resolver_states,
            windowed: &self.windowed,
        }
    }
}

pub(crate) fn commit_input(options: Option<CommitOptions>) -> napi::Result<CommitInput> {
    let Some(options) = options else {
        return Ok(CommitInput {
            mode: CommitMode::Merge,
            positions: Vec::new(),
            dead_letters: Vec::new(),
            resolver_states: Vec::new(),
            windowed: Vec::new(),
        });
    };
    let resolver_states = options
        .resolver_states
        .unwrap_or_default()
        .into_iter()
        .map(resolver_state)
        .collect::<napi::Result<Vec<_>>>()?;
    Ok(CommitInput {
        mode: match options.replace {
            Some(true) => CommitMode::Replace,
            _ => CommitMode::Merge,
        },
        positions: options
            .positions
            .unwrap_or_default()
            .into_iter()
            .map(|p| SourcePosition {
                source: p.source,
                partition: p.partition,
                offset: p.offset,
            })
            .collect(),
        dead_letters: options
            .dead_letters
            .unwrap_or_default()
            .into_iter()
            .map(|l| DeadLetter {
                source: l.source,
                partition: l.partition,
                offset: l.offset,
                reason: l.reason,
                field: l.field,
                raw: l.raw.to_vec(),
                received_at_ms: l.received_at_ms as i64,
            })
            .collect(),
        resolver_states,
        windowed: match options.windowed {
            None => Vec::new(),
            Some(all) => {
                let mut writes = Vec::new();
                for records in &all {
                    crate::windowed::windowed_writes(records, &mut writes)?;
                }
                writes
            }
        },
    })
}

fn resolver_state(record: ResolverStateRecord) -> napi::Result<ResolverState> {
    let watermark_ms = match record.watermark_ms {
        None => None,
        Some(w) if w.is_finite() && w.fract() == 0.0 && w.abs() < 9.007e15 => Some(w as i64),
        Some(w) => {
            return Err(js_error(
                "INVALID_BATCH",
                format!(
                    "resolver '{}': watermarkMs {w} is not a whole number of milliseconds",
                    record.resolver
                ),
            ))
        }
    };
    Ok(ResolverState {
        resolver: record.resolver,
        watermark_ms,
        replay_from: record
            .replay_from
            .into_iter()
            .map(|p| (p.partition, p.offset))
            .collect(),
    })
}

pub(crate) fn resolver_state_record(state: ResolverState) -> ResolverStateRecord {
    ResolverStateRecord {
        resolver: state.resolver,
        watermark_ms: state.watermark_ms.map(|w| w as f64),
        replay_from: state
            .replay_from
            .into_iter()
            .map(|(partition, offset)| PartitionOffset { partition, offset })
            .collect(),
    }
}

pub(crate) fn position_output(p: SourcePosition) -> SourcePositionInput {
    SourcePositionInput {
        source: p.source,
        partition: p.partition,
        offset: p.offset,
    }
}

pub(crate) fn dead_letter_output(l: DeadLetter) -> DeadLetterRecord {
    DeadLetterRecord {
        source: l.source,
        partition: l.partition,
        offset: l.offset,
        reason: l.reason,
        field: l.field,
        raw: l.raw.into(),
        received_at_ms: l.received_at_ms as f64,
    }
}

pub(crate) fn open_report_output(report: &OpenReport) -> OpenReportOutput {
    let mut summaries: Vec<ReportedSeriesSummary> = report
        .summaries
        .iter()
        .map(|(id, summary)| ReportedSeriesSummary {
            id: id.clone(),
            summary: summary.clone().into(),
        })
        .collect();
    summaries.sort_by(|a, b| a.id.cmp(&b.id));
    OpenReportOutput {
        new_series: report.new_series.clone(),
        kept_series: report.kept_series.clone(),
        orphaned_series: report.orphaned_series.clone(),
        changed_series: report
            .changed_series
            .iter()
            .map(|c| SeriesChangeOutput {
                series_id: c.series_id.clone(),
                adopted_from: c.adopted_from.clone(),
                added: c.added.iter().map(rule_description).collect(),
                retired: c.retired.iter().map(rule_description).collect(),
                widened: c
                    .widened
                    .iter()
                    .map(|w| RetentionChangeOutput {
                        bucket_size_ms: w.bucket_size_ms as f64,
                        from_ms: w.from_ms as f64,
                        to_ms: w.to_ms as f64,
                    })
                    .collect(),
            })
            .collect(),
        summaries,
    }
}

/// A stored rule as the description that would request it.
fn rule_description(rule: &RuleSpec) -> RuleDescription {
    let a = &rule.aggregation;
    RuleDescription {
        aggregation: AggregationDescription {
            kind: a.kind.clone(),
            n: a.n,
            k: a.k,
            weighted: a.weighted,
            quantile: a.quantile,
            lg_k: a.lg_k,
            sketch_size: a.sketch_size,
        },
        bucket_size_ms: rule.bucket_size_ms as f64,
        bucket_origin_ms: rule.bucket_origin_ms as f64,
        retention_ms: rule.retention_ms as f64,
    }
}

fn item_value(item: &Item) -> Either<f64, String> {
    match item {
        Item::Number(n) => Either::A(*n),
        Item::Text(s) => Either::B(s.clone()),
    }
}

/// The cells of a window answer: one number per cell (NaN where there is no value or the
/// value is a list), plus the list values by cell index.
pub(crate) fn answer_cells(values: Vec<AggValue>) -> (Float64Array, Vec<ListValue>) {
    let mut numbers = Vec::with_capacity(values.len());
    let mut lists = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        let list = |items, weights, vector| ListValue {
            index: index as u32,
            items,
            weights,
            vector,
        };
        numbers.push(match value {
            AggValue::Null => f64::NAN,
            AggValue::Number(x) => x,
            AggValue::Count(c) => c as f64,
            AggValue::Items(items) => {
                lists.push(list(
                    Some(items.iter().map(item_value).collect()),
                    None,
                    None,
                ));
                f64::NAN
            }
            AggValue::Vector(v) => {
                lists.push(list(None, None, Some(v)));
                f64::NAN
            }
            AggValue::WeightedItems(pairs) => {
                let (items, weights) = pairs.iter().map(|(i, w)| (item_value(i), *w)).unzip();
                lists.push(list(Some(items), Some(weights), None));
                f64::NAN
            }
        });
    }
    (Float64Array::new(numbers), lists)
}

/// One rule's value in one stored bucket.
pub(crate) fn rule_value(rule: usize, value: AggValue) -> RuleValue {
    let mut out = RuleValue {
        rule: rule as u32,
        number: None,
        items: None,
        vector: None,
    };
    match value {
        AggValue::Null => {}
        AggValue::Number(x) => out.number = Some(x),
        AggValue::Count(c) => out.number = Some(c as f64),
        AggValue::Items(items) => out.items = Some(items.iter().map(item_value).collect()),
        AggValue::Vector(v) => out.vector = Some(v),
        // RuleValue has no weights field: the items, heaviest first.
        AggValue::WeightedItems(pairs) => {
            out.items = Some(pairs.iter().map(|(i, _)| item_value(i)).collect())
        }
    }
    out
}
