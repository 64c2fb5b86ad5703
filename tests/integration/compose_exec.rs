//! `docker/compose.sh exec` without a terminal: docker-compose v1 allocates one by default and
//! fails without it, so the wrapper adds `-T` when stdin is not a terminal (and only then). The
//! real script runs, with a stand-in compose command (`ETCD_COMPOSE`) that records its
//! arguments: what is checked is what the wrapper hands to compose.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Run `docker/compose.sh ARGS` with a recording compose; returns the `exec` line it recorded.
fn exec_line(dir: &Path, args: &str, with_terminal: bool) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docker/compose.sh");
    let record = dir.join("record");
    let fake = dir.join("compose");
    std::fs::write(&fake, format!("#!/bin/sh\necho \"$*\" >> '{}'\n", record.display()))
        .expect("fake compose");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let _ = std::fs::remove_file(&record);
    let command = format!("{} {args}", script.display());
    let mut cmd = if with_terminal {
        // `script` runs the command on a pseudo-terminal.
        let mut c = Command::new("script");
        c.args(["-qec", &command, "/dev/null"]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &command]);
        c
    };
    let out = cmd
        .env("ETCD_COMPOSE", &fake)
        .env("COMPOSE_PROJECT_NAME", "compose-exec-test")
        .env("ETCD_CLIENT_PORT", "23799")
        .env("ETCD_IMAGE", "compose-exec-test:none")
        .stdin(Stdio::null())
        .output()
        .expect("run docker/compose.sh");
    assert!(out.status.success(), "compose.sh {args}: {}", String::from_utf8_lossy(&out.stderr));
    let recorded = std::fs::read_to_string(&record).unwrap_or_default();
    recorded.lines().find(|l| l.contains(" exec ")).unwrap_or_default().to_string()
}

#[test]
fn compose_exec_without_a_terminal_adds_no_tty_and_with_one_does_not() {
    if Command::new("script").arg("--version").output().is_err() {
        crate::prereq::skipped(
            "compose_exec_without_a_terminal_adds_no_tty_and_with_one_does_not",
            "no `script` (util-linux)",
        );
        return;
    }
    let dir = tempfile::tempdir().expect("scratch");
    let line = exec_line(dir.path(), "exec etcd-0 etcdctl member list", false);
    assert!(line.ends_with(" exec -T etcd-0 etcdctl member list"), "{line}");
    let line = exec_line(dir.path(), "--profile sidecar exec -u 0 etcd-0 etcdctl get -T", false);
    assert!(line.ends_with(" exec -T -u 0 etcd-0 etcdctl get -T"), "{line}");
    let line = exec_line(dir.path(), "exec -T etcd-0 etcdctl get k", false);
    assert!(line.ends_with(" exec -T etcd-0 etcdctl get k") && !line.contains("-T -T"), "{line}");
    let line = exec_line(dir.path(), "exec etcd-0 sh", true);
    assert!(line.ends_with(" exec etcd-0 sh"), "a terminal keeps its TTY: {line}");
}
