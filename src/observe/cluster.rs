//! The etcd API at the edge: ask peers for the member list and quorum, and the connection to one
//! member that `act::etcd_calls` makes the calls that change the cluster through.
//!
//! Peers are reached by IP (resolved by our own DNS, as a static binary cannot use libc's
//! resolver), with the peer's host name as the TLS server name.

use std::path::Path;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::etcd_args::ClientTlsFiles;
use crate::observed::{refusal_of, CallError, ClusterView, GrpcCode, Member, Refusal};

pub mod maintenance;
pub mod watch;

/// Key read (count only) to prove quorum with a linearizable read.
const QUORUM_PROBE_KEY: &str = "/etcd-bootstrap/quorum-probe";

/// Deadline of one membership call: such calls can take seconds to apply after another one.
pub const MEMBERSHIP_CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// How to reach the etcd API: scheme, TLS material and credentials.
#[derive(Clone, Default)]
pub struct Access {
    https: bool,
    ca_pem: Option<Vec<u8>>,
    identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    auth: Option<(String, String)>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password or keys.
        f.debug_struct("Access")
            .field("https", &self.https)
            .field("ca", &self.ca_pem.is_some())
            .field("client_cert", &self.identity_pem.is_some())
            .field("user", &self.auth.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl Access {
    /// Load TLS files and the password file. `https` follows etcd's client TLS settings.
    pub fn load(
        https: bool,
        tls: &ClientTlsFiles,
        user: Option<&str>,
        password_file: Option<&Path>,
    ) -> Result<Self> {
        let ca_pem = tls.ca.as_deref().map(read_file).transpose()?;
        let identity_pem = match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => Some((read_file(cert)?, read_file(key)?)),
            (None, None) => None,
            _ => {
                return Err(Error::config(
                    "etcd's --cert-file and --key-file go together: give both or neither",
                ))
            }
        };
        let auth = match (user, password_file) {
            (Some(user), Some(file)) => Some((user.to_string(), read_password(file)?)),
            _ => None,
        };
        Ok(Access { https, ca_pem, identity_pem, auth })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    fn options(&self, host: &str, timeout: Duration) -> ConnectOptions {
        let mut options = ConnectOptions::new().with_timeout(timeout).with_connect_timeout(timeout);
        if self.https {
            let mut tls = TlsOptions::new().domain_name(host.to_string());
            if let Some(ca) = &self.ca_pem {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &self.identity_pem {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            options = options.with_tls(tls);
        }
        if let Some((user, password)) = &self.auth {
            options = options.with_user(user.clone(), password.clone());
        }
        options
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

fn read_password(path: &Path) -> Result<String> {
    let bytes = read_file(path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::config(format!("--auth-password-file {}: not UTF-8 text", path.display())))?;
    let password = text.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(Error::config(format!("--auth-password-file {}: the file is empty", path.display())));
    }
    Ok(password)
}

/// One peer's client endpoint: its host name (for TLS and logs) and the URL by IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub url: String,
}

/// A connection to one member, for status and membership calls (in `run`, one that answered with
/// quorum; in the sidecar, the local member).
pub struct MemberClient {
    client: Client,
    endpoint: Endpoint,
}

/// What the client ports answered, asked all at once: the view from the best answer, and a
/// connection to a member with quorum. (Not to be confused with the `observed` module: the plain
/// data every observation is made of.)
pub struct BestClientAnswer {
    pub view: ClusterView,
    pub quorum_member: Option<MemberClient>,
}

/// One member's answer on its client port.
pub struct Answer {
    pub endpoint: Endpoint,
    client: Client,
    pub cluster_id: u64,
    pub members: Vec<Member>,
    pub quorum: bool,
    /// The answering member's own etcd version (its status).
    pub version: Option<crate::observed::Release>,
}

/// Ask all `endpoints` concurrently; prefer an answer with quorum.
pub async fn observe(access: &Access, endpoints: &[Endpoint], timeout: Duration) -> BestClientAnswer {
    let mut probes = JoinSet::new();
    for endpoint in endpoints.iter().cloned() {
        let access = access.clone();
        probes.spawn(async move {
            let result = probe(&access, &endpoint, timeout).await;
            (endpoint, result)
        });
    }
    let mut tried = Vec::new();
    let mut answers = Vec::new();
    while let Some(joined) = probes.join_next().await {
        let Ok((endpoint, result)) = joined else { continue };
        match result {
            Ok(answer) => answers.push(answer),
            Err(why) => tried.push((tried_entry(&endpoint), why)),
        }
    }
    best_of(answers, tried)
}

/// How an endpoint that gave no answer is named in `ClusterView::NoAnswer`.
pub fn tried_entry(endpoint: &Endpoint) -> String {
    format!("{} ({})", endpoint.host, endpoint.url)
}

/// The view from the answers that came (the first with quorum, else the first) and the
/// endpoints that gave none.
pub fn best_of(answers: Vec<Answer>, mut tried: Vec<(String, String)>) -> BestClientAnswer {
    let mut best: Option<Answer> = None;
    for answer in answers {
        if best.as_ref().is_none_or(|b| !b.quorum && answer.quorum) {
            best = Some(answer);
        }
    }
    tried.sort();
    match best {
        None => BestClientAnswer { view: ClusterView::NoAnswer { tried }, quorum_member: None },
        Some(a) => BestClientAnswer {
            view: ClusterView::Answer {
                endpoint: a.endpoint.host.clone(),
                cluster_id: a.cluster_id,
                members: a.members,
                quorum: a.quorum,
            },
            quorum_member: a.quorum.then_some(MemberClient { client: a.client, endpoint: a.endpoint }),
        },
    }
}

/// A client of one member at `endpoint` (for calls this module does not wrap: snapshots).
pub async fn client_of(access: &Access, endpoint: &Endpoint, timeout: Duration) -> Result<Client, String> {
    connect(access, endpoint, timeout).await
}

async fn connect(access: &Access, endpoint: &Endpoint, timeout: Duration) -> Result<Client, String> {
    let connecting = Client::connect([endpoint.url.as_str()], Some(access.options(&endpoint.host, timeout)));
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(short(&e)),
        Err(_) => Err("connect timed out".into()),
    }
}

/// Status first (a never-started member answers nothing); a learner is skipped (it refuses the
/// member list); then a linearizable read, then the member list, so the list is at least as new
/// as the read's index.
pub async fn probe(access: &Access, endpoint: &Endpoint, timeout: Duration) -> Result<Answer, String> {
    let mut client = connect(access, endpoint, timeout).await?;
    let status = within(timeout, "status", client.status()).await?;
    if status.is_learner() {
        return Err("is a learner (refuses the member list)".into());
    }
    let quorum = status.leader() != 0
        && within(
            timeout,
            "linearizable read",
            client.get(QUORUM_PROBE_KEY, Some(GetOptions::new().with_count_only())),
        )
        .await
        .is_ok();
    let list = within(timeout, "member list", client.member_list()).await?;
    let cluster_id = list.header().map(|h| h.cluster_id()).unwrap_or_default();
    let members = list.members().iter().map(to_member).collect();
    let version = crate::observed::Release::parse(status.version());
    Ok(Answer { endpoint: endpoint.clone(), client, cluster_id, members, quorum, version })
}

async fn within<T>(
    timeout: Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    timed_call(timeout, what, call).await.map_err(|e| e.message)
}

/// One etcd call within `timeout`; a failure as the refusal it is, with its words for the log.
pub async fn timed_call<T>(
    timeout: Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(CallError { refusal: refusal(&e), message: format!("{what}: {}", short(&e)) }),
        Err(_) => Err(CallError {
            refusal: Refusal::Unreachable,
            message: format!("{what}: timed out after {}", crate::duration::format(timeout)),
        }),
    }
}

/// An etcd-client error as one line, without the gRPC noise.
pub fn short(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(status) => format!("{:?}: {}", status.code(), status.message()),
        other => other.to_string().replace('\n', " "),
    }
}

/// A member as etcd-client lists it, as plain data.
pub fn to_member(m: &etcd_client::Member) -> Member {
    Member {
        id: m.id(),
        name: m.name().to_string(),
        peer_urls: m.peer_urls().to_vec(),
        client_urls: m.client_urls().to_vec(),
        is_learner: m.is_learner(),
    }
}

/// The refusal an etcd-client error is. An answer of etcd is read from its gRPC status, the code
/// and then etcd's exact message (`observed::refusal_of`); a status the client made itself from a
/// broken connection (it carries the transport error as its source), or a connection that could
/// not be made, is unreachable; anything else (a bad argument to the client) is no refusal etcd
/// made.
pub fn refusal(e: &etcd_client::Error) -> Refusal {
    match e {
        etcd_client::Error::GRpcStatus(status) if std::error::Error::source(status).is_some() => {
            Refusal::Unreachable
        }
        etcd_client::Error::GRpcStatus(status) => {
            refusal_of(GrpcCode::from_number(status.code() as i32), status.message())
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => Refusal::Unreachable,
        _ => Refusal::Other,
    }
}

/// What one member says about itself (`status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfReport {
    /// The answering member's ID (from the response header).
    pub member_id: u64,
    /// The leader it knows of; 0 when it knows none.
    pub leader: u64,
    pub is_learner: bool,
}

impl SelfReport {
    /// The answering member is the leader.
    pub fn is_leader(&self) -> bool {
        self.member_id != 0 && self.member_id == self.leader
    }
}

/// Ask the member at `endpoint` who it is, within `timeout` (connect and call).
pub async fn status_at(
    access: &Access,
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<SelfReport, String> {
    let mut member = MemberClient::connect(access, endpoint, timeout).await?;
    member.status(timeout).await
}

impl MemberClient {
    /// Connect to one given member, whatever its role (the sidecar's own local member). Lazy
    /// unless auth is used: errors may come at the first call.
    pub async fn connect(
        access: &Access,
        endpoint: &Endpoint,
        timeout: Duration,
    ) -> Result<MemberClient, String> {
        let client = connect(access, endpoint, timeout).await?;
        Ok(MemberClient { client, endpoint: endpoint.clone() })
    }

    /// `status` of the member the calls go to.
    pub async fn status(&mut self, timeout: Duration) -> Result<SelfReport, String> {
        let status = within(timeout, "status", self.client.status()).await?;
        Ok(SelfReport {
            member_id: status.header().map(|h| h.member_id()).unwrap_or_default(),
            leader: status.leader(),
            is_learner: status.is_learner(),
        })
    }

    /// Host name of the member the calls go to.
    pub fn host(&self) -> &str {
        &self.endpoint.host
    }

    /// The client, for the calls that change the cluster (`act::etcd_calls`) and the snapshot.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Connect to one given member for a call that may take `call_timeout` (a defragmentation),
    /// the connection itself within `connect_timeout`.
    pub async fn connect_for_long_call(
        access: &Access,
        endpoint: &Endpoint,
        call_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<MemberClient, CallError> {
        let options = access.options(&endpoint.host, call_timeout).with_connect_timeout(connect_timeout);
        let connecting = Client::connect([endpoint.url.as_str()], Some(options));
        match tokio::time::timeout(connect_timeout, connecting).await {
            Ok(Ok(client)) => Ok(MemberClient { client, endpoint: endpoint.clone() }),
            Ok(Err(e)) => {
                let message = format!("connect {}: {}", endpoint.url, short(&e));
                Err(CallError { refusal: refusal(&e), message })
            }
            Err(_) => {
                let message = format!("connect {}: timed out", endpoint.url);
                Err(CallError { refusal: Refusal::Unreachable, message })
            }
        }
    }

    /// The member list (serializable, from this member).
    pub async fn members(&mut self) -> Result<Vec<Member>, CallError> {
        let list = call("member list", self.client.member_list()).await?;
        Ok(list.members().iter().map(to_member).collect())
    }
}

/// One call within [`MEMBERSHIP_CALL_TIMEOUT`].
pub async fn call<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, CallError> {
    timed_call(MEMBERSHIP_CALL_TIMEOUT, what, f).await
}

/// Wrap a call error with its context for the final error line.
pub fn cluster_error(call: &str, endpoint: &str, e: &CallError) -> Error {
    Error::Cluster { call: call.into(), endpoint: endpoint.into(), message: e.message.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcds_status_is_read_by_code_then_exact_message() {
        use tonic::{Code, Status};
        let status = |code, message: &str| etcd_client::Error::GRpcStatus(Status::new(code, message));
        let table = [
            (status(Code::NotFound, "etcdserver: member not found"), Refusal::MemberNotFound),
            (
                status(Code::FailedPrecondition, "etcdserver: Peer URLs already exists"),
                Refusal::PeerUrlExists,
            ),
            (status(Code::Unavailable, "etcdserver: unhealthy cluster"), Refusal::Unhealthy),
            (
                status(Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted"),
                Refusal::Compacted,
            ),
            (status(Code::Unavailable, "etcdserver: request timed out"), Refusal::Unreachable),
            (status(Code::PermissionDenied, "etcdserver: permission denied"), Refusal::Other),
            // etcd's words under another code, or inside a longer text, are not that refusal.
            (status(Code::Unknown, "etcdserver: member not found"), Refusal::Other),
            (status(Code::NotFound, "member remove: etcdserver: member not found"), Refusal::Other),
            // The client's own status for a broken connection carries the transport error.
            (
                etcd_client::Error::GRpcStatus(Status::from_error(Box::new(std::io::Error::other(
                    "connection reset",
                )))),
                Refusal::Unreachable,
            ),
            (etcd_client::Error::IoError(std::io::Error::other("refused")), Refusal::Unreachable),
            (etcd_client::Error::InvalidArgs("no endpoint".into()), Refusal::Other),
        ];
        for (error, want) in table {
            assert_eq!(refusal(&error), want, "{error:?}");
        }
    }

    #[tokio::test]
    async fn a_call_past_its_deadline_is_unreachable() {
        let never = std::future::pending::<Result<(), etcd_client::Error>>();
        let e = timed_call(Duration::from_millis(10), "member list", never).await.unwrap_err();
        assert_eq!(e.refusal, Refusal::Unreachable);
        assert!(e.message.starts_with("member list: timed out after"), "{}", e.message);
    }

    #[test]
    fn access_debug_never_shows_the_password() {
        let access = Access { auth: Some(("root".into(), "s3cret".into())), ..Access::default() };
        let shown = format!("{access:?}");
        assert!(shown.contains("root") && !shown.contains("s3cret"), "{shown}");
    }
}
