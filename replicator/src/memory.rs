//! Process-wide allocator settings of the service binary.
//!
//! glibc serves a freed block of more than 128 KiB from its heap the next
//! time (the mmap threshold rises to the size of the largest block freed).
//! A cycle frees several such blocks: the UCServer's user listing (megabytes
//! of JSON at 10,000 users) and each Exchange answer (about 1 MB for 100
//! mailboxes). Served from the heap, they fragment it, and the freed space
//! between live blocks stays resident: at 10,000 mailboxes half of the peak
//! RSS was free heap (README, Performance). With a fixed threshold they get
//! their own mappings, which go back to the system when freed.

/// Blocks from this size on are mapped on their own (glibc's default
/// starting value, kept fixed).
pub const MMAP_THRESHOLD_BYTES: i32 = 128 * 1024;

/// Applies the settings; call once at the start of `main`. Does nothing
/// where the allocator is not glibc's.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's parameters; setting
    // M_MMAP_THRESHOLD is allowed at any time and returns 0 on a bad value.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}
