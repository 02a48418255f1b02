//! The store's view of a plan: series, their rules, and the bucket layouts derived from
//! them. A layout is one bucket size of one series; its record holds the states of every
//! rule that uses that size, in rule order, so an event costs one fold per layout and a
//! commit writes one RocksDB entry per touched (series, key, layout, bucket).

use serde::{Deserialize, Serialize};
use tessera_core::aggregation::{AggregationArguments, AggregationKind, FoldInput, ValueClass};
use tessera_core::{Aggregation, BucketSpan, MAX_DURATION_MS};

use crate::error::{invalid_description, StoreResult};

/// What the aggregated column of a series holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    Number,
    String,
    Vector,
}

/// One aggregation as the planner describes it and the store records it: `kind` is a
/// name of the aggregation catalog ([`tessera_core::aggregation::CATALOG`]: `sum`,
/// `var_sample`, `min_by_n`, ...) and the options are its arguments, whose ranges and
/// defaults the catalog gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AggregationSpec {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lg_k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sketch_size: Option<u32>,
}

/// One (aggregation, bucket size) rule of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSpec {
    pub aggregation: AggregationSpec,
    pub bucket_size_ms: i64,
    pub bucket_origin_ms: i64,
    /// The largest window this rule serves; the store keeps one bucket more.
    pub retention_ms: i64,
}

/// One stored time series: a group key's values of one aggregated column, with its rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSpec {
    pub id: String,
    pub value_kind: ValueKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_dim: Option<u32>,
    pub rules: Vec<RuleSpec>,
}

/// A readable description of a series, given by the planner and kept in the store's
/// series record, so that a series whose definition is gone from the code can still be
/// described (`transaction.amount by user_id: sum per 1d`). It does not take part in
/// deciding whether a stored series matches its spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SeriesSummary {
    /// The aggregated feature class.
    pub namespace: String,
    /// Columns of the group key.
    pub group_key: Vec<String>,
    /// The aggregated column (`amount`, `amount@2`); none for a count of rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Ingest filters, e.g. `category in [1,2]`.
    pub filters: Vec<String>,
    /// One entry per rule: `sum per 1d`.
    pub aggregations: Vec<String>,
    /// The whole description in one line.
    pub description: String,
}

/// A validated rule: its core aggregation and how it reads a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub aggregation: Aggregation,
    pub input: FoldInput,
    /// The quantile to evaluate, for approx_percentile.
    pub quantile: Option<f64>,
    /// Whether top-k results carry their weights.
    pub with_weights: bool,
}

/// One bucket size of one series, with the rules (indexes into the series' rules) whose
/// states share its records.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub span: BucketSpan,
    pub rules: Vec<usize>,
    pub retention_ms: i64,
}

/// A series ready to use: spec, validated rules, layouts, and where each rule sits.
#[derive(Debug, Clone)]
pub struct SeriesLayout {
    pub spec: SeriesSpec,
    /// The store-wide number of the series, used in bucket keys.
    pub number: u32,
    pub rules: Vec<Rule>,
    pub layouts: Vec<Layout>,
    /// For each rule: (layout index, position of its state in that layout's record).
    pub rule_slots: Vec<(usize, usize)>,
    /// Whether any rule reads the `by` column.
    pub needs_by: bool,
}

impl SeriesLayout {
    /// Validates a series spec and derives its layouts.
    pub fn new(spec: SeriesSpec, number: u32) -> StoreResult<Self> {
        let series = &spec.id;
        if spec.id.is_empty() {
            return Err(invalid_description("a series has an empty id"));
        }
        if spec.rules.is_empty() {
            return Err(invalid_description(format!(
                "series '{series}' has no rules"
            )));
        }
        if spec.value_kind == ValueKind::Vector && spec.vector_dim.unwrap_or(0) == 0 {
            return Err(invalid_description(format!(
                "series '{series}' holds vectors but gives no vectorDim"
            )));
        }
        let mut rules = Vec::with_capacity(spec.rules.len());
        let mut layouts: Vec<Layout> = Vec::new();
        let mut rule_slots = Vec::with_capacity(spec.rules.len());
        for (index, rule) in spec.rules.iter().enumerate() {
            let context = format!("series '{series}' rule {index} ({})", rule.aggregation.kind);
            let built = build_rule(&rule.aggregation, spec.value_kind, spec.vector_dim)
                .map_err(|m| invalid_description(format!("{context}: {m}")))?;
            if rule.retention_ms <= 0 || rule.retention_ms > MAX_DURATION_MS {
                return Err(invalid_description(format!(
                    "{context}: retention {} ms is outside 1 ms ..= 100 years",
                    rule.retention_ms
                )));
            }
            let span = BucketSpan::new(rule.bucket_size_ms, rule.bucket_origin_ms)
                .map_err(|e| invalid_description(format!("{context}: {}", e.message)))?;
            let layout_index = match layouts
                .iter()
                .position(|l| l.span.size_ms() == span.size_ms())
            {
                Some(i) if layouts[i].span != span => {
                    return Err(invalid_description(format!(
                        "{context}: bucket size {} ms appears with two origins ({} and {} ms); \
                         give each origin its own series",
                        span.size_ms(),
                        layouts[i].span.origin_ms(),
                        span.origin_ms()
                    )));
                }
                Some(i) => i,
                None => {
                    layouts.push(Layout {
                        span,
                        rules: Vec::new(),
                        retention_ms: 0,
                    });
                    layouts.len() - 1
                }
            };
            let layout = &mut layouts[layout_index];
            rule_slots.push((layout_index, layout.rules.len()));
            layout.rules.push(index);
            layout.retention_ms = layout.retention_ms.max(rule.retention_ms);
            rules.push(built);
        }
        let needs_by = rules
            .iter()
            .any(|r| matches!(r.input, FoldInput::Ranked | FoldInput::Weighted));
        Ok(Self {
            spec,
            number,
            rules,
            layouts,
            rule_slots,
            needs_by,
        })
    }
}

impl SeriesLayout {
    /// This series with only the layouts of the given bucket sizes, for a fold that
    /// feeds those alone (a backfill). Its `rule_slots` still index the full layout
    /// list: the copy folds and writes records, it is never read through.
    pub(crate) fn restricted_to(&self, bucket_sizes_ms: &[i64]) -> SeriesLayout {
        let mut copy = self.clone();
        copy.layouts
            .retain(|layout| bucket_sizes_ms.contains(&layout.span.size_ms()));
        copy
    }
}

fn build_rule(
    spec: &AggregationSpec,
    kind: ValueKind,
    vector_dim: Option<u32>,
) -> Result<Rule, String> {
    let aggregation_kind = AggregationKind::from_name(&spec.kind).ok_or_else(|| {
        format!(
            "unknown aggregation '{}' (known: {})",
            spec.kind,
            AggregationKind::names()
        )
    })?;
    let arguments = AggregationArguments {
        n: spec.n,
        k: spec.k,
        weighted: spec.weighted,
        quantile: spec.quantile,
        lg_k: spec.lg_k,
        sketch_size: spec.sketch_size,
    };
    let class = match kind {
        ValueKind::Number => ValueClass::Number,
        ValueKind::String => ValueClass::Text,
        ValueKind::Vector => ValueClass::Vector,
    };
    let (aggregation, input) =
        Aggregation::resolve(aggregation_kind, &arguments, class, vector_dim.unwrap_or(0))
            .map_err(|e| e.message)?;
    let quantile = match aggregation {
        Aggregation::ApproxPercentile { quantile, .. } => Some(quantile),
        _ => None,
    };
    let with_weights = matches!(aggregation, Aggregation::ApproxTopK { .. });
    Ok(Rule {
        aggregation,
        input,
        quantile,
        with_weights,
    })
}
