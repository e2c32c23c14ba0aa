//! The writer thread: takes frames from a queue and writes them to Python's pipe, batching
//! whatever is queued into one `writev`.
//!
//! It also keeps the count of queued bytes for the busy limits: a submitter that finds more
//! than `high` bytes queued gets `:busy` and is registered as a waiter; the writer sends each
//! waiter `:snex_writable` once the queue has drained below `low`.

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use rustler::{Encoder, LocalPid, OwnedEnv};
use snex_core::frame;
use snex_core::pickle::PickleOutput;

/// How many queued frames are gathered into one `writev` at most.
const MAX_BATCH: usize = 64;

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
}

struct Shared {
    queued: AtomicUsize,
    limits: Option<(usize, usize)>,
    waiters: Mutex<Vec<LocalPid>>,
    closed: AtomicBool,
}

/// Handle to an interpreter's writer thread.
pub struct Writer {
    tx: Mutex<Option<Sender<Outgoing>>>,
    shared: Arc<Shared>,
}

impl Writer {
    /// Starts the writer thread for `pipe`.
    pub fn start(pipe: File, limits: Option<(usize, usize)>) -> io::Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            limits,
            waiters: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("snex-writer".into())
            .spawn(move || write_loop(pipe, rx, &thread_shared))?;
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
                self.shared.queued.fetch_add(len, Ordering::AcqRel);
                if tx.send(frame).is_ok() {
                    true
                } else {
                    self.shared.queued.fetch_sub(len, Ordering::AcqRel);
                    false
                }
            }
            None => false,
        }
    }

    /// True when more than the high watermark is queued; then `waiter` is told
    /// (`:snex_writable`) when the queue has drained below the low watermark.
    pub fn is_busy(&self, waiter: LocalPid) -> bool {
        let Some((_, high)) = self.shared.limits else {
            return false;
        };
        if self.shared.queued.load(Ordering::Acquire) <= high {
            return false;
        }
        let mut waiters = self
            .shared
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Re-check under the lock the writer takes to notify, so no wake-up is lost.
        if self.shared.queued.load(Ordering::Acquire) <= high {
            return false;
        }
        waiters.push(waiter);
        true
    }

    /// Closes the queue: frames already queued are still written, then the pipe is closed.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

fn write_loop(mut pipe: File, rx: Receiver<Outgoing>, shared: &Shared) {
    let mut batch: Vec<Outgoing> = Vec::with_capacity(MAX_BATCH);
    let mut notify_env = OwnedEnv::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let written: usize = batch.iter().map(Outgoing::len).sum();
        let result = write_batch(&mut pipe, &batch);
        batch.clear();
        let left = shared.queued.fetch_sub(written, Ordering::AcqRel) - written;
        wake_waiters(shared, left, &mut notify_env);
        if result.is_err() {
            // Python is gone; the reaper reports it.
            break;
        }
    }
    shared.closed.store(true, Ordering::Release);
    shared.queued.store(0, Ordering::Release);
    wake_waiters(shared, 0, &mut notify_env);
}

fn wake_waiters(shared: &Shared, left: usize, env: &mut OwnedEnv) {
    let low = match shared.limits {
        Some((low, _)) => low,
        None => return,
    };
    if left > low && !shared.closed.load(Ordering::Acquire) {
        return;
    }
    let waiters: Vec<LocalPid> = {
        let mut w = shared.waiters.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *w)
    };
    for pid in waiters {
        let _ = env.send_and_clear(&pid, |env| crate::atoms::snex_writable().encode(env));
    }
}

fn write_batch(pipe: &mut File, batch: &[Outgoing]) -> io::Result<()> {
    let mut slices: Vec<IoSlice> = Vec::with_capacity(batch.len() * 3);
    for frame in batch {
        slices.push(IoSlice::new(&frame.header));
        if let Some(body) = &frame.body {
            slices.extend(body.io_slices());
        }
    }
    write_all_vectored(pipe, &mut slices)
}

fn write_all_vectored(pipe: &mut File, mut slices: &mut [IoSlice]) -> io::Result<()> {
    // writev takes at most IOV_MAX (1024) slices at a time.
    while !slices.is_empty() {
        let take = slices.len().min(1024);
        match pipe.write_vectored(&slices[..take]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
