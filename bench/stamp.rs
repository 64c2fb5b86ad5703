//! Stamp mode: the bench binary itself, run inside a pod, prints when it started (CLOCK_MONOTONIC,
//! which is one clock for the whole machine) and the peak RSS of its process so far, then either
//! execs the program it was given or exits.
//!
//! A start-to-exec chain is `stamp --stamp-then PROGRAM ARGS...` as the pod's PID 1: the first
//! stamp marks the container's start and execs PROGRAM (etcd-bootstrap, the shell script, or the
//! stamp itself for the floor); PROGRAM execs the stamp again as its "etcd" (the variable
//! [`ENV`] survives the exec), which marks the exec and exits. The peak RSS the second stamp reads
//! (`getrusage(RUSAGE_SELF).ru_maxrss`) is the largest of every image this process has been:
//! Linux keeps the maximum across `execve`, so it includes etcd-bootstrap's peak before it exec'd.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::libc;

/// Set in a pod's environment to make the bench binary a stamp.
pub const ENV: &str = "EBT_BENCH_STAMP";
/// First argument of the stamp that starts a chain.
pub const THEN: &str = "--stamp-then";
/// Start of every line a stamp prints: `ebt-stamp <start|exec> <monotonic ns> <maxrss KiB>`.
pub const MARK: &str = "ebt-stamp";

pub fn requested() -> bool {
    std::env::var_os(ENV).is_some()
}

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Peak RSS of this process in KiB, across every exec.
fn maxrss_kib() -> i64 {
    // SAFETY: getrusage writes one rusage we own; zeroed is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss
}

/// The stamp's whole life. Never returns.
pub fn main() -> ! {
    let now = monotonic_ns();
    let maxrss = maxrss_kib();
    let args: Vec<OsString> = std::env::args_os().collect();
    let starts_chain = args.get(1).is_some_and(|a| a == THEN);
    let label = if starts_chain { "start" } else { "exec" };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{MARK} {label} {now} {maxrss}");
    let _ = out.flush();
    drop(out);
    if !starts_chain {
        std::process::exit(0);
    }
    let Some(program) = args.get(2) else {
        eprintln!("{MARK}: {THEN} needs a program");
        std::process::exit(2);
    };
    let err = Command::new(program).args(&args[3..]).exec();
    eprintln!("{MARK}: cannot exec {}: {err}", program.to_string_lossy());
    std::process::exit(127);
}

/// A stamp line parsed from a pod log.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub ns: u64,
    pub maxrss_kib: i64,
}

/// The last `start` and `exec` stamps in `log`.
pub fn parse(log: &str) -> (Option<Stamp>, Option<Stamp>) {
    let (mut start, mut exec) = (None, None);
    for line in log.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some(MARK) {
            continue;
        }
        let label = words.next();
        let ns = words.next().and_then(|w| w.parse().ok());
        let rss = words.next().and_then(|w| w.parse().ok());
        let (Some(ns), Some(maxrss_kib)) = (ns, rss) else { continue };
        let stamp = Some(Stamp { ns, maxrss_kib });
        match label {
            Some("start") => start = stamp,
            Some("exec") => exec = stamp,
            _ => {}
        }
    }
    (start, exec)
}
