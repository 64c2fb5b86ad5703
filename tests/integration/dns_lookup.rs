//! `dns::Resolver` against the real DNS server of the bed: found / missing / unknown, no caching
//! of positive or negative answers, SRV, TCP fallback, and resolv.conf on port 53.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use etcd_bootstrap::observe::dns::{Lookup, Resolver, SrvTarget};

use crate::bed::dns_server::{DnsServer, Fault};
use crate::prereq;

const POD0: &str = "etcd-0.etcd.default.svc.cluster.local";
const POD1: &str = "etcd-1.etcd.default.svc.cluster.local";
const POD2: &str = "etcd-2.etcd.default.svc.cluster.local";
const SRV_NAME: &str = "_etcd-server._tcp.etcd.default.svc.cluster.local";

/// A server on a free loopback port and a resolver pointed at it.
async fn setup() -> (DnsServer, Resolver) {
    let server = DnsServer::start("127.0.0.1:0".parse().expect("addr")).await.expect("start dns server");
    let resolver = Resolver::with_server(server.addr()).expect("resolver");
    (server, resolver)
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn unknown_reason<T: std::fmt::Debug>(lookup: Lookup<T>) -> String {
    match lookup {
        Lookup::Unknown(reason) => reason,
        other => panic!("expected Unknown, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_a_record_is_found() {
    let (server, resolver) = setup().await;
    server.set_a(POD0, Ipv4Addr::new(10, 0, 0, 10));
    assert_eq!(resolver.lookup_ips(POD0).await, Lookup::Found(vec![ip(10, 0, 0, 10)]));
    // A trailing dot and another case name the same record.
    assert_eq!(
        resolver.lookup_ips(&format!("{}.", POD0.to_uppercase())).await,
        Lookup::Found(vec![ip(10, 0, 0, 10)])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_aaaa_and_dual_stack_are_found() {
    let (server, resolver) = setup().await;
    let six = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);
    server.set_aaaa(POD0, vec![six]);
    assert_eq!(
        resolver.lookup_ips(POD0).await,
        Lookup::Found(vec![IpAddr::V6(six)]),
        "AAAA only (A is no-data)"
    );
    server.set_a(POD0, Ipv4Addr::new(10, 0, 0, 10));
    assert_eq!(
        resolver.lookup_ips(POD0).await,
        Lookup::Found(vec![ip(10, 0, 0, 10), IpAddr::V6(six)]),
        "dual stack, IPv4 first"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_nxdomain_is_missing() {
    let (server, resolver) = setup().await;
    server.set_a(POD0, Ipv4Addr::new(10, 0, 0, 10));
    assert_eq!(resolver.lookup_ips(POD1).await, Lookup::Missing);
    assert_eq!(resolver.lookup_srv(SRV_NAME).await, Lookup::Missing);
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_no_data_is_missing() {
    let (server, resolver) = setup().await;
    // The SRV name exists, with no A or AAAA record: NOERROR, empty answer, SOA.
    server.set_srv(SRV_NAME, vec![(POD0.to_string(), 2380)]);
    assert_eq!(resolver.lookup_ips(SRV_NAME).await, Lookup::Missing);
    // A pod name exists with an A record and no SRV.
    server.set_a(POD0, Ipv4Addr::new(10, 0, 0, 10));
    assert_eq!(resolver.lookup_srv(POD0).await, Lookup::Missing);
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_servfail_is_unknown_and_not_remembered() {
    let (server, resolver) = setup().await;
    server.set_a(POD0, Ipv4Addr::new(10, 0, 0, 10));
    server.set_fault(Fault::Servfail);
    let reason = unknown_reason(resolver.lookup_ips(POD0).await);
    assert!(reason.contains("SERVFAIL"), "{reason}");
    // A name that does not exist is still Unknown while the server fails: never Missing.
    let reason = unknown_reason(resolver.lookup_ips(POD1).await);
    assert!(reason.contains("SERVFAIL"), "{reason}");
    let reason = unknown_reason(resolver.lookup_srv(SRV_NAME).await);
    assert!(reason.contains("SERVFAIL"), "{reason}");
    server.set_fault(Fault::None);
    assert_eq!(resolver.lookup_ips(POD0).await, Lookup::Found(vec![ip(10, 0, 0, 10)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_refused_is_unknown() {
    let (server, resolver) = setup().await;
    server.set_fault(Fault::Refused);
    let reason = unknown_reason(resolver.lookup_ips(POD0).await);
    assert!(reason.contains("REFUSED"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_dropped_queries_are_unknown_in_bounded_time() {
    let (server, resolver) = setup().await;
    server.set_a(POD0, Ipv4Addr::new(10, 0, 0, 10));
    server.set_fault(Fault::Drop);
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), resolver.lookup_ips(POD1))
        .await
        .expect("lookup_ips must return on its own when the server never answers");
    let reason = unknown_reason(result);
    eprintln!("dropped queries: Unknown after {:?}: {reason}", started.elapsed());
    let srv = tokio::time::timeout(Duration::from_secs(30), resolver.lookup_srv(SRV_NAME))
        .await
        .expect("lookup_srv must return on its own when the server never answers");
    unknown_reason(srv);
    // Every try reached the server: the client retried rather than giving up silently.
    assert!(server.queries() >= 3, "queries: {}", server.queries());
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_short_delay_is_still_found() {
    let (server, resolver) = setup().await;
    server.set_a(POD0, Ipv4Addr::new(10, 0, 0, 10));
    server.set_fault(Fault::Delay(Duration::from_millis(300)));
    assert_eq!(resolver.lookup_ips(POD0).await, Lookup::Found(vec![ip(10, 0, 0, 10)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_no_server_listening_is_unknown() {
    // Take a free port, then close it: nothing answers there.
    let addr = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("addr")
    };
    let resolver = Resolver::with_server(addr).expect("resolver");
    let result = tokio::time::timeout(Duration::from_secs(30), resolver.lookup_ips(POD0))
        .await
        .expect("lookup returns");
    let reason = unknown_reason(result);
    eprintln!("no server: {reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_changed_record_is_seen_on_the_next_lookup() {
    let (server, resolver) = setup().await;
    server.set_a(POD0, Ipv4Addr::new(10, 0, 0, 10));
    assert_eq!(resolver.lookup_ips(POD0).await, Lookup::Found(vec![ip(10, 0, 0, 10)]));
    // The pod restarted with a new IP: TTL 30 must not keep the old one.
    server.set_a(POD0, Ipv4Addr::new(10, 0, 0, 77));
    assert_eq!(resolver.lookup_ips(POD0).await, Lookup::Found(vec![ip(10, 0, 0, 77)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_removed_record_is_missing_on_the_next_lookup() {
    let (server, resolver) = setup().await;
    server.set_a(POD2, Ipv4Addr::new(10, 0, 0, 12));
    assert!(resolver.lookup_ips(POD2).await.is_found());
    server.remove_a(POD2);
    assert_eq!(resolver.lookup_ips(POD2).await, Lookup::Missing);
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_negative_answer_is_not_remembered() {
    let (server, resolver) = setup().await;
    // NXDOMAIN with an SOA (TTL 30, minimum 30) first, for both A and AAAA ...
    assert_eq!(resolver.lookup_ips(POD1).await, Lookup::Missing);
    assert_eq!(resolver.lookup_srv(SRV_NAME).await, Lookup::Missing);
    // ... then the pod and the service appear.
    server.set_a(POD1, Ipv4Addr::new(10, 0, 0, 11));
    server.set_srv(SRV_NAME, vec![(POD1.to_string(), 2380)]);
    assert_eq!(resolver.lookup_ips(POD1).await, Lookup::Found(vec![ip(10, 0, 0, 11)]));
    assert!(resolver.lookup_srv(SRV_NAME).await.is_found());
    // No-data (NOERROR + SOA) for AAAA was not remembered either: an AAAA added now is seen.
    let six = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x11);
    server.set_aaaa(POD1, vec![six]);
    assert_eq!(resolver.lookup_ips(POD1).await, Lookup::Found(vec![ip(10, 0, 0, 11), IpAddr::V6(six)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_srv_lists_the_pods() {
    let (server, resolver) = setup().await;
    server.set_srv(
        SRV_NAME,
        vec![(POD2.to_string(), 2380), (POD0.to_string(), 2380), (POD1.to_string(), 2380)],
    );
    let expected: Vec<SrvTarget> =
        [POD0, POD1, POD2].iter().map(|pod| SrvTarget { target: pod.to_string(), port: 2380 }).collect();
    assert_eq!(
        resolver.lookup_srv(SRV_NAME).await,
        Lookup::Found(expected.clone()),
        "sorted, without trailing dots"
    );
    // Scale down: the last pod leaves the service.
    server.set_srv(SRV_NAME, vec![(POD0.to_string(), 2380), (POD1.to_string(), 2380)]);
    assert_eq!(resolver.lookup_srv(SRV_NAME).await, Lookup::Found(expected[..2].to_vec()));
    server.set_srv(SRV_NAME, vec![]);
    assert_eq!(resolver.lookup_srv(SRV_NAME).await, Lookup::Missing);
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_every_lookup_reaches_the_server() {
    let (server, resolver) = setup().await;
    server.set_a(POD0, Ipv4Addr::new(10, 0, 0, 10));
    server.set_srv(SRV_NAME, vec![(POD0.to_string(), 2380)]);
    for round in 0..5u64 {
        let before = server.queries();
        assert!(resolver.lookup_ips(POD0).await.is_found());
        assert!(resolver.lookup_ips(POD1).await.is_missing());
        assert!(resolver.lookup_srv(SRV_NAME).await.is_found());
        let asked = server.queries() - before;
        // A + AAAA for each name, one SRV: positive, NXDOMAIN and no-data all asked again.
        assert!(asked >= 5, "round {round}: only {asked} queries reached the server");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_truncated_answer_is_retried_over_tcp() {
    let (server, resolver) = setup().await;
    let many: Vec<Ipv4Addr> = (0..200u8).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect();
    server.set_a_all(POD0, many.clone());
    let found = resolver.lookup_ips(POD0).await.found().expect("a large answer is found over tcp");
    assert_eq!(found.len(), many.len());
    assert!(server.tcp_queries() >= 1, "the large answer came over tcp");
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_cname_is_followed() {
    let (server, resolver) = setup().await;
    server.set_a(POD0, Ipv4Addr::new(10, 0, 0, 10));
    server.set_cname("alias.example", Some(POD0));
    assert_eq!(resolver.lookup_ips("alias.example").await, Lookup::Found(vec![ip(10, 0, 0, 10)]));
    // A CNAME to a name that does not exist is a definite "not there".
    server.set_cname("dangling.example", Some(POD2));
    assert_eq!(resolver.lookup_ips("dangling.example").await, Lookup::Missing);
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_server_answers_concurrent_queries() {
    let (server, resolver) = setup().await;
    let resolver = std::sync::Arc::new(resolver);
    for i in 0..10u8 {
        server.set_a(&format!("etcd-{i}.etcd"), Ipv4Addr::new(10, 0, 0, i));
    }
    server.set_fault(Fault::Delay(Duration::from_millis(500)));
    let started = Instant::now();
    let lookups: Vec<_> = (0..10u8)
        .map(|i| {
            let resolver = resolver.clone();
            tokio::spawn(async move { (i, resolver.lookup_ips(&format!("etcd-{i}.etcd")).await) })
        })
        .collect();
    for lookup in lookups {
        let (i, result) = lookup.await.expect("task");
        assert_eq!(result, Lookup::Found(vec![ip(10, 0, 0, i)]));
    }
    // Twenty delayed queries one after the other would take 10 s.
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "served one at a time? {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_from_resolv_conf_on_port_53() {
    const NAME: &str = "dns_from_resolv_conf_on_port_53";
    if !prereq::need_root(NAME) {
        return;
    }
    // The whole 127/8 is on lo: bind port 53 on an address nobody else uses.
    let bind: SocketAddr = "127.0.88.1:53".parse().expect("addr");
    let server = match DnsServer::start(bind).await {
        Ok(server) => server,
        Err(e) => {
            prereq::skipped(NAME, &format!("cannot bind {bind}: {e}"));
            return;
        }
    };
    server.set_a(POD0, Ipv4Addr::new(10, 0, 0, 10));
    let resolv_conf = "search default.svc.cluster.local svc.cluster.local cluster.local\n\
                       nameserver 127.0.88.1\n\
                       options ndots:5\n";
    let resolver = Resolver::from_resolv_conf(resolv_conf).expect("resolver");
    assert_eq!(resolver.servers(), &[bind]);
    assert_eq!(resolver.lookup_ips(POD0).await, Lookup::Found(vec![ip(10, 0, 0, 10)]));
    // The search list is never applied: a short name is asked as it is, absolute.
    server.set_a("etcd-1.default.svc.cluster.local", Ipv4Addr::new(10, 0, 0, 11));
    assert_eq!(resolver.lookup_ips("etcd-1").await, Lookup::Missing);
}

/// One raw UDP query to `server`, answered within 5 s.
async fn raw_query(
    server: SocketAddr,
    name: &str,
    rtype: hickory_proto::rr::RecordType,
) -> hickory_proto::op::Message {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::Name;
    let mut query = Message::query();
    query.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.send_to(&query.to_vec().expect("encode"), server).await.expect("send");
    let mut buf = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("reply in time")
        .expect("recv");
    let reply = Message::from_vec(&buf[..len]).expect("decode");
    assert_eq!(reply.metadata.id, query.metadata.id);
    reply
}

/// The negative answer's SOA: in the authority section, TTL 30, minimum 30.
fn assert_soa_30(reply: &hickory_proto::op::Message) {
    use hickory_proto::rr::RData;
    let soa = reply
        .authorities
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some((r.ttl, soa.minimum)),
            _ => None,
        })
        .expect("an SOA in the authority section");
    assert_eq!(soa, (30, 30));
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_server_answers_like_coredns() {
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::RecordType;
    let (server, _) = setup().await;
    let addr = server.addr();
    server.set_a(POD0, Ipv4Addr::new(10, 0, 0, 10));
    server.set_txt(POD0, vec!["hello".into()]);

    let found = raw_query(addr, &format!("{POD0}."), RecordType::A).await;
    assert_eq!(found.metadata.response_code, ResponseCode::NoError);
    assert!(found.metadata.authoritative, "AA");
    assert_eq!(found.answers.len(), 1);
    assert_eq!(found.answers[0].ttl, 30);
    let txt = raw_query(addr, &format!("{POD0}."), RecordType::TXT).await;
    assert_eq!(txt.answers.len(), 1);

    let nodata = raw_query(addr, &format!("{POD0}."), RecordType::AAAA).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.metadata.authoritative, "AA");
    assert!(nodata.answers.is_empty());
    assert_soa_30(&nodata);

    let nx = raw_query(addr, &format!("{POD1}."), RecordType::A).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.metadata.authoritative, "AA");
    assert_soa_30(&nx);

    server.remove_name(POD0);
    let gone = raw_query(addr, &format!("{POD0}."), RecordType::TXT).await;
    assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);

    server.set_fault(Fault::Servfail);
    let failed = raw_query(addr, &format!("{POD0}."), RecordType::A).await;
    assert_eq!(failed.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(server.queries(), 6);
}
