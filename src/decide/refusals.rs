//! What each membership call does next when etcd refuses it. One exhaustive, pure function per
//! call: the same refusal means different things to different calls (etcd answers "member not
//! found" to a remove that is done, to an add whose new ID clashed, to a promote whose learner is
//! gone and to an update of a member that was removed). The cluster module maps etcd's errors to
//! [`Refusal`] once; nothing else reads etcd's words.

use crate::observed::Refusal;

/// The next step after a refused call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// What the call wanted already holds: go on as after a success.
    Done,
    /// The cluster is not what the decision assumed: observe again at once and decide anew.
    ObserveAgain,
    /// A refusal that passes (busy, unhealthy for a moment, no leader, a timeout): look again
    /// after a backoff.
    Retry,
    /// Retrying will not help: report the error.
    Fail,
}

/// `member add` of my peer URL.
pub fn on_add(refusal: Refusal) -> Next {
    match refusal {
        // An earlier run of this pod added my peer URL: observe again and reuse that entry.
        Refusal::PeerUrlExists => Next::ObserveAgain,
        // etcd derives an added member's ID from its peer URL and the current second: an add right
        // after a removed one clashes. Another second gives another ID.
        Refusal::MemberNotFound => Next::Retry,
        Refusal::TooManyLearners
        | Refusal::Unhealthy
        | Refusal::NoLeader
        | Refusal::Unreachable
        | Refusal::LearnerNotInSync => Next::Retry,
        Refusal::NotALearner | Refusal::Other => Next::Fail,
    }
}

/// `member remove` (a REPLACE's old member, a withdrawn entry, the sidecar's removal).
pub fn on_remove(refusal: Refusal) -> Next {
    match refusal {
        // Removed already (by an earlier run, or another sidecar).
        Refusal::MemberNotFound => Next::Done,
        Refusal::TooManyLearners
        | Refusal::Unhealthy
        | Refusal::NoLeader
        | Refusal::Unreachable
        | Refusal::LearnerNotInSync => Next::Retry,
        Refusal::PeerUrlExists | Refusal::NotALearner | Refusal::Other => Next::Fail,
    }
}

/// `member update` of my own peer URL, before an EXISTING start.
pub fn on_update(refusal: Refusal) -> Next {
    match refusal {
        // My member was removed since the round looked: observe again, which finds my ID not
        // listed (STALE). Starting on the data as EXISTING would start a removed member.
        Refusal::MemberNotFound => Next::ObserveAgain,
        // Another member has my peer URL (a replacement added for this pod): my member cannot
        // have it too. Not a success: wait, logging why, until that member goes or the deadline
        // passes with this reason.
        Refusal::PeerUrlExists => Next::Retry,
        Refusal::TooManyLearners
        | Refusal::Unhealthy
        | Refusal::NoLeader
        | Refusal::Unreachable
        | Refusal::LearnerNotInSync => Next::Retry,
        Refusal::NotALearner | Refusal::Other => Next::Fail,
    }
}

/// `member promote` of a learner (the sidecar).
pub fn on_promote(refusal: Refusal) -> Next {
    match refusal {
        // The learner was removed, or is a voter already (promoted by an earlier leader's sidecar
        // after this member list was read).
        Refusal::MemberNotFound | Refusal::NotALearner => Next::Done,
        // Not caught up yet: the next interval tries again.
        Refusal::LearnerNotInSync => Next::Retry,
        Refusal::TooManyLearners | Refusal::Unhealthy | Refusal::NoLeader | Refusal::Unreachable => {
            Next::Retry
        }
        Refusal::PeerUrlExists | Refusal::Other => Next::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Next::*;
    use Refusal::*;

    /// Every refusal, so a new one cannot be forgotten in a table below.
    const ALL: [Refusal; 9] = [
        MemberNotFound,
        PeerUrlExists,
        LearnerNotInSync,
        NotALearner,
        TooManyLearners,
        Unhealthy,
        NoLeader,
        Unreachable,
        Other,
    ];

    fn check(policy: fn(Refusal) -> Next, table: &[(Refusal, Next)]) {
        assert_eq!(table.len(), ALL.len(), "one row per refusal");
        for (refusal, want) in ALL.iter().zip(table) {
            assert_eq!(*refusal, want.0, "rows in the order of ALL");
            assert_eq!(policy(*refusal), want.1, "{refusal:?}");
        }
    }

    #[test]
    fn add() {
        check(
            on_add,
            &[
                (MemberNotFound, Retry),
                (PeerUrlExists, ObserveAgain),
                (LearnerNotInSync, Retry),
                (NotALearner, Fail),
                (TooManyLearners, Retry),
                (Unhealthy, Retry),
                (NoLeader, Retry),
                (Unreachable, Retry),
                (Other, Fail),
            ],
        );
    }

    #[test]
    fn remove() {
        check(
            on_remove,
            &[
                (MemberNotFound, Done),
                (PeerUrlExists, Fail),
                (LearnerNotInSync, Retry),
                (NotALearner, Fail),
                (TooManyLearners, Retry),
                (Unhealthy, Retry),
                (NoLeader, Retry),
                (Unreachable, Retry),
                (Other, Fail),
            ],
        );
    }

    // Regression: `member update` took "member not found" and "Peer URLs already exists" as
    // success and started the member as EXISTING.
    #[test]
    fn update() {
        check(
            on_update,
            &[
                (MemberNotFound, ObserveAgain),
                (PeerUrlExists, Retry),
                (LearnerNotInSync, Retry),
                (NotALearner, Fail),
                (TooManyLearners, Retry),
                (Unhealthy, Retry),
                (NoLeader, Retry),
                (Unreachable, Retry),
                (Other, Fail),
            ],
        );
    }

    #[test]
    fn promote() {
        check(
            on_promote,
            &[
                (MemberNotFound, Done),
                (PeerUrlExists, Fail),
                (LearnerNotInSync, Retry),
                (NotALearner, Done),
                (TooManyLearners, Retry),
                (Unhealthy, Retry),
                (NoLeader, Retry),
                (Unreachable, Retry),
                (Other, Fail),
            ],
        );
    }
}
