//! The aggregation catalog: every fact about an aggregation that another layer needs,
//! written once. The planner's validation (which column kinds an aggregation takes, its
//! arguments with their ranges and defaults), the result types, the storage estimate,
//! the names `aggregate list` prints, the value of an empty window and the store's choice
//! of how a row feeds a state all read [`CATALOG`]. TypeScript receives it as a
//! generated file (`ts/planner/aggregation-catalog.generated.ts`, written by
//! `npm run generate:catalog` from the binding's `aggregationCatalog()`, and checked for
//! staleness by a test).
//!
//! The states themselves (update, merge, evaluate, encode, decode) live beside this file
//! in [`super`] and [`super::codec`]; `docs/architecture.md` ("Adding an aggregation")
//! lists what a new aggregation touches.
//!
//! # State sizes
//!
//! [`StateBytes`] is what one encoded bucket state costs: exact where the encoding has a
//! fixed size, otherwise an upper bound that the tests of this module check against real
//! encodings at the arguments' extremes. Items (the values `min_by_n` keeps, the items a
//! top-k sketch holds) cost [`NUMBER_ITEM_BYTES`] for numbers and an assumed
//! [`STRING_ITEM_BYTES`] for strings.

use crate::error::{CoreError, CoreErrorKind, CoreResult};
use crate::sketch::{
    validate_quantile, CountDistinctState, PercentileState, TopKState, DEFAULT_CPC_LG_K,
    DEFAULT_PERCENTILE_SIZE,
};

use super::{Aggregation, MAX_RANKED_N, MAX_VECTOR_DIM};

/// An aggregation as a definition names it, before its arguments. `sum` and `mean` over a
/// vector column are the element-wise vector aggregations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregationKind {
    Sum,
    Count,
    Min,
    Max,
    Mean,
    Var,
    VarSample,
    Std,
    StdSample,
    MinByN,
    MaxByN,
    ApproxCountDistinct,
    ApproxTopK,
    ApproxPercentile,
}

/// The kinds of column a definition can aggregate (the DSL's scalar kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    Int,
    Float,
    String,
    Boolean,
    Datetime,
    Vector,
}

impl ColumnKind {
    /// The DSL's name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            ColumnKind::Int => "int",
            ColumnKind::Float => "float",
            ColumnKind::String => "string",
            ColumnKind::Boolean => "boolean",
            ColumnKind::Datetime => "datetime",
            ColumnKind::Vector => "vector",
        }
    }
}

/// What a series' column holds, as the store sees it: numbers (ints, floats, booleans
/// and datetimes all arrive as numbers), strings, or vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueClass {
    Number,
    Text,
    Vector,
}

/// How one row feeds a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FoldInput {
    /// One number per row.
    Number,
    /// One item per row: a number or a string.
    Item,
    /// A (by, item) pair per row.
    Ranked,
    /// An item with a weight from the `by` column.
    Weighted,
    /// A vector per row.
    Vector,
}

/// How the type of an aggregation's result follows from its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultRule {
    /// A whole number.
    Int,
    /// A float.
    Float,
    /// The column's own type (`min`, `max`).
    LikeInput,
    /// A float for float columns, a whole number for int and boolean ones, a vector for
    /// vectors (`sum`).
    SumOfInput,
    /// A float, or a vector for vectors (`mean`).
    MeanOfInput,
    /// A list of the column's values.
    ListOfInput,
    /// A list of the column's values, or of (value, weight) pairs when the definition
    /// asks for the total weight (`approx_top_k`).
    TopKOfInput,
}

/// What a window without data evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmptyValue {
    /// No value: the feature's default applies (null unless declared).
    Null,
    /// Zero: a count of nothing is 0, and a declared default replaces that 0.
    Zero,
}

/// One argument of an aggregation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArgumentKind {
    /// A whole number in `min..=max`; `default` when the definition leaves it out, else
    /// required.
    Integer {
        min: u32,
        max: u32,
        default: Option<u32>,
    },
    /// A number in [0, 1], required.
    Quantile,
    /// True or false; false when left out.
    Flag,
    /// A second column of the same class: the ordering of `min_by_n`, the weight of
    /// `approx_top_k`.
    ByColumn {
        required: bool,
        accepts: &'static [ColumnKind],
    },
}

/// An argument, under the name the plan's aggregation description gives it (`n`,
/// `sketchSize`, ...) and the name the DSL's options use (`n`, `size`, ...).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArgumentInfo {
    pub name: &'static str,
    pub option: &'static str,
    pub kind: ArgumentKind,
    pub doc: &'static str,
}

/// What the count of a [`StateBytes`] formula is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Nothing: the size is `base`.
    One,
    /// The value of the named argument.
    Argument(&'static str),
    /// Two to the power of the named argument.
    PowerOfTwo(&'static str),
    /// The vector column's dimension.
    VectorDim,
}

/// Bytes of one encoded bucket state:
/// `base + ceil(clamp(factor * scale, min_count, max_count)) * (per + item?)`, where
/// `item` is the bytes of one item when `per_item` is set and `max_count` 0 means no
/// upper clamp. `exact`: every state has this size; otherwise it is an upper bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StateBytes {
    pub base: u32,
    pub per: u32,
    pub per_item: bool,
    pub scale: Scale,
    pub factor: f64,
    pub min_count: u32,
    pub max_count: u32,
    pub exact: bool,
}

impl StateBytes {
    const fn fixed(bytes: u32) -> Self {
        Self {
            base: bytes,
            per: 0,
            per_item: false,
            scale: Scale::One,
            factor: 0.0,
            min_count: 0,
            max_count: 0,
            exact: true,
        }
    }

    const fn at_most(bytes: u32) -> Self {
        Self {
            exact: false,
            ..Self::fixed(bytes)
        }
    }

    const fn per(per: u32, per_item: bool, scale: Scale, factor: f64) -> Self {
        Self {
            per,
            per_item,
            scale,
            factor,
            ..Self::at_most(0)
        }
    }

    /// The size for the given arguments (`argument(name)` gives an argument's value),
    /// vector dimension and item size.
    pub fn evaluate(
        &self,
        argument: impl Fn(&str) -> Option<f64>,
        vector_dim: u32,
        item_bytes: u32,
    ) -> u64 {
        let scale = match self.scale {
            Scale::One => 0.0,
            Scale::Argument(name) => argument(name).unwrap_or(0.0),
            Scale::PowerOfTwo(name) => 2f64.powf(argument(name).unwrap_or(0.0)),
            Scale::VectorDim => f64::from(vector_dim),
        };
        let mut count = (self.factor * scale).max(f64::from(self.min_count));
        if self.max_count > 0 {
            count = count.min(f64::from(self.max_count));
        }
        let per = self.per + if self.per_item { item_bytes } else { 0 };
        u64::from(self.base) + count.ceil() as u64 * u64::from(per)
    }
}

/// Bytes of a number item in a state: a tag byte and an f64.
pub const NUMBER_ITEM_BYTES: u32 = 9;
/// Bytes assumed for a string item in a state: a tag byte, a one-byte length and 16
/// bytes of UTF-8 (strings are as long as they are; this is the estimate's assumption).
pub const STRING_ITEM_BYTES: u32 = 18;

/// How far two computations of the same window may lie apart and still agree: the stored
/// buckets merged (what the online store serves) and the window's raw rows folded into
/// one state (the offline recompute). The parity check (docs/semantics.md section 11,
/// "Parity check") compares the two with it; a gap beyond it is a difference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// Equal: counts, min and max, the pairs of `min_by_n` / `max_by_n`. Merging these
    /// states is exact in every order.
    Exact,
    /// Float results within `relative` of the larger magnitude (component-wise for
    /// vectors); integer results equal. Float sums merged in another order round
    /// differently in their last bits (docs/semantics.md section 4).
    Rounding { relative: f64 },
    /// Counts within `2 * sigmas * standard_error / sqrt(2^lgK)` of the larger one: each
    /// side within `sigmas` relative standard errors of the true count, `standard_error /
    /// sqrt(2^lgK)` being the CPC sketch's (ICON estimator, the larger of its two).
    StandardErrors { standard_error: f64, sigmas: f64 },
    /// Item weights within `share / map slots` of the window's total weight: the
    /// frequent-items sketch's a-priori error bound (every estimate overshoots its item's
    /// true weight by at most this much, and an item it dropped weighs at most this much).
    WeightShare { share: f64 },
    /// Values whose normalized ranks among the window's values lie within
    /// `2 * factor / size` of each other: each side's rank error at most `factor / size`
    /// (t-digest of compression `size`; measured, not proven, see `sketch::percentile`).
    Rank { factor: f64 },
}

impl Tolerance {
    /// The tolerance's kind, as the parity check and the generated catalog name it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Tolerance::Exact => "exact",
            Tolerance::Rounding { .. } => "rounding",
            Tolerance::StandardErrors { .. } => "standardErrors",
            Tolerance::WeightShare { .. } => "weightShare",
            Tolerance::Rank { .. } => "rank",
        }
    }

    /// The rule in one line, for users.
    pub fn describe(&self) -> String {
        match *self {
            Tolerance::Exact => "equal".to_string(),
            Tolerance::Rounding { relative } => format!(
                "float results within {relative:e} of the larger magnitude (merge-order rounding); integer results equal"
            ),
            Tolerance::StandardErrors {
                standard_error,
                sigmas,
            } => format!(
                "counts within 2 x {sigmas} x {standard_error}/sqrt(2^lgK) of the larger count ({sigmas} CPC standard errors on each side)"
            ),
            Tolerance::WeightShare { share } => format!(
                "item weights within {share}/map slots of the window's total weight (the frequent-items sketch's error bound)"
            ),
            Tolerance::Rank { factor } => format!(
                "ranks among the window's values within 2 x {factor}/size of each other (t-digest rank error on each side)"
            ),
        }
    }
}

/// Float sums and means merged in another order: a sum of `n` terms rounds by at most
/// about `n * 2^-53` of the sum of their magnitudes, so 1e-9 of the result covers windows
/// of millions of same-signed terms. A sum that cancels (terms of both signs adding up to
/// near zero) can round by more relative to its small result, and shows as a difference.
const SUM_ROUNDING: Tolerance = Tolerance::Rounding { relative: 1e-9 };

/// Variance and standard deviation merged in another order (Chan's pairwise update
/// against Welford's): the rounding also grows with `|mean| / std`, so 1e-6.
const MOMENTS_ROUNDING: Tolerance = Tolerance::Rounding { relative: 1e-6 };

/// Everything the other layers know about one aggregation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AggregationInfo {
    pub kind: AggregationKind,
    /// The name in definitions, plans and `aggregate list` (`var_sample`).
    pub name: &'static str,
    /// One line for users.
    pub doc: &'static str,
    /// Column kinds it aggregates (`count` of rows needs no column at all).
    pub accepts: &'static [ColumnKind],
    pub arguments: &'static [ArgumentInfo],
    pub result: ResultRule,
    pub empty: EmptyValue,
    /// A sketch: answers within a published error bound, not exactly.
    pub approximate: bool,
    /// How far the online store's value and the offline recompute's may differ.
    pub tolerance: Tolerance,
    /// State bytes per bucket over a column of numbers or strings.
    pub state_bytes: StateBytes,
    /// State bytes per bucket over a vector column, where vectors are accepted.
    pub vector_state_bytes: Option<StateBytes>,
}

const ALL: &[ColumnKind] = &[
    ColumnKind::Int,
    ColumnKind::Float,
    ColumnKind::String,
    ColumnKind::Boolean,
    ColumnKind::Datetime,
    ColumnKind::Vector,
];
const ITEMS: &[ColumnKind] = &[
    ColumnKind::Int,
    ColumnKind::Float,
    ColumnKind::String,
    ColumnKind::Boolean,
    ColumnKind::Datetime,
];
const NUMERIC: &[ColumnKind] = &[ColumnKind::Int, ColumnKind::Float];
const SUMMABLE: &[ColumnKind] = &[
    ColumnKind::Int,
    ColumnKind::Float,
    ColumnKind::Boolean,
    ColumnKind::Vector,
];
const ORDERED: &[ColumnKind] = &[ColumnKind::Int, ColumnKind::Float, ColumnKind::Datetime];

const RANKED_ARGUMENTS: &[ArgumentInfo] = &[
    ArgumentInfo {
        name: "n",
        option: "n",
        kind: ArgumentKind::Integer {
            min: 1,
            max: MAX_RANKED_N,
            default: None,
        },
        doc: "how many values to keep",
    },
    ArgumentInfo {
        name: "by",
        option: "by",
        kind: ArgumentKind::ByColumn {
            required: true,
            accepts: ORDERED,
        },
        doc: "the column the values are ranked by",
    },
];

/// `min_by_n` / `max_by_n`: a header byte, varints n and len (two bytes each up to
/// 1000), then up to n pairs of (f64 by, item).
const RANKED_BYTES: StateBytes = StateBytes {
    base: 5,
    ..StateBytes::per(8, true, Scale::Argument("n"), 1.0)
};

/// var and std: a header byte, a varint count (at most 10 bytes), f64 mean and f64 M2.
const MOMENTS_BYTES: StateBytes = StateBytes::at_most(27);

/// Vector sum: a header byte, varint dim (at most 3 bytes for 65,536), varint count (at
/// most 10), then dim f64 sums.
const VECTOR_BYTES: StateBytes = StateBytes {
    base: 14,
    ..StateBytes::per(8, false, Scale::VectorDim, 1.0)
};

/// Every aggregation, in the order `aggregate list` and the docs use.
pub const CATALOG: &[AggregationInfo] = &[
    AggregationInfo {
        kind: AggregationKind::Sum,
        name: "sum",
        doc: "sum of the values (element-wise for vectors)",
        accepts: SUMMABLE,
        arguments: &[],
        result: ResultRule::SumOfInput,
        empty: EmptyValue::Null,
        approximate: false,
        tolerance: SUM_ROUNDING,
        state_bytes: StateBytes::fixed(9),
        vector_state_bytes: Some(VECTOR_BYTES),
    },
    AggregationInfo {
        kind: AggregationKind::Count,
        name: "count",
        doc: "number of non-null values (of rows, without a column)",
        accepts: ALL,
        arguments: &[],
        result: ResultRule::Int,
        empty: EmptyValue::Zero,
        approximate: false,
        tolerance: Tolerance::Exact,
        // A header byte and a varint count.
        state_bytes: StateBytes::at_most(11),
        vector_state_bytes: Some(StateBytes::at_most(11)),
    },
    AggregationInfo {
        kind: AggregationKind::Min,
        name: "min",
        doc: "smallest value",
        accepts: ORDERED,
        arguments: &[],
        result: ResultRule::LikeInput,
        empty: EmptyValue::Null,
        approximate: false,
        tolerance: Tolerance::Exact,
        state_bytes: StateBytes::fixed(9),
        vector_state_bytes: None,
    },
    AggregationInfo {
        kind: AggregationKind::Max,
        name: "max",
        doc: "largest value",
        accepts: ORDERED,
        arguments: &[],
        result: ResultRule::LikeInput,
        empty: EmptyValue::Null,
        approximate: false,
        tolerance: Tolerance::Exact,
        state_bytes: StateBytes::fixed(9),
        vector_state_bytes: None,
    },
    AggregationInfo {
        kind: AggregationKind::Mean,
        name: "mean",
        doc: "arithmetic mean (element-wise for vectors)",
        accepts: SUMMABLE,
        arguments: &[],
        result: ResultRule::MeanOfInput,
        empty: EmptyValue::Null,
        approximate: false,
        tolerance: SUM_ROUNDING,
        // A header byte, f64 sum, varint count.
        state_bytes: StateBytes::at_most(18),
        vector_state_bytes: Some(VECTOR_BYTES),
    },
    AggregationInfo {
        kind: AggregationKind::Var,
        name: "var",
        doc: "population variance (needs two values)",
        accepts: NUMERIC,
        arguments: &[],
        result: ResultRule::Float,
        empty: EmptyValue::Null,
        approximate: false,
        tolerance: MOMENTS_ROUNDING,
        state_bytes: MOMENTS_BYTES,
        vector_state_bytes: None,
    },
    AggregationInfo {
        kind: AggregationKind::VarSample,
        name: "var_sample",
        doc: "sample variance (needs two values)",
        accepts: NUMERIC,
        arguments: &[],
        result: ResultRule::Float,
        empty: EmptyValue::Null,
        approximate: false,
        tolerance: MOMENTS_ROUNDING,
        state_bytes: MOMENTS_BYTES,
        vector_state_bytes: None,
    },
    AggregationInfo {
        kind: AggregationKind::Std,
        name: "std",
        doc: "population standard deviation (needs two values)",
        accepts: NUMERIC,
        arguments: &[],
        result: ResultRule::Float,
        empty: EmptyValue::Null,
        approximate: false,
        tolerance: MOMENTS_ROUNDING,
        state_bytes: MOMENTS_BYTES,
        vector_state_bytes: None,
    },
    AggregationInfo {
        kind: AggregationKind::StdSample,
        name: "std_sample",
        doc: "sample standard deviation (needs two values)",
        accepts: NUMERIC,
        arguments: &[],
        result: ResultRule::Float,
        empty: EmptyValue::Null,
        approximate: false,
        tolerance: MOMENTS_ROUNDING,
        state_bytes: MOMENTS_BYTES,
        vector_state_bytes: None,
    },
    AggregationInfo {
        kind: AggregationKind::MinByN,
        name: "min_by_n",
        doc: "the n values with the smallest `by`, smallest first",
        accepts: ITEMS,
        arguments: RANKED_ARGUMENTS,
        result: ResultRule::ListOfInput,
        empty: EmptyValue::Null,
        approximate: false,
        tolerance: Tolerance::Exact,
        state_bytes: RANKED_BYTES,
        vector_state_bytes: None,
    },
    AggregationInfo {
        kind: AggregationKind::MaxByN,
        name: "max_by_n",
        doc: "the n values with the largest `by`, largest first",
        accepts: ITEMS,
        arguments: RANKED_ARGUMENTS,
        result: ResultRule::ListOfInput,
        empty: EmptyValue::Null,
        approximate: false,
        tolerance: Tolerance::Exact,
        state_bytes: RANKED_BYTES,
        vector_state_bytes: None,
    },
    AggregationInfo {
        kind: AggregationKind::ApproxCountDistinct,
        name: "approx_count_distinct",
        doc: "approximate number of distinct values (CPC sketch)",
        accepts: ITEMS,
        arguments: &[ArgumentInfo {
            name: "lgK",
            option: "lgK",
            kind: ArgumentKind::Integer {
                min: CountDistinctState::MIN_LG_K as u32,
                max: CountDistinctState::MAX_LG_K as u32,
                default: Some(DEFAULT_CPC_LG_K as u32),
            },
            doc: "log2 of the sketch's size: 11 gives ~1.5% standard error",
        }],
        result: ResultRule::Int,
        empty: EmptyValue::Zero,
        approximate: true,
        tolerance: Tolerance::StandardErrors {
            standard_error: CountDistinctState::ICON_STANDARD_ERROR,
            sigmas: 3.0,
        },
        // A header byte, a varint length, the body-version byte and the CPC image: at most
        // 0.6 bytes per 2^lgK slot plus 128 bytes, at every cardinality (checked below; 1,296
        // bytes was the largest seen at lgK 11, against a bound of 1,357).
        state_bytes: StateBytes {
            base: 128,
            ..StateBytes::per(1, false, Scale::PowerOfTwo("lgK"), 0.6)
        },
        vector_state_bytes: None,
    },
    AggregationInfo {
        kind: AggregationKind::ApproxTopK,
        name: "approx_top_k",
        doc: "approximately the k most frequent values (frequent-items sketch)",
        accepts: ITEMS,
        arguments: &[
            ArgumentInfo {
                name: "k",
                option: "k",
                kind: ArgumentKind::Integer {
                    min: TopKState::MIN_K,
                    max: TopKState::MAX_K,
                    default: None,
                },
                doc: "how many values to return",
            },
            ArgumentInfo {
                name: "by",
                option: "by",
                kind: ArgumentKind::ByColumn {
                    required: false,
                    accepts: NUMERIC,
                },
                doc: "a weight column: values are ranked by their total weight",
            },
            ArgumentInfo {
                name: "returnTotalWeight",
                option: "returnTotalWeight",
                kind: ArgumentKind::Flag,
                doc: "return (value, weight) pairs",
            },
        ],
        result: ResultRule::TopKOfInput,
        empty: EmptyValue::Null,
        approximate: true,
        tolerance: Tolerance::WeightShare {
            share: TopKState::EPSILON_SHARE,
        },
        // The sketch keeps up to 3/4 of a map of the next power of two at or above
        // max(64, 8k) slots, at most 4096: between 48 and 3072 items, never more than 12k.
        // Each is an item (with a 4-byte length for strings, 3 more than the codec's) and
        // an 8-byte weight, after a preamble.
        state_bytes: StateBytes {
            base: 48,
            min_count: 48,
            max_count: 3072,
            ..StateBytes::per(11, true, Scale::Argument("k"), 12.0)
        },
        vector_state_bytes: None,
    },
    AggregationInfo {
        kind: AggregationKind::ApproxPercentile,
        name: "approx_percentile",
        doc: "approximate value at a quantile (t-digest)",
        accepts: NUMERIC,
        arguments: &[
            ArgumentInfo {
                name: "quantile",
                option: "quantile",
                kind: ArgumentKind::Quantile,
                doc: "the quantile, in [0, 1]",
            },
            ArgumentInfo {
                name: "sketchSize",
                option: "size",
                kind: ArgumentKind::Integer {
                    min: PercentileState::MIN_SIZE as u32,
                    max: PercentileState::MAX_SIZE as u32,
                    default: Some(DEFAULT_PERCENTILE_SIZE as u32),
                },
                doc: "the t-digest's compression: more centroids, better tails",
            },
        ],
        result: ResultRule::Float,
        empty: EmptyValue::Null,
        approximate: true,
        tolerance: Tolerance::Rank {
            factor: PercentileState::RANK_ERROR_FACTOR,
        },
        // 43 bytes of header, quantile and digest preamble, then 16 bytes per centroid;
        // a digest of compression `size` keeps at most about 2 * size centroids, and at
        // small sizes up to 32 (checked below: 28 were seen at size 10).
        state_bytes: StateBytes {
            base: 43,
            min_count: 32,
            ..StateBytes::per(16, false, Scale::Argument("sketchSize"), 2.1)
        },
        vector_state_bytes: None,
    },
];

impl AggregationKind {
    /// Every kind, in catalog order.
    pub fn all() -> impl Iterator<Item = AggregationKind> {
        CATALOG.iter().map(|info| info.kind)
    }

    /// The catalog entry of this kind.
    pub fn info(self) -> &'static AggregationInfo {
        CATALOG
            .iter()
            .find(|info| info.kind == self)
            .expect("every kind has a catalog entry")
    }

    /// The name in definitions and plans.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<AggregationKind> {
        CATALOG
            .iter()
            .find(|info| info.name == name)
            .map(|i| i.kind)
    }

    /// The names of every kind, for messages.
    pub fn names() -> String {
        CATALOG
            .iter()
            .map(|i| i.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl AggregationInfo {
    /// The argument called `name`.
    pub fn argument(&self, name: &str) -> Option<&'static ArgumentInfo> {
        self.arguments.iter().find(|a| a.name == name)
    }
}

/// The arguments of one aggregation in a description, by catalog name; `None` where the
/// description leaves one out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AggregationArguments {
    pub n: Option<u32>,
    pub k: Option<u32>,
    /// `approx_top_k` weighs items by its `by` column.
    pub weighted: Option<bool>,
    pub quantile: Option<f64>,
    pub lg_k: Option<u32>,
    pub sketch_size: Option<u32>,
}

fn invalid(kind: AggregationKind, problem: impl std::fmt::Display) -> CoreError {
    CoreError::new(
        CoreErrorKind::InvalidAggregation,
        format!("invalid aggregation {}: {problem}", kind.name()),
    )
}

/// An integer argument checked against its catalog range, or its default.
fn integer_argument(kind: AggregationKind, name: &str, given: Option<u32>) -> CoreResult<u32> {
    let Some(ArgumentInfo {
        kind: ArgumentKind::Integer { min, max, default },
        ..
    }) = kind.info().argument(name)
    else {
        return Err(invalid(kind, format!("has no integer argument {name}")));
    };
    match given.or(*default) {
        Some(v) if (*min..=*max).contains(&v) => Ok(v),
        Some(v) => Err(invalid(
            kind,
            format!("{name} must be between {min} and {max}, got {v}"),
        )),
        None => Err(invalid(kind, format!("needs {name}"))),
    }
}

/// The quantile argument: a number in [0, 1].
fn quantile_argument(kind: AggregationKind, q: f64) -> CoreResult<f64> {
    validate_quantile(q).map(|()| q).map_err(|_| {
        invalid(
            kind,
            format!("quantile must be a number in [0, 1], got {q}"),
        )
    })
}

impl Aggregation {
    /// The aggregation a rule computes: `kind` with `arguments` (checked against the
    /// catalog's ranges, defaults filled in) over a column of `value_class`, and how a row
    /// feeds its state. `vector_dim` is the column's dimension for vectors.
    pub fn resolve(
        kind: AggregationKind,
        arguments: &AggregationArguments,
        value_class: ValueClass,
        vector_dim: u32,
    ) -> CoreResult<(Aggregation, FoldInput)> {
        let info = kind.info();
        let takes = |class: ValueClass| match class {
            ValueClass::Number => info.accepts.iter().any(|k| {
                matches!(
                    k,
                    ColumnKind::Int
                        | ColumnKind::Float
                        | ColumnKind::Boolean
                        | ColumnKind::Datetime
                )
            }),
            ValueClass::Text => info.accepts.contains(&ColumnKind::String),
            ValueClass::Vector => info.accepts.contains(&ColumnKind::Vector),
        };
        if !takes(value_class) {
            let held = match value_class {
                ValueClass::Number => "numbers",
                ValueClass::Text => "strings",
                ValueClass::Vector => "vectors",
            };
            let accepted: Vec<&str> = info.accepts.iter().map(|k| k.name()).collect();
            return Err(invalid(
                kind,
                format!(
                    "it takes {} columns, but the series holds {held}",
                    accepted.join(", ")
                ),
            ));
        }
        let vector = value_class == ValueClass::Vector;
        if vector && !(1..=MAX_VECTOR_DIM).contains(&vector_dim) {
            return Err(invalid(
                kind,
                format!("the dimension must be between 1 and {MAX_VECTOR_DIM}, got {vector_dim}"),
            ));
        }
        let item_input = if vector {
            FoldInput::Vector
        } else if value_class == ValueClass::Text {
            FoldInput::Item
        } else {
            FoldInput::Number
        };
        let resolved = match kind {
            AggregationKind::Sum if vector => (
                Aggregation::VectorSum { dim: vector_dim },
                FoldInput::Vector,
            ),
            AggregationKind::Mean if vector => (
                Aggregation::VectorMean { dim: vector_dim },
                FoldInput::Vector,
            ),
            AggregationKind::Sum => (Aggregation::Sum, FoldInput::Number),
            AggregationKind::Mean => (Aggregation::Mean, FoldInput::Number),
            AggregationKind::Count => (Aggregation::Count, item_input),
            AggregationKind::Min => (Aggregation::Min, FoldInput::Number),
            AggregationKind::Max => (Aggregation::Max, FoldInput::Number),
            AggregationKind::Var => (Aggregation::Var { sample: false }, FoldInput::Number),
            AggregationKind::VarSample => (Aggregation::Var { sample: true }, FoldInput::Number),
            AggregationKind::Std => (Aggregation::Std { sample: false }, FoldInput::Number),
            AggregationKind::StdSample => (Aggregation::Std { sample: true }, FoldInput::Number),
            AggregationKind::MinByN => (
                Aggregation::MinByN {
                    n: integer_argument(kind, "n", arguments.n)?,
                },
                FoldInput::Ranked,
            ),
            AggregationKind::MaxByN => (
                Aggregation::MaxByN {
                    n: integer_argument(kind, "n", arguments.n)?,
                },
                FoldInput::Ranked,
            ),
            AggregationKind::ApproxCountDistinct => (
                Aggregation::ApproxCountDistinct {
                    lg_k: integer_argument(kind, "lgK", arguments.lg_k)?,
                },
                FoldInput::Item,
            ),
            AggregationKind::ApproxTopK => {
                let weighted = arguments.weighted.unwrap_or(false);
                (
                    Aggregation::ApproxTopK {
                        k: integer_argument(kind, "k", arguments.k)?,
                        weighted,
                    },
                    if weighted {
                        FoldInput::Weighted
                    } else {
                        FoldInput::Item
                    },
                )
            }
            AggregationKind::ApproxPercentile => {
                let quantile = arguments
                    .quantile
                    .ok_or_else(|| invalid(kind, "needs quantile"))?;
                quantile_argument(kind, quantile)?;
                (
                    Aggregation::ApproxPercentile {
                        quantile,
                        size: integer_argument(kind, "sketchSize", arguments.sketch_size)?,
                    },
                    FoldInput::Number,
                )
            }
        };
        Ok(resolved)
    }

    /// The catalog kind of this aggregation (`sum` for the vector sum).
    pub fn kind(&self) -> AggregationKind {
        match self {
            Aggregation::Sum | Aggregation::VectorSum { .. } => AggregationKind::Sum,
            Aggregation::Count => AggregationKind::Count,
            Aggregation::Min => AggregationKind::Min,
            Aggregation::Max => AggregationKind::Max,
            Aggregation::Mean | Aggregation::VectorMean { .. } => AggregationKind::Mean,
            Aggregation::Var { sample: false } => AggregationKind::Var,
            Aggregation::Var { sample: true } => AggregationKind::VarSample,
            Aggregation::Std { sample: false } => AggregationKind::Std,
            Aggregation::Std { sample: true } => AggregationKind::StdSample,
            Aggregation::MinByN { .. } => AggregationKind::MinByN,
            Aggregation::MaxByN { .. } => AggregationKind::MaxByN,
            Aggregation::ApproxCountDistinct { .. } => AggregationKind::ApproxCountDistinct,
            Aggregation::ApproxTopK { .. } => AggregationKind::ApproxTopK,
            Aggregation::ApproxPercentile { .. } => AggregationKind::ApproxPercentile,
        }
    }

    /// The catalog's bound on one encoded state of this aggregation, for items of
    /// `item_bytes` (see [`NUMBER_ITEM_BYTES`], [`STRING_ITEM_BYTES`]).
    pub fn state_bytes_bound(&self, item_bytes: u32) -> u64 {
        let info = self.kind().info();
        let (bytes, dim) = match *self {
            Aggregation::VectorSum { dim } | Aggregation::VectorMean { dim } => (
                info.vector_state_bytes
                    .expect("vector aggregations have vector sizes"),
                dim,
            ),
            _ => (info.state_bytes, 0),
        };
        let argument = |name: &str| -> Option<f64> {
            match (self, name) {
                (Aggregation::MinByN { n } | Aggregation::MaxByN { n }, "n") => Some(f64::from(*n)),
                (Aggregation::ApproxTopK { k, .. }, "k") => Some(f64::from(*k)),
                (Aggregation::ApproxCountDistinct { lg_k }, "lgK") => Some(f64::from(*lg_k)),
                (Aggregation::ApproxPercentile { size, .. }, "sketchSize") => {
                    Some(f64::from(*size))
                }
                _ => None,
            }
        };
        bytes.evaluate(argument, dim, item_bytes)
    }

    /// The catalog's [`Tolerance`] evaluated at this aggregation's arguments, in the unit
    /// the parity check compares in: 0 for exact ones, a relative gap for rounding and
    /// CPC counts, a weight for top-k (`total_weight` is the window's total: its rows, or
    /// the sum of its `by` weights), a normalized rank gap for percentiles.
    pub fn parity_tolerance(&self, total_weight: f64) -> f64 {
        match self.kind().info().tolerance {
            Tolerance::Exact => 0.0,
            Tolerance::Rounding { relative } => relative,
            Tolerance::StandardErrors {
                standard_error,
                sigmas,
            } => {
                let lg_k = match self {
                    Aggregation::ApproxCountDistinct { lg_k } => *lg_k,
                    _ => u32::from(DEFAULT_CPC_LG_K),
                };
                2.0 * sigmas * standard_error / 2f64.powf(f64::from(lg_k) / 2.0)
            }
            Tolerance::WeightShare { share } => {
                let k = match self {
                    Aggregation::ApproxTopK { k, .. } => *k,
                    _ => TopKState::MIN_K,
                };
                share / TopKState::map_slots(k) as f64 * total_weight.max(0.0)
            }
            Tolerance::Rank { factor } => {
                let size = match self {
                    Aggregation::ApproxPercentile { size, .. } => *size,
                    _ => u32::from(DEFAULT_PERCENTILE_SIZE),
                };
                2.0 * factor / f64::from(size)
            }
        }
    }

    /// Checks the arguments against the catalog's ranges (and the vector dimension).
    /// Errors name the aggregation with its arguments (`min_by_n(0)`).
    pub fn validate(&self) -> CoreResult<()> {
        let kind = self.kind();
        let a = self.arguments();
        let named = |e: CoreError| {
            let prefix = format!("invalid aggregation {}: ", kind.name());
            let problem = e.message.strip_prefix(&prefix).unwrap_or(&e.message);
            CoreError::new(
                CoreErrorKind::InvalidAggregation,
                format!("invalid aggregation {}: {problem}", self.name()),
            )
        };
        for (name, value) in [
            ("n", a.n),
            ("k", a.k),
            ("lgK", a.lg_k),
            ("sketchSize", a.sketch_size),
        ] {
            if value.is_some() {
                integer_argument(kind, name, value).map_err(named)?;
            }
        }
        if let Some(q) = a.quantile {
            quantile_argument(kind, q).map_err(named)?;
        }
        match *self {
            Aggregation::VectorSum { dim } | Aggregation::VectorMean { dim }
                if !(1..=MAX_VECTOR_DIM).contains(&dim) =>
            {
                Err(named(invalid(
                    kind,
                    format!("the dimension must be between 1 and {MAX_VECTOR_DIM}, got {dim}"),
                )))
            }
            _ => Ok(()),
        }
    }

    /// Rebuilds the arguments this aggregation was resolved from.
    pub fn arguments(&self) -> AggregationArguments {
        let mut a = AggregationArguments::default();
        match *self {
            Aggregation::MinByN { n } | Aggregation::MaxByN { n } => a.n = Some(n),
            Aggregation::ApproxCountDistinct { lg_k } => a.lg_k = Some(lg_k),
            Aggregation::ApproxTopK { k, weighted } => {
                a.k = Some(k);
                a.weighted = Some(weighted);
            }
            Aggregation::ApproxPercentile { quantile, size } => {
                a.quantile = Some(quantile);
                a.sketch_size = Some(size);
            }
            _ => {}
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregation::{AggState, AggValue, Moments};
    use crate::item::Item;

    fn encoded(state: &AggState) -> u64 {
        let mut out = Vec::new();
        state.encode(&mut out);
        out.len() as u64
    }

    /// A deterministic stream of distinct-looking numbers (splitmix64).
    fn numbers(seed: u64) -> impl Iterator<Item = f64> {
        let mut x = seed;
        std::iter::repeat_with(move || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64
        })
    }

    fn text(i: usize) -> String {
        format!("{i:016}")
    }

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut names: Vec<&str> = CATALOG.iter().map(|i| i.name).collect();
        for info in CATALOG {
            assert_eq!(AggregationKind::from_name(info.name), Some(info.kind));
            assert_eq!(info.kind.info().name, info.name);
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        assert_eq!(AggregationKind::from_name("median"), None);
    }

    #[test]
    fn arguments_are_checked_against_the_catalog_ranges() {
        let number = ValueClass::Number;
        let at = |n| AggregationArguments {
            n: Some(n),
            ..Default::default()
        };
        assert!(
            Aggregation::resolve(AggregationKind::MinByN, &at(MAX_RANKED_N), number, 0).is_ok()
        );
        let err = Aggregation::resolve(AggregationKind::MinByN, &at(MAX_RANKED_N + 1), number, 0)
            .unwrap_err();
        assert_eq!(
            err.message,
            "invalid aggregation min_by_n: n must be between 1 and 1000, got 1001"
        );
        let err = Aggregation::resolve(AggregationKind::MaxByN, &Default::default(), number, 0)
            .unwrap_err();
        assert_eq!(err.message, "invalid aggregation max_by_n: needs n");
        // Defaults come from the catalog.
        let (cpc, _) = Aggregation::resolve(
            AggregationKind::ApproxCountDistinct,
            &Default::default(),
            ValueClass::Text,
            0,
        )
        .unwrap();
        assert_eq!(cpc, Aggregation::ApproxCountDistinct { lg_k: 11 });
        let percentile = AggregationArguments {
            quantile: Some(0.5),
            ..Default::default()
        };
        let (p, input) =
            Aggregation::resolve(AggregationKind::ApproxPercentile, &percentile, number, 0)
                .unwrap();
        assert_eq!(p, Aggregation::approx_percentile(0.5));
        assert_eq!(input, FoldInput::Number);
        // Column kinds come from the catalog too.
        let err = Aggregation::resolve(
            AggregationKind::Var,
            &Default::default(),
            ValueClass::Text,
            0,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "invalid aggregation var: it takes int, float columns, but the series holds strings"
        );
        let (v, input) = Aggregation::resolve(
            AggregationKind::Mean,
            &Default::default(),
            ValueClass::Vector,
            3,
        )
        .unwrap();
        assert_eq!(
            (v, input),
            (Aggregation::VectorMean { dim: 3 }, FoldInput::Vector)
        );
    }

    #[test]
    fn every_argument_at_its_maximum_resolves() {
        for info in CATALOG {
            let mut a = AggregationArguments::default();
            for argument in info.arguments {
                match (argument.name, argument.kind) {
                    ("n", ArgumentKind::Integer { max, .. }) => a.n = Some(max),
                    ("k", ArgumentKind::Integer { max, .. }) => a.k = Some(max),
                    ("lgK", ArgumentKind::Integer { max, .. }) => a.lg_k = Some(max),
                    ("sketchSize", ArgumentKind::Integer { max, .. }) => a.sketch_size = Some(max),
                    ("quantile", _) => a.quantile = Some(1.0),
                    ("by", _) => a.weighted = Some(true),
                    ("returnTotalWeight", _) => {}
                    (other, _) => panic!("{}: argument {other} has no field", info.name),
                }
            }
            let class = if info.accepts.contains(&ColumnKind::Int) {
                ValueClass::Number
            } else {
                ValueClass::Text
            };
            let (agg, _) = Aggregation::resolve(info.kind, &a, class, 0)
                .unwrap_or_else(|e| panic!("{}: {}", info.name, e.message));
            agg.validate().unwrap();
            assert_eq!(agg.kind(), info.kind);
            // The state can be built and encoded at the maximum.
            assert!(encoded(&AggState::new(&agg)) > 0);
        }
    }

    #[test]
    fn fixed_sizes_are_exact() {
        for agg in [Aggregation::Sum, Aggregation::Min, Aggregation::Max] {
            let info = agg.kind().info();
            assert!(info.state_bytes.exact, "{}", info.name);
            let mut state = AggState::new(&agg);
            assert_eq!(encoded(&state), agg.state_bytes_bound(NUMBER_ITEM_BYTES));
            state.update_number(-12.5);
            assert_eq!(encoded(&state), agg.state_bytes_bound(NUMBER_ITEM_BYTES));
            assert_eq!(agg.state_bytes_bound(NUMBER_ITEM_BYTES), 9);
        }
    }

    #[test]
    fn bounds_hold_for_the_largest_scalar_states() {
        let check = |state: AggState, bound: u64| {
            let bytes = encoded(&state);
            assert!(
                bytes <= bound,
                "{}: {bytes} > {bound}",
                state.aggregation().name()
            );
            bytes
        };
        // The largest varints a count can take.
        assert_eq!(
            check(
                AggState::Count(u64::MAX),
                Aggregation::Count.state_bytes_bound(9)
            ),
            11
        );
        assert_eq!(
            check(
                AggState::Mean {
                    sum: 1.0,
                    count: u64::MAX >> 1
                },
                Aggregation::Mean.state_bytes_bound(9)
            ),
            18
        );
        for sample in [false, true] {
            let moments = Moments {
                count: u64::MAX,
                mean: 1.0,
                m2: 2.0,
            };
            let var = Aggregation::Var { sample };
            assert_eq!(
                check(AggState::Var { moments, sample }, var.state_bytes_bound(9)),
                27
            );
            let std = Aggregation::Std { sample };
            assert_eq!(
                check(AggState::Std { moments, sample }, std.state_bytes_bound(9)),
                27
            );
        }
    }

    #[test]
    fn bounds_hold_for_full_ranked_and_vector_states() {
        for n in [1, 7, MAX_RANKED_N] {
            for (agg, rank) in [
                (Aggregation::MinByN { n }, 0),
                (Aggregation::MaxByN { n }, 1),
            ] {
                let mut numbers_state = AggState::new(&agg);
                let mut texts_state = AggState::new(&agg);
                for (i, v) in numbers(n.into()).take(3 * n as usize).enumerate() {
                    numbers_state.update_ranked(v + rank as f64, Item::Number(v));
                    texts_state.update_ranked(v, Item::Text(text(i)));
                }
                let bytes = encoded(&numbers_state);
                let bound = agg.state_bytes_bound(NUMBER_ITEM_BYTES);
                assert!(bytes <= bound, "{}: {bytes} > {bound}", agg.name());
                let bytes = encoded(&texts_state);
                let bound = agg.state_bytes_bound(STRING_ITEM_BYTES);
                assert!(bytes <= bound, "{}: {bytes} > {bound}", agg.name());
            }
        }
        for dim in [1, 384, MAX_VECTOR_DIM] {
            for agg in [
                Aggregation::VectorSum { dim },
                Aggregation::VectorMean { dim },
            ] {
                let mut state = AggState::new(&agg);
                state.update_vector(&vec![1.5; dim as usize]).unwrap();
                let bytes = encoded(&state);
                let bound = agg.state_bytes_bound(0);
                assert!(bytes <= bound, "{}: {bytes} > {bound}", agg.name());
                // Within a varint's slack of the formula.
                assert!(bound - bytes <= 12, "{}: {bytes} vs {bound}", agg.name());
            }
        }
    }

    #[test]
    fn bounds_hold_for_sketches_at_every_fill() {
        // Distinct counts from empty to far past the sketch's size.
        for lg_k in [4, 8, 11] {
            let agg = Aggregation::ApproxCountDistinct { lg_k };
            let bound = agg.state_bytes_bound(NUMBER_ITEM_BYTES);
            let mut state = AggState::new(&agg);
            let mut largest = encoded(&state);
            let mut seen = 0usize;
            for target in [
                1usize, 3, 10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000,
            ] {
                for v in numbers(lg_k.into()).skip(seen).take(target - seen) {
                    state.update_number(v);
                }
                seen = target;
                largest = largest.max(encoded(&state));
            }
            assert!(largest <= bound, "lgK {lg_k}: {largest} > {bound}");
        }
        // Top-k at its smallest and largest map, with numbers and with strings.
        for k in [1, 10, 100, 1_000] {
            let agg = Aggregation::ApproxTopK { k, weighted: false };
            let mut numbers_state = AggState::new(&agg);
            let mut texts_state = AggState::new(&agg);
            for (i, v) in numbers(k.into()).take(20_000).enumerate() {
                numbers_state.update_number(v);
                texts_state.update_text(&text(i)).unwrap();
            }
            let bytes = encoded(&numbers_state);
            let bound = agg.state_bytes_bound(NUMBER_ITEM_BYTES);
            assert!(bytes <= bound, "top-k {k} numbers: {bytes} > {bound}");
            let bytes = encoded(&texts_state);
            let bound = agg.state_bytes_bound(STRING_ITEM_BYTES);
            assert!(bytes <= bound, "top-k {k} strings: {bytes} > {bound}");
        }
        // t-digests at the smallest, default and largest compression.
        for size in [10, 200, 1_000] {
            let agg = Aggregation::ApproxPercentile {
                quantile: 0.5,
                size,
            };
            let mut state = AggState::new(&agg);
            for v in numbers(size.into()).take(200_000) {
                state.update_number(v);
            }
            let bytes = encoded(&state);
            let bound = agg.state_bytes_bound(NUMBER_ITEM_BYTES);
            assert!(bytes <= bound, "t-digest {size}: {bytes} > {bound}");
        }
    }

    /// A window folded from raw rows into one state, and the same rows folded per bucket
    /// and merged: what the parity check compares.
    fn folded_and_merged(
        agg: &Aggregation,
        values: &[f64],
        buckets: usize,
        feed: impl Fn(&mut AggState, f64),
    ) -> (AggState, AggState) {
        let mut folded = AggState::new(agg);
        let mut parts: Vec<AggState> = (0..buckets).map(|_| AggState::new(agg)).collect();
        for (i, &v) in values.iter().enumerate() {
            feed(&mut folded, v);
            feed(&mut parts[i % buckets], v);
        }
        let mut merged = AggState::new(agg);
        // Newest bucket first, as a different order from the fold's.
        for part in parts.iter().rev() {
            merged.merge(part).unwrap();
        }
        (folded, merged)
    }

    fn number(value: &AggValue) -> f64 {
        match value {
            AggValue::Number(v) => *v,
            AggValue::Count(c) => *c as f64,
            other => panic!("not a number: {other:?}"),
        }
    }

    #[test]
    fn exact_aggregations_have_zero_tolerance_and_sketches_a_published_one() {
        for info in CATALOG {
            let exact = matches!(
                info.tolerance,
                Tolerance::Exact | Tolerance::Rounding { .. }
            );
            assert_eq!(exact, !info.approximate, "{}", info.name);
        }
        assert_eq!(Aggregation::Count.parity_tolerance(1e6), 0.0);
        assert_eq!(Aggregation::MinByN { n: 3 }.parity_tolerance(1e6), 0.0);
        assert_eq!(Aggregation::Sum.parity_tolerance(1e6), 1e-9);
        assert_eq!(
            Aggregation::Var { sample: true }.parity_tolerance(1e6),
            1e-6
        );
        // CPC at lgK 11: three ICON standard errors (1.53%) on each side.
        let cpc = Aggregation::ApproxCountDistinct { lg_k: 11 }.parity_tolerance(0.0);
        assert!((cpc - 6.0 * 0.693 / 2048f64.sqrt()).abs() < 1e-12, "{cpc}");
        assert!((cpc - 0.0919).abs() < 1e-3, "{cpc}");
        // Top-k 10: a map of 128 slots, so 3.5/128 of the total weight.
        let top = Aggregation::ApproxTopK {
            k: 10,
            weighted: false,
        };
        assert_eq!(top.parity_tolerance(1280.0), 35.0);
        assert_eq!(top.parity_tolerance(0.0), 0.0);
        // Percentile at the default size 200: 1% rank error on each side.
        let p = Aggregation::approx_percentile(0.9).parity_tolerance(0.0);
        assert!((p - 0.02).abs() < 1e-12, "{p}");
        for info in CATALOG {
            assert!(!info.tolerance.describe().is_empty());
        }
    }

    #[test]
    fn float_sums_and_moments_merged_in_another_order_stay_within_rounding() {
        let values: Vec<f64> = numbers(7)
            .take(200_000)
            .map(|v| (v % 1_000_000.0) / 7.3 + 0.01)
            .collect();
        for agg in [
            Aggregation::Sum,
            Aggregation::Mean,
            Aggregation::Var { sample: false },
            Aggregation::Std { sample: true },
        ] {
            let (folded, merged) = folded_and_merged(&agg, &values, 720, AggState::update_number);
            let (a, b) = (number(&folded.evaluate()), number(&merged.evaluate()));
            let gap = (a - b).abs() / a.abs().max(b.abs());
            assert!(
                gap <= agg.parity_tolerance(0.0),
                "{}: {a} vs {b}",
                agg.name()
            );
        }
    }

    #[test]
    fn cpc_counts_merged_or_folded_stay_within_the_tolerance() {
        for lg_k in [4, 8, 11] {
            let agg = Aggregation::ApproxCountDistinct { lg_k };
            let tolerance = agg.parity_tolerance(0.0);
            let mut largest = 0f64;
            for trial in 0..40u64 {
                let values: Vec<f64> = numbers(trial * 31 + u64::from(lg_k)).take(20_000).collect();
                let (folded, merged) =
                    folded_and_merged(&agg, &values, 30, AggState::update_number);
                let (a, b) = (number(&folded.evaluate()), number(&merged.evaluate()));
                let gap = (a - b).abs() / a.max(b);
                largest = largest.max(gap);
                assert!(gap <= tolerance, "lgK {lg_k}, trial {trial}: {a} vs {b}");
            }
            // The bound is not vacuous: the two estimators do differ.
            assert!(largest > 0.0, "lgK {lg_k}");
        }
    }

    #[test]
    fn top_k_weights_merged_or_folded_stay_within_the_tolerance() {
        let k = 10;
        let agg = Aggregation::ApproxTopK { k, weighted: false };
        for trial in 0..20u64 {
            // Zipf-like: item i with weight about 1/i, over far more items than the map.
            let values: Vec<f64> = numbers(trial)
                .take(30_000)
                .map(|v| (2_000.0 / (1.0 + (v % 2_000.0))).floor())
                .collect();
            let (folded, merged) = folded_and_merged(&agg, &values, 30, AggState::update_number);
            let tolerance = agg.parity_tolerance(values.len() as f64);
            let (AggValue::WeightedItems(a), AggValue::WeightedItems(b)) =
                (folded.evaluate(), merged.evaluate())
            else {
                panic!("top-k gives weighted items");
            };
            for (item, weight) in &a {
                if let Some((_, other)) = b.iter().find(|(i, _)| i == item) {
                    assert!(
                        (weight - other).abs() <= tolerance,
                        "trial {trial}: {item:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn percentile_ranks_merged_or_folded_stay_within_the_tolerance() {
        let rank = |sorted: &[f64], v: f64| -> (f64, f64) {
            let n = sorted.len() as f64;
            let below = sorted.partition_point(|&x| x < v) as f64;
            let at_or_below = sorted.partition_point(|&x| x <= v) as f64;
            (below / n, at_or_below / n)
        };
        for size in [10u32, 200, 1_000] {
            for (label, values) in [
                (
                    "smooth",
                    numbers(u64::from(size)).take(50_000).collect::<Vec<f64>>(),
                ),
                (
                    "tied",
                    numbers(u64::from(size) + 1)
                        .take(50_000)
                        .map(|v| (v % 40.0).floor())
                        .collect(),
                ),
            ] {
                let mut sorted = values.clone();
                sorted.sort_by(f64::total_cmp);
                for q in [0.01, 0.5, 0.9, 0.99] {
                    let agg = Aggregation::ApproxPercentile { quantile: q, size };
                    let (folded, merged) =
                        folded_and_merged(&agg, &values, 30, AggState::update_number);
                    let (a, b) = (
                        rank(&sorted, number(&folded.evaluate())),
                        rank(&sorted, number(&merged.evaluate())),
                    );
                    let gap = (a.0 - b.1).max(b.0 - a.1).max(0.0);
                    assert!(
                        gap <= agg.parity_tolerance(0.0),
                        "size {size}, {label}, q {q}: ranks {a:?} vs {b:?}"
                    );
                }
            }
        }
    }
}
