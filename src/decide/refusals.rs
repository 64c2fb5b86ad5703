//! What each etcd call does next when etcd refuses it: one exhaustive, pure function of
//! the call and the refusal, as the table in the tests shows. The same refusal means different
//! things to different calls (etcd answers "member not
//! found" to a remove that is done, to an add whose new ID clashed, to a promote whose learner is
//! gone and to an update of a member that was removed). `observed::refusal_of` maps etcd's answers
//! (gRPC code, then exact message) to [`Refusal`] once; nothing else reads etcd's words.

use crate::observed::Refusal;

/// The next step after a refused call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
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

/// The calls that change the cluster, each with its own column of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// `member add` of my peer URL.
    Add,
    /// `member remove` (a REPLACE's old member, a withdrawn entry, the sidecar's removal).
    Remove,
    /// `member update` of my own peer URL, before an EXISTING start.
    Update,
    /// `member promote` of a learner (the sidecar).
    Promote,
    /// `defragment` of one member (the sidecar's maintenance).
    Defragment,
    /// `compact` of the key history under a NOSPACE alarm (the sidecar, when asked to).
    Compact,
    /// `alarm` list or disarm (the sidecar's maintenance).
    Alarm,
}

/// What `call` does next when etcd refused it with `refusal`. Exhaustive over both: a new
/// refusal or call does not compile until each pair has an answer.
pub(crate) fn next(call: Call, refusal: Refusal) -> Next {
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
        // Compacted at or past that revision already (by etcd's auto-compaction, a person, or an
        // earlier round).
        (Compact, Compacted) => Next::Done,
        (Add | Remove | Update | Promote | Defragment | Alarm, Compacted) => Next::Fail,
        // Membership answers to a maintenance call: nothing a retry fixes.
        (Defragment | Compact | Alarm, MemberNotFound | PeerUrlExists | NotALearner) => Next::Fail,
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

    /// One row per refusal: what `member add`, `remove`, `update` and `promote`, `defragment`,
    /// `compact` and `alarm` do next.
    #[rustfmt::skip]
    const TABLE: [(Refusal, [Next; 7]); 10] = [
        //                  add           remove  update        promote defrag  compact alarm
        (MemberNotFound,   [Retry,        Done,   ObserveAgain, Done,   Fail,   Fail,   Fail]),
        (PeerUrlExists,    [ObserveAgain, Fail,   Retry,        Fail,   Fail,   Fail,   Fail]),
        (LearnerNotInSync, [Retry,        Retry,  Retry,        Retry,  Retry,  Retry,  Retry]),
        (NotALearner,      [Fail,         Fail,   Fail,         Done,   Fail,   Fail,   Fail]),
        (TooManyLearners,  [Retry,        Retry,  Retry,        Retry,  Retry,  Retry,  Retry]),
        (Unhealthy,        [Retry,        Retry,  Retry,        Retry,  Retry,  Retry,  Retry]),
        (NoLeader,         [Retry,        Retry,  Retry,        Retry,  Retry,  Retry,  Retry]),
        // A defragmentation that timed out may still run: the sidecar waits for its member to
        // answer again before the next one.
        (Unreachable,      [Retry,        Retry,  Retry,        Retry,  Retry,  Retry,  Retry]),
        (Compacted,        [Fail,         Fail,   Fail,         Fail,   Fail,   Done,   Fail]),
        (Other,            [Fail,         Fail,   Fail,         Fail,   Fail,   Fail,   Fail]),
    ];

    const CALLS: [Call; 7] =
        [Call::Add, Call::Remove, Call::Update, Call::Promote, Call::Defragment, Call::Compact, Call::Alarm];

    #[test]
    fn every_call_answers_every_refusal_as_the_table_says() {
        for (refusal, want) in TABLE {
            for (call, want) in CALLS.into_iter().zip(want) {
                assert_eq!(next(call, refusal), want, "{call:?} refused with {refusal:?}");
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
