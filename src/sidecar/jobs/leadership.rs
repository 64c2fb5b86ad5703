//! The leadership job: every interval, on every sidecar, the local member's status. It is the one
//! writer of who leads ([`Leadership`]); the jobs that change the cluster act only while the local
//! member leads, and wake when that changes. It also feeds `/readyz` (the local member answered)
//! and the local database's size, and says once per change which role the local member has.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::duration;
use crate::error::Error;
use crate::observe::cluster::SelfReport;

use super::super::coordination::Leadership;
use super::super::job::{Action, Job};
use super::{LocalClient, Sidecar};

/// How the local member was found in the last pass (logged when it changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    Down(String),
    NoLeader,
    Follower(u64),
    Learner,
    Leader,
}

impl Role {
    /// The role a status answer shows.
    pub(crate) fn of(report: &SelfReport) -> Role {
        match (report.is_leader(), report.is_learner, report.leader) {
            (true, _, _) => Role::Leader,
            (false, true, _) => Role::Learner,
            (false, false, 0) => Role::NoLeader,
            (false, false, leader) => Role::Follower(leader),
        }
    }

    /// Who leads, as this role shows it.
    pub(crate) fn leadership(&self, member_id: u64) -> Leadership {
        match self {
            Role::Leader => Leadership::Local(member_id),
            Role::Down(_) => Leadership::Unknown,
            Role::NoLeader | Role::Follower(_) | Role::Learner => Leadership::Elsewhere,
        }
    }

    /// Log this role, for a local member at `local`, asked every `every`.
    pub(crate) fn log(&self, local: &str, every: &str) {
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

/// The job.
pub(crate) struct LeadershipJob {
    s: Arc<Sidecar>,
    local: LocalClient,
    role: Option<Role>,
}

impl LeadershipJob {
    pub(crate) fn new(s: Arc<Sidecar>) -> Self {
        LeadershipJob { s, local: LocalClient::default(), role: None }
    }

    fn note_role(&mut self, role: Role) {
        if self.role.as_ref() != Some(&role) {
            role.log(&self.s.local_endpoint.url, &duration::format(self.s.settings.interval));
            self.role = Some(role);
        }
    }
}

/// The cluster version as the local member's peer port tells it (`GET /version`), for the
/// metrics; None where undecided or not told.
async fn cluster_version(s: &Sidecar, timeout: Duration) -> Option<String> {
    use crate::observe::peer_members::{self, PeerEndpoint};
    let endpoint = PeerEndpoint {
        host: s.ctx.identity.own_host(),
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], s.ctx.member.peer_port)),
    };
    let told = peer_members::ask_version(&s.ctx.clients.peer_access, &endpoint, timeout).await.ok()?;
    told.cluster.map(|c| c.minor_line_text())
}

impl Job for LeadershipJob {
    const NAME: &'static str = "leadership";

    fn interval(&self) -> Duration {
        self.s.settings.interval
    }

    async fn reconcile(&mut self) -> Result<Action, Error> {
        let s = self.s.clone();
        let timeout = s.ctx.probe_timeout;
        let report = match self.local.get(&s).await {
            Ok(local) => local.db_report(timeout).await,
            Err(e) => Err(e),
        };
        match report {
            Ok(report) => {
                let role = Role::of(&report.self_report());
                let cluster_version = cluster_version(&s, timeout).await;
                {
                    let mut m = s.shared.lock();
                    m.versions = super::super::metrics::VersionsSeen {
                        member: report.version.map(|v| (s.ctx.identity.pod_name.clone(), v.to_string())),
                        cluster: cluster_version,
                    };
                    m.local_up(role == Role::Leader);
                    (m.maintenance.db_size, m.maintenance.db_in_use) =
                        (Some(report.db_size), Some(report.db_in_use));
                }
                s.coordination.set_leadership(role.leadership(report.member_id));
                self.note_role(role);
            }
            Err(problem) => {
                self.local.reset();
                s.shared.lock().local_down(&format!("local member {}: {problem}", s.local_endpoint.url));
                s.coordination.set_leadership(Leadership::Unknown);
                self.note_role(Role::Down(problem));
            }
        }
        {
            let mut m = s.shared.lock();
            m.rounds += 1;
            m.last_round = Instant::now();
        }
        Ok(Action::requeue(s.settings.interval))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_who_leads() {
        let report = |member_id, leader, is_learner| SelfReport { member_id, leader, is_learner };
        // (status, role, who leads)
        let rows = [
            (report(1, 1, false), Role::Leader, Leadership::Local(1)),
            (report(1, 2, false), Role::Follower(2), Leadership::Elsewhere),
            (report(1, 0, false), Role::NoLeader, Leadership::Elsewhere),
            (report(3, 2, true), Role::Learner, Leadership::Elsewhere),
        ];
        for (r, role, leads) in rows {
            assert_eq!(Role::of(&r), role, "{r:?}");
            assert_eq!(role.leadership(r.member_id), leads, "{r:?}");
        }
        assert_eq!(Role::Down("x".into()).leadership(1), Leadership::Unknown, "no answer: nobody acts");
    }
}
