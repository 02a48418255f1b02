//! The plain, serialisable description of what a store holds (series, rules, retention):
//! what the TypeScript planner produces and the engine receives.

use napi_derive::napi;
use tessera_store::{
    AggregationSpec, DescribedSeries, RuleSpec, SeriesSpec, SeriesSummary,
    ValueKind as StoreValueKind,
};

use crate::error::js_error;

/// What the aggregated column of a series holds.
#[napi(string_enum)]
#[derive(Debug, PartialEq, Eq)]
pub enum ValueKind {
    #[napi(value = "number")]
    Number,
    #[napi(value = "string")]
    String,
    #[napi(value = "vector")]
    Vector,
}

/// One aggregation with its arguments.
#[napi(object)]
#[derive(Debug)]
pub struct AggregationDescription {
    /// A name of the aggregation catalog (`aggregationCatalog()`): `sum`, `var_sample`, ...
    pub kind: String,
    /// min_by_n / max_by_n: how many values to keep.
    pub n: Option<u32>,
    /// approx_top_k: how many items to return.
    pub k: Option<u32>,
    /// approx_top_k: weight items by the `by` column.
    pub weighted: Option<bool>,
    /// approx_percentile: the quantile in [0, 1].
    pub quantile: Option<f64>,
    /// approx_count_distinct: the CPC accuracy parameter.
    pub lg_k: Option<u32>,
    /// approx_percentile: the sketch size.
    pub sketch_size: Option<u32>,
}

/// One (aggregation, bucket size) rule of a series.
#[napi(object)]
#[derive(Debug)]
pub struct RuleDescription {
    pub aggregation: AggregationDescription,
    pub bucket_size_ms: f64,
    /// Bucket origin in Unix ms (`bucket_start`); 0 aligns buckets on the epoch.
    pub bucket_origin_ms: f64,
    /// The largest window this rule serves; buckets older than that plus one bucket are
    /// removed.
    pub retention_ms: f64,
}

/// One stored series: the values of one aggregated column per group key.
#[napi(object)]
#[derive(Debug)]
pub struct SeriesDescription {
    /// Stable id chosen by the planner: the hash of the series identity, not of its
    /// rules (a store reconciles changed rules, docs/semantics.md section 9.4).
    pub id: String,
    /// The id the previous identity format gave the series; a store holding the series
    /// under it adopts it under `id`.
    pub former_id: Option<String>,
    pub value_kind: ValueKind,
    pub vector_dim: Option<u32>,
    /// Rule index = position in this list.
    pub rules: Vec<RuleDescription>,
    /// A readable description, kept in the store's series record so that the series can
    /// be described after its definition is gone from the code.
    pub summary: Option<SeriesSummaryDescription>,
}

/// A readable description of a series (what `aggregate list` and open reports print).
#[napi(object)]
#[derive(Debug, Clone)]
pub struct SeriesSummaryDescription {
    /// The aggregated feature class.
    pub namespace: String,
    /// Columns of the group key.
    pub group_key: Vec<String>,
    /// The aggregated column (`amount`, `amount@2`); absent for a count of rows.
    pub column: Option<String>,
    /// Ingest filters, e.g. `category in [1,2]`.
    pub filters: Vec<String>,
    /// One entry per rule: `sum per 1d`.
    pub aggregations: Vec<String>,
    /// The whole description in one line.
    pub description: String,
}

impl From<SeriesSummaryDescription> for SeriesSummary {
    fn from(d: SeriesSummaryDescription) -> Self {
        SeriesSummary {
            namespace: d.namespace,
            group_key: d.group_key,
            column: d.column,
            filters: d.filters,
            aggregations: d.aggregations,
            description: d.description,
        }
    }
}

impl From<SeriesSummary> for SeriesSummaryDescription {
    fn from(s: SeriesSummary) -> Self {
        SeriesSummaryDescription {
            namespace: s.namespace,
            group_key: s.group_key,
            column: s.column,
            filters: s.filters,
            aggregations: s.aggregations,
            description: s.description,
        }
    }
}

/// Everything a store holds: the plan's series.
#[napi(object)]
#[derive(Debug)]
pub struct StoreDescription {
    pub series: Vec<SeriesDescription>,
}

pub(crate) fn whole_ms(value: f64, what: &str, series: &str) -> napi::Result<i64> {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 9.007e15 {
        Ok(value as i64)
    } else {
        Err(js_error(
            "INVALID_DESCRIPTION",
            format!("series '{series}': {what} is {value}, not a whole number of milliseconds"),
        ))
    }
}

impl StoreDescription {
    pub(crate) fn into_specs(self) -> napi::Result<Vec<DescribedSeries>> {
        self.series
            .into_iter()
            .map(|s| {
                let rules = s
                    .rules
                    .into_iter()
                    .map(|r| {
                        Ok(RuleSpec {
                            bucket_size_ms: whole_ms(r.bucket_size_ms, "bucketSizeMs", &s.id)?,
                            bucket_origin_ms: whole_ms(
                                r.bucket_origin_ms,
                                "bucketOriginMs",
                                &s.id,
                            )?,
                            retention_ms: whole_ms(r.retention_ms, "retentionMs", &s.id)?,
                            aggregation: AggregationSpec {
                                kind: r.aggregation.kind,
                                n: r.aggregation.n,
                                k: r.aggregation.k,
                                weighted: r.aggregation.weighted,
                                quantile: r.aggregation.quantile,
                                lg_k: r.aggregation.lg_k,
                                sketch_size: r.aggregation.sketch_size,
                            },
                        })
                    })
                    .collect::<napi::Result<Vec<_>>>()?;
                let spec = SeriesSpec {
                    id: s.id,
                    value_kind: match s.value_kind {
                        ValueKind::Number => StoreValueKind::Number,
                        ValueKind::String => StoreValueKind::String,
                        ValueKind::Vector => StoreValueKind::Vector,
                    },
                    vector_dim: s.vector_dim,
                    rules,
                };
                Ok(DescribedSeries {
                    spec,
                    summary: s.summary.map(SeriesSummary::from),
                    former_ids: s.former_id.into_iter().collect(),
                })
            })
            .collect()
    }
}
