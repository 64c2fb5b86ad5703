//! Scheduled backups from the leader's sidecar (`--backup-to`, `--backup-interval`,
//! `--backup-keep`). At most one snapshot per interval across the cluster: before taking one, the
//! newest snapshot's time is read from the store, so a leader change does not take an extra one.
//! Retention runs after each upload. A sidecar killed mid-upload leaves data without a manifest,
//! which never lists as complete.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::backup::command::{self, Env};
use crate::backup::manifest;
use crate::backup::store::Store;
use crate::backup::take;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::observe::cluster::{Access, Endpoint};

use super::metrics::{BackupDone, BackupFailure, Shared};
use super::settings::BackupSchedule;

/// The schedule and what it remembers between rounds.
pub(super) struct Scheduler {
    schedule: BackupSchedule,
    store: Option<Store>,
    /// Do not look at the store again before this (the next backup is not due yet, or the last
    /// attempt failed).
    next_look: Option<Instant>,
}

impl Scheduler {
    pub(super) fn new(schedule: BackupSchedule) -> Scheduler {
        Scheduler { schedule, store: None, next_look: None }
    }

    /// Forget the wait: this member just became the leader, so look at the store first.
    pub(super) fn leadership_lost(&mut self) {
        self.next_look = None;
    }

    /// One round beside the leader: take, check and upload a snapshot if one is due, reaching
    /// the local member with `access` (the client TLS files as last read). `retry` is how soon to
    /// look again after a failure.
    pub(super) async fn round(
        &mut self,
        ctx: &Context,
        access: &Access,
        local: &Endpoint,
        shared: &Shared,
        retry: Duration,
    ) {
        let now = Instant::now();
        shared.lock().backup_interval = Some(self.schedule.interval);
        if self.next_look.is_some_and(|at| now < at) {
            return;
        }
        match self.attempt(ctx, access, local, shared).await {
            Ok(wait) => self.next_look = Some(now + wait),
            Err(e) => {
                let reason = failure_of(&e);
                warn!(reason = reason.as_str(), "scheduled backup failed: {e}");
                let mut m = shared.lock();
                *m.backup_failures.entry(reason).or_default() += 1;
                m.backup_consecutive_failures += 1;
                m.error(&format!("backup: {e}"));
                drop(m);
                self.next_look = Some(now + retry);
            }
        }
    }

    /// Back up if due; returns how long until the next look.
    async fn attempt(
        &mut self,
        ctx: &Context,
        access: &Access,
        local: &Endpoint,
        shared: &Shared,
    ) -> Result<Duration> {
        let schedule = self.schedule.clone();
        let store = self.store(ctx)?;
        let listed = store.list().await?;
        let interval = schedule.interval;
        let wait = manifest::due_in(listed.first(), unix_now(), interval);
        if let Some(newest) = listed.first() {
            shared.lock().backup_newest = Some(newest.unix_time as f64);
        }
        if !wait.is_zero() {
            shared.lock().backup_consecutive_failures = 0;
            return Ok(wait);
        }
        let started = Instant::now();
        let taken = take::take(access, local, &schedule.scratch_dir).await?;
        command::upload(store, &taken).await?;
        let done = BackupDone {
            at: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default(),
            revision: taken.manifest.revision,
            size: taken.manifest.size,
            duration_secs: started.elapsed().as_secs_f64(),
        };
        {
            let mut m = shared.lock();
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

    fn store(&mut self, ctx: &Context) -> Result<&Store> {
        if self.store.is_none() {
            let env = Env { vars: &ctx.env.store_env, resolv_conf: None };
            let store =
                command::open_store(&self.schedule.to, &ctx.store, &env, Some(&ctx.clients.resolver))?;
            self.store = Some(store);
        }
        self.store.as_ref().ok_or_else(|| Error::config("--backup-to: the store could not be opened"))
    }
}

/// The metric's reason for a failed backup.
pub(super) fn failure_of(e: &Error) -> BackupFailure {
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
