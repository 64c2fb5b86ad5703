//! etcd-bootstrap: start etcd correctly in a Kubernetes StatefulSet pod from DNS, the etcd API and
//! the data directory alone.
//!
//! Module map (observe -> decide -> act -> exec):
//! - [`error`]: the one error type and the documented exit codes.
//! - [`datadir`]: classify the data directory, read member and cluster IDs from the WAL, archive.
//! - [`dns`]: uncached A/AAAA/SRV lookups.

pub mod config;
pub mod datadir;
pub mod decide;
pub mod dns;
pub mod duration;
pub mod error;
pub mod etcd_args;
pub mod identity;
pub mod view;
