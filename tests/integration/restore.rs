//! `run --restore-from` on the pod bed, with real etcd (3.5 with etcdutl, 3.4 with etcdctl) and
//! a directory store: a new StatefulSet restored from another cluster's snapshot, the
//! permanent-quorum-loss runbook, the safety rules (never while the old cluster has quorum, never
//! on a sha256 mismatch, nothing more once restored), and a kill at every step of a restore.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backup::run;
use crate::bed::{Bed, PodExit, PodSpec};
use crate::bootstrap::{decisions, etcd_pod, form_cluster, setup};
use crate::datadir_wal::EtcdProcess;
use crate::etcd_check::Checker;
use crate::membership::{self, crash_points_built};
use crate::prereq;
use crate::stateful_set::{missing_on, Writer};

const HEALTHY: Duration = Duration::from_secs(150);

/// etcd 3.4 (Debian) with its etcdctl beside it (the `etcd-client` package), or a skip.
pub fn setup34(test: &str) -> Option<PathBuf> {
    let bin = membership::setup34(test)?;
    if bin.with_file_name("etcdctl").is_file() {
        return Some(bin);
    }
    let why = "etcdctl 3.4 not found beside etcd 3.4 (apt-get install etcd-client)";
    assert!(!prereq::in_ci(), "{test}: {why}");
    prereq::skipped(test, why);
    None
}

/// A pod of the set with `--restore-from` (and any other settings).
fn restoring_pod(bed: &Bed, ordinal: u32, etcd: &Path, snapshot: &str, env: &[(&str, &str)]) -> PodSpec {
    let spec = etcd_pod(bed, ordinal, etcd).env("ETCD_BOOTSTRAP_RESTORE_FROM", snapshot);
    env.iter().fold(spec, |spec, (k, v)| spec.env(*k, *v))
}

/// `backup --to store` from the host against `endpoint`; returns the snapshot URL.
fn backup(store: &str, endpoint: &str, home: &Path) -> String {
    let out = run(&["backup", "--to", store, "--endpoints", endpoint], &[], home);
    assert_eq!(out.code, 0, "backup: {}", out.stderr);
    out.stdout.trim().to_string()
}

/// The manifest of a snapshot in a directory store.
fn manifest_of(snapshot: &str) -> Value {
    let path = format!("{}.manifest.json", snapshot.trim_start_matches("file://"));
    serde_json::from_slice(&std::fs::read(&path).expect("read manifest")).expect("manifest json")
}

fn archives(volume: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(volume)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.retain(|n| n.starts_with("member.removed-"));
    names
}

/// Every member answers as one cluster, at a revision not lower than `revision`.
async fn assert_one_cluster_at_least(bed: &Bed, ordinals: &[u32], revision: i64) {
    let check = Checker::plain(bed);
    let mut ids = Vec::new();
    for &o in ordinals {
        let mut c = check.client(o).await.expect("connect");
        let status = c.status().await.expect("status");
        let header = status.header().expect("header");
        assert!(
            header.revision() >= revision,
            "etcd-{o} at revision {} < the snapshot's {revision}",
            header.revision()
        );
        ids.push(header.cluster_id());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one cluster ID: {ids:x?}");
}

/// Another cluster (one etcd on the host, in `scratch`) with `keys` keys `k/i`, backed up into
/// `store`: the etcd, a client of it, and the snapshot's URL.
async fn source_with_backup(
    etcd: &Path,
    scratch: &Path,
    store: &str,
    keys: usize,
) -> (EtcdProcess, etcd_client::Client, String) {
    let mut source = EtcdProcess::start(etcd, &scratch.join("source"), &scratch.join("source.log"));
    source.wait_healthy();
    let mut c = etcd_client::Client::connect([source.client_url.as_str()], None).await.expect("connect");
    for i in 0..keys {
        c.put(format!("k/{i}"), format!("v-{i}"), None).await.expect("put");
    }
    let snapshot = backup(store, &source.client_url, scratch);
    (source, c, snapshot)
}

async fn restore_another_clusters_snapshot(test: &str, etcd: PathBuf) {
    let scratch = tempfile::tempdir().expect("scratch");
    let store = store_in(scratch.path());
    // The other cluster: one etcd of the same version on the host.
    let (mut source, _client, snapshot) = source_with_backup(&etcd, scratch.path(), &store, 200).await;
    source.stop();
    let revision = manifest_of(&snapshot)["revision"].as_i64().expect("revision");

    let bed = Bed::new(test).await;
    for o in 0..3 {
        bed.start_pod(o, restoring_pod(&bed, o, &etcd, &snapshot, &[])).await;
    }
    let check = Checker::plain(&bed);
    check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    // Each initial member restores, except one that comes after the others formed the restored
    // cluster: it finds its own never-started entry there and JOINs it (etcd sends it the data).
    let mut restored = 0;
    for o in 0..3 {
        let decided = decisions(&bed, o);
        let marker = bed.volume(o).join("etcd-bootstrap-restore.json");
        if decided.contains(&"RESTORE".to_string()) {
            restored += 1;
            assert!(marker.is_file(), "etcd-{o} records the restore");
        } else {
            assert_eq!(
                decided.last().map(String::as_str),
                Some("JOIN"),
                "etcd-{o}: {decided:?}\n{}",
                bed.logs(o)
            );
        }
        check.assert_keys_on(o, "k", 200).await;
    }
    assert!(restored >= 2, "a quorum of the initial members restored the snapshot");
    assert_one_cluster_at_least(&bed, &[0, 1, 2], revision).await;
    // --restore-from left set: a restart keeps the data (EXISTING), nothing is restored again.
    check.put_keys(&[0, 1, 2], "after", 10).await;
    bed.delete_pod(1).await;
    bed.start_pod(1, restoring_pod(&bed, 1, &etcd, &snapshot, &[])).await;
    check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    assert_eq!(decisions(&bed, 1).last().map(String::as_str), Some("EXISTING"), "{}", bed.logs_current(1));
    check.assert_keys_on(1, "after", 10).await;
    assert!(archives(&bed.volume(1)).is_empty(), "nothing archived on a restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_statefulset_restores_another_clusters_snapshot_on_etcd_35() {
    let test = "a_new_statefulset_restores_another_clusters_snapshot_on_etcd_35";
    let Some(etcd) = setup(test) else { return };
    restore_another_clusters_snapshot("restore-35", etcd).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_statefulset_restores_another_clusters_snapshot_on_etcd_34() {
    let test = "a_new_statefulset_restores_another_clusters_snapshot_on_etcd_34";
    let Some(etcd) = setup34(test) else { return };
    restore_another_clusters_snapshot("restore-34", etcd).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_from_is_ignored_while_the_old_cluster_has_quorum() {
    let test = "restore_from_is_ignored_while_the_old_cluster_has_quorum";
    let Some(etcd) = setup(test) else { return };
    let scratch = tempfile::tempdir().expect("scratch");
    let store = store_in(scratch.path());
    let bed = Bed::new("restore-quorum").await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    check.put_keys(&[0, 1, 2], "k", 20).await;
    let snapshot = backup(&store, &bed.client_url(0), scratch.path());
    check.put_keys(&[0, 1, 2], "after", 20).await;
    // A mis-set variable (even with a new token) on one pod of a live cluster: ignored.
    bed.delete_pod(2).await;
    let env = [("ETCD_BOOTSTRAP_INITIAL_CLUSTER_TOKEN", "a-new-token")];
    bed.start_pod(2, restoring_pod(&bed, 2, &etcd, &snapshot, &env)).await;
    check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    assert_eq!(decisions(&bed, 2).last().map(String::as_str), Some("EXISTING"));
    assert!(bed.logs_current(2).contains("has quorum"), "{}", bed.logs_current(2));
    check.assert_keys_on(2, "after", 20).await;
    assert!(archives(&bed.volume(2)).is_empty(), "the data stays in place");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_is_refused_on_a_sha256_mismatch_and_changes_no_volume() {
    let test = "a_restore_is_refused_on_a_sha256_mismatch_and_changes_no_volume";
    let Some(etcd) = setup(test) else { return };
    let scratch = tempfile::tempdir().expect("scratch");
    let store = store_in(scratch.path());
    let mut source =
        EtcdProcess::start(&etcd, &scratch.path().join("source"), &scratch.path().join("source.log"));
    source.wait_healthy();
    let snapshot = backup(&store, &source.client_url, scratch.path());
    source.stop();
    let db = format!("{}.db", snapshot.trim_start_matches("file://"));
    let good = std::fs::read(&db).expect("read");
    let mut bytes = good.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&db, &bytes).expect("corrupt");
    let bed = Bed::new("restore-sha").await;
    // Three times: with the manifest as this release writes it (the whole file is checked against
    // its XXH3-128 beside etcdutl), as the release before wrote it, without `xxh3_128` (the file is
    // known by etcd's trailer, which etcdutl checks), and as an earlier one did, without
    // `etcd_sha256` either (the whole file's sha256 is checked beside etcdutl).
    let manifest_path = format!("{}.manifest.json", snapshot.trim_start_matches("file://"));
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("manifest")).expect("json");
    assert!(manifest["etcd_sha256"].is_string(), "the manifest records etcd's trailer: {manifest}");
    assert_eq!(
        manifest["xxh3_128"].as_str().map(str::len),
        Some(32),
        "the manifest records the fast checksum: {manifest}"
    );
    for (release, digest, leave_out) in [
        ("this", "xxh3_128", None),
        ("the previous", "sha256", Some("xxh3_128")),
        ("an earlier", "sha256", Some("etcd_sha256")),
    ] {
        if let Some(field) = leave_out {
            manifest.as_object_mut().expect("object").remove(field);
            std::fs::write(&manifest_path, manifest.to_string()).expect("write the manifest");
            for o in 0..3 {
                bed.delete_pod(o).await;
            }
        }
        for o in 0..3 {
            bed.start_pod(o, restoring_pod(&bed, o, &etcd, &snapshot, &[])).await;
        }
        for o in 0..3 {
            let exit = bed.wait_exit(o, Duration::from_secs(60)).await;
            assert_eq!(
                exit,
                Some(PodExit::Code(9)),
                "{release} release's manifest, etcd-{o}:\n{}",
                bed.logs(o)
            );
            let last = bed.logs(o).lines().last().unwrap_or_default().to_string();
            assert!(
                last.starts_with("etcd-bootstrap: error: snapshot ")
                    && last.contains(&format!("has {digest} "))
                    && last.contains("nothing was restored"),
                "{release} release's manifest: {last}"
            );
            let left: Vec<_> =
                std::fs::read_dir(bed.volume(o)).map(|d| d.flatten().count()).into_iter().collect();
            assert_eq!(left, [0], "etcd-{o}'s volume stays empty");
        }
    }
    // The good bytes back, under the earlier release's manifest: restored.
    std::fs::write(&db, &good).expect("repair");
    for o in 0..3 {
        bed.delete_pod(o).await;
    }
    for o in 0..3 {
        bed.start_pod(o, restoring_pod(&bed, o, &etcd, &snapshot, &[])).await;
    }
    Checker::plain(&bed).wait_healthy(&[0, 1, 2], HEALTHY).await;
}

/// The runbook after a permanent quorum loss, with a kill of pod 0 at `crash` (if any) on the
/// way: a cluster under writes, a backup, two volumes wiped and every pod deleted; then
/// `--restore-from` and a new token on every pod.
async fn quorum_loss_runbook(
    bed: &Bed,
    etcd: &Path,
    store: &str,
    home: &Path,
    round: u32,
    crash: Option<&str>,
) {
    let check = Checker::plain(bed);
    check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    let urls: Vec<String> = (0..3).map(|o| bed.client_url(o)).collect();
    let mut writer = Writer::start(urls);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked_before = writer.acked();
    let snapshot = backup(store, &bed.client_url(0), home);
    tokio::time::sleep(Duration::from_millis(300)).await;
    writer.halt().await;
    assert!(!acked_before.is_empty(), "the writer wrote before the backup");
    for o in 0..3 {
        bed.delete_pod(o).await;
    }
    bed.wipe_volume(1);
    bed.wipe_volume(2);
    let archives_before = archives(&bed.volume(0)).len();
    let token = format!("after-loss-{round}");
    let env = [("ETCD_BOOTSTRAP_INITIAL_CLUSTER_TOKEN", token.as_str())];
    let mut pods = vec![0, 1, 2];
    if let Some(step) = crash {
        // Pod 0 (the survivor, with old data) is killed at `step`; the others go on.
        let crash_env = [env[0], ("ETCD_BOOTSTRAP_TEST_CRASH_AFTER", step)];
        bed.start_pod(0, restoring_pod(bed, 0, etcd, &snapshot, &crash_env)).await;
        for o in [1, 2] {
            bed.start_pod(o, restoring_pod(bed, o, etcd, &snapshot, &env)).await;
        }
        let exit = bed.wait_exit(0, Duration::from_secs(60)).await;
        assert_eq!(exit, Some(PodExit::Code(137)), "crash at {step}:\n{}", bed.logs(0));
        bed.delete_pod(0).await;
        pods = vec![0];
    }
    for o in pods {
        bed.start_pod(o, restoring_pod(bed, o, etcd, &snapshot, &env)).await;
    }
    check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    for o in 0..3 {
        let missing = missing_on(bed, o, &acked_before).await.expect("read back");
        assert!(
            missing.is_empty(),
            "etcd-{o} lost {} acknowledged keys, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(3)]
        );
        assert!(
            !bed.volume(o).join("etcd-bootstrap-restore.work").exists(),
            "etcd-{o}: no work dir left:\n{}",
            bed.logs(o)
        );
    }
    assert_eq!(
        archives(&bed.volume(0)).len(),
        archives_before + 1,
        "the survivor's old data archived once, not deleted"
    );
    let revision = manifest_of(&snapshot)["revision"].as_i64().expect("revision");
    assert_one_cluster_at_least(bed, &[0, 1, 2], revision).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn permanent_quorum_loss_runbook_restores_every_acknowledged_key() {
    let test = "permanent_quorum_loss_runbook_restores_every_acknowledged_key";
    let Some(etcd) = setup(test) else { return };
    let scratch = tempfile::tempdir().expect("scratch");
    let store = store_in(scratch.path());
    let bed = Bed::new("restore-runbook").await;
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    quorum_loss_runbook(&bed, &etcd, &store, scratch.path(), 0, None).await;
}

/// A kill -9 at every step of a restore converges on restart.
async fn kill_at_every_step(test: &str, etcd: PathBuf) {
    if !crash_points_built(test) {
        return;
    }
    let scratch = tempfile::tempdir().expect("scratch");
    let store = store_in(scratch.path());
    let bed = Bed::new(test).await;
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    // A directory store's snapshot is read in place (no download): the first step is the
    // moment it was found to be the manifest's, before etcd's tool runs.
    let steps = ["after-snapshot-check", "after-restore", "after-restore-archive", "after-restore-move"];
    for (round, step) in steps.iter().enumerate() {
        quorum_loss_runbook(&bed, &etcd, &store, scratch.path(), round as u32 + 1, Some(step)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_at_every_step_of_a_restore_converges_on_etcd_35() {
    let test = "kill_at_every_step_of_a_restore_converges_on_etcd_35";
    let Some(etcd) = setup(test) else { return };
    kill_at_every_step("restore-kill-35", etcd).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_at_every_step_of_a_restore_converges_on_etcd_34() {
    let test = "kill_at_every_step_of_a_restore_converges_on_etcd_34";
    let Some(etcd) = setup34(test) else { return };
    kill_at_every_step("restore-kill-34", etcd).await;
}

/// A directory store in `scratch` (made here: backup never creates one), as its URL.
pub fn store_in(scratch: &Path) -> String {
    std::fs::create_dir_all(scratch.join("store")).expect("the directory store");
    format!("file://{}/store", scratch.display())
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_at_every_step_of_a_restore_converges_on_etcd_3530() {
    let test = "kill_at_every_step_of_a_restore_converges_on_etcd_3530";
    let Some(etcd) = prereq::need_etcd3530(test) else { return };
    kill_at_every_step("restore-kill-3530", etcd).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_statefulset_restores_another_clusters_snapshot_on_etcd_3530() {
    let test = "a_new_statefulset_restores_another_clusters_snapshot_on_etcd_3530";
    let Some(etcd) = prereq::need_etcd3530(test) else { return };
    restore_another_clusters_snapshot("restore-3530", etcd).await;
}

/// The revision bump, for real on etcd 3.5.30 (its etcdutl has `--bump-revision` and
/// `--mark-compacted`): a watcher of the old cluster that resumes from the last revision it saw
/// never sees a revision again. Its watch is cancelled as compacted past that revision (or gets
/// only events after it), and every write of the restored cluster has a higher revision.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_on_etcd_3530_bumps_the_revision_past_every_revision_the_old_cluster_had() {
    use etcd_client::{EventType, WatchOptions};
    let test = "a_restore_on_etcd_3530_bumps_the_revision_past_every_revision_the_old_cluster_had";
    let Some(etcd) = prereq::need_etcd3530(test) else { return };
    let scratch = tempfile::tempdir().expect("scratch");
    let store = store_in(scratch.path());
    let (mut source, mut c, snapshot) = source_with_backup(&etcd, scratch.path(), &store, 50).await;
    // The old cluster goes on after the backup: its watchers see these revisions too.
    let mut last_seen = 0;
    for i in 0..30 {
        let put = c.put(format!("late/{i}"), "x", None).await.expect("put");
        last_seen = put.header().expect("header").revision();
    }
    source.stop();
    let snapshot_revision = manifest_of(&snapshot)["revision"].as_i64().expect("revision");
    assert!(last_seen > snapshot_revision, "{last_seen} > {snapshot_revision}");

    let bed = Bed::new("restore-bump").await;
    for o in 0..3 {
        bed.start_pod(o, restoring_pod(&bed, o, &etcd, &snapshot, &[])).await;
    }
    let check = Checker::plain(&bed);
    check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    check.assert_keys_on(0, "k", 50).await;
    assert_one_cluster_at_least(&bed, &[0, 1, 2], snapshot_revision + 1_000_000_000).await;
    // The old cluster's watcher resumes on the restored one from the revision after its last.
    let mut w = check.client(0).await.expect("connect");
    let mut stream = w
        .watch("", Some(WatchOptions::new().with_all_keys().with_start_revision(last_seen + 1)))
        .await
        .expect("watch");
    let mut c = check.client(1).await.expect("connect");
    let put = c.put("after-restore", "y", None).await.expect("put");
    let written = put.header().expect("header").revision();
    assert!(written > last_seen, "a write of the restored cluster at {written} <= {last_seen}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let resp = tokio::time::timeout(left, stream.message())
            .await
            .expect("the watch answers: cancelled as compacted, or the new write")
            .expect("watch stream")
            .expect("watch response");
        if resp.canceled() {
            assert!(
                resp.compact_revision() > last_seen,
                "cancelled with compact revision {} <= the last seen {last_seen}",
                resp.compact_revision()
            );
            break;
        }
        for event in resp.events() {
            let kv = event.kv().expect("kv");
            assert!(
                kv.mod_revision() > last_seen,
                "seen again: revision {} <= {last_seen}",
                kv.mod_revision()
            );
            assert_eq!(event.event_type(), EventType::Put);
        }
        if resp.events().iter().any(|e| e.kv().is_some_and(|kv| kv.key() == b"after-restore")) {
            break;
        }
    }
}
