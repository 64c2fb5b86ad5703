//! Which pods of the StatefulSet exist, from DNS: SRV records of the headless service where there
//! are any, else enumerated ordinals; and the client endpoints (by IP) of the other pods.

use std::collections::BTreeSet;
use std::net::IpAddr;

use tokio::task::JoinSet;

use crate::cluster::Endpoint;
use crate::dns::{Lookup, Resolver};
use crate::identity::Identity;
use crate::view::PeerDns;

/// What a scan needs besides the identity.
#[derive(Debug, Clone)]
pub struct ScanSettings {
    pub initial_cluster_size: u32,
    pub client_port: u16,
    pub peer_port_name: String,
    /// `http` or `https` for client endpoints.
    pub client_scheme: &'static str,
}

/// One scan's result.
#[derive(Debug, Clone, Default)]
pub struct PeerScan {
    pub dns: PeerDns,
    /// Client endpoints of the other pods that resolve.
    pub endpoints: Vec<Endpoint>,
    /// Ordinals whose names resolve (this pod included).
    pub resolved: BTreeSet<u32>,
    /// How pods were found: SRV or enumeration (for logs and plan).
    pub source: &'static str,
}

/// Scan DNS for the set's pods. Runs all lookups concurrently.
pub async fn scan(resolver: &std::sync::Arc<Resolver>, id: &Identity, settings: &ScanSettings) -> PeerScan {
    let (candidates, source) = candidates(resolver, id, settings).await;
    let mut lookups = JoinSet::new();
    for ordinal in candidates {
        let resolver = resolver.clone();
        let host = id.peer_host(ordinal);
        lookups.spawn(async move {
            let answer = resolver.lookup_ips(&host).await;
            (ordinal, host, answer)
        });
    }
    let mut scan = PeerScan { source, ..PeerScan::default() };
    let mut results = Vec::new();
    while let Some(joined) = lookups.join_next().await {
        if let Ok(result) = joined {
            results.push(result);
        }
    }
    results.sort_by_key(|(ordinal, _, _)| *ordinal);
    for (ordinal, host, answer) in results {
        record(&mut scan, id, settings, ordinal, host, answer);
    }
    scan
}

fn record(
    scan: &mut PeerScan,
    id: &Identity,
    settings: &ScanSettings,
    ordinal: u32,
    host: String,
    answer: Lookup<Vec<IpAddr>>,
) {
    let ip = match answer {
        Lookup::Found(ips) => ips.into_iter().next(),
        Lookup::Missing | Lookup::Unknown(_) => None,
    };
    let initial = ordinal < settings.initial_cluster_size;
    match ip {
        None if initial => scan.dns.unresolved_initial.push(host),
        None => {}
        Some(ip) => {
            scan.resolved.insert(ordinal);
            if !initial && ordinal != id.ordinal {
                scan.dns.beyond_initial.push(host.clone());
            }
            if ordinal != id.ordinal {
                let url = match ip {
                    IpAddr::V4(v4) => format!("{}://{v4}:{}", settings.client_scheme, settings.client_port),
                    IpAddr::V6(v6) => format!("{}://[{v6}]:{}", settings.client_scheme, settings.client_port),
                };
                scan.endpoints.push(Endpoint { host, url });
            }
        }
    }
}

/// Ordinals to look up: the initial set and this pod, plus SRV-listed pods, or (without SRV, as
/// in docker-compose) one ordinal past the larger of the initial set and this pod.
async fn candidates(
    resolver: &Resolver,
    id: &Identity,
    settings: &ScanSettings,
) -> (BTreeSet<u32>, &'static str) {
    let mut set: BTreeSet<u32> = (0..settings.initial_cluster_size).collect();
    set.insert(id.ordinal);
    if !id.domain.is_empty() {
        let srv_name = format!("_{}._tcp.{}", settings.peer_port_name, id.domain);
        if let Lookup::Found(targets) = resolver.lookup_srv(&srv_name).await {
            set.extend(targets.iter().filter_map(|t| id.ordinal_of_host(&t.target)));
            return (set, "srv");
        }
    }
    let beyond = settings.initial_cluster_size.max(id.ordinal.saturating_add(1));
    set.insert(beyond);
    (set, "enumerated")
}
