//! "Healthy", as the benchmark times it: every expected pod answers Status with a leader, serves a
//! linearizable read, and lists exactly the expected members, all started voters named by pod name.
//!
//! A check against a member that is listening but not ready blocks until its timeout, so checks
//! are not run one after another: a new one starts every [`POLL`] (at most [`IN_FLIGHT`] at once)
//! and the cluster counts as healthy at the moment the first check that passes completes. The
//! resolution is therefore about [`POLL`] plus one round trip, the same for every contestant.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

pub const POLL: Duration = Duration::from_millis(50);
const IN_FLIGHT: usize = 24;
const PER_POD: Duration = Duration::from_millis(1500);

/// A pod to check: ordinal and IP.
pub type Target = (u32, Ipv4Addr);

/// A client of one IP with short timeouts (a dead pod must not stall a poll).
pub async fn connect(ips: &[Ipv4Addr]) -> Result<Client, String> {
    let urls: Vec<String> = ips.iter().map(|ip| format!("http://{ip}:2379")).collect();
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(500))
        .with_timeout(Duration::from_secs(1));
    Client::connect(urls, Some(options)).await.map_err(|e| format!("connect: {e}"))
}

async fn check_one(ip: Ipv4Addr, want: &[String]) -> Result<(), String> {
    let mut c = connect(&[ip]).await?;
    let status = c.status().await.map_err(|e| format!("status: {e}"))?;
    if status.leader() == 0 {
        return Err("no leader".into());
    }
    c.get("ebt-bench-probe", Some(GetOptions::new().with_count_only()))
        .await
        .map_err(|e| format!("linearizable get: {e}"))?;
    let list = c.member_list().await.map_err(|e| format!("member list: {e}"))?;
    let mut names: Vec<String> = list.members().iter().map(|m| m.name().to_string()).collect();
    names.sort();
    if names != want {
        return Err(format!("lists {names:?}"));
    }
    if let Some(m) = list.members().iter().find(|m| m.is_learner()) {
        return Err(format!("{} is a learner", m.name()));
    }
    if let Some(m) = list.members().iter().find(|m| m.client_urls().is_empty()) {
        return Err(format!("{} has not started", m.name()));
    }
    Ok(())
}

/// One check of every target, concurrently; the first problem found.
pub async fn check(targets: &[Target]) -> Result<(), String> {
    let mut want: Vec<String> = targets.iter().map(|(o, _)| format!("etcd-{o}")).collect();
    want.sort();
    let mut set = JoinSet::new();
    for &(o, ip) in targets {
        let want = want.clone();
        set.spawn(async move {
            match tokio::time::timeout(PER_POD, check_one(ip, &want)).await {
                Ok(r) => r.map_err(|e| format!("etcd-{o}: {e}")),
                Err(_) => Err(format!("etcd-{o}: no answer within {PER_POD:?}")),
            }
        });
    }
    while let Some(joined) = set.join_next().await {
        joined.map_err(|e| format!("check task: {e}"))??;
    }
    Ok(())
}

/// The moment the targets are first seen healthy, or the last problem after `timeout`.
pub async fn wait_healthy(targets: &[Target], timeout: Duration) -> Result<Instant, String> {
    let deadline = Instant::now() + timeout;
    let (tx, mut rx) = mpsc::unbounded_channel::<(Result<(), String>, Instant)>();
    let mut rounds: JoinSet<()> = JoinSet::new();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last = String::from("no check finished");
    loop {
        tokio::select! {
            biased;
            Some((result, at)) = rx.recv() => match result {
                Ok(()) => return Ok(at),
                Err(problem) => last = problem,
            },
            Some(_) = rounds.join_next(), if !rounds.is_empty() => {}
            _ = tick.tick() => {
                if Instant::now() > deadline {
                    return Err(format!("not healthy within {timeout:?}: {last}"));
                }
                if rounds.len() < IN_FLIGHT {
                    let (tx, targets) = (tx.clone(), targets.to_vec());
                    rounds.spawn(async move {
                        let result = check(&targets).await;
                        let _ = tx.send((result, Instant::now()));
                    });
                }
            }
        }
    }
}

/// Poll (every [`POLL`]) until the member list served by any of `via` no longer names `name`;
/// the moment it was first seen gone.
pub async fn wait_member_gone(via: &[Ipv4Addr], name: &str, timeout: Duration) -> Result<Instant, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let listed = async {
            let mut c = connect(via).await?;
            let list = c.member_list().await.map_err(|e| format!("member list: {e}"))?;
            Ok::<bool, String>(list.members().iter().any(|m| m.name() == name))
        };
        let last = match tokio::time::timeout(PER_POD, listed).await {
            Ok(Ok(false)) => return Ok(Instant::now()),
            Ok(Ok(true)) => format!("{name} still listed"),
            Ok(Err(e)) => e,
            Err(_) => "member list timed out".into(),
        };
        if Instant::now() > deadline {
            return Err(format!("{name} not removed within {timeout:?}: {last}"));
        }
        tokio::time::sleep(POLL).await;
    }
}
