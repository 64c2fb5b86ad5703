//! `backup --to`, `backup list` and `backup verify`: the edges wired (settings, resolver, store,
//! etcd), with the printed output built by pure functions.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backup::credentials;
use crate::backup::integrity::{Vouch, Vouched};
use crate::backup::location::{SnapshotUrl, StoreUrl};
use crate::backup::manifest::{self, Manifest};
use crate::backup::segment;
use crate::backup::store::{HostResolver, Store};
use crate::backup::take::{self, SpoolFile, Taken};
use crate::config::backup_args::{EtcdAccessArgs, ListArgs, StoreOptions, TakeArgs, VerifyArgs};
use crate::config::Format;
use crate::error::{Error, Result};
use crate::etcd_args::ClientTlsFiles;
use crate::observe::cluster::{Access, Endpoint};
use crate::observe::dns::{Lookup, Resolver};

/// What the commands see of the process: its environment and resolv.conf.
pub(crate) struct Env<'a> {
    pub vars: &'a BTreeMap<String, String>,
    pub resolv_conf: Option<&'a str>,
}

/// The resolver for host names in endpoints: `--dns-server`, else resolv.conf; none when
/// neither is there (then only IP addresses work).
pub(crate) fn resolver(
    dns_server: Option<std::net::SocketAddr>,
    env: &Env<'_>,
) -> Result<Option<Arc<Resolver>>> {
    match (dns_server, env.resolv_conf) {
        (Some(addr), _) => Ok(Some(Arc::new(Resolver::with_server(addr)?))),
        (None, Some(text)) => Ok(Resolver::from_resolv_conf(text).ok().map(Arc::new)),
        (None, None) => Ok(None),
    }
}

/// Our resolver, for the S3 client's host names.
#[derive(Debug)]
struct StoreHosts(std::panic::AssertUnwindSafe<Arc<Resolver>>);

impl object_store::client::DnsResolver for StoreHosts {
    fn resolve(&self, host: &str) -> object_store::client::DnsFuture {
        let resolver = Arc::clone(&self.0);
        let host = host.trim_end_matches('.').to_string();
        Box::pin(async move {
            match resolver.lookup_ips(&format!("{host}.")).await {
                Lookup::Found(ips) => Ok(ips),
                Lookup::Missing => Err(format!("{host}: no such host").into()),
                Lookup::Unknown(why) => Err(format!("{host}: {why}").into()),
            }
        })
    }
}

/// Open the store at `url`, with S3 settings from the environment when it is `s3://`.
pub(crate) fn open_store(
    url: &StoreUrl,
    options: &StoreOptions,
    env: &Env<'_>,
    resolver: Option<&Arc<Resolver>>,
) -> Result<Store> {
    let s3 = match url {
        StoreUrl::File { .. } => None,
        StoreUrl::S3 { .. } => {
            let file_path = credentials::credentials_file_path(env.vars);
            let file_text = file_path.as_deref().and_then(|p| std::fs::read_to_string(p).ok());
            let file = file_path.as_deref().zip(file_text.as_deref());
            let settings = credentials::resolve(env.vars, options.s3_endpoint.as_deref(), file)
                .map_err(|e| Error::config(format!("{url}: {e}")))?;
            Some(settings)
        }
    };
    let hosts =
        resolver.map(|r| Arc::new(StoreHosts(std::panic::AssertUnwindSafe(Arc::clone(r)))) as HostResolver);
    Store::open(url, s3.as_ref(), hosts)
}

/// `backup --to URL`: take, check, upload, then apply `--keep`. Returns the line to print.
pub(crate) async fn take_command(args: &TakeArgs, env: &Env<'_>) -> Result<String> {
    let to = args.to.as_deref().unwrap_or_default();
    let url = StoreUrl::parse(to).map_err(|e| Error::config(format!("--to: {e}")))?;
    if args.keep == Some(0) {
        return Err(Error::config("--keep 0: keep at least 1 snapshot"));
    }
    let endpoints = parse_endpoints(&args.endpoints)?;
    let https = endpoints.first().is_some_and(|e| e.https);
    let access = etcd_access(&args.etcd, https)?;
    let resolver = resolver(args.etcd.dns_server, env)?;
    let store = open_store(&url, &args.store, env, resolver.as_ref())?;
    let scratch = scratch_dir(args.scratch_dir.as_deref());
    let taken = take_from_first(&access, &endpoints, resolver.as_deref(), &scratch).await?;
    let line = upload(&store, &taken).await?;
    if let Some(keep) = args.keep {
        apply_retention(&store, keep).await?;
    }
    Ok(line)
}

/// Upload a taken snapshot; the line that says so.
pub(crate) async fn upload(store: &Store, taken: &Taken) -> Result<String> {
    store.upload(&taken.file.path, &taken.manifest).await?;
    Ok(log_uploaded(store, taken))
}

/// Log an upload done; the snapshot's URL.
pub(crate) fn log_uploaded(store: &Store, taken: &Taken) -> String {
    let url = store.url().snapshot(&taken.manifest.name);
    tracing::info!(
        snapshot = %url,
        revision = taken.manifest.revision,
        size = taken.manifest.size,
        sha256 = %taken.manifest.sha256,
        from = %taken.from,
        "backup uploaded"
    );
    url.to_string()
}

/// Delete complete snapshots beyond the newest `keep` (manifest first, then data).
pub(crate) async fn apply_retention(store: &Store, keep: usize) -> Result<Vec<String>> {
    let listed = store.list().await?;
    let doomed = manifest::beyond_retention(&listed, keep);
    for name in &doomed {
        store.delete(name).await?;
        tracing::info!(snapshot = %store.url().snapshot(name), keep, "deleted by retention");
    }
    Ok(doomed)
}

/// `backup list URL`: the printed listing.
pub(crate) async fn list_command(args: &ListArgs, env: &Env<'_>) -> Result<String> {
    let url = StoreUrl::parse(&args.url).map_err(Error::config)?;
    let resolver = resolver(args.dns_server, env)?;
    let store = open_store(&url, &args.store, env, resolver.as_ref())?;
    let manifests = store.list().await?;
    let mut listed = Vec::with_capacity(manifests.len());
    for manifest in &manifests {
        let reach = match manifest.chain_from {
            Some(from) => Some(segment::chain(from, store.segments(&manifest.name).await?)),
            None => None,
        };
        listed.push(Listed::new(manifest, reach.as_ref()));
    }
    Ok(match args.format {
        Format::Text => listing_text(&url, &listed),
        Format::Json => listing_json(&url, &listed),
    })
}

/// A snapshot as `backup list` shows it: its manifest, and the newest point its chain of delta
/// segments reaches (the snapshot's own revision and time where it has none).
pub(crate) struct Listed<'a> {
    pub manifest: &'a Manifest,
    pub reach_revision: i64,
    pub reach_time: String,
    pub segments: usize,
    /// Why the chain stops before a segment the store holds.
    pub broken: Option<String>,
}

impl<'a> Listed<'a> {
    pub(crate) fn new(manifest: &'a Manifest, chain: Option<&segment::Chain>) -> Listed<'a> {
        let segments = chain.map_or(0, |c| c.segments.len());
        let (reach_revision, reach_time) = match chain.and_then(|c| c.segments.last()) {
            Some(last) => (last.last, crate::duration::rfc3339_ms(last.last_ms)),
            None => (manifest.revision, manifest.time.clone()),
        };
        Listed {
            manifest,
            reach_revision,
            reach_time,
            segments,
            broken: chain.and_then(|c| c.broken.clone()),
        }
    }
}

/// `backup verify SNAPSHOT-URL`: download and check; the line that says it verified.
pub(crate) async fn verify_command(args: &VerifyArgs, env: &Env<'_>) -> Result<String> {
    let url = SnapshotUrl::parse(&args.url).map_err(Error::config)?;
    let resolver = resolver(args.dns_server, env)?;
    let store = open_store(&url.store, &args.store, env, resolver.as_ref())?;
    let manifest = store.manifest(&url.name).await?;
    let spool = SpoolFile::new_in(&scratch_dir(args.scratch_dir.as_deref()), "verify");
    let checked = store.download(&manifest, &spool.path, true).await?;
    // Every digest the manifest records: its sha256, and the fast one a restore checks if any.
    let digests =
        std::iter::once(Vouch::Sha256(&manifest.sha256)).chain(manifest.xxh3_128.as_deref().map(Vouch::Xxh3));
    let vouched = |digest| Some(Vouched { size: manifest.size, digest });
    if let Some(problem) = digests.into_iter().find_map(|digest| checked.problem(vouched(digest))) {
        return Err(Error::Snapshot { snapshot: url.to_string(), problem });
    }
    Ok(format!(
        "{url}: ok (revision {}, {} bytes, sha256 {})",
        manifest.revision, manifest.size, manifest.sha256
    ))
}

/// The text listing: one line per snapshot, the URL first (as `--restore-from` takes it), and
/// the newest revision and time a restore from it reaches (through its delta segments).
pub(crate) fn listing_text(url: &StoreUrl, listed: &[Listed<'_>]) -> String {
    if listed.is_empty() {
        return format!("no complete snapshot in {url}\n");
    }
    let mut out = String::from(
        "SNAPSHOT\tREVISION\tSIZE\tTIME\tCLUSTER-ID\tETCD\tSEGMENTS\tREACHES-REVISION\tREACHES-TIME\n",
    );
    for l in listed {
        let m = l.manifest;
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            url.snapshot(&m.name),
            m.revision,
            m.size,
            m.time,
            m.cluster_id,
            m.etcd_version,
            l.segments,
            l.reach_revision,
            l.reach_time
        ));
    }
    out
}

/// The JSON listing: an array of manifests, each with its `url` and `chain` (segments, the
/// revision and time it reaches, and why it stops early if it does).
pub(crate) fn listing_json(url: &StoreUrl, listed: &[Listed<'_>]) -> String {
    let items: Vec<serde_json::Value> = listed
        .iter()
        .map(|l| {
            let mut value = serde_json::to_value(l.manifest).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.insert("url".into(), url.snapshot(&l.manifest.name).to_string().into());
                object.insert(
                    "chain".into(),
                    serde_json::json!({
                        "segments": l.segments,
                        "revision": l.reach_revision,
                        "time": l.reach_time,
                        "broken": l.broken,
                    }),
                );
            }
            value
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

fn scratch_dir(given: Option<&Path>) -> PathBuf {
    given.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir)
}

/// An etcd endpoint as given: scheme, host, port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GivenEndpoint {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

/// Parse `--endpoints` (`http(s)://host:port`, or a bare `host:port` meaning http).
pub(crate) fn parse_endpoints(given: &[String]) -> Result<Vec<GivenEndpoint>> {
    let mut out = Vec::new();
    for raw in given.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let bad = || {
            Error::config(format!(
                "--endpoints {:?}: give etcd client URLs such as http://etcd-0.etcd:2379, with no user information (etcd users go in --auth-user and --auth-password-file)",
                crate::backup::location::display_url(raw)
            ))
        };
        let (https, rest) = match raw.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            Some(_) => return Err(bad()),
            None => (false, raw),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().map_err(|_| bad())?),
            None => (rest, 2379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') || host.contains('@') || port == 0 {
            return Err(bad());
        }
        out.push(GivenEndpoint { https, host: host.to_string(), port });
    }
    if out.is_empty() {
        return Err(Error::config("--endpoints is empty: give at least one etcd client URL"));
    }
    if out.iter().any(|e| e.https != out[0].https) {
        return Err(Error::config("--endpoints mixes http and https: use one scheme"));
    }
    Ok(out)
}

fn etcd_access(args: &EtcdAccessArgs, https: bool) -> Result<Access> {
    let tls = ClientTlsFiles { ca: args.cacert.clone(), cert: args.cert.clone(), key: args.key.clone() };
    Access::load(https, &tls, args.auth_user.as_deref(), args.auth_password_file.as_deref())
}

/// Resolve a given endpoint to the URL by IP (the host name stays for TLS and messages).
pub(crate) async fn resolve_endpoint(
    given: &GivenEndpoint,
    resolver: Option<&Resolver>,
) -> Result<Endpoint, String> {
    let scheme = if given.https { "https" } else { "http" };
    let ip: IpAddr = match given.host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => {
            let Some(resolver) = resolver else {
                return Err("no nameserver to resolve it: set --dns-server or give an IP".into());
            };
            let fqdn = format!("{}.", given.host.trim_end_matches('.'));
            match resolver.lookup_ips(&fqdn).await {
                Lookup::Found(ips) => match ips.first() {
                    Some(ip) => *ip,
                    None => return Err("no address".into()),
                },
                Lookup::Missing => return Err("no such host".into()),
                Lookup::Unknown(why) => return Err(why),
            }
        }
    };
    let authority = match ip {
        IpAddr::V4(v4) => format!("{v4}:{}", given.port),
        IpAddr::V6(v6) => format!("[{v6}]:{}", given.port),
    };
    Ok(Endpoint { host: given.host.clone(), url: format!("{scheme}://{authority}") })
}

/// Take the snapshot from the first endpoint that answers. Nothing is logged while trying: a
/// failure ends in one error line naming every endpoint tried, and a success after failures
/// logs them then (the snapshot came from a later endpoint, and the user may want to know why).
async fn take_from_first(
    access: &Access,
    endpoints: &[GivenEndpoint],
    resolver: Option<&Resolver>,
    scratch: &Path,
) -> Result<Taken> {
    let mut failed: Vec<Error> = Vec::new();
    for given in endpoints {
        let endpoint = match resolve_endpoint(given, resolver).await {
            Ok(e) => e,
            Err(why) => {
                failed.push(Error::Cluster {
                    call: "resolve".into(),
                    endpoint: given.host.clone(),
                    message: why,
                });
                continue;
            }
        };
        match take::take(access, &endpoint, scratch).await {
            Ok(taken) => {
                for e in &failed {
                    tracing::warn!("no snapshot from an earlier endpoint: {e}");
                }
                return Ok(taken);
            }
            // A snapshot that fails its check is not retried elsewhere silently: say so.
            Err(e @ Error::Snapshot { .. }) => return Err(e),
            Err(e @ Error::Io { .. }) => return Err(e),
            Err(e) => failed.push(e),
        }
    }
    Err(every_endpoint_failed(failed))
}

/// One error for endpoints that all failed: the last one's, naming the others too.
fn every_endpoint_failed(mut failed: Vec<Error>) -> Error {
    let Some(last) = failed.pop() else {
        return Error::config("--endpoints is empty");
    };
    if failed.is_empty() {
        return last;
    }
    let earlier: Vec<String> = failed.iter().map(ToString::to_string).collect();
    match last {
        Error::Cluster { call, endpoint, message } => Error::Cluster {
            call,
            endpoint,
            message: format!("{message} (tried before it: {})", earlier.join("; ")),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_like_etcdctl_takes_them() {
        let given: Vec<String> =
            ["http://etcd-0.etcd:2379", "etcd-1.etcd:2379", "http://10.0.0.3", "http://[::1]:2379/"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let parsed = parse_endpoints(&given).expect("parses");
        let hosts: Vec<_> = parsed.iter().map(|e| (e.host.as_str(), e.port, e.https)).collect();
        assert_eq!(
            hosts,
            [
                ("etcd-0.etcd", 2379, false),
                ("etcd-1.etcd", 2379, false),
                ("10.0.0.3", 2379, false),
                ("::1", 2379, false)
            ]
        );
        for bad in ["ftp://x:1", "http://:2379", "http://h:port", "http://u:p@h:1", ""] {
            assert!(parse_endpoints(&[bad.to_string()]).is_err(), "{bad}");
        }
        assert!(parse_endpoints(&["http://a:1".into(), "https://b:1".into()]).is_err());
        for secret in ["http://u:hunter2@h:1", "u:hunter2@h:1", "ftp://root:hunter2@h"] {
            let err = parse_endpoints(&[secret.to_string()]).expect_err(secret).to_string();
            assert!(!err.contains("hunter2") && err.contains("***@h"), "{err}");
        }
    }

    #[test]
    fn listing_prints_urls_that_restore_from_takes() {
        let url = StoreUrl::parse("s3://bucket/etcd").expect("parses");
        assert_eq!(listing_text(&url, &[]), "no complete snapshot in s3://bucket/etcd\n");
        let m = Manifest {
            format: manifest::FORMAT,
            name: "snapshot-20261128T023000Z-r42".into(),
            cluster_id: "abc".into(),
            revision: 42,
            etcd_version: "3.5.1".into(),
            members: vec![],
            size: 100,
            sha256: "0".repeat(64),
            etcd_sha256: None,
            xxh3_128: None,
            time: "2026-11-28T02:30:00Z".into(),
            unix_time: 1_795_833_000,
            chain_from: None,
        };
        let text = listing_text(&url, &[Listed::new(&m, None)]);
        let first = text.lines().nth(1).and_then(|l| l.split('\t').next()).expect("a row");
        assert_eq!(SnapshotUrl::parse(first).expect("restore-from takes it").name, m.name);
        let chain = segment::chain(
            40,
            vec![segment::SegmentName { first: 41, last: 50, last_ms: 1_795_833_060_500 }],
        );
        let json: serde_json::Value =
            serde_json::from_str(&listing_json(&url, &[Listed::new(&m, Some(&chain))])).expect("json");
        assert_eq!(json[0]["chain"]["revision"], 50);
        assert_eq!(json[0]["chain"]["time"], "2026-11-28T02:31:00.500Z");
        assert_eq!(json[0]["chain"]["segments"], 1);
        assert!(text.lines().nth(1).is_some_and(|l| l.ends_with("\t0\t42\t2026-11-28T02:30:00Z")), "{text}");
        assert_eq!(json[0]["url"], "s3://bucket/etcd/snapshot-20261128T023000Z-r42");
        assert_eq!(json[0]["revision"], 42);
    }
}
