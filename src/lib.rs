//! etcd-bootstrap: start etcd correctly in a Kubernetes StatefulSet pod from DNS, the etcd API and
//! the data directory alone.
//!
//! Module map, in layers from the bottom up; a module names only its own layer or the layers
//! below it (checked by the unit tests in `src/layering.rs`, which parse every file with `syn`:
//! `use` trees and every path, against [`LAYERS`]). The pure modules that file lists (the
//! decision table, `observed`, the parsers, the sidecar's and backups' policies) name no file
//! system, network, process or environment, no async runtime and no crate of the edges.
//! The folders show the flow of one start: observe -> decide -> act -> exec.
//!
//! 1. Base: [`error`] (the one error type, exit codes), [`duration`] (`500ms`/`30s`/`5m`),
//!    [`size`] (`100MB`/`512MiB`), [`signals`] (SIGTERM/SIGINT as PID 1), [`crash`] (test crash points), [`identity`] (pod
//!    name, set, ordinal, peer host names, URL host and port helpers).
//! 2. [`observed`]: what a round observed, as plain data: the data dir's state, the cluster view
//!    and its members, the peers in DNS, and etcd's refusals as the closed enum `Refusal`, with
//!    `refusal_of`, the one reading of etcd's answers: the gRPC code, then etcd's exact message.
//! 3. [`decide`]: pure. The decision table (`decide`), `JoinAs`, `StartMode` and the one
//!    `start_mode` that `run` and `plan` both call, `after_add`, `decide::answers` (every answer
//!    merged into the view the table reads; a volume no answer claims is foreign),
//!    `decide::joiners` (can another pod be joining now), and `decide::refusals`: per
//!    membership call, what etcd's refusal means next (table-tested).
//! 4. [`etcd_args`]: etcd's own settings (flags after `--`, `ETCD_*`) and the argv to exec. Pure;
//!    below `observe` because the etcd client reads etcd's client TLS files from it.
//! 5. [`observe`]: what looks, and nothing that writes (a unit test finds no etcd write and no
//!    data dir write in it): `dns` (uncached hickory lookups), `peers` (which pods exist),
//!    `datadir` (classify; `datadir/wal.rs` decodes the WAL), `cluster` (the etcd API;
//!    a failed call's gRPC status read into a `Refusal`), `peer_members` (`GET /members` on etcd's peer
//!    port, answered before quorum), `both_ports` (every peer on both ports at once), and
//!    `observe::round` that looks once.
//! 6. Settings: [`config`] (clap, every option also `ETCD_BOOTSTRAP_<NAME>`) and [`context`]
//!    (resolved once from flags, environment, hostname and resolv.conf). They sit here, not at
//!    the top, because `act` and the sidecar take a `&Context`.
//! 7. [`backup`] (issue 13): store and snapshot URLs, manifests, retention and sha256 checks
//!    (pure), S3 credentials (pure, never printed), the object store, taking a snapshot, restoring
//!    one into the data dir, delta segments (`backup::segment`, pure) and their replay as raft
//!    log entries (`backup::replay`, issue 21), and the `backup` commands. `act` (`--restore-from`) and the sidecar
//!    (scheduled backups) call it; the restore decision itself is pure, in `decide::restore`.
//! 8. [`round`]: one round as `run` and `plan` take it: gather (`observe::round`, and the
//!    restore facts), then the one pure verdict (`decide::round::verdict`).
//! 9. [`act`]: the observe/decide/act loop (`act::bootstrap`), `act::pacing` (its pauses, pure),
//!    `act::membership` (update, add, remove, withdraw, archive), `act::etcd_calls` (every etcd
//!    call that changes the cluster: member add/remove/update/promote, defragment, alarm disarm,
//!    compact, for `act` and the sidecar), `act::archive` (moves `member/` aside; in a layer of
//!    its own below `backup`, whose restore archives too), `act::exec` (execve etcd).
//! 10. [`sidecar`]: the second container, as independent jobs. `mod.rs` starts them; `job`
//!     (reconcile -> Action, the one error policy), `coordination` (the only shared state),
//!     `liveness` (which job is stuck), `policy/` (pure: learners, removal, presence, the
//!     databases' rules, defragmentation, NOSPACE, certificate state, delta segments), `jobs/`
//!     (the jobs and their calls, the delta segments' recording among them; every call that
//!     changes the cluster goes through `act::etcd_calls`), `http`,
//!     `metrics`.
//! 11. Top: [`plan`] (print a round without acting; it never imports `act`'s loop) and [`cli`]
//!     (the commands wired; `main` only gathers surroundings and maps exit codes).

// Only what `main`, the integration tests and the benchmark use is `pub` (`cli`, `context`,
// `error`, `observe`, `observed`, `act::etcd_calls`, `backup::bolt`); the rest is `pub(crate)`,
// and this lint keeps it so, which lets dead code show.
#![warn(unreachable_pub)]

pub mod act;
pub mod backup;
pub mod cli;
pub(crate) mod config;
pub mod context;
pub(crate) mod crash;
pub(crate) mod decide;
pub(crate) mod duration;
pub mod error;
pub(crate) mod etcd_args;
pub(crate) mod identity;
pub mod observe;
pub mod observed;
pub(crate) mod plan;
pub(crate) mod round;
pub(crate) mod sidecar;
pub(crate) mod signals;
pub(crate) mod size;

/// The layers of the module map, bottom first: a module may import from its own layer and the
/// layers before it, never from a later one. A module path (`act::archive`) has the layer of its
/// longest listed prefix: moving a data dir aside is `act`'s, and a restore (`backup`) does it.
/// `plan` may use `act::exec` (to find the etcd binary) but not `act`'s loop.
pub const LAYERS: &[&[&str]] = &[
    &["error", "duration", "size", "signals", "crash", "identity"],
    &["observed"],
    &["decide"],
    &["etcd_args"],
    &["observe"],
    &["act::archive"],
    &["config", "context"],
    &["backup"],
    &["round"],
    &["act"],
    &["sidecar"],
    &["plan", "cli"],
];

#[cfg(test)]
mod layering;
