//! The data directory: is it empty, an etcd member's (with its member ID and cluster ID read from
//! the WAL), or something else? Also moves a stale `member/` aside. Never deletes anything.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name prefix of the archives `archive_member` creates inside the data dir.
pub const ARCHIVE_PREFIX: &str = "member.removed-";

/// IDs read from the first WAL file's metadata record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WalMeta {
    pub member_id: u64,
    pub cluster_id: u64,
}

/// What the data directory holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataDirState {
    /// Missing, empty, or holding only `lost+found` and our own archives.
    Empty,
    /// An etcd member's data.
    Member(WalMeta),
    /// Something we do not understand: never start etcd on it, never delete it.
    Unknown { entries: Vec<String> },
}

/// Classify the data directory at `dir`.
pub fn inspect(dir: &Path) -> Result<DataDirState> {
    let _ = dir;
    Err(Error::DataDir {
        path: dir.to_path_buf(),
        problem: "not implemented".into(),
    })
}

/// Parse the metadata record of a WAL file's bytes.
pub fn read_wal_metadata(bytes: &[u8]) -> Result<WalMeta, String> {
    let _ = bytes;
    Err("not implemented".into())
}

/// Move `<dir>/member` to `<dir>/member.removed-<unix_time>`; returns the new path.
pub fn archive_member(dir: &Path, unix_time: u64) -> Result<PathBuf> {
    let _ = unix_time;
    Err(Error::DataDir {
        path: dir.to_path_buf(),
        problem: "not implemented".into(),
    })
}
