//! The store's view of a plan: series, their rules, and the bucket layouts derived from
//! them. A layout is one bucket size of one series; its record holds the states of every
//! rule that uses that size, in stored-list order, so an event costs one fold per layout
//! and a commit writes one RocksDB entry per touched (series, key, layout, bucket).
//!
//! A series' rules are kept in its *stored list*, which only grows: a definition change
//! ([`reconcile`]) keeps the rules still requested where they are, appends new ones and
//! flags the ones no longer requested as retired, so a rule's slot in its layout's record
//! never moves and records written before stay readable (docs/semantics.md section 9.4).
//! The planner's rule order (the rule index of reads, the *requested* index) maps to the
//! stored list through [`SeriesLayout::rule_slot`], the one place that mapping is read.
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
    /// A rule the description no longer requests: never folded, read or backfilled; the
    /// records written since carry an empty state of its kind in its slot.
    pub retired: bool,
}

/// One bucket size of one series, with the rules (indexes into the series' stored list,
/// retired ones included) whose states share its records: a rule's position here is its
/// state's slot in the record.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub span: BucketSpan,
    pub rules: Vec<usize>,
    /// The largest retention of its active rules (of its retired ones when it has no
    /// active rule).
    pub retention_ms: i64,
}

/// Where a requested rule lives: its index in the stored list, its layout (an index into
/// [`SeriesLayout::layouts`]) and its state's position in that layout's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleSlot {
    pub stored: usize,
    pub layout: usize,
    pub position: usize,
}

/// A series ready to use: spec, validated rules, layouts, and where each rule sits.
#[derive(Debug, Clone)]
pub struct SeriesLayout {
    /// The spec with the stored rule list (retired rules included, in stored order).
    pub spec: SeriesSpec,
    /// The store-wide number of the series, used in bucket keys.
    pub number: u32,
    /// One per stored rule, in stored order.
    pub rules: Vec<Rule>,
    /// The layouts with at least one active rule: what is folded, read and backfilled.
    pub layouts: Vec<Layout>,
    /// The layouts whose rules are all retired: never written, kept for their retention
    /// so that their buckets still expire (`retention.rs`).
    pub retired_layouts: Vec<Layout>,
    /// For each stored rule: (layout index, position of its state in that layout's
    /// record); `None` for a rule of a retired layout.
    rule_slots: Vec<Option<(usize, usize)>>,
    /// The requested rule index -> the stored rule index.
    order: Vec<usize>,
    /// Whether any active rule reads the `by` column.
    pub needs_by: bool,
}

impl SeriesLayout {
    /// Validates a series spec whose rules are all active, in the order requested (a
    /// series registered for the first time), and derives its layouts.
    pub fn new(spec: SeriesSpec, number: u32) -> StoreResult<Self> {
        let order = (0..spec.rules.len()).collect();
        Self::with_order(spec, number, order)
    }

    /// Validates a series spec holding the stored rule list and derives its layouts.
    /// `order` maps each requested rule index to its stored index; stored rules it does
    /// not name are retired.
    pub fn with_order(spec: SeriesSpec, number: u32, order: Vec<usize>) -> StoreResult<Self> {
        let series = &spec.id;
        if spec.id.is_empty() {
            return Err(invalid_description("a series has an empty id"));
        }
        if spec.rules.is_empty() || order.is_empty() {
            return Err(invalid_description(format!(
                "series '{series}' has no rules"
            )));
        }
        let mut active = vec![false; spec.rules.len()];
        for &stored in &order {
            match active.get_mut(stored) {
                Some(seen @ false) => *seen = true,
                _ => {
                    return Err(invalid_description(format!(
                        "series '{series}': the rule order {order:?} does not name distinct \
                         rules of its {} stored rules",
                        spec.rules.len()
                    )))
                }
            }
        }
        if spec.value_kind == ValueKind::Vector && spec.vector_dim.unwrap_or(0) == 0 {
            return Err(invalid_description(format!(
                "series '{series}' holds vectors but gives no vectorDim"
            )));
        }
        let mut rules = Vec::with_capacity(spec.rules.len());
        let mut layouts: Vec<Layout> = Vec::new();
        let mut slots = Vec::with_capacity(spec.rules.len());
        for (index, rule) in spec.rules.iter().enumerate() {
            let context = format!("series '{series}' rule {index} ({})", rule.aggregation.kind);
            let mut built = build_rule(&rule.aggregation, spec.value_kind, spec.vector_dim)
                .map_err(|m| invalid_description(format!("{context}: {m}")))?;
            built.retired = !active[index];
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
            slots.push((layout_index, layout.rules.len()));
            layout.rules.push(index);
            rules.push(built);
        }
        // Retention follows the active rules; a layout without one keeps its retired
        // rules' retention, and leaves the layouts that are folded and read.
        let mut kept = Vec::with_capacity(layouts.len());
        let mut retired_layouts = Vec::new();
        let mut renumbered = vec![None; layouts.len()];
        for (index, mut layout) in layouts.into_iter().enumerate() {
            let has_active = layout.rules.iter().any(|&r| active[r]);
            layout.retention_ms = layout
                .rules
                .iter()
                .filter(|&&r| active[r] || !has_active)
                .map(|&r| spec.rules[r].retention_ms)
                .max()
                .unwrap_or(0);
            if has_active {
                renumbered[index] = Some(kept.len());
                kept.push(layout);
            } else {
                retired_layouts.push(layout);
            }
        }
        let rule_slots = slots
            .into_iter()
            .map(|(layout, position)| renumbered[layout].map(|l| (l, position)))
            .collect();
        let needs_by = rules
            .iter()
            .any(|r| !r.retired && matches!(r.input, FoldInput::Ranked | FoldInput::Weighted));
        Ok(Self {
            spec,
            number,
            rules,
            layouts: kept,
            retired_layouts,
            rule_slots,
            order,
            needs_by,
        })
    }

    /// Where the requested rule `requested` (the planner's rule index: a read's `rule`)
    /// lives. Every entry point that takes a requested index goes through here.
    pub fn rule_slot(&self, requested: usize) -> StoreResult<RuleSlot> {
        let slot = self.order.get(requested).and_then(|&stored| {
            self.rule_slots[stored].map(|(layout, position)| RuleSlot {
                stored,
                layout,
                position,
            })
        });
        slot.ok_or_else(|| {
            crate::error::invalid_batch(format!(
                "series '{}' has {} rules, a read asks for rule {requested}",
                self.spec.id,
                self.order.len()
            ))
        })
    }

    /// The requested index of a stored rule; `None` for a retired one.
    pub fn requested_index(&self, stored: usize) -> Option<usize> {
        self.order.iter().position(|&s| s == stored)
    }

    /// The requested rule index -> stored rule index mapping, as kept in the series
    /// record.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The (active) layout of `bucket_size_ms`, or an error naming the series and size.
    pub fn layout_of_size(&self, bucket_size_ms: i64) -> StoreResult<&Layout> {
        self.layouts
            .iter()
            .find(|l| l.span.size_ms() == bucket_size_ms)
            .ok_or_else(|| {
                crate::error::invalid_batch(format!(
                    "series '{}' has no buckets of {bucket_size_ms} ms",
                    self.spec.id
                ))
            })
    }

    /// The retention of the layout of `bucket_size_ms`, active or retired.
    pub fn layout_retention(&self, bucket_size_ms: i64) -> Option<i64> {
        self.layouts
            .iter()
            .chain(&self.retired_layouts)
            .find(|l| l.span.size_ms() == bucket_size_ms)
            .map(|l| l.retention_ms)
    }

    /// The active rules of a layout, as stored rule indexes.
    pub fn active_rules<'a>(&'a self, layout: &'a Layout) -> impl Iterator<Item = usize> + 'a {
        layout
            .rules
            .iter()
            .copied()
            .filter(|&r| !self.rules[r].retired)
    }
}

/// What reconciling a series' stored rules with the requested ones decided
/// ([`reconcile`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Reconciliation {
    /// The spec to store: the stored rule list, with new rules appended and the kept
    /// rules' retentions as requested.
    pub spec: SeriesSpec,
    /// The requested rule index -> the stored rule index.
    pub order: Vec<usize>,
    /// Stored indexes of the rules appended by this change.
    pub added: Vec<usize>,
    /// Stored indexes of the rules this change retired.
    pub retired: Vec<usize>,
    /// Stored indexes of kept rules whose retention changed.
    pub retention_changed: Vec<usize>,
}

impl Reconciliation {
    /// Whether the stored rules stay exactly as they were.
    pub fn is_unchanged(&self) -> bool {
        self.added.is_empty() && self.retired.is_empty() && self.retention_changed.is_empty()
    }
}

/// Reconciles the rules a series was stored with (`stored`, its rule list, and
/// `stored_order`, which of them were requested and in what order) with the `requested`
/// spec (docs/semantics.md section 9.4):
/// - a rule is matched by (aggregation, bucket size) among the stored rules that are
///   still active; a kept rule keeps its stored position, and takes the requested
///   retention;
/// - a rule with no match is appended to the stored list, so its slot comes after the
///   existing slots of its bucket size;
/// - an active stored rule no longer requested is retired, and stays in the list so that
///   the slots after it keep their positions; a retired rule is never matched again (its
///   states have a hole), so requesting it again appends a new rule.
///
/// The bucket origin and the value kind are part of the series identity: a requested
/// spec that disagrees with the stored one on them is an error.
pub fn reconcile(
    stored: &SeriesSpec,
    stored_order: &[usize],
    requested: &SeriesSpec,
) -> StoreResult<Reconciliation> {
    let id = &requested.id;
    if stored.value_kind != requested.value_kind || stored.vector_dim != requested.vector_dim {
        return Err(invalid_description(format!(
            "series '{id}' is stored with {:?} values (dimension {:?}) and requested with {:?} \
             (dimension {:?}); the value kind is part of the series identity",
            stored.value_kind, stored.vector_dim, requested.value_kind, requested.vector_dim
        )));
    }
    let mut spec = stored.clone();
    // A series adopted from a former id is stored under the requested one from now on.
    spec.id.clone_from(&requested.id);
    let mut available: Vec<bool> = vec![false; stored.rules.len()];
    for &index in stored_order {
        if let Some(a) = available.get_mut(index) {
            *a = true;
        }
    }
    let mut order = Vec::with_capacity(requested.rules.len());
    let mut added = Vec::new();
    let mut retention_changed = Vec::new();
    for rule in &requested.rules {
        if let Some(other) = stored
            .rules
            .iter()
            .find(|r| r.bucket_size_ms == rule.bucket_size_ms)
        {
            if BucketSpan::new(other.bucket_size_ms, other.bucket_origin_ms).ok()
                != BucketSpan::new(rule.bucket_size_ms, rule.bucket_origin_ms).ok()
            {
                return Err(invalid_description(format!(
                    "series '{id}': bucket size {} ms is stored with origin {} ms and \
                     requested with {} ms; the bucket origin is part of the series identity",
                    rule.bucket_size_ms, other.bucket_origin_ms, rule.bucket_origin_ms
                )));
            }
        }
        let matched = (0..stored.rules.len()).find(|&i| {
            available[i]
                && stored.rules[i].aggregation == rule.aggregation
                && stored.rules[i].bucket_size_ms == rule.bucket_size_ms
        });
        match matched {
            Some(i) => {
                available[i] = false;
                if spec.rules[i].retention_ms != rule.retention_ms {
                    spec.rules[i].retention_ms = rule.retention_ms;
                    retention_changed.push(i);
                }
                order.push(i);
            }
            None => {
                added.push(spec.rules.len());
                order.push(spec.rules.len());
                spec.rules.push(rule.clone());
            }
        }
    }
    let retired = stored_order
        .iter()
        .copied()
        .filter(|&i| available.get(i).copied().unwrap_or(false))
        .collect();
    Ok(Reconciliation {
        spec,
        order,
        added,
        retired,
        retention_changed,
    })
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
        retired: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn rule(kind: &str, size: i64, retention: i64) -> RuleSpec {
        RuleSpec {
            aggregation: AggregationSpec {
                kind: kind.into(),
                ..Default::default()
            },
            bucket_size_ms: size,
            bucket_origin_ms: 0,
            retention_ms: retention,
        }
    }

    fn spec(rules: Vec<RuleSpec>) -> SeriesSpec {
        SeriesSpec {
            id: "s".into(),
            value_kind: ValueKind::Number,
            vector_dim: None,
            rules,
        }
    }

    #[test]
    fn kept_rules_keep_their_positions_and_new_ones_are_appended() {
        let stored = spec(vec![
            rule("sum", HOUR, 7 * DAY),
            rule("count", DAY, 7 * DAY),
        ]);
        let requested = spec(vec![
            rule("mean", HOUR, 30 * DAY),
            rule("sum", HOUR, 30 * DAY),
            rule("count", DAY, 7 * DAY),
        ]);
        let r = reconcile(&stored, &[0, 1], &requested).unwrap();
        assert_eq!(r.order, vec![2, 0, 1]);
        assert_eq!(r.added, vec![2]);
        assert!(r.retired.is_empty());
        assert_eq!(r.retention_changed, vec![0]);
        assert_eq!(r.spec.rules[0], rule("sum", HOUR, 30 * DAY));
        assert_eq!(r.spec.rules[2], rule("mean", HOUR, 30 * DAY));
        // The new rule's slot comes after the existing ones of its size.
        let layout = SeriesLayout::with_order(r.spec, 1, r.order).unwrap();
        assert_eq!(
            layout.rule_slot(0).unwrap(),
            RuleSlot {
                stored: 2,
                layout: 0,
                position: 1
            }
        );
        assert_eq!(layout.rule_slot(1).unwrap().position, 0);
        assert_eq!(layout.layouts[0].retention_ms, 30 * DAY);
    }

    #[test]
    fn a_rule_no_longer_requested_is_retired_and_never_revived() {
        let stored = spec(vec![
            rule("sum", HOUR, 7 * DAY),
            rule("count", HOUR, 7 * DAY),
        ]);
        let r = reconcile(&stored, &[0, 1], &spec(vec![rule("count", HOUR, DAY)])).unwrap();
        assert_eq!((r.order.clone(), r.retired.clone()), (vec![1], vec![0]));
        let layout = SeriesLayout::with_order(r.spec.clone(), 1, r.order.clone()).unwrap();
        assert!(layout.rules[0].retired && !layout.rules[1].retired);
        // Retention follows the active rules.
        assert_eq!(layout.layouts[0].retention_ms, DAY);
        assert!(layout.rule_slot(1).is_err());
        assert_eq!(layout.requested_index(0), None);
        let again = spec(vec![rule("count", HOUR, DAY), rule("sum", HOUR, 7 * DAY)]);
        let r = reconcile(&r.spec, &r.order, &again).unwrap();
        assert_eq!(r.order, vec![1, 2]);
        assert_eq!(r.added, vec![2]);
        assert!(r.retired.is_empty());
        assert_eq!(r.spec.rules.len(), 3);
    }

    #[test]
    fn a_layout_of_retired_rules_only_keeps_its_retention_out_of_the_layouts() {
        let stored = spec(vec![rule("sum", HOUR, 7 * DAY), rule("sum", DAY, 30 * DAY)]);
        let r = reconcile(&stored, &[0, 1], &spec(vec![rule("sum", HOUR, 7 * DAY)])).unwrap();
        let layout = SeriesLayout::with_order(r.spec, 1, r.order).unwrap();
        assert_eq!(layout.layouts.len(), 1);
        assert_eq!(layout.retired_layouts.len(), 1);
        assert_eq!(layout.retired_layouts[0].retention_ms, 30 * DAY);
        assert_eq!(layout.layout_retention(DAY), Some(30 * DAY));
    }

    #[test]
    fn an_unchanged_description_changes_nothing() {
        let stored = spec(vec![
            rule("sum", HOUR, 7 * DAY),
            rule("count", HOUR, 7 * DAY),
        ]);
        let r = reconcile(&stored, &[0, 1], &stored).unwrap();
        assert!(r.is_unchanged());
        assert_eq!(r.spec, stored);
        assert_eq!(r.order, vec![0, 1]);
    }

    #[test]
    fn another_origin_or_value_kind_is_refused() {
        let stored = spec(vec![rule("sum", HOUR, 7 * DAY)]);
        let mut moved = rule("mean", HOUR, 7 * DAY);
        moved.bucket_origin_ms = 60_000;
        let e = reconcile(&stored, &[0], &spec(vec![moved])).unwrap_err();
        assert!(e.message.contains("origin"), "{}", e.message);
        let mut strings = stored.clone();
        strings.value_kind = ValueKind::String;
        assert!(reconcile(&stored, &[0], &strings).is_err());
    }
}
