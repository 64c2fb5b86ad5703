//! The sidecar's maintenance calls (the reads of `observe::cluster::maintenance`, the writes of
//! `act::etcd_calls`) against a real etcd 3.5: status with
//! database sizes, compaction, defragmentation, and a NOSPACE alarm raised by a small quota,
//! listed, and disarmed once the space is back.

use std::time::{Duration, Instant};

use etcd_bootstrap::act::etcd_calls::{compact, defragment_at, disarm_nospace};
use etcd_bootstrap::observe::cluster::maintenance::{db_report_at, DbReport};
use etcd_bootstrap::observe::cluster::{Access, Endpoint, MemberClient};
use etcd_bootstrap::observed::Refusal;
use etcd_client::{Client, DeleteOptions};

use crate::datadir_wal::EtcdProcess;
use crate::prereq;

const TIMEOUT: Duration = Duration::from_secs(5);
/// etcd's quota for this test: small, so it fills in a second.
const QUOTA: u64 = 24 * 1024 * 1024;

async fn report(access: &Access, endpoint: &Endpoint) -> DbReport {
    db_report_at(access, endpoint, TIMEOUT).await.expect("status")
}

/// Small writes until `check` holds for the member's report (etcd counts freed pages as free
/// only once a later write commits); panics at the deadline.
async fn write_until(
    kv: &mut Client,
    access: &Access,
    endpoint: &Endpoint,
    what: &str,
    check: impl Fn(&DbReport) -> bool,
) -> DbReport {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    loop {
        let r = report(access, endpoint).await;
        if check(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "{what}: {r:?}");
        kv.put(format!("tick/{i}"), "x", None).await.expect("small put");
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn maintenance_calls_compact_defragment_and_clear_nospace_on_real_etcd() {
    let Some(bin) = prereq::need_etcd("maintenance_calls_compact_defragment_and_clear_nospace_on_real_etcd")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let quota = format!("--quota-backend-bytes={QUOTA}");
    let mut etcd =
        EtcdProcess::start_with(&bin, &tmp.path().join("data"), &tmp.path().join("etcd.log"), &[&quota]);
    etcd.wait_healthy();
    let access = Access::default();
    let endpoint = Endpoint { host: "127.0.0.1".into(), url: etcd.client_url.clone() };
    let mut kv = Client::connect([etcd.client_url.as_str()], None).await.expect("connect");
    let mut member = MemberClient::connect(&access, &endpoint, TIMEOUT).await.expect("connect");

    let first = report(&access, &endpoint).await;
    assert!(first.member_id != 0 && first.leader == first.member_id && !first.is_learner, "{first:?}");
    assert!(first.db_size > 0 && first.db_in_use > 0, "{first:?}");

    // About 10 MB written and deleted: after a compaction, the pages are free.
    let value = "v".repeat(100_000);
    for i in 0..100 {
        kv.put(format!("big/{i:03}"), value.as_str(), None).await.expect("put");
    }
    kv.delete("big/", Some(DeleteOptions::new().with_prefix())).await.expect("delete");
    // The backend commits in batches: poll (the small writes also commit the batch).
    let written =
        write_until(&mut kv, &access, &endpoint, "about 10 MB written", |r| r.db_size > 8_000_000).await;
    compact(&mut member, written.revision).await.expect("compact");
    let again = compact(&mut member, written.revision).await;
    let refusal = again.map_err(|e| e.refusal);
    assert_eq!(refusal, Err(Refusal::Compacted), "a second compaction at the same revision");
    let fragmented =
        write_until(&mut kv, &access, &endpoint, "in use never dropped", |r| r.db_in_use * 2 < r.db_size)
            .await;
    defragment_at(&access, &endpoint, TIMEOUT).await.expect("defragment");
    let compacted = report(&access, &endpoint).await;
    assert!(
        compacted.db_size * 2 < fragmented.db_size,
        "defragmentation gave the space back: {fragmented:?} -> {compacted:?}"
    );
    assert_eq!(member.alarms(TIMEOUT).await.expect("alarm list"), vec![], "no alarm yet");

    // Fill until etcd refuses: a NOSPACE alarm, raised by this member.
    let value = "f".repeat(500_000);
    let mut refused = None;
    for i in 0..200 {
        if let Err(e) = kv.put(format!("fill/{i:03}"), value.as_str(), None).await {
            refused = Some(e.to_string());
            break;
        }
    }
    let refused = refused.expect("etcd never refused a put under a 24 MiB quota");
    assert!(refused.contains("database space exceeded"), "{refused}");
    let alarms = member.alarms(TIMEOUT).await.expect("alarm list");
    assert!(alarms.iter().any(|a| a.member == first.member_id && a.code == 1), "NOSPACE listed: {alarms:?}");
    // Deletes pass under NOSPACE; compaction and defragmentation give the space back; disarm.
    kv.delete("fill/", Some(DeleteOptions::new().with_prefix())).await.expect("delete under NOSPACE");
    let full = report(&access, &endpoint).await;
    compact(&mut member, full.revision).await.expect("compact under NOSPACE");
    defragment_at(&access, &endpoint, TIMEOUT).await.expect("defragment under NOSPACE");
    let freed = report(&access, &endpoint).await;
    assert!(freed.db_size < QUOTA / 2, "{full:?} -> {freed:?}");
    disarm_nospace(&mut member, first.member_id).await.expect("disarm");
    assert_eq!(member.alarms(TIMEOUT).await.expect("alarm list"), vec![], "disarmed");
    kv.put("after", "ok", None).await.expect("a put after the disarm");
}
