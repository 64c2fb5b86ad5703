//! Point-in-time restore (issue 21), the restore side: `run --restore-from` with a snapshot whose
//! chain of delta segments follows it, on the pod bed with real etcd (3.5.1, 3.4.23, 3.5.30).
//!
//! The chain here is written from a real watch of the source etcd, in the segment format the
//! README documents (this test is its reader's contract, independent of the sidecar that usually
//! writes it). The expected data at a point is what the source etcd itself answers for a read at
//! that revision. Checked: every member ends with exactly the source's keys and values at the
//! point asked (`--restore-to-revision`, `--restore-to-time`, or the newest), at a revision not
//! below it, one cluster; a key attached to a lease keeps a lease with the granted TTL; `plan`
//! shows the segments and the point; and a kill -9 at every step of a replay converges.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::{Client, GetOptions, PutOptions, Txn, TxnOp, WatchOptions};

use crate::backup::run;
use crate::bed::{Bed, PodExit, PodSpec};
use crate::bootstrap::{etcd_pod, plan_in_pod_with};
use crate::chain_by_hand::{self, SeenRevision};
use crate::datadir_wal::EtcdProcess;
use crate::etcd_check::Checker;
use crate::membership::crash_points_built;
use crate::restore::{setup34, store_in};

const HEALTHY: Duration = Duration::from_secs(150);
const LEASE_TTL: i64 = 900;

/// The source: one etcd on the host with a snapshot in a directory store and a chain of
/// segments after it.
struct Source {
    etcd: EtcdProcess,
    client: Client,
    snapshot: String,
    chain_from: i64,
    revisions: Vec<SeenRevision>,
    lease: i64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// Write the source's chain into the directory store: `parts` segments of about equal size.
fn write_chain(store_dir: &Path, snapshot_name: &str, source: &Source, parts: usize) {
    chain_by_hand::write_chain(
        store_dir,
        snapshot_name,
        source.chain_from,
        &source.revisions,
        &[(source.lease, LEASE_TTL)],
        parts,
    )
    .expect("write the chain");
}

/// A source etcd with 50 keys, a snapshot, then puts, overwrites, deletes, a transaction and a
/// key on a lease, every change seen through a watch from the snapshot's chain start.
async fn source(etcd: &Path, scratch: &Path, store: &str) -> Source {
    let mut process = EtcdProcess::start(etcd, &scratch.join("source"), &scratch.join("source.log"));
    process.wait_healthy();
    let mut client = Client::connect([process.client_url.as_str()], None).await.expect("connect");
    for i in 0..50 {
        client.put(format!("k/{i}"), format!("v-{i}"), None).await.expect("put");
    }
    let out = run(&["backup", "--to", store, "--endpoints", &process.client_url], &[], scratch);
    assert_eq!(out.code, 0, "backup: {}", out.stderr);
    let snapshot = out.stdout.trim().to_string();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{}.manifest.json", snapshot.trim_start_matches("file://")))
            .expect("manifest"),
    )
    .expect("manifest json");
    let chain_from = manifest["chain_from"].as_i64().expect("the manifest has chain_from");

    let mut watch = client
        .watch("", Some(WatchOptions::new().with_all_keys().with_start_revision(chain_from + 1)))
        .await
        .expect("watch");
    let lease = client.lease_grant(LEASE_TTL, None).await.expect("lease").id();
    // When each revision was acknowledged: the time a recorder beside the leader would stamp it
    // with, give or take its watch's latency (strictly increasing here, so a time names one point).
    let mut acked_at: BTreeMap<i64, u64> = BTreeMap::new();
    let mut ack = |revision: i64| {
        let previous = acked_at.values().next_back().copied().unwrap_or(0);
        acked_at.insert(revision, now_ms().max(previous + 1));
        revision
    };
    let mut last = 0;
    for i in 0..120 {
        let key = format!("k/{}", i % 60);
        let r = client.put(key, format!("v2-{i}"), None).await.expect("put");
        last = ack(r.header().expect("header").revision());
        if i % 10 == 9 {
            let r = client.delete(format!("k/{}", i / 2), None).await.expect("delete");
            let revision = r.header().expect("header").revision();
            if r.deleted() > 0 {
                last = ack(revision);
            }
        }
        if i == 40 {
            let txn = Txn::new().and_then(vec![
                TxnOp::put("t/a", "in-one-txn", None),
                TxnOp::put("t/b", "in-one-txn", None),
                TxnOp::delete("k/1", None),
            ]);
            last = ack(client.txn(txn).await.expect("txn").header().expect("header").revision());
        }
        if i == 80 {
            let r = client
                .put("leased", "ephemeral", Some(PutOptions::new().with_lease(lease)))
                .await
                .expect("put");
            last = ack(r.header().expect("header").revision());
        }
    }
    let revisions =
        chain_by_hand::record(&mut watch, last, &acked_at, Duration::from_secs(30)).await.expect("the chain");
    Source { etcd: process, client, snapshot, chain_from, revisions, lease }
}

/// Every key and value at `revision` as the source itself answers (None: now).
async fn state_at(client: &mut Client, revision: Option<i64>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut options = GetOptions::new().with_all_keys();
    if let Some(r) = revision {
        options = options.with_revision(r);
    }
    let got = client.get("", Some(options)).await.expect("get all");
    got.kvs().iter().map(|kv| (kv.key().to_vec(), kv.value().to_vec())).collect()
}

/// Whether the restore tool beside `etcd` moves the revision (`--bump-revision`): etcdutl after
/// 3.5.1. Where it cannot, the replay ends exactly at the point's revision.
fn tool_bumps(etcd: &Path) -> bool {
    let etcdutl = etcd.with_file_name("etcdutl");
    std::process::Command::new(&etcdutl)
        .args(["snapshot", "restore", "--help"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--bump-revision"))
}

/// Every member holds exactly `want`, at a revision not below `point` (exactly `point` where the
/// restore tool does not bump it, `exact`), as one cluster; each restored member's marker records
/// `point`.
async fn assert_restored_to(bed: &Bed, want: &BTreeMap<Vec<u8>, Vec<u8>>, point: i64, exact: bool) {
    let check = Checker::plain(bed);
    let mut ids = Vec::new();
    for o in 0..3 {
        let mut c = check.client(o).await.expect("connect");
        let got = c.get("", Some(GetOptions::new().with_all_keys().with_serializable())).await.expect("get");
        let revision = got.header().expect("header").revision();
        ids.push(got.header().expect("header").cluster_id());
        let data: BTreeMap<Vec<u8>, Vec<u8>> =
            got.kvs().iter().map(|kv| (kv.key().to_vec(), kv.value().to_vec())).collect();
        let differ: Vec<String> = want
            .keys()
            .chain(data.keys())
            .filter(|k| want.get(*k) != data.get(*k))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert!(differ.is_empty(), "etcd-{o} differs from the source at revision {point} in {differ:?}");
        assert!(revision >= point, "etcd-{o} at revision {revision}, below the point {point}");
        if exact {
            assert_eq!(revision, point, "etcd-{o}: without a bump the revision ends at the point");
        }
        let marker = bed.volume(o).join("etcd-bootstrap-restore.json");
        if let Ok(text) = std::fs::read_to_string(&marker) {
            let m: serde_json::Value = serde_json::from_str(&text).expect("marker json");
            assert_eq!(m["replayed_to"].as_i64(), Some(point), "etcd-{o}'s marker: {text}");
        }
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one cluster: {ids:x?}");
}

fn restoring(bed: &Bed, o: u32, etcd: &Path, snapshot: &str, env: &[(&str, String)]) -> PodSpec {
    env.iter()
        .fold(etcd_pod(bed, o, etcd).env("ETCD_BOOTSTRAP_RESTORE_FROM", snapshot), |s, (k, v)| s.env(*k, v))
}

/// A restore to a revision in the middle of the chain, then (the same pods, volumes wiped) to a
/// time, then to the newest point.
async fn restores_to_the_point_asked(bed_name: &str, etcd: std::path::PathBuf) {
    let scratch = tempfile::tempdir().expect("scratch");
    let store = store_in(scratch.path());
    let mut src = source(&etcd, scratch.path(), &store).await;
    let name = src.snapshot.rsplit('/').next().expect("name").to_string();
    write_chain(&scratch.path().join("store"), &name, &src, 3);
    let middle = &src.revisions[src.revisions.len() / 2];
    let (point, time) = (middle.revision, middle.unix_ms);
    let at_point = state_at(&mut src.client, Some(point)).await;
    let newest = src.revisions.last().expect("revisions").revision;
    let at_newest = state_at(&mut src.client, None).await;
    src.etcd.stop();

    let out = run(&["backup", "list", &store, "--format", "json"], &[], scratch.path());
    let list: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("list json");
    assert_eq!(list[0]["chain"]["revision"].as_i64(), Some(newest), "backup list shows the chain's reach");
    assert_eq!(list[0]["chain"]["segments"].as_u64(), Some(3));

    let bed = Bed::new(bed_name).await;
    let to_revision = [("ETCD_BOOTSTRAP_RESTORE_TO_REVISION", point.to_string())];
    for o in 0..3 {
        bed.start_pod(o, restoring(&bed, o, &etcd, &src.snapshot, &to_revision)).await;
    }
    Checker::plain(&bed).wait_healthy(&[0, 1, 2], HEALTHY).await;
    assert_restored_to(&bed, &at_point, point, !tool_bumps(&etcd)).await;

    // The same point by its time: the last revision received at or before it.
    let to_time = [(
        "ETCD_BOOTSTRAP_RESTORE_TO_TIME",
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(time)).to_string(),
    )];
    // `plan` in a restored pod, with the restore still set: it restores no more (the data is the
    // restored cluster's), and says why.
    let plan = plan_in_pod_with(&bed, 0, &etcd, &[("ETCD_BOOTSTRAP_RESTORE_FROM", src.snapshot.as_str())]);
    assert_eq!(plan["decision"], "EXISTING", "a restored member restarts as usual: {plan}");
    // What `plan` shows before such a restore: pods that are up (so their names resolve) with
    // empty volumes and nothing answering.
    for o in 0..3 {
        bed.delete_pod(o).await;
        bed.wipe_volume(o);
        bed.start_pod(o, PodSpec::shell("exec sleep 600")).await;
    }
    let mut plan_env: Vec<(&str, &str)> = vec![("ETCD_BOOTSTRAP_RESTORE_FROM", src.snapshot.as_str())];
    plan_env.extend(to_time.iter().map(|(k, v)| (*k, v.as_str())));
    let plan = plan_in_pod_with(&bed, 0, &etcd, &plan_env);
    assert_eq!(plan["decision"], "RESTORE", "{plan}");
    assert_eq!(plan["restore"]["to_revision"].as_i64(), Some(point), "plan shows the point: {plan}");
    let segments = plan["restore"]["segments"].as_array().map(Vec::len).unwrap_or(0);
    assert!((1..=3).contains(&segments), "plan shows the segments read: {plan}");
    restart_all_wiped(&bed, &etcd, &src.snapshot, &to_time).await;
    assert_restored_to(&bed, &at_point, point, !tool_bumps(&etcd)).await;

    restart_all_wiped(&bed, &etcd, &src.snapshot, &[]).await;
    assert_restored_to(&bed, &at_newest, newest, !tool_bumps(&etcd)).await;
    let mut c = Checker::plain(&bed).client(1).await.expect("connect");
    let leased = c.get("leased", None).await.expect("get");
    let lease = leased.kvs().first().expect("the leased key").lease();
    assert_eq!(lease, src.lease, "the key keeps its lease ID");
    let ttl = c.lease_time_to_live(lease, None).await.expect("ttl");
    assert_eq!(ttl.granted_ttl(), LEASE_TTL, "the lease is granted again with its TTL");

    // A quota the snapshot fits but its replayed changes do not: etcd would refuse the replayed
    // writes past it, so the restore refuses first, with one line naming the setting, and
    // restores nothing.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{}.manifest.json", src.snapshot.trim_start_matches("file://")))
            .expect("manifest"),
    )
    .expect("manifest json");
    let size = manifest["size"].as_u64().expect("the manifest has the size");
    let small_quota = [("ETCD_QUOTA_BACKEND_BYTES", (size + 16).to_string())];
    for o in 0..3 {
        bed.delete_pod(o).await;
        bed.wipe_volume(o);
    }
    for o in 0..3 {
        bed.start_pod(o, restoring(&bed, o, &etcd, &src.snapshot, &small_quota)).await;
    }
    crate::membership::wait_exit_code(&bed, 0, 2).await;
    let logs = bed.logs(0);
    assert!(logs.contains("--quota-backend-bytes"), "the error names the setting:\n{logs}");
    assert!(!bed.volume(0).join("member").exists(), "nothing restored:\n{logs}");
}

/// Delete every pod, wipe every volume, and restore again with `env`.
async fn restart_all_wiped(bed: &Bed, etcd: &Path, snapshot: &str, env: &[(&str, String)]) {
    for o in 0..3 {
        bed.delete_pod(o).await;
        bed.wipe_volume(o);
    }
    for o in 0..3 {
        bed.start_pod(o, restoring(bed, o, etcd, snapshot, env)).await;
    }
    Checker::plain(bed).wait_healthy(&[0, 1, 2], HEALTHY).await;
}

on_each_etcd!(
    restores_to_the_point_asked, "pitr-point", setup34;
    point_in_time_restore_reaches_the_point_asked_on_etcd_351,
    point_in_time_restore_reaches_the_point_asked_on_etcd_34,
    point_in_time_restore_reaches_the_point_asked_on_etcd_3530
);

/// A kill -9 at every step of a replay: the member restarts and restores the same point.
async fn kill_at_every_step_of_a_replay(bed_name: &str, etcd: std::path::PathBuf) {
    if !crash_points_built(bed_name) {
        return;
    }
    let scratch = tempfile::tempdir().expect("scratch");
    let store = store_in(scratch.path());
    let mut src = source(&etcd, scratch.path(), &store).await;
    let name = src.snapshot.rsplit('/').next().expect("name").to_string();
    write_chain(&scratch.path().join("store"), &name, &src, 2);
    let newest = src.revisions.last().expect("revisions").revision;
    let at_newest = state_at(&mut src.client, None).await;
    src.etcd.stop();
    let bed = Bed::new(bed_name).await;
    // The snapshot restored, the first segment appended to the restored log, every segment appended
    // and committed, the replayed member ready to move into place.
    let steps = ["during-replay", "after-replay", "after-restore"];
    for step in steps {
        for o in 0..3 {
            if bed.exists(o) {
                bed.delete_pod(o).await;
            }
            bed.wipe_volume(o);
        }
        let crash = [("ETCD_BOOTSTRAP_TEST_CRASH_AFTER", step.to_string())];
        // Pod 0 is killed at `step`; the others go on.
        bed.start_pod(0, restoring(&bed, 0, &etcd, &src.snapshot, &crash)).await;
        for o in [1, 2] {
            bed.start_pod(o, restoring(&bed, o, &etcd, &src.snapshot, &[])).await;
        }
        let exit = bed.wait_exit(0, Duration::from_secs(120)).await;
        assert_eq!(exit, Some(PodExit::Code(137)), "crash at {step}:\n{}", bed.logs(0));
        bed.delete_pod(0).await;
        bed.start_pod(0, restoring(&bed, 0, &etcd, &src.snapshot, &[])).await;
        Checker::plain(&bed).wait_healthy(&[0, 1, 2], HEALTHY).await;
        assert_restored_to(&bed, &at_newest, newest, !tool_bumps(&etcd)).await;
        assert!(
            !bed.volume(0).join("etcd-bootstrap-restore.work").exists(),
            "no work dir left after {step}:\n{}",
            bed.logs(0)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_at_every_step_of_a_replay_converges() {
    let test = "kill_at_every_step_of_a_replay_converges";
    let Some(etcd) = crate::prereq::need_etcd3530(test) else { return };
    kill_at_every_step_of_a_replay("pitr-kill", etcd).await;
}

// ----- the whole story: the sidecars record, every pod and volume is lost, the restore -----------

/// The sidecars' delta interval `D` of the disaster tests.
const DELTA_SECS: u64 = 2;
/// What "one upload" may take on top of `D` before a write is sure to be in the store: a segment
/// is a few KB to a store on the same host (milliseconds), but the suite runs six bed tests at once
/// on two cores, where a pass can start seconds late. The test asserts the bound with this margin;
/// the benchmark (bench/PITR.md) measures the recovery point itself.
const UPLOAD_ALLOWANCE: Duration = Duration::from_secs(5);

/// `backup list URL --format json` from the host.
fn list(url: &str, env: &[(String, String)], home: &Path) -> Vec<serde_json::Value> {
    let out = run(&["backup", "list", url, "--format", "json"], env, home);
    assert_eq!(out.code, 0, "backup list {url}: {}", out.stderr);
    serde_json::from_str::<serde_json::Value>(out.stdout.trim())
        .expect("json")
        .as_array()
        .cloned()
        .expect("array")
}

/// Poll the store until its newest snapshot's chain holds more than `segments` segments; returns
/// how many it holds.
async fn wait_chain_beyond(
    url: &str,
    env: &[(String, String)],
    home: &Path,
    segments: u64,
    set: &crate::stateful_set::Set,
) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let listed = list(url, env, home);
        let now = listed.first().and_then(|s| s["chain"]["segments"].as_u64()).unwrap_or(0);
        if now > segments {
            return now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the chain did not grow past {segments} segments: {listed:#?}\n{}",
            set.logs(&[0, 1, 2])
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A 3-member set whose sidecars record every `D` into `store`, under a steady writer, the leader
/// killed twice; then every pod and every volume lost at once, and every pod restored from the
/// newest snapshot. Every write acknowledged more than `D` plus one upload before the loss must
/// come back, on every member, and the chain must have no gap.
async fn a_disaster_loses_at_most_the_last_seconds(bed_name: &str, etcd: std::path::PathBuf, s3: bool) {
    let scratch = tempfile::tempdir().expect("scratch");
    let home = scratch.path();
    let extra = crate::stateful_set::Extra { sidecar_interval: Some("1s".into()), ..Default::default() };
    let set = crate::stateful_set::Set::with(bed_name, etcd.clone(), extra).await;
    let (url, store_env, _server) = if s3 {
        let Some(bin) = crate::prereq::need_s3_server(bed_name) else { return };
        let server =
            crate::s3_server::S3Server::start_on(&bin, &home.join("s3"), &["pitr"], set.bed.gateway());
        ("s3://pitr/etcd".to_string(), server.client_env(), Some(server))
    } else {
        (store_in(home), Vec::new(), None)
    };
    let mut sidecar_env = store_env.clone();
    sidecar_env.extend([
        ("ETCD_BOOTSTRAP_BACKUP_TO".to_string(), url.clone()),
        ("ETCD_BOOTSTRAP_BACKUP_INTERVAL".to_string(), "1h".to_string()),
        ("ETCD_BOOTSTRAP_BACKUP_KEEP".to_string(), "3".to_string()),
        ("ETCD_BOOTSTRAP_BACKUP_DELTA_INTERVAL".to_string(), format!("{DELTA_SECS}s")),
    ]);
    *set.sidecar_env.lock().unwrap_or_else(|p| p.into_inner()) = sidecar_env;
    for o in 0..3 {
        set.start(o, false).await;
    }
    set.healthy(&[0, 1, 2]).await;
    let urls: Vec<String> = (0..3).map(|o| set.bed.client_url(o)).collect();
    let mut writer = crate::stateful_set::Writer::start(urls);
    // How many writes were acknowledged when: the writer's count, sampled.
    let timeline = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(std::time::Instant, usize)>::new()));
    let acked_now = {
        let (line, acked) = (timeline.clone(), writer.acked_counter());
        tokio::spawn(async move {
            loop {
                let n = acked();
                line.lock().unwrap_or_else(|p| p.into_inner()).push((std::time::Instant::now(), n));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut segments = wait_chain_beyond(&url, &store_env, home, 1, &set).await;
    for _ in 0..2 {
        let leader = set.leader_ordinal(0).await.or(set.leader_ordinal(1).await).expect("a leader");
        set.crash(leader).await;
        set.start(leader, false).await;
        set.healthy(&[0, 1, 2]).await;
        segments = wait_chain_beyond(&url, &store_env, home, segments + 1, &set).await;
    }
    wait_chain_beyond(&url, &store_env, home, segments + 1, &set).await;

    // The disaster: every pod and every volume at once.
    let lost_at = std::time::Instant::now();
    for o in 0..3 {
        set.crash(o).await;
    }
    writer.halt().await;
    acked_now.abort();
    let acked = writer.acked();
    for o in 0..3 {
        set.bed.wipe_volume(o);
    }
    let window = Duration::from_secs(DELTA_SECS) + UPLOAD_ALLOWANCE;
    let sure = timeline
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(at, _)| *at + window <= lost_at)
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0);
    assert!(sure >= 100, "too few writes before the window: {sure} of {}", acked.len());

    let listed = list(&url, &store_env, home);
    let newest = &listed[0];
    assert!(newest["chain"]["broken"].is_null(), "the chain has no gap: {newest:#}");
    let snapshot = newest["url"].as_str().expect("url").to_string();
    for o in 0..3 {
        let spec = store_env.iter().fold(
            etcd_pod(&set.bed, o, &etcd).env("ETCD_BOOTSTRAP_RESTORE_FROM", snapshot.as_str()),
            |s, (k, v)| s.env(k.as_str(), v.as_str()),
        );
        set.bed.start_pod(o, spec).await;
    }
    Checker::plain(&set.bed).wait_healthy(&[0, 1, 2], HEALTHY).await;
    let mut restored = 0;
    for o in 0..3 {
        let missing = crate::stateful_set::missing_on(&set.bed, o, &acked[..sure]).await.expect("read back");
        assert!(
            missing.is_empty(),
            "etcd-{o} lost {} writes acknowledged more than {window:?} before the loss, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(3)]
        );
        let all = crate::stateful_set::missing_on(&set.bed, o, &acked).await.expect("read back");
        restored = acked.len() - all.len();
    }
    eprintln!(
        "disaster: {} writes acknowledged, {sure} before the window of {window:?}, {restored} restored",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disaster_with_a_directory_store_loses_at_most_the_last_seconds_on_etcd_34() {
    let test = "a_disaster_with_a_directory_store_loses_at_most_the_last_seconds_on_etcd_34";
    let Some(etcd) = setup34(test) else { return };
    a_disaster_loses_at_most_the_last_seconds("pitr-dir-34", etcd, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disaster_with_an_s3_store_loses_at_most_the_last_seconds_on_etcd_3530() {
    let test = "a_disaster_with_an_s3_store_loses_at_most_the_last_seconds_on_etcd_3530";
    let Some(etcd) = crate::prereq::need_etcd3530(test) else { return };
    a_disaster_loses_at_most_the_last_seconds("pitr-s3-3530", etcd, true).await;
}
