//! Start-to-exec with peers ready, and `plan`, inside pods of a healthy 3-member cluster.
//!
//! Start-to-exec is timed inside the pod with the stamp (see `stamp`): from the moment the pod's
//! entrypoint starts to the moment etcd would be exec'd. Chains:
//! - EXISTING: pod etcd-2 restarted on its data while etcd-0 and etcd-1 run with quorum (the
//!   usual restart), for all three contestants (the floor execs etcd at once; the shell script
//!   pings the three peers first);
//! - JOIN: a new pod etcd-3 with an empty volume while all three run (etcd-bootstrap's `member
//!   add`; the hand-made member is removed again after each run).
//!
//! The peak RSS of `run` is what the exec'd stamp reads from `getrusage`: the largest the PID-1
//! process has been across its execs, etcd-bootstrap included. The floor chain gives the stamp's
//! own share. `plan` is run like `kubectl exec` (nsenter into etcd-1) and timed from spawn to
//! exit, its peak RSS read with `wait4`.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::libc;

use crate::bed::{Bed, POD_PATH};
use crate::pods::{self, Sidecars, Tools, Who};
use crate::probe;
use crate::results::Results;
use crate::stamp;

const HEALTHY_WITHIN: Duration = Duration::from_secs(120);
const EXIT_WITHIN: Duration = Duration::from_secs(60);
const REJOIN_PAUSE: Duration = Duration::from_millis(1100);

pub async fn run(t: &Tools, runs: usize, r: &mut Results) {
    let bed = Bed::new("bench-exec").await;
    for o in 0..3 {
        bed.start_pod(o, pods::bootstrap_spec(&bed, t, o, false)).await;
    }
    if let Err(e) = probe::wait_healthy(&pods::targets(&bed, 0..3), HEALTHY_WITHIN).await {
        r.fail("exec.existing.bootstrap", format!("forming the cluster: {e}"));
        return;
    }
    let via = pods::ips(&bed, 0..3);
    tokio::time::sleep(crate::scale::AFTER_FORMING).await;

    // JOIN: etcd-3, all three members up.
    for run in 0..runs {
        let key = "exec.join.bootstrap";
        eprint!("{key} run {}/{runs}: ", run + 1);
        bed.wipe_volume(3);
        let chain = chain(&bed, t, Who::Bootstrap, 3).await;
        bed.delete_pod(3).await;
        let removed = pods::member_remove(&via, 3).await;
        match (chain, removed) {
            (Ok((ms, rss, log)), Ok(())) if log.contains("decision=\"JOIN\"") => {
                eprintln!("{ms:.1} ms, peak RSS {rss:.1} MiB");
                r.add(key, ms);
                r.add("mem.run.join", rss);
            }
            (Ok((_, _, log)), Ok(())) => r.fail(key, format!("no JOIN decision:\n{log}")),
            (Err(e), _) | (_, Err(e)) => {
                r.fail(key, e);
                break;
            }
        }
        if let Err(e) = probe::wait_healthy(&pods::targets(&bed, 0..3), HEALTHY_WITHIN).await {
            r.fail(key, format!("after removing the joined member: {e}"));
            return;
        }
        // etcd derives a new member's ID from its peer URL and the current second: the same URL
        // added again within the second of a removed add gets the removed ID and is refused
        // ("member not found"). A real scale-up never follows that closely; do not time it.
        tokio::time::sleep(REJOIN_PAUSE).await;
    }

    // EXISTING: etcd-2 restarts on its data; etcd-0 and etcd-1 keep quorum.
    bed.delete_pod(2).await;
    for run in 0..runs {
        for k in 0..3 {
            let who = Who::ALL[(run + k) % 3];
            let key = format!("exec.existing.{}", who.key());
            eprint!("{key} run {}/{runs}: ", run + 1);
            let chain = chain(&bed, t, who, 2).await;
            bed.delete_pod(2).await;
            match chain {
                Ok((_, _, log)) if who == Who::Bootstrap && !log.contains("decision=\"EXISTING\"") => {
                    r.fail(&key, format!("no EXISTING decision:\n{log}"))
                }
                Ok((ms, rss, _)) => {
                    eprintln!("{ms:.1} ms, peak RSS {rss:.1} MiB");
                    r.add(&key, ms);
                    r.add(&format!("mem.chain.existing.{}", who.key()), rss);
                }
                Err(e) => r.fail(&key, e),
            }
        }
    }

    pods::keep_logs(&bed);
    // plan, in etcd-1 of the healthy cluster (etcd-2 back with etcd-bootstrap and real etcd).
    bed.start_pod(2, pods::bootstrap_spec(&bed, t, 2, false)).await;
    if let Err(e) = probe::wait_healthy(&pods::targets(&bed, 0..3), HEALTHY_WITHIN).await {
        r.fail("plan", format!("etcd-2 did not come back: {e}"));
        return;
    }
    for run in 0..runs {
        for (key, plan) in [("plan.nsenter_true", false), ("plan", true)] {
            eprint!("{key} run {}/{runs}: ", run + 1);
            match in_pod(&bed, t, 1, plan).await {
                Ok((ms, rss, out)) if !plan || out.contains("\"decision\":\"EXISTING\"") => {
                    eprintln!("{ms:.1} ms, peak RSS {rss:.1} MiB");
                    r.add(key, ms);
                    r.add(&format!("mem.{key}"), rss);
                }
                Ok((_, _, out)) => r.fail(key, format!("plan did not decide EXISTING: {out}")),
                Err(e) => r.fail(key, e),
            }
        }
    }
}

/// Run one stamped chain as pod `ordinal` until it exits: (ms start to exec, peak RSS MiB, log).
async fn chain(bed: &Bed, t: &Tools, who: Who, ordinal: u32) -> Result<(f64, f64, String), String> {
    bed.start_pod(ordinal, pods::stamped_spec(bed, t, who, ordinal, 3)).await;
    let exit = bed.wait_exit(ordinal, EXIT_WITHIN).await;
    let log = bed.logs_current(ordinal);
    let tails = || pods::tails(bed, [ordinal], &Sidecars::default());
    match exit {
        Some(e) if e.success() => {}
        other => return Err(format!("chain ended {other:?}\n{}", tails())),
    }
    match stamp::parse(&log) {
        (Some(start), Some(exec)) if exec.ns >= start.ns => {
            Ok(((exec.ns - start.ns) as f64 / 1e6, exec.maxrss_kib as f64 / 1024.0, log))
        }
        _ => Err(format!("no start and exec stamps\n{}", tails())),
    }
}

/// `nsenter` into pod `ordinal` (network, UTS, mount) running `etcd-bootstrap plan --format json`
/// with the entrypoint's environment, or `/bin/true` to time nsenter alone: (ms, peak RSS MiB,
/// stdout).
async fn in_pod(bed: &Bed, t: &Tools, ordinal: u32, plan: bool) -> Result<(f64, f64, String), String> {
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &bed.pid1(ordinal).to_string(), "-n", "-u", "-m", "--"]);
    if plan {
        cmd.arg(&t.bootstrap).args(["plan", "--format", "json"]);
    } else {
        cmd.arg("/bin/true");
    }
    cmd.env_clear()
        .env("PATH", POD_PATH)
        .env("ETCD_DATA_DIR", bed.volume(ordinal))
        .env("ETCD_BOOTSTRAP_ETCD_BINARY", &t.etcd)
        .env("ETCD_BOOTSTRAP_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| format!("spawn nsenter: {e}"))?;
        let (status, ru) = wait4(child.id() as i32)?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let mut out = String::new();
        let mut err = String::new();
        use std::io::Read;
        if let Some(mut s) = child.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        if let Some(mut s) = child.stderr.take() {
            let _ = s.read_to_string(&mut err);
        }
        let status = std::process::ExitStatus::from_raw(status);
        if !status.success() {
            return Err(format!("{status}: {err}"));
        }
        Ok((ms, ru.ru_maxrss as f64 / 1024.0, out.replace([' ', '\n'], "")))
    })
    .await
    .map_err(|e| format!("plan task: {e}"))?
}

/// Reap `pid` with its resource usage (the child's own, all its execs included).
fn wait4(pid: i32) -> Result<(i32, libc::rusage), String> {
    let mut status = 0;
    // SAFETY: zeroed is a valid rusage; wait4 writes the status and rusage we own, for our child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if rc == pid {
            return Ok((status, ru));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4: {err}"));
        }
    }
}
