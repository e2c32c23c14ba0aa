//! The writer's failure report (`Writer::start_watched`): a pipe whose reader is gone.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::FromRawFd;
use std::sync::mpsc;
use std::time::Duration;

use snex_core::frame::kind;
use snex_core::writer::{Outgoing, Writer};

fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into the array on success.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

fn watched(w: File) -> (Writer<u32>, mpsc::Receiver<std::io::Error>) {
    let (tx, rx) = mpsc::channel();
    let writer = Writer::start_watched(
        w,
        None,
        None,
        |_| {},
        move |e| {
            let _ = tx.send(e);
        },
    )
    .unwrap();
    (writer, rx)
}

#[test]
fn a_write_into_a_pipe_without_reader_is_reported_once() {
    let (r, w) = pipe();
    let (writer, failures) = watched(w);
    drop(r);
    // Written directly, it fails, and the writer thread finds out.
    assert!(writer.send(Outgoing::empty(kind::CANCEL, 1)));
    let e = failures.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(e.kind(), ErrorKind::BrokenPipe);
    // The writer is closed then, and says so once.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while writer.send(Outgoing::empty(kind::CANCEL, 2)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer stays open"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(failures.recv_timeout(Duration::from_millis(200)).is_err());
}

#[test]
fn closing_the_writer_is_no_failure() {
    let (mut r, w) = pipe();
    let (writer, failures) = watched(w);
    assert!(writer.send(Outgoing::empty(kind::CANCEL, 1)));
    writer.close();
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    assert_eq!(all.len(), snex_core::frame::HEADER_LEN);
    // The writer thread has ended (the pipe is closed) without reporting anything.
    assert!(matches!(
        failures.recv_timeout(Duration::from_secs(1)),
        Err(mpsc::RecvTimeoutError::Disconnected)
    ));
}
