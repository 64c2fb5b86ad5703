//! The backups job (`--backup-to`, `--backup-interval`, `--backup-keep`): beside the leader, a full
//! snapshot when one is due. At most one snapshot per interval across the cluster: before taking
//! one, the newest snapshot's time is read from the store, so a leader change does not take an
//! extra one. Retention runs after each upload. A sidecar killed mid-upload leaves data without a
//! manifest, which never lists as complete.
//!
//! It runs beside the other jobs, so a snapshot that takes minutes to stream and upload delays
//! no removal and no maintenance: while it is read from the local member, that member is not
//! defragmented, and until it is uploaded, no NOSPACE compaction passes its revision (the
//! [`SnapshotHold`](super::super::coordination::SnapshotHold)). Every chunk etcd sends and every
//! part uploaded counts as progress for `/healthz` ([`Beat::moved`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::backup::command::{self, Env};
use crate::backup::manifest;
use crate::backup::store::Store;
use crate::backup::take;
use crate::error::{Error, Result};
use crate::observe::cluster::maintenance as calls;

use super::super::coordination;
use super::super::job::{Action, Job};
use super::super::liveness::Beat;
use super::super::metrics::{BackupDone, BackupFailure};
use super::super::settings::BackupSchedule;
use super::Sidecar;

/// The job, and the store it keeps open.
pub(crate) struct BackupsJob {
    s: Arc<Sidecar>,
    schedule: BackupSchedule,
    store: Option<Store>,
    beat: Arc<Beat>,
}

impl BackupsJob {
    /// `beat` is the job's liveness, which the transfer feeds.
    pub(crate) fn new(s: Arc<Sidecar>, schedule: BackupSchedule, beat: Arc<Beat>) -> BackupsJob {
        BackupsJob { s, schedule, store: None, beat }
    }
}

impl Job for BackupsJob {
    const NAME: &'static str = "backups";

    fn interval(&self) -> Duration {
        self.s.settings.interval
    }

    fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        // The deltas job asks for a full snapshot at once when its chain cannot continue.
        Some(self.s.coordination.full_snapshot_wake())
    }

    async fn reconcile(&mut self) -> Result<Action> {
        self.s.shared.lock().backup_interval = Some(self.schedule.interval);
        let Some(member) = self.s.coordination.leadership().local() else {
            // A new leader's sidecar looks at the store first: it waits for a change.
            return Ok(Action::await_change());
        };
        match self.attempt(member).await {
            Ok(wait) => Ok(Action::requeue(wait)),
            Err(e) => {
                let reason = failure_of(&e);
                warn!(reason = reason.as_str(), "scheduled backup failed: {e}");
                let mut m = self.s.shared.lock();
                *m.backup_failures.entry(reason).or_default() += 1;
                m.backup_consecutive_failures += 1;
                drop(m);
                Err(Error::Runtime(format!("backup: {e}")))
            }
        }
    }
}

impl BackupsJob {
    /// Back up if due, reading from the local member `member`; returns how long until the next
    /// look.
    async fn attempt(&mut self, member: u64) -> Result<Duration> {
        let s = self.s.clone();
        let schedule = self.schedule.clone();
        let beat = self.beat.clone();
        let store = self.store()?;
        let listed = store.list().await?;
        let interval = schedule.interval;
        let request = s.coordination.full_snapshot_request();
        let scheduled = manifest::due_in(listed.first(), unix_now(), interval);
        let newest = listed.first().map(|m| m.name.as_str());
        let wait = coordination::backup_due_in(request.as_ref(), newest, scheduled);
        if request.is_some() && wait < scheduled {
            info!("a full snapshot is asked for at once: the delta chain cannot continue");
        }
        if let Some(newest) = listed.first() {
            s.shared.lock().backup_newest = Some(newest.unix_time as f64);
        }
        if !wait.is_zero() {
            s.shared.lock().backup_consecutive_failures = 0;
            return Ok(wait);
        }
        let started = Instant::now();
        let (_, access) = s.coordination.access();
        // The revision before the snapshot begins: the snapshot holds it or a later one.
        let before =
            calls::db_report_at(&access, &s.local_endpoint, s.ctx.probe_timeout).await.map_err(|m| {
                Error::Cluster { call: "status".into(), endpoint: s.local_endpoint.host.clone(), message: m }
            })?;
        let held = s.coordination.hold_snapshot(member, before.revision);
        let moved = move |n: u64| beat.moved(n);
        let taken = take::take_counting(&access, &s.local_endpoint, &schedule.scratch_dir, &moved).await?;
        held.read_done();
        store.upload_counting(&taken.file.path, &taken.manifest, &moved).await?;
        command::log_uploaded(store, &taken);
        drop(held);
        s.coordination.full_snapshot_done();
        let done = BackupDone {
            at: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default(),
            revision: taken.manifest.revision,
            size: taken.manifest.size,
            duration_secs: started.elapsed().as_secs_f64(),
        };
        {
            let mut m = s.shared.lock();
            m.backups += 1;
            m.backup_last = Some(done);
            m.backup_newest = Some(done.at);
            m.backup_consecutive_failures = 0;
        }
        let deleted = command::apply_retention(store, schedule.keep).await?;
        info!(
            snapshot = %store.url().snapshot(&taken.manifest.name),
            deleted = deleted.len(),
            keep = schedule.keep,
            "scheduled backup done"
        );
        Ok(interval)
    }

    fn store(&mut self) -> Result<&Store> {
        if self.store.is_none() {
            let ctx = &self.s.ctx;
            let env = Env { vars: &ctx.env.store_env, resolv_conf: None };
            let store =
                command::open_store(&self.schedule.to, &ctx.store, &env, Some(&ctx.clients.resolver))?;
            self.store = Some(store);
        }
        self.store.as_ref().ok_or_else(|| Error::config("--backup-to: the store could not be opened"))
    }
}

/// The metric's reason for a failed backup.
pub(crate) fn failure_of(e: &Error) -> BackupFailure {
    match e {
        Error::Store { .. } => BackupFailure::Store,
        Error::Snapshot { .. } => BackupFailure::Snapshot,
        Error::Cluster { .. } => BackupFailure::Etcd,
        _ => BackupFailure::Other,
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StoreProblem;

    #[test]
    fn failures_are_counted_by_what_failed() {
        let store =
            Error::Store { url: "s3://b".into(), problem: StoreProblem::Credentials, message: "x".into() };
        let snapshot = Error::Snapshot { snapshot: "s".into(), problem: "p".into() };
        let etcd = Error::Cluster { call: "snapshot".into(), endpoint: "e".into(), message: "m".into() };
        let table = [
            (store, BackupFailure::Store),
            (snapshot, BackupFailure::Snapshot),
            (etcd, BackupFailure::Etcd),
            (Error::config("x"), BackupFailure::Other),
        ];
        for (e, want) in table {
            assert_eq!(failure_of(&e), want, "{e}");
        }
    }
}
