//! Everything that looks, and nothing that changes: DNS ([`dns`]), which pods exist ([`peers`]),
//! the data directory with its WAL decoder ([`datadir`]), and the etcd API ([`cluster`], which
//! also carries the membership calls `act` and the sidecar make, and is the one place that reads
//! etcd's error text). [`round`] observes once and returns plain data for `decide`.

pub mod cluster;
pub mod datadir;
pub mod dns;
pub mod peers;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::decide::{self, Me, Observation, Settings, Verdict};
use crate::error::Result;
use crate::identity::Identity;
use crate::observed::{ClusterView, DataDirState, Member};

use cluster::{Access, Observed};
use dns::Resolver;
use peers::{PeerScan, ScanSettings};

/// Where one round looks.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub data_dir: &'a Path,
    pub resolver: &'a Arc<Resolver>,
    pub identity: &'a Identity,
    pub scan: &'a ScanSettings,
    pub access: &'a Access,
    pub probe_timeout: Duration,
}

/// Everything observed in one round.
pub struct Round {
    pub data: DataDirState,
    pub scan: PeerScan,
    pub observed: Observed,
}

impl Round {
    /// The decision for this round.
    pub fn verdict(&self, me: &Me, settings: &Settings) -> Verdict {
        let obs = Observation { me, data: &self.data, cluster: &self.observed.view, peers: &self.scan.dns };
        decide::decide(&obs, settings)
    }

    /// The members the cluster listed (none when nobody answered).
    pub fn members(&self) -> &[Member] {
        match &self.observed.view {
            ClusterView::Answer { members, .. } => members,
            ClusterView::NoAnswer { .. } => &[],
        }
    }
}

/// Look at the data dir, DNS and the cluster once.
pub async fn round(sources: &Sources<'_>) -> Result<Round> {
    let data = datadir::inspect(sources.data_dir)?;
    if let DataDirState::Unknown { .. } = data {
        // REFUSE whatever the cluster says: do not touch the network for it.
        let view = ClusterView::NoAnswer { tried: Vec::new() };
        let observed = Observed { view, quorum_member: None };
        return Ok(Round { data, scan: PeerScan::default(), observed });
    }
    let scan = peers::scan(sources.resolver, sources.identity, sources.scan).await;
    let observed = cluster::observe(sources.access, &scan.endpoints, sources.probe_timeout).await;
    Ok(Round { data, scan, observed })
}
