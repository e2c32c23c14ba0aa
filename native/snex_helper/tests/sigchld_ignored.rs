//! The helper started by a process that ignores `SIGCHLD`, as the BEAM does. A test binary of
//! its own: the disposition is process-wide.

use snex_core::process::{spawn, SpawnSpec};

fn sh(script: &str) -> SpawnSpec {
    SpawnSpec {
        helper: env!("CARGO_BIN_EXE_snex_helper").into(),
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
        ..Default::default()
    }
}

#[test]
fn status_is_reported_when_sigchld_is_ignored() {
    // Children of this process are reaped by the kernel, yet the helper reports the status:
    // it resets SIGCHLD for itself.
    // SAFETY: changes this test binary's disposition only.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let s = spawn(&sh("exit 9")).unwrap();
    assert_eq!(s.handle.wait(), 9);
    let s = spawn(&sh("kill -11 $$")).unwrap();
    assert_eq!(s.handle.wait(), 128 + 11);
    // A failed start is reported too.
    let e = spawn(&SpawnSpec {
        program: "/nonexistent/python".into(),
        ..sh("")
    })
    .err()
    .expect("spawn must fail");
    assert!(e.to_string().contains("/nonexistent/python"), "{e}");
}
