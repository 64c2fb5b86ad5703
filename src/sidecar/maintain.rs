//! Maintenance at the edge: the leader's sidecar asks every member for its status and the
//! cluster for its alarms, asks the pure policies in [`super::maintenance`] what to do, and does
//! at most one thing per round (a compaction, one member's defragmentation, or a disarm). Every
//! sidecar also reads its client TLS files each round ([`Certificates`]), so a renewed Secret is
//! used without a restart and an expired certificate shows in `/readyz` and the metrics.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::act::etcd_calls;
use crate::config::SidecarArgs;
use crate::context::Context;
use crate::decide::refusals::{self, Call, Next};
use crate::error::{Error, Result};
use crate::etcd_args::ClientTlsFiles;
use crate::observe::cluster::maintenance::{self as calls, DbReport};
use crate::observe::cluster::{Access, Endpoint, MemberClient};
use crate::observed::CallError;

use super::maintenance::certs::{self, CertState};
use super::maintenance::nospace::{self, Alarm, AlarmKind, Episode, Kept, Step};
use super::maintenance::{defrag, size, DbStatus, MemberDb, Skip, SkipReason, Target};
use super::metrics::Shared;

/// The maintenance settings, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MaintenanceSettings {
    pub defrag: defrag::DefragSettings,
    pub nospace: nospace::NospaceSettings,
}

impl MaintenanceSettings {
    /// From the sidecar's options and etcd's own quota setting.
    pub(crate) fn new(args: &SidecarArgs, ctx: &Context) -> Result<Self> {
        let threshold = defrag::check_threshold(args.defrag_threshold).map_err(Error::config)?;
        let quota =
            nospace::quota_from(ctx.user.get("quota-backend-bytes").as_deref()).map_err(Error::config)?;
        Ok(MaintenanceSettings {
            defrag: defrag::DefragSettings { threshold, min_size: args.defrag_min_size },
            nospace: nospace::NospaceSettings { quota, compact: args.compact_on_nospace },
        })
    }
}

/// A member and where to reach it (None: no address known).
#[derive(Debug, Clone)]
pub(crate) struct Whom {
    pub id: u64,
    pub label: String,
    pub is_learner: bool,
    pub endpoint: Option<Endpoint>,
}

/// What maintenance remembers between rounds (only while the local member leads).
pub(crate) struct Maintainer {
    settings: MaintenanceSettings,
    /// The member defragmented last, until it has answered again.
    awaiting: Option<u64>,
    episode: Episode,
    /// The last skip logged: the same one is counted every round but logged once.
    last_skip: Option<(SkipReason, String)>,
    corrupt_logged: bool,
    pub certificates: Certificates,
}

impl Maintainer {
    pub(crate) fn new(settings: MaintenanceSettings, tls: ClientTlsFiles) -> Self {
        Maintainer {
            settings,
            awaiting: None,
            episode: Episode::default(),
            last_skip: None,
            corrupt_logged: false,
            certificates: Certificates::new(tls),
        }
    }

    /// The local member does not lead: a new leader's sidecar starts afresh.
    pub(crate) fn stand_by(&mut self, shared: &Shared) {
        self.awaiting = None;
        self.episode = Episode::default();
        self.last_skip = None;
        self.corrupt_logged = false;
        shared.lock().maintenance.alarms = None;
    }

    /// The member that must not be taken for gone: the one defragmented last, until it answers.
    pub(crate) fn busy_with(&self) -> Option<u64> {
        self.awaiting
    }

    /// One maintenance round beside the leader `leader` (the local member): at most one action.
    pub(crate) async fn lead(
        &mut self,
        access: &Access,
        local: &mut MemberClient,
        whom: &[Whom],
        leader: u64,
        timeout: std::time::Duration,
        shared: &Shared,
    ) {
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
            self.awaiting = None;
        }
        let Some(revision) = reports.get(&leader).map(|r| r.revision) else { return };
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
        let facts = nospace::Facts {
            members: &members,
            leader,
            alarms: &alarms,
            revision,
            awaiting: self.awaiting,
            backup_revision: backup_in_progress(),
        };
        match nospace::next(&self.settings.nospace, &facts, &self.episode) {
            Step::NoAlarm => {
                if self.episode != Episode::default() {
                    info!("the NOSPACE alarm is gone");
                    self.episode = Episode::default();
                }
                self.corrupt_logged = false;
                match defrag::pick(&self.settings.defrag, &members, leader, self.awaiting) {
                    Some(Ok(target)) => {
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
            Step::Compact { revision, reason } => match etcd_calls::compact(local, revision).await {
                Ok(()) => {
                    self.episode.compacted = true;
                    shared.lock().maintenance.compactions += 1;
                    info!(action = "compact", revision, "compacted: {reason}");
                }
                Err(e) if refusals::next(Call::Compact, e.refusal) == Next::Done => {
                    self.episode.compacted = true;
                    info!(revision, "compacted already at or past revision {revision}: {}", e.message);
                }
                Err(e) => self.refused(Call::Compact, "compact", &e, shared),
            },
            Step::Defragment(target) => {
                let id = target.id;
                if self.defragment(access, whom, &members, target, timeout, shared).await {
                    self.episode.defragmented.insert(id);
                }
            }
            Step::Skip(skip) => self.skipped(skip, shared),
            Step::Disarm { members: raised, reason } => {
                for member in &raised {
                    if let Err(e) = etcd_calls::disarm_nospace(local, *member).await {
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
        timeout: std::time::Duration,
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
        let result = etcd_calls::defragment_at(access, &endpoint, timeout).await;
        // Done or not, it must answer again before the next one.
        self.awaiting = Some(target.id);
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

/// The revision of the newest backup still being written, which a compaction must not pass.
/// Scheduled backups (`sidecar::backups`) run inside the round, before maintenance, so none of
/// this sidecar's is being written when maintenance runs. A snapshot streamed by another process
/// (`etcd-bootstrap backup`, a former leader's sidecar) reads one consistent transaction of the
/// database, which a compaction does not change; this is the place to return its revision should
/// backups ever run beside maintenance.
fn backup_in_progress() -> Option<i64> {
    None
}

/// Every member's status, asked concurrently; a member answers only as itself.
async fn statuses(access: &Access, whom: &[Whom], timeout: std::time::Duration) -> BTreeMap<u64, DbReport> {
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

/// The client TLS files, read every round: a change is used at once (a Kubernetes Secret
/// update swaps a symlink; nothing here caches a file), and the certificate's state is the
/// metric, the readiness and one log line per change of state.
pub(crate) struct Certificates {
    files: ClientTlsFiles,
    /// The bytes of (certificate, key, CA) last read.
    seen: Option<[Option<Vec<u8>>; 3]>,
    /// The state last logged (its kind), so one line is written per change.
    logged: Option<&'static str>,
}

impl Certificates {
    fn new(files: ClientTlsFiles) -> Self {
        Certificates { files, seen: None, logged: None }
    }

    /// Read the files; a new access when they changed since the last round (the caller
    /// reconnects with it). Updates the metrics and readiness.
    pub(crate) fn check(&mut self, access: &Access, shared: &Shared) -> Option<Access> {
        let cert_path = self.files.cert.clone()?;
        let read = |p: &Option<std::path::PathBuf>| p.as_ref().map(std::fs::read).transpose();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let what = format!("client certificate {}", cert_path.display());
        let files = (read(&self.files.cert), read(&self.files.key), read(&self.files.ca));
        let (state, ca_state, contents) = match files {
            (Ok(cert), Ok(key), Ok(ca)) => {
                let validity = cert.as_deref().map(certs::validity_of_pem).unwrap_or(Err("no file".into()));
                let ca_state = ca.as_deref().map(|c| CertState::at(&certs::validity_of_pem(c), now));
                (CertState::at(&validity, now), ca_state, Some([cert, key, ca]))
            }
            (cert, key, ca) => {
                let why = [(&cert, &self.files.cert), (&key, &self.files.key), (&ca, &self.files.ca)]
                    .iter()
                    .find_map(|(r, p)| match (r, p) {
                        (Err(e), Some(p)) => Some(format!("cannot read {}: {e}", p.display())),
                        _ => None,
                    })
                    .unwrap_or_default();
                (CertState::Unreadable(why), None, None)
            }
        };
        let ca_usable = ca_state.as_ref().is_none_or(CertState::usable);
        let line = match (&state, &ca_state) {
            (s, Some(ca)) if s.usable() && !ca_usable => ca.describe(&format!(
                "CA certificate {}",
                self.files.ca.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
            )),
            _ => state.describe(&what),
        };
        let kind = match (&state, ca_usable) {
            (_, false) => "ca",
            (CertState::Valid { .. }, _) if state.expiring_soon() => "soon",
            (CertState::Valid { .. }, _) => "valid",
            (CertState::Expired { .. }, _) => "expired",
            (CertState::NotYetValid { .. }, _) => "early",
            (CertState::Unreadable(_), _) => "unreadable",
        };
        {
            let mut m = shared.lock();
            let maintenance = &mut m.maintenance;
            maintenance.cert_expiry.clear();
            if let Some(left) = state.seconds_to_expiry() {
                maintenance.cert_expiry.insert("cert", left);
            }
            if let Some(left) = ca_state.as_ref().and_then(CertState::seconds_to_expiry) {
                maintenance.cert_expiry.insert("ca", left);
            }
            maintenance.cert_problem = (!(state.usable() && ca_usable)).then(|| line.clone());
        }
        let changed = match (&self.seen, &contents) {
            (Some(before), Some(now)) => before != now,
            _ => false,
        };
        if self.logged != Some(kind) && !changed {
            match kind {
                "valid" => info!("{line}"),
                _ => warn!("{line}"),
            }
        }
        self.logged = Some(kind);
        let contents = contents?;
        let first = self.seen.is_none();
        self.seen = Some(contents.clone());
        if first || !changed {
            return None;
        }
        info!("client TLS files changed on disk: using them from now on; {line}");
        let [cert, key, ca] = contents;
        let identity = cert.zip(key);
        Some(access.with_client_tls(ca, identity))
    }
}
