//! The service's allocator setting (src/memory.rs): large blocks keep getting
//! their own mappings after one was freed, so freeing them returns the
//! memory instead of fragmenting the heap. Its own test binary: it reads
//! process-wide allocator statistics.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::hint::black_box;

/// Bytes the allocator holds in mappings of their own.
fn mapped_bytes() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    unsafe { libc::mallinfo2() }.hblkhd
}

/// Whether a fresh block of `size` bytes is served by a mapping of its own.
fn gets_its_own_mapping(size: usize) -> bool {
    let before = mapped_bytes();
    let block = black_box(vec![1u8; size]);
    let mapped = mapped_bytes() >= before + size;
    drop(block);
    mapped
}

#[test]
fn large_blocks_are_still_mapped_on_their_own_after_one_was_freed() {
    const SIZE: usize = 4 << 20;
    ews_calendar_replicator::memory::tune_allocator();
    // glibc's default would serve the second and third block from its heap:
    // freeing a mapped block raises the threshold to that block's size.
    for round in 1..=3 {
        assert!(gets_its_own_mapping(SIZE), "block {round} is mapped");
    }
    // Below the threshold, blocks stay on the heap.
    let small = ews_calendar_replicator::memory::MMAP_THRESHOLD_BYTES as usize / 2;
    assert!(!gets_its_own_mapping(small));
}
