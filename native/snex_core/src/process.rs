//! Starting, watching and stopping a Python OS process.
//!
//! Python is started by a small helper program, `snex_helper` (crate `native/snex_helper`,
//! installed next to the NIF), which the NIF starts (`posix_spawn` on Linux, `fork` and exec
//! elsewhere):
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
#[cfg(not(target_os = "linux"))]
use std::os::unix::process::CommandExt;
#[cfg(not(target_os = "linux"))]
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
/// The lowest fd above those the helper gets.
const FIRST_FREE_FD: RawFd = 7;

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

    let (stdio, moves) = if spec.use_stdio {
        (
            Some((child_read.as_raw_fd(), child_write.as_raw_fd())),
            [
                (status_write.as_raw_fd(), HELPER_STATUS_FD),
                (lifeline_read.as_raw_fd(), HELPER_LIFELINE_FD),
                (-1, HELPER_TRANSPORT_READ_FD),
                (-1, HELPER_TRANSPORT_WRITE_FD),
            ],
        )
    } else {
        (
            None,
            [
                (status_write.as_raw_fd(), HELPER_STATUS_FD),
                (lifeline_read.as_raw_fd(), HELPER_LIFELINE_FD),
                (child_read.as_raw_fd(), HELPER_TRANSPORT_READ_FD),
                (child_write.as_raw_fd(), HELPER_TRANSPORT_WRITE_FD),
            ],
        )
    };
    let pgid = start_helper(spec, stdio, &moves)?;
    // The child's ends are the helper's now.
    drop((child_read, child_write, status_write, lifeline_read));
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

/// Starts the helper (`spec.helper fds|stdio PROGRAM ARGS...`) in a new process group, with the
/// environment and working directory of `spec`; returns its pid. `stdio` is `Some((stdin,
/// stdout))` for the stdio transport (else stdin is `/dev/null` and stdout is inherited), and
/// each `(from, to)` of `moves` puts fd `from` at `to` (`from` of -1: nothing at `to`).
///
/// On Linux this is `posix_spawn`, which the C library implements with `vfork` semantics: the
/// BEAM's address space is not copied, as `fork` does (milliseconds for a large VM, plus
/// copy-on-write faults for the whole VM until the child has exec'ed; see "Start-up" in
/// `docs/decisions.md`).
#[cfg(target_os = "linux")]
fn start_helper(
    spec: &SpawnSpec,
    stdio: Option<(RawFd, RawFd)>,
    moves: &[(RawFd, RawFd)],
) -> io::Result<u32> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    // Without the text: it may be a secret of the environment.
    let c_string = |s: &OsStr| {
        CString::new(s.as_bytes()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "nul byte found in an argument or environment variable",
            )
        })
    };
    let mode = OsStr::new(if spec.use_stdio { "stdio" } else { "fds" });
    let mut argv = vec![
        c_string(&spec.helper)?,
        c_string(mode)?,
        c_string(&spec.program)?,
    ];
    for arg in &spec.args {
        argv.push(c_string(arg)?);
    }
    // The inherited environment with the spec's variables on top (as `Command` does).
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| !spec.env.iter().any(|(key, _)| key == k))
        .collect();
    env.extend(spec.env.iter().cloned());
    let mut envp = Vec::with_capacity(env.len());
    for (k, v) in &env {
        let mut entry = k.clone();
        entry.push("=");
        entry.push(v);
        envp.push(c_string(&entry)?);
    }
    let cd = spec.cd.as_deref().map(c_string).transpose()?;
    let dev_null = c_string(OsStr::new("/dev/null"))?;

    // Every source goes above the targets first (close-on-exec, so that only the file
    // actions' dup2s reach the helper): no dup2 then clobbers another source.
    let raise = |fd: RawFd| -> io::Result<Option<OwnedFd>> {
        if fd < 0 {
            return Ok(None);
        }
        // SAFETY: fcntl on an fd we own; the result is a new fd we then own.
        let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, FIRST_FREE_FD) };
        if high < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `high` was just created and is owned by nobody else.
        Ok(Some(unsafe {
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(high)
        }))
    };
    let mut placed = Vec::with_capacity(moves.len() + 2);
    if let Some((stdin, stdout)) = stdio {
        placed.push((raise(stdin)?, 0));
        placed.push((raise(stdout)?, 1));
    }
    for &(from, to) in moves {
        placed.push((raise(from)?, to));
    }

    let mut argv_ptrs: Vec<*mut libc::c_char> = argv.iter().map(|a| a.as_ptr() as *mut _).collect();
    argv_ptrs.push(std::ptr::null_mut());
    let mut envp_ptrs: Vec<*mut libc::c_char> = envp.iter().map(|e| e.as_ptr() as *mut _).collect();
    envp_ptrs.push(std::ptr::null_mut());

    let mut spawn = SpawnAttrs::new()?;
    // SAFETY: the attribute objects are initialised by `SpawnAttrs::new` and destroyed by its
    // drop; every pointer passed stays valid until posix_spawn returns.
    unsafe {
        let check = |rc: libc::c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(rc))
            }
        };
        if stdio.is_none() {
            check(libc::posix_spawn_file_actions_addopen(
                &mut spawn.actions,
                0,
                dev_null.as_ptr(),
                libc::O_RDONLY,
                0,
            ))?;
        }
        for (fd, to) in &placed {
            if let Some(fd) = fd {
                check(libc::posix_spawn_file_actions_adddup2(
                    &mut spawn.actions,
                    fd.as_raw_fd(),
                    *to,
                ))?;
            }
        }
        if let Some(cd) = &cd {
            check(libc::posix_spawn_file_actions_addchdir_np(
                &mut spawn.actions,
                cd.as_ptr(),
            ))?;
        }
        // A new process group, an empty signal mask, and SIGPIPE back to its default (the
        // BEAM ignores it), as `Command` does; the helper resets the rest for the program.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        let mut defaults: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut defaults);
        libc::sigaddset(&mut defaults, libc::SIGPIPE);
        check(libc::posix_spawnattr_setpgroup(&mut spawn.attr, 0))?;
        check(libc::posix_spawnattr_setsigmask(&mut spawn.attr, &empty))?;
        check(libc::posix_spawnattr_setsigdefault(
            &mut spawn.attr,
            &defaults,
        ))?;
        check(libc::posix_spawnattr_setflags(
            &mut spawn.attr,
            (libc::POSIX_SPAWN_SETPGROUP
                | libc::POSIX_SPAWN_SETSIGMASK
                | libc::POSIX_SPAWN_SETSIGDEF) as libc::c_short,
        ))?;
        let mut pid: libc::pid_t = 0;
        let run = if spec.helper.as_bytes().contains(&b'/') {
            libc::posix_spawn
        } else {
            libc::posix_spawnp
        };
        check(run(
            &mut pid,
            argv[0].as_ptr(),
            &spawn.actions,
            &spawn.attr,
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
        ))?;
        Ok(pid as u32)
    }
}

/// The file actions and attributes of one `posix_spawn`, destroyed when dropped.
#[cfg(target_os = "linux")]
struct SpawnAttrs {
    actions: libc::posix_spawn_file_actions_t,
    attr: libc::posix_spawnattr_t,
}

#[cfg(target_os = "linux")]
impl SpawnAttrs {
    fn new() -> io::Result<Box<Self>> {
        // SAFETY: zeroed storage, then initialised by the init functions before any use; a
        // failed init destroys what was initialised.
        unsafe {
            let mut this = Box::new(SpawnAttrs {
                actions: std::mem::zeroed(),
                attr: std::mem::zeroed(),
            });
            let rc = libc::posix_spawn_file_actions_init(&mut this.actions);
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            let rc = libc::posix_spawnattr_init(&mut this.attr);
            if rc != 0 {
                libc::posix_spawn_file_actions_destroy(&mut this.actions);
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(this)
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for SpawnAttrs {
    fn drop(&mut self) {
        // SAFETY: both were initialised in `new`.
        unsafe {
            libc::posix_spawn_file_actions_destroy(&mut self.actions);
            libc::posix_spawnattr_destroy(&mut self.attr);
        }
    }
}

/// [`start_helper`] with `fork` (through `Command`) where `posix_spawn` cannot change the
/// working directory everywhere.
#[cfg(not(target_os = "linux"))]
fn start_helper(
    spec: &SpawnSpec,
    stdio: Option<(RawFd, RawFd)>,
    moves: &[(RawFd, RawFd)],
) -> io::Result<u32> {
    use std::os::fd::BorrowedFd;

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
    match stdio {
        Some((stdin, stdout)) => {
            // SAFETY: both fds stay open until the helper has been spawned.
            let (stdin, stdout) = unsafe {
                (
                    BorrowedFd::borrow_raw(stdin),
                    BorrowedFd::borrow_raw(stdout),
                )
            };
            cmd.stdin(Stdio::from(stdin.try_clone_to_owned()?));
            cmd.stdout(Stdio::from(stdout.try_clone_to_owned()?));
        }
        None => {
            cmd.stdin(Stdio::null());
            cmd.stdout(Stdio::inherit());
        }
    }
    let moves: Vec<(RawFd, RawFd)> = moves.to_vec();
    // SAFETY: the closure only calls fcntl and dup2 (async-signal-safe) on plain integers.
    unsafe {
        cmd.pre_exec(move || place_fds(&moves));
    }
    // std reaps the child itself when exec fails, and that wait panics when SIGCHLD is
    // ignored (as in the BEAM); the check in `spawn` makes that path rare, this makes it
    // harmless.
    let child = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cmd.spawn()))
        .map_err(|_| io::Error::other("cannot start the Snex process helper"))??;
    let pid = child.id();
    // The helper is reaped by the kernel (or by `wait`); the std handle is not needed.
    drop(child);
    Ok(pid)
}

/// Runs in the forked child before it execs the helper: puts each `(from, to)` fd at `to`
/// (without close-on-exec); `from` of -1 is skipped.
#[cfg(not(target_os = "linux"))]
fn place_fds(moves: &[(RawFd, RawFd)]) -> io::Result<()> {
    // SAFETY: fcntl and dup2 on plain integers.
    unsafe {
        // Move every source above the targets first, so that no dup2 clobbers another source.
        let mut moved = [-1; 4];
        for (i, &(from, _)) in moves.iter().enumerate() {
            if from >= 0 {
                moved[i] = libc::fcntl(from, libc::F_DUPFD_CLOEXEC, FIRST_FREE_FD);
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
