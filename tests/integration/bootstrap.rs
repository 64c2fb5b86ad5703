//! The core of the product on the pod bed: real etcd, real DNS, pods as namespaces with the binary
//! as PID 1. Each test is one "done when" of the core issue.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::bed::{Bed, PodSpec, Publish, Signal};
use crate::etcd_check::{self, bed_logs};
use crate::prereq;

const FORM: Duration = Duration::from_secs(90);

/// The binary under test.
pub fn bootstrap_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_etcd-bootstrap"))
}

/// A StatefulSet pod running etcd-bootstrap as its entrypoint: no --name, --namespace or
/// --dns-server; the data dir is etcd's own variable, as a manifest would set it.
pub fn etcd_pod(bed: &Bed, ordinal: u32, etcd: &Path) -> PodSpec {
    PodSpec::new(bootstrap_bin())
        .env("ETCD_DATA_DIR", bed.volume(ordinal).display().to_string())
        .env("ETCD_BOOTSTRAP_ETCD_BINARY", etcd.display().to_string())
        .env("ETCD_BOOTSTRAP_WAIT_TIMEOUT", "3m")
        .env("ETCD_LOG_LEVEL", "warn")
        .grace(Duration::from_secs(10))
}

/// Skip unless root and etcd are here; returns the etcd binary.
pub fn setup(test: &str) -> Option<PathBuf> {
    if !prereq::need_root(test) {
        return None;
    }
    prereq::need_etcd(test)
}

/// The decisions a pod's current container logged, in order.
pub fn decisions(bed: &Bed, ordinal: u32) -> Vec<String> {
    bed.logs_current(ordinal)
        .lines()
        .filter_map(|l| l.split("decision=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

/// Start pods with empty volumes and wait for a healthy cluster.
pub async fn form_cluster(bed: &Bed, etcd: &Path, ordinals: &[u32]) {
    for &o in ordinals {
        bed.start_pod(o, etcd_pod(bed, o, etcd)).await;
    }
    etcd_check::wait_healthy(bed, ordinals, FORM).await;
}

/// Run `etcd-bootstrap plan --format json` inside a running pod (like `kubectl exec`): its network,
/// hostname and mount namespaces, the same environment as its entrypoint.
pub fn plan_in_pod(bed: &Bed, ordinal: u32, etcd: &Path) -> serde_json::Value {
    plan_in_pod_with(bed, ordinal, etcd, &[])
}

/// [`plan_in_pod`] with extra environment variables.
pub fn plan_in_pod_with(bed: &Bed, ordinal: u32, etcd: &Path, env: &[(&str, &str)]) -> serde_json::Value {
    let pid = bed.pid1(ordinal).to_string();
    let out = Command::new("nsenter")
        .args(["-t", &pid, "-n", "-u", "-m", "--"])
        .arg(bootstrap_bin())
        .args(["plan", "--format", "json"])
        .env_clear()
        .env("PATH", crate::bed::POD_PATH)
        .env("ETCD_DATA_DIR", bed.volume(ordinal))
        .env("ETCD_BOOTSTRAP_ETCD_BINARY", etcd)
        .envs(env.iter().copied())
        .output()
        .expect("run nsenter");
    assert!(out.status.success(), "plan in etcd-{ordinal} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("plan output is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

async fn member_ids(bed: &Bed, ordinals: &[u32]) -> Vec<u64> {
    let mut ids: Vec<u64> =
        etcd_check::wait_healthy(bed, ordinals, FORM).await.iter().map(|m| m.id).collect();
    ids.sort();
    ids
}

fn assert_all_decided(bed: &Bed, ordinals: &[u32], want: &str) {
    for &o in ordinals {
        let got = decisions(bed, o);
        assert_eq!(
            got.last().map(String::as_str),
            Some(want),
            "etcd-{o} decisions {got:?}\n{}",
            bed_logs(bed, &[o])
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_pods_with_dns_two_seconds_late_form_one_cluster_named_by_pod() {
    let Some(etcd) = setup("three_pods_with_dns_two_seconds_late_form_one_cluster_named_by_pod") else {
        return;
    };
    let bed = Bed::new("late-dns").await;
    for o in 0..3 {
        bed.start_pod(o, etcd_pod(&bed, o, &etcd).publish(Publish::After(Duration::from_secs(2)))).await;
    }
    let members = etcd_check::wait_healthy(&bed, &[0, 1, 2], FORM).await;
    for m in &members {
        let fqdn = format!("{}.etcd.default.svc.cluster.local", m.name);
        assert_eq!(m.peer_urls, vec![format!("http://{fqdn}:2380")], "{m:?}");
        assert_eq!(m.client_urls, vec![format!("http://{fqdn}:2379")], "{m:?}");
        // The bootstrap predicts static members' IDs exactly as etcd derives them.
        let predicted =
            etcd_bootstrap::observed::static_member_id(&m.peer_urls, "etcd-bootstrap-default-etcd");
        assert_eq!(m.id, predicted, "{m:?}");
    }
    assert_all_decided(&bed, &[0, 1, 2], "NEW");
    for o in 0..3 {
        assert!(decisions(&bed, o).contains(&"WAIT".to_string()), "etcd-{o} should have waited for DNS");
    }
    let before = member_ids(&bed, &[0, 1, 2]).await;
    let plan = plan_in_pod(&bed, 1, &etcd);
    assert_eq!(plan["decision"], "EXISTING", "{plan:#}");
    assert_eq!(plan["cluster"]["quorum"], true, "{plan:#}");
    assert_eq!(member_ids(&bed, &[0, 1, 2]).await, before, "plan changed the member list");
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_zero_alone_then_pods_one_and_two_ten_seconds_later_all_decide_new() {
    let Some(etcd) = setup("pod_zero_alone_then_pods_one_and_two_ten_seconds_later_all_decide_new") else {
        return;
    };
    let bed = Bed::new("ordered").await;
    bed.start_pod(0, etcd_pod(&bed, 0, &etcd)).await;
    assert!(
        bed.wait_log(0, "waiting for DNS of etcd-1", Duration::from_secs(20)).await,
        "pod 0 should wait for its peers' DNS:\n{}",
        bed.logs(0)
    );
    let plan = plan_in_pod(&bed, 0, &etcd);
    assert_eq!(plan["decision"], "WAIT", "{plan:#}");
    // 10 s alone, as an OrderedReady StatefulSet would leave it; meanwhile it must stay alive.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(bed.is_running(0), "pod 0 gave up:\n{}", bed.logs(0));
    for o in 1..3 {
        bed.start_pod(o, etcd_pod(&bed, o, &etcd)).await;
    }
    etcd_check::wait_healthy(&bed, &[0, 1, 2], FORM).await;
    assert_all_decided(&bed, &[0, 1, 2], "NEW");
}

async fn late_initial_member_case(bed_name: &str, etcd: PathBuf) {
    let bed = Bed::new(bed_name).await;
    // etcd-1's name resolves (to an address nobody answers on) but the pod is not running yet:
    // etcd-0 and etcd-2 start the static cluster and form quorum without it.
    let nowhere = std::net::Ipv4Addr::new(
        bed.gateway().octets()[0],
        bed.gateway().octets()[1],
        bed.gateway().octets()[2],
        250,
    );
    bed.dns().set_a(&crate::bed::pod_fqdn(1), nowhere);
    for o in [0, 2] {
        bed.start_pod(o, etcd_pod(&bed, o, &etcd)).await;
    }
    let deadline = std::time::Instant::now() + FORM;
    while etcd_check::Checker::plain(&bed).healthy_view(0).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "0 and 2 never formed quorum:\n{}",
            bed_logs(&bed, &[0, 2])
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    bed.start_pod(1, etcd_pod(&bed, 1, &etcd)).await;
    etcd_check::wait_healthy(&bed, &[0, 1, 2], FORM).await;
    assert_all_decided(&bed, &[0, 1, 2], "NEW");
    assert!(!bed.logs(1).contains("REPLACE"), "{}", bed.logs(1));
    assert!(bed.logs(1).contains("initial-cluster entry"), "etcd-1 saw the formed cluster:\n{}", bed.logs(1));
}

on_each_etcd!(late_initial_member_case, "late-member", crate::membership::setup34;
    initial_member_starting_after_the_others_formed_quorum_still_decides_new,
    initial_member_starting_after_the_others_formed_quorum_still_decides_new_on_etcd_34,
    initial_member_starting_after_the_others_formed_quorum_still_decides_new_on_etcd_3530
);

#[tokio::test(flavor = "multi_thread")]
async fn volumes_holding_only_lost_and_found_count_as_empty() {
    let Some(etcd) = setup("volumes_holding_only_lost_and_found_count_as_empty") else { return };
    let bed = Bed::new("lost-found").await;
    for o in 0..3 {
        bed.fresh_volume_with_lost_found(o);
    }
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    assert_all_decided(&bed, &[0, 1, 2], "NEW");
    for o in 0..3 {
        assert!(bed.volume(o).join("lost+found").is_dir(), "lost+found of etcd-{o} must stay");
        assert!(bed.volume(o).join("member").is_dir(), "etcd-{o} has no member dir");
    }
}

async fn recreated_pod_case(bed_name: &str, etcd: PathBuf) {
    let bed = Bed::new(bed_name).await;
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    etcd_check::put_keys(&bed, &[0, 2], "before", 50).await;
    let ids = member_ids(&bed, &[0, 1, 2]).await;
    let old_ip = bed.pod_ip(1);
    bed.delete_pod(1).await;
    etcd_check::put_keys(&bed, &[0, 2], "while-away", 20).await;
    let new_ip = bed.start_pod(1, etcd_pod(&bed, 1, &etcd)).await;
    assert_ne!(old_ip, new_ip, "the recreated pod must get a new IP");
    assert_eq!(member_ids(&bed, &[0, 1, 2]).await, ids, "same members, none added or removed");
    assert_all_decided(&bed, &[1], "EXISTING");
    // Two members serve with quorum: the reason must not say the cluster has none.
    let decided: Vec<String> =
        bed.logs_current(1).lines().filter(|l| l.contains("decision=")).map(str::to_string).collect();
    assert!(!decided.is_empty() && decided.iter().all(|l| !l.contains("no quorum")), "{decided:#?}");
    etcd_check::assert_keys_on(&bed, 1, "before", 50).await;
    etcd_check::assert_keys_on(&bed, 1, "while-away", 20).await;
    let plan = plan_in_pod(&bed, 1, &etcd);
    assert_eq!(plan["decision"], "EXISTING", "{plan:#}");
    assert_eq!(member_ids(&bed, &[0, 1, 2]).await, ids, "plan changed the member list");
}

on_each_etcd!(recreated_pod_case, "recreate", crate::membership::setup34;
    pod_recreated_with_its_volume_and_a_new_ip_rejoins_as_existing,
    pod_recreated_with_its_volume_and_a_new_ip_rejoins_as_existing_on_etcd_34,
    pod_recreated_with_its_volume_and_a_new_ip_rejoins_as_existing_on_etcd_3530
);

async fn reverse_order_case(bed_name: &str, etcd: PathBuf) {
    let bed = Bed::new(bed_name).await;
    form_cluster(&bed, &etcd, &[0, 1, 2]).await;
    etcd_check::put_keys(&bed, &[0, 1, 2], "k", 100).await;
    let ids = member_ids(&bed, &[0, 1, 2]).await;
    for o in 0..3 {
        bed.delete_pod(o).await;
    }
    for o in [2, 1, 0] {
        bed.start_pod(o, etcd_pod(&bed, o, &etcd)).await;
        assert!(
            bed.wait_log(o, "decision=\"EXISTING\"", Duration::from_secs(30)).await,
            "etcd-{o} should start on its data:\n{}",
            bed.logs_current(o)
        );
        if o == 2 {
            let plan = plan_in_pod(&bed, 2, &etcd);
            assert_eq!(plan["decision"], "EXISTING", "alone, on its data: {plan:#}");
        }
    }
    assert_eq!(member_ids(&bed, &[0, 1, 2]).await, ids);
    assert_all_decided(&bed, &[0, 1, 2], "EXISTING");
    for o in 0..3 {
        etcd_check::assert_keys_on(&bed, o, "k", 100).await;
    }
}

on_each_etcd!(reverse_order_case, "reverse", crate::membership::setup34;
    all_pods_deleted_then_recreated_in_reverse_order_keep_every_key,
    all_pods_deleted_then_recreated_in_reverse_order_keep_every_key_on_etcd_34,
    all_pods_deleted_then_recreated_in_reverse_order_keep_every_key_on_etcd_3530
);

async fn signal_while_waiting(test: &str, signal: Signal, code: i32) {
    let Some(etcd) = setup(test) else { return };
    let bed = Bed::new(test).await;
    bed.start_pod(0, etcd_pod(&bed, 0, &etcd).publish(Publish::Never)).await;
    assert!(bed.wait_log(0, "decision=\"WAIT\"", Duration::from_secs(20)).await, "{}", bed.logs(0));
    assert!(bed.signal_pid1(0, signal).await, "could not signal PID 1");
    let exit = bed.wait_exit(0, Duration::from_secs(1)).await;
    let exit = exit.unwrap_or_else(|| panic!("PID 1 still running 1 s after {signal:?}:\n{}", bed.logs(0)));
    assert_eq!(exit.code(), Some(code), "{exit:?}\n{}", bed.logs(0));
    assert!(!bed.volume(0).join("member").exists(), "nothing may be created on a stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_to_pid_one_waiting_on_dns_exits_143_within_a_second() {
    signal_while_waiting("sigterm-wait", Signal::SIGTERM, 143).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_to_pid_one_waiting_on_dns_exits_130_within_a_second() {
    signal_while_waiting("sigint-wait", Signal::SIGINT, 130).await;
}
