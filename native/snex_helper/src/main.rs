//! `snex_helper`: starts one program (Python, or the wrapper that runs it) for the Snex NIF and
//! watches it; see "A helper program starts and watches Python" in `docs/decisions.md`.
//!
//! The NIF runs `snex_helper MODE PROGRAM [ARGS...]` (`MODE` is `fds` or `stdio`), with the
//! program's environment and working directory already set, and these file descriptors:
//!
//! | fd      | what                                                                        |
//! |---------|-----------------------------------------------------------------------------|
//! | 0, 1, 2 | the program's stdin, stdout and stderr (with `stdio`, 0 and 1 are the transport) |
//! | 3, 4    | with `fds`: the transport (the program reads 3 and writes 4)                 |
//! | 5       | the status pipe (write end)                                                 |
//! | 6       | the lifeline (read end): the NIF holds the only write end                   |
//!
//! The helper
//!
//! 1. leads a new process group: the program and the processes it starts are in it;
//! 2. forks and execs the program with an empty signal mask, default signal dispositions, only
//!    fds 0-2 (and 3-4 with `fds`) open, and on Linux `PR_SET_PDEATHSIG` set to `SIGKILL`, so
//!    that the program dies if the helper is killed (on every system, the starter also kills
//!    the group when the status pipe closes without an exit status: see
//!    `snex_core::process::ChildHandle::wait`);
//! 3. writes records of 5 bytes (a tag, then a big-endian `u32`) into the status pipe: `p` and
//!    the program's pid once exec has succeeded, or `e` and the `errno` of a failed start; then
//!    `x` and the program's exit status (its exit code, or 128 + the number of the signal that
//!    killed it);
//! 4. after reporting the exit, `SIGKILL`s what is left of its group (the program's children),
//!    itself included;
//! 5. when the lifeline reaches end of file first (whoever started the helper is gone, even
//!    killed by `SIGKILL`: the kernel closes its write end), `SIGKILL`s the whole group at once.
//!
//! Portability: the Linux-only calls (`PR_SET_PDEATHSIG`, `close_range`, the raw
//! `rt_sigaction` that also resets glibc's reserved signals) are behind
//! `cfg(target_os = "linux")`; elsewhere the helper closes fds with `closefrom` (the BSDs) or
//! those listed in `/dev/fd` (macOS), and resets dispositions with `signal`. Only Linux is
//! tested.
//!
//! The helper ignores `SIGTERM`, `SIGINT` and `SIGHUP`: stopping an interpreter sends `SIGTERM`
//! to the group, and the helper outlives it to report the program's real exit status. It uses
//! nothing but `libc` and keeps no copy of the transport, so that the other end sees the
//! program close it.

use std::ffi::{c_char, CString};
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

use libc::c_int;

/// The status pipe's write end.
const STATUS_FD: c_int = 5;
/// The lifeline's read end.
const LIFELINE_FD: c_int = 6;
/// Every fd from here on is closed at start-up.
const FIRST_OTHER_FD: c_int = 7;

/// Status record: the program runs, with this pid.
const TAG_PID: u8 = b'p';
/// Status record: the program could not be started (the value is an `errno`).
const TAG_START_ERROR: u8 = b'e';
/// Status record: the program exited with this status.
const TAG_EXIT: u8 = b'x';

/// Exit code of the forked child when exec fails.
const EXEC_FAILED: c_int = 127;

/// Write end of the pipe the `SIGCHLD` handler writes into.
static SIGCHLD_PIPE: AtomicI32 = AtomicI32::new(-1);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The transport is on fds 3 and 4.
    Fds,
    /// The transport is on stdin and stdout.
    Stdio,
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let mode = match args.next().as_deref().and_then(|m| m.to_str()) {
        Some("fds") => Mode::Fds,
        Some("stdio") => Mode::Stdio,
        _ => return usage(),
    };
    let Ok(argv) = args
        .map(|a| CString::new(a.into_vec()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return usage();
    };
    // SAFETY: fcntl on plain integers.
    let fds_open = [STATUS_FD, LIFELINE_FD]
        .iter()
        .all(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1);
    if argv.is_empty() || !fds_open {
        return usage();
    }
    // SAFETY: the helper is single-threaded; `run` only makes plain system calls.
    unsafe { run(mode, &argv) }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: snex_helper fds|stdio PROGRAM [ARGS...]\n\
         Started by the Snex NIF, with its status pipe on fd 5 and its lifeline on fd 6."
    );
    ExitCode::from(2)
}

/// Starts the program and watches it; never returns.
unsafe fn run(mode: Mode, argv: &[CString]) -> ! {
    for fd in [STATUS_FD, LIFELINE_FD] {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    close_from(FIRST_OTHER_FD);
    if mode == Mode::Stdio {
        // Not the transport: whatever the starter left there must not reach the program.
        libc::close(3);
        libc::close(4);
    }
    // Usually done already by the NIF (so that the group exists from the start).
    libc::setpgid(0, 0);
    let helper = libc::getpid();
    if libc::getpgrp() != helper {
        // Killing "the group" would then hit our starter's group.
        fail_start(libc::EPERM);
    }
    let sigchld = match setup_signals() {
        Ok(fd) => fd,
        Err(e) => fail_start(e),
    };
    let (err_read, err_write) = match pipe_cloexec() {
        Ok(fds) => fds,
        Err(e) => fail_start(e),
    };
    let mut ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());

    let child = libc::fork();
    if child < 0 {
        fail_start(errno());
    }
    if child == 0 {
        exec_program(helper, &ptrs, err_write);
    }
    libc::close(err_write);
    release_transport(mode);
    // The exec error pipe closes without data when exec succeeds (it is close-on-exec).
    let mut err = [0u8; 4];
    if read_full(err_read, &mut err) == err.len() {
        let mut raw = 0;
        while libc::waitpid(child, &mut raw, 0) < 0 && errno() == libc::EINTR {}
        fail_start(c_int::from_be_bytes(err));
    }
    libc::close(err_read);
    report(TAG_PID, child as u32);
    watch(child, sigchld)
}

/// In the forked child: becomes the program.
unsafe fn exec_program(helper: libc::pid_t, argv: &[*const c_char], err_write: c_int) -> ! {
    #[cfg(target_os = "linux")]
    {
        // The lifeline covers the death of the helper's starter; this covers the helper's own
        // (e.g. `kill -9` of the helper alone).
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if libc::getppid() != helper {
            libc::_exit(128 + libc::SIGKILL);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = helper;
    // The mask is already empty (see `setup_signals`); the dispositions become the defaults.
    reset_signal_dispositions();
    libc::execvp(argv[0], argv.as_ptr());
    write_all(err_write, &errno().to_be_bytes());
    libc::_exit(EXEC_FAILED)
}

/// Waits for the program to exit or for the lifeline to break, then kills the group.
unsafe fn watch(child: libc::pid_t, sigchld: c_int) -> ! {
    loop {
        let mut raw = 0;
        let reaped = libc::waitpid(child, &mut raw, libc::WNOHANG);
        if reaped == child {
            report(TAG_EXIT, exit_status(raw));
            kill_group();
        }
        if reaped < 0 && errno() != libc::EINTR {
            // ECHILD: cannot happen while `SIGCHLD` has its handler.
            report(TAG_EXIT, 255);
            kill_group();
        }
        let mut fds = [
            libc::pollfd {
                fd: LIFELINE_FD,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sigchld,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        if libc::poll(fds.as_mut_ptr(), 2, -1) < 0 {
            continue;
        }
        if fds[0].revents != 0 && lifeline_broken() {
            kill_group();
        }
        if fds[1].revents != 0 {
            let mut buf = [0u8; 64];
            while libc::read(sigchld, buf.as_mut_ptr().cast(), buf.len()) > 0 {}
        }
    }
}

/// Reads the lifeline after `poll` found it ready: true at end of file (or on an error).
unsafe fn lifeline_broken() -> bool {
    let mut buf = [0u8; 64];
    let n = libc::read(LIFELINE_FD, buf.as_mut_ptr().cast(), buf.len());
    n == 0 || (n < 0 && ![libc::EINTR, libc::EAGAIN].contains(&errno()))
}

/// `SIGKILL` to the helper's process group: the program's leftovers and the helper itself.
unsafe fn kill_group() -> ! {
    libc::killpg(libc::getpid(), libc::SIGKILL);
    libc::_exit(0)
}

/// Reports that the program could not be started, and exits.
unsafe fn fail_start(errno: c_int) -> ! {
    report(TAG_START_ERROR, errno as u32);
    libc::_exit(1)
}

/// The status as a shell reports it: the exit code, or 128 + the signal number.
fn exit_status(raw: c_int) -> u32 {
    if libc::WIFEXITED(raw) {
        libc::WEXITSTATUS(raw) as u32
    } else if libc::WIFSIGNALED(raw) {
        128 + libc::WTERMSIG(raw) as u32
    } else {
        255
    }
}

/// Writes one status record; a starter that is gone (`EPIPE`) is found through the lifeline.
unsafe fn report(tag: u8, value: u32) {
    let mut record = [tag, 0, 0, 0, 0];
    record[1..].copy_from_slice(&value.to_be_bytes());
    write_all(STATUS_FD, &record);
}

/// Empty signal mask, default dispositions, then the helper's own: `SIGTERM`, `SIGINT`, `SIGHUP`
/// and `SIGPIPE` ignored, `SIGCHLD` written into a pipe (returned) that `watch` polls.
unsafe fn setup_signals() -> Result<c_int, c_int> {
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    // Inherited `SIG_IGN`s survive exec (the BEAM ignores `SIGCHLD`, which would make the
    // kernel reap the program and lose its status).
    reset_signal_dispositions();
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
        libc::signal(sig, libc::SIG_IGN);
    }
    let (read, write) = pipe_cloexec()?;
    for fd in [read, write] {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    SIGCHLD_PIPE.store(write, Ordering::Relaxed);
    let mut action: libc::sigaction = std::mem::zeroed();
    action.sa_sigaction = on_sigchld as *const () as libc::sighandler_t;
    action.sa_flags = libc::SA_RESTART | libc::SA_NOCLDSTOP;
    libc::sigemptyset(&mut action.sa_mask);
    if libc::sigaction(libc::SIGCHLD, &action, std::ptr::null_mut()) != 0 {
        return Err(errno());
    }
    Ok(read)
}

extern "C" fn on_sigchld(_signal: c_int) {
    // SAFETY: write(2) is async-signal-safe; errno is saved and restored around it.
    unsafe {
        let saved = errno();
        let byte = 0u8;
        libc::write(
            SIGCHLD_PIPE.load(Ordering::Relaxed),
            (&byte as *const u8).cast(),
            1,
        );
        *errno_location() = saved;
    }
}

/// Every catchable signal back to `SIG_DFL` (invalid numbers fail harmlessly).
unsafe fn reset_signal_dispositions() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // glibc refuses to touch the signals it reserves for itself (32 and 33), which can
        // still be inherited as ignored: the kernel call takes them. An all-zero kernel
        // `struct sigaction` is `SIG_DFL` with no flags and an empty mask, whatever the
        // architecture's layout of the struct.
        #[cfg(target_os = "linux")]
        {
            let dfl = [0u64; 4];
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig as libc::c_long,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8 as libc::c_long,
            );
        }
        #[cfg(not(target_os = "linux"))]
        libc::signal(sig, libc::SIG_DFL);
    }
}

/// The helper keeps no copy of the transport: the other end must see the program close it.
/// Fds 0 and 1 become `/dev/null`; fds 3 and 4 are closed when they are the transport (in
/// `stdio` mode they were closed at the start, and now hold the helper's own pipes).
unsafe fn release_transport(mode: Mode) {
    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
    for fd in [0, 1] {
        if null >= 0 {
            libc::dup2(null, fd);
        } else {
            libc::close(fd);
        }
    }
    if null >= 0 {
        libc::close(null);
    }
    if mode == Mode::Fds {
        libc::close(3);
        libc::close(4);
    }
}

/// Closes every fd from `first` on.
#[cfg(not(any(
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
unsafe fn close_from(first: c_int) {
    #[cfg(target_os = "linux")]
    if libc::syscall(
        libc::SYS_close_range,
        first as libc::c_uint,
        libc::c_uint::MAX,
        0 as libc::c_uint,
    ) == 0
    {
        return;
    }
    // Linux before 5.9, macOS.
    close_each_from(first);
}

/// Closes every fd from `first` on.
#[cfg(any(
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
))]
unsafe fn close_from(first: c_int) {
    libc::closefrom(first);
}

/// Closes the fds from `first` on that `/dev/fd` lists (all the open ones on Linux and macOS,
/// not on the BSDs), or, when it cannot be read, every fd number below the limit of open files.
#[cfg(not(any(
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
unsafe fn close_each_from(first: c_int) {
    let open: Vec<c_int> = match std::fs::read_dir("/dev/fd") {
        // Listed (and the listing's own fd closed) before anything is closed.
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd >= first)
            .collect(),
        Err(_) => {
            let limit = libc::sysconf(libc::_SC_OPEN_MAX);
            let limit = if limit > 0 {
                limit.min(libc::c_long::from(c_int::MAX)) as c_int
            } else {
                1024
            };
            (first..limit).collect()
        }
    };
    for fd in open {
        libc::close(fd);
    }
}

unsafe fn pipe_cloexec() -> Result<(c_int, c_int), c_int> {
    let mut fds = [0 as c_int; 2];
    if libc::pipe(fds.as_mut_ptr()) != 0 {
        return Err(errno());
    }
    for fd in fds {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    Ok((fds[0], fds[1]))
}

/// Reads until `buf` is full or end of file; returns how many bytes were read.
unsafe fn read_full(fd: c_int, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        let n = libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done);
        if n > 0 {
            done += n as usize;
        } else if n == 0 || errno() != libc::EINTR {
            break;
        }
    }
    done
}

unsafe fn write_all(fd: c_int, bytes: &[u8]) {
    let mut done = 0;
    while done < bytes.len() {
        let n = libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done);
        if n > 0 {
            done += n as usize;
        } else if n == 0 || errno() != libc::EINTR {
            return;
        }
    }
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Where `errno` lives (the signal handler restores it).
#[cfg(any(target_os = "linux", target_os = "dragonfly"))]
unsafe fn errno_location() -> *mut c_int {
    libc::__errno_location()
}

#[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
unsafe fn errno_location() -> *mut c_int {
    libc::__errno()
}

#[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
unsafe fn errno_location() -> *mut c_int {
    libc::__error()
}
