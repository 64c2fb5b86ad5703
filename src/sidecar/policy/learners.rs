//! Which learners the leader's sidecar tries to promote this round, and in what order. Pure: the
//! loop promotes the first one etcd accepts (one membership change per round).

use std::collections::BTreeMap;

use super::removal::{Answer, MemberFacts};

/// One learner and what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Learner<'a> {
    /// Ask etcd to promote it.
    Try(&'a MemberFacts),
    /// Its pod is absent from DNS: a removal candidate, not a promotion.
    PodGone(&'a MemberFacts),
}

/// The learners among `members`, lowest ordinal first (members of no pod of this set first, as
/// their ordinal is unknown), then by ID; those whose pod name answered "missing" are skipped.
pub(crate) fn in_order<'a>(members: &'a [MemberFacts], dns: &BTreeMap<u32, Answer>) -> Vec<Learner<'a>> {
    let mut learners: Vec<&MemberFacts> = members.iter().filter(|m| m.is_learner).collect();
    learners.sort_by_key(|m| (m.ordinal, m.id));
    learners
        .into_iter()
        .map(|m| match m.ordinal {
            Some(o) if dns.get(&o) == Some(&Answer::Missing) => Learner::PodGone(m),
            _ => Learner::Try(m),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, ordinal: Option<u32>, is_learner: bool) -> MemberFacts {
        MemberFacts { id, label: format!("m{id}"), ordinal, is_learner }
    }

    #[test]
    fn learners_in_ordinal_order_skipping_pods_gone_from_dns() {
        let members = [
            member(1, Some(0), false),
            member(5, Some(4), true),
            member(3, Some(3), true),
            member(9, None, true),
            member(2, Some(3), true),
        ];
        let dns = BTreeMap::from([(3, Answer::Found), (4, Answer::Missing)]);
        let got = in_order(&members, &dns);
        let want = vec![
            Learner::Try(&members[3]),
            Learner::Try(&members[4]),
            Learner::Try(&members[2]),
            Learner::PodGone(&members[1]),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn unknown_dns_is_not_gone_and_no_learners_is_nothing() {
        let members = [member(7, Some(2), true)];
        let dns = BTreeMap::from([(2, Answer::Unknown)]);
        assert_eq!(in_order(&members, &dns), vec![Learner::Try(&members[0])]);
        assert!(in_order(&[member(1, Some(0), false)], &dns).is_empty());
    }
}
