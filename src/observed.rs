//! What one round observed, as plain data with no I/O: the data dir, the cluster as its members
//! describe it, which peers exist in DNS, and how etcd refused a call. The `observe` modules
//! produce these; the pure `decide` consumes them. This is their one home.

/// One member as etcd lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    /// Empty while the member has never started (added, not yet joined).
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

impl Member {
    /// etcd's own notion: a member has a name once it started, or from the start when it is
    /// part of a static initial cluster (`--initial-cluster` names every member).
    pub fn started(&self) -> bool {
        !self.name.is_empty()
    }

    /// The member has run and published its client URLs: it may hold data.
    pub fn served(&self) -> bool {
        !self.client_urls.is_empty()
    }
}

/// The ID etcd gives a member of a static initial cluster (and to `member add` without a
/// time): the first 8 bytes, big-endian, of sha1(sorted peer URLs joined, then the cluster
/// token), as in etcd's `computeMemberID`.
pub fn static_member_id(peer_urls: &[String], token: &str) -> u64 {
    use sha1::{Digest, Sha1};
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut hasher = Sha1::new();
    hasher.update(urls.concat().as_bytes());
    hasher.update(token.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The cluster as the peers answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterView {
    /// No peer gave a member list (each entry: endpoint and why).
    NoAnswer { tried: Vec<(String, String)> },
    /// A member list, from `endpoint`.
    Answer {
        endpoint: String,
        cluster_id: u64,
        members: Vec<Member>,
        /// A linearizable read succeeded on that member just before it listed the members.
        quorum: bool,
    },
}

impl ClusterView {
    /// True when some member has served: the cluster has formed at least once.
    pub fn ever_served(&self) -> bool {
        match self {
            ClusterView::NoAnswer { .. } => false,
            ClusterView::Answer { members, .. } => members.iter().any(Member::served),
        }
    }
}

/// What one peer's peer port answered (`GET /members`): it answers before quorum, so a list
/// whose members have no client URLs is a cluster that has never served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerList {
    /// The host name of the peer that answered.
    pub host: String,
    pub cluster_id: u64,
    pub members: Vec<Member>,
}

impl PeerList {
    /// Some member has published its client URLs: the cluster has formed and served.
    pub fn served(&self) -> bool {
        self.members.iter().any(Member::served)
    }
}

/// What one peer's client port answered: its cluster ID, whether it proved quorum (a
/// linearizable read succeeded just before it listed the members), and its member list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAnswer {
    /// The host name of the peer that answered.
    pub host: String,
    pub cluster_id: u64,
    pub quorum: bool,
    pub members: Vec<Member>,
}

/// Every answer of a round beyond the client port's best one (which is the `ClusterView`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heard {
    /// Each client port's answer (the best one among them too).
    pub clients: Vec<ClientAnswer>,
    /// Each peer port's member list.
    pub peer_lists: Vec<PeerList>,
}

impl Heard {
    /// Every member list heard, as (who answered, cluster ID, quorum, members): the client
    /// ports' and the peer ports' (which cannot tell quorum).
    pub fn lists(&self) -> impl Iterator<Item = (&str, u64, bool, &[Member])> {
        let clients =
            self.clients.iter().map(|c| (c.host.as_str(), c.cluster_id, c.quorum, c.members.as_slice()));
        let peers =
            self.peer_lists.iter().map(|l| (l.host.as_str(), l.cluster_id, false, l.members.as_slice()));
        clients.chain(peers)
    }
}

/// The pods of the StatefulSet as DNS shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerDns {
    /// Host names of the initial set's pods (ordinal < initial size) that do not resolve yet.
    pub unresolved_initial: Vec<String>,
    /// Host names of pods with an ordinal >= the initial size that exist.
    pub beyond_initial: Vec<String>,
}

/// IDs read from the first WAL file's metadata record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalMeta {
    pub member_id: u64,
    pub cluster_id: u64,
}

/// What the data directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDirState {
    /// Missing, empty, or holding only `lost+found` and our own archives (or a `member/` in which
    /// etcd never wrote its WAL).
    Empty,
    /// An etcd member's data.
    Member(WalMeta),
    /// Something we do not understand: never start etcd on it, never delete it. `entries` are the
    /// names we do not understand, sorted (`member`, `lost+found` and archives are not listed,
    /// except a `member` that is not a directory).
    Unknown { entries: Vec<String> },
}

/// Why etcd refused a call (or could not be asked), as one closed set. [`refusal_of`] maps
/// etcd's answers to it, by gRPC code and etcd's exact message, once; what each refusal means depends on the call, which the pure
/// policies in `decide::refusals` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// "member not found": gone (remove), an ID clash (add), the learner is gone (promote), this
    /// member was removed (update).
    MemberNotFound,
    /// "Peer URLs already exists": some member already has the peer URL given.
    PeerUrlExists,
    /// "can only promote a learner member which is in sync with leader".
    LearnerNotInSync,
    /// "can only promote a learner member": the member is a voter already.
    NotALearner,
    /// "too many learner members in cluster".
    TooManyLearners,
    /// "unhealthy cluster", or not enough started members for the change.
    Unhealthy,
    /// No leader, a leader change, or a follower that cannot forward.
    NoLeader,
    /// Timed out, unavailable, connection lost, request cancelled.
    Unreachable,
    /// "required revision has been compacted": a compaction at or below the compacted revision.
    Compacted,
    /// Anything else (permission denied, a malformed request): retrying will not help.
    Other,
}

/// Declares [`GrpcCode`] and its numbering from one list, in gRPC's order (0, 1, 2, ...).
macro_rules! grpc_codes {
    ($($code:ident),+ $(,)?) => {
        /// A gRPC status code, by gRPC's own numbers (the same in every language and client). The
        /// edge reads the number from its client's status, so nothing pure names the client crate.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum GrpcCode {
            $($code),+
        }

        impl GrpcCode {
            /// Every code, at the index of its number.
            const BY_NUMBER: &'static [GrpcCode] = &[$(GrpcCode::$code),+];
        }
    };
}

grpc_codes!(
    Ok,
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
);

impl GrpcCode {
    /// The code numbered `number`; a number gRPC does not define is `Unknown`, as gRPC says.
    pub fn from_number(number: i32) -> GrpcCode {
        usize::try_from(number)
            .ok()
            .and_then(|i| Self::BY_NUMBER.get(i).copied())
            .unwrap_or(GrpcCode::Unknown)
    }
}

/// etcd's refusals that mean something to a call, each as etcd sends it: the gRPC code and the
/// exact message (etcd's `api/v3rpc/rpctypes`, the same in 3.4 and 3.5).
const ETCD_REFUSALS: [(GrpcCode, &str, Refusal); 11] = [
    (GrpcCode::NotFound, "etcdserver: member not found", Refusal::MemberNotFound),
    (GrpcCode::FailedPrecondition, "etcdserver: Peer URLs already exists", Refusal::PeerUrlExists),
    (
        GrpcCode::FailedPrecondition,
        "etcdserver: can only promote a learner member which is in sync with leader",
        Refusal::LearnerNotInSync,
    ),
    (GrpcCode::FailedPrecondition, "etcdserver: can only promote a learner member", Refusal::NotALearner),
    (
        GrpcCode::FailedPrecondition,
        "etcdserver: too many learner members in cluster",
        Refusal::TooManyLearners,
    ),
    (GrpcCode::Unavailable, "etcdserver: unhealthy cluster", Refusal::Unhealthy),
    (
        GrpcCode::FailedPrecondition,
        "etcdserver: re-configuration failed due to not enough started members",
        Refusal::Unhealthy,
    ),
    (GrpcCode::Unavailable, "etcdserver: no leader", Refusal::NoLeader),
    (GrpcCode::Unavailable, "etcdserver: leader changed", Refusal::NoLeader),
    (GrpcCode::FailedPrecondition, "etcdserver: not leader", Refusal::NoLeader),
    (GrpcCode::OutOfRange, "etcdserver: mvcc: required revision has been compacted", Refusal::Compacted),
];

/// The refusal an answer of etcd is, from its gRPC status: the code first, then etcd's exact
/// message. An answer etcd does not send with that code and message is read by its code alone:
/// unavailable, past its deadline or cancelled is [`Refusal::Unreachable`] (etcd's own "request
/// timed out" and "server stopped" among them), anything else [`Refusal::Other`].
pub fn refusal_of(code: GrpcCode, message: &str) -> Refusal {
    if let Some((_, _, refusal)) = ETCD_REFUSALS.iter().find(|(c, m, _)| *c == code && *m == message) {
        return *refusal;
    }
    match code {
        GrpcCode::Unavailable | GrpcCode::DeadlineExceeded | GrpcCode::Cancelled => Refusal::Unreachable,
        _ => Refusal::Other,
    }
}

/// A refused call: the typed reason, and etcd's own words for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub refusal: Refusal,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_by_number() {
        assert_eq!(GrpcCode::from_number(0), GrpcCode::Ok);
        assert_eq!(GrpcCode::from_number(5), GrpcCode::NotFound);
        assert_eq!(GrpcCode::from_number(9), GrpcCode::FailedPrecondition);
        assert_eq!(GrpcCode::from_number(11), GrpcCode::OutOfRange);
        assert_eq!(GrpcCode::from_number(14), GrpcCode::Unavailable);
        assert_eq!(GrpcCode::from_number(16), GrpcCode::Unauthenticated);
        assert_eq!(GrpcCode::from_number(17), GrpcCode::Unknown);
        assert_eq!(GrpcCode::from_number(-1), GrpcCode::Unknown);
    }

    #[test]
    fn etcds_answers_map_to_refusals_by_code_then_exact_message() {
        use GrpcCode::*;
        let table = [
            // etcd's refusals, as etcd sends them.
            (NotFound, "etcdserver: member not found", Refusal::MemberNotFound),
            (FailedPrecondition, "etcdserver: Peer URLs already exists", Refusal::PeerUrlExists),
            (
                FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader",
                Refusal::LearnerNotInSync,
            ),
            (FailedPrecondition, "etcdserver: can only promote a learner member", Refusal::NotALearner),
            (FailedPrecondition, "etcdserver: too many learner members in cluster", Refusal::TooManyLearners),
            (Unavailable, "etcdserver: unhealthy cluster", Refusal::Unhealthy),
            (
                FailedPrecondition,
                "etcdserver: re-configuration failed due to not enough started members",
                Refusal::Unhealthy,
            ),
            (Unavailable, "etcdserver: no leader", Refusal::NoLeader),
            (Unavailable, "etcdserver: leader changed", Refusal::NoLeader),
            (FailedPrecondition, "etcdserver: not leader", Refusal::NoLeader),
            (OutOfRange, "etcdserver: mvcc: required revision has been compacted", Refusal::Compacted),
            // By the code alone: etcd's timeouts and stops, a connection that failed.
            (Unavailable, "etcdserver: request timed out", Refusal::Unreachable),
            (Unavailable, "etcdserver: server stopped", Refusal::Unreachable),
            (Unavailable, "tcp connect error: Connection refused (os error 111)", Refusal::Unreachable),
            (DeadlineExceeded, "context deadline exceeded", Refusal::Unreachable),
            (Cancelled, "etcdserver: request cancelled", Refusal::Unreachable),
            (OutOfRange, "etcdserver: mvcc: required revision is a future revision", Refusal::Other),
            (PermissionDenied, "etcdserver: permission denied", Refusal::Other),
            (FailedPrecondition, "etcdserver: member ID already exist", Refusal::Other),
            (Unimplemented, "unknown method Alarm", Refusal::Other),
            // The code comes first: etcd's words under another code are not that refusal ...
            (Unknown, "etcdserver: member not found", Refusal::Other),
            (Unavailable, "etcdserver: member not found", Refusal::Unreachable),
            // ... and the message is etcd's whole message, never a part of a longer text.
            (NotFound, "member remove: NotFound: etcdserver: member not found", Refusal::Other),
            (FailedPrecondition, "etcdserver: can only promote a learner member ", Refusal::Other),
            (FailedPrecondition, "ETCDSERVER: PEER URLS ALREADY EXISTS", Refusal::Other),
            (Unavailable, "etcdserver: unhealthy cluster, try again", Refusal::Unreachable),
        ];
        for (code, message, want) in table {
            assert_eq!(refusal_of(code, message), want, "{code:?} {message:?}");
        }
    }

    #[test]
    fn static_member_id_hashes_sorted_urls_and_token() {
        // Order of the URLs does not matter; the token does.
        let a = static_member_id(&["http://b:2380".into(), "http://a:2380".into()], "t");
        let b = static_member_id(&["http://a:2380".into(), "http://b:2380".into()], "t");
        assert_eq!(a, b);
        assert_ne!(a, static_member_id(&["http://a:2380".into(), "http://b:2380".into()], "u"));
        // The first 8 bytes, big-endian, of sha1("http://a:2380t") = 1a8eed7e5573a66d2ff7...
        let one = static_member_id(&["http://a:2380".into()], "t");
        assert_eq!(one, 0x1a8e_ed7e_5573_a66d);
        // etcd's own well-known ID of a default single member (peer URL http://localhost:2380,
        // token etcd-cluster), as `etcdctl member list` prints it: 8e9e05c52164694d.
        let default = static_member_id(&["http://localhost:2380".into()], "etcd-cluster");
        assert_eq!(format!("{default:x}"), "8e9e05c52164694d");
    }
}

/// An etcd release, `major.minor.patch` (a pre-release or build suffix is dropped). Ordered as
/// releases are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Release {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Release { major, minor, patch }
    }

    /// `3.5.30`, `v3.5.30`, `3.6.0-rc.1` (read as 3.6.0), `3.5` (read as 3.5.0); None otherwise.
    pub fn parse(text: &str) -> Option<Release> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let numbers = text.split(['-', '+']).next()?;
        let mut parts = numbers.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Release { major, minor, patch })
    }

    /// The release from `etcd --version`'s output (its line `etcd Version: 3.5.30`).
    pub fn from_version_output(output: &str) -> Option<Release> {
        output.lines().find_map(|l| l.trim().strip_prefix("etcd Version:")).and_then(Release::parse)
    }

    /// `(major, minor)`: what the cluster version is made of.
    pub fn minor_line(&self) -> (u32, u32) {
        (self.major, self.minor)
    }

    /// `3.5`.
    pub fn minor_line_text(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// This pod's etcd as `etcd --version` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalEtcd {
    Known(Release),
    /// Not found, not runnable, or an output without a version: why.
    Unknown(String),
}

/// What one peer told about versions: its own (`etcdserver` on the peer port, `version` in its
/// status) and the cluster's (`etcdcluster`; None while etcd has not decided it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerVersion {
    pub host: String,
    pub server: Option<Release>,
    pub cluster: Option<Release>,
}

/// Every version a round saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    pub local: LocalEtcd,
    pub peers: Vec<PeerVersion>,
}

impl Default for Versions {
    fn default() -> Self {
        Versions { local: LocalEtcd::Unknown("not looked at".into()), peers: Vec::new() }
    }
}

#[cfg(test)]
mod release_tests {
    use super::*;

    // The forms etcd prints: `etcd --version` (3.4.23, 3.5.1, 3.5.30 checked here), GET /version
    // (`{"etcdserver":"3.5.30","etcdcluster":"3.5.0"}`), and tags with a `v`.
    #[test]
    fn reads_the_forms_etcd_prints_and_orders_releases() {
        let rows: [(&str, Option<Release>); 8] = [
            ("3.5.30", Some(Release::new(3, 5, 30))),
            ("v3.6.14", Some(Release::new(3, 6, 14))),
            ("3.5.0", Some(Release::new(3, 5, 0))),
            ("3.6.0-rc.1", Some(Release::new(3, 6, 0))),
            ("3.5", Some(Release::new(3, 5, 0))),
            ("not_decided", None),
            ("3.5.x", None),
            ("3.5.1.2", None),
        ];
        for (text, want) in rows {
            assert_eq!(Release::parse(text), want, "{text}");
        }
        let out = "etcd Version: 3.5.30\nGit SHA: Not provided (use ./build instead of go build)\nGo Version: go1.26.4\n";
        assert_eq!(Release::from_version_output(out), Some(Release::new(3, 5, 30)));
        assert_eq!(Release::from_version_output("usage: etcd"), None);
        assert!(
            Release::new(3, 4, 23) < Release::new(3, 5, 1) && Release::new(3, 5, 9) < Release::new(3, 5, 30)
        );
        assert_eq!(Release::new(3, 5, 30).to_string(), "3.5.30");
    }
}
