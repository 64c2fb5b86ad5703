//! The one integration test binary. Tests that need root, etcd or network namespaces skip outside
//! CI with a printed reason (see `prereq`); in CI (`CI=true`) a missing prerequisite is a failure.

mod backup;
mod bad_input;
mod bed;
mod bed_selftest;
mod bootstrap;
mod chaos;
mod compose;
mod compose_exec;
mod datadir_wal;
mod dns_lookup;
mod etcd_check;
mod maintenance;
mod maintenance_calls;
mod manifests;
mod membership;
mod monitoring;
mod peer_port;
mod peer_port_safety;
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
