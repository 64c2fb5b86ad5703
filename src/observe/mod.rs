//! Everything that looks, and nothing that changes: DNS ([`dns`]), which pods exist ([`peers`]),
//! the data directory with its WAL decoder ([`datadir`]), and the etcd API ([`cluster`], which
//! also carries the membership calls `act` and the sidecar make, and reads each failed call's
//! gRPC status into a `Refusal`), etcd's peer port ([`peer_members`]: `GET /members`, answered before
//! quorum), both ports of every peer at once ([`both_ports`]). [`round`] observes once and
//! returns plain data for `decide`.

pub(crate) mod both_ports;
pub mod cluster;
pub mod datadir;
pub mod dns;
pub mod local_etcd;
pub mod peer_members;
pub(crate) mod peers;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::decide::{self, Me, Observation};
use crate::error::Result;
use crate::identity::Identity;
use crate::observed::{ClusterView, DataDirState, Heard, LocalEtcd, Member, Versions};

use cluster::{Access, BestClientAnswer};
use dns::Resolver;
use peer_members::PeerAccess;
use peers::{PeerScan, ScanSettings};

/// Where one round looks.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub data_dir: &'a Path,
    pub resolver: &'a Arc<Resolver>,
    pub identity: &'a Identity,
    pub scan: &'a ScanSettings,
    pub access: &'a Access,
    pub peer_access: &'a PeerAccess,
    pub peer_port: u16,
    /// This pod, for when a peer port's list settles the decision.
    pub me: &'a Me,
    pub probe_timeout: Duration,
    /// Wait for every client port's answer even where a peer port settled the decision (`plan`
    /// shows the whole picture; `run` does not wait for it).
    pub every_client_answer: bool,
    /// This pod's etcd, as `etcd --version` told it once per start.
    pub etcd_version: &'a LocalEtcd,
}

/// Everything observed in one round.
pub struct Round {
    pub data: DataDirState,
    pub scan: PeerScan,
    /// The client port's answers (the best one, and a member with quorum to call through).
    pub observed: BestClientAnswer,
    /// Every answer beyond the best client answer: other client answers, the peer ports' lists.
    pub heard: Heard,
    /// The cluster as the decision reads it (`decide::answers::decision_view`).
    pub view: ClusterView,
    /// This pod's etcd version and every version the peers told.
    pub versions: Versions,
}

impl Round {
    /// What the decision reads of this round.
    pub(crate) fn observation<'a>(&'a self, me: &'a Me) -> Observation<'a> {
        Observation {
            me,
            data: &self.data,
            cluster: &self.observed.view,
            heard: &self.heard,
            peers: &self.scan.dns,
        }
    }

    /// The members the cluster listed as the decision read them (none when nobody answered).
    pub fn members(&self) -> &[Member] {
        match &self.view {
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
        let observed = BestClientAnswer { view: view.clone(), quorum_member: None };
        let (scan, heard) = (PeerScan::default(), Heard::default());
        return Ok(Round { data, scan, observed, heard, view, versions: Versions::default() });
    }
    let scan = peers::scan(sources.resolver, sources.identity, sources.scan).await;
    let (observed, heard, told) = both_ports::observe(sources, &data, &scan.endpoints).await;
    let view = decide::answers::decision_view(&data, &observed.view, &heard);
    let versions = Versions { local: sources.etcd_version.clone(), peers: told };
    Ok(Round { data, scan, observed, heard, view, versions })
}
