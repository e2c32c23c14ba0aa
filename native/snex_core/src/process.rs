//! Starting, watching and stopping a Python OS process.
//!
//! The BEAM ignores `SIGCHLD`, so the kernel reaps its children at once and their exit status
//! is lost to `wait`. Python is therefore started through a small shim: the forked child (the
//! shim) sets `SIGCHLD` back to default, forks again, and the grandchild execs Python. The shim
//! waits for Python and writes its pid and then its exit status into a status pipe, which we
//! read. Both run in a new process group led by the shim, and both have `PR_SET_PDEATHSIG`
//! (`SIGKILL`): the shim dies with the thread that spawned it (the BEAM's scheduler threads live
//! as long as the BEAM), and Python dies with the shim.
//!
//! The child gets the transport pipes on fds 3 and 4 (or on stdin/stdout).

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
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
    /// Python's pid.
    pid: u32,
    /// The shim's pid, which is also the process group id.
    pgid: u32,
    /// Where the shim writes Python's exit status.
    status_pipe: Mutex<Option<File>>,
    /// `None` while running, the exit status once it has exited.
    status: Mutex<Option<ExitStatusCode>>,
    exited: Condvar,
}

/// Starts the child described by `spec`.
pub fn spawn(spec: &SpawnSpec) -> io::Result<Spawned> {
    // (child reads, we write) and (we read, child writes); all close-on-exec.
    let (child_read, our_write) = pipe()?;
    let (our_read, child_write) = pipe()?;
    let (status_read, status_write) = pipe()?;

    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(cd) = &spec.cd {
        cmd.current_dir(cd);
    }
    cmd.stderr(Stdio::inherit());

    let status_fd = status_write.as_raw_fd();
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
        cmd.pre_exec(move || {
            fork_shim(status_fd, parent_pid)?;
            prepare_python(use_stdio, child_read_fd, child_write_fd)
        });
    }

    check_executable(&spec.program)?;
    // std reaps the child itself when exec fails, and that wait panics when SIGCHLD is
    // ignored (as in the BEAM); the check above makes that path rare, this makes it harmless.
    let child = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cmd.spawn()))
        .map_err(|_| io::Error::other("cannot start the program"))??;
    drop(child_ends);
    drop(cmd);
    drop(status_write);
    let pgid = child.id();
    // The shim is reaped by the kernel (or by `wait`); the std handle is not needed.
    drop(child);
    let mut status_pipe = File::from(status_read);
    let mut pid_bytes = [0u8; 4];
    if let Err(e) = status_pipe.read_exact(&mut pid_bytes) {
        let _ = killpg(Pid::from_raw(pgid as libc::pid_t), Signal::SIGKILL);
        return Err(io::Error::new(
            e.kind(),
            "the process shim did not start Python",
        ));
    }
    let pid = u32::from_be_bytes(pid_bytes);

    Ok(Spawned {
        handle: ChildHandle {
            inner: Arc::new(ChildState {
                pid,
                pgid,
                status_pipe: Mutex::new(Some(status_pipe)),
                status: Mutex::new(None),
                exited: Condvar::new(),
            }),
        },
        to_child: File::from(our_write),
        from_child: File::from(our_read),
    })
}

/// Fails with `NotFound` unless `program` (a path, or a name on `PATH`) is executable.
fn check_executable(program: &std::ffi::OsStr) -> io::Result<()> {
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

/// Runs in the forked child: becomes the shim (which never returns from here) after forking
/// the grandchild that goes on to exec Python.
fn fork_shim(status_fd: RawFd, parent_pid: libc::pid_t) -> io::Result<()> {
    // SAFETY: only async-signal-safe calls (prctl, getppid, signal, setpgid, fork, waitpid,
    // write, syscall, _exit) on plain integers; no heap memory is touched.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
            return Err(io::Error::last_os_error());
        }
        // The BEAM may have died between fork and prctl.
        if libc::getppid() != parent_pid {
            libc::_exit(137);
        }
        libc::setpgid(0, 0);
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        let shim_pid = libc::getpid();
        let python = libc::fork();
        if python < 0 {
            return Err(io::Error::last_os_error());
        }
        if python == 0 {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != shim_pid {
                libc::_exit(137);
            }
            return Ok(());
        }
        run_shim(status_fd, python)
    }
}

/// The shim's whole life: report Python's pid, wait for it, report its status, exit.
unsafe fn run_shim(status_fd: RawFd, python: libc::pid_t) -> ! {
    // Stopping sends SIGTERM to the group; the shim outlives it to report the status.
    libc::signal(libc::SIGTERM, libc::SIG_IGN);
    libc::signal(libc::SIGINT, libc::SIG_IGN);
    libc::signal(libc::SIGHUP, libc::SIG_IGN);
    // Keep only the status pipe: holding the transport pipes (or the pipe std uses to report
    // exec errors) open would hide their closing from the other side.
    let status = libc::fcntl(status_fd, libc::F_DUPFD, 0);
    for fd in 0..status {
        libc::close(fd);
    }
    libc::syscall(
        libc::SYS_close_range,
        (status + 1) as libc::c_uint,
        libc::c_uint::MAX,
        0 as libc::c_uint,
    );
    let pid_bytes = (python as u32).to_be_bytes();
    write_all_raw(status, &pid_bytes);
    let mut raw: libc::c_int = 0;
    let code: u32 = loop {
        let rc = libc::waitpid(python, &mut raw, 0);
        if rc == python {
            break if libc::WIFEXITED(raw) {
                libc::WEXITSTATUS(raw) as u32
            } else if libc::WIFSIGNALED(raw) {
                128 + libc::WTERMSIG(raw) as u32
            } else {
                255
            };
        }
        if rc < 0 && *libc::__errno_location() != libc::EINTR {
            break 255;
        }
    };
    write_all_raw(status, &code.to_be_bytes());
    libc::_exit(0)
}

unsafe fn write_all_raw(fd: RawFd, bytes: &[u8]) {
    let mut done = 0;
    while done < bytes.len() {
        let n = libc::write(
            fd,
            bytes[done..].as_ptr() as *const libc::c_void,
            bytes.len() - done,
        );
        if n <= 0 {
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            return;
        }
        done += n as usize;
    }
}

/// Runs in the grandchild before it execs Python.
fn prepare_python(use_stdio: bool, child_read: RawFd, child_write: RawFd) -> io::Result<()> {
    // SAFETY: plain syscalls on integers; see `fork_shim` for signal safety.
    unsafe {
        // The BEAM blocks and ignores some signals in its threads; Python should start clean.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        for sig in [libc::SIGPIPE, libc::SIGINT, libc::SIGTERM, libc::SIGCHLD] {
            libc::signal(sig, libc::SIG_DFL);
        }

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

    /// The child's process group id.
    pub fn pgid(&self) -> u32 {
        self.inner.pgid
    }

    /// The exit status if the child has exited.
    pub fn status(&self) -> Option<ExitStatusCode> {
        *lock(&self.inner.status)
    }

    /// Blocks until Python exits (as reported by the shim), kills what is left of its process
    /// group, and returns its status. Call it from exactly one thread.
    pub fn wait(&self) -> ExitStatusCode {
        let pipe = lock(&self.inner.status_pipe).take();
        let mut code_bytes = [0u8; 4];
        let code = match pipe.map(|mut p| p.read_exact(&mut code_bytes)) {
            Some(Ok(())) => u32::from_be_bytes(code_bytes) as ExitStatusCode,
            // The shim itself was killed (e.g. the whole group got SIGKILL).
            _ => 128 + libc::SIGKILL,
        };
        let mut status = lock(&self.inner.status);
        // Reap the shim if the kernel does not do it for us (SIGCHLD not ignored).
        // SAFETY: waiting for our own child; ECHILD when already reaped is fine.
        unsafe {
            let mut raw = 0;
            libc::waitpid(self.inner.pgid as libc::pid_t, &mut raw, 0);
        }
        // Python's own children go with it.
        let _ = killpg(
            Pid::from_raw(self.inner.pgid as libc::pid_t),
            Signal::SIGKILL,
        );
        *status = Some(code);
        self.inner.exited.notify_all();
        code
    }

    /// Sends `signal` to the child's process group unless the child has already exited.
    pub fn signal_group(&self, signal: Signal) {
        let status = lock(&self.inner.status);
        if status.is_none() {
            let _ = killpg(Pid::from_raw(self.inner.pgid as libc::pid_t), signal);
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
    fn status_is_reported_when_sigchld_is_ignored() {
        // As in the BEAM: children are reaped by the kernel, yet the shim reports the status.
        // SAFETY: changes this test binary's disposition only; the shim resets it for itself.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        let s = spawn(&sh("exit 9")).unwrap();
        assert_eq!(s.handle.wait(), 9);
        let s = spawn(&sh("kill -11 $$")).unwrap();
        assert_eq!(s.handle.wait(), 128 + 11);
    }

    #[test]
    fn pid_is_pythons_not_the_shims() {
        let mut s = spawn(&sh("echo $$ >&4")).unwrap();
        let waiter = s.handle.clone();
        let t = std::thread::spawn(move || waiter.wait());
        drop(s.to_child);
        let mut out = String::new();
        s.from_child.read_to_string(&mut out).unwrap();
        assert_eq!(out.trim(), s.handle.pid().to_string());
        assert_eq!(t.join().unwrap(), 0);
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
