//! `etcd-bootstrap sidecar`: a second container in each etcd pod that promotes learners and removes
//! members whose pods were scaled away (so `kubectl scale` works in both directions), keeps the
//! databases in shape, takes scheduled backups, and serves `/healthz`, `/readyz` and `/metrics`.
//!
//! It is a set of independent jobs ([`jobs`]), each its own tokio task with its own cadence and the
//! one error policy, in the shape of kube-rs's `reconcile -> Action` ([`job`]): a backup that takes
//! minutes delays no removal, no maintenance and no probe. The jobs that change the cluster act
//! only while the local member is the leader (one actor, always with quorum). They share only what
//! [`coordination`] holds: who leads, the snapshot being taken and its revision, the member being
//! defragmented, one cluster-changing call at a time, and the client TLS files as last read.
//!
//! - [`policy`]: the pure policies (learners, removal and its clock, presence, defragmentation,
//!   NOSPACE, certificates, continuous backups), table-tested;
//! - [`jobs`]: the jobs and the calls that carry the policies out;
//! - [`liveness`]: which job is stuck (`/healthz`), by pass age and bytes moved;
//! - [`http`] and [`metrics`]: the endpoint and what it shows.

pub(crate) mod coordination;
pub(crate) mod http;
pub(crate) mod job;
pub(crate) mod jobs;
pub(crate) mod liveness;
pub(crate) mod metrics;
pub(crate) mod policy;
mod settings;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::info;

use crate::context::Context;
use crate::duration;
use crate::error::{Error, Result};
use crate::observe::cluster::Endpoint;
use crate::signals::Shutdown;

use coordination::Coordination;
use job::Job;
use jobs::Sidecar;
use liveness::{Beat, Board};
use metrics::Shared;
pub(crate) use settings::SidecarSettings;

/// Run until SIGTERM or SIGINT; a signal is the normal end (exit 0).
pub(crate) async fn run(
    ctx: Context,
    settings: SidecarSettings,
    shutdown: &mut Shutdown,
) -> Result<ExitCode> {
    let shared = Arc::new(Shared::new());
    let addr = SocketAddr::from(([0, 0, 0, 0], settings.metrics_port));
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        Error::Runtime(format!(
            "cannot listen on {addr} for /healthz, /readyz and /metrics: {e}; choose another --metrics-port"
        ))
    })?;
    let local_endpoint = Endpoint {
        host: ctx.identity.own_host(),
        url: format!("{}://127.0.0.1:{}", ctx.clients.access.scheme(), ctx.member.client_port),
    };
    info!(
        pod = %ctx.identity.pod_name,
        local = %local_endpoint.url,
        interval = %duration::format(settings.interval),
        removal_delay = %duration::format(settings.removal_delay),
        http = %addr,
        "etcd-bootstrap {} sidecar starting",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(b) = &settings.backups {
        info!(to = %b.to, every = %duration::format(b.interval), keep = b.keep, "scheduled backups (beside the leader only)");
        if let Some(d) = b.delta_interval {
            info!(every = %duration::format(d), "continuous backups: delta segments (beside the leader only)");
        }
    }
    let coordination = Arc::new(Coordination::new(ctx.clients.access.clone()));
    let backups = settings.backups.clone();
    let stall_limit = settings.stall_limit();
    let s = Arc::new(Sidecar {
        ctx,
        settings,
        coordination: coordination.clone(),
        shared: shared.clone(),
        local_endpoint,
    });

    let mut jobs = Jobs { tasks: JoinSet::new(), beats: Vec::new(), coordination, shared: shared.clone() };
    jobs.launch(jobs::leadership::LeadershipJob::new(s.clone()), None);
    jobs.launch(jobs::certificates::CertificatesJob::new(s.clone()), None);
    jobs.launch(jobs::membership::MembershipJob::new(s.clone()), None);
    jobs.launch(jobs::maintenance::MaintenanceJob::new(s.clone()), None);
    if let Some(schedule) = backups {
        if let Some(every) = schedule.delta_interval {
            let beat = Beat::new(jobs::deltas::DeltasJob::NAME);
            jobs.launch(
                jobs::deltas::DeltasJob::new(s.clone(), schedule.clone(), every, beat.clone()),
                Some(beat),
            );
        }
        let beat = Beat::new(jobs::backups::BackupsJob::NAME);
        jobs.launch(jobs::backups::BackupsJob::new(s.clone(), schedule, beat.clone()), Some(beat));
    }
    let Jobs { mut tasks, beats, .. } = jobs;
    let board = Arc::new(Board { beats, limit: stall_limit });
    tasks.spawn(async move {
        http::serve(listener, shared, board).await;
        "http"
    });

    let outcome = tokio::select! {
        stop = shutdown.received("running the sidecar") => Ok(stop),
        ended = tasks.join_next() => Err(match ended {
            Some(Ok(name)) => format!("the {name} job ended"),
            Some(Err(e)) => format!("a job failed: {e}"),
            None => "no job runs".to_string(),
        }),
    };
    tasks.abort_all();
    match outcome {
        Ok(stop) => {
            info!("{stop}: sidecar exiting");
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => Err(Error::Runtime(format!("{why}: the sidecar stops so that it is restarted"))),
    }
}

/// The running jobs and their heartbeats.
struct Jobs {
    tasks: JoinSet<&'static str>,
    beats: Vec<Arc<Beat>>,
    coordination: Arc<Coordination>,
    shared: Arc<Shared>,
}

impl Jobs {
    /// Start `job` as its own task, with `beat` as its heartbeat (a new one when None).
    fn launch<J: Job>(&mut self, job: J, beat: Option<Arc<Beat>>) {
        let beat = beat.unwrap_or_else(|| Beat::new(J::NAME));
        self.beats.push(beat.clone());
        let (coordination, shared) = (self.coordination.clone(), self.shared.clone());
        self.tasks.spawn(async move {
            job::run(job, coordination, shared, beat).await;
            J::NAME
        });
    }
}
