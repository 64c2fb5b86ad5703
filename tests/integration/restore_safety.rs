//! The two sequences of issue 18, found from outside the project, on real etcd (3.5.1, 3.5.30 and
//! 3.4.23) and the pod bed: after the quorum-loss runbook, with `--restore-from` and the new token left set
//! as the README allows,
//! 1. a pod whose volume is lost while its cluster has no quorum waits, and once quorum is back
//!    is replaced (REPLACE, then JOIN with a new member ID), never restored under its served
//!    member ID; every write made after the restore is kept on every member;
//! 2. a volume swapped for an old copy of the source cluster's data, beside the restored cluster
//!    serving with quorum, is refused and left untouched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backup::run;
use crate::bed::{Bed, PodSpec};
use crate::bootstrap::{decisions, etcd_pod, form_cluster};
use crate::etcd_check::Checker;
use crate::membership::{assert_last_decision, copy_tree, id_of, tree, wait_exit_code};

const HEALTHY: Duration = Duration::from_secs(150);
const TOKEN: &str = "after-loss";

/// A pod of the set with `--restore-from` and the new token, as the runbook leaves them.
fn restoring_pod(bed: &Bed, ordinal: u32, etcd: &Path, snapshot: &str) -> PodSpec {
    etcd_pod(bed, ordinal, etcd)
        .env("ETCD_BOOTSTRAP_RESTORE_FROM", snapshot)
        .env("ETCD_BOOTSTRAP_INITIAL_CLUSTER_TOKEN", TOKEN)
}

/// The runbook on a formed cluster: keys written, a backup, every pod deleted, then every pod
/// started with `--restore-from` and a new token (volumes kept: the restore archives the old
/// data). Returns the snapshot URL, once the restored cluster is healthy.
async fn restored_cluster(
    bed: &Bed,
    etcd: &Path,
    store: &str,
    home: &Path,
    old_copy: Option<&Path>,
) -> String {
    let check = Checker::plain(bed);
    form_cluster(bed, etcd, &[0, 1, 2]).await;
    check.put_keys(&[0, 1, 2], "before", 20).await;
    let out = run(&["backup", "--to", store, "--endpoints", &bed.client_url(0)], &[], home);
    assert_eq!(out.code, 0, "backup: {}", out.stderr);
    let snapshot = out.stdout.trim().to_string();
    for o in 0..3 {
        bed.delete_pod(o).await;
    }
    if let Some(copy) = old_copy {
        copy_tree(&bed.volume(1), copy);
    }
    for o in 0..3 {
        bed.start_pod(o, restoring_pod(bed, o, etcd, &snapshot)).await;
    }
    check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    for o in 0..3 {
        assert!(decisions(bed, o).contains(&"RESTORE".to_string()), "etcd-{o} restored:\n{}", bed.logs(o));
    }
    snapshot
}

async fn lost_volume_after_a_restore_is_replaced_never_restored(bed_name: &str, etcd: PathBuf) {
    let etcd = etcd.as_path();
    let scratch = tempfile::tempdir().expect("scratch");
    let store = crate::restore::store_in(scratch.path());
    let bed = Bed::new(bed_name).await;
    let check = Checker::plain(&bed);
    let snapshot = restored_cluster(&bed, etcd, &store, scratch.path(), None).await;
    check.put_keys(&[0, 1, 2], "after", 30).await;
    let old_id = id_of(&check.wait_healthy(&[0, 1, 2], HEALTHY).await, "etcd-2");

    // etcd-1 stops; etcd-2 stops and loses its volume; etcd-0 restarts alone.
    bed.delete_pod(1).await;
    bed.delete_pod(2).await;
    bed.wipe_volume(2);
    bed.delete_pod(0).await;
    bed.start_pod(0, restoring_pod(&bed, 0, etcd, &snapshot)).await;
    bed.start_pod(2, restoring_pod(&bed, 2, etcd, &snapshot)).await;
    let waiting = "lists this pod as member";
    assert!(bed.wait_log(2, waiting, Duration::from_secs(60)).await, "etcd-2 waits:\n{}", bed.logs(2));
    // etcd-1 comes back: quorum returns, and etcd-2 is replaced, never restored.
    bed.start_pod(1, restoring_pod(&bed, 1, etcd, &snapshot)).await;
    let members = check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    let decided = decisions(&bed, 2);
    assert!(!decided.contains(&"RESTORE".to_string()), "etcd-2 restored: {decided:?}\n{}", bed.logs(2));
    assert!(decided.contains(&"REPLACE".to_string()), "etcd-2 replaced: {decided:?}\n{}", bed.logs(2));
    assert_last_decision(&bed, 2, "JOIN");
    assert_ne!(id_of(&members, "etcd-2"), old_id, "etcd-2 joined with a new member ID");
    for o in 0..3 {
        check.assert_keys_on(o, "after", 30).await;
        check.assert_keys_on(o, "before", 20).await;
    }
}

async fn swapped_in_source_volume_is_refused(bed_name: &str, etcd: PathBuf) {
    let etcd = etcd.as_path();
    let scratch = tempfile::tempdir().expect("scratch");
    let store = crate::restore::store_in(scratch.path());
    let old = scratch.path().join("etcd-1-old");
    std::fs::create_dir_all(&old).expect("mkdir");
    let bed = Bed::new(bed_name).await;
    let check = Checker::plain(&bed);
    let snapshot = restored_cluster(&bed, etcd, &store, scratch.path(), Some(&old)).await;
    check.put_keys(&[0, 1, 2], "after", 30).await;

    // etcd-1's volume is swapped for the old copy of the source cluster's data.
    bed.delete_pod(1).await;
    bed.wipe_volume(1);
    copy_tree(&old, &bed.volume(1));
    let before = tree(&bed.volume(1));
    bed.start_pod(1, restoring_pod(&bed, 1, etcd, &snapshot)).await;
    wait_exit_code(&bed, 1, 4).await;
    assert_last_decision(&bed, 1, "REFUSE");
    let logs = bed.logs_current(1);
    assert!(logs.contains("another cluster") && logs.contains("where it has served"), "{logs}");
    assert_eq!(tree(&bed.volume(1)), before, "the swapped-in volume was changed");
    // The restored cluster serves on, with every write.
    let members = check.members(&[0, 2]).await.expect("members");
    assert_eq!(members.len(), 3, "the cluster was changed: {members:?}");
    check.put_keys(&[0, 2], "later", 5).await;
    for o in [0, 2] {
        check.assert_keys_on(o, "after", 30).await;
    }
}

on_each_etcd!(lost_volume_after_a_restore_is_replaced_never_restored, "seq1", crate::restore::setup34;
    a_volume_lost_after_a_restore_waits_then_is_replaced_never_restored_on_etcd_35,
    a_volume_lost_after_a_restore_waits_then_is_replaced_never_restored_on_etcd_34,
    a_volume_lost_after_a_restore_waits_then_is_replaced_never_restored_on_etcd_3530
);

on_each_etcd!(swapped_in_source_volume_is_refused, "seq2", crate::restore::setup34;
    a_volume_swapped_for_old_source_data_is_refused_while_the_restored_cluster_serves_on_etcd_35,
    a_volume_swapped_for_old_source_data_is_refused_while_the_restored_cluster_serves_on_etcd_34,
    a_volume_swapped_for_old_source_data_is_refused_while_the_restored_cluster_serves_on_etcd_3530
);
