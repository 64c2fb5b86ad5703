//! Sidecar maintenance on the pod bed with real etcd (issue 14): the leader's sidecar defragments
//! fragmented members one at a time, leader last, while a writer loses nothing and quorum holds;
//! it clears a NOSPACE alarm once space is free and keeps it, saying why, while it is not; and
//! every sidecar follows its client certificate files when a Secret update swaps them, and says
//! so clearly (and is not ready) when they expire.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, DeleteOptions, GetOptions};

use crate::bed::{pod_fqdn, Bed};
use crate::bootstrap::setup;
use crate::etcd_check::{Checker, Security};
use crate::stateful_set::{Extra, Set, Writer, HEALTHY};

const DEFRAGS: &str = "etcd_bootstrap_sidecar_defragmentations_total";

/// A client of pod `ordinal` only, with a short deadline.
async fn one(bed: &Bed, ordinal: u32) -> Option<Client> {
    let options = ConnectOptions::new()
        .with_timeout(Duration::from_secs(1))
        .with_connect_timeout(Duration::from_secs(1));
    Client::connect([bed.client_url(ordinal)], Some(options)).await.ok()
}

/// Each pod's database size as its member reports it.
async fn db_sizes(bed: &Bed, ordinals: &[u32]) -> Vec<i64> {
    let mut sizes = Vec::new();
    for &o in ordinals {
        let mut c = one(bed, o).await.unwrap_or_else(|| panic!("connect etcd-{o}"));
        sizes.push(c.status().await.unwrap_or_else(|e| panic!("status of etcd-{o}: {e}")).db_size());
    }
    sizes
}

/// Proves quorum every 100 ms with a linearizable read through any member (one being
/// defragmented may not answer); counts the polls where no member could serve one.
struct QuorumWatch {
    stop: Arc<AtomicBool>,
    polls: Arc<AtomicU64>,
    lost: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl QuorumWatch {
    fn start(bed: &Bed, ordinals: &[u32]) -> QuorumWatch {
        let urls: Vec<String> = ordinals.iter().map(|o| bed.client_url(*o)).collect();
        let (stop, polls, lost) = (Arc::new(AtomicBool::new(false)), Arc::default(), Arc::default());
        let (s, p, l): (Arc<AtomicBool>, Arc<AtomicU64>, Arc<AtomicU64>) =
            (stop.clone(), Arc::clone(&polls), Arc::clone(&lost));
        let task = tokio::spawn(async move {
            let mut clients: Vec<Option<Client>> = urls.iter().map(|_| None).collect();
            while !s.load(Ordering::SeqCst) {
                let mut proved = false;
                for (url, client) in urls.iter().zip(clients.iter_mut()) {
                    if client.is_none() {
                        let options = ConnectOptions::new()
                            .with_timeout(Duration::from_secs(2))
                            .with_connect_timeout(Duration::from_secs(1));
                        *client = Client::connect([url.as_str()], Some(options)).await.ok();
                    }
                    let Some(c) = client.as_mut() else { continue };
                    let read = c.get("quorum-watch", Some(GetOptions::new().with_count_only()));
                    match tokio::time::timeout(Duration::from_secs(2), read).await {
                        Ok(Ok(_)) => {
                            proved = true;
                            break;
                        }
                        _ => *client = None,
                    }
                }
                p.fetch_add(1, Ordering::SeqCst);
                if !proved {
                    l.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        QuorumWatch { stop, polls, lost, task }
    }

    /// Stop; (polls, polls without quorum).
    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("quorum watch");
        (self.polls.load(Ordering::SeqCst), self.lost.load(Ordering::SeqCst))
    }
}

/// The sidecars' defragmentation log lines, in time order: (time, started?, line).
fn defrag_lines(set: &Set, ordinals: &[u32]) -> Vec<(String, bool, String)> {
    let mut lines: Vec<(String, bool, String)> = ordinals
        .iter()
        .flat_map(|o| set.sidecar_logs(*o).lines().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|l| {
            let started = l.contains("action=\"defragment\"");
            (started || l.contains("action=\"defragmented\"")).then(|| {
                let at = l.split_whitespace().next().unwrap_or_default().to_string();
                (at, started, l)
            })
        })
        .collect();
    lines.sort();
    lines
}

async fn defragment_case(bed_name: &str, etcd: PathBuf) {
    let extra = Extra { sidecar_args: vec!["--defrag-min-size".into(), "8MB".into()], ..Extra::default() };
    let set = Set::with(bed_name, etcd, extra).await;
    for o in 0..3 {
        set.start(o, false).await;
    }
    set.healthy(&[0, 1, 2]).await;
    let all = [0, 1, 2];
    let writer = Writer::start(all.iter().map(|o| set.bed.client_url(*o)).collect());
    let quorum = QuorumWatch::start(&set.bed, &all);
    // Some tens of MB written and deleted, then compacted as etcd's auto-compaction would: the
    // pages are free, the files stay large.
    let mut c = crate::stateful_set::client(&set.bed, &all).await.expect("connect");
    let value = "x".repeat(100_000);
    for i in 0..300 {
        c.put(format!("bulk/{i:04}"), value.as_str(), None).await.expect("bulk put");
    }
    // Measured before the delete: nothing is fragmented yet, so no sidecar can have shrunk a file
    // (followers apply and commit a moment later: polled).
    let deadline = Instant::now() + Duration::from_secs(20);
    let before = loop {
        let sizes = db_sizes(&set.bed, &all).await;
        if sizes.iter().all(|s| *s > 20_000_000) {
            break sizes;
        }
        assert!(Instant::now() < deadline, "tens of MB on every member: {sizes:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let deleted = c.delete("bulk/", Some(DeleteOptions::new().with_prefix())).await.expect("delete");
    let revision = deleted.header().expect("header").revision();
    c.compact(revision, None).await.expect("compact");

    // Every member is defragmented once its free pages count (the writer's puts commit them).
    set.wait_sum(&all, DEFRAGS, 3.0, Duration::from_secs(120)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let after = db_sizes(&set.bed, &all).await;
        if after.iter().zip(&before).all(|(a, b)| a * 4 < *b) {
            break after;
        }
        assert!(Instant::now() < deadline, "sizes did not drop: {before:?} -> {after:?}\n{}", set.logs(&all));
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    eprintln!("database sizes {before:?} -> {after:?}");
    let (polls, lost) = quorum.stop().await;
    assert!(polls > 20, "the quorum watch ran: {polls} polls");
    assert_eq!(
        lost,
        0,
        "{lost} of {polls} polls found no member serving a linearizable read\n{}",
        set.logs(&all)
    );

    // One at a time: every start is followed by its end before the next start; the leader last.
    let lines = defrag_lines(&set, &all);
    let starts: Vec<&String> = lines.iter().filter(|(_, started, _)| *started).map(|(_, _, l)| l).collect();
    assert!(starts.len() >= 3, "{lines:#?}");
    for pair in lines.windows(2) {
        assert_ne!(pair[0].1, pair[1].1, "defragmentations overlap or an end is missing: {lines:#?}");
    }
    let first_pass: Vec<&&String> = starts.iter().take(3).collect();
    for (i, line) in first_pass.iter().enumerate() {
        let leader = line.contains("(the leader, last)");
        assert_eq!(leader, i == 2, "followers first, the leader last: {first_pass:#?}");
    }
    let members: std::collections::BTreeSet<String> = first_pass
        .iter()
        .filter_map(|l| {
            l.split("member=").nth(1).and_then(|m| m.split_whitespace().next()).map(str::to_string)
        })
        .collect();
    assert_eq!(members.len(), 3, "three different members: {first_pass:#?}");
    print_actions(&set, &all);
    writer.stop_and_verify(&set, &all).await;
}

on_each_etcd!(defragment_case, "maint-defrag", crate::membership::setup34;
    sidecars_defragment_every_member_one_at_a_time_leader_last_without_losing_a_write,
    sidecars_defragment_every_member_one_at_a_time_leader_last_without_losing_a_write_on_etcd_34,
    sidecars_defragment_every_member_one_at_a_time_leader_last_without_losing_a_write_on_etcd_3530
);

/// Put large values until etcd refuses with NOSPACE; returns how many were acknowledged.
/// Put new 50 kB keys, numbered from `from`, until etcd refuses one for space; returns the number
/// of the refused key (the next to write).
pub async fn fill(c: &mut Client, from: usize) -> usize {
    let value = "n".repeat(50_000);
    for i in from..from + 2000 {
        match c.put(format!("fill/{i:05}"), value.as_str(), None).await {
            Ok(_) => {}
            Err(e) if e.to_string().contains("database space exceeded") => return i,
            Err(e) => panic!("put {i}: {e}"),
        }
    }
    panic!("etcd never refused a put: no NOSPACE alarm");
}

async fn nospace_raised(c: &mut Client) -> bool {
    let alarms =
        c.alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None).await.expect("alarm list");
    alarms.alarms().iter().any(|a| a.alarm() == etcd_client::AlarmType::Nospace)
}

async fn nospace_case(bed_name: &str, etcd: PathBuf) {
    // etcd's quota only: the sidecar's container does not repeat it (issue 18), and the sidecar
    // judges by etcd's own (its metrics), not by its own default of 2 GiB.
    let quota = ("ETCD_QUOTA_BACKEND_BYTES".to_string(), (16 * 1024 * 1024).to_string());
    let extra =
        Extra { pod_env: vec![quota], sidecar_args: vec!["--compact-on-nospace".into()], ..Extra::default() };
    let set = Set::with(bed_name, etcd, extra).await;
    for o in 0..3 {
        set.start(o, false).await;
    }
    let all = [0, 1, 2];
    set.healthy(&all).await;
    let mut c = crate::stateful_set::client(&set.bed, &all).await.expect("connect");

    // Nothing deleted: every member is defragmented, the alarm stays, and the log says why. How
    // much of the database a defragmentation frees depends on bbolt's free pages at the moment
    // of the refusal; where it frees enough to be below the headroom, disarming is right, and
    // filling again leaves less slack each time. So fill until the sidecars keep an alarm
    // (at most five fills).
    let kept = "etcd_bootstrap_sidecar_nospace_kept_total";
    let disarmed = "disarmed the NOSPACE alarm";
    let mut next_key = 0;
    for round in 1..=5 {
        next_key = fill(&mut c, next_key).await;
        assert!(nospace_raised(&mut c).await, "NOSPACE raised after {next_key} puts");
        let disarms_before = set.log_count(&all, disarmed);
        let deadline = Instant::now() + Duration::from_secs(90);
        let outcome = loop {
            let mut kept_total = 0.0;
            for o in all {
                kept_total += set.scrape(o).await.and_then(|m| m.get(kept).copied()).unwrap_or(0.0);
            }
            if kept_total >= 1.0 {
                break "kept";
            }
            if set.log_count(&all, disarmed) > disarms_before {
                break "disarmed";
            }
            assert!(Instant::now() < deadline, "no sidecar kept or disarmed NOSPACE\n{}", set.logs(&all));
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        eprintln!("fill round {round}: {next_key} keys written, the sidecars {outcome} the alarm");
        if outcome == "kept" {
            break;
        }
        assert!(round < 5, "every fill was disarmed: the sidecars never kept the alarm\n{}", set.logs(&all));
    }
    assert!(nospace_raised(&mut c).await, "the alarm stays while the space is short");
    assert!(c.put("blocked", "x", None).await.is_err(), "puts are still refused");
    let why = set.log_count(&all, "keeping the NOSPACE alarm");
    assert!(why >= 1, "{}", set.logs(&all));
    let log: String = all.iter().map(|o| set.sidecar_logs(*o)).collect();
    let line = log.lines().find(|l| l.contains("keeping the NOSPACE alarm")).expect("the line");
    assert!(line.contains("quota of 16.8 MB") && line.contains("delete keys"), "{line}");
    let alarm_gauge = "etcd_bootstrap_sidecar_alarm{type=\"nospace\"}";
    set.wait_sum(&all, alarm_gauge, 1.0, Duration::from_secs(10)).await;

    // Deletes pass under NOSPACE; then the sidecars compact, defragment and disarm by themselves.
    let disarms_before_delete = set.log_count(&all, disarmed);
    c.delete("fill/", Some(DeleteOptions::new().with_prefix())).await.expect("delete under NOSPACE");
    let deadline = Instant::now() + Duration::from_secs(90);
    while nospace_raised(&mut c).await {
        assert!(Instant::now() < deadline, "the alarm was not cleared\n{}", set.logs(&all));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    c.put("after", "ok", None).await.expect("writes succeed again");
    assert!(set.log_count(&all, disarmed) > disarms_before_delete, "{}", set.logs(&all));
    let sizes = db_sizes(&set.bed, &all).await;
    assert!(sizes.iter().all(|s| *s < 8 * 1024 * 1024), "every member below the quota: {sizes:?}");
    print_actions(&set, &all);
}

on_each_etcd!(nospace_case, "maint-nospace", crate::membership::setup34;
    sidecars_keep_a_nospace_alarm_while_space_is_short_and_clear_it_after_deletes,
    sidecars_keep_a_nospace_alarm_while_space_is_short_and_clear_it_after_deletes_on_etcd_34,
    sidecars_keep_a_nospace_alarm_while_space_is_short_and_clear_it_after_deletes_on_etcd_3530
);

/// The sidecars' maintenance lines, for the test's output.
fn print_actions(set: &Set, ordinals: &[u32]) {
    for &o in ordinals {
        for line in set.sidecar_logs(o).lines().filter(|l| l.contains("action=") || l.contains("NOSPACE")) {
            eprintln!("etcd-{o} sidecar: {line}");
        }
    }
}

// ----- certificates -----------------------------------------------------------------------------

/// A CA that signs server and client certificates for the pods, with chosen validity.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

/// Validity from `from` to `to` days from now (negative: in the past).
fn validity(params: &mut rcgen::CertificateParams, from: i64, to: i64) {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let at = |days: i64| {
        let secs = now.checked_add_signed(days * 86_400).expect("a date after 1970");
        epoch + Duration::from_secs(secs)
    };
    params.not_before = at(from);
    params.not_after = at(to);
}

impl Ca {
    fn new() -> Ca {
        let key = rcgen::KeyPair::generate().expect("ca key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        validity(&mut params, -30, 3650);
        let pem = params.self_signed(&key).expect("ca cert").pem();
        Ca { issuer: rcgen::Issuer::new(params, key), pem }
    }

    /// A certificate for pod `ordinal`'s name valid from `from` to `to` days from now: PEMs of
    /// the certificate and its key.
    fn issue(&self, ordinal: u32, from: i64, to: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec![pod_fqdn(ordinal)]).expect("params");
        validity(&mut params, from, to);
        (params.signed_by(&key, &self.issuer).expect("sign").pem(), key.serialize_pem())
    }
}

/// A Kubernetes Secret volume as the kubelet writes it: the files are symlinks through `..data`,
/// a symlink to a timestamped folder; an update writes a new folder and swaps `..data` at once.
struct SecretVolume {
    dir: PathBuf,
    version: u32,
}

impl SecretVolume {
    fn new(dir: PathBuf, files: &[(&str, &str)]) -> SecretVolume {
        std::fs::create_dir_all(&dir).expect("secret dir");
        let mut volume = SecretVolume { dir, version: 0 };
        volume.update(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), volume.dir.join(name)).expect("file link");
        }
        volume
    }

    fn update(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        let folder = format!("..v{}", self.version);
        std::fs::create_dir(self.dir.join(&folder)).expect("version folder");
        for (name, text) in files {
            std::fs::write(self.dir.join(&folder).join(name), text).expect("secret file");
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&folder, &tmp).expect("new ..data link");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("swap ..data");
        if self.version > 1 {
            std::fs::remove_dir_all(self.dir.join(format!("..v{}", self.version - 1))).expect("old version");
        }
    }
}

/// A sidecar's metric value, if it answers and has it.
async fn metric(set: &Set, ordinal: u32, name: &str) -> Option<f64> {
    set.scrape(ordinal).await?.get(name).copied()
}

/// Poll `check` every 300 ms until it holds; at the deadline, panic with its last answer and
/// pod `ordinal`'s logs.
async fn eventually(set: &Set, ordinal: u32, secs: u64, mut check: impl AsyncFnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match check().await {
            Ok(()) => return,
            Err(why) => assert!(Instant::now() < deadline, "etcd-{ordinal}: {why}\n{}", set.logs(&[ordinal])),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Poll pod `ordinal`'s sidecar until `check` holds for its metric `name`.
async fn wait_metric(set: &Set, ordinal: u32, name: &str, what: &str, check: impl Fn(f64) -> bool) {
    eventually(set, ordinal, 30, async || match metric(set, ordinal, name).await {
        Some(v) if check(v) => Ok(()),
        value => Err(format!("{what}: {name} is {value:?}")),
    })
    .await
}

/// Poll pod `ordinal`'s `/readyz` until it answers `status`.
async fn wait_ready(set: &Set, ordinal: u32, status: u16) {
    eventually(set, ordinal, 20, async || match set.get(ordinal, "/readyz").await {
        Some((got, _)) if got == status => Ok(()),
        got => Err(format!("/readyz: {got:?}, want {status}")),
    })
    .await
}

/// etcd's TLS variables (`ETCD_<prefix>CERT_FILE`, ...) with client certificate checks on.
fn tls_env(prefix: &str, cert: &str, key: &str, ca: &str) -> Vec<(String, String)> {
    [("CERT_FILE", cert), ("KEY_FILE", key), ("TRUSTED_CA_FILE", ca), ("CLIENT_CERT_AUTH", "true")]
        .iter()
        .map(|(name, value)| (format!("ETCD_{prefix}{name}"), value.to_string()))
        .collect()
}

const EXPIRY: &str = "etcd_bootstrap_sidecar_certificate_expiry_seconds{file=\"cert\"}";
const DAY: f64 = 86_400.0;

#[tokio::test(flavor = "multi_thread")]
async fn sidecars_follow_certificates_swapped_on_disk_and_report_expired_ones() {
    let Some(etcd) = setup("sidecars_follow_certificates_swapped_on_disk_and_report_expired_ones") else {
        return;
    };
    let all = [0, 1, 2];
    let mut set = Set::new("maint-certs", etcd).await;
    let root = set.bed.root().join("tls");
    let ca = Ca::new();
    // etcd's own certificates (server, peer, and the checker's client one) stay as they are.
    let server = root.join("server");
    std::fs::create_dir_all(&server).expect("server dir");
    std::fs::write(server.join("ca.pem"), &ca.pem).expect("ca");
    for o in all {
        let (cert, key) = ca.issue(o, -1, 365);
        std::fs::write(server.join(format!("etcd-{o}.pem")), cert).expect("cert");
        std::fs::write(server.join(format!("etcd-{o}-key.pem")), key).expect("key");
    }
    let at = |name: &str| server.join(name).display().to_string();
    let mut pod_env = tls_env("", &at("etcd-{o}.pem"), &at("etcd-{o}-key.pem"), &at("ca.pem"));
    pod_env.extend(tls_env("PEER_", &at("etcd-{o}.pem"), &at("etcd-{o}-key.pem"), &at("ca.pem")));
    // Each sidecar mounts its own Secret with a client certificate valid for 30 days.
    let mut secrets: Vec<SecretVolume> = all
        .iter()
        .map(|&o| {
            let (cert, key) = ca.issue(o, -1, 30);
            let files = [("tls.crt", cert.as_str()), ("tls.key", key.as_str()), ("ca.crt", ca.pem.as_str())];
            SecretVolume::new(root.join(format!("secret-{o}")), &files)
        })
        .collect();
    let secret = |name: &str| root.join("secret-{o}").join(name).display().to_string();
    let sidecar_env = tls_env("", &secret("tls.crt"), &secret("tls.key"), &secret("ca.crt"));
    set.extra = Extra { pod_env, sidecar_env, ..Extra::default() };
    for o in all {
        set.start(o, false).await;
    }
    let read = |name: &str| std::fs::read_to_string(server.join(name)).expect("pem");
    let security =
        Security { tls: Some((ca.pem.clone(), read("etcd-0.pem"), read("etcd-0-key.pem"))), auth: None };
    Checker::new(&set.bed, security).wait_healthy(&all, HEALTHY).await;
    for o in all {
        wait_metric(&set, o, "etcd_bootstrap_sidecar_local_member_up", "up over TLS", |v| v == 1.0).await;
        wait_metric(&set, o, EXPIRY, "30 days left", |v| (29.0 * DAY..30.0 * DAY).contains(&v)).await;
        assert_eq!(set.get(o, "/readyz").await.map(|r| r.0), Some(200), "{}", set.logs(&[o]));
    }

    // A renewed Secret (same CA, a new key, 60 days): used without a restart.
    for (o, volume) in all.iter().zip(secrets.iter_mut()) {
        let (cert, key) = ca.issue(*o, -1, 60);
        volume.update(&[("tls.crt", cert.as_str()), ("tls.key", key.as_str()), ("ca.crt", ca.pem.as_str())]);
    }
    for o in all {
        wait_metric(&set, o, EXPIRY, "the renewed certificate", |v| v > 59.0 * DAY).await;
        let rounds = metric(&set, o, "etcd_bootstrap_sidecar_rounds_total").await.expect("rounds");
        wait_metric(&set, o, "etcd_bootstrap_sidecar_rounds_total", "rounds go on", |v| v >= rounds + 2.0)
            .await;
        assert_eq!(
            metric(&set, o, "etcd_bootstrap_sidecar_local_member_up").await,
            Some(1.0),
            "{}",
            set.logs(&[o])
        );
        assert_eq!(set.get(o, "/readyz").await.map(|r| r.0), Some(200), "{}", set.logs(&[o]));
        assert!(set.sidecar_logs(o).contains("changed on disk"), "{}", set.sidecar_logs(o));
    }
    assert!(set.ended_sidecars().is_empty(), "no sidecar restarted or ended");

    // An expired certificate in pod 1's Secret: not ready, one clear line, a metric; no crash.
    let (cert, key) = ca.issue(1, -40, -2);
    secrets[1].update(&[("tls.crt", cert.as_str()), ("tls.key", key.as_str()), ("ca.crt", ca.pem.as_str())]);
    wait_metric(&set, 1, EXPIRY, "expired two days ago", |v| v < -DAY).await;
    wait_ready(&set, 1, 503).await;
    let body = set.get(1, "/readyz").await.map(|r| r.1).unwrap_or_default();
    assert!(body.contains("expired 2d"), "/readyz says why: {body}");
    let rounds = metric(&set, 1, "etcd_bootstrap_sidecar_rounds_total").await.expect("rounds");
    wait_metric(&set, 1, "etcd_bootstrap_sidecar_rounds_total", "rounds go on", |v| v >= rounds + 3.0).await;
    let lines = set.log_count(&[1], "expired 2d");
    assert_eq!(lines, 1, "one clear line, not one per round:\n{}", set.sidecar_logs(1));
    assert!(set.ended_sidecars().is_empty(), "the sidecar with the expired certificate still runs");
    for o in [0, 2] {
        assert_eq!(set.get(o, "/readyz").await.map(|r| r.0), Some(200), "{}", set.logs(&[o]));
    }
    // Renewed again: ready again.
    let (cert, key) = ca.issue(1, -1, 90);
    secrets[1].update(&[("tls.crt", cert.as_str()), ("tls.key", key.as_str()), ("ca.crt", ca.pem.as_str())]);
    wait_metric(&set, 1, EXPIRY, "renewed", |v| v > 89.0 * DAY).await;
    wait_ready(&set, 1, 200).await;

    // The files on disk are what the connection presents, not a copy read at the start: a valid
    // certificate from a CA etcd does not trust takes pod 2's sidecar off its member; the right
    // one brings it back.
    let (cert, key) = Ca::new().issue(2, -1, 90);
    secrets[2].update(&[("tls.crt", cert.as_str()), ("tls.key", key.as_str()), ("ca.crt", ca.pem.as_str())]);
    wait_metric(&set, 2, "etcd_bootstrap_sidecar_local_member_up", "etcd refuses the stranger", |v| v == 0.0)
        .await;
    wait_ready(&set, 2, 503).await;
    let (cert, key) = ca.issue(2, -1, 90);
    secrets[2].update(&[("tls.crt", cert.as_str()), ("tls.key", key.as_str()), ("ca.crt", ca.pem.as_str())]);
    wait_metric(&set, 2, "etcd_bootstrap_sidecar_local_member_up", "back with the right CA", |v| v == 1.0)
        .await;
    wait_ready(&set, 2, 200).await;
    assert!(set.ended_sidecars().is_empty(), "no sidecar ended");
}
