//! What each membership call does next when etcd refuses it: one exhaustive, pure function of
//! the call and the refusal, as the table in the tests shows. The same refusal means different
//! things to different calls (etcd answers "member not
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

/// The membership calls, each with its own column of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `member add` of my peer URL.
    Add,
    /// `member remove` (a REPLACE's old member, a withdrawn entry, the sidecar's removal).
    Remove,
    /// `member update` of my own peer URL, before an EXISTING start.
    Update,
    /// `member promote` of a learner (the sidecar).
    Promote,
}

/// What `call` does next when etcd refused it with `refusal`. Exhaustive over both: a new
/// refusal or call does not compile until each pair has an answer.
pub fn next(call: Call, refusal: Refusal) -> Next {
    use Call::*;
    use Refusal::*;
    match (call, refusal) {
        // Removed already (by an earlier run, or another sidecar); for promote, the learner is
        // gone.
        (Remove | Promote, MemberNotFound) => Next::Done,
        // etcd derives an added member's ID from its peer URL and the current second: an add
        // right after a removed one clashes. Another second gives another ID.
        (Add, MemberNotFound) => Next::Retry,
        // My member was removed since the round looked: observe again, which finds my ID not
        // listed (STALE). Starting on the data as EXISTING would start a removed member.
        (Update, MemberNotFound) => Next::ObserveAgain,
        // An earlier run of this pod added my peer URL: observe again and reuse that entry.
        (Add, PeerUrlExists) => Next::ObserveAgain,
        // Another member has my peer URL (a replacement added for this pod): my member cannot
        // have it too. Not a success: wait, logging why, until that member goes or the deadline
        // passes with this reason.
        (Update, PeerUrlExists) => Next::Retry,
        (Remove | Promote, PeerUrlExists) => Next::Fail,
        // Promoted by an earlier leader's sidecar after this member list was read.
        (Promote, NotALearner) => Next::Done,
        (Add | Remove | Update, NotALearner) => Next::Fail,
        // Refusals that pass: a learner not caught up yet, one learner at a time, a cluster
        // unhealthy for a moment, no leader, a timeout.
        (_, LearnerNotInSync | TooManyLearners | Unhealthy | NoLeader | Unreachable) => Next::Retry,
        (_, Other) => Next::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Next::*;
    use Refusal::*;

    /// One row per refusal: what `member add`, `remove`, `update` and `promote` do next.
    #[rustfmt::skip]
    const TABLE: [(Refusal, [Next; 4]); 9] = [
        //                  add           remove  update        promote
        (MemberNotFound,   [Retry,        Done,   ObserveAgain, Done]),
        (PeerUrlExists,    [ObserveAgain, Fail,   Retry,        Fail]),
        (LearnerNotInSync, [Retry,        Retry,  Retry,        Retry]),
        (NotALearner,      [Fail,         Fail,   Fail,         Done]),
        (TooManyLearners,  [Retry,        Retry,  Retry,        Retry]),
        (Unhealthy,        [Retry,        Retry,  Retry,        Retry]),
        (NoLeader,         [Retry,        Retry,  Retry,        Retry]),
        (Unreachable,      [Retry,        Retry,  Retry,        Retry]),
        (Other,            [Fail,         Fail,   Fail,         Fail]),
    ];

    #[test]
    fn every_call_answers_every_refusal_as_the_table_says() {
        for (refusal, want) in TABLE {
            for (call, want) in [Call::Add, Call::Remove, Call::Update, Call::Promote].into_iter().zip(want) {
                assert_eq!(next(call, refusal), want, "member {call:?} refused with {refusal:?}");
            }
        }
    }

    #[test]
    fn the_table_has_each_refusal_once() {
        let mut seen: Vec<Refusal> = TABLE.iter().map(|(r, _)| *r).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), TABLE.len());
    }

    // Regression: `member update` took "member not found" and "Peer URLs already exists" as
    // success and started the member as EXISTING.
    #[test]
    fn a_refused_update_is_never_taken_as_done() {
        assert_eq!(next(Call::Update, MemberNotFound), ObserveAgain, "removed meanwhile: look again (STALE)");
        assert_eq!(next(Call::Update, PeerUrlExists), Retry, "another member has my URL: wait");
        assert!(TABLE.iter().all(|(r, _)| next(Call::Update, *r) != Done));
    }
}
