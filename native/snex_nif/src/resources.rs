//! The two resource types: an interpreter, and an environment living in one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustler::{Env, LocalPid, Monitor, Resource, ResourceArc};
use snex_core::frame::kind;

use crate::interpreter::{CallerMonitor, Interpreter};
use crate::writer::Outgoing;

/// A Python interpreter process, owned by one BEAM process (the `Snex.Interpreter` GenServer).
pub struct InterpreterRes {
    pub state: Arc<Interpreter>,
}

#[rustler::resource_impl]
impl Resource for InterpreterRes {
    const IMPLEMENTS_DOWN: bool = true;

    /// The owner died: stop Python. A caller died: cancel its requests.
    fn down<'a>(&'a self, _env: Env<'a>, pid: LocalPid, _monitor: Monitor) {
        if pid == self.state.owner {
            self.state.shutdown();
        } else {
            self.state.cancel_caller(&pid);
        }
    }
}

impl Drop for InterpreterRes {
    fn drop(&mut self) {
        self.state.shutdown();
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
            destroy_env(&self.interpreter.state, self.id);
        }
    }
}

/// Queues the frame that frees environment `id` in Python.
pub fn destroy_env(interp: &Interpreter, id: i64) {
    if !interp.is_shut_down() {
        interp
            .writer
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

/// A caller monitored by an interpreter resource while its request is pending.
struct Monitoring {
    monitor: Monitor,
    resource: ResourceArc<InterpreterRes>,
}

impl CallerMonitor for Monitoring {
    fn demonitor(self: Box<Self>, env: Option<Env>) {
        self.resource.demonitor(env, &self.monitor);
    }
}

/// Monitors `caller` from `resource` (its death cancels its requests, see
/// [`InterpreterRes::down`]); `None` if it is already gone.
pub fn monitor_caller(
    env: Env,
    resource: &ResourceArc<InterpreterRes>,
    caller: &LocalPid,
) -> Option<Box<dyn CallerMonitor>> {
    env.monitor(resource, caller).map(|monitor| {
        Box::new(Monitoring {
            monitor,
            resource: resource.clone(),
        }) as Box<dyn CallerMonitor>
    })
}
