//! etcd releases on the pod bed: a rolling upgrade 3.4 -> 3.5 under writes loses no acknowledged
//! write, and a pod rolled back to 3.4 beside a 3.5 cluster is never exec'd: the bootstrap waits,
//! naming both versions, the others keep serving, and the pod rejoins once it runs 3.5 again.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use etcd_bootstrap::observe::peer_members::{self, PeerAccess, PeerEndpoint};
use serde_json::json;

use crate::bed::{pod_fqdn, Bed, PodExit};
use crate::bootstrap::{decisions, etcd_pod, form_cluster, plan_in_pod};
use crate::etcd_check::{bed_logs, Checker};
use crate::membership::{pod_with, setup34};
use crate::prereq;
use crate::stateful_set::{missing_on, Writer};

const HEALTHY: Duration = Duration::from_secs(150);

/// etcd 3.4 and 3.5.30, or a skip.
fn both_releases(test: &str) -> Option<(PathBuf, PathBuf)> {
    let new = prereq::need_etcd3530(test)?;
    let old = setup34(test)?;
    Some((old, new))
}

/// The cluster version pod `ordinal`'s peer port tells (`GET /version`: `etcdcluster`).
async fn cluster_version(bed: &Bed, ordinal: u32) -> Option<String> {
    let endpoint = PeerEndpoint {
        host: pod_fqdn(ordinal),
        addr: std::net::SocketAddr::new(bed.pod_ip(ordinal).into(), 2380),
    };
    let told = peer_members::ask_version(&PeerAccess::Plain, &endpoint, Duration::from_secs(2)).await.ok()?;
    told.cluster.map(|c| c.minor_line_text())
}

/// Poll until every pod of `ordinals` tells cluster version `want`.
async fn wait_cluster_version(bed: &Bed, ordinals: &[u32], want: &str) {
    let deadline = Instant::now() + HEALTHY;
    let mut last = Vec::new();
    while Instant::now() < deadline {
        last.clear();
        for &o in ordinals {
            last.push(cluster_version(bed, o).await);
        }
        if last.iter().all(|v| v.as_deref() == Some(want)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("cluster version never {want} on {ordinals:?}: {last:?}\n{}", bed_logs(bed, ordinals));
}

/// Poll until every acknowledged put is readable on `ordinal` (from its own data).
async fn assert_none_missing(bed: &Bed, ordinal: u32, acked: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let missing = missing_on(bed, ordinal, acked).await;
        match missing {
            Ok(m) if m.is_empty() => return,
            _ if Instant::now() > deadline => {
                panic!("etcd-{ordinal}: acknowledged writes not readable: {missing:?}\n{}", bed.logs(ordinal))
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// etcd's upgrade guide: one by one, stop a 3.4 member and start it as 3.5 on its data. The
/// bootstrap starts each on its data (EXISTING, the version check allows one minor version up),
/// a writer runs throughout, and no acknowledged write is lost; the cluster version ends at 3.5.
#[tokio::test(flavor = "multi_thread")]
async fn rolling_upgrade_from_34_to_35_under_writes_loses_no_acknowledged_write() {
    let test = "rolling_upgrade_from_34_to_35_under_writes_loses_no_acknowledged_write";
    let Some((etcd34, etcd35)) = both_releases(test) else { return };
    let bed = Bed::new("upgrade-34-35").await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd34, &[0, 1, 2]).await;
    wait_cluster_version(&bed, &[0, 1, 2], "3.4").await;
    let writer = Writer::start((0..3).map(|o| bed.client_url(o)).collect());
    // A StatefulSet's rolling update: the highest ordinal first.
    for o in [2, 1, 0] {
        bed.delete_pod(o).await;
        bed.start_pod(o, etcd_pod(&bed, o, &etcd35)).await;
        check.wait_healthy(&[0, 1, 2], HEALTHY).await;
        writer.set_targets((0..3).map(|o| bed.client_url(o)).collect());
        let decided = decisions(&bed, o);
        assert_eq!(
            decided.last().map(String::as_str),
            Some("EXISTING"),
            "etcd-{o}: {decided:?}\n{}",
            bed.logs(o)
        );
    }
    wait_cluster_version(&bed, &[0, 1, 2], "3.5").await;
    // `plan` shows the check: this pod's etcd, the cluster version, the outcome.
    let plan = plan_in_pod(&bed, 0, &etcd35);
    let versions = &plan["versions"];
    assert_eq!(
        (&versions["etcd"], &versions["cluster_version"]),
        (&json!("3.5.30"), &json!("3.5")),
        "{plan:#}"
    );
    assert_eq!(versions["check"], "fine", "{plan:#}");
    let (acked, failed) = writer.stop().await;
    assert!(acked.len() >= 20, "too few acknowledged writes: {} ({failed} failed)", acked.len());
    eprintln!("writer: {} puts acknowledged, {failed} not", acked.len());
    for o in 0..3 {
        assert_none_missing(&bed, o, &acked).await;
    }
}

/// A pod of a 3.5 cluster whose image goes back to etcd 3.4: etcd 3.4 would exit on the 3.5
/// cluster, so the bootstrap never execs it. It waits, naming both versions and the way out,
/// and exits at --wait-timeout; the other members keep serving; the image back at 3.5, it
/// starts on its data and has every key.
#[tokio::test(flavor = "multi_thread")]
async fn a_pod_rolled_back_to_34_beside_a_35_cluster_is_not_started_and_rejoins_on_35() {
    let test = "a_pod_rolled_back_to_34_beside_a_35_cluster_is_not_started_and_rejoins_on_35";
    let Some((etcd34, etcd35)) = both_releases(test) else { return };
    let bed = Bed::new("rollback-35-34").await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd35, &[0, 1, 2]).await;
    wait_cluster_version(&bed, &[0, 1, 2], "3.5").await;
    check.put_keys(&[0, 1, 2], "before", 20).await;
    bed.delete_pod(2).await;
    bed.start_pod(2, pod_with(&bed, 2, &etcd34, &[("ETCD_BOOTSTRAP_WAIT_TIMEOUT", "8s")])).await;
    let exit = bed.wait_exit(2, Duration::from_secs(60)).await;
    let log = bed.logs_current(2);
    assert_eq!(exit, Some(PodExit::Code(5)), "a WAIT that timed out, not etcd running\n{log}");
    for needle in ["etcd 3.4.23 is older than the cluster version 3.5", "image", "downgrade"] {
        assert!(log.contains(needle), "no {needle:?} in\n{log}");
    }
    assert!(!log.contains("exec etcd"), "etcd 3.4 was exec'd\n{log}");
    // The others serve meanwhile: writes with quorum on the two left.
    check.put_keys(&[0, 1], "during", 20).await;
    // The image back: 3.5 starts on its data and catches up.
    bed.delete_pod(2).await;
    bed.start_pod(2, etcd_pod(&bed, 2, &etcd35)).await;
    check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    let decided = decisions(&bed, 2);
    assert_eq!(decided.last().map(String::as_str), Some("EXISTING"), "{decided:?}\n{}", bed.logs(2));
    check.assert_keys_on(2, "before", 20).await;
    check.assert_keys_on(2, "during", 20).await;
}
