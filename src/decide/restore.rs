//! `--restore-from` in the decision: whether this round needs the snapshot's manifest, and
//! whether this member restores it. Pure: the manifest's facts and the IDs a restore would give
//! come in as [`RestoreRequest`]; the usual decision comes in as a [`Verdict`].
//!
//! The safety rules (DESIGN.md, "Backups and restore"), each a row of the tests below:
//! - never while the old cluster (this pod's data, or the peers answering) has quorum;
//! - never over data that belongs to the cluster the configured `--initial-cluster-token`
//!   starts: a restore needs a new token, so a variable left or set by mistake on a live cluster
//!   whose pods all restart at once cannot roll it back;
//! - `--restore-from` left set does nothing once the data belongs to the restored cluster (its
//!   cluster ID is the one the restore gives), or to any cluster other than the snapshot's;
//! - every initial member restores with the same token, derived from the configured token and
//!   the snapshot's sha256, so members that restored different bytes can never form one cluster.

use crate::decide::{Decision, DecisionSettings, Observation, Verdict};
use crate::observed::{ClusterView, DataDirState};

/// The snapshot named by `--restore-from`, as its manifest describes it, and the cluster IDs
/// that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestoreRequest {
    /// The snapshot's URL, for messages.
    pub snapshot: String,
    pub sha256: String,
    pub revision: i64,
    /// The cluster the snapshot was taken from (its manifest's cluster ID).
    pub source_cluster_id: u64,
    /// The cluster ID the restore gives: the initial cluster with the restore token.
    pub restored_cluster_id: u64,
    /// The cluster ID a plain NEW start with the configured token gives.
    pub configured_cluster_id: u64,
}

/// What `--restore-from` means for this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RestoreVerdict {
    /// Restore the snapshot and start the restored cluster; first archive the member data with
    /// this ID when there is one (data of the old cluster).
    Restore { archive_member: Option<u64>, reason: String },
    /// The usual decision stands; `warning` says why the restore was not done, when that is
    /// worth a warning (not for a restored member restarting).
    Usual { warning: Option<String> },
    /// This member restores once it can (the initial peers do not resolve yet): WAIT, and never
    /// start on the old data meanwhile.
    Wait { reason: String },
}

/// The verdict of the round: the usual one, or RESTORE where the policy says so.
pub(crate) fn final_verdict(usual: Verdict, restore: RestoreVerdict, token: &str) -> Verdict {
    match restore {
        RestoreVerdict::Restore { archive_member, reason } => {
            Verdict { decision: Decision::Restore { archive_member, token: token.to_string() }, reason }
        }
        RestoreVerdict::Wait { reason } => Verdict { decision: Decision::Wait, reason },
        RestoreVerdict::Usual { .. } => usual,
    }
}

/// The restore token: the configured token and the first 16 hex digits of the snapshot's
/// sha256.
pub(crate) fn restore_token(configured: &str, sha256: &str) -> String {
    let short: String = sha256.chars().take(16).collect::<String>().to_ascii_lowercase();
    format!("{configured}-restore-{short}")
}

/// The cluster ID etcd gives a static initial cluster: the first 8 bytes, big-endian, of the
/// sha1 of its member IDs (sorted, 8 bytes big-endian each), each member ID derived from its peer
/// URLs and the token (etcd's `RaftCluster.genID`).
pub(crate) fn static_cluster_id(initial_cluster: &[(String, String)], token: &str) -> u64 {
    use sha1::{Digest, Sha1};
    let mut by_name: std::collections::BTreeMap<&str, Vec<String>> = std::collections::BTreeMap::new();
    for (name, url) in initial_cluster {
        by_name.entry(name.as_str()).or_default().push(url.clone());
    }
    let mut ids: Vec<u64> =
        by_name.values().map(|urls| crate::observed::static_member_id(urls, token)).collect();
    ids.sort_unstable();
    let mut hasher = Sha1::new();
    for id in ids {
        hasher.update(id.to_be_bytes());
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The verdict where no manifest is needed to reach it, so the store is not read: a data dir we
/// refuse, data the marker says came from this very snapshot, data whose cluster has quorum (a
/// restore never rolls back a live cluster: warned), an empty member beside a cluster with
/// quorum (it joins). None where a restore could happen.
pub(crate) fn settled_without_manifest(
    data: &DataDirState,
    cluster: &ClusterView,
    restored_from_this: bool,
    snapshot: &str,
) -> Option<RestoreVerdict> {
    let quorum_id = match cluster {
        ClusterView::Answer { quorum: true, cluster_id, .. } => Some(*cluster_id),
        _ => None,
    };
    match data {
        DataDirState::Unknown { .. } => Some(RestoreVerdict::Usual { warning: None }),
        DataDirState::Member(_) if restored_from_this => Some(RestoreVerdict::Usual { warning: None }),
        DataDirState::Member(meta) if quorum_id == Some(meta.cluster_id) => Some(RestoreVerdict::Usual {
            warning: Some(format!(
                "--restore-from {snapshot} ignored: cluster {:x}, which this data belongs to, has quorum; a restore never rolls back a live cluster",
                meta.cluster_id
            )),
        }),
        DataDirState::Member(_) => None,
        DataDirState::Empty if quorum_id.is_some() => Some(RestoreVerdict::Usual { warning: None }),
        DataDirState::Empty => None,
    }
}

/// Whether this member restores, given the usual verdict of the round.
pub(crate) fn decide_restore(
    obs: &Observation<'_>,
    settings: &DecisionSettings,
    usual: &Verdict,
    request: &RestoreRequest,
) -> RestoreVerdict {
    let usual_with = |warning: String| RestoreVerdict::Usual { warning: Some(warning) };
    let answering = match obs.cluster {
        ClusterView::Answer { cluster_id, quorum, members, .. } => {
            Some((*cluster_id, *quorum, members.iter().any(|m| m.served())))
        }
        ClusterView::NoAnswer { .. } => None,
    };
    if let Some((id, _, _)) = answering {
        if id == request.configured_cluster_id {
            return usual_with(format!(
                "--restore-from {} ignored: the peers answer as cluster {id:x}, the one the configured --initial-cluster-token starts; a restore needs a new --initial-cluster-token (see the runbook)",
                request.snapshot
            ));
        }
    }
    match obs.data {
        DataDirState::Unknown { .. } => RestoreVerdict::Usual { warning: None },
        DataDirState::Member(meta) => {
            if meta.cluster_id == request.restored_cluster_id {
                return RestoreVerdict::Usual { warning: None };
            }
            if meta.cluster_id != request.source_cluster_id {
                return usual_with(format!(
                    "--restore-from {} ignored: the data dir belongs to cluster {:x}, not to the snapshot's cluster {:x} nor to the restored one",
                    request.snapshot, meta.cluster_id, request.source_cluster_id
                ));
            }
            if answering.is_some_and(|(id, quorum, _)| quorum && id == meta.cluster_id) {
                return usual_with(format!(
                    "--restore-from {} ignored: the old cluster {:x} has quorum; a restore never rolls back a live cluster",
                    request.snapshot, meta.cluster_id
                ));
            }
            if meta.cluster_id == request.configured_cluster_id {
                return usual_with(format!(
                    "--restore-from {} ignored: the data dir belongs to cluster {:x}, the one the configured --initial-cluster-token starts; to restore after a permanent quorum loss, also set a new --initial-cluster-token (see the runbook)",
                    request.snapshot, meta.cluster_id
                ));
            }
            if let Some(not_now) = not_an_initial_start(obs, settings) {
                return not_now.verdict(&request.snapshot);
            }
            RestoreVerdict::Restore {
                archive_member: Some(meta.member_id),
                reason: format!(
                    "the data dir holds member {:x} of cluster {:x}, the snapshot's, which has no quorum, and the token is new: archive it and restore {} (revision {}) as the initial cluster of {}",
                    meta.member_id, meta.cluster_id, request.snapshot, request.revision, settings.initial_cluster_size
                ),
            }
        }
        DataDirState::Empty => {
            if let Some((id, quorum, served)) = answering {
                if quorum {
                    return RestoreVerdict::Usual { warning: None };
                }
                // The old cluster answers without quorum: the permanent loss the runbook is for.
                let old_without_quorum = served && id == request.source_cluster_id;
                if served && !old_without_quorum {
                    return RestoreVerdict::Usual { warning: None };
                }
            }
            if !matches!(usual.decision, Decision::New | Decision::Wait) {
                return RestoreVerdict::Usual { warning: None };
            }
            if let Some(not_now) = not_an_initial_start(obs, settings) {
                return match usual.decision {
                    Decision::New => not_now.verdict(&request.snapshot),
                    _ => RestoreVerdict::Usual { warning: None },
                };
            }
            RestoreVerdict::Restore {
                archive_member: None,
                reason: format!(
                    "empty data dir and no cluster with quorum: restore {} (revision {}) as the initial cluster of {}",
                    request.snapshot, request.revision, settings.initial_cluster_size
                ),
            }
        }
    }
}

/// Why this pod cannot be one of the restored initial members now.
enum NotNow {
    /// An ordinal beyond the initial cluster: it joins the restored cluster later.
    BeyondInitial(String),
    /// Initial peers that do not resolve yet: restore once they do.
    Dns(String),
}

impl NotNow {
    fn verdict(self, snapshot: &str) -> RestoreVerdict {
        match self {
            NotNow::BeyondInitial(why) => {
                RestoreVerdict::Usual { warning: Some(format!("--restore-from {snapshot} not done: {why}")) }
            }
            NotNow::Dns(why) => {
                RestoreVerdict::Wait { reason: format!("restore of {snapshot} pending; {why}") }
            }
        }
    }
}

fn not_an_initial_start(obs: &Observation<'_>, settings: &DecisionSettings) -> Option<NotNow> {
    if obs.me.ordinal >= settings.initial_cluster_size {
        return Some(NotNow::BeyondInitial(format!(
            "ordinal {} is beyond the initial cluster of {}: this member joins the restored cluster once it runs",
            obs.me.ordinal, settings.initial_cluster_size
        )));
    }
    if !obs.peers.unresolved_initial.is_empty() {
        return Some(NotNow::Dns(format!("waiting for DNS of {}", obs.peers.unresolved_initial.join(", "))));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::JoinAs;
    use crate::decide::{decide, Me};
    use crate::observed::WalMeta;
    use crate::observed::{Member, PeerDns};

    const SOURCE: u64 = 0xa1;
    const RESTORED: u64 = 0xb2;
    const CONFIGURED: u64 = 0xc3;
    const OTHER: u64 = 0xd4;

    fn request() -> RestoreRequest {
        RestoreRequest {
            snapshot: "s3://b/etcd/snapshot-1".into(),
            sha256: "ab".repeat(32),
            revision: 42,
            source_cluster_id: SOURCE,
            restored_cluster_id: RESTORED,
            configured_cluster_id: CONFIGURED,
        }
    }

    fn me(ordinal: u32) -> Me {
        Me {
            name: format!("etcd-{ordinal}"),
            ordinal,
            peer_url: format!("http://etcd-{ordinal}.etcd:2380"),
            static_id: 99,
        }
    }

    fn member(id: u64, ordinal: u32, served: bool) -> Member {
        Member {
            id,
            name: format!("etcd-{ordinal}"),
            peer_urls: vec![format!("http://etcd-{ordinal}.etcd:2380")],
            client_urls: if served { vec![format!("http://etcd-{ordinal}.etcd:2379")] } else { vec![] },
            is_learner: false,
        }
    }

    fn answer(cluster_id: u64, quorum: bool, served: bool) -> ClusterView {
        ClusterView::Answer {
            endpoint: "etcd-0".into(),
            cluster_id,
            members: (0..3).map(|o| member(10 + u64::from(o), o, served)).collect(),
            quorum,
        }
    }

    fn data_of(cluster_id: u64) -> DataDirState {
        DataDirState::Member(WalMeta { member_id: 7, cluster_id })
    }

    /// The verdict for this round: the usual decision first, then the restore policy.
    fn run(data: DataDirState, cluster: ClusterView, ordinal: u32, dns_missing: bool) -> RestoreVerdict {
        let me = me(ordinal);
        let peers = PeerDns {
            unresolved_initial: if dns_missing { vec!["etcd-2.etcd".into()] } else { vec![] },
            beyond_initial: vec![],
        };
        let settings = DecisionSettings { initial_cluster_size: 3, join_as: JoinAs::Voter };
        let heard = crate::observed::Heard::default();
        let obs = Observation { me: &me, data: &data, cluster: &cluster, heard: &heard, peers: &peers };
        let usual = decide(&obs, &settings);
        decide_restore(&obs, &settings, &usual, &request())
    }

    fn restores(v: &RestoreVerdict) -> Option<Option<u64>> {
        match v {
            RestoreVerdict::Restore { archive_member, .. } => Some(*archive_member),
            RestoreVerdict::Usual { .. } | RestoreVerdict::Wait { .. } => None,
        }
    }

    fn warning(v: &RestoreVerdict) -> &str {
        match v {
            RestoreVerdict::Usual { warning: Some(w) } => w,
            _ => "",
        }
    }

    fn nobody() -> ClusterView {
        ClusterView::NoAnswer { tried: vec![] }
    }

    #[test]
    fn empty_members_of_the_initial_set_restore_where_nobody_has_quorum() {
        // Nobody answers; the restored cluster forming (never served); the old cluster without quorum.
        for cluster in [nobody(), answer(RESTORED, false, false), answer(SOURCE, false, true)] {
            let v = run(DataDirState::Empty, cluster.clone(), 1, false);
            assert_eq!(restores(&v), Some(None), "{cluster:?}: {v:?}");
        }
    }

    #[test]
    fn empty_members_join_a_cluster_with_quorum_and_wait_for_dns() {
        for cluster in [answer(RESTORED, true, true), answer(SOURCE, true, true)] {
            assert_eq!(restores(&run(DataDirState::Empty, cluster, 1, false)), None);
        }
        let v = run(DataDirState::Empty, nobody(), 1, true);
        assert_eq!(restores(&v), None, "waits for DNS like NEW");
        let v = run(DataDirState::Empty, nobody(), 3, false);
        assert_eq!(restores(&v), None, "an ordinal beyond the initial set never restores");
        // The restored cluster without quorum after it served: a restart, never a second restore.
        assert_eq!(restores(&run(DataDirState::Empty, answer(RESTORED, false, true), 1, false)), None);
    }

    #[test]
    fn old_data_is_archived_and_restored_only_without_quorum_and_with_a_new_token() {
        for cluster in [
            nobody(),
            answer(SOURCE, false, true),
            answer(RESTORED, false, false),
            answer(RESTORED, true, true),
        ] {
            let v = run(data_of(SOURCE), cluster.clone(), 0, false);
            assert_eq!(restores(&v), Some(Some(7)), "{cluster:?}: {v:?}");
        }
    }

    #[test]
    fn old_data_waits_for_dns_rather_than_start_the_old_cluster() {
        let v = run(data_of(SOURCE), nobody(), 0, true);
        assert!(matches!(&v, RestoreVerdict::Wait { reason } if reason.contains("waiting for DNS")), "{v:?}");
        let v = run(data_of(SOURCE), nobody(), 3, false);
        assert!(warning(&v).contains("beyond the initial cluster"), "{v:?}");
    }

    #[test]
    fn never_while_the_old_cluster_has_quorum() {
        let v = run(data_of(SOURCE), answer(SOURCE, true, true), 0, false);
        assert_eq!(restores(&v), None);
        assert!(warning(&v).contains("has quorum"), "{v:?}");
    }

    #[test]
    fn never_over_data_of_the_cluster_the_configured_token_starts() {
        // A variable set by mistake on a live cluster whose pods all restart at once: its data
        // has the cluster ID the configured token gives, and nobody answers yet.
        let request = RestoreRequest { source_cluster_id: CONFIGURED, ..request() };
        let me = me(0);
        let data = data_of(CONFIGURED);
        let cluster = nobody();
        let peers = PeerDns::default();
        let settings = DecisionSettings { initial_cluster_size: 3, join_as: JoinAs::Voter };
        let heard = crate::observed::Heard::default();
        let obs = Observation { me: &me, data: &data, cluster: &cluster, heard: &heard, peers: &peers };
        let v = decide_restore(&obs, &settings, &decide(&obs, &settings), &request);
        assert_eq!(restores(&v), None);
        assert!(warning(&v).contains("new --initial-cluster-token"), "{v:?}");
        // Peers answering as the configured cluster: same for an empty member.
        let v = run(DataDirState::Empty, answer(CONFIGURED, false, true), 1, false);
        assert!(warning(&v).contains("new --initial-cluster-token"), "{v:?}");
    }

    #[test]
    fn restore_from_left_set_does_nothing_later() {
        // Restored data, another cluster's data, a refused data dir: the usual decision, quietly
        // for the restored one.
        let v = run(data_of(RESTORED), nobody(), 0, false);
        assert_eq!(v, RestoreVerdict::Usual { warning: None });
        let v = run(data_of(OTHER), nobody(), 0, false);
        assert!(warning(&v).contains("not to the snapshot's cluster"), "{v:?}");
        let unknown = DataDirState::Unknown { entries: vec!["x".into()] };
        assert_eq!(run(unknown, nobody(), 0, false), RestoreVerdict::Usual { warning: None });
    }

    #[test]
    fn the_manifest_is_read_only_where_a_restore_could_happen() {
        let table: &[(DataDirState, ClusterView, bool, bool)] = &[
            (DataDirState::Empty, nobody(), false, true),
            (DataDirState::Empty, answer(RESTORED, true, true), false, false),
            (data_of(SOURCE), nobody(), false, true),
            (data_of(SOURCE), nobody(), true, false),
            (data_of(SOURCE), answer(SOURCE, true, true), false, false),
            (data_of(RESTORED), answer(SOURCE, true, true), false, true),
            (DataDirState::Unknown { entries: vec![] }, nobody(), false, false),
        ];
        for (data, cluster, marked, needed) in table {
            let settled = settled_without_manifest(data, cluster, *marked, "s");
            assert_eq!(settled.is_none(), *needed, "{data:?} {cluster:?} {marked}");
        }
        // The old cluster with quorum: ignored with a warning, without reading the store.
        let settled = settled_without_manifest(&data_of(SOURCE), &answer(SOURCE, true, true), false, "s");
        let Some(RestoreVerdict::Usual { warning: Some(w) }) = settled else { panic!("{settled:?}") };
        assert!(w.contains("has quorum"), "{w}");
    }

    #[test]
    fn tokens_and_cluster_ids_follow_etcd() {
        assert_eq!(restore_token("t", &"AB".repeat(32)), "t-restore-abababababababab");
        // A single default member: etcd's well-known cluster ID cdf818194e3a8c32 for member
        // 8e9e05c52164694d (peer URL http://localhost:2380, token etcd-cluster).
        let one = [("default".to_string(), "http://localhost:2380".to_string())];
        assert_eq!(format!("{:x}", static_cluster_id(&one, "etcd-cluster")), "cdf818194e3a8c32");
        let three: Vec<(String, String)> =
            (0..3).map(|o| (format!("etcd-{o}"), format!("http://etcd-{o}:2380"))).collect();
        let mut shuffled = three.clone();
        shuffled.reverse();
        assert_eq!(static_cluster_id(&three, "t"), static_cluster_id(&shuffled, "t"));
        assert_ne!(static_cluster_id(&three, "t"), static_cluster_id(&three, &restore_token("t", "00")));
    }
}
