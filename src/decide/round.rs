//! The round's whole verdict, in one pure function: the decision table ([`decide`]), gated by
//! the version check ([`version::gate`]: an etcd older than the cluster's, or a step etcd's
//! upgrade guide forbids, is never started), then `--restore-from` ([`restore::apply`]: a
//! restore starts a new cluster, so it is not gated), then the NEW start hold ([`new_hold`]). `run` acts on
//! exactly this verdict and `plan` prints exactly this verdict; nothing after it changes the
//! decision.

use std::time::Duration;

use crate::decide::restore::{self, RestoreFacts};
use crate::decide::{decide, new_hold, version, Decision, DecisionSettings, Observation, Verdict};
use crate::observed::Versions;

/// Everything one round gathered that the verdict reads.
#[derive(Debug, Clone)]
pub(crate) struct RoundFacts<'a> {
    pub obs: Observation<'a>,
    /// With `--restore-from`: the snapshot and what the round read of it.
    pub restore: Option<&'a RestoreFacts>,
    pub hold: HoldFacts<'a>,
    /// This pod's etcd version and every version the peers told.
    pub versions: &'a Versions,
}

/// What the NEW start hold reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HoldFacts<'a> {
    /// The peer URLs of the static initial cluster.
    pub initial_urls: &'a [String],
    /// How long NEW has been held so far (zero before the first hold).
    pub held_for: Duration,
    /// Whether the peers' peer ports are asked at all (not with peer TLS and no CA).
    pub peer_ports_asked: bool,
}

/// The round's verdict.
pub(crate) fn verdict(facts: &RoundFacts<'_>, settings: &DecisionSettings) -> Verdict {
    let usual = version::gate(decide(&facts.obs, settings), facts.versions);
    let verdict = match facts.restore {
        Some(restore_facts) => restore::apply(&facts.obs, settings, usual, restore_facts),
        None => usual,
    };
    hold_new(verdict, facts)
}

/// NEW, held for a moment where [`new_hold::hold_new`] says so.
fn hold_new(verdict: Verdict, facts: &RoundFacts<'_>) -> Verdict {
    if verdict.decision != Decision::New {
        return verdict;
    }
    let me = facts.obs.me;
    let answered: Vec<&str> = facts.obs.heard.peer_lists.iter().map(|l| l.host.as_str()).collect();
    let hold = &facts.hold;
    if !new_hold::hold_new(&me.peer_url, hold.initial_urls, &answered, hold.held_for, hold.peer_ports_asked) {
        return verdict;
    }
    let first = hold.initial_urls.iter().min().cloned().unwrap_or_default();
    Verdict {
        decision: Decision::Wait,
        reason: format!(
            "{}; starting once {first} answers on its peer port (its etcd starts first, so etcd's own bootstrap check gets an answer at once)",
            verdict.reason
        ),
        new_held: true,
        ..verdict
    }
}
