//! Who this pod is: pod name, StatefulSet name and ordinal, namespace, cluster domain, and the DNS
//! names of its peers.

use crate::error::{Error, Result};

/// The identity of this pod within its StatefulSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Pod name, e.g. `etcd-2`; also the etcd member name.
    pub pod_name: String,
    /// StatefulSet name, e.g. `etcd`.
    pub set_name: String,
    /// Ordinal, e.g. 2.
    pub ordinal: u32,
    /// Domain the pod names live under; empty means bare names (docker-compose).
    pub domain: String,
}

impl Identity {
    /// The DNS name of the pod with `ordinal` (without trailing dot).
    pub fn peer_host(&self, ordinal: u32) -> String {
        host_name(&self.set_name, ordinal, &self.domain)
    }

    /// This pod's own DNS name.
    pub fn own_host(&self) -> String {
        self.peer_host(self.ordinal)
    }

    /// The pod name of a member whose peer host is `host`, if it belongs to this set.
    pub fn ordinal_of_host(&self, host: &str) -> Option<u32> {
        let host = host.trim_end_matches('.');
        let pod =
            if self.domain.is_empty() { host } else { host.strip_suffix(&self.domain)?.strip_suffix('.')? };
        let (set, ordinal) = split_pod_name(pod).ok()?;
        (set == self.set_name).then_some(ordinal)
    }

    /// The ordinal of the pod a member's peer URLs name, if one of them is a pod of this set.
    pub fn ordinal_of_urls(&self, urls: &[String]) -> Option<u32> {
        urls.iter().filter_map(|u| url_host(u)).find_map(|host| self.ordinal_of_host(host))
    }
}

/// Host part of `scheme://host:port`.
pub(crate) fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let host_port = rest.split('/').next()?;
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(host_port.rsplit_once(':').map_or(host_port, |(h, _)| h))
}

/// The port of `scheme://host:port[/...]`.
pub(crate) fn url_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let host_port = rest.split('/').next()?;
    host_port.rsplit_once(':')?.1.parse().ok()
}

/// `<set>-<ordinal>[.<domain>]`.
pub(crate) fn host_name(set: &str, ordinal: u32, domain: &str) -> String {
    if domain.is_empty() {
        format!("{set}-{ordinal}")
    } else {
        format!("{set}-{ordinal}.{domain}")
    }
}

/// Split a StatefulSet pod name into set name and ordinal, rejecting anything a StatefulSet would
/// not produce.
pub(crate) fn split_pod_name(name: &str) -> Result<(String, u32)> {
    let bad = |problem: &str| Error::PodName { name: name.to_string(), problem: problem.into() };
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    if name.len() > 63 || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(bad("is not a DNS label (lowercase letters, digits and '-', at most 63)"));
    }
    let Some((set, digits)) = name.rsplit_once('-') else {
        return Err(bad("has no ordinal"));
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("does not end in a number"));
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(bad("has an ordinal with a leading zero"));
    }
    if set.is_empty() || set.ends_with('-') || set.starts_with('-') {
        return Err(bad("has no valid set name before the ordinal"));
    }
    let ordinal = digits.parse::<u32>().map_err(|_| bad("has an ordinal larger than 4294967295"))?;
    Ok((set.to_string(), ordinal))
}

/// Namespace and cluster domain from a resolv.conf `search` list, as Kubernetes writes it:
/// `search <ns>.svc.<cluster-domain> svc.<cluster-domain> <cluster-domain>`.
pub(crate) fn from_search_list(resolv_conf: &str) -> Option<(String, String)> {
    let search = resolv_conf
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("search").or_else(|| line.strip_prefix("domain")))
        .rfind(|rest| rest.starts_with(char::is_whitespace))?;
    search.split_whitespace().find_map(|entry| {
        let entry = entry.trim_end_matches('.');
        let (namespace, domain) = entry.split_once(".svc.")?;
        let valid = !namespace.is_empty() && !namespace.contains('.') && !domain.is_empty();
        valid.then(|| (namespace.to_string(), domain.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_host_handles_names_ips_and_v6() {
        assert_eq!(url_host("http://etcd-0.etcd:2380"), Some("etcd-0.etcd"));
        assert_eq!(url_host("https://10.0.0.1:2380/"), Some("10.0.0.1"));
        assert_eq!(url_host("http://[fd00::1]:2380"), Some("fd00::1"));
        assert_eq!(url_host("etcd-0:2380"), None);
    }

    #[test]
    fn url_ports() {
        assert_eq!(url_port("http://127.0.0.1:2381"), Some(2381));
        assert_eq!(url_port("https://[::1]:2381/metrics"), Some(2381));
        assert_eq!(url_port("http://host"), None);
        assert_eq!(url_port(""), None);
    }

    #[test]
    fn splits_statefulset_pod_names() {
        assert_eq!(split_pod_name("etcd-0").ok(), Some(("etcd".into(), 0)));
        assert_eq!(split_pod_name("etcd-12").ok(), Some(("etcd".into(), 12)));
        assert_eq!(split_pod_name("my-etcd-3").ok(), Some(("my-etcd".into(), 3)));
        assert_eq!(split_pod_name("etcd-4294967295").ok(), Some(("etcd".into(), u32::MAX)));
    }

    #[test]
    fn rejects_names_a_statefulset_never_makes() {
        for (name, problem) in [
            ("etcd", "has no ordinal"),
            ("etcd-", "does not end in a number"),
            ("etcd-1a", "does not end in a number"),
            ("etcd--1", "no valid set name"),
            ("-1", "no valid set name"),
            ("etcd-4294967296", "larger than"),
            ("etcd-01", "leading zero"),
            ("Etcd-1", "not a DNS label"),
            ("etcd_1", "not a DNS label"),
            ("", "is empty"),
        ] {
            let err = split_pod_name(name).expect_err(name).to_string();
            assert!(err.contains(problem), "{name}: {err}");
            assert!(err.contains("--name or POD_NAME"), "{name}: {err}");
        }
    }

    #[test]
    fn reads_namespace_and_domain_from_kubernetes_search_list() {
        let conf = "nameserver 10.96.0.10\nsearch prod.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n";
        assert_eq!(from_search_list(conf), Some(("prod".into(), "cluster.local".into())));
        let custom = "search kube-system.svc.k8s.example.org svc.k8s.example.org\n";
        assert_eq!(from_search_list(custom), Some(("kube-system".into(), "k8s.example.org".into())));
    }

    #[test]
    fn no_kubernetes_search_list_gives_none() {
        assert_eq!(from_search_list("nameserver 127.0.0.11\noptions ndots:0\n"), None);
        assert_eq!(from_search_list("search example.com\n"), None);
        assert_eq!(from_search_list("searchx a.svc.b\n"), None);
    }

    #[test]
    fn peer_hosts_follow_the_domain() {
        let id = Identity {
            pod_name: "etcd-1".into(),
            set_name: "etcd".into(),
            ordinal: 1,
            domain: "etcd.default.svc.cluster.local".into(),
        };
        assert_eq!(id.peer_host(2), "etcd-2.etcd.default.svc.cluster.local");
        assert_eq!(id.ordinal_of_host("etcd-2.etcd.default.svc.cluster.local."), Some(2));
        assert_eq!(id.ordinal_of_host("other-2.etcd.default.svc.cluster.local"), None);
        let bare = Identity { domain: String::new(), ..id };
        assert_eq!(bare.own_host(), "etcd-1");
        assert_eq!(bare.ordinal_of_host("etcd-7"), Some(7));
    }
}

/// Property tests: the parsers of outside input (hostname, `POD_NAME`, resolv.conf) never panic,
/// and what they accept round-trips.
#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;

    /// A set name a StatefulSet could have: a DNS label that does not end in '-'.
    fn set_name() -> impl Strategy<Value = String> {
        "[a-z]([a-z0-9-]{0,30}[a-z0-9])?"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn split_pod_name_never_panics(name in any::<String>()) {
            let _ = split_pod_name(&name);
        }

        #[test]
        fn split_pod_name_never_panics_on_label_like_names(name in "[a-z0-9-]{0,70}") {
            let _ = split_pod_name(&name);
        }

        #[test]
        fn valid_set_and_ordinal_round_trip(set in set_name(), ordinal in any::<u32>()) {
            let name = format!("{set}-{ordinal}");
            prop_assert_eq!(split_pod_name(&name).ok(), Some((set, ordinal)));
        }

        #[test]
        fn every_accepted_name_is_the_canonical_set_dash_ordinal(name in "[a-z0-9-]{1,20}") {
            if let Ok((set, ordinal)) = split_pod_name(&name) {
                prop_assert_eq!(format!("{set}-{ordinal}"), name);
            }
        }

        #[test]
        fn peer_hosts_map_back_to_their_ordinal(
            set in set_name(),
            ordinal in any::<u32>(),
            other in any::<u32>(),
            domain in prop_oneof![Just(String::new()), "([a-z0-9-]{1,10}\\.){0,4}[a-z]{1,6}"],
        ) {
            let id = Identity { pod_name: format!("{set}-{ordinal}"), set_name: set, ordinal, domain };
            prop_assert_eq!(id.ordinal_of_host(&id.peer_host(other)), Some(other));
            prop_assert_eq!(id.ordinal_of_host(&format!("{}.", id.peer_host(other))), Some(other));
            let foreign = host_name(&format!("x{}", id.set_name), other, &id.domain);
            prop_assert_eq!(id.ordinal_of_host(&foreign), None);
        }

        #[test]
        fn from_search_list_never_panics(text in any::<String>()) {
            let _ = from_search_list(&text);
        }

        #[test]
        fn from_search_list_never_panics_on_resolv_conf_like_text(
            lines in proptest::collection::vec("(search|domain|nameserver|options)?[ \t]{0,2}[a-z0-9. -]{0,30}", 0..8),
        ) {
            let _ = from_search_list(&lines.join("\n"));
        }

        #[test]
        fn kubernetes_search_list_is_read_among_other_lines(
            namespace in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
            domain in "[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){0,3}",
            before in proptest::collection::vec("(nameserver|options|#)[ a-z0-9.:]{0,20}", 0..4),
            after in proptest::collection::vec("(nameserver|options|;)[ a-z0-9.:]{0,20}", 0..4),
        ) {
            let search = format!("search {namespace}.svc.{domain} svc.{domain} {domain}");
            let text = [before.join("\n"), search, after.join("\n")].join("\n");
            prop_assert_eq!(from_search_list(&text), Some((namespace, domain)));
        }
    }
}
