//! Starting an interpreter: spawning Python (through the process helper, see
//! [`snex_core::process`]) and the three threads of its life: the writer (requests into the
//! pipe), the reader (Python's frames out of it, see [`crate::reader`]) and the reaper, which
//! waits for Python's exit, fails what is pending and tells the owner why Python is gone.

use std::sync::{Arc, OnceLock, Weak};

use rustler::{Encoder, LocalPid, OwnedEnv};
use snex_core::pipe_capacity::{self, Grant, PROCESS_BUDGET};
use snex_core::process::{self, SpawnSpec, Spawned};

use crate::interpreter::{Interpreter, Transport};
use crate::loss::Loss;
use crate::reader;
use crate::writer;

/// Spawns Python and its reader, writer and reaper threads.
pub fn start(
    spec: &SpawnSpec,
    owner: LocalPid,
    transport: Transport,
    default_encoding: u32,
    capture_output: bool,
) -> std::io::Result<Arc<Interpreter>> {
    let spawned = process::spawn(spec)?;
    let pipe_grants = grow_pipes(&spawned, &transport);
    // The writer starts before the interpreter state exists; it finds it here when a write
    // fails.
    let slot: Arc<OnceLock<Weak<Interpreter>>> = Arc::new(OnceLock::new());
    let failed_slot = slot.clone();
    let writer = writer::start(
        spawned.to_child,
        transport.port_limits,
        transport.msgq_limits,
        move |e| {
            if let Some(interp) = failed_slot.get().and_then(Weak::upgrade) {
                interp.transport_lost(Loss::write_failed(&e));
            }
        },
    )?;
    let interp = Arc::new(Interpreter::new(
        owner,
        spawned.handle.clone(),
        writer,
        transport,
        default_encoding,
        capture_output,
    ));
    let _ = slot.set(Arc::downgrade(&interp));
    reader::start(interp.clone(), spawned.from_child)?;
    let reaper = interp.clone();
    std::thread::Builder::new()
        .name("snex-reaper".into())
        .spawn(move || {
            let code = reaper.child.wait();
            reaper.writer.close();
            // Python is gone and the pipe to it closed: their capacity goes back to the budget
            // (the interpreter itself may live on while envs refer to it).
            drop(pipe_grants);
            reaper.fail_all_pending();
            // Killed because its transport was lost: that is the reason to report.
            let loss = if reaper.child.killed() {
                reaper.loss()
            } else {
                None
            };
            let mut env = OwnedEnv::new();
            let _ = env.send_and_clear(&reaper.owner, |env| {
                let reason = match &loss {
                    Some(loss) => loss.encode(env),
                    None => code.encode(env),
                };
                (crate::atoms::snex_exit(), reason).encode(env)
            });
        })?;
    Ok(interp)
}

/// Grows both pipes (see [`pipe_capacity`]): the one from Python to
/// [`pipe_capacity::LARGE`]; the one to Python as well, but to at most an eighth of the high
/// watermark of `busy_limits_port` (rounded down to a power of two, as the kernel sizes
/// pipes), since what the pipe holds is not seen by that limit.
fn grow_pipes(spawned: &Spawned, transport: &Transport) -> Vec<Grant> {
    let to_python = match transport.port_limits {
        None => pipe_capacity::LARGE,
        Some((_, high)) => match high / 8 {
            0 => 0,
            eighth => (1 << eighth.ilog2()).min(pipe_capacity::LARGE),
        },
    };
    [
        pipe_capacity::enlarge(&spawned.from_child, pipe_capacity::LARGE, &PROCESS_BUDGET),
        pipe_capacity::enlarge(&spawned.to_child, to_python, &PROCESS_BUDGET),
    ]
    .into_iter()
    .flatten()
    .collect()
}
