//! The two holes of issue 11, on the pod bed with real etcd:
//! - a volume of another cluster, started while this cluster has no leader (its answers carry
//!   no quorum, but their cluster ID), and while every client port is silent but the peer ports
//!   answer: REFUSE, the volume untouched;
//! - a formed cluster whose client ports are blocked, and an empty initial pod: it must not start
//!   NEW under its static ID (the peer port says the cluster has served); once the client ports
//!   answer again it replaces its lost member and joins;
//! - a removed member returning with its volume while only the peer ports answer: it waits, and
//!   is archived (STALE) once quorum answers.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::bed::Bed;
use crate::bootstrap::{decisions, etcd_pod, form_cluster, setup};
use crate::etcd_check::{bed_logs, Checker};
use crate::membership::{
    another_clusters_volume, archives, copy_tree, id_of, remove_member, tree, wait_exit_code,
};
use crate::peer_port::{block_client_port, need_iptables, unblock_client_port};

/// Form etcd-0..2, stop etcd-1 and etcd-2 (etcd-0 is left without quorum: no leader), and put
/// another cluster's member data on etcd-1's volume; returns the volume's tree before its start.
async fn foreign_volume_while_leaderless(bed: &Bed, etcd: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let other = another_clusters_volume(etcd).await;
    form_cluster(bed, etcd, &[0, 1, 2]).await;
    bed.delete_pod(1).await;
    bed.delete_pod(2).await;
    bed.wipe_volume(1);
    copy_tree(&other.volume(0), &bed.volume(1));
    // etcd-0 alone: it answers (client and peer port) with its cluster ID, and no leader.
    let check = Checker::plain(bed);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match check.healthy_view(0).await {
            Err(e) if e.contains("no leader") => break,
            other => assert!(std::time::Instant::now() < deadline, "etcd-0 still leads alone? {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tree(&bed.volume(1))
}

async fn assert_refused_untouched(bed: &Bed, before: &[(std::path::PathBuf, u64)]) {
    wait_exit_code(bed, 1, 4).await;
    let logs = bed.logs(1);
    assert!(logs.contains("another cluster"), "{logs}");
    assert_eq!(decisions(bed, 1).last().map(String::as_str), Some("REFUSE"), "{logs}");
    assert_eq!(tree(&bed.volume(1)), before, "the foreign volume was changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_volume_started_while_the_cluster_has_no_leader_is_refused() {
    let Some(etcd) = setup("foreign_volume_started_while_the_cluster_has_no_leader_is_refused") else {
        return;
    };
    let bed = Bed::new("foreign-leaderless").await;
    let before = foreign_volume_while_leaderless(&bed, &etcd).await;
    bed.start_pod(1, etcd_pod(&bed, 1, &etcd)).await;
    assert_refused_untouched(&bed, &before).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_volume_started_while_only_peer_ports_answer_is_refused() {
    let test = "foreign_volume_started_while_only_peer_ports_answer_is_refused";
    let Some(etcd) = setup(test) else { return };
    if !need_iptables(test) {
        return;
    }
    let bed = Bed::new("foreign-peer-port").await;
    let before = foreign_volume_while_leaderless(&bed, &etcd).await;
    block_client_port(&bed, 0);
    bed.start_pod(1, etcd_pod(&bed, 1, &etcd)).await;
    assert_refused_untouched(&bed, &before).await;
    assert!(bed.logs(1).contains("peer port"), "{}", bed.logs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_initial_pod_never_starts_new_while_a_formed_cluster_has_blocked_client_ports() {
    let test = "empty_initial_pod_never_starts_new_while_a_formed_cluster_has_blocked_client_ports";
    let Some(etcd) = setup(test) else { return };
    if !need_iptables(test) {
        return;
    }
    let bed = Bed::new("blocked-client-ports").await;
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    let check = Checker::plain(&bed);
    let before = check.members(&[0, 2]).await.expect("members");
    // etcd-1 loses its volume while etcd-0 and etcd-2 answer only on their peer ports.
    bed.delete_pod(1).await;
    bed.wipe_volume(1);
    block_client_port(&bed, 0);
    block_client_port(&bed, 2);
    bed.start_pod(1, etcd_pod(&bed, 1, &etcd)).await;
    assert!(
        bed.wait_log(1, "decision=\"WAIT\"", Duration::from_secs(30)).await,
        "etcd-1 did not wait:\n{}",
        bed.logs(1)
    );
    // Several rounds later (each asks every peer again), still waiting, never NEW.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = decisions(&bed, 1);
    assert!(!seen.iter().any(|d| d == "NEW"), "etcd-1 started a new member on an empty volume: {seen:?}");
    assert!(bed.logs(1).contains("quorum"), "{}", bed.logs(1));
    assert!(bed.is_running(1), "etcd-1 exited:\n{}", bed.logs(1));
    // The client ports answer again: the lost member is replaced, etcd-1 joins.
    unblock_client_port(&bed, 0);
    unblock_client_port(&bed, 2);
    let after = check.wait_healthy(&[0, 1, 2], Duration::from_secs(90)).await;
    let seen = decisions(&bed, 1);
    assert!(seen.contains(&"REPLACE".to_string()) && !seen.contains(&"NEW".to_string()), "{seen:?}");
    let id = |ms: &[crate::etcd_check::SeenMember]| ms.iter().find(|m| m.name == "etcd-1").map(|m| m.id);
    assert_ne!(id(&after), id(&before), "etcd-1 should be a new member:\n{}", bed_logs(&bed, &[1]));
}

/// Found by the chaos run with seed 1796407145056352219 in CI: a member removed at scale-down came
/// back with its volume while no client port gave an answer with quorum (a probe slowed by load
/// there; blocked client ports here), and only the peer port's list, which no longer names it,
/// answered. It must neither start etcd on that data (its peers refuse a removed member, and etcd
/// exits) nor archive it on a list without quorum: it waits, and once quorum answers it is STALE,
/// archived, and joins.
#[tokio::test(flavor = "multi_thread")]
async fn removed_member_returning_while_only_peer_ports_answer_waits_then_is_archived() {
    let test = "removed_member_returning_while_only_peer_ports_answer_waits_then_is_archived";
    let Some(etcd) = setup(test) else { return };
    if !need_iptables(test) {
        return;
    }
    let bed = Bed::new("stale-blocked").await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    check.put_keys(&[0, 1, 2], "k", 20).await;
    let old = id_of(&check.members(&[0, 1, 2]).await.expect("members"), "etcd-2");
    bed.delete_pod(2).await;
    remove_member(&bed, &[0, 1], old).await;
    let before = tree(&bed.volume(2));
    block_client_port(&bed, 0);
    block_client_port(&bed, 1);
    bed.start_pod(2, etcd_pod(&bed, 2, &etcd)).await;
    // Two WAIT lines: the first round's and the one logged again a few seconds later.
    let deadline = Instant::now() + Duration::from_secs(30);
    while decisions(&bed, 2).iter().filter(|d| *d == "WAIT").count() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = decisions(&bed, 2);
    assert_eq!(
        seen.iter().filter(|d| *d == "WAIT").count(),
        2,
        "etcd-2 did not keep waiting: {seen:?}\n{}",
        bed.logs(2)
    );
    assert!(
        seen.iter().all(|d| d == "WAIT"),
        "etcd-2 decided on a list without quorum: {seen:?}\n{}",
        bed.logs(2)
    );
    assert!(bed.logs(2).contains("does not name"), "{}", bed.logs(2));
    assert!(bed.is_running(2), "etcd-2 exited:\n{}", bed.logs(2));
    assert_eq!(tree(&bed.volume(2)), before, "the volume changed while waiting");
    // Quorum answers again: the member is confirmed removed, its data archived, and it joins.
    unblock_client_port(&bed, 0);
    unblock_client_port(&bed, 1);
    check.wait_healthy(&[0, 1, 2], Duration::from_secs(90)).await;
    let seen = decisions(&bed, 2);
    assert!(seen.contains(&"STALE".to_string()) && !seen.contains(&"EXISTING".to_string()), "{seen:?}");
    assert_eq!(archives(&bed.volume(2)).len(), 1, "one archive on the volume:\n{}", bed_logs(&bed, &[2]));
    check.assert_keys_on(2, "k", 20).await;
}
