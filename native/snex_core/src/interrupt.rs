//! Interrupting the request Python is running synchronously, so that a cancelled request does
//! not hold the interpreter (see `docs/decisions.md`, "Cancelling synchronous code").
//!
//! Python announces its pid in a `HELLO` frame. A cancellation writes a `CANCEL` frame, and
//! `SIGUSR2` is sent to that pid, once at once and once after the frame is in the pipe: the
//! runner's signal handler reads the pipe and raises in the running request if it is the one
//! cancelled. The signal goes only to a pid in the interpreter's own process group, so never to
//! a process of another machine or container that a `wrap_exec` wrapper talks to.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpgid, Pid};

/// Where cancellation signals go: Python's pid (once known) within its process group.
#[derive(Debug)]
pub struct Interrupter {
    pid: AtomicU32,
    pgid: u32,
}

impl Interrupter {
    /// An interrupter for a process group; it signals nobody until [`Interrupter::set_pid`].
    pub fn new(pgid: u32) -> Self {
        Interrupter {
            pid: AtomicU32::new(0),
            pgid,
        }
    }

    /// Records Python's pid, as Python announced it.
    pub fn set_pid(&self, pid: u32) {
        self.pid.store(pid, Ordering::Release);
    }

    /// Sends `SIGUSR2` to Python if its pid is known and it is in the process group. Returns
    /// whether a signal was sent.
    pub fn interrupt(&self) -> bool {
        let pid = self.pid.load(Ordering::Acquire);
        let Ok(raw) = i32::try_from(pid) else {
            return false;
        };
        if raw <= 1 {
            return false;
        }
        let target = Pid::from_raw(raw);
        match getpgid(Some(target)) {
            Ok(group) if group.as_raw() as u32 == self.pgid => {
                kill(target, Signal::SIGUSR2).is_ok()
            }
            _ => false,
        }
    }
}

/// How long after a cancellation the last signal is sent: a signal that arrives in the instant
/// before a blocking call (`time.sleep`) starts is only seen when the call returns, so one more
/// signal a little later catches that case.
pub const LATE_SIGNAL: Duration = Duration::from_millis(100);

/// Sends `SIGUSR2` through `interrupter` once more after [`LATE_SIGNAL`], from one thread shared
/// by all interpreters (started on first use). Never blocks.
pub fn interrupt_later(interrupter: Arc<Interrupter>) {
    type Due = (Instant, Arc<Interrupter>);
    static LATER: OnceLock<Mutex<Option<Sender<Due>>>> = OnceLock::new();
    let sender = LATER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Due>();
        let started = std::thread::Builder::new()
            .name("snex-late-signal".into())
            .spawn(move || {
                // Every entry waits the same delay, so they arrive in the order they are due.
                while let Ok((due, target)) = rx.recv() {
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    target.interrupt();
                }
            });
        Mutex::new(started.ok().map(|_| tx))
    });
    if let Some(tx) = sender.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        let _ = tx.send((Instant::now() + LATE_SIGNAL, interrupter));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_signal_before_the_pid_is_known() {
        let i = Interrupter::new(std::process::id());
        assert!(!i.interrupt());
    }

    #[test]
    fn no_signal_outside_the_group() {
        // pid 1 is never signalled, and our own pid is not in a group led by pid 2^31 - 2.
        let i = Interrupter::new(u32::MAX - 1);
        i.set_pid(1);
        assert!(!i.interrupt());
        i.set_pid(std::process::id());
        assert!(!i.interrupt());
    }

    #[test]
    fn signals_a_member_of_the_group() {
        use std::io::{BufRead, BufReader};
        use std::os::unix::process::CommandExt;
        use std::process::{Command, Stdio};
        // A child in its own group that reports SIGUSR2 by exiting with status 3.
        let mut child = Command::new("sh")
            .args([
                "-c",
                "trap 'exit 3' USR2; echo ready; while true; do sleep 0.01; done",
            ])
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        let pid = child.id();
        let i = Interrupter::new(pid);
        i.set_pid(pid);
        assert!(i.interrupt());
        assert_eq!(child.wait().unwrap().code(), Some(3));
    }
}
