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

/// Asks the kernel to back the pages of `memory` (not yet touched) with huge pages where
/// it can. A hash table of many megabytes read at random costs a TLB miss per access with
/// 4 KiB pages; with 2 MiB pages its translations fit the TLB. Call it on a fresh
/// allocation before writing to it: pages already faulted in stay small. Does nothing
/// outside Linux, or when the kernel refuses (transparent huge pages set to `never`).
pub fn huge_pages<T>(memory: &mut [std::mem::MaybeUninit<T>]) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = memory.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(memory);
        let (start, end) = (start.next_multiple_of(PAGE), end - end % PAGE);
        if end > start {
            #[allow(unsafe_code)]
            // SAFETY: madvise only changes how the kernel backs the whole pages inside
            // `memory`, which this borrow owns; it never reads or writes them, and a
            // failure (an old kernel, THP disabled) leaves them as they were.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = memory;
}
