//! token-handler's memory, where it needs `unsafe`: the global allocator (this file) and the
//! start-up code pages given back once the proxy serves ([`pages`]).
//!
//! The allocator is mimalloc, asked for a plain block whenever the alignment Rust wants is one
//! every mimalloc block already has.
//!
//! The `mimalloc` crate's `MiMalloc` passes every allocation to `mi_malloc_aligned(size, align)`.
//! mimalloc serves that from its fast path only for blocks of up to 1 KiB; anything larger (the
//! 8 KiB read buffers hyper allocates per request on each connection, a request's future) took
//! the generic aligned path, which over-allocates and adjusts: ~200 instructions a call where
//! `mi_malloc` takes a fraction of that, 0.75–0.9k instructions per proxied request in all
//! (BENCHMARKS.md). Every mimalloc block is aligned to a machine word at least (its size classes
//! are whole words; larger blocks are page-aligned), so a layout whose alignment is at most a
//! word gets `mi_malloc`, `mi_zalloc` and `mi_realloc`; any other goes through the aligned calls
//! as before. Built with `no_thp`, as the product was (transparent huge pages on mimalloc's
//! arenas cost 7 MB of RSS for nothing measurable).

#![no_std]

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use libmimalloc_sys as ffi;

pub mod pages;

/// The alignment every mimalloc block has.
const WORD: usize = core::mem::size_of::<usize>();

/// The allocator: `#[global_allocator] static A: token_handler_alloc::Mimalloc = Mimalloc;`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mimalloc;

// SAFETY (all four): the pointers come from, and go back to, mimalloc's own allocation calls;
// a plain block satisfies any alignment up to `WORD`, and larger ones use mimalloc's aligned
// calls, which guarantee them. `mi_free` takes a block from any of these calls.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: see above.
            unsafe { ffi::mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: see above.
            unsafe { ffi::mi_malloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: see above.
            unsafe { ffi::mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: see above.
            unsafe { ffi::mi_zalloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: see above.
        unsafe { ffi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: see above.
            unsafe { ffi::mi_realloc(ptr.cast::<c_void>(), new_size).cast() }
        } else {
            // SAFETY: see above.
            unsafe {
                ffi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// Sizes around mimalloc's size classes and its 1 KiB small-block limit, up to a huge block.
    const SIZES: [usize; 14] = [
        1,
        7,
        8,
        9,
        24,
        100,
        1000,
        1024,
        1025,
        4096,
        8192,
        40_000,
        300_000,
        5 << 20,
    ];

    #[test]
    fn every_alignment_is_honoured_and_the_bytes_are_kept() {
        for &size in &SIZES {
            for shift in 0..13 {
                let layout = Layout::from_size_align(size, 1 << shift).expect("layout");
                let aligned =
                    |p: *mut u8| !p.is_null() && (p as usize).is_multiple_of(layout.align());
                // SAFETY: non-zero sizes; each block is used within its size and freed once,
                // with the layout it has at that moment.
                unsafe {
                    let mut p = Mimalloc.alloc(layout);
                    assert!(aligned(p), "{layout:?}");
                    p.write_bytes(0xA5, size);
                    let z = Mimalloc.alloc_zeroed(layout);
                    assert!(aligned(z), "zeroed {layout:?}");
                    assert!((0..size).all(|i| *z.add(i) == 0), "zeroed {layout:?}");
                    Mimalloc.dealloc(z, layout);
                    for new_size in [size / 2 + 1, size * 3] {
                        let kept = size.min(new_size);
                        let q = Mimalloc.realloc(p, layout, new_size);
                        assert!(aligned(q), "realloc {layout:?} to {new_size}");
                        assert!((0..kept).all(|i| *q.add(i) == 0xA5), "realloc {layout:?}");
                        let grown = Layout::from_size_align(new_size, layout.align()).expect("l");
                        p = Mimalloc.realloc(q, grown, size);
                        assert!(aligned(p), "realloc back {layout:?}");
                        assert!((0..kept).all(|i| *p.add(i) == 0xA5), "realloc back");
                        p.write_bytes(0xA5, size);
                    }
                    Mimalloc.dealloc(p, layout);
                }
            }
        }
    }

    #[test]
    fn many_small_blocks_are_distinct_and_aligned() {
        let layout = Layout::from_size_align(24, 8).expect("layout");
        let mut blocks = Vec::new();
        for i in 0..10_000u32 {
            // SAFETY: freed below with the same layout.
            let p = unsafe { Mimalloc.alloc(layout) };
            assert!((p as usize).is_multiple_of(8));
            // SAFETY: 24 bytes were allocated.
            unsafe { p.cast::<u32>().write(i) };
            blocks.push(p);
        }
        for (i, &p) in blocks.iter().enumerate() {
            // SAFETY: written above; then freed once.
            unsafe {
                assert_eq!(p.cast::<u32>().read(), i as u32);
                Mimalloc.dealloc(p, layout);
            }
        }
    }
}
