//! DNS lookups with hickory-resolver: no cache between polls (positive or negative), nameserver
//! from resolv.conf or `--dns-server host:port`; A/AAAA and SRV.

use std::net::{IpAddr, SocketAddr};

use crate::error::{Error, Result};

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

/// One SRV target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    /// Target host name, absolute, without the trailing dot.
    pub target: String,
    pub port: u16,
}

/// A resolver that never caches.
pub struct Resolver {}

impl Resolver {
    /// Use the nameservers listed in resolv.conf-formatted `text`.
    pub fn from_resolv_conf(text: &str) -> Result<Self> {
        let _ = text;
        Err(Error::Dns("not implemented".into()))
    }

    /// Use one nameserver at `addr` (UDP, TCP fallback).
    pub fn with_server(addr: SocketAddr) -> Result<Self> {
        let _ = addr;
        Err(Error::Dns("not implemented".into()))
    }

    /// A and AAAA records of the absolute name `fqdn` (no search list is applied).
    pub async fn lookup_ips(&self, fqdn: &str) -> Lookup<Vec<IpAddr>> {
        let _ = fqdn;
        Lookup::Unknown("not implemented".into())
    }

    /// SRV records of the absolute name `fqdn`.
    pub async fn lookup_srv(&self, fqdn: &str) -> Lookup<Vec<SrvTarget>> {
        let _ = fqdn;
        Lookup::Unknown("not implemented".into())
    }
}

/// Parse `--dns-server`: `host:port`, `[v6]:port`, or a bare IP (port 53).
pub fn parse_dns_server(text: &str) -> Result<SocketAddr> {
    Err(Error::config(format!("--dns-server {text:?}: not implemented")))
}
