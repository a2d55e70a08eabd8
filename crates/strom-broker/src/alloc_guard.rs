//! The process allocator, guarding against one specific denial of service.
//!
//! `kafka-protocol` 0.18 pre-allocates arrays from the element count read off the wire
//! (`Vec::with_capacity(n)` before decoding any element; upstream PRs #152/#161/#200). A few
//! bytes declaring two billion topics therefore ask for hundreds of GiB, and a failed allocation
//! aborts the whole process — every client pays for one bad frame.
//!
//! No real request needs anything near [`HUGE`] (frames are capped by
//! `socket.request.max.bytes`, at most 2 GiB), so requests of that size are served with
//! `MAP_NORESERVE` anonymous memory: address space only, no commitment. The decoder then runs
//! out of input after a few elements, returns an error, the connection is closed, and the
//! mapping is released untouched. Everything smaller goes to the system allocator unchanged.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations of at least this size take the reserve-only path.
const HUGE: usize = 1 << 32;
const PAGE: usize = 4096;

/// The allocator strom's binaries use (declared in this crate, so every binary and test that
/// links the broker gets it).
#[derive(Debug)]
pub(crate) struct GuardedAllocator;

fn is_huge(layout: &Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= PAGE
}

// SAFETY: every method forwards to `System` except for huge layouts, which are served by
// anonymous private mappings (page-aligned, zero-filled, at least `size` bytes) and released
// with `munmap` of the same size; the two paths never mix because `is_huge` depends only on
// the layout, which callers must pass unchanged to `dealloc`.
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            return reserve(layout.size());
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // Anonymous mappings are zero-filled.
            return reserve(layout.size());
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            // SAFETY: `ptr` came from `reserve(layout.size())`.
            unsafe {
                libc::munmap(ptr.cast(), layout.size());
            }
            return;
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` is valid for `layout.align()`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_huge(&layout) && !is_huge(&new_layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_layout` is valid as argued above.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both regions are valid for the copied length and do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

fn reserve(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no preconditions.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

#[global_allocator]
static GLOBAL: GuardedAllocator = GuardedAllocator;

#[cfg(test)]
mod tests {
    #[test]
    fn an_absurd_capacity_does_not_abort() {
        // 2^31 elements of 256 bytes: 512 GiB of address space, never touched.
        let v: Vec<[u8; 256]> = Vec::with_capacity(i32::MAX as usize);
        assert!(v.capacity() >= i32::MAX as usize);
    }

    #[test]
    fn decoding_a_lying_array_count_fails_cleanly() {
        use strom_protocol::kafka_protocol::protocol::Decodable;
        use strom_protocol::messages::MetadataRequest;
        let mut body = bytes::Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0x00]);
        assert!(MetadataRequest::decode(&mut body, 0).is_err());
    }
}
