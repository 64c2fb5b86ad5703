//! etcd-bootstrap: start etcd correctly in a Kubernetes StatefulSet pod from DNS, the etcd API and
//! the data directory alone.
//!
//! Module map, in layers from the bottom up; a module imports only from its own layer or the
//! layers below it (checked by the unit tests in `src/layering.rs` against [`LAYERS`]).
//! The folders show the flow of one start: observe -> decide -> act -> exec.
//!
//! 1. Base: [`error`] (the one error type, exit codes), [`duration`] (`500ms`/`30s`/`5m`),
//!    [`size`] (`100MB`/`512MiB`), [`signals`] (SIGTERM/SIGINT as PID 1), [`crash`] (test crash points), [`identity`] (pod
//!    name, set, ordinal, peer host names, URL host and port helpers).
//! 2. [`observed`]: what a round observed, as plain data: the data dir's state, the cluster view
//!    and its members, the peers in DNS, and etcd's refusals as the closed enum `Refusal`.
//! 3. [`decide`]: pure. The decision table (`decide`), `JoinAs`, `StartMode` and the one
//!    `start_mode` that `run` and `plan` both call, `after_add`, `decide::answers` (every answer
//!    merged into the view the table reads; a volume no answer claims is foreign),
//!    `decide::joiners` (can another pod be joining now), and `decide::refusals`: per
//!    membership call, what etcd's refusal means next (table-tested).
//! 4. [`etcd_args`]: etcd's own settings (flags after `--`, `ETCD_*`) and the argv to exec. Pure;
//!    below `observe` because the etcd client reads etcd's client TLS files from it.
//! 5. [`observe`]: what looks: `dns` (uncached hickory lookups), `peers` (which pods exist),
//!    `datadir` (classify, archive; `datadir/wal.rs` decodes the WAL), `cluster` (the etcd API;
//!    the one place that reads etcd's error text), `peer_members` (`GET /members` on etcd's peer
//!    port, answered before quorum), `both_ports` (every peer on both ports at once), and
//!    `observe::round` that looks once.
//! 6. Settings: [`config`] (clap, every option also `ETCD_BOOTSTRAP_<NAME>`) and [`context`]
//!    (resolved once from flags, environment, hostname and resolv.conf). They sit here, not at
//!    the top, because `act` and the sidecar take a `&Context`.
//! 7. [`backup`] (issue 13): store and snapshot URLs, manifests, retention and sha256 checks
//!    (pure), S3 credentials (pure, never printed), the object store, taking a snapshot, restoring
//!    one into the data dir, and the `backup` commands. `act` (`--restore-from`) and the sidecar
//!    (scheduled backups) call it; the restore decision itself is pure, in `decide::restore`.
//! 8. [`act`]: the observe/decide/act loop (`act::bootstrap`), `act::pacing` (its pauses, pure),
//!    `act::membership` (update, add, remove, withdraw, archive), `act::exec` (execve etcd).
//! 9. [`sidecar`]: the second container, as independent jobs. `mod.rs` starts them; `job`
//!    (reconcile -> Action, the one error policy), `coordination` (the only shared state),
//!    `liveness` (which job is stuck), `policy/` (pure: learners, removal, presence, the
//!    databases' rules, defragmentation, NOSPACE, certificate state), `jobs/` (the jobs and
//!    their calls), `http`, `metrics`.
//! 10. Top: [`plan`] (print a round without acting; it never imports `act`'s loop) and [`cli`]
//!     (the commands wired; `main` only gathers surroundings and maps exit codes).

pub mod act;
pub mod backup;
pub mod cli;
pub mod config;
pub mod context;
pub mod crash;
pub mod decide;
pub mod duration;
pub mod error;
pub mod etcd_args;
pub mod identity;
pub mod observe;
pub mod observed;
pub mod plan;
pub mod sidecar;
pub mod signals;
pub mod size;

/// The layers of the module map, bottom first: a module may import from its own layer and the
/// layers before it, never from a later one. `backup` and `maintenance` have their places
/// reserved. `plan` may use `act::exec` (to find the etcd binary) but not `act`'s loop.
pub const LAYERS: &[&[&str]] = &[
    &["error", "duration", "size", "signals", "crash", "identity"],
    &["observed"],
    &["decide"],
    &["etcd_args"],
    &["observe"],
    &["config", "context"],
    &["backup"],
    &["act"],
    &["sidecar"],
    &["plan", "cli"],
];

#[cfg(test)]
mod layering;
