//! A counting global allocator: current and peak live heap bytes, resettable, for memory benchmarks.
//!
//! Process RSS ([`crate::mem`]) includes freed-but-retained pages and the mapped model file; the live heap is what
//! one training or inference step really allocates. A binary opts in with
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: tessera_core::alloc::CountingAlloc = tessera_core::alloc::CountingAlloc;
//! ```
//!
//! and a benchmark wraps the step it measures in a [`HeapScope`]. Without the allocator installed every reading is
//! zero and [`installed`] is `false`, so a benchmark can say so instead of printing a wrong figure.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The system allocator with live-byte counting. Install it with `#[global_allocator]`.
pub struct CountingAlloc;

#[inline]
fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

#[inline]
fn shrank(n: usize) {
    CURRENT.fetch_sub(n, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the same layout; the counters never affect allocation.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            INSTALLED.store(true, Ordering::Relaxed);
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            INSTALLED.store(true, Ordering::Relaxed);
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        shrank(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// Whether [`CountingAlloc`] is the global allocator of this process (it has counted at least one allocation).
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Live heap bytes now.
pub fn current_bytes() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// Highest live heap bytes since start or the last [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Resets the peak to the current live heap.
pub fn reset_peak() {
    PEAK.store(CURRENT.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Measures one region: the live heap at its start and the peak reached inside it.
///
/// Scopes do not nest (there is one peak counter): opening a scope resets the peak.
#[derive(Debug)]
pub struct HeapScope {
    start: usize,
}

/// What a [`HeapScope`] measured, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeapReading {
    /// Live heap when the scope opened.
    pub start: usize,
    /// Highest live heap inside the scope.
    pub peak: usize,
    /// Live heap when the reading was taken.
    pub end: usize,
    /// `peak - start`: the most the region held above what was live before it.
    pub peak_growth: usize,
}

impl HeapScope {
    /// Opens a scope (resets the global peak).
    pub fn start() -> Self {
        reset_peak();
        Self {
            start: current_bytes(),
        }
    }

    /// The reading so far.
    pub fn reading(&self) -> HeapReading {
        let peak = peak_bytes().max(self.start);
        HeapReading {
            start: self.start,
            peak,
            end: current_bytes(),
            peak_growth: peak - self.start,
        }
    }
}

#[cfg(test)]
mod tests {
    // The unit-test binary does not install the allocator; the counters still work when driven directly.
    use super::*;

    #[test]
    fn scope_reports_growth_of_the_counters() {
        let scope = HeapScope::start();
        grew(1000);
        shrank(1000);
        let r = scope.reading();
        assert!(r.peak_growth >= 1000, "{r:?}");
    }
}
