//! The approximate aggregations as mergeable bucket states, each a thin wrapper around a
//! sketch of the `datasketches` crate (Apache DataSketches in Rust). No sketch algorithm is
//! written here: this module only decides parameters, item encoding, hashing, validation
//! and the stored byte layout.
//!
//! | aggregation             | state                  | sketch                         |
//! |-------------------------|------------------------|--------------------------------|
//! | `approx_count_distinct` | [`CountDistinctState`] | exact hash set, then CPC (`CpcSketch` + `CpcUnion`) |
//! | `approx_top_k`          | [`TopKState`]          | frequent items (Misra-Gries)   |
//! | `approx_percentile`     | [`PercentileState`]    | t-digest (`TDigestMut`)        |
//!
//! # Stored bodies
//!
//! `encode_body` writes a *body*: the caller puts its own kind/version header and length
//! prefix around it. Every sketch body starts with [`SKETCH_BODY_VERSION`] so that a later
//! layout is detectable, followed by the crate's own serialized image, which is the binary
//! format of the Java and C++ DataSketches libraries. The exact form of a
//! `CountDistinctState` (small sets, see its module) is no image and has no body version:
//! the state's kind and format version name it.
//!
//! ```text
//! CountDistinctState: [1][CPC compressed image (lg_k, seed hash, coupons, HIP, ...)]
//!   exact form:       [lg_k][item hashes: u64 LE, strictly ascending]
//! TopKState:          [1][k: u16 LE][frequent-items image, items in our item encoding]
//! PercentileState:    [1][t-digest image, double precision, always compressed]
//! ```
//!
//! `decode_body` never panics: the crate's parsers run under `catch_unwind` (so builds must
//! keep the default `panic = "unwind"`), and a body
//! is only accepted if it is in the form `encode_body` produces (re-encoding it gives the
//! same bytes, or for the frequent-items image, whose item order depends on hash-table
//! history, the same header and length). Anything else is a `CorruptState` error.
//! Value fields (a HIP accumulator, a centroid mean, a count) carry no redundancy, so a
//! flipped bit there can decode into a different but valid state: end-to-end integrity is
//! the store's job (RocksDB block checksums), not the body's.

mod cpc;
mod item_hash;
mod percentile;
mod top_k;

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{CoreError, CoreErrorKind, CoreResult};

pub use cpc::CountDistinctState;
pub use percentile::PercentileState;
pub use top_k::TopKState;

/// Default `lg_k` of `approx_count_distinct`: 2^11 = 2048 CPC rows. The serialized sketch
/// stays under ~1.3 KB at any cardinality (the crate's 99.9th-percentile bound for lg_k 11
/// is 1,332 bytes) and the relative standard error is about 1.3% unmerged (HIP estimator)
/// or 1.5% after a merge (ICON estimator), so ~3% at two standard deviations. It is also
/// the DataSketches default, which keeps states readable by the Java and C++ libraries
/// with their defaults.
pub const DEFAULT_CPC_LG_K: u8 = 11;

/// Default size of `approx_percentile`: the t-digest compression parameter `k`, which keeps
/// at most about `2k + 10` centroids (16 bytes each when stored, so ≤ ~6.6 KB per state at
/// 200). 200 is the DataSketches default. Measured after merging 30 or 720 bucket states,
/// the rank error stays under 0.2% for smooth distributions (best at the tails); data with
/// many tied values or sharp gaps reaches ~1% near such spots. 400 roughly halves both at
/// twice the bytes.
pub const DEFAULT_PERCENTILE_SIZE: u16 = 200;

/// Hash seed of every hashed sketch (CPC) and of the item hashes `approx_count_distinct`
/// keeps. Pinned because a stored CPC image records which seed built it (as a 16-bit seed
/// hash) and only merges with sketches of the same seed, and a stored exact state holds the
/// hashes themselves: a seed taken from the process (or changed later) would make stored
/// states unmergeable and counts wrong. 9001 is the DataSketches default, so Java/C++
/// readers accept the images without configuration.
pub const SKETCH_HASH_SEED: u64 = 9001;

/// First byte of every sketch body. Bump it (and keep a decoder for the old value) when the
/// layout after it changes; a decoder that sees an unknown value reports `CorruptState`.
pub const SKETCH_BODY_VERSION: u8 = 1;

/// Checks the `quantile` argument of `approx_percentile`: a finite number in `[0, 1]`.
///
/// # Errors
/// `InvalidAggregation`, with a message that names the offending value.
pub fn validate_quantile(q: f64) -> CoreResult<()> {
    if q.is_finite() && (0.0..=1.0).contains(&q) {
        Ok(())
    } else {
        Err(CoreError::new(
            CoreErrorKind::InvalidAggregation,
            format!("approx_percentile: quantile must be a number in [0, 1], got {q}"),
        ))
    }
}

/// Strips and checks the version byte of a body, returning the crate image after it.
fn body_after_version<'a>(bytes: &'a [u8], what: &str) -> CoreResult<&'a [u8]> {
    match bytes.split_first() {
        None => Err(CoreError::corrupt(format!(
            "{what} state is empty (0 bytes)"
        ))),
        Some((&SKETCH_BODY_VERSION, rest)) => Ok(rest),
        Some((&version, _)) => Err(CoreError::corrupt(format!(
            "{what} state has unknown body version {version} (expected {SKETCH_BODY_VERSION})"
        ))),
    }
}

/// Runs a crate call on untrusted input and turns both its error and any panic into a
/// `CorruptState` error. The crate validates images carefully, but it also contains
/// `assert!`s and (in debug builds) overflow checks that a crafted image could reach; a
/// corrupted stored state must fail its own read, never take the process down.
fn guarded<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, datasketches::error::Error>,
) -> CoreResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(CoreError::corrupt(format!("{what} state: {err}"))),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "sketch invariant violated".to_string());
            Err(CoreError::corrupt(format!("{what} state: {detail}")))
        }
    }
}

/// Helpers shared by the tests of the three sketches.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Once;

    /// SplitMix64: a tiny seeded generator, so that every trial is reproducible.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Self(seed)
        }

        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in `[0, 1)`.
        pub fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Uniform in `0..n`.
        pub fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n
        }

        /// Standard normal (Box-Muller).
        pub fn gaussian(&mut self) -> f64 {
            let u1 = 1.0 - self.unit();
            let u2 = self.unit();
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        }
    }

    pub fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Silences the default panic message for panics raised inside the datasketches crate
    /// (which `guarded` catches on purpose while the corruption tests run), and leaves every
    /// other panic, such as a failing assertion, reported as usual.
    pub fn quiet_crate_panics() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let in_crate = info
                    .location()
                    .is_some_and(|l| l.file().contains("datasketches"));
                let on_purpose = info
                    .payload()
                    .downcast_ref::<&str>()
                    .is_some_and(|m| m.starts_with("deliberate"));
                if !in_crate && !on_purpose {
                    default(info);
                }
            }));
        });
    }

    /// How many corrupted inputs of each kind `fuzz_decode` tried and how many the decoder
    /// rejected.
    #[derive(Debug, Default)]
    pub struct FuzzReport {
        pub flips: usize,
        pub flips_rejected: usize,
        pub random: usize,
        pub random_rejected: usize,
    }

    impl std::fmt::Display for FuzzReport {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "every truncation and trailing byte rejected; single-byte changes rejected \
                 {}/{} ({:.0}%); random inputs rejected {}/{}",
                self.flips_rejected,
                self.flips,
                100.0 * self.flips_rejected as f64 / self.flips.max(1) as f64,
                self.random_rejected,
                self.random
            )
        }
    }

    /// Feeds `decode` every truncation of `valid` (which must all be rejected), `valid` plus
    /// a trailing byte (rejected too), every single-byte change of `valid` (three patterns
    /// per position) and 2,000 random inputs. `decode` must never panic; it returns `false`
    /// for a rejection (after checking the error kind) and `true` after checking that the
    /// accepted state is usable. A change inside a value field (a count, a mean, the HIP
    /// accumulator) can decode into a different valid state: nothing in a body can tell,
    /// so such changes are counted rather than required to fail.
    pub fn fuzz_decode(valid: &[u8], mut decode: impl FnMut(&[u8]) -> bool) -> FuzzReport {
        quiet_crate_panics();
        assert!(decode(valid), "the valid body must decode");
        for len in 0..valid.len() {
            assert!(
                !decode(&valid[..len]),
                "a body truncated to {len} bytes decoded"
            );
        }
        let mut trailing = valid.to_vec();
        trailing.push(0);
        assert!(!decode(&trailing), "a body with a trailing byte decoded");
        let mut report = FuzzReport::default();
        for pos in 0..valid.len() {
            for pattern in [0xFFu8, 0x01, 0x80] {
                let mut bytes = valid.to_vec();
                bytes[pos] ^= pattern;
                report.flips += 1;
                if !decode(&bytes) {
                    report.flips_rejected += 1;
                }
            }
        }
        let mut rng = Rng::new(0xC0FFEE);
        for _ in 0..2000 {
            let len = rng.below(96) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            // Half of them keep a plausible version byte and crate preamble, which gets
            // them past the first checks and into the interesting parts of the parsers.
            if rng.below(2) == 0 && !bytes.is_empty() {
                let keep = valid.len().min(1 + rng.below(12) as usize).min(bytes.len());
                bytes[..keep].copy_from_slice(&valid[..keep]);
            }
            report.random += 1;
            if !decode(&bytes) {
                report.random_rejected += 1;
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_quantile_accepts_the_unit_interval_only() {
        for q in [0.0, 0.01, 0.5, 1.0] {
            assert!(validate_quantile(q).is_ok(), "{q}");
        }
        for q in [-0.01, 1.5, f64::NAN, f64::INFINITY] {
            let err = validate_quantile(q).unwrap_err();
            assert_eq!(err.kind, CoreErrorKind::InvalidAggregation);
            assert!(err.message.contains(&format!("{q}")), "{}", err.message);
        }
    }

    #[test]
    fn unknown_body_version_is_corrupt() {
        let err = body_after_version(&[2, 0, 0], "x").unwrap_err();
        assert_eq!(err.kind, CoreErrorKind::CorruptState);
        assert!(err.message.contains("version 2"));
        assert_eq!(
            body_after_version(&[], "x").unwrap_err().kind,
            CoreErrorKind::CorruptState
        );
    }

    #[test]
    fn guarded_turns_panics_into_corrupt_state() {
        test_support::quiet_crate_panics();
        let err = guarded::<()>("x", || panic!("deliberate panic")).unwrap_err();
        assert_eq!(err.kind, CoreErrorKind::CorruptState);
        assert!(err.message.contains("deliberate panic"));
    }
}
