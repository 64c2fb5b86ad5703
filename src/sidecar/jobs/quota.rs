//! etcd's own backend quota, which the NOSPACE verdict compares the databases with. The sidecar
//! is another container: its own `--quota-backend-bytes` / `ETCD_QUOTA_BACKEND_BYTES` may be unset
//! or differ from etcd's. So under a NOSPACE alarm the quota is read from the local etcd's
//! metrics (`etcd_server_quota_backend_bytes`), at `GET /metrics` on etcd's `--listen-metrics-urls`
//! when it is plain http, else on its client port (with the client TLS files). The sidecar's own
//! setting is used only when etcd's cannot be read, with a warning.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tracing::warn;

use crate::identity::url_port;
use crate::observe::cluster::Access;
use crate::observe::peer_members::{PeerAccess, PeerTlsFiles};

use super::Sidecar;

/// The metric etcd exports its quota in.
pub(crate) const METRIC: &str = "etcd_server_quota_backend_bytes";

/// A metrics page larger than this is not read to its end.
const MAX_PAGE: usize = 16 << 20;

/// The quota to judge by: etcd's own, else `own` (the sidecar's setting) with a warning.
pub(crate) async fn in_effect(s: &Sidecar, access: &Access, own: u64) -> u64 {
    let read = tokio::time::timeout(s.ctx.probe_timeout.saturating_mul(2), read_etcd_quota(s, access)).await;
    let etcd = match read {
        Ok(Ok(quota)) => Some(quota),
        Ok(Err(why)) => {
            warn!("cannot read etcd's backend quota ({why}): judging by the sidecar's own setting");
            None
        }
        Err(_) => {
            warn!("etcd's metrics did not answer in time: judging by the sidecar's own quota setting");
            None
        }
    };
    choose(etcd, own)
}

/// etcd's quota when it said one, else the sidecar's own setting.
pub(crate) fn choose(etcd: Option<u64>, own: u64) -> u64 {
    etcd.filter(|q| *q > 0).unwrap_or(own)
}

/// The quota in etcd's metrics page, if it is there and not 0 (0: no quota known).
pub(crate) fn from_metrics(page: &str) -> Option<u64> {
    page.lines().find_map(|line| {
        let value = line.strip_prefix(METRIC)?.strip_prefix(' ')?;
        let value = value.split_whitespace().next()?.parse::<f64>().ok()?;
        (value.is_finite() && value >= 1.0).then_some(value as u64)
    })
}

async fn read_etcd_quota(s: &Sidecar, access: &Access) -> Result<u64, String> {
    let page = metrics_page(s, access).await?;
    from_metrics(&page).ok_or_else(|| format!("no {METRIC} in its metrics"))
}

/// etcd's metrics page: from a plain-http `--listen-metrics-urls`, else from the client port.
async fn metrics_page(s: &Sidecar, access: &Access) -> Result<String, String> {
    let plain_metrics = s.ctx.user.get("listen-metrics-urls").unwrap_or_default();
    let plain_port =
        plain_metrics.split(',').map(str::trim).find(|u| u.starts_with("http://")).and_then(url_port);
    if let Some(port) = plain_port {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let tcp = connect(addr).await?;
        return get(tcp, "127.0.0.1").await;
    }
    let host = s.local_endpoint.host.clone();
    let port = url_port(&s.local_endpoint.url).unwrap_or(s.ctx.member.client_port);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if access.scheme() == "http" {
        return get(connect(addr).await?, &host).await;
    }
    let files = s.ctx.user.client_tls_files();
    let tls = PeerTlsFiles { ca: files.ca, cert: files.cert, key: files.key };
    let config = match PeerAccess::load(true, &tls).map_err(|e| e.to_string())? {
        PeerAccess::Tls(config) => config,
        PeerAccess::Plain | PeerAccess::Unavailable(_) => {
            return Err("no CA to check etcd's certificate".into())
        }
    };
    let name = ServerName::try_from(host).map_err(|e| format!("not a TLS server name: {e}"))?;
    let stream = TlsConnector::from(config)
        .connect(name, connect(addr).await?)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    get(stream, "127.0.0.1").await
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))
}

/// `GET /metrics` as HTTP/1.0 (so the answer is not chunked and ends when the connection
/// closes); the body of a 200 answer.
async fn get<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, host: &str) -> Result<String, String> {
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {host}\r\nUser-Agent: etcd-bootstrap\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
    let mut page = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => page.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            // A TLS server that closes without close_notify: what came is the answer.
            Err(_) if !page.is_empty() => break,
            Err(e) => return Err(format!("read: {e}")),
        }
        if page.len() > MAX_PAGE {
            break;
        }
    }
    body_of(&String::from_utf8_lossy(&page)).map(str::to_string)
}

/// The body of an HTTP answer, if its status is 200.
fn body_of(answer: &str) -> Result<&str, String> {
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .or_else(|| answer.split_once("\n\n"))
        .ok_or("no complete HTTP answer")?;
    let status = head.lines().next().unwrap_or_default();
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(body),
        _ => Err(format!("answered {status:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::policy::db::{DbStatus, MemberDb};
    use super::super::super::policy::nospace::{self, Alarm, AlarmKind, Episode, NospaceSettings, Step};
    use super::*;

    const PAGE: &str = "# HELP etcd_server_quota_backend_bytes Current backend storage quota size in bytes.
# TYPE etcd_server_quota_backend_bytes gauge
etcd_server_quota_backend_bytes 1.6777216e+07
# HELP etcd_server_quota_backend_bytes_total not this one
etcd_server_quota_backend_bytes_total 5
";

    #[test]
    fn etcds_quota_is_read_from_its_metrics() {
        assert_eq!(from_metrics(PAGE), Some(16 * 1024 * 1024));
        assert_eq!(from_metrics("etcd_server_quota_backend_bytes 2.147483648e+09\n"), Some(2 << 30));
        assert_eq!(from_metrics("etcd_server_quota_backend_bytes 0\n"), None, "0: no quota known");
        assert_eq!(from_metrics("etcd_server_has_leader 1\n"), None);
        assert_eq!(from_metrics("etcd_server_quota_backend_bytes NaN\n"), None);
        assert_eq!(body_of("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nx 1\n"), Ok("x 1\n"));
        assert!(body_of("HTTP/1.0 401 Unauthorized\r\n\r\n").is_err());
        assert!(body_of("HTTP/1.0 200 OK\r\n").is_err(), "cut short");
    }

    // Issue 18: the disarm compared the databases with the sidecar's own quota setting (unset in
    // its container: etcd's 2 GiB default) while etcd ran with 16 MiB: the alarm was disarmed
    // with every database above 90% of etcd's quota, and raised again at the next write.
    #[test]
    fn the_nospace_verdict_uses_etcds_quota_not_the_sidecars() {
        let own = nospace::quota_from(None).expect("unset");
        let quota = choose(from_metrics(PAGE), own);
        let full = DbStatus { size: 15_900_000, in_use: 15_900_000 };
        let members: Vec<MemberDb> = (1..=3)
            .map(|id| MemberDb { id, label: format!("etcd-{id}"), is_learner: false, status: Some(full) })
            .collect();
        let alarms = [Alarm { member: 1, kind: AlarmKind::Nospace }];
        let facts = nospace::Facts {
            members: &members,
            leader: 1,
            alarms: &alarms,
            revision: 10,
            awaiting: None,
            backup_revision: None,
            snapshotting: None,
        };
        let episode =
            Episode { compacted: true, compacted_to: None, defragmented: [1, 2, 3].into(), kept: None };
        let step = nospace::next(&NospaceSettings { quota, compact: false }, &facts, &episode);
        assert!(matches!(step, Step::Keep { .. }), "15.9 MB of etcd's 16 MiB: keep the alarm: {step:?}");
        assert_eq!(choose(None, own), own, "etcd's metrics unreadable: the sidecar's own setting");
    }
}
