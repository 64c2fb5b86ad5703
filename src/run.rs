//! One start: observe -> decide -> act, in a loop until the decision is actionable or
//! `--wait-timeout` passes; the caller then execs etcd.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{error, info, warn};

use crate::both_ports;
use crate::cluster::{self, CallError, MemberClient, Observed};
use crate::context::Context;
use crate::crash;
use crate::datadir::{self, DataDirState};
use crate::decide::{self, decide, joiners, AfterAdd, Decision, Observation, Verdict};
use crate::error::{Error, Result};
use crate::etcd_args::StartMode;
use crate::identity;
use crate::pacing;
use crate::peers::{self, PeerScan};
use crate::signals::Shutdown;
use crate::view::{ClusterView, Heard, Member};

/// A WAIT with an unchanged reason is logged this often.
const WAIT_LOG_EVERY: Duration = Duration::from_secs(5);
/// Pause before looking again for a concurrent joiner after my add.
const SETTLE_PAUSE: Duration = Duration::from_millis(500);
/// How long a joiner waits for a concurrent joiner that ranks after it to withdraw.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);
/// The least time one observation gets, even when the deadline has nearly passed.
const MIN_OBSERVE: Duration = Duration::from_millis(500);

/// Everything observed in one round.
pub struct Round {
    pub data: DataDirState,
    pub scan: PeerScan,
    pub observed: Observed,
    /// Every answer beyond the client port's best one (other client answers, peer ports).
    pub heard: Heard,
}

impl Round {
    /// The decision for this round.
    pub fn verdict(&self, ctx: &Context) -> Verdict {
        let obs = Observation {
            me: &ctx.me,
            data: &self.data,
            cluster: &self.observed.view,
            heard: &self.heard,
            peers: &self.scan.dns,
        };
        decide(&obs, &ctx.settings)
    }

    /// The cluster as the decision read it (the peer ports' lists standing in for a client
    /// answer with quorum where there is none).
    pub fn view(&self) -> ClusterView {
        decide::answers::decision_view(&self.data, &self.observed.view, &self.heard)
    }
}

/// Look at the data dir, DNS and the cluster once; `every_client_answer` waits for each client
/// port even where a peer port settled the decision (for `plan`).
pub async fn observe(ctx: &Context, every_client_answer: bool) -> Result<Round> {
    let data = datadir::inspect(&ctx.member.data_dir)?;
    if let DataDirState::Unknown { .. } = data {
        // REFUSE whatever the cluster says: do not touch the network for it.
        let view = ClusterView::NoAnswer { tried: Vec::new() };
        let observed = Observed { view, quorum_member: None };
        return Ok(Round { data, scan: PeerScan::default(), observed, heard: Heard::default() });
    }
    let scan = peers::scan(&ctx.resolver, &ctx.identity, &ctx.scan).await;
    let ask = both_ports::Ask {
        access: &ctx.access,
        peer_access: &ctx.peer_access,
        peer_port: ctx.member.peer_port,
        timeout: ctx.probe_timeout,
        data: &data,
        me: &ctx.me,
        every_client_answer,
    };
    let (observed, heard) = both_ports::observe(&ask, &scan.endpoints).await;
    Ok(Round { data, scan, observed, heard })
}

/// What to do after acting on a decision.
enum Step {
    Start(StartMode),
    Again,
    /// Not actionable yet: look again after a pause (`pacing`); `dns` when initial peers were
    /// missing from DNS.
    Wait {
        reason: String,
        dns: bool,
    },
    /// A membership call was refused for a reason that passes: retry with backoff.
    Retry(String),
}

/// `delay` stretched by a random 0-50 %, so pods started together do not retry in lockstep.
fn jittered(delay: Duration) -> Duration {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    delay.saturating_add(delay.mul_f64((random % 1000) as f64 / 2000.0))
}

/// Run the loop; returns how etcd must start.
pub async fn bootstrap(ctx: &Context, shutdown: &mut Shutdown) -> Result<StartMode> {
    let started = Instant::now();
    let deadline = started + ctx.wait_timeout;
    let mut waits = WaitLog::default();
    let mut retries = 0u32;
    let mut same_reason = 0u32;
    let mut last_reason: Option<String> = None;
    loop {
        let step = tokio::select! {
            step = round(ctx, deadline, last_reason.as_deref()) => step?,
            stop = shutdown.received("observing the cluster") => return Err(stop),
        };
        let (reason, pause) = match step {
            Step::Start(mode) => return Ok(mode),
            Step::Again => continue,
            Step::Wait { reason, dns } => {
                retries = 0;
                same_reason =
                    if last_reason.as_deref() == Some(reason.as_str()) { same_reason + 1 } else { 1 };
                waits.log(&reason, started.elapsed());
                (reason, pacing::wait_pause(dns, same_reason))
            }
            Step::Retry(reason) => {
                retries = retries.saturating_add(1);
                let pause = jittered(pacing::retry_delay(retries));
                warn!(decision = "WAIT", retry = retries, backoff = %crate::duration::format(pause), "{reason}");
                (reason, pause)
            }
        };
        if Instant::now() >= deadline {
            return Err(Error::WaitTimeout { waited_secs: started.elapsed().as_secs(), reason });
        }
        let pause = pause.min(deadline.saturating_duration_since(Instant::now()));
        last_reason = Some(reason.clone());
        let doing = format!("waiting: {reason}");
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            stop = shutdown.received(&doing) => return Err(stop),
        }
    }
}

/// One observe/decide/act round. Observing is bounded by the time left before `deadline` (DNS
/// and peers that do not answer must not stretch `--wait-timeout`); a membership call, once
/// started, runs to its own timeout so its outcome is known.
async fn round(ctx: &Context, deadline: Instant, last_reason: Option<&str>) -> Result<Step> {
    let left = deadline.saturating_duration_since(Instant::now()).max(MIN_OBSERVE);
    let Ok(observed) = tokio::time::timeout(left, observe(ctx, false)).await else {
        let reason = match last_reason {
            Some(reason) => reason.to_string(),
            None => {
                let hosts: Vec<String> =
                    (0..ctx.settings.initial_cluster_size).map(|o| ctx.identity.peer_host(o)).collect();
                format!("DNS did not answer in time; waiting for DNS of {}", hosts.join(", "))
            }
        };
        return Ok(Step::Wait { reason, dns: true });
    };
    let mut round = observed?;
    let verdict = round.verdict(ctx);
    act(ctx, &mut round, verdict).await
}

async fn act(ctx: &Context, round: &mut Round, verdict: Verdict) -> Result<Step> {
    let reason = verdict.reason;
    match verdict.decision {
        Decision::Wait => Ok(Step::Wait { reason, dns: !round.scan.dns.unresolved_initial.is_empty() }),
        Decision::Refuse => {
            error!(decision = "REFUSE", "{reason}");
            Err(Error::Refused(reason))
        }
        Decision::New => {
            info!(decision = "NEW", "{reason}");
            Ok(Step::Start(StartMode::New {
                initial_cluster: ctx.initial_cluster(),
                token: ctx.token.clone(),
            }))
        }
        Decision::Existing { update_peer_urls: None } => {
            info!(decision = "EXISTING", "{reason}");
            Ok(Step::Start(StartMode::Existing))
        }
        Decision::Existing { update_peer_urls: Some(id) } => update_peer_url(ctx, round, id, &reason).await,
        Decision::Join { reuse: Some(id), .. } => {
            info!(decision = "JOIN", member = %format!("{id:x}"), "{reason}");
            let members = listed_members(&round.view());
            Ok(Step::Start(join_mode(ctx, &members)))
        }
        Decision::Join { reuse: None, as_learner } => add_member(ctx, round, as_learner, &reason).await,
        Decision::Replace { remove } => remove_member(round, remove, &reason).await,
        Decision::Stale { member_id } => archive(ctx, member_id, &reason),
    }
}

async fn update_peer_url(ctx: &Context, round: &mut Round, id: u64, reason: &str) -> Result<Step> {
    info!(decision = "EXISTING", action = "member update", "{reason}");
    let Some(member) = round.observed.quorum_member.as_mut() else {
        return Ok(Step::Wait {
            reason: "no member with quorum to update the peer URL through".into(),
            dns: false,
        });
    };
    match member.update(id, vec![ctx.me.peer_url.clone()]).await {
        Ok(()) | Err(CallError::AlreadyDone(_)) => {
            crash::point("after-update");
            info!(member = %format!("{id:x}"), peer_url = %ctx.me.peer_url, "peer URL updated");
            Ok(Step::Start(StartMode::Existing))
        }
        Err(CallError::Transient(m)) => Ok(Step::Retry(format!("member update refused for now: {m}"))),
        Err(fatal) => Err(cluster::cluster_error("member update", member.host(), &fatal)),
    }
}

async fn add_member(ctx: &Context, round: &mut Round, learner: bool, reason: &str) -> Result<Step> {
    info!(decision = "JOIN", action = "member add", learner, "{reason}");
    let Some(member) = round.observed.quorum_member.as_mut() else {
        return Ok(Step::Wait {
            reason: "no member with quorum to add this member through".into(),
            dns: false,
        });
    };
    match member.add(&ctx.me.peer_url, learner).await {
        Ok((added, all)) => {
            crash::point("after-add");
            info!(member = %format!("{:x}", added.id), via = member.host(), "member added");
            let alone = !joiners::other_joiner_possible(ctx.me.ordinal, &round.scan.resolved, &all, |m| {
                member_ordinal(ctx, m)
            });
            settle_join(ctx, member, added.id, all, alone).await
        }
        // Someone (an earlier run of this pod) added my peer URL already: observe again and reuse it.
        Err(CallError::AlreadyDone(m)) if m.to_ascii_lowercase().contains("already exists") => {
            info!("{m}: looking for the entry to reuse");
            Ok(Step::Again)
        }
        // etcd derives an added member's ID from its peer URL and the current second: an add
        // right after a removed one clashes ("member not found"). Retry with backoff.
        Err(CallError::AlreadyDone(m)) => Ok(Step::Retry(format!("member add refused for now: {m}"))),
        Err(CallError::Transient(m)) => Ok(Step::Retry(format!("member add refused for now: {m}"))),
        Err(fatal) => Err(cluster::cluster_error("member add", member.host(), &fatal)),
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
    if alone && decide::after_add(my_id, &members, |m| member_ordinal(ctx, m)) == AfterAdd::Start {
        return Ok(Step::Start(join_mode(ctx, &members)));
    }
    let deadline = Instant::now() + SETTLE_LIMIT;
    loop {
        tokio::time::sleep(SETTLE_PAUSE).await;
        if let Ok(latest) = via.members().await {
            members = latest;
        }
        match decide::after_add(my_id, &members, |m| member_ordinal(ctx, m)) {
            AfterAdd::Start => return Ok(Step::Start(join_mode(ctx, &members))),
            AfterAdd::Withdraw { other } => return withdraw(via, my_id, other, &members, ctx).await,
            AfterAdd::Hold { other } if Instant::now() >= deadline => {
                warn!(other = %format!("{other:x}"), "the other joiner did not withdraw in time: starting with both entries listed");
                return Ok(Step::Start(join_mode(ctx, &members)));
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
    match via.remove(my_id).await {
        Ok(()) | Err(CallError::AlreadyDone(_)) => Ok(Step::Retry(format!(
            "member {other:x} was added at the same time and joins first: withdrew my never-started entry {my_id:x}"
        ))),
        // Could not withdraw: start with every entry listed, which is consistent for both.
        Err(e) => {
            warn!(error = e.message(), "could not withdraw my entry: starting with both entries listed");
            Ok(Step::Start(join_mode(ctx, members)))
        }
    }
}

fn member_ordinal(ctx: &Context, m: &Member) -> Option<u32> {
    m.peer_urls.iter().filter_map(|u| url_host(u)).find_map(|host| ctx.identity.ordinal_of_host(host))
}

async fn remove_member(round: &mut Round, id: u64, reason: &str) -> Result<Step> {
    info!(decision = "REPLACE", action = "member remove", member = %format!("{id:x}"), "{reason}");
    let Some(member) = round.observed.quorum_member.as_mut() else {
        return Ok(Step::Wait {
            reason: "no member with quorum to remove the old member through".into(),
            dns: false,
        });
    };
    match member.remove(id).await {
        Ok(()) | Err(CallError::AlreadyDone(_)) => {
            crash::point("after-remove");
            info!(member = %format!("{id:x}"), "old member removed; joining next");
            Ok(Step::Again)
        }
        Err(CallError::Transient(m)) => Ok(Step::Retry(format!("member remove refused for now: {m}"))),
        Err(fatal) => Err(cluster::cluster_error("member remove", member.host(), &fatal)),
    }
}

fn archive(ctx: &Context, member_id: u64, reason: &str) -> Result<Step> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let moved_to = datadir::archive_member(&ctx.member.data_dir, now)?;
    crash::point("after-archive");
    warn!(decision = "STALE", member = %format!("{member_id:x}"), archive = %moved_to.display(), "{reason}; old data kept at the archive path");
    Ok(Step::Again)
}

fn listed_members(view: &ClusterView) -> Vec<Member> {
    match view {
        ClusterView::Answer { members, .. } => members.clone(),
        ClusterView::NoAnswer { .. } => Vec::new(),
    }
}

/// `--initial-cluster` for a JOIN: every member (learners and unstarted ones included, etcd
/// compares counts), named by pod name.
pub fn join_mode(ctx: &Context, members: &[Member]) -> StartMode {
    let mut cluster = Vec::new();
    for m in members {
        let name = member_name(ctx, m);
        for url in &m.peer_urls {
            cluster.push((name.clone(), url.clone()));
        }
    }
    StartMode::Join { initial_cluster: cluster, token: ctx.token.clone() }
}

fn member_name(ctx: &Context, m: &Member) -> String {
    if m.peer_urls.contains(&ctx.me.peer_url) {
        return ctx.me.name.clone();
    }
    if m.started() {
        return m.name.clone();
    }
    m.peer_urls
        .iter()
        .filter_map(|u| url_host(u))
        .find_map(|host| ctx.identity.ordinal_of_host(host))
        .map(|ordinal| identity::host_name(&ctx.identity.set_name, ordinal, ""))
        .unwrap_or_else(|| format!("member-{:x}", m.id))
}

/// Host part of `scheme://host:port`.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let host_port = rest.split('/').next()?;
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(host_port.rsplit_once(':').map_or(host_port, |(h, _)| h))
}

/// Logs a WAIT when its reason changes, and every few seconds while it does not.
#[derive(Default)]
struct WaitLog {
    last_reason: String,
    last_at: Option<Duration>,
}

impl WaitLog {
    fn log(&mut self, reason: &str, elapsed: Duration) {
        let due = self.last_at.is_none_or(|at| elapsed.saturating_sub(at) >= WAIT_LOG_EVERY);
        if reason != self.last_reason || due {
            info!(decision = "WAIT", waited = %format!("{}s", elapsed.as_secs()), "{reason}");
            self.last_reason = reason.to_string();
            self.last_at = Some(elapsed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn url_host_handles_names_ips_and_v6() {
        assert_eq!(url_host("http://etcd-0.etcd:2380"), Some("etcd-0.etcd"));
        assert_eq!(url_host("https://10.0.0.1:2380/"), Some("10.0.0.1"));
        assert_eq!(url_host("http://[fd00::1]:2380"), Some("fd00::1"));
        assert_eq!(url_host("etcd-0:2380"), None);
    }
}
