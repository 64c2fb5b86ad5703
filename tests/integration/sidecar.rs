//! The sidecar on the pod bed: each pod runs etcd-bootstrap (then etcd) as PID 1 and
//! `etcd-bootstrap sidecar` as a second container (same network, UTS and mount namespaces), as a
//! StatefulSet with two containers would. Scaling is done the way a StatefulSet does it: pods are
//! created and deleted, volumes stay. A writer makes puts throughout and every acknowledged put
//! must be readable at the end; the sidecars' `/metrics` are scraped and must match what happened.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::bed::{Fault, PodSpec, Publish};
use crate::bootstrap::{bootstrap_bin, decisions, setup};
use crate::stateful_set::{client, Extra, Set, Writer, METRICS_PORT, REMOVAL_DELAY};

/// The sidecars' metrics (the rest of [`Set`] is shared, in `stateful_set`).
impl Set {
    /// `GET path` from pod `ordinal`'s sidecar: status and body, if it answers.
    pub async fn get(&self, ordinal: u32, path: &str) -> Option<(u16, String)> {
        let addr = (self.bed.pod_ip(ordinal), METRICS_PORT);
        let request = format!("GET {path} HTTP/1.1\r\nHost: sidecar\r\n\r\n");
        let text = tokio::time::timeout(Duration::from_secs(3), async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut text = String::new();
            stream.read_to_string(&mut text).await.ok()?;
            Some(text)
        })
        .await
        .ok()??;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    }

    /// One sidecar's metrics, if it answers.
    pub async fn scrape(&self, ordinal: u32) -> Option<BTreeMap<String, f64>> {
        let (status, body) = self.get(ordinal, "/metrics").await?;
        if status != 200 {
            return None;
        }
        Some(
            body.lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .filter_map(|l| l.rsplit_once(' '))
                .filter_map(|(name, value)| Some((name.to_string(), value.parse().ok()?)))
                .collect(),
        )
    }

    /// A metric summed over the sidecars of `ordinals` (every one must answer).
    pub async fn sum(&self, ordinals: &[u32], metric: &str) -> f64 {
        let mut total = 0.0;
        for &o in ordinals {
            let m = self.scrape(o).await.unwrap_or_else(|| panic!("no /metrics from etcd-{o}'s sidecar"));
            total += m.get(metric).copied().unwrap_or_else(|| panic!("etcd-{o}'s sidecar has no {metric}"));
        }
        total
    }

    /// Poll until the sum of `metric` over `ordinals` reaches `at_least`; returns it.
    pub async fn wait_sum(&self, ordinals: &[u32], metric: &str, at_least: f64, timeout: Duration) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            let mut total = 0.0;
            for &o in ordinals {
                total += self.scrape(o).await.and_then(|m| m.get(metric).copied()).unwrap_or(0.0);
            }
            if total >= at_least {
                return total;
            }
            if Instant::now() > deadline {
                panic!("{metric} over {ordinals:?} is {total}, want >= {at_least}\n{}", self.logs(ordinals));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// Three pods with sidecars, healthy.
async fn three(name: &str) -> Option<Set> {
    let etcd = setup(name)?;
    let set = Set::new(name, etcd).await;
    for o in 0..3 {
        set.start(o, false).await;
    }
    set.healthy(&[0, 1, 2]).await;
    Some(set)
}

const PROMOTIONS: &str = "etcd_bootstrap_sidecar_promotions_total";
const REMOVALS: &str = "etcd_bootstrap_sidecar_removals_total";

fn skipped(reason: &str) -> String {
    format!("etcd_bootstrap_sidecar_removals_skipped_total{{reason=\"{reason}\"}}")
}

/// Exactly one sidecar among `ordinals` reports its member as the leader (polled: leadership may
/// be settling).
async fn one_leader_reported(set: &Set, ordinals: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let leaders = set.sum(ordinals, "etcd_bootstrap_sidecar_leader").await;
        let up = set.sum(ordinals, "etcd_bootstrap_sidecar_local_member_up").await;
        if leaders == 1.0 && up == ordinals.len() as f64 {
            return;
        }
        if Instant::now() > deadline {
            panic!("sidecars report {leaders} leaders and {up} members up\n{}", set.logs(ordinals));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn learners_promoted_on_scale_up_to_five_then_removed_on_scale_down_to_three() {
    let Some(set) = three("sidecar-learners").await else { return };
    let writer = Writer::start((0..3).map(|o| set.bed.client_url(o)).collect());
    // 3 -> 5 with learners, pods created at once (podManagementPolicy: Parallel): one joins, the
    // other waits until the first is promoted; nobody but the sidecars promotes.
    set.start(3, true).await;
    set.start(4, true).await;
    // Hold the first joiner's etcd (SIGSTOP as it is exec'd): etcd reports it not in sync, and the
    // sidecar must retry every interval until it has caught up.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        if let Some(o) = [3, 4].into_iter().find(|o| set.bed.logs_current(*o).contains("exec etcd")) {
            break o;
        }
        assert!(Instant::now() < deadline, "no learner joined\n{}", set.logs(&[3, 4]));
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(set.bed.signal_pid1(first, Signal::SIGSTOP).await, "etcd-{first} ended");
    let not_in_sync = "etcd_bootstrap_sidecar_promotions_skipped_total{reason=\"not_in_sync\"}";
    set.wait_sum(&[0, 1, 2], not_in_sync, 3.0, Duration::from_secs(30)).await;
    assert_eq!(set.sum(&[0, 1, 2, 3, 4], PROMOTIONS).await, 0.0, "{}", set.logs(&[0, 1, 2, first]));
    assert!(set.bed.signal_pid1(first, Signal::SIGCONT).await, "etcd-{first} ended");
    set.healthy(&[0, 1, 2, 3, 4]).await;
    for o in [3, 4] {
        assert!(decisions(&set.bed, o).contains(&"JOIN".to_string()), "{}", set.logs(&[o]));
    }
    assert_eq!(set.sum(&[0, 1, 2, 3, 4], PROMOTIONS).await, 2.0, "{}", set.logs(&[0, 1, 2, 3, 4]));
    let promoted: usize = (0..5).map(|o| set.sidecar_logs(o).matches("promoted learner etcd-").count()).sum();
    assert_eq!(promoted, 2, "{}", set.logs(&[0, 1, 2, 3, 4]));
    one_leader_reported(&set, &[0, 1, 2, 3, 4]).await;

    // 5 -> 3: the StatefulSet deletes pods 4 and 3 (both well within the removal delay).
    let deleted = Instant::now();
    tokio::join!(set.delete(4), set.delete(3));
    set.healthy(&[0, 1, 2]).await;
    assert!(deleted.elapsed() > REMOVAL_DELAY, "removed before the delay: {:?}", deleted.elapsed());
    // The counter moves when the remove call returns, a moment after the member list shows it.
    set.wait_sum(&[0, 1, 2], REMOVALS, 2.0, Duration::from_secs(10)).await;
    assert_eq!(set.sum(&[0, 1, 2], REMOVALS).await, 2.0, "{}", set.logs(&[0, 1, 2]));
    assert!(set.sum(&[0, 1, 2], &skipped("delay")).await >= 1.0, "{}", set.logs(&[0, 1, 2]));
    let removed: usize = (0..3).map(|o| set.sidecar_logs(o).matches("removed member etcd-").count()).sum();
    assert_eq!(removed, 2, "{}", set.logs(&[0, 1, 2]));
    one_leader_reported(&set, &[0, 1, 2]).await;
    writer.stop_and_verify(&set, &[0, 1, 2]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_three_to_one_and_back_to_three_keeps_every_key() {
    let Some(set) = three("sidecar-three-one-three").await else { return };
    let writer = Writer::start(vec![set.bed.client_url(0)]);
    // 3 -> 2: pod 2 deleted; its member goes once the delay has passed.
    set.delete(2).await;
    set.healthy(&[0, 1]).await;
    set.wait_sum(&[0, 1], REMOVALS, 1.0, Duration::from_secs(10)).await;
    assert_eq!(set.sum(&[0, 1], REMOVALS).await, 1.0, "{}", set.logs(&[0, 1]));
    // 2 -> 1: with two voting members, deleting a pod loses quorum, and then no removal can be
    // committed (the sidecar never tries one that would cost quorum). The documented step: remove
    // the member first, while both run, then delete its pod.
    let mut c = client(&set.bed, &[0]).await.expect("connect");
    let list = c.member_list().await.expect("member list");
    let id = list.members().iter().find(|m| m.name() == "etcd-1").expect("etcd-1 is a member").id();
    c.member_remove(id).await.expect("member remove etcd-1");
    set.delete(1).await;
    set.healthy(&[0]).await;
    // 1 -> 3: the old volumes hold removed members: each pod archives its data and joins.
    set.start(1, false).await;
    set.healthy(&[0, 1]).await;
    set.start(2, false).await;
    set.healthy(&[0, 1, 2]).await;
    for o in [1, 2] {
        let got = decisions(&set.bed, o);
        assert!(
            got.contains(&"STALE".to_string()) && got.last().map(String::as_str) == Some("JOIN"),
            "etcd-{o}: {got:?}"
        );
    }
    writer.set_targets((0..3).map(|o| set.bed.client_url(o)).collect());
    one_leader_reported(&set, &[0, 1, 2]).await;
    writer.stop_and_verify(&set, &[0, 1, 2]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn member_of_a_deleted_middle_pod_is_kept_while_a_higher_pod_exists() {
    let Some(set) = three("sidecar-middle").await else { return };
    let writer = Writer::start(vec![set.bed.client_url(0), set.bed.client_url(2)]);
    set.delete(1).await;
    // Poll until the leader's sidecar has seen pod 1 absent for longer than the delay.
    let deadline = Instant::now() + Duration::from_secs(60);
    let longest = loop {
        let longest = [0, 2].iter().flat_map(|o| absences(&set.sidecar_logs(*o))).fold(0.0, f64::max);
        if longest > REMOVAL_DELAY.as_secs_f64() + 2.0 {
            break longest;
        }
        assert!(Instant::now() < deadline, "no higher_ordinal skip after the delay\n{}", set.logs(&[0, 2]));
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    eprintln!("etcd-1 absent for {longest}s and kept");
    assert_eq!(set.member_names(0).await, ["etcd-0", "etcd-1", "etcd-2"], "etcd-1 was removed");
    assert_eq!(set.sum(&[0, 2], REMOVALS).await, 0.0);
    // The counter counts exactly the skips logged.
    let needle = "reason=\"higher_ordinal\"";
    let logged_before = set.log_count(&[0, 2], needle);
    let skips = set.sum(&[0, 2], &skipped("higher_ordinal")).await as usize;
    let logged_after = set.log_count(&[0, 2], needle);
    assert!(
        logged_before >= 3 && (logged_before..=logged_after).contains(&skips),
        "{skips} higher_ordinal skips counted, {logged_before}..{logged_after} logged\n{}",
        set.logs(&[0, 2])
    );
    // The pod comes back (a restart that took long): same member, EXISTING.
    set.start(1, false).await;
    set.healthy(&[0, 1, 2]).await;
    assert_eq!(decisions(&set.bed, 1).last().map(String::as_str), Some("EXISTING"));
    writer.stop_and_verify(&set, &[0, 1, 2]).await;
}

// The sidecars look every hour here: once their start-up rounds are over, no round runs between
// the deletion and the removal but the one the removal clock wakes. Only the leader's
// watch of its etcd's peer connections can have started that clock, at the moment pod 2's
// records went.
#[tokio::test(flavor = "multi_thread")]
async fn a_pod_that_ends_is_seen_gone_between_rounds_and_removed_after_the_delay() {
    let Some(etcd) = setup("sidecar-watch") else { return };
    let extra = Extra { sidecar_interval: Some("1h".into()), ..Extra::default() };
    let set = Set::with("sidecar-watch", etcd, extra).await;
    for o in 0..3 {
        set.start_pod(o, false, Publish::Now).await;
    }
    set.healthy(&[0, 1, 2]).await;
    // Pod 2 is the one a scale-down deletes: its member must not be the leader, whose sidecar
    // would go with it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while set.leader_ordinal(0).await.is_none_or(|l| l == 2) {
        if let Some(mut c) = client(&set.bed, &[2]).await {
            let list = c.member_list().await.expect("member list");
            let etcd0 = list.members().iter().find(|m| m.name() == "etcd-0").expect("etcd-0 listed").id();
            let _ = c.move_leader(etcd0).await;
        }
        assert!(Instant::now() < deadline, "etcd-2 still leads\n{}", set.logs(&[0, 1, 2]));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for o in 0..3 {
        set.start_sidecar(o);
    }
    set.wait_sum(&[0, 1, 2], "etcd_bootstrap_sidecar_local_member_up", 3.0, Duration::from_secs(20)).await;
    one_leader_reported(&set, &[0, 1, 2]).await;
    let leader = set.leader_ordinal(0).await.expect("a leader");
    assert_ne!(leader, 2, "leadership moved again\n{}", set.logs(&[0, 1, 2]));
    // The first round saw the ordinal past the highest (a pod about to join) missing from DNS,
    // so a second round comes one removal delay later; after it, none is due for an hour.
    set.wait_sum(&[leader], "etcd_bootstrap_sidecar_rounds_total", 2.0, Duration::from_secs(20)).await;

    let deleted = Instant::now();
    set.delete(2).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while set.member_names(leader).await.contains(&"etcd-2".to_string()) {
        assert!(Instant::now() < deadline, "etcd-2 not removed\n{}", set.logs(&[0, 1]));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(deleted.elapsed() > REMOVAL_DELAY, "removed before the delay: {:?}", deleted.elapsed());
    // etcd applies the removal before the sidecar's call returns and logs it: poll for the line.
    set.wait_sidecar_log(leader, "removed member etcd-2", Duration::from_secs(10)).await;
    let log = set.sidecar_logs(leader);
    assert!(
        log.lines()
            .any(|l| l.contains("etcd-2.") && l.contains("is gone from DNS (its peer connections closed)")),
        "the leader's watch did not see etcd-2 go\n{}",
        set.logs(&[0, 1])
    );
    assert_eq!(log.matches("removed member etcd-2").count(), 1, "{}", set.logs(&[0, 1]));
    set.healthy(&[0, 1]).await;
}

/// Seconds of absence named in `higher_ordinal` skip lines of a sidecar log (under a minute).
fn absences(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains("reason=\"higher_ordinal\""))
        .filter_map(|l| l.split("absent from DNS for ").nth(1))
        .filter_map(|rest| rest.split("s, but").next())
        .filter_map(|secs| secs.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_servfail_and_timeouts_never_count_as_gone() {
    let Some(set) = three("sidecar-dns-faults").await else { return };
    let writer = Writer::start(vec![set.bed.client_url(0), set.bed.client_url(1)]);
    // Keep the leader on a pod that stays, so the fault is all the test is about.
    if set.leader_ordinal(0).await == Some(2) {
        let mut c = client(&set.bed, &[2]).await.expect("connect");
        let list = c.member_list().await.expect("member list");
        let id = list.members().iter().find(|m| m.name() == "etcd-0").expect("etcd-0").id();
        c.move_leader(id).await.expect("move the leader to etcd-0");
    }
    let unknown = skipped("dns_unknown");
    set.bed.dns().set_fault(Fault::Servfail);
    set.delete(2).await;
    // SERVFAIL for longer than the delay.
    let before = set.sum(&[0, 1], &unknown).await;
    let servfail = Instant::now();
    set.wait_sum(&[0, 1], &unknown, before + 3.0, Duration::from_secs(30)).await;
    while servfail.elapsed() < REMOVAL_DELAY + Duration::from_secs(2) {
        assert_eq!(set.member_names(0).await.len(), 3, "removed on SERVFAIL\n{}", set.logs(&[0, 1]));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // No answer at all (timeouts) for longer than the delay.
    set.bed.dns().set_fault(Fault::Drop);
    let before = set.sum(&[0, 1], &unknown).await;
    let dropped = Instant::now();
    set.wait_sum(&[0, 1], &unknown, before + 2.0, Duration::from_secs(60)).await;
    while dropped.elapsed() < REMOVAL_DELAY + Duration::from_secs(2) {
        assert_eq!(set.member_names(0).await.len(), 3, "removed on DNS timeouts\n{}", set.logs(&[0, 1]));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(set.sum(&[0, 1], REMOVALS).await, 0.0);
    // DNS answers again: the definite NXDOMAIN starts the clock only now.
    set.bed.dns().set_fault(Fault::None);
    let answering = Instant::now();
    set.healthy(&[0, 1]).await;
    assert!(answering.elapsed() > REMOVAL_DELAY, "removed {:?} after DNS answered", answering.elapsed());
    // The member list can show the removal a moment before the sidecar that made it has counted
    // it (the counter moves when the call returns): poll for the count, then check it is one.
    set.wait_sum(&[0, 1], REMOVALS, 1.0, Duration::from_secs(10)).await;
    assert_eq!(set.sum(&[0, 1], REMOVALS).await, 1.0, "{}", set.logs(&[0, 1]));
    writer.stop_and_verify(&set, &[0, 1]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sidecar_without_etcd_is_alive_not_ready_and_stops_on_sigterm() {
    let name = "sidecar-no-etcd";
    let Some(etcd) = setup(name) else { return };
    let set = Set::new(name, etcd).await;
    // A pod whose etcd never comes up: PID 1 only sleeps.
    set.bed.start_pod(0, PodSpec::shell("echo pod up; exec sleep 600")).await;
    assert!(set.bed.wait_log(0, "pod up", Duration::from_secs(10)).await, "{}", set.bed.logs(0));
    set.start_sidecar(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let probes = (http_status(&set, "/healthz").await, http_status(&set, "/readyz").await);
        let errors = set.scrape(0).await.and_then(|m| m.get("etcd_bootstrap_sidecar_errors_total").copied());
        if probes == (Some(200), Some(503)) && errors.is_some_and(|e| e >= 1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "probes {probes:?}, errors {errors:?}\n{}", set.sidecar_logs(0));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = set.scrape(0).await.expect("metrics");
    assert_eq!(metrics.get("etcd_bootstrap_sidecar_local_member_up"), Some(&0.0));
    assert_eq!(metrics.get("etcd_bootstrap_sidecar_leader"), Some(&0.0));
    assert!(metrics.keys().any(|k| k.starts_with("etcd_bootstrap_sidecar_last_error_info{")), "{metrics:?}");
    assert!(set.sidecar_logs(0).contains("the local member does not answer"), "{}", set.sidecar_logs(0));
    // `sleep` as PID 1 ignores SIGTERM: no need to wait out its grace period.
    tokio::join!(set.stop_sidecar(0), set.bed.kill_pod(0));
}

async fn http_status(set: &Set, path: &str) -> Option<u16> {
    let addr = (set.bed.pod_ip(0), METRICS_PORT);
    tokio::time::timeout(Duration::from_secs(3), async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: sidecar\r\n\r\n").as_bytes()).await.ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await.ok()?;
        text.split_whitespace().nth(1)?.parse().ok()
    })
    .await
    .ok()?
}

/// Bad sidecar options: one line, exit 2, before anything runs (no root or etcd needed).
#[test]
fn bad_sidecar_options_are_configuration_errors() {
    for (args, needle) in [
        (&["--interval", "0s"][..], "--interval 0s"),
        (&["--removal-delay", "0s"], "--removal-delay 0s"),
        (&["--metrics-port", "2379"], "--metrics-port 2379"),
        (&["--metrics-port", "0"], "--metrics-port 0"),
        (&["--", "--listen-metrics-urls=http://0.0.0.0:2381"], "--listen-metrics-urls"),
        (&["--defrag-threshold", "45"], "--defrag-threshold 45: give the share of free pages"),
        (&["--defrag-threshold", "half"], "--defrag-threshold"),
        (&["--defrag-min-size", "lots"], "--defrag-min-size"),
        (&["--backup-delta-interval", "10s"], "--backup-delta-interval 10s needs --backup-to"),
        (&["--backup-to", "file:///tmp", "--backup-delta-interval", "0s"], "--backup-delta-interval 0s"),
        (&["--backup-to", "file:///tmp", "--backup-delta-interval", "soon"], "--backup-delta-interval"),
        (
            &["--", "--quota-backend-bytes=8GB"],
            "etcd's --quota-backend-bytes \"8GB\" is not a number of bytes",
        ),
    ] {
        let out = sidecar_cmd(args).output().expect("run the sidecar");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
}

/// A `--metrics-port` already in use is a runtime failure (exit 7), not a configuration error:
/// the setting is valid, the machine refused it. One line naming the port and the fix.
#[test]
fn metrics_port_in_use_exits_7_naming_the_port() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").expect("bind a free port");
    let port = taken.local_addr().expect("its address").port().to_string();
    let out = sidecar_cmd(&["--metrics-port", &port]).output().expect("run the sidecar");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on 0.0.0.0:{port}")), "{stderr}");
    assert!(stderr.contains("choose another --metrics-port"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

fn sidecar_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(bootstrap_bin());
    cmd.args(["sidecar", "--name", "etcd-0", "--dns-server", "127.0.0.1:53"])
        .args(args)
        .env_clear()
        .env("ETCD_BOOTSTRAP_LOG", "off");
    cmd
}

/// The documented defaults are the binary's.
#[test]
fn sidecar_help_names_the_defaults() {
    let out = sidecar_cmd(&["--help"]).output().expect("run --help");
    let help = String::from_utf8_lossy(&out.stdout);
    for default in
        ["[default: 10s]", "[default: 2m]", "[default: 2381]", "[default: 0.45]", "[default: 100MB]"]
    {
        assert!(help.contains(default), "{help}");
    }
}

/// A rolling upgrade is watched through the sidecars: each reports its member's etcd version and
/// the cluster version its member's peer port tells.
#[tokio::test(flavor = "multi_thread")]
async fn each_sidecar_reports_its_members_version_and_the_cluster_version() {
    let Some(set) = three("sidecar-versions").await else { return };
    let out = Command::new(&set.etcd).arg("--version").output().expect("etcd --version");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let release = text.lines().find_map(|l| l.strip_prefix("etcd Version: ")).expect("a version line").trim();
    let minor = release.rsplit_once('.').map(|(m, _)| m).expect("major.minor.patch");
    for o in 0..3 {
        let want = [
            format!(
                "etcd_bootstrap_sidecar_member_version_info{{member=\"etcd-{o}\",version=\"{release}\"}}"
            ),
            format!("etcd_bootstrap_sidecar_cluster_version_info{{version=\"{minor}\"}}"),
        ];
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let metrics = set.scrape(o).await.unwrap_or_default();
            if want.iter().all(|w| metrics.get(w) == Some(&1.0)) {
                break;
            }
            if Instant::now() > deadline {
                panic!("etcd-{o}'s sidecar: want {want:?} in {metrics:?}\n{}", set.logs(&[o]));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}
