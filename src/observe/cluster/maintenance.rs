//! What the sidecar's maintenance reads from the etcd API: each member's status with its
//! database sizes, and the alarms raised. The calls that change something (defragment, alarm
//! disarm, compact) are `act::etcd_calls`. Errors are read into
//! [`Refusal`](crate::observed::Refusal) like every call's; what each refusal means next is the
//! pure policy in `decide::refusals`.

use std::time::Duration;

use etcd_client::{AlarmAction, AlarmType};

use crate::observed::CallError;

use super::{timed_call, within, Access, Endpoint, MemberClient};

/// What one member says about itself and its database (`status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbReport {
    pub member_id: u64,
    /// The leader it knows of; 0 when it knows none.
    pub leader: u64,
    pub is_learner: bool,
    /// `dbSize`: the file, as counted against the quota.
    pub db_size: u64,
    /// `dbSizeInUse`; 0 where etcd does not report it.
    pub db_in_use: u64,
    /// The key-value store's revision as this member has applied it.
    pub revision: i64,
    /// The member's own etcd version (`version` in its status).
    pub version: Option<crate::observed::Release>,
}

impl DbReport {
    /// Who the member is, without the database figures.
    pub fn self_report(&self) -> super::SelfReport {
        super::SelfReport { member_id: self.member_id, leader: self.leader, is_learner: self.is_learner }
    }
}

/// One raised alarm as etcd lists it: the member and etcd's alarm number (1 NOSPACE, 2 CORRUPT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaisedAlarm {
    pub member: u64,
    pub code: i32,
}

impl Access {
    /// The same access with other client TLS material (certificate rotation): the CA and the
    /// client certificate and key as PEM; credentials and scheme stay.
    pub fn with_client_tls(
        &self,
        ca_pem: Option<Vec<u8>>,
        identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Access {
        Access { https: self.https, ca_pem, identity_pem, auth: self.auth.clone() }
    }
}

/// Ask the member at `endpoint` for its status, within `timeout` (connect and call).
pub async fn db_report_at(
    access: &Access,
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<DbReport, String> {
    MemberClient::connect(access, endpoint, timeout).await?.db_report(timeout).await
}

impl MemberClient {
    /// `status` of the member the calls go to, with its database sizes.
    pub async fn db_report(&mut self, timeout: Duration) -> Result<DbReport, String> {
        let status = within(timeout, "status", self.client.status()).await?;
        let header = status.header();
        Ok(DbReport {
            member_id: header.map(|h| h.member_id()).unwrap_or_default(),
            leader: status.leader(),
            is_learner: status.is_learner(),
            db_size: u64::try_from(status.db_size()).unwrap_or_default(),
            db_in_use: u64::try_from(status.raft_used_db_size()).unwrap_or_default(),
            revision: header.map(|h| h.revision()).unwrap_or_default(),
            version: crate::observed::Release::parse(status.version()),
        })
    }

    /// The alarms raised in the cluster (the request goes through etcd's log: it needs quorum),
    /// within `timeout`.
    pub async fn alarms(&mut self, timeout: Duration) -> Result<Vec<RaisedAlarm>, CallError> {
        let list =
            timed_call(timeout, "alarm list", self.client.alarm(AlarmAction::Get, AlarmType::None, None))
                .await?;
        Ok(list
            .alarms()
            .iter()
            .map(|a| RaisedAlarm { member: a.member_id(), code: a.alarm() as i32 })
            .collect())
    }
}
