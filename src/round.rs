//! One round of a start, as `run` and `plan` both take it: gather (read-only: `observe::round`,
//! and with `--restore-from` the snapshot's facts), then the one pure verdict
//! (`decide::round::verdict`). `run` acts on exactly what this returns (`act`), and `plan` prints
//! exactly this.

use std::time::Duration;

use crate::backup::restore_round::{self, RestoreSource};
use crate::context::Context;
use crate::decide::round::{self as verdict_of, HoldFacts, RoundFacts};
use crate::decide::Verdict;
use crate::error::Result;
use crate::observe::peer_members::PeerAccess;
use crate::observe::{self, Round, Sources};

/// A round gathered and decided.
pub(crate) struct Decided {
    pub round: Round,
    pub verdict: Verdict,
}

/// Gather once with `sources` and decide; `held_for`: how long NEW has been held so far.
pub(crate) async fn gather_and_decide(
    ctx: &Context,
    sources: &Sources<'_>,
    restore_source: Option<&mut RestoreSource>,
    held_for: Duration,
) -> Result<Decided> {
    let round = observe::round(sources).await?;
    let restore = match restore_source {
        Some(source) => Some(restore_round::gather(ctx, &round, source).await?),
        None => None,
    };
    let initial_urls: Vec<String> = ctx.initial_cluster.iter().map(|(_, url)| url.clone()).collect();
    let facts = RoundFacts {
        obs: round.observation(&ctx.me),
        restore: restore.as_ref(),
        hold: HoldFacts {
            initial_urls: &initial_urls,
            held_for,
            peer_ports_asked: !matches!(ctx.clients.peer_access, PeerAccess::Unavailable(_)),
        },
        versions: &round.versions,
    };
    let verdict = verdict_of::verdict(&facts, &ctx.settings);
    Ok(Decided { round, verdict })
}
