//! One interpreter's shared state: the child process, the writer, the table of requests
//! waiting for a reply, the turn of callers with `parallelism: false`, cancellation and
//! shutdown. Its threads are started by [`crate::lifecycle`]; it knows nothing of them, nor of
//! the resources that hold it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustler::{Env, LocalPid, OwnedEnv};
use snex_core::frame::kind;
use snex_core::interrupt::Interrupter;
use snex_core::process::ChildHandle;

use crate::loss::{self, Loss};
use crate::writer::{Limits, Outgoing, Writer};

/// A request waiting for its reply.
pub struct Pending {
    /// Who gets the reply.
    pub caller: LocalPid,
    /// Holds the reply tag now and the reply later; the reply is built and sent from here.
    pub env: OwnedEnv,
    /// The tag the caller waits for (`{tag, reply}`), saved in `env`.
    pub tag: rustler::env::SavedTerm,
    /// Monitor of the caller (to cancel its requests if it dies).
    pub monitor: Option<Box<dyn CallerMonitor>>,
}

/// A monitor of a caller, held while its request is pending (implemented by the resource
/// that monitors, see [`crate::resources`]).
pub trait CallerMonitor: Send {
    /// Removes the monitor: `env` is the calling NIF's env, or `None` on one of our own
    /// threads (as `enif_demonitor_process` requires).
    fn demonitor(self: Box<Self>, env: Option<Env>);
}

/// State shared by the resource, the reader, the writer and the reaper.
pub struct Interpreter {
    /// The interpreter process (the GenServer) that receives exits and Python's requests.
    pub owner: LocalPid,
    pub child: ChildHandle,
    pub writer: Writer,
    /// Signals Python when a request is cancelled (see [`snex_core::interrupt`]).
    pub interrupter: Arc<Interrupter>,
    /// The interpreter's encoding options, packed (see `EncodeOpts::resolve`).
    pub default_encoding: u32,
    /// The interpreter's `capture_output` (what requests print goes to their callers).
    pub capture_output: bool,
    pending: Mutex<HashMap<u64, Pending>>,
    /// With `parallelism: false`, the lock a caller holds while it encodes and queues.
    submit_lock: Option<Mutex<()>>,
    /// Callers encoding and queueing right now, and the most ever seen at once.
    submitting: AtomicUsize,
    max_submitting: AtomicUsize,
    next_request: AtomicU64,
    next_env: AtomicI64,
    shut_down: AtomicBool,
    /// How the transport was lost, if it was (the first report wins; see [`crate::loss`]).
    loss: Mutex<Option<Loss>>,
}

/// How long a stopping Python gets after its pipe is closed, and again after `SIGTERM`.
pub const STOP_GRACE: Duration = Duration::from_millis(1000);

/// Transport settings of an interpreter (`:port_opts`).
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    /// Limits of the bytes not yet accepted by the pipe.
    pub port_limits: Limits,
    /// Limits of the bytes not yet taken by the writer thread.
    pub msgq_limits: Limits,
    /// `false`: one caller at a time encodes and queues.
    pub parallelism: bool,
}

/// A caller's permission to encode and queue a frame; ends when dropped.
pub struct Turn<'a> {
    interp: &'a Interpreter,
    _lock: Option<MutexGuard<'a, ()>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.interp.submitting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Interpreter {
    /// The state of an interpreter whose process is `child`, with its `writer`.
    pub fn new(
        owner: LocalPid,
        child: ChildHandle,
        writer: Writer,
        transport: Transport,
        default_encoding: u32,
        capture_output: bool,
    ) -> Interpreter {
        Interpreter {
            owner,
            interrupter: Arc::new(Interrupter::new(child.pgid())),
            child,
            writer,
            default_encoding,
            capture_output,
            pending: Mutex::new(HashMap::new()),
            submit_lock: (!transport.parallelism).then(|| Mutex::new(())),
            submitting: AtomicUsize::new(0),
            max_submitting: AtomicUsize::new(0),
            next_request: AtomicU64::new(1),
            next_env: AtomicI64::new(1),
            shut_down: AtomicBool::new(false),
            loss: Mutex::new(None),
        }
    }

    /// How the transport was lost, if it was.
    pub fn loss(&self) -> Option<Loss> {
        self.loss.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The transport is gone (end of file or a protocol error on the reader, a failed write)
    /// while Python may still run: unless the interpreter is being shut down, Python is killed
    /// with its process group if it does not exit on its own within the loss's grace, and the
    /// reaper then reports the loss as the exit reason. Only the first report counts.
    pub fn transport_lost(&self, loss: Loss) {
        if self.is_shut_down() {
            return;
        }
        let grace = {
            let mut slot = self.loss.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_some() {
                return;
            }
            let grace = loss.grace();
            *slot = Some(loss);
            grace
        };
        loss::kill_after(&self.child, grace);
    }

    /// Starts a caller's turn to encode and queue. With `parallelism: false` only one caller
    /// has a turn at a time: `None` means another one has it (never blocks).
    pub fn try_turn(&self) -> Option<Turn<'_>> {
        let lock = match &self.submit_lock {
            Some(m) => match m.try_lock() {
                Ok(guard) => Some(guard),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => return None,
            },
            None => None,
        };
        Some(self.turn_with(lock))
    }

    /// Like [`Interpreter::try_turn`], but waits for the turn. Blocks: call it only on a dirty I/O
    /// scheduler or a thread of our own.
    pub fn wait_turn(&self) -> Turn<'_> {
        let lock = self
            .submit_lock
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()));
        self.turn_with(lock)
    }

    fn turn_with<'a>(&'a self, lock: Option<MutexGuard<'a, ()>>) -> Turn<'a> {
        let now = self.submitting.fetch_add(1, Ordering::AcqRel) + 1;
        self.max_submitting.fetch_max(now, Ordering::AcqRel);
        Turn {
            interp: self,
            _lock: lock,
        }
    }

    /// The most callers ever seen encoding and queueing at the same time.
    pub fn max_concurrent_submits(&self) -> usize {
        self.max_submitting.load(Ordering::Acquire)
    }

    /// A fresh request id.
    pub fn next_request_id(&self) -> u64 {
        self.next_request.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh environment id.
    pub fn next_env_id(&self) -> i64 {
        self.next_env.fetch_add(1, Ordering::Relaxed)
    }

    /// How many requests are waiting for their reply.
    pub fn pending_count(&self) -> usize {
        self.pending().len()
    }

    /// How many request ids were handed out: every request ever submitted (the init script's
    /// included), whether or not it was answered.
    pub fn submitted_count(&self) -> u64 {
        self.next_request.load(Ordering::Relaxed) - 1
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `pending` under `id` and submits `frame` (which may be written into the pipe
    /// at once), in that order, so a fast reply always finds its entry. When the interpreter is
    /// closed, nothing stays registered and the entry is handed back.
    pub fn submit(&self, id: u64, pending: Pending, frame: Outgoing) -> Result<(), Pending> {
        if self.is_shut_down() {
            return Err(pending);
        }
        self.pending().insert(id, pending);
        if self.writer.send(frame) {
            Ok(())
        } else {
            // The reaper may have drained it already; then it is gone either way.
            match self.take_pending(id) {
                Some(p) => Err(p),
                None => Ok(()),
            }
        }
    }

    /// Runs `f` on the pending entry of `id`, if there is one (it stays pending).
    pub fn with_pending(&self, id: u64, f: impl FnOnce(&Pending)) {
        if let Some(pending) = self.pending().get(&id) {
            f(pending);
        }
    }

    /// Removes and returns the pending entry of `id`.
    pub fn take_pending(&self, id: u64) -> Option<Pending> {
        self.pending().remove(&id)
    }

    /// Drops the request `id` (if still pending) and tells Python to cancel it.
    /// Returns whether it was still pending.
    pub fn cancel(&self, env: Env, id: u64) -> bool {
        match self.take_pending(id) {
            Some(mut p) => {
                p.demonitor(Some(env));
                self.send_cancel(id);
                true
            }
            None => false,
        }
    }

    /// Cancels every request of `caller` (it died).
    pub fn cancel_caller(&self, caller: &LocalPid) {
        let ids: Vec<u64> = self
            .pending()
            .iter()
            .filter(|(_, p)| p.caller == *caller)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            // The monitor already fired; do not demonitor.
            if let Some(mut p) = self.take_pending(id) {
                p.monitor = None;
                self.send_cancel(id);
            }
        }
    }

    /// Tells Python to cancel request `id`, interrupting it if it runs synchronously (see
    /// [`snex_core::interrupt`]): a signal now when frames are queued ahead of the `CANCEL` (so
    /// that Python reads the full pipe), one once the frame is in the pipe, and one a little
    /// later.
    fn send_cancel(&self, id: u64) {
        let interrupter = self.interrupter.clone();
        let frame = Outgoing::empty(kind::CANCEL, id).after_written(Box::new(move || {
            interrupter.interrupt();
            snex_core::interrupt::interrupt_later(interrupter);
        }));
        if self.writer.queued().port > 0 {
            self.interrupter.interrupt();
        }
        self.writer.send(frame);
    }

    /// Drops every pending request: callers find out through their monitor of the interpreter.
    pub fn fail_all_pending(&self) {
        let drained: Vec<Pending> = self.pending().drain().map(|(_, p)| p).collect();
        for mut p in drained {
            p.demonitor(None);
        }
    }

    pub fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// Stops the interpreter: closes the pipe to Python, then escalates to `SIGTERM` and
    /// `SIGKILL` on a background thread. Idempotent, never blocks the caller.
    pub fn shutdown(self: &Arc<Self>) {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        self.writer.close();
        let core = self.clone();
        let spawned = std::thread::Builder::new()
            .name("snex-stop".into())
            .spawn(move || {
                core.child.terminate(STOP_GRACE);
            });
        if spawned.is_err() {
            self.child.signal_group(nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Pending {
    /// Removes the monitor of the caller. `env` is the calling NIF's env, or `None` on one of
    /// our own threads (as `enif_demonitor_process` requires).
    pub fn demonitor(&mut self, env: Option<rustler::Env>) {
        if let Some(monitor) = self.monitor.take() {
            monitor.demonitor(env);
        }
    }
}
