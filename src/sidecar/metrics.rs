//! What the sidecar has done and how it is, shared between the control loop and the HTTP
//! endpoint, and rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::observed::Member;

use super::policy::db::SkipReason as DefragSkip;
use super::policy::removal::SkipReason;

/// Why a learner was not promoted this interval (the metric's `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PromotionSkip {
    /// etcd says the learner has not caught up with the leader yet (or has not started).
    NotInSync,
    /// Its pod is absent from DNS: it is a removal candidate, not a promotion.
    PodGone,
    /// etcd refused for another reason worth retrying.
    Refused,
}

impl PromotionSkip {
    pub(crate) const ALL: [PromotionSkip; 3] =
        [PromotionSkip::NotInSync, PromotionSkip::PodGone, PromotionSkip::Refused];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PromotionSkip::NotInSync => "not_in_sync",
            PromotionSkip::PodGone => "pod_gone",
            PromotionSkip::Refused => "refused",
        }
    }
}

/// Why a scheduled backup failed (the metric's `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum BackupFailure {
    /// The store could not be used (unreachable, credentials, listing).
    Store,
    /// The snapshot failed etcd's checksum.
    Snapshot,
    /// etcd did not give a snapshot.
    Etcd,
    /// Anything else (the scratch dir, a setting).
    Other,
}

impl BackupFailure {
    pub(crate) const ALL: [BackupFailure; 4] =
        [BackupFailure::Store, BackupFailure::Snapshot, BackupFailure::Etcd, BackupFailure::Other];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BackupFailure::Store => "store",
            BackupFailure::Snapshot => "snapshot",
            BackupFailure::Etcd => "etcd",
            BackupFailure::Other => "other",
        }
    }
}

/// The last scheduled backup that succeeded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BackupDone {
    /// Unix time (seconds) of the upload's end.
    pub at: f64,
    pub revision: i64,
    pub size: u64,
    pub duration_secs: f64,
}

/// The cluster as the leader's sidecar saw it in its last round (for the alerts: fewer started
/// voters than pods, a removal pending for long).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ClusterView {
    /// Started voting members, learners, and members added but never started.
    pub voters: u64,
    pub learners: u64,
    pub unstarted: u64,
    /// Pods of the set that exist in DNS.
    pub pods: u64,
    /// The longest a member's pod has been gone from DNS without its removal (0: none).
    pub removal_pending_secs: f64,
}

impl ClusterView {
    /// From the member list, how many pods DNS found, and the longest run of "gone" answers.
    pub(crate) fn new(members: &[Member], pods: usize, removal_pending: Option<Duration>) -> ClusterView {
        let count = |f: &dyn Fn(&Member) -> bool| members.iter().filter(|m| f(m)).count() as u64;
        ClusterView {
            voters: count(&|m| m.started() && !m.is_learner),
            learners: count(&|m| m.is_learner),
            unstarted: count(&|m| !m.started() && !m.is_learner),
            pods: pods as u64,
            removal_pending_secs: removal_pending.map(|d| d.as_secs_f64()).unwrap_or_default(),
        }
    }
}

/// The counters and gauges.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    /// Scheduled backups this sidecar uploaded, the last one, and failures by reason.
    pub backups: u64,
    pub backup_last: Option<BackupDone>,
    pub backup_failures: BTreeMap<BackupFailure, u64>,
    /// Scheduled backups that failed since the last success (or since this sidecar started).
    pub backup_consecutive_failures: u64,
    /// Unix time of the newest snapshot in the store, as last listed or uploaded here.
    pub backup_newest: Option<f64>,
    /// `--backup-interval`, once this sidecar has looked at the schedule.
    pub backup_interval: Option<Duration>,
    /// Continuous backups (`--backup-delta-interval`).
    pub deltas: DeltaMetrics,
    /// Leader only (None on the other sidecars): the members and pods it saw.
    pub cluster: Option<ClusterView>,
    pub rounds: u64,
    pub promotions: u64,
    pub promotions_skipped: BTreeMap<PromotionSkip, u64>,
    pub removals: u64,
    pub removals_skipped: BTreeMap<SkipReason, u64>,
    pub errors: u64,
    /// Unix time (seconds) and message of the last error.
    pub last_error: Option<(f64, String)>,
    pub leader: bool,
    /// The local member answered in the last round.
    pub local_member_up: bool,
    /// When the last round ended (for liveness).
    pub last_round: Instant,
    pub maintenance: Maintenance,
    /// The local member's name and etcd version (its status), and the cluster version as its
    /// peer port tells it (`GET /version`: `etcdcluster`), so a rolling upgrade can be watched.
    pub versions: VersionsSeen,
}

/// What the deltas job recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DeltaMetrics {
    /// While this sidecar records a chain (beside the leader): the last revision the store holds,
    /// and how far that is behind the leader's revision; None elsewhere.
    pub revision: Option<i64>,
    pub lag: Option<i64>,
    /// Segments written, and uploads that failed (each is tried again, larger).
    pub segments: u64,
    pub upload_failures: u64,
}

/// Versions the sidecar last saw; None where not (yet) known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VersionsSeen {
    pub member: Option<(String, String)>,
    pub cluster: Option<String>,
}

/// What maintenance did and saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct Maintenance {
    /// The local member's database file and the bytes in use, from its last status.
    pub db_size: Option<u64>,
    pub db_in_use: Option<u64>,
    pub defrags: u64,
    pub defrags_skipped: BTreeMap<DefragSkip, u64>,
    pub compactions: u64,
    pub disarms: u64,
    pub nospace_kept: u64,
    /// Raised NOSPACE and CORRUPT alarms, as the leader's sidecar last listed them; None on the
    /// other sidecars.
    pub alarms: Option<(u64, u64)>,
    /// Seconds to expiry (negative: expired) of the client certificate (`cert`) and the CA (`ca`).
    pub cert_expiry: BTreeMap<&'static str, i64>,
    /// Why the client TLS files cannot be used (expired, unreadable); None when they can.
    pub cert_problem: Option<String>,
}

impl Metrics {
    fn new(now: Instant) -> Self {
        Metrics {
            backups: 0,
            backup_last: None,
            backup_failures: BackupFailure::ALL.iter().map(|r| (*r, 0)).collect(),
            backup_consecutive_failures: 0,
            backup_newest: None,
            backup_interval: None,
            deltas: DeltaMetrics::default(),
            cluster: None,
            rounds: 0,
            promotions: 0,
            promotions_skipped: PromotionSkip::ALL.iter().map(|r| (*r, 0)).collect(),
            removals: 0,
            removals_skipped: SkipReason::ALL.iter().map(|r| (*r, 0)).collect(),
            errors: 0,
            last_error: None,
            leader: false,
            local_member_up: false,
            last_round: now,
            maintenance: Maintenance {
                defrags_skipped: DefragSkip::ALL.iter().map(|r| (*r, 0)).collect(),
                ..Maintenance::default()
            },
            versions: VersionsSeen::default(),
        }
    }

    /// Count an error and remember it as the last one.
    pub(crate) fn error(&mut self, message: &str) {
        self.errors += 1;
        let at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default();
        self.last_error = Some((at, message.to_string()));
    }

    /// The local member did not answer: not up, not the leader, and why as the last error.
    pub(crate) fn local_down(&mut self, message: &str) {
        self.local_member_up = false;
        self.leader = false;
        self.cluster = None;
        self.error(message);
    }

    /// The local member answered; `leader` when it leads (the leader's view is kept only then).
    pub(crate) fn local_up(&mut self, leader: bool) {
        self.local_member_up = true;
        self.leader = leader;
        if !leader {
            self.cluster = None;
        }
    }
}

/// The state the loop writes and the endpoint reads.
#[derive(Debug)]
pub(crate) struct Shared {
    metrics: Mutex<Metrics>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared { metrics: Mutex::new(Metrics::new(Instant::now())) }
    }

    /// The metrics, for reading or updating. A panic while holding the lock cannot leave them
    /// inconsistent in a way that matters (plain counters), so a poisoned lock is used as is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy, for rendering outside the lock.
    pub(crate) fn snapshot(&self) -> Metrics {
        self.lock().clone()
    }
}

/// Longest error message exported as a label value.
const MAX_LABEL_CHARS: usize = 300;

/// The Prometheus text exposition (format 0.0.4).
pub(crate) fn render(m: &Metrics) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let plain = |v: u64| vec![(String::new(), v.to_string())];
    family(
        "etcd_bootstrap_sidecar_rounds_total",
        "counter",
        "Rounds the sidecar has run (one per interval).",
        &plain(m.rounds),
    );
    family(
        "etcd_bootstrap_sidecar_promotions_total",
        "counter",
        "Learners this sidecar promoted to voting members.",
        &plain(m.promotions),
    );
    let skipped = by_reason(m.promotions_skipped.iter().map(|(r, v)| (r.as_str(), *v)));
    family(
        "etcd_bootstrap_sidecar_promotions_skipped_total",
        "counter",
        "Promotions not made in a round, by reason.",
        &skipped,
    );
    family(
        "etcd_bootstrap_sidecar_removals_total",
        "counter",
        "Members this sidecar removed because their pods were gone.",
        &plain(m.removals),
    );
    let skipped = by_reason(m.removals_skipped.iter().map(|(r, v)| (r.as_str(), *v)));
    family(
        "etcd_bootstrap_sidecar_removals_skipped_total",
        "counter",
        "Removals not made in a round, by reason.",
        &skipped,
    );
    family(
        "etcd_bootstrap_sidecar_errors_total",
        "counter",
        "Errors: the local member not answering, failed etcd calls.",
        &plain(m.errors),
    );
    let (at, message) = match &m.last_error {
        Some((at, message)) => (*at, Some(message)),
        None => (0.0, None),
    };
    family(
        "etcd_bootstrap_sidecar_last_error_timestamp_seconds",
        "gauge",
        "Unix time of the last error; 0 when there was none.",
        &[(String::new(), format_float(at))],
    );
    let info: Vec<(String, String)> = message
        .map(|msg| (format!("{{message=\"{}\"}}", label_value(msg)), "1".to_string()))
        .into_iter()
        .collect();
    family("etcd_bootstrap_sidecar_last_error_info", "gauge", "The last error's message, as a label.", &info);
    family(
        "etcd_bootstrap_sidecar_leader",
        "gauge",
        "1 while the local member is the leader (the sidecar acts only then), else 0.",
        &plain(u64::from(m.leader)),
    );
    family(
        "etcd_bootstrap_sidecar_local_member_up",
        "gauge",
        "1 when the local member answered in the last round, else 0.",
        &plain(u64::from(m.local_member_up)),
    );
    let member_version: Vec<(String, String)> = m
        .versions
        .member
        .iter()
        .map(|(name, v)| {
            (format!("{{member=\"{}\",version=\"{}\"}}", label_value(name), label_value(v)), "1".into())
        })
        .collect();
    family(
        "etcd_bootstrap_sidecar_member_version_info",
        "gauge",
        "The local member's etcd version (its status), as a label; absent until it answered.",
        &member_version,
    );
    let cluster_version: Vec<(String, String)> = m
        .versions
        .cluster
        .iter()
        .map(|v| (format!("{{version=\"{}\"}}", label_value(v)), "1".into()))
        .collect();
    family(
        "etcd_bootstrap_sidecar_cluster_version_info",
        "gauge",
        "The cluster version as the local member's peer port tells it (GET /version: etcdcluster), as a label; absent while undecided or unknown.",
        &cluster_version,
    );
    let mm = &m.maintenance;
    let some = |v: Option<u64>| v.map(|v| (String::new(), v.to_string())).into_iter().collect::<Vec<_>>();
    let alarms: Vec<(String, String)> = mm
        .alarms
        .map(|(nospace, corrupt)| {
            vec![
                ("{type=\"nospace\"}".to_string(), nospace.to_string()),
                ("{type=\"corrupt\"}".to_string(), corrupt.to_string()),
            ]
        })
        .unwrap_or_default();
    let expiry: Vec<(String, String)> = mm
        .cert_expiry
        .iter()
        .map(|(file, secs)| (format!("{{file=\"{file}\"}}"), secs.to_string()))
        .collect();
    let families = [
        (
            "etcd_bootstrap_sidecar_db_size_bytes",
            "gauge",
            "Size of the local member's database file (etcd's dbSize), from its last status.",
            some(mm.db_size),
        ),
        (
            "etcd_bootstrap_sidecar_db_size_in_use_bytes",
            "gauge",
            "Bytes in use in the local member's database (etcd's dbSizeInUse), from its last status.",
            some(mm.db_in_use),
        ),
        (
            "etcd_bootstrap_sidecar_defragmentations_total",
            "counter",
            "Defragmentations this sidecar made (of any member) that etcd reported done.",
            plain(mm.defrags),
        ),
        (
            "etcd_bootstrap_sidecar_defragmentations_skipped_total",
            "counter",
            "Rounds in which a wanted defragmentation was not made, by reason.",
            by_reason(mm.defrags_skipped.iter().map(|(r, v)| (r.as_str(), *v))),
        ),
        (
            "etcd_bootstrap_sidecar_compactions_total",
            "counter",
            "Compactions made under a NOSPACE alarm (--compact-on-nospace).",
            plain(mm.compactions),
        ),
        (
            "etcd_bootstrap_sidecar_nospace_disarmed_total",
            "counter",
            "NOSPACE alarms disarmed once every member was below the quota with headroom.",
            plain(mm.disarms),
        ),
        (
            "etcd_bootstrap_sidecar_nospace_kept_total",
            "counter",
            "Times a NOSPACE alarm was kept after defragmenting every member: space is still short.",
            plain(mm.nospace_kept),
        ),
        (
            "etcd_bootstrap_sidecar_alarm",
            "gauge",
            "Raised alarms by type (members that raised one), as the leader's sidecar lists them; absent on the others.",
            alarms,
        ),
        (
            "etcd_bootstrap_sidecar_certificate_expiry_seconds",
            "gauge",
            "Seconds until the client certificate (file=cert) or the CA (file=ca) expires; negative once expired.",
            expiry,
        ),
        (
            "etcd_bootstrap_sidecar_certificate_usable",
            "gauge",
            "1 when the client TLS files can be used (or none are configured), 0 when expired or unreadable.",
            plain(u64::from(mm.cert_problem.is_none())),
        ),
    ];
    for (name, kind, help, samples) in &families {
        family(name, kind, help, samples);
    }
    family(
        "etcd_bootstrap_sidecar_backups_total",
        "counter",
        "Scheduled backups this sidecar took, checked and uploaded.",
        &plain(m.backups),
    );
    let last = m.backup_last.unwrap_or(BackupDone { at: 0.0, revision: 0, size: 0, duration_secs: 0.0 });
    let gauges: [(&str, &str, String); 4] = [
        (
            "etcd_bootstrap_sidecar_backup_last_success_timestamp_seconds",
            "Unix time of the last successful backup by this sidecar; 0 when there was none.",
            format_float(last.at),
        ),
        (
            "etcd_bootstrap_sidecar_backup_last_revision",
            "Revision of the last successful backup.",
            last.revision.to_string(),
        ),
        (
            "etcd_bootstrap_sidecar_backup_last_size_bytes",
            "Size of the last successful backup.",
            last.size.to_string(),
        ),
        (
            "etcd_bootstrap_sidecar_backup_last_duration_seconds",
            "How long the last successful backup took (snapshot, check, upload).",
            format_float(last.duration_secs),
        ),
    ];
    for (name, help, value) in gauges {
        family(name, "gauge", help, &[(String::new(), value)]);
    }
    let cluster: Vec<(String, String)> = m
        .cluster
        .map(|c| {
            [("voter", c.voters), ("learner", c.learners), ("unstarted", c.unstarted)]
                .iter()
                .map(|(state, n)| (format!("{{state=\"{state}\"}}"), n.to_string()))
                .collect()
        })
        .unwrap_or_default();
    family(
        "etcd_bootstrap_sidecar_members",
        "gauge",
        "Members by state (voter: started voting member; learner; unstarted: added, never started), as the leader's sidecar lists them; absent on the others.",
        &cluster,
    );
    let leader_only = |v: Option<String>| v.map(|v| (String::new(), v)).into_iter().collect::<Vec<_>>();
    family(
        "etcd_bootstrap_sidecar_pods",
        "gauge",
        "Pods of the set that exist in DNS, as the leader's sidecar looked them up; absent on the others.",
        &leader_only(m.cluster.map(|c| c.pods.to_string())),
    );
    family(
        "etcd_bootstrap_sidecar_removal_pending_seconds",
        "gauge",
        "The longest a member's pod has been gone from DNS while the member is still listed (0: none), on the leader's sidecar; absent on the others.",
        &leader_only(m.cluster.map(|c| format_float(c.removal_pending_secs))),
    );
    family(
        "etcd_bootstrap_sidecar_backup_consecutive_failures",
        "gauge",
        "Scheduled backups by this sidecar that failed since its last success.",
        &plain(m.backup_consecutive_failures),
    );
    family(
        "etcd_bootstrap_sidecar_backup_newest_timestamp_seconds",
        "gauge",
        "Unix time of the newest snapshot in the backup store, as this sidecar last listed it (beside the leader); absent before.",
        &leader_only(m.backup_newest.map(format_float)),
    );
    family(
        "etcd_bootstrap_sidecar_backup_interval_seconds",
        "gauge",
        "The backup interval (--backup-interval); absent without scheduled backups.",
        &leader_only(m.backup_interval.map(|d| format_float(d.as_secs_f64()))),
    );
    let failures: Vec<(String, String)> = m
        .backup_failures
        .iter()
        .map(|(r, v)| (format!("{{reason=\"{}\"}}", r.as_str()), v.to_string()))
        .collect();
    family(
        "etcd_bootstrap_sidecar_backup_failures_total",
        "counter",
        "Scheduled backups that failed, by reason (store, snapshot, etcd, other).",
        &failures,
    );
    family(
        "etcd_bootstrap_backup_delta_revision",
        "gauge",
        "The last revision the delta chain holds in the store; only beside the leader, with --backup-delta-interval.",
        &leader_only(m.deltas.revision.map(|r| r.to_string())),
    );
    family(
        "etcd_bootstrap_backup_delta_lag_revisions",
        "gauge",
        "The leader's revision minus the last one the delta chain holds in the store (0: all recorded); only beside the leader.",
        &leader_only(m.deltas.lag.map(|r| r.to_string())),
    );
    family(
        "etcd_bootstrap_backup_delta_segments_total",
        "counter",
        "Delta segments this sidecar uploaded.",
        &plain(m.deltas.segments),
    );
    family(
        "etcd_bootstrap_backup_delta_upload_failures_total",
        "counter",
        "Delta passes the store failed (a listing or the upload; each is tried again with the changes since).",
        &plain(m.deltas.upload_failures),
    );
    out
}

/// Samples labelled `reason`.
fn by_reason<'a>(counts: impl Iterator<Item = (&'a str, u64)>) -> Vec<(String, String)> {
    counts.map(|(reason, v)| (format!("{{reason=\"{reason}\"}}"), v.to_string())).collect()
}

fn format_float(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else {
        format!("{v:.3}")
    }
}

/// A label value: backslash, double quote and newline escaped, bounded in length.
fn label_value(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().take(MAX_LABEL_CHARS) {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // A rolling upgrade is watched by the versions each sidecar reports: its member's, and the
    // cluster version, absent while unknown.
    #[test]
    fn renders_the_member_and_cluster_versions_as_labels_once_known() {
        let mut m = Metrics::new(Instant::now());
        let text = render(&m);
        assert!(text.contains("# TYPE etcd_bootstrap_sidecar_member_version_info gauge"), "{text}");
        assert!(!text.contains("etcd_bootstrap_sidecar_member_version_info{"), "{text}");
        assert!(!text.contains("etcd_bootstrap_sidecar_cluster_version_info{"), "{text}");
        m.versions =
            VersionsSeen { member: Some(("etcd-1".into(), "3.5.30".into())), cluster: Some("3.5".into()) };
        let text = render(&m);
        for line in [
            "etcd_bootstrap_sidecar_member_version_info{member=\"etcd-1\",version=\"3.5.30\"} 1",
            "etcd_bootstrap_sidecar_cluster_version_info{version=\"3.5\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn renders_every_family_with_help_and_type() {
        let mut m = Metrics::new(Instant::now());
        m.promotions = 2;
        m.removals = 1;
        *m.removals_skipped.entry(SkipReason::HigherOrdinal).or_default() += 4;
        m.leader = true;
        let text = render(&m);
        for line in [
            "# TYPE etcd_bootstrap_sidecar_promotions_total counter",
            "etcd_bootstrap_sidecar_promotions_total 2",
            "etcd_bootstrap_sidecar_removals_total 1",
            "etcd_bootstrap_sidecar_removals_skipped_total{reason=\"higher_ordinal\"} 4",
            "etcd_bootstrap_sidecar_removals_skipped_total{reason=\"dns_unknown\"} 0",
            "etcd_bootstrap_sidecar_promotions_skipped_total{reason=\"not_in_sync\"} 0",
            "etcd_bootstrap_sidecar_leader 1",
            "etcd_bootstrap_sidecar_last_error_timestamp_seconds 0",
            "# HELP etcd_bootstrap_sidecar_last_error_info The last error's message, as a label.",
            "etcd_bootstrap_sidecar_defragmentations_skipped_total{reason=\"waiting\"} 0",
            "etcd_bootstrap_sidecar_defragmentations_total 0",
            "etcd_bootstrap_sidecar_certificate_usable 1",
            "# TYPE etcd_bootstrap_sidecar_alarm gauge",
            "etcd_bootstrap_sidecar_backups_total 0",
            "etcd_bootstrap_sidecar_backup_last_success_timestamp_seconds 0",
            "etcd_bootstrap_sidecar_backup_failures_total{reason=\"store\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("etcd_bootstrap_sidecar_last_error_info{"), "{text}");
        // Every sample line belongs to a family announced before it.
        let mut announced = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                announced.push(rest.split(' ').next().unwrap_or_default().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                assert_eq!(announced.last().map(String::as_str), Some(name), "{line}");
            }
        }
    }

    #[test]
    fn maintenance_families_show_what_is_known() {
        let mut m = Metrics::new(Instant::now());
        let text = render(&m);
        for absent in
            ["etcd_bootstrap_sidecar_db_size_bytes ", "etcd_bootstrap_sidecar_alarm{", "_expiry_seconds{"]
        {
            let sample = text.lines().any(|l| !l.starts_with('#') && l.contains(absent));
            assert!(!sample, "nothing known yet, no sample: {absent}\n{text}");
        }
        let mm = &mut m.maintenance;
        (mm.db_size, mm.db_in_use, mm.alarms) = (Some(30_000_000), Some(1_000_000), Some((2, 0)));
        mm.cert_expiry.insert("cert", -300);
        mm.cert_problem = Some("expired".into());
        *mm.defrags_skipped.entry(DefragSkip::Quorum).or_default() += 3;
        let text = render(&m);
        for line in [
            "etcd_bootstrap_sidecar_db_size_bytes 30000000",
            "etcd_bootstrap_sidecar_db_size_in_use_bytes 1000000",
            "etcd_bootstrap_sidecar_alarm{type=\"nospace\"} 2",
            "etcd_bootstrap_sidecar_alarm{type=\"corrupt\"} 0",
            "etcd_bootstrap_sidecar_certificate_expiry_seconds{file=\"cert\"} -300",
            "etcd_bootstrap_sidecar_certificate_usable 0",
            "etcd_bootstrap_sidecar_defragmentations_skipped_total{reason=\"quorum\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn the_last_backup_and_failures_by_reason_are_exported() {
        let mut m = Metrics::new(Instant::now());
        m.backups = 3;
        m.backup_last =
            Some(BackupDone { at: 1_795_833_000.5, revision: 42, size: 20480, duration_secs: 0.25 });
        *m.backup_failures.entry(BackupFailure::Store).or_default() += 2;
        let text = render(&m);
        for line in [
            "etcd_bootstrap_sidecar_backups_total 3",
            "etcd_bootstrap_sidecar_backup_last_success_timestamp_seconds 1795833000.500",
            "etcd_bootstrap_sidecar_backup_last_revision 42",
            "etcd_bootstrap_sidecar_backup_last_size_bytes 20480",
            "etcd_bootstrap_sidecar_backup_last_duration_seconds 0.250",
            "etcd_bootstrap_sidecar_backup_failures_total{reason=\"store\"} 2",
            "etcd_bootstrap_sidecar_backup_failures_total{reason=\"snapshot\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn the_leaders_view_of_members_and_pods_is_exported_by_the_leader_only() {
        let member = |id: u64, name: &str, is_learner: bool| Member {
            id,
            name: name.into(),
            peer_urls: vec![],
            client_urls: vec![],
            is_learner,
        };
        let members = [
            member(1, "etcd-0", false),
            member(2, "etcd-1", false),
            member(3, "etcd-2", true),
            member(4, "", false),
        ];
        let view = ClusterView::new(&members, 5, Some(Duration::from_millis(61_500)));
        let want = ClusterView { voters: 2, learners: 1, unstarted: 1, pods: 5, removal_pending_secs: 61.5 };
        assert_eq!(view, want);
        assert_eq!(ClusterView::new(&[], 0, None).removal_pending_secs, 0.0);

        let mut m = Metrics::new(Instant::now());
        m.local_up(true);
        m.cluster = Some(view);
        let text = render(&m);
        for line in [
            "etcd_bootstrap_sidecar_members{state=\"voter\"} 2",
            "etcd_bootstrap_sidecar_members{state=\"learner\"} 1",
            "etcd_bootstrap_sidecar_members{state=\"unstarted\"} 1",
            "etcd_bootstrap_sidecar_pods 5",
            "etcd_bootstrap_sidecar_removal_pending_seconds 61.500",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // No longer the leader, or the local member down: the view is gone, not stale.
        for lost in [|m: &mut Metrics| m.local_up(false), |m: &mut Metrics| m.local_down("x")] {
            let mut m = m.clone();
            lost(&mut m);
            let text = render(&m);
            for absent in
                ["etcd_bootstrap_sidecar_members{", "etcd_bootstrap_sidecar_pods ", "_pending_seconds "]
            {
                assert!(
                    !text.lines().any(|l| l.starts_with(absent)),
                    "{absent} after leadership lost:\n{text}"
                );
            }
        }
    }

    #[test]
    fn backup_age_failures_in_a_row_and_interval_are_exported() {
        let mut m = Metrics::new(Instant::now());
        let text = render(&m);
        assert!(text.contains("\netcd_bootstrap_sidecar_backup_consecutive_failures 0\n"), "{text}");
        assert!(!text.contains("\netcd_bootstrap_sidecar_backup_newest_timestamp_seconds "), "{text}");
        assert!(!text.contains("\netcd_bootstrap_sidecar_backup_interval_seconds "), "{text}");
        m.backup_consecutive_failures = 3;
        m.backup_newest = Some(1_795_833_000.0);
        m.backup_interval = Some(Duration::from_secs(3600));
        let text = render(&m);
        for line in [
            "etcd_bootstrap_sidecar_backup_consecutive_failures 3",
            "etcd_bootstrap_sidecar_backup_newest_timestamp_seconds 1795833000.000",
            "etcd_bootstrap_sidecar_backup_interval_seconds 3600.000",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn delta_metrics_show_beside_the_recording_leader_and_count_everywhere() {
        let mut m = Metrics::new(Instant::now());
        let text = render(&m);
        for line in [
            "etcd_bootstrap_backup_delta_segments_total 0",
            "etcd_bootstrap_backup_delta_upload_failures_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("\netcd_bootstrap_backup_delta_revision "), "not recording: absent\n{text}");
        assert!(!text.contains("\netcd_bootstrap_backup_delta_lag_revisions "), "{text}");
        m.deltas = DeltaMetrics { revision: Some(4711), lag: Some(3), segments: 12, upload_failures: 2 };
        let text = render(&m);
        for line in [
            "etcd_bootstrap_backup_delta_revision 4711",
            "etcd_bootstrap_backup_delta_lag_revisions 3",
            "etcd_bootstrap_backup_delta_segments_total 12",
            "etcd_bootstrap_backup_delta_upload_failures_total 2",
            "# TYPE etcd_bootstrap_backup_delta_lag_revisions gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn the_last_error_is_a_escaped_label() {
        let mut m = Metrics::new(Instant::now());
        m.error("member remove: \"x\" failed\nback\\slash");
        let text = render(&m);
        assert!(
            text.contains(
                "etcd_bootstrap_sidecar_last_error_info{message=\"member remove: \\\"x\\\" failed\\nback\\\\slash\"} 1"
            ),
            "{text}"
        );
        assert!(!text.contains("etcd_bootstrap_sidecar_last_error_timestamp_seconds 0\n"), "{text}");
        assert!(text.contains("etcd_bootstrap_sidecar_errors_total 1"), "{text}");
    }
}
