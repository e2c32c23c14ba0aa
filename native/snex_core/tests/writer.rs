//! The writer over a real pipe: direct writes, the writer thread, and their order.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use snex_core::frame::{kind, Frame, FrameReader, HEADER_LEN};
use snex_core::pickle::PickleOutput;
use snex_core::writer::{DirectWrites, Limits, Outgoing, Queued, Writer, DIRECT_MAX};

/// The pipe's capacity in these tests.
const PIPE_SIZE: usize = 64 * 1024;

fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array on success.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just created and are owned by nobody else.
    let (r, w) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on an fd we own.
    let size = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE as libc::c_int) };
    assert_eq!(size as usize, PIPE_SIZE);
    (r, w)
}

/// A frame of `len` bytes on the wire whose id is `id` and whose body is `id`'s bytes repeated.
fn frame(id: u64, len: usize) -> Outgoing {
    assert!(len >= HEADER_LEN);
    let body = body_of(id, len - HEADER_LEN);
    let f = Outgoing::new(
        kind::EVAL,
        id,
        PickleOutput {
            buf: body,
            buffers: Vec::<(_, Vec<u8>)>::new(),
        },
    )
    .unwrap();
    assert_eq!(f.len(), len);
    f
}

fn body_of(id: u64, len: usize) -> Vec<u8> {
    id.to_le_bytes().iter().copied().cycle().take(len).collect()
}

/// Checks that `f` is intact, as `frame(f.id, _)` made it.
fn check(f: &Frame) {
    assert_eq!(f.kind, kind::EVAL);
    assert!(
        f.body == body_of(f.id, f.body.len()),
        "frame {} corrupted",
        f.id
    );
}

fn start(w: File) -> Writer<u32> {
    Writer::start(w, None, None, |_| {}).unwrap()
}

fn start_limited(w: File, port: Limits, msgq: Limits) -> (Writer<u32>, mpsc::Receiver<u32>) {
    let (tx, rx) = mpsc::channel();
    let writer = Writer::start(w, port, msgq, move |waiter| {
        let _ = tx.send(waiter);
    })
    .unwrap();
    (writer, rx)
}

/// Reads frames until EOF on a thread, sleeping `pause` every `every` frames.
fn reader(r: File, every: usize, pause: Duration) -> thread::JoinHandle<Vec<Frame>> {
    thread::spawn(move || {
        let mut reader = FrameReader::new(r);
        let mut frames = Vec::new();
        while let Some(f) = reader.read_frame().unwrap() {
            check(&f);
            frames.push(f);
            if every > 0 && frames.len() % every == 0 {
                thread::sleep(pause);
            }
        }
        frames
    })
}

/// Reads frames of any content until EOF on a thread, sleeping `pause` after each.
fn read_frames(r: File, pause: Duration) -> thread::JoinHandle<Vec<Frame>> {
    thread::spawn(move || {
        let mut reader = FrameReader::new(r);
        let mut frames = Vec::new();
        while let Some(f) = reader.read_frame().unwrap() {
            frames.push(f);
            thread::sleep(pause);
        }
        frames
    })
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

fn drained(writer: &Writer<u32>) {
    eventually("the counters to return to 0", || {
        writer.queued() == Queued { port: 0, msgq: 0 }
    });
}

/// Reads exactly `n` bytes from the pipe (to make room in it).
fn read_bytes(r: &mut File, n: usize) {
    let mut buf = vec![0; n];
    r.read_exact(&mut buf).unwrap();
}

#[test]
fn an_idle_writer_takes_the_direct_path_for_small_frames_only() {
    let (r, w) = pipe();
    let writer = start(w);
    for id in 0..100 {
        assert!(writer.send(frame(id, 100)));
    }
    // A frame written directly and completely never counts.
    assert_eq!(writer.queued(), Queued { port: 0, msgq: 0 });
    assert_eq!(
        writer.direct_writes(),
        DirectWrites {
            complete: 100,
            partial: 0
        }
    );
    let mut reader = FrameReader::new(&r);
    for id in 0..100 {
        assert_eq!(reader.read_frame().unwrap().unwrap().id, id);
    }

    // A frame over DIRECT_MAX goes to the writer thread, even into an empty pipe.
    assert!(writer.send(frame(100, DIRECT_MAX + 1)));
    assert_eq!(writer.direct_writes().complete, 100);
    let f = reader.read_frame().unwrap().unwrap();
    assert_eq!(f.id, 100);
    check(&f);
    drained(&writer);

    // Once it is written, frames up to DIRECT_MAX are direct again.
    assert!(writer.send(frame(101, DIRECT_MAX)));
    assert_eq!(
        writer.direct_writes(),
        DirectWrites {
            complete: 101,
            partial: 0
        }
    );
    drop(writer);
    let f = reader.read_frame().unwrap().unwrap();
    assert_eq!(f.id, 101);
    check(&f);
    assert!(reader.read_frame().unwrap().is_none());
}

#[test]
fn a_full_pipe_hands_the_frame_to_the_writer_thread() {
    let (mut r, w) = pipe();
    let writer = start(w);

    // Fills the pipe exactly, directly.
    assert!(writer.send(frame(1, PIPE_SIZE)));
    assert_eq!(
        writer.direct_writes(),
        DirectWrites {
            complete: 1,
            partial: 0
        }
    );
    assert_eq!(writer.queued(), Queued { port: 0, msgq: 0 });

    // The pipe takes nothing: the whole frame goes to the writer thread, without blocking.
    let t0 = Instant::now();
    assert!(writer.send(frame(2, 1_000)));
    assert_eq!(
        writer.direct_writes(),
        DirectWrites {
            complete: 1,
            partial: 1
        }
    );
    assert_eq!(writer.queued().port, 1_000);
    assert_eq!(writer.queued().msgq, 0);
    // Queued behind it, never written before it.
    assert!(writer.send(frame(3, 100)));
    assert!(writer.send(Outgoing::empty(kind::CANCEL, 4)));
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(
        writer.direct_writes(),
        DirectWrites {
            complete: 1,
            partial: 1
        }
    );
    assert_eq!(writer.queued().port, 1_000 + 100 + HEADER_LEN);

    read_bytes(&mut r, PIPE_SIZE);
    drained(&writer);
    // Idle again: direct.
    assert!(writer.send(frame(5, 100)));
    assert_eq!(
        writer.direct_writes(),
        DirectWrites {
            complete: 2,
            partial: 1
        }
    );

    drop(writer);
    let mut reader = FrameReader::new(r);
    let mut ids = Vec::new();
    while let Some(f) = reader.read_frame().unwrap() {
        if f.kind == kind::EVAL {
            check(&f);
        }
        ids.push(f.id);
    }
    assert_eq!(ids, vec![2, 3, 4, 5]);
}

#[test]
fn the_rest_of_a_partial_direct_write_goes_before_anything_queued_after_it() {
    let (mut r, w) = pipe();
    let writer = start(w);

    // 15 of the pipe's 16 pages, then a frame the pipe can take only a page of.
    assert!(writer.send(frame(1, PIPE_SIZE - 4096)));
    assert!(writer.send(frame(2, 20_000)));
    assert_eq!(
        writer.direct_writes(),
        DirectWrites {
            complete: 1,
            partial: 1
        }
    );
    let rest = writer.queued().port;
    assert!(rest > 0 && rest < 20_000, "{rest}");

    // Concurrent submitters queue behind the rest.
    let writer = Arc::new(writer);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let writer = writer.clone();
            thread::spawn(move || {
                for i in 0..50 {
                    assert!(writer.send(frame(100 * (t + 1) + i, 50 + 500 * (i as usize % 3))));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        writer.direct_writes(),
        DirectWrites {
            complete: 1,
            partial: 1
        }
    );

    drop(writer);
    read_bytes(&mut r, PIPE_SIZE - 4096);
    let mut reader = FrameReader::new(r);
    let f = reader.read_frame().unwrap().unwrap();
    assert_eq!(f.id, 2);
    check(&f);
    let mut next = HashMap::new();
    while let Some(f) = reader.read_frame().unwrap() {
        check(&f);
        let (t, i) = (f.id / 100, f.id % 100);
        let expected = next.entry(t).or_insert(0);
        assert_eq!(i, *expected, "thread {t}");
        *expected += 1;
    }
    assert_eq!(next.len(), 4);
    assert!(next.values().all(|n| *n == 50));
}

#[test]
fn concurrent_submitters_and_a_slow_reader_keep_each_threads_order() {
    // Order holds in every run; that both ways were taken depends on timing (a loaded machine
    // may queue every frame), so a few runs are allowed to see a direct write.
    let mut seen = Vec::new();
    for _ in 0..5 {
        let direct = concurrent_submitters_run();
        seen.push(direct);
        if direct.complete > 0 {
            break;
        }
    }
    let direct = *seen.last().unwrap();
    assert!(direct.complete > 0, "{seen:?}");
    const ALL: u64 = 8 * 400;
    assert!(direct.complete < ALL, "{direct:?}");
}

/// 8 threads send 400 frames each to a slow reader; checks each thread's order and returns
/// how many frames were written directly.
fn concurrent_submitters_run() -> DirectWrites {
    const THREADS: u64 = 8;
    const FRAMES: u64 = 400;
    let (r, w) = pipe();
    let writer = Arc::new(start(w));
    let read = reader(r, 50, Duration::from_millis(1));
    let start = Arc::new(Barrier::new(THREADS as usize));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let writer = writer.clone();
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                for i in 0..FRAMES {
                    // Mostly small, some near DIRECT_MAX, a few larger than the pipe.
                    let len = match (t + i) % 41 {
                        0 => 200_000,
                        1..=4 => 40_000 + 1_000 * (i as usize % 20),
                        _ => 20 + (i as usize * 37 + t as usize) % 2_000,
                    };
                    assert!(writer.send(frame((t << 32) | i, len)));
                    if i % 64 == 0 {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drained(&writer);
    let direct = writer.direct_writes();
    drop(writer);
    let frames = read.join().unwrap();
    assert_eq!(frames.len() as u64, THREADS * FRAMES);
    let mut next = vec![0; THREADS as usize];
    for f in &frames {
        let (t, i) = ((f.id >> 32) as usize, f.id & 0xffff_ffff);
        assert_eq!(i, next[t], "thread {t}");
        next[t] += 1;
    }
    direct
}

#[test]
fn sequential_frames_of_one_thread_with_large_ones_in_between() {
    let (r, w) = pipe();
    let writer = start(w);
    let read = reader(r, 3, Duration::from_millis(2));
    let sizes = [
        100, 3_000_000, 100, 65_000, 70_000, 13, 1_000_000, 5, 60_000, 60_000, 200,
    ];
    let mut id = 0;
    for _ in 0..5 {
        for &len in &sizes {
            let len = len.max(HEADER_LEN);
            assert!(writer.send(frame(id, len)));
            id += 1;
        }
    }
    drained(&writer);
    drop(writer);
    let ids: Vec<u64> = read.join().unwrap().iter().map(|f| f.id).collect();
    assert_eq!(ids, (0..id).collect::<Vec<_>>());
}

#[test]
fn close_writes_what_was_submitted_then_ends_the_pipe() {
    let (mut r, w) = pipe();
    let writer = start(w);
    assert!(writer.send(frame(1, PIPE_SIZE)));
    assert!(writer.send(frame(2, 10_000)));
    assert!(writer.send(frame(3, 200_000)));
    writer.close();
    assert!(!writer.send(frame(4, 100)));
    assert!(!writer.send(frame(5, 1_000_000)));

    read_bytes(&mut r, PIPE_SIZE);
    let mut reader = FrameReader::new(r);
    assert_eq!(reader.read_frame().unwrap().unwrap().id, 2);
    assert_eq!(reader.read_frame().unwrap().unwrap().id, 3);
    assert!(reader.read_frame().unwrap().is_none());
    drained(&writer);
}

#[test]
fn a_reader_that_goes_away_mid_write_stops_the_writer_cleanly() {
    let (r, w) = pipe();
    let (writer, _) = start_limited(w, Some((1_000, 10_000)), Some((1_000, 10_000)));
    assert!(writer.send(frame(1, PIPE_SIZE - 100)));
    assert!(writer.send(frame(2, 1_000)));
    assert!(writer.send(frame(3, 500_000)));
    assert!(writer.send(frame(4, 100)));
    drop(r);
    // The writer thread fails with EPIPE, drops what is left and stops.
    drained(&writer);
    eventually("submissions to fail", || !writer.send(frame(5, 100)));
    assert!(!writer.send(frame(6, 100_000)));
    // A stopped writer never suspends anybody.
    assert!(!writer.is_busy(7));
    drained(&writer);
}

#[test]
fn busy_waiters_are_notified_when_the_port_counter_drains() {
    let (r, w) = pipe();
    let (writer, woken) = start_limited(w, Some((1_000, 10_000)), None);
    assert!(!writer.is_busy(1));
    // Fills the pipe directly; then a large frame stays with the writer thread.
    assert!(writer.send(frame(1, PIPE_SIZE)));
    assert!(writer.send(frame(2, 300_000)));
    eventually("the frame to be taken", || writer.queued().msgq == 0);
    assert!(writer.queued().port > 10_000);
    assert!(writer.is_busy(7));
    assert!(writer.is_busy(8));
    assert!(writer.forget_waiter(&8));
    assert!(woken.try_recv().is_err());

    let read = reader(r, 0, Duration::ZERO);
    assert_eq!(woken.recv_timeout(Duration::from_secs(10)), Ok(7));
    drained(&writer);
    assert!(!writer.is_busy(9));
    drop(writer);
    let ids: Vec<u64> = read.join().unwrap().iter().map(|f| f.id).collect();
    assert_eq!(ids, vec![1, 2]);
    assert!(woken.try_recv().is_err());
}

#[test]
fn a_partial_rest_counts_for_the_port_limit() {
    let (mut r, w) = pipe();
    let (writer, woken) = start_limited(w, Some((100, 1_000)), Some((100, 1_000)));
    assert!(writer.send(frame(1, PIPE_SIZE)));
    assert!(writer.send(frame(2, 5_000)));
    assert_eq!(
        writer.direct_writes(),
        DirectWrites {
            complete: 1,
            partial: 1
        }
    );
    assert_eq!(
        writer.queued(),
        Queued {
            port: 5_000,
            msgq: 0
        }
    );
    assert!(writer.is_busy(3));
    read_bytes(&mut r, PIPE_SIZE);
    assert_eq!(woken.recv_timeout(Duration::from_secs(10)), Ok(3));
    drained(&writer);
    let mut reader = FrameReader::new(r);
    let f = reader.read_frame().unwrap().unwrap();
    assert_eq!(f.id, 2);
    check(&f);
}

#[test]
fn out_of_band_buffers_are_written_after_the_pickle_and_counted_in_the_frame() {
    use snex_core::pickle::{ExternalKind, PickleWriter};
    let (r, w) = pipe();
    let writer = start(w);
    let read = read_frames(r, Duration::ZERO);
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut p = PickleWriter::<Vec<u8>>::default();
    p.begin_list(2);
    p.out_of_band(ExternalKind::Bytes, big.clone()).unwrap();
    p.out_of_band(ExternalKind::Str, b"abc".repeat(30_000))
        .unwrap();
    p.end_list(2);
    assert!(p.out_of_band(ExternalKind::Str, vec![0xff]).is_err());
    let out = p.finish();
    let pickle = out.buf.clone();
    let frame = Outgoing::new(kind::EVAL, 9, out).unwrap();
    assert_eq!(
        frame.len(),
        HEADER_LEN + 4 + 2 * 9 + pickle.len() + big.len() + 90_000
    );
    assert!(writer.send(frame));
    assert!(writer.send(Outgoing::new(kind::EVAL, 10, PickleWriter::new().finish()).unwrap()));
    drained(&writer);
    drop(writer);
    let frames = read.join().unwrap();
    assert_eq!((frames[0].kind, frames[0].id), (kind::EVAL, 9));
    assert_eq!(frames[0].body, pickle);
    assert_eq!(frames[0].buffers, vec![big, b"abc".repeat(30_000)]);
    assert!(frames[1].buffers.is_empty());
}

/// Bytes that scribble over their memory when dropped: a reader that still finds them in the
/// pipe afterwards reads the scribbles.
struct Scribbled(Box<[u8]>);

impl AsRef<[u8]> for Scribbled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Scribbled {
    fn drop(&mut self) {
        self.0.fill(0xEE);
    }
}

#[test]
fn spliced_buffers_are_read_out_of_the_pipe_before_their_frame_is_dropped() {
    use snex_core::pickle::{ExternalKind, PickleWriter};
    let (r, w) = pipe();
    let writer = start(w);
    // A slow reader: the pipe is full most of the time.
    let read = read_frames(r, Duration::from_millis(20));
    let expected: Vec<Vec<u8>> = (0..4u32)
        .map(|n| (0..3_000_000u32).map(|i| ((i + n) % 249) as u8).collect())
        .collect();
    for (id, data) in expected.iter().enumerate() {
        let mut p = PickleWriter::<Scribbled>::default();
        p.out_of_band(
            ExternalKind::Bytes,
            Scribbled(data.clone().into_boxed_slice()),
        )
        .unwrap();
        assert!(writer.send(Outgoing::new(kind::EVAL, id as u64, p.finish()).unwrap()));
    }
    drained(&writer);
    if cfg!(target_os = "linux") {
        // All but the last pipe-full of each frame.
        assert_eq!(
            writer.spliced_bytes(),
            4 * (3_000_000 - PIPE_SIZE as u64),
            "the buffers were not spliced"
        );
    }
    drop(writer);
    let frames = read.join().unwrap();
    assert_eq!(frames.len(), 4);
    for (f, data) in frames.iter().zip(&expected) {
        assert!(f.buffers[0] == *data, "frame {} read dropped memory", f.id);
    }
}

#[test]
fn a_socket_gets_its_buffers_by_copy() {
    use snex_core::pickle::{ExternalKind, PickleWriter};
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    let (r, w) = UnixStream::pair().unwrap();
    let writer = start(File::from(OwnedFd::from(w)));
    let read = thread::spawn(move || {
        let mut reader = FrameReader::new(File::from(OwnedFd::from(r)));
        reader.read_frame().unwrap().unwrap()
    });
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
    let mut p = PickleWriter::<Scribbled>::default();
    p.out_of_band(
        ExternalKind::Bytes,
        Scribbled(data.clone().into_boxed_slice()),
    )
    .unwrap();
    assert!(writer.send(Outgoing::new(kind::EVAL, 1, p.finish()).unwrap()));
    let f = read.join().unwrap();
    assert!(f.buffers[0] == data);
    assert_eq!(writer.spliced_bytes(), 0);
}
