//! A StatefulSet on the pod bed, shared by the sidecar and chaos tests: each pod runs
//! etcd-bootstrap (then etcd) as PID 1 and `etcd-bootstrap sidecar` as a second container (same
//! network, UTS and mount namespaces), as a StatefulSet with two containers would. Scaling is done
//! the way a StatefulSet does it: pods are created and deleted, volumes stay. The [`Writer`] makes
//! puts throughout and records every one etcd acknowledged, so a test can check none was lost.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::bed::{Bed, PodSpec, Publish};
use crate::bootstrap::{bootstrap_bin, etcd_pod};
use crate::etcd_check::{self, bed_logs};

/// Short settings so the tests are quick; the defaults are 10s and 2m.
pub const INTERVAL: &str = "1s";
pub const REMOVAL_DELAY: Duration = Duration::from_secs(5);
pub const METRICS_PORT: u16 = 2381;
pub const HEALTHY: Duration = Duration::from_secs(120);

/// A StatefulSet on the bed: pods with etcd and the sidecar. Sidecars are stopped (SIGTERM, and
/// checked to end within a second) when their pod is deleted, and killed when this drops, also
/// on panic, before the bed tears the pods down.
pub struct Set {
    pub sidecars: Mutex<BTreeMap<u32, Child>>,
    /// Ordinal -> the PID 1 (root PID namespace) its last sidecar was started into.
    sidecar_into: Mutex<BTreeMap<u32, i32>>,
    /// Extra variables for the sidecars started from now on (scheduled backups, crash points).
    pub sidecar_env: Mutex<Vec<(String, String)>>,
    pub etcd: PathBuf,
    pub bed: Bed,
    pub extra: Extra,
}

/// More settings for every pod and sidecar of a [`Set`]; `{o}` in a value is the pod's ordinal.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// Environment of every pod's entrypoint (etcd's `ETCD_*` settings, for example).
    pub pod_env: Vec<(String, String)>,
    /// Environment of every sidecar.
    pub sidecar_env: Vec<(String, String)>,
    /// Options of every sidecar, after the defaults.
    pub sidecar_args: Vec<String>,
    /// The sidecars' `--interval`, instead of [`INTERVAL`].
    pub sidecar_interval: Option<String>,
}

impl Extra {
    fn for_pod(list: &[(String, String)], ordinal: u32) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.clone(), v.replace("{o}", &ordinal.to_string()))).collect()
    }
}

impl Drop for Set {
    fn drop(&mut self) {
        let mut sidecars = self.sidecars.lock().unwrap_or_else(|p| p.into_inner());
        for (_, mut child) in std::mem::take(&mut *sidecars) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The log line of a bootstrap that has started (PID 1 is the binary itself by then).
pub const STARTED: &str = concat!("etcd-bootstrap ", env!("CARGO_PKG_VERSION"), " starting");

impl Set {
    pub async fn new(name: &str, etcd: PathBuf) -> Set {
        Self::with(name, etcd, Extra::default()).await
    }

    /// [`Set::new`] with more settings for the pods and sidecars.
    pub async fn with(name: &str, etcd: PathBuf, extra: Extra) -> Set {
        Set {
            sidecars: Mutex::new(BTreeMap::new()),
            sidecar_into: Mutex::new(BTreeMap::new()),
            sidecar_env: Mutex::new(Vec::new()),
            etcd,
            bed: Bed::new(name).await,
            extra,
        }
    }

    pub fn sidecar_log(&self, ordinal: u32) -> PathBuf {
        self.bed.root().join("logs").join(format!("etcd-{ordinal}-sidecar.log"))
    }

    pub fn sidecar_logs(&self, ordinal: u32) -> String {
        std::fs::read_to_string(self.sidecar_log(ordinal)).unwrap_or_default()
    }

    /// Poll pod `ordinal`'s sidecar log until it contains `needle`; false after `timeout`
    /// (the sidecar's counterpart of `Bed::wait_log`).
    pub async fn wait_sidecar_log(&self, ordinal: u32, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.sidecar_logs(ordinal).contains(needle) {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Create pod `ordinal` (etcd-bootstrap as PID 1, learner joins if asked) and its sidecar.
    pub async fn start(&self, ordinal: u32, learner: bool) {
        self.start_with(ordinal, learner, Publish::Now).await
    }

    /// [`Set::start`], the pod appearing in DNS as `publish` says.
    pub async fn start_with(&self, ordinal: u32, learner: bool, publish: Publish) {
        self.start_pod(ordinal, learner, publish).await;
        self.start_sidecar(ordinal);
    }

    /// Create pod `ordinal` without its sidecar (see [`Set::start_sidecar`]); returns once its
    /// PID 1 is the bootstrap itself.
    pub async fn start_pod(&self, ordinal: u32, learner: bool, publish: Publish) {
        let mut spec: PodSpec = etcd_pod(&self.bed, ordinal, &self.etcd).publish(publish);
        for (k, v) in Extra::for_pod(&self.extra.pod_env, ordinal) {
            spec = spec.env(k, v);
        }
        if learner {
            spec = spec.env("ETCD_BOOTSTRAP_JOIN_AS", "learner");
        }
        self.bed.start_pod(ordinal, spec).await;
        // The sidecar enters PID 1's namespaces once PID 1 is the bootstrap itself.
        assert!(
            self.bed.wait_log(ordinal, STARTED, Duration::from_secs(20)).await,
            "etcd-{ordinal} did not start:\n{}",
            self.bed.logs(ordinal)
        );
    }

    /// `etcd-bootstrap sidecar` in pod `ordinal`'s network and UTS namespaces and a copy of its
    /// mounts: its hostname is the pod name and its resolv.conf the pod's, as for a second
    /// container.
    pub fn start_sidecar(&self, ordinal: u32) {
        let pid1 = self.bed.pid1(ordinal);
        self.sidecar_into.lock().unwrap_or_else(|p| p.into_inner()).insert(ordinal, pid1);
        let pid = pid1.to_string();
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.sidecar_log(ordinal))
            .expect("open the sidecar log");
        use std::io::Write;
        writeln!(log, "===== sidecar of etcd-{ordinal} started =====").expect("write the sidecar log");
        let stderr = log.try_clone().expect("clone the log handle");
        // Its own /proc, as a container has: a private copy of the pod's mounts (resolv.conf and
        // hosts included) with a procfs where /proc/self is the sidecar, so /proc/net/tcp shows
        // the pod's network namespace. unshare -m and sh exec: the child is the sidecar itself.
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &pid, "-n", "-u", "-m", "--", "unshare", "-m", "--propagation", "private"])
            .args(["/bin/sh", "-c", "mount -t proc proc /proc && exec \"$@\"", "sidecar"])
            .arg(bootstrap_bin())
            .args(["sidecar", "--interval", self.extra.sidecar_interval.as_deref().unwrap_or(INTERVAL)])
            .args(["--removal-delay", "5s"])
            .args(["--metrics-port", &METRICS_PORT.to_string()])
            .args(&self.extra.sidecar_args)
            .env_clear()
            .env("PATH", crate::bed::POD_PATH)
            .envs(Extra::for_pod(&self.extra.sidecar_env, ordinal))
            .envs(self.sidecar_env.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        // SAFETY: only prctl(2) between fork and exec, on no shared data. A crashed test process
        // takes its sidecars with it (nsenter execs the sidecar, keeping the setting).
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
        }
        let child = cmd.spawn().expect("spawn nsenter");
        let mut sidecars = self.sidecars.lock().unwrap_or_else(|p| p.into_inner());
        assert!(sidecars.insert(ordinal, child).is_none(), "etcd-{ordinal} has a sidecar already");
    }

    /// SIGTERM the sidecar of pod `ordinal` and check it ends within a second, with status 0.
    pub async fn stop_sidecar(&self, ordinal: u32) {
        let child = self.sidecars.lock().unwrap_or_else(|p| p.into_inner()).remove(&ordinal);
        let Some(mut child) = child else { return };
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
        kill(pid, Signal::SIGTERM).expect("signal the sidecar");
        let deadline = Instant::now() + Duration::from_secs(1);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the sidecar") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the sidecar of etcd-{ordinal} still runs 1 s after SIGTERM:\n{}",
                    self.sidecar_logs(ordinal)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(status.success(), "sidecar of etcd-{ordinal}: {status:?}\n{}", self.sidecar_logs(ordinal));
        assert!(self.sidecar_logs(ordinal).contains("stopped by SIGTERM"), "{}", self.sidecar_logs(ordinal));
    }

    /// SIGKILL the sidecar of pod `ordinal` (no grace), if it has one.
    pub fn kill_sidecar(&self, ordinal: u32) {
        let child = self.sidecars.lock().unwrap_or_else(|p| p.into_inner()).remove(&ordinal);
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sidecars that have ended by themselves (their entries are removed), with how they ended.
    pub fn ended_sidecars(&self) -> Vec<(u32, ExitStatus)> {
        let mut sidecars = self.sidecars.lock().unwrap_or_else(|p| p.into_inner());
        let ended: Vec<(u32, ExitStatus)> = sidecars
            .iter_mut()
            .filter_map(|(o, child)| child.try_wait().ok().flatten().map(|status| (*o, status)))
            .collect();
        for (o, _) in &ended {
            sidecars.remove(o);
        }
        ended
    }

    /// The PID 1 (root PID namespace) pod `ordinal`'s last sidecar was started into.
    pub fn sidecar_started_into(&self, ordinal: u32) -> Option<i32> {
        self.sidecar_into.lock().unwrap_or_else(|p| p.into_inner()).get(&ordinal).copied()
    }

    /// Whether pod `ordinal`'s last sidecar has started: logged its start line, which comes after
    /// it handles SIGTERM. Until then it may still be `nsenter` or the shell that mounts its
    /// /proc, which a SIGTERM ends by the signal, as it would end any process before its handler.
    pub fn sidecar_started(&self, ordinal: u32) -> bool {
        let log = self.sidecar_logs(ordinal);
        let mark = format!("===== sidecar of etcd-{ordinal} started =====");
        log.rsplit(mark.as_str()).next().is_some_and(|last| last.contains(" sidecar starting"))
    }

    /// Whether pod `ordinal` has a sidecar (running, or ended and not yet noticed).
    pub fn has_sidecar(&self, ordinal: u32) -> bool {
        self.sidecars.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&ordinal)
    }

    /// Delete pod `ordinal` as Kubernetes does: every container gets SIGTERM at once.
    pub async fn delete(&self, ordinal: u32) {
        tokio::join!(self.stop_sidecar(ordinal), self.bed.delete_pod(ordinal));
    }

    /// Pod `ordinal` dies with its node: every container SIGKILLed at once, the pod removed.
    pub async fn crash(&self, ordinal: u32) {
        self.kill_sidecar(ordinal);
        self.bed.kill_pod(ordinal).await;
    }

    /// Lines holding `needle` in the sidecar logs of `ordinals`.
    pub fn log_count(&self, ordinals: &[u32], needle: &str) -> usize {
        ordinals.iter().map(|o| self.sidecar_logs(*o).lines().filter(|l| l.contains(needle)).count()).sum()
    }

    /// Every pod's and sidecar's logs, for failure messages.
    pub fn logs(&self, ordinals: &[u32]) -> String {
        let mut out = bed_logs(&self.bed, ordinals);
        for o in ordinals {
            out.push_str(&format!("--- sidecar of etcd-{o} ---\n{}\n", self.sidecar_logs(*o)));
        }
        out
    }

    pub async fn healthy(&self, ordinals: &[u32]) -> Vec<etcd_check::SeenMember> {
        etcd_check::wait_healthy(&self.bed, ordinals, HEALTHY).await
    }

    /// The member names pod `ordinal` lists now (serializable: works without quorum too).
    pub async fn member_names(&self, ordinal: u32) -> Vec<String> {
        let mut c = client(&self.bed, &[ordinal]).await.expect("connect");
        let list = c.member_list().await.expect("member list");
        let mut names: Vec<String> = list.members().iter().map(|m| m.name().to_string()).collect();
        names.sort();
        names
    }

    /// The pods' leader, by the status of pod `via`.
    pub async fn leader_ordinal(&self, via: u32) -> Option<u32> {
        let mut c = client(&self.bed, &[via]).await?;
        let leader = c.status().await.ok()?.leader();
        let list = c.member_list().await.ok()?;
        let name = list.members().iter().find(|m| m.id() == leader)?.name().to_string();
        name.strip_prefix("etcd-")?.parse().ok()
    }
}

/// A client of the given pods (short timeouts: a dead pod must not stall a poll).
pub async fn client(bed: &Bed, ordinals: &[u32]) -> Option<Client> {
    let urls: Vec<String> = ordinals.iter().map(|o| bed.client_url(*o)).collect();
    let options = ConnectOptions::new()
        .with_timeout(Duration::from_secs(3))
        .with_connect_timeout(Duration::from_secs(2));
    Client::connect(urls, Some(options)).await.ok()
}

/// Writes unique keys (`acked/<seq>`) through the given client URLs (round robin) until stopped;
/// records every put etcd acknowledged, with the revision its answer carried (the put's own
/// revision: a snapshot at revision R holds every put acknowledged at a revision <= R). A put that
/// failed or timed out is not recorded: it may or may not have been applied, and nothing is
/// claimed about it. Keys are never written twice.
pub struct Writer {
    targets: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, i64)>>>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// A put every 25 ms.
    pub fn start(urls: Vec<String>) -> Writer {
        Self::start_every(urls, Duration::from_millis(25))
    }

    /// A put every `pause` (plus the put's own time).
    pub fn start_every(urls: Vec<String>, pause: Duration) -> Writer {
        let targets = Arc::new(Mutex::new(urls));
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(AtomicU64::new(0));
        let task =
            tokio::spawn(write_until(targets.clone(), stop.clone(), acked.clone(), failed.clone(), pause));
        Writer { targets, stop, acked, failed, task }
    }

    pub fn set_targets(&self, urls: Vec<String>) {
        *self.targets.lock().unwrap_or_else(|p| p.into_inner()) = urls;
    }

    /// The puts acknowledged so far.
    pub fn acked(&self) -> Vec<String> {
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, _)| k.clone()).collect()
    }

    /// The puts acknowledged so far, each with the revision etcd acknowledged it at.
    pub fn acked_at(&self) -> Vec<(String, i64)> {
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many puts were acknowledged so far.
    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// A counter of the puts acknowledged so far, readable from another task.
    pub fn acked_counter(&self) -> impl Fn() -> usize + Send + 'static {
        let acked = self.acked.clone();
        move || acked.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// How many puts failed or timed out so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    /// Stop writing (the counts stay readable). Idempotent.
    pub async fn halt(&mut self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            (&mut self.task).await.expect("writer task");
        }
    }

    /// Stop, and return the acknowledged puts and the count of the others.
    pub async fn stop(mut self) -> (Vec<String>, u64) {
        self.halt().await;
        (self.acked(), self.failed())
    }

    /// Stop; every acknowledged put must be readable on each of `ordinals` (from its own data).
    pub async fn stop_and_verify(self, set: &Set, ordinals: &[u32]) {
        let (acked, failed) = self.stop().await;
        assert!(acked.len() >= 20, "too few acknowledged writes: {} ({failed} failed)", acked.len());
        eprintln!("writer: {} puts acknowledged, {failed} not", acked.len());
        for &o in ordinals {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let missing = missing_on(&set.bed, o, &acked).await;
                match missing {
                    Ok(m) if m.is_empty() => break,
                    _ if Instant::now() > deadline => {
                        let what = match missing {
                            Ok(m) => format!(
                                "{} of {} missing, e.g. {:?}",
                                m.len(),
                                acked.len(),
                                &m[..m.len().min(5)]
                            ),
                            Err(e) => e,
                        };
                        panic!("etcd-{o}: acknowledged writes not readable: {what}\n{}", set.logs(&[o]))
                    }
                    _ => tokio::time::sleep(Duration::from_millis(300)).await,
                }
            }
        }
    }
}

async fn write_until(
    targets: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, i64)>>>,
    failed: Arc<AtomicU64>,
    pause: Duration,
) {
    let mut clients: BTreeMap<String, Client> = BTreeMap::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let urls = targets.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(url) = urls.get(seq as usize % urls.len().max(1)).cloned() {
            let key = format!("acked/{seq:07}");
            if !clients.contains_key(&url) {
                let options = ConnectOptions::new()
                    .with_timeout(Duration::from_secs(3))
                    .with_connect_timeout(Duration::from_secs(1));
                if let Ok(c) = Client::connect([url.as_str()], Some(options)).await {
                    clients.insert(url.clone(), c);
                }
            }
            let put = match clients.get_mut(&url) {
                Some(c) => {
                    match tokio::time::timeout(
                        Duration::from_secs(3),
                        c.put(key.as_str(), value_of(&key), None),
                    )
                    .await
                    {
                        Ok(Ok(r)) => Some(r.header().map(|h| h.revision()).unwrap_or_default()),
                        _ => None,
                    }
                }
                None => None,
            };
            if let Some(revision) = put {
                acked.lock().unwrap_or_else(|p| p.into_inner()).push((key, revision));
            } else {
                failed.fetch_add(1, Ordering::SeqCst);
                clients.remove(&url);
            }
        }
        seq += 1;
        tokio::time::sleep(pause).await;
    }
}

pub fn value_of(key: &str) -> String {
    format!("value-of-{key}")
}

/// Keys per page when reading the acknowledged writes back.
const PAGE: i64 = 5000;

/// Which of `acked` pod `ordinal` does not have with its value (serializable reads of its own
/// data, a page at a time). The first few missing keys and how many are missing, or why it could
/// not be read.
pub async fn missing_on(bed: &Bed, ordinal: u32, acked: &[String]) -> Result<Vec<String>, String> {
    let mut c = client(bed, &[ordinal]).await.ok_or("connect failed")?;
    let have = written_keys(&mut c).await?;
    Ok(acked.iter().filter(|k| have.get(*k) != Some(&value_of(k))).cloned().collect())
}

/// Every `acked/` key and its value as the member behind `c` has them (serializable reads of
/// its own data, a page at a time).
pub async fn written_keys(c: &mut Client) -> Result<BTreeMap<String, String>, String> {
    let mut have: BTreeMap<String, String> = BTreeMap::new();
    let mut from = "acked/".to_string();
    // The prefix's range end: `acked/` with its last byte incremented.
    let end = "acked0";
    loop {
        let options = GetOptions::new().with_range(end).with_limit(PAGE).with_serializable();
        let resp = c.get(from.as_str(), Some(options)).await.map_err(|e| e.to_string())?;
        for kv in resp.kvs() {
            have.insert(kv.key_str().unwrap_or("").to_string(), kv.value_str().unwrap_or("").to_string());
        }
        match resp.kvs().last() {
            Some(last) if resp.more() => from = format!("{}\0", last.key_str().unwrap_or("")),
            _ => break,
        }
    }
    Ok(have)
}
