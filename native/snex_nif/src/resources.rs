//! The two resource types: an interpreter, and an environment living in one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustler::{Env, LocalPid, Monitor, Resource, ResourceArc};
use snex_core::frame::kind;

use crate::core::Core;
use crate::writer::Outgoing;

/// A Python interpreter process, owned by one BEAM process (the `Snex.Interpreter` GenServer).
pub struct InterpreterRes {
    pub core: Arc<Core>,
}

#[rustler::resource_impl]
impl Resource for InterpreterRes {
    const IMPLEMENTS_DOWN: bool = true;

    /// The owner died: stop Python. A caller died: cancel its requests.
    fn down<'a>(&'a self, _env: Env<'a>, pid: LocalPid, _monitor: Monitor) {
        if pid == self.core.owner {
            self.core.shutdown();
        } else {
            self.core.cancel_caller(&pid);
        }
    }
}

impl Drop for InterpreterRes {
    fn drop(&mut self) {
        self.core.shutdown();
    }
}

/// A Python environment (a namespace) in an interpreter. When the last reference is garbage
/// collected, Python is told to free it, unless GC was disabled for it.
pub struct EnvRes {
    pub id: i64,
    pub interpreter: ResourceArc<InterpreterRes>,
    gc: AtomicBool,
    destroyed: AtomicBool,
}

#[rustler::resource_impl]
impl Resource for EnvRes {}

impl EnvRes {
    pub fn new(id: i64, interpreter: ResourceArc<InterpreterRes>) -> Self {
        EnvRes {
            id,
            interpreter,
            gc: AtomicBool::new(true),
            destroyed: AtomicBool::new(false),
        }
    }

    /// Keeps the environment alive after the last reference is gone.
    pub fn disable_gc(&self) {
        self.gc.store(false, Ordering::Release);
    }

    /// Frees the environment in Python now. Idempotent.
    pub fn destroy(&self) {
        if !self.destroyed.swap(true, Ordering::AcqRel) {
            destroy_env(&self.interpreter.core, self.id);
        }
    }
}

/// Queues the frame that frees environment `id` in Python.
pub fn destroy_env(core: &Core, id: i64) {
    if !core.is_shut_down() {
        core.writer
            .send(Outgoing::empty(kind::DESTROY_ENV, id as u64));
    }
}

impl Drop for EnvRes {
    fn drop(&mut self) {
        if self.gc.load(Ordering::Acquire) {
            self.destroy();
        }
    }
}
