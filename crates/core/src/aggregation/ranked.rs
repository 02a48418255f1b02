//! The state of `min_by_n` and `max_by_n`: the n best (by, value) pairs.

use std::cmp::Ordering;

use crate::item::Item;

/// Which end of the pair order a ranked state keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rank {
    /// `min_by_n`: the smallest pairs, smallest first.
    Smallest,
    /// `max_by_n`: the largest pairs, largest first.
    Largest,
}

impl Rank {
    /// Orders two pairs best first: `Less` means `a` ranks ahead of `b`.
    #[inline]
    pub(crate) fn compare(self, a: &(f64, Item), b: &(f64, Item)) -> Ordering {
        match self {
            Rank::Smallest => pair_order(a, b),
            Rank::Largest => pair_order(b, a),
        }
    }
}

/// The one total order of pairs: by `by`, then by item. Kept `by`s are finite and never
/// -0.0, so `total_cmp` agrees with numeric order on them. Pairs that compare equal are
/// identical, so which of two equal pairs is kept never shows.
#[inline]
fn pair_order(a: &(f64, Item), b: &(f64, Item)) -> Ordering {
    a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1))
}

/// Folds -0.0 into 0.0, which compare equal but differ in bits.
#[inline]
fn fold_zero(v: f64) -> f64 {
    if v == 0.0 {
        0.0
    } else {
        v
    }
}

/// The kept pairs of `min_by_n` / `max_by_n`, best first, at most `n` of them.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedState {
    pub(crate) n: u32,
    pub(crate) pairs: Vec<(f64, Item)>,
}

impl RankedState {
    pub(crate) fn new(n: u32) -> Self {
        Self {
            n,
            pairs: Vec::new(),
        }
    }

    /// How many pairs are kept at most.
    pub fn n(&self) -> u32 {
        self.n
    }

    /// The kept (by, item) pairs, best first.
    pub fn pairs(&self) -> &[(f64, Item)] {
        &self.pairs
    }

    /// The kept items, best first.
    pub(crate) fn items(&self) -> Vec<Item> {
        self.pairs.iter().map(|(_, item)| item.clone()).collect()
    }

    /// Makes a pair canonical: -0.0 as 0.0 in both `by` and a number item, so that equal
    /// pairs are bit-identical and encodings do not depend on arrival order.
    pub(crate) fn canonical_pair(by: f64, item: Item) -> (f64, Item) {
        let item = match item {
            Item::Number(v) => Item::Number(fold_zero(v)),
            text => text,
        };
        (fold_zero(by), item)
    }

    /// Offers one pair; a non-finite `by` is null and skipped.
    pub(crate) fn offer(&mut self, rank: Rank, by: f64, item: Item) {
        if !by.is_finite() || self.n == 0 {
            return;
        }
        let pair = Self::canonical_pair(by, item);
        let full = self.pairs.len() >= self.n as usize;
        if full
            && self
                .pairs
                .last()
                .is_some_and(|worst| rank.compare(&pair, worst) != Ordering::Less)
        {
            return;
        }
        let at = self
            .pairs
            .partition_point(|kept| rank.compare(kept, &pair) != Ordering::Greater);
        self.pairs.insert(at, pair);
        self.pairs.truncate(self.n as usize);
    }

    /// Merges a state with the same `n` (checked by the caller): the n best of both.
    pub(crate) fn merge(&mut self, rank: Rank, other: &RankedState) {
        if other.pairs.is_empty() {
            return;
        }
        let limit = self.n as usize;
        let mine = std::mem::take(&mut self.pairs);
        let mut merged = Vec::with_capacity(limit.min(mine.len() + other.pairs.len()));
        let mut mine = mine.into_iter().peekable();
        let mut theirs = other.pairs.iter().peekable();
        while merged.len() < limit {
            let next = match (mine.peek(), theirs.peek()) {
                (Some(a), Some(b)) if rank.compare(a, b) == Ordering::Greater => {
                    theirs.next().cloned()
                }
                (Some(_), _) => mine.next(),
                (None, _) => theirs.next().cloned(),
            };
            match next {
                Some(pair) => merged.push(pair),
                None => break,
            }
        }
        self.pairs = merged;
    }

    /// Whether the pairs are a valid state: at most `n`, finite canonical `by`s, best
    /// first. Decoding checks this so a corrupt state cannot mislead later merges.
    pub(crate) fn is_well_formed(&self, rank: Rank) -> bool {
        self.pairs.len() <= self.n as usize
            && self
                .pairs
                .iter()
                .all(|(by, _)| by.is_finite() && by.to_bits() != (-0.0f64).to_bits())
            && self
                .pairs
                .windows(2)
                .all(|w| rank.compare(&w[0], &w[1]) != Ordering::Greater)
    }
}
