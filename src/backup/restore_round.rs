//! `--restore-from` in a round of `run` and `plan`: gather what the pure policy reads (the data
//! dir's restore marker, the snapshot's manifest, read once and only where a restore could
//! happen; [`gather`]), and carry out a RESTORE the round's verdict decided ([`perform`], called
//! by `act`). The decision itself is `decide::restore`, inside `decide::round::verdict`.

use std::path::Path;

use tracing::{info, warn};

use crate::backup::command;
use crate::backup::location::SnapshotUrl;
use crate::backup::manifest::Manifest;
use crate::backup::replay::Replay;
use crate::backup::restore::{self, RestoreTarget};
use crate::backup::segment::{self, Target};
use crate::backup::store::Store;
use crate::context::Context;
use crate::decide::restore::{self as policy, RestoreFacts, RestorePoint, RestoreRequest, SnapshotFacts};
use crate::error::{Error, Result};
use crate::observe::Round;
use crate::observed::DataDirState;

/// The snapshot `--restore-from` names, with its store and manifest once read, and the delta
/// segments a restore replays after it (read once with the manifest, so every round of this
/// start restores the same point).
pub(crate) struct RestoreSource {
    pub url: SnapshotUrl,
    /// Where the replay stops.
    pub point: RestorePoint,
    store: Option<Store>,
    manifest: Option<Manifest>,
    replay: Option<Option<Replay>>,
    last_warning: Option<String>,
}

impl RestoreSource {
    /// The source of `ctx.restore_from`, checked before anything is touched (a bad URL is a
    /// configuration error).
    pub(crate) fn from_context(ctx: &Context) -> Result<Option<RestoreSource>> {
        let Some(ask) = &ctx.restore else {
            return Ok(None);
        };
        let url = SnapshotUrl::parse(&ask.from).map_err(|e| Error::config(format!("--restore-from: {e}")))?;
        let point = match (ask.to_revision, ask.to_time_ms) {
            (Some(n), _) => RestorePoint::Revision(n),
            (None, Some(ms)) => RestorePoint::Time(ms),
            (None, None) => RestorePoint::Newest,
        };
        Ok(Some(RestoreSource { url, point, store: None, manifest: None, replay: None, last_warning: None }))
    }

    /// The snapshot's manifest, once read.
    pub(crate) fn manifest_read(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// The delta segments a restore replays, once read (None inside: the snapshot alone).
    pub(crate) fn replay_read(&self) -> Option<&Replay> {
        self.replay.as_ref().and_then(Option::as_ref)
    }

    /// The replay of the snapshot's chain up to [`RestoreSource::point`], read once.
    async fn replay(&mut self, manifest: &Manifest) -> Result<Option<Replay>> {
        if let Some(replay) = &self.replay {
            return Ok(replay.clone());
        }
        let Some(store) = &self.store else {
            return Err(Error::config("--restore-from: the store could not be opened"));
        };
        let replay = plan_replay(store, manifest, self.point).await?;
        self.replay = Some(replay.clone());
        Ok(replay)
    }

    async fn manifest(&mut self, ctx: &Context) -> Result<Manifest> {
        if let Some(m) = &self.manifest {
            return Ok(m.clone());
        }
        if self.store.is_none() {
            let env = command::Env { vars: &ctx.env.store_env, resolv_conf: None };
            self.store =
                Some(command::open_store(&self.url.store, &ctx.store, &env, Some(&ctx.clients.resolver))?);
        }
        let Some(store) = &self.store else {
            return Err(Error::config("--restore-from: the store could not be opened"));
        };
        let manifest = store.manifest(&self.url.name).await?;
        self.manifest = Some(manifest.clone());
        Ok(manifest)
    }

    /// Log `warning` unless it is the one logged last.
    pub(crate) fn warn_once(&mut self, warning: &str) {
        if self.last_warning.as_deref() != Some(warning) {
            warn!("{warning}");
            self.last_warning = Some(warning.to_string());
        }
    }
}

/// Gather what the restore policy reads this round: the data dir's restore marker, and the
/// snapshot's manifest where the pure policy says a restore could happen (read once, then kept).
/// An unreadable store is an error for an empty data dir (it would otherwise start NEW instead
/// of the restore asked for) and a fact for the policy otherwise.
pub(crate) async fn gather(ctx: &Context, round: &Round, source: &mut RestoreSource) -> Result<RestoreFacts> {
    let snapshot = source.url.to_string();
    let restored_from_this =
        restore::read_marker(&ctx.member.data_dir).is_some_and(|m| m.snapshot == snapshot);
    let obs = round.observation(&ctx.me);
    let not_read =
        RestoreFacts { snapshot: snapshot.clone(), restored_from_this, manifest: SnapshotFacts::NotRead };
    if policy::settled_without_manifest(&obs, restored_from_this, &snapshot).is_some() {
        return Ok(not_read);
    }
    let manifest = match source.manifest(ctx).await {
        Ok(m) => m,
        Err(e) if matches!(round.data, DataDirState::Member(_)) => {
            return Ok(RestoreFacts { manifest: SnapshotFacts::Unreadable(e.to_string()), ..not_read });
        }
        Err(e) => return Err(e),
    };
    let source_cluster_id = u64::from_str_radix(&manifest.cluster_id, 16).map_err(|_| Error::Snapshot {
        snapshot: snapshot.clone(),
        problem: format!("has a manifest whose cluster ID {:?} is not hex", manifest.cluster_id),
    })?;
    let replay = match source.replay(&manifest).await {
        Ok(r) => r,
        Err(e) if matches!(round.data, DataDirState::Member(_)) => {
            return Ok(RestoreFacts { manifest: SnapshotFacts::Unreadable(e.to_string()), ..not_read });
        }
        Err(e) => return Err(e),
    };
    let token = policy::restore_token(&ctx.token, &manifest.sha256, replay.as_ref().map(|r| r.to_revision));
    let request = RestoreRequest {
        snapshot: snapshot.clone(),
        sha256: manifest.sha256.clone(),
        revision: manifest.revision,
        source_cluster_id,
        restored_cluster_id: policy::static_cluster_id(&ctx.initial_cluster, &token),
        configured_cluster_id: policy::static_cluster_id(&ctx.initial_cluster, &ctx.token),
        token,
    };
    Ok(RestoreFacts { manifest: SnapshotFacts::Read(request), ..not_read })
}

/// Carry out a RESTORE: find etcd's restore tool beside `etcd`, download and check the snapshot,
/// restore it into the data dir with `token` (archiving old data first), as the verdict said.
pub(crate) async fn perform(ctx: &Context, source: &RestoreSource, token: &str, etcd: &Path) -> Result<()> {
    let release = match &ctx.etcd_version {
        crate::observed::LocalEtcd::Known(r) => Some(*r),
        crate::observed::LocalEtcd::Unknown(_) => None,
    };
    let tool_path = restore::find_tool(etcd, ctx.env.path_var.as_deref(), release)?;
    let tool = restore::RestoreTool::at(&tool_path);
    let (Some(store), Some(manifest)) = (&source.store, &source.manifest) else {
        return Err(Error::config("--restore-from: the snapshot's store was not read before the restore"));
    };
    let target = RestoreTarget {
        name: ctx.member.name.clone(),
        peer_url: ctx.me.peer_url.clone(),
        initial_cluster: ctx.initial_cluster.clone(),
        token: token.to_string(),
    };
    let quota = crate::etcd_args::quota_from(ctx.user.get("quota-backend-bytes").as_deref())
        .map_err(|e| Error::config(format!("--restore-from: {e}")))?;
    let replay = source.replay_read();
    let marker =
        restore::restore(store, manifest, tool, &target, &ctx.member.data_dir, replay, quota).await?;
    info!(
        decision = "RESTORE",
        snapshot = %source.url,
        revision = manifest.revision,
        sha256 = %manifest.sha256,
        archived = marker.archived.as_deref().unwrap_or("nothing"),
        replayed_to = marker.replayed_to.unwrap_or(manifest.revision),
        "snapshot restored into the data dir"
    );
    Ok(())
}

/// What a restore of `manifest`'s snapshot to `point` replays: the segments of its chain the
/// point needs, and the exact last revision (for a time, read from the last segment). None: the
/// snapshot alone (no chain, or nothing after it). A point the chain cannot reach is an error that
/// says what to do.
pub(crate) async fn plan_replay(
    store: &Store,
    manifest: &Manifest,
    point: RestorePoint,
) -> Result<Option<Replay>> {
    let snapshot = store.url().snapshot(&manifest.name).to_string();
    let Some(chain_from) = manifest.chain_from else {
        if point == RestorePoint::Newest {
            return Ok(None);
        }
        return Err(Error::config(format!(
            "--restore-to-revision/--restore-to-time: snapshot {snapshot} has no delta segments (taken by an earlier release): leave them out, or pick a snapshot `backup list` shows with a chain"
        )));
    };
    let chain = segment::chain(chain_from, store.segments(&manifest.name).await?);
    if let Some(broken) = &chain.broken {
        warn!(snapshot = %snapshot, "the delta segments stop early: {broken}");
    }
    let plan = segment::replay_plan(chain_from, manifest.unix_time.saturating_mul(1000), &chain, point)
        .map_err(|e| Error::config(format!("{snapshot}: {e}")))?;
    let mut segments = plan.segments;
    let mut to_revision = plan.to_revision;
    if let Target::Time(ms) = point {
        // The exact point: the last revision received at or before the time, in the last segment
        // the plan reads (every earlier one ends before it).
        if let Some(last) = segments.last() {
            let read = store.segment(&manifest.name, last).await?;
            let (within, _) = segment::cut(std::slice::from_ref(&read), i64::MIN, Target::Time(ms));
            match within.last() {
                Some(r) => to_revision = r.revision,
                None => {
                    segments.pop();
                    to_revision = segments.last().map_or(chain_from, |s| s.last);
                }
            }
        }
    }
    if segments.is_empty() {
        return Ok(None);
    }
    Ok(Some(Replay { snapshot: manifest.name.clone(), segments, to_revision }))
}
