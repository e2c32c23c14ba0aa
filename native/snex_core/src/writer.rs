//! Writing frames into the pipe to Python.
//!
//! A submitted frame takes one of two ways into the pipe:
//!
//! * **Directly**, from the submitting thread: when nothing is queued or being written, the
//!   frame is at most [`DIRECT_MAX`] bytes and the pipe lock is free, the submitter writes the
//!   frame itself with one non-blocking `writev`. This saves waking the writer thread, one
//!   thread hand-over on every request of an idle interpreter.
//! * **Through the writer thread**, as every frame did before: it is put on a queue, and the
//!   writer thread takes whatever is queued and writes it with one `writev`, waiting in
//!   `poll` while the pipe is full.
//!
//! The pipe is in `O_NONBLOCK` mode, so no submitter ever waits for Python: a direct write
//! that the pipe takes only in part (or not at all) leaves the rest to the writer thread.
//!
//! Frame order is kept exactly by two rules. The pipe is written only under the *pipe lock*:
//! the writer thread holds it while it writes, a submitter only takes it with `try_lock` (a
//! taken lock sends the frame to the queue). And `inflight` counts the frames handed to the
//! writer thread and not yet completely written (queued, in the batch being written, or the
//! unwritten rest of a direct write); it is raised before a frame is queued and lowered only
//! after the frame is completely in the pipe, and a submitter writes directly only when it
//! reads 0 under the pipe lock. So a direct write never overtakes a frame handed over before
//! it. The rest of a partial direct write is not queued behind frames that other submitters may
//! have queued meanwhile: it is left under the pipe lock, and the writer thread finishes it
//! first whenever it takes the lock.
//!
//! The writer also keeps two byte counters for the busy limits (see [`Writer::is_busy`]):
//!
//! * the *port* counter: bytes handed to the writer thread and not yet accepted by the pipe
//!   (queued, in the batch being written, or the rest of a partial direct write); it drops as
//!   each `writev` is accepted;
//! * the *msgq* counter: bytes queued that the writer thread has not yet taken from its queue;
//!   it drops when the writer gathers a batch.
//!
//! A frame written directly and completely never counts. A submitter that finds a counter
//! over its high watermark is told it is busy and registered as a waiter; the writer thread
//! notifies each waiter once the counter has drained to the low watermark.

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::ops::Range;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::frame;
use crate::pickle::{ExternalKind, PickleOutput};
use crate::splice;

/// How many queued frames are gathered into one `writev` at most.
const MAX_BATCH: usize = 64;

/// The largest frame (header included) written directly by a submitter. Larger frames always
/// go through the writer thread, so a direct write copies at most this much into the pipe.
pub const DIRECT_MAX: usize = 64 * 1024;

/// `writev` takes at most `IOV_MAX` slices at a time.
const IOV_MAX: usize = 1024;

/// Busy limits: `(low, high)` watermarks in bytes, or `None` for no limit.
pub type Limits = Option<(usize, usize)>;

/// Bytes a frame refers to instead of copying them (in the NIF, a BEAM binary kept alive
/// until the frame is written).
pub struct SharedBytes(Box<dyn AsRef<[u8]> + Send>);

impl SharedBytes {
    /// Wraps `bytes`.
    pub fn new(bytes: impl AsRef<[u8]> + Send + 'static) -> Self {
        SharedBytes(Box::new(bytes))
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

/// One frame to write.
pub struct Outgoing {
    header: [u8; frame::HEADER_LEN],
    /// The buffer table, for a frame with out-of-band buffers (else empty).
    table: Vec<u8>,
    body: Option<PickleOutput<SharedBytes>>,
    len: usize,
    /// Runs once the frame is done with: completely written, or dropped by a closed writer.
    after: Option<AfterWritten>,
}

/// What runs after a frame has been written (see [`Outgoing::after_written`]).
pub type AfterWritten = Box<dyn FnOnce() + Send>;

impl Outgoing {
    /// A frame with a pickle body, and the out-of-band buffers of the pickle after it (see
    /// [`frame::OUT_OF_BAND`]). Fails if the body does not fit in a frame.
    pub fn new<E: AsRef<[u8]> + Send + 'static>(
        kind: u8,
        id: u64,
        body: PickleOutput<E>,
    ) -> Result<Self, String> {
        let body = PickleOutput {
            buf: body.buf,
            buffers: share(body.buffers),
        };
        if body.buffers.len() > frame::MAX_BUFFERS {
            return Err(format!(
                "a frame carries at most {} out-of-band buffers",
                frame::MAX_BUFFERS
            ));
        }
        let (wire_kind, table) = if body.buffers.is_empty() {
            (kind, Vec::new())
        } else {
            let entries = body
                .buffers
                .iter()
                .map(|(k, b)| (wire_kind_of(*k), b.as_ref().len()));
            (
                kind | frame::OUT_OF_BAND,
                frame::encode_buffer_table(entries),
            )
        };
        let len = body
            .buffers
            .iter()
            .fold(table.len().saturating_add(body.buf.len()), |n, (_, b)| {
                n.saturating_add(b.as_ref().len())
            });
        let header = frame::encode_header(wire_kind, id, len).map_err(|e| e.to_string())?;
        Ok(Outgoing {
            header,
            table,
            body: Some(body),
            len: len.saturating_add(frame::HEADER_LEN),
            after: None,
        })
    }

    /// A frame without a body.
    pub fn empty(kind: u8, id: u64) -> Self {
        Outgoing {
            header: frame::encode_header(kind, id, 0).unwrap_or([0; frame::HEADER_LEN]),
            table: Vec::new(),
            body: None,
            len: frame::HEADER_LEN,
            after: None,
        }
    }

    /// Runs `after` once the frame is completely in the pipe (or was dropped because the
    /// writer closed): on the thread that finished writing it.
    pub fn after_written(mut self, after: AfterWritten) -> Self {
        self.after = Some(after);
        self
    }

    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the frame has no bytes (never: the header is always there).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The frame's pieces in order, each with `true` when it is bytes the frame refers to (kept
    /// alive, unchanged, until the frame is dropped), which may be spliced into the pipe.
    fn parts(&self) -> impl Iterator<Item = (&[u8], bool)> {
        let pickle = self.body.as_ref().map_or(&[][..], |body| &body.buf[..]);
        let own = [&self.header[..], &self.table[..], pickle]
            .into_iter()
            .filter(|part| !part.is_empty())
            .map(|part| (part, false));
        let buffers = self
            .body
            .iter()
            .flat_map(|body| &body.buffers)
            .map(|(_, buffer)| (buffer.as_ref(), true))
            .filter(|(buffer, _)| !buffer.is_empty());
        own.chain(buffers)
    }
}

fn share<K, E: AsRef<[u8]> + Send + 'static>(items: Vec<(K, E)>) -> Vec<(K, SharedBytes)> {
    items
        .into_iter()
        .map(|(k, e)| (k, SharedBytes::new(e)))
        .collect()
}

fn wire_kind_of(kind: ExternalKind) -> u8 {
    match kind {
        ExternalKind::ByteArray => frame::buffer_kind::BYTEARRAY,
        ExternalKind::Bytes => frame::buffer_kind::BYTES,
        ExternalKind::Str => frame::buffer_kind::STR,
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        if let Some(after) = self.after.take() {
            after();
        }
    }
}

/// The rest of a frame a submitter began to write directly: the writer thread writes it
/// before anything else.
struct Partial {
    frame: Outgoing,
    /// Bytes of `frame` already in the pipe.
    written: usize,
}

impl Partial {
    fn rest(&self) -> usize {
        self.frame.len - self.written
    }
}

/// What the writer thread's queue carries.
enum Msg {
    /// A frame to write after those queued before it.
    Frame(Outgoing),
    /// A submitter left the rest of a frame under the pipe lock.
    Wake,
}

/// The pipe and the rest of a partial direct write, under the pipe lock.
struct Pipe {
    /// `None` once the writer thread has stopped (and closed the pipe).
    file: Option<File>,
    partial: Option<Partial>,
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
        lock(&self.waiters)
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
    /// Bytes handed to the writer thread and not yet accepted by the pipe.
    port: Gate<P>,
    /// Bytes queued and not yet taken from the queue by the writer thread.
    msgq: Gate<P>,
    closed: AtomicBool,
    /// Frames handed to the writer thread and not yet completely written.
    inflight: AtomicUsize,
    /// The pipe lock.
    pipe: Mutex<Pipe>,
    /// The queue; `None` once closed.
    tx: Mutex<Option<Sender<Msg>>>,
    direct_writes: AtomicU64,
    direct_partial: AtomicU64,
    /// Bytes spliced into the pipe so far.
    spliced: AtomicU64,
}

/// How many bytes are queued, as seen by each busy limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// Bytes handed to the writer thread and not yet accepted by the pipe.
    pub port: usize,
    /// Bytes queued and not yet taken from the queue by the writer thread.
    pub msgq: usize,
}

/// How many frames submitters wrote into the pipe themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectWrites {
    /// Frames written directly and completely.
    pub complete: u64,
    /// Frames written directly in part (or not at all: the pipe was full), whose rest the
    /// writer thread wrote.
    pub partial: u64,
}

/// Handle to the writer of one pipe. Dropping it closes the writer (see [`Writer::close`]).
///
/// `P` identifies a submitter waiting for a busy limit to drain (a BEAM pid in the NIF).
pub struct Writer<P> {
    shared: Arc<Shared<P>>,
}

impl<P: PartialEq + Clone + Send + 'static> Writer<P> {
    /// Puts `pipe` in non-blocking mode and starts its writer thread, with the busy limits of
    /// the bytes not yet accepted by the pipe (`port_limits`) and of those not yet taken by the
    /// writer thread (`msgq_limits`). `notify` is called on the writer thread for each waiter
    /// of a busy limit once it has drained (see [`Writer::is_busy`]).
    ///
    /// `pipe` must be a pipe (or another file for which `O_NONBLOCK` makes writes
    /// non-blocking) whose open file description is not shared with anyone else.
    pub fn start(
        pipe: File,
        port_limits: Limits,
        msgq_limits: Limits,
        notify: impl FnMut(P) + Send + 'static,
    ) -> io::Result<Writer<P>> {
        Self::start_watched(pipe, port_limits, msgq_limits, notify, |_| {})
    }

    /// Like [`Writer::start`]; `failed` is called once, on the writer thread, if writing into
    /// the pipe fails (`EPIPE`: the reader of the pipe is gone). The writer is closed then.
    pub fn start_watched(
        pipe: File,
        port_limits: Limits,
        msgq_limits: Limits,
        mut notify: impl FnMut(P) + Send + 'static,
        failed: impl FnOnce(io::Error) + Send + 'static,
    ) -> io::Result<Writer<P>> {
        let flags = fcntl(&pipe, FcntlArg::F_GETFL)?;
        let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
        fcntl(&pipe, FcntlArg::F_SETFL(flags))?;
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            port: Gate::new(port_limits),
            msgq: Gate::new(msgq_limits),
            closed: AtomicBool::new(false),
            inflight: AtomicUsize::new(0),
            pipe: Mutex::new(Pipe {
                file: Some(pipe),
                partial: None,
            }),
            tx: Mutex::new(Some(tx)),
            direct_writes: AtomicU64::new(0),
            direct_partial: AtomicU64::new(0),
            spliced: AtomicU64::new(0),
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("snex-writer".into())
            .spawn(move || {
                if let Err(e) = write_loop(rx, &thread_shared, &mut notify) {
                    failed(e);
                }
            })?;
        Ok(Writer { shared })
    }

    /// Submits a frame: writes it directly when it can, else hands it (or its rest) to the
    /// writer thread. Never blocks on the pipe. Returns false if the writer is closed.
    pub fn send(&self, frame: Outgoing) -> bool {
        match self.try_direct(frame) {
            Direct::Done => true,
            Direct::Closed => false,
            Direct::Queue(frame) => self.enqueue(frame),
        }
    }

    fn try_direct(&self, frame: Outgoing) -> Direct {
        let s = &*self.shared;
        if frame.len > DIRECT_MAX || s.inflight.load(Ordering::Acquire) != 0 {
            return Direct::Queue(frame);
        }
        let mut pipe = match s.pipe.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Direct::Queue(frame),
        };
        // Under the pipe lock nobody else writes, and `inflight` only grows.
        if s.inflight.load(Ordering::Acquire) != 0 {
            return Direct::Queue(frame);
        }
        if s.closed.load(Ordering::Acquire) {
            return Direct::Closed;
        }
        let Some(file) = pipe.file.as_ref() else {
            return Direct::Closed;
        };
        let written = write_once(file, &frame);
        if written == frame.len {
            s.direct_writes.fetch_add(1, Ordering::Relaxed);
            return Direct::Done;
        }
        // The pipe is full, or took only part of the frame (or failed: the writer thread will
        // find out). The rest goes first, before anything queued meanwhile.
        s.port.add(frame.len - written);
        s.inflight.fetch_add(1, Ordering::AcqRel);
        pipe.partial = Some(Partial { frame, written });
        drop(pipe);
        s.direct_partial.fetch_add(1, Ordering::Relaxed);
        // Without a queue the writer thread is stopping, and finishes the rest before it
        // closes the pipe.
        if let Some(tx) = lock(&s.tx).as_ref() {
            let _ = tx.send(Msg::Wake);
        }
        Direct::Done
    }

    fn enqueue(&self, frame: Outgoing) -> bool {
        let s = &*self.shared;
        let len = frame.len;
        let tx = lock(&s.tx);
        let Some(tx) = tx.as_ref() else {
            return false;
        };
        s.port.add(len);
        s.msgq.add(len);
        s.inflight.fetch_add(1, Ordering::AcqRel);
        if tx.send(Msg::Frame(frame)).is_ok() {
            true
        } else {
            s.inflight.fetch_sub(1, Ordering::AcqRel);
            s.port.sub(len);
            s.msgq.sub(len);
            false
        }
    }

    /// True when either busy limit is exceeded; then `notify` (given to [`Writer::start`]) is
    /// called with `waiter` when that counter has drained to its low watermark, and the
    /// submitter should ask again.
    pub fn is_busy(&self, waiter: P) -> bool {
        let s = &*self.shared;
        s.port.enter(waiter.clone(), &s.closed) || s.msgq.enter(waiter, &s.closed)
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

    /// How many frames were written directly so far.
    pub fn direct_writes(&self) -> DirectWrites {
        DirectWrites {
            complete: self.shared.direct_writes.load(Ordering::Relaxed),
            partial: self.shared.direct_partial.load(Ordering::Relaxed),
        }
    }

    /// How many bytes went into the pipe by reference so far (see [`splice`]).
    pub fn spliced_bytes(&self) -> u64 {
        self.shared.spliced.load(Ordering::Relaxed)
    }
}

impl<P> Writer<P> {
    /// Closes the writer: frames already submitted are still written, then the pipe is closed.
    /// From now on submissions fail and callers are never suspended.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        lock(&self.shared.tx).take();
    }
}

impl<P> Drop for Writer<P> {
    fn drop(&mut self) {
        self.close();
    }
}

enum Direct {
    /// Written, or its rest handed to the writer thread.
    Done,
    /// The writer is closed.
    Closed,
    /// Not written at all: queue it.
    Queue(Outgoing),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One non-blocking `writev` of `frame`; returns how many bytes the pipe took (0 when it
/// was full or failed).
fn write_once(mut file: &File, frame: &Outgoing) -> usize {
    let slices: Vec<IoSlice> = frame
        .parts()
        .take(IOV_MAX)
        .map(|(part, _)| IoSlice::new(part))
        .collect();
    file.write_vectored(&slices).unwrap_or(0)
}

/// The writer thread; returns the error that stopped it, if any.
fn write_loop<P: PartialEq>(
    rx: Receiver<Msg>,
    shared: &Shared<P>,
    notify: &mut dyn FnMut(P),
) -> io::Result<()> {
    let mut batch: Vec<Outgoing> = Vec::with_capacity(MAX_BATCH);
    let mut failure = None;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            if let Msg::Frame(frame) = msg {
                batch.push(frame);
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let taken: usize = batch.iter().map(Outgoing::len).sum();
        if taken > 0 {
            let left = shared.msgq.sub(taken);
            shared.msgq.drained(left, false, notify);
        }
        let mut pipe = lock(&shared.pipe);
        let partial = pipe.partial.take();
        let frames = batch.len() + usize::from(partial.is_some());
        let total = taken + partial.as_ref().map_or(0, Partial::rest);
        let mut accepted = 0;
        let result = match pipe.file.as_ref() {
            Some(file) => write_all(file, partial.as_ref(), &batch, |n| {
                accepted += n;
                let left = shared.port.sub(n);
                shared.port.drained(left, false, notify);
            }),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        };
        match result {
            Ok(spliced) => {
                shared.spliced.fetch_add(spliced, Ordering::Relaxed);
            }
            Err(e) => {
                // Python is gone, or closed its end: the caller of `start_watched` finds out.
                shared.port.sub(total - accepted);
                failure = Some(e);
                break;
            }
        }
        shared.inflight.fetch_sub(frames, Ordering::AcqRel);
        drop(pipe);
        batch.clear();
    }
    // Set before the final wake-up: a caller registering after it sees `closed`.
    shared.closed.store(true, Ordering::Release);
    {
        let mut pipe = lock(&shared.pipe);
        // The rest of a direct write made while the queue was being closed.
        if let Some(partial) = pipe.partial.take() {
            if let (None, Some(file)) = (&failure, pipe.file.as_ref()) {
                let _ = write_all(file, Some(&partial), &[], |_| {});
            }
            shared.port.sub(partial.rest());
        }
        // Python sees the end of its input.
        pipe.file = None;
    }
    // After a failure: drop whatever is still queued, so that the counters return to 0.
    lock(&shared.tx).take();
    while let Ok(msg) = rx.recv() {
        if let Msg::Frame(frame) = msg {
            shared.port.sub(frame.len);
            shared.msgq.sub(frame.len);
        }
    }
    for gate in [&shared.port, &shared.msgq] {
        gate.drained(0, true, notify);
    }
    failure.map_or(Ok(()), Err)
}

/// Writes the rest of `partial`, then the whole batch, reporting each number of bytes the pipe
/// accepts to `accepted`; waits in `poll` while the pipe is full. Large bytes the frames refer
/// to are spliced into the pipe where the rule of [`splice`] allows it; when this returns,
/// the reader has copied every spliced byte out of the pipe.
fn write_all(
    file: &File,
    partial: Option<&Partial>,
    batch: &[Outgoing],
    accepted: impl FnMut(usize),
) -> io::Result<u64> {
    let frames = || partial.map(|p| &p.frame).into_iter().chain(batch);
    let capacity = if frames().any(|f| f.len > splice::MIN_SPLICE) {
        splice::capacity(file)
    } else {
        None
    };
    let mut parts: Vec<&[u8]> = Vec::with_capacity(batch.len() * 3 + 3);
    let mut spliced: Vec<Range<usize>> = Vec::new();
    let mut frame_start = 0;
    for frame in frames() {
        let frame_end = frame_start + frame.len;
        let mut at = frame_start;
        for (part, shared) in frame.parts() {
            let range = at..at + part.len();
            at = range.end;
            parts.push(part);
            if let (true, Some(c)) = (shared, capacity) {
                spliced.extend(splice::spliceable(range, frame_end, c));
            }
        }
        frame_start = frame_end;
    }
    let from = partial.map_or(0, |p| p.written);
    write_stream(file, &parts, frame_start, &spliced, from, accepted)
}

/// Writes the bytes of `parts` (`total` bytes) from offset `from` on: the `spliced` ranges
/// (sorted offsets) by reference, the rest by copy. Falls back to copying if the pipe refuses a splice. Returns
/// how many bytes were spliced.
fn write_stream(
    mut file: &File,
    parts: &[&[u8]],
    total: usize,
    mut spliced: &[Range<usize>],
    from: usize,
    mut accepted: impl FnMut(usize),
) -> io::Result<u64> {
    let mut cursor = Cursor::default();
    cursor.advance(parts, from);
    let mut pos = from;
    let mut by_reference_total = 0u64;
    while pos < total {
        while spliced.first().is_some_and(|r| r.end <= pos) {
            spliced = &spliced[1..];
        }
        let (by_reference, limit) = match spliced.first() {
            Some(r) if r.start <= pos => (true, r.end),
            Some(r) => (false, r.start),
            None => (false, total),
        };
        let slices = cursor.slices(parts, limit - pos);
        let result = if by_reference {
            splice::splice(file, &slices)
        } else {
            file.write_vectored(&slices)
        };
        match result {
            Ok(0) if by_reference => spliced = &[],
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                accepted(n);
                pos += n;
                cursor.advance(parts, n);
                if by_reference {
                    by_reference_total += n as u64;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(file)?,
            // Not a pipe that takes spliced pages: copy everything (a real failure of the pipe
            // shows in the next `writev`).
            Err(_) if by_reference => spliced = &[],
            Err(e) => return Err(e),
        }
    }
    Ok(by_reference_total)
}

/// A position in a list of byte slices.
#[derive(Default)]
struct Cursor {
    index: usize,
    offset: usize,
}

impl Cursor {
    fn advance(&mut self, parts: &[&[u8]], mut n: usize) {
        while n > 0 && self.index < parts.len() {
            let left = parts[self.index].len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.index += 1;
            self.offset = 0;
        }
    }

    /// At most `max` bytes from here on, in at most `IOV_MAX` slices.
    fn slices<'a>(&self, parts: &[&'a [u8]], mut max: usize) -> Vec<IoSlice<'a>> {
        let mut slices = Vec::new();
        let mut offset = self.offset;
        for part in &parts[self.index..] {
            if max == 0 || slices.len() == IOV_MAX {
                break;
            }
            let take = (part.len() - offset).min(max);
            slices.push(IoSlice::new(&part[offset..offset + take]));
            max -= take;
            offset = 0;
        }
        slices
    }
}

/// Waits until the pipe has room (or its reader is gone: the next write then fails).
fn wait_writable(file: &File) -> io::Result<()> {
    let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLOUT)];
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
