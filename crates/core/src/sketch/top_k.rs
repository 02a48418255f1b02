//! `approx_top_k(k, by?)`: a frequent-items (Misra-Gries family) sketch per bucket.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use datasketches::codec::{SketchBytes, SketchSlice};
use datasketches::error::{Error, ErrorKind};
use datasketches::frequencies::{ErrorType, FrequentItemValue, FrequentItemsSketch};

use super::{body_after_version, guarded, SKETCH_BODY_VERSION};
use crate::error::{CoreError, CoreErrorKind, CoreResult};
use crate::item::Item;

const WHAT: &str = "approx_top_k";

/// The sketch counts in integers, so weights are kept in fixed point: thousandths. Decimal
/// rather than binary units so that weights such as `12.345` come back exactly as written;
/// unweighted rows count 1000 units each. Weights are rounded to the nearest unit, so a
/// weight below 0.0005 contributes nothing.
const UNITS_PER_WEIGHT: f64 = 1000.0;

/// Cap on a state's total weight in units (~9.2e15 in weight). `i64::MAX` because the
/// Java format stores weights as signed longs, and so that `count + offset` (the estimate)
/// can never overflow `u64`. Updates beyond it are clamped; merges beyond it are refused.
const MAX_TOTAL_UNITS: u64 = i64::MAX as u64;

/// Smallest and largest map we give the sketch; see [`TopKState`].
const MIN_MAP_SIZE: usize = 64;
const MAX_MAP_SIZE: usize = 4096;

/// Frequent-items image header length (preamble longs = 4) for a non-empty sketch.
const IMAGE_HEADER_BYTES: usize = 32;

/// An [`Item`] as stored in the frequent-items sketch.
///
/// Equality is `Item`'s total order (so `-0.0` equals `0.0`), and hashing feeds the item's
/// canonical bytes to the sketch's MurmurHash3, so the sketch's internal layout, and with it
/// the encoded bytes, is the same in every process.
#[derive(Debug, Clone)]
struct TopKItem(Item);

impl PartialEq for TopKItem {
    fn eq(&self, other: &Self) -> bool {
        self.0.cmp(&other.0) == Ordering::Equal
    }
}

impl Eq for TopKItem {}

impl Hash for TopKItem {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match &self.0 {
            // Same bytes as `canonical_bytes`, written in two parts to avoid a copy.
            Item::Text(s) => {
                state.write(b"s");
                state.write(s.as_bytes());
            }
            Item::Number(v) => state.write(&Item::number_canonical_bytes(*v)),
        }
    }
}

/// Item encoding inside the frequent-items image (the Java library's pluggable
/// `ArrayOfItemsSerDe` slot): a number is its 9 canonical bytes (`'i'` + i64 LE for an
/// integral value, `'f'` + f64 bits LE otherwise); a string is `'s'`, its UTF-8 length as
/// u32 LE, then the bytes. Lossless for every item except NaN, which is never stored.
impl FrequentItemValue for TopKItem {
    fn serialize_size(item: &Self) -> usize {
        match &item.0 {
            Item::Number(_) => 9,
            Item::Text(s) => 1 + 4 + s.len(),
        }
    }

    fn serialize_value(&self, bytes: &mut SketchBytes) {
        match &self.0 {
            Item::Text(s) => {
                bytes.write_u8(b's');
                bytes.write_u32_le(s.len() as u32);
                bytes.write(s.as_bytes());
            }
            Item::Number(v) => bytes.write(&Item::number_canonical_bytes(*v)),
        }
    }

    fn deserialize_value(cursor: &mut SketchSlice<'_>) -> Result<Self, Error> {
        let bad = |msg: &str| Error::new(ErrorKind::InvalidData, format!("top-k item: {msg}"));
        let truncated = |_| bad("truncated");
        let tag = cursor.read_u8().map_err(truncated)?;
        let item = match tag {
            b'i' | b'f' => {
                let raw = cursor.read_u64_le().map_err(truncated)?;
                let v = if tag == b'i' {
                    raw as i64 as f64
                } else {
                    f64::from_bits(raw)
                };
                // Only canonical numbers: not NaN, and re-encoding gives the bytes we read
                // (an 'f' holding an integral value or -0.0, or an 'i' that f64 cannot hold
                // exactly, is not what `canonical_bytes` writes).
                let canonical = Item::number_canonical_bytes(v);
                if v.is_nan() || canonical[0] != tag || canonical[1..] != raw.to_le_bytes() {
                    return Err(bad("non-canonical number"));
                }
                Item::Number(v)
            }
            b's' => {
                let len = cursor.read_u32_le().map_err(truncated)? as usize;
                let rest = cursor.remaining();
                if rest.len() < len {
                    return Err(bad("string runs past the end"));
                }
                let s = std::str::from_utf8(&rest[..len]).map_err(|_| bad("invalid UTF-8"))?;
                let item = Item::Text(s.to_owned());
                cursor.advance(len as u64);
                item
            }
            other => return Err(bad(&format!("unknown tag {other:#04x}"))),
        };
        Ok(TopKItem(item))
    }
}

/// The partial state of `approx_top_k(k, by?)`: a frequent-items sketch of item weights
/// (row counts when there is no `by` column).
///
/// The sketch keeps at most `0.75 * map_size` items, where `map_size` is the next power of
/// two at or above `max(64, 8k)`, capped at 4096: at least `6k` candidates up to k = 512
/// (and `3k` at k = 1000), so the true top `k` survive purges unless their weights are
/// close to the `k+1`-th. Its guarantee: every estimate is an upper bound that overshoots
/// the true weight by at most [`TopKState::error_bound`], which itself is at most
/// `3.5 / map_size` of the total weight (2.7% at k = 10) and in practice a fraction of
/// that. Merging keeps the guarantee; merged results can differ slightly with the merge
/// order, always within it. Why 8k: with 4k (map 64 for k = 10), 100 streams of 5,000
/// Zipf(1.1) items merged from 30 or 720 buckets missed ~3% of their exact top 10 and had
/// error bounds up to 1.7% of the total weight; with 8k, ~1% and 0.7%, for a full bucket
/// state of ~1.6 KB instead of ~0.5 KB (4k still has no false negatives, as guaranteed).
#[derive(Debug, Clone)]
pub struct TopKState {
    k: u32,
    sketch: FrequentItemsSketch<TopKItem>,
}

/// Two states are equal when they have the same `k`, total weight and error bound, and track
/// the same items with the same counts (the order of the hash table, which can differ
/// between equal states, is ignored). Meant for tests and assertions.
impl PartialEq for TopKState {
    fn eq(&self, other: &Self) -> bool {
        let rows = |state: &Self| {
            let mut rows: Vec<(Item, u64)> = state
                .sketch
                .frequent_items(ErrorType::NoFalseNegatives)
                .into_iter()
                .map(|row| (row.item().0.clone(), row.lower_bound()))
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            rows
        };
        self.k == other.k
            && self.sketch.total_weight() == other.sketch.total_weight()
            && self.sketch.maximum_error() == other.sketch.maximum_error()
            && rows(self) == rows(other)
    }
}

impl TopKState {
    /// Smallest `k`.
    pub const MIN_K: u32 = 1;
    /// Largest `k`: at 1000 the map has 4096 slots (up to 3072 stored items per state).
    pub const MAX_K: u32 = 1000;

    /// The frequent-items sketch's a-priori error, as a share of the total weight, times
    /// its map slots: no estimate overshoots by more than `EPSILON_SHARE / map slots` of
    /// the total weight (DataSketches' `getEpsilon`, 3.5 / maxMapSize).
    pub const EPSILON_SHARE: f64 = 3.5;

    /// The map slots the sketch of `k` uses (see the type's doc).
    pub fn map_slots(k: u32) -> usize {
        map_size_for(k)
    }

    /// An empty state for the `k` most frequent items.
    ///
    /// # Errors
    /// `InvalidAggregation` when `k` is outside `1..=1000`.
    pub fn new(k: u32) -> CoreResult<Self> {
        if !(Self::MIN_K..=Self::MAX_K).contains(&k) {
            return Err(CoreError::new(
                CoreErrorKind::InvalidAggregation,
                format!(
                    "{WHAT}: k must be in {}..={}, got {k}",
                    Self::MIN_K,
                    Self::MAX_K
                ),
            ));
        }
        let sketch = FrequentItemsSketch::new(map_size_for(k)).map_err(|err| {
            CoreError::new(CoreErrorKind::InvalidAggregation, format!("{WHAT}: {err}"))
        })?;
        Ok(Self { k, sketch })
    }

    /// Adds `item` with `weight` (1.0 for an unweighted aggregation, else the `by` value).
    ///
    /// Skipped: a NaN item (a null number), and a weight that is NaN, infinite, zero,
    /// negative or below half a unit (0.0005). A weight that would push the state's total
    /// past ~9.2e15 is clamped to what is left.
    pub fn update(&mut self, item: &Item, weight: f64) {
        let units = self.units_for(item, weight);
        if units > 0 {
            self.insert(item.clone(), units);
        }
    }

    /// [`Self::update`] with an owned item, which saves a copy of a text item.
    pub fn update_owned(&mut self, item: Item, weight: f64) {
        let units = self.units_for(&item, weight);
        if units > 0 {
            self.insert(item, units);
        }
    }

    /// The units `weight` adds for `item`: 0 when the update is skipped.
    fn units_for(&self, item: &Item, weight: f64) -> u64 {
        if matches!(item, Item::Number(v) if v.is_nan()) {
            return 0;
        }
        weight_to_units(weight).min(MAX_TOTAL_UNITS - self.sketch.total_weight())
    }

    fn insert(&mut self, item: Item, units: u64) {
        // Store `-0.0` as `0.0`, so an item reads back the same before and after encoding.
        let item = match item {
            Item::Number(v) => Item::Number(if v == 0.0 { 0.0 } else { v }),
            text => text,
        };
        self.sketch.update_with_count(TopKItem(item), units);
    }

    /// Folds `other` into `self`.
    ///
    /// # Errors
    /// `StateMismatch` when the `k`s differ; `InvalidInput` when the combined total weight
    /// would exceed ~9.2e15.
    pub fn merge(&mut self, other: &Self) -> CoreResult<()> {
        if self.k != other.k {
            return Err(CoreError::new(
                CoreErrorKind::StateMismatch,
                format!(
                    "{WHAT}: cannot merge a state with k {} into one with k {}",
                    other.k, self.k
                ),
            ));
        }
        if other.is_empty() {
            return Ok(());
        }
        let total = self.sketch.total_weight() as u128 + other.sketch.total_weight() as u128;
        if total > MAX_TOTAL_UNITS as u128 {
            return Err(CoreError::new(
                CoreErrorKind::InvalidInput,
                format!(
                    "{WHAT}: merged total weight {} exceeds the supported {}",
                    total as f64 / UNITS_PER_WEIGHT,
                    MAX_TOTAL_UNITS as f64 / UNITS_PER_WEIGHT
                ),
            ));
        }
        self.sketch.merge(&other.sketch);
        Ok(())
    }

    /// Up to `k` items, heaviest first, ties in [`Item`] order.
    ///
    /// Candidates are the sketch's no-false-negatives frequent items at its error bound
    /// (every item it still tracks): an item whose true weight exceeds the error bound is
    /// never missing from them. The weight of each item is the sketch's estimate, an upper
    /// bound on its true weight by at most [`Self::error_bound`]; it is exact while fewer
    /// than `0.75 * map_size` distinct items have been seen. With `return_weights` false
    /// the weights are left at 0.0, for callers that return the items only.
    pub fn top(&self, return_weights: bool) -> Vec<(Item, f64)> {
        let mut rows = self.sketch.frequent_items(ErrorType::NoFalseNegatives);
        rows.sort_by(|a, b| {
            b.estimate()
                .cmp(&a.estimate())
                .then_with(|| a.item().0.cmp(&b.item().0))
        });
        rows.truncate(self.k as usize);
        rows.into_iter()
            .map(|row| {
                let weight = if return_weights {
                    units_to_weight(row.estimate())
                } else {
                    0.0
                };
                (row.item().0.clone(), weight)
            })
            .collect()
    }

    /// The sketch's maximum error, in weight: no estimate exceeds its item's true weight by
    /// more than this, and an item missing from the sketch weighs at most this much.
    pub fn error_bound(&self) -> f64 {
        units_to_weight(self.sketch.maximum_error())
    }

    /// `true` when nothing has been added (no positive weight).
    pub fn is_empty(&self) -> bool {
        self.sketch.is_empty()
    }

    /// The configured `k`.
    pub fn k(&self) -> u32 {
        self.k
    }

    /// Appends the body: [`SKETCH_BODY_VERSION`], `k` as u16 LE (the map size is derived
    /// from it and cannot be inverted), then the frequent-items image with weights in
    /// thousandths and each item as `'i'` + i64 LE (integral number), `'f'` + f64 bits LE
    /// (other number) or `'s'` + u32 LE length + UTF-8 (string). 11 bytes when empty; at
    /// most 35 + `0.75 * map_size` × (8 + item bytes) otherwise.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(SKETCH_BODY_VERSION);
        out.extend_from_slice(&(self.k as u16).to_le_bytes());
        out.extend_from_slice(&self.sketch.serialize());
    }

    /// Reads a body written by [`Self::encode_body`]; `bytes` is exactly the body.
    ///
    /// # Errors
    /// `CorruptState` for an unknown version, a bad `k`, a truncated or damaged image, a
    /// map size that does not match `k`, inconsistent weights, or trailing bytes.
    pub fn decode_body(bytes: &[u8]) -> CoreResult<Self> {
        let rest = body_after_version(bytes, WHAT)?;
        let Some((k_bytes, image)) = rest.split_first_chunk::<2>() else {
            return Err(CoreError::corrupt(format!("{WHAT} state: truncated k")));
        };
        let k = u32::from(u16::from_le_bytes(*k_bytes));
        if !(Self::MIN_K..=Self::MAX_K).contains(&k) {
            return Err(CoreError::corrupt(format!(
                "{WHAT} state: k {k} out of range"
            )));
        }
        let sketch = guarded(WHAT, || FrequentItemsSketch::<TopKItem>::deserialize(image))?;
        if sketch.max_map_size() != map_size_for(k) {
            return Err(CoreError::corrupt(format!(
                "{WHAT} state: map size {} does not match k {k}",
                sketch.max_map_size()
            )));
        }
        if sketch.total_weight() > MAX_TOTAL_UNITS || sketch.maximum_error() > sketch.total_weight()
        {
            return Err(CoreError::corrupt(format!(
                "{WHAT} state: inconsistent total weight {} and error {}",
                sketch.total_weight(),
                sketch.maximum_error()
            )));
        }
        // The parser ignores trailing bytes, unused header fields and merges duplicate
        // items. Item order in the image follows the hash table's history, so re-encoding
        // need not give the same bytes, but it must give the same header and length.
        let reencoded = guarded(WHAT, || Ok(sketch.serialize()))?;
        let header = IMAGE_HEADER_BYTES.min(image.len());
        if reencoded.len() != image.len() || reencoded[..header] != image[..header] {
            return Err(CoreError::corrupt(format!(
                "{WHAT} state: frequent-items image is not canonical ({} bytes, re-encodes to {})",
                image.len(),
                reencoded.len()
            )));
        }
        Ok(Self { k, sketch })
    }
}

/// Map size for `k`: the next power of two at or above `max(64, 8k)`, at most 4096 (64 for
/// k ≤ 8, 128 for k = 10, 1024 for k = 100, 4096 from k = 257 on).
fn map_size_for(k: u32) -> usize {
    (8 * k as usize)
        .max(MIN_MAP_SIZE)
        .next_power_of_two()
        .min(MAX_MAP_SIZE)
}

fn weight_to_units(weight: f64) -> u64 {
    if weight.is_finite() && weight > 0.0 {
        // `as` saturates, and the caller clamps to the remaining total.
        (weight * UNITS_PER_WEIGHT).round() as u64
    } else {
        0
    }
}

fn units_to_weight(units: u64) -> f64 {
    units as f64 / UNITS_PER_WEIGHT
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::sketch::test_support::{fuzz_decode, hex, unhex, Rng};

    fn encode(state: &TopKState) -> Vec<u8> {
        let mut out = Vec::new();
        state.encode_body(&mut out);
        out
    }

    fn text(s: &str) -> Item {
        Item::Text(s.to_string())
    }

    fn golden_small() -> TopKState {
        let mut state = TopKState::new(3).unwrap();
        state.update(&text("apple"), 1.0);
        state.update(&Item::Number(42.0), 1.0);
        state.update(&text("apple"), 1.0);
        state.update(&Item::Number(2.5), 12.345);
        state.update(&text("pear"), 1.0);
        state.update(&Item::Number(-0.0), 2.0);
        state
    }

    /// k = 2 (map of 64, 48 items) with 100 distinct items: purged, non-zero error bound.
    fn golden_purged() -> TopKState {
        let mut state = TopKState::new(2).unwrap();
        for i in 0..400u32 {
            let id = (i * 7919 + i / 40) % 100;
            let item = if id.is_multiple_of(2) {
                Item::Number(f64::from(id))
            } else {
                Item::Text(format!("i{id}"))
            };
            state.update(&item, 1.0);
        }
        state
    }

    const GOLDEN_SMALL: &str = concat!(
        "01030004010a06030000000500000000000000a9470000000000000000000000",
        "0000003930000000000000d007000000000000e803000000000000d007000000",
        "000000e80300000000000066000000000000044073050000006170706c657304",
        "00000070656172690000000000000000692a00000000000000",
    );
    const GOLDEN_PURGED: &str = concat!(
        "01020004010a06060000000800000000000000801a060000000000401f000000",
        "000000e803000000000000e803000000000000e803000000000000e803000000",
        "000000e803000000000000e803000000000000e803000000000000e803000000",
        "000000694400000000000000695a00000000000000690a000000000000007303",
        "0000006934397303000000693731694800000000000000730300000069393173",
        "03000000693239",
    );

    #[test]
    fn golden_bytes() {
        for (state, golden) in [
            (golden_small(), GOLDEN_SMALL),
            (golden_purged(), GOLDEN_PURGED),
        ] {
            let bytes = encode(&state);
            assert_eq!(hex(&bytes), golden, "top-k body changed");
            let decoded = TopKState::decode_body(&unhex(golden)).unwrap();
            assert_eq!(decoded.top(true), state.top(true));
            assert_eq!(decoded.error_bound(), state.error_bound());
            assert_eq!(decoded.k(), state.k());
        }
        assert_eq!(
            golden_small().top(true),
            vec![
                (Item::Number(2.5), 12.345),
                (Item::Number(0.0), 2.0),
                (text("apple"), 2.0)
            ]
        );
        assert!(golden_purged().error_bound() > 0.0);
    }

    #[test]
    fn new_validates_k() {
        for k in [0, 1001, u32::MAX] {
            let err = TopKState::new(k).unwrap_err();
            assert_eq!(err.kind, CoreErrorKind::InvalidAggregation);
            assert!(err.message.contains(&format!("got {k}")), "{}", err.message);
        }
        assert_eq!(map_size_for(1), 64);
        assert_eq!(map_size_for(8), 64);
        assert_eq!(map_size_for(10), 128);
        assert_eq!(map_size_for(100), 1024);
        assert_eq!(map_size_for(256), 2048);
        assert_eq!(map_size_for(257), 4096);
        assert_eq!(map_size_for(1000), 4096);
    }

    #[test]
    fn skipped_inputs_and_item_identity() {
        let mut state = TopKState::new(10).unwrap();
        state.update(&Item::Number(f64::NAN), 1.0);
        for w in [0.0, -1.0, f64::NAN, f64::INFINITY, 0.0004] {
            state.update(&text("x"), w);
        }
        assert!(state.is_empty());
        assert!(state.top(true).is_empty());
        state.update(&Item::Number(3.0), 1.0);
        state.update(&Item::Number(3.0), 0.5);
        state.update(&text("3"), 1.0);
        state.update(&Item::Number(f64::INFINITY), 1.0);
        let top = state.top(true);
        assert_eq!(
            top,
            vec![
                (Item::Number(3.0), 1.5),
                (Item::Number(f64::INFINITY), 1.0),
                (text("3"), 1.0)
            ]
        );
        assert!(state.top(false).iter().all(|(_, w)| *w == 0.0));
        let decoded = TopKState::decode_body(&encode(&state)).unwrap();
        assert_eq!(decoded.top(true), top);
    }

    #[test]
    fn non_canonical_numbers_are_corrupt() {
        let mut state = TopKState::new(1).unwrap();
        state.update(&Item::Number(3.0), 1.0);
        let valid = encode(&state);
        // The body ends with the only item: 'i' + 3 as i64.
        let item_at = valid.len() - 9;
        assert_eq!(
            valid[item_at..],
            [b"i".as_slice(), &3i64.to_le_bytes()].concat()
        );
        let with_item = |tag: u8, raw: u64| {
            let mut bytes = valid[..item_at].to_vec();
            bytes.push(tag);
            bytes.extend_from_slice(&raw.to_le_bytes());
            TopKState::decode_body(&bytes)
        };
        assert!(with_item(b'i', 3).is_ok());
        assert!(with_item(b'f', 3.5f64.to_bits()).is_ok());
        for (tag, raw) in [
            (b'f', 3.0f64.to_bits()),    // integral value stored as a float
            (b'f', (-0.0f64).to_bits()), // negative zero
            (b'f', f64::NAN.to_bits()),  // NaN is never stored
            (b'i', i64::MAX as u64),     // not exactly representable as f64
            (b'i', (1u64 << 53) + 1),    // likewise
            (b'x', 3),                   // unknown tag
        ] {
            let err = with_item(tag, raw).unwrap_err();
            assert_eq!(err.kind, CoreErrorKind::CorruptState, "{tag} {raw}");
        }
    }

    #[test]
    fn top_is_capped_at_k_with_ties_in_item_order() {
        let mut state = TopKState::new(2).unwrap();
        for item in [text("b"), text("a"), Item::Number(9.0), text("c")] {
            state.update(&item, 1.0);
        }
        assert_eq!(
            state.top(true),
            vec![(Item::Number(9.0), 1.0), (text("a"), 1.0)]
        );
    }

    #[test]
    fn merge_checks_k_and_total_weight() {
        let mut a = TopKState::new(5).unwrap();
        a.update(&text("a"), 1.0);
        let err = a.merge(&TopKState::new(6).unwrap()).unwrap_err();
        assert_eq!(err.kind, CoreErrorKind::StateMismatch);
        assert!(err.message.contains("k 6"), "{}", err.message);

        let mut huge = TopKState::new(5).unwrap();
        huge.update(&text("h"), 1e300);
        assert_eq!(huge.sketch.total_weight(), MAX_TOTAL_UNITS);
        huge.update(&text("i"), 1.0); // clamped to nothing left
        assert_eq!(huge.top(false).len(), 1);
        let err = huge.clone().merge(&a).unwrap_err();
        assert_eq!(err.kind, CoreErrorKind::InvalidInput);
        // The state is still usable and encodable at the cap.
        let decoded = TopKState::decode_body(&encode(&huge)).unwrap();
        assert_eq!(decoded.top(true), huge.top(true));
    }

    #[test]
    fn merge_of_disjoint_small_states_is_exact_in_any_order() {
        let mut a = TopKState::new(3).unwrap();
        let mut b = TopKState::new(3).unwrap();
        for (i, w) in [(1.0, 5.0), (2.0, 1.0)] {
            a.update(&Item::Number(i), w);
        }
        for (s, w) in [("x", 3.0), ("y", 0.25)] {
            b.update(&text(s), w);
        }
        let mut ab = a.clone();
        ab.merge(&b).unwrap();
        let mut ba = b.clone();
        ba.merge(&a).unwrap();
        assert_eq!(ab.top(true), ba.top(true));
        assert_eq!(
            ab.top(true),
            vec![
                (Item::Number(1.0), 5.0),
                (text("x"), 3.0),
                (Item::Number(2.0), 1.0)
            ]
        );
    }

    /// A Zipf(1.1) sampler over `n` ranks.
    struct Zipf {
        cdf: Vec<f64>,
    }

    impl Zipf {
        fn new(n: usize) -> Self {
            let mut acc = 0.0;
            let mut cdf: Vec<f64> = (1..=n)
                .map(|r| {
                    acc += 1.0 / (r as f64).powf(1.1);
                    acc
                })
                .collect();
            for c in &mut cdf {
                *c /= acc;
            }
            Self { cdf }
        }

        fn sample(&self, rng: &mut Rng) -> usize {
            let u = rng.unit();
            self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
        }
    }

    struct Outcome {
        recall_of_true_top_k: f64,
        error_bound_share: f64,
    }

    /// One trial: `buckets` bucket states merged into a window, checked against the exact
    /// weights. The criterion (in units): with f_(k+1) the (k+1)-th largest true weight
    /// (0 if there are at most k items) and e the window's error bound, every item with
    /// true weight f > f_(k+1) + e is returned; and every returned weight w satisfies
    /// f <= w <= f + e.
    fn trial(seed: u64, buckets: usize, per_bucket: usize, weighted: bool) -> Outcome {
        const K: u32 = 10;
        let mut rng = Rng::new(seed);
        let zipf = Zipf::new(5000);
        let salt = rng.below(1 << 20);
        let mut exact: HashMap<Vec<u8>, (Item, u64)> = HashMap::new();
        let mut window = TopKState::new(K).unwrap();
        for bucket_index in 0..buckets {
            let mut bucket = TopKState::new(K).unwrap();
            // The popular items drift over time, as they do in real streams: every 60
            // buckets each item takes the popularity of the next rank.
            let shift = (bucket_index / 60) as u64;
            for _ in 0..per_bucket {
                let rank = zipf.sample(&mut rng) as u64;
                let id = ((rank + shift) * 7919 + salt) % 100_003;
                let item = if id.is_multiple_of(2) {
                    Item::Number(id as f64)
                } else {
                    Item::Text(format!("item-{id}"))
                };
                let weight = if weighted {
                    (1 + rng.below(5000)) as f64 / 1000.0
                } else {
                    1.0
                };
                let mut key = Vec::new();
                item.canonical_bytes(&mut key);
                exact.entry(key).or_insert((item.clone(), 0)).1 += weight_to_units(weight);
                bucket.update(&item, weight);
            }
            let bucket = TopKState::decode_body(&encode(&bucket)).unwrap();
            window.merge(&bucket).unwrap();
        }
        let mut truth: Vec<(Item, u64)> = exact.into_values().collect();
        truth.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let e = window.sketch.maximum_error();
        let f_next = truth.get(K as usize).map_or(0, |t| t.1);
        let top = window.top(true);
        assert!(top.len() <= K as usize);
        let weights: BTreeMap<&Item, u64> = truth.iter().map(|(i, w)| (i, *w)).collect();
        for (item, w) in &top {
            let f = weights[item];
            let w = (w * UNITS_PER_WEIGHT).round() as u64;
            assert!(
                f <= w && w <= f + e,
                "seed {seed}: {item:?} true {f} est {w} e {e}"
            );
        }
        for (item, f) in truth.iter().take(K as usize) {
            if *f > f_next + e {
                assert!(
                    top.iter().any(|(i, _)| i == item),
                    "seed {seed}: false negative {item:?} (true {f}, f_(k+1) {f_next}, e {e})"
                );
            }
        }
        let found = truth
            .iter()
            .take(K as usize)
            .filter(|(item, _)| top.iter().any(|(i, _)| i == item))
            .count();
        let total: u64 = truth.iter().map(|t| t.1).sum();
        assert_eq!(total, window.sketch.total_weight());
        Outcome {
            recall_of_true_top_k: found as f64 / K.min(truth.len() as u32) as f64,
            error_bound_share: e as f64 / total as f64,
        }
    }

    fn run(label: &str, trials: u64, buckets: usize, per_bucket: usize) {
        let outcomes: Vec<Outcome> = (0..trials)
            .map(|t| trial(5000 + t, buckets, per_bucket, t % 2 == 1))
            .collect();
        let n = outcomes.len() as f64;
        let recall = outcomes.iter().map(|o| o.recall_of_true_top_k).sum::<f64>() / n;
        let worst = outcomes
            .iter()
            .map(|o| o.error_bound_share)
            .fold(0.0, f64::max);
        println!(
            "top-k k=10 (map 128), {label}: {trials} trials (half weighted), no false negatives; \
             mean recall of the exact top 10: {:.1}%; worst error bound {:.2}% of total weight \
             (guarantee {:.2}%)",
            100.0 * recall,
            100.0 * worst,
            100.0 * 3.5 / 128.0
        );
        assert!(worst <= 3.5 / 128.0);
    }

    // The 200-trial runs run in release builds (`npm test` runs `cargo test
    // --release`, ~7 s for all three sketches) and are ignored in debug builds; the quick
    // versions below run the same check on the first 20 trials.
    const QUICK_TRIALS: u64 = 20;
    const FULL_TRIALS: u64 = 200;

    #[test]
    fn accuracy_after_merging_30_buckets() {
        run("30 buckets x 300 rows", QUICK_TRIALS, 30, 300);
    }

    #[test]
    fn accuracy_after_merging_720_buckets() {
        run("720 buckets x 20 rows", QUICK_TRIALS, 720, 20);
    }

    #[test]
    #[cfg_attr(
        debug_assertions,
        ignore = "slow in debug builds; `cargo test --release` (npm test) runs it"
    )]
    fn accuracy_after_merging_30_buckets_200_trials() {
        run("30 buckets x 300 rows", FULL_TRIALS, 30, 300);
    }

    #[test]
    #[cfg_attr(
        debug_assertions,
        ignore = "slow in debug builds; `cargo test --release` (npm test) runs it"
    )]
    fn accuracy_after_merging_720_buckets_200_trials() {
        run("720 buckets x 20 rows", FULL_TRIALS, 720, 20);
    }

    #[test]
    fn corrupt_bodies_are_rejected_without_panicking() {
        for state in [TopKState::new(10).unwrap(), golden_small(), golden_purged()] {
            let valid = encode(&state);
            let fuzz = fuzz_decode(&valid, |bytes| match TopKState::decode_body(bytes) {
                Err(err) => {
                    assert_eq!(err.kind, CoreErrorKind::CorruptState, "{err}");
                    false
                }
                Ok(decoded) => {
                    let _ = decoded.top(true);
                    let mut merged = state.clone();
                    if merged.merge(&decoded).is_ok() {
                        let _ = merged.top(true);
                        let _ = encode(&merged);
                    }
                    true
                }
            });
            println!("top-k corrupt input, {} valid bytes: {fuzz}", valid.len());
        }
    }

    #[test]
    fn bytes_per_state() {
        let mut distinct = TopKState::new(10).unwrap();
        for i in 0..1000 {
            distinct.update(&Item::Text(format!("user-{i}")), 1.0);
        }
        let zipf = Zipf::new(1000);
        let mut rng = Rng::new(1);
        let mut skewed = TopKState::new(10).unwrap();
        for _ in 0..1000 {
            skewed.update(&Item::Text(format!("user-{}", zipf.sample(&mut rng))), 1.0);
        }
        for (label, state) in [
            ("1,000 distinct strings", distinct),
            ("1,000 Zipf rows", skewed),
        ] {
            println!(
                "top-k k=10, {label}: {} body bytes, {} items kept",
                encode(&state).len(),
                state.sketch.num_active_items()
            );
        }
        println!(
            "top-k k=10, empty: {} body bytes",
            encode(&TopKState::new(10).unwrap()).len()
        );
    }
}
