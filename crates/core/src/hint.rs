//! Hints to the CPU that change how fast code runs, never what it computes.

/// Asks the CPU to start loading the cache line holding `value`, so that a read a little
/// later finds it there. Used where a loop knows which random addresses it will touch a
/// few iterations ahead (hash slots, boxed states read in key order).
#[inline]
pub fn prefetch<T: ?Sized>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: SSE is part of x86-64's baseline, and a prefetch never faults or reads
    // into the program; the address comes from a reference, so it is valid anyway.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
