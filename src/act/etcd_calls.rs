//! The etcd calls that change the cluster, each through a connection `observe::cluster` made:
//! membership (`member add`, `remove`, `update`, `promote`, for `act` and the sidecar) and
//! maintenance (`defragment`, NOSPACE alarm disarm, `compact`, for the sidecar). A refused call
//! comes back as a [`CallError`] whose [`Refusal`](crate::observed::Refusal) was read from etcd's
//! gRPC status; what it means next is the pure policy in `decide::refusals`.

use std::time::Duration;

use etcd_client::{AlarmAction, AlarmOptions, AlarmType, CompactionOptions, MemberAddOptions};

use crate::observe::cluster::{call, timed_call, to_member, Access, Endpoint, MemberClient};
use crate::observed::{CallError, Member, Refusal};

/// A defragmentation blocks its member for as long as it takes (about a second per 100 MB of
/// a disk's worth of copying); past this the call is given up, and the member is waited for.
/// Below the sidecar's two-minute liveness margin.
pub const DEFRAG_TIMEOUT: Duration = Duration::from_secs(90);

/// A physical compaction returns once the backend has applied it.
pub const COMPACT_TIMEOUT: Duration = Duration::from_secs(60);

/// `member add` of `peer_url` through `via`; returns the new member and the full member list
/// after the add.
pub async fn add(
    via: &mut MemberClient,
    peer_url: &str,
    learner: bool,
) -> Result<(Member, Vec<Member>), CallError> {
    let options = learner.then(|| MemberAddOptions::new().with_is_learner());
    let mut cluster = via.client().cluster_client();
    let resp = call("member add", cluster.member_add(vec![peer_url.to_string()], options)).await?;
    let added = resp.member().map(to_member).ok_or_else(|| CallError {
        refusal: Refusal::Other,
        message: "member add returned no member".into(),
    })?;
    let all = resp.member_list().iter().map(to_member).collect();
    Ok((added, all))
}

/// `member remove` of `id` through `via`.
pub async fn remove(via: &mut MemberClient, id: u64) -> Result<(), CallError> {
    let mut cluster = via.client().cluster_client();
    call("member remove", cluster.member_remove(id)).await.map(|_| ())
}

/// `member update` of `id`'s peer URLs through `via`.
pub async fn update(via: &mut MemberClient, id: u64, peer_urls: Vec<String>) -> Result<(), CallError> {
    let mut cluster = via.client().cluster_client();
    call("member update", cluster.member_update(id, peer_urls)).await.map(|_| ())
}

/// `member promote` of the learner `id` through `via`.
pub async fn promote(via: &mut MemberClient, id: u64) -> Result<(), CallError> {
    let mut cluster = via.client().cluster_client();
    call("member promote", cluster.member_promote(id)).await.map(|_| ())
}

/// Defragment the member at `endpoint` (the call goes to that member only), connecting within
/// `connect_timeout`.
pub async fn defragment_at(
    access: &Access,
    endpoint: &Endpoint,
    connect_timeout: Duration,
) -> Result<(), CallError> {
    let mut member =
        MemberClient::connect_for_long_call(access, endpoint, DEFRAG_TIMEOUT, connect_timeout).await?;
    timed_call(DEFRAG_TIMEOUT, "defragment", member.client().defragment()).await.map(|_| ())
}

/// Disarm the NOSPACE alarm `member` raised, through `via`.
pub async fn disarm_nospace(via: &mut MemberClient, member: u64) -> Result<(), CallError> {
    let mut options = AlarmOptions::new();
    options.with_member(member);
    let disarm = via.client().alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(options));
    call("alarm disarm", disarm).await.map(|_| ())
}

/// Compact the key history up to `revision` through `via`, physically (the call returns once the
/// backend has dropped it, so a defragmentation after it gives the space back).
pub async fn compact(via: &mut MemberClient, revision: i64) -> Result<(), CallError> {
    let options = CompactionOptions::new().with_physical();
    timed_call(COMPACT_TIMEOUT, "compact", via.client().compact(revision, Some(options))).await.map(|_| ())
}
