//! The maintenance calls of the etcd API, for the sidecar: each member's status with its
//! database sizes, defragment, the alarms, compaction. Their errors are mapped to
//! [`Refusal`](crate::observed::Refusal) by the cluster module like every call's; what each
//! refusal means next is the pure policy in `decide::refusals`.

use std::time::Duration;

use etcd_client::{AlarmAction, AlarmOptions, AlarmType, Client, CompactionOptions};

use crate::observed::{CallError, Refusal};

use super::{refusal, short, timed_call, within, Access, Endpoint, MemberClient, MEMBERSHIP_CALL_TIMEOUT};

/// A defragmentation blocks its member for as long as it takes (about a second per 100 MB of
/// a disk's worth of copying); past this the call is given up, and the member is waited for.
/// Below the sidecar's two-minute liveness margin.
pub const DEFRAG_TIMEOUT: Duration = Duration::from_secs(90);

/// A physical compaction returns once the backend has applied it.
pub const COMPACT_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Defragment the member at `endpoint` (the call goes to that member only), connecting within
/// `connect_timeout`.
pub async fn defragment_at(
    access: &Access,
    endpoint: &Endpoint,
    connect_timeout: Duration,
) -> Result<(), CallError> {
    let options = access.options(&endpoint.host, DEFRAG_TIMEOUT).with_connect_timeout(connect_timeout);
    let connecting = Client::connect([endpoint.url.as_str()], Some(options));
    let mut client = match tokio::time::timeout(connect_timeout, connecting).await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => {
            let message = format!("connect {}: {}", endpoint.url, short(&e));
            return Err(CallError { refusal: refusal(&e), message });
        }
        Err(_) => {
            let message = format!("connect {}: timed out", endpoint.url);
            return Err(CallError { refusal: Refusal::Unreachable, message });
        }
    };
    timed_call(DEFRAG_TIMEOUT, "defragment", client.defragment()).await.map(|_| ())
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

    /// Disarm the NOSPACE alarm `member` raised.
    pub async fn disarm_nospace(&mut self, member: u64) -> Result<(), CallError> {
        let mut options = AlarmOptions::new();
        options.with_member(member);
        timed_call(
            MEMBERSHIP_CALL_TIMEOUT,
            "alarm disarm",
            self.client.alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(options)),
        )
        .await
        .map(|_| ())
    }

    /// Compact the key history up to `revision`, physically (the call returns once the backend
    /// has dropped it, so a defragmentation after it gives the space back).
    pub async fn compact(&mut self, revision: i64) -> Result<(), CallError> {
        let options = CompactionOptions::new().with_physical();
        timed_call(COMPACT_TIMEOUT, "compact", self.client.compact(revision, Some(options))).await.map(|_| ())
    }
}
