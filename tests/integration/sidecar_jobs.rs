//! The sidecar's jobs are independent (issue 19): a scheduled backup that takes minutes, to the S3
//! server behind a slow link (`tc` in each pod's network namespace), completes; meanwhile
//! `/healthz` never fails twice in a row on any sidecar, a learner is promoted, a deleted pod's
//! member is removed on time (the removal delay plus at most one interval, with a margin for a
//! loaded machine that is still far below the backup's length), and the compaction of a NOSPACE
//! alarm raised during the upload stops at the backup's revision.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backup::run;
use crate::bootstrap::setup;
use crate::prereq;
use crate::s3_server::S3Server;
use crate::stateful_set::{client, Extra, Set, REMOVAL_DELAY};

const BUCKET: &str = "etcd-backups";
/// The pods' link to the store, and the data: about 2.5 minutes of upload (at 1000 kbit/s, 15 MiB
/// took 175-200 s).
const LINK_KBIT_S: u32 = 1000;
const DATA_BYTES: usize = 13 * 1024 * 1024;
/// The sidecars' interval on the bed (`stateful_set::INTERVAL`).
const INTERVAL: Duration = Duration::from_secs(1);
/// Margin on timings for a loaded machine.
const MARGIN: Duration = Duration::from_secs(8);
/// etcd's quota: above the data, so a NOSPACE alarm can be raised during the upload.
const QUOTA: usize = 32 * 1024 * 1024;

/// Fill the keyspace with `bytes` of values, in puts of 512 KiB.
async fn fill(set: &Set, bytes: usize) {
    let mut c = client(&set.bed, &[0, 1, 2]).await.expect("connect");
    let value = vec![b'x'; 512 * 1024];
    for i in 0..bytes.div_ceil(value.len()) {
        c.put(format!("fill/{i:04}"), value.clone(), None).await.expect("put");
    }
}

/// The sidecars' `/healthz` failures in a row, by ordinal.
#[derive(Default)]
struct Health {
    in_a_row: [u32; 5],
    worst: u32,
    /// Which sidecars have answered once (a new pod's sidecar is checked from then on).
    up: std::collections::BTreeSet<u32>,
    /// Every failure: the pod and its status (0: no answer).
    failures: Vec<(u32, u16)>,
}

impl Health {
    /// Ask each sidecar of `ordinals` once (no answer is a failure, as for the kubelet); none may
    /// have failed twice in a row.
    async fn check(&mut self, set: &Set, ordinals: &[u32]) {
        for &o in ordinals {
            let status = set.get(o, "/healthz").await.map(|r| r.0).unwrap_or(0);
            if status == 200 {
                self.up.insert(o);
            }
            if !self.up.contains(&o) {
                continue;
            }
            if status != 200 {
                self.failures.push((o, status));
            }
            let run = &mut self.in_a_row[o as usize];
            *run = if status == 200 { 0 } else { *run + 1 };
            self.worst = self.worst.max(*run);
            assert!(*run < 2, "etcd-{o}'s /healthz failed twice in a row ({status})\n{}", set.logs(&[o]));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_over_a_slow_link_holds_up_no_removal_no_promotion_and_no_probe() {
    let test = "a_backup_over_a_slow_link_holds_up_no_removal_no_promotion_and_no_probe";
    let Some(etcd) = setup(test) else { return };
    let Some(s3_bin) = prereq::need_s3_server(test) else { return };
    let scratch = tempfile::tempdir().expect("scratch");
    let home = scratch.path();
    let extra = Extra {
        pod_env: vec![("ETCD_QUOTA_BACKEND_BYTES".into(), QUOTA.to_string())],
        sidecar_args: vec!["--compact-on-nospace".into()],
        ..Extra::default()
    };
    let set = Set::with("sidecar-jobs", etcd, extra).await;
    let s3 = S3Server::start_on(&s3_bin, &home.join("s3"), &[BUCKET], set.bed.gateway());
    for o in 0..3 {
        set.start(o, false).await;
    }
    set.healthy(&[0, 1, 2]).await;
    fill(&set, DATA_BYTES).await;
    let port = s3.endpoint.rsplit(':').next().and_then(|p| p.parse().ok()).expect("the store's port");
    let store = SocketAddrV4::new(set.bed.gateway(), port);
    for o in 0..3 {
        set.bed.slow_link_to(o, store, LINK_KBIT_S);
    }

    // Backups on, one an hour: the first is due at once.
    let url = format!("s3://{BUCKET}/slow");
    let mut env = vec![
        ("ETCD_BOOTSTRAP_BACKUP_TO".to_string(), url.clone()),
        ("ETCD_BOOTSTRAP_BACKUP_INTERVAL".to_string(), "1h".to_string()),
        ("ETCD_BOOTSTRAP_BACKUP_KEEP".to_string(), "2".to_string()),
    ];
    env.extend(s3.client_env());
    for o in 0..3 {
        set.kill_sidecar(o);
    }
    *set.sidecar_env.lock().unwrap_or_else(|p| p.into_inner()) = env;
    for o in 0..3 {
        set.start_sidecar(o);
    }
    let started = Instant::now();
    let done = |set: &Set| (0..3).any(|o| set.sidecar_logs(o).contains("scheduled backup done"));

    // /healthz, every second or so, on every sidecar, until the backup is done.
    let mut health = Health::default();

    // During the upload, a learner joins and is promoted.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let leader = set.leader_ordinal(0).await.expect("a leader");
    set.start(3, true).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !set.sidecar_logs(leader).contains("promoted learner etcd-3") {
        assert!(Instant::now() < deadline, "etcd-3 not promoted\n{}", set.logs(&[leader, 3]));
        health.check(&set, &[0, 1, 2, 3]).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(!done(&set), "the backup ended before the promotion: the link is not slow enough");
    set.healthy(&[0, 1, 2, 3]).await;

    // During the upload, pod 3 is deleted: its member goes once the removal delay has passed.
    set.delete(3).await;
    let deleted = Instant::now();
    let deadline = deleted + REMOVAL_DELAY + INTERVAL + MARGIN;
    while set.member_names(leader).await.contains(&"etcd-3".to_string()) {
        assert!(
            Instant::now() < deadline,
            "etcd-3 not removed within the removal delay and one interval (+{MARGIN:?})\n{}",
            set.logs(&[0, 1, 2])
        );
        health.check(&set, &[0, 1, 2]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = deleted.elapsed();
    assert!(
        took >= REMOVAL_DELAY.saturating_sub(Duration::from_secs(1)),
        "removed before the delay: {took:?}"
    );
    assert!(!done(&set), "the backup ended before the removal: the link is not slow enough");
    eprintln!("etcd-3 removed {took:?} after its pod, {:?} into the backup", started.elapsed());

    // During the upload, a NOSPACE alarm: the compaction stops at the backup's revision.
    let mut c = client(&set.bed, &[0, 1, 2]).await.expect("connect");
    let value = vec![b'n'; 256 * 1024];
    let mut refused = false;
    for i in 0..QUOTA / value.len() * 2 {
        match c.put(format!("nospace/{i:04}"), value.clone(), None).await {
            Ok(_) => {}
            Err(e) if e.to_string().contains("database space exceeded") => {
                refused = true;
                break;
            }
            Err(e) => panic!("put {i}: {e}"),
        }
    }
    assert!(refused, "etcd never refused a put under its quota");
    let deadline = Instant::now() + Duration::from_secs(60);
    let compacted = loop {
        let log = set.sidecar_logs(leader);
        if let Some(line) = log.lines().find(|l| l.contains("action=\"compact\"")) {
            break line.to_string();
        }
        assert!(Instant::now() < deadline, "no compaction under NOSPACE\n{}", set.logs(&[leader]));
        health.check(&set, &[0, 1, 2]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(!done(&set), "the backup ended before the NOSPACE alarm: the link is not slow enough");
    assert!(compacted.contains("is being written"), "the compaction passed the backup: {compacted}");
    let number_after = |line: &str, key: &str| -> i64 {
        let rest = line.split(key).nth(1).unwrap_or_default();
        rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(-1)
    };
    let (compacted_at, backup_at) =
        (number_after(&compacted, "revision="), number_after(&compacted, "a backup at "));
    assert!(compacted_at > 0 && compacted_at == backup_at, "{compacted}");

    // The backup completes.
    let deadline = started + Duration::from_secs(300);
    while !done(&set) {
        assert!(Instant::now() < deadline, "no backup in 5 minutes\n{}", set.logs(&[0, 1, 2]));
        health.check(&set, &[0, 1, 2]).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let took = started.elapsed();
    eprintln!(
        "backup over {LINK_KBIT_S} kbit/s took {took:?}; /healthz failed at most {} time(s) in a row: {:?}",
        health.worst, health.failures
    );
    assert!(took > Duration::from_secs(90), "the backup took {took:?}: the link was not slow");
    let out = run(&["backup", "list", &url, "--format", "json"], &s3.client_env(), home);
    assert_eq!(out.code, 0, "backup list: {}", out.stderr);
    let listed: Value = serde_json::from_str(out.stdout.trim()).expect("json");
    let listed = listed.as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let snapshot = listed[0]["url"].as_str().expect("url");
    let verified = run(&["backup", "verify", snapshot], &s3.client_env(), home);
    assert_eq!(verified.code, 0, "verify {snapshot}: {}", verified.stderr);
    assert!(listed[0]["size"].as_u64().unwrap_or_default() >= DATA_BYTES as u64, "{listed:#?}");
    let revision = listed[0]["revision"].as_i64().expect("revision");
    assert!(compacted_at <= revision, "compacted at {compacted_at}, past the snapshot's {revision}");
}
