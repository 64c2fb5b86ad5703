//! How the local member was found in a round: the sidecar acts only while it is the leader, and
//! says so once each time the role changes.

use tracing::{info, warn};

use crate::observe::cluster::SelfReport;

/// How the local member was found in the last round (logged when it changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Role {
    Down(String),
    NoLeader,
    Follower(u64),
    Learner,
    Leader,
}

impl Role {
    /// The role a status answer shows.
    pub(super) fn of(report: &SelfReport) -> Role {
        match (report.is_leader(), report.is_learner, report.leader) {
            (true, _, _) => Role::Leader,
            (false, true, _) => Role::Learner,
            (false, false, 0) => Role::NoLeader,
            (false, false, leader) => Role::Follower(leader),
        }
    }

    /// Log this role, for a local member at `local`, asked every `every`.
    pub(super) fn log(&self, local: &str, every: &str) {
        match self {
            Role::Down(problem) => {
                warn!(local = %local, "the local member does not answer ({problem}); not ready, asking again every {every}")
            }
            Role::NoLeader => info!("the cluster has no leader now: standing by"),
            Role::Learner => info!("the local member is a learner: standing by (the leader's sidecar promotes it)"),
            Role::Follower(leader) => info!(
                leader = %format!("{leader:x}"),
                "the local member is not the leader: standing by (only the leader's sidecar acts)"
            ),
            Role::Leader => info!(
                "the local member is the leader: promoting learners in sync, removing members whose pods are gone, and maintaining the databases (defragmentation, NOSPACE)"
            ),
        }
    }
}
