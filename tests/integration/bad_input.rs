//! Bad input: each case gives one clear error line on stderr, its documented exit code, and leaves
//! the file system as it was (nothing created, nothing deleted).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bootstrap::bootstrap_bin;
use crate::prereq;

struct Outcome {
    code: Option<i32>,
    stderr: String,
}

/// A scratch area: `data` (absent unless a case makes it) and an executable fake `etcd`.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let etcd = dir.path().join("etcd");
        std::fs::write(&etcd, "#!/bin/sh\nexit 0\n").expect("write fake etcd");
        std::fs::set_permissions(&etcd, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Scratch { dir }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn etcd(&self) -> PathBuf {
        self.dir.path().join("etcd")
    }

    /// Every path below the scratch dir with its size: compared before and after a run.
    fn tree(&self) -> Vec<(PathBuf, u64)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for entry in entries.flatten() {
                let path = entry.path();
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((path.clone(), len));
                if path.is_dir() {
                    walk(&path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out.sort();
        out
    }

    /// Run the binary with a clean environment plus `env`; base flags point it at this scratch.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let mut cmd = Command::new(bootstrap_bin());
        cmd.env_clear().env("PATH", "/usr/bin:/bin");
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_with_deadline(cmd)
    }

    /// Run with a valid identity and this scratch's data dir and fake etcd, plus `extra`.
    fn run_valid_but(&self, extra: &[&str], env: &[(&str, &str)]) -> Outcome {
        let data = self.data().display().to_string();
        let etcd = self.etcd().display().to_string();
        let base = [
            ("--name", "etcd-0"),
            ("--wait-timeout", "2s"),
            ("--dns-server", "127.0.0.1:1"),
            ("--data-dir", data.as_str()),
            ("--etcd-binary", etcd.as_str()),
        ];
        let given_by_variable = |flag: &str| {
            let var =
                format!("ETCD_BOOTSTRAP_{}", flag.trim_start_matches("--").replace('-', "_").to_uppercase());
            env.iter().any(|(k, _)| *k == var)
        };
        let etcd_data_dir_given = env.iter().any(|(k, _)| *k == "ETCD_DATA_DIR");
        let mut args: Vec<&str> = Vec::new();
        for (flag, value) in base {
            let skip = extra.contains(&flag)
                || given_by_variable(flag)
                || (flag == "--data-dir" && etcd_data_dir_given);
            if !skip {
                args.extend([flag, value]);
            }
        }
        args.extend(extra);
        self.run(&args, env)
    }
}

fn run_with_deadline(mut cmd: Command) -> Outcome {
    let mut child = cmd.spawn().expect("spawn etcd-bootstrap");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("etcd-bootstrap did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    Outcome { code: status.code(), stderr }
}

/// Exactly one error line, naming `needle`, with the exit code `code`.
fn assert_error(out: &Outcome, code: i32, needle: &str) {
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("etcd-bootstrap: error: ")).collect();
    assert_eq!(errors.len(), 1, "want one error line, stderr:\n{}", out.stderr);
    let line = errors[0];
    assert!(line.contains(needle), "error line lacks {needle:?}: {line}");
    assert_eq!(
        out.stderr.trim_end().lines().last(),
        Some(line),
        "the error must be the last line:\n{}",
        out.stderr
    );
    assert_eq!(out.code, Some(code), "exit code for: {line}");
}

fn case(extra: &[&str], env: &[(&str, &str)], code: i32, needle: &str) {
    let scratch = Scratch::new();
    let before = scratch.tree();
    let out = scratch.run_valid_but(extra, env);
    assert_error(&out, code, needle);
    assert_eq!(scratch.tree(), before, "the run changed files");
}

#[test]
fn hostname_without_an_ordinal_is_a_config_error() {
    if !prereq::need_root("hostname_without_an_ordinal_is_a_config_error") {
        return;
    }
    let scratch = Scratch::new();
    let mut cmd = Command::new("unshare");
    cmd.args(["--uts", "/bin/sh", "-c", "hostname etcd && exec \"$@\"", "sh"]);
    cmd.arg(bootstrap_bin()).args(["--data-dir", &scratch.data().display().to_string()]);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let out = run_with_deadline(cmd);
    assert_error(&out, 2, "pod name \"etcd\" has no ordinal");
    assert!(!scratch.data().exists());
}

#[test]
fn name_with_letters_after_the_ordinal_is_rejected() {
    case(&["--name", "etcd-1a"], &[], 2, "\"etcd-1a\" does not end in a number");
}

#[test]
fn name_with_a_double_dash_is_rejected() {
    case(&["--name", "etcd--1"], &[], 2, "\"etcd--1\" has no valid set name");
}

#[test]
fn ordinal_larger_than_u32_is_rejected() {
    case(&["--name", "etcd-4294967296"], &[], 2, "larger than 4294967295");
}

#[test]
fn pod_name_from_pod_name_variable_is_checked_too() {
    let scratch = Scratch::new();
    let data = scratch.data().display().to_string();
    let out = scratch.run(&["--data-dir", &data], &[("POD_NAME", "etcd-x")]);
    assert_error(&out, 2, "\"etcd-x\" does not end in a number");
}

#[test]
fn initial_cluster_size_zero_is_rejected() {
    case(&["--initial-cluster-size", "0"], &[], 2, "--initial-cluster-size 0");
}

#[test]
fn unknown_join_mode_is_rejected() {
    case(&["--join-as", "observer"], &[], 2, "'observer'");
}

#[test]
fn malformed_dns_server_is_rejected() {
    case(&["--dns-server", "dns.local"], &[], 2, "--dns-server");
    case(&["--dns-server", "10.0.0.1:99999"], &[], 2, "--dns-server");
}

#[test]
fn negative_wait_timeout_is_rejected() {
    case(&["--wait-timeout", "-5s"], &[], 2, "is negative");
}

#[test]
fn unparsable_wait_timeout_is_rejected() {
    case(&["--wait-timeout", "soon"], &[], 2, "expected a duration like 500ms, 30s or 5m");
    case(&[], &[("ETCD_BOOTSTRAP_WAIT_TIMEOUT", "10")], 2, "expected a duration");
}

#[test]
fn same_setting_as_etcd_flag_and_variable_is_rejected() {
    let scratch = Scratch::new();
    let data = scratch.data().display().to_string();
    let flag = format!("--data-dir={data}");
    let before = scratch.tree();
    let out = scratch.run_valid_but(&["--", &flag], &[("ETCD_DATA_DIR", &data)]);
    assert_error(&out, 2, "--data-dir is given both as a flag and as ETCD_DATA_DIR");
    assert_eq!(scratch.tree(), before);
}

#[test]
fn data_dir_that_is_a_file_is_rejected() {
    let scratch = Scratch::new();
    std::fs::write(scratch.data(), "not a dir").expect("write");
    let before = scratch.tree();
    let out = scratch.run_valid_but(&[], &[]);
    assert_error(&out, 3, "is not a directory");
    assert_eq!(scratch.tree(), before);
}

#[test]
fn data_dir_holding_other_files_is_refused_untouched() {
    let scratch = Scratch::new();
    std::fs::create_dir(scratch.data()).expect("mkdir");
    std::fs::write(scratch.data().join("notes.txt"), "keep me").expect("write");
    let before = scratch.tree();
    let out = scratch.run_valid_but(&[], &[]);
    assert_error(&out, 4, "notes.txt");
    assert_eq!(scratch.tree(), before);
    assert_eq!(std::fs::read_to_string(scratch.data().join("notes.txt")).expect("still there"), "keep me");
}

#[test]
fn unreadable_data_dir_is_rejected() {
    if !prereq::need_root("unreadable_data_dir_is_rejected") {
        return;
    }
    // Root reads anything: run as nobody against a root-only directory.
    let scratch = Scratch::new();
    std::fs::set_permissions(scratch.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir(scratch.data()).expect("mkdir");
    std::fs::create_dir(scratch.data().join("member")).expect("mkdir member");
    std::fs::set_permissions(scratch.data(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let before = scratch.tree();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(bootstrap_bin());
    cmd.args(["--name", "etcd-0", "--dns-server", "127.0.0.1:1", "--wait-timeout", "2s"]);
    cmd.args(["--data-dir", &scratch.data().display().to_string()]);
    cmd.args(["--etcd-binary", &scratch.etcd().display().to_string()]);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let out = run_with_deadline(cmd);
    assert_error(&out, 3, "permission denied");
    assert_eq!(scratch.tree(), before);
}

#[test]
fn missing_etcd_binary_exits_127() {
    case(&["--etcd-binary", "/nonexistent/etcd"], &[], 127, "/nonexistent/etcd");
}

#[test]
fn etcd_binary_not_on_path_exits_127() {
    let scratch = Scratch::new();
    let data = scratch.data().display().to_string();
    let empty = tempfile::tempdir().expect("tempdir");
    let path = empty.path().display().to_string();
    let mut cmd = Command::new(bootstrap_bin());
    cmd.args(["--name", "etcd-0", "--data-dir", &data, "--dns-server", "127.0.0.1:1"]);
    cmd.env_clear().env("PATH", &path).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let out = run_with_deadline(cmd);
    assert_error(&out, 127, "not found on PATH");
}

#[test]
fn etcd_binary_that_is_not_executable_exits_126() {
    let scratch = Scratch::new();
    std::fs::set_permissions(scratch.etcd(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let before = scratch.tree();
    let out = scratch.run_valid_but(&[], &[]);
    assert_error(&out, 126, "permission denied");
    assert_eq!(scratch.tree(), before);
}

#[test]
fn etcd_flag_naming_another_member_is_rejected() {
    case(&["--", "--name=other"], &[], 2, "differs from the pod name");
}

#[test]
fn managed_etcd_setting_is_rejected() {
    case(&[], &[("ETCD_INITIAL_CLUSTER", "a=http://a:2380")], 2, "decided by etcd-bootstrap");
}
