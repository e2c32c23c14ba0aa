//! The writer of an interpreter's pipe to Python (see [`snex_core::writer`]): frames are
//! written directly by the submitting caller when nothing is queued, else by the writer
//! thread. Callers waiting for a busy limit are BEAM processes, told with `:snex_writable`.

use std::fs::File;
use std::io;

use rustler::{Encoder, LocalPid, OwnedEnv};

pub use snex_core::writer::{Limits, Outgoing};

/// An interpreter's writer; its waiters are the suspended callers.
pub type Writer = snex_core::writer::Writer<LocalPid>;

/// Starts the writer of `pipe` with the busy limits of the bytes not yet accepted by the pipe
/// (`port_limits`) and of those not yet taken by the writer thread (`msgq_limits`). `failed`
/// is called on the writer thread if writing into the pipe fails.
pub fn start(
    pipe: File,
    port_limits: Limits,
    msgq_limits: Limits,
    failed: impl FnOnce(io::Error) + Send + 'static,
) -> io::Result<Writer> {
    let mut env = OwnedEnv::new();
    let notify = move |pid: LocalPid| {
        let _ = env.send_and_clear(&pid, |env| crate::atoms::snex_writable().encode(env));
    };
    Writer::start_watched(pipe, port_limits, msgq_limits, notify, failed)
}
