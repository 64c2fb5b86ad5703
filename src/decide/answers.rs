//! Every answer of one round, merged into the one view the decision table reads: the client
//! port's best answer (the `ClusterView`), the cluster IDs of every client-port answer, and the
//! peer ports' member lists. Pure.
//!
//! The rule on cluster IDs: a data dir is this cluster's only when some answer names its cluster
//! ID. A cluster ID never changes, so an answer without quorum, or from the peer port, proves a
//! volume foreign as well as one with quorum does.
//!
//! The peer port answers before quorum: where no client port gave an answer with quorum, its
//! lists stand in as an answer without quorum, one that has served first. So "never started" is
//! read from lists with no client URLs, and "this cluster has served" from any client URL.

use crate::decide::Me;
use crate::observed::{ClusterView, DataDirState, Heard, Member, PeerList};

/// Whose answers these are, for a data dir of cluster `mine`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Nobody answered: nothing is known of any cluster.
    Nobody,
    /// Some answer names my cluster; `others` are the answers that name another one
    /// (`who (cluster <id>)`), for the log.
    Mine { others: Vec<String> },
    /// Answers came and none names my cluster: the data dir is another cluster's.
    Foreign { heard: Vec<String> },
}

/// Every answer as (who, cluster ID): the client view's, every client answer's, every list's.
fn all_ids(client: &ClusterView, heard: &Heard) -> Vec<(String, u64)> {
    let mut ids: Vec<(String, u64)> = Vec::new();
    if let ClusterView::Answer { endpoint, cluster_id, .. } = client {
        ids.push((endpoint.clone(), *cluster_id));
    }
    ids.extend(heard.clients.iter().map(|c| (c.host.clone(), c.cluster_id)));
    ids.extend(heard.peer_lists.iter().map(|l| (format!("{} (peer port)", l.host), l.cluster_id)));
    // An answer without a cluster ID (0) says nothing about ownership.
    ids.retain(|(_, id)| *id != 0);
    ids.sort();
    ids.dedup();
    ids
}

/// See [`Owner`].
pub(crate) fn owner(mine: u64, client: &ClusterView, heard: &Heard) -> Owner {
    let ids = all_ids(client, heard);
    let others: Vec<String> =
        ids.iter().filter(|(_, id)| *id != mine).map(|(who, id)| format!("{who} (cluster {id:x})")).collect();
    if ids.is_empty() {
        Owner::Nobody
    } else if ids.iter().any(|(_, id)| *id == mine) {
        Owner::Mine { others }
    } else {
        Owner::Foreign { heard: others }
    }
}

/// The view the decision table reads: the client answer with quorum where there is one (of
/// cluster `only`, when given); else, among the client answer and the peer lists (all without
/// quorum), the first that names member `mine` (a data dir's own member: a list that lags behind
/// its add must not hide the lists that have it), else the first that has served, else the
/// first; else nobody answered.
pub(crate) fn merged(
    client: &ClusterView,
    heard: &Heard,
    only: Option<u64>,
    mine: Option<u64>,
) -> ClusterView {
    let ours = |id: u64| only.is_none_or(|mine| mine == id);
    let client_answer = match client {
        ClusterView::Answer { cluster_id, .. } if ours(*cluster_id) => Some(client),
        _ => None,
    };
    if let Some(answer @ ClusterView::Answer { quorum: true, .. }) = client_answer {
        return answer.clone();
    }
    let candidates: Vec<ClusterView> = client_answer
        .cloned()
        .into_iter()
        .chain(heard.peer_lists.iter().filter(|l| ours(l.cluster_id)).map(as_view))
        .collect();
    let names_mine = |v: &&ClusterView| match (v, mine) {
        (ClusterView::Answer { members, .. }, Some(id)) => members.iter().any(|m| m.id == id),
        _ => false,
    };
    let pick = candidates
        .iter()
        .find(names_mine)
        .or_else(|| candidates.iter().find(|v| v.ever_served()))
        .or_else(|| candidates.first());
    match (pick, client) {
        (Some(view), _) => view.clone(),
        (None, ClusterView::NoAnswer { tried }) => ClusterView::NoAnswer { tried: tried.clone() },
        (None, ClusterView::Answer { endpoint, cluster_id, .. }) => ClusterView::NoAnswer {
            tried: vec![(endpoint.clone(), format!("answered for another cluster, {cluster_id:x}"))],
        },
    }
}

/// The view the decision (and whatever acts on it) reads for this data dir: the merged view of
/// my cluster's answers where some answer names my cluster, of every answer for an empty data
/// dir, and the client view as it is otherwise (no answer, or a foreign volume: REFUSE).
pub(crate) fn decision_view(data: &DataDirState, client: &ClusterView, heard: &Heard) -> ClusterView {
    match data {
        DataDirState::Empty => merged(client, heard, None, None),
        DataDirState::Member(meta) => match owner(meta.cluster_id, client, heard) {
            Owner::Mine { .. } => merged(client, heard, Some(meta.cluster_id), Some(meta.member_id)),
            Owner::Nobody | Owner::Foreign { .. } => client.clone(),
        },
        DataDirState::Unknown { .. } => client.clone(),
    }
}

/// How a peer port's list is named as the endpoint of a view.
const PEER_PORT: &str = " (peer port)";

/// Whether a view's endpoint is a peer port's list (which cannot tell quorum), not a client port.
pub(crate) fn is_peer_port_view(endpoint: &str) -> bool {
    endpoint.ends_with(PEER_PORT)
}

/// A peer port's list as an answer without quorum (the peer port cannot tell quorum).
fn as_view(list: &PeerList) -> ClusterView {
    ClusterView::Answer {
        endpoint: format!("{}{PEER_PORT}", list.host),
        cluster_id: list.cluster_id,
        members: list.members.clone(),
        quorum: false,
    }
}

/// Whether the decision can still change with what this peer's client port will say, once its
/// peer port has given `list`. Not when the list shows a cluster that has never served (it has
/// no quorum to answer with, and an empty pod starts NEW or WAITs on it either way), a data dir
/// of another cluster (the client port names the same cluster), or a data dir whose member the
/// list names with my peer URL (EXISTING whatever the quorum). A formed cluster's client answer
/// can make an empty pod JOIN, and a data dir STALE or its peer URL updated: wait for it.
pub(crate) fn client_answer_needed(data: &DataDirState, me: &Me, list: &PeerList) -> bool {
    match data {
        DataDirState::Unknown { .. } => false,
        DataDirState::Empty => list.served(),
        DataDirState::Member(meta) => {
            list.cluster_id == meta.cluster_id
                && list.served()
                && !list.members.iter().any(|m| m.id == meta.member_id && m.peer_urls.contains(&me.peer_url))
        }
    }
}

/// Whether the round's answers prove that `entry` (listed as never served by `view`) has never
/// served, so that an empty volume may start as that member (README rows "my own static entry"
/// and "another never-served entry with my peer URL"). `Err` says why not.
///
/// An answer with quorum is up to date: proven. A cluster of which no answer shows any member
/// that has served has never formed: proven, as silence is. Otherwise the lists come from members
/// without quorum, and one of them may lag (it was cut off while the entry started and served).
/// The entry's start was committed by a majority of the voters (the entry among them when it is
/// a voter, and it cannot answer for itself: its volume is empty); lists from `ceil(n/2)` of the
/// other voters meet every such majority, so none of them lagging behind it is then proven.
pub(crate) fn never_served_proven(entry: &Member, view: &ClusterView, heard: &Heard) -> Result<(), String> {
    let (cluster_id, quorum, members) = match view {
        ClusterView::Answer { cluster_id, quorum, members, .. } => (*cluster_id, *quorum, members),
        ClusterView::NoAnswer { .. } => return Ok(()),
    };
    if quorum {
        return Ok(());
    }
    let endpoint = match view {
        ClusterView::Answer { endpoint, .. } => endpoint.trim_end_matches(" (peer port)"),
        ClusterView::NoAnswer { .. } => "",
    };
    let lists: Vec<(&str, &[Member])> = heard
        .lists()
        .filter(|(_, id, _, _)| *id == cluster_id)
        .map(|(host, _, _, m)| (host, m))
        .chain(std::iter::once((endpoint, members.as_slice())))
        .collect();
    let served_somewhere = |id: u64| {
        members.iter().chain(lists.iter().flat_map(|(_, m)| m.iter())).any(|m| m.id == id && m.served())
    };
    if served_somewhere(entry.id) {
        return Err(format!("an answer shows member {:x} has served", entry.id));
    }
    let formed = members.iter().chain(lists.iter().flat_map(|(_, m)| m.iter())).any(Member::served);
    if !formed {
        return Ok(());
    }
    let voters: Vec<&Member> = members.iter().filter(|m| !m.is_learner).collect();
    let answered: Vec<&str> = voters
        .iter()
        .filter(|v| v.id != entry.id && lists.iter().any(|(host, _)| answers_for(host, v)))
        .map(|v| v.name.as_str())
        .collect();
    let needed = voters.len().div_ceil(2);
    if answered.len() >= needed {
        return Ok(());
    }
    Err(format!(
        "only answers without quorum list member {:x} as never served, from {} of the {} voting members ({}), and a list that lags can miss a start; {needed} must agree, or one with quorum",
        entry.id,
        answered.len(),
        voters.len(),
        if answered.is_empty() { "none".to_string() } else { answered.join(", ") }
    ))
}

/// Whether the peer at `host` is `member`: its peer URL's host, or its name as the first label.
fn answers_for(host: &str, member: &Member) -> bool {
    let first_label = host.split('.').next().unwrap_or(host);
    member.peer_urls.iter().any(|u| crate::identity::url_host(u).is_some_and(|h| h == host))
        || (!member.name.is_empty() && member.name == first_label)
}
