//! Replaying a snapshot's delta segments (point-in-time restore), at the edge. The snapshot is
//! restored as a one-member cluster in the restore's work dir, a private etcd (this pod's own
//! binary, on loopback ports, its own flags and no inherited `ETCD_*` variable) serves it, every
//! change of the chain up to the point is applied in transactions (the pure [`segment::batches`]),
//! and once it stopped, its database comes back: the caller restores that one as the initial
//! cluster, exactly as a plain snapshot (without the hash check: a database file has no trailer). Everything lives in the work dir, so a crash at any step leaves
//! only the work dir, which the next start discards and redoes; the private etcd ends with its
//! `Child` (and with the pod's PID 1).
//!
//! Leases: a lease the snapshot holds stays, and a lease a replayed key names is granted again with
//! its ID and the TTL the chain recorded. While the replay runs, every lease is kept alive (etcd
//! gives the snapshot's leases their TTL plus an election timeout when the private member leads,
//! and the replay starts keeping them alive within a second of that), so the private etcd expires
//! none of them and deletes no key the source did not delete. etcd's election timeout stays its
//! default: a longer one makes a restored one-member cluster wait that long before it serves.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use etcd_client::{Client, LeaseGrantOptions, PutOptions, Txn, TxnOp};
use tracing::info;

use crate::backup::restore::{run_tool, tool_args, RestoreTarget, RestoreTool};
use crate::backup::segment::{self, Change, SegmentName, Target};
use crate::backup::store::Store;
use crate::backup::take;
use crate::error::{Error, Result};
use crate::observe::cluster::{self, Access, Endpoint};

/// Transactions of at most this many keys ...
const MAX_TXN_OPS: usize = 10_000;
/// ... and about this many bytes of keys and values (the private etcd takes requests of up to
/// [`MAX_REQUEST_BYTES`]).
const MAX_TXN_BYTES: usize = 8 << 20;
const MAX_REQUEST_BYTES: usize = 64 << 20;
/// How long the private etcd may take to serve.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Deadline of each call to it.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often every lease is kept alive during the replay.
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(1);

/// What to replay: the segments of `snapshot` (in chain order) and the last revision to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replay {
    pub snapshot: String,
    pub segments: Vec<SegmentName>,
    pub to_revision: i64,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replayed {
    /// The replayed database (the private etcd's, after it stopped), in the work dir: restore it
    /// with `--skip-hash-check`.
    pub file: PathBuf,
    /// The revision the snapshot held when restored.
    pub from_revision: i64,
    /// The last revision applied (`from_revision` when none was).
    pub to_revision: i64,
    pub changes: usize,
}

/// Replay `replay` from `store` onto `snapshot_file` (checked already) inside `work`, with `etcd`
/// (this pod's etcd binary) and `tool` (its restore tool).
pub(crate) async fn replay(
    store: &Store,
    replay: &Replay,
    snapshot_file: &Path,
    etcd: &Path,
    tool: &RestoreTool,
    work: &Path,
) -> Result<Replayed> {
    let scratch = work.join("replay");
    let data = scratch.join("data");
    std::fs::create_dir_all(&scratch).map_err(|e| Error::io(&scratch, e))?;
    let [client_port, peer_port] = free_ports()?;
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let client_url = format!("http://127.0.0.1:{client_port}");
    // The scratch restore keeps the snapshot's revision: the replay continues from it.
    let plain = RestoreTool { bumps_revision: false, ..tool.clone() };
    let scratch_target = RestoreTarget {
        name: "replay".into(),
        peer_url: peer_url.clone(),
        initial_cluster: vec![("replay".into(), peer_url.clone())],
        token: "etcd-bootstrap-replay".into(),
    };
    let args = tool_args(&plain, &scratch_target, snapshot_file, &data, false);
    run_tool(&plain, &args, &replay.snapshot, "could not be restored for the replay").await?;
    crate::crash::point("after-replay-scratch-restore");

    let args = etcd_args(&data, &client_url, &peer_url, no_fsync_flag(etcd).await);
    let log_path = scratch.join("etcd.log");
    let log = std::fs::File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
    let log_err = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
    let mut child = tokio::process::Command::new(etcd)
        .args(&args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io(etcd, e))?;
    info!(etcd = %etcd.display(), client = %client_url, "replaying the delta segments of {} with a private etcd", replay.snapshot);
    let applied = apply(store, replay, tool, &client_url, &mut child, &log_path).await;
    let stopped = stop(&mut child).await;
    let mut done = applied?;
    // etcd commits its database when it stops: the file is then a consistent copy of the replayed
    // data, restored like a snapshot (without etcd's trailing checksum, which only a snapshot
    // taken through the API has). Not streaming a second snapshot out of the private etcd saves a
    // copy of the whole database.
    if !stopped {
        return Err(Error::Runtime(format!(
            "replay: the private etcd did not stop within {}; the restore is redone at the next start",
            crate::duration::format(STOP_TIMEOUT)
        )));
    }
    let file = work.join("replayed.db");
    let db = data.join("member").join("snap").join("db");
    std::fs::rename(&db, &file).map_err(|e| Error::io(&db, e))?;
    crate::crash::point("after-replay-snapshot");
    info!(
        from_revision = done.from_revision,
        to_revision = done.to_revision,
        changes = done.changes,
        "delta segments replayed"
    );
    done.file = file;
    Ok(done)
}

async fn apply(
    store: &Store,
    replay: &Replay,
    tool: &RestoreTool,
    client_url: &str,
    child: &mut tokio::process::Child,
    log_path: &Path,
) -> Result<Replayed> {
    let fail = |problem: String| Error::Snapshot {
        snapshot: store.url().snapshot(&replay.snapshot).to_string(),
        problem,
    };
    let endpoint = Endpoint { host: "127.0.0.1".into(), url: client_url.to_string() };
    let mut client = ready(&endpoint, child, log_path).await.map_err(|m| fail(format!("replay: {m}")))?;
    let status = within("status", client.status()).await.map_err(&fail)?;
    let from_revision = status.header().map(|h| h.revision()).unwrap_or_default();
    let target = Target::Revision(replay.to_revision);
    if replay.to_revision < from_revision {
        return Err(Error::config(format!(
            "the snapshot {} already holds revision {from_revision}, past the point {} asked: restore from an older snapshot",
            store.url().snapshot(&replay.snapshot),
            replay.to_revision
        )));
    }
    let leases = within("lease list", client.leases()).await.map_err(&fail)?;
    let mut alive: BTreeSet<i64> = leases.leases().iter().map(|l| l.id()).collect();
    let keeper = KeepAlive::start(client.clone(), alive.iter().copied().collect());
    let mut applied = from_revision;
    let mut changes = 0usize;
    // Revisions merge into larger transactions only where the restore tool moves the revision
    // past the snapshot's anyway (the replay's own revisions then matter to nobody). Otherwise
    // one transaction per revision, so the restored revision ends exactly where the source's did.
    let one_per_revision = !tool.bumps_revision;
    for name in &replay.segments {
        let segment = store.segment(&replay.snapshot, name).await?;
        for (id, ttl) in &segment.leases {
            if alive.insert(*id) {
                // A TTL the chain could not learn (the lease was gone): etcd's smallest; its keys'
                // deletion follows in the chain.
                let ttl = (*ttl).max(1);
                within("lease grant", client.lease_grant(ttl, Some(LeaseGrantOptions::new().with_id(*id))))
                    .await
                    .map_err(&fail)?;
                keeper.add(*id);
            }
        }
        let (revisions, _) = segment::cut(std::slice::from_ref(&segment), applied, target);
        for batch in segment::batches(&revisions, MAX_TXN_OPS, MAX_TXN_BYTES, one_per_revision) {
            let ops: Vec<TxnOp> = batch.changes.iter().map(|c| op_of(c)).collect();
            changes += ops.len();
            let response = within("txn", client.txn(Txn::new().and_then(ops))).await.map_err(&fail)?;
            let now = response.header().map(|h| h.revision()).unwrap_or_default();
            if one_per_revision && now != batch.through {
                return Err(fail(format!(
                    "replay: revision {} of the chain became {now} here: the chain does not continue this snapshot",
                    batch.through
                )));
            }
            applied = batch.through;
            crate::crash::point("during-replay");
        }
    }
    drop(keeper);
    Ok(Replayed { file: PathBuf::new(), from_revision, to_revision: applied, changes })
}

fn op_of(change: &Change) -> TxnOp {
    match change {
        Change::Put { key, value, lease } => {
            let options = (*lease != 0).then(|| PutOptions::new().with_lease(*lease));
            TxnOp::put(key.clone(), value.clone(), options)
        }
        Change::Delete { key } => TxnOp::delete(key.clone(), None),
    }
}

/// etcd's flags for the private replay member.
fn etcd_args(data: &Path, client_url: &str, peer_url: &str, no_fsync: bool) -> Vec<String> {
    let mut args = vec![
        "--name=replay".to_string(),
        format!("--data-dir={}", data.display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=replay={peer_url}"),
        format!("--max-txn-ops={MAX_TXN_OPS}"),
        format!("--max-request-bytes={MAX_REQUEST_BYTES}"),
        // etcd's largest quota: the replay must never stop on NOSPACE.
        "--quota-backend-bytes=8589934592".to_string(),
        "--snapshot-count=100000000".to_string(),
    ];
    if no_fsync {
        // The replay is redone from the start after any crash: no write needs to reach the disk
        // before the final snapshot, which is checked.
        args.push("--unsafe-no-fsync".to_string());
    }
    args
}

/// Whether this etcd has `--unsafe-no-fsync` (3.5 on).
async fn no_fsync_flag(etcd: &Path) -> bool {
    let out =
        tokio::process::Command::new(etcd).arg("--help").env_clear().stdin(Stdio::null()).output().await;
    out.is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout).contains("--unsafe-no-fsync")
            || String::from_utf8_lossy(&o.stderr).contains("--unsafe-no-fsync")
    })
}

/// Two free ports on loopback, held at once so they differ (the private etcd binds them a
/// moment later; inside a pod nothing else binds loopback ports meanwhile).
fn free_ports() -> Result<[u16; 2]> {
    let bind = || {
        TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Error::Runtime(format!("replay: no free port on 127.0.0.1: {e}")))
    };
    let (a, b) = (bind()?, bind()?);
    let port = |l: &TcpListener| {
        l.local_addr().map(|a| a.port()).map_err(|e| Error::Runtime(format!("replay: {e}")))
    };
    Ok([port(&a)?, port(&b)?])
}

/// Connect to the private etcd once it serves; an etcd that ended says why (its log's last line).
async fn ready(
    endpoint: &Endpoint,
    child: &mut tokio::process::Child,
    log_path: &Path,
) -> std::result::Result<Client, String> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            let last = log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
            return Err(format!("the private etcd ended ({status}): {last}"));
        }
        if let Ok(mut client) = cluster::client_of(&Access::default(), endpoint, Duration::from_secs(2)).await
        {
            if tokio::time::timeout(Duration::from_secs(2), client.status()).await.is_ok_and(|r| r.is_ok()) {
                return Ok(client);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the private etcd did not serve within {} (its log: {})",
                crate::duration::format(READY_TIMEOUT),
                log_path.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long the private etcd may take to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// End the private etcd: SIGTERM, and SIGKILL if it has not ended after [`STOP_TIMEOUT`]. Whether
/// it ended by itself (its database then committed and closed).
async fn stop(child: &mut tokio::process::Child) -> bool {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
    if tokio::time::timeout(STOP_TIMEOUT, child.wait()).await.is_ok() {
        return true;
    }
    let _ = child.kill().await;
    false
}

async fn within<T>(
    what: &str,
    call: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> std::result::Result<T, String> {
    take::within_for(&format!("replay: {what}"), CALL_TIMEOUT, call).await
}

/// Keeps every lease of the private etcd alive while the replay runs.
struct KeepAlive {
    ids: std::sync::Arc<std::sync::Mutex<BTreeSet<i64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl KeepAlive {
    fn start(client: Client, ids: BTreeSet<i64>) -> KeepAlive {
        let ids = std::sync::Arc::new(std::sync::Mutex::new(ids));
        let shared = ids.clone();
        let task = tokio::spawn(async move {
            let mut client = client;
            let mut keepers = std::collections::BTreeMap::new();
            loop {
                let wanted: Vec<i64> = shared.lock().map(|s| s.iter().copied().collect()).unwrap_or_default();
                for id in wanted {
                    if let std::collections::btree_map::Entry::Vacant(slot) = keepers.entry(id) {
                        if let Ok(pair) = client.lease_keep_alive(id).await {
                            slot.insert(pair);
                        }
                    }
                }
                for (keeper, stream) in keepers.values_mut() {
                    if keeper.keep_alive().await.is_ok() {
                        let _ = tokio::time::timeout(Duration::from_secs(1), stream.message()).await;
                    }
                }
                tokio::time::sleep(KEEP_ALIVE_EVERY).await;
            }
        });
        KeepAlive { ids, task }
    }

    fn add(&self, id: i64) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.insert(id);
        }
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}
