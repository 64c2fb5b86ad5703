//! The deltas job (`--backup-delta-interval D`, continuous backups for point-in-time restore):
//! beside the leader, every change after the newest full snapshot of this cluster is recorded in
//! the store as delta segments of that snapshot's chain.
//!
//! - A watch of the whole keyspace runs in a task of its own while the local member leads; it
//!   buffers every revision's changes with the time they arrived, whatever the store does.
//! - Every `D` the pass looks at the store (which snapshot to follow: the pure
//!   [`policy::deltas`](super::super::policy::deltas)), takes what the watch buffered and, when
//!   there were changes, uploads one segment of them: from the revision after the last one the
//!   store holds, so a new leader's sidecar continues where the old one stopped. An upload that
//!   fails is tried again by the error policy, with what came since: the watch goes on meanwhile,
//!   and so do the other jobs.
//! - Where no chain can continue (no snapshot of this cluster, a broken chain, the watch's start
//!   compacted) the backups job is asked for a full snapshot at once; the job follows it once it
//!   lists. A newer full snapshot (the schedule's) is followed too: the watch starts again from
//!   its `chain_from + 1`.
//! - A NOSPACE compaction never passes the oldest revision not yet in the store
//!   ([`Coordination::set_delta_unrecorded`](super::super::coordination::Coordination::set_delta_unrecorded)).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::backup::command::{self, Env};
use crate::backup::segment::{self, Change, Revision};
use crate::backup::store::Store;
use crate::error::{Error, Result};
use crate::observe::cluster::watch::{KeyChange, KeyspaceWatch, Watched};
use crate::observe::cluster::{Access, Endpoint};

use super::super::job::{Action, Job};
use super::super::liveness::Beat;
use super::super::policy::deltas::{self as policy, Follow};
use super::super::settings::BackupSchedule;
use super::{cluster_error, LocalClient, Sidecar};

/// The job, and the chain it records while the local member leads.
pub(crate) struct DeltasJob {
    s: Arc<Sidecar>,
    schedule: BackupSchedule,
    interval: Duration,
    store: Option<Store>,
    beat: Arc<Beat>,
    local: LocalClient,
    /// This cluster's ID (hex), once asked.
    cluster_id: Option<String>,
    recording: Option<Recording>,
    /// The snapshot whose chain cannot continue, and why: a full snapshot is asked for, and
    /// nothing is recorded until a newer one lists.
    stuck_on: Option<(String, String)>,
    /// The newest snapshot the store listed last (a full snapshot asked for is one newer).
    newest_listed: Option<String>,
}

/// A chain being recorded.
struct Recording {
    snapshot: String,
    chain_from: i64,
    /// The last revision the store holds in the chain.
    stored_last: i64,
    /// Revisions received and not yet in the store, ascending.
    pending: Vec<Revision>,
    /// TTLs of the leases the chain's puts named, as etcd granted them (0: gone when asked).
    leases: BTreeMap<i64, i64>,
    watch: WatchTask,
}

/// The watch's task and what it shares with the passes.
struct WatchTask {
    shared: Arc<Mutex<Received>>,
    task: JoinHandle<()>,
}

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the watch received since the last pass took it.
#[derive(Default)]
struct Received {
    revisions: Vec<Revision>,
    /// The leader's revision, as the last message's header told it.
    header_revision: i64,
    /// Bytes of keys and values received, all along (liveness during a long upload).
    bytes: u64,
    /// Why the watch ended, once it did.
    ended: Option<WatchEnd>,
}

#[derive(Debug, Clone)]
enum WatchEnd {
    Compacted(i64),
    Failed(String),
}

fn lock(m: &Mutex<Received>) -> MutexGuard<'_, Received> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DeltasJob {
    /// `interval` is `--backup-delta-interval`; `beat` the job's liveness.
    pub(crate) fn new(
        s: Arc<Sidecar>,
        schedule: BackupSchedule,
        interval: Duration,
        beat: Arc<Beat>,
    ) -> Self {
        DeltasJob {
            s,
            schedule,
            interval,
            store: None,
            beat,
            local: LocalClient::default(),
            cluster_id: None,
            recording: None,
            stuck_on: None,
            newest_listed: None,
        }
    }
}

impl Job for DeltasJob {
    const NAME: &'static str = "deltas";

    fn interval(&self) -> Duration {
        self.interval
    }

    async fn reconcile(&mut self) -> Result<Action> {
        if self.s.coordination.leadership().local().is_none() {
            if let Some(r) = self.recording.take() {
                info!(snapshot = %r.snapshot, "not the leader any more: the delta chain is left to the new leader's sidecar");
            }
            // Asked again when leading again: the local member may have been restored since.
            self.cluster_id = None;
            self.s.coordination.set_delta_unrecorded(None);
            let mut m = self.s.shared.lock();
            m.deltas.revision = None;
            m.deltas.lag = None;
            return Ok(Action::await_change());
        }
        let outcome = self.pass().await;
        if let Err(Error::Store { .. }) = &outcome {
            // The store refused or did not answer (a listing or the upload): the changes wait in
            // memory, and the next try uploads them with what came since.
            self.s.shared.lock().deltas.upload_failures += 1;
        }
        self.publish();
        outcome.map(|()| Action::requeue(self.interval))
    }

    fn failed(&mut self) {
        // A store or etcd call failed: connect again next time. The watch and what it buffered
        // stay: the next pass uploads it all.
        self.local.reset();
        self.cluster_id = None;
    }
}

impl DeltasJob {
    async fn pass(&mut self) -> Result<()> {
        let cluster_id = self.cluster_id().await?;
        self.open_store()?;
        let listed = self.store()?.list().await?;
        match policy::follow(&listed, &cluster_id) {
            Follow::AskFull(why) => {
                self.recording = None;
                self.newest_listed = listed.first().map(|m| m.name.clone());
                self.ask_full(String::new(), why);
                return Ok(());
            }
            Follow::Snapshot { name, chain_from } => {
                self.newest_listed = listed.first().map(|m| m.name.clone());
                if self.stuck_on.as_ref().is_some_and(|(stuck, _)| *stuck == name) {
                    // Still waiting for the full snapshot asked for.
                    let why = self.stuck_on.as_ref().map(|(_, why)| why.clone()).unwrap_or_default();
                    self.ask_full(name, why);
                    return Ok(());
                }
                self.stuck_on = None;
                let same = self.recording.as_ref().is_some_and(|r| r.snapshot == name);
                if !same {
                    if let Some(old) = self.recording.take() {
                        self.finish(old).await;
                    }
                    if !self.begin(&name, chain_from).await? {
                        return Ok(());
                    }
                }
            }
        }
        self.record().await
    }

    /// Start recording snapshot `name`'s chain after the last segment in the store; false when
    /// it cannot continue (a full snapshot is asked for).
    async fn begin(&mut self, name: &str, chain_from: i64) -> Result<bool> {
        let names = self.store()?.segments(name).await?;
        let chain = segment::chain(chain_from, names);
        let stored_last = match policy::continues_after(chain_from, &chain) {
            Ok(last) => last,
            Err(why) => {
                self.ask_full(name.to_string(), why);
                return Ok(false);
            }
        };
        info!(
            snapshot = %self.store()?.url().snapshot(name),
            chain = %policy::describe(chain_from, &chain),
            "recording every change after the snapshot (delta chain)"
        );
        let watch = self.start_watch(stored_last + 1);
        self.recording = Some(Recording {
            snapshot: name.to_string(),
            chain_from,
            stored_last,
            pending: Vec::new(),
            leases: BTreeMap::new(),
            watch,
        });
        self.s.coordination.set_delta_unrecorded(Some(stored_last + 1));
        Ok(true)
    }

    /// One pass over the chain being recorded: what the watch received, uploaded as a segment.
    async fn record(&mut self) -> Result<()> {
        let Some(mut r) = self.recording.take() else { return Ok(()) };
        let outcome = self.record_into(&mut r).await;
        match outcome {
            Ok(Some(why)) => {
                // The chain cannot go on: what was received is in the store (or lost with the
                // chain); a full snapshot starts a new one.
                self.s.coordination.set_delta_unrecorded(None);
                self.ask_full(r.snapshot.clone(), why);
                Ok(())
            }
            Ok(None) => {
                self.recording = Some(r);
                Ok(())
            }
            Err(e) => {
                self.recording = Some(r);
                Err(e)
            }
        }
    }

    /// Take what the watch received and upload it; Some(why) when the chain cannot continue.
    async fn record_into(&mut self, r: &mut Recording) -> Result<Option<String>> {
        // Another writer (a leader before this one, still finishing) may have added segments.
        let names = self.store()?.segments(&r.snapshot).await?;
        let chain = segment::chain(r.chain_from, names);
        match policy::continues_after(r.chain_from, &chain) {
            Err(why) => return Ok(Some(why)),
            Ok(last) if last > r.stored_last => {
                info!(
                    from = r.stored_last,
                    to = last,
                    "the store's chain was extended by another sidecar: continuing after it"
                );
                r.stored_last = last;
            }
            Ok(last) if last < r.stored_last => {
                return Ok(Some(format!(
                    "the store's chain ends at revision {last}, before {} recorded here: it was changed by hand",
                    r.stored_last
                )));
            }
            Ok(_) => {}
        }
        let ended = {
            let mut received = lock(&r.watch.shared);
            let revisions = std::mem::take(&mut received.revisions);
            // A response is taken whole, and etcd never splits a revision between responses: a
            // revision is never cut in two here.
            for rev in revisions {
                for change in rev.changes {
                    policy::buffer_change(&mut r.pending, r.stored_last, rev.revision, rev.unix_ms, change);
                }
            }
            received.ended.clone()
        };
        policy::still_pending(&mut r.pending, r.stored_last);
        match ended {
            Some(WatchEnd::Compacted(compact)) => {
                let start = policy::watch_start(r.stored_last, &r.pending);
                // Upload what was received before the compaction; the chain then stops.
                let _ = self.upload(r).await;
                return Ok(Some(policy::compacted(start, compact)));
            }
            Some(WatchEnd::Failed(why)) => {
                let start = policy::watch_start(r.stored_last, &r.pending);
                warn!("the delta watch ended ({why}): watching again from revision {start}");
                r.watch = self.start_watch(start);
            }
            None => {}
        }
        self.upload(r).await?;
        Ok(None)
    }

    /// Upload every pending revision as one segment (nothing when none is pending).
    async fn upload(&mut self, r: &mut Recording) -> Result<()> {
        if r.pending.is_empty() {
            return Ok(());
        }
        let ask = policy::leases_to_ask(&r.pending, &r.leases);
        if !ask.is_empty() {
            let s = self.s.clone();
            let local = self.local.get(&s).await.map_err(|m| cluster_error("connect", &s, m))?;
            for id in ask {
                let ttl = local
                    .lease_granted_ttl(id, s.ctx.probe_timeout)
                    .await
                    .map_err(|m| cluster_error("lease time-to-live", &s, m))?;
                r.leases.insert(id, ttl);
            }
        }
        let Some(seg) = policy::next_segment(&r.snapshot, r.stored_last, &r.pending, &r.leases) else {
            return Ok(());
        };
        if self.s.coordination.leadership().local().is_none() {
            // Leadership moved during the pass: the new leader's sidecar writes the chain now (two
            // writers would overlap and break it).
            return Ok(());
        }
        let size = seg.to_bytes().len() as u64;
        let uploaded = {
            let store = self.store()?;
            let upload = store.put_segment(&seg);
            tokio::pin!(upload);
            // A slow store: the job lives while its watch receives (the pass is not stuck, it
            // waits for the store while recording goes on).
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut seen = lock(&r.watch.shared).bytes;
            loop {
                tokio::select! {
                    done = &mut upload => break done,
                    _ = tick.tick() => {
                        let now = lock(&r.watch.shared).bytes;
                        if now > seen {
                            self.beat.moved(now - seen);
                            seen = now;
                        }
                    }
                }
            }
        };
        match uploaded {
            Ok(()) => {
                self.beat.moved(size);
                debug!(segment = %seg.name().file_name(), snapshot = %seg.snapshot, "delta segment uploaded");
                r.stored_last = seg.last;
                policy::still_pending(&mut r.pending, r.stored_last);
                self.s.coordination.set_delta_unrecorded(Some(r.stored_last + 1));
                self.s.shared.lock().deltas.segments += 1;
                Ok(())
            }
            Err(e) => {
                warn!(
                    revisions = r.pending.len(),
                    "delta segment upload failed (tried again with the changes since): {e}"
                );
                Err(e)
            }
        }
    }

    /// A newer snapshot is followed: what the old chain has pending is uploaded once (best
    /// effort: the new snapshot holds it anyway).
    async fn finish(&mut self, mut old: Recording) {
        let _ = self.record_into(&mut old).await;
        info!(snapshot = %old.snapshot, last = old.stored_last, "a newer full snapshot: its chain is recorded from now on");
    }

    /// Ask the backups job for a full snapshot; logged once per snapshot stuck on.
    fn ask_full(&mut self, snapshot: String, why: String) {
        let new = self.stuck_on.as_ref().is_none_or(|(s, w)| *s != snapshot || *w != why);
        if new {
            info!("the delta chain cannot be recorded ({why}): asking for a full snapshot now");
        }
        self.stuck_on = Some((snapshot, why));
        self.s.coordination.set_delta_unrecorded(None);
        self.s.coordination.request_full_snapshot(self.newest_listed.clone());
    }

    /// The metrics of the chain recorded now (absent when none is).
    fn publish(&self) {
        let mut m = self.s.shared.lock();
        match &self.recording {
            Some(r) => {
                let header = lock(&r.watch.shared).header_revision;
                m.deltas.revision = Some(r.stored_last);
                m.deltas.lag = Some(policy::lag(header, r.stored_last));
            }
            None => {
                m.deltas.revision = None;
                m.deltas.lag = None;
            }
        }
    }

    fn start_watch(&self, start: i64) -> WatchTask {
        let shared = Arc::new(Mutex::new(Received::default()));
        let (_, access) = self.s.coordination.access();
        let endpoint = self.s.local_endpoint.clone();
        let timeout = self.s.ctx.probe_timeout;
        let progress = self.interval;
        let task = tokio::spawn(watch(access, endpoint, timeout, start, progress, shared.clone()));
        WatchTask { shared, task }
    }

    async fn cluster_id(&mut self) -> Result<String> {
        if let Some(id) = &self.cluster_id {
            return Ok(id.clone());
        }
        let s = self.s.clone();
        let local = self.local.get(&s).await.map_err(|m| cluster_error("connect", &s, m))?;
        let id = local.cluster_id(s.ctx.probe_timeout).await.map_err(|m| cluster_error("status", &s, m))?;
        let id = format!("{id:x}");
        self.cluster_id = Some(id.clone());
        Ok(id)
    }

    fn open_store(&mut self) -> Result<()> {
        if self.store.is_none() {
            let ctx = &self.s.ctx;
            let env = Env { vars: &ctx.env.store_env, resolv_conf: None };
            self.store =
                Some(command::open_store(&self.schedule.to, &ctx.store, &env, Some(&ctx.clients.resolver))?);
        }
        Ok(())
    }

    fn store(&self) -> Result<&Store> {
        self.store.as_ref().ok_or_else(|| Error::config("--backup-to: the store could not be opened"))
    }
}

/// The watch task: every change from `start` on into `shared`, a progress request every
/// `progress`, until the watch ends (why is left in `shared`).
async fn watch(
    access: Access,
    endpoint: Endpoint,
    timeout: Duration,
    start: i64,
    progress: Duration,
    shared: Arc<Mutex<Received>>,
) {
    let end = watch_until_end(&access, &endpoint, timeout, start, progress, &shared).await;
    lock(&shared).ended = Some(end);
}

async fn watch_until_end(
    access: &Access,
    endpoint: &Endpoint,
    timeout: Duration,
    start: i64,
    progress: Duration,
    shared: &Mutex<Received>,
) -> WatchEnd {
    let mut watch = match KeyspaceWatch::start(access, endpoint, timeout, start).await {
        Ok(w) => w,
        Err(e) => return WatchEnd::Failed(e),
    };
    let mut tick = tokio::time::interval(progress.max(Duration::from_millis(100)));
    loop {
        let message = tokio::select! {
            m = watch.next() => m,
            _ = tick.tick() => {
                if let Err(e) = watch.request_progress().await {
                    return WatchEnd::Failed(e);
                }
                continue;
            }
        };
        match message {
            Err(e) => return WatchEnd::Failed(e),
            Ok(None) => return WatchEnd::Failed("etcd closed the watch".into()),
            Ok(Some(Watched::Compacted(c))) => return WatchEnd::Compacted(c),
            Ok(Some(Watched::Canceled(why))) => return WatchEnd::Failed(why),
            Ok(Some(Watched::Changes { header_revision, changes })) => {
                let at = unix_ms();
                let mut received = lock(shared);
                received.header_revision = received.header_revision.max(header_revision);
                for c in changes {
                    received.bytes += (c.key.len() + c.value.as_ref().map_or(0, Vec::len)) as u64;
                    let (revision, change) = change_of(c);
                    policy::buffer_change(&mut received.revisions, start - 1, revision, at, change);
                }
            }
        }
    }
}

fn change_of(c: KeyChange) -> (i64, Change) {
    let change = match c.value {
        Some(value) => Change::Put { key: c.key, value, lease: c.lease },
        None => Change::Delete { key: c.key },
    };
    (c.revision, change)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}
