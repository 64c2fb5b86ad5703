//! etcd's peer port at the edge: `GET /members`, which etcd serves on its peer port from the
//! moment it starts, before it has quorum (its own `--initial-cluster-state existing` start asks
//! it), with the cluster ID in the `X-Etcd-Cluster-ID` header.
//!
//! A member list whose members have no client URLs is a static cluster that has never served;
//! one where some member has client URLs has formed at least once. Either answer comes in
//! milliseconds, where a member's client port answers nothing until it has quorum.
//!
//! Plain HTTP/1.1 over TCP, or TLS with the pod's own peer certificates (etcd's
//! `--peer-cert-file`, `--peer-key-file`, `--peer-trusted-ca-file`), the peer's host name as the
//! TLS server name. The response is parsed by [`parse_response`], a pure function.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::error::{Error, Result};
use crate::etcd_args::UserSettings;
use crate::observed::{Member, PeerList, PeerVersion, Release};

/// The largest response read: a member list of a few hundred members fits many times over.
const MAX_RESPONSE: usize = 1 << 20;

/// etcd's peer TLS files, as its own flags or `ETCD_PEER_*` variables name them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerTlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl PeerTlsFiles {
    /// From etcd's settings.
    pub fn from_etcd(user: &UserSettings) -> Self {
        PeerTlsFiles {
            ca: user.get("peer-trusted-ca-file").map(PathBuf::from),
            cert: user.get("peer-cert-file").map(PathBuf::from),
            key: user.get("peer-key-file").map(PathBuf::from),
        }
    }
}

/// How to reach peer ports.
#[derive(Clone)]
pub enum PeerAccess {
    /// Plain HTTP.
    Plain,
    /// HTTPS, verified against the peer CA, with the pod's peer certificate as client certificate.
    Tls(Arc<ClientConfig>),
    /// The peer port cannot be asked in a way whose answer we can trust (peer TLS without a CA
    /// to check the peers against, as with `--peer-auto-tls`): the client port alone is asked.
    Unavailable(String),
}

impl std::fmt::Debug for PeerAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAccess::Plain => f.write_str("Plain"),
            PeerAccess::Tls(_) => f.write_str("Tls"),
            PeerAccess::Unavailable(why) => write!(f, "Unavailable({why})"),
        }
    }
}

impl PeerAccess {
    /// Plain, or TLS from the peer TLS files when etcd's peer URLs use https.
    pub fn load(https: bool, files: &PeerTlsFiles) -> Result<Self> {
        if !https {
            return Ok(PeerAccess::Plain);
        }
        let Some(ca) = &files.ca else {
            return Ok(PeerAccess::Unavailable(
                "peer TLS without --peer-trusted-ca-file: the peers' certificates cannot be checked".into(),
            ));
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| pem_error(ca, &e.to_string()))? {
            let cert = cert.map_err(|e| pem_error(ca, &e.to_string()))?;
            roots.add(cert).map_err(|e| pem_error(ca, &e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(pem_error(ca, "holds no certificate"));
        }
        let builder = ClientConfig::builder().with_root_certificates(roots);
        let config = match (&files.cert, &files.key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| pem_error(cert, &e.to_string()))?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| pem_error(cert, &e.to_string()))?;
                let key_der =
                    PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, &e.to_string()))?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    Error::config(format!(
                        "etcd's --peer-cert-file {} and --peer-key-file {}: {e}; give a certificate and its own key",
                        cert.display(),
                        key.display()
                    ))
                })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(Error::config(
                    "etcd's --peer-cert-file and --peer-key-file go together: give both or neither",
                ))
            }
        };
        Ok(PeerAccess::Tls(Arc::new(config)))
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        match self {
            PeerAccess::Plain => "http",
            PeerAccess::Tls(_) | PeerAccess::Unavailable(_) => "https",
        }
    }
}

fn pem_error(path: &std::path::Path, problem: &str) -> Error {
    Error::config(format!(
        "etcd's peer TLS file {}: {problem}; give PEM files (certificates, and a private key)",
        path.display()
    ))
}

/// One peer's peer port: its host name (TLS server name, logs) and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEndpoint {
    pub host: String,
    pub addr: SocketAddr,
}

/// Ask every endpoint's peer port concurrently, each within `timeout`; results in the order of
/// `endpoints`.
pub async fn ask_all(
    access: &PeerAccess,
    endpoints: &[PeerEndpoint],
    timeout: Duration,
) -> Vec<(PeerEndpoint, std::result::Result<PeerList, String>)> {
    let mut asks = JoinSet::new();
    for (i, endpoint) in endpoints.iter().cloned().enumerate() {
        let access = access.clone();
        asks.spawn(async move {
            let result = ask(&access, &endpoint, timeout).await;
            (i, endpoint, result)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = asks.join_next().await {
        if let Ok(result) = joined {
            results.push(result);
        }
    }
    results.sort_by_key(|(i, _, _)| *i);
    results.into_iter().map(|(_, endpoint, result)| (endpoint, result)).collect()
}

/// Ask one peer port for its member list, within `timeout` (connect, TLS and the exchange).
pub async fn ask(
    access: &PeerAccess,
    endpoint: &PeerEndpoint,
    timeout: Duration,
) -> std::result::Result<PeerList, String> {
    let answer = get(access, endpoint, "/members", timeout).await?;
    let (cluster_id, members) = parse_response(&answer)?;
    Ok(PeerList { host: endpoint.host.clone(), cluster_id, members })
}

/// Ask one peer port for its versions (`GET /version`: `etcdserver`, `etcdcluster`), within
/// `timeout`. etcd serves it on the peer port (its members ask each other there).
pub async fn ask_version(
    access: &PeerAccess,
    endpoint: &PeerEndpoint,
    timeout: Duration,
) -> std::result::Result<PeerVersion, String> {
    let answer = get(access, endpoint, "/version", timeout).await?;
    let (server, cluster) = parse_version_response(&answer)?;
    Ok(PeerVersion { host: endpoint.host.clone(), server, cluster })
}

/// `GET path` on one peer port, within `timeout`: the whole response.
async fn get(
    access: &PeerAccess,
    endpoint: &PeerEndpoint,
    path: &str,
    timeout: Duration,
) -> std::result::Result<Vec<u8>, String> {
    let exchange = async {
        let tcp = TcpStream::connect(endpoint.addr).await.map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let bytes = match access {
            PeerAccess::Plain => exchange(tcp, &endpoint.host, endpoint.addr.port(), path).await?,
            PeerAccess::Tls(config) => {
                let name = ServerName::try_from(endpoint.host.clone())
                    .map_err(|e| format!("{}: not a TLS server name: {e}", endpoint.host))?;
                let tls = TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("tls: {e}"))?;
                exchange(tls, &endpoint.host, endpoint.addr.port(), path).await?
            }
            PeerAccess::Unavailable(why) => return Err(why.clone()),
        };
        Ok(bytes)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("GET {path}: timed out after {}", crate::duration::format(timeout))),
    }
}

/// Send the request and read the response until it is complete (or the peer closes).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    port: u16,
    path: &str,
) -> std::result::Result<Vec<u8>, String> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: etcd-bootstrap\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await;
        match read {
            Ok(0) => return Ok(buf),
            Ok(n) => {
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                if buf.len() > MAX_RESPONSE {
                    return Err(format!("response larger than {MAX_RESPONSE} bytes"));
                }
                if response_complete(&buf) {
                    return Ok(buf);
                }
            }
            // A TLS peer that closes without close_notify: what came is judged by its length.
            Err(_) if response_complete(&buf) => return Ok(buf),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// The parts of an HTTP/1.1 response head that matter here.
struct Head<'a> {
    status: u16,
    headers: Vec<(&'a str, &'a str)>,
    body: &'a [u8],
}

impl Head<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn content_length(&self) -> Option<usize> {
        self.header("content-length").and_then(|v| v.trim().parse().ok())
    }
}

fn split_head(bytes: &[u8]) -> std::result::Result<Option<Head<'_>>, String> {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else { return Ok(None) };
    let head = std::str::from_utf8(bytes.get(..end).unwrap_or_default())
        .map_err(|_| "response head is not text".to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 response: {:?}", truncate(status_line)));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status code in {:?}", truncate(status_line)))?;
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim(), v.trim())).collect();
    Ok(Some(Head { status, headers, body: bytes.get(end + 4..).unwrap_or_default() }))
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The response has all its body: by Content-Length, or the chunked terminator.
fn response_complete(bytes: &[u8]) -> bool {
    match split_head(bytes) {
        Ok(Some(head)) if head.chunked() => dechunk(head.body).is_ok(),
        Ok(Some(head)) => head.content_length().is_some_and(|n| head.body.len() >= n),
        Ok(None) => false,
        Err(_) => true,
    }
}

/// The body of a `Transfer-Encoding: chunked` message; an error while it is incomplete.
fn dechunk(mut body: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end =
            body.windows(2).position(|w| w == b"\r\n").ok_or_else(|| "chunked body cut short".to_string())?;
        let size_text = std::str::from_utf8(body.get(..line_end).unwrap_or_default()).unwrap_or_default();
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        let data_start = line_end + 2;
        if size == 0 {
            return Ok(out);
        }
        let data =
            body.get(data_start..data_start + size).ok_or_else(|| "chunked body cut short".to_string())?;
        out.extend_from_slice(data);
        body = body.get(data_start + size + 2..).ok_or_else(|| "chunked body cut short".to_string())?;
    }
}

/// A whole `GET /members` response: the cluster ID from `X-Etcd-Cluster-ID` and the members.
pub fn parse_response(bytes: &[u8]) -> std::result::Result<(u64, Vec<Member>), String> {
    let head = split_head(bytes)?.ok_or_else(|| "the response ended before its head".to_string())?;
    if head.status != 200 {
        return Err(format!("GET /members: HTTP status {}", head.status));
    }
    let cluster_id = head
        .header("x-etcd-cluster-id")
        .ok_or_else(|| "GET /members: no X-Etcd-Cluster-ID header (not an etcd peer port?)".to_string())?;
    let cluster_id = u64::from_str_radix(cluster_id, 16)
        .map_err(|_| format!("GET /members: X-Etcd-Cluster-ID {:?} is not a hex ID", truncate(cluster_id)))?;
    let body = if head.chunked() {
        dechunk(head.body)?
    } else {
        let n = head.content_length().unwrap_or(head.body.len());
        head.body.get(..n).ok_or_else(|| "GET /members: body cut short".to_string())?.to_vec()
    };
    let listed: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("GET /members: not a member list: {e}"))?;
    let members = listed
        .as_array()
        .ok_or_else(|| "GET /members: not a member list: not a JSON array".to_string())?
        .iter()
        .map(listed_member)
        .collect::<std::result::Result<_, _>>()?;
    Ok((cluster_id, members))
}

/// A whole `GET /version` response: `{"etcdserver":"3.5.30","etcdcluster":"3.5.0"}`; the
/// cluster version is None while etcd answers `not_decided`.
pub fn parse_version_response(
    bytes: &[u8],
) -> std::result::Result<(Option<Release>, Option<Release>), String> {
    let head = split_head(bytes)?.ok_or_else(|| "the response ended before its head".to_string())?;
    if head.status != 200 {
        return Err(format!("GET /version: HTTP status {}", head.status));
    }
    let body = if head.chunked() {
        dechunk(head.body)?
    } else {
        let n = head.content_length().unwrap_or(head.body.len());
        head.body.get(..n).ok_or_else(|| "GET /version: body cut short".to_string())?.to_vec()
    };
    let told: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("GET /version: not etcd's versions: {e}"))?;
    let field = |key: &str| told.get(key).and_then(serde_json::Value::as_str).and_then(Release::parse);
    let server = field("etcdserver");
    if server.is_none() {
        return Err(format!("GET /version: no etcdserver version in {}", truncate(&told.to_string())));
    }
    Ok((server, field("etcdcluster")))
}

/// One member as etcd's peer port lists it (etcd's `membership.Member` in JSON: `id`, `name`,
/// `peerURLs`, `clientURLs`, `isLearner`; empty ones left out).
fn listed_member(m: &serde_json::Value) -> std::result::Result<Member, String> {
    let id = m.get("id").and_then(serde_json::Value::as_u64);
    let id = id.ok_or_else(|| {
        format!("GET /members: a member without a numeric id: {}", truncate(&m.to_string()))
    })?;
    let text = |key: &str| m.get(key).and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
    let urls = |key: &str| -> Vec<String> {
        let list = m.get(key).and_then(serde_json::Value::as_array);
        list.map(|l| l.iter().filter_map(|u| u.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    Ok(Member {
        id,
        name: text("name"),
        peer_urls: urls("peerURLs"),
        client_urls: urls("clientURLs"),
        is_learner: m.get("isLearner").and_then(serde_json::Value::as_bool).unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // As etcd 3.5.1 answered for one member of a 3-member static cluster before its first quorum.
    const NEVER_SERVED: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Etcd-Cluster-Id: f56a6dfb0172e01b\r\nDate: Sat, 28 Nov 2026 02:34:31 GMT\r\nContent-Length: 233\r\n\r\n[{\"id\":10515127402900434781,\"peerURLs\":[\"http://127.0.0.71:2380\"],\"name\":\"a\"},{\"id\":14193899974178542376,\"peerURLs\":[\"http://127.0.0.72:2380\"],\"name\":\"b\"},{\"id\":16136227774972281382,\"peerURLs\":[\"http://127.0.0.73:2380\"],\"name\":\"c\"}]\n";

    #[test]
    fn parses_a_never_served_static_list_with_its_cluster_id() {
        assert!(response_complete(NEVER_SERVED.as_bytes()));
        let (cluster, members) = parse_response(NEVER_SERVED.as_bytes()).unwrap();
        assert_eq!(cluster, 0xf56a6dfb0172e01b);
        assert_eq!(members.len(), 3);
        assert_eq!(members[0].id, 10515127402900434781);
        assert_eq!(members[1].name, "b");
        assert_eq!(members[2].peer_urls, ["http://127.0.0.73:2380"]);
        assert!(members.iter().all(|m| m.started() && !m.served() && !m.is_learner));
        let list = PeerList { host: "a".into(), cluster_id: cluster, members };
        assert!(!list.served());
    }

    #[test]
    fn parses_a_served_list_with_a_learner_and_an_unstarted_member() {
        let body = r#"[{"id":1,"peerURLs":["http://a:2380"],"name":"a","clientURLs":["http://a:2379"]},{"id":2,"peerURLs":["http://b:2380"],"isLearner":true},{"id":3,"peerURLs":["http://c:2380"]}]"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\nX-Etcd-Cluster-ID: 00000000000000c1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (cluster, members) = parse_response(response.as_bytes()).unwrap();
        assert_eq!(cluster, 0xc1);
        assert!(members[0].served());
        assert!(members[1].is_learner && !members[1].started());
        assert!(!members[2].started());
        assert!(PeerList { host: "a".into(), cluster_id: cluster, members }.served());
    }

    #[test]
    fn reads_a_chunked_body_and_knows_when_it_is_complete() {
        let head = "HTTP/1.1 200 OK\r\nX-Etcd-Cluster-Id: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        let partial = format!("{head}5\r\n[{{\"id\r\n");
        assert!(!response_complete(partial.as_bytes()));
        let whole = format!("{partial}6;x=y\r\n\":7}}]\n\r\n0\r\n\r\n");
        assert!(response_complete(whole.as_bytes()));
        let (cluster, members) = parse_response(whole.as_bytes()).unwrap();
        assert_eq!((cluster, members.len(), members[0].id), (10, 1, 7));
    }

    #[test]
    fn incomplete_and_wrong_answers_are_errors_naming_the_problem() {
        let cut = &NEVER_SERVED[..NEVER_SERVED.len() - 20];
        assert!(!response_complete(cut.as_bytes()));
        assert!(parse_response(cut.as_bytes()).unwrap_err().contains("cut short"));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent").unwrap_err().contains("before its head"));
        let not_found = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert!(parse_response(not_found.as_bytes()).unwrap_err().contains("404"));
        let no_header = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]";
        assert!(parse_response(no_header.as_bytes()).unwrap_err().contains("X-Etcd-Cluster-ID"));
        let bad_id = "HTTP/1.1 200 OK\r\nX-Etcd-Cluster-Id: zz\r\nContent-Length: 2\r\n\r\n[]";
        assert!(parse_response(bad_id.as_bytes()).unwrap_err().contains("hex"));
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").unwrap_err().contains("HTTP/1"));
        let no_id = "HTTP/1.1 200 OK\r\nX-Etcd-Cluster-Id: 1\r\nContent-Length: 14\r\n\r\n[{\"name\":\"a\"}]";
        assert!(parse_response(no_id.as_bytes()).unwrap_err().contains("numeric id"));
        let html = "HTTP/1.1 200 OK\r\nX-Etcd-Cluster-Id: 1\r\nContent-Length: 6\r\n\r\n<html>";
        assert!(parse_response(html.as_bytes()).unwrap_err().contains("not a member list"));
    }

    // As etcd 3.5.30's peer port answered (`etcdcluster` is `not_decided` before the first
    // quorum decides it).
    #[test]
    fn reads_the_versions_a_peer_port_tells() {
        let told = |body: &str| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let decided = told(r#"{"etcdserver":"3.5.30","etcdcluster":"3.5.0"}"#);
        assert_eq!(
            parse_version_response(decided.as_bytes()).unwrap(),
            (Some(Release::new(3, 5, 30)), Some(Release::new(3, 5, 0)))
        );
        let undecided = told(r#"{"etcdserver":"3.4.23","etcdcluster":"not_decided"}"#);
        assert_eq!(
            parse_version_response(undecided.as_bytes()).unwrap(),
            (Some(Release::new(3, 4, 23)), None)
        );
        assert!(parse_version_response(told("{}").as_bytes()).unwrap_err().contains("etcdserver"));
        let not_found = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert!(parse_version_response(not_found.as_bytes()).unwrap_err().contains("404"));
    }

    #[test]
    fn peer_tls_needs_a_ca_to_trust_an_answer_and_both_cert_and_key() {
        let plain = PeerAccess::load(false, &PeerTlsFiles::default()).unwrap();
        assert!(matches!(plain, PeerAccess::Plain) && plain.scheme() == "http");
        let auto = PeerAccess::load(true, &PeerTlsFiles::default()).unwrap();
        assert!(matches!(auto, PeerAccess::Unavailable(_)), "{auto:?}");
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not pem").unwrap();
        let files = PeerTlsFiles { ca: Some(ca.clone()), cert: None, key: None };
        let err = PeerAccess::load(true, &files).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("ca.pem"), "{err}");
    }
}
