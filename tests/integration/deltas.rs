//! Continuous backups, the recording side (`sidecar --backup-delta-interval`, issue 21), on a
//! 3-member StatefulSet under a steady writer, to a directory and to the S3 server:
//! - the store's delta segments form one chain from the newest snapshot's `chain_from`, with no
//!   gap and no overlap, holding every acknowledged write (key, value, revision) up to shortly
//!   before the check;
//! - the leader killed twice (its sidecar with it): the chain goes on from the store, still with
//!   no gap and no overlap, still holding every acknowledged write;
//! - the delta metrics show on the leader's `/metrics`;
//! - a compaction past the watch (the sidecars down meanwhile) makes a new full snapshot at once
//!   (the backup interval is an hour), whose chain is recorded next;
//! - with the S3 server stopped for a while nothing is lost: one larger segment once it is back.
//!
//! The disaster end to end (every pod and volume lost, the restore replaying the recorded chain)
//! is `point_in_time.rs`'s.
//!
//! The store is read as files: a `file://` store is a directory, and s3s-fs keeps
//! `<root>/<bucket>/<key>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use etcd_client::{Client, ConnectOptions, PutOptions};
use serde_json::Value;

use crate::prereq;
use crate::s3_server::S3Server;
use crate::stateful_set::{client, Set};

const BUCKET: &str = "etcd-backups";
/// `--backup-delta-interval` on the bed.
const DELTA: &str = "1s";
/// Time allowed for the chain to reach a revision: the delta interval, an upload, a loaded
/// machine.
const CATCH_UP: Duration = Duration::from_secs(45);

/// One acknowledged put: key, value, the revision etcd gave it.
type Ack = (String, String, i64);

/// Puts unique keys through the pods' client URLs (round robin) until stopped, recording every
/// acknowledged one with its revision.
struct RevWriter {
    targets: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Ack>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RevWriter {
    fn start(urls: Vec<String>) -> RevWriter {
        let targets = Arc::new(Mutex::new(urls));
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(write_until(targets.clone(), stop.clone(), acked.clone()));
        RevWriter { targets, stop, acked, task }
    }

    /// Write through these URLs from now on (a restarted pod has a new address).
    fn set_targets(&self, urls: Vec<String>) {
        *self.targets.lock().unwrap_or_else(|p| p.into_inner()) = urls;
    }

    fn acked(&self) -> Vec<Ack> {
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn stop(self) -> Vec<Ack> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("writer task");
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

async fn write_until(targets: Arc<Mutex<Vec<String>>>, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<Ack>>>) {
    let mut clients: BTreeMap<String, Client> = BTreeMap::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let urls = targets.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let url = urls[seq as usize % urls.len()].clone();
        if !clients.contains_key(&url) {
            let options = ConnectOptions::new()
                .with_timeout(Duration::from_secs(3))
                .with_connect_timeout(Duration::from_secs(1));
            let connecting = Client::connect([url.as_str()], Some(options));
            if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(2), connecting).await {
                clients.insert(url.clone(), c);
            }
        }
        let key = format!("pitr/{seq:07}");
        let value = format!("v{seq}-{}", "x".repeat((seq % 7) as usize));
        let answer = match clients.get_mut(&url) {
            Some(c) => {
                tokio::time::timeout(Duration::from_secs(3), c.put(key.as_str(), value.as_str(), None))
                    .await
                    .ok()
                    .and_then(|r| r.ok())
            }
            None => None,
        };
        match answer.and_then(|r| r.header().map(|h| h.revision())) {
            Some(revision) => {
                acked.lock().unwrap_or_else(|p| p.into_inner()).push((key, value, revision));
            }
            None => {
                clients.remove(&url);
            }
        }
        seq += 1;
        // Pacing of the writer, not a wait for readiness.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A snapshot's chain as the store holds it.
#[derive(Debug)]
struct StoredChain {
    snapshot: String,
    chain_from: i64,
    /// The last revision the segments cover (`chain_from` with none).
    last: i64,
    segments: usize,
    /// Revisions in the largest segment.
    largest: usize,
    /// Every recorded change by revision: (op, key, value, lease).
    changes: BTreeMap<i64, Vec<(String, String, String, i64)>>,
    /// The leases the segments name, with their recorded TTLs.
    leases: BTreeMap<i64, i64>,
}

fn b64(v: &Value) -> String {
    let text = v.as_str().unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The manifests in store directory `dir`, newest first.
fn manifests(dir: &Path) -> Vec<Value> {
    let mut out: Vec<Value> = std::fs::read_dir(dir)
        .map(|d| d.flatten().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".manifest.json"))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse((m["unix_time"].as_u64(), m["revision"].as_i64())));
    out
}

/// A segment's object name, as the sidecar writes it: `r<FIRST>-r<LAST>-t<MS>.json`.
fn segment_range(name: &str) -> Option<(i64, i64)> {
    let rest = name.strip_suffix(".json")?;
    let mut parts = rest.split('-');
    let first = parts.next()?.strip_prefix('r')?.parse().ok()?;
    let last = parts.next()?.strip_prefix('r')?.parse().ok()?;
    parts.next()?.strip_prefix('t')?.parse::<u64>().ok()?;
    parts.next().is_none().then_some((first, last))
}

/// The chain of the newest snapshot in `dir`, checked: segments one after the other from
/// `chain_from + 1` (no gap, no overlap, no duplicate), each holding what its name says. Err while
/// there is no snapshot, or a segment is being written (s3s-fs writes in place).
fn newest_chain(dir: &Path) -> Result<StoredChain, String> {
    let newest = manifests(dir).into_iter().next().ok_or("no snapshot yet")?;
    let snapshot = newest["name"].as_str().ok_or("manifest without a name")?.to_string();
    let chain_from = newest["chain_from"].as_i64().ok_or("manifest without chain_from")?;
    let folder = dir.join(format!("{snapshot}.deltas"));
    let mut named: Vec<(i64, i64, PathBuf)> = std::fs::read_dir(&folder)
        .map(|d| d.flatten().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| {
            let (first, last) = segment_range(&e.file_name().to_string_lossy())?;
            Some((first, last, e.path()))
        })
        .collect();
    named.sort();
    let mut next = chain_from + 1;
    let mut changes = BTreeMap::new();
    let mut leases = BTreeMap::new();
    let mut largest = 0;
    for (first, last, path) in &named {
        if *first != next {
            panic!(
                "the chain of {snapshot} is not contiguous: expected a segment from {next}, found {}",
                path.display()
            );
        }
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let seg: Value =
            serde_json::from_slice(&text).map_err(|e| format!("{} (being written?): {e}", path.display()))?;
        assert_eq!(
            (seg["first"].as_i64(), seg["last"].as_i64()),
            (Some(*first), Some(*last)),
            "{}",
            path.display()
        );
        assert_eq!(seg["snapshot"].as_str(), Some(snapshot.as_str()), "{}", path.display());
        let revisions = seg["revisions"].as_array().ok_or("no revisions")?;
        largest = largest.max(revisions.len());
        for (id, ttl) in seg["leases"].as_object().into_iter().flatten() {
            leases.insert(
                id.parse::<i64>().map_err(|e| format!("lease {id}: {e}"))?,
                ttl.as_i64().unwrap_or(-1),
            );
        }
        let mut previous = first - 1;
        for r in revisions {
            let revision = r["revision"].as_i64().ok_or("no revision")?;
            assert!(
                revision > previous && revision <= *last,
                "{}: revision {revision} out of order",
                path.display()
            );
            assert!(
                r["unix_ms"].as_u64().is_some_and(|ms| ms > 1_700_000_000_000),
                "{}: no time",
                path.display()
            );
            previous = revision;
            let list: Vec<(String, String, String, i64)> = r["changes"]
                .as_array()
                .ok_or("no changes")?
                .iter()
                .map(|c| {
                    let op = c["op"].as_str().unwrap_or_default().to_string();
                    (op, b64(&c["key"]), b64(&c["value"]), c["lease"].as_i64().unwrap_or(0))
                })
                .collect();
            changes.insert(revision, list);
        }
        assert_eq!(previous, *last, "{}: its last revision is its name's", path.display());
        next = last + 1;
    }
    Ok(StoredChain { snapshot, chain_from, last: next - 1, segments: named.len(), largest, changes, leases })
}

/// Poll until the newest chain reaches every write acknowledged by now, then check it holds each
/// acknowledged write after its start with its key, value and revision. Returns the chain.
async fn chain_holds_acked(dir: &Path, writer: &RevWriter, set: &Set) -> StoredChain {
    let acked = writer.acked();
    let target = acked.iter().map(|a| a.2).max().expect("writes acknowledged");
    let deadline = Instant::now() + CATCH_UP;
    let chain = loop {
        match newest_chain(dir) {
            Ok(c) if c.last >= target => break c,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "the chain did not reach revision {target} in {CATCH_UP:?}: {:?}\n{}",
                    other.map(|c| (c.snapshot, c.chain_from, c.last, c.segments)),
                    set.logs(&[0, 1, 2])
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let mut checked = 0;
    for (key, value, revision) in acked.iter().filter(|a| a.2 > chain.chain_from) {
        let at = chain.changes.get(revision).unwrap_or_else(|| {
            panic!("{key} (revision {revision}) is not in the chain of {}", chain.snapshot)
        });
        assert!(
            at.iter().any(|(op, k, v, _)| op == "put" && k == key && v == value),
            "revision {revision} holds {at:?}, not the put of {key}={value}"
        );
        checked += 1;
    }
    eprintln!(
        "chain of {}: from {} to {} in {} segments; {checked} acknowledged writes found in it",
        chain.snapshot, chain.chain_from, chain.last, chain.segments
    );
    chain
}

/// Wait until the writer has `n` more acknowledged writes.
async fn more_acks(writer: &RevWriter, n: usize) {
    let want = writer.acked().len() + n;
    let deadline = Instant::now() + Duration::from_secs(60);
    while writer.acked().len() < want {
        assert!(
            Instant::now() < deadline,
            "the writer gets no write through: {} of {want}",
            writer.acked().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The pods' leader, asked until one answers.
async fn leader(set: &Set) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for via in 0..3 {
            if let Some(o) = set.leader_ordinal(via).await {
                return o;
            }
        }
        assert!(Instant::now() < deadline, "no leader\n{}", set.logs(&[0, 1, 2]));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn delta_env(url: &str) -> Vec<(String, String)> {
    vec![
        ("ETCD_BOOTSTRAP_BACKUP_TO".into(), url.into()),
        ("ETCD_BOOTSTRAP_BACKUP_INTERVAL".into(), "1h".into()),
        ("ETCD_BOOTSTRAP_BACKUP_KEEP".into(), "3".into()),
        ("ETCD_BOOTSTRAP_BACKUP_DELTA_INTERVAL".into(), DELTA.into()),
    ]
}

/// Which store a case writes to.
#[derive(Clone, Copy)]
enum Kind {
    Dir,
    S3,
}

async fn deltas_case(bed: &str, etcd: PathBuf, kind: Kind, test: &str) {
    let s3_bin = match kind {
        Kind::S3 => match prereq::need_s3_server(test) {
            Some(bin) => Some(bin),
            None => return,
        },
        Kind::Dir => None,
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let home = scratch.path();
    let set = Set::new(bed, etcd).await;
    let (env, dir, mut s3) = match (kind, s3_bin) {
        (Kind::S3, Some(bin)) => {
            let s3 = S3Server::start_on(&bin, &home.join("s3"), &[BUCKET], set.bed.gateway());
            let mut env = delta_env(&format!("s3://{BUCKET}/etcd/prod"));
            env.extend(s3.client_env());
            let dir = s3.root.join(BUCKET).join("etcd/prod");
            (env, dir, Some(s3))
        }
        _ => {
            let dir = home.join("backups");
            std::fs::create_dir_all(&dir).expect("the directory store");
            (delta_env(&format!("file://{}", dir.display())), dir, None)
        }
    };
    *set.sidecar_env.lock().unwrap_or_else(|p| p.into_inner()) = env;
    for o in 0..3 {
        set.start(o, false).await;
    }
    set.healthy(&[0, 1, 2]).await;
    let writer = RevWriter::start((0..3).map(|o| set.bed.client_url(o)).collect());
    more_acks(&writer, 50).await;

    // Under the writer: one chain from the first snapshot, holding every acknowledged write.
    let first = chain_holds_acked(&dir, &writer, &set).await;
    assert_eq!(manifests(&dir).len(), 1, "one full snapshot: the interval is an hour");

    // A put with a lease: the chain holds it with its lease, and the TTL the lease was granted.
    let mut c = client(&set.bed, &[0, 1, 2]).await.expect("connect");
    let lease = c.lease_grant(600, None).await.expect("lease grant").id();
    let put = c
        .put("lease/held", "by-a-lease", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put with a lease");
    let lease_revision = put.header().map(|h| h.revision()).expect("header");
    more_acks(&writer, 10).await;
    let with_lease = chain_holds_acked(&dir, &writer, &set).await;
    let at = with_lease.changes.get(&lease_revision).expect("the leased put is in the chain");
    assert_eq!(
        at.as_slice(),
        [("put".to_string(), "lease/held".to_string(), "by-a-lease".to_string(), lease)],
        "revision {lease_revision}"
    );
    assert_eq!(with_lease.leases.get(&lease), Some(&600), "the granted TTL: {:?}", with_lease.leases);

    // The leader dies twice with its sidecar; the chain goes on from the store.
    for round in 0..2 {
        let l = leader(&set).await;
        eprintln!("round {round}: killing the leader etcd-{l} and its sidecar");
        set.crash(l).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let others: Vec<u32> = (0..3).filter(|o| *o != l).collect();
            let mut new_leader = None;
            for via in &others {
                new_leader = new_leader.or(set.leader_ordinal(*via).await.filter(|n| *n != l));
            }
            if new_leader.is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "no new leader after killing etcd-{l}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        chain_holds_acked(&dir, &writer, &set).await;
        set.start(l, false).await;
        set.healthy(&[0, 1, 2]).await;
        writer.set_targets((0..3).map(|o| set.bed.client_url(o)).collect());
        more_acks(&writer, 50).await;
    }
    let after_kills = chain_holds_acked(&dir, &writer, &set).await;
    assert_eq!(after_kills.snapshot, first.snapshot, "the same chain, continued");
    assert!(after_kills.segments > first.segments, "{after_kills:?}");
    assert_eq!(manifests(&dir).len(), 1, "no extra full snapshot for a leader change");

    // The delta metrics, on the leader's sidecar.
    let l = leader(&set).await;
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let m = set.scrape(l).await.unwrap_or_default();
        let revision = m.get("etcd_bootstrap_backup_delta_revision").copied().unwrap_or(0.0);
        let segments = m.get("etcd_bootstrap_backup_delta_segments_total").copied().unwrap_or(0.0);
        let lag = m.get("etcd_bootstrap_backup_delta_lag_revisions").copied();
        if revision > first.chain_from as f64 && segments >= 1.0 && lag.is_some() {
            assert!(m.contains_key("etcd_bootstrap_backup_delta_upload_failures_total"), "{m:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no delta metrics on etcd-{l}'s sidecar: {m:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The store goes away for a while (S3 server stopped): the watch goes on, the failures are
    // counted, /healthz stays fine, and once the store is back one larger segment holds what
    // came meanwhile, the chain still whole.
    if let Some(s3) = s3.as_mut() {
        let l = leader(&set).await;
        let failures = |m: &BTreeMap<String, f64>| {
            m.get("etcd_bootstrap_backup_delta_upload_failures_total").copied().unwrap_or(0.0)
        };
        let before = failures(&set.scrape(l).await.unwrap_or_default());
        s3.stop();
        let acked_before = writer.acked().len();
        let deadline = Instant::now() + CATCH_UP;
        while failures(&set.scrape(l).await.unwrap_or_default()) <= before {
            assert!(Instant::now() < deadline, "no delta upload failure counted with the store gone");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        more_acks(&writer, 60).await;
        let healthz = set.get(l, "/healthz").await.map(|r| r.0);
        assert_eq!(healthz, Some(200), "a store away does not fail /healthz\n{}", set.sidecar_logs(l));
        let during = writer.acked().len() - acked_before;
        s3.restart();
        let back = chain_holds_acked(&dir, &writer, &set).await;
        assert!(
            back.largest >= during,
            "one segment holds the {during} writes made while the store was away: {back:?}"
        );
        assert!(
            set.sidecar_logs(l).contains("delta segment upload failed")
                || set.sidecar_logs(l).contains("trying again"),
            "{}",
            set.sidecar_logs(l)
        );
    }

    // A compaction past the watch: the sidecars are down while the writer goes on and the history
    // is compacted; back, they take a full snapshot at once and record its chain.
    for o in 0..3 {
        set.kill_sidecar(o);
    }
    more_acks(&writer, 20).await;
    let mut c = client(&set.bed, &[0, 1, 2]).await.expect("connect");
    let revision = c.status().await.expect("status").header().map(|h| h.revision()).expect("header");
    c.compact(revision, None).await.expect("compact");
    for o in 0..3 {
        set.start_sidecar(o);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let renewed = loop {
        let newest = manifests(&dir).into_iter().next().expect("a snapshot");
        if newest["chain_from"].as_i64().is_some_and(|from| from >= revision) {
            break newest;
        }
        assert!(
            Instant::now() < deadline,
            "no new full snapshot after a compaction at {revision} passed the watch\n{}",
            set.logs(&[0, 1, 2])
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        set.log_count(&[0, 1, 2], "asking for a full snapshot now") >= 1,
        "the sidecar says why\n{}",
        set.logs(&[0, 1, 2])
    );
    more_acks(&writer, 50).await;
    let next = chain_holds_acked(&dir, &writer, &set).await;
    assert_eq!(
        Some(next.snapshot.as_str()),
        renewed["name"].as_str(),
        "the new snapshot's chain is recorded"
    );
    let acked = writer.stop().await;
    eprintln!("writer: {} puts acknowledged", acked.len());
    assert_eq!(
        set.log_count(&[0, 1, 2], "the delta watch ended"),
        0,
        "the watch (with its progress requests) ran without a break\n{}",
        set.logs(&[0, 1, 2])
    );
    for o in 0..3 {
        assert!(
            !set.sidecar_logs(o).contains(crate::s3_server::SECRET_KEY),
            "etcd-{o}'s sidecar printed the secret"
        );
    }
}

async fn to_a_directory(bed: &str, etcd: PathBuf) {
    deltas_case(bed, etcd, Kind::Dir, bed).await;
}

async fn to_s3(bed: &str, etcd: PathBuf) {
    deltas_case(bed, etcd, Kind::S3, bed).await;
}

on_each_etcd!(to_a_directory, "deltas-f", crate::membership::setup34;
    deltas_chain_in_a_directory_holds_every_acked_write, deltas_chain_in_a_directory_holds_every_acked_write_34,
    deltas_chain_in_a_directory_holds_every_acked_write_3530);

on_each_etcd!(to_s3, "deltas-s", crate::membership::setup34;
    deltas_chain_in_s3_holds_every_acked_write, deltas_chain_in_s3_holds_every_acked_write_34,
    deltas_chain_in_s3_holds_every_acked_write_3530);
