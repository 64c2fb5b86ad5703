//! The pods of the set as the leader's sidecar sees them each round: every member's pod, those
//! the pod list (SRV) names, this one, every ordinal in between and one past the highest (a pod
//! about to join), looked up with `observe::peers`. Also how a member maps to its pod, and where
//! to reach each member ([`whereabouts`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tracing::debug;

use crate::identity::{self, url_host, url_port, Identity};
use crate::observe::cluster::Endpoint;
use crate::observe::dns::{Lookup, Resolver};
use crate::observe::peers;
use crate::observed::Member;

use super::super::policy::removal::Answer;
use super::maintenance::Whom;
use super::probe;
use super::Sidecar;

/// Ordinals spanning more than this are looked up one by one instead of as a range.
const MAX_ORDINAL_SPAN: u32 = 256;

/// What DNS said this round.
#[derive(Debug, Default)]
pub(crate) struct Pods {
    pub answers: BTreeMap<u32, Answer>,
    /// Current addresses of the pods that exist.
    pub ips: BTreeMap<u32, IpAddr>,
    pub pod_list_known: bool,
    /// Why an answer was unknown (first one), for the log.
    pub unknown: Option<String>,
}

impl Pods {
    /// Ordinals whose names DNS says do not exist this round.
    pub(crate) fn absent(&self) -> BTreeSet<u32> {
        self.answers.iter().filter(|(_, a)| **a == Answer::Missing).map(|(o, _)| *o).collect()
    }
}

/// Ordinal -> the last address its name had: where to look for a member whose name is gone.
#[derive(Debug, Default)]
pub(crate) struct LastIps(pub BTreeMap<u32, IpAddr>);

impl LastIps {
    /// Remember this round's addresses.
    pub(crate) fn note(&mut self, pods: &Pods) {
        self.0.extend(pods.ips.iter().map(|(o, ip)| (*o, *ip)));
    }
}

/// Where to find members this round: the pods' addresses from `pods`, the last ones their
/// names had, the names DNS says are gone (`absent`), the peers `connected` to the local etcd.
pub(crate) fn where_to_ask<'a>(
    s: &Sidecar,
    pods: &'a Pods,
    last_ip: &'a LastIps,
    absent: &'a BTreeSet<u32>,
    connected: &'a BTreeSet<IpAddr>,
) -> probe::Where<'a> {
    probe::Where {
        ips: &pods.ips,
        last_ip: &last_ip.0,
        absent,
        connected,
        scheme: s.ctx.clients.access.scheme(),
        client_port: s.ctx.member.client_port,
    }
}

/// Every member and where to reach it for maintenance: the local one (`local`) at 127.0.0.1, the
/// others at their best known address ([`probe::best_ip`]: never the last address of a name DNS
/// says is gone, where a status call would only wait out its timeout every round).
pub(crate) fn whereabouts(
    s: &Sidecar,
    local: u64,
    members: &[Member],
    pods: &Pods,
    last_ip: &LastIps,
) -> Vec<Whom> {
    let id = &s.ctx.identity;
    let (absent, connected) = (pods.absent(), BTreeSet::new());
    let at = where_to_ask(s, pods, last_ip, &absent, &connected);
    members
        .iter()
        .map(|m| {
            let ordinal = member_ordinal(id, m);
            let url = m.client_urls.first().map(String::as_str).unwrap_or_default();
            let ip = probe::best_ip(ordinal, url, &at);
            let endpoint = match ip {
                _ if m.id == local => Some(s.local_endpoint.clone()),
                None => None,
                Some(ip) => {
                    let host = url_host(url).map(str::to_string).or_else(|| ordinal.map(|o| id.peer_host(o)));
                    let addr = SocketAddr::new(ip, url_port(url).unwrap_or(s.ctx.member.client_port));
                    Some(Endpoint {
                        host: host.unwrap_or_else(|| ip.to_string()),
                        url: format!("{}://{addr}", at.scheme),
                    })
                }
            };
            Whom { id: m.id, label: member_label(id, m), is_learner: m.is_learner, endpoint }
        })
        .collect()
}

/// Look up every pod of the set that matters for `members`.
pub(crate) async fn look_up(
    resolver: &Arc<Resolver>,
    id: &Identity,
    port_name: &str,
    members: &[Member],
) -> Pods {
    let mut known: BTreeSet<u32> = members.iter().filter_map(|m| member_ordinal(id, m)).collect();
    known.insert(id.ordinal);
    let mut pods = Pods { pod_list_known: true, ..Pods::default() };
    match peers::srv_ordinals(resolver, id, port_name).await {
        Lookup::Found(listed) => known.extend(listed),
        // No SRV records at all (or bare names): the service has no such named port; ordinals
        // are enough.
        Lookup::Missing => {}
        Lookup::Unknown(why) => {
            pods.pod_list_known = false;
            pods.unknown = Some(why);
        }
    }
    for (ordinal, _, answer) in peers::lookup_all(resolver, id, &lookup_set(&known)).await {
        match answer {
            Lookup::Found(ips) => {
                pods.answers.insert(ordinal, Answer::Found);
                if let Some(ip) = ips.first() {
                    pods.ips.insert(ordinal, *ip);
                }
            }
            Lookup::Missing => {
                pods.answers.insert(ordinal, Answer::Missing);
            }
            Lookup::Unknown(why) => {
                debug!(ordinal, "dns: {why}");
                pods.answers.insert(ordinal, Answer::Unknown);
                pods.unknown.get_or_insert(why);
            }
        }
    }
    pods
}

/// The ordinals to look up: a range from the lowest known to one past the highest (a pod about
/// to join), or, when the known ones are very far apart, each of them and one past the highest.
fn lookup_set(known: &BTreeSet<u32>) -> BTreeSet<u32> {
    let (Some(&low), Some(&high)) = (known.first(), known.last()) else { return BTreeSet::new() };
    let past = high.saturating_add(1);
    if high - low <= MAX_ORDINAL_SPAN {
        (low..=past).collect()
    } else {
        known.iter().copied().chain(std::iter::once(past)).collect()
    }
}

/// The ordinal of a member's pod: from its peer URL host, else its name; None when it is not a
/// pod of this set.
pub(crate) fn member_ordinal(id: &Identity, m: &Member) -> Option<u32> {
    id.ordinal_of_urls(&m.peer_urls).or_else(|| {
        identity::split_pod_name(&m.name).ok().filter(|(set, _)| *set == id.set_name).map(|(_, o)| o)
    })
}

/// `name (id)` for logs; an unstarted member is named after its pod.
pub(crate) fn member_label(id: &Identity, m: &Member) -> String {
    if m.started() {
        return format!("{} ({:x})", m.name, m.id);
    }
    match member_ordinal(id, m) {
        Some(o) => format!("{} ({:x}, unstarted)", identity::host_name(&id.set_name, o, ""), m.id),
        None => format!("{:x} (unstarted)", m.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            pod_name: "etcd-0".into(),
            set_name: "etcd".into(),
            ordinal: 0,
            domain: "etcd.default.svc.cluster.local".into(),
        }
    }

    fn member(id: u64, name: &str, peer: &str) -> Member {
        Member { id, name: name.into(), peer_urls: vec![peer.into()], client_urls: vec![], is_learner: false }
    }

    #[test]
    fn members_map_to_ordinals_by_peer_url_then_name() {
        let id = identity();
        let by_url = member(1, "", "http://etcd-3.etcd.default.svc.cluster.local:2380");
        assert_eq!(member_ordinal(&id, &by_url), Some(3));
        assert_eq!(member_label(&id, &by_url), "etcd-3 (1, unstarted)");
        let by_name = member(2, "etcd-4", "http://10.0.0.4:2380");
        assert_eq!(member_ordinal(&id, &by_name), Some(4));
        assert_eq!(member_label(&id, &by_name), "etcd-4 (2)");
        let foreign = member(3, "other-1", "http://other-1.x:2380");
        assert_eq!(member_ordinal(&id, &foreign), None);
    }

    #[test]
    fn lookup_set_spans_the_known_ordinals_and_one_more() {
        assert_eq!(lookup_set(&BTreeSet::from([0, 2])), BTreeSet::from([0, 1, 2, 3]));
        assert_eq!(lookup_set(&BTreeSet::from([100, 101])), BTreeSet::from([100, 101, 102]));
        assert_eq!(lookup_set(&BTreeSet::from([0, 1000])), BTreeSet::from([0, 1000, 1001]));
        assert!(lookup_set(&BTreeSet::new()).is_empty());
    }
}
