//! `--restore-from` in the round's verdict: whether this round needs the snapshot's manifest,
//! and whether this member restores it. Pure: the manifest's facts and the IDs a restore would
//! give come in as [`RestoreRequest`] (in [`RestoreFacts`]); the usual decision comes in as a
//! [`Verdict`]; every answer of the round (client and peer ports alike) comes in the
//! [`Observation`].
//!
//! The safety rules (DESIGN.md, "Backups and restore"), each a row of the tests below:
//! - an empty volume restores only where, without `--restore-from`, it would start NEW: no
//!   answer shows a cluster that has served (a client port, with or without quorum, or a peer
//!   port's list with client URLs);
//! - data of the snapshot's cluster is archived and restored only when no answer shows that
//!   cluster with quorum, every one of its members whose peer port answers also answers on its
//!   client port without a leader (a peer port beside a silent client port may be a live cluster
//!   behind a network policy), the token is new, and no answer shows another cluster in which
//!   this pod's entry has served (its data would be older than what it acknowledged there);
//! - never over data that belongs to the cluster the configured `--initial-cluster-token`
//!   starts: a restore needs a new token, so a variable left or set by mistake on a live cluster
//!   whose pods all restart at once cannot roll it back;
//! - `--restore-from` left set does nothing once the data belongs to the restored cluster (its
//!   cluster ID is the one the restore gives), or to any cluster other than the snapshot's;
//! - every initial member restores with the same token, derived from the configured token and
//!   the snapshot's sha256, so members that restored different bytes can never form one cluster.

use crate::decide::{verdict, Decision, DecisionSettings, Observation, Verdict};
use crate::observed::{ClusterView, DataDirState, Member};

/// The snapshot named by `--restore-from`, as its manifest describes it, and the cluster IDs
/// that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestoreRequest {
    /// The snapshot's URL, for messages (never with credentials).
    pub snapshot: String,
    pub sha256: String,
    pub revision: i64,
    /// The cluster the snapshot was taken from (its manifest's cluster ID).
    pub source_cluster_id: u64,
    /// The token of the restored cluster ([`restore_token`]).
    pub token: String,
    /// The cluster ID the restore gives: the initial cluster with the restore token.
    pub restored_cluster_id: u64,
    /// The cluster ID a plain NEW start with the configured token gives.
    pub configured_cluster_id: u64,
}

/// Where a restore with delta segments stops (`--restore-to-revision`, `--restore-to-time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestorePoint {
    /// The newest point the snapshot's chain reaches.
    Newest,
    /// Exactly this revision.
    Revision(i64),
    /// The last revision received at or before this time (milliseconds since the epoch).
    Time(u64),
}

/// What the round gathered for `--restore-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestoreFacts {
    /// The snapshot's URL, for messages (never with credentials).
    pub snapshot: String,
    /// The data dir's restore marker names this very snapshot: it was restored from it.
    pub restored_from_this: bool,
    pub manifest: SnapshotFacts,
}

/// The snapshot's manifest, as far as the round read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SnapshotFacts {
    /// Not read: [`settled_without_manifest`] settles this round without it.
    NotRead,
    /// The store could not be read (why).
    Unreadable(String),
    Read(RestoreRequest),
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
    /// This member restores once it can (the initial peers do not resolve yet, or the snapshot
    /// is not read yet): WAIT, and never start on the old data meanwhile.
    Wait { reason: String },
}

/// The round's verdict with `--restore-from` applied to the usual one.
pub(crate) fn apply(
    obs: &Observation<'_>,
    settings: &DecisionSettings,
    usual: Verdict,
    facts: &RestoreFacts,
) -> Verdict {
    if let Some(settled) = settled_without_manifest(obs, facts.restored_from_this, &facts.snapshot) {
        return final_verdict(usual, settled, "");
    }
    match &facts.manifest {
        SnapshotFacts::Read(request) => {
            let decided = decide_restore(obs, settings, request);
            final_verdict(usual, decided, &request.token)
        }
        // With data the usual decision is always safe: a store that cannot be read must not
        // stop a member from restarting. An empty volume would start NEW instead of the restore
        // the operator asked for: never.
        SnapshotFacts::Unreadable(why) => match obs.data {
            DataDirState::Member(_) | DataDirState::Unknown { .. } => Verdict {
                warning: Some(format!(
                    "--restore-from {}: the snapshot cannot be read ({why}); the usual decision stands",
                    facts.snapshot
                )),
                ..usual
            },
            DataDirState::Empty => verdict(
                Decision::Wait,
                format!("--restore-from {}: the snapshot cannot be read ({why})", facts.snapshot),
            ),
        },
        SnapshotFacts::NotRead => verdict(
            Decision::Wait,
            format!("--restore-from {}: the snapshot's manifest is read first", facts.snapshot),
        ),
    }
}

/// The verdict of the round: the usual one, or RESTORE where the policy says so.
pub(crate) fn final_verdict(usual: Verdict, restore: RestoreVerdict, token: &str) -> Verdict {
    match restore {
        RestoreVerdict::Restore { archive_member, reason } => {
            verdict(Decision::Restore { archive_member, token: token.to_string() }, reason)
        }
        RestoreVerdict::Wait { reason } => verdict(Decision::Wait, reason),
        RestoreVerdict::Usual { warning } => Verdict { warning, ..usual },
    }
}

/// The restore token: the configured token and the first 16 hex digits of the snapshot's
/// sha256, and with delta segments replayed the last revision replayed: members that would
/// restore different data get different member IDs.
pub(crate) fn restore_token(configured: &str, sha256: &str, replayed_to: Option<i64>) -> String {
    let short: String = sha256.chars().take(16).collect::<String>().to_ascii_lowercase();
    match replayed_to {
        None => format!("{configured}-restore-{short}"),
        Some(revision) => format!("{configured}-restore-{short}-r{revision}"),
    }
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

/// Every answer of the round as (who, cluster ID, quorum, members): the client view, every
/// client port's answer, every peer port's list.
fn every_answer<'a>(obs: &'a Observation<'a>) -> Vec<(&'a str, u64, bool, &'a [Member])> {
    let mut all: Vec<(&str, u64, bool, &[Member])> = obs.heard.lists().collect();
    if let ClusterView::Answer { endpoint, cluster_id, quorum, members } = obs.cluster {
        all.push((endpoint.as_str(), *cluster_id, *quorum, members.as_slice()));
    }
    all
}

/// The cluster that shows quorum in some answer, if any.
fn with_quorum(obs: &Observation<'_>) -> Option<u64> {
    every_answer(obs).into_iter().find(|(_, _, quorum, _)| *quorum).map(|(_, id, _, _)| id)
}

/// A cluster that has served in some answer (who showed it, and its ID).
fn served(obs: &Observation<'_>) -> Option<(String, u64)> {
    every_answer(obs)
        .into_iter()
        .find(|(_, _, _, members)| members.iter().any(Member::served))
        .map(|(who, id, _, _)| (who.to_string(), id))
}

/// A cluster other than `mine` in whose list this pod's entry (its name or peer URL) has served.
fn my_entry_served_elsewhere(obs: &Observation<'_>, mine: u64) -> Option<(String, u64, u64)> {
    every_answer(obs).into_iter().filter(|(_, id, _, _)| *id != mine).find_map(|(who, id, _, members)| {
        members
            .iter()
            .find(|m| m.served() && (m.name == obs.me.name || m.peer_urls.contains(&obs.me.peer_url)))
            .map(|m| (who.to_string(), id, m.id))
    })
}

/// The hosts whose peer ports answer for `cluster` while their client ports give no answer
/// without a leader for it.
fn peer_ports_without_client_answer(obs: &Observation<'_>, cluster: u64) -> Vec<String> {
    obs.heard
        .peer_lists
        .iter()
        .filter(|l| l.cluster_id == cluster)
        .filter(|l| {
            !obs.heard.clients.iter().any(|c| c.host == l.host && c.cluster_id == cluster && !c.quorum)
        })
        .map(|l| l.host.clone())
        .collect()
}

/// The verdict where no manifest is needed to reach it, so the store is not read: a data dir we
/// refuse, data the marker says came from this very snapshot, data whose cluster has quorum (a
/// restore never rolls back a live cluster: warned), data of a pod whose entry has served in
/// another cluster (warned), an empty member beside a cluster with quorum (it joins), an empty
/// member beside a cluster that has served (warned). None where a restore could happen.
pub(crate) fn settled_without_manifest(
    obs: &Observation<'_>,
    restored_from_this: bool,
    snapshot: &str,
) -> Option<RestoreVerdict> {
    let warn = |w: String| Some(RestoreVerdict::Usual { warning: Some(w) });
    match obs.data {
        DataDirState::Unknown { .. } => Some(RestoreVerdict::Usual { warning: None }),
        DataDirState::Member(_) if restored_from_this => Some(RestoreVerdict::Usual { warning: None }),
        DataDirState::Member(meta) if with_quorum_of(obs, meta.cluster_id) => warn(format!(
            "--restore-from {snapshot} ignored: cluster {:x}, which this data belongs to, has quorum; a restore never rolls back a live cluster",
            meta.cluster_id
        )),
        DataDirState::Member(meta) => match my_entry_served_elsewhere(obs, meta.cluster_id) {
            Some((who, cluster, id)) => warn(format!(
                "--restore-from {snapshot} ignored: {who} shows this pod as member {id:x} of cluster {cluster:x}, where it has served; restoring here would start it on data older than what it acknowledged there"
            )),
            None => None,
        },
        DataDirState::Empty if with_quorum(obs).is_some() => Some(RestoreVerdict::Usual { warning: None }),
        DataDirState::Empty => match served(obs) {
            Some((who, cluster)) => warn(format!(
                "--restore-from {snapshot} ignored: {who} shows cluster {cluster:x}, which has served; an empty volume restores only where it would otherwise start NEW"
            )),
            None => None,
        },
    }
}

fn with_quorum_of(obs: &Observation<'_>, cluster: u64) -> bool {
    every_answer(obs).into_iter().any(|(_, id, quorum, _)| quorum && id == cluster)
}

/// Whether this member restores, where [`settled_without_manifest`] did not settle it.
pub(crate) fn decide_restore(
    obs: &Observation<'_>,
    settings: &DecisionSettings,
    request: &RestoreRequest,
) -> RestoreVerdict {
    let usual_with = |warning: String| RestoreVerdict::Usual { warning: Some(warning) };
    if let Some((who, _, _, _)) =
        every_answer(obs).into_iter().find(|(_, id, _, _)| *id == request.configured_cluster_id)
    {
        return usual_with(format!(
            "--restore-from {} ignored: {who} answers as cluster {:x}, the one the configured --initial-cluster-token starts; a restore needs a new --initial-cluster-token (see the runbook)",
            request.snapshot, request.configured_cluster_id
        ));
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
            if meta.cluster_id == request.configured_cluster_id {
                return usual_with(format!(
                    "--restore-from {} ignored: the data dir belongs to cluster {:x}, the one the configured --initial-cluster-token starts; to restore after a permanent quorum loss, also set a new --initial-cluster-token (see the runbook)",
                    request.snapshot, meta.cluster_id
                ));
            }
            let silent = peer_ports_without_client_answer(obs, meta.cluster_id);
            if !silent.is_empty() {
                return usual_with(format!(
                    "--restore-from {} ignored: {} answer(s) for cluster {:x} on the peer port but give no answer without a leader on the client port; a live cluster may sit behind a network policy, so only client ports that answer without a leader prove the quorum lost",
                    request.snapshot,
                    silent.join(", "),
                    meta.cluster_id
                ));
            }
            if let Some(not_now) = not_an_initial_start(obs, settings) {
                return not_now.verdict(&request.snapshot);
            }
            RestoreVerdict::Restore {
                archive_member: Some(meta.member_id),
                reason: format!(
                    "the data dir holds member {:x} of cluster {:x}, the snapshot's, which no answer shows with quorum, and the token is new: archive it and restore {} (revision {}) as the initial cluster of {}",
                    meta.member_id, meta.cluster_id, request.snapshot, request.revision, settings.initial_cluster_size
                ),
            }
        }
        DataDirState::Empty => {
            if let Some((who, cluster)) = served(obs) {
                return usual_with(format!(
                    "--restore-from {} ignored: {who} shows cluster {cluster:x}, which has served; an empty volume restores only where it would otherwise start NEW",
                    request.snapshot
                ));
            }
            if let Some(not_now) = not_an_initial_start(obs, settings) {
                return not_now.verdict(&request.snapshot);
            }
            RestoreVerdict::Restore {
                archive_member: None,
                reason: format!(
                    "empty data dir and no answer shows a cluster that has served: restore {} (revision {}) as the initial cluster of {}",
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
    use crate::observed::{ClientAnswer, Heard, PeerList, WalMeta};
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
            token: "t-restore-abababababababab".into(),
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

    fn members(served: bool) -> Vec<Member> {
        (0..3).map(|o| member(10 + u64::from(o), o, served)).collect()
    }

    /// A client answer from etcd-1 of `cluster_id`'s three members.
    fn answer(cluster_id: u64, quorum: bool, served: bool) -> ClusterView {
        ClusterView::Answer { endpoint: "etcd-1.etcd".into(), cluster_id, members: members(served), quorum }
    }

    fn data_of(cluster_id: u64) -> DataDirState {
        DataDirState::Member(WalMeta { member_id: 7, cluster_id })
    }

    fn nobody() -> ClusterView {
        ClusterView::NoAnswer { tried: vec![] }
    }

    fn settings() -> DecisionSettings {
        DecisionSettings { initial_cluster_size: 3, join_as: JoinAs::Voter }
    }

    fn peers(dns_missing: bool) -> PeerDns {
        PeerDns {
            unresolved_initial: if dns_missing { vec!["etcd-2.etcd".into()] } else { vec![] },
            beyond_initial: vec![],
        }
    }

    /// The whole verdict of the round (the table, then `--restore-from`), as `decide::round` has it.
    fn verdict_with(
        data: DataDirState,
        cluster: ClusterView,
        heard: Heard,
        ordinal: u32,
        marked: bool,
    ) -> Verdict {
        let me = me(ordinal);
        let peers = peers(false);
        let obs = Observation { me: &me, data: &data, cluster: &cluster, heard: &heard, peers: &peers };
        let facts = RestoreFacts {
            snapshot: "s3://b/etcd/snapshot-1".into(),
            restored_from_this: marked,
            manifest: SnapshotFacts::Read(request()),
        };
        apply(&obs, &settings(), decide(&obs, &settings()), &facts)
    }

    /// The restore policy alone, with the round's answers in `heard` too.
    fn run_heard(
        data: DataDirState,
        cluster: ClusterView,
        heard: Heard,
        ordinal: u32,
        dns: bool,
    ) -> RestoreVerdict {
        let me = me(ordinal);
        let peers = peers(dns);
        let obs = Observation { me: &me, data: &data, cluster: &cluster, heard: &heard, peers: &peers };
        settled_without_manifest(&obs, false, "s3://b/etcd/snapshot-1")
            .unwrap_or_else(|| decide_restore(&obs, &settings(), &request()))
    }

    fn run(data: DataDirState, cluster: ClusterView, ordinal: u32, dns_missing: bool) -> RestoreVerdict {
        run_heard(data, cluster, Heard::default(), ordinal, dns_missing)
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

    fn peer_list(ordinal: u32, cluster_id: u64, members: Vec<Member>) -> PeerList {
        PeerList { host: format!("etcd-{ordinal}.etcd"), cluster_id, members }
    }

    fn client(ordinal: u32, cluster_id: u64, quorum: bool, members: Vec<Member>) -> ClientAnswer {
        ClientAnswer { host: format!("etcd-{ordinal}.etcd"), cluster_id, quorum, members }
    }

    /// Row: empty, or data of the snapshot's cluster with a new token | empty: no answer shows a cluster that has served; data: no answer shows its cluster with quorum, and each of its peer ports that answers has a client answer without a leader | `--restore-from` set, ordinal < initial size, and no answer shows this pod's entry served in another cluster | RESTORE
    mod empty_or_data_of_the_snapshot_s_cluster_with_a_new_token_restore {
        use super::*;

        #[test]
        fn empty_members_of_the_initial_set_restore_only_where_no_answer_shows_a_served_cluster() {
            // Nobody answers; the restored cluster forming (never served).
            for cluster in [nobody(), answer(RESTORED, false, false)] {
                let v = run(DataDirState::Empty, cluster.clone(), 1, false);
                assert_eq!(restores(&v), Some(None), "{cluster:?}: {v:?}");
            }
            // The old cluster without quorum, after it served: an empty volume would start NEW
            // nowhere here, so it does not restore either (the members with data restore first).
            let v = run(DataDirState::Empty, answer(SOURCE, false, true), 1, false);
            assert_eq!(restores(&v), None, "{v:?}");
            assert!(warning(&v).contains("which has served"), "{v:?}");
        }

        #[test]
        fn old_data_is_archived_and_restored_only_without_quorum_and_with_a_new_token() {
            for cluster in [
                nobody(),
                answer(SOURCE, false, true),
                answer(RESTORED, false, false),
                // The restored cluster formed by the others, where my entry has never served.
                ClusterView::Answer {
                    endpoint: "etcd-1.etcd".into(),
                    cluster_id: RESTORED,
                    members: vec![member(10, 0, false), member(11, 1, true), member(12, 2, true)],
                    quorum: true,
                },
            ] {
                let v = run(data_of(SOURCE), cluster.clone(), 0, false);
                assert_eq!(restores(&v), Some(Some(7)), "{cluster:?}: {v:?}");
            }
        }
    }

    #[test]
    fn empty_members_join_a_cluster_with_quorum_and_wait_for_dns() {
        for cluster in [answer(RESTORED, true, true), answer(SOURCE, true, true)] {
            assert_eq!(restores(&run(DataDirState::Empty, cluster, 1, false)), None);
        }
        let v = run(DataDirState::Empty, nobody(), 1, true);
        assert!(matches!(&v, RestoreVerdict::Wait { reason } if reason.contains("waiting for DNS")), "{v:?}");
        let v = run(DataDirState::Empty, nobody(), 3, false);
        assert_eq!(restores(&v), None, "an ordinal beyond the initial set never restores");
        // The restored cluster without quorum after it served: a restart, never a second restore.
        assert_eq!(restores(&run(DataDirState::Empty, answer(RESTORED, false, true), 1, false)), None);
    }

    // Found from outside the project (issue 18, first sequence): after a restore, etcd-2 lost
    // its volume while etcd-0 ran alone; when etcd-1 came back, the client ports did not answer
    // for a moment, and the empty etcd-2 restored the old snapshot under its served member ID.
    // The peer ports' lists show the restored cluster has served: WAIT (then REPLACE), never
    // RESTORE, whatever the client ports say.
    #[test]
    fn an_empty_volume_never_restores_beside_a_served_cluster_seen_only_on_peer_ports() {
        let restored = members(true);
        let heard = Heard {
            clients: vec![],
            peer_lists: vec![peer_list(0, RESTORED, restored.clone()), peer_list(1, RESTORED, restored)],
        };
        let v = verdict_with(DataDirState::Empty, nobody(), heard.clone(), 2, false);
        assert_eq!(v.decision, Decision::Wait, "{v:?}");
        assert!(v.warning.as_deref().is_some_and(|w| w.contains("which has served")), "{v:?}");
        // The same answers without quorum on a client port: the same.
        let heard = Heard { clients: vec![client(0, RESTORED, false, members(true))], ..heard };
        let v = verdict_with(DataDirState::Empty, answer(RESTORED, false, true), heard, 2, false);
        assert_eq!(v.decision, Decision::Wait, "{v:?}");
    }

    // Found from outside the project (issue 18, second sequence): after the runbook, etcd-1's
    // volume was swapped for an old copy of the source cluster's data while the restored cluster
    // served with quorum. Its entry has served there: the volume is another cluster's (REFUSE),
    // never archived and restored.
    #[test]
    fn old_data_of_a_pod_whose_entry_served_in_the_restored_cluster_is_refused() {
        for quorum in [true, false] {
            let v = verdict_with(data_of(SOURCE), answer(RESTORED, quorum, true), Heard::default(), 1, false);
            assert_eq!(v.decision, Decision::Refuse, "quorum {quorum}: {v:?}");
            assert!(v.warning.as_deref().is_some_and(|w| w.contains("where it has served")), "{v:?}");
        }
        // Only a peer port shows it: the same.
        let heard = Heard { clients: vec![], peer_lists: vec![peer_list(0, RESTORED, members(true))] };
        let v = verdict_with(data_of(SOURCE), nobody(), heard, 1, false);
        assert_eq!(v.decision, Decision::Refuse, "{v:?}");
    }

    #[test]
    fn old_data_restores_only_where_every_source_peer_port_has_a_client_answer_without_a_leader() {
        // The source's peer port answers and its client port is silent: maybe a live cluster
        // behind a network policy. Never restore.
        let source = members(true);
        let heard = Heard { clients: vec![], peer_lists: vec![peer_list(2, SOURCE, source.clone())] };
        let v = run_heard(data_of(SOURCE), nobody(), heard.clone(), 0, false);
        assert_eq!(restores(&v), None, "{v:?}");
        assert!(warning(&v).contains("network policy"), "{v:?}");
        // Its client port answers without a leader too: the quorum is lost for sure.
        let heard = Heard { clients: vec![client(2, SOURCE, false, source.clone())], ..heard };
        let v = run_heard(data_of(SOURCE), answer(SOURCE, false, true), heard, 0, false);
        assert_eq!(restores(&v), Some(Some(7)), "{v:?}");
        // Any client answer with quorum for the source: never.
        let heard = Heard { clients: vec![client(2, SOURCE, true, source)], peer_lists: vec![] };
        let v = run_heard(data_of(SOURCE), answer(SOURCE, false, true), heard, 0, false);
        assert!(warning(&v).contains("has quorum"), "{v:?}");
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
        let heard = Heard::default();
        let obs = Observation { me: &me, data: &data, cluster: &cluster, heard: &heard, peers: &peers };
        let v = decide_restore(&obs, &settings(), &request);
        assert_eq!(restores(&v), None);
        assert!(warning(&v).contains("new --initial-cluster-token"), "{v:?}");
        // Peers answering as the configured cluster (never served): same for an empty member.
        let v = run(DataDirState::Empty, answer(CONFIGURED, false, false), 1, false);
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
        // Restored from this very snapshot (the marker says so): the usual verdict, no warning.
        let v = verdict_with(data_of(SOURCE), nobody(), Heard::default(), 0, true);
        assert_eq!((v.decision, v.warning), (Decision::Existing { update_peer_urls: None }, None));
    }

    #[test]
    fn the_manifest_is_read_only_where_a_restore_could_happen() {
        let table: &[(DataDirState, ClusterView, bool, bool)] = &[
            (DataDirState::Empty, nobody(), false, true),
            (DataDirState::Empty, answer(RESTORED, true, true), false, false),
            (DataDirState::Empty, answer(SOURCE, false, true), false, false),
            (data_of(SOURCE), nobody(), false, true),
            (data_of(SOURCE), nobody(), true, false),
            (data_of(SOURCE), answer(SOURCE, true, true), false, false),
            (data_of(SOURCE), answer(RESTORED, true, true), false, false),
            (data_of(RESTORED), answer(SOURCE, true, true), false, false),
            (data_of(RESTORED), answer(SOURCE, false, false), false, true),
            (DataDirState::Unknown { entries: vec![] }, nobody(), false, false),
        ];
        let me = me(1);
        let (heard, peers) = (Heard::default(), PeerDns::default());
        for (data, cluster, marked, needed) in table {
            let obs = Observation { me: &me, data, cluster, heard: &heard, peers: &peers };
            let settled = settled_without_manifest(&obs, *marked, "s");
            assert_eq!(settled.is_none(), *needed, "{data:?} {cluster:?} {marked}");
        }
    }

    #[test]
    fn a_snapshot_that_cannot_be_read_never_makes_an_empty_volume_start_new() {
        let me = me(1);
        let (heard, peers, cluster) = (Heard::default(), PeerDns::default(), nobody());
        let unreadable = |data: &DataDirState| {
            let obs = Observation { me: &me, data, cluster: &cluster, heard: &heard, peers: &peers };
            let facts = RestoreFacts {
                snapshot: "s".into(),
                restored_from_this: false,
                manifest: SnapshotFacts::Unreadable("no such bucket".into()),
            };
            apply(&obs, &settings(), decide(&obs, &settings()), &facts)
        };
        let v = unreadable(&DataDirState::Empty);
        assert_eq!(v.decision, Decision::Wait, "{v:?}");
        let v = unreadable(&data_of(SOURCE));
        assert_eq!(v.decision, Decision::Existing { update_peer_urls: None }, "{v:?}");
        assert!(v.warning.as_deref().is_some_and(|w| w.contains("no such bucket")), "{v:?}");
    }

    #[test]
    fn tokens_and_cluster_ids_follow_etcd() {
        assert_eq!(restore_token("t", &"AB".repeat(32), None), "t-restore-abababababababab");
        assert_eq!(restore_token("t", &"AB".repeat(32), Some(42)), "t-restore-abababababababab-r42");
        // A single default member: etcd's well-known cluster ID cdf818194e3a8c32 for member
        // 8e9e05c52164694d (peer URL http://localhost:2380, token etcd-cluster).
        let one = [("default".to_string(), "http://localhost:2380".to_string())];
        assert_eq!(format!("{:x}", static_cluster_id(&one, "etcd-cluster")), "cdf818194e3a8c32");
        let three: Vec<(String, String)> =
            (0..3).map(|o| (format!("etcd-{o}"), format!("http://etcd-{o}:2380"))).collect();
        let mut shuffled = three.clone();
        shuffled.reverse();
        assert_eq!(static_cluster_id(&three, "t"), static_cluster_id(&shuffled, "t"));
        assert_ne!(
            static_cluster_id(&three, "t"),
            static_cluster_id(&three, &restore_token("t", "00", None))
        );
    }
}
