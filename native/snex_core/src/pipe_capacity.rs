//! Larger pipes for large transfers. A pipe holds 64 KiB by default on Linux, so 10 MB cross
//! in 160 hand-overs between writer and reader; when the two run on different CPUs each
//! hand-over costs a wake-up, and a bigger pipe makes fewer of them (`docs/decisions.md`,
//! "Pipe capacity").
//!
//! Pipe buffers count against a per-user limit (`/proc/sys/fs/pipe-user-pages-soft`, 64 MiB by
//! default); past it, every new pipe of that user, ours or not, gets a single page. So the
//! capacity added to the pipes of all interpreters of this OS process stays within a
//! [`Budget`], and a pipe keeps its default size when the budget is spent.

use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The capacity asked for a pipe to or from Python.
pub const LARGE: usize = 1024 * 1024;

/// The capacity a pipe has by default (on Linux).
pub const DEFAULT: usize = 64 * 1024;

/// Capacity that may be added, over the default, to all pipes at once.
pub struct Budget {
    left: AtomicUsize,
}

impl Budget {
    /// A budget of `bytes`.
    pub const fn new(bytes: usize) -> Budget {
        Budget {
            left: AtomicUsize::new(bytes),
        }
    }

    fn take(&self, bytes: usize) -> bool {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(bytes)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.left.fetch_add(bytes, Ordering::AcqRel);
    }
}

/// The budget of this OS process: a quarter of the default per-user limit.
pub static PROCESS_BUDGET: Budget = Budget::new(16 * 1024 * 1024);

/// Capacity added to a pipe, given back to its budget when dropped (drop it when the pipe is
/// closed).
pub struct Grant {
    budget: &'static Budget,
    bytes: usize,
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

/// Grows `pipe` (either end) to `capacity` bytes if `budget` allows it and the system agrees;
/// `None` leaves the pipe as it was. Only on Linux; elsewhere pipes keep their size.
pub fn enlarge(pipe: &File, capacity: usize, budget: &'static Budget) -> Option<Grant> {
    let extra = capacity.checked_sub(DEFAULT).filter(|&n| n > 0)?;
    if !budget.take(extra) {
        return None;
    }
    let grant = Grant {
        budget,
        bytes: extra,
    };
    set_capacity(pipe, capacity).then_some(grant)
}

#[cfg(target_os = "linux")]
fn set_capacity(pipe: &File, capacity: usize) -> bool {
    use nix::fcntl::{fcntl, FcntlArg};
    let Ok(size) = i32::try_from(capacity) else {
        return false;
    };
    fcntl(pipe, FcntlArg::F_SETPIPE_SZ(size)).is_ok_and(|got| got as usize >= capacity)
}

#[cfg(not(target_os = "linux"))]
fn set_capacity(_pipe: &File, _capacity: usize) -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use nix::fcntl::{fcntl, FcntlArg};

    fn capacity(f: &File) -> usize {
        fcntl(f, FcntlArg::F_GETPIPE_SZ).unwrap() as usize
    }

    #[test]
    fn pipes_grow_within_the_budget_and_give_it_back() {
        static BUDGET: Budget = Budget::new(LARGE * 3 / 2);
        let (r1, _w1) = std::io::pipe().unwrap();
        let (r2, _w2) = std::io::pipe().unwrap();
        let (r1, r2) = (
            File::from(std::os::fd::OwnedFd::from(r1)),
            File::from(std::os::fd::OwnedFd::from(r2)),
        );
        let grant = enlarge(&r1, LARGE, &BUDGET).expect("the first pipe grows");
        assert_eq!(capacity(&r1), LARGE);
        // Not enough budget left for a second one.
        assert!(enlarge(&r2, LARGE, &BUDGET).is_none());
        assert_eq!(capacity(&r2), DEFAULT);
        drop(grant);
        assert!(enlarge(&r2, LARGE, &BUDGET).is_some());
        assert_eq!(capacity(&r2), LARGE);
        // Nothing to add: no grant, no change.
        assert!(enlarge(&r1, DEFAULT, &BUDGET).is_none());
    }
}
