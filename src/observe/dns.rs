//! DNS lookups with hickory-resolver: no cache between polls (positive or negative), nameserver
//! from resolv.conf or `--dns-server host:port`; A/AAAA and SRV.
//!
//! Every lookup goes to the server: the resolver is built with a zero-size cache and every TTL
//! (positive and negative) clamped to zero, so a changed, removed or added record is seen on the
//! next poll, and an NXDOMAIN carrying an SOA is not remembered. Names are always looked up as
//! absolute names: no search list, no `ndots`, no `/etc/hosts`.
//!
//! The answer keeps "the name is not there" ([`Lookup::Missing`]: NXDOMAIN, or NOERROR with no
//! record of the asked type) apart from "nothing is known" ([`Lookup::Unknown`]: SERVFAIL,
//! REFUSED, a referral, a timeout, an I/O error). The sidecar removes a member only on a definite
//! `Missing`, so anything that is not a server's negative answer must stay `Unknown`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup as Answer;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;

use crate::error::{Error, Result};

/// How long one try of one query may take before it counts as unanswered.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Retries after a failed try (SERVFAIL, timeout, I/O error): one retry, so two tries in all.
const RETRIES: usize = 1;

/// Upper bound on one `lookup_*` call whatever happens inside the resolver: two tries of
/// [`QUERY_TIMEOUT`] plus a margin for a TCP retry after a truncated answer.
pub const LOOKUP_DEADLINE: Duration = Duration::from_secs(6);

/// The DNS port used for resolv.conf nameservers and a bare `--dns-server` IP.
const DNS_PORT: u16 = 53;

/// glibc reads at most this many `nameserver` lines (MAXNS); so do we.
const MAX_NAMESERVERS: usize = 3;

/// The answer to one lookup, with "not there" kept apart from "could not tell".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// Records were returned.
    Found(T),
    /// A definite negative answer: NXDOMAIN, or the name exists with no record of this type.
    Missing,
    /// An error, SERVFAIL, refusal or timeout: nothing is known.
    Unknown(String),
}

impl<T> Lookup<T> {
    /// True for [`Lookup::Found`].
    pub fn is_found(&self) -> bool {
        matches!(self, Lookup::Found(_))
    }

    /// True for [`Lookup::Missing`], the only answer that proves a name is gone.
    pub fn is_missing(&self) -> bool {
        matches!(self, Lookup::Missing)
    }

    /// The records, if found.
    pub fn found(self) -> Option<T> {
        match self {
            Lookup::Found(value) => Some(value),
            _ => None,
        }
    }

    /// Apply `f` to the records of a [`Lookup::Found`].
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Lookup<U> {
        match self {
            Lookup::Found(value) => Lookup::Found(f(value)),
            Lookup::Missing => Lookup::Missing,
            Lookup::Unknown(reason) => Lookup::Unknown(reason),
        }
    }
}

/// One SRV target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SrvTarget {
    /// Target host name, absolute, without the trailing dot, lowercase.
    pub target: String,
    pub port: u16,
}

/// A resolver that never caches.
pub struct Resolver {
    inner: TokioResolver,
    servers: Vec<SocketAddr>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").field("servers", &self.servers).finish()
    }
}

impl Resolver {
    /// Use the nameservers listed in resolv.conf-formatted `text` (port 53, at most three, as
    /// glibc does). `search`, `domain` and `options` lines are ignored: names are absolute.
    pub fn from_resolv_conf(text: &str) -> Result<Self> {
        let ips = resolv_conf_nameservers(text)?;
        let servers = ips.into_iter().map(|ip| SocketAddr::new(ip, DNS_PORT)).collect();
        Self::with_servers(servers)
    }

    /// Use one nameserver at `addr` (UDP, TCP fallback).
    pub fn with_server(addr: SocketAddr) -> Result<Self> {
        Self::with_servers(vec![addr])
    }

    /// Use the nameservers `servers`, tried as hickory's pool does (UDP, TCP after a truncated
    /// answer).
    pub fn with_servers(servers: Vec<SocketAddr>) -> Result<Self> {
        if servers.is_empty() {
            return Err(Error::Dns("no nameserver given".into()));
        }
        let config = ResolverConfig::from_name_servers(servers.iter().map(server_config).collect());
        let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        *builder.options_mut() = uncached_options();
        let inner = builder.build().map_err(|e| Error::Dns(format!("cannot set up the resolver: {e}")))?;
        Ok(Resolver { inner, servers })
    }

    /// The nameservers this resolver asks.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// A and AAAA records of the absolute name `fqdn` (no search list is applied).
    ///
    /// Both types are asked concurrently. Any address found makes the answer `Found` (sorted,
    /// IPv4 first); `Missing` needs a definite negative answer for both types; anything else is
    /// `Unknown`.
    pub async fn lookup_ips(&self, fqdn: &str) -> Lookup<Vec<IpAddr>> {
        let (v4, v6) = tokio::join!(
            self.lookup_records(fqdn, RecordType::A, ips_of),
            self.lookup_records(fqdn, RecordType::AAAA, ips_of)
        );
        combine_ips(v4, v6)
    }

    /// SRV records of the absolute name `fqdn`, sorted by target then port, without duplicates.
    pub async fn lookup_srv(&self, fqdn: &str) -> Lookup<Vec<SrvTarget>> {
        self.lookup_records(fqdn, RecordType::SRV, srv_of).await
    }

    /// One query of type `rtype`, classified, its records taken out by `extract`, bounded by
    /// [`LOOKUP_DEADLINE`]. An answer from which `extract` takes nothing is `Unknown`: it is not
    /// a negative answer, and it must not read as "found, zero records".
    async fn lookup_records<T>(
        &self,
        fqdn: &str,
        rtype: RecordType,
        extract: fn(&Answer) -> Vec<T>,
    ) -> Lookup<Vec<T>> {
        let name = match absolute_name(fqdn) {
            Ok(name) => name,
            Err(reason) => return Lookup::Unknown(format!("{rtype} {fqdn:?}: {reason}")),
        };
        let what = format!("{rtype} {}", display_name(&name));
        let result = tokio::time::timeout(LOOKUP_DEADLINE, self.inner.lookup(name, rtype)).await;
        let classified = match result {
            Ok(result) => classify(result, &what),
            Err(_) => Lookup::Unknown(format!("{what}: no answer within {}s", LOOKUP_DEADLINE.as_secs())),
        };
        match classified.map(|answer| extract(&answer)) {
            Lookup::Found(records) if records.is_empty() => {
                Lookup::Unknown(format!("{what}: the answer held no {rtype} record for the name"))
            }
            other => other,
        }
    }
}

/// Resolver options that make every lookup a fresh query: no cache, zero TTLs, no hosts file,
/// short timeouts.
fn uncached_options() -> ResolverOpts {
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    opts.positive_min_ttl = None;
    opts.negative_min_ttl = None;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.timeout = QUERY_TIMEOUT;
    opts.attempts = RETRIES;
    opts.try_tcp_on_error = true;
    opts.ndots = 0;
    opts
}

/// UDP and TCP to `addr`, trusting its NXDOMAIN answers (a negative answer is final).
fn server_config(addr: &SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}

/// `fqdn` as an absolute name (trailing dot added), so no search list can apply.
fn absolute_name(fqdn: &str) -> std::result::Result<Name, String> {
    let trimmed = fqdn.trim();
    if trimmed.is_empty() || trimmed == "." {
        return Err("cannot look up an empty name".into());
    }
    let mut name = Name::from_ascii(trimmed).map_err(|e| format!("{trimmed:?} is not a dns name: {e}"))?;
    name.set_fqdn(true);
    Ok(name)
}

/// A name for messages and results: lowercase, without the trailing dot.
fn display_name(name: &Name) -> String {
    name.to_lowercase().to_ascii().trim_end_matches('.').to_string()
}

/// Sort a resolver result into found / definitely missing / unknown.
fn classify(result: std::result::Result<Answer, NetError>, what: &str) -> Lookup<Answer> {
    match result {
        Ok(answer) => Lookup::Found(answer),
        Err(NetError::Dns(DnsError::NoRecordsFound(no_records))) => classify_no_records(&no_records, what),
        Err(NetError::Dns(DnsError::ResponseCode(code))) => {
            Lookup::Unknown(format!("{what}: server answered {}", rcode_name(code)))
        }
        Err(NetError::Timeout) => Lookup::Unknown(format!("{what}: no answer in time")),
        Err(e) => Lookup::Unknown(format!("{what}: {e}")),
    }
}

/// A "no records" result is `Missing` only when it is a server's negative answer (NXDOMAIN, or
/// NOERROR with no data); a referral to other servers (NS, no SOA) answers nothing.
fn classify_no_records(no_records: &NoRecords, what: &str) -> Lookup<Answer> {
    let referral = no_records.soa.is_none() && no_records.ns.is_some();
    match no_records.response_code {
        _ if referral => Lookup::Unknown(format!("{what}: the server sent a referral instead of an answer")),
        ResponseCode::NXDomain | ResponseCode::NoError => Lookup::Missing,
        code => Lookup::Unknown(format!("{what}: server answered {} without records", rcode_name(code))),
    }
}

/// The usual mnemonic of a response code (as dig prints it).
fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("rcode {}", u16::from(other)),
    }
}

/// The addresses in an answer (CNAMEs followed by the resolver are skipped).
fn ips_of(answer: &Answer) -> Vec<IpAddr> {
    answer
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}

/// The SRV targets in an answer, sorted, without duplicates.
fn srv_of(answer: &Answer) -> Vec<SrvTarget> {
    let mut targets: Vec<SrvTarget> = answer
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => Some(SrvTarget { target: display_name(&srv.target), port: srv.port }),
            _ => None,
        })
        .collect();
    targets.sort();
    targets.dedup();
    targets
}

/// Merge the A and AAAA answers of one name.
///
/// Any address makes it `Found`; it is `Missing` only when both types are definitely missing;
/// otherwise (one missing, one unknown, or both unknown) nothing is known.
fn combine_ips(v4: Lookup<Vec<IpAddr>>, v6: Lookup<Vec<IpAddr>>) -> Lookup<Vec<IpAddr>> {
    match (v4, v6) {
        (Lookup::Found(a), Lookup::Found(b)) => Lookup::Found(sorted_ips(a.into_iter().chain(b))),
        (Lookup::Found(a), _) | (_, Lookup::Found(a)) => Lookup::Found(sorted_ips(a)),
        (Lookup::Missing, Lookup::Missing) => Lookup::Missing,
        (Lookup::Unknown(a), Lookup::Unknown(b)) => Lookup::Unknown(format!("{a}; {b}")),
        (Lookup::Unknown(reason), Lookup::Missing) | (Lookup::Missing, Lookup::Unknown(reason)) => {
            Lookup::Unknown(reason)
        }
    }
}

/// Addresses sorted (IPv4 before IPv6) without duplicates; an empty set is kept empty.
fn sorted_ips(ips: impl IntoIterator<Item = IpAddr>) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = ips.into_iter().collect();
    ips.sort();
    ips.dedup();
    ips
}

/// The `nameserver` addresses of resolv.conf text, in order, at most [`MAX_NAMESERVERS`].
///
/// Comments (`#` or `;`, at the start of a line or after the address) are ignored, as are lines
/// that are not `nameserver`. An entry that is not an IP address is skipped with a warning;
/// so is a scoped IPv6 address (`fe80::1%eth0`), since the resolver cannot carry the scope.
pub fn resolv_conf_nameservers(text: &str) -> Result<Vec<IpAddr>> {
    let mut ips = Vec::new();
    let mut skipped = Vec::new();
    for value in text.lines().filter_map(nameserver_value) {
        match value.parse::<IpAddr>() {
            Ok(ip) if ips.len() < MAX_NAMESERVERS => ips.push(ip),
            Ok(ip) => {
                tracing::warn!(nameserver = %ip, "resolv.conf: only the first {MAX_NAMESERVERS} nameservers are used")
            }
            Err(_) => {
                tracing::warn!(
                    nameserver = value,
                    "resolv.conf: skipping a nameserver that is not a plain ip address"
                );
                skipped.push(value.to_string());
            }
        }
    }
    if ips.is_empty() {
        return Err(Error::config(no_nameserver_message(&skipped)));
    }
    Ok(ips)
}

/// The value of a `nameserver` line, or None for any other line.
fn nameserver_value(line: &str) -> Option<&str> {
    let line = line.split(['#', ';']).next().unwrap_or_default();
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("nameserver"), Some(value)) => Some(value),
        _ => None,
    }
}

/// The error text when resolv.conf gives no usable nameserver.
fn no_nameserver_message(skipped: &[String]) -> String {
    if skipped.is_empty() {
        "resolv.conf lists no nameserver: add a nameserver line, or give --dns-server ip:port".into()
    } else {
        format!(
            "resolv.conf lists no usable nameserver (skipped {}: only plain ip addresses, no \
             scoped ipv6); give --dns-server ip:port",
            skipped.join(", ")
        )
    }
}

/// Parse `--dns-server`: `ip:port`, `[v6]:port`, or a bare IP (port 53). Host names are refused,
/// since resolving one would need DNS.
pub fn parse_dns_server(text: &str) -> Result<SocketAddr> {
    let value = text.trim();
    let parsed =
        value.parse::<SocketAddr>().ok().or_else(|| bare_ip(value).map(|ip| SocketAddr::new(ip, DNS_PORT)));
    match parsed {
        Some(addr) if addr.port() != 0 => Ok(addr),
        _ => Err(Error::config(format!(
            "--dns-server {text:?} is not an address: expected ip:port, [ipv6]:port or a bare ip \
             (port 53), for example 10.96.0.10:53; host names are not accepted"
        ))),
    }
}

/// A bare IP, IPv6 possibly in brackets.
fn bare_ip(value: &str) -> Option<IpAddr> {
    let unbracketed = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value);
    let ip = unbracketed.parse::<IpAddr>().ok()?;
    // Brackets belong to IPv6 only.
    (unbracketed == value || ip.is_ipv6()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn dns_server_ipv4_with_port() {
        let addr = parse_dns_server("1.2.3.4:5353").expect("valid");
        assert_eq!(addr, SocketAddr::new(v4(1, 2, 3, 4), 5353));
    }

    #[test]
    fn dns_server_ipv6_with_port() {
        let addr = parse_dns_server("[::1]:5353").expect("valid");
        assert_eq!(addr, SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 5353));
    }

    #[test]
    fn dns_server_bare_ips_use_port_53() {
        assert_eq!(parse_dns_server("1.2.3.4").expect("valid"), SocketAddr::new(v4(1, 2, 3, 4), 53));
        assert_eq!(parse_dns_server("fd00::10").expect("valid").port(), 53, "bare ipv6");
        assert_eq!(parse_dns_server("[fd00::10]").expect("valid").port(), 53, "bracketed ipv6");
        assert_eq!(
            parse_dns_server(" 10.96.0.10 ").expect("surrounding spaces are trimmed"),
            SocketAddr::new(v4(10, 96, 0, 10), 53)
        );
    }

    #[test]
    fn dns_server_bad_values_are_config_errors() {
        for bad in [
            "",
            "foo",
            "1.2.3.4:",
            "1.2.3.4:99999",
            "1.2.3.4:0",
            "host.example:53",
            "[1.2.3.4]",
            "::1:53:x",
            "1.2.3.4:53:53",
        ] {
            let err = parse_dns_server(bad).expect_err(bad);
            assert!(matches!(err, Error::Config(_)), "{bad}: {err:?}");
            let msg = err.to_string();
            assert!(msg.contains("--dns-server"), "{msg}");
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
            assert!(msg.contains("ip:port"), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.starts_with(|c: char| !c.is_uppercase()), "lowercase: {msg}");
        }
    }

    #[test]
    fn resolv_conf_kubernetes() {
        let text = "search default.svc.cluster.local svc.cluster.local cluster.local\n\
                    nameserver 10.96.0.10\n\
                    options ndots:5\n";
        assert_eq!(resolv_conf_nameservers(text).expect("one nameserver"), vec![v4(10, 96, 0, 10)]);
    }

    #[test]
    fn resolv_conf_order_comments_and_limit() {
        let text = "# generated\n\
                    ; also a comment\n\
                    #nameserver 9.9.9.9\n\
                    nameserver 10.0.0.1   # primary\n\
                    nameserver\t2001:db8::53\n\
                    nameserver 10.0.0.3;tertiary\n\
                    nameserver 10.0.0.4\n\
                    nameservers 10.0.0.5\n";
        assert_eq!(
            resolv_conf_nameservers(text).expect("nameservers"),
            vec![v4(10, 0, 0, 1), "2001:db8::53".parse::<IpAddr>().expect("ip"), v4(10, 0, 0, 3)]
        );
    }

    #[test]
    fn resolv_conf_skips_scoped_and_bad_entries() {
        let text = "nameserver fe80::1%eth0\nnameserver dns.example\nnameserver 127.0.0.11\n";
        assert_eq!(resolv_conf_nameservers(text).expect("one usable"), vec![v4(127, 0, 0, 11)]);
    }

    #[test]
    fn resolv_conf_without_nameserver_is_an_error() {
        for text in ["", "search cluster.local\noptions ndots:5\n", "nameserver\n"] {
            let err = resolv_conf_nameservers(text).expect_err(text);
            assert!(matches!(err, Error::Config(_)), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains("no nameserver"), "{msg}");
            assert!(msg.contains("--dns-server"), "{msg}");
        }
        let err = resolv_conf_nameservers("nameserver fe80::1%eth0\n").expect_err("scoped only");
        let msg = err.to_string();
        assert!(msg.contains("no usable nameserver") && msg.contains("fe80::1%eth0"), "{msg}");
    }

    #[test]
    fn resolver_from_resolv_conf_keeps_order_and_port_53() {
        let resolver = Resolver::from_resolv_conf("nameserver 10.0.0.1\nnameserver 10.0.0.2\n").expect("ok");
        assert_eq!(
            resolver.servers(),
            &[SocketAddr::new(v4(10, 0, 0, 1), 53), SocketAddr::new(v4(10, 0, 0, 2), 53)]
        );
        assert!(Resolver::from_resolv_conf("search x\n").is_err());
    }

    #[test]
    fn options_disable_every_cache() {
        let opts = uncached_options();
        assert_eq!(opts.cache_size, 0);
        assert_eq!(opts.positive_max_ttl, Some(Duration::ZERO));
        assert_eq!(opts.negative_max_ttl, Some(Duration::ZERO));
        assert_eq!(opts.use_hosts_file, ResolveHosts::Never);
        assert_eq!(opts.timeout, QUERY_TIMEOUT);
    }

    #[test]
    fn names_are_made_absolute() {
        let name = absolute_name("etcd-0.etcd.default.svc.cluster.local").expect("name");
        assert!(name.is_fqdn());
        assert_eq!(display_name(&name), "etcd-0.etcd.default.svc.cluster.local");
        let name = absolute_name("Etcd-0.").expect("name");
        assert!(name.is_fqdn());
        assert_eq!(display_name(&name), "etcd-0");
        assert!(absolute_name("").is_err());
        assert!(absolute_name(".").is_err());
        assert!(absolute_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn combine_found_wins() {
        let a = Lookup::Found(vec![v4(10, 0, 0, 2), v4(10, 0, 0, 1)]);
        let six: IpAddr = "fd00::1".parse().expect("ip");
        assert_eq!(
            combine_ips(a.clone(), Lookup::Found(vec![six])),
            Lookup::Found(vec![v4(10, 0, 0, 1), v4(10, 0, 0, 2), six])
        );
        assert_eq!(
            combine_ips(a.clone(), Lookup::Missing),
            Lookup::Found(vec![v4(10, 0, 0, 1), v4(10, 0, 0, 2)])
        );
        assert!(combine_ips(a, Lookup::Unknown("x".into())).is_found());
        assert!(combine_ips(Lookup::Missing, Lookup::Found(vec![six])).is_found());
    }

    #[test]
    fn combine_missing_needs_both() {
        assert_eq!(combine_ips(Lookup::Missing, Lookup::Missing), Lookup::Missing);
        assert_eq!(
            combine_ips(Lookup::Missing, Lookup::Unknown("aaaa failed".into())),
            Lookup::Unknown("aaaa failed".into())
        );
        assert_eq!(
            combine_ips(Lookup::Unknown("a failed".into()), Lookup::Missing),
            Lookup::Unknown("a failed".into())
        );
        assert_eq!(
            combine_ips(Lookup::Unknown("a".into()), Lookup::Unknown("b".into())),
            Lookup::Unknown("a; b".into())
        );
    }

    #[test]
    fn no_records_classification() {
        let query = hickory_resolver::proto::op::Query::query(
            absolute_name("x.example").expect("name"),
            RecordType::A,
        );
        let nx = NoRecords::new(query.clone(), ResponseCode::NXDomain);
        assert!(classify_no_records(&nx, "A x").is_missing());
        let nodata = NoRecords::new(query.clone(), ResponseCode::NoError);
        assert!(classify_no_records(&nodata, "A x").is_missing());
        let odd = NoRecords::new(query, ResponseCode::ServFail);
        assert!(matches!(
            classify_no_records(&odd, "A x"),
            Lookup::Unknown(r) if r.contains("SERVFAIL")
        ));
    }

    #[test]
    fn error_classification() {
        assert!(matches!(
            classify(Err(NetError::Timeout), "A x"),
            Lookup::Unknown(r) if r.starts_with("A x")
        ));
        assert!(matches!(
            classify(Err(DnsError::ResponseCode(ResponseCode::Refused).into()), "A x"),
            Lookup::Unknown(r) if r.contains("REFUSED")
        ));
    }
}

/// Property tests: the readers of outside input (resolv.conf, `--dns-server`) never panic and
/// read what they are given.
#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;

    fn ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![any::<[u8; 4]>().prop_map(IpAddr::from), any::<[u16; 8]>().prop_map(IpAddr::from),]
    }

    /// A resolv.conf line that is not a nameserver line.
    fn other_line() -> impl Strategy<Value = String> {
        prop_oneof![
            "(search|domain|options|sortlist) [a-z0-9. :]{0,30}",
            "[#;][^\n]{0,30}",
            "[ \t]*",
            "[^\n]{0,30}".prop_filter("not a nameserver line", |l| {
                l.split(['#', ';']).next().unwrap_or_default().split_whitespace().next() != Some("nameserver")
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn resolv_conf_nameservers_never_panics(text in any::<String>()) {
            let _ = resolv_conf_nameservers(&text);
        }

        #[test]
        fn resolv_conf_nameservers_never_panics_on_resolv_conf_like_text(
            lines in proptest::collection::vec("(nameserver|search|#|;)?[ \t]{0,2}[0-9a-f:.%# ;-]{0,24}", 0..10),
        ) {
            let _ = resolv_conf_nameservers(&lines.join("\n"));
        }

        #[test]
        fn nameservers_are_read_in_order_up_to_three(
            entries in proptest::collection::vec((ip(), other_line(), "( *[#;][^\n]{0,10})?"), 0..6),
            tail in other_line(),
        ) {
            let mut text = String::new();
            for (ip, other, comment) in &entries {
                text.push_str(&format!("{other}\nnameserver {ip}{comment}\n"));
            }
            text.push_str(&tail);
            let want: Vec<IpAddr> = entries.iter().map(|(ip, _, _)| *ip).take(MAX_NAMESERVERS).collect();
            match resolv_conf_nameservers(&text) {
                Ok(got) => prop_assert_eq!(got, want),
                Err(e) => {
                    prop_assert!(want.is_empty(), "{}", e);
                    prop_assert!(e.to_string().contains("--dns-server"), "{}", e);
                }
            }
        }

        #[test]
        fn parse_dns_server_never_panics(text in any::<String>()) {
            let _ = parse_dns_server(&text);
        }

        #[test]
        fn socket_addresses_round_trip(ip in ip(), port in 1u16..) {
            let addr = SocketAddr::new(ip, port);
            prop_assert_eq!(parse_dns_server(&addr.to_string()).ok(), Some(addr));
            prop_assert_eq!(parse_dns_server(&ip.to_string()).ok(), Some(SocketAddr::new(ip, DNS_PORT)));
        }
    }
}
