//! The 64-bit hash of an item that `approx_count_distinct` keeps and counts.
//!
//! An item is identified by [`Item::canonical_bytes`], hashed with MurmurHash3 x64-128 and
//! [`SKETCH_HASH_SEED`]; its hash is the first 64-bit half of the 128-bit result. That is
//! the hash DataSketches computes for `update(byte[])` of the same bytes (the `datasketches`
//! crate's `Hasher::finish` of its Murmur hasher, which the tests check against): the hash
//! never depends on the process, the platform or the Rust version, which a stored set of
//! hashes needs. The crate does not export its hasher, so it is written out here.

use std::hash::Hasher;

use super::SKETCH_HASH_SEED;
use crate::item::Item;

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

/// The hash of `Item::Number(v)`; see the module doc. Non-finite numbers are null and are
/// never hashed by the callers.
///
/// The ingest hot path: the canonical bytes of a number are always 9, so this is the
/// Murmur tail and finalization of a 9-byte input, without the streaming buffer.
#[inline]
pub fn number_hash(v: f64) -> u64 {
    let bytes = Item::number_canonical_bytes(v);
    let (word, last) = bytes.split_first_chunk::<8>().expect("9 bytes");
    let h1 = SKETCH_HASH_SEED ^ mix_k1(u64::from_le_bytes(*word));
    let h2 = SKETCH_HASH_SEED ^ mix_k2(u64::from(last[0]));
    finalize(h1, h2, bytes.len() as u64)
}

/// The hash of `Item::Text(text)`, without building the item: its canonical bytes are
/// `s` and the UTF-8 bytes, written in two parts (the hasher is streaming, so this hashes
/// exactly the concatenation).
#[inline]
pub fn text_hash(text: &str) -> u64 {
    let mut hasher = Murmur3::with_seed(SKETCH_HASH_SEED);
    hasher.write(b"s");
    hasher.write(text.as_bytes());
    hasher.finish()
}

/// The hash of `item`.
pub fn item_hash(item: &Item) -> u64 {
    match item {
        Item::Number(v) => number_hash(*v),
        Item::Text(text) => text_hash(text),
    }
}

/// Streaming MurmurHash3 x64-128 (Austin Appleby's reference algorithm, seed in both
/// halves as DataSketches seeds it); [`Hasher::finish`] returns the first half.
struct Murmur3 {
    h1: u64,
    h2: u64,
    total: u64,
    tail: [u8; 16],
    tail_len: usize,
}

impl Murmur3 {
    fn with_seed(seed: u64) -> Self {
        Self {
            h1: seed,
            h2: seed,
            total: 0,
            tail: [0; 16],
            tail_len: 0,
        }
    }

    #[inline]
    fn block(&mut self, k1: u64, k2: u64) {
        self.h1 ^= mix_k1(k1);
        self.h1 = self.h1.rotate_left(27).wrapping_add(self.h2);
        self.h1 = self.h1.wrapping_mul(5).wrapping_add(0x52dc_e729);
        self.h2 ^= mix_k2(k2);
        self.h2 = self.h2.rotate_left(31).wrapping_add(self.h1);
        self.h2 = self.h2.wrapping_mul(5).wrapping_add(0x3849_5ab5);
    }
}

#[inline]
fn mix_k1(k1: u64) -> u64 {
    k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2)
}

#[inline]
fn mix_k2(k2: u64) -> u64 {
    k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1)
}

#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// Up to 8 bytes as a little-endian word, zero-padded.
#[inline]
fn le_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

/// The finalization of MurmurHash3 x64-128 after the tail is mixed in; the first half.
#[inline]
fn finalize(mut h1: u64, mut h2: u64, total: u64) -> u64 {
    h1 ^= total;
    h2 ^= total;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1.wrapping_add(h2)
}

impl Hasher for Murmur3 {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        self.total = self.total.wrapping_add(bytes.len() as u64);
        if self.tail_len > 0 {
            let take = (16 - self.tail_len).min(bytes.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&bytes[..take]);
            self.tail_len += take;
            bytes = &bytes[take..];
            if self.tail_len < 16 {
                return;
            }
            let tail = self.tail;
            self.block(le_u64(&tail[..8]), le_u64(&tail[8..]));
            self.tail_len = 0;
        }
        while let Some((block, rest)) = bytes.split_first_chunk::<16>() {
            self.block(le_u64(&block[..8]), le_u64(&block[8..]));
            bytes = rest;
        }
        self.tail[..bytes.len()].copy_from_slice(bytes);
        self.tail_len = bytes.len();
    }

    #[inline]
    fn finish(&self) -> u64 {
        let (mut h1, mut h2) = (self.h1, self.h2);
        let tail = &self.tail[..self.tail_len];
        if tail.len() > 8 {
            h2 ^= mix_k2(le_u64(&tail[8..]));
        }
        if !tail.is_empty() {
            h1 ^= mix_k1(le_u64(&tail[..tail.len().min(8)]));
        }
        finalize(h1, h2, self.total)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::hash::Hash;

    use datasketches::cpc::CpcSketch;

    use super::*;
    use crate::sketch::test_support::Rng;

    /// Feeds `bytes` to the `datasketches` crate's own Murmur hasher (through a CPC update,
    /// the only place the crate lends it out) and reads back its `finish()`.
    fn crate_hash(parts: &[&[u8]]) -> u64 {
        struct Probe<'a> {
            parts: &'a [&'a [u8]],
            seen: &'a Cell<u64>,
        }
        impl Hash for Probe<'_> {
            fn hash<H: Hasher>(&self, state: &mut H) {
                for part in self.parts {
                    state.write(part);
                }
                self.seen.set(state.finish());
            }
        }
        let seen = Cell::new(0);
        let mut sketch = CpcSketch::with_seed(4, SKETCH_HASH_SEED).unwrap();
        sketch.update(Probe { parts, seen: &seen });
        seen.get()
    }

    fn our_hash(parts: &[&[u8]]) -> u64 {
        let mut hasher = Murmur3::with_seed(SKETCH_HASH_SEED);
        for part in parts {
            hasher.write(part);
        }
        hasher.finish()
    }

    #[test]
    fn matches_the_hash_datasketches_computes() {
        let mut rng = Rng::new(11);
        let input: Vec<u8> = (0..80).map(|_| rng.next_u64() as u8).collect();
        for len in 0..=input.len() {
            let whole = &input[..len];
            assert_eq!(our_hash(&[whole]), crate_hash(&[whole]), "length {len}");
            let split = rng.below(len as u64 + 1) as usize;
            let parts = [&whole[..split], &whole[split..]];
            assert_eq!(
                our_hash(&parts),
                crate_hash(&[whole]),
                "length {len} split {split}"
            );
        }
    }

    #[test]
    fn items_hash_their_canonical_bytes() {
        for item in [
            Item::Number(3.0),
            Item::Number(-0.0),
            Item::Number(2.5),
            Item::Number(-1e300),
            Item::Text(String::new()),
            Item::Text("héllo".into()),
            Item::Text("a string longer than one sixteen-byte block".into()),
        ] {
            let mut bytes = Vec::new();
            item.canonical_bytes(&mut bytes);
            assert_eq!(item_hash(&item), crate_hash(&[&bytes]), "{item:?}");
        }
        // The direct path for numbers is the streaming hash of their bytes.
        for v in [3.0, -0.0, 0.5, 1e18, -7.25, f64::MAX, f64::MIN_POSITIVE] {
            let bytes = Item::number_canonical_bytes(v);
            assert_eq!(number_hash(v), our_hash(&[&bytes]), "{v}");
        }
        assert_eq!(number_hash(0.0), number_hash(-0.0));
        assert_ne!(number_hash(1.0), text_hash("1"));
    }

    /// Stored exact states hold these hashes: they must never change.
    #[test]
    fn golden_hashes() {
        let hashes = [
            number_hash(1.0),
            number_hash(-2.5),
            text_hash(""),
            text_hash("héllo"),
        ]
        .map(|h| format!("{h:016x}"));
        assert_eq!(
            hashes,
            [
                "316bdb73f3366584",
                "e60c251b3cbcfe8b",
                "2923ccdd01f5ab2c",
                "076e6f328a10d44c"
            ]
        );
    }
}
