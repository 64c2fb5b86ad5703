//! The membership job: beside the leader, promote one learner, else remove at most one member
//! whose pod is gone, each round (every interval, and at once when a removal falls due between
//! two). Which learner and which member are pure choices ([`learners`], [`removal`]); what a
//! refusal means is the pure policy in `decide::refusals`. Each promotion and removal is made
//! under the one-change-at-a-time lock, and never removes the member the maintenance job
//! defragmented last until it has answered again.
//!
//! "Gone" is only ever a definite negative DNS answer that lasted longer than `--removal-delay`;
//! DNS errors and timeouts are "unknown" and restart that clock ([`removal::Clock`]). Between
//! rounds the job watches its etcd's peer connections ([`Presence`]), so the clock starts when a
//! pod's records go, not up to an interval later. The clock is kept only while this member leads:
//! a new leader's sidecar waits a full delay before its first removal.
//!
//! Who leads comes from the leadership job, at most one interval old: for that long after a
//! change two sidecars may both act. Each call goes to etcd through its own leader either way,
//! the same pure policy makes the same choice (a second removal of one member is "gone already"),
//! and the removal policy never removes a member that answers, so the new leader is never one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::decide::refusals::{self, Call, Next};
use crate::duration;
use crate::error::Result;
use crate::observe::dns::Lookup;
use crate::observe::peers;
use crate::observed::{Member, Refusal};

use super::super::job::{Action, Job};
use super::super::metrics::PromotionSkip;
use super::super::policy::learners::{self, Learner};
use super::super::policy::presence::Presence;
use super::super::policy::removal::{self, Facts, MemberFacts, Pick, Removal, Skip, SkipReason, Unconfirmed};
use super::pods::{self, member_label, member_ordinal, LastIps, Pods};
use super::probe;
use super::{cluster_error, LocalClient, Sidecar};

/// The job, and what it remembers between rounds.
pub(crate) struct MembershipJob {
    s: Arc<Sidecar>,
    local: LocalClient,
    /// Whether the last pass found the local member leading.
    leading: bool,
    clock: removal::Clock,
    /// Between rounds, while leading: which member pods have lost their peer connections.
    presence: Presence,
    /// A removal whose call got no answer, for the next round's member list to settle.
    unconfirmed_removal: Option<Unconfirmed>,
    /// When the last round began, and when the next one is due on the interval's grid.
    round_began: Instant,
    next_round: Instant,
    last_ip: LastIps,
}

impl MembershipJob {
    pub(crate) fn new(s: Arc<Sidecar>) -> Self {
        let now = Instant::now();
        MembershipJob {
            s,
            local: LocalClient::default(),
            leading: false,
            clock: removal::Clock::default(),
            presence: Presence::default(),
            unconfirmed_removal: None,
            round_began: now,
            next_round: now,
            last_ip: LastIps::default(),
        }
    }
}

impl Job for MembershipJob {
    const NAME: &'static str = "membership";

    fn interval(&self) -> Duration {
        self.s.settings.interval
    }

    async fn reconcile(&mut self) -> Result<Action> {
        let Some(leader) = self.s.coordination.leadership().local() else {
            if self.leading {
                self.leading = false;
                self.forget_runs();
            }
            return Ok(Action::await_change());
        };
        let now = Instant::now();
        if !self.leading {
            // Just became the leader: a round at once.
            self.leading = true;
            self.next_round = now;
        }
        let delay = self.s.settings.removal_delay;
        let due = self.clock.next_due(delay, self.round_began);
        if now >= self.next_round || due.is_some_and(|d| now >= d) {
            self.round_began = now;
            self.next_round = now + self.s.settings.interval;
            self.round(leader).await?;
        } else {
            self.look_between_rounds().await;
        }
        let now = Instant::now();
        let wake = [
            Some(self.next_round),
            self.clock.next_due(delay, self.round_began),
            self.presence.next_look(now, self.clock.missing_since()),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.next_round);
        Ok(Action::requeue(wake.saturating_duration_since(now)))
    }

    fn failed(&mut self) {
        // No lookups this round: no unbroken run of answers either.
        self.local.reset();
        self.forget_runs();
    }
}

impl MembershipJob {
    /// One round beside the leader `leader` (the local member): one membership change at most.
    async fn round(&mut self, leader: u64) -> Result<()> {
        let s = self.s.clone();
        let local = self.local.get(&s).await.map_err(|m| cluster_error("connect", &s, m))?;
        let members = local.members().await.map_err(|e| cluster_error("member list", &s, e.message))?;
        self.settle_unconfirmed_removal(&members);
        let found =
            pods::look_up(&s.ctx.clients.resolver, &s.ctx.identity, &s.ctx.scan.peer_port_name, &members)
                .await;
        self.last_ip.note(&found);
        let now = Instant::now();
        self.clock.record(&found.answers, now);
        let by_ordinal: Vec<(u32, u64)> =
            members.iter().filter_map(|m| member_ordinal(&s.ctx.identity, m).map(|o| (o, m.id))).collect();
        self.clock.note_members(&by_ordinal, now);
        // For the metrics (the leader's view): a removal pending is a listed member whose pod is
        // gone (not the probe one past the set).
        let listed: std::collections::BTreeSet<u32> =
            members.iter().filter_map(|m| member_ordinal(&s.ctx.identity, m)).collect();
        let pending = (self.clock.missing_since().iter())
            .filter(|(o, _)| listed.contains(*o))
            .map(|(_, since)| now.saturating_duration_since(*since))
            .max();
        let pods_found = found.answers.values().filter(|a| **a == removal::Answer::Found).count();
        s.shared.lock().cluster =
            Some(super::super::metrics::ClusterView::new(&members, pods_found, pending));
        let id = &s.ctx.identity;
        let watched = members
            .iter()
            .filter_map(|m| member_ordinal(id, m))
            .filter(|o| *o != id.ordinal)
            .filter_map(|o| found.ips.get(&o).map(|ip| (o, *ip)))
            .collect();
        self.presence.watch(watched);
        let facts = self.facts(&members);
        if !self.promote(&facts, &found).await {
            self.consider_removal(leader, &members, &facts, &found).await;
        }
        Ok(())
    }

    /// This member stopped leading, or a round saw nothing: no run of "missing" answers is
    /// unbroken any more, and nothing is watched between rounds.
    fn forget_runs(&mut self) {
        self.clock.restart();
        self.presence.stop();
    }

    /// Between two rounds, while leading: read the local etcd's peer connections and look up the
    /// names of member pods that lost theirs; a definite "no such name" starts the removal clock
    /// now rather than at the next round ([`presence`]).
    async fn look_between_rounds(&mut self) {
        let now = Instant::now();
        let s = self.s.clone();
        let connected =
            self.presence.read_due(now).then(|| probe::peer_connection_ips(s.ctx.member.peer_port));
        let ask = self.presence.pods_to_look_up(connected.as_ref(), self.clock.missing_since(), now);
        if ask.is_empty() {
            return;
        }
        for (ordinal, host, answer) in peers::lookup_all(&s.ctx.clients.resolver, &s.ctx.identity, &ask).await
        {
            if matches!(answer, Lookup::Missing) && self.clock.start(ordinal, Instant::now()) {
                info!(
                    pod = %host,
                    "{host} is gone from DNS (its peer connections closed): its member is removed once it has been gone for {}, unless it comes back",
                    duration::format(s.settings.removal_delay)
                );
            }
        }
    }

    fn failed_call(&self, call: &str, message: &str) {
        warn!(call, "{call} failed: {message}");
        self.s.shared.lock().error(&format!("{call}: {message}"));
    }

    /// Each member as the pure policies see it.
    fn facts(&self, members: &[Member]) -> Vec<MemberFacts> {
        let id = &self.s.ctx.identity;
        members
            .iter()
            .map(|m| MemberFacts {
                id: m.id,
                label: member_label(id, m),
                ordinal: member_ordinal(id, m),
                is_learner: m.is_learner,
            })
            .collect()
    }

    /// Promote the first learner etcd accepts; true when one was promoted (the one membership
    /// change of this round).
    async fn promote(&mut self, facts: &[MemberFacts], pods: &Pods) -> bool {
        for learner in learners::in_order(facts, &pods.answers) {
            let learner = match learner {
                Learner::PodGone(m) => {
                    self.promotion_skipped(
                        PromotionSkip::PodGone,
                        &m.label,
                        "its pod is absent from DNS".into(),
                    );
                    continue;
                }
                Learner::Try(m) => m,
            };
            let label = &learner.label;
            let s = self.s.clone();
            let _change = s.coordination.change().await;
            let Ok(local) = self.local.get(&s).await else { return false };
            let Err(e) = crate::act::etcd_calls::promote(local, learner.id).await else {
                self.s.shared.lock().promotions += 1;
                info!(action = "promote", member = %label, "promoted learner {label}: etcd reports it in sync with the leader");
                return true;
            };
            match (refusals::next(Call::Promote, e.refusal), e.refusal) {
                (Next::Done, Refusal::NotALearner) => {
                    info!(member = %label, "{label} is a voting member already: {}", e.message)
                }
                (Next::Done, _) => info!(member = %label, "learner {label} is gone already: {}", e.message),
                (Next::Retry | Next::ObserveAgain, refusal) => {
                    let reason = match refusal {
                        Refusal::LearnerNotInSync => PromotionSkip::NotInSync,
                        _ => PromotionSkip::Refused,
                    };
                    self.promotion_skipped(
                        reason,
                        label,
                        format!("{}; trying again next interval", e.message),
                    );
                }
                (Next::Fail, _) => self.failed_call("member promote", &e.message),
            }
        }
        false
    }

    fn promotion_skipped(&self, reason: PromotionSkip, label: &str, detail: String) {
        *self.s.shared.lock().promotions_skipped.entry(reason).or_default() += 1;
        info!(action = "skip-promotion", reason = reason.as_str(), member = %label, "not promoting learner {label}: {detail}");
    }

    /// Remove at most one member whose pod is gone, by the pure removal policy; true when one
    /// was removed (the one membership change of this round).
    async fn consider_removal(
        &mut self,
        leader: u64,
        members: &[Member],
        facts: &[MemberFacts],
        pods: &Pods,
    ) -> bool {
        let mut facts = Facts {
            members: facts,
            leader,
            dns: &pods.answers,
            missing_since: self.clock.missing_since(),
            pod_list_known: pods.pod_list_known,
            now: Instant::now(),
            delay: self.s.settings.removal_delay,
            maintained: self.s.coordination.defragmenting(),
        };
        let s = self.s.clone();
        let mut _change = None;
        if matches!(removal::pick(&facts), Pick::Candidate(_)) {
            // One cluster-changing call at a time: a defragmentation under way ends first, and
            // the member it was made on is known before the candidate is judged.
            _change = Some(s.coordination.change().await);
            (facts.maintained, facts.now) = (s.coordination.defragmenting(), Instant::now());
        }
        let verdict = match removal::pick(&facts) {
            Pick::Nothing => return false,
            Pick::Skip(skip) => Err(skip),
            Pick::Candidate(candidate) => {
                let answers = self.probe(leader, candidate, members, pods).await;
                facts.now = Instant::now();
                removal::judge(&facts, candidate, &answers)
            }
        };
        match verdict {
            Ok(removal) => self.remove(removal).await,
            Err(skip) => {
                self.removal_skipped(skip, pods);
                false
            }
        }
    }

    /// Which members answer as themselves (see [`probe::targets`]).
    async fn probe(
        &self,
        leader: u64,
        candidate: u64,
        members: &[Member],
        pods: &Pods,
    ) -> BTreeMap<u64, bool> {
        let id = &self.s.ctx.identity;
        let connected = probe::peer_connection_ips(self.s.ctx.member.peer_port);
        let absent = pods.absent();
        let at = pods::where_to_ask(&self.s, pods, &self.last_ip, &absent, &connected);
        let (asked, calls) =
            probe::targets(leader, candidate, members, |m| member_ordinal(id, m), |o| id.peer_host(o), &at);
        let (_, access) = self.s.coordination.access();
        probe::answers(&access, self.s.ctx.probe_timeout, asked, calls).await
    }

    async fn remove(&mut self, removal: Removal) -> bool {
        let s = self.s.clone();
        let Ok(local) = self.local.get(&s).await else { return false };
        let label = removal.label.clone();
        let Err(e) = crate::act::etcd_calls::remove(local, removal.id).await else {
            self.s.shared.lock().removals += 1;
            info!(action = "remove", member = %label, "removed member {label}: {}", removal.reason);
            return true;
        };
        if e.refusal == Refusal::Unreachable {
            self.unconfirmed_removal =
                Some(Unconfirmed { id: removal.id, label: label.clone(), message: e.message.clone() });
        }
        match refusals::next(Call::Remove, e.refusal) {
            Next::Done => info!(member = %label, "member {label} was removed already: {}", e.message),
            Next::Retry | Next::ObserveAgain => self.removal_skipped(
                Skip {
                    reason: SkipReason::EtcdRefused,
                    member: Some(label),
                    detail: format!(
                        "etcd refused the removal for now ({}); trying again next interval",
                        e.message
                    ),
                },
                &Pods::default(),
            ),
            Next::Fail => self.failed_call("member remove", &e.message),
        }
        false
    }

    /// A removal whose call got no answer last round: count it if the member list no longer
    /// has the member (etcd applied it), else forget it (the policy decides again).
    fn settle_unconfirmed_removal(&mut self, members: &[Member]) {
        let Some(u) = self.unconfirmed_removal.take() else { return };
        let listed: Vec<u64> = members.iter().map(|m| m.id).collect();
        if u.done(&listed) {
            self.s.shared.lock().removals += 1;
            info!(
                action = "remove",
                member = %u.label,
                "removed member {}: the call got no answer ({}), and the member list no longer has it",
                u.label,
                u.message
            );
        }
    }

    fn removal_skipped(&self, skip: Skip, pods: &Pods) {
        *self.s.shared.lock().removals_skipped.entry(skip.reason).or_default() += 1;
        let dns = match (&skip.reason, &pods.unknown) {
            (SkipReason::DnsUnknown, Some(why)) => format!(" ({why})"),
            _ => String::new(),
        };
        let reason = skip.reason.as_str();
        match skip.member {
            Some(member) => {
                info!(action = "skip-removal", reason, member = %member, "not removing {member}: {}{dns}", skip.detail)
            }
            None => info!(action = "skip-removal", reason, "no removal this round: {}{dns}", skip.detail),
        }
    }
}
