//! A global allocator wrapper that records the largest single allocation made by each thread,
//! so the fuzz oracles can assert that no allocation is sized by a length the input merely
//! declared. It measures only in binaries that install it (`#[global_allocator]`: the fuzz
//! targets and `tests/fuzz_corpus.rs`); elsewhere [`largest_allocation`] stays 0 and the
//! allocation checks pass vacuously.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// [`System`], plus a per-thread record of the largest block requested.
pub struct TrackingAlloc;

thread_local! {
    // Const-initialised and without Drop: reading it never allocates or registers a
    // destructor, so the allocator itself may use it.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with` fails only while the thread is being torn down; nothing to record then.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; `note` neither allocates nor unwinds.
unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Forgets this thread's largest allocation so far.
pub fn reset_largest_allocation() {
    LARGEST.with(|l| l.set(0));
}

/// The largest block this thread requested since [`reset_largest_allocation`] (0 when
/// [`TrackingAlloc`] is not the global allocator).
pub fn largest_allocation() -> usize {
    LARGEST.with(Cell::get)
}
