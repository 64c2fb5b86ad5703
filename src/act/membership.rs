//! The membership calls a decision needs before etcd starts, and the archive of a STALE data dir.
//! Each call's refusals are read through its pure policy in `decide::refusals`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::context::Context;
use crate::crash;
use crate::decide::refusals::{self, Call, Next};
use crate::decide::{self, join_mode, joiners, AfterAdd, StartMode};
use crate::error::Result;
use crate::observe::cluster::{self, MemberClient};
use crate::observe::Round;
use crate::observed::{Member, Refusal};

use super::{archive, etcd_calls, Step};

/// Pause before looking again for a concurrent joiner after my add.
const SETTLE_PAUSE: Duration = Duration::from_millis(500);
/// How long a joiner waits for a concurrent joiner that ranks after it to withdraw.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

pub(super) async fn update_peer_url(ctx: &Context, round: &mut Round, id: u64, reason: &str) -> Result<Step> {
    info!(decision = "EXISTING", action = "member update", "{reason}");
    let Some(member) = round.observed.quorum_member.as_mut() else {
        return Ok(Step::Wait {
            reason: "no member with quorum to update the peer URL through".into(),
            dns: false,
        });
    };
    let Err(e) = etcd_calls::update(member, id, vec![ctx.me.peer_url.clone()]).await else {
        crash::point("after-update");
        info!(member = %format!("{id:x}"), peer_url = %ctx.me.peer_url, "peer URL updated");
        return Ok(Step::Start(StartMode::Existing));
    };
    match (refusals::next(Call::Update, e.refusal), e.refusal) {
        (Next::ObserveAgain, _) => {
            warn!(member = %format!("{id:x}"), "member update: {}: this member was removed since the cluster was asked; looking again", e.message);
            Ok(Step::Again)
        }
        (Next::Retry, Refusal::PeerUrlExists) => Ok(Step::Retry(format!(
            "another member already has my peer URL {} ({}), so member {id:x} cannot take it: waiting until that member is removed or the data of this pod is moved aside",
            ctx.me.peer_url, e.message
        ))),
        (Next::Retry, _) => Ok(Step::Retry(format!("member update refused for now: {}", e.message))),
        // Nothing is done when the update failed: only a success starts the member.
        (Next::Done | Next::Fail, _) => Err(cluster::cluster_error("member update", member.host(), &e)),
    }
}

pub(super) async fn add_member(
    ctx: &Context,
    round: &mut Round,
    learner: bool,
    reason: &str,
) -> Result<Step> {
    info!(decision = "JOIN", action = "member add", learner, "{reason}");
    let Some(member) = round.observed.quorum_member.as_mut() else {
        return Ok(Step::Wait {
            reason: "no member with quorum to add this member through".into(),
            dns: false,
        });
    };
    let e = match etcd_calls::add(member, &ctx.me.peer_url, learner).await {
        Ok((added, all)) => {
            crash::point("after-add");
            info!(member = %format!("{:x}", added.id), via = member.host(), "member added");
            let alone = !joiners::other_joiner_possible(ctx.me.ordinal, &round.scan.resolved, &all, |m| {
                ctx.identity.ordinal_of_urls(&m.peer_urls)
            });
            return settle_join(ctx, member, added.id, all, alone).await;
        }
        Err(e) => e,
    };
    match refusals::next(Call::Add, e.refusal) {
        // Someone (an earlier run of this pod) added my peer URL already: observe again and reuse it.
        Next::ObserveAgain => {
            info!("{}: looking for the entry to reuse", e.message);
            Ok(Step::Again)
        }
        Next::Retry => Ok(Step::Retry(format!("member add refused for now: {}", e.message))),
        Next::Done | Next::Fail => Err(cluster::cluster_error("member add", member.host(), &e)),
    }
}

/// After my add, look again for a second joiner added at the same moment (see
/// [`decide::after_add`]): one of the two withdraws, so each starts with a complete member list.
async fn settle_join(
    ctx: &Context,
    via: &mut MemberClient,
    my_id: u64,
    mut members: Vec<Member>,
    alone: bool,
) -> Result<Step> {
    // With no other pod that could be joining (DNS), the list the add returned is complete.
    let rank = |m: &Member| ctx.identity.ordinal_of_urls(&m.peer_urls);
    if alone && decide::after_add(my_id, &members, rank) == AfterAdd::Start {
        return Ok(Step::Start(join_mode(&members, &ctx.launch())));
    }
    let deadline = Instant::now() + SETTLE_LIMIT;
    loop {
        tokio::time::sleep(SETTLE_PAUSE).await;
        if let Ok(latest) = via.members().await {
            members = latest;
        }
        match decide::after_add(my_id, &members, |m| ctx.identity.ordinal_of_urls(&m.peer_urls)) {
            AfterAdd::Start => return Ok(Step::Start(join_mode(&members, &ctx.launch()))),
            AfterAdd::Withdraw { other } => return withdraw(via, my_id, other, &members, ctx).await,
            AfterAdd::Hold { other } if Instant::now() >= deadline => {
                warn!(other = %format!("{other:x}"), "the other joiner did not withdraw in time: starting with both entries listed");
                return Ok(Step::Start(join_mode(&members, &ctx.launch())));
            }
            AfterAdd::Hold { other } => {
                info!(other = %format!("{other:x}"), "another member was added at the same time and ranks after me: waiting for it to withdraw");
            }
        }
    }
}

async fn withdraw(
    via: &mut MemberClient,
    my_id: u64,
    other: u64,
    members: &[Member],
    ctx: &Context,
) -> Result<Step> {
    let withdrawn = match etcd_calls::remove(via, my_id).await {
        Ok(()) => true,
        Err(e) => match refusals::next(Call::Remove, e.refusal) {
            Next::Done => true,
            Next::ObserveAgain | Next::Retry | Next::Fail => {
                warn!(error = %e.message, "could not withdraw my entry: starting with both entries listed");
                false
            }
        },
    };
    if withdrawn {
        return Ok(Step::Retry(format!(
            "member {other:x} was added at the same time and joins first: withdrew my never-started entry {my_id:x}"
        )));
    }
    // Could not withdraw: start with every entry listed, which is consistent for both.
    Ok(Step::Start(join_mode(members, &ctx.launch())))
}

pub(super) async fn remove_member(round: &mut Round, id: u64, reason: &str) -> Result<Step> {
    info!(decision = "REPLACE", action = "member remove", member = %format!("{id:x}"), "{reason}");
    let Some(member) = round.observed.quorum_member.as_mut() else {
        return Ok(Step::Wait {
            reason: "no member with quorum to remove the old member through".into(),
            dns: false,
        });
    };
    if let Err(e) = etcd_calls::remove(member, id).await {
        match refusals::next(Call::Remove, e.refusal) {
            // Removed already: as after a success.
            Next::Done => {}
            Next::ObserveAgain | Next::Retry => {
                return Ok(Step::Retry(format!("member remove refused for now: {}", e.message)))
            }
            Next::Fail => return Err(cluster::cluster_error("member remove", member.host(), &e)),
        }
    }
    crash::point("after-remove");
    info!(member = %format!("{id:x}"), "old member removed; joining next");
    Ok(Step::Again)
}

pub(super) fn archive(ctx: &Context, member_id: u64, reason: &str) -> Result<Step> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let moved_to = archive::archive_member(&ctx.member.data_dir, now)?;
    crash::point("after-archive");
    warn!(decision = "STALE", member = %format!("{member_id:x}"), archive = %moved_to.display(), "{reason}; old data kept at the archive path");
    Ok(Step::Again)
}
