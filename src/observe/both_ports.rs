//! Ask every peer on both ports at once: the client port (member list, quorum; see `cluster`)
//! and the peer port (`GET /members`; see `peer_members`). The peer port answers in milliseconds
//! even before quorum, where a client port that accepts connections may answer nothing for the
//! whole probe timeout. So a peer whose peer-port list already settles what the decision needs
//! (`decide::answers::client_answer_needed`) is not waited for on its client port.

use std::net::{IpAddr, SocketAddr};

use tokio::task::JoinSet;

use crate::decide::answers::client_answer_needed;
use crate::identity::url_host;
use crate::observed::{DataDirState, Heard, PeerList};

use super::cluster::{self, Answer, ClientAnswer, Endpoint};
use super::peer_members::{self, PeerAccess, PeerEndpoint};
use super::Sources;

enum Event {
    Client(usize, Result<Box<Answer>, String>),
    Peer(usize, Result<PeerList, String>),
}

/// Per peer: whether its client probe ended, and what its peer port said.
#[derive(Default)]
struct PeerState {
    client_done: bool,
    peer: Option<Result<PeerList, String>>,
}

/// The peer port of a client endpoint: the same IP (the URL is by IP), the peer port.
pub(crate) fn peer_endpoint(endpoint: &Endpoint, peer_port: u16) -> Option<PeerEndpoint> {
    let ip: IpAddr = url_host(&endpoint.url)?.parse().ok()?;
    Some(PeerEndpoint { host: endpoint.host.clone(), addr: SocketAddr::new(ip, peer_port) })
}

/// Ask all `endpoints` on both ports; ends when every peer's client probe has ended, or its peer
/// port's list made its client answer unneeded.
pub(crate) async fn observe(
    ask: &Sources<'_>,
    data: &DataDirState,
    endpoints: &[Endpoint],
) -> (ClientAnswer, Heard) {
    let mut probes = JoinSet::new();
    let ask_peer_port = !matches!(ask.peer_access, PeerAccess::Unavailable(_));
    for (i, endpoint) in endpoints.iter().enumerate() {
        let (access, client_endpoint, timeout) = (ask.access.clone(), endpoint.clone(), ask.probe_timeout);
        probes.spawn(async move {
            Event::Client(i, cluster::probe(&access, &client_endpoint, timeout).await.map(Box::new))
        });
        if let Some(peer) = peer_endpoint(endpoint, ask.peer_port).filter(|_| ask_peer_port) {
            let access = ask.peer_access.clone();
            probes.spawn(async move { Event::Peer(i, peer_members::ask(&access, &peer, timeout).await) });
        }
    }
    let mut state: Vec<PeerState> = endpoints.iter().map(|_| PeerState::default()).collect();
    let mut answers = Vec::new();
    let mut tried = Vec::new();
    let mut client_ids = Vec::new();
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
                        client_ids.push((answer.endpoint.host.clone(), answer.cluster_id));
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
    client_ids.sort();
    (cluster::best_of(answers, tried), Heard { client_ids, peer_lists })
}

fn settled(ask: &Sources<'_>, data: &DataDirState, state: &[PeerState]) -> bool {
    state.iter().all(|s| {
        s.client_done
            || (!ask.every_client_answer
                && matches!(&s.peer, Some(Ok(list)) if !client_answer_needed(data, ask.me, list)))
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
