//! Which members answer as themselves: the removal policy's last check before a removal. Where
//! to look for each member (its current address, the last address its name had, an IP in its
//! client URL, and for the candidate every peer connected to the local member's peer port, read
//! from `/proc/net/tcp`) is pure; only [`answers`] and [`peer_connection_ips`] touch the world.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::task::JoinSet;
use tracing::debug;

use crate::identity::{url_host, url_port};
use crate::observe::cluster::{self, Access, Endpoint};
use crate::observed::Member;

/// What address choice needs besides the members.
pub(crate) struct Where<'a> {
    /// Current addresses of the pods that exist, by ordinal.
    pub ips: &'a BTreeMap<u32, IpAddr>,
    /// The last address each ordinal's name had.
    pub last_ip: &'a BTreeMap<u32, IpAddr>,
    /// Ordinals whose names DNS says do not exist this round: a pod absent from DNS has no
    /// address to wait for (its last one belongs to no one and a probe there only times out).
    pub absent: &'a BTreeSet<u32>,
    /// Peers connected to the local member's peer port.
    pub connected: &'a BTreeSet<IpAddr>,
    /// `http` or `https`, where a member's client URL does not say.
    pub scheme: &'static str,
    /// The client port, where a member's client URL does not say.
    pub client_port: u16,
}

/// One status call to make: ask `endpoint` whether it is member `member_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub member_id: u64,
    pub endpoint: Endpoint,
}

/// The best known address of a member whose pod has `ordinal` and whose first client URL is
/// `url`: its pod's current address, else the last address its name had unless DNS says the name
/// does not exist now (that address is no one's: a call there only waits out its timeout), else
/// an IP in its client URL.
pub(crate) fn best_ip(ordinal: Option<u32>, url: &str, at: &Where<'_>) -> Option<IpAddr> {
    ordinal
        .and_then(|o| {
            at.ips.get(&o).or_else(|| at.last_ip.get(&o).filter(|_| !at.absent.contains(&o))).copied()
        })
        .or_else(|| url_host(url).and_then(|h| h.parse::<IpAddr>().ok()))
}

/// Where to ask: the candidate and every voter but the leader, each at its current address, else
/// the last address its name had (unless DNS says the name does not exist now), else an IP in its
/// client URL; a refused connection is an answer at once. The candidate also at every
/// connected peer (a pod recreated with a new IP that DNS stopped answering for before this
/// sidecar looked it up has only a stale address here; where its member is alive, it is
/// connected to the local member's peer port). Returns the members asked about, and the calls.
pub(crate) fn targets(
    leader: u64,
    candidate: u64,
    members: &[Member],
    ordinal_of: impl Fn(&Member) -> Option<u32>,
    peer_host: impl Fn(u32) -> String,
    at: &Where<'_>,
) -> (BTreeSet<u64>, Vec<Target>) {
    let mut asked = BTreeSet::new();
    let mut calls = Vec::new();
    for m in members.iter().filter(|m| m.id != leader && (!m.is_learner || m.id == candidate)) {
        let ordinal = ordinal_of(m);
        let url = m.client_urls.first().map(String::as_str).unwrap_or_default();
        let mut ips: BTreeSet<IpAddr> = best_ip(ordinal, url, at).into_iter().collect();
        if m.id == candidate {
            ips.extend(at.connected.iter().copied());
        }
        asked.insert(m.id);
        let scheme = match url.split_once("://") {
            Some(("https", _)) => "https",
            Some(_) => "http",
            None => at.scheme,
        };
        let port = url_port(url).unwrap_or(at.client_port);
        for ip in ips {
            let host = url_host(url)
                .map(str::to_string)
                .or_else(|| ordinal.map(&peer_host))
                .unwrap_or_else(|| ip.to_string());
            let addr = SocketAddr::new(ip, port);
            calls.push(Target {
                member_id: m.id,
                endpoint: Endpoint { host, url: format!("{scheme}://{addr}") },
            });
        }
    }
    (asked, calls)
}

/// Make the calls concurrently: a member answers when any of its addresses answers as it. Every
/// member asked about is in the result; one with no address does not answer.
pub(crate) async fn answers(
    access: &Access,
    timeout: Duration,
    asked: BTreeSet<u64>,
    calls: Vec<Target>,
) -> BTreeMap<u64, bool> {
    let mut answers: BTreeMap<u64, bool> = asked.into_iter().map(|id| (id, false)).collect();
    let mut probes = JoinSet::new();
    for Target { member_id, endpoint } in calls {
        let access = access.clone();
        probes.spawn(async move {
            let report = cluster::status_at(&access, &endpoint, timeout).await;
            (member_id, endpoint, report)
        });
    }
    while let Some(joined) = probes.join_next().await {
        let Ok((member_id, endpoint, report)) = joined else { continue };
        let answered = match report {
            Ok(r) if r.member_id == member_id => true,
            Ok(r) => {
                debug!(member = %format!("{member_id:x}"), url = %endpoint.url, "answered as member {:x} instead", r.member_id);
                false
            }
            Err(why) => {
                debug!(member = %format!("{member_id:x}"), url = %endpoint.url, "no answer: {why}");
                false
            }
        };
        *answers.entry(member_id).or_insert(false) |= answered;
    }
    answers
}

/// Remote addresses of the established TCP connections from or to `peer_port` in this network
/// namespace (the pod's: the sidecar shares it with etcd), loopback left out: the peers the local
/// member is connected to. Empty where `/proc/net/tcp` cannot be read.
pub(crate) fn peer_connection_ips(peer_port: u16) -> BTreeSet<IpAddr> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|text| established_peers(&text, peer_port))
        .collect()
}

/// [`peer_connection_ips`] from the text of `/proc/net/tcp` or `/proc/net/tcp6`.
fn established_peers(text: &str, peer_port: u16) -> Vec<IpAddr> {
    const ESTABLISHED: &str = "01";
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let (local, remote, state) = (fields.next()?, fields.next()?, fields.next()?);
            let (_, local_port) = proc_net_addr(local)?;
            let (ip, remote_port) = proc_net_addr(remote)?;
            let peer = local_port == peer_port || remote_port == peer_port;
            (state == ESTABLISHED && peer && !ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
        })
        .collect()
}

/// `0100007F:094C` (IPv4) or 32 hex digits `:port` (IPv6): each 32-bit word in host (little-endian)
/// order, the port in big-endian hex.
fn proc_net_addr(field: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..addr.len() / 8)
        .map(|i| addr.get(i * 8..i * 8 + 8).and_then(|w| u32::from_str_radix(w, 16).ok()))
        .collect::<Option<_>>()?;
    let ip = match words.as_slice() {
        [w] if addr.len() == 8 => IpAddr::from(w.to_le_bytes()),
        [a, b, c, d] if addr.len() == 32 => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].into_iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            let v6 = std::net::Ipv6Addr::from(bytes);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, client_url: &str, is_learner: bool) -> Member {
        Member {
            id,
            name: format!("etcd-{id}"),
            peer_urls: vec![],
            client_urls: if client_url.is_empty() { vec![] } else { vec![client_url.into()] },
            is_learner,
        }
    }

    #[test]
    fn targets_are_the_candidate_and_the_voters_at_their_best_known_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let members = [
            member(0, "http://etcd-0:2379", false),   // the leader: never asked
            member(1, "http://etcd-1:2379", false),   // current address
            member(2, "https://etcd-2:2379", false),  // only a last address
            member(3, "http://10.0.0.3:2379", true),  // a learner, not the candidate: not asked
            member(4, "", true),                      // the candidate: no address but a connection
            member(5, "http://10.0.0.5:2479", false), // an IP in its client URL
            member(6, "http://etcd-6:2379", false),   // absent from DNS: its last address is no one's
        ];
        let ips = BTreeMap::from([(1, ip("10.0.0.1"))]);
        let last_ip = BTreeMap::from([
            (2, ip("10.0.0.2")),
            (1, ip("10.9.9.9")),
            (6, ip("10.0.0.6")),
            (4, ip("10.0.0.4")),
        ]);
        let connected = BTreeSet::from([ip("10.0.0.44")]);
        let absent = BTreeSet::from([4, 6]);
        let at = Where {
            ips: &ips,
            last_ip: &last_ip,
            connected: &connected,
            absent: &absent,
            scheme: "http",
            client_port: 2379,
        };
        let ordinal_of = |m: &Member| (m.id != 5).then_some(m.id as u32);
        let (asked, calls) = targets(0, 4, &members, ordinal_of, |o| format!("etcd-{o}.d"), &at);
        assert_eq!(asked, BTreeSet::from([1, 2, 4, 5, 6]));
        let got: Vec<(u64, &str, &str)> =
            calls.iter().map(|t| (t.member_id, t.endpoint.host.as_str(), t.endpoint.url.as_str())).collect();
        assert_eq!(
            got,
            [
                (1, "etcd-1", "http://10.0.0.1:2379"),
                (2, "etcd-2", "https://10.0.0.2:2379"),
                (4, "etcd-4.d", "http://10.0.0.44:2379"),
                (5, "10.0.0.5", "http://10.0.0.5:2479"),
            ]
        );
    }

    // Found by the benchmark: the leader's maintenance round asked a deleted pod's last address
    // for its status and waited out the probe timeout every round, so a removal fell due inside
    // a round that could not end for 2 s.
    #[test]
    fn a_name_absent_from_dns_has_no_best_address_but_an_ip_in_its_url() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let ips = BTreeMap::from([(1, ip("10.0.0.1"))]);
        let last_ip = BTreeMap::from([(1, ip("10.9.9.1")), (2, ip("10.9.9.2")), (3, ip("10.9.9.3"))]);
        let absent = BTreeSet::from([2, 3]);
        let connected = BTreeSet::new();
        let at = Where {
            ips: &ips,
            last_ip: &last_ip,
            absent: &absent,
            connected: &connected,
            scheme: "http",
            client_port: 2379,
        };
        assert_eq!(
            best_ip(Some(1), "http://etcd-1:2379", &at),
            Some(ip("10.0.0.1")),
            "current address first"
        );
        assert_eq!(best_ip(Some(2), "http://etcd-2:2379", &at), None, "absent: its last address is no one's");
        assert_eq!(best_ip(Some(3), "http://10.0.0.3:2379", &at), Some(ip("10.0.0.3")), "an IP in the URL");
        assert_eq!(best_ip(Some(4), "http://etcd-4:2379", &at), None, "never seen");
        assert_eq!(best_ip(None, "http://10.0.0.5:2379", &at), Some(ip("10.0.0.5")), "not a pod of the set");
        let not_absent = BTreeSet::new();
        let at = Where { absent: &not_absent, ..at };
        assert_eq!(
            best_ip(Some(2), "http://etcd-2:2379", &at),
            Some(ip("10.9.9.2")),
            "last address when not absent"
        );
    }

    // Found by the chaos run: a pod recreated with a new IP, then its name NXDOMAIN for longer
    // than the removal delay; the leader's sidecar knew only the old IP, probed it, and removed
    // the member while it ran and was connected to the leader. Connected peers are probed too.
    #[test]
    fn established_peer_port_connections_name_the_connected_peers() {
        let tcp =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:094C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 10 0
   1: 0A01E70A:094C A301E70A:B3C2 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4
   2: 0A01E70A:9C40 0B01E70A:094C 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4
   3: 0A01E70A:094C 0C01E70A:B3C3 06 00000000:00000000 00:00000000 00000000     0        0 4 1 0 20 4
   4: 0A01E70A:094B 0D01E70A:C000 01 00000000:00000000 00:00000000 00000000     0        0 5 1 0 20 4
   5: 0100007F:094C 0100007F:C001 01 00000000:00000000 00:00000000 00000000     0        0 6 1 0 20 4
";
        let ips = established_peers(tcp, 2380);
        let want: Vec<IpAddr> = ["10.231.1.163", "10.231.1.11"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(
            ips, want,
            "inbound and outbound peer connections; not listening, closing, client-port or loopback ones"
        );
        let tcp6 = "  sl  local_address                         remote_address                        st
   0: 0000000000000000FFFF00000A01E70A:094C 0000000000000000FFFF0000A301E70A:B3C2 01 0
   1: 000080FE00000000FF005450B6AD1DFE:094C 000080FE00000000FF005450B7AD1DFE:C35A 01 0
";
        let ips = established_peers(tcp6, 2380);
        assert_eq!(ips[0], "10.231.1.163".parse::<IpAddr>().unwrap());
        assert_eq!(ips[1], "fe80::5054:ff:fe1d:adb7".parse::<IpAddr>().unwrap());
        assert!(established_peers("", 2380).is_empty());
        assert_eq!(proc_net_addr("zz:094C"), None);
    }
}
