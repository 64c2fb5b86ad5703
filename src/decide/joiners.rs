//! After my `member add`: can another pod be joining at the same moment? Pure.
//!
//! A concurrent joiner is a pod that exists (its name resolves) and is not a started member. Where
//! DNS shows none, no second `member add` can race mine, so there is nothing to settle: start
//! with the member list the add returned, at once. Otherwise look again after a pause (see
//! [`crate::decide::after_add`]).

use std::collections::BTreeSet;

use crate::observed::Member;

/// True when a pod other than `me` resolves and no started member is that pod.
pub(crate) fn other_joiner_possible(
    me: u32,
    resolved: &BTreeSet<u32>,
    members: &[Member],
    ordinal_of: impl Fn(&Member) -> Option<u32>,
) -> bool {
    let started: BTreeSet<u32> = members.iter().filter(|m| m.started()).filter_map(&ordinal_of).collect();
    resolved.iter().any(|o| *o != me && !started.contains(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u64, name: &str, ordinal: u32) -> Member {
        Member {
            id,
            name: name.into(),
            peer_urls: vec![format!("http://etcd-{ordinal}.etcd:2380")],
            client_urls: vec![],
            is_learner: false,
        }
    }

    fn ordinal_of(m: &Member) -> Option<u32> {
        m.peer_urls.first()?.split("etcd-").nth(1)?.split('.').next()?.parse().ok()
    }

    #[test]
    fn only_pods_in_dns_without_a_started_member_can_be_joining() {
        let members = vec![m(1, "etcd-0", 0), m(2, "etcd-1", 1), m(3, "etcd-2", 2), m(4, "", 3)];
        let cases: [(&str, &[u32], bool); 5] = [
            ("every other pod is a started member", &[0, 1, 2, 3], false),
            ("a pod not in DNS cannot be adding itself", &[0, 1, 3], false),
            ("pod 4 exists and is no member yet", &[0, 1, 2, 3, 4], true),
            ("pod 5 exists, 4 does not", &[0, 1, 2, 3, 5], true),
            ("alone", &[3], false),
        ];
        for (what, resolved, want) in cases {
            let resolved: BTreeSet<u32> = resolved.iter().copied().collect();
            assert_eq!(other_joiner_possible(3, &resolved, &members, ordinal_of), want, "{what}");
        }
        // An unstarted entry (another pod's add, never started) does not make that pod a member.
        let with_other = vec![m(1, "etcd-0", 0), m(4, "", 3), m(5, "", 4)];
        let resolved = BTreeSet::from([0, 3, 4]);
        assert!(other_joiner_possible(3, &resolved, &with_other, ordinal_of));
    }
}
