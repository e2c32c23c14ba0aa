//! Starting, reaping and stopping a Python OS process.
//!
//! The child gets the transport pipes on fds 3 and 4 (or on stdin/stdout), runs in its own
//! process group, and receives `SIGKILL` when the thread that spawned it dies (the BEAM's
//! scheduler threads live as long as the BEAM, so in practice: when the BEAM dies).
//!
//! Reaping and signalling share one lock so that a signal never reaches a recycled pid: the
//! reaper first waits for the exit *without* reaping (`WNOWAIT`), marks the child as exited under
//! the lock, and only then reaps it.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// What to start and how.
#[derive(Debug, Clone, Default)]
pub struct SpawnSpec {
    /// The executable (a path, or a name looked up on `PATH`).
    pub program: OsString,
    /// Its arguments (without the program name).
    pub args: Vec<OsString>,
    /// Environment variables set on top of the inherited ones.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory, if any.
    pub cd: Option<OsString>,
    /// Use the child's stdin/stdout as the transport instead of fds 3/4.
    pub use_stdio: bool,
}

/// A started child and the two ends of the transport that stay with us.
pub struct Spawned {
    /// Handle used to wait for and signal the child.
    pub handle: ChildHandle,
    /// Write end: what we write here the child reads.
    pub to_child: File,
    /// Read end: what the child writes we read here.
    pub from_child: File,
}

/// How the child ended, as a shell would report it: the exit code, or 128 + the signal number.
pub type ExitStatusCode = i32;

/// Shared handle to a running (or finished) child process.
#[derive(Clone)]
pub struct ChildHandle {
    inner: Arc<ChildState>,
}

struct ChildState {
    pid: u32,
    /// `None` while running, the exit status once it has exited.
    status: Mutex<Option<ExitStatusCode>>,
    exited: Condvar,
}

/// Starts the child described by `spec`.
pub fn spawn(spec: &SpawnSpec) -> io::Result<Spawned> {
    // (child reads, we write) and (we read, child writes); all close-on-exec.
    let (child_read, our_write) = pipe()?;
    let (our_read, child_write) = pipe()?;

    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(cd) = &spec.cd {
        cmd.current_dir(cd);
    }
    cmd.process_group(0);
    cmd.stderr(Stdio::inherit());

    let child_read_fd = child_read.as_raw_fd();
    let child_write_fd = child_write.as_raw_fd();
    // The child's ends must stay open until it has been spawned, and be closed right after.
    let child_ends = if spec.use_stdio {
        cmd.stdin(Stdio::from(child_read));
        cmd.stdout(Stdio::from(child_write));
        None
    } else {
        cmd.stdin(Stdio::null());
        cmd.stdout(Stdio::inherit());
        Some((child_read, child_write))
    };
    let use_stdio = spec.use_stdio;
    let parent_pid = std::process::id() as libc::pid_t;

    // SAFETY: the closure only calls async-signal-safe functions (dup2, fcntl, prctl,
    // sigprocmask, signal, getppid, syscall, _exit) and touches no heap memory.
    unsafe {
        cmd.pre_exec(move || prepare_child(use_stdio, child_read_fd, child_write_fd, parent_pid));
    }

    let child = cmd.spawn()?;
    drop(child_ends);
    drop(cmd);
    let pid = child.id();
    // We reap through waitid/waitpid ourselves; the std handle is not needed any more.
    drop(child);

    Ok(Spawned {
        handle: ChildHandle {
            inner: Arc::new(ChildState {
                pid,
                status: Mutex::new(None),
                exited: Condvar::new(),
            }),
        },
        to_child: File::from(our_write),
        from_child: File::from(our_read),
    })
}

/// Runs in the forked child before `exec`.
fn prepare_child(
    use_stdio: bool,
    child_read: RawFd,
    child_write: RawFd,
    parent_pid: libc::pid_t,
) -> io::Result<()> {
    // SAFETY: plain syscalls on integers; see the caller for signal safety.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
            return Err(io::Error::last_os_error());
        }
        // The parent may have died between fork and prctl.
        if libc::getppid() != parent_pid {
            libc::_exit(137);
        }
        // The BEAM blocks and ignores some signals in its threads; Python should start clean.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);

        if !use_stdio {
            // Move both ends above 4 first, so that dup2 onto 3 or 4 cannot clobber either.
            let r = libc::fcntl(child_read, libc::F_DUPFD_CLOEXEC, 5);
            let w = libc::fcntl(child_write, libc::F_DUPFD_CLOEXEC, 5);
            if r < 0 || w < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // Do not leak the BEAM's other descriptors into Python (Linux >= 5.11; best effort).
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        libc::syscall(
            libc::SYS_close_range,
            5 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        );
    }
    Ok(())
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl ChildHandle {
    /// The child's OS pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The exit status if the child has exited.
    pub fn status(&self) -> Option<ExitStatusCode> {
        *lock(&self.inner.status)
    }

    /// Blocks until the child exits, reaps it, kills what is left of its process group, and
    /// returns its status. Call it from exactly one thread.
    pub fn wait(&self) -> ExitStatusCode {
        let pid = self.inner.pid as libc::pid_t;
        // Wait without reaping, so that the pid stays ours while we take the lock.
        loop {
            // SAFETY: siginfo is plain data filled in by the kernel.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let rc = unsafe {
                libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break;
            }
        }
        let mut status = lock(&self.inner.status);
        let mut raw: libc::c_int = 0;
        // SAFETY: reaping our own child.
        let rc = unsafe { libc::waitpid(pid, &mut raw, 0) };
        let code = if rc == pid {
            let st = std::process::ExitStatus::from_raw(raw);
            match (st.code(), st.signal()) {
                (Some(c), _) => c,
                (None, Some(s)) => 128 + s,
                _ => 255,
            }
        } else {
            255
        };
        // Python's own children go with it.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        *status = Some(code);
        self.inner.exited.notify_all();
        code
    }

    /// Sends `signal` to the child's process group unless the child has already exited.
    pub fn signal_group(&self, signal: Signal) {
        let status = lock(&self.inner.status);
        if status.is_none() {
            let _ = killpg(Pid::from_raw(self.inner.pid as libc::pid_t), signal);
        }
    }

    /// Waits up to `timeout` for the child to exit (someone else must be calling [`wait`]).
    ///
    /// [`wait`]: ChildHandle::wait
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatusCode> {
        let deadline = Instant::now() + timeout;
        let mut status = lock(&self.inner.status);
        loop {
            if let Some(code) = *status {
                return Some(code);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            status = match self.inner.exited.wait_timeout(status, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Stops the child: the caller has already closed the pipe to it; waits `grace` for it to
    /// exit on its own, then sends `SIGTERM` to its group, waits `grace` again, then `SIGKILL`.
    pub fn terminate(&self, grace: Duration) -> Option<ExitStatusCode> {
        if let Some(code) = self.wait_timeout(grace) {
            return Some(code);
        }
        self.signal_group(Signal::SIGTERM);
        if let Some(code) = self.wait_timeout(grace) {
            return Some(code);
        }
        self.signal_group(Signal::SIGKILL);
        self.wait_timeout(Duration::from_secs(5))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn sh(script: &str) -> SpawnSpec {
        SpawnSpec {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            ..Default::default()
        }
    }

    #[test]
    fn pipes_are_on_fds_3_and_4() {
        let mut s = spawn(&sh("read line <&3; echo \"got $line\" >&4")).unwrap();
        let waiter = s.handle.clone();
        let t = std::thread::spawn(move || waiter.wait());
        s.to_child.write_all(b"hello\n").unwrap();
        let mut out = String::new();
        s.from_child.read_to_string(&mut out).unwrap();
        assert_eq!(out, "got hello\n");
        assert_eq!(t.join().unwrap(), 0);
    }

    #[test]
    fn stdio_transport() {
        let mut s = spawn(&SpawnSpec {
            use_stdio: true,
            ..sh("read line; echo \"got $line\"")
        })
        .unwrap();
        let waiter = s.handle.clone();
        let t = std::thread::spawn(move || waiter.wait());
        s.to_child.write_all(b"x\n").unwrap();
        let mut out = String::new();
        s.from_child.read_to_string(&mut out).unwrap();
        assert_eq!(out, "got x\n");
        assert_eq!(t.join().unwrap(), 0);
    }

    #[test]
    fn env_and_cd() {
        let mut spec = sh("echo \"$SNEX_T:$(pwd)\" >&4");
        spec.env.push(("SNEX_T".into(), "v".into()));
        spec.cd = Some("/tmp".into());
        let mut s = spawn(&spec).unwrap();
        let waiter = s.handle.clone();
        let t = std::thread::spawn(move || waiter.wait());
        drop(s.to_child);
        let mut out = String::new();
        s.from_child.read_to_string(&mut out).unwrap();
        assert_eq!(out, "v:/tmp\n");
        assert_eq!(t.join().unwrap(), 0);
    }

    #[test]
    fn exit_codes_and_signals() {
        let s = spawn(&sh("exit 7")).unwrap();
        assert_eq!(s.handle.wait(), 7);
        let s = spawn(&sh("kill -9 $$")).unwrap();
        assert_eq!(s.handle.wait(), 128 + 9);
    }

    #[test]
    fn terminate_escalates_to_kill() {
        // Ignores SIGTERM and never reads its pipe.
        let s = spawn(&sh("trap '' TERM; while true; do sleep 0.05; done")).unwrap();
        let waiter = s.handle.clone();
        let t = std::thread::spawn(move || waiter.wait());
        drop(s.to_child);
        let started = Instant::now();
        let code = s.handle.terminate(Duration::from_millis(200));
        assert_eq!(code, Some(128 + 9));
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(t.join().unwrap(), 128 + 9);
    }

    #[test]
    fn missing_program_is_an_error() {
        let spec = SpawnSpec {
            program: "/nonexistent/python".into(),
            ..Default::default()
        };
        assert!(spawn(&spec).is_err());
    }
}
