//! The peer-port probe (`GET /members` on 2380) against real etcd 3.5 and 3.4, plain and with peer
//! TLS: a static bootstrap before its first quorum lists every member with no client URLs within
//! milliseconds while its client port answers nothing; a formed cluster lists its client URLs and
//! its cluster ID, and still answers there when every client port is blocked.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use etcd_bootstrap::observe::peer_members::{self, PeerAccess, PeerEndpoint, PeerTlsFiles};
use etcd_bootstrap::observed::PeerList;

use crate::bed::{pod_fqdn, pod_name, Bed, PodSpec};
use crate::bootstrap::setup;
use crate::etcd_check::{bed_logs, Checker, Security};
use crate::membership::{setup34, Pki};
use crate::prereq;

const TOKEN: &str = "peer-port-test";
const SIZE: u32 = 3;

/// Whether the pod's peer and client ports use TLS.
fn scheme(pki: Option<&Pki>) -> &'static str {
    if pki.is_some() {
        "https"
    } else {
        "http"
    }
}

/// etcd itself as the pod's program, member `ordinal` of a static 3-member cluster.
fn static_etcd(bed: &Bed, ordinal: u32, etcd: &Path, pki: Option<&Pki>) -> PodSpec {
    let s = scheme(pki);
    let cluster: Vec<String> =
        (0..SIZE).map(|o| format!("{}={s}://{}:2380", pod_name(o), pod_fqdn(o))).collect();
    let spec = PodSpec::new(etcd)
        .arg(format!("--name={}", pod_name(ordinal)))
        .arg(format!("--data-dir={}", bed.volume(ordinal).display()))
        .arg(format!("--listen-peer-urls={s}://0.0.0.0:2380"))
        .arg(format!("--listen-client-urls={s}://0.0.0.0:2379"))
        .arg(format!("--initial-advertise-peer-urls={s}://{}:2380", pod_fqdn(ordinal)))
        .arg(format!("--advertise-client-urls={s}://{}:2379", pod_fqdn(ordinal)))
        .arg(format!("--initial-cluster={}", cluster.join(",")))
        .arg(format!("--initial-cluster-token={TOKEN}"))
        .env("ETCD_LOG_LEVEL", "warn")
        .grace(Duration::from_secs(5));
    match pki {
        Some(pki) => pki.env(ordinal).into_iter().fold(spec, |spec, (k, v)| spec.env(k, v)),
        None => spec,
    }
}

/// What a pod would use: a peer certificate and the peer CA. The test asks from the bed's
/// gateway, so its certificate names the gateway's address (a pod's names the pod).
fn access(bed: &Bed, pki: Option<&Pki>) -> PeerAccess {
    let files = match pki {
        Some(pki) => {
            let (cert, key) = pki.issue_for_ip("prober", bed.gateway().into());
            PeerTlsFiles { ca: Some(pki.dir.join("ca.pem")), cert: Some(cert), key: Some(key) }
        }
        None => PeerTlsFiles::default(),
    };
    PeerAccess::load(pki.is_some(), &files).expect("peer access")
}

fn endpoint(bed: &Bed, ordinal: u32) -> PeerEndpoint {
    PeerEndpoint { host: pod_fqdn(ordinal), addr: SocketAddr::from((bed.pod_ip(ordinal), 2380)) }
}

/// Ask until `accept` holds for an answer (etcd is still starting); the last answer.
async fn ask_until(
    bed: &Bed,
    access: &PeerAccess,
    ordinal: u32,
    accept: impl Fn(&PeerList) -> bool,
) -> PeerList {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        match peer_members::ask(access, &endpoint(bed, ordinal), Duration::from_secs(2)).await {
            Ok(list) if accept(&list) => return list,
            Ok(list) => last = format!("{list:?}"),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("etcd-{ordinal}'s peer port: no expected answer in 60 s: {last}\n{}", bed_logs(bed, &[ordinal]));
}

/// Drop every packet to the client port inside pod `ordinal`: it then answers nothing at all.
pub fn block_client_port(bed: &Bed, ordinal: u32) {
    client_port_rule(bed, ordinal, "-I");
}

/// Undo [`block_client_port`].
pub fn unblock_client_port(bed: &Bed, ordinal: u32) {
    client_port_rule(bed, ordinal, "-D");
}

fn client_port_rule(bed: &Bed, ordinal: u32, action: &str) {
    let out = Command::new("ip")
        .args(["netns", "exec", &bed.netns(ordinal), "iptables", action, "INPUT", "-p", "tcp"])
        .args(["--dport", "2379", "-j", "DROP"])
        .output()
        .expect("run iptables");
    assert!(out.status.success(), "iptables in etcd-{ordinal}: {}", String::from_utf8_lossy(&out.stderr));
}

/// iptables blocks client ports in the formed-cluster cases.
pub fn need_iptables(test: &str) -> bool {
    let found = Command::new("iptables").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        let why = "needs iptables (apt-get install iptables) to block client ports";
        assert!(!prereq::in_ci(), "{test}: {why}");
        eprintln!("SKIPPED {test}: {why}");
    }
    found
}

async fn peer_port_answers(test: &str, etcd: &Path, tls: bool) {
    if !need_iptables(test) {
        return;
    }
    let bed = Bed::new("peer-port").await;
    let pki = tls.then(|| Pki::new(bed.root().join("tls"), &[0, 1, 2]));
    let pki = pki.as_ref();
    let access = access(&bed, pki);
    let s = scheme(pki);
    let checker = Checker::new(&bed, pki.map(Pki::security).unwrap_or_else(Security::default));

    // Alone, etcd-0 of a static 3-member cluster never reaches quorum.
    bed.start_pod(0, static_etcd(&bed, 0, etcd, pki)).await;
    let before = ask_until(&bed, &access, 0, |_| true).await;
    assert_eq!(before.host, pod_fqdn(0));
    assert_ne!(before.cluster_id, 0, "{before:?}");
    assert!(!before.served(), "a static bootstrap before quorum lists no client URLs: {before:?}");
    let mut names: Vec<&str> = before.members.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["etcd-0", "etcd-1", "etcd-2"], "{before:?}");
    for m in &before.members {
        let url = format!("{s}://{}:2380", pod_fqdn(m.name.trim_start_matches("etcd-").parse().unwrap_or(9)));
        assert_eq!(m.peer_urls, vec![url.clone()], "{m:?}");
        assert_eq!(m.id, etcd_bootstrap::observed::static_member_id(&[url], TOKEN), "{m:?}");
    }
    // The peer port answers, where the client port answers nothing before quorum.
    let again = peer_members::ask(&access, &endpoint(&bed, 0), Duration::from_secs(2)).await.expect("answer");
    assert_eq!(again.cluster_id, before.cluster_id);
    let mut client = checker.client(0).await.expect("client of etcd-0 (lazy connect)");
    let silent = tokio::time::timeout(Duration::from_secs(1), client.status()).await;
    assert!(!matches!(silent, Ok(Ok(_))), "etcd-0's client port answered before quorum");

    // Nothing listens on a pod that runs no etcd: a refused connection, never a wait for the timeout.
    bed.start_pod(1, PodSpec::shell("sleep 600")).await;
    let refused = peer_members::ask(&access, &endpoint(&bed, 1), Duration::from_secs(2)).await;
    assert!(matches!(&refused, Err(e) if e.starts_with("connect:") && e.contains("refused")), "{refused:?}");
    bed.delete_pod_with_grace(1, Duration::from_millis(100)).await;

    // The cluster forms: every member has served, under the cluster ID the client API gives.
    for o in 1..SIZE {
        bed.start_pod(o, static_etcd(&bed, o, etcd, pki)).await;
    }
    checker.wait_healthy(&[0, 1, 2], Duration::from_secs(60)).await;
    let mut client = checker.client(1).await.expect("client of etcd-1");
    let list = client.member_list().await.expect("member list");
    let cluster_id = list.header().expect("header").cluster_id();
    assert_eq!(cluster_id, before.cluster_id, "a static cluster's ID is fixed before it forms");
    let formed = ask_until(&bed, &access, 2, |l| l.members.iter().all(|m| !m.client_urls.is_empty())).await;
    assert_eq!(formed.cluster_id, cluster_id);
    assert!(formed.served());
    let urls: Vec<&String> = formed.members.iter().flat_map(|m| &m.client_urls).collect();
    assert!(urls.contains(&&format!("{s}://{}:2379", pod_fqdn(1))), "{formed:?}");

    // Client ports blocked everywhere: the client API answers nothing, the peer ports still do.
    for o in 0..SIZE {
        block_client_port(&bed, o);
    }
    let mut client = checker.client(2).await.expect("client of etcd-2 (lazy connect)");
    let blocked = tokio::time::timeout(Duration::from_secs(1), client.status()).await;
    assert!(!matches!(blocked, Ok(Ok(_))), "the client port answered through the block");
    let endpoints: Vec<PeerEndpoint> = (0..SIZE).map(|o| endpoint(&bed, o)).collect();
    let all = peer_members::ask_all(&access, &endpoints, Duration::from_secs(2)).await;
    assert_eq!(all.len(), 3);
    for (endpoint, answer) in all {
        let answer = answer.unwrap_or_else(|e| panic!("{}: {e}", endpoint.host));
        assert_eq!((answer.cluster_id, answer.served(), answer.members.len()), (cluster_id, true, 3));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_port_lists_members_before_quorum_and_with_client_ports_blocked_etcd35() {
    let test = "peer_port_lists_members_before_quorum_and_with_client_ports_blocked_etcd35";
    let Some(etcd) = setup(test) else { return };
    peer_port_answers(test, &etcd, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_port_lists_members_before_quorum_and_with_client_ports_blocked_etcd34() {
    let test = "peer_port_lists_members_before_quorum_and_with_client_ports_blocked_etcd34";
    let Some(etcd) = setup34(test) else { return };
    peer_port_answers(test, &etcd, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_port_with_peer_tls_lists_members_etcd35() {
    let test = "peer_port_with_peer_tls_lists_members_etcd35";
    let Some(etcd) = setup(test) else { return };
    peer_port_answers(test, &etcd, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_port_with_peer_tls_lists_members_etcd34() {
    let test = "peer_port_with_peer_tls_lists_members_etcd34";
    let Some(etcd) = setup34(test) else { return };
    peer_port_answers(test, &etcd, true).await;
}
