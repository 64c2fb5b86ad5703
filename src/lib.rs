//! etcd-bootstrap: start etcd correctly in a Kubernetes StatefulSet pod from DNS, the etcd API and
//! the data directory alone.
//!
//! Module map (observe -> decide -> act -> exec):
//! - [`cli`]: commands wired together; `main` only gathers surroundings and maps exit codes.
//! - [`config`]: the command line (clap, every option also `ETCD_BOOTSTRAP_<NAME>`).
//! - [`context`]: settings resolved once from flags, environment, hostname and resolv.conf.
//! - [`identity`]: pod name, set name, ordinal, peer host names.
//! - [`etcd_args`]: etcd's own settings (flags after `--`, `ETCD_*`) and the argv to exec.
//! - [`dns`]: uncached A/AAAA/SRV lookups; [`peers`]: which pods exist.
//! - [`peer_members`]: `GET /members` on a peer's peer port (answers before quorum);
//!   [`both_ports`]: ask every peer on its client and peer ports at once.
//! - [`datadir`]: classify the data dir, read IDs from the WAL, archive stale data.
//! - [`cluster`]: the etcd API: member list with quorum, add, remove, update, promote.
//! - [`view`]: observed state as plain data; [`decide`]: the pure decision.
//! - [`run`]: the observe/decide/act loop; [`plan`]: print it without acting.
//! - [`sidecar`]: the second container: promote learners, remove members whose pods are gone
//!   (pure policy in `sidecar::removal`), `/healthz`, `/readyz` and `/metrics`.
//! - [`exec`]: execve etcd; [`signals`]: SIGTERM/SIGINT as PID 1; [`crash`]: test crash points.
//! - [`error`]: the one error type and the exit codes; [`duration`]: `500ms`/`30s`/`5m`.

pub mod both_ports;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod context;
pub mod crash;
pub mod datadir;
pub mod decide;
pub mod dns;
pub mod duration;
pub mod error;
pub mod etcd_args;
pub mod exec;
pub mod identity;
pub mod pacing;
pub mod peer_members;
pub mod peers;
pub mod plan;
pub mod run;
pub mod sidecar;
pub mod signals;
pub mod view;
