//! One start: observe -> decide -> act, in a loop until the decision is actionable or
//! `--wait-timeout` passes; the caller then execs etcd ([`exec`]). The membership calls a
//! decision needs are in [`membership`], which makes them through [`etcd_calls`] (every etcd call
//! that changes the cluster) and moves a stale `member/` aside with [`archive`]; what etcd's
//! refusals mean is `decide::refusals`.

use std::time::{Duration, Instant};

use tracing::{error, info, warn};

pub(crate) mod archive;
pub mod etcd_calls;
pub(crate) mod exec;
mod membership;
pub(crate) mod pacing;

use crate::backup::restore_round::{self, RestoreSource};
use crate::context::Context;
use crate::decide::{start_mode, Decision, StartMode, Verdict};
use crate::error::{Error, Result};
use crate::observe::Round;
use crate::round::Decided;
use crate::signals::Shutdown;

/// A WAIT with an unchanged reason is logged this often.
const WAIT_LOG_EVERY: Duration = Duration::from_secs(5);
/// The least time one observation gets, even when the deadline has nearly passed.
const MIN_OBSERVE: Duration = Duration::from_millis(500);

/// What to do after acting on a decision.
enum Step {
    Start(StartMode),
    /// Observe again at once: the cluster changed under the decision.
    Again,
    /// Not actionable yet: look again after a pause ([`pacing`]); `dns` when initial peers were
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
    let mut new_held_since: Option<Instant> = None;
    let mut restore_source = RestoreSource::from_context(ctx)?;
    if crate::backup::restore::discard_leftover_work(&ctx.member.data_dir)? {
        warn!("removed the work dir of a restore that a crash cut short; a restore still due is redone");
    }
    loop {
        let step = tokio::select! {
            step = round(ctx, deadline, last_reason.as_deref(), restore_source.as_mut(), &mut new_held_since) => step?,
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

/// One gather/decide/act round. Gathering is bounded by the time left before `deadline` (DNS
/// and peers that do not answer must not stretch `--wait-timeout`); a membership call, once
/// started, runs to its own timeout so its outcome is known. The verdict is
/// `round::gather_and_decide`'s, exactly what `plan` prints; this only carries it out.
async fn round(
    ctx: &Context,
    deadline: Instant,
    last_reason: Option<&str>,
    mut restore_source: Option<&mut RestoreSource>,
    new_held_since: &mut Option<Instant>,
) -> Result<Step> {
    let left = deadline.saturating_duration_since(Instant::now()).max(MIN_OBSERVE);
    let held_for = new_held_since.map_or(Duration::ZERO, |since| since.elapsed());
    let sources = ctx.sources();
    let gathered = crate::round::gather_and_decide(ctx, &sources, restore_source.as_deref_mut(), held_for);
    let Ok(decided) = tokio::time::timeout(left, gathered).await else {
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
    let Decided { mut round, verdict, .. } = decided?;
    if let (Some(warning), Some(source)) = (&verdict.warning, restore_source.as_deref_mut()) {
        source.warn_once(warning);
    } else if let Some(warning) = &verdict.warning {
        warn!("{warning}");
    }
    if verdict.new_held && new_held_since.is_none() {
        *new_held_since = Some(Instant::now());
    }
    if let (Decision::Restore { token, .. }, Some(source)) = (&verdict.decision, restore_source) {
        return restore(ctx, &round, &verdict, source, token).await;
    }
    act(ctx, &mut round, verdict).await
}

/// RESTORE: restore the snapshot into the data dir, then start NEW with the restore token.
async fn restore(
    ctx: &Context,
    round: &Round,
    verdict: &Verdict,
    source: &RestoreSource,
    token: &str,
) -> Result<Step> {
    let (sha256, revision) =
        source.manifest_read().map(|m| (m.sha256.clone(), m.revision)).unwrap_or_default();
    info!(decision = "RESTORE", snapshot = %source.url, sha256 = %sha256, revision = revision, "{}", verdict.reason);
    let etcd = exec::locate(&ctx.etcd_binary, ctx.env.path_var.as_deref())?;
    restore_round::perform(ctx, source, token, &etcd).await?;
    match start_mode(&verdict.decision, round.members(), &ctx.launch()) {
        Some(mode) => Ok(Step::Start(mode)),
        None => Ok(Step::Again),
    }
}

async fn act(ctx: &Context, round: &mut Round, verdict: Verdict) -> Result<Step> {
    let reason = verdict.reason;
    let decision = verdict.decision;
    match decision {
        // Carried out by `restore` before `act`, where `--restore-from` gave its source: a
        // verdict cannot say RESTORE without one.
        Decision::Restore { .. } => Ok(Step::Again),
        Decision::Wait => Ok(Step::Wait { reason, dns: !round.scan.dns.unresolved_initial.is_empty() }),
        Decision::Refuse => {
            error!(decision = "REFUSE", "{reason}");
            Err(Error::Refused(reason))
        }
        Decision::Existing { update_peer_urls: Some(id) } => {
            membership::update_peer_url(ctx, round, id, &reason).await
        }
        Decision::Join { reuse: None, as_learner } => {
            membership::add_member(ctx, round, as_learner, &reason).await
        }
        Decision::Replace { remove } => membership::remove_member(round, remove, &reason).await,
        Decision::Stale { member_id } => membership::archive(ctx, member_id, &reason),
        Decision::New
        | Decision::Existing { update_peer_urls: None }
        | Decision::Join { reuse: Some(_), .. } => {
            match &decision {
                Decision::Join { reuse: Some(id), .. } => {
                    info!(decision = "JOIN", member = %format!("{id:x}"), "{reason}")
                }
                other => info!(decision = other.name(), "{reason}"),
            }
            match start_mode(&decision, round.members(), &ctx.launch()) {
                Some(mode) => Ok(Step::Start(mode)),
                None => Ok(Step::Wait { reason, dns: false }),
            }
        }
    }
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
