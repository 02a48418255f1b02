//! Mergeable partial states of every aggregation: the exact ones, and the three sketches
//! (`approx_count_distinct`, `approx_top_k`, `approx_percentile`) of [`crate::sketch`].
//!
//! The contract is DataFusion's accumulator. Each bucket keeps the smallest state from
//! which its aggregation can be finished ([`AggState`]). Rows are folded in with the
//! `update_*` methods; the states of several buckets (or of several partitions of one
//! bucket) are combined with [`AggState::merge`]; [`AggState::evaluate`] turns the merged
//! state into the answer; [`AggState::encode`] / [`AggState::decode`] give the bytes the
//! store keeps per bucket.
//!
//! ```text
//!   rows of bucket 1 --update--> state --+
//!   rows of bucket 2 --update--> state --+--merge--> state --evaluate--> value
//!   rows of bucket 3 --update--> state --+
//! ```
//!
//! Merge is associative and commutative, and merging partial states gives what folding
//! all the raw rows into one state gives: exactly for sum, count, min, max, mean,
//! min_by_n, max_by_n and the vector aggregations (whenever the floating-point sums
//! involved are exact, e.g. integers of bounded size), and up to rounding for var and
//! std. The sketch states merge associatively and commutatively up to the sketch's
//! published error: merging partial states answers within the same bound as folding the raw
//! rows (the CPC union gives the same sketch in any merge order; the frequent-items and
//! t-digest merges can differ slightly with the merge order, always within their bounds).
//!
//! # Sketches
//!
//! A sketch state carries the arguments it is evaluated with, so that the store can evaluate
//! a merged window without the plan (as it does for `n` and `dim`): `approx_percentile`
//! stores its quantile and `approx_top_k` whether it is weighted. Two rules with different
//! quantiles over one column are two states. Their encodings are
//! `header, LEB128 length, payload` (see the codec), so records of states still concatenate.
//!
//! - `approx_count_distinct` folds numbers and strings ([`AggState::update_item`],
//!   [`AggState::update_text`], or [`AggState::update_number`] for a number) and evaluates
//!   to [`AggValue::Count`], a whole number like `count`'s: exact while the state holds the
//!   set of its items' hashes (up to 166 distinct items at the default lgK 11), the CPC
//!   estimate rounded to the nearest integer past that; 0 for nothing.
//! - `approx_top_k` folds items with weight 1 (the same update paths) or with a weight from
//!   the `by` column ([`AggState::update_weighted`]); it evaluates to
//!   [`AggValue::WeightedItems`], up to `k` items, heaviest first, each with its estimated
//!   weight; Null for nothing.
//! - `approx_percentile` folds numbers ([`AggState::update_number`]) and evaluates to the
//!   value at its quantile; Null for nothing.
//!
//! # Nulls
//!
//! A null number arrives as NaN. Every non-finite number (NaN, +inf, -inf) is treated
//! exactly like null and skipped by every aggregation: `count` does not count it,
//! `min_by_n` / `max_by_n` skip a pair whose `by` is non-finite, and the vector
//! aggregations skip a vector with any non-finite element. Of nothing, `count` evaluates
//! to 0 and every other aggregation to [`AggValue::Null`], for which the caller supplies
//! the feature's default. A result that is NaN (a sum that overflowed both ways) is also
//! reported as Null.

pub mod catalog;
mod codec;
mod moments;
mod ranked;
mod summary;
mod vector;

#[cfg(test)]
mod sketch_tests;
#[cfg(test)]
mod tests;

pub use catalog::{
    AggregationArguments, AggregationInfo, AggregationKind, ArgumentInfo, ArgumentKind, ColumnKind,
    EmptyValue, FoldInput, ResultRule, Scale, StateBytes, Tolerance, ValueClass, CATALOG,
    NUMBER_ITEM_BYTES, STRING_ITEM_BYTES,
};
pub use moments::Moments;
pub use ranked::RankedState;
pub use summary::NumericSummary;
pub use vector::VectorState;

use crate::error::{CoreError, CoreErrorKind, CoreResult};
use crate::item::Item;
use crate::sketch::{
    CountDistinctState, PercentileState, TopKState, DEFAULT_CPC_LG_K, DEFAULT_PERCENTILE_SIZE,
};
use ranked::Rank;

/// The version of the state encoding, stored in the top three bits of every state's
/// first byte. Bump it (and keep decoding the old one) whenever any layout changes; the
/// codec lists the versions and what each changed.
pub const STATE_FORMAT_VERSION: u8 = 2;

/// The oldest state format version [`AggState::decode`] reads (see the codec for which of
/// its states are refused).
pub const OLDEST_READABLE_STATE_FORMAT: u8 = 1;

/// The largest `n` of `min_by_n` / `max_by_n`.
pub const MAX_RANKED_N: u32 = 1_000;

/// The largest dimension of `vector_sum` / `vector_mean`.
pub const MAX_VECTOR_DIM: u32 = 65_536;

/// Which aggregation a rule computes, with its validated arguments.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Aggregation {
    /// Sum of the values.
    Sum,
    /// Number of non-null values.
    Count,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Arithmetic mean.
    Mean,
    /// Variance: population (divide by n) or sample (divide by n - 1).
    Var { sample: bool },
    /// Standard deviation: the square root of [`Aggregation::Var`].
    Std { sample: bool },
    /// The `n` values with the smallest `by`, smallest first.
    MinByN { n: u32 },
    /// The `n` values with the largest `by`, largest first.
    MaxByN { n: u32 },
    /// Element-wise sum of vectors of dimension `dim`.
    VectorSum { dim: u32 },
    /// Element-wise mean of vectors of dimension `dim`.
    VectorMean { dim: u32 },
    /// Number of distinct items: exact for small sets, then a CPC sketch of `2^lg_k` rows
    /// (`lg_k` in 4..=26; [`DEFAULT_CPC_LG_K`] = 11 counts up to 166 items exactly and
    /// more with ~1.5% standard error, in ~1.3 KB at most).
    ApproxCountDistinct { lg_k: u32 },
    /// Approximately the `k` (1..=1000) most frequent items, with their weights: a
    /// frequent-items sketch. `weighted`: the rule weighs items by its `by` column
    /// (otherwise every row weighs 1).
    ApproxTopK { k: u32, weighted: bool },
    /// Approximate value at `quantile` (in [0, 1]): a t-digest of compression `size`
    /// (10..=1000; [`DEFAULT_PERCENTILE_SIZE`] = 200).
    ApproxPercentile { quantile: f64, size: u32 },
}

impl Aggregation {
    /// `approx_count_distinct` with the default `lg_k`.
    pub const APPROX_COUNT_DISTINCT: Aggregation = Aggregation::ApproxCountDistinct {
        lg_k: DEFAULT_CPC_LG_K as u32,
    };

    /// `approx_percentile(quantile)` with the default sketch size.
    pub fn approx_percentile(quantile: f64) -> Aggregation {
        Aggregation::ApproxPercentile {
            quantile,
            size: u32::from(DEFAULT_PERCENTILE_SIZE),
        }
    }
}

impl Aggregation {
    /// The name users see: `"sum"`, `"var_sample"`, `"min_by_n(5)"`,
    /// `"vector_mean(384)"`, ...
    pub fn name(&self) -> String {
        match *self {
            Aggregation::Sum => "sum".to_owned(),
            Aggregation::Count => "count".to_owned(),
            Aggregation::Min => "min".to_owned(),
            Aggregation::Max => "max".to_owned(),
            Aggregation::Mean => "mean".to_owned(),
            Aggregation::Var { sample: false } => "var".to_owned(),
            Aggregation::Var { sample: true } => "var_sample".to_owned(),
            Aggregation::Std { sample: false } => "std".to_owned(),
            Aggregation::Std { sample: true } => "std_sample".to_owned(),
            Aggregation::MinByN { n } => format!("min_by_n({n})"),
            Aggregation::MaxByN { n } => format!("max_by_n({n})"),
            Aggregation::VectorSum { dim } => format!("vector_sum({dim})"),
            Aggregation::VectorMean { dim } => format!("vector_mean({dim})"),
            Aggregation::ApproxCountDistinct { lg_k } => {
                format!("approx_count_distinct(lgK={lg_k})")
            }
            Aggregation::ApproxTopK { k, weighted: false } => format!("approx_top_k({k})"),
            Aggregation::ApproxTopK { k, weighted: true } => format!("approx_top_k({k}, weighted)"),
            Aggregation::ApproxPercentile { quantile, size } => {
                format!("approx_percentile({quantile}, size={size})")
            }
        }
    }
}

fn cpc_lg_k_range() -> std::ops::RangeInclusive<u32> {
    u32::from(CountDistinctState::MIN_LG_K)..=u32::from(CountDistinctState::MAX_LG_K)
}

fn percentile_size_range() -> std::ops::RangeInclusive<u32> {
    u32::from(PercentileState::MIN_SIZE)..=u32::from(PercentileState::MAX_SIZE)
}

/// The value of an aggregation over some rows.
#[derive(Debug, Clone, PartialEq)]
pub enum AggValue {
    /// No value (nothing was aggregated, or too little for var/std): use the default.
    Null,
    /// A float result: sum, min, max, mean, var, std.
    Number(f64),
    /// The result of `count` and `approx_count_distinct`.
    Count(u64),
    /// The kept values of `min_by_n` / `max_by_n`, best first.
    Items(Vec<Item>),
    /// The result of a vector aggregation.
    Vector(Vec<f64>),
    /// The items of `approx_top_k`, heaviest first, each with its estimated weight (the
    /// row count when unweighted).
    WeightedItems(Vec<(Item, f64)>),
}

/// The smallest mergeable partial state of one aggregation over one bucket.
///
/// Build the empty state with [`AggState::new`]; a state knows its aggregation and
/// arguments, so it can be merged, evaluated and encoded on its own.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AggState {
    /// Running sum; `None` until a value arrives, so that "no rows" and "rows summing
    /// to 0" stay apart.
    Sum(Option<f64>),
    /// Number of non-null values.
    Count(u64),
    /// Smallest value so far.
    Min(Option<f64>),
    /// Largest value so far.
    Max(Option<f64>),
    /// Sum and count of the values.
    Mean { sum: f64, count: u64 },
    /// Count, mean and M2 of the values, finished as a variance.
    Var { moments: Moments, sample: bool },
    /// Count, mean and M2 of the values, finished as a standard deviation.
    Std { moments: Moments, sample: bool },
    /// The `n` pairs with the smallest `by`.
    MinByN(RankedState),
    /// The `n` pairs with the largest `by`.
    MaxByN(RankedState),
    /// Element-wise sum and count of the vectors.
    VectorSum(VectorState),
    /// Element-wise sum and count of the vectors, finished as a mean.
    VectorMean(VectorState),
    /// The distinct item hashes, or a CPC sketch of them (boxed: the sketch is larger than
    /// the other states, and `AggState` stays small for the exact aggregations' hot path).
    ApproxCountDistinct(Box<CountDistinctState>),
    /// A frequent-items sketch, and whether the rule weighs items by its `by` column.
    ApproxTopK {
        sketch: Box<TopKState>,
        weighted: bool,
    },
    /// A t-digest, and the quantile it is evaluated at.
    ApproxPercentile {
        sketch: Box<PercentileState>,
        quantile: f64,
    },
}

impl AggState {
    /// The empty state of `agg`. Arguments are not checked here; call
    /// [`Aggregation::validate`] when the definition is read.
    pub fn new(agg: &Aggregation) -> AggState {
        match *agg {
            Aggregation::Sum => AggState::Sum(None),
            Aggregation::Count => AggState::Count(0),
            Aggregation::Min => AggState::Min(None),
            Aggregation::Max => AggState::Max(None),
            Aggregation::Mean => AggState::Mean { sum: 0.0, count: 0 },
            Aggregation::Var { sample } => AggState::Var {
                moments: Moments::EMPTY,
                sample,
            },
            Aggregation::Std { sample } => AggState::Std {
                moments: Moments::EMPTY,
                sample,
            },
            Aggregation::MinByN { n } => AggState::MinByN(RankedState::new(n)),
            Aggregation::MaxByN { n } => AggState::MaxByN(RankedState::new(n)),
            Aggregation::VectorSum { dim } => AggState::VectorSum(VectorState::new(dim)),
            Aggregation::VectorMean { dim } => AggState::VectorMean(VectorState::new(dim)),
            Aggregation::ApproxCountDistinct { lg_k } => {
                AggState::ApproxCountDistinct(Box::new(new_count_distinct(lg_k)))
            }
            Aggregation::ApproxTopK { k, weighted } => AggState::ApproxTopK {
                sketch: Box::new(new_top_k(k)),
                weighted,
            },
            Aggregation::ApproxPercentile { quantile, size } => AggState::ApproxPercentile {
                sketch: Box::new(new_percentile(size)),
                quantile,
            },
        }
    }

    /// The aggregation (with arguments) that this state computes.
    pub fn aggregation(&self) -> Aggregation {
        match self {
            AggState::Sum(_) => Aggregation::Sum,
            AggState::Count(_) => Aggregation::Count,
            AggState::Min(_) => Aggregation::Min,
            AggState::Max(_) => Aggregation::Max,
            AggState::Mean { .. } => Aggregation::Mean,
            AggState::Var { sample, .. } => Aggregation::Var { sample: *sample },
            AggState::Std { sample, .. } => Aggregation::Std { sample: *sample },
            AggState::MinByN(r) => Aggregation::MinByN { n: r.n() },
            AggState::MaxByN(r) => Aggregation::MaxByN { n: r.n() },
            AggState::VectorSum(v) => Aggregation::VectorSum { dim: v.dim() },
            AggState::VectorMean(v) => Aggregation::VectorMean { dim: v.dim() },
            AggState::ApproxCountDistinct(s) => Aggregation::ApproxCountDistinct {
                lg_k: u32::from(s.lg_k()),
            },
            AggState::ApproxTopK { sketch, weighted } => Aggregation::ApproxTopK {
                k: sketch.k(),
                weighted: *weighted,
            },
            AggState::ApproxPercentile { sketch, quantile } => Aggregation::ApproxPercentile {
                quantile: *quantile,
                size: u32::from(sketch.size()),
            },
        }
    }

    /// Hints the CPU to load what this state keeps on the heap (a sketch's box), for a
    /// loop about to read many states in an order unlike the one they were made in.
    #[inline]
    pub fn prefetch_heap(&self) {
        match self {
            AggState::ApproxCountDistinct(s) => crate::hint::prefetch(&**s),
            AggState::ApproxTopK { sketch, .. } => crate::hint::prefetch(&**sketch),
            AggState::ApproxPercentile { sketch, .. } => crate::hint::prefetch(&**sketch),
            _ => {}
        }
    }

    /// Whether nothing has been folded in (no non-null value, pair or vector).
    pub fn is_empty(&self) -> bool {
        match self {
            AggState::Sum(s) | AggState::Min(s) | AggState::Max(s) => s.is_none(),
            AggState::Count(c) => *c == 0,
            AggState::Mean { count, .. } => *count == 0,
            AggState::Var { moments, .. } | AggState::Std { moments, .. } => moments.count == 0,
            AggState::MinByN(r) | AggState::MaxByN(r) => r.pairs().is_empty(),
            AggState::VectorSum(v) | AggState::VectorMean(v) => v.count() == 0,
            AggState::ApproxCountDistinct(s) => s.is_empty(),
            AggState::ApproxTopK { sketch, .. } => sketch.is_empty(),
            AggState::ApproxPercentile { sketch, .. } => sketch.is_empty(),
        }
    }

    /// Folds one number into sum, count, min, max, mean, var or std; NaN means null and
    /// every non-finite number is skipped. The ranked and vector aggregations take
    /// their inputs through [`AggState::update_ranked`] and [`AggState::update_vector`]
    /// and ignore plain numbers. The sketches take the number as they take
    /// `Item::Number`: a value for `approx_percentile`, an item for
    /// `approx_count_distinct`, an item of weight 1 for `approx_top_k`.
    ///
    /// This is the ingest hot path: it never allocates for the exact aggregations (a
    /// sketch may grow its own buffers).
    #[inline]
    pub fn update_number(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        match self {
            // -0.0 is the identity of addition (0.0 is not: 0.0 + -0.0 == 0.0).
            AggState::Sum(sum) => *sum = Some(sum.unwrap_or(-0.0) + v),
            AggState::Count(count) => *count = count.saturating_add(1),
            AggState::Min(min) => fold_min(min, v),
            AggState::Max(max) => fold_max(max, v),
            AggState::Mean { sum, count } => {
                *sum += v;
                *count = count.saturating_add(1);
            }
            AggState::Var { moments, .. } | AggState::Std { moments, .. } => moments.update(v),
            AggState::MinByN(_)
            | AggState::MaxByN(_)
            | AggState::VectorSum(_)
            | AggState::VectorMean(_) => {}
            AggState::ApproxCountDistinct(s) => s.update_number(v),
            AggState::ApproxTopK { sketch, .. } => sketch.update_owned(Item::Number(v), 1.0),
            AggState::ApproxPercentile { sketch, .. } => sketch.update(v),
        }
    }

    /// Folds one item. `count` counts every non-null item (a string, or a finite
    /// number); `approx_count_distinct` and `approx_top_k` (with weight 1) take numbers
    /// and strings; the numeric aggregations (`approx_percentile` among them) take
    /// [`Item::Number`] as [`AggState::update_number`] does and reject text. The ranked
    /// and vector aggregations need a pair or a vector and reject a lone item.
    #[inline]
    pub fn update_item(&mut self, item: &Item) -> CoreResult<()> {
        match (&mut *self, item) {
            (AggState::Count(count), Item::Text(_)) => {
                *count = count.saturating_add(1);
                return Ok(());
            }
            (AggState::ApproxCountDistinct(s), _) => {
                s.update_item(item);
                return Ok(());
            }
            (AggState::ApproxTopK { sketch, .. }, _) => {
                if !is_null_item(item) {
                    sketch.update(item, 1.0);
                }
                return Ok(());
            }
            _ => {}
        }
        let takes_numbers = !self.is_ranked_or_vector();
        match item {
            Item::Number(v) if takes_numbers => {
                self.update_number(*v);
                Ok(())
            }
            Item::Text(text) if takes_numbers => Err(CoreError::new(
                CoreErrorKind::InvalidInput,
                format!(
                    "{} aggregates numbers, got the text '{}'",
                    self.aggregation().name(),
                    preview(text)
                ),
            )),
            _ => Err(CoreError::new(
                CoreErrorKind::InvalidInput,
                format!(
                    "{} cannot fold a lone item: it takes {}",
                    self.aggregation().name(),
                    if matches!(self, AggState::MinByN(_) | AggState::MaxByN(_)) {
                        "(by, value) pairs"
                    } else {
                        "vectors"
                    }
                ),
            )),
        }
    }

    /// Folds one string, as [`AggState::update_item`] folds `Item::Text(text)`, without
    /// building the item where the aggregation does not keep it (`count`,
    /// `approx_count_distinct`).
    #[inline]
    pub fn update_text(&mut self, text: &str) -> CoreResult<()> {
        match self {
            AggState::Count(count) => {
                *count = count.saturating_add(1);
                Ok(())
            }
            AggState::ApproxCountDistinct(s) => {
                s.update_text(text);
                Ok(())
            }
            AggState::ApproxTopK { sketch, .. } => {
                sketch.update_owned(Item::Text(text.to_owned()), 1.0);
                Ok(())
            }
            other => other.update_item(&Item::Text(text.to_owned())),
        }
    }

    /// Folds one item with a weight into `approx_top_k` (the weight comes from the rule's
    /// `by` column). A NaN item, and a weight that is null (NaN), infinite, zero,
    /// negative or below 0.0005 (weights are kept in thousandths) are skipped. Every other
    /// aggregation takes the item as [`AggState::update_item`] does and ignores the weight.
    #[inline]
    pub fn update_weighted(&mut self, item: Item, weight: f64) -> CoreResult<()> {
        match self {
            AggState::ApproxTopK { sketch, .. } => {
                if !is_null_item(&item) {
                    sketch.update_owned(item, weight);
                }
                Ok(())
            }
            other => other.update_item(&item),
        }
    }

    /// Offers one (by, value) pair to `min_by_n` / `max_by_n`, which keep the `n` best
    /// pairs. Pairs are ordered by `by`, then by item, so ties are settled the same way
    /// in every merge order; equal pairs are kept as duplicates, as raw aggregation
    /// would. A non-finite `by` skips the pair. Other aggregations ignore pairs.
    #[inline]
    pub fn update_ranked(&mut self, by: f64, item: Item) {
        match self {
            AggState::MinByN(ranked) => ranked.offer(Rank::Smallest, by, item),
            AggState::MaxByN(ranked) => ranked.offer(Rank::Largest, by, item),
            _ => {}
        }
    }

    /// Folds one vector into `vector_sum` / `vector_mean`. A vector with any non-finite
    /// element is null and skipped; a vector of the wrong dimension is an error, as is
    /// a vector offered to any other aggregation.
    pub fn update_vector(&mut self, values: &[f64]) -> CoreResult<()> {
        let (state, name) = match self {
            AggState::VectorSum(state) => (state, "vector_sum"),
            AggState::VectorMean(state) => (state, "vector_mean"),
            other => {
                return Err(CoreError::new(
                    CoreErrorKind::InvalidInput,
                    format!("{} cannot fold a vector", other.aggregation().name()),
                ))
            }
        };
        if values.len() != state.dim() as usize {
            return Err(CoreError::new(
                CoreErrorKind::InvalidInput,
                format!(
                    "{name}({dim}) expects vectors of dimension {dim}, got dimension {}",
                    values.len(),
                    dim = state.dim()
                ),
            ));
        }
        state.add(values);
        Ok(())
    }

    /// Merges `other` into `self`, as if `other`'s rows had been folded into `self`.
    /// Both must be states of the same aggregation with the same arguments
    /// (`StateMismatch` otherwise, leaving `self` unchanged).
    pub fn merge(&mut self, other: &AggState) -> CoreResult<()> {
        match (&mut *self, other) {
            (AggState::Sum(sum), AggState::Sum(Some(add))) => {
                *sum = Some(sum.unwrap_or(-0.0) + add);
            }
            (AggState::Sum(_), AggState::Sum(None)) => {}
            (AggState::Count(count), AggState::Count(add)) => {
                *count = count.saturating_add(*add);
            }
            (AggState::Min(min), AggState::Min(other)) => {
                if let Some(v) = *other {
                    fold_min(min, v);
                }
            }
            (AggState::Max(max), AggState::Max(other)) => {
                if let Some(v) = *other {
                    fold_max(max, v);
                }
            }
            (
                AggState::Mean { sum, count },
                AggState::Mean {
                    sum: add_sum,
                    count: add_count,
                },
            ) => {
                *sum += add_sum;
                *count = count.saturating_add(*add_count);
            }
            (
                AggState::Var { moments, sample },
                AggState::Var {
                    moments: add,
                    sample: other_sample,
                },
            )
            | (
                AggState::Std { moments, sample },
                AggState::Std {
                    moments: add,
                    sample: other_sample,
                },
            ) if sample == other_sample => moments.merge(add),
            (AggState::MinByN(ranked), AggState::MinByN(add)) if ranked.n() == add.n() => {
                ranked.merge(Rank::Smallest, add);
            }
            (AggState::MaxByN(ranked), AggState::MaxByN(add)) if ranked.n() == add.n() => {
                ranked.merge(Rank::Largest, add);
            }
            (AggState::VectorSum(vector), AggState::VectorSum(add))
            | (AggState::VectorMean(vector), AggState::VectorMean(add))
                if vector.dim() == add.dim() =>
            {
                vector.merge(add);
            }
            (AggState::ApproxCountDistinct(sketch), AggState::ApproxCountDistinct(add))
                if sketch.lg_k() == add.lg_k() =>
            {
                sketch.merge(add)?;
            }
            (
                AggState::ApproxTopK { sketch, weighted },
                AggState::ApproxTopK {
                    sketch: add,
                    weighted: other_weighted,
                },
            ) if weighted == other_weighted && sketch.k() == add.k() => sketch.merge(add)?,
            (
                AggState::ApproxPercentile { sketch, quantile },
                AggState::ApproxPercentile {
                    sketch: add,
                    quantile: other_quantile,
                },
            ) if quantile.to_bits() == other_quantile.to_bits() && sketch.size() == add.size() => {
                sketch.merge(add)?
            }
            _ => {
                return Err(CoreError::new(
                    CoreErrorKind::StateMismatch,
                    format!(
                        "cannot merge a {} state into a {} state",
                        other.aggregation().name(),
                        self.aggregation().name()
                    ),
                ))
            }
        }
        Ok(())
    }

    /// The aggregation's value. `count` of nothing is `Count(0)`; everything else of
    /// nothing (and var/std of fewer than two values) is `Null`.
    pub fn evaluate(&self) -> AggValue {
        match self {
            AggState::Sum(v) | AggState::Min(v) | AggState::Max(v) => number(*v),
            AggState::Count(count) => AggValue::Count(*count),
            AggState::Mean { sum, count } => number((*count > 0).then(|| *sum / *count as f64)),
            AggState::Var { moments, sample } => number(moments.variance(*sample)),
            AggState::Std { moments, sample } => number(moments.variance(*sample).map(f64::sqrt)),
            AggState::MinByN(ranked) | AggState::MaxByN(ranked) => {
                if ranked.pairs().is_empty() {
                    AggValue::Null
                } else {
                    AggValue::Items(ranked.items())
                }
            }
            AggState::VectorSum(vector) => match vector.count() {
                0 => AggValue::Null,
                _ => AggValue::Vector(vector.sum().to_vec()),
            },
            AggState::VectorMean(vector) => match vector.count() {
                0 => AggValue::Null,
                count => AggValue::Vector(vector.sum().iter().map(|s| s / count as f64).collect()),
            },
            AggState::ApproxCountDistinct(sketch) => AggValue::Count(sketch.count()),
            AggState::ApproxTopK { sketch, .. } => {
                if sketch.is_empty() {
                    AggValue::Null
                } else {
                    AggValue::WeightedItems(sketch.top(true))
                }
            }
            AggState::ApproxPercentile { sketch, quantile } => number(sketch.quantile(*quantile)),
        }
    }

    fn is_ranked_or_vector(&self) -> bool {
        matches!(
            self,
            AggState::MinByN(_)
                | AggState::MaxByN(_)
                | AggState::VectorSum(_)
                | AggState::VectorMean(_)
        )
    }
}

// The empty sketch states. `AggState::new` does not check arguments (validate does), so
// out-of-range ones are clamped into the supported range rather than failing here; with
// arguments in range the constructors cannot fail.

fn new_count_distinct(lg_k: u32) -> CountDistinctState {
    let range = cpc_lg_k_range();
    let lg_k = lg_k.clamp(*range.start(), *range.end()) as u8;
    CountDistinctState::new(lg_k).expect("lg_k is clamped into the CPC range")
}

fn new_top_k(k: u32) -> TopKState {
    TopKState::new(k.clamp(TopKState::MIN_K, TopKState::MAX_K)).expect("k is clamped into range")
}

fn new_percentile(size: u32) -> PercentileState {
    let range = percentile_size_range();
    let size = size.clamp(*range.start(), *range.end()) as u16;
    PercentileState::new(size).expect("size is clamped into the t-digest range")
}

/// Keeps the smaller value. `total_cmp` puts -0.0 before 0.0, so the kept zero does not
/// depend on the order values arrive in.
#[inline]
fn fold_min(min: &mut Option<f64>, v: f64) {
    if min.is_none_or(|m| v.total_cmp(&m).is_lt()) {
        *min = Some(v);
    }
}

/// Keeps the larger value (0.0 over -0.0, whatever the order).
#[inline]
fn fold_max(max: &mut Option<f64>, v: f64) {
    if max.is_none_or(|m| v.total_cmp(&m).is_gt()) {
        *max = Some(v);
    }
}

/// A non-finite number: null for every aggregation (the top-k sketch itself would keep
/// infinities as items).
#[inline]
fn is_null_item(item: &Item) -> bool {
    matches!(item, Item::Number(v) if !v.is_finite())
}

/// A float result, with NaN (no meaningful value) reported as null.
fn number(v: Option<f64>) -> AggValue {
    match v {
        Some(x) if !x.is_nan() => AggValue::Number(x),
        _ => AggValue::Null,
    }
}

/// The start of a user's text for an error message.
fn preview(text: &str) -> String {
    const LIMIT: usize = 40;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}
