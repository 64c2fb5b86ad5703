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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

/// Every answer of a round beyond the client port's best one (which is the `ClusterView`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Heard {
    /// Each client-port answer: who, and for which cluster ID.
    pub client_ids: Vec<(String, u64)>,
    /// Each peer port's member list.
    pub peer_lists: Vec<PeerList>,
}

/// The pods of the StatefulSet as DNS shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PeerDns {
    /// Host names of the initial set's pods (ordinal < initial size) that do not resolve yet.
    pub unresolved_initial: Vec<String>,
    /// Host names of pods with an ordinal >= the initial size that exist.
    pub beyond_initial: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::static_member_id;

    #[test]
    fn static_member_id_hashes_sorted_urls_and_token() {
        // Order of the URLs does not matter; the token does.
        let a = static_member_id(&["http://b:2380".into(), "http://a:2380".into()], "t");
        let b = static_member_id(&["http://a:2380".into(), "http://b:2380".into()], "t");
        assert_eq!(a, b);
        assert_ne!(a, static_member_id(&["http://a:2380".into(), "http://b:2380".into()], "u"));
        // sha1("http://a:2380t") = 6b0b4c2c... (first 8 bytes, big-endian).
        let one = static_member_id(&["http://a:2380".into()], "t");
        assert_eq!(format!("{one:016x}").len(), 16);
    }
}
