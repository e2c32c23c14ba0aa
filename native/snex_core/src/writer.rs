//! Writing frames into the pipe to Python: a writer thread takes frames from a queue and
//! writes them, batching whatever is queued into one `writev`.
//!
//! It also keeps two byte counters for the busy limits (see [`Gate`]):
//!
//! * the *port* counter: bytes handed over by callers and not yet accepted by the pipe (in the
//!   channel, or in the batch being written); it drops as each `writev` is accepted;
//! * the *msgq* counter: bytes handed over by callers that the writer thread has not yet taken
//!   from its channel; it drops when the writer gathers a batch.
//!
//! A submitter that finds a counter over its high watermark is told it is busy and registered
//! as a waiter; the writer thread notifies each waiter once the counter has drained to the low
//! watermark.

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::frame;
use crate::pickle::PickleOutput;

/// How many queued frames are gathered into one `writev` at most.
const MAX_BATCH: usize = 64;

/// Busy limits: `(low, high)` watermarks in bytes, or `None` for no limit.
pub type Limits = Option<(usize, usize)>;

/// One frame to write.
pub struct Outgoing {
    header: [u8; frame::HEADER_LEN],
    body: Option<PickleOutput<Vec<u8>>>,
    len: usize,
}

impl Outgoing {
    /// A frame with a pickle body. Fails if the body does not fit in a frame.
    pub fn new(kind: u8, id: u64, body: PickleOutput<Vec<u8>>) -> Result<Self, String> {
        let len = body.len();
        let header = frame::encode_header(kind, id, len).map_err(|e| e.to_string())?;
        Ok(Outgoing {
            header,
            body: Some(body),
            len: len + frame::HEADER_LEN,
        })
    }

    /// A frame without a body.
    pub fn empty(kind: u8, id: u64) -> Self {
        Outgoing {
            header: frame::encode_header(kind, id, 0).unwrap_or([0; frame::HEADER_LEN]),
            body: None,
            len: frame::HEADER_LEN,
        }
    }

    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the frame has no bytes (never: the header is always there).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A byte counter with busy limits and the callers waiting for it to drain.
///
/// Once the counter is found over `high`, the gate is *busy*: every caller is suspended until
/// the counter has drained to `low`, when the writer clears the busy state and wakes them all.
/// The busy state and the waiters change only under the `waiters` lock, and the caller
/// re-checks the counter under it while the writer takes it after every decrement that reaches
/// `low`, so a wake-up is never lost.
struct Gate<P> {
    limits: Limits,
    queued: AtomicUsize,
    /// A hint for the lock-free fast path; authoritative only under `waiters`.
    busy: AtomicBool,
    waiters: Mutex<Vec<P>>,
}

impl<P: PartialEq> Gate<P> {
    fn new(limits: Limits) -> Self {
        Gate {
            limits,
            queued: AtomicUsize::new(0),
            busy: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
        }
    }

    fn add(&self, n: usize) {
        self.queued.fetch_add(n, Ordering::AcqRel);
    }

    /// Subtracts `n` and returns what is left.
    fn sub(&self, n: usize) -> usize {
        let before = self.queued.fetch_sub(n, Ordering::AcqRel);
        before.saturating_sub(n)
    }

    fn waiters(&self) -> MutexGuard<'_, Vec<P>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when the gate is busy; then `waiter` is registered and will be notified.
    fn enter(&self, waiter: P, closed: &AtomicBool) -> bool {
        let Some((_, high)) = self.limits else {
            return false;
        };
        if !self.busy.load(Ordering::Acquire) && self.queued.load(Ordering::Acquire) <= high {
            return false;
        }
        let mut waiters = self.waiters();
        // Nobody would wake us once the writer has stopped; the submission then fails anyway.
        if closed.load(Ordering::Acquire) {
            return false;
        }
        if !self.busy.load(Ordering::Acquire) {
            // Re-check under the lock the writer takes to wake waiters.
            if self.queued.load(Ordering::Acquire) <= high {
                return false;
            }
            self.busy.store(true, Ordering::Release);
        }
        waiters.push(waiter);
        true
    }

    /// Removes `waiter` from the waiters; false if it is not there (already woken, or about
    /// to be: the writer takes the whole list under the lock before it notifies).
    fn forget(&self, waiter: &P) -> bool {
        let mut waiters = self.waiters();
        match waiters.iter().position(|w| w == waiter) {
            Some(i) => {
                waiters.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Called by the writer thread after the counter dropped to `left` (or when it stops,
    /// `closed`): notifies every waiter once `left` is at most `low`.
    fn drained(&self, left: usize, closed: bool, notify: &mut dyn FnMut(P)) {
        let Some((low, _)) = self.limits else {
            return;
        };
        if left > low && !closed {
            return;
        }
        let woken: Vec<P> = {
            let mut waiters = self.waiters();
            self.busy.store(false, Ordering::Release);
            std::mem::take(&mut *waiters)
        };
        for waiter in woken {
            notify(waiter);
        }
    }
}

struct Shared<P> {
    /// Bytes not yet accepted by the pipe.
    port: Gate<P>,
    /// Bytes not yet taken from the channel by the writer thread.
    msgq: Gate<P>,
    closed: AtomicBool,
}

/// How many bytes are queued, as seen by each busy limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// Bytes handed over and not yet accepted by the pipe.
    pub port: usize,
    /// Bytes handed over and not yet taken from the channel by the writer thread.
    pub msgq: usize,
}

/// Handle to the writer thread of one pipe. Dropping it closes the queue.
///
/// `P` identifies a submitter waiting for a busy limit to drain (a BEAM pid in the NIF).
pub struct Writer<P> {
    tx: Mutex<Option<Sender<Outgoing>>>,
    shared: Arc<Shared<P>>,
}

impl<P: PartialEq + Clone + Send + 'static> Writer<P> {
    /// Starts the writer thread for `pipe`, with the busy limits of the bytes not yet accepted
    /// by the pipe (`port_limits`) and of those not yet taken by the writer (`msgq_limits`).
    /// `notify` is called on the writer thread for each waiter of a busy limit once it has
    /// drained (see [`Writer::is_busy`]).
    pub fn start(
        pipe: File,
        port_limits: Limits,
        msgq_limits: Limits,
        mut notify: impl FnMut(P) + Send + 'static,
    ) -> io::Result<Writer<P>> {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            port: Gate::new(port_limits),
            msgq: Gate::new(msgq_limits),
            closed: AtomicBool::new(false),
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("snex-writer".into())
            .spawn(move || write_loop(pipe, rx, &thread_shared, &mut notify))?;
        Ok(Writer {
            tx: Mutex::new(Some(tx)),
            shared,
        })
    }

    /// Queues a frame. Returns false if the writer is closed.
    pub fn send(&self, frame: Outgoing) -> bool {
        let len = frame.len();
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        match tx.as_ref() {
            Some(tx) => {
                self.shared.port.add(len);
                self.shared.msgq.add(len);
                if tx.send(frame).is_ok() {
                    true
                } else {
                    self.shared.port.sub(len);
                    self.shared.msgq.sub(len);
                    false
                }
            }
            None => false,
        }
    }

    /// True when either busy limit is exceeded; then `notify` (given to [`Writer::start`]) is
    /// called with `waiter` when that counter has drained to its low watermark, and the
    /// submitter should ask again.
    pub fn is_busy(&self, waiter: P) -> bool {
        let closed = &self.shared.closed;
        self.shared.port.enter(waiter.clone(), closed) || self.shared.msgq.enter(waiter, closed)
    }

    /// Stops waiting for the notification (the submitter gave up). True if none will come;
    /// false if it has been or is being sent.
    pub fn forget_waiter(&self, waiter: &P) -> bool {
        self.shared.port.forget(waiter) || self.shared.msgq.forget(waiter)
    }

    /// The current byte counts.
    pub fn queued(&self) -> Queued {
        Queued {
            port: self.shared.port.queued.load(Ordering::Acquire),
            msgq: self.shared.msgq.queued.load(Ordering::Acquire),
        }
    }

    /// Closes the queue: frames already queued are still written, then the pipe is closed.
    /// From now on callers are never suspended (their submissions fail at once).
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

fn write_loop<P: PartialEq>(
    mut pipe: File,
    rx: Receiver<Outgoing>,
    shared: &Shared<P>,
    notify: &mut dyn FnMut(P),
) {
    let mut batch: Vec<Outgoing> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let taken: usize = batch.iter().map(Outgoing::len).sum();
        let left = shared.msgq.sub(taken);
        shared.msgq.drained(left, false, notify);
        let mut accepted = 0;
        let result = write_batch(&mut pipe, &batch, |n| {
            accepted += n;
            let left = shared.port.sub(n);
            shared.port.drained(left, false, notify);
        });
        batch.clear();
        if result.is_err() {
            // Python is gone; the reaper reports it.
            shared.port.sub(taken - accepted);
            break;
        }
    }
    // Set before the final wake-up: a caller registering after it sees `closed`.
    shared.closed.store(true, Ordering::Release);
    for gate in [&shared.port, &shared.msgq] {
        gate.drained(0, true, notify);
    }
}

/// Writes the whole batch, reporting each number of bytes the pipe accepts to `accepted`.
fn write_batch(pipe: &mut File, batch: &[Outgoing], accepted: impl FnMut(usize)) -> io::Result<()> {
    let mut slices: Vec<IoSlice> = Vec::with_capacity(batch.len() * 3);
    for frame in batch {
        slices.push(IoSlice::new(&frame.header));
        if let Some(body) = &frame.body {
            slices.extend(body.io_slices());
        }
    }
    write_all_vectored(pipe, &mut slices, accepted)
}

fn write_all_vectored(
    pipe: &mut File,
    mut slices: &mut [IoSlice],
    mut accepted: impl FnMut(usize),
) -> io::Result<()> {
    // writev takes at most IOV_MAX (1024) slices at a time.
    while !slices.is_empty() {
        let take = slices.len().min(1024);
        match pipe.write_vectored(&slices[..take]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                accepted(n);
                IoSlice::advance_slices(&mut slices, n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
