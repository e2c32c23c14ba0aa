//! `snex_core::process` driving the real `snex_helper` binary: transport fds, environment,
//! exit statuses, signals, and the killing of the process group (after the target exits, when
//! the lifeline closes, and when the process that started the helper is killed).

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use snex_core::process::{spawn, SpawnSpec, Spawned};

const HELPER: &str = env!("CARGO_BIN_EXE_snex_helper");

fn sh(script: &str) -> SpawnSpec {
    SpawnSpec {
        helper: HELPER.into(),
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
        ..Default::default()
    }
}

/// Waits for the program's exit status on a thread of its own.
fn waiting(s: &Spawned) -> std::thread::JoinHandle<i32> {
    let handle = s.handle.clone();
    std::thread::spawn(move || handle.wait())
}

/// Reads what the child writes on its side of the transport until it closes it.
fn read_all(s: &mut Spawned) -> String {
    let mut out = String::new();
    s.from_child.read_to_string(&mut out).unwrap();
    out
}

/// Reads one line the child writes on its side of the transport.
fn read_line(s: &mut Spawned) -> String {
    let mut line = String::new();
    while !line.ends_with('\n') {
        let mut byte = [0u8; 1];
        s.from_child.read_exact(&mut byte).unwrap();
        line.push(byte[0] as char);
    }
    line
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => false,
    }
}

/// Pids of the live (non-zombie) processes of process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name: state, ppid, pgrp, ...
        let Some(rest) = stat.rsplit_once(") ").map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields[0] != "Z" && fields[2] == pgid.to_string() {
            members.push(pid);
        }
    }
    members
}

/// Kills a process the test started when the test ends, also when it fails.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            // SAFETY: SIGKILL to a process of this test that is still there.
            unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGKILL) };
        }
    }
}

fn eventually(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pipes_are_on_fds_3_and_4() {
    let mut s = spawn(&sh("read line <&3; echo \"got $line\" >&4")).unwrap();
    let t = waiting(&s);
    s.to_child.write_all(b"hello\n").unwrap();
    assert_eq!(read_all(&mut s), "got hello\n");
    assert_eq!(t.join().unwrap(), 0);
}

#[test]
fn stdio_transport() {
    let mut s = spawn(&SpawnSpec {
        use_stdio: true,
        ..sh("read line; echo \"got $line\"")
    })
    .unwrap();
    let t = waiting(&s);
    s.to_child.write_all(b"x\n").unwrap();
    assert_eq!(read_all(&mut s), "got x\n");
    assert_eq!(t.join().unwrap(), 0);
}

/// CPU time (user + system, in clock ticks) that `pid` has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(") ").unwrap().1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of the line, 12 and 13 after the command name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn the_helper_sleeps_while_its_program_runs_in_either_mode() {
    for use_stdio in [false, true] {
        let s = spawn(&SpawnSpec {
            use_stdio,
            ..sh("sleep 2")
        })
        .unwrap();
        let helper = s.handle.pgid();
        std::thread::sleep(Duration::from_millis(100));
        let before = cpu_ticks(helper);
        std::thread::sleep(Duration::from_millis(500));
        let used = cpu_ticks(helper) - before;
        // A helper that spins would use about 50 ticks (100 a second) in these 500 ms.
        assert!(
            used <= 5,
            "use_stdio: {use_stdio}: the helper used {used} ticks"
        );
        drop(s);
    }
}

#[test]
fn env_and_cd() {
    let mut spec = sh("echo \"$SNEX_T:$(pwd)\" >&4");
    spec.env.push(("SNEX_T".into(), "v".into()));
    spec.cd = Some("/tmp".into());
    let mut s = spawn(&spec).unwrap();
    let t = waiting(&s);
    assert_eq!(read_all(&mut s), "v:/tmp\n");
    assert_eq!(t.join().unwrap(), 0);
}

#[test]
#[cfg(target_os = "linux")] // reads /proc
fn the_specs_variables_replace_inherited_ones() {
    // PATH is inherited (the helper finds `sh` with it); HOME is replaced, not doubled (seen
    // in the environment the helper got, as the shell would hide a duplicate).
    let mut spec = sh("tr '\\0' '\\n' </proc/$PPID/environ | grep '^HOME=' >&4");
    spec.env.push(("HOME".into(), "/snex-test-home".into()));
    let mut s = spawn(&spec).unwrap();
    let t = waiting(&s);
    assert_eq!(read_all(&mut s), "HOME=/snex-test-home\n");
    assert_eq!(t.join().unwrap(), 0);
}

#[test]
fn a_missing_working_directory_is_an_error() {
    let mut spec = sh("true");
    spec.cd = Some("/nonexistent/snex-test-dir".into());
    let e = spawn(&spec).err().expect("spawn must fail");
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
}

#[test]
fn exit_codes_and_signals() {
    let s = spawn(&sh("exit 7")).unwrap();
    assert_eq!(s.handle.wait(), 7);
    let s = spawn(&sh("kill -9 $$")).unwrap();
    assert_eq!(s.handle.wait(), 128 + 9);
}

#[test]
fn pid_is_the_targets_and_the_helper_leads_the_group() {
    let mut s = spawn(&sh("echo $$ >&4; read line <&3 || exit 0")).unwrap();
    let t = waiting(&s);
    let pgid = s.handle.pgid();
    // The helper is a small program of its own, not a fork of its starter.
    let exe = std::fs::read_link(format!("/proc/{pgid}/exe")).unwrap();
    assert_eq!(exe, std::fs::canonicalize(HELPER).unwrap());
    assert_eq!(read_line(&mut s).trim(), s.handle.pid().to_string());
    assert_ne!(s.handle.pid(), pgid);
    let mut members = group_members(pgid);
    members.sort();
    let mut expected = vec![pgid, s.handle.pid()];
    expected.sort();
    assert_eq!(members, expected);
    drop(s.to_child);
    assert_eq!(t.join().unwrap(), 0);
}

#[test]
fn the_target_starts_with_clean_signals() {
    // The BEAM's threads block and ignore signals; none of that may reach Python.
    // SAFETY: this test's own thread mask, and dispositions of signals no test uses.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGUSR2, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let mut s = spawn(&SpawnSpec {
        helper: HELPER.into(),
        program: "cat".into(),
        args: vec!["/proc/self/status".into()],
        use_stdio: true,
        ..Default::default()
    })
    .unwrap();
    let t = waiting(&s);
    let status = read_all(&mut s);
    for field in ["SigBlk", "SigIgn"] {
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    assert_eq!(t.join().unwrap(), 0);
}

#[test]
fn only_the_transport_and_stdio_are_inherited() {
    // A descriptor of the starter without close-on-exec (the BEAM has some).
    // SAFETY: dup2 of stderr onto a free high number, closed at the end.
    let leaked = unsafe { libc::dup2(2, 200) };
    assert_eq!(leaked, 200);
    // `ls` lists its own directory fd too, the lowest free one.
    let mut s = spawn(&sh("exec ls /proc/self/fd >&4")).unwrap();
    let t = waiting(&s);
    let fds: Vec<String> = read_all(&mut s)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(fds, ["0", "1", "2", "3", "4", "5"]);
    assert_eq!(t.join().unwrap(), 0);

    let mut s = spawn(&SpawnSpec {
        helper: HELPER.into(),
        program: "ls".into(),
        args: vec!["/proc/self/fd".into()],
        use_stdio: true,
        ..Default::default()
    })
    .unwrap();
    let t = waiting(&s);
    let fds: Vec<String> = read_all(&mut s)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(fds, ["0", "1", "2", "3"]);
    assert_eq!(t.join().unwrap(), 0);
    // SAFETY: closing our own dup.
    unsafe { libc::close(leaked) };
}

#[test]
fn terminate_escalates_to_kill() {
    // Ignores SIGTERM and never reads its pipe.
    let s = spawn(&sh("trap '' TERM; while true; do sleep 0.05; done")).unwrap();
    let t = waiting(&s);
    drop(s.to_child);
    let started = Instant::now();
    let code = s.handle.terminate(Duration::from_millis(200));
    assert_eq!(code, Some(128 + 9));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(t.join().unwrap(), 128 + 9);
}

#[test]
fn sigterm_to_the_group_reports_the_targets_status() {
    let mut s = spawn(&sh(
        "trap 'exit 42' TERM; echo ready >&4; while true; do sleep 0.05; done",
    ))
    .unwrap();
    let t = waiting(&s);
    let mut line = [0u8; 6];
    s.from_child.read_exact(&mut line).unwrap();
    // The helper ignores SIGTERM and outlives the target to report its status.
    assert!(s.handle.signal_group(nix::sys::signal::Signal::SIGTERM));
    let code = s.handle.wait_timeout(Duration::from_secs(5));
    if code.is_none() {
        s.handle.kill();
    }
    assert_eq!(code, Some(42));
    assert_eq!(t.join().unwrap(), 42);
    assert!(!s.handle.killed());
}

#[test]
fn kill_is_remembered() {
    let s = spawn(&sh("sleep 1000")).unwrap();
    let t = waiting(&s);
    assert!(!s.handle.killed());
    assert!(s.handle.kill());
    assert_eq!(t.join().unwrap(), 128 + 9);
    assert!(s.handle.killed());
    // Once exited, nothing is sent any more.
    assert!(!s.handle.kill());
}

#[test]
fn missing_program_is_an_error() {
    let spec = SpawnSpec {
        helper: HELPER.into(),
        program: "/nonexistent/python".into(),
        ..Default::default()
    };
    let e = spawn(&spec).err().expect("spawn must fail");
    assert!(e.to_string().contains("/nonexistent/python"), "{e}");
}

#[test]
fn a_failed_exec_is_reported_by_the_helper() {
    // Executable, but its interpreter does not exist: exec fails in the helper's child.
    let dir = std::env::temp_dir().join(format!("snex-helper-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("bad-interpreter");
    std::fs::write(&script, "#!/nonexistent/interpreter\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let spec = SpawnSpec {
        helper: HELPER.into(),
        program: script.clone().into(),
        ..Default::default()
    };
    let e = spawn(&spec).err().expect("spawn must fail");
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    assert!(e.to_string().starts_with("cannot start "), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_helper_refuses_to_run_without_its_fds() {
    let out = std::process::Command::new(HELPER)
        .args(["fds", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}

#[test]
fn leftovers_of_the_group_are_killed_when_the_target_exits() {
    let mut s = spawn(&sh("sleep 1000 & echo $! >&4; exit 3")).unwrap();
    let pgid = s.handle.pgid();
    // The sleep keeps fd 4 open: read its line, not up to end of file.
    let sleeper: u32 = read_line(&mut s).trim().parse().unwrap();
    assert_eq!(s.handle.wait(), 3);
    eventually(
        "the background sleep is killed",
        Duration::from_secs(3),
        || !alive(sleeper),
    );
    eventually("the group is empty", Duration::from_secs(3), || {
        group_members(pgid).is_empty()
    });
}

#[test]
fn dropping_the_handle_kills_the_whole_group() {
    // The target and its children (one level and two levels down) are all in the group.
    let mut s = spawn(&sh(
        "sleep 1000 & sh -c 'sleep 1000 & sleep 1000' & echo ready >&4; wait",
    ))
    .unwrap();
    let pgid = s.handle.pgid();
    let mut line = [0u8; 6];
    s.from_child.read_exact(&mut line).unwrap();
    // helper, sh, sleep, sh, sleep, sleep
    eventually("all six processes run", Duration::from_secs(5), || {
        group_members(pgid).len() == 6
    });
    drop(s);
    eventually("the group is gone", Duration::from_secs(3), || {
        group_members(pgid).is_empty()
    });
}

#[test]
fn killing_the_helper_alone_takes_the_target_with_it() {
    let s = spawn(&sh("sleep 1000")).unwrap();
    let t = waiting(&s);
    let target = s.handle.pid();
    // SAFETY: SIGKILL to the helper we started.
    unsafe { libc::kill(s.handle.pgid() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(t.join().unwrap(), 128 + 9);
    eventually("the target is gone", Duration::from_secs(3), || {
        !alive(target)
    });
}

#[test]
fn killing_the_helper_alone_the_starter_kills_the_rest_of_the_group() {
    // The target's child gets no parent-death signal (the target alone does, on Linux, and
    // nothing does elsewhere): the starter's `wait` kills the group when the status pipe
    // closes without an exit status.
    let mut s = spawn(&sh("sleep 1000 & echo $! >&4; wait")).unwrap();
    let t = waiting(&s);
    let sleeper: u32 = read_line(&mut s).trim().parse().unwrap();
    let _cleanup = KillOnDrop(sleeper);
    // SAFETY: SIGKILL to the helper we started.
    unsafe { libc::kill(s.handle.pgid() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(t.join().unwrap(), 128 + 9);
    eventually("the target's child is gone", Duration::from_secs(3), || {
        !alive(sleeper)
    });
}

/// Set in the process that plays the BEAM in `the_starters_death_kills_the_whole_group`.
const STARTER_ENV: &str = "SNEX_HELPER_TEST_STARTER";

#[test]
fn the_starters_death_kills_the_whole_group() {
    if std::env::var_os(STARTER_ENV).is_some() {
        // The starter: spawns a target with children, prints the group id and waits to be
        // killed.
        let mut s = spawn(&sh(
            "sleep 1000 & sh -c 'sleep 1000 & sleep 1000' & echo ready >&4; wait",
        ))
        .unwrap();
        let mut line = [0u8; 6];
        s.from_child.read_exact(&mut line).unwrap();
        println!("PGID {}", s.handle.pgid());
        std::io::stdout().flush().unwrap();
        std::thread::sleep(Duration::from_secs(1000));
        return;
    }
    // This same test, in a process of its own, plays the BEAM; it is killed with SIGKILL.
    let mut starter = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_starters_death_kills_the_whole_group",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(STARTER_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut out = starter.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    let pgid: u32 = loop {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "the starter exited: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(rest) = seen.split("PGID ").nth(1) {
            if let Some((num, _)) = rest.split_once('\n') {
                break num.trim().parse().unwrap();
            }
        }
    };
    eventually("all six processes run", Duration::from_secs(5), || {
        group_members(pgid).len() == 6
    });
    starter.kill().unwrap();
    starter.wait().unwrap();
    eventually("the group is gone", Duration::from_secs(3), || {
        group_members(pgid).is_empty()
    });
}
