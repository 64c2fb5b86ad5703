//! Ask every peer on both ports at once: the client port (member list, quorum; see `cluster`)
//! and the peer port (`GET /members`; see `peer_members`). The peer port answers in milliseconds
//! even before quorum, where a client port that accepts connections may answer nothing for the
//! whole probe timeout. So a peer whose peer-port list already settles what the decision needs
//! (`decide::answers::client_answer_needed`) is not waited for on its client port.

use std::net::{IpAddr, SocketAddr};

use tokio::task::JoinSet;

use crate::decide::answers::client_answer_needed;
use crate::identity::url_host;
use crate::observed::{ClientAnswer, DataDirState, Heard, PeerList, PeerVersion};

use super::cluster::{self, Answer, BestClientAnswer, Endpoint};
use super::peer_members::{self, PeerAccess, PeerEndpoint};
use super::Sources;

enum Event {
    Client(usize, Result<Box<Answer>, String>),
    Peer(usize, Result<PeerList, String>),
    Version(usize, Result<PeerVersion, String>),
}

/// Per peer: whether its client probe ended, what its peer port said, and whether its peer
/// port's `GET /version` is still out.
#[derive(Default)]
struct PeerState {
    client_done: bool,
    peer: Option<Result<PeerList, String>>,
    version_pending: bool,
}

/// The peer port of a client endpoint: the same IP (the URL is by IP), the peer port.
pub(crate) fn peer_endpoint(endpoint: &Endpoint, peer_port: u16) -> Option<PeerEndpoint> {
    let ip: IpAddr = url_host(&endpoint.url)?.parse().ok()?;
    Some(PeerEndpoint { host: endpoint.host.clone(), addr: SocketAddr::new(ip, peer_port) })
}

/// Ask all `endpoints` on both ports; ends when every peer's client probe has ended, or its peer
/// port's list made its client answer unneeded (and its peer port told its versions). Returns
/// also every version told: the peer ports' `GET /version` and the client answers' status.
pub(crate) async fn observe(
    ask: &Sources<'_>,
    data: &DataDirState,
    endpoints: &[Endpoint],
) -> (BestClientAnswer, Heard, Vec<PeerVersion>) {
    let mut probes = JoinSet::new();
    let ask_peer_port = !matches!(ask.peer_access, PeerAccess::Unavailable(_));
    let mut state: Vec<PeerState> = endpoints.iter().map(|_| PeerState::default()).collect();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let (access, client_endpoint, timeout) = (ask.access.clone(), endpoint.clone(), ask.probe_timeout);
        probes.spawn(async move {
            Event::Client(i, cluster::probe(&access, &client_endpoint, timeout).await.map(Box::new))
        });
        if let Some(peer) = peer_endpoint(endpoint, ask.peer_port).filter(|_| ask_peer_port) {
            let (access, version_peer) = (ask.peer_access.clone(), peer.clone());
            probes.spawn(async move { Event::Peer(i, peer_members::ask(&access, &peer, timeout).await) });
            let access = ask.peer_access.clone();
            probes.spawn(async move {
                Event::Version(i, peer_members::ask_version(&access, &version_peer, timeout).await)
            });
            if let Some(s) = state.get_mut(i) {
                s.version_pending = true;
            }
        }
    }
    let mut versions = Vec::new();
    let mut answers = Vec::new();
    let mut tried = Vec::new();
    let mut clients = Vec::new();
    while !settled(ask, data, &state) {
        let Some(joined) = probes.join_next().await else { break };
        let Ok(event) = joined else { continue };
        match event {
            Event::Client(i, result) => {
                if let Some(s) = state.get_mut(i) {
                    s.client_done = true;
                }
                match result {
                    Ok(answer) => {
                        clients.push(ClientAnswer {
                            host: answer.endpoint.host.clone(),
                            cluster_id: answer.cluster_id,
                            quorum: answer.quorum,
                            members: answer.members.clone(),
                        });
                        if answer.version.is_some() {
                            let host = answer.endpoint.host.clone();
                            versions.push(PeerVersion { host, server: answer.version, cluster: None });
                        }
                        answers.push(*answer);
                    }
                    Err(why) => {
                        if let Some(endpoint) = endpoints.get(i) {
                            tried.push((cluster::tried_entry(endpoint), why));
                        }
                    }
                }
            }
            Event::Peer(i, result) => {
                if let Some(s) = state.get_mut(i) {
                    s.peer = Some(result);
                }
            }
            Event::Version(i, result) => {
                if let Some(s) = state.get_mut(i) {
                    s.version_pending = false;
                }
                // A peer port that does not tell its versions is judged by the rest.
                if let Ok(told) = result {
                    versions.push(told);
                }
            }
        }
    }
    // Whatever is still running is not needed: dropping the set aborts it.
    drop(probes);
    for (endpoint, s) in endpoints.iter().zip(&state) {
        if !s.client_done {
            let why = "not waited for: its peer port's member list settles what the decision needs";
            tried.push((cluster::tried_entry(endpoint), why.to_string()));
        }
    }
    let peer_lists = state.into_iter().filter_map(|s| s.peer.and_then(Result::ok)).collect();
    clients.sort_by(|a: &ClientAnswer, b: &ClientAnswer| a.host.cmp(&b.host));
    versions.sort_by(|a, b| a.host.cmp(&b.host));
    (cluster::best_of(answers, tried), Heard { clients, peer_lists }, versions)
}

fn settled(ask: &Sources<'_>, data: &DataDirState, state: &[PeerState]) -> bool {
    // The peer port's versions come in milliseconds with its list (and where it does not
    // answer, no later than the client probe's timeout): always waited for.
    state.iter().all(|s| {
        !s.version_pending
            && (s.client_done
                || (!ask.every_client_answer
                    && matches!(&s.peer, Some(Ok(list)) if !client_answer_needed(data, ask.me, list))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_port_is_at_the_client_endpoints_ip() {
        let v4 = Endpoint { host: "etcd-1.etcd".into(), url: "https://10.0.0.7:2379".into() };
        let peer = peer_endpoint(&v4, 2380).unwrap();
        assert_eq!((peer.host.as_str(), peer.addr.to_string().as_str()), ("etcd-1.etcd", "10.0.0.7:2380"));
        let v6 = Endpoint { host: "etcd-2.etcd".into(), url: "http://[fd00::2]:2379".into() };
        assert_eq!(peer_endpoint(&v6, 2380).unwrap().addr.to_string(), "[fd00::2]:2380");
        let by_name = Endpoint { host: "etcd-3".into(), url: "http://etcd-3:2379".into() };
        assert_eq!(peer_endpoint(&by_name, 2380), None);
    }
}
