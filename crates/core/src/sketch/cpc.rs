//! `approx_count_distinct`: per bucket, the exact set of item hashes while it is small,
//! a CPC (Compressed Probabilistic Counting) sketch past that.
//!
//! # Two forms
//!
//! Every item is reduced to its 64-bit hash ([`super::item_hash`]: MurmurHash3 of
//! [`Item::canonical_bytes`] with [`SKETCH_HASH_SEED`]). A state starts *exact*: the sorted
//! set of distinct hashes, counted exactly (two of `n` distinct items share a 64-bit hash
//! with probability about n²/2^65: 7·10^-16 for a full set at lg_k 11, 3·10^-14 at the
//! cap). When an item would take the set past [`CountDistinctState::exact_limit`] hashes,
//! the state becomes a *sketch*: a CPC sketch fed the set's hashes, and from then on every
//! new item's hash. The sketch is fed the hash (as DataSketches' `update(long)` would be),
//! not the item's bytes, so folding an exact set into a sketch sets exactly the coupons its
//! items would have set.
//!
//! The exact form is what makes small counts right: a CPC sketch of a dozen items loses
//! one to a coupon collision in about 1% of buckets (two items on the same row and
//! column), so a user could read 8 for 9 distinct categories. It also makes small buckets
//! cheap: an exact state of one item is 11 stored bytes, a sketch of one item 39.
//!
//! # The threshold
//!
//! An exact state of `n` hashes has a body of `1 + 8n` bytes (`lg_k`, then the hashes).
//! [`CountDistinctState::exact_limit`] is the largest `n` whose body is no larger than the
//! largest CPC body of the same lg_k: the version byte and the image bound the
//! `datasketches` crate quotes (`CpcSketch::max_serialized_bytes`, the 99.9th percentile of
//! an image's size over all cardinalities), capped at
//! [`CountDistinctState::MAX_EXACT_HASHES`]. So the exact form never raises what a bucket
//! may cost: the bound per bucket is the sketch's, as before. Below the threshold an exact
//! set is larger than a sketch of the same items would be (a sparse CPC image grows by only
//! 1-3 bytes per item: at lg_k 11, 100 items take 804 stored bytes exact, ~135 as a
//! sketch), and that is the price of exact counts; a smaller threshold would make counts
//! of a few dozen items approximate again.
//!
//! | lg_k | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 14..=26 |
//! |---|---|---|---|---|---|---|---|---|---|---|---|
//! | exact up to | 8 | 9 | 12 | 17 | 27 | 48 | 87 | 166 | 322 | 632 | 1024 |
//!
//! The cap keeps an exact set a small sorted vector (at most 8 KiB, whose inserts and
//! merges stay cheap): from lg_k 14 on, the size rule alone would allow sets of thousands
//! to millions of hashes, while the sketch there already counts within ~0.5%.
//!
//! # Merging
//!
//! exact + exact stays exact while the union has at most
//! [`CountDistinctState::exact_limit`] hashes; a larger union, and any merge with a sketch,
//! goes into one open [`CpcUnion`] (exact sets enter it as sketches of their hashes).
//! Merging many states (a window of hundreds of buckets) reuses that one union rather than
//! building one per merge (which cost ~9 us per merged bucket); the union is turned back
//! into a sketch when the state is read (estimate, encode) or updated. A union's estimate
//! is the ICON estimate, a function of its coupons alone, and a CPC union is exact on
//! coupons, so every merge order and grouping gives the same state and the same answer.
//! An empty state is the identity, and merging into an empty state keeps the other state
//! as it is (a single bucket's sketch keeps its more accurate HIP estimator).

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use datasketches::cpc::{CpcSketch, CpcUnion};

use super::item_hash::{item_hash, number_hash, text_hash};
use super::{body_after_version, guarded, SKETCH_BODY_VERSION, SKETCH_HASH_SEED};
use crate::error::{CoreError, CoreErrorKind, CoreResult};
use crate::item::Item;

const WHAT: &str = "approx_count_distinct";

/// The partial state of `approx_count_distinct`: the exact set of item hashes, or a CPC
/// sketch of them (see the module doc).
///
/// Items are identified by [`Item::canonical_bytes`], so `3` and `3.0` are one item, the
/// number `1` and the string `"1"` are two, and the same item hashes identically in every
/// process.
#[derive(Clone)]
pub struct CountDistinctState {
    lg_k: u8,
    /// [`CountDistinctState::exact_limit`] of `lg_k`, kept because every new hash of an
    /// exact state checks it.
    limit: usize,
    form: Form,
}

#[derive(Clone)]
enum Form {
    /// The distinct hashes, strictly ascending; at most `limit` of them.
    Exact(Vec<u64>),
    /// A sketch updated item by item (HIP estimator), or read back from bytes.
    Sketch(CpcSketch),
    /// The union of the states merged so far (ICON estimator).
    Union(Box<CpcUnion>),
}

impl std::fmt::Debug for CountDistinctState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let form = match &self.form {
            Form::Exact(_) => "exact",
            Form::Sketch(_) => "sketch",
            Form::Union(_) => "merging",
        };
        f.debug_struct("CountDistinctState")
            .field("lg_k", &self.lg_k)
            .field("form", &form)
            .field("estimate", &self.estimate())
            .finish()
    }
}

/// A hash as CPC input: its 8 little-endian bytes, as DataSketches' `update(long)` hashes a
/// long (spelled out rather than left to `Hash for u64`, whose bytes are the platform's).
struct HashInput(u64);

impl Hash for HashInput {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0.to_le_bytes());
    }
}

/// Two states are equal when they hold the same hashes, or the same sketch: same `lg_k`
/// and the same serialized image (the image is canonical, so equal images mean equal
/// coupons and estimators). Meant for tests and assertions: it serializes sketches.
impl PartialEq for CountDistinctState {
    fn eq(&self, other: &Self) -> bool {
        if self.lg_k != other.lg_k {
            return false;
        }
        match (&self.form, &other.form) {
            (Form::Exact(a), Form::Exact(b)) => a == b,
            (Form::Exact(_), _) | (_, Form::Exact(_)) => false,
            _ => self.current().serialize() == other.current().serialize(),
        }
    }
}

impl CountDistinctState {
    /// Relative standard error of a merged sketch's estimate (the ICON estimator) times
    /// `sqrt(2^lg_k)`: 1.53% at lg_k 11. The DataSketches CPC paper's figure.
    pub const ICON_STANDARD_ERROR: f64 = 0.693;
    /// The same for an unmerged sketch (the HIP estimator): 1.30% at lg_k 11.
    pub const HIP_STANDARD_ERROR: f64 = 0.589;

    /// Smallest `lg_k` CPC supports (16 rows; ~15% error).
    pub const MIN_LG_K: u8 = 4;
    /// Largest `lg_k` CPC supports (2^26 rows; states of tens of MB).
    pub const MAX_LG_K: u8 = 26;

    /// The most hashes an exact state keeps at any lg_k (8 KiB); see the module doc.
    pub const MAX_EXACT_HASHES: usize = 1024;

    /// The most distinct items an exact state of `lg_k` counts before it becomes a sketch:
    /// `min(max_serialized_bytes(lg_k) / 8, MAX_EXACT_HASHES)` (the module doc has the
    /// table). 0 for an lg_k outside `4..=26`.
    pub fn exact_limit(lg_k: u8) -> usize {
        CpcSketch::max_serialized_bytes(lg_k)
            .map_or(0, |bound| (bound / 8).min(Self::MAX_EXACT_HASHES))
    }

    /// An empty (exact) state whose sketch, once it has one, has `2^lg_k` CPC rows; see
    /// [`super::DEFAULT_CPC_LG_K`].
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
        Ok(Self::exact(lg_k, Vec::new()))
    }

    fn exact(lg_k: u8, hashes: Vec<u64>) -> Self {
        Self {
            lg_k,
            limit: CountDistinctState::exact_limit(lg_k),
            form: Form::Exact(hashes),
        }
    }

    /// The sketch this state stands for (not meaningful for an exact state, which never
    /// asks): the sketch, or the open union's result.
    fn current(&self) -> Cow<'_, CpcSketch> {
        match &self.form {
            Form::Sketch(sketch) => Cow::Borrowed(sketch),
            Form::Union(union) => Cow::Owned(union.to_sketch()),
            Form::Exact(hashes) => Cow::Owned(sketch_of(self.lg_k, hashes)),
        }
    }

    /// Adds one item. NaN and infinite numbers are skipped: they are the null of a numeric
    /// column, and nulls are skipped by every aggregation.
    pub fn update_item(&mut self, item: &Item) {
        if !matches!(item, Item::Number(v) if !v.is_finite()) {
            self.insert(item_hash(item));
        }
    }

    /// Adds the number `v`, as [`Self::update_item`] does for `Item::Number(v)`.
    #[inline]
    pub fn update_number(&mut self, v: f64) {
        if v.is_finite() {
            self.insert(number_hash(v));
        }
    }

    /// Adds the string `text`, as [`Self::update_item`] does for `Item::Text(text)`,
    /// without building an owned item.
    #[inline]
    pub fn update_text(&mut self, text: &str) {
        self.insert(text_hash(text));
    }

    /// Adds one item hash: into the set while it has room, else into the sketch (which the
    /// set becomes, fed its hashes in ascending order, then this one).
    #[inline]
    fn insert(&mut self, hash: u64) {
        match &mut self.form {
            Form::Exact(hashes) => {
                let Err(at) = hashes.binary_search(&hash) else {
                    return;
                };
                if hashes.len() < self.limit {
                    hashes.insert(at, hash);
                    return;
                }
                let mut sketch = sketch_of(self.lg_k, hashes);
                sketch.update(HashInput(hash));
                self.form = Form::Sketch(sketch);
            }
            Form::Sketch(sketch) => sketch.update(HashInput(hash)),
            Form::Union(union) => {
                let mut sketch = union.to_sketch();
                sketch.update(HashInput(hash));
                self.form = Form::Sketch(sketch);
            }
        }
    }

    /// Folds `other` into `self` (set union); see the module doc for the forms.
    ///
    /// Both states must have the same `lg_k`. A CPC union could fold a larger `lg_k` down to
    /// the smaller one, but silently lowering the precision of stored windows would hide a
    /// changed feature definition, so a mismatch is an error instead.
    ///
    /// # Errors
    /// `StateMismatch` when the `lg_k`s differ (leaving `self` unchanged); `CorruptState` if
    /// the union finds a sketch internally inconsistent (only possible for a state decoded
    /// from damaged bytes), after which `self` must be discarded.
    pub fn merge(&mut self, other: &Self) -> CoreResult<()> {
        if self.lg_k != other.lg_k {
            return Err(CoreError::new(
                CoreErrorKind::StateMismatch,
                format!(
                    "{WHAT}: cannot merge a state with lg_k {} into one with lg_k {}",
                    other.lg_k, self.lg_k
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
        if let (Form::Exact(mine), Form::Exact(theirs)) = (&self.form, &other.form) {
            let union = sorted_union(mine, theirs);
            if union.len() <= self.limit {
                self.form = Form::Exact(union);
                return Ok(());
            }
            let sketch = sketch_of(self.lg_k, &union);
            self.form = Form::Union(Box::new(self.open_union(&sketch)?));
            return Ok(());
        }
        // A failure below (only for a sketch decoded from damaged bytes) leaves an empty
        // state behind: the caller gets the error and must not use this state any more.
        let mut union = match std::mem::replace(&mut self.form, Form::Exact(Vec::new())) {
            Form::Union(union) => union,
            Form::Sketch(sketch) => Box::new(self.open_union(&sketch)?),
            Form::Exact(hashes) => Box::new(self.open_union(&sketch_of(self.lg_k, &hashes))?),
        };
        let theirs = match &other.form {
            Form::Exact(hashes) => Cow::Owned(sketch_of(self.lg_k, hashes)),
            _ => other.current(),
        };
        guarded(WHAT, || union.update(&theirs))?;
        self.form = Form::Union(union);
        Ok(())
    }

    /// A union of this state's `lg_k` holding `sketch`.
    fn open_union(&self, sketch: &CpcSketch) -> CoreResult<CpcUnion> {
        let lg_k = self.lg_k;
        guarded(WHAT, || {
            let mut union = CpcUnion::with_seed(lg_k, SKETCH_HASH_SEED)?;
            union.update(sketch)?;
            Ok(union)
        })
    }

    /// The number of distinct items: exact for an exact state, the CPC estimate otherwise.
    pub fn estimate(&self) -> f64 {
        match &self.form {
            Form::Exact(hashes) => hashes.len() as f64,
            _ => self.current().estimate(),
        }
    }

    /// The number of distinct items as the aggregation's value: the exact count of an exact
    /// state, the CPC estimate rounded to the nearest whole number otherwise.
    pub fn count(&self) -> u64 {
        match &self.form {
            Form::Exact(hashes) => hashes.len() as u64,
            // A CPC estimate is finite and non-negative (decode checks stored ones).
            _ => self.current().estimate().round() as u64,
        }
    }

    /// `true` when no item has been added.
    pub fn is_empty(&self) -> bool {
        match &self.form {
            Form::Exact(hashes) => hashes.is_empty(),
            Form::Sketch(sketch) => sketch.is_empty(),
            Form::Union(_) => false,
        }
    }

    /// `true` while the state holds the exact set of hashes (it encodes as its own kind).
    pub fn is_exact(&self) -> bool {
        matches!(self.form, Form::Exact(_))
    }

    /// The configured `lg_k` (the sketch has `2^lg_k` rows).
    pub fn lg_k(&self) -> u8 {
        self.lg_k
    }

    /// Appends the body of the state's form.
    ///
    /// Exact: `lg_k`, then the hashes as u64 LE, ascending: `1 + 8n` bytes (no body
    /// version: it is no DataSketches image, and the state header's kind and format
    /// version name it). Sketch: [`SKETCH_BODY_VERSION`], then the CPC compressed image
    /// (which carries `lg_k` and the seed hash): 9 bytes when empty, ~1.2 KB at most for
    /// lg_k 11.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        match &self.form {
            Form::Exact(hashes) => {
                out.reserve(1 + 8 * hashes.len());
                out.push(self.lg_k);
                for hash in hashes {
                    out.extend_from_slice(&hash.to_le_bytes());
                }
            }
            _ => {
                out.push(SKETCH_BODY_VERSION);
                out.extend_from_slice(&self.current().serialize());
            }
        }
    }

    /// Reads an exact body written by [`Self::encode_body`]; `bytes` is exactly the body.
    ///
    /// # Errors
    /// `CorruptState` for an `lg_k` outside `4..=26`, a length that is not `1 + 8n`, more
    /// hashes than [`CountDistinctState::exact_limit`] allows, or hashes that are not
    /// strictly ascending.
    pub fn decode_exact_body(bytes: &[u8]) -> CoreResult<Self> {
        let Some((&lg_k, rest)) = bytes.split_first() else {
            return Err(CoreError::corrupt(format!(
                "{WHAT} exact state is empty (0 bytes)"
            )));
        };
        if !(Self::MIN_LG_K..=Self::MAX_LG_K).contains(&lg_k) {
            return Err(CoreError::corrupt(format!(
                "{WHAT} exact state has lg_k {lg_k}, outside {}..={}",
                Self::MIN_LG_K,
                Self::MAX_LG_K
            )));
        }
        let (words, tail) = rest.as_chunks::<8>();
        if !tail.is_empty() {
            return Err(CoreError::corrupt(format!(
                "{WHAT} exact state: {} bytes of hashes, not a multiple of 8",
                rest.len()
            )));
        }
        let limit = CountDistinctState::exact_limit(lg_k);
        if words.len() > limit {
            return Err(CoreError::corrupt(format!(
                "{WHAT} exact state holds {} hashes, more than the {limit} kept at lg_k {lg_k}",
                words.len()
            )));
        }
        let hashes: Vec<u64> = words.iter().map(|w| u64::from_le_bytes(*w)).collect();
        if hashes.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(CoreError::corrupt(format!(
                "{WHAT} exact state: hashes are not strictly ascending"
            )));
        }
        Ok(Self::exact(lg_k, hashes))
    }

    /// Reads a sketch body written by [`Self::encode_body`]; `bytes` is exactly the body.
    ///
    /// # Errors
    /// `CorruptState` for an unknown version, a truncated or damaged image, trailing bytes,
    /// a different seed, or an image that is not in the form `encode_body` writes.
    pub fn decode_sketch_body(bytes: &[u8]) -> CoreResult<Self> {
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
        let lg_k = sketch.lg_k();
        Ok(Self {
            lg_k,
            limit: CountDistinctState::exact_limit(lg_k),
            form: Form::Sketch(sketch),
        })
    }
}

/// An empty sketch of `lg_k`, which a state has checked already.
fn empty_sketch(lg_k: u8) -> CpcSketch {
    CpcSketch::with_seed(lg_k, SKETCH_HASH_SEED).expect("lg_k is in the CPC range")
}

/// A sketch of `hashes` at `lg_k`, fed in the order given.
fn sketch_of(lg_k: u8, hashes: &[u64]) -> CpcSketch {
    let mut sketch = empty_sketch(lg_k);
    for &hash in hashes {
        sketch.update(HashInput(hash));
    }
    sketch
}

/// The sorted union of two strictly ascending lists.
fn sorted_union(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::sketch::test_support::{fuzz_decode, hex, quiet_crate_panics, unhex, Rng};
    use crate::sketch::DEFAULT_CPC_LG_K;

    fn encode(state: &CountDistinctState) -> Vec<u8> {
        let mut out = Vec::new();
        state.encode_body(&mut out);
        out
    }

    /// Decodes a body of either form, as the codec does by the state's kind.
    fn decode(bytes: &[u8], exact: bool) -> CoreResult<CountDistinctState> {
        if exact {
            CountDistinctState::decode_exact_body(bytes)
        } else {
            CountDistinctState::decode_sketch_body(bytes)
        }
    }

    /// Through the stored form, as the store keeps states.
    fn roundtrip(state: &CountDistinctState) -> CountDistinctState {
        let decoded = decode(&encode(state), state.is_exact()).unwrap();
        assert_eq!(&decoded, state);
        decoded
    }

    fn state_of(lg_k: u8, items: impl IntoIterator<Item = Item>) -> CountDistinctState {
        let mut state = CountDistinctState::new(lg_k).unwrap();
        for item in items {
            state.update_item(&item);
        }
        state
    }

    fn numbers(lg_k: u8, range: std::ops::Range<u64>) -> CountDistinctState {
        state_of(lg_k, range.map(|i| Item::Number(i as f64)))
    }

    fn golden_exact() -> CountDistinctState {
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

    /// lg_k 4 keeps 8 hashes exactly: 9 items make a sparse sketch.
    fn golden_sparse() -> CountDistinctState {
        numbers(4, 0..9)
    }

    /// lg_k 4 with 200 items reaches the dense (sliding-window) flavor with a short image.
    fn golden_dense() -> CountDistinctState {
        numbers(4, 0..200)
    }

    const GOLDEN_EXACT: &str = concat!(
        "0b4cd4108a326f6e07846536f373db6b31b63c97cd719f2a8f41d7d068a8dfcc",
        "e10ce0ac39bb1bcce6",
    );
    const GOLDEN_SPARSE: &str = concat!(
        "01080110040016cc9308000000020000000000000000202b403170b557206321",
        "40ee37190d01000000",
    );
    const GOLDEN_DENSE: &str = concat!(
        "01080110040016cc9341000000030000000000000000e0fc3f033679891d5367",
        "407d3d0efa0725897ecbb30100",
    );

    #[test]
    fn golden_bytes() {
        for (state, golden, exact) in [
            (golden_exact(), GOLDEN_EXACT, true),
            (golden_sparse(), GOLDEN_SPARSE, false),
            (golden_dense(), GOLDEN_DENSE, false),
        ] {
            assert_eq!(state.is_exact(), exact);
            let bytes = encode(&state);
            assert_eq!(hex(&bytes), golden, "body changed");
            let decoded = decode(&unhex(golden), exact).unwrap();
            assert_eq!(decoded.estimate(), state.estimate());
            assert_eq!(decoded.lg_k(), state.lg_k());
            assert_eq!(encode(&decoded), bytes);
        }
        assert_eq!(golden_exact().count(), 5);
        assert_eq!(golden_exact().estimate(), 5.0);
        // The exact body is lg_k, then the five hashes in ascending order.
        assert_eq!(encode(&golden_exact()).len(), 1 + 5 * 8);
    }

    #[test]
    fn exact_limits_follow_the_sketch_size_bound() {
        let limits: Vec<usize> = (4..=26).map(CountDistinctState::exact_limit).collect();
        assert_eq!(
            limits[..10],
            [8, 9, 12, 17, 27, 48, 87, 166, 322, 632],
            "the module doc's table"
        );
        assert!(limits[10..]
            .iter()
            .all(|&l| l == CountDistinctState::MAX_EXACT_HASHES));
        for lg_k in 4..=26 {
            let bound = CpcSketch::max_serialized_bytes(lg_k).unwrap();
            let limit = CountDistinctState::exact_limit(lg_k);
            // The full exact body (lg_k and the hashes) is no larger than the largest sketch
            // body (version byte and image); one more hash would be, unless the cap stops it.
            let exact_body = |n: usize| 1 + 8 * n;
            let sketch_body = 1 + bound;
            assert!(exact_body(limit) <= sketch_body, "lg_k {lg_k}");
            assert!(
                limit == CountDistinctState::MAX_EXACT_HASHES
                    || exact_body(limit + 1) > sketch_body
            );
        }
        assert_eq!(CountDistinctState::exact_limit(3), 0);
        assert_eq!(CountDistinctState::exact_limit(27), 0);
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
        assert!(state.is_empty() && state.is_exact());
        assert_eq!(state.estimate(), 0.0);
        assert_eq!(state.count(), 0);
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            state.update_item(&Item::Number(v));
            state.update_number(v);
        }
        assert!(state.is_empty());
        assert_eq!(encode(&state), [DEFAULT_CPC_LG_K]);
        assert!(roundtrip(&state).is_empty());
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
        assert_eq!(state.count(), 3);
        let mut by_paths = CountDistinctState::new(DEFAULT_CPC_LG_K).unwrap();
        by_paths.update_number(3.0);
        by_paths.update_number(0.0);
        by_paths.update_text("3");
        assert_eq!(by_paths, state);
    }

    #[test]
    fn the_set_becomes_a_sketch_past_the_limit() {
        for lg_k in [4, 8, DEFAULT_CPC_LG_K, 14] {
            let limit = CountDistinctState::exact_limit(lg_k) as u64;
            let mut state = numbers(lg_k, 0..limit);
            assert!(state.is_exact(), "lg_k {lg_k}");
            assert_eq!(state.count(), limit);
            // A repeat keeps it exact; one more distinct item does not.
            state.update_number(0.0);
            assert!(state.is_exact());
            state.update_number(limit as f64);
            assert!(!state.is_exact(), "lg_k {lg_k}");
            // The sketch of the hashes is the sketch of the items: building it by updates
            // from the start (through a set that overflows at once) gives the same image.
            let mut direct = CountDistinctState::new(lg_k).unwrap();
            direct.form = Form::Sketch(empty_sketch(lg_k));
            let mut hashes: Vec<u64> = (0..limit).map(|i| number_hash(i as f64)).collect();
            hashes.sort_unstable();
            hashes.push(number_hash(limit as f64));
            for hash in hashes {
                direct.insert(hash);
            }
            assert_eq!(state, direct, "lg_k {lg_k}");
            let error = (state.estimate() - (limit + 1) as f64).abs() / (limit + 1) as f64;
            assert!(error < 0.2, "lg_k {lg_k}: estimate {}", state.estimate());
            roundtrip(&state);
        }
    }

    #[test]
    fn merge_rejects_other_lg_k() {
        let mut a = state_of(11, [Item::Number(1.0)]);
        let b = state_of(12, [Item::Number(2.0)]);
        let err = a.merge(&b).unwrap_err();
        assert_eq!(err.kind, CoreErrorKind::StateMismatch);
        assert!(err.message.contains("lg_k 12"), "{}", err.message);
        assert_eq!(a.count(), 1);
    }

    /// Exact counts of 1..=limit distinct items spread over buckets (with repeats within
    /// and across buckets), merged through the stored bytes in a random order.
    #[test]
    fn small_counts_are_exact_after_merging() {
        let mut rng = Rng::new(3);
        let lg_k = DEFAULT_CPC_LG_K;
        let limit = CountDistinctState::exact_limit(lg_k);
        for distinct in 1..=limit {
            let buckets = 1 + rng.below(30) as usize;
            let mut states: Vec<CountDistinctState> = (0..buckets)
                .map(|_| CountDistinctState::new(lg_k).unwrap())
                .collect();
            let salt = rng.next_u64() >> 20;
            for i in 0..distinct as u64 {
                let item = if i % 2 == 0 {
                    Item::Number((salt + i) as f64)
                } else {
                    Item::Text(format!("category-{}", salt + i))
                };
                for _ in 0..=rng.below(3) {
                    states[rng.below(buckets as u64) as usize].update_item(&item);
                }
            }
            let mut window = CountDistinctState::new(lg_k).unwrap();
            while !states.is_empty() {
                let bucket = states.swap_remove(rng.below(states.len() as u64) as usize);
                window.merge(&roundtrip(&bucket)).unwrap();
            }
            assert!(window.is_exact(), "{distinct} distinct");
            assert_eq!(window.count(), distinct as u64);
        }
    }

    /// Exact and sketch states in every mix and order merge to the same state; at most
    /// `limit` distinct items in all, that is the exact count of folding all the rows.
    #[test]
    fn merge_is_order_independent() {
        let mut rng = Rng::new(7);
        for (lg_k, per_bucket, universe) in [
            (11, 5, 100),
            (11, 20, 150),
            (11, 40, 400),
            (11, 300, 50_000),
            (4, 3, 10),
            (4, 10, 1_000),
        ] {
            let buckets: Vec<Vec<Item>> = (0..12)
                .map(|b| {
                    // Every third bucket is large enough to be a sketch on its own.
                    let n = if b % 3 == 0 {
                        per_bucket * 10
                    } else {
                        per_bucket
                    };
                    (0..n)
                        .map(|_| match rng.below(universe) {
                            id if id % 3 == 0 => Item::Text(format!("u{id}")),
                            id => Item::Number(id as f64),
                        })
                        .collect()
                })
                .collect();
            let all = state_of(lg_k, buckets.iter().flatten().cloned());
            let states: Vec<CountDistinctState> = buckets
                .iter()
                .map(|items| roundtrip(&state_of(lg_k, items.iter().cloned())))
                .collect();
            let mut first: Option<(Vec<u8>, u64)> = None;
            for trial in 0..20 {
                let mut order: Vec<usize> = (0..states.len()).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.below(i as u64 + 1) as usize);
                }
                // A random tree: merge a random pair of the remaining states until one is left.
                let mut parts: Vec<CountDistinctState> =
                    order.iter().map(|&i| states[i].clone()).collect();
                while parts.len() > 1 {
                    let a = rng.below(parts.len() as u64) as usize;
                    let b = parts.swap_remove(a);
                    let into = rng.below(parts.len() as u64) as usize;
                    if trial % 2 == 0 {
                        parts[into].merge(&b).unwrap();
                    } else {
                        let mut b = b;
                        b.merge(&parts[into]).unwrap();
                        parts[into] = b;
                    }
                }
                let merged = roundtrip(&parts[0]);
                let seen = (encode(&merged), merged.count());
                match &first {
                    None => first = Some(seen),
                    Some(expected) => assert_eq!(&seen, expected, "lg_k {lg_k} trial {trial}"),
                }
            }
            let (_, count) = first.unwrap();
            let truth = all.count();
            if all.is_exact() {
                assert_eq!(count, truth, "lg_k {lg_k}");
            } else {
                let error = (count as f64 - all.estimate()).abs() / all.estimate();
                assert!(error < 0.2, "lg_k {lg_k}: merged {count}, folded {truth}");
            }
            // The empty state is the identity on both sides.
            let empty = CountDistinctState::new(lg_k).unwrap();
            for state in &states {
                let mut s_e = state.clone();
                s_e.merge(&empty).unwrap();
                let mut e_s = empty.clone();
                e_s.merge(state).unwrap();
                assert_eq!(&s_e, state);
                assert_eq!(&e_s, state);
            }
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
                window.merge(&roundtrip(&bucket)).unwrap();
            }
            let truth = exact.len() as f64;
            errors.push((window.count() as f64 - truth).abs() / truth);
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

    // The 200-trial runs run in release builds (`npm test` runs `cargo test
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
    fn corrupt_sketch_bodies_are_rejected_without_panicking() {
        for state in [
            golden_sparse(),
            golden_dense(),
            numbers(11, 0..300),
            numbers(11, 0..5000),
        ] {
            let valid = encode(&state);
            let fuzz = fuzz_decode(&valid, |bytes| {
                match CountDistinctState::decode_sketch_body(bytes) {
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
    fn corrupt_exact_bodies_say_what_is_wrong() {
        quiet_crate_panics();
        let error = |bytes: &[u8]| {
            let err = CountDistinctState::decode_exact_body(bytes).unwrap_err();
            assert_eq!(err.kind, CoreErrorKind::CorruptState);
            err.message
        };
        let valid = encode(&golden_exact());
        assert!(error(&[]).contains("empty"));
        assert!(error(&[3]).contains("lg_k 3, outside 4..=26"));
        assert!(error(&[27]).contains("lg_k 27"));
        assert!(error(&valid[..valid.len() - 1]).contains("not a multiple of 8"));
        let mut swapped = valid.clone();
        swapped[1..17].rotate_left(8);
        assert!(error(&swapped).contains("not strictly ascending"));
        let mut repeated = valid.clone();
        repeated.extend_from_slice(&valid[valid.len() - 8..]);
        assert!(error(&repeated).contains("not strictly ascending"));
        let mut too_many = vec![4u8];
        for hash in 0..=CountDistinctState::exact_limit(4) as u64 {
            too_many.extend_from_slice(&hash.to_le_bytes());
        }
        assert!(error(&too_many).contains("more than the 8 kept at lg_k 4"));
        // Any single-byte change decodes to a usable state or fails with CorruptState.
        for pos in 0..valid.len() {
            for pattern in [0xFFu8, 0x01, 0x80] {
                let mut bytes = valid.clone();
                bytes[pos] ^= pattern;
                if let Ok(decoded) = CountDistinctState::decode_exact_body(&bytes) {
                    assert_eq!(encode(&decoded), bytes);
                    assert!(decoded.count() <= 5);
                }
            }
        }
    }

    #[test]
    fn bytes_per_state() {
        // One item: lg_k and one hash.
        assert_eq!(encode(&numbers(DEFAULT_CPC_LG_K, 0..1)).len(), 9);
        let limit = CountDistinctState::exact_limit(DEFAULT_CPC_LG_K) as u64;
        assert_eq!(
            encode(&numbers(DEFAULT_CPC_LG_K, 0..limit)).len(),
            1 + 8 * 166
        );
        let bound = 1 + CpcSketch::max_serialized_bytes(DEFAULT_CPC_LG_K).unwrap();
        for n in [1u64, 12, 100, 166, 167, 1_000, 10_000] {
            let state = numbers(DEFAULT_CPC_LG_K, 0..n);
            let bytes = encode(&state).len();
            println!(
                "lg_k 11, {n} distinct: {} body, {bytes} bytes, estimate {:.1}",
                if state.is_exact() { "exact" } else { "sketch" },
                state.estimate()
            );
            assert!(bytes <= bound, "{n} distinct: {bytes} bytes");
        }
    }
}
