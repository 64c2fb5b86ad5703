//! `--restore-from` in a round of `run` and `plan`: read what the pure policy needs (the data
//! dir's restore marker, the snapshot's manifest, read once and only where a restore could
//! happen), call `decide::restore`, and carry what a RESTORE needs to `act`.

use std::path::Path;

use tracing::{info, warn};

use crate::backup::command;
use crate::backup::location::SnapshotUrl;
use crate::backup::manifest::Manifest;
use crate::backup::restore::{self, RestoreTarget};
use crate::backup::store::Store;
use crate::context::Context;
use crate::decide::restore::{self as policy, RestoreRequest, RestoreVerdict};
use crate::decide::{Decision, Observation, Verdict};
use crate::error::{Error, Result};
use crate::observe::Round;
use crate::observed::DataDirState;

/// The snapshot `--restore-from` names, with its store and manifest once read.
pub(crate) struct RestoreSource {
    pub url: SnapshotUrl,
    store: Option<Store>,
    manifest: Option<Manifest>,
    last_warning: Option<String>,
}

/// A RESTORE decided: what `perform` needs.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub url: SnapshotUrl,
    pub manifest: Manifest,
    pub token: String,
}

impl RestoreSource {
    /// The source of `ctx.restore_from`, checked before anything is touched (a bad URL is a
    /// configuration error).
    pub(crate) fn from_context(ctx: &Context) -> Result<Option<RestoreSource>> {
        let Some(text) = ctx.restore_from.as_deref().filter(|t| !t.trim().is_empty()) else {
            return Ok(None);
        };
        let url = SnapshotUrl::parse(text).map_err(|e| Error::config(format!("--restore-from: {e}")))?;
        Ok(Some(RestoreSource { url, store: None, manifest: None, last_warning: None }))
    }

    async fn manifest(&mut self, ctx: &Context) -> Result<Manifest> {
        if let Some(m) = &self.manifest {
            return Ok(m.clone());
        }
        if self.store.is_none() {
            let env = command::Env { vars: &ctx.env.store_env, resolv_conf: None };
            self.store = Some(command::open_store(
                &self.url.store,
                &ctx.store,
                &env,
                Some(&ctx.clients.resolver),
                false,
            )?);
        }
        let Some(store) = &self.store else {
            return Err(Error::config("--restore-from: the store could not be opened"));
        };
        let manifest = store.manifest(&self.url.name).await?;
        self.manifest = Some(manifest.clone());
        Ok(manifest)
    }

    fn warn_once(&mut self, warning: String) {
        if self.last_warning.as_deref() != Some(warning.as_str()) {
            warn!("{warning}");
            self.last_warning = Some(warning);
        }
    }
}

/// The round's verdict with `--restore-from` applied, and what a RESTORE needs.
pub(crate) async fn apply(
    ctx: &Context,
    round: &Round,
    usual: Verdict,
    source: Option<&mut RestoreSource>,
) -> Result<(Verdict, Option<Pending>)> {
    let Some(source) = source else {
        return Ok((usual, None));
    };
    let url = source.url.to_string();
    let restored_from_this = restore::read_marker(&ctx.member.data_dir).is_some_and(|m| m.snapshot == url);
    if let Some(settled) =
        policy::settled_without_manifest(&round.data, &round.observed.view, restored_from_this, &url)
    {
        if let RestoreVerdict::Usual { warning: Some(w) } = settled {
            source.warn_once(w);
        }
        return Ok((usual, None));
    }
    let manifest = match source.manifest(ctx).await {
        Ok(m) => m,
        // With data the usual decision is always safe: a store that cannot be read must not
        // stop a member from restarting.
        Err(e) if matches!(round.data, DataDirState::Member(_)) => {
            source.warn_once(format!(
                "--restore-from {url}: the snapshot cannot be read ({e}); the usual decision stands"
            ));
            return Ok((usual, None));
        }
        Err(e) => return Err(e),
    };
    let source_cluster_id = u64::from_str_radix(&manifest.cluster_id, 16).map_err(|_| Error::Snapshot {
        snapshot: url.clone(),
        problem: format!("has a manifest whose cluster ID {:?} is not hex", manifest.cluster_id),
    })?;
    let token = policy::restore_token(&ctx.token, &manifest.sha256);
    let request = RestoreRequest {
        snapshot: url.clone(),
        sha256: manifest.sha256.clone(),
        revision: manifest.revision,
        source_cluster_id,
        restored_cluster_id: policy::static_cluster_id(&ctx.initial_cluster, &token),
        configured_cluster_id: policy::static_cluster_id(&ctx.initial_cluster, &ctx.token),
    };
    let obs = Observation {
        me: &ctx.me,
        data: &round.data,
        cluster: &round.observed.view,
        heard: &round.heard,
        peers: &round.scan.dns,
    };
    let decided = policy::decide_restore(&obs, &ctx.settings, &usual, &request);
    if let RestoreVerdict::Usual { warning: Some(w) } = &decided {
        source.warn_once(w.clone());
    }
    let verdict = policy::final_verdict(usual, decided, &token);
    let pending = matches!(verdict.decision, Decision::Restore { .. }).then(|| Pending {
        url: source.url.clone(),
        manifest,
        token,
    });
    Ok((verdict, pending))
}

/// Carry out a RESTORE: find etcd's restore tool beside `etcd`, download and check the snapshot,
/// restore it into the data dir (archiving old data first), as `decide` said.
pub(crate) async fn perform(
    ctx: &Context,
    source: &RestoreSource,
    pending: &Pending,
    etcd: &Path,
) -> Result<()> {
    let tool_path = restore::find_tool(etcd, ctx.env.path_var.as_deref())?;
    let tool = restore::probe_tool(&tool_path).await?;
    let Some(store) = &source.store else {
        return Err(Error::config("--restore-from: the store was not opened"));
    };
    let target = RestoreTarget {
        name: ctx.member.name.clone(),
        peer_url: ctx.me.peer_url.clone(),
        initial_cluster: ctx.initial_cluster.clone(),
        token: pending.token.clone(),
    };
    let marker = restore::restore(store, &pending.manifest, &tool, &target, &ctx.member.data_dir).await?;
    info!(
        decision = "RESTORE",
        snapshot = %pending.url,
        revision = pending.manifest.revision,
        sha256 = %pending.manifest.sha256,
        archived = marker.archived.as_deref().unwrap_or("nothing"),
        "snapshot restored into the data dir"
    );
    Ok(())
}
