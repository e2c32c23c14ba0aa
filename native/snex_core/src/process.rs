//! Starting, watching and stopping a Python OS process.
//!
//! Python is started by a small helper program, `snex_helper` (crate `native/snex_helper`,
//! installed next to the NIF), which the NIF forks and execs:
//!
//! * The BEAM ignores `SIGCHLD`, so the kernel reaps its children at once and their exit status
//!   is lost to `wait`. The helper resets `SIGCHLD`, starts the target program (Python, or the
//!   wrapper that runs it) as its own child, and writes its pid and later its exit status into
//!   a status pipe, which we read.
//! * The helper leads a new process group, which Python and the processes it starts are in:
//!   stopping signals the group, and after the target exits the helper kills what is left of
//!   it.
//! * We hold the write end of the helper's *lifeline* pipe (close-on-exec, so no other child
//!   inherits it). When it closes - we dropped it, or the BEAM died, even by `SIGKILL` - the
//!   helper sees end of file and `SIGKILL`s the whole group, children of Python included.
//!
//! The target gets the transport pipes on fds 3 and 4 (or on stdin/stdout), the environment
//! and working directory of the spec, an empty signal mask, default signal dispositions and no
//! other fds. The helper's protocol is described in `native/snex_helper/src/main.rs`.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// What to start and how.
#[derive(Debug, Clone, Default)]
pub struct SpawnSpec {
    /// The `snex_helper` executable that starts and watches the program.
    pub helper: OsString,
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

/// Shared handle to a running (or finished) child process. The last clone to go closes the
/// lifeline: whatever is left of the child's process group is killed then.
#[derive(Clone)]
pub struct ChildHandle {
    inner: Arc<ChildState>,
}

struct ChildState {
    /// The target's pid (Python's, or the wrapper's).
    pid: u32,
    /// The helper's pid, which is also the process group id.
    pgid: u32,
    /// Where the helper writes the target's exit status.
    status_pipe: Mutex<Option<File>>,
    /// `None` while running, the exit status once it has exited.
    status: Mutex<Option<ExitStatusCode>>,
    exited: Condvar,
    /// Set by [`ChildHandle::kill`].
    killed: AtomicBool,
    /// The write end of the helper's lifeline; never written, only closed (when dropped).
    _lifeline: OwnedFd,
}

// The helper's side of the protocol, in `native/snex_helper/src/main.rs`: fds and status
// records (a tag byte and a big-endian u32).
const HELPER_TRANSPORT_READ_FD: RawFd = 3;
const HELPER_TRANSPORT_WRITE_FD: RawFd = 4;
const HELPER_STATUS_FD: RawFd = 5;
const HELPER_LIFELINE_FD: RawFd = 6;
const TAG_PID: u8 = b'p';
const TAG_START_ERROR: u8 = b'e';
const TAG_EXIT: u8 = b'x';

/// Starts the child described by `spec` through its helper.
pub fn spawn(spec: &SpawnSpec) -> io::Result<Spawned> {
    check_executable(&spec.helper).map_err(|e| {
        io::Error::new(e.kind(), format!("the Snex process helper is missing: {e}"))
    })?;
    check_executable(&spec.program)?;

    // (child reads, we write) and (we read, child writes); all close-on-exec.
    let (child_read, our_write) = pipe()?;
    let (our_read, child_write) = pipe()?;
    let (status_read, status_write) = pipe()?;
    let (lifeline_read, lifeline_write) = pipe()?;

    let mut cmd = Command::new(&spec.helper);
    cmd.arg(if spec.use_stdio { "stdio" } else { "fds" });
    cmd.arg(&spec.program);
    cmd.args(&spec.args);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(cd) = &spec.cd {
        cmd.current_dir(cd);
    }
    // The group exists from the start, before the helper runs.
    cmd.process_group(0);
    cmd.stderr(Stdio::inherit());

    let mut moves = [
        (status_write.as_raw_fd(), HELPER_STATUS_FD),
        (lifeline_read.as_raw_fd(), HELPER_LIFELINE_FD),
        (-1, HELPER_TRANSPORT_READ_FD),
        (-1, HELPER_TRANSPORT_WRITE_FD),
    ];
    // The child's ends must stay open until it has been spawned, and be closed right after.
    let child_ends = if spec.use_stdio {
        cmd.stdin(Stdio::from(child_read));
        cmd.stdout(Stdio::from(child_write));
        None
    } else {
        cmd.stdin(Stdio::null());
        cmd.stdout(Stdio::inherit());
        moves[2].0 = child_read.as_raw_fd();
        moves[3].0 = child_write.as_raw_fd();
        Some((child_read, child_write))
    };

    // SAFETY: the closure only calls fcntl and dup2 (async-signal-safe) on plain integers.
    unsafe {
        cmd.pre_exec(move || place_fds(&moves));
    }

    // std reaps the child itself when exec fails, and that wait panics when SIGCHLD is
    // ignored (as in the BEAM); the check above makes that path rare, this makes it harmless.
    let child = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cmd.spawn()))
        .map_err(|_| io::Error::other("cannot start the Snex process helper"))??;
    drop(child_ends);
    drop(cmd);
    drop(status_write);
    drop(lifeline_read);
    let pgid = child.id();
    // The helper is reaped by the kernel (or by `wait`); the std handle is not needed.
    drop(child);
    let mut status_pipe = File::from(status_read);
    let started = match read_record(&mut status_pipe) {
        Some((TAG_PID, pid)) => Ok(pid),
        Some((TAG_START_ERROR, errno)) => {
            let e = io::Error::from_raw_os_error(errno as i32);
            Err(io::Error::new(
                e.kind(),
                format!("cannot start {}: {e}", spec.program.to_string_lossy()),
            ))
        }
        _ => Err(io::Error::other(format!(
            "the Snex process helper {} did not start {}",
            spec.helper.to_string_lossy(),
            spec.program.to_string_lossy()
        ))),
    };
    let pid = match started {
        Ok(pid) => pid,
        Err(e) => {
            // Nothing is left running: the helper exits after a failed start, and the group
            // goes with the lifeline.
            drop(lifeline_write);
            reap(pgid);
            return Err(e);
        }
    };

    Ok(Spawned {
        handle: ChildHandle {
            inner: Arc::new(ChildState {
                pid,
                pgid,
                status_pipe: Mutex::new(Some(status_pipe)),
                status: Mutex::new(None),
                exited: Condvar::new(),
                killed: AtomicBool::new(false),
                _lifeline: lifeline_write,
            }),
        },
        to_child: File::from(our_write),
        from_child: File::from(our_read),
    })
}

/// Runs in the forked child before it execs the helper: puts each `(from, to)` fd at `to`
/// (without close-on-exec); `from` of -1 is skipped.
fn place_fds(moves: &[(RawFd, RawFd)]) -> io::Result<()> {
    // SAFETY: fcntl and dup2 on plain integers.
    unsafe {
        // Move every source above the targets first, so that no dup2 clobbers another source.
        let mut moved = [-1; 4];
        for (i, &(from, _)) in moves.iter().enumerate() {
            if from >= 0 {
                moved[i] = libc::fcntl(from, libc::F_DUPFD_CLOEXEC, 7);
                if moved[i] < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        for (i, &(_, to)) in moves.iter().enumerate() {
            if moved[i] >= 0 && libc::dup2(moved[i], to) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Reads one status record of the helper: a tag and a value. `None` at end of file.
fn read_record(pipe: &mut File) -> Option<(u8, u32)> {
    let mut record = [0u8; 5];
    pipe.read_exact(&mut record).ok()?;
    Some((
        record[0],
        u32::from_be_bytes([record[1], record[2], record[3], record[4]]),
    ))
}

/// Waits for our child `pid` to exit, if the kernel does not reap it for us (SIGCHLD not
/// ignored); returns at once with `ECHILD` when it was reaped already.
fn reap(pid: u32) {
    let mut raw = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(pid as libc::pid_t, &mut raw, 0) } < 0
        && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
    {}
}

/// Fails with `NotFound` unless `program` (a path, or a name on `PATH`) is executable.
fn check_executable(program: &OsStr) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let executable = |path: &std::path::Path| {
        std::ffi::CString::new(path.as_os_str().as_bytes())
            // SAFETY: access() reads a NUL-terminated path.
            .map(|c| unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 && path.is_file())
            .unwrap_or(false)
    };
    let found = if program.as_bytes().contains(&b'/') {
        executable(std::path::Path::new(program))
    } else {
        std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|dir| executable(&dir.join(program))))
            .unwrap_or(false)
    };
    if found {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} not found or not executable", program.to_string_lossy()),
        ))
    }
}

/// A pipe whose two ends are close-on-exec: atomically where the system has `pipe2` (Linux, the
/// BSDs); where it does not (macOS), a helper forked meanwhile by another thread may get a copy,
/// which it closes at start-up with every fd above 6.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = io::pipe()?;
    Ok((read.into(), write.into()))
}

impl ChildHandle {
    /// The target's OS pid (Python's, or the wrapper's with `wrap_exec`).
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The helper's OS pid, which is also the id of the process group of the target.
    pub fn pgid(&self) -> u32 {
        self.inner.pgid
    }

    /// The exit status if the child has exited.
    pub fn status(&self) -> Option<ExitStatusCode> {
        *lock(&self.inner.status)
    }

    /// Blocks until the target exits (as reported by the helper, which then kills what is left
    /// of the process group) and returns its status. Call it from exactly one thread.
    pub fn wait(&self) -> ExitStatusCode {
        let pipe = lock(&self.inner.status_pipe).take();
        let reported = pipe.and_then(|mut p| match read_record(&mut p) {
            Some((TAG_EXIT, code)) => Some(code as ExitStatusCode),
            _ => None,
        });
        let mut status = lock(&self.inner.status);
        reap(self.inner.pgid);
        let code = reported.unwrap_or_else(|| {
            // The helper itself was killed (e.g. the whole group got SIGKILL, or someone killed
            // the helper alone: then the target got its parent-death signal on Linux, and this
            // is what kills it elsewhere, and its children everywhere). Its group may still
            // have members, which keep the group id from being reused.
            let _ = killpg(
                Pid::from_raw(self.inner.pgid as libc::pid_t),
                Signal::SIGKILL,
            );
            128 + libc::SIGKILL
        });
        *status = Some(code);
        self.inner.exited.notify_all();
        code
    }

    /// Sends `signal` to the child's process group unless the child has already exited.
    /// Returns whether it was sent.
    pub fn signal_group(&self, signal: Signal) -> bool {
        let status = lock(&self.inner.status);
        // While the status is unknown the helper, whose pid is the group id, is alive: the
        // group cannot be a recycled one.
        status.is_none() && killpg(Pid::from_raw(self.inner.pgid as libc::pid_t), signal).is_ok()
    }

    /// Sends `SIGKILL` to the child's process group unless the child has already exited, and
    /// remembers that it did (see [`ChildHandle::killed`]). Returns whether it was sent.
    pub fn kill(&self) -> bool {
        let status = lock(&self.inner.status);
        if status.is_some() {
            return false;
        }
        // Marked before the signal, under the lock `wait` takes to record the status: whoever
        // sees the status set afterwards also sees the mark.
        self.inner.killed.store(true, Ordering::Release);
        let _ = killpg(
            Pid::from_raw(self.inner.pgid as libc::pid_t),
            Signal::SIGKILL,
        );
        true
    }

    /// True if [`ChildHandle::kill`] sent its signal before the child exited on its own.
    pub fn killed(&self) -> bool {
        self.inner.killed.load(Ordering::Acquire)
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
    // Starting programs needs the helper binary: those tests are in
    // `native/snex_helper/tests/process.rs`.
    use super::*;

    #[test]
    fn check_executable_finds_paths_and_names() {
        assert!(check_executable(OsStr::new("sh")).is_ok());
        assert!(check_executable(OsStr::new("/bin/sh")).is_ok());
        let missing = check_executable(OsStr::new("/nonexistent/python")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert!(missing.to_string().contains("/nonexistent/python"));
        // A directory is not a program.
        assert!(check_executable(OsStr::new("/tmp")).is_err());
    }

    #[test]
    fn missing_helper_is_a_clear_error() {
        let spec = SpawnSpec {
            helper: "/nonexistent/snex_helper".into(),
            program: "sh".into(),
            ..Default::default()
        };
        let e = spawn(&spec).err().expect("spawn must fail");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("process helper is missing"), "{e}");
    }

    #[test]
    fn pipes_are_close_on_exec() {
        let (r, w) = pipe().unwrap();
        for fd in [r.as_raw_fd(), w.as_raw_fd()] {
            // SAFETY: fcntl on fds we own.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        }
    }
}
