//! Point-in-time restore to healthy (issue 21): the restore benchmark's snapshot (110 values of
//! 1 MB) followed by [`CHANGES`] changes, against a by-hand `etcdutl snapshot restore` of the same
//! data.
//!
//! After the snapshot, [`CHANGES`] puts of small values to [`KEYS_CHANGED`] keys are made and
//! recorded from a real watch as a chain of delta segments beside the snapshot (the format the
//! README documents; `tests/integration/chain_by_hand.rs` writes it), and a second snapshot holds
//! the same final data. **By hand** (the floor) restores that second snapshot in each pod with
//! `etcdutl snapshot restore` and execs etcd; **etcd-bootstrap** gets `--restore-from` with the
//! first snapshot and replays its chain (the same etcdutl restore of the first snapshot, then
//! the changes appended to the restored member's raft log). Both must serve every key of both prefixes on every member.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::WatchOptions;

use crate::chain_by_hand;
use crate::pods::{Tools, Who};
use crate::restore::{self, SIZE};
use crate::results::Results;

/// Changes in the chain ...
pub const CHANGES: usize = 10_000;
/// ... to this many keys (so some are overwritten).
pub const KEYS_CHANGED: usize = 5_000;
const PREFIX: &str = "bench/pitr/";
/// Segments the chain is cut into (the sidecar cuts one every `--backup-delta-interval`).
const SEGMENTS: usize = 20;

pub async fn run(t: &Tools, runs: usize, r: &mut Results) {
    let store = std::env::temp_dir().join(format!("ebt-bench-pitr-{}", std::process::id()));
    let made = make_chain(t, &store).await;
    let (first, last) = match made {
        Ok(pair) => pair,
        Err(e) => {
            for who in [Who::Floor, Who::Bootstrap] {
                r.fail(&format!("pitr.{SIZE}.{}", who.key()), format!("making the chain: {e}"));
            }
            let _ = std::fs::remove_dir_all(&store);
            return;
        }
    };
    r.add("pitr.db_mb", first.bytes as f64 / 1e6);
    r.add("pitr.changes", CHANGES as f64);
    eprintln!("pitr: snapshot {} + {CHANGES} changes; the floor restores {}", first.url, last.url);
    let expect = [(restore::PREFIX, restore::KEYS), (PREFIX, KEYS_CHANGED)];
    // The bumped floor says how much of the gap is the restore's --bump-revision/--mark-compacted
    // (where the etcd's etcdutl has them) rather than the replay.
    let bumped = etcdutl_bumps(t);
    restore::measure(t, runs, &first.url, &last.db, &expect, "pitr", bumped, r).await;
    let _ = std::fs::remove_dir_all(&store);
}

/// Whether the etcdutl beside the benchmark's etcd has `--bump-revision` and `--mark-compacted`.
fn etcdutl_bumps(t: &Tools) -> bool {
    let help = std::process::Command::new(t.etcd.with_file_name("etcdutl"))
        .args(["snapshot", "restore", "--help"])
        .output()
        .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
        .unwrap_or_default();
    help.contains("--bump-revision") && help.contains("--mark-compacted")
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// The snapshot with its chain of [`CHANGES`] changes, and a snapshot of the same final data.
async fn make_chain(t: &Tools, store: &Path) -> Result<(restore::Snapshot, restore::Snapshot), String> {
    let (_bed, mut c, ip) = restore::fill_source(t, "bench-pitr-source").await?;
    let first = restore::backup(t, store, &ip.to_string())?;
    let name = first.url.rsplit('/').next().unwrap_or_default().to_string();
    let manifest_path = store.join(format!("{name}.manifest.json"));
    let manifest: serde_json::Value = std::fs::read(&manifest_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| format!("cannot read {}", manifest_path.display()))?;
    let chain_from = manifest["chain_from"].as_i64().ok_or("the manifest has no chain_from")?;
    let mut watch = c
        .watch("", Some(WatchOptions::new().with_all_keys().with_start_revision(chain_from + 1)))
        .await
        .map_err(|e| format!("watch: {e}"))?;
    let mut acked_at = BTreeMap::new();
    let mut last = chain_from;
    for i in 0..CHANGES {
        let put = c
            .put(format!("{PREFIX}{:05}", i % KEYS_CHANGED), format!("value {i} {}", "x".repeat(80)), None)
            .await
            .map_err(|e| format!("put: {e}"))?;
        last = put.header().map(|h| h.revision()).unwrap_or(last);
        let previous = acked_at.values().next_back().copied().unwrap_or(0);
        acked_at.insert(last, now_ms().max(previous + 1));
    }
    let revisions = chain_by_hand::record(&mut watch, last, &acked_at, Duration::from_secs(120)).await?;
    chain_by_hand::write_chain(store, &name, chain_from, &revisions, &[], SEGMENTS)
        .map_err(|e| format!("write the chain: {e}"))?;
    let final_snapshot = restore::backup(t, &store.join("final"), &ip.to_string())?;
    Ok((first, final_snapshot))
}

// ----- the recovery point ---------------------------------------------------------------------

/// The delta intervals measured.
pub const DELTAS: [u64; 2] = [2, 10];
/// Samples of the recovery point per delta interval.
const RPO_SAMPLES: usize = 12;
/// A put every this long, each acknowledged with its revision and time.
const WRITE_EVERY: Duration = Duration::from_millis(20);

/// The recovery point with the sidecars recording every `D`: a 3-member set under a steady
/// writer, its store read at moments spread over the interval. What the store holds at an
/// instant is exactly what a loss of every pod and volume at that instant leaves; the recovery
/// point is the time from that instant back to the newest acknowledged write the chain holds.
/// Also the leader's sidecar's CPU (seconds per hour) and peak RSS while recording.
pub async fn rpo(t: &Tools, r: &mut Results) {
    for d in DELTAS {
        if let Err(e) = rpo_for(t, d, r).await {
            r.fail(&format!("rpo.{d}s"), e);
        }
    }
}

async fn rpo_for(t: &Tools, d: u64, r: &mut Results) -> Result<(), String> {
    use crate::bed::Bed;
    use crate::pods::{self, Sidecars};
    let store = std::env::temp_dir().join(format!("ebt-bench-rpo-{d}-{}", std::process::id()));
    std::fs::create_dir_all(&store).map_err(|e| format!("{}: {e}", store.display()))?;
    let bed = Bed::new(&format!("bench-rpo-{d}")).await;
    let mut sidecars = Sidecars::default();
    let args: Vec<String> = [
        "--backup-to",
        &format!("file://{}", store.display()),
        "--backup-interval",
        "1h",
        "--backup-delta-interval",
        &format!("{d}s"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for o in 0..3 {
        bed.start_pod(o, pods::bootstrap_spec(&bed, t, o, false)).await;
        sidecars.start_with(&bed, t, o, &args).await?;
    }
    let targets = pods::targets(&bed, 0..3);
    crate::probe::wait_healthy(&targets, Duration::from_secs(60))
        .await
        .map_err(|e| format!("forming: {e}"))?;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(i64, u64)>::new()));
    let writer = {
        let acked = acked.clone();
        let ips: Vec<String> = pods::ips(&bed, 0..3).iter().map(|ip| format!("http://{ip}:2379")).collect();
        tokio::spawn(async move {
            let Ok(mut c) = etcd_client::Client::connect(ips, None).await else { return };
            for seq in 0u64.. {
                if let Ok(Ok(put)) = tokio::time::timeout(
                    Duration::from_secs(2),
                    c.put(format!("bench/rpo/{seq:08}"), "x".repeat(100), None),
                )
                .await
                {
                    if let Some(h) = put.header() {
                        acked.lock().unwrap_or_else(|p| p.into_inner()).push((h.revision(), now_ms()));
                    }
                }
                tokio::time::sleep(WRITE_EVERY).await;
            }
        })
    };
    // The first full snapshot and a segment after it.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while chain_reach(&store).is_none() {
        if std::time::Instant::now() > deadline {
            writer.abort();
            return Err(format!("no delta segment within 120 s\n{}", pods::tails(&bed, 0..3, &sidecars)));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cpu_before: Vec<Option<f64>> = (0..3).map(|o| sidecars.cpu_secs(o)).collect();
    let started = std::time::Instant::now();
    for k in 0..RPO_SAMPLES {
        // Moments spread over the interval: a whole interval plus a fraction that walks it.
        let wait = Duration::from_millis(
            d * 1000 + (d * 1000 * (k as u64 * 7 % RPO_SAMPLES as u64)) / RPO_SAMPLES as u64,
        );
        tokio::time::sleep(wait).await;
        let lost_at = now_ms();
        let Some(reach) = chain_reach(&store) else { continue };
        let newest_kept = acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(revision, _)| *revision <= reach)
            .map(|(_, at)| *at)
            .max();
        if let Some(at) = newest_kept {
            r.add(&format!("rpo.{d}s"), lost_at.saturating_sub(at) as f64 / 1000.0);
        }
    }
    writer.abort();
    let elapsed = started.elapsed().as_secs_f64();
    // The leader's sidecar records: the largest CPU use of the three, and its peak memory.
    let mut cpu = 0.0f64;
    let mut hwm = 0u64;
    for o in 0..3 {
        if let (Some(b), Some(a)) = (cpu_before[o as usize], sidecars.cpu_secs(o)) {
            cpu = cpu.max((a - b) / elapsed * 3600.0);
        }
        if let Some((_, peak)) = sidecars.memory_kib(o) {
            hwm = hwm.max(peak);
        }
    }
    r.add(&format!("rpo.{d}s.cpu_per_hour"), cpu);
    r.add(&format!("rpo.{d}s.peak_rss_mib"), hwm as f64 / 1024.0);
    pods::keep_logs(&bed);
    let _ = std::fs::remove_dir_all(&store);
    Ok(())
}

/// The newest revision the chain of the newest snapshot in the directory store reaches, as its
/// segments' names say (None before its first segment).
fn chain_reach(store: &Path) -> Option<i64> {
    let mut manifests: Vec<String> = std::fs::read_dir(store)
        .ok()?
        .flatten()
        .filter_map(|e| {
            e.file_name().to_str().and_then(|n| n.strip_suffix(".manifest.json")).map(str::to_string)
        })
        .collect();
    manifests.sort();
    let newest = manifests.last()?;
    std::fs::read_dir(store.join(format!("{newest}.deltas")))
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.split('-').nth(1)?.strip_prefix('r')?.parse::<i64>().ok()
        })
        .max()
}
