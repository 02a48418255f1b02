//! `approx_percentile(quantile)`: a t-digest per bucket.
//!
//! Why t-digest and not REQ or KLL (both also in the crate): REQ is accurate at one end of
//! the rank range only, and KLL at k = 200 (a similar state size) bounds the rank error at
//! ~1.3%, while the t-digest measures under 0.2% on smooth data over the whole range, best
//! at the tails that percentile features usually ask for (p90, p99). Its price: results are
//! interpolated (not necessarily input values), the error is empirical rather than a proven
//! bound, and it grows (to ~1% measured) where the data has many tied values or a gap.

use datasketches::tdigest::TDigestMut;

use super::{body_after_version, guarded, SKETCH_BODY_VERSION};
use crate::error::{CoreError, CoreErrorKind, CoreResult};

const WHAT: &str = "approx_percentile";

/// The partial state of `approx_percentile`: a t-digest of the values seen.
///
/// Merging is the t-digest merge: the result depends slightly on the merge order and
/// grouping, always within the sketch's accuracy (it is not byte-for-byte commutative).
///
/// Merged-in digests are not compressed into this one one at a time: a window merges up to
/// hundreds of bucket states, and recompressing the window's few hundred centroids per
/// bucket made reading a 720-bucket window cost ~10 ms. They wait in `pending` and are
/// combined in one pass (the crate's multi-way merge, one compression for all of them)
/// once [`MAX_PENDING`] wait, and in a copy whenever the state is read (quantile, encode,
/// equality). Updates go to `digest` as usual.
#[derive(Debug, Clone)]
pub struct PercentileState {
    digest: TDigestMut,
    /// Non-empty digests merged in but not yet combined with `digest`.
    pending: Vec<TDigestMut>,
}

/// How many merged-in digests wait before they are combined.
const MAX_PENDING: usize = 64;

/// Two states are equal when they encode to the same bytes (same size, and the same
/// centroids once compressed). Meant for tests and assertions: it compresses copies.
impl PartialEq for PercentileState {
    fn eq(&self, other: &Self) -> bool {
        let image = |state: &Self| state.combined().serialize();
        self.size() == other.size() && image(self) == image(other)
    }
}

impl PercentileState {
    /// A state's rank error times its size: at most `RANK_ERROR_FACTOR / size` (1% at the
    /// default 200), the worst measured after merging (tied values and gaps; smooth data
    /// stays under 0.2%). Measured, not proven: see the module doc and its tests.
    pub const RANK_ERROR_FACTOR: f64 = 2.0;

    /// Smallest size the t-digest accepts (~22 centroids; errors of a few percent).
    pub const MIN_SIZE: u16 = 10;
    /// Largest size we accept: ~2,010 centroids, up to ~32 KB per stored state.
    pub const MAX_SIZE: u16 = 1000;

    /// An empty state with t-digest compression `size`; see
    /// [`super::DEFAULT_PERCENTILE_SIZE`]. Larger sizes keep more centroids: more accuracy,
    /// larger states.
    ///
    /// # Errors
    /// `InvalidAggregation` when `size` is outside `10..=1000`.
    pub fn new(size: u16) -> CoreResult<Self> {
        if !(Self::MIN_SIZE..=Self::MAX_SIZE).contains(&size) {
            return Err(CoreError::new(
                CoreErrorKind::InvalidAggregation,
                format!(
                    "{WHAT}: size must be in {}..={}, got {size}",
                    Self::MIN_SIZE,
                    Self::MAX_SIZE
                ),
            ));
        }
        let digest = TDigestMut::new(size).map_err(|err| {
            CoreError::new(CoreErrorKind::InvalidAggregation, format!("{WHAT}: {err}"))
        })?;
        Ok(Self {
            digest,
            pending: Vec::new(),
        })
    }

    /// Adds one value. NaN and infinities are skipped (nulls of a numeric column).
    pub fn update(&mut self, v: f64) {
        if v.is_finite() {
            self.digest.update(v);
        }
    }

    /// Folds `other` into `self`.
    ///
    /// # Errors
    /// `StateMismatch` when the sizes differ (the t-digest would silently keep one of them);
    /// `InvalidInput` when the combined number of values would overflow a u64.
    pub fn merge(&mut self, other: &Self) -> CoreResult<()> {
        if self.size() != other.size() {
            return Err(CoreError::new(
                CoreErrorKind::StateMismatch,
                format!(
                    "{WHAT}: cannot merge a state with size {} into one with size {}",
                    other.size(),
                    self.size()
                ),
            ));
        }
        if self
            .total_weight()
            .checked_add(other.total_weight())
            .is_none()
        {
            return Err(CoreError::new(
                CoreErrorKind::InvalidInput,
                format!("{WHAT}: merged state would hold more than 2^64 values"),
            ));
        }
        if !other.digest.is_empty() {
            self.pending.push(other.digest.clone());
        }
        self.pending.extend(other.pending.iter().cloned());
        if self.pending.len() >= MAX_PENDING {
            let first = std::mem::take(&mut self.digest);
            // Not empty: `pending` holds non-empty digests of this size, so the result has
            // this size too.
            self.digest = std::iter::once(first)
                .chain(self.pending.drain(..))
                .collect();
        }
        Ok(())
    }

    /// The number of values folded in (merged-in digests included). Merge checks that it
    /// fits a u64.
    fn total_weight(&self) -> u64 {
        self.pending
            .iter()
            .fold(self.digest.total_weight(), |sum, d| {
                sum.saturating_add(d.total_weight())
            })
    }

    /// The digest with every pending digest combined into it, as a copy.
    fn combined(&self) -> TDigestMut {
        if self.pending.is_empty() {
            return self.digest.clone();
        }
        std::iter::once(self.digest.clone())
            .chain(self.pending.iter().cloned())
            .collect()
    }

    /// The value at normalized rank `q` (0.5 is the median), or `None` when the state is
    /// empty. Callers validate `q` with [`super::validate_quantile`]; a `q` outside `[0, 1]`
    /// gives `None` here rather than a panic.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) || self.is_empty() {
            return None;
        }
        // Querying compresses buffered values, which needs `&mut`; a window is evaluated
        // once after merging, so a copy is cheap next to the merges that built it.
        self.combined().quantile(q).ok().flatten()
    }

    /// `true` when no value has been added.
    pub fn is_empty(&self) -> bool {
        self.digest.is_empty() && self.pending.is_empty()
    }

    /// The configured t-digest compression `k`.
    pub fn size(&self) -> u16 {
        self.digest.k()
    }

    /// Appends the body: [`SKETCH_BODY_VERSION`], then the t-digest image in double
    /// precision, compressed first (no buffered values). 9 bytes when empty, 17 for one
    /// value, 33 + 16 per centroid otherwise.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(SKETCH_BODY_VERSION);
        // Serializing compresses (needs `&mut`), hence the copy.
        out.extend_from_slice(&self.combined().serialize());
    }

    /// [`Self::encode_body`] without the copy: combines the pending digests into the main
    /// one and compresses it in place, which changes how the state is held, not what it
    /// encodes to or answers.
    pub fn encode_body_compacting(&mut self, out: &mut Vec<u8>) {
        if !self.pending.is_empty() {
            self.digest = self.combined();
            self.pending.clear();
        }
        out.push(SKETCH_BODY_VERSION);
        out.extend_from_slice(&self.digest.serialize());
    }

    /// Reads a body written by [`Self::encode_body`]; `bytes` is exactly the body.
    ///
    /// # Errors
    /// `CorruptState` for an unknown version, a size outside `10..=1000`, a truncated or
    /// damaged image, trailing bytes, or an image not in the form `encode_body` writes
    /// (buffered values, the reference implementation's format, ...).
    pub fn decode_body(bytes: &[u8]) -> CoreResult<Self> {
        let image = body_after_version(bytes, WHAT)?;
        let mut digest = guarded(WHAT, || TDigestMut::deserialize(image))?;
        if !(Self::MIN_SIZE..=Self::MAX_SIZE).contains(&digest.k()) {
            return Err(CoreError::corrupt(format!(
                "{WHAT} state: size {} out of range",
                digest.k()
            )));
        }
        // The parser ignores trailing bytes and also accepts other layouts (buffered
        // values, the reference implementation's big-endian format); only the canonical
        // image, which re-encodes to itself, is ours. Serializing an already compressed
        // digest does not change it.
        let reencoded = guarded(WHAT, || Ok(digest.serialize()))?;
        if reencoded != image {
            return Err(CoreError::corrupt(format!(
                "{WHAT} state: t-digest image is not canonical ({} bytes, re-encodes to {})",
                image.len(),
                reencoded.len()
            )));
        }
        Ok(Self {
            digest,
            pending: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::test_support::{fuzz_decode, hex, unhex, Rng};
    use crate::sketch::DEFAULT_PERCENTILE_SIZE;

    const QS: [f64; 5] = [0.01, 0.1, 0.5, 0.9, 0.99];

    fn encode(state: &PercentileState) -> Vec<u8> {
        let mut out = Vec::new();
        state.encode_body(&mut out);
        out
    }

    fn state_of(size: u16, values: impl IntoIterator<Item = f64>) -> PercentileState {
        let mut state = PercentileState::new(size).unwrap();
        for v in values {
            state.update(v);
        }
        state
    }

    #[test]
    fn compacting_encodes_the_same_bytes_and_keeps_the_answers() {
        let mut rng = Rng::new(5);
        for merges in [0, 1, 3, MAX_PENDING + 2] {
            let mut state = state_of(50, (0..200).map(|_| rng.unit() * 100.0));
            for _ in 0..merges {
                let other = state_of(50, (0..7).map(|_| rng.unit()));
                state.merge(&other).unwrap();
            }
            let before = encode(&state);
            let answers: Vec<_> = QS.iter().map(|&q| state.quantile(q)).collect();
            let mut compacted = Vec::new();
            state.encode_body_compacting(&mut compacted);
            assert_eq!(compacted, before, "after {merges} merges");
            assert_eq!(encode(&state), before, "the state still encodes the same");
            let again: Vec<_> = QS.iter().map(|&q| state.quantile(q)).collect();
            assert_eq!(again, answers);
        }
    }

    fn golden_small() -> PercentileState {
        state_of(DEFAULT_PERCENTILE_SIZE, [3.0, 1.0, 4.0, 1.0, 5.0, -9.25])
    }

    /// size 10 with 500 values: compressed into a handful of centroids.
    fn golden_compressed() -> PercentileState {
        state_of(10, (0..500).map(|i| f64::from((i * 37) % 500) / 4.0))
    }

    const GOLDEN_SMALL: &str = concat!(
        "01020114c800040000060000000000000000000000008022c000000000000014",
        "4000000000008022c00100000000000000000000000000f03f01000000000000",
        "00000000000000f03f0100000000000000000000000000084001000000000000",
        "0000000000000010400100000000000000000000000000144001000000000000",
        "00",
    );
    const GOLDEN_COMPRESSED: &str = concat!(
        "010201140a000400000f0000000000000000000000000000000000000000305f",
        "4000000000000000000100000000000000000000000000d03f01000000000000",
        "00000000000000e83f0300000000000000555555555555034009000000000000",
        "0092244992244919401500000000000000862c64210b592f402e000000000000",
        "00a0436a82f14641406a00000000000000d9a59e8cdf1e50408e000000000000",
        "00f5285c8fc23d574064000000000000000000000000f05b402b000000000000",
        "004344444444d45d400f000000000000000000000000925e4008000000000000",
        "000000000000f05e4003000000000000000000000000205f4001000000000000",
        "000000000000305f400100000000000000",
    );

    #[test]
    fn golden_bytes() {
        for (state, golden) in [
            (golden_small(), GOLDEN_SMALL),
            (golden_compressed(), GOLDEN_COMPRESSED),
        ] {
            let bytes = encode(&state);
            assert_eq!(hex(&bytes), golden, "t-digest body changed");
            let decoded = PercentileState::decode_body(&unhex(golden)).unwrap();
            for q in [0.0, 0.25, 0.5, 0.75, 1.0] {
                assert_eq!(decoded.quantile(q), state.quantile(q), "q = {q}");
            }
            assert_eq!(decoded.size(), state.size());
        }
        assert_eq!(golden_small().quantile(0.0), Some(-9.25));
        assert_eq!(golden_small().quantile(1.0), Some(5.0));
    }

    #[test]
    fn new_validates_size() {
        for size in [0, 9, 1001, u16::MAX] {
            let err = PercentileState::new(size).unwrap_err();
            assert_eq!(err.kind, CoreErrorKind::InvalidAggregation);
            assert!(
                err.message.contains(&format!("got {size}")),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn empty_nulls_and_out_of_range_queries() {
        let mut state = PercentileState::new(DEFAULT_PERCENTILE_SIZE).unwrap();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            state.update(v);
        }
        assert!(state.is_empty());
        assert_eq!(state.quantile(0.5), None);
        let decoded = PercentileState::decode_body(&encode(&state)).unwrap();
        assert!(decoded.is_empty());
        state.update(7.0);
        assert_eq!(state.quantile(0.5), Some(7.0));
        for q in [-0.1, 1.1, f64::NAN] {
            assert_eq!(state.quantile(q), None);
        }
    }

    #[test]
    fn merge_checks_size_and_keeps_empty_as_identity() {
        let mut a = state_of(100, [1.0, 2.0]);
        let err = a.merge(&state_of(200, [3.0])).unwrap_err();
        assert_eq!(err.kind, CoreErrorKind::StateMismatch);
        assert!(err.message.contains("size 200"), "{}", err.message);
        let before = encode(&a);
        a.merge(&PercentileState::new(100).unwrap()).unwrap();
        assert_eq!(encode(&a), before);
        let mut e = PercentileState::new(100).unwrap();
        e.merge(&a).unwrap();
        assert_eq!(e.quantile(0.5), a.quantile(0.5));
    }

    /// Value streams of different shapes, drifting from bucket to bucket.
    fn value(rng: &mut Rng, shape: u64, bucket: usize) -> f64 {
        let drift = bucket as f64 * 0.01;
        match shape {
            0 => rng.unit() * 1000.0 + drift,
            1 => (rng.gaussian() * 0.8 + drift).exp(), // log-normal: a long right tail
            2 => {
                // Two overlapping modes: smooth, but not unimodal.
                if rng.below(5) < 3 {
                    rng.gaussian() + drift
                } else {
                    rng.gaussian() * 1.5 + 2.5
                }
            }
            _ => {
                // Atoms and a gap: a third of the values are integers around 100 (ties),
                // the rest a narrow mode around -50, nothing in between.
                if rng.below(3) == 0 {
                    (rng.gaussian() * 5.0 + 100.0).round()
                } else {
                    rng.gaussian() * 2.0 - 50.0 + drift
                }
            }
        }
    }

    /// Rank error of the returned value: |(#values <= v) / n - q|.
    fn rank_error(sorted: &[f64], v: f64, q: f64) -> f64 {
        let at_or_below = sorted.partition_point(|x| *x <= v);
        let below = sorted.partition_point(|x| *x < v);
        let n = sorted.len() as f64;
        // With ties, any rank in [below, at_or_below] / n is the value's rank.
        let (lo, hi) = (below as f64 / n, at_or_below as f64 / n);
        if q < lo {
            lo - q
        } else if q > hi {
            q - hi
        } else {
            0.0
        }
    }

    /// Merges `buckets` bucket states per trial (shapes taken in turn from `shapes`),
    /// asserts the rank error of every quantile in [`QS`] against `bar` and prints the
    /// mean and worst errors.
    fn run(label: &str, shapes: &[u64], bar: f64, trials: u64, buckets: usize, per_bucket: usize) {
        let mut worst = [0.0f64; QS.len()];
        let mut sum = [0.0f64; QS.len()];
        for trial in 0..trials {
            let mut rng = Rng::new(9000 + trial);
            let shape = shapes[trial as usize % shapes.len()];
            let mut all = Vec::with_capacity(buckets * per_bucket);
            let mut window = PercentileState::new(DEFAULT_PERCENTILE_SIZE).unwrap();
            for b in 0..buckets {
                let mut bucket = PercentileState::new(DEFAULT_PERCENTILE_SIZE).unwrap();
                for _ in 0..per_bucket {
                    let v = value(&mut rng, shape, b);
                    all.push(v);
                    bucket.update(v);
                }
                let bucket = PercentileState::decode_body(&encode(&bucket)).unwrap();
                window.merge(&bucket).unwrap();
            }
            all.sort_by(f64::total_cmp);
            for (i, q) in QS.iter().enumerate() {
                let v = window.quantile(*q).unwrap();
                let err = rank_error(&all, v, *q);
                worst[i] = worst[i].max(err);
                sum[i] += err;
                assert!(
                    err <= bar,
                    "{label}, trial {trial}, q {q}: rank error {:.3}%",
                    100.0 * err
                );
            }
        }
        let line: Vec<String> = QS
            .iter()
            .enumerate()
            .map(|(i, q)| {
                format!(
                    "q{q} mean {:.3}% max {:.3}%",
                    100.0 * sum[i] / trials as f64,
                    100.0 * worst[i]
                )
            })
            .collect();
        println!(
            "t-digest k=200, {label}, {trials} trials, rank error: {}",
            line.join("; ")
        );
    }

    /// Uniform, log-normal and overlapping-bimodal values: the 0.5% bar.
    const SMOOTH: [u64; 3] = [0, 1, 2];

    // The 200-trial runs run in release builds (`npm test` runs `cargo test
    // --release`, ~7 s for all three sketches) and are ignored in debug builds; the quick
    // versions below run the same check on the first 21 trials (7 per smooth shape).
    const QUICK_TRIALS: u64 = 21;
    const FULL_TRIALS: u64 = 200;

    #[test]
    fn accuracy_after_merging_30_buckets() {
        run(
            "smooth, 30 buckets x 300 values",
            &SMOOTH,
            0.005,
            QUICK_TRIALS,
            30,
            300,
        );
    }

    #[test]
    fn accuracy_after_merging_720_buckets() {
        run(
            "smooth, 720 buckets x 20 values",
            &SMOOTH,
            0.005,
            QUICK_TRIALS,
            720,
            20,
        );
    }

    #[test]
    #[cfg_attr(
        debug_assertions,
        ignore = "slow in debug builds; `cargo test --release` (npm test) runs it"
    )]
    fn accuracy_after_merging_30_buckets_200_trials() {
        run(
            "smooth, 30 buckets x 300 values",
            &SMOOTH,
            0.005,
            FULL_TRIALS,
            30,
            300,
        );
    }

    #[test]
    #[cfg_attr(
        debug_assertions,
        ignore = "slow in debug builds; `cargo test --release` (npm test) runs it"
    )]
    fn accuracy_after_merging_720_buckets_200_trials() {
        run(
            "smooth, 720 buckets x 20 values",
            &SMOOTH,
            0.005,
            FULL_TRIALS,
            720,
            20,
        );
    }

    /// The t-digest interpolates inside centroids, so where the data has atoms (many equal
    /// values) or a density cliff next to a gap, the returned value can fall between atoms
    /// and its exact rank misses q by more. This pins how much for such data (the 0.5% bar
    /// does not hold there: up to ~1% measured over 200 trials; a larger `size` shrinks it).
    fn check_atoms_and_gaps(trials: u64) {
        run(
            "atoms+gap, 30 buckets x 300 values",
            &[3],
            0.015,
            trials,
            30,
            300,
        );
        run(
            "atoms+gap, 720 buckets x 20 values",
            &[3],
            0.015,
            trials,
            720,
            20,
        );
    }

    #[test]
    fn accuracy_on_atoms_and_gaps() {
        check_atoms_and_gaps(10);
    }

    #[test]
    #[cfg_attr(
        debug_assertions,
        ignore = "slow in debug builds; `cargo test --release` (npm test) runs it"
    )]
    fn accuracy_on_atoms_and_gaps_200_trials() {
        check_atoms_and_gaps(FULL_TRIALS);
    }

    #[test]
    fn merge_order_changes_little() {
        let mut rng = Rng::new(3);
        let parts: Vec<PercentileState> = (0..40)
            .map(|b| state_of(200, (0..250).map(|_| value(&mut rng, 1, b))))
            .collect();
        let mut forward = PercentileState::new(200).unwrap();
        for p in &parts {
            forward.merge(p).unwrap();
        }
        let mut backward = PercentileState::new(200).unwrap();
        for p in parts.iter().rev() {
            backward.merge(p).unwrap();
        }
        let mut all: Vec<f64> = Vec::new();
        let mut rng = Rng::new(3);
        for b in 0..40 {
            all.extend((0..250).map(|_| value(&mut rng, 1, b)));
        }
        all.sort_by(f64::total_cmp);
        for q in QS {
            let f = rank_error(&all, forward.quantile(q).unwrap(), q);
            let b = rank_error(&all, backward.quantile(q).unwrap(), q);
            assert!(f <= 0.005 && b <= 0.005, "q {q}: {f} {b}");
        }
    }

    #[test]
    fn corrupt_bodies_are_rejected_without_panicking() {
        for state in [
            PercentileState::new(200).unwrap(),
            state_of(200, [2.5]),
            golden_small(),
            golden_compressed(),
        ] {
            let valid = encode(&state);
            let fuzz = fuzz_decode(&valid, |bytes| match PercentileState::decode_body(bytes) {
                Err(err) => {
                    assert_eq!(err.kind, CoreErrorKind::CorruptState, "{err}");
                    false
                }
                Ok(decoded) => {
                    for q in QS {
                        let _ = decoded.quantile(q);
                    }
                    let mut merged = state.clone();
                    if merged.merge(&decoded).is_ok() {
                        let _ = merged.quantile(0.5);
                        let _ = encode(&merged);
                    }
                    true
                }
            });
            println!(
                "t-digest corrupt input, {} valid bytes: {fuzz}",
                valid.len()
            );
        }
    }

    #[test]
    fn bytes_per_state() {
        let mut rng = Rng::new(11);
        for n in [0usize, 1, 100, 10_000] {
            let state = state_of(
                DEFAULT_PERCENTILE_SIZE,
                (0..n).map(|_| value(&mut rng, 1, 0)),
            );
            println!(
                "t-digest k=200, {n} values: {} body bytes",
                encode(&state).len()
            );
        }
    }
}
