//! The store's view of a plan: series, their rules, and the bucket layouts derived from
//! them. A layout is one bucket size of one series; its record holds the states of every
//! rule that uses that size, in rule order, so an event costs one fold per layout and a
//! commit writes one RocksDB entry per touched (series, key, layout, bucket).

use serde::{Deserialize, Serialize};
use tessera_core::sketch::{DEFAULT_CPC_LG_K, DEFAULT_PERCENTILE_SIZE};
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

/// One aggregation as the planner describes it. `kind` is the aggregation's name
/// (`sum`, `var_sample`, `min_by_n`, ...); the options are its arguments:
///
/// | kind | arguments |
/// |---|---|
/// | `min_by_n`, `max_by_n` | `n` (required) |
/// | `approx_count_distinct` | `lg_k` (default [`DEFAULT_CPC_LG_K`] = 11) |
/// | `approx_top_k` | `k` (required), `weighted` (default false: weigh rows by `by`) |
/// | `approx_percentile` | `quantile` (required, in [0, 1]), `sketch_size` (default [`DEFAULT_PERCENTILE_SIZE`] = 200) |
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

/// How a rule takes its input from a batch row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleInput {
    /// One number per row (sum, mean, var, percentile, count over numbers...).
    Number,
    /// One item per row: a number or a string (count over strings, distinct count).
    Item,
    /// A (by, item) pair per row (min_by_n, max_by_n).
    Ranked,
    /// An item with a weight from the `by` column (weighted top-k); weight 1 when unweighted.
    Weighted,
    /// A vector per row (vector sum / mean).
    Vector,
}

/// A validated rule: its core aggregation and how it reads a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub aggregation: Aggregation,
    pub input: RuleInput,
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
            .any(|r| matches!(r.input, RuleInput::Ranked | RuleInput::Weighted));
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

fn build_rule(
    spec: &AggregationSpec,
    kind: ValueKind,
    vector_dim: Option<u32>,
) -> Result<Rule, String> {
    let numeric_only = |agg: Aggregation| -> Result<(Aggregation, RuleInput), String> {
        match kind {
            ValueKind::Number => Ok((agg, RuleInput::Number)),
            ValueKind::String => Err(format!(
                "{} needs a numeric column, but the series holds strings",
                spec.kind
            )),
            ValueKind::Vector => Err(format!(
                "{} is not defined for vectors (only sum and mean are)",
                spec.kind
            )),
        }
    };
    let n = || spec.n.ok_or_else(|| format!("{} needs n", spec.kind));
    // The sketches take numbers and strings (approx_percentile numbers only).
    let items_only = |what: &str| match kind {
        ValueKind::Vector => Err(format!("{what} over vectors is not supported")),
        _ => Ok(()),
    };
    let dim = vector_dim.unwrap_or(0);
    let (aggregation, input) = match spec.kind.as_str() {
        "sum" if kind == ValueKind::Vector => (Aggregation::VectorSum { dim }, RuleInput::Vector),
        "mean" if kind == ValueKind::Vector => (Aggregation::VectorMean { dim }, RuleInput::Vector),
        "sum" => numeric_only(Aggregation::Sum)?,
        "mean" => numeric_only(Aggregation::Mean)?,
        "min" => numeric_only(Aggregation::Min)?,
        "max" => numeric_only(Aggregation::Max)?,
        "var" => numeric_only(Aggregation::Var { sample: false })?,
        "var_sample" => numeric_only(Aggregation::Var { sample: true })?,
        "std" => numeric_only(Aggregation::Std { sample: false })?,
        "std_sample" => numeric_only(Aggregation::Std { sample: true })?,
        "count" => (
            Aggregation::Count,
            match kind {
                ValueKind::Number => RuleInput::Number,
                ValueKind::String => RuleInput::Item,
                ValueKind::Vector => RuleInput::Vector,
            },
        ),
        "min_by_n" => match kind {
            ValueKind::Vector => return Err("min_by_n over vectors is not supported".into()),
            _ => (Aggregation::MinByN { n: n()? }, RuleInput::Ranked),
        },
        "max_by_n" => match kind {
            ValueKind::Vector => return Err("max_by_n over vectors is not supported".into()),
            _ => (Aggregation::MaxByN { n: n()? }, RuleInput::Ranked),
        },
        "approx_count_distinct" => {
            items_only("approx_count_distinct")?;
            let lg_k = spec.lg_k.unwrap_or(u32::from(DEFAULT_CPC_LG_K));
            (Aggregation::ApproxCountDistinct { lg_k }, RuleInput::Item)
        }
        "approx_top_k" => {
            items_only("approx_top_k")?;
            let k = spec.k.ok_or("approx_top_k needs k")?;
            let weighted = spec.weighted.unwrap_or(false);
            let input = if weighted {
                RuleInput::Weighted
            } else {
                RuleInput::Item
            };
            (Aggregation::ApproxTopK { k, weighted }, input)
        }
        "approx_percentile" => {
            let quantile = spec.quantile.ok_or("approx_percentile needs a quantile")?;
            let size = spec
                .sketch_size
                .unwrap_or(u32::from(DEFAULT_PERCENTILE_SIZE));
            numeric_only(Aggregation::ApproxPercentile { quantile, size })?
        }
        other => return Err(format!("unknown aggregation '{other}'")),
    };
    aggregation.validate().map_err(|e| e.message)?;
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
