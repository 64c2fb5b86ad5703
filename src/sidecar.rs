//! `etcd-bootstrap sidecar`: a second container in each etcd pod that promotes learners and removes
//! members whose pods were scaled away, so `kubectl scale` works in both directions.
//!
//! Every interval it asks the local member (`127.0.0.1`, the pod's own name as TLS name) for its
//! status, and acts only while that member is the leader: one actor in the cluster at a time, and
//! always one with quorum. The leader's sidecar then
//! - promotes one learner that etcd reports in sync ("not in sync" is retried next interval);
//! - otherwise looks every pod of the set up in DNS and removes at most one member whose pod is
//!   gone, by the pure policy in [`removal`];
//!
//! so at most one membership change is made per interval, each on a fresh member list.
//!
//! "Gone" is only ever a definite negative DNS answer that lasted longer than `--removal-delay`;
//! DNS errors and timeouts are "unknown" and restart that clock. The clock is kept only while this
//! member leads: a new leader's sidecar waits a full delay before its first removal.
//!
//! The HTTP endpoint ([`http`]) serves `/healthz`, `/readyz` and `/metrics` ([`metrics`]).

pub mod http;
pub mod metrics;
pub mod removal;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use crate::cluster::{self, CallError, Endpoint, MemberClient};
use crate::config::SidecarArgs;
use crate::context::Context;
use crate::dns::Lookup;
use crate::duration;
use crate::error::{Error, Result};
use crate::identity::{self, Identity};
use crate::run::url_host;
use crate::signals::Shutdown;
use crate::view::Member;

use metrics::{PromotionSkip, Shared};
use removal::{Answer, Facts, MemberFacts, Pick, Removal, Skip, SkipReason};

/// Ordinals spanning more than this are looked up one by one instead of as a range.
const MAX_ORDINAL_SPAN: u32 = 256;

/// The sidecar's own settings, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub interval: Duration,
    pub removal_delay: Duration,
    pub metrics_port: u16,
}

impl Settings {
    /// Check the sidecar's options against each other and against etcd's settings.
    pub fn new(args: &SidecarArgs, ctx: &Context) -> Result<Self> {
        if args.interval.is_zero() {
            return Err(Error::config("--interval 0s: give a positive duration such as 10s"));
        }
        if args.removal_delay.is_zero() {
            return Err(Error::config(
                "--removal-delay 0s: a restarting pod is absent from DNS for a while, and its member must not be removed for that; give a duration such as 2m",
            ));
        }
        let port = args.metrics_port;
        if port == 0 {
            return Err(Error::config("--metrics-port 0: give a port such as 2381"));
        }
        if port == ctx.member.client_port || port == ctx.member.peer_port {
            return Err(Error::config(format!(
                "--metrics-port {port} is etcd's client or peer port in this pod: choose another (default 2381)"
            )));
        }
        let etcd_metrics = ctx.user.get("listen-metrics-urls").unwrap_or_default();
        if etcd_metrics.split(',').filter_map(|u| url_port(u.trim())).any(|p| p == port) {
            return Err(Error::config(format!(
                "--metrics-port {port}: etcd's --listen-metrics-urls uses that port in this pod; choose another"
            )));
        }
        Ok(Settings { interval: args.interval, removal_delay: args.removal_delay, metrics_port: port })
    }

    /// /healthz fails when no round has ended for this long: a round is bounded by its calls'
    /// timeouts (well under two minutes), so only a stuck loop gets there.
    fn stall_limit(&self) -> Duration {
        self.interval.saturating_mul(3).max(self.interval.saturating_add(Duration::from_secs(120)))
    }
}

/// The port of `scheme://host:port[/...]`.
fn url_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let host_port = rest.split('/').next()?;
    host_port.rsplit_once(':')?.1.parse().ok()
}

/// Run until SIGTERM or SIGINT; a signal is the normal end (exit 0).
pub async fn run(ctx: &Context, settings: &Settings, shutdown: &mut Shutdown) -> Result<ExitCode> {
    let shared = Arc::new(Shared::new(settings.stall_limit()));
    let addr = SocketAddr::from(([0, 0, 0, 0], settings.metrics_port));
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        Error::config(format!(
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
    let mut ticker = tokio::time::interval(settings.interval);
    // A round that overran (DNS timeouts) skips the ticks it missed: rounds stay on the grid.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let stop = loop {
        // A removal falls due between two ticks: look then, not at the next tick.
        let due = sidecar.removal_due();
        let ticker = &mut ticker;
        let wake = async move {
            match due {
                Some(due) => tokio::select! {
                    _ = ticker.tick() => {}
                    _ = tokio::time::sleep_until(due.into()) => {}
                },
                None => {
                    ticker.tick().await;
                }
            }
        };
        tokio::select! {
            _ = async { wake.await; sidecar.round().await } => {}
            stop = shutdown.received("running the sidecar") => break stop,
        }
    };
    server.abort();
    info!("{stop}: sidecar exiting");
    Ok(ExitCode::SUCCESS)
}

/// How the local member was found in the last round (logged when it changes).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Down(String),
    NoLeader,
    Follower(u64),
    Learner,
    Leader,
}

/// What DNS said this round.
#[derive(Debug, Default)]
struct Observed {
    answers: BTreeMap<u32, Answer>,
    /// Current addresses of the pods that exist.
    ips: BTreeMap<u32, IpAddr>,
    pod_list_known: bool,
    /// Why an answer was unknown (first one), for the log.
    unknown: Option<String>,
}

struct Sidecar<'a> {
    ctx: &'a Context,
    settings: Settings,
    shared: Arc<Shared>,
    local_endpoint: Endpoint,
    local: Option<MemberClient>,
    /// Ordinal -> when its name first answered "missing", in an unbroken run of such answers
    /// seen while this member leads.
    missing_since: BTreeMap<u32, Instant>,
    /// Ordinal -> the last address its name had: where to look for a member whose name is gone.
    last_ip: BTreeMap<u32, IpAddr>,
    role: Option<Role>,
}

impl<'a> Sidecar<'a> {
    fn new(ctx: &'a Context, settings: &Settings, shared: Arc<Shared>) -> Self {
        let local_endpoint = Endpoint {
            host: ctx.identity.own_host(),
            url: format!("{}://127.0.0.1:{}", ctx.access.scheme(), ctx.member.client_port),
        };
        Sidecar {
            ctx,
            settings: settings.clone(),
            shared,
            local_endpoint,
            local: None,
            missing_since: BTreeMap::new(),
            last_ip: BTreeMap::new(),
            role: None,
        }
    }

    /// When the earliest pod name missing from DNS will have been missing for longer than the
    /// removal delay (still ahead; none while this member does not lead).
    fn removal_due(&self) -> Option<Instant> {
        let now = Instant::now();
        let since = self.missing_since.values().min()?;
        let due = *since + self.settings.removal_delay + Duration::from_millis(1);
        (due > now).then_some(due)
    }

    async fn round(&mut self) {
        self.step().await;
        let mut m = self.shared.lock();
        m.rounds += 1;
        m.last_round = Instant::now();
    }

    async fn step(&mut self) {
        let report = match self.local_status().await {
            Ok(report) => report,
            Err(problem) => {
                self.local = None;
                self.missing_since.clear();
                {
                    let mut m = self.shared.lock();
                    m.local_member_up = false;
                    m.leader = false;
                    m.error(&format!("local member {}: {problem}", self.local_endpoint.url));
                }
                self.note_role(Role::Down(problem));
                return;
            }
        };
        {
            let mut m = self.shared.lock();
            m.local_member_up = true;
            m.leader = report.is_leader();
        }
        if !report.is_leader() {
            self.missing_since.clear();
            let role = match (report.is_learner, report.leader) {
                (true, _) => Role::Learner,
                (false, 0) => Role::NoLeader,
                (false, leader) => Role::Follower(leader),
            };
            self.note_role(role);
            return;
        }
        self.note_role(Role::Leader);
        let Some(local) = self.local.as_mut() else { return };
        let members = match local.members().await {
            Ok(members) => members,
            Err(e) => {
                // No lookups this round: no unbroken run of answers either.
                self.local = None;
                self.missing_since.clear();
                self.failed("member list", e.message());
                return;
            }
        };
        let observed = self.observe_dns(&members).await;
        if self.promote(&members, &observed).await {
            return;
        }
        self.consider_removal(report.member_id, &members, &observed).await;
    }

    /// Status of the local member, connecting first when needed.
    async fn local_status(&mut self) -> std::result::Result<cluster::SelfReport, String> {
        let timeout = self.ctx.probe_timeout;
        if self.local.is_none() {
            self.local = Some(MemberClient::connect(&self.ctx.access, &self.local_endpoint, timeout).await?);
        }
        match self.local.as_mut() {
            Some(local) => local.status(timeout).await,
            None => Err("not connected".into()),
        }
    }

    fn note_role(&mut self, role: Role) {
        if self.role.as_ref() == Some(&role) {
            return;
        }
        let every = duration::format(self.settings.interval);
        match &role {
            Role::Down(problem) => warn!(
                local = %self.local_endpoint.url,
                "the local member does not answer ({problem}); not ready, asking again every {every}"
            ),
            Role::NoLeader => info!("the cluster has no leader now: standing by"),
            Role::Learner => info!("the local member is a learner: standing by (the leader's sidecar promotes it)"),
            Role::Follower(leader) => info!(
                leader = %format!("{leader:x}"),
                "the local member is not the leader: standing by (only the leader's sidecar acts)"
            ),
            Role::Leader => info!(
                "the local member is the leader: promoting learners in sync and removing members whose pods are gone"
            ),
        }
        self.role = Some(role);
    }

    fn failed(&self, call: &str, message: &str) {
        warn!(call, "{call} failed: {message}");
        self.shared.lock().error(&format!("{call}: {message}"));
    }

    /// Look up every pod of the set that matters: the members', those the pod list (SRV) names,
    /// this one, every ordinal in between and one past the highest (a pod about to join).
    async fn observe_dns(&mut self, members: &[Member]) -> Observed {
        let id = &self.ctx.identity;
        let mut known: BTreeSet<u32> = members.iter().filter_map(|m| member_ordinal(id, m)).collect();
        known.insert(id.ordinal);
        let mut observed = Observed { pod_list_known: true, ..Observed::default() };
        if !id.domain.is_empty() {
            let srv = format!("_{}._tcp.{}", self.ctx.scan.peer_port_name, id.domain);
            match self.ctx.resolver.lookup_srv(&srv).await {
                Lookup::Found(targets) => {
                    known.extend(targets.iter().filter_map(|t| id.ordinal_of_host(&t.target)))
                }
                // No SRV records at all: the service has no such named port; ordinals are enough.
                Lookup::Missing => {}
                Lookup::Unknown(why) => {
                    observed.pod_list_known = false;
                    observed.unknown = Some(why);
                }
            }
        }
        let ordinals = lookup_set(&known);
        let mut lookups = JoinSet::new();
        for &ordinal in &ordinals {
            let resolver = self.ctx.resolver.clone();
            let host = id.peer_host(ordinal);
            lookups.spawn(async move { (ordinal, resolver.lookup_ips(&host).await) });
        }
        let mut results = Vec::new();
        while let Some(joined) = lookups.join_next().await {
            if let Ok(result) = joined {
                results.push(result);
            }
        }
        // Taken after the answers: a later "first seen missing" is the cautious one.
        let now = Instant::now();
        for (ordinal, answer) in results {
            match answer {
                Lookup::Found(ips) => {
                    observed.answers.insert(ordinal, Answer::Found);
                    if let Some(ip) = ips.first() {
                        observed.ips.insert(ordinal, *ip);
                        self.last_ip.insert(ordinal, *ip);
                    }
                    self.missing_since.remove(&ordinal);
                }
                Lookup::Missing => {
                    observed.answers.insert(ordinal, Answer::Missing);
                    self.missing_since.entry(ordinal).or_insert(now);
                }
                Lookup::Unknown(why) => {
                    debug!(ordinal, "dns: {why}");
                    observed.answers.insert(ordinal, Answer::Unknown);
                    observed.unknown.get_or_insert(why);
                    self.missing_since.remove(&ordinal);
                }
            }
        }
        // A name not looked up this round has no unbroken run of answers.
        self.missing_since.retain(|o, _| observed.answers.contains_key(o));
        observed
    }

    /// Promote the first learner etcd accepts; true when one was promoted (the one membership
    /// change of this round).
    async fn promote(&mut self, members: &[Member], observed: &Observed) -> bool {
        let id = &self.ctx.identity;
        let mut learners: Vec<&Member> = members.iter().filter(|m| m.is_learner).collect();
        learners.sort_by_key(|m| (member_ordinal(id, m), m.id));
        for learner in learners {
            let label = member_label(id, learner);
            let ordinal = member_ordinal(id, learner);
            if ordinal.is_some_and(|o| observed.answers.get(&o) == Some(&Answer::Missing)) {
                self.promotion_skipped(PromotionSkip::PodGone, &label, "its pod is absent from DNS".into());
                continue;
            }
            let Some(local) = self.local.as_mut() else { return false };
            match local.promote(learner.id).await {
                Ok(()) => {
                    self.shared.lock().promotions += 1;
                    info!(action = "promote", member = %label, "promoted learner {label}: etcd reports it in sync with the leader");
                    return true;
                }
                Err(CallError::Transient(m)) => {
                    let reason =
                        if m.contains("in sync") { PromotionSkip::NotInSync } else { PromotionSkip::Refused };
                    self.promotion_skipped(reason, &label, format!("{m}; trying again next interval"));
                }
                Err(CallError::AlreadyDone(m)) => {
                    info!(member = %label, "learner {label} is gone already: {m}")
                }
                // Promoted by an earlier leader's sidecar after our member list was read.
                Err(CallError::Fatal(m)) if m.contains("can only promote a learner member") => {
                    info!(member = %label, "{label} is a voting member already: {m}")
                }
                Err(CallError::Fatal(m)) => self.failed("member promote", &m),
            }
        }
        false
    }

    fn promotion_skipped(&self, reason: PromotionSkip, label: &str, detail: String) {
        *self.shared.lock().promotions_skipped.entry(reason).or_default() += 1;
        info!(action = "skip-promotion", reason = reason.as_str(), member = %label, "not promoting learner {label}: {detail}");
    }

    async fn consider_removal(&mut self, leader: u64, members: &[Member], observed: &Observed) {
        let id = &self.ctx.identity;
        let facts_members: Vec<MemberFacts> = members
            .iter()
            .map(|m| MemberFacts {
                id: m.id,
                label: member_label(id, m),
                ordinal: member_ordinal(id, m),
                is_learner: m.is_learner,
            })
            .collect();
        let mut facts = Facts {
            members: &facts_members,
            leader,
            dns: &observed.answers,
            missing_since: &self.missing_since,
            pod_list_known: observed.pod_list_known,
            now: Instant::now(),
            delay: self.settings.removal_delay,
        };
        let verdict = match removal::pick(&facts) {
            Pick::Nothing => return,
            Pick::Skip(skip) => Err(skip),
            Pick::Candidate(candidate) => {
                let answers = self.probe(leader, candidate, members, observed).await;
                facts.now = Instant::now();
                removal::judge(&facts, candidate, &answers)
            }
        };
        match verdict {
            Ok(removal) => self.remove(removal).await,
            Err(skip) => self.removal_skipped(skip, observed),
        }
    }

    /// Which members answer as themselves: the candidate and every voter but the leader, each at
    /// its current address, else the last address its name had (unless its name is now absent
    /// from DNS), else an IP in its client URL; the candidate also at every connected peer. A
    /// member with no address does not answer; a refused connection is an answer at once.
    async fn probe(
        &self,
        leader: u64,
        candidate: u64,
        members: &[Member],
        observed: &Observed,
    ) -> BTreeMap<u64, bool> {
        let id = &self.ctx.identity;
        let mut probes = JoinSet::new();
        let mut answers = BTreeMap::new();
        // A pod recreated with a new IP that DNS stopped answering for before this sidecar looked
        // it up has only a stale address here; where its member is alive, it is connected to the
        // local member's peer port: look for the candidate at every such peer too.
        let connected = peer_connection_ips(self.ctx.member.peer_port);
        for m in members.iter().filter(|m| m.id != leader && (!m.is_learner || m.id == candidate)) {
            let ordinal = member_ordinal(id, m);
            let url = m.client_urls.first().map(String::as_str).unwrap_or_default();
            let ip = ordinal
                .and_then(|o| match observed.answers.get(&o) {
                    // A pod absent from DNS has no address to wait for: the last one it had
                    // belongs to no one (a probe there only times out), and where its member
                    // still runs it is connected to the local member's peer port (below).
                    Some(Answer::Missing) => None,
                    _ => observed.ips.get(&o).or_else(|| self.last_ip.get(&o)).copied(),
                })
                .or_else(|| url_host(url).and_then(|h| h.parse::<IpAddr>().ok()));
            let mut ips: BTreeSet<IpAddr> = ip.into_iter().collect();
            if m.id == candidate {
                ips.extend(connected.iter().copied());
            }
            answers.insert(m.id, false);
            let scheme = url.split_once("://").map_or(self.ctx.access.scheme(), |(s, _)| {
                if s == "https" {
                    "https"
                } else {
                    "http"
                }
            });
            let port = url_port(url).unwrap_or(self.ctx.member.client_port);
            for ip in ips {
                let host = url_host(url)
                    .map(str::to_string)
                    .or_else(|| ordinal.map(|o| id.peer_host(o)))
                    .unwrap_or_else(|| ip.to_string());
                let addr = SocketAddr::new(ip, port);
                let endpoint = Endpoint { host, url: format!("{scheme}://{addr}") };
                let access = self.ctx.access.clone();
                let timeout = self.ctx.probe_timeout;
                let member_id = m.id;
                probes.spawn(async move {
                    let report = cluster::status_at(&access, &endpoint, timeout).await;
                    (member_id, endpoint, report)
                });
            }
        }
        while let Some(joined) = probes.join_next().await {
            let Ok((member_id, endpoint, report)) = joined else { continue };
            let answered = match report {
                Ok(r) if r.member_id == member_id => true,
                Ok(r) => {
                    debug!(member = %format!("{member_id:x}"), url = %endpoint.url, "answered as member {:x} instead", r.member_id);
                    false
                }
                Err(why) => {
                    debug!(member = %format!("{member_id:x}"), url = %endpoint.url, "no answer: {why}");
                    false
                }
            };
            *answers.entry(member_id).or_insert(false) |= answered;
        }
        answers
    }

    async fn remove(&mut self, removal: Removal) {
        let Some(local) = self.local.as_mut() else { return };
        let label = removal.label.clone();
        match local.remove(removal.id).await {
            Ok(()) => {
                self.shared.lock().removals += 1;
                info!(action = "remove", member = %label, "removed member {label}: {}", removal.reason);
            }
            Err(CallError::AlreadyDone(m)) => {
                info!(member = %label, "member {label} was removed already: {m}")
            }
            Err(CallError::Transient(m)) => self.removal_skipped(
                Skip {
                    reason: SkipReason::EtcdRefused,
                    member: Some(label),
                    detail: format!("etcd refused the removal for now ({m}); trying again next interval"),
                },
                &Observed::default(),
            ),
            Err(CallError::Fatal(m)) => self.failed("member remove", &m),
        }
    }

    fn removal_skipped(&self, skip: Skip, observed: &Observed) {
        *self.shared.lock().removals_skipped.entry(skip.reason).or_default() += 1;
        let dns = match (&skip.reason, &observed.unknown) {
            (SkipReason::DnsUnknown, Some(why)) => format!(" ({why})"),
            _ => String::new(),
        };
        let reason = skip.reason.as_str();
        match skip.member {
            Some(member) => {
                info!(action = "skip-removal", reason, member = %member, "not removing {member}: {}{dns}", skip.detail)
            }
            None => info!(action = "skip-removal", reason, "no removal this round: {}{dns}", skip.detail),
        }
    }
}

/// Remote addresses of the established TCP connections from or to `peer_port` in this network
/// namespace (the pod's: the sidecar shares it with etcd), loopback left out: the peers the local
/// member is connected to. Empty where `/proc/net/tcp` cannot be read.
fn peer_connection_ips(peer_port: u16) -> BTreeSet<IpAddr> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|text| established_peers(&text, peer_port))
        .collect()
}

/// [`peer_connection_ips`] from the text of `/proc/net/tcp` or `/proc/net/tcp6`.
fn established_peers(text: &str, peer_port: u16) -> Vec<IpAddr> {
    const ESTABLISHED: &str = "01";
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let (local, remote, state) = (fields.next()?, fields.next()?, fields.next()?);
            let (_, local_port) = proc_net_addr(local)?;
            let (ip, remote_port) = proc_net_addr(remote)?;
            let peer = local_port == peer_port || remote_port == peer_port;
            (state == ESTABLISHED && peer && !ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
        })
        .collect()
}

/// `0100007F:094C` (IPv4) or 32 hex digits `:port` (IPv6): each 32-bit word in host (little-endian)
/// order, the port in big-endian hex.
fn proc_net_addr(field: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..addr.len() / 8)
        .map(|i| addr.get(i * 8..i * 8 + 8).and_then(|w| u32::from_str_radix(w, 16).ok()))
        .collect::<Option<_>>()?;
    let ip = match words.as_slice() {
        [w] if addr.len() == 8 => IpAddr::from(w.to_le_bytes()),
        [a, b, c, d] if addr.len() == 32 => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].into_iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            let v6 = std::net::Ipv6Addr::from(bytes);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, port))
}

/// The ordinals to look up: a range from the lowest known to one past the highest (a pod about
/// to join), or, when the known ones are very far apart, each of them and one past the highest.
fn lookup_set(known: &BTreeSet<u32>) -> BTreeSet<u32> {
    let (Some(&low), Some(&high)) = (known.first(), known.last()) else { return BTreeSet::new() };
    let past = high.saturating_add(1);
    if high - low <= MAX_ORDINAL_SPAN {
        (low..=past).collect()
    } else {
        known.iter().copied().chain(std::iter::once(past)).collect()
    }
}

/// The ordinal of a member's pod: from its peer URL host, else its name; None when it is not a
/// pod of this set.
fn member_ordinal(id: &Identity, m: &Member) -> Option<u32> {
    m.peer_urls.iter().filter_map(|u| url_host(u)).find_map(|h| id.ordinal_of_host(h)).or_else(|| {
        identity::split_pod_name(&m.name).ok().filter(|(set, _)| *set == id.set_name).map(|(_, o)| o)
    })
}

/// `name (id)` for logs; an unstarted member is named after its pod.
fn member_label(id: &Identity, m: &Member) -> String {
    if m.started() {
        return format!("{} ({:x})", m.name, m.id);
    }
    match member_ordinal(id, m) {
        Some(o) => format!("{} ({:x}, unstarted)", identity::host_name(&id.set_name, o, ""), m.id),
        None => format!("{:x} (unstarted)", m.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            pod_name: "etcd-0".into(),
            set_name: "etcd".into(),
            ordinal: 0,
            domain: "etcd.default.svc.cluster.local".into(),
        }
    }

    fn member(id: u64, name: &str, peer: &str) -> Member {
        Member { id, name: name.into(), peer_urls: vec![peer.into()], client_urls: vec![], is_learner: false }
    }

    #[test]
    fn members_map_to_ordinals_by_peer_url_then_name() {
        let id = identity();
        let by_url = member(1, "", "http://etcd-3.etcd.default.svc.cluster.local:2380");
        assert_eq!(member_ordinal(&id, &by_url), Some(3));
        assert_eq!(member_label(&id, &by_url), "etcd-3 (1, unstarted)");
        let by_name = member(2, "etcd-4", "http://10.0.0.4:2380");
        assert_eq!(member_ordinal(&id, &by_name), Some(4));
        assert_eq!(member_label(&id, &by_name), "etcd-4 (2)");
        let foreign = member(3, "other-1", "http://other-1.x:2380");
        assert_eq!(member_ordinal(&id, &foreign), None);
    }

    #[test]
    fn lookup_set_spans_the_known_ordinals_and_one_more() {
        assert_eq!(lookup_set(&BTreeSet::from([0, 2])), BTreeSet::from([0, 1, 2, 3]));
        assert_eq!(lookup_set(&BTreeSet::from([100, 101])), BTreeSet::from([100, 101, 102]));
        assert_eq!(lookup_set(&BTreeSet::from([0, 1000])), BTreeSet::from([0, 1000, 1001]));
        assert!(lookup_set(&BTreeSet::new()).is_empty());
    }

    // Found by the chaos run: a pod recreated with a new IP, then its name NXDOMAIN for longer
    // than the removal delay; the leader's sidecar knew only the old IP, probed it, and removed
    // the member while it ran and was connected to the leader. Connected peers are probed too.
    #[test]
    fn established_peer_port_connections_name_the_connected_peers() {
        let tcp =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:094C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 10 0
   1: 0A01E70A:094C A301E70A:B3C2 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4
   2: 0A01E70A:9C40 0B01E70A:094C 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4
   3: 0A01E70A:094C 0C01E70A:B3C3 06 00000000:00000000 00:00000000 00000000     0        0 4 1 0 20 4
   4: 0A01E70A:094B 0D01E70A:C000 01 00000000:00000000 00:00000000 00000000     0        0 5 1 0 20 4
   5: 0100007F:094C 0100007F:C001 01 00000000:00000000 00:00000000 00000000     0        0 6 1 0 20 4
";
        let ips = established_peers(tcp, 2380);
        let want: Vec<IpAddr> = ["10.231.1.163", "10.231.1.11"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(
            ips, want,
            "inbound and outbound peer connections; not listening, closing, client-port or loopback ones"
        );
        let tcp6 = "  sl  local_address                         remote_address                        st
   0: 0000000000000000FFFF00000A01E70A:094C 0000000000000000FFFF0000A301E70A:B3C2 01 0
   1: 000080FE00000000FF005450B6AD1DFE:094C 000080FE00000000FF005450B7AD1DFE:C35A 01 0
";
        let ips = established_peers(tcp6, 2380);
        assert_eq!(ips[0], "10.231.1.163".parse::<IpAddr>().unwrap());
        assert_eq!(ips[1], "fe80::5054:ff:fe1d:adb7".parse::<IpAddr>().unwrap());
        assert!(established_peers("", 2380).is_empty());
        assert_eq!(proc_net_addr("zz:094C"), None);
    }

    #[test]
    fn url_ports() {
        assert_eq!(url_port("http://127.0.0.1:2381"), Some(2381));
        assert_eq!(url_port("https://[::1]:2381/metrics"), Some(2381));
        assert_eq!(url_port("http://host"), None);
        assert_eq!(url_port(""), None);
    }
}
