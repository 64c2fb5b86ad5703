//! The pod bed: pods as network + UTS + PID + mount namespaces, a real DNS server publishing the
//! headless service, and volumes that outlive pods.
//!
//! Each [`Bed`] owns a slot K (see `net`): subnet 10.231.K.0/24, a `lan` network namespace with a
//! bridge, and a veth into it from the root namespace carrying the gateway 10.231.K.1, where the
//! test process reaches pods and where the [`DnsServer`] listens (port 53). The bridge stays out
//! of the root namespace (Docker's FORWARD DROP with br_netfilter would drop bridged traffic), and
//! pods get no default route: nothing they send can leave the bed.
//!
//! A pod is what a StatefulSet makes: `etcd-<i>` of service `etcd` in namespace `default`, domain
//! `cluster.local`, with its own network namespace and a new IP on every (re)creation, its own
//! hostname, Kubernetes' resolv.conf and hosts file, its program as PID 1 with a container-like
//! environment, and a volume that survives it. DNS follows `publishNotReadyAddresses: true`: a pod
//! is published (A record and both SRV sets) when it is created, or after the delay the test
//! chooses, and unpublished when deleted.
//!
//! Everything is removed when the Bed drops (also on panic, when pod logs are printed first), and
//! leftovers of a crashed run with the same slot are removed when the slot is next taken.
//!
//! ```ignore
//! if !prereq::need_root(NAME) { return; }
//! let bed = Bed::new(NAME).await;
//! let spec = PodSpec::new(bootstrap_bin)
//!     .args(["--initial-cluster-size", "3", "--etcd-binary", etcd.to_str().unwrap()])
//!     .args(["--", "--data-dir", bed.volume(0).to_str().unwrap()])
//!     .publish(Publish::After(Duration::from_millis(500)));
//! bed.start_pod(0, spec).await;                  // etcd-0: new netns, IP, hostname, PID 1
//! assert!(bed.wait_log(0, "decision", Duration::from_secs(10)).await, "{}", bed.logs(0));
//! let exit = bed.delete_pod(0).await;            // SIGTERM, grace, SIGKILL; volume kept
//! bed.dns().set_fault(Fault::Servfail);          // DNS chaos for the next pod
//! ```

// Shared test support: not every helper is used by every test binary build.
#![allow(dead_code)]

pub mod dns_server;
pub mod net;
mod pod;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use dns_server::{DnsServer, Fault};
pub use nix::sys::signal::Signal;
pub use pod::PodExit;

/// The StatefulSet, its headless service, namespace and cluster domain.
pub const SET: &str = "etcd";
pub const SERVICE: &str = "etcd";
pub const NAMESPACE: &str = "default";
pub const CLUSTER_DOMAIN: &str = "cluster.local";
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;
/// The headless service's domain: pod `i` is `etcd-<i>.` + this.
pub const SERVICE_DOMAIN: &str = "etcd.default.svc.cluster.local";
/// SRV names of the headless service's named ports.
pub const SRV_SERVER: &str = "_etcd-server._tcp.etcd.default.svc.cluster.local";
pub const SRV_CLIENT: &str = "_etcd-client._tcp.etcd.default.svc.cluster.local";
/// The PATH a pod gets unless its spec sets one (a usual container image's).
pub const POD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// The name of pod `ordinal` (`etcd-<i>`), also its hostname.
pub fn pod_name(ordinal: u32) -> String {
    format!("{SET}-{ordinal}")
}

/// The DNS name of pod `ordinal` (`etcd-<i>.etcd.default.svc.cluster.local`).
pub fn pod_fqdn(ordinal: u32) -> String {
    format!("{SET}-{ordinal}.{SERVICE_DOMAIN}")
}

/// When a pod appears in DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// As soon as it is created.
    Now,
    /// This long after it is created (if it still exists then).
    After(Duration),
    /// Not by itself (the test may call [`Bed::publish`]).
    Never,
}

/// What a pod runs, like a container spec.
#[derive(Debug, Clone)]
pub struct PodSpec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Environment on top of `PATH` ([`POD_PATH`]) and `HOSTNAME` (the pod name); the inherited
    /// environment is not passed. A variable given here replaces those two.
    pub env: Vec<(String, String)>,
    /// Set this variable to the pod's IP, like the downward API's `status.podIP`.
    pub pod_ip_env: Option<String>,
    pub publish: Publish,
    /// How long [`Bed::delete_pod`] waits after SIGTERM before SIGKILL.
    pub grace: Duration,
}

impl PodSpec {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        PodSpec {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            pod_ip_env: None,
            publish: Publish::Now,
            grace: DEFAULT_GRACE,
        }
    }

    /// `/bin/sh -c SCRIPT`: the shell is PID 1.
    pub fn shell(script: &str) -> Self {
        Self::new("/bin/sh").arg("-c").arg(script)
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn pod_ip_env(mut self, var: impl Into<String>) -> Self {
        self.pod_ip_env = Some(var.into());
        self
    }

    pub fn publish(mut self, publish: Publish) -> Self {
        self.publish = publish;
        self
    }

    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

/// A set of pods on one private network with one DNS server. See the module doc.
pub struct Bed {
    inner: Arc<Inner>,
}

struct Inner {
    test: String,
    slot: net::Slot,
    root: PathBuf,
    dns: OnceLock<DnsServer>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pods: BTreeMap<u32, Pod>,
    /// Pods in DNS, with the IP published.
    published: BTreeMap<u32, Ipv4Addr>,
    /// The IP each ordinal had last, so its next incarnation gets another.
    last_ip: BTreeMap<u32, Ipv4Addr>,
    /// Pod incarnations per ordinal (1 for the first pod).
    incarnations: BTreeMap<u32, u32>,
    next_host: u8,
    timers: Vec<tokio::task::AbortHandle>,
}

struct Pod {
    spec: PodSpec,
    ip: Ipv4Addr,
    incarnation: u32,
    proc: Arc<pod::Proc>,
    reaper: Option<JoinHandle<()>>,
}

const FIRST_HOST: u8 = 10;
const LAST_HOST: u8 = 254;
const LOG_MARK: &str = "===== ebt-bed:";

impl Bed {
    /// A new bed with its own subnet, lan and DNS server. Panics (with the reason) when it cannot
    /// be built; whatever was built by then is removed.
    pub async fn new(test_name: &str) -> Bed {
        let slot = net::Slot::acquire();
        let root = slot.root_dir();
        let bed = Bed {
            inner: Arc::new(Inner {
                test: test_name.to_string(),
                slot,
                root: root.clone(),
                dns: OnceLock::new(),
                state: Mutex::new(State { next_host: FIRST_HOST, ..State::default() }),
            }),
        };
        for dir in [root.join("vol"), root.join("logs")] {
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("{test_name}: cannot create {}: {e}", dir.display()));
        }
        std::fs::write(root.join("TEST"), format!("{test_name}\n"))
            .unwrap_or_else(|e| panic!("{test_name}: cannot write into {}: {e}", root.display()));
        if let Err(e) = bed.inner.slot.create_lan() {
            panic!("{test_name}: cannot build the bed's lan: {e}");
        }
        let dns_addr = SocketAddr::new(bed.gateway().into(), 53);
        let dns = DnsServer::start(dns_addr)
            .await
            .unwrap_or_else(|e| panic!("{test_name}: cannot start the DNS server on {dns_addr}: {e}"));
        if bed.inner.dns.set(dns).is_err() {
            unreachable!("the DNS server is set once, here");
        }
        bed
    }

    /// The test this bed belongs to.
    pub fn test_name(&self) -> &str {
        &self.inner.test
    }

    /// The slot K: the subnet is 10.231.K.0/24.
    pub fn slot(&self) -> u8 {
        self.inner.slot.k
    }

    /// 10.231.K.1: the test process's address on the bed, and the DNS server's.
    pub fn gateway(&self) -> Ipv4Addr {
        self.inner.slot.gateway()
    }

    /// The DNS server (records, faults, query count).
    pub fn dns(&self) -> &DnsServer {
        self.inner.dns.get().expect("the DNS server starts in Bed::new")
    }

    /// The DNS server's address (10.231.K.1:53), e.g. for `--dns-server`.
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns().addr()
    }

    /// The bed's temp root (volumes under `vol/`, logs under `logs/`).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Names of everything the bed made in the kernel: network namespaces (lan first) and the
    /// root-namespace link. For checks that teardown left nothing.
    pub fn kernel_names(&self) -> (Vec<String>, String) {
        let st = self.state();
        let mut ns = vec![self.inner.slot.lan_ns()];
        ns.extend(st.pods.keys().map(|i| self.inner.slot.pod_ns(*i)));
        (ns, self.inner.slot.gw_link())
    }

    // ----- volumes -------------------------------------------------------------------------

    /// Pod `ordinal`'s volume (created empty if missing). It outlives the pod, like a PVC; inside
    /// the pod it is a mount point at the same path.
    pub fn volume(&self, ordinal: u32) -> PathBuf {
        let dir = self.volume_path(ordinal);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create volume {}: {e}", dir.display()));
        dir
    }

    /// Lose pod `ordinal`'s volume: it comes back empty. The pod must not exist (a PVC in use
    /// cannot be deleted).
    pub fn wipe_volume(&self, ordinal: u32) -> PathBuf {
        assert!(
            !self.exists(ordinal),
            "wipe_volume({ordinal}): pod {} still exists; delete it first",
            pod_name(ordinal)
        );
        let dir = self.volume_path(ordinal);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .unwrap_or_else(|e| panic!("cannot wipe volume {}: {e}", dir.display()));
        }
        self.volume(ordinal)
    }

    /// Replace pod `ordinal`'s volume by a fresh ext4-like one: only `lost+found`.
    pub fn fresh_volume_with_lost_found(&self, ordinal: u32) -> PathBuf {
        let dir = self.wipe_volume(ordinal);
        let lf = dir.join("lost+found");
        std::fs::create_dir(&lf).unwrap_or_else(|e| panic!("cannot create {}: {e}", lf.display()));
        dir
    }

    fn volume_path(&self, ordinal: u32) -> PathBuf {
        self.inner.root.join("vol").join(pod_name(ordinal))
    }

    // ----- logs ----------------------------------------------------------------------------

    /// Path of pod `ordinal`'s log (stdout and stderr of every incarnation, each started by a
    /// `===== ebt-bed: ...` line).
    pub fn log_path(&self, ordinal: u32) -> PathBuf {
        self.inner.root.join("logs").join(format!("{}.log", pod_name(ordinal)))
    }

    /// Everything pod `ordinal` ever printed, all incarnations (empty if none).
    pub fn logs(&self, ordinal: u32) -> String {
        std::fs::read(self.log_path(ordinal))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// What the current (or last) container of pod `ordinal` printed.
    pub fn logs_current(&self, ordinal: u32) -> String {
        let all = self.logs(ordinal);
        match all.rfind(LOG_MARK) {
            Some(at) => match all[at..].find('\n') {
                Some(nl) => all[at + nl + 1..].to_string(),
                None => String::new(),
            },
            None => all,
        }
    }

    /// Poll the current container's log until it contains `needle`; false after `timeout`.
    pub async fn wait_log(&self, ordinal: u32, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.logs_current(ordinal).contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // ----- pods ----------------------------------------------------------------------------

    /// Create pod `ordinal` (a new network namespace and a new IP, its volume kept) and start its
    /// program as PID 1. Returns the pod's IP. Panics if the pod exists (delete it first).
    pub async fn start_pod(&self, ordinal: u32, spec: PodSpec) -> Ipv4Addr {
        let name = pod_name(ordinal);
        let (ip, incarnation) = {
            let mut st = self.state();
            assert!(
                !st.pods.contains_key(&ordinal),
                "start_pod({ordinal}): pod {name} exists; delete or kill it first"
            );
            let ip = self.allocate_ip(&mut st, ordinal);
            let n = st.incarnations.entry(ordinal).or_insert(0);
            *n += 1;
            (ip, *n)
        };
        let slot = &self.inner.slot;
        let ns = slot.pod_ns(ordinal);
        slot.remove_pod_net(ordinal);
        if let Err(e) = slot.create_pod_net(ordinal, ip) {
            slot.remove_pod_net(ordinal);
            panic!("start_pod({ordinal}): cannot make the pod's network: {e}");
        }
        self.write_pod_etc(&ns, ordinal, ip);
        let header = format!("pod {name} created (incarnation {incarnation}), ip {ip}");
        let (proc, reaper) = match self.launch(ordinal, ip, &spec, &header).await {
            Ok(started) => started,
            Err(e) => {
                slot.remove_pod_net(ordinal);
                panic!("start_pod({ordinal}): cannot start {}: {e}", spec.program.display());
            }
        };
        let publish = spec.publish;
        {
            let mut st = self.state();
            st.last_ip.insert(ordinal, ip);
            st.pods.insert(ordinal, Pod { spec, ip, incarnation, proc, reaper: Some(reaper) });
            match publish {
                Publish::Now => self.publish_locked(&mut st, ordinal),
                Publish::Never => {}
                Publish::After(delay) => {
                    let weak: Weak<Inner> = Arc::downgrade(&self.inner);
                    let task = tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        if let Some(inner) = weak.upgrade() {
                            let bed = BedRef(&inner);
                            let mut st = bed.state();
                            let same = st.pods.get(&ordinal).map(|p| p.incarnation);
                            if same == Some(incarnation) {
                                bed.publish_locked(&mut st, ordinal);
                            }
                        }
                    });
                    st.timers.push(task.abort_handle());
                }
            }
        }
        ip
    }

    /// Restart pod `ordinal`'s container in place (same network namespace and IP, same spec),
    /// as the kubelet does after the program exits. A still-running PID 1 is SIGKILLed first.
    pub async fn restart_container(&self, ordinal: u32) {
        let (proc, spec, ip, incarnation) = {
            let st = self.state();
            let pod = st
                .pods
                .get(&ordinal)
                .unwrap_or_else(|| panic!("restart_container({ordinal}): no pod {}", pod_name(ordinal)));
            (pod.proc.clone(), pod.spec.clone(), pod.ip, pod.incarnation)
        };
        if proc.exit().is_none() {
            proc.signal(Signal::SIGKILL);
        }
        proc.wait(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("restart_container({ordinal}): PID 1 survives SIGKILL"));
        let old_reaper = self.state().pods.get_mut(&ordinal).and_then(|p| p.reaper.take());
        if let Some(r) = old_reaper {
            let _ = r.join();
        }
        let header =
            format!("pod {} container restarted (incarnation {incarnation}), ip {ip}", pod_name(ordinal));
        let (proc, reaper) = self
            .launch(ordinal, ip, &spec, &header)
            .await
            .unwrap_or_else(|e| panic!("restart_container({ordinal}): cannot start: {e}"));
        let mut st = self.state();
        let pod = st
            .pods
            .get_mut(&ordinal)
            .unwrap_or_else(|| panic!("restart_container({ordinal}): pod deleted meanwhile"));
        pod.proc = proc;
        pod.reaper = Some(reaper);
    }

    /// Delete pod `ordinal` like `kubectl delete pod`: SIGTERM to PID 1, up to the spec's grace
    /// period, then SIGKILL; then its DNS records, network namespace and veth go (the volume
    /// stays). Returns how PID 1 ended.
    pub async fn delete_pod(&self, ordinal: u32) -> PodExit {
        let grace = self.pod(ordinal, "delete_pod", |p| p.spec.grace);
        self.delete_pod_with_grace(ordinal, grace).await
    }

    /// [`Bed::delete_pod`] with this grace period.
    pub async fn delete_pod_with_grace(&self, ordinal: u32, grace: Duration) -> PodExit {
        let proc = self.pod(ordinal, "delete_pod", |p| p.proc.clone());
        proc.signal(Signal::SIGTERM);
        let exit = match proc.wait(grace).await {
            Some(e) => e,
            None => {
                proc.signal(Signal::SIGKILL);
                proc.wait(Duration::from_secs(10))
                    .await
                    .unwrap_or_else(|| panic!("delete_pod({ordinal}): PID 1 survives SIGKILL for 10 s"))
            }
        };
        self.remove_pod(ordinal);
        exit
    }

    /// Kill pod `ordinal` at once (SIGKILL, no grace: a node crash); then the same cleanup as
    /// [`Bed::delete_pod`]. Returns how PID 1 ended (a program that had exited keeps its status).
    pub async fn kill_pod(&self, ordinal: u32) -> PodExit {
        let proc = self.pod(ordinal, "kill_pod", |p| p.proc.clone());
        proc.signal(Signal::SIGKILL);
        let exit = proc
            .wait(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("kill_pod({ordinal}): PID 1 survives SIGKILL for 10 s"));
        self.remove_pod(ordinal);
        exit
    }

    /// Send `sig` to pod `ordinal`'s PID 1, once it is the program itself (waits, bounded, for the
    /// bed's wrapper to exec it). As in any PID namespace, PID 1 gets only the signals it
    /// handles (and SIGKILL). Returns false when PID 1 had already ended.
    pub async fn signal_pid1(&self, ordinal: u32, sig: Signal) -> bool {
        let proc = self.pod(ordinal, "signal_pid1", |p| p.proc.clone());
        if !proc.wait_exec(Duration::from_secs(10)).await && proc.exit().is_none() {
            panic!("signal_pid1({ordinal}): the program did not become PID 1 within 10 s");
        }
        proc.signal(sig)
    }

    /// Wait up to `timeout` for pod `ordinal`'s PID 1 to end; its exit, or None on timeout.
    pub async fn wait_exit(&self, ordinal: u32, timeout: Duration) -> Option<PodExit> {
        let proc = self.pod(ordinal, "wait_exit", |p| p.proc.clone());
        proc.wait(timeout).await
    }

    /// Pod `ordinal`'s PID 1 exit, if it has ended (no waiting).
    pub fn exit_status(&self, ordinal: u32) -> Option<PodExit> {
        self.pod(ordinal, "exit_status", |p| p.proc.exit())
    }

    /// Whether pod `ordinal` exists (created, not deleted), running or not.
    pub fn exists(&self, ordinal: u32) -> bool {
        self.state().pods.contains_key(&ordinal)
    }

    /// Whether pod `ordinal` exists and its PID 1 has not ended.
    pub fn is_running(&self, ordinal: u32) -> bool {
        self.state().pods.get(&ordinal).is_some_and(|p| p.proc.exit().is_none())
    }

    /// Ordinals of the existing pods.
    pub fn pods(&self) -> Vec<u32> {
        self.state().pods.keys().copied().collect()
    }

    /// PID 1 of pod `ordinal`, as seen from the test process (root PID namespace).
    pub fn pid1(&self, ordinal: u32) -> i32 {
        self.pod(ordinal, "pid1", |p| p.proc.pid)
    }

    /// Pod `ordinal`'s IP.
    pub fn pod_ip(&self, ordinal: u32) -> Ipv4Addr {
        self.pod(ordinal, "pod_ip", |p| p.ip)
    }

    /// `http://<pod ip>:2379`.
    pub fn client_url(&self, ordinal: u32) -> String {
        format!("http://{}:{CLIENT_PORT}", self.pod_ip(ordinal))
    }

    /// `http://<pod ip>:2380`.
    pub fn peer_url(&self, ordinal: u32) -> String {
        format!("http://{}:{PEER_PORT}", self.pod_ip(ordinal))
    }

    /// Pod `ordinal`'s network namespace name (for `ip netns exec`).
    pub fn netns(&self, ordinal: u32) -> String {
        self.pod(ordinal, "netns", |_| ());
        self.inner.slot.pod_ns(ordinal)
    }

    /// Slow pod `ordinal`'s link to `to` (its packets to that address and port) down to
    /// `kbit_per_s`, as a slow link to a remote store would be; everything else keeps its speed.
    /// `tc` in the pod's namespace: an htb qdisc on `eth0` whose default class is unlimited, and
    /// one limited class chosen by a u32 filter. It goes with the pod's namespace.
    pub fn slow_link_to(&self, ordinal: u32, to: std::net::SocketAddrV4, kbit_per_s: u32) {
        let ns = self.netns(ordinal);
        let (dst, port) = (format!("{}/32", to.ip()), to.port().to_string());
        let rate = format!("{kbit_per_s}kbit");
        let steps: [&[&str]; 4] = [
            &["qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "10"],
            &["class", "add", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit"],
            &[
                "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:20", "htb", "rate", &rate,
                "ceil", &rate,
            ],
            &[
                "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
                "match", "ip", "dst", &dst, "match", "ip", "dport", &port, "0xffff", "flowid", "1:20",
            ],
        ];
        for step in steps {
            if let Err(e) = net::tc(&ns, step) {
                panic!("slow_link_to({ordinal}): {e}");
            }
        }
    }

    /// Cut pod `ordinal` off the network (its bridge port down): no traffic in or out, the pod
    /// and its IP stay.
    pub fn cut_network(&self, ordinal: u32) {
        self.pod(ordinal, "cut_network", |_| ());
        if let Err(e) = self.inner.slot.set_pod_link(ordinal, false) {
            panic!("cut_network({ordinal}): {e}");
        }
    }

    /// Undo [`Bed::cut_network`].
    pub fn restore_network(&self, ordinal: u32) {
        self.pod(ordinal, "restore_network", |_| ());
        if let Err(e) = self.inner.slot.set_pod_link(ordinal, true) {
            panic!("restore_network({ordinal}): {e}");
        }
    }

    // ----- DNS -----------------------------------------------------------------------------

    /// Publish pod `ordinal` now (A record and SRV entries), e.g. after [`Publish::Never`].
    pub fn publish(&self, ordinal: u32) {
        let mut st = self.state();
        assert!(st.pods.contains_key(&ordinal), "publish({ordinal}): no pod {}", pod_name(ordinal));
        self.publish_locked(&mut st, ordinal);
    }

    /// Take pod `ordinal` out of DNS while it exists.
    pub fn unpublish(&self, ordinal: u32) {
        let mut st = self.state();
        BedRef(&self.inner).unpublish_locked(&mut st, ordinal);
    }

    /// Whether pod `ordinal` is in DNS.
    pub fn is_published(&self, ordinal: u32) -> bool {
        self.state().published.contains_key(&ordinal)
    }

    // ----- internals -----------------------------------------------------------------------

    fn state(&self) -> MutexGuard<'_, State> {
        BedRef(&self.inner).state()
    }

    fn publish_locked(&self, st: &mut State, ordinal: u32) {
        BedRef(&self.inner).publish_locked(st, ordinal)
    }

    /// Read something of pod `ordinal`, panicking with `what` when there is no such pod.
    fn pod<T>(&self, ordinal: u32, what: &str, f: impl FnOnce(&Pod) -> T) -> T {
        let st = self.state();
        let pod = st
            .pods
            .get(&ordinal)
            .unwrap_or_else(|| panic!("{what}({ordinal}): no pod {}", pod_name(ordinal)));
        f(pod)
    }

    /// Next free host address, never the one this ordinal had last.
    fn allocate_ip(&self, st: &mut State, ordinal: u32) -> Ipv4Addr {
        let span = u32::from(LAST_HOST - FIRST_HOST) + 1;
        for _ in 0..span {
            let host = st.next_host;
            st.next_host = if host >= LAST_HOST { FIRST_HOST } else { host + 1 };
            let ip = self.inner.slot.ip(host);
            let used = st.pods.values().any(|p| p.ip == ip);
            if !used && st.last_ip.get(&ordinal) != Some(&ip) {
                return ip;
            }
        }
        panic!("start_pod({ordinal}): no free address left in the bed's subnet");
    }

    /// The pod's `/etc/resolv.conf` and `/etc/hosts`, shaped like the kubelet's.
    fn write_pod_etc(&self, ns: &str, ordinal: u32, ip: Ipv4Addr) {
        let dir = net::etc_netns(ns);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let resolv = format!(
            "search {NAMESPACE}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n\
             nameserver {}\n\
             options ndots:5\n",
            self.gateway()
        );
        let hosts = format!(
            "# Kubernetes-managed hosts file.\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\n\
             fe00::2\tip6-allrouters\n\
             {ip}\t{}\t{}\n",
            pod_fqdn(ordinal),
            pod_name(ordinal)
        );
        for (file, text) in [("resolv.conf", resolv), ("hosts", hosts)] {
            let path = dir.join(file);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
    }

    /// Start one container of pod `ordinal` (network and /etc files already in place).
    async fn launch(
        &self,
        ordinal: u32,
        ip: Ipv4Addr,
        spec: &PodSpec,
        header: &str,
    ) -> std::io::Result<(Arc<pod::Proc>, JoinHandle<()>)> {
        use std::io::Write;
        let name = pod_name(ordinal);
        let volume = self.volume(ordinal);
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(ordinal))?;
        writeln!(log, "{LOG_MARK} {header} =====")?;
        let mut env: Vec<(OsString, OsString)> =
            vec![("PATH".into(), POD_PATH.into()), ("HOSTNAME".into(), name.clone().into())];
        if let Some(var) = &spec.pod_ip_env {
            env.push((var.into(), ip.to_string().into()));
        }
        for (k, v) in &spec.env {
            env.retain(|(old, _)| old != k.as_str());
            env.push((k.into(), v.into()));
        }
        pod::launch(pod::Launch {
            netns: self.inner.slot.pod_ns(ordinal),
            hostname: name,
            volume,
            program: spec.program.clone(),
            args: spec.args.clone(),
            env,
            log,
        })
        .await
    }

    /// After PID 1 has ended: unpublish, join the reaper, remove the pod's network.
    fn remove_pod(&self, ordinal: u32) {
        let pod = {
            let mut st = self.state();
            BedRef(&self.inner).unpublish_locked(&mut st, ordinal);
            st.pods.remove(&ordinal)
        };
        if let Some(mut pod) = pod {
            if let Some(r) = pod.reaper.take() {
                let _ = r.join();
            }
        }
        self.inner.slot.remove_pod_net(ordinal);
    }

    /// Print the tail of every pod log (on a failing test, before the logs are removed).
    fn dump_logs(&self) {
        let Ok(entries) = std::fs::read_dir(self.inner.root.join("logs")) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let text =
                std::fs::read(&path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "----- {}: {} (last {} lines) -----",
                self.inner.test,
                path.file_name().unwrap_or_default().to_string_lossy(),
                tail.len()
            );
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

/// Operations shared by [`Bed`] and its timers (which hold only a weak reference).
struct BedRef<'a>(&'a Inner);

impl<'a> BedRef<'a> {
    fn state(&self) -> MutexGuard<'a, State> {
        // A test that panicked while holding the lock must not hide the bed from teardown.
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish_locked(&self, st: &mut State, ordinal: u32) {
        let Some(ip) = st.pods.get(&ordinal).map(|p| p.ip) else {
            return;
        };
        st.published.insert(ordinal, ip);
        if let Some(dns) = self.0.dns.get() {
            dns.set_a(&pod_fqdn(ordinal), ip);
        }
        self.sync_srv(st);
    }

    fn unpublish_locked(&self, st: &mut State, ordinal: u32) {
        if st.published.remove(&ordinal).is_some() {
            if let Some(dns) = self.0.dns.get() {
                dns.remove_a(&pod_fqdn(ordinal));
            }
            self.sync_srv(st);
        }
    }

    /// Both SRV sets list every published pod (an empty list removes them).
    fn sync_srv(&self, st: &State) {
        let Some(dns) = self.0.dns.get() else { return };
        for (name, port) in [(SRV_SERVER, PEER_PORT), (SRV_CLIENT, CLIENT_PORT)] {
            let targets = st.published.keys().map(|i| (pod_fqdn(*i), port)).collect();
            dns.set_srv(name, targets);
        }
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        let (pods, timers) = {
            let mut st = self.state();
            let timers = std::mem::take(&mut st.timers);
            let pods: Vec<_> =
                st.pods.iter_mut().map(|(i, pod)| (*i, pod.proc.clone(), pod.reaper.take())).collect();
            (pods, timers)
        };
        for t in timers {
            t.abort();
        }
        if panicking {
            for (ordinal, proc, _) in &pods {
                let state = match proc.exit() {
                    None => "still running (killed now)".to_string(),
                    Some(e) => format!("PID 1 ended: {e:?}"),
                };
                eprintln!("----- {}: {}: {state}", self.inner.test, pod_name(*ordinal));
            }
        }
        for (_, proc, _) in &pods {
            proc.signal(Signal::SIGKILL);
        }
        for (ordinal, proc, reaper) in pods {
            if proc.wait_blocking(Duration::from_secs(10)).is_none() {
                eprintln!("ebt bed: {}'s PID 1 survives SIGKILL for 10 s", pod_name(ordinal));
            } else if let Some(r) = reaper {
                // It has reported the exit and is returning.
                let _ = r.join();
            }
        }
        if panicking {
            self.dump_logs();
        }
        self.inner.slot.remove_everything();
    }
}
