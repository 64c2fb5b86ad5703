//! Scheduled backups from the sidecars (`--backup-to`, `--backup-interval`, `--backup-keep`) on a
//! 3-member StatefulSet under writes, to a directory and to the S3 server: snapshots appear at the
//! interval, one per period and only from the leader's sidecar, retention holds, every snapshot
//! verifies, the metrics say so, and a sidecar killed mid-upload leaves nothing that lists as
//! complete.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backup::run;
use crate::bootstrap::setup;
use crate::membership::crash_points_built;
use crate::prereq;
use crate::s3_server::S3Server;
use crate::stateful_set::{Set, Writer};

const BUCKET: &str = "etcd-backups";
const INTERVAL_SECS: u64 = 3;
const SCHEDULED: &str = "scheduled backup done";

/// `backup list URL --format json` from the host, with `env`.
fn list(url: &str, env: &[(String, String)], home: &std::path::Path) -> Vec<Value> {
    let out = run(&["backup", "list", url, "--format", "json"], env, home);
    assert_eq!(out.code, 0, "backup list {url}: {}", out.stderr);
    serde_json::from_str::<Value>(out.stdout.trim()).expect("json").as_array().cloned().expect("array")
}

/// Restart every sidecar with `env` added to the backup settings. They are killed, not stopped:
/// SIGTERM handling is the sidecar tests' business, and a sidecar killed at any moment is what
/// the backups must survive anyway.
async fn restart_sidecars(set: &Set, env: Vec<(String, String)>) {
    for o in 0..3 {
        set.kill_sidecar(o);
    }
    *set.sidecar_env.lock().unwrap_or_else(|p| p.into_inner()) = env;
    for o in 0..3 {
        set.start_sidecar(o);
    }
}

/// Wait until the sidecars together logged `count` scheduled backups; returns the log counts
/// per ordinal.
async fn wait_backups(set: &Set, count: usize, deadline: Duration) -> Vec<usize> {
    let until = Instant::now() + deadline;
    loop {
        let per: Vec<usize> = (0..3).map(|o| set.sidecar_logs(o).matches(SCHEDULED).count()).collect();
        if per.iter().sum::<usize>() >= count {
            return per;
        }
        assert!(
            Instant::now() < until,
            "{count} scheduled backups not seen in {deadline:?}: {per:?}\n{}",
            set.sidecar_logs(0)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn backup_env(url: &str) -> Vec<(String, String)> {
    vec![
        ("ETCD_BOOTSTRAP_BACKUP_TO".into(), url.into()),
        ("ETCD_BOOTSTRAP_BACKUP_INTERVAL".into(), format!("{INTERVAL_SECS}s")),
        ("ETCD_BOOTSTRAP_BACKUP_KEEP".into(), "2".into()),
    ]
}

/// Snapshots in `url`: two kept, newest first, at least one interval apart, each verifying.
fn assert_store_holds_the_newest_two(
    url: &str,
    env: &[(String, String)],
    home: &std::path::Path,
) -> Vec<String> {
    let listed = list(url, env, home);
    assert_eq!(listed.len(), 2, "retention keeps 2 in {url}: {listed:#?}");
    let times: Vec<u64> = listed.iter().map(|m| m["unix_time"].as_u64().expect("time")).collect();
    assert!(times[0] >= times[1] + INTERVAL_SECS, "one per interval: {times:?}");
    let urls: Vec<String> = listed.iter().map(|m| m["url"].as_str().expect("url").to_string()).collect();
    for snapshot in &urls {
        let verified = run(&["backup", "verify", snapshot], env, home);
        assert_eq!(verified.code, 0, "verify {snapshot}: {}", verified.stderr);
    }
    urls
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_backups_come_from_the_leader_once_per_interval_and_keep_the_newest() {
    let test = "scheduled_backups_come_from_the_leader_once_per_interval_and_keep_the_newest";
    let Some(etcd) = setup(test) else { return };
    let Some(s3_bin) = prereq::need_s3_server(test) else { return };
    if !crash_points_built(test) {
        return;
    }
    let scratch = tempfile::tempdir().expect("scratch");
    let home = scratch.path();
    let set = Set::new("backups", etcd).await;
    let s3 = S3Server::start_on(&s3_bin, &home.join("s3"), &[BUCKET], set.bed.gateway());
    for o in 0..3 {
        set.start(o, false).await;
    }
    set.healthy(&[0, 1, 2]).await;
    let urls: Vec<String> = (0..3).map(|o| set.bed.client_url(o)).collect();
    let writer = Writer::start(urls);

    // To a directory.
    std::fs::create_dir_all(home.join("backups")).expect("the directory store");
    let dir_url = format!("file://{}/backups", home.display());
    restart_sidecars(&set, backup_env(&dir_url)).await;
    let started = Instant::now();
    let per = wait_backups(&set, 3, Duration::from_secs(60)).await;
    let leader = set.leader_ordinal(0).await.expect("a leader");
    assert_eq!(per.iter().filter(|n| **n > 0).count(), 1, "only one sidecar backs up: {per:?}");
    assert!(per[leader as usize] > 0, "the leader's sidecar backs up: {per:?}");
    let elapsed = started.elapsed().as_secs();
    let total: usize = per.iter().sum();
    assert!(
        total as u64 <= elapsed / INTERVAL_SECS + 1,
        "{total} backups in {elapsed}s: more than one per {INTERVAL_SECS}s"
    );
    let kept = assert_store_holds_the_newest_two(&dir_url, &[], home);
    let metrics = set.scrape(leader).await.expect("leader's metrics");
    assert!(metrics["etcd_bootstrap_sidecar_backups_total"] >= 3.0, "{metrics:?}");
    assert!(metrics["etcd_bootstrap_sidecar_backup_last_size_bytes"] > 0.0, "{metrics:?}");
    assert!(metrics["etcd_bootstrap_sidecar_backup_last_revision"] > 0.0, "{metrics:?}");
    assert!(metrics["etcd_bootstrap_sidecar_backup_last_success_timestamp_seconds"] > 0.0, "{metrics:?}");

    // A sidecar killed between its data and its manifest: nothing new lists as complete.
    let mut crash_env = backup_env(&dir_url);
    crash_env.push(("ETCD_BOOTSTRAP_TEST_CRASH_AFTER".into(), "after-upload-data".into()));
    restart_sidecars(&set, crash_env).await;
    let until = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        let ended = set.ended_sidecars();
        if !ended.is_empty() {
            break ended;
        }
        assert!(Instant::now() < until, "no sidecar was killed mid-upload");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ended.len(), 1, "only the leader's sidecar uploads: {ended:?}");
    assert_eq!(ended[0].1.code(), Some(137), "{ended:?}");
    let listed: Vec<String> =
        list(&dir_url, &[], home).iter().map(|m| m["url"].as_str().expect("url").to_string()).collect();
    assert_eq!(listed, kept, "the cut upload does not list");
    let names: Vec<String> = std::fs::read_dir(home.join("backups"))
        .expect("store dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".db")).count(),
        3,
        "its data is there without a manifest: {names:?}"
    );
    for (o, _) in ended {
        set.start_sidecar(o);
    }

    // To the S3 server (credentials and endpoint from the usual variables).
    let s3_url = format!("s3://{BUCKET}/etcd/prod");
    let mut env = backup_env(&s3_url);
    env.extend(s3.client_env());
    let before: usize = (0..3).map(|o| set.sidecar_logs(o).matches(SCHEDULED).count()).sum();
    restart_sidecars(&set, env).await;
    // Three uploads: retention has had to delete one.
    wait_backups(&set, before + 3, Duration::from_secs(60)).await;
    assert_store_holds_the_newest_two(&s3_url, &s3.client_env(), home);
    for o in 0..3 {
        assert!(
            !set.sidecar_logs(o).contains(crate::s3_server::SECRET_KEY),
            "etcd-{o}'s sidecar printed the secret"
        );
    }
    let (acked, _) = writer.stop().await;
    assert!(!acked.is_empty(), "the cluster was under writes");
}
