//! The only state the sidecar's jobs share, each piece with one writer and its rule:
//! - who leads ([`Leadership`]): written by the leadership job after each status of the local
//!   member; the jobs that change the cluster act only while it says the local member leads, and
//!   wake when it changes;
//! - the snapshot being read or uploaded and its revision ([`SnapshotHold`]): written by the
//!   backups job; a NOSPACE compaction never passes its revision ([`Coordination::compaction_limit`]),
//!   and the member it is read from is not defragmented while it is read
//!   ([`Coordination::not_to_defragment`]);
//! - the member defragmented last, until it answers again: written by the maintenance job; the
//!   removal policy never takes it for gone;
//! - at most one cluster-changing call at a time (a member promotion or removal, a compaction, a
//!   defragmentation, an alarm disarm): [`Coordination::change`] is a lock held around each;
//! - how to reach etcd ([`Access`], with the client TLS files as last read): written by the
//!   certificates job; a job reconnects when its generation moves;
//! - the oldest revision the delta chain has not recorded in the store yet: written by the
//!   deltas job; a NOSPACE compaction never passes it either ([`Coordination::compaction_limit`]);
//! - a full snapshot asked for at once ([`Coordination::request_full_snapshot`]): set by the
//!   deltas job when no chain can be continued (none yet, a broken one, a compaction past the
//!   watch); the backups job takes it as due now ([`backup_due_in`]) and clears it once a
//!   snapshot is uploaded.
//!
//! No job reads another's private state: what is not here, a job keeps to itself.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard, Notify};

use crate::observe::cluster::Access;

/// Who leads, as the last status of the local member showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Leadership {
    /// Not asked yet, or the local member did not answer.
    #[default]
    Unknown,
    /// The local member leads; its member ID.
    Local(u64),
    /// Another member leads, or none does, or the local member is a learner.
    Elsewhere,
}

impl Leadership {
    /// The local member's ID while it leads.
    pub(crate) fn local(self) -> Option<u64> {
        match self {
            Leadership::Local(id) => Some(id),
            Leadership::Unknown | Leadership::Elsewhere => None,
        }
    }
}

/// A snapshot being read from a member or uploaded, and the revision it holds at least.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotHold {
    /// The member it is read from.
    pub member: u64,
    /// The cluster's revision before the snapshot began: the snapshot holds this one or a later
    /// one, so a compaction up to here never passes it.
    pub revision: i64,
    /// True while etcd streams it (the member is busy with it); false during the upload.
    pub reading: bool,
}

/// The shared state (see the module's documentation).
pub(crate) struct Coordination {
    leadership: watch::Sender<Leadership>,
    snapshot: Mutex<Option<SnapshotHold>>,
    defragmenting: Mutex<Option<u64>>,
    change: AsyncMutex<()>,
    access: Mutex<(u64, Access)>,
    delta_unrecorded: Mutex<Option<i64>>,
    full_snapshot: Mutex<Option<FullSnapshotRequest>>,
    full_snapshot_wake: Arc<Notify>,
}

impl Coordination {
    pub(crate) fn new(access: Access) -> Self {
        Coordination {
            leadership: watch::Sender::new(Leadership::Unknown),
            snapshot: Mutex::new(None),
            defragmenting: Mutex::new(None),
            change: AsyncMutex::new(()),
            access: Mutex::new((0, access)),
            delta_unrecorded: Mutex::new(None),
            full_snapshot: Mutex::new(None),
            full_snapshot_wake: Arc::new(Notify::new()),
        }
    }

    /// Who leads now.
    pub(crate) fn leadership(&self) -> Leadership {
        *self.leadership.borrow()
    }

    /// Record who leads; the jobs waiting for a change are woken only when it changed. True when
    /// it changed.
    pub(crate) fn set_leadership(&self, now: Leadership) -> bool {
        self.leadership.send_if_modified(|was| {
            let changed = *was != now;
            *was = now;
            changed
        })
    }

    /// A receiver that wakes when who leads changes.
    pub(crate) fn watch_leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.subscribe()
    }

    /// Hold a snapshot of `member` at `revision` or later until the returned guard is dropped
    /// (whatever way the backup ends).
    pub(crate) fn hold_snapshot(&self, member: u64, revision: i64) -> HeldSnapshot<'_> {
        *lock(&self.snapshot) = Some(SnapshotHold { member, revision, reading: true });
        HeldSnapshot { coordination: self }
    }

    /// The snapshot being read or uploaded, if one is.
    pub(crate) fn snapshot(&self) -> Option<SnapshotHold> {
        *lock(&self.snapshot)
    }

    /// The revision a compaction must not pass: that of the snapshot being read or uploaded, and
    /// the oldest one the delta chain has not recorded yet, whichever is lower.
    pub(crate) fn compaction_limit(&self) -> Option<i64> {
        compaction_limit(self.snapshot(), *lock(&self.delta_unrecorded))
    }

    /// The oldest revision the delta chain has not recorded in the store yet (None: no chain is
    /// recorded here now).
    pub(crate) fn set_delta_unrecorded(&self, revision: Option<i64>) {
        *lock(&self.delta_unrecorded) = revision;
    }

    /// Ask the backups job for a full snapshot at once, newer than `newest_seen` (the newest the
    /// store listed when the asker looked); idempotent until one is uploaded.
    pub(crate) fn request_full_snapshot(&self, newest_seen: Option<String>) {
        let request = FullSnapshotRequest { newest_seen };
        let mut slot = lock(&self.full_snapshot);
        if slot.as_ref() != Some(&request) {
            *slot = Some(request);
            self.full_snapshot_wake.notify_one();
        }
    }

    /// The full snapshot asked for and not uploaded yet, if any.
    pub(crate) fn full_snapshot_request(&self) -> Option<FullSnapshotRequest> {
        lock(&self.full_snapshot).clone()
    }

    /// A full snapshot was uploaded: the request, if any, is met.
    pub(crate) fn full_snapshot_done(&self) {
        *lock(&self.full_snapshot) = None;
    }

    /// What wakes the backups job when a full snapshot is asked for.
    pub(crate) fn full_snapshot_wake(&self) -> Arc<Notify> {
        self.full_snapshot_wake.clone()
    }

    /// The member that must not be defragmented now: the one a snapshot is being read from.
    pub(crate) fn not_to_defragment(&self) -> Option<u64> {
        not_to_defragment(self.snapshot())
    }

    /// The member defragmented last, until it has answered again (None: none).
    pub(crate) fn set_defragmenting(&self, member: Option<u64>) {
        *lock(&self.defragmenting) = member;
    }

    /// The member that must not be taken for gone: the one defragmented last, until it answers.
    pub(crate) fn defragmenting(&self) -> Option<u64> {
        *lock(&self.defragmenting)
    }

    /// Wait for the right to make one cluster-changing call; held until the guard is dropped.
    pub(crate) async fn change(&self) -> AsyncMutexGuard<'_, ()> {
        self.change.lock().await
    }

    /// The right to change the cluster, if no other call holds it now.
    #[cfg(test)]
    pub(crate) fn try_change(&self) -> Option<AsyncMutexGuard<'_, ()>> {
        self.change.try_lock().ok()
    }

    /// How to reach etcd now, and its generation (it moves each time the TLS files change).
    pub(crate) fn access(&self) -> (u64, Access) {
        lock(&self.access).clone()
    }

    /// New TLS files were read: every job reconnects with them.
    pub(crate) fn set_access(&self, access: Access) {
        let mut slot = lock(&self.access);
        *slot = (slot.0 + 1, access);
    }
}

/// The guard of a snapshot hold: the hold ends when it is dropped.
pub(crate) struct HeldSnapshot<'a> {
    coordination: &'a Coordination,
}

impl HeldSnapshot<'_> {
    /// etcd has sent the whole snapshot: the member is free again; the revision still holds
    /// until the upload ends.
    pub(crate) fn read_done(&self) {
        if let Some(hold) = lock(&self.coordination.snapshot).as_mut() {
            hold.reading = false;
        }
    }
}

impl Drop for HeldSnapshot<'_> {
    fn drop(&mut self) {
        *lock(&self.coordination.snapshot) = None;
    }
}

/// The compaction limit: a snapshot hold's revision, while read or uploaded, and the oldest
/// revision the delta chain has not recorded (compacting at it keeps it watchable), the lower.
pub(crate) fn compaction_limit(hold: Option<SnapshotHold>, delta_unrecorded: Option<i64>) -> Option<i64> {
    match (hold.map(|h| h.revision), delta_unrecorded) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A full snapshot asked for at once by the deltas job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FullSnapshotRequest {
    /// The newest snapshot the store listed when it was asked for (None: none): one newer than
    /// it meets the request.
    pub newest_seen: Option<String>,
}

/// How long until the backups job takes a full snapshot, the store's newest being `newest`: now
/// when one is asked for (the delta chain cannot continue) and none newer than the asker saw has
/// been taken since, else when the schedule says (`scheduled`).
pub(crate) fn backup_due_in(
    request: Option<&FullSnapshotRequest>,
    newest: Option<&str>,
    scheduled: Duration,
) -> Duration {
    match request {
        Some(r) if r.newest_seen.as_deref() == newest => Duration::ZERO,
        _ => scheduled,
    }
}

/// The member a snapshot hold keeps from defragmentation: the one it is read from, while read.
pub(crate) fn not_to_defragment(hold: Option<SnapshotHold>) -> Option<u64> {
    hold.filter(|h| h.reading).map(|h| h.member)
}

/// Plain data behind a std mutex: a panic cannot leave it half-written, so a poisoned lock is used
/// as is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coordination() -> Coordination {
        Coordination::new(Access::default())
    }

    #[test]
    fn a_snapshot_hold_limits_compaction_and_defragmentation_until_it_ends() {
        let c = coordination();
        assert_eq!((c.compaction_limit(), c.not_to_defragment()), (None, None), "no backup");
        {
            let held = c.hold_snapshot(7, 4200);
            assert_eq!(c.compaction_limit(), Some(4200), "a compaction never passes the snapshot's revision");
            assert_eq!(c.not_to_defragment(), Some(7), "the member read from is not defragmented");
            held.read_done();
            assert_eq!(c.compaction_limit(), Some(4200), "the revision holds during the upload");
            assert_eq!(c.not_to_defragment(), None, "the member is free once etcd sent it");
        }
        assert_eq!(
            (c.compaction_limit(), c.not_to_defragment()),
            (None, None),
            "the hold ends with the guard"
        );
    }

    #[test]
    fn the_delta_chain_limits_compaction_too_the_lower_limit_wins() {
        let hold = |revision| Some(SnapshotHold { member: 1, revision, reading: false });
        // (snapshot hold, oldest revision not recorded, limit)
        let rows = [
            (None, None, None),
            (hold(40), None, Some(40)),
            (None, Some(51), Some(51)),
            (hold(40), Some(51), Some(40)),
            (hold(60), Some(51), Some(51)),
        ];
        for (h, delta, want) in rows {
            assert_eq!(compaction_limit(h, delta), want, "{h:?} {delta:?}");
        }
        let c = coordination();
        c.set_delta_unrecorded(Some(51));
        assert_eq!(c.compaction_limit(), Some(51));
        let held = c.hold_snapshot(7, 40);
        assert_eq!(c.compaction_limit(), Some(40));
        drop(held);
        c.set_delta_unrecorded(None);
        assert_eq!(c.compaction_limit(), None);
    }

    #[tokio::test]
    async fn a_full_snapshot_asked_for_is_due_at_once_and_wakes_the_backups_job() {
        let hour = Duration::from_secs(3600);
        let asked = |seen: Option<&str>| FullSnapshotRequest { newest_seen: seen.map(str::to_string) };
        // (request, the store's newest now, due in)
        let rows = [
            (None, Some("s1"), hour, "on schedule"),
            (Some(asked(Some("s1"))), Some("s1"), Duration::ZERO, "asked for: due now"),
            (Some(asked(None)), None, Duration::ZERO, "asked for with an empty store"),
            (Some(asked(Some("s1"))), Some("s2"), hour, "a newer one was taken since: met"),
            (Some(asked(None)), Some("s1"), hour, "one was taken since the store was empty: met"),
        ];
        for (request, newest, want, why) in rows {
            assert_eq!(backup_due_in(request.as_ref(), newest, hour), want, "{why}");
        }
        let c = coordination();
        let wake = c.full_snapshot_wake();
        assert_eq!(c.full_snapshot_request(), None);
        c.request_full_snapshot(Some("s1".into()));
        c.request_full_snapshot(Some("s1".into()));
        assert_eq!(c.full_snapshot_request(), Some(asked(Some("s1"))), "asked twice is one request");
        // The wake is kept for a job that is busy when it comes.
        tokio::time::timeout(Duration::from_secs(5), wake.notified()).await.expect("woken");
        c.full_snapshot_done();
        assert_eq!(c.full_snapshot_request(), None, "met once a snapshot is uploaded");
    }

    #[test]
    fn a_hold_ends_when_the_backup_fails_half_way() {
        let c = coordination();
        fn backup(c: &Coordination) -> Result<(), String> {
            let _held = c.hold_snapshot(1, 10);
            Err("the store went away".into())
        }
        assert!(backup(&c).is_err());
        assert_eq!(c.snapshot(), None);
    }

    #[tokio::test]
    async fn one_cluster_changing_call_at_a_time() {
        let c = std::sync::Arc::new(coordination());
        let first = c.change().await;
        assert!(c.try_change().is_none(), "a second call waits while one is under way");
        let waiter = {
            let c = c.clone();
            tokio::spawn(async move {
                let _second = c.change().await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "the second call is still waiting");
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the second call goes once the first is done")
            .expect("joined");
        assert!(c.try_change().is_some(), "free again");
    }

    #[tokio::test]
    async fn jobs_wake_only_when_who_leads_changes() {
        let c = coordination();
        let mut rx = c.watch_leadership();
        assert_eq!(c.leadership().local(), None, "unknown at first: nobody acts");
        assert!(c.set_leadership(Leadership::Local(5)));
        assert!(rx.has_changed().expect("open"), "became the leader: wake");
        rx.borrow_and_update();
        assert!(!c.set_leadership(Leadership::Local(5)), "the same again");
        assert!(!rx.has_changed().expect("open"), "no change: no wake");
        assert!(c.set_leadership(Leadership::Elsewhere));
        assert!(rx.has_changed().expect("open"));
        assert_eq!(c.leadership().local(), None);
    }

    #[test]
    fn the_member_defragmented_last_is_shared_and_access_has_generations() {
        let c = coordination();
        c.set_defragmenting(Some(3));
        assert_eq!(c.defragmenting(), Some(3));
        c.set_defragmenting(None);
        assert_eq!(c.defragmenting(), None);
        let (before, _) = c.access();
        c.set_access(Access::default());
        assert_eq!(c.access().0, before + 1, "new TLS files: every job reconnects");
    }
}
