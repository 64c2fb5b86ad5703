//! Membership changes at start (JOIN, REPLACE, STALE, REFUSE), safe at every crash point, with TLS
//! and auth, against etcd 3.5 and 3.4. Each test is one "done when" of the membership issue.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bed::{pod_fqdn, Bed, PodExit, PodSpec};
use crate::bootstrap::{decisions, etcd_pod, form_cluster, setup};
use crate::etcd_check::{bed_logs, Checker, Security, SeenMember};
use crate::prereq;

const HEALTHY: Duration = Duration::from_secs(120);

/// Skip unless root and etcd 3.4 (Debian's etcd-server) are here.
pub fn setup34(test: &str) -> Option<PathBuf> {
    if !prereq::need_root(test) {
        return None;
    }
    let bin = prereq::etcd34_bin();
    if bin.is_none() {
        let why = "etcd 3.4 not found (apt-get install etcd-server, or set TEST_ETCD34_BIN)";
        assert!(!prereq::in_ci(), "{test}: {why}");
        prereq::skipped(test, why);
    }
    bin
}

/// Crash points exist only in builds with the `crash-points` feature (the test command's).
pub fn crash_points_built(test: &str) -> bool {
    if cfg!(feature = "crash-points") {
        return true;
    }
    let why = "needs --features crash-points (scripts/test.sh builds with it)";
    assert!(!prereq::in_ci(), "{test}: {why}");
    prereq::skipped(test, why);
    false
}

pub fn pod_with(bed: &Bed, ordinal: u32, etcd: &Path, env: &[(&str, &str)]) -> PodSpec {
    env.iter().fold(etcd_pod(bed, ordinal, etcd), |spec, (k, v)| spec.env(*k, *v))
}

pub fn assert_last_decision(bed: &Bed, ordinal: u32, want: &str) {
    let got = decisions(bed, ordinal);
    assert_eq!(got.last().map(String::as_str), Some(want), "etcd-{ordinal}: {got:?}\n{}", bed.logs(ordinal));
}

pub fn id_of(members: &[SeenMember], name: &str) -> u64 {
    members
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.id)
        .unwrap_or_else(|| panic!("{name} not in {members:?}"))
}

/// No duplicate peer URL and no unstarted member left behind.
pub fn assert_clean_member_list(members: &[SeenMember]) {
    let mut urls: Vec<&String> = members.iter().flat_map(|m| &m.peer_urls).collect();
    urls.sort();
    let before = urls.len();
    urls.dedup();
    assert_eq!(before, urls.len(), "duplicate peer URL: {members:?}");
    assert!(members.iter().all(|m| !m.name.is_empty()), "stray unstarted member: {members:?}");
}

pub async fn wait_exit_code(bed: &Bed, ordinal: u32, code: i32) {
    let exit = bed.wait_exit(ordinal, Duration::from_secs(60)).await;
    assert_eq!(exit, Some(PodExit::Code(code)), "etcd-{ordinal}:\n{}", bed.logs(ordinal));
}

pub async fn remove_member(bed: &Bed, ordinals: &[u32], id: u64) {
    let mut c = Checker::plain(bed).any_client(ordinals).await.expect("connect");
    c.member_remove(id).await.expect("member remove");
}

// ----- scale-up -------------------------------------------------------------------------------

async fn scale_up_three_to_five_voters(test: &str, etcd: PathBuf) {
    let bed = Bed::new(test).await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    check.put_keys(&[0, 1, 2], "before", 30).await;
    bed.start_pod(3, etcd_pod(&bed, 3, &etcd)).await;
    check.wait_healthy(&[0, 1, 2, 3], HEALTHY).await;
    assert_last_decision(&bed, 3, "JOIN");
    bed.start_pod(4, etcd_pod(&bed, 4, &etcd)).await;
    let members = check.wait_healthy(&[0, 1, 2, 3, 4], HEALTHY).await;
    assert_last_decision(&bed, 4, "JOIN");
    assert_clean_member_list(&members);
    check.assert_keys_on(4, "before", 30).await;
}

on_each_etcd!(scale_up_three_to_five_voters, "up", setup34;
    scale_up_three_to_four_to_five_voters_etcd35,
    scale_up_three_to_four_to_five_voters_etcd34,
    scale_up_three_to_four_to_five_voters_etcd3530
);

/// Poll until `name` is a started learner, then promote it, retrying "not in sync".
async fn promote_when_in_sync(bed: &Bed, name: &str) {
    let check = Checker::plain(bed);
    let deadline = Instant::now() + HEALTHY;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(members) = check.members(&[0, 1, 2]).await {
            match members.iter().find(|m| m.name == name) {
                Some(m) if m.is_learner => {
                    let mut c = check.any_client(&[0, 1, 2]).await.expect("connect");
                    match c.member_promote(m.id).await {
                        Ok(_) => return,
                        Err(e) => last = e.to_string(),
                    }
                }
                Some(_) => panic!("{name} joined as a voter, not a learner: {members:?}"),
                None => last = format!("{name} not started yet"),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("{name} never promoted: {last}\n{}", bed_logs(bed, &[3, 4]));
}

async fn scale_up_learners(test: &str, etcd: PathBuf) {
    let bed = Bed::new(test).await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    check.put_keys(&[0, 1, 2], "before", 30).await;
    let learner = [("ETCD_BOOTSTRAP_JOIN_AS", "learner")];
    for (o, ordinals) in [(3, &[0, 1, 2, 3][..]), (4, &[0, 1, 2, 3, 4][..])] {
        bed.start_pod(o, pod_with(&bed, o, &etcd, &learner)).await;
        promote_when_in_sync(&bed, &format!("etcd-{o}")).await;
        check.wait_healthy(ordinals, HEALTHY).await;
        assert_last_decision(&bed, o, "JOIN");
    }
    check.assert_keys_on(4, "before", 30).await;
}

on_each_etcd!(scale_up_learners, "learn", setup34;
    scale_up_as_learners_promoted_by_the_test_etcd35,
    scale_up_as_learners_promoted_by_the_test_etcd34,
    scale_up_as_learners_promoted_by_the_test_etcd3530
);

#[tokio::test(flavor = "multi_thread")]
async fn two_new_pods_at_the_same_instant_both_join_one_at_a_time() {
    let Some(etcd) = setup("two_new_pods_at_the_same_instant_both_join_one_at_a_time") else { return };
    let bed = Bed::new("two-at-once").await;
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    let (a, b) = (etcd_pod(&bed, 3, &etcd), etcd_pod(&bed, 4, &etcd));
    tokio::join!(bed.start_pod(3, a), bed.start_pod(4, b));
    let members = Checker::plain(&bed).wait_healthy(&[0, 1, 2, 3, 4], HEALTHY).await;
    assert_clean_member_list(&members);
    for o in [3, 4] {
        assert_last_decision(&bed, o, "JOIN");
        assert!(!bed.logs(o).contains("member count is unequal"), "{}", bed.logs(o));
    }
}

// ----- lost volume, removed member, foreign volume ----------------------------------------------

async fn lost_volume_is_replaced(test: &str, etcd: PathBuf) {
    let bed = Bed::new(test).await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    check.put_keys(&[0, 1, 2], "k", 50).await;
    let old = id_of(&check.wait_healthy(&[0, 1, 2], HEALTHY).await, "etcd-1");
    bed.delete_pod(1).await;
    bed.wipe_volume(1);
    bed.start_pod(1, etcd_pod(&bed, 1, &etcd)).await;
    let members = check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    assert_clean_member_list(&members);
    assert_ne!(id_of(&members, "etcd-1"), old, "etcd-1 must be a new member");
    let seen = decisions(&bed, 1);
    assert!(seen.contains(&"REPLACE".to_string()), "{seen:?}");
    assert_last_decision(&bed, 1, "JOIN");
    check.assert_keys_on(1, "k", 50).await;
}

on_each_etcd!(lost_volume_is_replaced, "wipe", setup34;
    wiped_volume_is_replaced_and_keys_kept_etcd35,
    wiped_volume_is_replaced_and_keys_kept_etcd34,
    wiped_volume_is_replaced_and_keys_kept_etcd3530
);

pub fn archives(volume: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(volume)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("member.removed-")))
                .collect()
        })
        .unwrap_or_default()
}

async fn removed_member_volume_is_archived(test: &str, etcd: PathBuf) {
    let bed = Bed::new(test).await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    check.put_keys(&[0, 1, 2], "k", 50).await;
    let old = id_of(&check.wait_healthy(&[0, 1, 2], HEALTHY).await, "etcd-2");
    bed.delete_pod(2).await;
    remove_member(&bed, &[0, 1], old).await;
    bed.start_pod(2, etcd_pod(&bed, 2, &etcd)).await;
    let members = check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    assert_clean_member_list(&members);
    assert!(decisions(&bed, 2).contains(&"STALE".to_string()), "{}", bed.logs(2));
    assert_last_decision(&bed, 2, "JOIN");
    let kept = archives(&bed.volume(2));
    assert_eq!(kept.len(), 1, "one archive on the volume: {kept:?}");
    assert!(kept[0].join("wal").is_dir(), "the archive keeps the old WAL: {kept:?}");
    check.assert_keys_on(2, "k", 50).await;
}

on_each_etcd!(removed_member_volume_is_archived, "stale", setup34;
    removed_member_returning_with_its_volume_is_stale_archived_and_rejoins_etcd35,
    removed_member_returning_with_its_volume_is_stale_archived_and_rejoins_etcd34,
    removed_member_returning_with_its_volume_is_stale_archived_and_rejoins_etcd3530
);

pub fn tree(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            out.push((path.clone(), entry.metadata().map(|m| m.len()).unwrap_or(0)));
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

pub fn copy_tree(from: &Path, to: &Path) {
    let status =
        std::process::Command::new("cp").arg("-a").arg(format!("{}/.", from.display())).arg(to).status();
    assert!(status.is_ok_and(|s| s.success()), "cp -a {} {}", from.display(), to.display());
}

/// The other cluster: a one-member cluster on its own bed, stopped; its pod 0's volume holds it.
pub async fn another_clusters_volume(etcd: &Path) -> Bed {
    let other = Bed::new("foreign-src").await;
    let single = [("ETCD_BOOTSTRAP_INITIAL_CLUSTER_SIZE", "1")];
    other.start_pod(0, pod_with(&other, 0, etcd, &single)).await;
    Checker::plain(&other).wait_healthy(&[0], HEALTHY).await;
    other.delete_pod(0).await;
    other
}

#[tokio::test(flavor = "multi_thread")]
async fn volume_from_another_cluster_is_refused_and_left_untouched() {
    let Some(etcd) = setup("volume_from_another_cluster_is_refused_and_left_untouched") else { return };
    let other = another_clusters_volume(&etcd).await;

    let bed = Bed::new("foreign").await;
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    bed.delete_pod(1).await;
    bed.wipe_volume(1);
    copy_tree(&other.volume(0), &bed.volume(1));
    let before = tree(&bed.volume(1));
    bed.start_pod(1, etcd_pod(&bed, 1, &etcd)).await;
    wait_exit_code(&bed, 1, 4).await;
    let logs = bed.logs(1);
    assert!(logs.contains("another cluster"), "{logs}");
    assert_last_decision(&bed, 1, "REFUSE");
    assert_eq!(tree(&bed.volume(1)), before, "the foreign volume was changed");
    let members = Checker::plain(&bed).members(&[0, 2]).await.expect("members");
    assert_eq!(members.len(), 3, "the cluster was changed: {members:?}");
}

// ----- crash points ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn crash_right_after_member_add_then_restart_reuses_the_entry() {
    let test = "crash_right_after_member_add_then_restart_reuses_the_entry";
    let Some(etcd) = setup(test) else { return };
    if !crash_points_built(test) {
        return;
    }
    let bed = Bed::new("crash-add").await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    check.put_keys(&[0, 1, 2], "k", 30).await;
    bed.start_pod(3, pod_with(&bed, 3, &etcd, &[("ETCD_BOOTSTRAP_TEST_CRASH_AFTER", "after-add")])).await;
    wait_exit_code(&bed, 3, 137).await;
    let members = check.members(&[0, 1, 2]).await.expect("members");
    assert_eq!(members.iter().filter(|m| m.name.is_empty()).count(), 1, "one unstarted entry: {members:?}");
    bed.delete_pod(3).await;
    bed.start_pod(3, etcd_pod(&bed, 3, &etcd)).await;
    let members = check.wait_healthy(&[0, 1, 2, 3], HEALTHY).await;
    assert_clean_member_list(&members);
    assert!(bed.logs_current(3).contains("join as that member"), "{}", bed.logs_current(3));
    check.assert_keys_on(3, "k", 30).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_right_after_member_remove_then_restart_joins() {
    let test = "crash_right_after_member_remove_then_restart_joins";
    let Some(etcd) = setup(test) else { return };
    if !crash_points_built(test) {
        return;
    }
    let bed = Bed::new("crash-remove").await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    check.put_keys(&[0, 1, 2], "k", 30).await;
    bed.delete_pod(1).await;
    bed.wipe_volume(1);
    bed.start_pod(1, pod_with(&bed, 1, &etcd, &[("ETCD_BOOTSTRAP_TEST_CRASH_AFTER", "after-remove")])).await;
    wait_exit_code(&bed, 1, 137).await;
    let members = check.members(&[0, 2]).await.expect("members");
    assert_eq!(members.len(), 2, "etcd-1 removed: {members:?}");
    bed.delete_pod(1).await;
    bed.start_pod(1, etcd_pod(&bed, 1, &etcd)).await;
    let members = check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    assert_clean_member_list(&members);
    assert_last_decision(&bed, 1, "JOIN");
    check.assert_keys_on(1, "k", 30).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_right_after_the_archive_then_restart_joins_and_keeps_the_archive() {
    let test = "crash_right_after_the_archive_then_restart_joins_and_keeps_the_archive";
    let Some(etcd) = setup(test) else { return };
    if !crash_points_built(test) {
        return;
    }
    let bed = Bed::new("crash-archive").await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    check.put_keys(&[0, 1, 2], "k", 30).await;
    let old = id_of(&check.wait_healthy(&[0, 1, 2], HEALTHY).await, "etcd-2");
    bed.delete_pod(2).await;
    remove_member(&bed, &[0, 1], old).await;
    bed.start_pod(2, pod_with(&bed, 2, &etcd, &[("ETCD_BOOTSTRAP_TEST_CRASH_AFTER", "after-archive")])).await;
    wait_exit_code(&bed, 2, 137).await;
    assert_eq!(archives(&bed.volume(2)).len(), 1);
    assert!(!bed.volume(2).join("member").exists(), "member/ moved aside");
    bed.delete_pod(2).await;
    bed.start_pod(2, etcd_pod(&bed, 2, &etcd)).await;
    let members = check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    assert_clean_member_list(&members);
    assert_last_decision(&bed, 2, "JOIN");
    assert_eq!(archives(&bed.volume(2)).len(), 1, "the archive stays, nothing else archived");
    check.assert_keys_on(2, "k", 30).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_killed_right_after_exec_before_etcd_syncs_converges_on_restart() {
    let Some(etcd) = setup("pod_killed_right_after_exec_before_etcd_syncs_converges_on_restart") else {
        return;
    };
    let bed = Bed::new("crash-exec").await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    check.put_keys(&[0, 1, 2], "k", 30).await;
    bed.start_pod(3, etcd_pod(&bed, 3, &etcd)).await;
    assert!(bed.wait_log(3, "exec etcd", Duration::from_secs(60)).await, "{}", bed.logs(3));
    bed.kill_pod(3).await;
    bed.start_pod(3, etcd_pod(&bed, 3, &etcd)).await;
    let members = check.wait_healthy(&[0, 1, 2, 3], HEALTHY).await;
    assert_clean_member_list(&members);
    let last = decisions(&bed, 3);
    assert!(
        matches!(last.last().map(String::as_str), Some("JOIN" | "EXISTING")),
        "restart after the kill: {last:?}\n{}",
        bed.logs(3)
    );
    check.assert_keys_on(3, "k", 30).await;
}

// ----- a voter down while joining -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn joining_while_a_voting_member_is_down_waits_or_joins_and_never_breaks_the_cluster() {
    let test = "joining_while_a_voting_member_is_down_waits_or_joins_and_never_breaks_the_cluster";
    let Some(etcd) = setup(test) else { return };
    let bed = Bed::new("voter-down").await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    check.put_keys(&[0, 1, 2], "k", 30).await;
    bed.delete_pod(2).await;
    bed.start_pod(3, etcd_pod(&bed, 3, &etcd)).await;
    // Either etcd refuses the add (<= 3.5.29: every voter must be reachable) and the pod waits,
    // or it accepts it and the pod joins; the cluster keeps quorum either way.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = bed.logs(3);
        let waited = logs.contains("member add refused for now");
        let joined = logs.contains("decision=\"JOIN\"") && logs.contains("exec etcd");
        if waited {
            assert!(logs.contains("backoff="), "a refused add is retried with backoff:\n{logs}");
            break;
        }
        if joined {
            break;
        }
        assert!(Instant::now() < deadline, "etcd-3 neither waited nor joined:\n{logs}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(check.healthy_view(0).await.is_ok(), "the cluster lost quorum");
    bed.start_pod(2, etcd_pod(&bed, 2, &etcd)).await;
    let members = check.wait_healthy(&[0, 1, 2, 3], HEALTHY).await;
    assert_clean_member_list(&members);
    check.assert_keys_on(3, "k", 30).await;
}

// ----- TLS and auth ---------------------------------------------------------------------------

pub struct Pki {
    pub dir: PathBuf,
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    /// A CA and, per pod, a certificate for its DNS name used as server, peer and client cert.
    pub fn new(dir: PathBuf, ordinals: &[u32]) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        std::fs::create_dir_all(&dir).expect("tls dir");
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca_params, ca_key);
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write ca");
        for &o in ordinals {
            let key = KeyPair::generate().expect("key");
            let params = CertificateParams::new(vec![pod_fqdn(o)]).expect("params");
            let cert = params.signed_by(&key, &issuer).expect("sign");
            std::fs::write(dir.join(format!("etcd-{o}.pem")), cert.pem()).expect("write cert");
            std::fs::write(dir.join(format!("etcd-{o}-key.pem")), key.serialize_pem()).expect("write key");
        }
        Pki { ca_pem: ca_cert.pem(), dir, issuer }
    }

    /// A certificate for `name` valid from address `ip` (etcd checks the SANs of a peer's client
    /// certificate against the address the connection comes from); its cert and key files.
    pub fn issue_for_ip(&self, name: &str, ip: std::net::IpAddr) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec![ip.to_string()]).expect("params");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let (cert_path, key_path) =
            (self.dir.join(format!("{name}.pem")), self.dir.join(format!("{name}-key.pem")));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }

    pub fn env(&self, ordinal: u32) -> Vec<(String, String)> {
        let cert = self.dir.join(format!("etcd-{ordinal}.pem")).display().to_string();
        let key = self.dir.join(format!("etcd-{ordinal}-key.pem")).display().to_string();
        let ca = self.dir.join("ca.pem").display().to_string();
        [
            ("ETCD_CERT_FILE", cert.clone()),
            ("ETCD_KEY_FILE", key.clone()),
            ("ETCD_TRUSTED_CA_FILE", ca.clone()),
            ("ETCD_CLIENT_CERT_AUTH", "true".to_string()),
            ("ETCD_PEER_CERT_FILE", cert),
            ("ETCD_PEER_KEY_FILE", key),
            ("ETCD_PEER_TRUSTED_CA_FILE", ca),
            ("ETCD_PEER_CLIENT_CERT_AUTH", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn spec(&self, bed: &Bed, ordinal: u32, etcd: &Path) -> PodSpec {
        self.env(ordinal).into_iter().fold(etcd_pod(bed, ordinal, etcd), |s, (k, v)| s.env(k, v))
    }

    /// The checker presents pod 0's certificate as its client certificate.
    pub fn security(&self) -> Security {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).expect("read pem");
        Security { tls: Some((self.ca_pem.clone(), read("etcd-0.pem"), read("etcd-0-key.pem"))), auth: None }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_with_peer_and_client_tls_bootstraps_and_scales_up() {
    let Some(etcd) = setup("cluster_with_peer_and_client_tls_bootstraps_and_scales_up") else { return };
    let bed = Bed::new("tls").await;
    let pki = Pki::new(bed.root().join("tls"), &[0, 1, 2, 3]);
    let check = Checker::new(&bed, pki.security());
    for o in 0..3 {
        bed.start_pod(o, pki.spec(&bed, o, &etcd)).await;
    }
    let members = check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    for m in &members {
        assert!(m.peer_urls.iter().all(|u| u.starts_with("https://")), "{m:?}");
        assert!(m.client_urls.iter().all(|u| u.starts_with("https://")), "{m:?}");
    }
    check.put_keys(&[0, 1, 2], "k", 20).await;
    bed.start_pod(3, pki.spec(&bed, 3, &etcd)).await;
    check.wait_healthy(&[0, 1, 2, 3], HEALTHY).await;
    assert_last_decision(&bed, 3, "JOIN");
    check.assert_keys_on(3, "k", 20).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_with_auth_scales_up_with_the_password_from_a_file_never_logged() {
    let Some(etcd) = setup("cluster_with_auth_scales_up_with_the_password_from_a_file_never_logged") else {
        return;
    };
    let bed = Bed::new("auth").await;
    let password = "pw-7f3a9c-never-log-me";
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    {
        let mut c = Checker::plain(&bed).any_client(&[0, 1, 2]).await.expect("connect");
        let _ = c.role_add("root").await;
        c.user_add("root", password, None).await.expect("user add");
        c.user_grant_role("root", "root").await.expect("grant root");
        c.auth_enable().await.expect("auth enable");
    }
    let secret = bed.root().join("root-password");
    std::fs::write(&secret, format!("{password}\n")).expect("write password file");
    let check = Checker::new(&bed, Security { tls: None, auth: Some(("root".into(), password.into())) });
    check.put_keys(&[0, 1, 2], "k", 20).await;
    let auth = [
        ("ETCD_BOOTSTRAP_AUTH_USER", "root"),
        ("ETCD_BOOTSTRAP_AUTH_PASSWORD_FILE", secret.to_str().expect("utf8 path")),
    ];
    bed.start_pod(3, pod_with(&bed, 3, &etcd, &auth)).await;
    check.wait_healthy(&[0, 1, 2, 3], HEALTHY).await;
    assert_last_decision(&bed, 3, "JOIN");
    check.assert_keys_on(3, "k", 20).await;
    for o in 0..4 {
        assert!(!bed.logs(o).contains(password), "etcd-{o} logged the password");
    }
    let plan = crate::bootstrap::plan_in_pod_with(&bed, 3, &etcd, &auth);
    assert_eq!(plan["cluster"]["quorum"], true, "plan authenticates: {plan:#}");
    assert!(!plan.to_string().contains(password), "plan printed the password");
}

// ----- a changed peer URL ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn restart_under_a_new_peer_url_updates_the_member_then_starts_on_its_data() {
    let Some(etcd) = setup("restart_under_a_new_peer_url_updates_the_member_then_starts_on_its_data") else {
        return;
    };
    let bed = Bed::new("peer-url").await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    check.put_keys(&[0, 1, 2], "k", 20).await;
    let old = id_of(&check.wait_healthy(&[0, 1, 2], HEALTHY).await, "etcd-1");
    // The same pods under a second domain (as if the headless service were renamed).
    let alt = "alt.default.svc.cluster.local";
    let alt_host = |o: u32| format!("etcd-{o}.{alt}");
    for o in [0, 2] {
        bed.dns().set_a(&alt_host(o), bed.pod_ip(o));
    }
    bed.delete_pod(1).await;
    let ip = bed.start_pod(1, pod_with(&bed, 1, &etcd, &[("ETCD_BOOTSTRAP_DOMAIN", alt)])).await;
    bed.dns().set_a(&alt_host(1), ip);
    let members = check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    assert_eq!(id_of(&members, "etcd-1"), old, "same member, not a new one");
    let me = members.iter().find(|m| m.name == "etcd-1").expect("etcd-1");
    assert_eq!(me.peer_urls, vec![format!("http://{}:2380", alt_host(1))]);
    assert!(bed.logs_current(1).contains("peer URL updated"), "{}", bed.logs_current(1));
    assert_last_decision(&bed, 1, "EXISTING");
    check.assert_keys_on(1, "k", 20).await;
}

/// Regression (issue 10): `member update` refused with "Peer URLs already exists" was taken as
/// success, and etcd was exec'd as EXISTING with a peer URL another member holds. Now the
/// bootstrap waits, saying which URL is taken, and never starts etcd on it.
#[tokio::test(flavor = "multi_thread")]
async fn restart_under_a_peer_url_another_member_has_waits_and_never_starts() {
    let name = "restart_under_a_peer_url_another_member_has_waits_and_never_starts";
    let Some(etcd) = setup(name) else { return };
    let bed = Bed::new("peer-url-taken").await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    let members = check.wait_healthy(&[0, 1, 2], HEALTHY).await;
    let old = members.iter().find(|m| m.name == "etcd-1").expect("etcd-1").clone();
    let two = members.iter().find(|m| m.name == "etcd-2").expect("etcd-2").clone();
    // etcd-1's pod will come back under a second domain; etcd-2 already advertises that URL.
    let alt = "alt.default.svc.cluster.local";
    let taken = format!("http://etcd-1.{alt}:2380");
    let mut c = crate::stateful_set::client(&bed, &[0]).await.expect("connect to etcd-0");
    let mut urls = two.peer_urls.clone();
    urls.push(taken.clone());
    c.member_update(two.id, urls).await.expect("give etcd-2 a second peer URL");
    for o in [0, 2] {
        bed.dns().set_a(&format!("etcd-{o}.{alt}"), bed.pod_ip(o));
    }
    bed.delete_pod(1).await;
    let env = [("ETCD_BOOTSTRAP_DOMAIN", alt), ("ETCD_BOOTSTRAP_WAIT_TIMEOUT", "6s")];
    let ip = bed.start_pod(1, pod_with(&bed, 1, &etcd, &env)).await;
    bed.dns().set_a(&format!("etcd-1.{alt}"), ip);
    let exit = bed.wait_exit(1, Duration::from_secs(60)).await;
    let log = bed.logs_current(1);
    assert_eq!(exit, Some(PodExit::Code(5)), "a WAIT that timed out, not etcd running\n{log}");
    assert!(log.contains(&format!("another member already has my peer URL {taken}")), "{log}");
    assert!(!log.contains("peer URL updated") && !log.contains("exec etcd"), "{log}");
    let members = check.members(&[0]).await.expect("etcd-0's member list");
    let now = members.iter().find(|m| m.id == old.id).expect("etcd-1's member is still listed");
    assert_eq!(now.peer_urls, old.peer_urls, "its peer URL untouched");
}

// ----- a learner's changed peer URL -------------------------------------------------------------

/// Poll until `name` is listed as a started learner.
async fn wait_started_learner(bed: &Bed, name: &str) -> SeenMember {
    let check = Checker::plain(bed);
    let deadline = Instant::now() + HEALTHY;
    let mut last = String::new();
    while Instant::now() < deadline {
        match check.members(&[0, 1, 2]).await {
            Ok(members) => match members.iter().find(|m| m.name == name) {
                Some(m) if m.is_learner => return m.clone(),
                Some(m) => panic!("{name} is a voter, not a learner: {m:?}"),
                None => last = format!("{name} not started yet: {members:?}"),
            },
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("{name} never started as a learner: {last}\n{}", bed_logs(bed, &[3]));
}

/// A learner whose peer URL changed is never `member update`d (before etcd-io/etcd#21694 the
/// update clears its learner flag, and etcd can never promote it): the bootstrap waits, naming
/// the learner and both URLs, and the member list keeps the learner as it was. Started again
/// under its old URL, it is promoted; then the new URL is taken with an update, as for any member.
async fn learner_with_a_new_peer_url(test: &str, etcd: PathBuf) {
    let bed = Bed::new(test).await;
    let check = Checker::plain(&bed);
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    bed.start_pod(3, pod_with(&bed, 3, &etcd, &[("ETCD_BOOTSTRAP_JOIN_AS", "learner")])).await;
    let learner = wait_started_learner(&bed, "etcd-3").await;
    // The pods under a second domain (as if the headless service were renamed).
    let alt = "alt.default.svc.cluster.local";
    let alt_host = |o: u32| format!("etcd-{o}.{alt}");
    for o in [0, 1, 2] {
        bed.dns().set_a(&alt_host(o), bed.pod_ip(o));
    }
    bed.delete_pod(3).await;
    let env = [("ETCD_BOOTSTRAP_DOMAIN", alt), ("ETCD_BOOTSTRAP_WAIT_TIMEOUT", "6s")];
    let ip = bed.start_pod(3, pod_with(&bed, 3, &etcd, &env)).await;
    bed.dns().set_a(&alt_host(3), ip);
    let exit = bed.wait_exit(3, Duration::from_secs(60)).await;
    let log = bed.logs_current(3);
    assert_eq!(exit, Some(PodExit::Code(5)), "a WAIT that timed out, not etcd running\n{log}");
    let new_url = format!("http://{}:2380", alt_host(3));
    for needle in [&format!("{:x} is a learner", learner.id), &new_url, &learner.peer_urls[0]] {
        assert!(log.contains(needle.as_str()), "no {needle:?} in\n{log}");
    }
    assert!(log.contains("waiting until it is promoted"), "{log}");
    assert!(!log.contains("peer URL updated") && !log.contains("exec etcd"), "{log}");
    let members = check.members(&[0, 1, 2]).await.expect("member list");
    let now = members.iter().find(|m| m.id == learner.id).expect("the learner is still listed");
    assert!(now.is_learner, "still a learner: {now:?}");
    assert_eq!(now.peer_urls, learner.peer_urls, "its peer URL untouched");
    // Under its old URL it runs, and is promoted; then the new URL is an ordinary update.
    bed.delete_pod(3).await;
    bed.start_pod(3, pod_with(&bed, 3, &etcd, &[])).await;
    promote_when_in_sync(&bed, "etcd-3").await;
    check.wait_healthy(&[0, 1, 2, 3], HEALTHY).await;
    bed.delete_pod(3).await;
    let ip = bed.start_pod(3, pod_with(&bed, 3, &etcd, &[("ETCD_BOOTSTRAP_DOMAIN", alt)])).await;
    bed.dns().set_a(&alt_host(3), ip);
    let members = check.wait_healthy(&[0, 1, 2, 3], HEALTHY).await;
    let now = members.iter().find(|m| m.name == "etcd-3").expect("etcd-3");
    assert_eq!((now.id, &now.peer_urls), (learner.id, &vec![new_url]), "the same member, updated");
    assert!(bed.logs_current(3).contains("peer URL updated"), "{}", bed.logs_current(3));
}

on_each_etcd!(learner_with_a_new_peer_url, "learner-url", setup34;
    a_learner_with_a_new_peer_url_waits_until_promoted_etcd35,
    a_learner_with_a_new_peer_url_waits_until_promoted_etcd34,
    a_learner_with_a_new_peer_url_waits_until_promoted_etcd3530
);
