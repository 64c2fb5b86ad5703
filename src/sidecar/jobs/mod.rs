//! The sidecar's jobs, each its own task with its own cadence (see [`super::job`]); they carry
//! out the pure policies of [`super::policy`] with calls to etcd, DNS and the backup store, and
//! share only what [`super::coordination`] holds:
//! - [`leadership`]: every interval, on every sidecar, the local member's status: who leads,
//!   `/readyz`, the role logged once per change;
//! - [`certificates`]: every interval, on every sidecar, the client TLS files: a renewed Secret is
//!   used by every job without a restart;
//! - [`membership`]: beside the leader, learners promoted and members of pods gone removed, each
//!   interval, at a removal's due time, and between rounds a cheap look at the peer connections
//!   ([`probe::peer_connection_ips`]);
//! - [`maintenance`]: beside the leader, defragmentation and the NOSPACE recovery, each interval;
//! - [`backups`]: beside the leader, scheduled full snapshots, when one is due, or at once when
//!   the deltas job asks;
//! - [`deltas`]: beside the leader, with `--backup-delta-interval`, every change after the newest
//!   full snapshot, as delta segments of its chain (point-in-time restore).
//!
//! [`pods`] and [`probe`] are the DNS lookups and the status calls the membership and maintenance
//! jobs make; [`quota`] reads etcd's own backend quota from its metrics.

pub(crate) mod backups;
pub(crate) mod certificates;
pub(crate) mod deltas;
pub(crate) mod leadership;
pub(crate) mod maintenance;
pub(crate) mod membership;
pub(crate) mod pods;
pub(crate) mod probe;
pub(crate) mod quota;

use std::sync::Arc;

use crate::context::Context;
use crate::error::Error;
use crate::observe::cluster::{Endpoint, MemberClient};

use super::coordination::Coordination;
use super::metrics::Shared;
use super::settings::SidecarSettings;

/// What every job is given.
pub(crate) struct Sidecar {
    pub ctx: Context,
    pub settings: SidecarSettings,
    pub coordination: Arc<Coordination>,
    pub shared: Arc<Shared>,
    /// The local member: `127.0.0.1`, with the pod's own name as TLS name.
    pub local_endpoint: Endpoint,
}

/// A job's own connection to the local member, made again when the TLS files change.
#[derive(Default)]
pub(crate) struct LocalClient {
    generation: Option<u64>,
    client: Option<MemberClient>,
}

impl LocalClient {
    /// The connection, made first when there is none or the access changed since.
    pub(crate) async fn get(&mut self, s: &Sidecar) -> Result<&mut MemberClient, String> {
        let (generation, access) = s.coordination.access();
        if self.generation != Some(generation) {
            self.client = None;
        }
        if self.client.is_none() {
            let client = MemberClient::connect(&access, &s.local_endpoint, s.ctx.probe_timeout).await?;
            self.client = Some(client);
            self.generation = Some(generation);
        }
        self.client.as_mut().ok_or_else(|| "not connected".to_string())
    }

    /// Drop the connection: the next call connects again.
    pub(crate) fn reset(&mut self) {
        self.client = None;
    }
}

/// A failed call to the local member, as the error policy takes it.
pub(crate) fn cluster_error(call: &str, s: &Sidecar, message: String) -> Error {
    Error::Cluster { call: call.into(), endpoint: s.local_endpoint.host.clone(), message }
}
