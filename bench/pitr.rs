//! Point-in-time restore to healthy (issue 21): the restore benchmark's snapshot (110 values of
//! 1 MB) followed by [`CHANGES`] changes, against a by-hand `etcdutl snapshot restore` of the same
//! data.
//!
//! After the snapshot, [`CHANGES`] puts of small values to [`KEYS_CHANGED`] keys are made and
//! recorded from a real watch as a chain of delta segments beside the snapshot (the format the
//! README documents; `tests/integration/chain_by_hand.rs` writes it), and a second snapshot holds
//! the same final data. **By hand** (the floor) restores that second snapshot in each pod with
//! `etcdutl snapshot restore` and execs etcd; **etcd-bootstrap** gets `--restore-from` with the
//! first snapshot and replays its chain (a private etcd in the work dir, then the same etcdutl
//! restore of the result). Both must serve every key of both prefixes on every member.

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
    restore::measure(t, runs, &first.url, &last.db, &expect, "pitr", r).await;
    let _ = std::fs::remove_dir_all(&store);
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
