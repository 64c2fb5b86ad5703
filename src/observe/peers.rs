//! Which pods of the StatefulSet exist, from DNS: SRV records of the headless service where there
//! are any, else enumerated ordinals; and the client endpoints (by IP) of the other pods. The
//! sidecar looks pods up with the same two calls ([`srv_ordinals`], [`lookup_all`]).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::identity::Identity;
use crate::observed::PeerDns;

use super::cluster::Endpoint;
use super::dns::{Lookup, Resolver};

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
pub(crate) async fn scan(resolver: &Arc<Resolver>, id: &Identity, settings: &ScanSettings) -> PeerScan {
    let (candidates, source) = candidates(resolver, id, settings).await;
    let mut scan = PeerScan { source, ..PeerScan::default() };
    let results = lookup_all(resolver, id, &candidates).await;
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

/// Look up the pods with `ordinals`, all at once; the answers sorted by ordinal, with the names.
pub(crate) async fn lookup_all(
    resolver: &Arc<Resolver>,
    id: &Identity,
    ordinals: &BTreeSet<u32>,
) -> Vec<(u32, String, Lookup<Vec<IpAddr>>)> {
    let mut lookups = JoinSet::new();
    for &ordinal in ordinals {
        let resolver = resolver.clone();
        let host = id.peer_host(ordinal);
        lookups.spawn(async move {
            let answer = resolver.lookup_ips(&host).await;
            (ordinal, host, answer)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = lookups.join_next().await {
        if let Ok(result) = joined {
            results.push(result);
        }
    }
    results.sort_by_key(|(ordinal, _, _)| *ordinal);
    results
}

/// The ordinals of the pods the headless service's SRV records (`_<port_name>._tcp.<domain>`)
/// list. `Missing` where there is no domain (bare names) or no such records.
pub(crate) async fn srv_ordinals(
    resolver: &Resolver,
    id: &Identity,
    port_name: &str,
) -> Lookup<BTreeSet<u32>> {
    if id.domain.is_empty() {
        return Lookup::Missing;
    }
    let srv_name = format!("_{port_name}._tcp.{}", id.domain);
    match resolver.lookup_srv(&srv_name).await {
        Lookup::Found(targets) => {
            Lookup::Found(targets.iter().filter_map(|t| id.ordinal_of_host(&t.target)).collect())
        }
        Lookup::Missing => Lookup::Missing,
        Lookup::Unknown(why) => Lookup::Unknown(why),
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
    if let Lookup::Found(listed) = srv_ordinals(resolver, id, &settings.peer_port_name).await {
        set.extend(listed);
        return (set, "srv");
    }
    let beyond = settings.initial_cluster_size.max(id.ordinal.saturating_add(1));
    set.insert(beyond);
    (set, "enumerated")
}
