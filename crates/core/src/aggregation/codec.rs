//! The stored bytes of an [`AggState`].
//!
//! Every state starts with one header byte, `(STATE_FORMAT_VERSION << 5) | kind`,
//! followed by a little-endian payload (see "Format versions" below for what each version
//! changed and what this build still reads). Each encoding is self-delimiting: it carries
//! its own arguments (`n`, `dim`) and lengths, so states can be concatenated and decoded
//! without knowing the rule that made them. Varints are unsigned LEB128.
//!
//! | kind | aggregation | payload after the header | size |
//! |---|---|---|---|
//! | 1 | sum | f64 sum (NaN = empty) | 9 |
//! | 2 | count | varint count | 2..=11 |
//! | 3 | min | f64 (NaN = empty) | 9 |
//! | 4 | max | f64 (NaN = empty) | 9 |
//! | 5 | mean | f64 sum, varint count | 10..=18 for counts below 2^63 |
//! | 6 / 7 | var / var_sample | varint count; if count > 0: f64 mean, f64 m2 | 2 or 18..=27 |
//! | 8 / 9 | std / std_sample | as var | 2 or 18..=27 |
//! | 10 / 11 | min_by_n / max_by_n | varint n, varint len, len pairs of (f64 by, item), best first | 3 + pairs |
//! | 12 / 13 | vector_sum / vector_mean | varint dim, varint count; if count > 0: dim f64 sums | 3+ or 3+ + 8 dim |
//! | 20 | approx_count_distinct (sketch) | varint len, then len bytes: the CPC body | ~190 (167 items) ..=~1.3 KB at lgK 11 |
//! | 21 | approx_top_k | varint len, then len bytes: u8 flags (bit 0: weighted), the frequent-items body | 14 + items |
//! | 22 | approx_percentile | varint len, then len bytes: f64 quantile, the t-digest body | 19, 27, or 43 + 16 per centroid |
//! | 23 | approx_count_distinct (exact) | varint len, then len bytes: u8 lg_k, n u64 item hashes, ascending | 3 + 8n below 16 items, 4 + 8n from 16: 11 for one, 1,332 for 166 (the most at lgK 11) |
//!
//! An item is a tag byte then its value: `0` and an f64 for a number, `1`, a varint byte
//! length and UTF-8 bytes for a text.
//!
//! A sketch state is `header, varint length, payload`: the length makes it
//! self-delimiting whatever the sketch image holds, and lets a reader skip it. The bodies
//! (a body-version byte, then the DataSketches image) are described in [`crate::sketch`];
//! their arguments (`lg_k`, `k`, the t-digest size) live inside the images. The payload
//! of `approx_top_k` and `approx_percentile` starts with what the state is evaluated with
//! (whether it is weighted, its quantile), as `min_by_n` carries its `n`. A sketch body is
//! accepted only in the form the encoder writes; anything else (truncated, trailing
//! bytes, a bad image or argument) is a `CorruptState` error, never a panic.
//!
//! `approx_count_distinct` has two kinds, one per form of its state: 23 while the state is
//! the exact set of its items' 64-bit hashes (at most `CountDistinctState::exact_limit`
//! of them, 166 at lgK 11, so that it is never larger than the sketch bound), 20 once it
//! is a CPC sketch of those hashes. Both are described in [`crate::sketch`].
//!
//! # Format versions
//!
//! - 1: kinds 1-22; the CPC sketch of kind 20 hashed each item's canonical bytes.
//! - 2 (written by this build): kind 23 (exact `approx_count_distinct`) is new, and the
//!   CPC sketch of kind 20 is fed each item's 64-bit hash instead of its bytes, so that an
//!   exact set folds into a sketch as its items would have.
//!
//! This build reads both. Every kind of version 1 but 20 has the layout and meaning it
//! has in version 2 and decodes as such. A version-1 kind-20 sketch is refused: its
//! coupons come from other hash inputs, so merging it with a version-2 state would count
//! an item seen on both sides twice. (A store records the version it was written with
//! and refuses to open with a build that writes another, so stores never mix versions.)

use super::ranked::Rank;
use super::{AggState, Aggregation, Moments, NumericSummary, RankedState, VectorState};
use super::{MAX_RANKED_N, MAX_VECTOR_DIM};
use super::{OLDEST_READABLE_STATE_FORMAT, STATE_FORMAT_VERSION};
use crate::error::{CoreError, CoreResult};
use crate::item::Item;
use crate::sketch::{CountDistinctState, PercentileState, TopKState};

const KIND_SUM: u8 = 1;
const KIND_COUNT: u8 = 2;
const KIND_MIN: u8 = 3;
const KIND_MAX: u8 = 4;
const KIND_MEAN: u8 = 5;
const KIND_VAR: u8 = 6;
const KIND_VAR_SAMPLE: u8 = 7;
const KIND_STD: u8 = 8;
const KIND_STD_SAMPLE: u8 = 9;
const KIND_MIN_BY_N: u8 = 10;
const KIND_MAX_BY_N: u8 = 11;
const KIND_VECTOR_SUM: u8 = 12;
const KIND_VECTOR_MEAN: u8 = 13;
const KIND_APPROX_COUNT_DISTINCT: u8 = 20;
const KIND_APPROX_TOP_K: u8 = 21;
const KIND_APPROX_PERCENTILE: u8 = 22;
const KIND_APPROX_COUNT_DISTINCT_EXACT: u8 = 23;

/// Bit 0 of an `approx_top_k` payload's flags byte: the rule weighs items by `by`.
const TOP_K_WEIGHTED: u8 = 1;

const ITEM_NUMBER: u8 = 0;
const ITEM_TEXT: u8 = 1;

impl NumericSummary {
    /// Appends the encoding of `self.state(aggregation)` without building the state: the
    /// commit of a summary layout writes one of these per rule and bucket.
    #[inline]
    pub fn encode_state(&self, aggregation: &Aggregation, out: &mut Vec<u8>) {
        let header = |kind: u8| (STATE_FORMAT_VERSION << 5) | kind;
        let or_nan = |v: f64| if self.is_empty() { f64::NAN } else { v };
        match aggregation {
            Aggregation::Sum => {
                out.push(header(KIND_SUM));
                put_f64(out, or_nan(self.sum()));
            }
            Aggregation::Count => {
                out.push(header(KIND_COUNT));
                put_varint(out, self.count());
            }
            Aggregation::Mean => {
                out.push(header(KIND_MEAN));
                put_f64(out, self.sum() + 0.0);
                put_varint(out, self.count());
            }
            Aggregation::Min => {
                out.push(header(KIND_MIN));
                put_f64(out, or_nan(self.min()));
            }
            Aggregation::Max => {
                out.push(header(KIND_MAX));
                put_f64(out, or_nan(self.max()));
            }
            other => self.state(other).encode(out),
        }
    }
}

impl AggState {
    fn kind_code(&self) -> u8 {
        match self {
            AggState::Sum(_) => KIND_SUM,
            AggState::Count(_) => KIND_COUNT,
            AggState::Min(_) => KIND_MIN,
            AggState::Max(_) => KIND_MAX,
            AggState::Mean { .. } => KIND_MEAN,
            AggState::Var { sample: false, .. } => KIND_VAR,
            AggState::Var { sample: true, .. } => KIND_VAR_SAMPLE,
            AggState::Std { sample: false, .. } => KIND_STD,
            AggState::Std { sample: true, .. } => KIND_STD_SAMPLE,
            AggState::MinByN(_) => KIND_MIN_BY_N,
            AggState::MaxByN(_) => KIND_MAX_BY_N,
            AggState::VectorSum(_) => KIND_VECTOR_SUM,
            AggState::VectorMean(_) => KIND_VECTOR_MEAN,
            AggState::ApproxCountDistinct(s) if s.is_exact() => KIND_APPROX_COUNT_DISTINCT_EXACT,
            AggState::ApproxCountDistinct(_) => KIND_APPROX_COUNT_DISTINCT,
            AggState::ApproxTopK { .. } => KIND_APPROX_TOP_K,
            AggState::ApproxPercentile { .. } => KIND_APPROX_PERCENTILE,
        }
    }

    /// Appends this state's self-delimiting encoding to `out` (see the module table).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push((STATE_FORMAT_VERSION << 5) | self.kind_code());
        match self {
            AggState::Sum(v) | AggState::Min(v) | AggState::Max(v) => {
                put_f64(out, v.unwrap_or(f64::NAN));
            }
            AggState::Count(count) => put_varint(out, *count),
            AggState::Mean { sum, count } => {
                put_f64(out, *sum);
                put_varint(out, *count);
            }
            AggState::Var { moments, .. } | AggState::Std { moments, .. } => {
                put_varint(out, moments.count);
                if moments.count > 0 {
                    put_f64(out, moments.mean);
                    put_f64(out, moments.m2);
                }
            }
            AggState::MinByN(ranked) | AggState::MaxByN(ranked) => {
                put_varint(out, u64::from(ranked.n));
                put_varint(out, ranked.pairs.len() as u64);
                for (by, item) in &ranked.pairs {
                    put_f64(out, *by);
                    match item {
                        Item::Number(v) => {
                            out.push(ITEM_NUMBER);
                            put_f64(out, *v);
                        }
                        Item::Text(text) => {
                            out.push(ITEM_TEXT);
                            put_varint(out, text.len() as u64);
                            out.extend_from_slice(text.as_bytes());
                        }
                    }
                }
            }
            AggState::VectorSum(vector) | AggState::VectorMean(vector) => {
                put_varint(out, u64::from(vector.dim));
                put_varint(out, vector.count);
                if vector.count > 0 {
                    for s in &vector.sum {
                        put_f64(out, *s);
                    }
                }
            }
            AggState::ApproxCountDistinct(sketch) => {
                put_payload(out, |out| sketch.encode_body(out));
            }
            AggState::ApproxTopK { sketch, weighted } => put_payload(out, |out| {
                out.push(if *weighted { TOP_K_WEIGHTED } else { 0 });
                sketch.encode_body(out);
            }),
            AggState::ApproxPercentile { sketch, quantile } => put_payload(out, |out| {
                put_f64(out, *quantile);
                sketch.encode_body(out);
            }),
        }
    }

    /// [`AggState::encode`], the same bytes, for a state about to be dropped or kept: a
    /// percentile sketch compacts itself in place instead of encoding a compacted copy.
    pub fn encode_compacting(&mut self, out: &mut Vec<u8>) {
        match self {
            AggState::ApproxPercentile { sketch, quantile } => {
                out.push((STATE_FORMAT_VERSION << 5) | KIND_APPROX_PERCENTILE);
                put_payload(out, |out| {
                    put_f64(out, *quantile);
                    sketch.encode_body_compacting(out);
                });
            }
            other => other.encode(out),
        }
    }

    /// Decodes one state from the front of `bytes`, returning it and how many bytes it
    /// took (anything after is left alone). Fails with `CorruptState` on empty input, an
    /// unknown version or kind, a truncated payload, invalid UTF-8, or arguments and
    /// lengths no encoder would write. Never panics, whatever the input.
    pub fn decode(bytes: &[u8]) -> CoreResult<(AggState, usize)> {
        let Some(&header) = bytes.first() else {
            return Err(CoreError::corrupt(
                "cannot decode an aggregation state from empty input",
            ));
        };
        let version = header >> 5;
        if !(OLDEST_READABLE_STATE_FORMAT..=STATE_FORMAT_VERSION).contains(&version) {
            return Err(CoreError::corrupt(format!(
                "unsupported state format version {version} (header byte 0x{header:02x}); \
                 this build reads versions {OLDEST_READABLE_STATE_FORMAT}..={STATE_FORMAT_VERSION}"
            )));
        }
        let kind = header & 0x1f;
        let mut r = Reader {
            bytes,
            pos: 1,
            kind: kind_name(kind),
        };
        let state = match kind {
            KIND_SUM => AggState::Sum(r.optional_f64("sum")?),
            KIND_COUNT => AggState::Count(r.varint("count")?),
            KIND_MIN => AggState::Min(r.optional_f64("min")?),
            KIND_MAX => AggState::Max(r.optional_f64("max")?),
            KIND_MEAN => {
                let sum = r.f64("sum")?;
                let count = r.varint("count")?;
                if count == 0 && sum != 0.0 {
                    return Err(r.impossible(format!("a sum of {sum} over no values")));
                }
                AggState::Mean { sum, count }
            }
            KIND_VAR | KIND_VAR_SAMPLE | KIND_STD | KIND_STD_SAMPLE => {
                let moments = decode_moments(&mut r)?;
                let sample = kind == KIND_VAR_SAMPLE || kind == KIND_STD_SAMPLE;
                if kind == KIND_VAR || kind == KIND_VAR_SAMPLE {
                    AggState::Var { moments, sample }
                } else {
                    AggState::Std { moments, sample }
                }
            }
            KIND_MIN_BY_N => AggState::MinByN(decode_ranked(&mut r, Rank::Smallest)?),
            KIND_MAX_BY_N => AggState::MaxByN(decode_ranked(&mut r, Rank::Largest)?),
            KIND_VECTOR_SUM => AggState::VectorSum(decode_vector(&mut r)?),
            KIND_VECTOR_MEAN => AggState::VectorMean(decode_vector(&mut r)?),
            KIND_APPROX_COUNT_DISTINCT if version < 2 => {
                return Err(CoreError::corrupt(format!(
                    "approx_count_distinct sketch of state format {version} (header byte \
                     0x{header:02x}): its items were hashed as format {version} hashes them, \
                     and it cannot be merged with the states of format {STATE_FORMAT_VERSION}"
                )))
            }
            KIND_APPROX_COUNT_DISTINCT => {
                let payload = r.payload()?;
                AggState::ApproxCountDistinct(Box::new(CountDistinctState::decode_sketch_body(
                    payload,
                )?))
            }
            KIND_APPROX_COUNT_DISTINCT_EXACT if version >= 2 => {
                let payload = r.payload()?;
                AggState::ApproxCountDistinct(Box::new(CountDistinctState::decode_exact_body(
                    payload,
                )?))
            }
            KIND_APPROX_TOP_K => {
                let payload = r.payload()?;
                let Some((&flags, body)) = payload.split_first() else {
                    return Err(r.impossible("an empty payload".to_owned()));
                };
                if flags & !TOP_K_WEIGHTED != 0 {
                    return Err(r.impossible(format!("flags 0x{flags:02x}")));
                }
                AggState::ApproxTopK {
                    sketch: Box::new(TopKState::decode_body(body)?),
                    weighted: flags & TOP_K_WEIGHTED != 0,
                }
            }
            KIND_APPROX_PERCENTILE => {
                let payload = r.payload()?;
                let Some((quantile, body)) = payload.split_first_chunk::<8>() else {
                    return Err(r.impossible(format!(
                        "a payload of {} bytes, too short for the quantile",
                        payload.len()
                    )));
                };
                let quantile = f64::from_le_bytes(*quantile);
                if !(0.0..=1.0).contains(&quantile) {
                    return Err(r.impossible(format!("quantile {quantile}")));
                }
                AggState::ApproxPercentile {
                    sketch: Box::new(PercentileState::decode_body(body)?),
                    quantile,
                }
            }
            _ => {
                return Err(CoreError::corrupt(format!(
                    "unknown aggregation state kind {kind} (header byte 0x{header:02x})"
                )))
            }
        };
        Ok((state, r.pos))
    }
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_SUM => "sum",
        KIND_COUNT => "count",
        KIND_MIN => "min",
        KIND_MAX => "max",
        KIND_MEAN => "mean",
        KIND_VAR => "var",
        KIND_VAR_SAMPLE => "var_sample",
        KIND_STD => "std",
        KIND_STD_SAMPLE => "std_sample",
        KIND_MIN_BY_N => "min_by_n",
        KIND_MAX_BY_N => "max_by_n",
        KIND_VECTOR_SUM => "vector_sum",
        KIND_VECTOR_MEAN => "vector_mean",
        KIND_APPROX_COUNT_DISTINCT | KIND_APPROX_COUNT_DISTINCT_EXACT => "approx_count_distinct",
        KIND_APPROX_TOP_K => "approx_top_k",
        KIND_APPROX_PERCENTILE => "approx_percentile",
        _ => "unknown",
    }
}

fn decode_moments(r: &mut Reader<'_>) -> CoreResult<Moments> {
    let count = r.varint("count")?;
    if count == 0 {
        return Ok(Moments::EMPTY);
    }
    let mean = r.f64("mean")?;
    let m2 = r.f64("m2")?;
    Ok(Moments { count, mean, m2 })
}

fn decode_ranked(r: &mut Reader<'_>, rank: Rank) -> CoreResult<RankedState> {
    let n = r.varint("n")?;
    if !(1..=u64::from(MAX_RANKED_N)).contains(&n) {
        return Err(r.impossible(format!("n = {n}, outside 1..={MAX_RANKED_N}")));
    }
    let len = r.varint("pair count")?;
    if len > n {
        return Err(r.impossible(format!("{len} pairs kept with n = {n}")));
    }
    // Both bounded by MAX_RANKED_N above, so the allocation is small whatever the input.
    let mut state = RankedState::new(n as u32);
    state.pairs.reserve_exact(len as usize);
    for _ in 0..len {
        let by = r.f64("by")?;
        let item = match r.u8("item tag")? {
            ITEM_NUMBER => Item::Number(r.f64("number item")?),
            ITEM_TEXT => {
                let text_len = r.varint("text length")?;
                let raw = r.take(text_len, "text item")?;
                match std::str::from_utf8(raw) {
                    Ok(text) => Item::Text(text.to_owned()),
                    Err(e) => {
                        return Err(r.impossible(format!("a text item that is not UTF-8 ({e})")))
                    }
                }
            }
            tag => return Err(r.impossible(format!("item tag {tag}"))),
        };
        state.pairs.push(RankedState::canonical_pair(by, item));
    }
    if !state.is_well_formed(rank) {
        return Err(r.impossible("pairs that are non-finite or out of order".to_owned()));
    }
    Ok(state)
}

fn decode_vector(r: &mut Reader<'_>) -> CoreResult<VectorState> {
    let dim = r.varint("dim")?;
    if !(1..=u64::from(MAX_VECTOR_DIM)).contains(&dim) {
        return Err(r.impossible(format!("dim = {dim}, outside 1..={MAX_VECTOR_DIM}")));
    }
    let mut state = VectorState::new(dim as u32);
    state.count = r.varint("count")?;
    if state.count > 0 {
        // Taken before allocating, so a corrupt dim cannot ask for memory it lacks bytes for.
        let raw = r.take(dim * 8, "element sums")?;
        state.sum = raw
            .chunks_exact(8)
            .map(|chunk| {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                f64::from_le_bytes(word)
            })
            .collect();
    }
    Ok(state)
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A sketch payload: its varint length, then the bytes `write` appends. Written in place:
/// one length byte is reserved, and the payload moves up in the rare case (payloads of
/// 128 bytes and more) where the length needs more.
fn put_payload(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.push(0);
    write(out);
    let len = out.len() - at - 1;
    if len < 0x80 {
        out[at] = len as u8;
        return;
    }
    let (mut prefix, mut n, mut v) = ([0u8; 10], 0, len as u64);
    while v >= 0x80 {
        prefix[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    prefix[n] = v as u8;
    out.splice(at..at + 1, prefix[..=n].iter().copied());
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A cursor over an encoded state that turns every shortfall into a `CorruptState`
/// error naming the state kind, the field and the offset.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    kind: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: u64, what: &str) -> CoreResult<&'a [u8]> {
        let available = self.bytes.len() - self.pos;
        match usize::try_from(len) {
            Ok(len) if len <= available => {
                let slice = &self.bytes[self.pos..self.pos + len];
                self.pos += len;
                Ok(slice)
            }
            _ => Err(CoreError::corrupt(format!(
                "truncated {} state: the {what} at byte {} needs {len} bytes, {available} left",
                self.kind, self.pos
            ))),
        }
    }

    fn u8(&mut self, what: &str) -> CoreResult<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn f64(&mut self, what: &str) -> CoreResult<f64> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8, what)?);
        Ok(f64::from_le_bytes(word))
    }

    /// An f64 where NaN stands for "no value yet".
    fn optional_f64(&mut self, what: &str) -> CoreResult<Option<f64>> {
        let v = self.f64(what)?;
        Ok((!v.is_nan()).then_some(v))
    }

    fn varint(&mut self, what: &str) -> CoreResult<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.u8(what)?;
            let bits = u64::from(byte & 0x7f);
            // The tenth byte holds the 64th bit only.
            if i == 9 && bits > 1 {
                break;
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.impossible(format!("a {what} varint beyond 64 bits")))
    }

    /// A sketch payload: a varint length, then that many bytes.
    fn payload(&mut self) -> CoreResult<&'a [u8]> {
        let len = self.varint("payload length")?;
        self.take(len, "payload")
    }

    fn impossible(&self, what: String) -> CoreError {
        CoreError::corrupt(format!(
            "corrupt {} state: {what} (at byte {})",
            self.kind, self.pos
        ))
    }
}
