//! `approx_count_distinct`: a CPC (Compressed Probabilistic Counting) sketch per bucket.

use std::hash::{Hash, Hasher};

use datasketches::cpc::{CpcSketch, CpcUnion};

use super::{body_after_version, guarded, SKETCH_BODY_VERSION, SKETCH_HASH_SEED};
use crate::error::{CoreError, CoreErrorKind, CoreResult};
use crate::item::Item;

const WHAT: &str = "approx_count_distinct";

/// The partial state of `approx_count_distinct`: a CPC sketch of the items seen.
///
/// Items are hashed from [`Item::canonical_bytes`] with [`SKETCH_HASH_SEED`], so `3` and
/// `3.0` are one item, the number `1` and the string `"1"` are two, and the same item hashes
/// identically in every process. Merging is a CPC union, which is exact on the sketch's
/// coupons: merging in any order or grouping gives the same sketch and the same estimate.
///
/// Merging many states (a window of hundreds of buckets) goes into one open [`CpcUnion`]
/// rather than a union per merge, which cost ~9 us per merged bucket; the union is turned
/// back into a sketch when the state is read (estimate, encode) or updated.
#[derive(Clone)]
pub struct CountDistinctState {
    sketch: CpcSketch,
    /// After a merge of two non-empty states: the union of everything merged so far, which
    /// supersedes `sketch` (left as it was before the first merge).
    union: Option<Box<CpcUnion>>,
}

impl std::fmt::Debug for CountDistinctState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountDistinctState")
            .field("lg_k", &self.lg_k())
            .field("estimate", &self.estimate())
            .field("merging", &self.union.is_some())
            .finish()
    }
}

/// An item's canonical bytes as the CPC hash input: the raw bytes, without the length
/// prefix that `Hash for [u8]` would add, so the hash is the one DataSketches computes for
/// `update(byte[])` of [`Item::canonical_bytes`]. Written in parts (the hasher is
/// streaming, so this hashes exactly the concatenation) to avoid building the bytes.
enum CanonicalBytes<'a> {
    Number([u8; 9]),
    Text(&'a str),
}

impl Hash for CanonicalBytes<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            CanonicalBytes::Number(bytes) => state.write(bytes),
            CanonicalBytes::Text(text) => {
                state.write(b"s");
                state.write(text.as_bytes());
            }
        }
    }
}

/// Two states are equal when they hold the same sketch: same `lg_k` and the same
/// serialized image (the image is canonical, so equal images mean equal coupons and
/// estimators). Meant for tests and assertions: it serializes both sides.
impl PartialEq for CountDistinctState {
    fn eq(&self, other: &Self) -> bool {
        self.lg_k() == other.lg_k() && self.current().serialize() == other.current().serialize()
    }
}

impl CountDistinctState {
    /// Smallest `lg_k` CPC supports (16 rows; ~15% error).
    pub const MIN_LG_K: u8 = 4;
    /// Largest `lg_k` CPC supports (2^26 rows; states of tens of MB).
    pub const MAX_LG_K: u8 = 26;

    /// An empty state with `2^lg_k` CPC rows; see [`super::DEFAULT_CPC_LG_K`].
    ///
    /// # Errors
    /// `InvalidAggregation` when `lg_k` is outside `4..=26`.
    pub fn new(lg_k: u8) -> CoreResult<Self> {
        if !(Self::MIN_LG_K..=Self::MAX_LG_K).contains(&lg_k) {
            return Err(CoreError::new(
                CoreErrorKind::InvalidAggregation,
                format!(
                    "{WHAT}: lg_k must be in {}..={}, got {lg_k}",
                    Self::MIN_LG_K,
                    Self::MAX_LG_K
                ),
            ));
        }
        let sketch = CpcSketch::with_seed(lg_k, SKETCH_HASH_SEED).map_err(|err| {
            CoreError::new(CoreErrorKind::InvalidAggregation, format!("{WHAT}: {err}"))
        })?;
        Ok(Self::from_sketch(sketch))
    }

    fn from_sketch(sketch: CpcSketch) -> Self {
        Self {
            sketch,
            union: None,
        }
    }

    /// The sketch this state stands for: `sketch`, or the open union's result.
    fn current(&self) -> std::borrow::Cow<'_, CpcSketch> {
        match &self.union {
            None => std::borrow::Cow::Borrowed(&self.sketch),
            Some(union) => std::borrow::Cow::Owned(union.to_sketch()),
        }
    }

    /// Closes the open union, if any, into `sketch` (before an update).
    fn settle(&mut self) {
        if let Some(union) = self.union.take() {
            self.sketch = union.to_sketch();
        }
    }

    /// Adds one item. NaN and infinite numbers are skipped: they are the null of a numeric
    /// column, and nulls are skipped by every aggregation.
    pub fn update_item(&mut self, item: &Item) {
        match item {
            Item::Number(v) => self.update_number(*v),
            Item::Text(text) => self.update_text(text),
        }
    }

    /// Adds the number `v`, as [`Self::update_item`] does for `Item::Number(v)`.
    #[inline]
    pub fn update_number(&mut self, v: f64) {
        if v.is_finite() {
            self.settle();
            let bytes = Item::number_canonical_bytes(v);
            self.sketch.update(CanonicalBytes::Number(bytes));
        }
    }

    /// Adds the string `text`, as [`Self::update_item`] does for `Item::Text(text)`,
    /// without building an owned item.
    #[inline]
    pub fn update_text(&mut self, text: &str) {
        self.settle();
        self.sketch.update(CanonicalBytes::Text(text));
    }

    /// Folds `other` into `self` (set union).
    ///
    /// Both states must have the same `lg_k`. A CPC union could fold a larger `lg_k` down to
    /// the smaller one, but silently lowering the precision of stored windows would hide a
    /// changed feature definition, so a mismatch is an error instead.
    ///
    /// When one side is empty the other is kept as is, which keeps its HIP estimator (more
    /// accurate than the ICON estimator a union falls back to).
    ///
    /// # Errors
    /// `StateMismatch` when the `lg_k`s differ (leaving `self` unchanged); `CorruptState` if
    /// the union finds the sketch internally inconsistent (only possible for a state decoded
    /// from damaged bytes), after which `self` must be discarded.
    pub fn merge(&mut self, other: &Self) -> CoreResult<()> {
        if self.lg_k() != other.lg_k() {
            return Err(CoreError::new(
                CoreErrorKind::StateMismatch,
                format!(
                    "{WHAT}: cannot merge a state with lg_k {} into one with lg_k {}",
                    other.lg_k(),
                    self.lg_k()
                ),
            ));
        }
        if other.is_empty() {
            return Ok(());
        }
        if self.is_empty() {
            *self = other.clone();
            return Ok(());
        }
        let other = other.current();
        let lg_k = self.lg_k();
        let mut union = match self.union.take() {
            Some(union) => union,
            None => {
                let sketch = &self.sketch;
                Box::new(guarded(WHAT, || {
                    let mut union = CpcUnion::with_seed(lg_k, SKETCH_HASH_SEED)?;
                    union.update(sketch)?;
                    Ok(union)
                })?)
            }
        };
        // A failure here (only for a sketch decoded from damaged bytes) drops the union:
        // the caller gets the error and must not use this state any more.
        guarded(WHAT, || union.update(&other))?;
        self.union = Some(union);
        Ok(())
    }

    /// The estimated number of distinct items.
    pub fn estimate(&self) -> f64 {
        self.current().estimate()
    }

    /// `true` when no item has been added.
    pub fn is_empty(&self) -> bool {
        self.union.is_none() && self.sketch.is_empty()
    }

    /// The configured `lg_k` (the sketch has `2^lg_k` rows).
    pub fn lg_k(&self) -> u8 {
        self.sketch.lg_k()
    }

    /// Appends the body: [`SKETCH_BODY_VERSION`], then the CPC compressed image (which
    /// carries `lg_k` and the seed hash). 9 bytes when empty, ~1.2 KB at most for lg_k 11.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(SKETCH_BODY_VERSION);
        out.extend_from_slice(&self.current().serialize());
    }

    /// Reads a body written by [`Self::encode_body`]; `bytes` is exactly the body.
    ///
    /// # Errors
    /// `CorruptState` for an unknown version, a truncated or damaged image, trailing bytes,
    /// a different seed, or an image that is not in the form `encode_body` writes.
    pub fn decode_body(bytes: &[u8]) -> CoreResult<Self> {
        let image = body_after_version(bytes, WHAT)?;
        let sketch = guarded(WHAT, || {
            CpcSketch::deserialize_with_seed(image, SKETCH_HASH_SEED)
        })?;
        // The parser ignores trailing bytes and does not cross-check the decoded coupons
        // against the header, so require the canonical image: re-encoding must give the
        // same bytes (serializing also walks the coupons and trips on inconsistencies).
        let reencoded = guarded(WHAT, || Ok(sketch.serialize()))?;
        if reencoded != image {
            return Err(CoreError::corrupt(format!(
                "{WHAT} state: CPC image is not canonical ({} bytes, re-encodes to {})",
                image.len(),
                reencoded.len()
            )));
        }
        let estimate = sketch.estimate();
        if !(estimate.is_finite() && estimate >= 0.0) {
            return Err(CoreError::corrupt(format!(
                "{WHAT} state: estimate is {estimate}"
            )));
        }
        Ok(Self::from_sketch(sketch))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::sketch::test_support::{fuzz_decode, hex, unhex, Rng};
    use crate::sketch::DEFAULT_CPC_LG_K;

    fn encode(state: &CountDistinctState) -> Vec<u8> {
        let mut out = Vec::new();
        state.encode_body(&mut out);
        out
    }

    fn state_of(lg_k: u8, items: impl IntoIterator<Item = Item>) -> CountDistinctState {
        let mut state = CountDistinctState::new(lg_k).unwrap();
        for item in items {
            state.update_item(&item);
        }
        state
    }

    fn golden_small() -> CountDistinctState {
        state_of(
            DEFAULT_CPC_LG_K,
            [
                Item::Number(1.0),
                Item::Number(2.0),
                Item::Number(2.5),
                Item::Text("a".into()),
                Item::Text("héllo".into()),
                Item::Number(1.0),
            ],
        )
    }

    /// lg_k 4 with 200 items reaches the dense (sliding-window) flavor with a short image.
    fn golden_dense() -> CountDistinctState {
        state_of(4, (0..200).map(|i| Item::Number(i as f64)))
    }

    const GOLDEN_SMALL: &str = concat!(
        "010801100b000ecc9305000000020000000000000000f79f40e1bb1369600214",
        "4032804055d399bd00",
    );
    const GOLDEN_DENSE: &str = concat!(
        "01080110040016cc933b000000030000000000000000c0014067000d98d9f262",
        "40149adf936575e80809000000",
    );

    #[test]
    fn golden_bytes() {
        for (state, golden) in [
            (golden_small(), GOLDEN_SMALL),
            (golden_dense(), GOLDEN_DENSE),
        ] {
            let bytes = encode(&state);
            assert_eq!(hex(&bytes), golden, "CPC body changed");
            let decoded = CountDistinctState::decode_body(&unhex(golden)).unwrap();
            assert_eq!(decoded.estimate(), state.estimate());
            assert_eq!(decoded.lg_k(), state.lg_k());
            assert_eq!(encode(&decoded), bytes);
        }
        assert_eq!(golden_small().estimate().round(), 5.0);
    }

    #[test]
    fn new_validates_lg_k() {
        for lg_k in [0, 3, 27, 255] {
            let err = CountDistinctState::new(lg_k).unwrap_err();
            assert_eq!(err.kind, CoreErrorKind::InvalidAggregation);
            assert!(err.message.contains("lg_k"), "{}", err.message);
        }
        assert!(CountDistinctState::new(4).is_ok());
        assert!(CountDistinctState::new(26).is_ok());
    }

    #[test]
    fn empty_state_and_null_numbers() {
        let mut state = CountDistinctState::new(DEFAULT_CPC_LG_K).unwrap();
        assert!(state.is_empty());
        assert_eq!(state.estimate(), 0.0);
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            state.update_item(&Item::Number(v));
        }
        assert!(state.is_empty());
        let decoded = CountDistinctState::decode_body(&encode(&state)).unwrap();
        assert!(decoded.is_empty());
    }

    #[test]
    fn canonical_items_count_once() {
        let state = state_of(
            DEFAULT_CPC_LG_K,
            [
                Item::Number(3.0),
                Item::Number(3.0),
                Item::Number(-0.0),
                Item::Number(0.0),
                Item::Text("3".into()),
            ],
        );
        assert_eq!(state.estimate().round(), 3.0);
    }

    #[test]
    fn merge_rejects_other_lg_k() {
        let mut a = state_of(11, [Item::Number(1.0)]);
        let b = state_of(12, [Item::Number(2.0)]);
        let err = a.merge(&b).unwrap_err();
        assert_eq!(err.kind, CoreErrorKind::StateMismatch);
        assert!(err.message.contains("lg_k 12"), "{}", err.message);
    }

    #[test]
    fn merge_is_order_independent() {
        let mut rng = Rng::new(7);
        for n in [10, 300, 3000, 30_000] {
            let a = state_of(11, (0..n).map(|_| Item::Number(rng.below(50_000) as f64)));
            let b = state_of(
                11,
                (0..n).map(|_| Item::Text(format!("u{}", rng.below(50_000)))),
            );
            let c = state_of(11, (0..n).map(|_| Item::Number(rng.below(50_000) as f64)));
            let mut ab = a.clone();
            ab.merge(&b).unwrap();
            let mut ba = b.clone();
            ba.merge(&a).unwrap();
            assert_eq!(ab.estimate(), ba.estimate(), "n = {n}");
            assert_eq!(encode(&ab), encode(&ba), "n = {n}");
            // Associativity: (a ∪ b) ∪ c == a ∪ (b ∪ c), byte for byte.
            let mut ab_c = ab.clone();
            ab_c.merge(&c).unwrap();
            let mut bc = b.clone();
            bc.merge(&c).unwrap();
            let mut a_bc = a.clone();
            a_bc.merge(&bc).unwrap();
            assert_eq!(encode(&ab_c), encode(&a_bc), "n = {n}");
            // The empty state is the identity on both sides.
            let empty = CountDistinctState::new(11).unwrap();
            let mut a_e = a.clone();
            a_e.merge(&empty).unwrap();
            let mut e_a = empty.clone();
            e_a.merge(&a).unwrap();
            assert_eq!(encode(&a_e), encode(&a));
            assert_eq!(encode(&e_a), encode(&a));
        }
    }

    /// Merges `buckets` bucket states per trial and returns the relative errors.
    fn merged_errors(trials: u64, buckets: usize, per_bucket: usize, universe: u64) -> Vec<f64> {
        let mut errors = Vec::new();
        for trial in 0..trials {
            let mut rng = Rng::new(1000 + trial);
            let mut exact = HashSet::new();
            let mut window = CountDistinctState::new(DEFAULT_CPC_LG_K).unwrap();
            // A different id space per trial, and a mix of numbers and strings.
            let salt = rng.next_u64();
            for _ in 0..buckets {
                let mut bucket = CountDistinctState::new(DEFAULT_CPC_LG_K).unwrap();
                for _ in 0..per_bucket {
                    let id = rng.below(universe) ^ salt;
                    let item = if id.is_multiple_of(3) {
                        Item::Text(format!("user-{id}"))
                    } else {
                        Item::Number((id >> 12) as f64)
                    };
                    let mut key = Vec::new();
                    item.canonical_bytes(&mut key);
                    exact.insert(key);
                    bucket.update_item(&item);
                }
                // Round-trip through the stored form, as the store does.
                let bucket = CountDistinctState::decode_body(&encode(&bucket)).unwrap();
                window.merge(&bucket).unwrap();
            }
            let truth = exact.len() as f64;
            errors.push((window.estimate() - truth).abs() / truth);
        }
        errors
    }

    fn report(label: &str, errors: &[f64], bar: f64) -> f64 {
        let mut sorted = errors.to_vec();
        sorted.sort_by(f64::total_cmp);
        let within = errors.iter().filter(|e| **e <= bar).count() as f64 / errors.len() as f64;
        println!(
            "CPC lg_k 11, {label}: {} trials, median rel. error {:.3}%, p95 {:.3}%, max {:.3}%, \
             within {:.1}%: {:.1}%",
            errors.len(),
            100.0 * sorted[sorted.len() / 2],
            100.0 * sorted[sorted.len() * 95 / 100],
            100.0 * sorted[sorted.len() - 1],
            100.0 * bar,
            100.0 * within
        );
        within
    }

    // The 200-trial runs of the brief run in release builds (`npm test` runs `cargo test
    // --release`, ~7 s for all three sketches) and are ignored in debug builds; the quick
    // versions below run the same check on the first 20 trials.
    const QUICK_TRIALS: u64 = 20;
    const FULL_TRIALS: u64 = 200;

    /// ~300 values per bucket from a universe of 2^40: ~9,000 distinct per window, so the
    /// sketch is well past its exact (sparse) regime.
    fn check_30_buckets(trials: u64) {
        let errors = merged_errors(trials, 30, 300, 1 << 40);
        assert!(report("30 buckets x 300 values", &errors, 0.031) >= 0.95);
    }

    /// Few values per bucket, many buckets, and repeats across buckets (~8,000 distinct).
    fn check_720_buckets(trials: u64) {
        let errors = merged_errors(trials, 720, 20, 9_000);
        assert!(report("720 buckets x 20 values", &errors, 0.031) >= 0.95);
    }

    #[test]
    fn accuracy_after_merging_30_buckets() {
        check_30_buckets(QUICK_TRIALS);
    }

    #[test]
    fn accuracy_after_merging_720_buckets() {
        check_720_buckets(QUICK_TRIALS);
    }

    #[test]
    #[cfg_attr(
        debug_assertions,
        ignore = "slow in debug builds; `cargo test --release` (npm test) runs it"
    )]
    fn accuracy_after_merging_30_buckets_200_trials() {
        check_30_buckets(FULL_TRIALS);
    }

    #[test]
    #[cfg_attr(
        debug_assertions,
        ignore = "slow in debug builds; `cargo test --release` (npm test) runs it"
    )]
    fn accuracy_after_merging_720_buckets_200_trials() {
        check_720_buckets(FULL_TRIALS);
    }

    #[test]
    fn corrupt_bodies_are_rejected_without_panicking() {
        for state in [
            CountDistinctState::new(11).unwrap(),
            golden_small(),
            golden_dense(),
            state_of(11, (0..300).map(|i| Item::Number(i as f64))),
            state_of(11, (0..5000).map(|i| Item::Number(i as f64))),
        ] {
            let valid = encode(&state);
            let fuzz = fuzz_decode(&valid, |bytes| {
                match CountDistinctState::decode_body(bytes) {
                    Err(err) => {
                        assert_eq!(err.kind, CoreErrorKind::CorruptState, "{err}");
                        false
                    }
                    Ok(decoded) => {
                        // Whatever decodes must be usable: estimate, merge, re-encode.
                        assert!(decoded.estimate().is_finite());
                        let mut merged = state.clone();
                        match merged.merge(&decoded) {
                            Ok(()) => {
                                let _ = encode(&merged);
                            }
                            Err(err) => {
                                assert!(matches!(
                                    err.kind,
                                    CoreErrorKind::CorruptState | CoreErrorKind::StateMismatch
                                ))
                            }
                        }
                        true
                    }
                }
            });
            println!("CPC corrupt input, {} valid bytes: {fuzz}", valid.len());
        }
    }

    #[test]
    fn bytes_per_state() {
        for n in [1u64, 100, 10_000] {
            let state = state_of(DEFAULT_CPC_LG_K, (0..n).map(|i| Item::Number(i as f64)));
            let bytes = encode(&state).len();
            println!(
                "CPC lg_k 11, {n} distinct: {bytes} body bytes, estimate {:.1}",
                state.estimate()
            );
            assert!(bytes <= 1 + CpcSketch::max_serialized_bytes(11).unwrap());
        }
    }
}
