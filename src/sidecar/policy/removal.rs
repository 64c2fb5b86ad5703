//! The removal policy, pure: which member to remove this interval, or why none. No I/O: the caller
//! gathers DNS answers, the time each pod name was first seen missing, and (for a candidate) who
//! answers, and acts on the result.
//!
//! A member is removed only when all of these hold:
//! 1. it maps to a pod of this StatefulSet (by peer URL host or name) and is not the leader;
//! 2. it is the highest-ordinal member whose pod name had a definite negative DNS answer
//!    (NXDOMAIN or no data): StatefulSets shrink from the top;
//! 3. no pod with a higher ordinal exists: every higher ordinal looked up answered "missing" (a
//!    DNS error or timeout counts as "may exist"), and the pod list (SRV) was readable;
//! 4. its name has been missing for longer than the removal delay, with no other answer in between
//!    (any found or unknown answer restarts the clock);
//! 5. it does not answer as itself at any address we know for it (its name's, the last one its
//!    name had while the name is not absent from DNS, and every peer connected to the local
//!    member's peer port);
//! 6. the voting members that answer (the leader included) are a quorum of the voting members now,
//!    so the removal can be committed, and so of those left after it.
//!
//! [`pick`] checks 1-4 and names a candidate; the caller probes it and the voters, and [`judge`]
//! checks 5-6.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::duration;

/// A DNS answer for a pod name, reduced to what the policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The name has an address: the pod exists.
    Found,
    /// A definite negative answer (NXDOMAIN or no data): the pod does not exist.
    Missing,
    /// An error, SERVFAIL or timeout: the pod may exist.
    Unknown,
}

/// The removal clock: for each ordinal, when its name first answered "missing" in an unbroken
/// run of such answers seen while this member leads. A found or unknown answer, a name not looked
/// up, or a round that did not look at all, restarts it; so does a member that appears under the
/// ordinal ([`Clock::note_members`]): the delay counts from the member's existence, never from
/// before it (a pod created again under a name whose DNS record is late must not inherit the
/// absence of the pod it replaces).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Clock {
    missing_since: BTreeMap<u32, Instant>,
    /// The member ID each ordinal had in the last member list seen.
    members: BTreeMap<u32, u64>,
}

impl Clock {
    /// Record one round's answers, taken at `now` (read after the answers arrived: a later
    /// "first seen missing" is the cautious one).
    pub(crate) fn record(&mut self, answers: &BTreeMap<u32, Answer>, now: Instant) {
        for (&ordinal, answer) in answers {
            match answer {
                Answer::Missing => {
                    self.missing_since.entry(ordinal).or_insert(now);
                }
                Answer::Found | Answer::Unknown => {
                    self.missing_since.remove(&ordinal);
                }
            }
        }
        // A name not looked up this round has no unbroken run of answers.
        self.missing_since.retain(|o, _| answers.contains_key(o));
    }

    /// Start `ordinal`'s run of "missing" answers at `now`: a definite "no such name" seen between
    /// two rounds ([`super::presence`]). False when a run was under way already. The next round
    /// keeps the run only if it sees the name missing too.
    pub(crate) fn start(&mut self, ordinal: u32, now: Instant) -> bool {
        match self.missing_since.entry(ordinal) {
            Entry::Vacant(run) => {
                run.insert(now);
                true
            }
            Entry::Occupied(_) => false,
        }
    }

    /// Note the members listed now, as (ordinal, member ID): an ordinal whose member is new since
    /// the last list (none before, or another ID) starts its run of "missing" answers again at
    /// `now`, if one was under way.
    pub(crate) fn note_members(&mut self, listed: &[(u32, u64)], now: Instant) {
        for &(ordinal, id) in listed {
            if self.members.get(&ordinal) != Some(&id) {
                if let Some(since) = self.missing_since.get_mut(&ordinal) {
                    *since = now;
                }
            }
        }
        self.members = listed.iter().copied().collect();
    }

    /// Forget every run: this member stopped leading, or a round saw nothing.
    pub(crate) fn restart(&mut self) {
        self.missing_since.clear();
        self.members.clear();
    }

    /// When each ordinal's unbroken run of "missing" answers began.
    pub(crate) fn missing_since(&self) -> &BTreeMap<u32, Instant> {
        &self.missing_since
    }

    /// When a round should look for a removal rather than wait for its next tick: the earliest
    /// moment a run of "missing" answers will have lasted longer than `delay`, among the runs
    /// that had not yet when the last round began (`last_round`). It may be past already (a look
    /// between rounds ran over it): then the round is due at once.
    pub(crate) fn next_due(&self, delay: Duration, last_round: Instant) -> Option<Instant> {
        self.missing_since
            .values()
            .map(|since| *since + delay + Duration::from_millis(1))
            .filter(|due| *due > last_round)
            .min()
    }
}

/// A removal whose call ended without an answer (timed out, connection lost): etcd may have
/// applied it. The next round's member list settles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unconfirmed {
    pub id: u64,
    pub label: String,
    /// What the call ended with, for the log.
    pub message: String,
}

impl Unconfirmed {
    /// Whether a member list (`listed`: its member IDs) shows the removal done.
    pub(crate) fn done(&self, listed: &[u64]) -> bool {
        !listed.contains(&self.id)
    }
}

/// One member as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberFacts {
    pub id: u64,
    /// For messages: the member name, or the pod name of an unstarted member.
    pub label: String,
    /// The ordinal of its pod; None when it is not a pod of this set (never removed).
    pub ordinal: Option<u32>,
    pub is_learner: bool,
}

/// Everything [`pick`] and [`judge`] look at.
#[derive(Debug, Clone)]
pub(crate) struct Facts<'a> {
    pub members: &'a [MemberFacts],
    /// The leader's member ID (the local member: the sidecar acts only on the leader).
    pub leader: u64,
    /// The answer for every ordinal looked up this round.
    pub dns: &'a BTreeMap<u32, Answer>,
    /// When each ordinal's name first answered "missing", in an unbroken run of such answers.
    pub missing_since: &'a BTreeMap<u32, Instant>,
    /// The pod list (SRV) was read, or is not used (bare names); false when it gave no answer.
    pub pod_list_known: bool,
    pub now: Instant,
    pub delay: Duration,
    /// A member being defragmented (until it answers again): never a candidate.
    pub maintained: Option<u64>,
}

/// Why a removal was not made. `as_str` values are the metric's `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum SkipReason {
    /// DNS gave no definite answer for a name that matters.
    DnsUnknown,
    /// The name has not been missing for longer than the removal delay yet.
    Delay,
    /// A pod with a higher ordinal exists.
    HigherOrdinal,
    /// The member still answers.
    Reachable,
    /// The removal would leave too few answering voters for a quorum.
    Quorum,
    /// The candidate is the leader.
    Leader,
    /// etcd refused the removal for now (its own health checks).
    EtcdRefused,
    /// The candidate is being defragmented: it does not answer for that.
    Maintenance,
}

impl SkipReason {
    /// Every reason, for metrics that list each one from the start.
    pub(crate) const ALL: [SkipReason; 8] = [
        SkipReason::DnsUnknown,
        SkipReason::Delay,
        SkipReason::HigherOrdinal,
        SkipReason::Reachable,
        SkipReason::Quorum,
        SkipReason::Leader,
        SkipReason::EtcdRefused,
        SkipReason::Maintenance,
    ];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SkipReason::DnsUnknown => "dns_unknown",
            SkipReason::Delay => "delay",
            SkipReason::HigherOrdinal => "higher_ordinal",
            SkipReason::Reachable => "reachable",
            SkipReason::Quorum => "quorum",
            SkipReason::Leader => "leader",
            SkipReason::EtcdRefused => "etcd_refused",
            SkipReason::Maintenance => "maintenance",
        }
    }
}

/// A removal not made, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skip {
    pub reason: SkipReason,
    /// The member concerned, if one is.
    pub member: Option<String>,
    pub detail: String,
}

/// What [`pick`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pick {
    /// No member's pod is gone, and DNS answered for every one.
    Nothing,
    /// A removal may be due but cannot be made now.
    Skip(Skip),
    /// This member's pod is gone by DNS: probe it and the voters, then [`judge`].
    Candidate(u64),
}

/// A removal to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Removal {
    pub id: u64,
    pub label: String,
    /// Why it is safe, for the log.
    pub reason: String,
}

fn skip(reason: SkipReason, member: Option<&MemberFacts>, detail: String) -> Skip {
    Skip { reason, member: member.map(|m| m.label.clone()), detail }
}

impl Facts<'_> {
    fn leader_ordinal(&self) -> Option<u32> {
        self.members.iter().find(|m| m.id == self.leader).and_then(|m| m.ordinal)
    }

    /// The answer for `ordinal`; the leader's own pod exists whatever DNS says, and an ordinal
    /// nobody looked up is unknown.
    fn answer(&self, ordinal: u32) -> Answer {
        if self.leader_ordinal() == Some(ordinal) {
            return Answer::Found;
        }
        self.dns.get(&ordinal).copied().unwrap_or(Answer::Unknown)
    }

    fn member(&self, id: u64) -> Option<&MemberFacts> {
        self.members.iter().find(|m| m.id == id)
    }
}

/// Rules 1-4: the candidate, or why there is none.
pub(crate) fn pick(facts: &Facts) -> Pick {
    let mut ours: Vec<(&MemberFacts, u32)> =
        facts.members.iter().filter_map(|m| m.ordinal.map(|o| (m, o))).collect();
    ours.sort_by(|(a, ao), (b, bo)| bo.cmp(ao).then(a.id.cmp(&b.id)));
    let Some(&(top, top_ordinal)) = ours.iter().find(|(_, o)| facts.answer(*o) == Answer::Missing) else {
        if !facts.pod_list_known {
            return Pick::Skip(skip(
                SkipReason::DnsUnknown,
                None,
                "the pod list (SRV) gave no answer".into(),
            ));
        }
        return match ours.iter().find(|(_, o)| facts.answer(*o) == Answer::Unknown) {
            Some((m, o)) => Pick::Skip(skip(
                SkipReason::DnsUnknown,
                Some(m),
                format!("DNS gave no definite answer for the pod of ordinal {o}: it may exist"),
            )),
            None => Pick::Nothing,
        };
    };
    if top.id == facts.leader {
        return Pick::Skip(skip(SkipReason::Leader, Some(top), "never remove the leader".into()));
    }
    let mut higher: Vec<u32> = facts.dns.range(top_ordinal.saturating_add(1)..).map(|(o, _)| *o).collect();
    higher.extend(ours.iter().map(|(_, o)| *o).filter(|o| *o > top_ordinal));
    higher.extend(facts.leader_ordinal().filter(|o| *o > top_ordinal));
    higher.sort_unstable();
    higher.dedup();
    for o in higher {
        match facts.answer(o) {
            Answer::Missing => {}
            Answer::Found => {
                return Pick::Skip(skip(
                    SkipReason::HigherOrdinal,
                    Some(top),
                    format!(
                        "its pod is absent from DNS for {}, but the pod of ordinal {o} exists (a StatefulSet shrinks from the top)",
                        absent_for(facts, top_ordinal)
                    ),
                ))
            }
            Answer::Unknown => {
                return Pick::Skip(skip(
                    SkipReason::DnsUnknown,
                    Some(top),
                    format!("DNS gave no definite answer for the pod of ordinal {o}, which may exist"),
                ))
            }
        }
    }
    if !facts.pod_list_known {
        return Pick::Skip(skip(
            SkipReason::DnsUnknown,
            Some(top),
            "the pod list (SRV) gave no answer: a higher pod may exist".into(),
        ));
    }
    let absent =
        facts.missing_since.get(&top_ordinal).map(|since| facts.now.saturating_duration_since(*since));
    match absent {
        Some(absent) if absent > facts.delay => Pick::Candidate(top.id),
        _ => Pick::Skip(skip(
            SkipReason::Delay,
            Some(top),
            format!(
                "its pod is absent from DNS for {} of the removal delay {}",
                absent_for(facts, top_ordinal),
                duration::format(facts.delay)
            ),
        )),
    }
}

fn absent_for(facts: &Facts, ordinal: u32) -> String {
    let absent = facts.missing_since.get(&ordinal).map(|s| facts.now.saturating_duration_since(*s));
    human(absent.unwrap_or_default())
}

/// `4.9s` under a minute, else `2m5s`.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

/// Rules 5-6 for the candidate of [`pick`], given who answered as themselves (`answers`: member
/// ID -> answered; a member not in the map did not).
pub(crate) fn judge(facts: &Facts, candidate: u64, answers: &BTreeMap<u64, bool>) -> Result<Removal, Skip> {
    let Some(member) = facts.member(candidate) else {
        return Err(skip(SkipReason::DnsUnknown, None, format!("member {candidate:x} is no longer listed")));
    };
    if candidate == facts.leader {
        return Err(skip(SkipReason::Leader, Some(member), "never remove the leader".into()));
    }
    if facts.maintained == Some(candidate) {
        return Err(skip(
            SkipReason::Maintenance,
            Some(member),
            "it was being defragmented and has not answered since: that is no sign its pod is gone".into(),
        ));
    }
    if answers.get(&candidate).copied().unwrap_or(false) {
        return Err(skip(
            SkipReason::Reachable,
            Some(member),
            "its pod is absent from DNS, but the member still answers as itself".into(),
        ));
    }
    let voters: Vec<&MemberFacts> = facts.members.iter().filter(|m| !m.is_learner).collect();
    let now = voters.len();
    let left = now - usize::from(!member.is_learner);
    let answering = voters
        .iter()
        .filter(|m| m.id != candidate)
        .filter(|m| m.id == facts.leader || answers.get(&m.id).copied().unwrap_or(false))
        .count();
    // The removal is committed by the voters of now; a quorum of those is one of the voters left.
    let quorum = now / 2 + 1;
    if left == 0 || answering < quorum {
        return Err(skip(
            SkipReason::Quorum,
            Some(member),
            format!("{answering} of the {now} voting members answer; committing the removal needs {quorum}"),
        ));
    }
    let ordinal = member.ordinal.map(|o| o.to_string()).unwrap_or_else(|| "?".into());
    Ok(Removal {
        id: candidate,
        label: member.label.clone(),
        reason: format!(
            "its pod (ordinal {ordinal}) is absent from DNS for {} (longer than {}), no higher pod exists, it does not answer, and {answering} of the {now} voting members answer (quorum {quorum}; {left} left after)",
            member.ordinal.map(|o| absent_for(facts, o)).unwrap_or_default(),
            duration::format(facts.delay)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_removal_falls_due_just_after_the_delay_from_the_first_missing_answer() {
        let t0 = Instant::now();
        let delay = Duration::from_secs(5);
        let mut clock = Clock::default();
        assert_eq!(clock.next_due(delay, t0), None, "nothing missing");
        clock.record(&BTreeMap::from([(3, Answer::Missing), (4, Answer::Found)]), t0);
        clock.record(
            &BTreeMap::from([(3, Answer::Missing), (4, Answer::Missing)]),
            t0 + Duration::from_secs(1),
        );
        let due = clock.next_due(delay, t0).expect("due");
        assert!(due > t0 + delay && due < t0 + delay + Duration::from_millis(10), "{:?}", due - t0);
        assert_eq!(
            clock.next_due(delay, t0 + delay + Duration::from_millis(10)),
            Some(t0 + Duration::from_secs(1) + delay + Duration::from_millis(1)),
            "a round after the first run's due saw it; the second run's is next"
        );
        assert_eq!(
            clock.next_due(delay, t0 + Duration::from_secs(1) + delay + Duration::from_millis(10)),
            None,
            "a round after every due: the ticks do the rest"
        );
        assert_eq!(
            clock.next_due(delay, t0 + delay - Duration::from_millis(10)),
            Some(due),
            "the last round began before the due: due, even once the clock has passed it"
        );
    }

    const DELAY: Duration = Duration::from_secs(120);

    /// A cluster of voters `etcd-0..n` with IDs 100+ordinal; etcd-0 leads.
    fn voters(n: u32) -> Vec<MemberFacts> {
        (0..n)
            .map(|o| MemberFacts {
                id: 100 + u64::from(o),
                label: format!("etcd-{o}"),
                ordinal: Some(o),
                is_learner: false,
            })
            .collect()
    }

    struct Case {
        members: Vec<MemberFacts>,
        leader: u64,
        dns: BTreeMap<u32, Answer>,
        /// Ordinal -> seconds since first missing.
        missing_for: BTreeMap<u32, u64>,
        pod_list_known: bool,
        maintained: Option<u64>,
    }

    impl Case {
        /// `n` voters; ordinals 0..=n looked up (n: one past the last), all found but `n`.
        fn new(n: u32) -> Case {
            let mut dns: BTreeMap<u32, Answer> = (0..n).map(|o| (o, Answer::Found)).collect();
            dns.insert(n, Answer::Missing);
            let missing_for = BTreeMap::from([(n, 600)]);
            Case { members: voters(n), leader: 100, dns, missing_for, pod_list_known: true, maintained: None }
        }

        fn gone(mut self, ordinal: u32, secs: u64) -> Case {
            self.dns.insert(ordinal, Answer::Missing);
            self.missing_for.insert(ordinal, secs);
            self
        }

        fn dns(mut self, ordinal: u32, answer: Answer) -> Case {
            self.dns.insert(ordinal, answer);
            if answer != Answer::Missing {
                self.missing_for.remove(&ordinal);
            }
            self
        }

        /// Pick, and for a candidate judge with `answering` (member ordinals that answer).
        fn run(&self, answering: &[u32]) -> Result<Removal, Option<Skip>> {
            let now = Instant::now() + Duration::from_secs(10_000);
            let missing_since: BTreeMap<u32, Instant> =
                self.missing_for.iter().map(|(o, s)| (*o, now - Duration::from_secs(*s))).collect();
            let facts = Facts {
                members: &self.members,
                leader: self.leader,
                dns: &self.dns,
                missing_since: &missing_since,
                pod_list_known: self.pod_list_known,
                now,
                delay: DELAY,
                maintained: self.maintained,
            };
            match pick(&facts) {
                Pick::Nothing => Err(None),
                Pick::Skip(s) => Err(Some(s)),
                Pick::Candidate(id) => {
                    let answers = self
                        .members
                        .iter()
                        .filter_map(|m| m.ordinal.map(|o| (m.id, answering.contains(&o))))
                        .collect();
                    judge(&facts, id, &answers).map_err(Some)
                }
            }
        }
    }

    fn removed(result: &Result<Removal, Option<Skip>>) -> Option<u64> {
        result.as_ref().ok().map(|r| r.id)
    }

    fn skipped(result: &Result<Removal, Option<Skip>>) -> Option<SkipReason> {
        match result {
            Err(Some(s)) => Some(s.reason),
            _ => None,
        }
    }

    #[test]
    fn nothing_to_do_when_every_pod_exists() {
        assert_eq!(Case::new(3).run(&[0, 1, 2]), Err(None));
    }

    #[test]
    fn top_pod_gone_longer_than_the_delay_is_removed() {
        let r = Case::new(5).gone(4, 121).run(&[0, 1, 2, 3]);
        assert_eq!(removed(&r), Some(104), "{r:?}");
        let reason = r.expect("removal").reason;
        assert!(
            reason.contains("absent from DNS for 2m1s") && reason.contains("4 of the 5 voting"),
            "{reason}"
        );
    }

    #[test]
    fn the_delay_must_have_passed() {
        let r = Case::new(5).gone(4, 119).run(&[0, 1, 2, 3]);
        assert_eq!(skipped(&r), Some(SkipReason::Delay), "{r:?}");
        assert!(format!("{r:?}").contains("1m59s of the removal delay 2m"), "{r:?}");
        assert_eq!(skipped(&Case::new(5).gone(4, 120).run(&[0, 1, 2, 3])), Some(SkipReason::Delay));
    }

    #[test]
    fn two_pods_gone_remove_the_highest_first() {
        let r = Case::new(5).gone(4, 300).gone(3, 300).run(&[0, 1, 2]);
        assert_eq!(removed(&r), Some(104), "{r:?}");
        // The top one still inside its delay holds back the lower one, even if that one is older.
        let r = Case::new(5).gone(4, 10).gone(3, 300).run(&[0, 1, 2]);
        assert_eq!(skipped(&r), Some(SkipReason::Delay), "{r:?}");
    }

    #[test]
    fn a_higher_pod_that_exists_blocks_removal() {
        let r = Case::new(3).gone(1, 600).run(&[0, 2]);
        assert_eq!(skipped(&r), Some(SkipReason::HigherOrdinal), "{r:?}");
        assert!(format!("{r:?}").contains("ordinal 2 exists"), "{r:?}");
        // Also a pod above the members (one about to join).
        let r = Case::new(3).gone(2, 600).dns(3, Answer::Found).run(&[0, 1]);
        assert_eq!(skipped(&r), Some(SkipReason::HigherOrdinal), "{r:?}");
    }

    #[test]
    fn the_leaders_own_pod_counts_as_existing_whatever_dns_says() {
        let mut case = Case::new(3).gone(1, 600).dns(2, Answer::Unknown);
        case.leader = 102;
        let r = case.run(&[0, 2]);
        assert_eq!(skipped(&r), Some(SkipReason::HigherOrdinal), "{r:?}");
    }

    #[test]
    fn dns_errors_never_mean_gone() {
        // The pod's own name unknown: not a candidate, reported as unknown.
        let r = Case::new(3).dns(2, Answer::Unknown).run(&[0, 1]);
        assert_eq!(skipped(&r), Some(SkipReason::DnsUnknown), "{r:?}");
        // Everything unknown (SERVFAIL or timeouts).
        let mut all = Case::new(3);
        for o in 0..=3 {
            all = all.dns(o, Answer::Unknown);
        }
        assert_eq!(skipped(&all.run(&[0])), Some(SkipReason::DnsUnknown));
        // A higher ordinal unknown: it may exist.
        let r = Case::new(5).gone(3, 600).dns(4, Answer::Unknown).run(&[0, 1, 2]);
        assert_eq!(skipped(&r), Some(SkipReason::DnsUnknown), "{r:?}");
        // The ordinal past the members unknown.
        let r = Case::new(3).gone(2, 600).dns(3, Answer::Unknown).run(&[0, 1]);
        assert_eq!(skipped(&r), Some(SkipReason::DnsUnknown), "{r:?}");
        // The pod list unknown.
        let mut case = Case::new(3).gone(2, 600);
        case.pod_list_known = false;
        assert_eq!(skipped(&case.run(&[0, 1])), Some(SkipReason::DnsUnknown));
        let mut case = Case::new(3);
        case.pod_list_known = false;
        assert_eq!(skipped(&case.run(&[0, 1, 2])), Some(SkipReason::DnsUnknown));
    }

    #[test]
    fn an_ordinal_nobody_looked_up_is_unknown() {
        let mut case = Case::new(3).gone(1, 600);
        case.dns.remove(&2);
        assert_eq!(skipped(&case.run(&[0])), Some(SkipReason::DnsUnknown));
    }

    #[test]
    fn a_member_that_still_answers_is_kept() {
        let r = Case::new(3).gone(2, 600).run(&[0, 1, 2]);
        assert_eq!(skipped(&r), Some(SkipReason::Reachable), "{r:?}");
    }

    #[test]
    fn never_a_removal_that_costs_quorum() {
        // 3 voters, 2 and 1 gone: only 0 answers, no quorum to commit anything.
        let r = Case::new(3).gone(2, 600).gone(1, 600).run(&[0]);
        assert_eq!(skipped(&r), Some(SkipReason::Quorum), "{r:?}");
        assert!(
            format!("{r:?}").contains("1 of the 3 voting members answer; committing the removal needs 2"),
            "{r:?}"
        );
        // 3 voters, 2 gone: 0 and 1 answer.
        assert_eq!(removed(&Case::new(3).gone(2, 600).run(&[0, 1])), Some(102));
        // 2 voters, 1 gone (the two-member trap): the removal cannot be committed.
        assert_eq!(skipped(&Case::new(2).gone(1, 600).run(&[0])), Some(SkipReason::Quorum));
        // 5 voters, 4 gone, 3 not answering: 0, 1, 2 are a quorum of 5 (and of the 4 left).
        assert_eq!(removed(&Case::new(5).gone(4, 600).run(&[0, 1, 2])), Some(104));
        // 4 voters (one already removed), 3 gone: 0, 1, 2 are a quorum of 4.
        assert_eq!(removed(&Case::new(4).gone(3, 600).run(&[0, 1, 2])), Some(103));
        // ... but with only 0 and 1 answering it is not.
        assert_eq!(skipped(&Case::new(5).gone(4, 600).run(&[0, 1])), Some(SkipReason::Quorum));
    }

    #[test]
    fn a_learner_is_removed_without_changing_the_voter_count() {
        let mut case = Case::new(4).gone(3, 600);
        case.members[3].is_learner = true;
        // Voters {0,1,2}; 0 and 1 answer: a quorum of 3 stays.
        assert_eq!(removed(&case.run(&[0, 1])), Some(103));
        // Only the leader answers: 1 of 3 voters, no quorum.
        assert_eq!(skipped(&case.run(&[0])), Some(SkipReason::Quorum));
    }

    #[test]
    fn never_the_leader() {
        let mut case = Case::new(3).gone(2, 600);
        case.leader = 102;
        // The leader's pod exists whatever DNS says: the top gone member is below it, or none.
        let r = case.run(&[0, 1, 2]);
        assert_eq!(r, Err(None), "{r:?}");
        // judge refuses it even when asked directly.
        let now = Instant::now();
        let since = BTreeMap::from([(2, now - Duration::from_secs(600))]);
        let facts = Facts {
            members: &case.members,
            leader: 102,
            dns: &case.dns,
            missing_since: &since,
            pod_list_known: true,
            now,
            delay: DELAY,
            maintained: None,
        };
        let err = judge(&facts, 102, &BTreeMap::new()).expect_err("leader");
        assert_eq!(err.reason, SkipReason::Leader);
    }

    #[test]
    fn a_member_being_defragmented_is_never_removed() {
        // Its pod gone past the delay and it does not answer: only because it is defragmenting.
        let mut case = Case::new(3).gone(2, 600);
        case.maintained = Some(102);
        let r = case.run(&[0, 1]);
        assert_eq!(skipped(&r), Some(SkipReason::Maintenance), "{r:?}");
        // Another member's defragmentation does not protect this one.
        case.maintained = Some(101);
        assert_eq!(removed(&case.run(&[0, 1])), Some(102));
    }

    #[test]
    fn members_of_other_sets_are_never_candidates() {
        let mut case = Case::new(3);
        case.members.push(MemberFacts { id: 999, label: "other-7".into(), ordinal: None, is_learner: false });
        assert_eq!(case.run(&[0, 1, 2]), Err(None));
    }

    #[test]
    fn an_unstarted_member_whose_pod_is_gone_is_removed() {
        // A member added by a pod that was deleted before its etcd started: it never answers.
        let mut case = Case::new(4).gone(3, 600);
        case.members[3].label = "etcd-3 (unstarted)".into();
        assert_eq!(removed(&case.run(&[0, 1, 2])), Some(103));
    }

    #[test]
    fn absences_read_well() {
        assert_eq!(human(Duration::from_millis(4_960)), "5.0s");
        assert_eq!(human(Duration::from_millis(900)), "0.9s");
        assert_eq!(human(Duration::from_secs(60)), "1m0s");
        assert_eq!(human(Duration::from_secs(125)), "2m5s");
    }

    #[test]
    fn reasons_have_stable_labels() {
        let labels: Vec<&str> = SkipReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            labels,
            [
                "dns_unknown",
                "delay",
                "higher_ordinal",
                "reachable",
                "quorum",
                "leader",
                "etcd_refused",
                "maintenance"
            ]
        );
    }

    #[test]
    fn clock_runs_only_through_unbroken_missing_answers() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(5);
        let mut clock = Clock::default();
        let round = |answers: &[(u32, Answer)]| answers.iter().copied().collect::<BTreeMap<_, _>>();
        clock.record(&round(&[(1, Answer::Missing), (2, Answer::Missing), (3, Answer::Missing)]), t0);
        clock.record(&round(&[(1, Answer::Missing), (2, Answer::Unknown), (4, Answer::Found)]), t1);
        assert_eq!(
            clock.missing_since(),
            &BTreeMap::from([(1, t0)]),
            "1 keeps its start; unknown and unlooked restart"
        );
        clock.record(&round(&[(1, Answer::Found), (2, Answer::Missing)]), t1);
        assert_eq!(clock.missing_since(), &BTreeMap::from([(2, t1)]));
        clock.restart();
        assert!(clock.missing_since().is_empty());
    }

    #[test]
    fn an_unconfirmed_removal_is_done_only_when_the_member_is_no_longer_listed() {
        let u = Unconfirmed { id: 7, label: "etcd-3 (7)".into(), message: "timed out".into() };
        assert!(u.done(&[1, 2]), "not listed: applied");
        assert!(!u.done(&[1, 2, 7]), "still listed: not applied, the policy decides again");
    }

    #[test]
    fn a_run_started_between_rounds_lasts_only_while_rounds_see_the_name_missing() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(300);
        let mut clock = Clock::default();
        let round = |answers: &[(u32, Answer)]| answers.iter().copied().collect::<BTreeMap<_, _>>();
        assert!(clock.start(3, t0), "a new run");
        assert!(!clock.start(3, t1), "under way already: its start stays");
        assert_eq!(clock.next_due(Duration::from_secs(5), t1), Some(t0 + Duration::from_millis(5001)));
        clock.record(&round(&[(3, Answer::Missing)]), t1);
        assert_eq!(clock.missing_since(), &BTreeMap::from([(3, t0)]), "the round keeps the earlier start");
        clock.record(&round(&[(3, Answer::Found)]), t1);
        assert!(clock.missing_since().is_empty(), "back in DNS: no run");
        assert!(clock.start(3, t1));
        clock.record(&round(&[(3, Answer::Unknown)]), t1);
        assert!(clock.missing_since().is_empty(), "unknown restarts it");
    }

    #[test]
    fn a_member_that_appears_under_an_ordinal_starts_its_absence_again() {
        // Chaos run 10, op 39: etcd-4 scaled away, its name missing for 10 s; a new etcd-4 pod
        // whose DNS record is late joins as a learner (a new member ID). Its absence counts from
        // the member's appearance, not from the old pod's.
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let missing: BTreeMap<u32, Answer> = [(4, Answer::Missing)].into_iter().collect();
        let mut clock = Clock::default();
        clock.note_members(&[(0, 10), (1, 11)], at(0));
        clock.record(&missing, at(0));
        clock.note_members(&[(0, 10), (1, 11)], at(0));
        assert_eq!(clock.missing_since().get(&4), Some(&at(0)));
        clock.record(&missing, at(10));
        clock.note_members(&[(0, 10), (1, 11), (4, 14)], at(10));
        assert_eq!(clock.missing_since().get(&4), Some(&at(10)), "the new member's run starts now");
        clock.record(&missing, at(12));
        clock.note_members(&[(0, 10), (1, 11), (4, 14)], at(12));
        assert_eq!(clock.missing_since().get(&4), Some(&at(10)), "the same member keeps its run");
        clock.record(&missing, at(13));
        clock.note_members(&[(0, 10), (1, 11), (4, 24)], at(13));
        assert_eq!(clock.missing_since().get(&4), Some(&at(13)), "another member under the ordinal");
        clock.note_members(&[(0, 10), (1, 11)], at(14));
        clock.record(&missing, at(15));
        assert_eq!(clock.missing_since().get(&4), Some(&at(13)), "a member that leaves changes nothing");
        clock.restart();
        assert!(clock.missing_since().is_empty());
    }
}
