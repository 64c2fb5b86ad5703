//! Full restart: a healthy cluster whose every pod is deleted (volumes kept, as a StatefulSet's
//! are) and created again, timed from the last pod started to a healthy cluster. Each member
//! starts on its data; no pod can reach quorum alone, so each must not wait on peers that have
//! not formed the cluster again yet.

use std::time::{Duration, Instant};

use crate::bed::Bed;
use crate::cold;
use crate::pods::{self, Sidecars, Tools, Who};
use crate::probe;
use crate::results::Results;

const HEALTHY_WITHIN: Duration = Duration::from_secs(90);
/// The cluster size restarted.
pub const SIZE: u32 = 3;

pub async fn run(t: &Tools, runs: usize, r: &mut Results) {
    for run in 0..runs {
        for k in 0..Who::ALL.len() {
            let who = Who::ALL[(run + k) % Who::ALL.len()];
            let key = format!("restart.{SIZE}.{}", who.key());
            eprint!("{key} run {}/{runs}: ", run + 1);
            match once(t, who, r).await {
                Ok(secs) => {
                    eprintln!("{secs:.3} s");
                    r.add(&key, secs);
                }
                Err(e) => r.fail(&key, e),
            }
        }
    }
}

/// Form the cluster, delete every pod, create them again; seconds from the last one started to
/// healthy.
async fn once(t: &Tools, who: Who, r: &mut Results) -> Result<f64, String> {
    let bed = Bed::new(&format!("bench-restart-{}", who.key())).await;
    let targets = || pods::targets(&bed, 0..SIZE);
    for o in 0..SIZE {
        bed.start_pod(o, pods::cold_spec(&bed, t, who, o, SIZE)).await;
    }
    probe::wait_healthy(&targets(), HEALTHY_WITHIN).await.map_err(|e| format!("forming: {e}"))?;
    for o in 0..SIZE {
        bed.delete_pod(o).await;
    }
    for o in 0..SIZE {
        bed.start_pod(o, pods::cold_spec(&bed, t, who, o, SIZE)).await;
    }
    let t0 = Instant::now();
    let healthy = probe::wait_healthy(&targets(), HEALTHY_WITHIN).await;
    pods::keep_logs(&bed);
    let at = healthy.map_err(|e| format!("{e}\n{}", pods::tails(&bed, 0..SIZE, &Sidecars::default())))?;
    if who == Who::Bootstrap {
        cold::diagnose(&bed, "restart", SIZE, r);
    }
    Ok(at.saturating_duration_since(t0).as_secs_f64())
}
