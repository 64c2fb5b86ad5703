//! What was observed, as plain data: the cluster as its members describe it, and which peers exist
//! in DNS. Produced by `cluster` and `peers`, consumed by the pure `decide`.

/// One member as etcd lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub id: u64,
    /// Empty while the member has never started (added, not yet joined).
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

impl Member {
    /// A member that has started at least once has a name.
    pub fn started(&self) -> bool {
        !self.name.is_empty()
    }
}

/// The cluster as the peers answered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
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
    /// True when some member has started: the cluster has formed at least once.
    pub fn ever_started(&self) -> bool {
        match self {
            ClusterView::NoAnswer { .. } => false,
            ClusterView::Answer { members, .. } => members.iter().any(Member::started),
        }
    }
}

/// The pods of the StatefulSet as DNS shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PeerDns {
    /// Host names of the initial set's pods (ordinal < initial size) that do not resolve yet.
    pub unresolved_initial: Vec<String>,
    /// Host names of pods with an ordinal >= the initial size that exist.
    pub beyond_initial: Vec<String>,
}
