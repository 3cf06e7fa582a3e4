//! How much memory a piece of work takes, two ways: the Rust heap, counted exactly by a global
//! allocator the binary installs ([`Counting`]), and the process's peak resident set (VmHWM
//! in `/proc/self/status`), which also sees what C libraries allocate (libpq, libmysqlclient,
//! SQLite's page cache) but only in whole pages, and not memory the C allocator reuses.
//!
//! Counting is off until [`Counting::start`], so the other workloads pay one relaxed load per
//! allocation and share no counter between their threads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

/// The system allocator, counting the bytes in use while switched on.
pub struct Counting {
    on: AtomicBool,
    /// Bytes allocated minus bytes freed since [`Counting::start`] (negative when memory
    /// allocated before is freed).
    current: AtomicIsize,
    /// The highest `current` since [`Counting::start`] or [`Counting::reset_peak`].
    peak: AtomicIsize,
}

impl Counting {
    pub const fn new() -> Self {
        Counting {
            on: AtomicBool::new(false),
            current: AtomicIsize::new(0),
            peak: AtomicIsize::new(0),
        }
    }

    /// Counts from zero.
    pub fn start(&self) {
        self.current.store(0, Relaxed);
        self.peak.store(0, Relaxed);
        self.on.store(true, Relaxed);
    }

    /// Stops counting.
    pub fn stop(&self) {
        self.on.store(false, Relaxed);
    }

    /// Bytes in use above the level at [`Counting::start`].
    pub fn current(&self) -> isize {
        self.current.load(Relaxed)
    }

    /// The highest [`Counting::current`] since the last start or reset.
    pub fn peak(&self) -> isize {
        self.peak.load(Relaxed)
    }

    /// Makes the peak the current level: what follows is measured from here.
    pub fn reset_peak(&self) {
        self.peak.store(self.current(), Relaxed);
    }

    fn grew(&self, bytes: usize) {
        if self.on.load(Relaxed) {
            let now = self.current.fetch_add(bytes as isize, Relaxed) + bytes as isize;
            self.peak.fetch_max(now, Relaxed);
        }
    }

    fn shrank(&self, bytes: usize) {
        if self.on.load(Relaxed) {
            self.current.fetch_sub(bytes as isize, Relaxed);
        }
    }
}

impl Default for Counting {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            self.grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            self.grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        self.shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            self.shrank(layout.size());
            self.grew(new_size);
        }
        p
    }
}

/// The process's resident set now (`VmRSS`) and its peak (`VmHWM`), in bytes; `None` where
/// `/proc/self/status` does not say (not Linux).
pub fn rss() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_rss(&status)
}

/// Makes the peak resident set the current one (`echo 5 > /proc/self/clear_refs`, Linux 4.0+);
/// `false` when the kernel does not allow it.
pub fn reset_rss_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `(VmRSS, VmHWM)` in bytes from the text of `/proc/self/status`.
fn parse_rss(status: &str) -> Option<(u64, u64)> {
    let kib = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    };
    Some((kib("VmRSS:")?, kib("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_while_on() {
        let c = Counting::new();
        c.grew(100);
        assert_eq!((c.current(), c.peak()), (0, 0));
        c.start();
        c.grew(100);
        c.grew(50);
        c.shrank(120);
        assert_eq!((c.current(), c.peak()), (30, 150));
        c.reset_peak();
        c.grew(10);
        assert_eq!((c.current(), c.peak()), (40, 40));
        c.shrank(100);
        assert_eq!((c.current(), c.peak()), (-60, 40));
        c.stop();
        c.grew(1000);
        assert_eq!(c.current(), -60);
    }

    #[test]
    fn allocations_go_through_the_system() {
        let c = Counting::new();
        c.start();
        let layout = Layout::from_size_align(64, 8).expect("layout");
        unsafe {
            let p = c.alloc(layout);
            assert!(!p.is_null());
            let p = c.realloc(p, layout, 256);
            assert!(!p.is_null());
            assert_eq!(c.current(), 256);
            c.dealloc(p, Layout::from_size_align(256, 8).expect("layout"));
        }
        assert_eq!((c.current(), c.peak()), (0, 256));
    }

    #[test]
    fn reads_proc_status() {
        let text = "Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\n";
        assert_eq!(parse_rss(text), Some((1024 * 1024, 2048 * 1024)));
        assert_eq!(parse_rss("Name: x\n"), None);
    }
}
