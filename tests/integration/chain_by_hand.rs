//! A chain of delta segments written by hand from a real watch, in the format the README
//! documents ("Point-in-time restore"): the restore tests and the benchmark use it to give
//! `--restore-from` a chain independent of the sidecar that usually records one.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use etcd_client::{EventType, WatchStream};
use sha2::{Digest, Sha256};

/// A change of one key: the key, and `Some((value, lease))` for a put, `None` for a delete.
pub type SeenChange = (Vec<u8>, Option<(Vec<u8>, i64)>);

/// One revision as the watch delivered it, and when it was acknowledged.
pub struct SeenRevision {
    pub revision: i64,
    pub unix_ms: u64,
    pub changes: Vec<SeenChange>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The segment format, written from its documentation: compact JSON, the fields in this order,
/// keys and values in base64, `sha256` over the `revisions` array as written.
pub fn segment_json(snapshot: &str, first: i64, revisions: &[SeenRevision], leases: &[(i64, i64)]) -> String {
    let revs: Vec<String> = revisions
        .iter()
        .map(|r| {
            let changes: Vec<String> = r
                .changes
                .iter()
                .map(|(key, put)| match put {
                    Some((value, 0)) => {
                        format!(r#"{{"op":"put","key":"{}","value":"{}"}}"#, b64(key), b64(value))
                    }
                    Some((value, lease)) => format!(
                        r#"{{"op":"put","key":"{}","value":"{}","lease":{lease}}}"#,
                        b64(key),
                        b64(value)
                    ),
                    None => format!(r#"{{"op":"delete","key":"{}"}}"#, b64(key)),
                })
                .collect();
            format!(
                r#"{{"revision":{},"unix_ms":{},"changes":[{}]}}"#,
                r.revision,
                r.unix_ms,
                changes.join(",")
            )
        })
        .collect();
    let revisions_json = format!("[{}]", revs.join(","));
    let sha: String = Sha256::digest(revisions_json.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let leases: Vec<String> = leases.iter().map(|(id, ttl)| format!(r#""{id}":{ttl}"#)).collect();
    let last = revisions.last().map(|r| r.revision).unwrap_or(first);
    format!(
        r#"{{"format":1,"snapshot":"{snapshot}","first":{first},"last":{last},"leases":{{{}}},"revisions":{revisions_json},"sha256":"{sha}"}}"#,
        leases.join(",")
    )
}

/// Write the chain of `snapshot_name` (from `chain_from + 1`) into the directory store
/// `store_dir`: `parts` segments of about equal size.
pub fn write_chain(
    store_dir: &Path,
    snapshot_name: &str,
    chain_from: i64,
    revisions: &[SeenRevision],
    leases: &[(i64, i64)],
    parts: usize,
) -> std::io::Result<()> {
    let folder = store_dir.join(format!("{snapshot_name}.deltas"));
    std::fs::create_dir_all(&folder)?;
    let per = revisions.len().div_ceil(parts.max(1)).max(1);
    let mut first = chain_from + 1;
    for chunk in revisions.chunks(per) {
        let Some(last) = chunk.last() else { continue };
        let json = segment_json(snapshot_name, first, chunk, leases);
        let name = format!("r{:019}-r{:019}-t{:013}.json", first, last.revision, last.unix_ms);
        std::fs::write(folder.join(name), json)?;
        first = last.revision + 1;
    }
    Ok(())
}

/// Read `watch` until it delivered revision `last`, each revision stamped with its time in
/// `acked_at` (the time it was acknowledged: what a recorder beside the leader sees, give or take
/// its watch's latency).
pub async fn record(
    watch: &mut WatchStream,
    last: i64,
    acked_at: &BTreeMap<i64, u64>,
    within: Duration,
) -> Result<Vec<SeenRevision>, String> {
    let mut revisions: Vec<SeenRevision> = Vec::new();
    let deadline = Instant::now() + within;
    while revisions.last().map(|r| r.revision) != Some(last) {
        if Instant::now() >= deadline {
            return Err(format!("the watch did not reach revision {last} within {within:?}"));
        }
        let Ok(Ok(Some(message))) = tokio::time::timeout(Duration::from_secs(5), watch.message()).await
        else {
            continue;
        };
        for event in message.events() {
            let Some(kv) = event.kv() else { continue };
            let change = match event.event_type() {
                EventType::Put => (kv.key().to_vec(), Some((kv.value().to_vec(), kv.lease()))),
                EventType::Delete => (kv.key().to_vec(), None),
            };
            match revisions.last_mut() {
                Some(r) if r.revision == kv.mod_revision() => r.changes.push(change),
                _ => {
                    let Some(unix_ms) = acked_at.get(&kv.mod_revision()).copied() else {
                        return Err(format!("revision {} was not acknowledged", kv.mod_revision()));
                    };
                    revisions.push(SeenRevision {
                        revision: kv.mod_revision(),
                        unix_ms,
                        changes: vec![change],
                    });
                }
            }
        }
    }
    Ok(revisions)
}
