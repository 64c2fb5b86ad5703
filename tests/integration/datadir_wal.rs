//! `datadir::inspect` against data dirs written by real etcd: the member ID and cluster ID read
//! from the WAL must be the ones the etcd API reports.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_bootstrap::observe::datadir::inspect;
use etcd_bootstrap::observed::{DataDirState, WalMeta};

use crate::prereq;

/// How long a single-member etcd may take to become healthy.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A running etcd, killed and reaped when dropped (also when an assertion fails).
pub struct EtcdProcess {
    child: Child,
    pub client_url: String,
    log: PathBuf,
}

impl EtcdProcess {
    /// Start a single-member etcd on 127.0.0.1 with free ports, data in `data_dir`, its output
    /// in `log`.
    pub fn start(bin: &Path, data_dir: &Path, log: &Path) -> EtcdProcess {
        Self::start_with(bin, data_dir, log, &[])
    }

    /// [`EtcdProcess::start`] with more etcd flags.
    pub fn start_with(bin: &Path, data_dir: &Path, log: &Path, extra: &[&str]) -> EtcdProcess {
        let [client_port, peer_port] = free_ports();
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let out = File::create(log).expect("create the etcd log file");
        let err = out.try_clone().expect("clone the etcd log file");
        let mut cmd = Command::new(bin);
        cmd.arg("--name=datadir-test")
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=datadir-test={peer_url}"))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=datadir-wal-test")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // etcd refuses a flag that an ETCD_* variable also sets; the test's own env must not leak.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(name);
            }
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        EtcdProcess { child, client_url, log: log.to_path_buf() }
    }

    /// Poll `/health` until etcd reports healthy; panics with etcd's log at the deadline or when
    /// etcd exits.
    pub fn wait_healthy(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        let addr = self.client_url.trim_start_matches("http://").to_string();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("etcd exited with {status} before it was healthy:\n{}", self.log_text());
            }
            if health_says_true(&addr) {
                return;
            }
            if Instant::now() > deadline {
                panic!("etcd not healthy after {START_DEADLINE:?}:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kill etcd and wait for it to exit.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stop etcd as a pod's end would (SIGTERM: it commits its backend and closes), and wait.
    pub fn terminate(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let status = self.child.wait().expect("wait for etcd");
        assert!(
            status.success() || status.code().is_none(),
            "etcd exited with {status}:\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two distinct free TCP ports on 127.0.0.1 (both held open while the second is picked).
fn free_ports() -> [u16; 2] {
    let bind = || TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().expect("local address").port();
    [port(&a), port(&b)]
}

/// One `GET /health` over plain HTTP/1.0; true when etcd answers `"health":"true"`.
fn health_says_true(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(2));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    let request = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    if stream.read_to_string(&mut response).is_err() {
        return false;
    }
    response.starts_with("HTTP/1.") && response.contains(r#""health":"true""#)
}

/// The member ID and cluster ID as the etcd API reports them (MemberList of a single member).
fn ids_from_api(client_url: &str) -> WalMeta {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("build a tokio runtime");
    runtime.block_on(async {
        let mut client = etcd_client::Client::connect([client_url], None)
            .await
            .unwrap_or_else(|e| panic!("connect to {client_url}: {e}"));
        let list = tokio::time::timeout(Duration::from_secs(10), client.member_list())
            .await
            .expect("member list timed out")
            .unwrap_or_else(|e| panic!("member list at {client_url}: {e}"));
        let header = list.header().expect("member list response has a header");
        let members = list.members();
        assert_eq!(members.len(), 1, "a single-member cluster: {members:?}");
        assert_eq!(members[0].id(), header.member_id(), "the member answering is the only one");
        WalMeta { member_id: header.member_id(), cluster_id: header.cluster_id() }
    })
}

/// Run etcd `bin` on a fresh data dir, read the IDs from the API, stop etcd, and check that
/// `inspect` reads the same IDs from the WAL etcd wrote.
fn check_wal_ids_match_api(bin: &Path) {
    let tmp = tempfile::tempdir().expect("create a temp dir");
    let data_dir = tmp.path().join("data");
    let mut etcd = EtcdProcess::start(bin, &data_dir, &tmp.path().join("etcd.log"));
    etcd.wait_healthy();
    let from_api = ids_from_api(&etcd.client_url);
    etcd.stop();

    let state = inspect(&data_dir).expect("inspect the data dir etcd wrote");
    assert_eq!(state, DataDirState::Member(from_api), "etcd log:\n{}", etcd.log_text());
    eprintln!(
        "{}: member {:x}, cluster {:x} read from the wal and the api",
        bin.display(),
        from_api.member_id,
        from_api.cluster_id
    );
    assert_ne!(from_api.member_id, 0);
    assert_ne!(from_api.cluster_id, 0);
}

#[test]
fn member_and_cluster_ids_from_etcd35_wal_match_the_api() {
    let Some(bin) = prereq::need_etcd("member_and_cluster_ids_from_etcd35_wal_match_the_api") else {
        return;
    };
    check_wal_ids_match_api(&bin);
}

#[test]
fn member_and_cluster_ids_from_etcd34_wal_match_the_api() {
    let Some(bin) = prereq::etcd34_bin() else {
        prereq::skipped(
            "member_and_cluster_ids_from_etcd34_wal_match_the_api",
            "etcd 3.4 not found (apt-get install etcd-server, or set TEST_ETCD34_BIN)",
        );
        return;
    };
    check_wal_ids_match_api(&bin);
}
