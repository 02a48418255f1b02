//! The aggregation catalog as JavaScript sees it: `aggregationCatalog()` returns every
//! entry of `tessera_core::aggregation::CATALOG`, from which
//! `scripts/generate-catalog.mjs` writes `ts/planner/aggregation-catalog.generated.ts`.

use napi_derive::napi;
use tessera_core::aggregation::{
    ArgumentKind, EmptyValue, ResultRule, Scale, StateBytes, Tolerance, CATALOG, NUMBER_ITEM_BYTES,
    STRING_ITEM_BYTES,
};

/// One argument of an aggregation.
#[napi(object)]
pub struct AggregationArgumentEntry {
    /// The field of the plan's aggregation description (`n`, `sketchSize`).
    pub name: String,
    /// The DSL's option name (`n`, `size`).
    pub option: String,
    /// `integer`, `quantile`, `flag` or `column`.
    pub kind: String,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub default: Option<u32>,
    /// Whether a definition must give it.
    pub required: bool,
    /// For `column`: the column kinds it takes.
    pub accepts: Option<Vec<String>>,
    pub doc: String,
}

/// Bytes of one encoded state: `base + ceil(clamp(factor * scale, minCount, maxCount)) *
/// (per + item?)` (`maxCount` 0: no upper clamp).
#[napi(object)]
pub struct StateBytesEntry {
    pub base: u32,
    pub per: u32,
    pub per_item: bool,
    /// `one`, `argument`, `powerOfTwo` or `vectorDim`.
    pub scale: String,
    /// The argument `scale` reads, for `argument` and `powerOfTwo`.
    pub scale_argument: Option<String>,
    pub factor: f64,
    pub min_count: u32,
    pub max_count: u32,
    pub exact: bool,
}

/// How far the online store's value of a window and the offline recompute's may differ
/// (docs/semantics.md section 11, "Parity check"). The engine evaluates it per window
/// (`parityPointsAsync`); this is the rule and its constants.
#[napi(object)]
pub struct ToleranceEntry {
    /// `exact`, `rounding`, `standardErrors`, `weightShare` or `rank`.
    pub kind: String,
    /// `rounding`: the relative gap allowed.
    pub relative: Option<f64>,
    /// `standardErrors`: the relative standard error times `sqrt(2^lgK)`.
    pub standard_error: Option<f64>,
    /// `standardErrors`: how many standard errors each side may be off.
    pub sigmas: Option<f64>,
    /// `weightShare`: the error bound times the map slots, as a share of the total weight.
    pub share: Option<f64>,
    /// `rank`: the rank error times the t-digest size, per side.
    pub factor: Option<f64>,
    /// The rule in one line.
    pub doc: String,
}

fn tolerance_entry(t: &Tolerance) -> ToleranceEntry {
    let mut entry = ToleranceEntry {
        kind: t.kind_name().to_string(),
        relative: None,
        standard_error: None,
        sigmas: None,
        share: None,
        factor: None,
        doc: t.describe(),
    };
    match *t {
        Tolerance::Exact => {}
        Tolerance::Rounding { relative } => entry.relative = Some(relative),
        Tolerance::StandardErrors {
            standard_error,
            sigmas,
        } => {
            entry.standard_error = Some(standard_error);
            entry.sigmas = Some(sigmas);
        }
        Tolerance::WeightShare { share } => entry.share = Some(share),
        Tolerance::Rank { factor } => entry.factor = Some(factor),
    }
    entry
}

/// Everything the TypeScript layers know about one aggregation.
#[napi(object)]
pub struct AggregationCatalogEntry {
    pub name: String,
    pub doc: String,
    pub accepts: Vec<String>,
    pub arguments: Vec<AggregationArgumentEntry>,
    /// `int`, `float`, `likeInput`, `sumOfInput`, `meanOfInput`, `listOfInput`,
    /// `topKOfInput`.
    pub result: String,
    /// `null` or `zero`.
    pub empty: String,
    pub approximate: bool,
    pub tolerance: ToleranceEntry,
    pub state_bytes: StateBytesEntry,
    pub vector_state_bytes: Option<StateBytesEntry>,
}

/// The whole catalog.
#[napi(object)]
pub struct AggregationCatalog {
    pub aggregations: Vec<AggregationCatalogEntry>,
    /// Bytes of a number item in a state.
    pub number_item_bytes: u32,
    /// Bytes assumed for a string item in a state.
    pub string_item_bytes: u32,
}

fn state_bytes(b: &StateBytes) -> StateBytesEntry {
    let (scale, argument) = match b.scale {
        Scale::One => ("one", None),
        Scale::Argument(name) => ("argument", Some(name.to_string())),
        Scale::PowerOfTwo(name) => ("powerOfTwo", Some(name.to_string())),
        Scale::VectorDim => ("vectorDim", None),
    };
    StateBytesEntry {
        base: b.base,
        per: b.per,
        per_item: b.per_item,
        scale: scale.to_string(),
        scale_argument: argument,
        factor: b.factor,
        min_count: b.min_count,
        max_count: b.max_count,
        exact: b.exact,
    }
}

/// The aggregation catalog: names, accepted column kinds, arguments with their ranges
/// and defaults, result rules, empty values and state sizes.
#[napi]
pub fn aggregation_catalog() -> AggregationCatalog {
    let aggregations = CATALOG
        .iter()
        .map(|info| AggregationCatalogEntry {
            name: info.name.to_string(),
            doc: info.doc.to_string(),
            accepts: info.accepts.iter().map(|k| k.name().to_string()).collect(),
            arguments: info
                .arguments
                .iter()
                .map(|a| {
                    let (kind, min, max, default, required, accepts) = match a.kind {
                        ArgumentKind::Integer { min, max, default } => (
                            "integer",
                            Some(min),
                            Some(max),
                            default,
                            default.is_none(),
                            None,
                        ),
                        ArgumentKind::Quantile => ("quantile", None, None, None, true, None),
                        ArgumentKind::Flag => ("flag", None, None, None, false, None),
                        ArgumentKind::ByColumn { required, accepts } => (
                            "column",
                            None,
                            None,
                            None,
                            required,
                            Some(accepts.iter().map(|k| k.name().to_string()).collect()),
                        ),
                    };
                    AggregationArgumentEntry {
                        name: a.name.to_string(),
                        option: a.option.to_string(),
                        kind: kind.to_string(),
                        min,
                        max,
                        default,
                        required,
                        accepts,
                        doc: a.doc.to_string(),
                    }
                })
                .collect(),
            result: match info.result {
                ResultRule::Int => "int",
                ResultRule::Float => "float",
                ResultRule::LikeInput => "likeInput",
                ResultRule::SumOfInput => "sumOfInput",
                ResultRule::MeanOfInput => "meanOfInput",
                ResultRule::ListOfInput => "listOfInput",
                ResultRule::TopKOfInput => "topKOfInput",
            }
            .to_string(),
            empty: match info.empty {
                EmptyValue::Null => "null",
                EmptyValue::Zero => "zero",
            }
            .to_string(),
            approximate: info.approximate,
            tolerance: tolerance_entry(&info.tolerance),
            state_bytes: state_bytes(&info.state_bytes),
            vector_state_bytes: info.vector_state_bytes.as_ref().map(state_bytes),
        })
        .collect();
    AggregationCatalog {
        aggregations,
        number_item_bytes: NUMBER_ITEM_BYTES,
        string_item_bytes: STRING_ITEM_BYTES,
    }
}
