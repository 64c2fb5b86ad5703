//! How etcd must start for a decision: the flags the decision adds (`--initial-cluster`, its state
//! and token). Pure: `run` and `plan` both call [`start_mode`] on plain data, so what `plan` prints
//! is what `run` execs.

use crate::identity::{self, Identity};
use crate::observed::Member;

use super::{Decision, Me};

/// How etcd must start: the flags the decision adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartMode {
    /// Restart on existing data: etcd finds its peers in its WAL.
    Existing,
    /// Part of a new static cluster.
    New { initial_cluster: Vec<(String, String)>, token: String },
    /// Joining a running cluster after `member add`.
    Join { initial_cluster: Vec<(String, String)>, token: String },
}

/// What a start mode depends on besides the decision and the member list.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    pub me: &'a Me,
    pub identity: &'a Identity,
    /// The static initial cluster of a NEW start: every initial pod by name and peer URL.
    pub initial_cluster: &'a [(String, String)],
    pub token: &'a str,
}

/// The start mode for `decision`, given the members the round saw. For a decision that calls
/// etcd first (a `member add`, a removal), this is the mode that call leads to when it succeeds
/// with nothing else changing; `run` then builds the mode from the member list the call returns
/// (see [`join_mode`]). None where no start follows (STALE decides again, WAIT, REFUSE).
pub(crate) fn start_mode(decision: &Decision, members: &[Member], launch: &Launch<'_>) -> Option<StartMode> {
    match decision {
        Decision::New => Some(StartMode::New {
            initial_cluster: launch.initial_cluster.to_vec(),
            token: launch.token.to_string(),
        }),
        Decision::Restore { token, .. } => {
            Some(StartMode::New { initial_cluster: launch.initial_cluster.to_vec(), token: token.clone() })
        }
        Decision::Existing { .. } => Some(StartMode::Existing),
        Decision::Join { reuse: Some(_), .. } => Some(join_mode(members, launch)),
        Decision::Join { reuse: None, as_learner } => {
            Some(join_mode(&with_me(members.to_vec(), launch.me, *as_learner), launch))
        }
        Decision::Replace { remove } => {
            let rest = members.iter().filter(|m| m.id != *remove).cloned().collect();
            Some(join_mode(&with_me(rest, launch.me, false), launch))
        }
        Decision::Stale { .. } | Decision::Wait | Decision::Refuse => None,
    }
}

/// `--initial-cluster` for a JOIN: every member (learners and unstarted ones included, etcd
/// compares counts), named by pod name.
pub(crate) fn join_mode(members: &[Member], launch: &Launch<'_>) -> StartMode {
    let mut cluster = Vec::new();
    for m in members {
        let name = member_name(m, launch);
        for url in &m.peer_urls {
            cluster.push((name.clone(), url.clone()));
        }
    }
    StartMode::Join { initial_cluster: cluster, token: launch.token.to_string() }
}

fn with_me(mut members: Vec<Member>, me: &Me, learner: bool) -> Vec<Member> {
    members.push(Member {
        id: 0,
        name: String::new(),
        peer_urls: vec![me.peer_url.clone()],
        client_urls: Vec::new(),
        is_learner: learner,
    });
    members
}

/// My entry is named after me; a started member by its own name; an unstarted one after the pod
/// its peer URL names.
fn member_name(m: &Member, launch: &Launch<'_>) -> String {
    if m.peer_urls.contains(&launch.me.peer_url) {
        return launch.me.name.clone();
    }
    if m.started() {
        return m.name.clone();
    }
    launch
        .identity
        .ordinal_of_urls(&m.peer_urls)
        .map(|ordinal| identity::host_name(&launch.identity.set_name, ordinal, ""))
        .unwrap_or_else(|| format!("member-{:x}", m.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "etcd.default.svc.cluster.local";

    fn url(ordinal: u32) -> String {
        format!("http://etcd-{ordinal}.{DOMAIN}:2380")
    }

    fn member(id: u64, name: &str, ordinal: u32) -> Member {
        Member {
            id,
            name: name.into(),
            peer_urls: vec![url(ordinal)],
            client_urls: if name.is_empty() { vec![] } else { vec!["http://x:2379".into()] },
            is_learner: false,
        }
    }

    fn check(decision: Decision, members: &[Member]) -> Option<StartMode> {
        let identity = Identity {
            pod_name: "etcd-3".into(),
            set_name: "etcd".into(),
            ordinal: 3,
            domain: DOMAIN.into(),
        };
        let me = Me { name: "etcd-3".into(), ordinal: 3, peer_url: url(3), static_id: 7 };
        let initial: Vec<(String, String)> = (0..3).map(|o| (format!("etcd-{o}"), url(o))).collect();
        let launch = Launch { me: &me, identity: &identity, initial_cluster: &initial, token: "t" };
        start_mode(&decision, members, &launch)
    }

    fn join(entries: &[(&str, u32)]) -> Option<StartMode> {
        let initial_cluster = entries.iter().map(|(n, o)| (n.to_string(), url(*o))).collect();
        Some(StartMode::Join { initial_cluster, token: "t".into() })
    }

    #[test]
    fn new_starts_the_static_initial_cluster() {
        let want: Vec<(String, String)> = (0..3).map(|o| (format!("etcd-{o}"), url(o))).collect();
        assert_eq!(
            check(Decision::New, &[]),
            Some(StartMode::New { initial_cluster: want, token: "t".into() })
        );
    }

    #[test]
    fn restore_starts_the_static_initial_cluster_with_the_restore_token() {
        let want: Vec<(String, String)> = (0..3).map(|o| (format!("etcd-{o}"), url(o))).collect();
        let restore = Decision::Restore { archive_member: Some(5), token: "t-restore-ab".into() };
        assert_eq!(
            check(restore, &[]),
            Some(StartMode::New { initial_cluster: want, token: "t-restore-ab".into() })
        );
    }

    #[test]
    fn existing_adds_no_cluster_flags() {
        assert_eq!(check(Decision::Existing { update_peer_urls: Some(1) }, &[]), Some(StartMode::Existing));
    }

    #[test]
    fn join_lists_every_member_and_names_unstarted_ones_after_their_pod() {
        let members = [member(1, "etcd-0", 0), member(2, "", 4), member(3, "", 3)];
        let got = check(Decision::Join { reuse: Some(3), as_learner: false }, &members);
        assert_eq!(got, join(&[("etcd-0", 0), ("etcd-4", 4), ("etcd-3", 3)]));
    }

    #[test]
    fn join_by_add_predicts_my_entry_and_replace_drops_the_removed_one() {
        let members = [member(1, "etcd-0", 0), member(2, "etcd-1", 1)];
        let add = check(Decision::Join { reuse: None, as_learner: true }, &members);
        assert_eq!(add, join(&[("etcd-0", 0), ("etcd-1", 1), ("etcd-3", 3)]));
        let replace = check(Decision::Replace { remove: 2 }, &members);
        assert_eq!(replace, join(&[("etcd-0", 0), ("etcd-3", 3)]));
    }

    #[test]
    fn no_start_follows_stale_wait_or_refuse() {
        for decision in [Decision::Stale { member_id: 1 }, Decision::Wait, Decision::Refuse] {
            assert_eq!(check(decision, &[]), None);
        }
    }
}
