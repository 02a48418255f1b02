//! The state of `vector_sum` and `vector_mean`.

/// Element-wise sum and count of vectors of one dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorState {
    pub(crate) dim: u32,
    pub(crate) count: u64,
    /// Empty until the first vector arrives (so an empty state costs no allocation),
    /// then exactly `dim` long.
    pub(crate) sum: Vec<f64>,
}

impl VectorState {
    pub(crate) fn new(dim: u32) -> Self {
        Self {
            dim,
            count: 0,
            sum: Vec::new(),
        }
    }

    /// The dimension every vector must have.
    pub fn dim(&self) -> u32 {
        self.dim
    }

    /// How many vectors were folded in.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The element-wise sum: empty when no vector was folded in, else `dim` long.
    pub fn sum(&self) -> &[f64] {
        &self.sum
    }

    /// Folds in one vector whose length the caller has checked; one with a non-finite
    /// element is null and skipped whole.
    pub(crate) fn add(&mut self, values: &[f64]) {
        debug_assert_eq!(values.len(), self.dim as usize);
        if values.iter().any(|x| !x.is_finite()) {
            return;
        }
        if self.count == 0 {
            self.sum.clear();
            self.sum.extend_from_slice(values);
        } else {
            for (s, v) in self.sum.iter_mut().zip(values) {
                *s += v;
            }
        }
        self.count = self.count.saturating_add(1);
    }

    /// Merges a state of the same dimension (checked by the caller).
    pub(crate) fn merge(&mut self, other: &VectorState) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.sum.clone_from(&other.sum);
        } else {
            for (s, v) in self.sum.iter_mut().zip(&other.sum) {
                *s += v;
            }
        }
        self.count = self.count.saturating_add(other.count);
    }
}
