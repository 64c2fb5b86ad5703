//! The leader's sidecar's membership changes: promote one learner, else remove at most one member
//! whose pod is gone. Which learner and which member are pure choices ([`learners`],
//! [`removal`]); what a refusal means is the pure policy in `decide::refusals`.
//!
//! [`learners`]: super::learners
//! [`removal`]: super::removal

use std::collections::BTreeMap;
use std::time::Instant;

use tracing::info;

use crate::act::etcd_calls;
use crate::decide::refusals::{self, Call, Next};
use crate::observed::{Member, Refusal};

use super::learners::{self, Learner};
use super::metrics::PromotionSkip;
use super::pods::{member_label, member_ordinal, Pods};
use super::probe;
use super::removal::{self, Facts, MemberFacts, Pick, Removal, Skip, SkipReason, Unconfirmed};
use super::Sidecar;

impl Sidecar<'_> {
    /// Each member as the pure policies see it.
    pub(super) fn facts(&self, members: &[Member]) -> Vec<MemberFacts> {
        let id = &self.ctx.identity;
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
    pub(super) async fn promote(&mut self, facts: &[MemberFacts], pods: &Pods) -> bool {
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
            let Some(local) = self.local.as_mut() else { return false };
            let Err(e) = etcd_calls::promote(local, learner.id).await else {
                self.shared.lock().promotions += 1;
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
                (Next::Fail, _) => self.failed("member promote", &e.message),
            }
        }
        false
    }

    fn promotion_skipped(&self, reason: PromotionSkip, label: &str, detail: String) {
        *self.shared.lock().promotions_skipped.entry(reason).or_default() += 1;
        info!(action = "skip-promotion", reason = reason.as_str(), member = %label, "not promoting learner {label}: {detail}");
    }

    /// Remove at most one member whose pod is gone, by the pure removal policy; true when one
    /// was removed (the one membership change of this round).
    pub(super) async fn consider_removal(
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
            delay: self.settings.removal_delay,
            maintained: self.maint.busy_with(),
        };
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
        let id = &self.ctx.identity;
        let connected = probe::peer_connection_ips(self.ctx.member.peer_port);
        let absent = pods.absent();
        let at = self.where_to_ask(pods, &absent, &connected);
        let (asked, calls) =
            probe::targets(leader, candidate, members, |m| member_ordinal(id, m), |o| id.peer_host(o), &at);
        probe::answers(&self.access, self.ctx.probe_timeout, asked, calls).await
    }

    async fn remove(&mut self, removal: Removal) -> bool {
        let Some(local) = self.local.as_mut() else { return false };
        let label = removal.label.clone();
        let Err(e) = etcd_calls::remove(local, removal.id).await else {
            self.shared.lock().removals += 1;
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
            Next::Fail => self.failed("member remove", &e.message),
        }
        false
    }

    /// A removal whose call got no answer last round: count it if the member list no longer
    /// has the member (etcd applied it), else forget it (the policy decides again).
    pub(super) fn settle_unconfirmed_removal(&mut self, members: &[Member]) {
        let Some(u) = self.unconfirmed_removal.take() else { return };
        let listed: Vec<u64> = members.iter().map(|m| m.id).collect();
        if u.done(&listed) {
            self.shared.lock().removals += 1;
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
        *self.shared.lock().removals_skipped.entry(skip.reason).or_default() += 1;
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
