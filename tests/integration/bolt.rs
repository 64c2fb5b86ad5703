//! `backup::bolt::content_revision_of` against databases written by real etcd (3.5.1, 3.4.23,
//! 3.5.30): the revision read from a snapshot's bbolt pages, and from a stopped member's
//! `member/snap/db`, must be the revision etcd itself reported after the last write; also when
//! the newest revision is a tombstone, and after a compaction at that revision removed it (then
//! only the compaction revision in the `meta` bucket tells it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use etcd_bootstrap::backup::bolt::content_revision_of;
use etcd_client::Client;
use futures_util::future::join_all;

use crate::datadir_wal::EtcdProcess;

/// Puts in flight at once (each its own revision).
const IN_FLIGHT: usize = 64;

/// `etcdctl` beside `etcd`, v3 API, none of the test's own `ETCDCTL_*` settings.
fn etcdctl(etcd: &Path, client_url: &str, args: &[&str]) -> String {
    let bin = etcd.with_file_name("etcdctl");
    let mut cmd = Command::new(&bin);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ETCDCTL_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={client_url}"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "etcdctl {args:?}: {}: {text}", out.status);
    text
}

/// `count` puts of `size`-byte values under `prefix`, `IN_FLIGHT` at a time.
async fn put_many(client: &Client, prefix: &str, count: usize, size: usize) {
    let value = vec![b'v'; size];
    let keys: Vec<String> = (0..count).map(|i| format!("{prefix}/{i:06}")).collect();
    for chunk in keys.chunks(IN_FLIGHT) {
        let puts = chunk.iter().map(|key| {
            let mut client = client.clone();
            let value = value.clone();
            async move { client.put(key.as_str(), value, None).await }
        });
        for put in join_all(puts).await {
            put.expect("put");
        }
    }
}

/// Deletes `keys` one by one (each a revision whose only key is a tombstone); returns the
/// revision etcd reports after the last.
async fn delete_each(client: &mut Client, keys: &[String]) -> i64 {
    for key in keys {
        let r = client.delete(key.as_str(), None).await.expect("delete");
        assert_eq!(r.deleted(), 1, "{key} existed");
    }
    status_revision(client).await
}

async fn status_revision(client: &mut Client) -> i64 {
    client.status().await.expect("status").header().expect("status header").revision()
}

/// The revision read from `db`, timed.
fn read_timed(what: &str, db: &Path) -> i64 {
    let size = std::fs::metadata(db).map(|m| m.len()).unwrap_or_default();
    let started = Instant::now();
    let revision = content_revision_of(db).unwrap_or_else(|e| panic!("{what}: {e}"));
    println!("{what}: revision {revision} read in {:?} from {size} bytes", started.elapsed());
    revision
}

async fn reads_the_revision_of_snapshots_and_the_member_db(label: &str, etcd: PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let mut process = EtcdProcess::start(&etcd, &data, &tmp.path().join("etcd.log"));
    process.wait_healthy();
    let url = process.client_url.clone();
    let mut client = Client::connect([url.as_str()], None).await.expect("connect");

    // 3000 keys of 1 KB: about 1000 leaf pages under branch pages in the bucket `key`.
    put_many(&client, "k", 3000, 1024).await;
    let doomed: Vec<String> = (0..20).map(|i| format!("k/{:06}", i * 7)).collect();
    let revision = delete_each(&mut client, &doomed).await;
    assert!(revision > 3000, "{revision}");

    // The newest revision is a tombstone, the last key of the bucket `key`.
    let snapshot = tmp.path().join("snapshot.db");
    etcdctl(&etcd, &url, &["snapshot", "save", &snapshot.to_string_lossy()]);
    assert_eq!(read_timed(&format!("{label} snapshot"), &snapshot), revision, "a snapshot after deletes");

    // Compacted at that revision: the tombstone goes (nothing newer than it is left in `key`),
    // and the revision is `meta`'s finishedCompactRev.
    let more: Vec<String> = (0..5).map(|i| format!("k/{:06}", 2000 + i * 11)).collect();
    let compacted = delete_each(&mut client, &more).await;
    assert!(compacted > revision, "{compacted} after {revision}");
    etcdctl(&etcd, &url, &["compact", &compacted.to_string(), "--physical"]);
    assert_eq!(status_revision(&mut client).await, compacted, "compaction keeps the revision");
    let after = tmp.path().join("compacted.db");
    etcdctl(&etcd, &url, &["snapshot", "save", &after.to_string_lossy()]);
    assert_eq!(read_timed(&format!("{label} compacted snapshot"), &after), compacted, "after a compaction");

    // The stopped member's own database.
    drop(client);
    process.terminate();
    let member_db = data.join("member").join("snap").join("db");
    assert_eq!(read_timed(&format!("{label} member/snap/db"), &member_db), compacted, "the member's db");
}

on_each_etcd!(
    reads_the_revision_of_snapshots_and_the_member_db, "bolt", crate::restore::setup34;
    bolt_revision_of_real_snapshots_351,
    bolt_revision_of_real_snapshots_34,
    bolt_revision_of_real_snapshots_3530
);

/// A snapshot of about 120 MB: the revision is read from a few pages, in milliseconds (printed,
/// not asserted: the machine's load decides).
#[tokio::test(flavor = "multi_thread")]
async fn bolt_revision_of_a_120mb_snapshot() {
    let Some(etcd) = crate::bootstrap::setup("bolt_revision_of_a_120mb_snapshot") else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut process = EtcdProcess::start(&etcd, &tmp.path().join("data"), &tmp.path().join("etcd.log"));
    process.wait_healthy();
    let url = process.client_url.clone();
    let mut client = Client::connect([url.as_str()], None).await.expect("connect");
    put_many(&client, "small", 20_000, 1024).await;
    put_many(&client, "big", 1000, 100_000).await;
    let revision = delete_each(&mut client, &["small/000123".to_string()]).await;
    let snapshot = tmp.path().join("snapshot.db");
    etcdctl(&etcd, &url, &["snapshot", "save", &snapshot.to_string_lossy()]);
    let size = std::fs::metadata(&snapshot).expect("snapshot").len();
    assert!(size > 100_000_000, "{size} bytes");
    assert_eq!(read_timed("a 120 MB snapshot", &snapshot), revision);
}
