//! Cold start: all pods of a new cluster started (nearly) at once, timed to a healthy cluster; and
//! the same with the DNS records published 2 s after the last pod started, timed from the last
//! record.

use std::time::{Duration, Instant};

use crate::bed::{Bed, Publish};
use crate::pods::{self, Sidecars, Tools, Who};
use crate::probe;
use crate::results::Results;

const HEALTHY_WITHIN: Duration = Duration::from_secs(90);
pub const DNS_DELAY: Duration = Duration::from_secs(2);

pub async fn run(t: &Tools, runs: usize, late: bool, r: &mut Results) {
    let what = if late { "late" } else { "cold" };
    for run in 0..runs {
        for &size in sizes(late) {
            // Rotate the order so no contestant always runs first (or right after another).
            for k in 0..Who::ALL.len() {
                let who = Who::ALL[(run + k) % Who::ALL.len()];
                let key = format!("{what}.{size}.{}", who.key());
                eprint!("{key} run {}/{runs}: ", run + 1);
                match once(t, who, size, late, r).await {
                    Ok(secs) => {
                        eprintln!("{secs:.3} s");
                        r.add(&key, secs);
                    }
                    Err(e) => r.fail(&key, e),
                }
            }
        }
    }
}

/// One cluster; seconds from all pods started (or the last record published) to healthy.
async fn once(t: &Tools, who: Who, size: u32, late: bool, r: &mut Results) -> Result<f64, String> {
    let what = if late { "late" } else { "cold" };
    let bed = Bed::new(&format!("bench-{what}-{size}-{}", who.key())).await;
    let publish = if late { Publish::Never } else { Publish::Now };
    let first = Instant::now();
    for o in 0..size {
        bed.start_pod(o, pods::cold_spec(&bed, t, who, o, size).publish(publish)).await;
    }
    let all = Instant::now();
    let t0 = if late {
        tokio::time::sleep_until((all + DNS_DELAY).into()).await;
        for o in 0..size {
            bed.publish(o);
        }
        Instant::now()
    } else {
        all
    };
    let healthy = probe::wait_healthy(&pods::targets(&bed, 0..size), HEALTHY_WITHIN).await;
    pods::keep_logs(&bed);
    r.add(&format!("spread.{size}"), (all - first).as_secs_f64());
    let at = healthy.map_err(|e| format!("{e}\n{}", pods::tails(&bed, 0..size, &Sidecars::default())))?;
    if who == Who::Bootstrap {
        diagnose(&bed, what, size, r);
    }
    Ok(at.saturating_duration_since(t0).as_secs_f64())
}

/// The cluster sizes of the cold starts (on time: 3, 5 and 7, to show how the cost grows) and of
/// the DNS-late starts (3 and 5).
pub fn sizes(late: bool) -> &'static [u32] {
    if late {
        &[3, 5]
    } else {
        &[3, 5, 7]
    }
}

/// From each etcd-bootstrap pod's log: start to exec, and the WAIT lines it logged.
pub fn diagnose(bed: &Bed, what: &str, size: u32, r: &mut Results) {
    for o in 0..size {
        let log = bed.logs_current(o);
        if let Some(secs) = start_to_exec_from_log(&log) {
            r.add(&format!("diag.{what}.{size}.bootstrap.to_exec"), secs);
        }
        let waits = log.lines().filter(|l| l.contains("decision=\"WAIT\"")).count();
        r.add(&format!("diag.{what}.{size}.bootstrap.waits"), waits as f64);
    }
}

/// Seconds from etcd-bootstrap's "starting" line to its "exec etcd" line, by the log's own
/// timestamps (`2025-01-01T12:00:00.123456Z ...`, one day at most).
pub fn start_to_exec_from_log(log: &str) -> Option<f64> {
    let at = |needle: &str| log.lines().find(|l| l.contains(needle)).and_then(time_of_day);
    let starting = concat!("etcd-bootstrap ", env!("CARGO_PKG_VERSION"), " starting");
    let (start, exec) = (at(starting)?, at("exec etcd")?);
    Some(if exec >= start { exec - start } else { exec + 86_400.0 - start })
}

fn time_of_day(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?;
    let time = stamp.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = time.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}
