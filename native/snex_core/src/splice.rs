//! Handing large byte ranges to a pipe by reference (Linux `vmsplice`) instead of copying them.
//!
//! A spliced page is read by the other end from the sender's own memory, so that memory must
//! stay alive and unchanged until the reader has copied it out. The writer guarantees it with
//! one rule instead of a hand-shake: after the last spliced byte of a frame, at least the
//! pipe's capacity is written by copy. A pipe of capacity `C` holds `C / PAGE_SIZE` buffers,
//! and a copied page fills one buffer, so the copied tail fits only once every spliced buffer
//! before it has been read and released: when the frame is completely written, nothing of the
//! sender's memory is left in the pipe, and the frame may be dropped as before.

use std::fs::File;
use std::io::{self, IoSlice};
use std::ops::Range;

/// Spliced ranges shorter than this are copied: a splice pays off only for many pages.
pub const MIN_SPLICE: usize = 64 * 1024;

/// The capacity of `pipe` in bytes, if it is a pipe that takes spliced pages (Linux); `None`
/// otherwise, and nothing is spliced.
pub fn capacity(pipe: &File) -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        use nix::fcntl::{fcntl, FcntlArg};
        fcntl(pipe, FcntlArg::F_GETPIPE_SZ)
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n > 0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pipe;
        None
    }
}

/// The part of the byte range `part` (offsets in a stream that ends at `end`) that may be
/// spliced into a pipe of `capacity` bytes: what lies before the stream's last `capacity`
/// bytes, if it is at least [`MIN_SPLICE`] long.
pub fn spliceable(part: Range<usize>, end: usize, capacity: usize) -> Option<Range<usize>> {
    let cut = end.saturating_sub(capacity).min(part.end);
    (cut >= part.start && cut - part.start >= MIN_SPLICE).then_some(part.start..cut)
}

/// One non-blocking `vmsplice` of `slices` into `pipe`: how many bytes the pipe took.
/// `WouldBlock` when it is full; `Unsupported` where there is no `vmsplice`.
pub fn splice(pipe: &File, slices: &[IoSlice]) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        use nix::fcntl::{vmsplice, SpliceFFlags};
        vmsplice(pipe, slices, SpliceFFlags::SPLICE_F_NONBLOCK).map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (pipe, slices);
        Err(io::ErrorKind::Unsupported.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_precedes_the_last_capacity_bytes_is_spliceable() {
        let c = 1 << 20;
        // A 10 MB buffer at the end of a frame: all but its last MiB.
        assert_eq!(
            spliceable(100..10_000_100, 10_000_100, c),
            Some(100..10_000_100 - c)
        );
        // A buffer followed by more than the capacity: all of it.
        assert_eq!(spliceable(0..200_000, 200_000 + c, c), Some(0..200_000));
        // Too little left before the tail.
        assert_eq!(spliceable(0..c + 1000, c + 1000, c), None);
        assert_eq!(spliceable(0..c, c, c), None);
        assert_eq!(spliceable(5..10, 3, c), None);
    }
}
