//! Losing the transport while Python still runs.
//!
//! End of file on the pipe from Python, a failed write into the pipe to Python (`EPIPE`), or
//! bytes from Python that are not a frame: the transport is gone, and an interpreter that
//! cannot be talked to must not linger. A normal exit of Python closes its pipes too, so after
//! end of file or a failed write Python gets [`CLOSED_GRACE`] to exit on its own (its exit
//! status is then reported as usual); a protocol error kills it at once. Killing it (and its
//! process group) makes the reaper report the loss as the exit reason:
//! `{:transport_closed, message}` or `{:protocol_error, message}`.

use std::io;
use std::time::Duration;

use rustler::{Encoder, Env, Term};
use snex_core::frame::FrameError;
use snex_core::process::ChildHandle;

use crate::atoms;

/// How long Python may take to exit on its own after its transport was closed.
pub const CLOSED_GRACE: Duration = Duration::from_millis(1000);

/// Why the transport to Python is gone.
#[derive(Debug, Clone)]
pub enum Loss {
    /// The pipe from Python reached end of file, or writing into the pipe to Python failed.
    Closed(String),
    /// Python wrote something that is not a frame.
    Protocol(String),
}

impl Loss {
    /// End of file on the pipe from Python, between frames.
    pub fn eof() -> Loss {
        Loss::Closed("end of file on the pipe from Python".into())
    }

    /// A failed write into the pipe to Python.
    pub fn write_failed(e: &io::Error) -> Loss {
        Loss::Closed(format!("writing into the pipe to Python failed: {e}"))
    }

    /// The reader could not read a frame.
    pub fn read_failed(e: &FrameError) -> Loss {
        match e {
            FrameError::Truncated => {
                Loss::Closed("the pipe from Python ended in the middle of a frame".into())
            }
            FrameError::Io(e) => Loss::Closed(format!("reading the pipe from Python failed: {e}")),
            other => Loss::Protocol(other.to_string()),
        }
    }

    /// How long Python may take to exit on its own before it is killed.
    pub fn grace(&self) -> Duration {
        match self {
            Loss::Closed(_) => CLOSED_GRACE,
            Loss::Protocol(_) => Duration::ZERO,
        }
    }

    /// `{:transport_closed, message}` or `{:protocol_error, message}`.
    pub fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            Loss::Closed(msg) => (atoms::transport_closed(), msg.as_str()).encode(env),
            Loss::Protocol(msg) => (atoms::protocol_error(), msg.as_str()).encode(env),
        }
    }
}

/// Kills the process group of `child` unless it exits within `grace`, on a thread of its own
/// (or at once if no thread can be started).
pub fn kill_after(child: &ChildHandle, grace: Duration) {
    if grace.is_zero() {
        child.kill();
        return;
    }
    let waiter = child.clone();
    let spawned = std::thread::Builder::new()
        .name("snex-lost".into())
        .spawn(move || {
            if waiter.wait_timeout(grace).is_none() {
                waiter.kill();
            }
        });
    if spawned.is_err() {
        child.kill();
    }
}
