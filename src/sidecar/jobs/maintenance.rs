//! The maintenance job: beside the leader, every interval, every member's status and the
//! cluster's alarms are asked, the pure policies in [`super::super::policy`] ([`defrag`],
//! [`nospace`]) say what to do, and at most one thing is done per pass (a compaction, one
//! member's defragmentation, or a disarm), under the one-change-at-a-time lock. It keeps to the
//! shared state: a compaction never passes the revision of a snapshot being read or uploaded,
//! the member a snapshot is read from is not defragmented, and the member defragmented last is
//! published so the removal policy never takes it for gone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::decide::refusals::{self, Call, Next};
use crate::error::Result;
use crate::observe::cluster::maintenance::{self as calls, DbReport};
use crate::observe::cluster::{Access, Endpoint};
use crate::observed::CallError;

use super::super::job::{Action, Job};
use super::super::metrics::Shared;
use super::super::policy::db::{size, DbStatus, MemberDb, Skip, SkipReason, Target};
use super::super::policy::defrag;
use super::super::policy::nospace::{self, Alarm, AlarmKind, Episode, Kept, Step};
use super::pods::{self, LastIps};
use super::{cluster_error, quota, LocalClient, Sidecar};

/// A member and where to reach it (None: no address known).
#[derive(Debug, Clone)]
pub(crate) struct Whom {
    pub id: u64,
    pub label: String,
    pub is_learner: bool,
    pub endpoint: Option<Endpoint>,
}

/// The job, and what it remembers between passes (only while the local member leads).
pub(crate) struct MaintenanceJob {
    s: Arc<Sidecar>,
    local: LocalClient,
    last_ip: LastIps,
    leading: bool,
    /// The member defragmented last, until it has answered again.
    awaiting: Option<u64>,
    episode: Episode,
    /// The last skip logged: the same one is counted every round but logged once.
    last_skip: Option<(SkipReason, String)>,
    corrupt_logged: bool,
}

impl MaintenanceJob {
    pub(crate) fn new(s: Arc<Sidecar>) -> Self {
        MaintenanceJob {
            s,
            local: LocalClient::default(),
            last_ip: LastIps::default(),
            leading: false,
            awaiting: None,
            episode: Episode::default(),
            last_skip: None,
            corrupt_logged: false,
        }
    }

    /// The local member does not lead: a new leader's sidecar starts afresh.
    fn stand_by(&mut self) {
        self.leading = false;
        self.set_awaiting(None);
        self.episode = Episode::default();
        self.last_skip = None;
        self.corrupt_logged = false;
        self.s.shared.lock().maintenance.alarms = None;
    }

    fn set_awaiting(&mut self, member: Option<u64>) {
        self.awaiting = member;
        self.s.coordination.set_defragmenting(member);
    }
}

impl Job for MaintenanceJob {
    const NAME: &'static str = "maintenance";

    fn interval(&self) -> Duration {
        self.s.settings.interval
    }

    async fn reconcile(&mut self) -> Result<Action> {
        let Some(leader) = self.s.coordination.leadership().local() else {
            if self.leading {
                self.stand_by();
            }
            return Ok(Action::await_change());
        };
        self.leading = true;
        let s = self.s.clone();
        let (_, access) = s.coordination.access();
        let local = self.local.get(&s).await.map_err(|m| cluster_error("connect", &s, m))?;
        let members = local.members().await.map_err(|e| cluster_error("member list", &s, e.message))?;
        let found =
            pods::look_up(&s.ctx.clients.resolver, &s.ctx.identity, &s.ctx.scan.peer_port_name, &members)
                .await;
        self.last_ip.note(&found);
        let whom = pods::whereabouts(&s, leader, &members, &found, &self.last_ip);
        self.lead(&access, &whom, leader).await;
        Ok(Action::requeue(s.settings.interval))
    }

    fn failed(&mut self) {
        self.local.reset();
    }
}

impl MaintenanceJob {
    /// One maintenance pass beside the leader `leader` (the local member): at most one action.
    async fn lead(&mut self, access: &Access, whom: &[Whom], leader: u64) {
        let s = self.s.clone();
        let (shared, timeout) = (&*s.shared, s.ctx.probe_timeout);
        let reports = statuses(access, whom, timeout).await;
        let members: Vec<MemberDb> = whom
            .iter()
            .map(|w| MemberDb {
                id: w.id,
                label: w.label.clone(),
                is_learner: w.is_learner,
                status: reports.get(&w.id).map(|r| DbStatus { size: r.db_size, in_use: r.db_in_use }),
            })
            .collect();
        if self.awaiting.is_some_and(|id| reports.contains_key(&id)) {
            self.set_awaiting(None);
        }
        let Some(revision) = reports.get(&leader).map(|r| r.revision) else { return };
        let Ok(local) = self.local.get(&s).await else { return };
        // Through etcd's log: without quorum it would hang; a short wait, and again next round.
        let alarms = match local.alarms(timeout.saturating_mul(2)).await {
            Ok(raised) => raised
                .iter()
                .map(|a| Alarm { member: a.member, kind: AlarmKind::from_code(a.code) })
                .collect::<Vec<_>>(),
            Err(e) => return self.refused(Call::Alarm, "alarm list", &e, shared),
        };
        {
            let count = |k: AlarmKind| alarms.iter().filter(|a| a.kind == k).count() as u64;
            shared.lock().maintenance.alarms = Some((count(AlarmKind::Nospace), count(AlarmKind::Corrupt)));
        }
        let now = Instant::now();
        if self.episode.stale(revision, now) {
            info!("the cluster changed since the NOSPACE alarm was kept: looking again");
            self.episode = Episode::default();
        }
        let mut settings = s.settings.maintenance.nospace;
        if alarms.iter().any(|a| a.kind == AlarmKind::Nospace) {
            // Only a verdict under NOSPACE needs the quota: etcd's own, from its metrics.
            settings.quota = quota::in_effect(&s, access, settings.quota).await;
        }
        let facts = nospace::Facts {
            members: &members,
            leader,
            alarms: &alarms,
            revision,
            awaiting: self.awaiting,
            backup_revision: s.coordination.compaction_limit(),
            snapshotting: s.coordination.not_to_defragment(),
        };
        let step = nospace::next(&settings, &facts, &self.episode);
        // One cluster-changing call at a time, across the jobs.
        let _change = match step {
            Step::Compact { .. } | Step::Defragment(_) | Step::Disarm { .. } => {
                Some(s.coordination.change().await)
            }
            Step::NoAlarm | Step::Corrupt(_) | Step::Unchanged | Step::Skip(_) | Step::Keep { .. } => None,
        };
        let Ok(local) = self.local.get(&s).await else { return };
        match step {
            Step::NoAlarm => {
                if self.episode != Episode::default() {
                    info!("the NOSPACE alarm is gone");
                    self.episode = Episode::default();
                }
                self.corrupt_logged = false;
                let busy = s.coordination.not_to_defragment();
                match defrag::pick(&s.settings.maintenance.defrag, &members, leader, self.awaiting, busy) {
                    Some(Ok(target)) => {
                        let _change = s.coordination.change().await;
                        self.defragment(access, whom, &members, target, timeout, shared).await;
                    }
                    Some(Err(skip)) => self.skipped(skip, shared),
                    None => self.last_skip = None,
                }
            }
            Step::Corrupt(why) => {
                if !self.corrupt_logged {
                    warn!(alarm = "CORRUPT", "{why}");
                    self.corrupt_logged = true;
                }
            }
            Step::Unchanged => {}
            Step::Compact { revision, reason } => {
                match crate::act::etcd_calls::compact(local, revision).await {
                    Ok(()) => {
                        self.episode.compacted_at(revision);
                        shared.lock().maintenance.compactions += 1;
                        info!(action = "compact", revision, "compacted: {reason}");
                    }
                    Err(e) if refusals::next(Call::Compact, e.refusal) == Next::Done => {
                        self.episode.compacted_at(revision);
                        info!(revision, "compacted already at or past revision {revision}: {}", e.message);
                    }
                    Err(e) => self.refused(Call::Compact, "compact", &e, shared),
                }
            }
            Step::Defragment(target) => {
                let id = target.id;
                if self.defragment(access, whom, &members, target, timeout, shared).await {
                    self.episode.defragmented.insert(id);
                }
            }
            Step::Skip(skip) => self.skipped(skip, shared),
            Step::Disarm { members: raised, reason } => {
                for member in &raised {
                    if let Err(e) = crate::act::etcd_calls::disarm_nospace(local, *member).await {
                        return self.refused(Call::Alarm, "alarm disarm", &e, shared);
                    }
                }
                shared.lock().maintenance.disarms += 1;
                info!(action = "disarm", "disarmed the NOSPACE alarm: {reason}");
                self.episode = Episode::default();
            }
            Step::Keep { reason } => {
                shared.lock().maintenance.nospace_kept += 1;
                warn!(action = "keep-alarm", "{reason}");
                self.episode.kept = Some(Kept { revision, at: now });
            }
        }
    }

    /// Defragment `target`; true when etcd says it is done.
    async fn defragment(
        &mut self,
        access: &Access,
        whom: &[Whom],
        members: &[MemberDb],
        target: Target,
        timeout: Duration,
        shared: &Shared,
    ) -> bool {
        let label = &target.label;
        let Some(endpoint) = whom.iter().find(|w| w.id == target.id).and_then(|w| w.endpoint.clone()) else {
            let detail = format!("no address is known for {label}");
            self.skipped(Skip { reason: SkipReason::Unhealthy, detail }, shared);
            return false;
        };
        self.last_skip = None;
        let before = members.iter().find(|m| m.id == target.id).and_then(|m| m.status).map(|s| s.size);
        info!(action = "defragment", member = %label, "defragmenting {label}: {}", target.reason);
        let started = Instant::now();
        let result = crate::act::etcd_calls::defragment_at(access, &endpoint, timeout).await;
        // Done or not, it must answer again before the next one.
        self.set_awaiting(Some(target.id));
        let took = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                shared.lock().maintenance.defrags += 1;
                let before = before.map(|b| format!(" (its database was {})", size(b))).unwrap_or_default();
                info!(action = "defragmented", member = %label, "defragmented {label} in {took:.1}s{before}");
                true
            }
            Err(e) => {
                warn!(action = "defragment-failed", member = %label, "defragmenting {label} failed after {took:.1}s: {}", e.message);
                self.refused(Call::Defragment, "defragment", &e, shared);
                false
            }
        }
    }

    /// A wanted action not taken: counted every round, logged when it changes.
    fn skipped(&mut self, skip: Skip, shared: &Shared) {
        *shared.lock().maintenance.defrags_skipped.entry(skip.reason).or_default() += 1;
        let key = (skip.reason, skip.detail.clone());
        if self.last_skip.as_ref() != Some(&key) {
            info!(
                action = "skip-defragment",
                reason = skip.reason.as_str(),
                "not defragmenting now: {}",
                skip.detail
            );
            self.last_skip = Some(key);
        }
    }

    /// A refused maintenance call, as the pure policy for `kind` takes it: a refusal that passes
    /// is a skip (tried again next round), one that does not is an error (the round after looks
    /// again all the same).
    fn refused(&mut self, kind: Call, call: &str, e: &CallError, shared: &Shared) {
        let m = &e.message;
        match refusals::next(kind, e.refusal) {
            Next::Fail => {
                warn!(
                    call,
                    "{call} refused: {m} (where auth is on, maintenance needs a user with the root role)"
                );
                shared.lock().error(&format!("{call}: {m}"));
            }
            Next::Retry | Next::ObserveAgain | Next::Done => {
                let detail = format!("{call}: {m}; trying again next round");
                self.skipped(Skip { reason: SkipReason::EtcdRefused, detail }, shared);
            }
        }
    }
}

/// Every member's status, asked concurrently; a member answers only as itself.
async fn statuses(access: &Access, whom: &[Whom], timeout: Duration) -> BTreeMap<u64, DbReport> {
    let mut calls = JoinSet::new();
    for w in whom {
        let Some(endpoint) = w.endpoint.clone() else { continue };
        let (access, id) = (access.clone(), w.id);
        calls.spawn(async move { (id, calls::db_report_at(&access, &endpoint, timeout).await) });
    }
    let mut reports = BTreeMap::new();
    while let Some(joined) = calls.join_next().await {
        if let Ok((id, Ok(report))) = joined {
            if report.member_id == id {
                reports.insert(id, report);
            }
        }
    }
    reports
}
