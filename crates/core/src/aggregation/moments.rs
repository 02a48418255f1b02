//! The running moments behind `var` and `std`.

/// Count, mean and M2 (the sum of squared deviations from the mean) of some values:
/// Welford's update folds one value in, Chan's parallel formula merges two sets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    /// Number of values.
    pub count: u64,
    /// Their mean (0 when there are none).
    pub mean: f64,
    /// Sum of squared deviations from the mean: the variance times `count`.
    pub m2: f64,
}

impl Moments {
    /// The moments of no values.
    pub const EMPTY: Moments = Moments {
        count: 0,
        mean: 0.0,
        m2: 0.0,
    };

    /// Folds in one finite value (Welford). Each M2 increment is the product of two
    /// numbers of the same sign, so M2 never goes negative.
    #[inline]
    pub fn update(&mut self, v: f64) {
        self.count = self.count.saturating_add(1);
        let delta = v - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (v - self.mean);
    }

    /// Merges another set of moments (Chan et al.). The two operands are put in a fixed
    /// order first, so `a.merge(b)` and `b.merge(a)` give the same bits.
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let key = |m: &Moments| (m.count, m.mean.to_bits(), m.m2.to_bits());
        let (a, b) = if key(self) >= key(other) {
            (*self, *other)
        } else {
            (*other, *self)
        };
        let count = a.count.saturating_add(b.count);
        let (na, nb, n) = (a.count as f64, b.count as f64, count as f64);
        let delta = b.mean - a.mean;
        self.count = count;
        self.mean = a.mean + delta * (nb / n);
        self.m2 = a.m2 + b.m2 + delta * delta * (na * nb / n);
    }

    /// The population (M2 / n) or sample (M2 / (n - 1)) variance; `None` with fewer than
    /// two values, for both, since one value says nothing about spread.
    pub fn variance(&self, sample: bool) -> Option<f64> {
        if self.count < 2 {
            return None;
        }
        let divisor = if sample {
            (self.count - 1) as f64
        } else {
            self.count as f64
        };
        Some(self.m2.max(0.0) / divisor)
    }
}
