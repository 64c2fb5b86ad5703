//! Replaying a snapshot's delta segments (point-in-time restore), at the edge. The snapshot is
//! restored as the initial cluster with etcd's own tool first (the caller does that); then the
//! changes of the chain up to the point are appended to the restored member's WAL as committed
//! raft entries (the pure [`raft_log`]): when etcd starts, it applies them through its own apply
//! path, as it applies the entries after its last snapshot when it restarts after a crash. Every
//! initial member appends the same entries, so every member applies the same changes.
//!
//! Which revisions a snapshot already holds comes from its database ([`bolt`]): the chain starts
//! at the revision read before the snapshot began, so its first revisions may be in it already.
//!
//! Leases: a lease the snapshot holds stays, and a lease a replayed key names is granted again
//! (an entry before the keys that name it) with its ID and the TTL the chain recorded. Nothing
//! expires before the restored cluster elects its first leader, which gives every lease its full
//! TTL again, as after any restore.
//!
//! Everything happens in the restore's work dir, before the restored member is moved into place:
//! a crash at any step leaves only the work dir, which the next start discards and redoes.

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tracing::info;

use crate::backup::raft_log::{self, Request};
use crate::backup::segment::{self, Segment, SegmentName, Target};
use crate::backup::store::Store;
use crate::error::{Error, Result};
use crate::observe::datadir::{read_wal_tail, WalTail};

/// Transactions of at most this many keys ...
const MAX_TXN_OPS: usize = 10_000;
/// ... and about this many bytes of keys and values: one WAL record each, well under the 10 MiB
/// etcd's WAL reader takes in one record.
const MAX_TXN_BYTES: usize = 4 << 20;
/// How much of a chain's keys and values is read ahead while the restore tool runs.
const PREFETCH_BYTES: usize = 64 << 20;
/// How much of the restored WAL file is read to find where its records end (a restore writes a
/// few kilobytes into a preallocated file of 64 MiB).
const WAL_PREFIX_BYTES: usize = 1 << 20;

/// What to replay: the segments of `snapshot` (in chain order) and the last revision to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replay {
    pub snapshot: String,
    pub segments: Vec<SegmentName>,
    pub to_revision: i64,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replayed {
    /// The revision the snapshot holds.
    pub from_revision: i64,
    /// The last revision applied (`from_revision` when none was).
    pub to_revision: i64,
    pub changes: usize,
    /// Raft entries appended.
    pub entries: usize,
}

/// The first segments of `replay` (their keys and values up to [`PREFETCH_BYTES`]), read ahead
/// while the restore tool runs; [`replay`] reads the rest.
pub(crate) async fn prefetch(store: &Store, replay: &Replay) -> Result<Vec<Segment>> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for name in &replay.segments {
        if bytes >= PREFETCH_BYTES {
            break;
        }
        let segment = store.segment(&replay.snapshot, name).await?;
        bytes += segment.change_bytes();
        out.push(segment);
    }
    Ok(out)
}

/// Append `replay`'s changes from `store` (the first of its segments `prefetched`) after `from_revision` (the revision the snapshot holds)
/// to the WAL of the member restored into `restored` (a data dir), where they must fit etcd's
/// `quota` with the database (`database_bytes`). `one_per_revision`: one
/// transaction per revision of the chain, so the restored revision ends exactly where the
/// source's did (the restore tool could not move it past the snapshot's); otherwise revisions
/// merge into larger transactions.
pub(crate) async fn replay(
    store: &Store,
    replay: &Replay,
    prefetched: Vec<Segment>,
    from_revision: i64,
    one_per_revision: bool,
    restored: &Path,
    (database_bytes, quota): (u64, u64),
) -> Result<Replayed> {
    let snapshot = store.url().snapshot(&replay.snapshot).to_string();
    if replay.to_revision < from_revision {
        return Err(Error::config(format!(
            "the snapshot {snapshot} already holds revision {from_revision}, past the point {} asked: restore from an older snapshot",
            replay.to_revision
        )));
    }
    let started = std::time::Instant::now();
    let wal = restored_wal(restored)?;
    let file =
        std::fs::OpenOptions::new().read(true).write(true).open(&wal).map_err(|e| io_error(&wal, e))?;
    let tail = wal_tail(&file, &wal)?;
    raft_log::check_restored(&tail).map_err(|m| Error::Wal { path: wal.clone(), problem: m })?;
    let mut log = Appender {
        snapshot: &snapshot,
        file: &file,
        wal: &wal,
        tail,
        target: Target::Revision(replay.to_revision),
        one_per_revision,
        granted: BTreeSet::new(),
        applied: from_revision,
        changes: 0,
        entries: 0,
        change_bytes: 0,
    };
    // Segments are appended together while their changes fit one transaction, so a key changed
    // in several of them is written once (where revisions merge at all).
    let mut pending: Vec<Segment> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut prefetched = prefetched.into_iter();
    for name in &replay.segments {
        let segment = match prefetched.next() {
            Some(segment) => segment,
            None => store.segment(&replay.snapshot, name).await?,
        };
        let bytes = segment.change_bytes();
        if !pending.is_empty() && (one_per_revision || pending_bytes + bytes > MAX_TXN_BYTES) {
            log.append(&pending)?;
            pending.clear();
            pending_bytes = 0;
        }
        pending.push(segment);
        pending_bytes += bytes;
    }
    log.append(&pending)?;
    let Appender { tail, applied, changes, entries, change_bytes, .. } = log;
    // Nothing is committed before the check: a refused replay leaves only the work dir.
    raft_log::fits_quota(database_bytes, change_bytes, quota).map_err(Error::config)?;
    let (bytes, _) = raft_log::commit(&tail);
    write_at(&file, &wal, tail.end, &bytes)?;
    file.sync_all().map_err(|e| io_error(&wal, e))?;
    crate::crash::point("after-replay");
    info!(
        took_ms = started.elapsed().as_millis() as u64,
        from_revision,
        to_revision = applied,
        changes,
        entries,
        "delta segments appended to the restored member's log"
    );
    Ok(Replayed { from_revision, to_revision: applied, changes, entries })
}

/// The restored member's WAL as the replay appends to it.
struct Appender<'a> {
    /// The snapshot's URL, for messages.
    snapshot: &'a str,
    file: &'a std::fs::File,
    wal: &'a Path,
    tail: WalTail,
    target: Target,
    one_per_revision: bool,
    /// Leases granted by an entry so far.
    granted: BTreeSet<i64>,
    /// The last revision appended.
    applied: i64,
    changes: usize,
    entries: usize,
    change_bytes: u64,
}

impl Appender<'_> {
    /// Append the changes of `segments` past the last revision appended, up to the target: the
    /// leases they name first, then their transactions. Not committed (see `raft_log::commit`).
    fn append(&mut self, segments: &[Segment]) -> Result<()> {
        let mut requests = Vec::new();
        for (id, ttl) in segments.iter().flat_map(|s| &s.leases) {
            if self.granted.insert(*id) {
                // A TTL the chain could not learn (the lease was gone): etcd's smallest; its
                // keys' deletion follows in the chain.
                requests.push(Request::LeaseGrant { id: *id, ttl: (*ttl).max(1) });
            }
        }
        let (revisions, _) = segment::cut(segments, self.applied, self.target);
        for r in &revisions {
            if self.one_per_revision && r.revision != self.applied + 1 {
                return Err(Error::Snapshot {
                    snapshot: self.snapshot.to_string(),
                    problem: format!(
                        "replay: revision {} follows {}: the chain does not continue this snapshot",
                        r.revision, self.applied
                    ),
                });
            }
            self.applied = r.revision;
        }
        for batch in segment::batches(&revisions, MAX_TXN_OPS, MAX_TXN_BYTES, self.one_per_revision) {
            self.changes += batch.changes.len();
            self.change_bytes += batch.changes.iter().map(|c| c.size() as u64).sum::<u64>();
            requests.push(Request::Txn(batch.changes));
        }
        self.entries += requests.len();
        let (bytes, next) = raft_log::entries(&self.tail, &requests);
        write_at(self.file, self.wal, self.tail.end, &bytes)?;
        self.tail = next;
        crate::crash::point("during-replay");
        Ok(())
    }
}

/// The one WAL file a restore wrote into `restored`.
fn restored_wal(restored: &Path) -> Result<PathBuf> {
    let dir = restored.join("member").join("wal");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| io_error(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    match (files.pop(), files.is_empty()) {
        (Some(file), true) => Ok(file),
        _ => Err(Error::Wal {
            path: dir,
            problem: "a restore writes exactly one WAL file here, and this is not what it wrote".into(),
        }),
    }
}

/// Where the records of the WAL `file` end: read from its first [`WAL_PREFIX_BYTES`], or from the
/// whole file when the records run past them.
fn wal_tail(file: &std::fs::File, path: &Path) -> Result<WalTail> {
    let size = file.metadata().map_err(|e| io_error(path, e))?.len();
    let read = |len: u64| -> Result<std::result::Result<WalTail, String>> {
        let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut bytes, 0).map_err(|e| io_error(path, e))?;
        Ok(read_wal_tail(&bytes))
    };
    let prefix = size.min(WAL_PREFIX_BYTES as u64);
    let tail = match read(prefix)? {
        Ok(t) if t.end < prefix || prefix == size => Ok(t),
        Err(m) if prefix == size => Err(m),
        _ => read(size)?,
    };
    tail.map_err(|problem| Error::Wal { path: path.to_path_buf(), problem })
}

fn write_at(file: &std::fs::File, path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    file.write_all_at(bytes, offset).map_err(|e| io_error(path, e))
}

/// A file of the restored member that cannot be read or written: the data dir's problem.
fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Wal { path: path.to_path_buf(), problem: format!("cannot read or write it: {e}") }
}
