//! The three contestants as pod specs on the bed, the sidecar as a second container, and the
//! membership calls an operator makes by hand (the floor's scale-up and scale-down).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::MemberAddOptions;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::bed::{pod_fqdn, pod_name, Bed, PodSpec, POD_PATH};
use crate::probe::{self, Target};
use crate::stamp;

/// The token of every static start (etcd-bootstrap's default for this namespace and service).
pub const TOKEN: &str = "etcd-bootstrap-default-etcd";
/// The sidecar settings of every run with sidecars (defaults: 10s and 2m).
pub const SIDECAR_INTERVAL: &str = "500ms";
pub const REMOVAL_DELAY: Duration = Duration::from_secs(5);
const REMOVAL_DELAY_FLAG: &str = "5s";
/// How long a pod may take to end after SIGTERM.
const GRACE: Duration = Duration::from_secs(10);

/// What the benchmark runs.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The static release etcd-bootstrap.
    pub bootstrap: PathBuf,
    /// The real etcd binary.
    pub etcd: PathBuf,
    /// This binary, as a stamp (see `stamp`).
    pub stamp: PathBuf,
}

/// The contestants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Who {
    /// etcd started by hand with a complete static configuration: no bootstrap at all.
    Floor,
    /// The classic StatefulSet script: ping every peer until it answers, then `new`.
    Shell,
    /// etcd-bootstrap as the entrypoint.
    Bootstrap,
}

impl Who {
    pub const ALL: [Who; 3] = [Who::Floor, Who::Shell, Who::Bootstrap];

    pub fn key(self) -> &'static str {
        match self {
            Who::Floor => "floor",
            Who::Shell => "shell",
            Who::Bootstrap => "bootstrap",
        }
    }
}

pub fn peer_url(ordinal: u32) -> String {
    format!("http://{}:2380", pod_fqdn(ordinal))
}

fn client_url(ordinal: u32) -> String {
    format!("http://{}:2379", pod_fqdn(ordinal))
}

/// `etcd-0=http://etcd-0.<domain>:2380,...` for the first `size` pods.
pub fn initial_cluster(size: u32) -> String {
    (0..size).map(|o| format!("{}={}", pod_name(o), peer_url(o))).collect::<Vec<_>>().join(",")
}

/// The complete static flags of pod `ordinal`; the data dir comes from `ETCD_DATA_DIR`, as for
/// every contestant.
pub fn static_flags(ordinal: u32, cluster: &str, state: &str) -> Vec<String> {
    vec![
        format!("--name={}", pod_name(ordinal)),
        "--listen-peer-urls=http://0.0.0.0:2380".into(),
        "--listen-client-urls=http://0.0.0.0:2379".into(),
        format!("--initial-advertise-peer-urls={}", peer_url(ordinal)),
        format!("--advertise-client-urls={}", client_url(ordinal)),
        format!("--initial-cluster={cluster}"),
        format!("--initial-cluster-state={state}"),
        format!("--initial-cluster-token={TOKEN}"),
    ]
}

/// The shell-script way for a cluster of `size`: ping every peer (by the short names of the classic
/// example, resolved through the search list) until it answers, `sleep 1` between tries, then exec
/// `$0 "$@"` (etcd and its flags, always `--initial-cluster-state new`).
pub fn ping_script(size: u32) -> String {
    let peers: Vec<String> = (0..size).map(|o| format!("{}.etcd", pod_name(o))).collect();
    format!(
        "for peer in {}; do\n  until ping -c 1 -W 1 \"$peer\" >/dev/null 2>&1; do sleep 1; done\ndone\nexec \"$0\" \"$@\"",
        peers.join(" ")
    )
}

/// What every contestant's pod has: its volume as etcd's data dir, etcd's log level (`warn`, or
/// `EBT_BENCH_ETCD_LOG_LEVEL` to read etcd's own timeline in the logs `EBT_BENCH_LOGS` keeps), a
/// grace.
pub fn base(bed: &Bed, ordinal: u32, spec: PodSpec) -> PodSpec {
    let level = std::env::var("EBT_BENCH_ETCD_LOG_LEVEL").unwrap_or_else(|_| "warn".into());
    spec.env("ETCD_DATA_DIR", bed.volume(ordinal).display().to_string())
        .env("ETCD_LOG_LEVEL", level)
        .grace(GRACE)
}

/// Environment of an etcd-bootstrap pod (as a manifest would set it).
fn bootstrap_env(spec: PodSpec, size: u32, etcd: &std::path::Path) -> PodSpec {
    spec.env("ETCD_BOOTSTRAP_ETCD_BINARY", etcd.display().to_string())
        .env("ETCD_BOOTSTRAP_INITIAL_CLUSTER_SIZE", size.to_string())
        .env("ETCD_BOOTSTRAP_WAIT_TIMEOUT", "3m")
}

/// Pod `ordinal` of a new cluster of `size`, started the contestant's way.
pub fn cold_spec(bed: &Bed, t: &Tools, who: Who, ordinal: u32, size: u32) -> PodSpec {
    let flags = static_flags(ordinal, &initial_cluster(size), "new");
    let spec = match who {
        Who::Floor => PodSpec::new(&t.etcd).args(flags),
        Who::Shell => PodSpec::shell(&ping_script(size)).arg(&t.etcd).args(flags),
        Who::Bootstrap => bootstrap_env(PodSpec::new(&t.bootstrap), size, &t.etcd),
    };
    base(bed, ordinal, spec)
}

/// An etcd-bootstrap pod of a set whose initial size is 3, joining as a learner if asked.
pub fn bootstrap_spec(bed: &Bed, t: &Tools, ordinal: u32, learner: bool) -> PodSpec {
    let spec = bootstrap_env(PodSpec::new(&t.bootstrap), 3, &t.etcd);
    let spec = if learner { spec.env("ETCD_BOOTSTRAP_JOIN_AS", "learner") } else { spec };
    base(bed, ordinal, spec)
}

/// The floor's joiner: etcd with `existing` and the member list the hand-made `member add`
/// returned.
pub fn floor_join_spec(bed: &Bed, t: &Tools, ordinal: u32, cluster: &str) -> PodSpec {
    base(bed, ordinal, PodSpec::new(&t.etcd).args(static_flags(ordinal, cluster, "existing")))
}

/// A start-to-exec chain in pod `ordinal`: the stamp, then `program` (which must exec the stamp
/// as its etcd), see `stamp`.
pub fn stamped_spec(bed: &Bed, t: &Tools, who: Who, ordinal: u32, size: u32) -> PodSpec {
    let spec = PodSpec::new(&t.stamp).arg(stamp::THEN);
    let spec = match who {
        Who::Floor => spec.arg(&t.stamp),
        Who::Shell => spec.args(["/bin/sh", "-c"]).arg(ping_script(size)).arg(&t.stamp),
        Who::Bootstrap => bootstrap_env(spec.arg(&t.bootstrap), size, &t.stamp),
    };
    base(bed, ordinal, spec.env(stamp::ENV, "1"))
}

/// Every pod in `ordinals` with its IP.
pub fn targets(bed: &Bed, ordinals: impl IntoIterator<Item = u32>) -> Vec<Target> {
    ordinals.into_iter().map(|o| (o, bed.pod_ip(o))).collect()
}

pub fn ips(bed: &Bed, ordinals: impl IntoIterator<Item = u32>) -> Vec<Ipv4Addr> {
    ordinals.into_iter().map(|o| bed.pod_ip(o)).collect()
}

/// The last lines of each pod's log, for a failure's explanation.
pub fn tails(bed: &Bed, ordinals: impl IntoIterator<Item = u32>, extra: &Sidecars) -> String {
    let mut out = String::new();
    for o in ordinals {
        for (what, text) in [("pod", bed.logs(o)), ("sidecar", extra.logs(bed, o))] {
            if text.is_empty() {
                continue;
            }
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {what} {} ---\n", pod_name(o)));
            for l in &lines[lines.len().saturating_sub(15)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    out
}

/// `etcd-bootstrap sidecar` as a second container of each pod (nsenter into PID 1's network,
/// UTS and mount namespaces, as the integration tests do). Killed when this drops.
#[derive(Default)]
pub struct Sidecars {
    children: BTreeMap<u32, Child>,
}

impl Drop for Sidecars {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.children) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Sidecars {
    fn log_path(bed: &Bed, ordinal: u32) -> PathBuf {
        bed.root().join("logs").join(format!("{}-sidecar.log", pod_name(ordinal)))
    }

    pub fn logs(&self, bed: &Bed, ordinal: u32) -> String {
        std::fs::read_to_string(Self::log_path(bed, ordinal)).unwrap_or_default()
    }

    /// Start pod `ordinal`'s sidecar once its PID 1 is etcd-bootstrap (its namespaces are set).
    pub async fn start(&mut self, bed: &Bed, t: &Tools, ordinal: u32) -> Result<(), String> {
        self.start_with(bed, t, ordinal, &[]).await
    }

    /// [`Sidecars::start`] with more options.
    pub async fn start_with(
        &mut self,
        bed: &Bed,
        t: &Tools,
        ordinal: u32,
        extra: &[String],
    ) -> Result<(), String> {
        let started = concat!("etcd-bootstrap ", env!("CARGO_PKG_VERSION"), " starting");
        if !bed.wait_log(ordinal, started, Duration::from_secs(20)).await {
            return Err(format!("{} did not start", pod_name(ordinal)));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Self::log_path(bed, ordinal))
            .map_err(|e| format!("sidecar log: {e}"))?;
        let stderr = log.try_clone().map_err(|e| format!("sidecar log: {e}"))?;
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &bed.pid1(ordinal).to_string(), "-n", "-u", "-m", "--"])
            .arg(&t.bootstrap)
            .args(["sidecar", "--interval", SIDECAR_INTERVAL, "--removal-delay", REMOVAL_DELAY_FLAG])
            .args(extra)
            .env_clear()
            .env("PATH", POD_PATH)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        // SAFETY: only prctl(2) between fork and exec: a crashed bench takes its sidecars along.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
        }
        let child = cmd.spawn().map_err(|e| format!("spawn nsenter: {e}"))?;
        self.children.insert(ordinal, child);
        Ok(())
    }

    /// SIGTERM pod `ordinal`'s sidecar and reap it (SIGKILL after 2 s).
    pub async fn stop(&mut self, ordinal: u32) {
        let Some(mut child) = self.children.remove(&ordinal) else { return };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// CPU seconds (user and system) pod `ordinal`'s sidecar has used so far.
    pub fn cpu_secs(&self, ordinal: u32) -> Option<f64> {
        let child = self.children.get(&ordinal)?;
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).ok()?;
        if !String::from_utf8_lossy(&cmdline).contains("sidecar") {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).ok()?;
        cpu_secs_of_stat(&stat)
    }

    /// (VmRSS, VmHWM) in KiB of pod `ordinal`'s sidecar (nsenter execs it: same PID).
    pub fn memory_kib(&self, ordinal: u32) -> Option<(u64, u64)> {
        let child = self.children.get(&ordinal)?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).ok()?;
        // Still nsenter (not yet exec'd) would measure the wrong program.
        if !String::from_utf8_lossy(&cmdline).contains("sidecar") {
            return None;
        }
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }
}

/// utime + stime of a `/proc/PID/stat` line, in seconds: fields 14 and 15, counted after the
/// command name's closing parenthesis (the name may hold spaces), in clock ticks of 1/100 s
/// (Linux's USER_HZ, whatever the kernel's own HZ).
fn cpu_secs_of_stat(stat: &str) -> Option<f64> {
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// `member add` by hand through any of `via`, retried while etcd refuses it for now (etcd 3.5.1
/// wants to have heard from every voter lately). Returns the new member's ID and the
/// `--initial-cluster` for it, named `name`.
pub async fn member_add(
    via: &[Ipv4Addr],
    name: &str,
    url: &str,
    learner: bool,
) -> Result<(u64, String), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let mut c = probe::connect(via).await?;
            let options = learner.then(|| MemberAddOptions::new().with_is_learner());
            let resp = c.member_add([url], options).await.map_err(|e| format!("member add: {e}"))?;
            let id = resp.member().map(|m| m.id()).ok_or("member add: no member in the answer")?;
            let cluster: Vec<String> = resp
                .member_list()
                .iter()
                .flat_map(|m| {
                    let n = if m.id() == id { name.to_string() } else { m.name().to_string() };
                    m.peer_urls().iter().map(move |u| format!("{n}={u}")).collect::<Vec<_>>()
                })
                .collect();
            Ok::<_, String>((id, cluster.join(",")))
        };
        match tokio::time::timeout(Duration::from_secs(15), attempt).await {
            Ok(Ok(added)) => return Ok(added),
            Ok(Err(e)) if Instant::now() < deadline => eprintln!("  (retrying: {e})"),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("member add timed out".into()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `member promote` by hand, retried every 100 ms until etcd accepts it (a learner must catch up
/// first).
pub async fn promote_when_ready(via: Vec<Ipv4Addr>, id: u64) {
    loop {
        if let Ok(mut c) = probe::connect(&via).await {
            if c.member_promote(id).await.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `member remove` of the member named `name` (or with `name`'s peer URL) by hand.
pub async fn member_remove(via: &[Ipv4Addr], ordinal: u32) -> Result<(), String> {
    let mut c = probe::connect(via).await?;
    let list = c.member_list().await.map_err(|e| format!("member list: {e}"))?;
    let url = peer_url(ordinal);
    let Some(m) =
        list.members().iter().find(|m| m.name() == pod_name(ordinal) || m.peer_urls().contains(&url))
    else {
        return Err(format!("{} is not a member", pod_name(ordinal)));
    };
    c.member_remove(m.id()).await.map_err(|e| format!("member remove: {e}"))?;
    Ok(())
}

/// With `EBT_BENCH_LOGS=DIR`, keep a copy of the bed's logs (pods and sidecars) in
/// `DIR/<bed name>-<n>/` before the bed is torn down: for looking into a figure.
pub fn keep_logs(bed: &Bed) {
    let Some(dir) = std::env::var_os("EBT_BENCH_LOGS") else { return };
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let to = PathBuf::from(dir).join(format!("{}-{n}", bed.test_name()));
    let _ = std::fs::create_dir_all(&to);
    if let Ok(entries) = std::fs::read_dir(bed.root().join("logs")) {
        for e in entries.flatten() {
            let _ = std::fs::copy(e.path(), to.join(e.file_name()));
        }
    }
}
