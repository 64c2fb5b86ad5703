//! What continuous backups read from the etcd API: a watch of the whole keyspace from a given
//! revision (every put with its value and lease, every delete), progress requests so the leader's
//! revision is known while nothing changes, the TTL a lease was granted, and the cluster ID. Reads
//! only: the watch changes nothing.

use std::time::Duration;

use etcd_client::{EventType, WatchOptions, WatchStream};

use super::{short, within, Access, Endpoint, MemberClient};

/// A connection to one member may carry a watch for as long as the leader's sidecar records: no
/// deadline for the call (a stream); the connection itself has one.
const WATCH_CALL_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// One change, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The revision of the change (`mod_revision`; a delete's own revision).
    pub revision: i64,
    pub key: Vec<u8>,
    /// The value written; None for a delete.
    pub value: Option<Vec<u8>>,
    /// The put's lease (0: none).
    pub lease: i64,
}

/// One message of a keyspace watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// Changes (possibly none: a progress notice), and the leader's revision when it was sent.
    Changes { header_revision: i64, changes: Vec<KeyChange> },
    /// The start revision is compacted: etcd's oldest revision now is this one.
    Compacted(i64),
    /// etcd ended the watch for another reason.
    Canceled(String),
}

/// A watch of every key of one member.
pub struct KeyspaceWatch {
    stream: WatchStream,
}

impl KeyspaceWatch {
    /// Watch every key at `endpoint` from revision `start` on, with progress notices. The
    /// connection is made within `connect_timeout`.
    pub async fn start(
        access: &Access,
        endpoint: &Endpoint,
        connect_timeout: Duration,
        start: i64,
    ) -> Result<KeyspaceWatch, String> {
        let mut member =
            MemberClient::connect_for_long_call(access, endpoint, WATCH_CALL_TIMEOUT, connect_timeout)
                .await
                .map_err(|e| e.message)?;
        let options = WatchOptions::new().with_all_keys().with_start_revision(start).with_progress_notify();
        let stream = within(connect_timeout, "watch", member.client().watch("", Some(options))).await?;
        Ok(KeyspaceWatch { stream })
    }

    /// The next message; None when the stream ended.
    pub async fn next(&mut self) -> Result<Option<Watched>, String> {
        let Some(response) = self.stream.message().await.map_err(|e| format!("watch: {}", short(&e)))? else {
            return Ok(None);
        };
        if response.compact_revision() > 0 {
            return Ok(Some(Watched::Compacted(response.compact_revision())));
        }
        if response.canceled() {
            return Ok(Some(Watched::Canceled(format!(
                "etcd canceled the watch: {}",
                response.cancel_reason()
            ))));
        }
        let header_revision = response.header().map(|h| h.revision()).unwrap_or_default();
        let changes = response
            .events()
            .iter()
            .filter_map(|event| {
                let kv = event.kv()?;
                let delete = event.event_type() == EventType::Delete;
                Some(KeyChange {
                    revision: kv.mod_revision(),
                    key: kv.key().to_vec(),
                    value: (!delete).then(|| kv.value().to_vec()),
                    lease: if delete { 0 } else { kv.lease() },
                })
            })
            .collect();
        Ok(Some(Watched::Changes { header_revision, changes }))
    }

    /// Ask for a progress notice (the leader's revision once every change up to it was sent).
    pub async fn request_progress(&mut self) -> Result<(), String> {
        self.stream.request_progress().await.map_err(|e| format!("watch progress: {}", short(&e)))
    }
}

impl MemberClient {
    /// The TTL lease `id` was granted, in seconds; 0 when etcd no longer has it.
    pub async fn lease_granted_ttl(&mut self, id: i64, timeout: Duration) -> Result<i64, String> {
        let answer =
            within(timeout, "lease time-to-live", self.client().lease_time_to_live(id, None)).await?;
        Ok(if answer.ttl() < 0 { 0 } else { answer.granted_ttl().max(0) })
    }

    /// The ID of the cluster the member belongs to (from a status header).
    pub async fn cluster_id(&mut self, timeout: Duration) -> Result<u64, String> {
        let status = within(timeout, "status", self.client().status()).await?;
        Ok(status.header().map(|h| h.cluster_id()).unwrap_or_default())
    }
}
