//! Network plumbing of the bed: the per-Bed slot (subnet, names, lock), `ip` calls, and removal of
//! everything a slot owns (at teardown, and for leftovers of a crashed run).
//!
//! Every name carries the prefix `ebt` and the slot number K, so nothing else on the machine is
//! ever touched:
//! - network namespaces `ebt-K-lan` (the bridge `br0`) and `ebt-K-p<ordinal>` (one per pod);
//! - in the root namespace only the veth `ebtK-gw` (gateway 10.231.K.1/24); its peer `gw` and the
//!   pods' bridge ports `p<ordinal>` live inside `ebt-K-lan`, the pods' `eth0` inside the pod;
//! - `/etc/netns/ebt-K-p<ordinal>/` (resolv.conf, hosts) and the temp root `$TMPDIR/ebt-bed-K/`.
//!
//! A slot is held through an abstract unix socket `ebt-bed-slot-K`: the kernel releases it when
//! the holder dies, even by SIGKILL, so whoever gets the slot knows that anything still named
//! after it is a leftover of a dead run, and a slot held by another live test process is skipped.

use std::net::Ipv4Addr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Slots are 1..=250: subnets 10.231.K.0/24.
const FIRST_SLOT: u32 = 1;
const SLOTS: u32 = 250;
static NEXT_SLOT: AtomicU32 = AtomicU32::new(0);

/// One Bed's share of the machine: its subnet, its names and the lock that proves ownership.
pub(crate) struct Slot {
    pub k: u8,
    _lock: UnixDatagram,
}

impl Slot {
    /// Take the next free slot, removing whatever a dead earlier holder left behind.
    pub fn acquire() -> Slot {
        for _ in 0..SLOTS {
            let k = FIRST_SLOT + NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS;
            let k = u8::try_from(k).expect("slot numbers fit in a byte");
            if let Some(slot) = Slot::take(k) {
                return slot;
            }
        }
        panic!("ebt bed: no free slot among {SLOTS} (are that many beds running?)");
    }

    /// Take slot `k` if no live Bed holds it, after removing what a dead holder left behind.
    /// None when it is held, or when its subnet is routed by something that is not ours.
    pub fn take(k: u8) -> Option<Slot> {
        let slot = Slot { k, _lock: try_lock(k)? };
        slot.remove_everything();
        if slot.subnet_in_use() {
            eprintln!("ebt bed: 10.231.{k}.0/24 is routed by something that is not ours; skipping it");
            return None;
        }
        Some(slot)
    }

    /// The network namespace holding the bridge.
    pub fn lan_ns(&self) -> String {
        format!("ebt-{}-lan", self.k)
    }

    /// The network namespace of pod `ordinal` (the same name for every incarnation; the old one is
    /// always deleted before a new one is made).
    pub fn pod_ns(&self, ordinal: u32) -> String {
        format!("ebt-{}-p{ordinal}", self.k)
    }

    /// The root-namespace end of the gateway veth (<= 15 chars: at most `ebt250-gw`).
    pub fn gw_link(&self) -> String {
        format!("ebt{}-gw", self.k)
    }

    /// The bridge port of pod `ordinal`, inside the lan namespace.
    pub fn bridge_port(ordinal: u32) -> String {
        format!("p{ordinal}")
    }

    pub fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 231, self.k, host)
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.ip(1)
    }

    /// The Bed's temp root (volumes, logs).
    pub fn root_dir(&self) -> PathBuf {
        std::env::temp_dir().join(format!("ebt-bed-{}", self.k))
    }

    fn ns_prefix(&self) -> String {
        format!("ebt-{}-", self.k)
    }

    /// Build the lan: namespace, bridge, and the gateway veth from the root namespace.
    pub fn create_lan(&self) -> Result<(), String> {
        let lan = self.lan_ns();
        let gw = self.gw_link();
        let cidr = format!("{}/24", self.gateway());
        ip(&["netns", "add", &lan])?;
        ip(&["-n", &lan, "link", "set", "lo", "up"])?;
        ip(&["-n", &lan, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &lan, "link", "set", "br0", "up"])?;
        ip(&["link", "add", &gw, "type", "veth", "peer", "name", "gw", "netns", &lan])?;
        ip(&["-n", &lan, "link", "set", "gw", "master", "br0", "up"])?;
        ip(&["addr", "add", &cidr, "dev", &gw])?;
        ip(&["link", "set", &gw, "up"])?;
        Ok(())
    }

    /// Make pod `ordinal`'s namespace with `eth0` at `addr`, plugged into the bridge.
    pub fn create_pod_net(&self, ordinal: u32, addr: Ipv4Addr) -> Result<(), String> {
        let lan = self.lan_ns();
        let ns = self.pod_ns(ordinal);
        let port = Self::bridge_port(ordinal);
        let cidr = format!("{addr}/24");
        ip(&["netns", "add", &ns])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&["-n", &lan, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
        ip(&["-n", &lan, "link", "set", &port, "master", "br0", "up"])?;
        ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        Ok(())
    }

    /// Remove pod `ordinal`'s network (bridge port first: deleting a namespace frees its veth
    /// only asynchronously, and the next incarnation reuses the port name).
    pub fn remove_pod_net(&self, ordinal: u32) {
        let lan = self.lan_ns();
        let ns = self.pod_ns(ordinal);
        let port = Self::bridge_port(ordinal);
        if link_exists(Some(&lan), &port) {
            let _ = ip(&["-n", &lan, "link", "del", &port]);
        }
        if netns_list().contains(&ns) {
            let _ = ip(&["netns", "del", &ns]);
        }
        let _ = std::fs::remove_dir_all(etc_netns(&ns));
    }

    /// Set pod `ordinal`'s bridge port down (cut) or up (restore).
    pub fn set_pod_link(&self, ordinal: u32, up: bool) -> Result<(), String> {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.lan_ns(), "link", "set", &Self::bridge_port(ordinal), state])
    }

    /// Remove every namespace, link, /etc/netns entry and directory named after this slot,
    /// killing any process left in its namespaces. Idempotent; used at teardown and, on a freshly
    /// acquired slot, for leftovers of a crashed run.
    pub fn remove_everything(&self) {
        let prefix = self.ns_prefix();
        let ours: Vec<String> = netns_list().into_iter().filter(|n| n.starts_with(&prefix)).collect();
        for ns in &ours {
            kill_netns_processes(ns);
        }
        // Pod namespaces before the lan, so bridge ports go away with their pods.
        for ns in ours.iter().filter(|n| **n != self.lan_ns()) {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("ebt bed: cannot delete netns {ns}: {e}");
            }
        }
        if ours.contains(&self.lan_ns()) {
            if let Err(e) = ip(&["netns", "del", &self.lan_ns()]) {
                eprintln!("ebt bed: cannot delete netns {}: {e}", self.lan_ns());
            }
        }
        let gw = self.gw_link();
        if link_exists(None, &gw) {
            if let Err(e) = ip(&["link", "del", &gw]) {
                eprintln!("ebt bed: cannot delete link {gw}: {e}");
            }
        }
        if let Ok(entries) = std::fs::read_dir("/etc/netns") {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let root = self.root_dir();
        if root.exists() {
            if let Err(e) = std::fs::remove_dir_all(&root) {
                eprintln!("ebt bed: cannot remove {}: {e}", root.display());
            }
        }
    }

    /// Whether the root namespace routes our subnet through something else than our gateway link
    /// (a foreign network: never use it).
    fn subnet_in_use(&self) -> bool {
        let subnet = format!("10.231.{}.0/24", self.k);
        Command::new("ip")
            .args(["-4", "route", "show", "root", &subnet])
            .output()
            .map(|out| !String::from_utf8_lossy(&out.stdout).trim().is_empty())
            .unwrap_or(false)
    }
}

/// Hold slot `k`'s lock, or None when another live Bed holds it.
fn try_lock(k: u8) -> Option<UnixDatagram> {
    let addr = UnixAddr::from_abstract_name(format!("ebt-bed-slot-{k}"))
        .expect("an abstract socket name this short is valid");
    match UnixDatagram::bind_addr(&addr) {
        Ok(sock) => Some(sock),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => None,
        Err(e) => panic!("ebt bed: cannot bind the slot lock ebt-bed-slot-{k}: {e}"),
    }
}

/// Hold slot `k`'s lock without any cleanup, for a test that plays a crashed earlier run.
pub(crate) fn lock_slot_for_test(k: u8) -> Option<Slot> {
    try_lock(k).map(|lock| Slot { k, _lock: lock })
}

/// Run `ip ARGS`; Err carries the command and its stderr.
/// `tc ARGS` inside network namespace `ns`.
pub(crate) fn tc(ns: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "tc"])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `tc {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`tc {}` in {ns}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

pub(crate) fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Names of all network namespaces (`ip netns list`, first word of each line).
pub(crate) fn netns_list() -> Vec<String> {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Whether link `name` exists in namespace `ns` (None: the root namespace).
pub(crate) fn link_exists(ns: Option<&str>, name: &str) -> bool {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["link", "show", "dev", name]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// SIGKILL every process in network namespace `ns` and wait (bounded) until they are gone.
fn kill_netns_processes(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = netns_pids(ns);
        if pids.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            eprintln!("ebt bed: processes {pids:?} in netns {ns} survive SIGKILL; going on");
            return;
        }
        for pid in pids {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn netns_pids(ns: &str) -> Vec<i32> {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

/// `/etc/netns/NAME`: files there are bind-mounted over `/etc/` by `ip netns exec NAME`.
pub(crate) fn etc_netns(ns: &str) -> PathBuf {
    Path::new("/etc/netns").join(ns)
}
