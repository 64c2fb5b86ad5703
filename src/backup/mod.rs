//! Backups and restore (issue 13): snapshots of etcd in a store named by a URL.
//!
//! - [`location`]: store and snapshot URLs (`file:///path`, `s3://bucket/prefix`), pure.
//! - [`manifest`]: the manifest, object names, listing order, retention, the interval check, pure.
//! - [`integrity`]: sha256 of the whole file and etcd's own trailing sha256, pure.
//! - [`credentials`]: S3 settings from AWS variables and the credentials file, pure; secrets
//!   never print.
//! - [`segment`]: delta segments (point-in-time restore): format, names, the chain, the replay's
//!   batches, pure.
//! - [`store`]: the object store at the edge (object_store).
//! - [`take`]: a snapshot from etcd's Maintenance API into a checked local file.
//! - [`raft_log`]: a replay's changes as raft entries in etcd's WAL format, pure.
//! - [`replay`]: a snapshot's delta segments up to a point, appended to the restored member's
//!   log (etcd applies them when it starts).
//! - [`restore`]: a snapshot restored into the data dir (work dir, etcdutl/etcdctl, move, marker).
//! - [`bolt`]: the revision an etcd database file (a snapshot, `member/snap/db`) holds, read
//!   from its bbolt pages without etcd (a pure reader behind one positioned-read edge).
//! - [`command`]: `backup --to`, `backup list`, `backup verify` (their flags: `config::backup_args`).

pub mod bolt;
pub(crate) mod command;
pub(crate) mod credentials;
pub(crate) mod integrity;
pub(crate) mod location;
pub(crate) mod manifest;
pub(crate) mod raft_log;
pub(crate) mod replay;
pub(crate) mod restore;
pub(crate) mod restore_round;
pub(crate) mod segment;
pub(crate) mod store;
pub(crate) mod take;
