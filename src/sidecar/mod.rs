//! `etcd-bootstrap sidecar`: a second container in each etcd pod that promotes learners and removes
//! members whose pods were scaled away, so `kubectl scale` works in both directions.
//!
//! Every interval it asks the local member (`127.0.0.1`, the pod's own name as TLS name) for its
//! status, and acts only while that member is the leader: one actor in the cluster at a time, and
//! always one with quorum. The leader's sidecar then
//! - promotes one learner that etcd reports in sync ("not in sync" is retried next interval),
//!   chosen by [`learners`];
//! - otherwise looks every pod of the set up in DNS ([`pods`]) and removes at most one member
//!   whose pod is gone, by the pure policy in [`removal`], after asking the members ([`probe`]);
//!
//! so at most one membership change is made per interval, each on a fresh member list.
//!
//! "Gone" is only ever a definite negative DNS answer that lasted longer than `--removal-delay`;
//! DNS errors and timeouts are "unknown" and restart that clock ([`removal::Clock`]). Between
//! rounds the leader's sidecar watches its etcd's peer connections ([`presence`]), so the clock
//! starts when a pod's records go, not up to an interval later. The clock
//! is kept only while this member leads: a new leader's sidecar waits a full delay before its
//! first removal.
//!
//! The HTTP endpoint ([`http`]) serves `/healthz`, `/readyz` and `/metrics` ([`metrics`]).
//!
//! Maintenance (issue 14): when a round made no membership change, the leader's sidecar makes at
//! most one maintenance call, as the pure policies in [`maintenance`] say ([`maintain`] does the
//! calls): a compaction or a defragmentation under a NOSPACE alarm, its disarm, or one member's
//! defragmentation when its database is fragmented. Every sidecar reads its client TLS files each
//! round, so a renewed Secret is used without a restart.

mod backups;
pub(crate) mod http;
pub(crate) mod learners;
pub(crate) mod maintain;
pub(crate) mod maintenance;
mod membership;
pub(crate) mod metrics;
pub(crate) mod pods;
pub(crate) mod presence;
pub(crate) mod probe;
pub(crate) mod removal;
mod role;
mod settings;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use crate::context::Context;
use crate::duration;
use crate::error::{Error, Result};
use crate::identity::{url_host, url_port};
use crate::observe::cluster::{Access, Endpoint, MemberClient, SelfReport};
use crate::observe::dns::Lookup;
use crate::observe::peer_members::{self, PeerEndpoint};
use crate::observe::peers;
use crate::observed::Member;
use crate::signals::Shutdown;

use metrics::Shared;
use role::Role;
pub(crate) use settings::SidecarSettings;

/// Run until SIGTERM or SIGINT; a signal is the normal end (exit 0).
pub(crate) async fn run(
    ctx: &Context,
    settings: &SidecarSettings,
    shutdown: &mut Shutdown,
) -> Result<ExitCode> {
    let shared = Arc::new(Shared::new(settings.stall_limit()));
    let addr = SocketAddr::from(([0, 0, 0, 0], settings.metrics_port));
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        Error::Runtime(format!(
            "cannot listen on {addr} for /healthz, /readyz and /metrics: {e}; choose another --metrics-port"
        ))
    })?;
    let server = tokio::spawn(http::serve(listener, shared.clone()));
    let mut sidecar = Sidecar::new(ctx, settings, shared);
    info!(
        pod = %ctx.identity.pod_name,
        local = %sidecar.local_endpoint.url,
        interval = %duration::format(settings.interval),
        removal_delay = %duration::format(settings.removal_delay),
        http = %addr,
        "etcd-bootstrap {} sidecar starting",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(b) = &settings.backups {
        info!(to = %b.to, every = %duration::format(b.interval), keep = b.keep, "scheduled backups (beside the leader only)");
    }
    let mut ticker = tokio::time::interval(settings.interval);
    // A round that overran (DNS timeouts) skips the ticks it missed: rounds stay on the grid.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let stop = loop {
        let now = Instant::now();
        // A removal falls due between two ticks: look then, not at the next tick.
        let due = sidecar.clock.next_due(settings.removal_delay, sidecar.round_began);
        let look = sidecar.presence.next_look(now);
        let ticker = &mut ticker;
        let wake = async move {
            tokio::select! {
                _ = ticker.tick() => Wake::Round,
                _ = sleep_until(due) => Wake::Round,
                _ = sleep_until(look) => Wake::Look,
            }
        };
        let work = async {
            match wake.await {
                Wake::Round => sidecar.round().await,
                Wake::Look => sidecar.look_between_rounds().await,
            }
        };
        tokio::select! {
            _ = work => {}
            stop = shutdown.received("running the sidecar") => break stop,
        }
    };
    server.abort();
    info!("{stop}: sidecar exiting");
    Ok(ExitCode::SUCCESS)
}

/// What woke the loop: the time for a round, or for a look at the peer connections.
enum Wake {
    Round,
    Look,
}

/// Sleep until `at`; forever when there is no such time.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

struct Sidecar<'a> {
    ctx: &'a Context,
    settings: SidecarSettings,
    shared: Arc<Shared>,
    local_endpoint: Endpoint,
    local: Option<MemberClient>,
    /// How to reach etcd: the context's, with the client TLS files as last read from disk.
    access: Access,
    maint: maintain::Maintainer,
    clock: removal::Clock,
    /// Between rounds, while leading: which member pods have lost their peer connections.
    presence: presence::Presence,
    /// A removal whose call got no answer, for the next round's member list to settle.
    unconfirmed_removal: Option<removal::Unconfirmed>,
    /// When the last round began (the metrics' `last_round` is when it ended).
    round_began: Instant,
    /// Ordinal -> the last address its name had: where to look for a member whose name is gone.
    last_ip: BTreeMap<u32, IpAddr>,
    role: Option<Role>,
    backups: Option<backups::Scheduler>,
}

impl<'a> Sidecar<'a> {
    fn new(ctx: &'a Context, settings: &SidecarSettings, shared: Arc<Shared>) -> Self {
        let local_endpoint = Endpoint {
            host: ctx.identity.own_host(),
            url: format!("{}://127.0.0.1:{}", ctx.clients.access.scheme(), ctx.member.client_port),
        };
        let backups = settings.backups.clone().map(backups::Scheduler::new);
        let settings = settings.clone();
        let clock = removal::Clock::default();
        let maint = maintain::Maintainer::new(settings.maintenance, ctx.user.client_tls_files());
        Sidecar {
            ctx,
            settings,
            shared,
            local_endpoint,
            local: None,
            access: ctx.clients.access.clone(),
            maint,
            clock,
            presence: presence::Presence::default(),
            unconfirmed_removal: None,
            round_began: Instant::now(),
            last_ip: BTreeMap::new(),
            role: None,
            backups,
        }
    }

    async fn round(&mut self) {
        self.round_began = Instant::now();
        self.step().await;
        let mut m = self.shared.lock();
        m.rounds += 1;
        m.last_round = Instant::now();
    }

    /// One round: who is the local member; if the leader, one membership change at most.
    async fn step(&mut self) {
        if let Some(access) = self.maint.certificates.check(&self.access, &self.shared) {
            self.access = access;
            self.local = None;
        }
        let report = match self.local_status().await {
            Ok(report) => report,
            Err(problem) => {
                self.local = None;
                self.forget_runs();
                self.shared
                    .lock()
                    .local_down(&format!("local member {}: {problem}", self.local_endpoint.url));
                return self.note_role(Role::Down(problem));
            }
        };
        self.shared.lock().local_up(report.is_leader());
        self.note_role(Role::of(&report));
        if !report.is_leader() {
            self.maint.stand_by(&self.shared);
            if let Some(backups) = self.backups.as_mut() {
                backups.leadership_lost();
            }
            return self.forget_runs();
        }
        if let Some(backups) = self.backups.as_mut() {
            backups
                .round(self.ctx, &self.access, &self.local_endpoint, &self.shared, self.settings.interval)
                .await;
        }
        let Some(local) = self.local.as_mut() else { return };
        let members = match local.members().await {
            Ok(members) => members,
            Err(e) => {
                // No lookups this round: no unbroken run of answers either.
                self.local = None;
                self.forget_runs();
                return self.failed("member list", &e.message);
            }
        };
        self.settle_unconfirmed_removal(&members);
        let pods = pods::look_up(
            &self.ctx.clients.resolver,
            &self.ctx.identity,
            &self.ctx.scan.peer_port_name,
            &members,
        )
        .await;
        self.last_ip.extend(pods.ips.iter().map(|(o, ip)| (*o, *ip)));
        let now = Instant::now();
        self.clock.record(&pods.answers, now);
        // A removal pending: a listed member whose pod is gone (not the probe one past the set).
        let listed: BTreeSet<u32> =
            members.iter().filter_map(|m| pods::member_ordinal(&self.ctx.identity, m)).collect();
        let pending = (self.clock.missing_since().iter())
            .filter(|(o, _)| listed.contains(*o))
            .map(|(_, since)| now.saturating_duration_since(*since))
            .max();
        let found = pods.answers.values().filter(|a| **a == removal::Answer::Found).count();
        self.shared.lock().cluster = Some(metrics::ClusterView::new(&members, found, pending));
        let id = &self.ctx.identity;
        let watched = members
            .iter()
            .filter_map(|m| pods::member_ordinal(id, m))
            .filter(|o| *o != id.ordinal)
            .filter_map(|o| pods.ips.get(&o).map(|ip| (o, *ip)))
            .collect();
        self.presence.watch(watched);
        let facts = self.facts(&members);
        if self.promote(&facts, &pods).await
            || self.consider_removal(report.member_id, &members, &facts, &pods).await
        {
            return;
        }
        let whom = self.whereabouts(report.member_id, &members, &pods);
        let Some(local) = self.local.as_mut() else { return };
        let timeout = self.ctx.probe_timeout;
        self.maint.lead(&self.access, local, &whom, report.member_id, timeout, &self.shared).await;
    }

    /// This member stopped leading, or a round saw nothing: no run of "missing" answers is
    /// unbroken any more, and nothing is watched between rounds.
    fn forget_runs(&mut self) {
        self.clock.restart();
        self.presence.stop();
    }

    /// Between two rounds, while leading: read the local etcd's peer connections and look up the
    /// names of member pods that lost theirs; a definite "no such name" starts the removal clock
    /// now rather than at the next round ([`presence`]).
    async fn look_between_rounds(&mut self) {
        let connected = probe::peer_connection_ips(self.ctx.member.peer_port);
        let ask = self.presence.pods_to_look_up(&connected, self.clock.missing_since(), Instant::now());
        if ask.is_empty() {
            return;
        }
        for (ordinal, host, answer) in
            peers::lookup_all(&self.ctx.clients.resolver, &self.ctx.identity, &ask).await
        {
            if matches!(answer, Lookup::Missing) && self.clock.start(ordinal, Instant::now()) {
                info!(
                    pod = %host,
                    "{host} is gone from DNS (its peer connections closed): its member is removed once it has been gone for {}, unless it comes back",
                    duration::format(self.settings.removal_delay)
                );
            }
        }
    }

    /// Where to find members this round: the pods' addresses from `pods`, the last ones their
    /// names had, the names DNS says are gone (`absent`), the peers `connected` to the local etcd.
    fn where_to_ask<'s>(
        &'s self,
        pods: &'s pods::Pods,
        absent: &'s BTreeSet<u32>,
        connected: &'s BTreeSet<IpAddr>,
    ) -> probe::Where<'s> {
        probe::Where {
            ips: &pods.ips,
            last_ip: &self.last_ip,
            absent,
            connected,
            scheme: self.access.scheme(),
            client_port: self.ctx.member.client_port,
        }
    }

    /// Every member and where to reach it for maintenance: the local one at 127.0.0.1, the others
    /// at their best known address ([`probe::best_ip`]: never the last address of a name DNS
    /// says is gone, where a status call would only wait out its timeout every round).
    fn whereabouts(&self, local: u64, members: &[Member], pods: &pods::Pods) -> Vec<maintain::Whom> {
        let id = &self.ctx.identity;
        let (absent, connected) = (pods.absent(), BTreeSet::new());
        let at = self.where_to_ask(pods, &absent, &connected);
        members
            .iter()
            .map(|m| {
                let ordinal = pods::member_ordinal(id, m);
                let url = m.client_urls.first().map(String::as_str).unwrap_or_default();
                let ip = probe::best_ip(ordinal, url, &at);
                let endpoint = match ip {
                    _ if m.id == local => Some(self.local_endpoint.clone()),
                    None => None,
                    Some(ip) => {
                        let host =
                            url_host(url).map(str::to_string).or_else(|| ordinal.map(|o| id.peer_host(o)));
                        let addr = SocketAddr::new(ip, url_port(url).unwrap_or(self.ctx.member.client_port));
                        Some(Endpoint {
                            host: host.unwrap_or_else(|| ip.to_string()),
                            url: format!("{}://{addr}", self.access.scheme()),
                        })
                    }
                };
                maintain::Whom {
                    id: m.id,
                    label: pods::member_label(id, m),
                    is_learner: m.is_learner,
                    endpoint,
                }
            })
            .collect()
    }

    /// Status of the local member, connecting first when needed.
    async fn local_status(&mut self) -> std::result::Result<SelfReport, String> {
        let timeout = self.ctx.probe_timeout;
        if self.local.is_none() {
            self.local = Some(MemberClient::connect(&self.access, &self.local_endpoint, timeout).await?);
        }
        let report = match self.local.as_mut() {
            Some(local) => local.db_report(timeout).await?,
            None => return Err("not connected".into()),
        };
        let cluster = self.cluster_version(timeout).await;
        let mut m = self.shared.lock();
        (m.maintenance.db_size, m.maintenance.db_in_use) = (Some(report.db_size), Some(report.db_in_use));
        m.versions = metrics::VersionsSeen {
            member: report.version.map(|v| (self.ctx.identity.pod_name.clone(), v.to_string())),
            cluster,
        };
        Ok(report.self_report())
    }

    /// The cluster version as the local member's peer port tells it (`GET /version`), for the
    /// metrics; None where undecided or not told.
    async fn cluster_version(&self, timeout: Duration) -> Option<String> {
        let endpoint = PeerEndpoint {
            host: self.ctx.identity.own_host(),
            addr: SocketAddr::from(([127, 0, 0, 1], self.ctx.member.peer_port)),
        };
        let told = peer_members::ask_version(&self.ctx.clients.peer_access, &endpoint, timeout).await.ok()?;
        told.cluster.map(|c| c.minor_line_text())
    }

    fn note_role(&mut self, role: Role) {
        if self.role.as_ref() != Some(&role) {
            role.log(&self.local_endpoint.url, &duration::format(self.settings.interval));
            self.role = Some(role);
        }
    }

    fn failed(&self, call: &str, message: &str) {
        warn!(call, "{call} failed: {message}");
        self.shared.lock().error(&format!("{call}: {message}"));
    }
}
