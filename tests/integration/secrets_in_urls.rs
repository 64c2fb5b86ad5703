//! A password written into a URL (`file://user:secret@...`, `s3://user:secret@...`, an S3
//! endpoint or an etcd endpoint with `user:password@`) never leaves the process: not in an error
//! line, not in a log line, not in `/metrics`. Every input runs the real binary.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bootstrap::bootstrap_bin;
use crate::datadir_wal::EtcdProcess;
use crate::prereq;

/// The password in every URL below; it must never be printed.
const SECRET: &str = "pw-never-printed-7f3a";

/// Variables of one run.
type Env<'a> = Vec<(&'a str, &'a str)>;

/// Run the binary with `args` and `env` only; (exit code, stdout and stderr together).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let scratch = tempfile::tempdir().expect("scratch");
    let out = Command::new(bootstrap_bin())
        .args(args)
        .env_clear()
        .env("HOME", scratch.path())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run etcd-bootstrap");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[test]
fn a_password_in_any_url_is_never_printed_in_an_error_or_log_line() {
    let file = format!("file://backup:{SECRET}@nas/backups");
    let s3 = format!("s3://AKIA:{SECRET}@bucket/etcd");
    let ftp_endpoint = format!("ftp://minio:{SECRET}@minio:9000");
    let http_endpoint = format!("http://minio:{SECRET}@minio:9000");
    let etcd_endpoint = format!("http://root:{SECRET}@127.0.0.1:2379");
    let snapshot = format!("{file}/snapshot-20261128T023000Z-r42");
    let keys = [("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "b")];
    let scratch = tempfile::tempdir().expect("scratch");
    let data = scratch.path().display().to_string();
    let pod = [
        "--name",
        "etcd-0",
        "--dns-server",
        "127.0.0.1:1",
        "--data-dir",
        &data,
        "--etcd-binary",
        "/bin/true",
        "--wait-timeout",
        "1s",
    ];
    let mut cases: Vec<(Vec<&str>, Env)> = vec![
        (vec!["backup", "--to", &file], vec![]),
        (vec!["backup", "list", &file], vec![]),
        (vec!["backup", "verify", &snapshot], vec![]),
        (vec!["backup", "--to", &s3], keys.to_vec()),
        (vec!["backup", "list", "s3://bucket/etcd", "--s3-endpoint", &ftp_endpoint], keys.to_vec()),
        (
            vec!["backup", "list", "s3://bucket/etcd"],
            [keys.as_slice(), &[("AWS_ENDPOINT_URL", &http_endpoint)]].concat(),
        ),
        (
            vec!["backup", "list", "s3://bucket/etcd"],
            [keys.as_slice(), &[("AWS_ENDPOINT_URL_S3", &ftp_endpoint)]].concat(),
        ),
        (vec!["backup", "--to", "file:///tmp", "--endpoints", &etcd_endpoint], vec![]),
        (vec!["backup", "--to", "file:///tmp", "--endpoints", &ftp_endpoint], vec![]),
        (
            vec!["backup", "--to", "file:///tmp", "--log-format", "json", "--endpoints", &etcd_endpoint],
            vec![],
        ),
    ];
    for command in ["run", "plan"] {
        let mut args = vec![command];
        args.extend(pod);
        cases.push(([args.as_slice(), &["--restore-from", &snapshot]].concat(), vec![]));
        cases.push((
            [args.as_slice(), &["--log-format", "json"]].concat(),
            vec![("ETCD_BOOTSTRAP_RESTORE_FROM", &snapshot)],
        ));
    }
    let mut sidecar = vec!["sidecar"];
    sidecar.extend(pod);
    cases.push(([sidecar.as_slice(), &["--backup-to", &file]].concat(), vec![]));
    cases.push(([sidecar.as_slice(), &["--backup-to", &s3]].concat(), vec![]));
    for (args, env) in cases {
        let (code, text) = run(&args, &env);
        assert!(!text.contains(SECRET), "{args:?} {env:?} printed the password:\n{text}");
        // Each is refused as a bad setting, saying where: the test would see the password if the
        // message repeated the URL as given.
        assert_eq!(code, Some(2), "{args:?} {env:?}:\n{text}");
        assert!(text.contains("etcd-bootstrap: error: "), "{args:?}:\n{text}");
        assert!(
            text.contains("***@") || text.contains("user information"),
            "{args:?}: the line names the URL:\n{text}"
        );
    }
}

/// A sidecar started in the background, its stderr collected.
struct Sidecar {
    child: Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Sidecar {
    fn log(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /metrics` on 127.0.0.1:`port`, or None while it does not answer.
fn metrics(port: u16) -> Option<String> {
    use std::io::Write;
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    listener.local_addr().expect("addr").port()
}

/// The sidecar beside a real (single-member, so leading) etcd, whose scheduled backup fails on
/// an S3 endpoint with a password in it: the failure is logged and exported as the last error's
/// label, and neither holds the password.
#[test]
fn a_password_in_the_s3_endpoint_is_never_in_the_sidecars_log_or_metrics() {
    const TEST: &str = "a_password_in_the_s3_endpoint_is_never_in_the_sidecars_log_or_metrics";
    let Some(etcd_bin) = prereq::need_etcd(TEST) else { return };
    let dir = tempfile::tempdir().expect("scratch");
    let mut etcd = EtcdProcess::start(&etcd_bin, &dir.path().join("etcd"), &dir.path().join("etcd.log"));
    etcd.wait_healthy();
    let client_port = etcd.client_url.rsplit(':').next().expect("port").to_string();
    let metrics_port = free_port();
    let endpoint = format!("ftp://minio:{SECRET}@minio:9000");
    let mut child = Command::new(bootstrap_bin())
        .args(["sidecar", "--name", "etcd-0", "--dns-server", "127.0.0.1:1", "--interval", "1s"])
        .args(["--client-port", &client_port, "--metrics-port", &metrics_port.to_string()])
        .args(["--backup-to", "s3://bucket/etcd", "--backup-interval", "1h"])
        .env_clear()
        .env("HOME", dir.path())
        .env("AWS_ACCESS_KEY_ID", "a")
        .env("AWS_SECRET_ACCESS_KEY", "b")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the sidecar");
    let mut pipe = child.stderr.take().expect("stderr");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = sink.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    let sidecar = Sidecar { child, stderr };
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        if let Some(text) =
            metrics(metrics_port).filter(|t| t.contains("etcd_bootstrap_sidecar_last_error_info{"))
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no backup failure in /metrics within 60s; log:\n{}",
            sidecar.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let failure =
        text.lines().find(|l| l.starts_with("etcd_bootstrap_sidecar_last_error_info{")).unwrap_or_default();
    assert!(failure.contains("backup: "), "the last error is the backup's: {failure}");
    assert!(failure.contains("S3 endpoint"), "{failure}");
    assert!(!text.contains(SECRET), "the password is in /metrics:\n{text}");
    let log = sidecar.log();
    assert!(log.contains("scheduled backup failed"), "the failure is logged:\n{log}");
    assert!(!log.contains(SECRET), "the password is in the log:\n{log}");
    drop(sidecar);
    etcd.stop();
}
