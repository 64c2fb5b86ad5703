//! Scale-up (3 -> 4, a voter or a learner) and scale-down (4 -> 3) of a running cluster, repeated
//! on one bed: the new pod 3 joins, is deleted again, its member removed, its volume wiped.
//!
//! The floor is an operator doing it by hand with no delay: `member add` then etcd with a static
//! `existing` configuration (and, for a learner, `member promote` retried every 100 ms); on
//! scale-down the pod is deleted and `member remove` follows at once. etcd-bootstrap runs as every
//! pod's entrypoint with the sidecar beside it (`--interval 500ms --removal-delay 5s`). The shell
//! script cannot take part: it never calls `member add` or `member remove`.

use std::time::{Duration, Instant};

use crate::bed::Bed;
use crate::pods::{self, Sidecars, Tools, Who};
use crate::probe;
use crate::results::Results;

const FORM_WITHIN: Duration = Duration::from_secs(120);
const JOIN_WITHIN: Duration = Duration::from_secs(90);
const REMOVE_WITHIN: Duration = Duration::from_secs(90);
/// Pause between a join and the deletion, so one figure does not bleed into the other.
const SETTLE: Duration = Duration::from_secs(1);
/// How long the sidecars' CPU is sampled with nothing to do.
pub const IDLE_SAMPLE: Duration = Duration::from_secs(30);
/// etcd up to 3.5.29 refuses `member add` ("unhealthy cluster") until the member asked has been
/// connected to every voter for 5 s: a scale-up comes long after the cluster formed, so wait that
/// out once before the first join instead of timing etcd's rule.
pub const AFTER_FORMING: Duration = Duration::from_secs(6);

pub async fn run(t: &Tools, runs: usize, r: &mut Results) {
    for learner in [false, true] {
        for who in [Who::Floor, Who::Bootstrap] {
            one_bed(t, who, learner, runs, r).await;
        }
    }
}

fn mode(learner: bool) -> &'static str {
    if learner {
        "learner"
    } else {
        "voter"
    }
}

async fn one_bed(t: &Tools, who: Who, learner: bool, runs: usize, r: &mut Results) {
    let m = mode(learner);
    let (join_key, remove_key) = (format!("join.{m}.{}", who.key()), format!("remove.{m}.{}", who.key()));
    let bed = Bed::new(&format!("bench-scale-{m}-{}", who.key())).await;
    let mut sidecars = Sidecars::default();
    for o in 0..3 {
        let spec = match who {
            Who::Bootstrap => pods::bootstrap_spec(&bed, t, o, false),
            _ => pods::cold_spec(&bed, t, Who::Floor, o, 3),
        };
        bed.start_pod(o, spec).await;
        if who == Who::Bootstrap {
            if let Err(e) = sidecars.start(&bed, t, o).await {
                r.fail(&join_key, format!("forming the cluster: {e}"));
                return;
            }
        }
    }
    if let Err(e) = probe::wait_healthy(&pods::targets(&bed, 0..3), FORM_WITHIN).await {
        r.fail(&join_key, format!("forming the cluster: {e}\n{}", pods::tails(&bed, 0..3, &sidecars)));
        return;
    }
    tokio::time::sleep(AFTER_FORMING).await;
    if who == Who::Bootstrap {
        // The sidecars' CPU with nothing to do, as seconds per hour (the leader's is the largest).
        let before: Vec<Option<f64>> = (0..3).map(|o| sidecars.cpu_secs(o)).collect();
        let t0 = Instant::now();
        tokio::time::sleep(IDLE_SAMPLE).await;
        per_hour(r, "cpu.sidecar.idle", &sidecars, &before, t0);
    }
    let series = ((0..3).map(|o| sidecars.cpu_secs(o)).collect::<Vec<_>>(), Instant::now());
    for run in 0..runs {
        eprint!("{join_key} run {}/{runs}: ", run + 1);
        match join(&bed, t, who, learner, &mut sidecars).await {
            Ok(secs) => {
                eprintln!("{secs:.3} s");
                r.add(&join_key, secs);
            }
            Err(e) => {
                r.fail(&join_key, format!("{e}\n{}", pods::tails(&bed, 0..4, &sidecars)));
                return;
            }
        }
        tokio::time::sleep(SETTLE).await;
        eprint!("{remove_key} run {}/{runs}: ", run + 1);
        match remove(&bed, who, &mut sidecars).await {
            Ok((secs, after_records)) => {
                eprintln!("{secs:.3} s ({after_records:.3} s after the records went)");
                r.add(&remove_key, secs);
                r.add(&format!("{remove_key}.after_records"), after_records);
            }
            Err(e) => {
                r.fail(&remove_key, format!("{e}\n{}", pods::tails(&bed, 0..3, &sidecars)));
                return;
            }
        }
        if let Err(e) = probe::wait_healthy(&pods::targets(&bed, 0..3), FORM_WITHIN).await {
            r.fail(&remove_key, format!("after the removal: {e}"));
            return;
        }
        bed.wipe_volume(3);
    }
    pods::keep_logs(&bed);
    if who == Who::Bootstrap {
        // Through the whole scale-up/scale-down series (pods 0-2's sidecars: one leads).
        per_hour(r, "cpu.sidecar.scale", &sidecars, &series.0, series.1);
        for o in 0..3 {
            match sidecars.memory_kib(o) {
                Some((rss, hwm)) => {
                    r.add("mem.sidecar.rss", rss as f64 / 1024.0);
                    r.add("mem.sidecar.hwm", hwm as f64 / 1024.0);
                }
                None => r.fail("mem.sidecar.rss", format!("no sidecar process for etcd-{o}")),
            }
        }
    }
}

/// Seconds from the new pod's start (for the floor: from the hand-made `member add`) to a
/// healthy cluster of four started voters.
async fn join(bed: &Bed, t: &Tools, who: Who, learner: bool, sidecars: &mut Sidecars) -> Result<f64, String> {
    let via = pods::ips(bed, 0..3);
    let t0 = Instant::now();
    let mut promoter = None;
    match who {
        Who::Bootstrap => {
            bed.start_pod(3, pods::bootstrap_spec(bed, t, 3, learner)).await;
        }
        _ => {
            let (id, cluster) = pods::member_add(&via, "etcd-3", &pods::peer_url(3), learner).await?;
            bed.start_pod(3, pods::floor_join_spec(bed, t, 3, &cluster)).await;
            if learner {
                promoter = Some(tokio::spawn(pods::promote_when_ready(via.clone(), id)));
            }
        }
    }
    let targets = pods::targets(bed, 0..4);
    let (healthy, sidecar) = tokio::join!(probe::wait_healthy(&targets, JOIN_WITHIN), async {
        match who {
            Who::Bootstrap => sidecars.start(bed, t, 3).await,
            _ => Ok(()),
        }
    });
    if let Some(p) = promoter {
        p.abort();
    }
    sidecar?;
    Ok(healthy?.saturating_duration_since(t0).as_secs_f64())
}

/// Seconds from the deletion of pod 3 to its member's removal, and from its DNS records going
/// (once its etcd has ended: where the removal delay's clock can start) to the removal.
async fn remove(bed: &Bed, who: Who, sidecars: &mut Sidecars) -> Result<(f64, f64), String> {
    let via = pods::ips(bed, 0..3);
    let t0 = Instant::now();
    let delete = async {
        bed.delete_pod(3).await;
        Instant::now()
    };
    let records_gone = match who {
        Who::Bootstrap => tokio::join!(sidecars.stop(3), delete).1,
        _ => {
            let records_gone = delete.await;
            pods::member_remove(&via, 3).await?;
            records_gone
        }
    };
    let gone = probe::wait_member_gone(&via, "etcd-3", REMOVE_WITHIN).await?;
    Ok((
        gone.saturating_duration_since(t0).as_secs_f64(),
        gone.saturating_duration_since(records_gone).as_secs_f64(),
    ))
}

/// Each of pods 0-2's sidecars' CPU seconds since `before` (taken at `t0`), per hour.
fn per_hour(r: &mut Results, key: &str, sidecars: &Sidecars, before: &[Option<f64>], t0: Instant) {
    let hours = t0.elapsed().as_secs_f64() / 3600.0;
    for (o, was) in (0u32..).zip(before) {
        match (was, sidecars.cpu_secs(o)) {
            (Some(was), Some(now)) if hours > 0.0 => r.add(key, (now - was) / hours),
            _ => r.fail(key, format!("no CPU figure for etcd-{o}'s sidecar")),
        }
    }
}
