//! Taking a snapshot from one etcd member through the Maintenance API, into a local file, with
//! what the manifest needs (cluster ID, revision, version, members). The bytes are checked
//! against etcd's own trailing sha256 before anything can be published.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWriteExt;

use crate::backup::integrity::SnapshotDigest;
use crate::backup::manifest::{self, Manifest, ManifestMember};
use crate::error::{Error, Result};
use crate::observe::cluster::{self, Access, Endpoint};

/// Deadline of the whole snapshot call (streamed; etcd sends a large database in chunks).
pub(crate) const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Deadline of the small calls (status, member list) and of each streamed chunk.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Bytes buffered before a write of the snapshot to the scratch file.
const WRITE_BUFFER: usize = 1 << 20;

/// A local file removed when dropped: the spool of a snapshot before or after its upload.
pub(crate) struct SpoolFile {
    pub path: PathBuf,
}

impl SpoolFile {
    /// A new unique path in `dir` (nothing is created yet).
    pub(crate) fn new_in(dir: &Path, what: &str) -> SpoolFile {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
        SpoolFile { path: dir.join(format!(".etcd-bootstrap-{what}-{}-{nanos}.part", std::process::id())) }
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        // Our own scratch copy, never user data.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A snapshot taken and checked, ready to upload.
pub(crate) struct Taken {
    pub file: SpoolFile,
    pub manifest: Manifest,
    /// The member it was taken from (host name).
    pub from: String,
}

/// Take a snapshot from the member at `endpoint` into a spool file in `scratch_dir`.
pub(crate) async fn take(access: &Access, endpoint: &Endpoint, scratch_dir: &Path) -> Result<Taken> {
    take_counting(access, endpoint, scratch_dir, &|_| {}).await
}

/// [`take`], telling `moved` the size of each chunk etcd sends (a long snapshot's progress).
pub(crate) async fn take_counting(
    access: &Access,
    endpoint: &Endpoint,
    scratch_dir: &Path,
    moved: &(dyn Fn(u64) + Sync),
) -> Result<Taken> {
    let fail = |call: &str, message: String| Error::Cluster {
        call: call.into(),
        endpoint: endpoint.host.clone(),
        message,
    };
    let mut client =
        cluster::client_of(access, endpoint, SNAPSHOT_TIMEOUT).await.map_err(|m| fail("connect", m))?;
    let status = within("status", client.status()).await.map_err(|m| fail("status", m))?;
    let header = status.header().cloned();
    let cluster_id = header.as_ref().map(|h| h.cluster_id()).unwrap_or_default();
    let status_revision = header.as_ref().map(|h| h.revision()).unwrap_or_default();
    let list = within("member list", client.member_list()).await.map_err(|m| fail("member list", m))?;
    let members = list
        .members()
        .iter()
        .map(|m| ManifestMember { name: m.name().to_string(), peer_urls: m.peer_urls().to_vec() })
        .collect();

    let file = SpoolFile::new_in(scratch_dir, "snapshot");
    let out = tokio::fs::File::create(&file.path).await.map_err(|e| Error::io(&file.path, e))?;
    // etcd sends the snapshot in small messages; a large buffer makes one blocking write of many.
    let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, out);
    let mut digest = SnapshotDigest::new();
    let mut maintenance = client.maintenance_client();
    let mut stream = within("snapshot", maintenance.snapshot()).await.map_err(|m| fail("snapshot", m))?;
    let mut revision = status_revision;
    while let Some(message) = within("snapshot", stream.message()).await.map_err(|m| fail("snapshot", m))? {
        if let Some(h) = message.header() {
            revision = revision.max(h.revision());
        }
        digest.update(message.blob());
        out.write_all(message.blob()).await.map_err(|e| Error::io(&file.path, e))?;
        moved(message.blob().len() as u64);
    }
    out.flush().await.map_err(|e| Error::io(&file.path, e))?;
    out.into_inner().sync_all().await.map_err(|e| Error::io(&file.path, e))?;
    let checked = digest.finish();
    let unix_time = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let name = manifest::snapshot_name(unix_time, revision);
    if let Some(problem) = checked.problem(None) {
        return Err(Error::Snapshot {
            snapshot: format!("from {}", endpoint.host),
            problem: format!("{problem}; nothing was uploaded"),
        });
    }
    let manifest = Manifest {
        format: manifest::FORMAT,
        name,
        cluster_id: format!("{cluster_id:x}"),
        revision,
        etcd_version: status.version().to_string(),
        members,
        size: checked.size,
        sha256: checked.sha256.unwrap_or_default(),
        etcd_sha256: checked.trailer,
        xxh3_128: checked.xxh3,
        time: manifest::rfc3339(unix_time),
        unix_time,
        // Read before the snapshot began: the snapshot holds at least this revision, so a chain
        // of changes from the next one on misses none.
        chain_from: Some(status_revision),
    };
    Ok(Taken { file, manifest, from: endpoint.host.clone() })
}

async fn within<T>(
    what: &str,
    call: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> std::result::Result<T, String> {
    within_for(what, CALL_TIMEOUT, call).await
}

/// `call` within `timeout`; a failure as one line that starts with `what`.
pub(crate) async fn within_for<T>(
    what: &str,
    timeout: Duration,
    call: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> std::result::Result<T, String> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("{what}: {}", cluster::short(&e))),
        Err(_) => Err(format!("{what}: timed out after {}", crate::duration::format(timeout))),
    }
}
