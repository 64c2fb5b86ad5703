//! The decision: a pure function of what this pod is, what its data dir holds, what the cluster
//! says and which peers exist. No I/O. Every row of the README's decision table has its own test
//! section in `tests.rs`, named with the row's words.
//!
//! Also pure and here: how etcd must start for a decision ([`start_mode`]), what to do after my
//! own `member add` ([`after_add`]), and what each membership call does next when etcd refuses
//! it ([`refusals`]).

pub(crate) mod answers;
pub(crate) mod joiners;
pub(crate) mod new_hold;
pub(crate) mod refusals;
pub(crate) mod round;
mod start_mode;

pub(crate) use start_mode::{join_mode, start_mode, Launch, StartMode};

use crate::observed::{ClusterView, DataDirState, Heard, Member, PeerDns, WalMeta};

use answers::Owner;

/// How a new member joins a running cluster (`--join-as`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinAs {
    Voter,
    Learner,
}

impl JoinAs {
    /// Every way to join, in the order `--join-as`'s help lists them.
    pub const ALL: [JoinAs; 2] = [JoinAs::Voter, JoinAs::Learner];

    pub fn as_str(self) -> &'static str {
        match self {
            JoinAs::Voter => "voter",
            JoinAs::Learner => "learner",
        }
    }
}

impl std::fmt::Display for JoinAs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JoinAs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JoinAs::ALL.into_iter().find(|j| j.as_str() == s).ok_or_else(|| {
            format!("{s:?} is not a way to join: use {}", JoinAs::ALL.map(JoinAs::as_str).join(" or "))
        })
    }
}

/// What this pod is, as far as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    /// Pod name, also the member name.
    pub name: String,
    pub ordinal: u32,
    /// The peer URL this member advertises.
    pub peer_url: String,
    /// The ID etcd gives this member in the static initial cluster (see `observed::static_member_id`).
    pub static_id: u64,
}

/// What the user sets that the decision depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionSettings {
    pub initial_cluster_size: u32,
    pub join_as: JoinAs,
}

/// Everything observed in one round.
#[derive(Debug, Clone)]
pub(crate) struct Observation<'a> {
    pub me: &'a Me,
    pub data: &'a DataDirState,
    /// The client port's best answer.
    pub cluster: &'a ClusterView,
    /// Every other answer: the client answers' cluster IDs, the peer ports' member lists.
    pub heard: &'a Heard,
    pub peers: &'a PeerDns,
}

/// How this member must start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Start a new cluster with the full static initial cluster.
    New,
    /// `--restore-from`: NEW from a snapshot. Restore it with the full initial cluster and
    /// `token` (derived from the configured token and the snapshot's sha256), archiving the old
    /// member data first when `archive_member` names it, then start NEW with that token.
    Restore { archive_member: Option<u64>, token: String },
    /// Start on the existing data; `update_peer_urls` names my member when its peer URL changed.
    Existing { update_peer_urls: Option<u64> },
    /// Join the running cluster: reuse an unstarted entry with my peer URL, or `member add`.
    Join { reuse: Option<u64>, as_learner: bool },
    /// My volume was lost while my member is still listed: remove it, then join.
    Replace { remove: u64 },
    /// My data dir belongs to a member the cluster no longer lists: archive it, decide again.
    Stale { member_id: u64 },
    /// Not actionable yet.
    Wait,
    /// Never start etcd on this data dir.
    Refuse,
}

impl Decision {
    /// The decision's name as the README, the log and `plan` spell it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Decision::New => "NEW",
            Decision::Restore { .. } => "RESTORE",
            Decision::Existing { .. } => "EXISTING",
            Decision::Join { .. } => "JOIN",
            Decision::Replace { .. } => "REPLACE",
            Decision::Stale { .. } => "STALE",
            Decision::Wait => "WAIT",
            Decision::Refuse => "REFUSE",
        }
    }
}

/// A decision with the reasons that led to it, in words an operator reads in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub decision: Decision,
    pub reason: String,
    /// Something the operator should know that did not change the decision (a `--restore-from`
    /// that was not done, and why): logged as a warning, shown by `plan`.
    pub warning: Option<String>,
    /// The table said NEW and the start is held for a moment (see [`new_hold`]): the round's
    /// caller counts the hold's time from the first such round.
    pub new_held: bool,
}

pub(crate) fn verdict(decision: Decision, reason: impl Into<String>) -> Verdict {
    Verdict { decision, reason: reason.into(), warning: None, new_held: false }
}

/// Decide how this member starts.
pub(crate) fn decide(obs: &Observation<'_>, settings: &DecisionSettings) -> Verdict {
    match obs.data {
        DataDirState::Unknown { entries } => verdict(
            Decision::Refuse,
            format!(
                "the data dir holds {} which is not etcd member data; move it away or point --data-dir elsewhere",
                entries.join(", ")
            ),
        ),
        DataDirState::Member(meta) => {
            let view = answers::decision_view(obs.data, obs.cluster, obs.heard);
            match answers::owner(meta.cluster_id, obs.cluster, obs.heard) {
                Owner::Foreign { heard } => verdict(
                    Decision::Refuse,
                    format!(
                        "the data dir belongs to cluster {:x} but every peer that answers is of another cluster: {}; this volume comes from another cluster (its ID never changes, with or without quorum); attach the right volume, or move its member/ directory away to join empty",
                        meta.cluster_id,
                        heard.join(", ")
                    ),
                ),
                Owner::Mine { others } if !others.is_empty() => {
                    let mut v = decide_with_data(obs.me, meta, &view);
                    v.reason.push_str(&format!(" (answers for another cluster ignored: {})", others.join(", ")));
                    v
                }
                Owner::Mine { .. } | Owner::Nobody => decide_with_data(obs.me, meta, &view),
            }
        }
        DataDirState::Empty => {
            let view = answers::decision_view(obs.data, obs.cluster, obs.heard);
            decide_empty(&Observation { cluster: &view, ..obs.clone() }, settings)
        }
    }
}

fn decide_with_data(me: &Me, meta: &WalMeta, cluster: &ClusterView) -> Verdict {
    match cluster {
        ClusterView::NoAnswer { .. } => verdict(
            Decision::Existing { update_peer_urls: None },
            format!(
                "data dir holds member {:x} of cluster {:x} and no peer answers: start on it, etcd finds its peers in its WAL",
                meta.member_id, meta.cluster_id
            ),
        ),
        ClusterView::Answer { quorum: false, members, endpoint, .. }
            if !members.iter().any(|m| m.id == meta.member_id) =>
        {
            verdict(
                Decision::Wait,
                format!(
                    "data dir holds member {:x}, which the cluster's list from {endpoint} (no quorum) does not name: it was removed, or that list predates its add, and only an answer with quorum can tell; waiting for one (then STALE or EXISTING)",
                    meta.member_id
                ),
            )
        }
        // A peer port's list cannot tell quorum: do not claim the cluster has none.
        ClusterView::Answer { quorum: false, endpoint, .. } if answers::is_peer_port_view(endpoint) => verdict(
            Decision::Existing { update_peer_urls: None },
            format!(
                "data dir holds member {:x}, which the member list from {endpoint} names with this pod's peer URL: start on it, etcd finds its peers in its WAL (with or without quorum)",
                meta.member_id
            ),
        ),
        ClusterView::Answer { quorum: false, .. } => verdict(
            Decision::Existing { update_peer_urls: None },
            format!(
                "data dir holds member {:x} and the cluster has no quorum: start on it, this member may be the one that brings quorum back",
                meta.member_id
            ),
        ),
        ClusterView::Answer { cluster_id, .. } if *cluster_id != meta.cluster_id => verdict(
            Decision::Refuse,
            format!(
                "the data dir belongs to cluster {:x} but the running cluster is {:x}: this volume comes from another cluster; attach the right volume, or move its member/ directory away to join empty",
                meta.cluster_id, cluster_id
            ),
        ),
        ClusterView::Answer { members, .. } => existing_or_stale(me, meta, members),
    }
}

fn existing_or_stale(me: &Me, meta: &WalMeta, members: &[Member]) -> Verdict {
    match members.iter().find(|m| m.id == meta.member_id) {
        Some(member) if member.is_learner && !member.peer_urls.iter().any(|u| u == &me.peer_url) => {
            learner_peer_url_changed(me, member)
        }
        Some(member) if !member.peer_urls.iter().any(|u| u == &me.peer_url) => verdict(
            Decision::Existing { update_peer_urls: Some(member.id) },
            format!(
                "member {:x} is listed with peer URLs {} but advertises {}: update its peer URL, then start",
                member.id,
                member.peer_urls.join(","),
                me.peer_url
            ),
        ),
        Some(member) => verdict(
            Decision::Existing { update_peer_urls: None },
            format!("member {:x} is listed in the cluster: start on its data", member.id),
        ),
        None => verdict(
            Decision::Stale { member_id: meta.member_id },
            format!(
                "the cluster (with quorum, same cluster ID {:x}) no longer lists member {:x}: archive its data and start empty",
                meta.cluster_id, meta.member_id
            ),
        ),
    }
}

/// My member is a learner and my peer URL changed: never `member update` it. Before the fix of
/// etcd-io/etcd#21694, an update clears a learner's flag and leaves a member that etcd can never
/// promote; the update waits until the learner is promoted.
fn learner_peer_url_changed(me: &Me, member: &Member) -> Verdict {
    verdict(
        Decision::Wait,
        format!(
            "member {:x} is a learner listed with peer URLs {} but advertises {}: a learner's peer URL is never updated (`member update` clears a learner's flag in etcd releases without the fix of etcd-io/etcd#21694, and the member can then never be promoted); waiting until it is promoted. A learner is promoted only while it runs in sync: start this pod once with its old peer URL until it is promoted, or remove the learner (etcdctl member remove {:x}) and this pod's data is archived and it joins anew",
            member.id,
            member.peer_urls.join(","),
            me.peer_url,
            member.id
        ),
    )
}

fn decide_empty(obs: &Observation<'_>, settings: &DecisionSettings) -> Verdict {
    match obs.cluster {
        ClusterView::Answer { members, .. } if my_static_entry(obs.me, members, settings).is_some() => {
            match my_static_entry(obs.me, members, settings).map(|e| answers::never_served_proven(e, obs.cluster, obs.heard)) {
                Some(Err(why)) => verdict(
                    Decision::Wait,
                    format!("the cluster lists my initial-cluster entry {:x} as never served, but {why}: waiting (never NEW under a member ID that may have served)", obs.me.static_id),
                ),
                _ => late_initial_member(obs, settings),
            }
        }
        ClusterView::Answer { members, quorum: true, .. } if members.iter().any(Member::served) => {
            join_running(obs.me, members, settings)
        }
        ClusterView::Answer { members, quorum: false, .. } if members.iter().any(Member::served) => {
            match my_added_entry(obs.me, members) {
                // Added for me and never started: joining as it needs no quorum, and quorum may
                // need it (a 1 -> 2 scale-up whose pod died between the add and etcd's start).
                Some(entry) => match answers::never_served_proven(entry, obs.cluster, obs.heard) {
                    Ok(()) => reuse_entry(entry, "; the cluster has no quorum, which it may need this member for"),
                    Err(why) => verdict(
                        Decision::Wait,
                        format!("member {:x} with my peer URL is listed as never started, but {why}: waiting (never reuse a member ID that may have served)", entry.id),
                    ),
                },
                None => wait_for_quorum(obs.me, members),
            }
        }
        ClusterView::NoAnswer { .. } | ClusterView::Answer { .. } => initial_bootstrap(obs, settings),
    }
}

/// My own entry of the static initial cluster, never served: same peer URL and exactly the ID
/// etcd derives for it, so starting NEW with the same initial cluster makes this pod that member.
fn my_static_entry<'m>(me: &Me, members: &'m [Member], settings: &DecisionSettings) -> Option<&'m Member> {
    if me.ordinal >= settings.initial_cluster_size {
        return None;
    }
    members.iter().find(|m| !m.served() && m.id == me.static_id && m.peer_urls.contains(&me.peer_url))
}

/// WAIT until the initial peers' names resolve: `<why>; waiting for DNS of <names>`.
fn wait_for_dns(why: &str, unresolved: &[String]) -> Verdict {
    verdict(Decision::Wait, format!("{why}; waiting for DNS of {}", unresolved.join(", ")))
}

fn late_initial_member(obs: &Observation<'_>, settings: &DecisionSettings) -> Verdict {
    if !obs.peers.unresolved_initial.is_empty() {
        return wait_for_dns(
            "my entry of the initial cluster has never served",
            &obs.peers.unresolved_initial,
        );
    }
    verdict(
        Decision::New,
        format!(
            "empty data dir and the cluster lists my initial-cluster entry {:x} that has never served: start with the initial cluster of {} as that member",
            obs.me.static_id, settings.initial_cluster_size
        ),
    )
}

fn initial_bootstrap(obs: &Observation<'_>, settings: &DecisionSettings) -> Verdict {
    let size = settings.initial_cluster_size;
    let nobody = match obs.cluster {
        ClusterView::NoAnswer { .. } => "no peer answers",
        ClusterView::Answer { .. } => "the cluster has never started",
    };
    if obs.me.ordinal >= size {
        return verdict(
            Decision::Wait,
            format!(
                "ordinal {} is beyond the initial cluster of {size} and {nobody}: this member can only join a running cluster",
                obs.me.ordinal
            ),
        );
    }
    if !obs.peers.beyond_initial.is_empty() {
        return verdict(
            Decision::Wait,
            format!(
                "{nobody}, but pods beyond the initial set exist ({}): the cluster was scaled, so it is not new; waiting for members with data",
                obs.peers.beyond_initial.join(", ")
            ),
        );
    }
    if !obs.peers.unresolved_initial.is_empty() {
        return wait_for_dns(nobody, &obs.peers.unresolved_initial);
    }
    verdict(
        Decision::New,
        format!("empty data dir, {nobody} and all {size} initial peers resolve: start the initial cluster"),
    )
}

fn wait_for_quorum(me: &Me, members: &[Member]) -> Verdict {
    let mine =
        members.iter().find(|m| m.served() && (m.name == me.name || m.peer_urls.contains(&me.peer_url)));
    let voters = members.iter().filter(|m| !m.is_learner).count();
    let reason = match mine {
        Some(m) if voters <= 2 => format!(
            "the cluster has no quorum and its member {:x} ({}) is this pod, whose volume is empty: quorum cannot return without it and an empty member cannot join without quorum. Recover by restoring this volume, or from a snapshot (etcdutl snapshot restore), or with --force-new-cluster on a surviving member",
            m.id, m.name
        ),
        Some(m) => format!(
            "the cluster has no quorum and lists this pod as member {:x} with data this volume lost: waiting for the other members to bring quorum back, then this member is replaced",
            m.id
        ),
        None => "the cluster has started members but no quorum (no member's client port answers with quorum; its peer ports or member lists show it has served): quorum can only come back from members that have data, or the client ports are blocked".to_string(),
    };
    verdict(Decision::Wait, reason)
}

/// An entry with my peer URL that has never served: added for this pod by an earlier run that
/// did not get to start etcd (or did not get far).
fn my_added_entry<'m>(me: &Me, members: &'m [Member]) -> Option<&'m Member> {
    members.iter().find(|m| !m.served() && m.peer_urls.contains(&me.peer_url))
}

fn reuse_entry(entry: &Member, why: &str) -> Verdict {
    verdict(
        Decision::Join { reuse: Some(entry.id), as_learner: entry.is_learner },
        format!(
            "member {:x} was added with my peer URL and never started{why}: join as that member",
            entry.id
        ),
    )
}

fn join_running(me: &Me, members: &[Member], settings: &DecisionSettings) -> Verdict {
    if let Some(entry) = my_added_entry(me, members) {
        return reuse_entry(entry, "");
    }
    if let Some(old) =
        members.iter().find(|m| m.served() && (m.name == me.name || m.peer_urls.contains(&me.peer_url)))
    {
        return verdict(
            Decision::Replace { remove: old.id },
            format!(
                "member {:x} ({}) is this pod but my data dir is empty (volume lost): remove it, then join",
                old.id, old.name
            ),
        );
    }
    if let Some(other) = members.iter().find(|m| !m.served() || m.is_learner) {
        let what = if other.served() { "is a learner" } else { "has not started yet" };
        return verdict(
            Decision::Wait,
            format!(
                "member {:x} ({}) {what}: members join one at a time",
                other.id,
                other.peer_urls.join(",")
            ),
        );
    }
    let as_learner = settings.join_as == JoinAs::Learner;
    let role = if as_learner { "learner" } else { "voting member" };
    verdict(
        Decision::Join { reuse: None, as_learner },
        format!("the cluster has quorum and does not know this pod: add it as a {role}"),
    )
}

/// After my `member add`, with the member list seen a moment later: another never-started member
/// means a second pod added itself at the same time. Both cannot start (each would carry a member
/// list the other's add made stale: "member count is unequal"), so one withdraws: the higher
/// `(ordinal, id)`. Members that are not of this set rank after all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterAdd {
    /// No other joiner: start with this member list.
    Start,
    /// Another joiner ranks first: remove my own entry (it never started, it holds nothing) and
    /// join after it.
    Withdraw { other: u64 },
    /// Another joiner ranks after me: wait for it to withdraw, then start.
    Hold { other: u64 },
}

/// See [`AfterAdd`]; `ordinal_of` maps a member to its pod ordinal when it belongs to this set.
pub(crate) fn after_add(
    my_id: u64,
    members: &[Member],
    ordinal_of: impl Fn(&Member) -> Option<u32>,
) -> AfterAdd {
    let rank = |m: &Member| (ordinal_of(m).unwrap_or(u32::MAX), m.id);
    let Some(me) = members.iter().find(|m| m.id == my_id) else {
        return AfterAdd::Start;
    };
    let other = members.iter().filter(|m| m.id != my_id && !m.served()).min_by_key(|m| rank(m));
    match other {
        None => AfterAdd::Start,
        Some(other) if rank(other) < rank(me) => AfterAdd::Withdraw { other: other.id },
        Some(other) => AfterAdd::Hold { other: other.id },
    }
}

pub(crate) mod restore;
pub(crate) mod version;

#[cfg(test)]
mod tests;
