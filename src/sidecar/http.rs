//! The sidecar's HTTP endpoint for Kubernetes probes and Prometheus: `GET /healthz`, `/readyz`,
//! `/metrics`. Hand-written on a tokio `TcpListener`: three fixed paths, one request per
//! connection, `Connection: close`; a full HTTP server crate would add size and build time for
//! nothing these clients need.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use super::liveness::Board;
use super::metrics::{render, Shared};

/// A request head larger than this is refused.
const MAX_HEAD: usize = 8 * 1024;
/// One connection may take this long, reading and writing.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);

/// A response: status line, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Response { status, content_type: "text/plain; charset=utf-8", body: body.into() }
    }
}

/// Accept connections until the task is aborted; `/healthz` reads the jobs' heartbeats on `board`.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, board: Arc<Board>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let (shared, board) = (shared.clone(), board.clone());
                tokio::spawn(async move {
                    if tokio::time::timeout(CONNECTION_DEADLINE, handle(stream, &shared, &board))
                        .await
                        .is_err()
                    {
                        debug!(%peer, "http connection timed out");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                warn!("http endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(mut stream: TcpStream, shared: &Shared, board: &Board) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let response = loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break respond(&String::from_utf8_lossy(&head), shared, board);
        }
        if head.len() > MAX_HEAD {
            break (Response::text(431, "request head too large\n"), false);
        }
    };
    let (response, head_only) = response;
    let reason = match response.status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Bad Request",
    };
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    if !head_only {
        out.push_str(&response.body);
    }
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The response to a request head; true when the method is HEAD (no body is sent).
fn respond(head: &str, shared: &Shared, board: &Board) -> (Response, bool) {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return (Response::text(405, "only GET and HEAD\n"), false);
    }
    let path = target.split('?').next().unwrap_or_default();
    (route(path, shared, board, Instant::now()), head_only)
}

/// What each path answers.
pub(crate) fn route(path: &str, shared: &Shared, board: &Board, now: Instant) -> Response {
    match path {
        "/healthz" | "/livez" => {
            let stuck = board.stuck(now);
            if stuck.is_empty() {
                Response::text(200, "ok\n")
            } else {
                let jobs: Vec<String> = stuck
                    .iter()
                    .map(|(job, quiet)| {
                        format!("the {job} job has made no progress for {}s", quiet.as_secs())
                    })
                    .collect();
                Response::text(503, format!("{}\n", jobs.join("; ")))
            }
        }
        "/readyz" => {
            let m = shared.lock();
            match (&m.maintenance.cert_problem, m.local_member_up) {
                (Some(problem), _) => Response::text(503, format!("{problem}\n")),
                (None, true) => Response::text(200, "ok: the local member answered\n"),
                (None, false) => Response::text(503, "the local member did not answer in the last round\n"),
            }
        }
        "/metrics" => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: render(&shared.snapshot()),
        },
        _ => Response::text(404, "not found: try /healthz, /readyz or /metrics\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::liveness::Beat;

    fn board() -> (Board, Arc<Beat>) {
        let beat = Beat::new("membership");
        (Board { beats: vec![Beat::new("backups"), beat.clone()], limit: Duration::from_secs(60) }, beat)
    }

    #[test]
    fn routes_probes_and_metrics() {
        let shared = Shared::new();
        let (board, beat) = board();
        let route = |path: &str, shared: &Shared, now: Instant| route(path, shared, &board, now);
        let now = Instant::now();
        assert_eq!(route("/healthz", &shared, now).status, 200);
        assert_eq!(route("/readyz", &shared, now).status, 503, "no round yet");
        shared.lock().local_member_up = true;
        assert_eq!(route("/readyz", &shared, now).status, 200);
        shared.lock().maintenance.cert_problem =
            Some("client certificate /tls/tls.crt expired 5m ago".into());
        let expired = route("/readyz", &shared, now);
        assert_eq!(
            (expired.status, expired.body.as_str()),
            (503, "client certificate /tls/tls.crt expired 5m ago\n")
        );
        shared.lock().maintenance.cert_problem = None;
        let metrics = route("/metrics", &shared, now);
        assert_eq!(metrics.status, 200);
        assert!(metrics.content_type.starts_with("text/plain; version=0.0.4"));
        assert!(metrics.body.contains("etcd_bootstrap_sidecar_promotions_total 0"));
        assert_eq!(route("/", &shared, now).status, 404);
        let later = now + Duration::from_secs(61);
        assert_eq!(route("/healthz", &shared, later).status, 200, "a job between passes is alive");
        beat.begin();
        let stuck = route("/healthz", &shared, Instant::now() + Duration::from_secs(61));
        assert_eq!(stuck.status, 503, "a stuck job is unhealthy");
        assert!(stuck.body.starts_with("the membership job has made no progress for 6"), "{}", stuck.body);
    }

    #[test]
    fn methods_and_query_strings() {
        let shared = Shared::new();
        let (board, _) = board();
        let respond = |head: &str, shared: &Shared| respond(head, shared, &board);
        assert_eq!(respond("GET /healthz?verbose HTTP/1.1\r\n\r\n", &shared).0.status, 200);
        assert_eq!(respond("HEAD /healthz HTTP/1.1\r\n\r\n", &shared), (Response::text(200, "ok\n"), true));
        assert_eq!(respond("POST /healthz HTTP/1.1\r\n\r\n", &shared).0.status, 405);
        assert_eq!(respond("", &shared).0.status, 405);
    }

    #[tokio::test]
    async fn serves_over_tcp() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared::new());
        let server = tokio::spawn(serve(listener, shared, Arc::new(board().0)));
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
        let mut text = String::new();
        stream.read_to_string(&mut text).await.expect("read");
        server.abort();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(text.contains("# TYPE etcd_bootstrap_sidecar_leader gauge"), "{text}");
    }
}
