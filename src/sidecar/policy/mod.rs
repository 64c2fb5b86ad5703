//! The sidecar's pure policies: no I/O, no clock read, no tokio. The jobs ([`super::jobs`]) gather
//! what these look at, ask them what to do, and do it.
//! - [`learners`]: which learners to try to promote, in what order;
//! - [`removal`]: which member to remove, or why none, and the clock of pods missing from DNS;
//! - [`presence`]: between rounds, which pods to look up in DNS because their peer connections
//!   went;
//! - [`db`]: the members' databases and the rules every defragmentation keeps (one at a time,
//!   quorum kept, followers first, never a member being snapshotted);
//! - [`defrag`]: the routine defragmentation;
//! - [`nospace`]: the way out of a NOSPACE alarm (compaction never past a backup's revision);
//! - [`certs`] (with [`der`]): the state of the client certificate;
//! - [`deltas`]: continuous backups: which chain to record, when to ask for a full snapshot, what
//!   one upload holds.
//!
//! What a refused etcd call means next is the pure policy in `decide::refusals`; when a failed
//! job runs again is [`super::job::error_policy`]; whether a job is stuck is
//! [`super::liveness::stuck_for`]; the coordination rules are in [`super::coordination`].

pub(crate) mod certs;
pub(crate) mod db;
pub(crate) mod defrag;
pub(crate) mod deltas;
pub(crate) mod der;
pub(crate) mod learners;
pub(crate) mod nospace;
pub(crate) mod presence;
pub(crate) mod removal;
