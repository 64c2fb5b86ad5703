//! Bad input, as a table: flags, variables, hostnames, resolv.conf, DNS answers, data dirs and
//! etcd answers. Every case runs the real binary and ends in one of three outcomes:
//! - an error: exactly one line `etcd-bootstrap: error: ...`, the last line of stderr, naming the
//!   problem, with the exit code the README documents;
//! - a safe WAIT: logged with what it waits for, then exit 5 at `--wait-timeout` with that reason;
//! - a plan (`plan --format json`): the decision and the observed state, where checking the
//!   decision is clearer than waiting for a timeout (never REFUSE or STALE from garbage).
//!
//! And for every case: nothing below the scratch dir is created, deleted or rewritten (paths,
//! types, modes, sizes, mtimes and contents are compared before and after).
//!
//! Cases that need root (a hostname in a UTS namespace, a resolv.conf or a read-only bind mount
//! in a mount namespace, running as `nobody`) skip outside CI without it (see `prereq`). DNS
//! answers come from the bed's DNS server on 127.0.0.1; "etcd" answers from plain TCP listeners
//! on 127.0.0.1 that are not etcd.

#[path = "../fixtures/wal.rs"]
mod wal_fixture;

use wal_fixture::{crc32c, frame, metadata, record, wal};

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bed::dns_server::{DnsServer, Fault};
use crate::bootstrap::bootstrap_bin;
use crate::prereq;
use crate::readme_tables::{self, BadInputRow, RUN_BAD_INPUT};

/// The domain of the pod names in every case that serves DNS.
const DOMAIN: &str = "etcd.default.svc.cluster.local";
/// The SRV name that lists the pods.
const SRV: &str = "_etcd-server._tcp.etcd.default.svc.cluster.local";
/// The first WAL file's name.
const WAL_NAME: &str = "0000000000000000-0000000000000000.wal";
/// The WAIT reason while pod 0's name does not resolve.
const WAITING_FOR_POD_0: &str = "waiting for DNS of etcd-0.etcd.default.svc.cluster.local";
/// Where the fake peers listen.
const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// resolv.conf texts.
const RESOLV_GARBAGE: &[u8] =
    b"nameservers\n\t\t;;;\nsearch\nnameserver\n%%%% {{}} \x01\x02\nnameserver: 1.2.3.4\n";
const RESOLV_GARBAGE_AROUND_SEARCH: &[u8] = b"\x7f\x01garbage\n\nsearch\n   \n\
    search prod.svc.k8s.example svc.k8s.example k8s.example\noptions ndots:5 ;;\nnameserver\n";
/// A comment in ISO-8859-1 ("généré"), as an old tool might leave it: not UTF-8.
const RESOLV_LATIN1: &[u8] =
    b"# g\xe9n\xe9r\xe9 par kubelet\nnameserver 127.0.0.1\nsearch prod.svc.cluster.local svc.cluster.local\n";
/// The longest a case may run.
const CASE_DEADLINE: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

/// One `#[test]` per case, named after it, plus `CASES` to count them.
macro_rules! cases {
    ($($name:ident => $case:expr;)+) => {
        $(
            #[test]
            fn $name() {
                $case.run(stringify!($name));
            }
        )+
        /// Every case of the table, by name.
        const CASES: &[&str] = &[$(stringify!($name)),+];

        /// Every case of the table, built (nothing runs).
        fn all_cases() -> Vec<(&'static str, Case)> {
            vec![$((stringify!($name), $case)),+]
        }
    };
}

cases! {
    // ---- flags and variables ----
    name_with_letters_after_the_ordinal_is_rejected =>
        case().args(&["--name", "etcd-1a"])
            .readme("a pod name with no ordinal at its end (`--name etcd-1a`)");
    name_with_a_double_dash_is_rejected =>
        case().args(&["--name", "etcd--1"]).error(2, "\"etcd--1\" has no valid set name");
    ordinal_larger_than_u32_is_rejected =>
        case().args(&["--name", "etcd-4294967296"]).error(2, "larger than 4294967295");
    name_that_is_not_utf8_is_rejected =>
        case().arg_os("--name").arg_os(OsString::from_vec(b"etcd-\xff".to_vec())).error(2, "invalid UTF-8");
    pod_name_from_pod_name_variable_is_checked_too =>
        case().without(&["--name"]).env("POD_NAME", "etcd-x").error(2, "\"etcd-x\" does not end in a number");
    initial_cluster_size_zero_is_rejected =>
        case().args(&["--initial-cluster-size", "0"]).readme("`--initial-cluster-size 0`");
    unknown_join_mode_is_rejected =>
        case().args(&["--join-as", "observer"]).error(2, "'observer'");
    malformed_dns_server_is_rejected =>
        case().args(&["--dns-server", "dns.local"])
            .readme("a DNS server that is a host name (`--dns-server dns.local`)");
    dns_server_port_out_of_range_is_rejected =>
        case().args(&["--dns-server", "10.0.0.1:99999"]).error(2, "--dns-server \"10.0.0.1:99999\"");
    negative_wait_timeout_is_rejected =>
        case().args(&["--wait-timeout", "-5s"]).error(2, "is negative");
    unparsable_wait_timeout_is_rejected =>
        case().args(&["--wait-timeout", "soon"]).error(2, "expected a duration like 500ms, 30s or 5m");
    unparsable_wait_timeout_variable_is_rejected =>
        case().env("ETCD_BOOTSTRAP_WAIT_TIMEOUT", "10")
            .readme("a duration without a unit (`ETCD_BOOTSTRAP_WAIT_TIMEOUT=10`)");
    zero_probe_timeout_variable_is_rejected =>
        case().env("ETCD_BOOTSTRAP_PROBE_TIMEOUT", "0s").error(2, "--probe-timeout 0s");
    equal_client_and_peer_ports_are_rejected =>
        case().args(&["--client-port", "2380"])
            .readme("the same client and peer port (`--client-port 2380`)");
    namespace_that_is_not_a_dns_label_is_rejected =>
        case().args(&["--namespace", "Prod"])
            .readme("a namespace that is not a DNS label (`--namespace Prod`)");
    unknown_option_is_rejected =>
        case().args(&["--frobnicate"]).readme("an unknown option (`--frobnicate`)");
    log_format_variable_with_an_unknown_value_is_rejected =>
        case().env("ETCD_BOOTSTRAP_LOG_FORMAT", "xml").error(2, "'xml'");
    unknown_value_error_lists_the_valid_values =>
        case().args(&["--log-format", "yaml"])
            .readme("a value that is not one of the option's values (`--log-format yaml`)");
    missing_auth_password_file_is_a_config_error =>
        case().args(&["--auth-user", "root", "--auth-password-file", "{scratch}/missing-pw"])
            .error(2, "cannot read {scratch}/missing-pw: no such file or directory");
    missing_auth_password_file_as_the_readme_says =>
        case().args(&["--auth-user", "root", "--auth-password-file", "{scratch}/missing-pw"])
            .readme("a missing `--auth-password-file`");
    empty_auth_password_file_is_rejected =>
        case().setup(|s| write(&s.root.join("pw"), b"\n"))
            .args(&["--auth-user", "root", "--auth-password-file", "{scratch}/pw"])
            .readme("an empty `--auth-password-file`");
    missing_etcd_tls_file_is_a_config_error =>
        case().args(&["--", "--trusted-ca-file={scratch}/ca.pem"]).error(2, "cannot read {scratch}/ca.pem");
    etcd_cert_file_without_key_file_is_rejected =>
        case().args(&["--", "--cert-file={scratch}/etcd"])
            .readme("etcd's `--cert-file` without `--key-file` (`-- --cert-file=...`)");
    same_setting_as_etcd_flag_and_variable_is_rejected =>
        case().args(&["--", "--data-dir={data}"]).env("ETCD_DATA_DIR", "{data}")
            .readme("an etcd setting given as a flag and as a variable (`-- --data-dir=...` and `ETCD_DATA_DIR`)");
    data_dir_differing_from_etcds_is_rejected =>
        case().args(&["--", "--data-dir={scratch}/elsewhere"]).error(2, "differs from etcd's data dir");
    etcd_positional_argument_is_rejected =>
        case().args(&["--", "etcd"]).error(2, "etcd argument \"etcd\" is not a flag");
    etcd_flag_given_twice_is_rejected =>
        case().args(&["--", "--debug", "--debug"]).readme("an etcd flag given twice (`-- --debug --debug`)");
    etcd_flag_naming_another_member_is_rejected =>
        case().args(&["--", "--name=other"]).error(2, "differs from the pod name");
    managed_etcd_setting_is_rejected =>
        case().env("ETCD_INITIAL_CLUSTER", "a=http://a:2380")
            .readme("an etcd setting the bootstrap decides (`ETCD_INITIAL_CLUSTER=...`)");
    missing_etcd_binary_exits_127 =>
        case().args(&["--etcd-binary", "/nonexistent/etcd"])
            .readme("an etcd binary that does not exist (`--etcd-binary /nonexistent/etcd`)");
    etcd_binary_not_on_path_exits_127 =>
        case().setup(|s| mkdir(&s.root.join("empty-bin"))).without(&["--etcd-binary"])
            .env("PATH", "{scratch}/empty-bin").readme("no etcd on `PATH` and no `--etcd-binary`");
    etcd_binary_that_is_not_executable_exits_126 =>
        case().setup(|s| chmod(&s.etcd(), 0o644))
            .readme("an etcd binary that is not executable (mode 644)");
    sidecar_metrics_port_in_use_exits_7 =>
        case().args(&["sidecar", "--metrics-port", "{busy_port}"]).busy_port()
            .readme("the sidecar's `--metrics-port` in use");
    etcd_binary_that_is_a_directory_exits_126 =>
        case().args(&["--etcd-binary", "{scratch}"]).error(126, "not an executable file");

    // ---- hostnames (a UTS namespace with its own hostname, no --name) ----
    hostname_without_an_ordinal_is_a_config_error =>
        case().without(&["--name"]).hostname("etcd")
            .readme("a hostname with no ordinal and no `--name` (hostname `etcd`)");
    hostname_with_uppercase_letters_is_rejected =>
        case().without(&["--name"]).hostname("Etcd-0").error(2, "\"Etcd-0\" is not a DNS label");
    hostname_with_a_leading_zero_ordinal_is_rejected =>
        case().without(&["--name"]).hostname("etcd-01")
            .error(2, "\"etcd-01\" has an ordinal with a leading zero");
    hostname_that_is_a_fqdn_is_rejected =>
        case().without(&["--name"]).hostname("etcd-0.etcd.default.svc.cluster.local")
            .readme("a hostname that is a full DNS name (`etcd-0.etcd.default.svc.cluster.local`)");
    empty_pod_name_variable_falls_back_to_the_hostname =>
        case().without(&["--name"]).env("POD_NAME", "").hostname("etcd")
            .error(2, "pod name \"etcd\" has no ordinal");

    // ---- resolv.conf (bind-mounted over /etc/resolv.conf in a mount namespace) ----
    resolv_conf_without_nameserver_is_a_config_error =>
        case().without(&["--dns-server"])
            .resolv_conf(b"search default.svc.cluster.local svc.cluster.local\noptions ndots:5\n")
            .readme("resolv.conf without a nameserver, and no `--dns-server`");
    resolv_conf_with_only_unusable_nameservers_is_a_config_error =>
        case().without(&["--dns-server"])
            .resolv_conf(b"nameserver fe80::1%eth0\nnameserver dns.example\n")
            .error(2, "resolv.conf lists no usable nameserver (skipped fe80::1%eth0, dns.example");
    resolv_conf_of_garbage_lines_is_a_config_error =>
        case().without(&["--dns-server"])
            .resolv_conf(RESOLV_GARBAGE)
            .error(2, "resolv.conf lists no nameserver");
    unreadable_resolv_conf_is_a_config_error =>
        case().without(&["--dns-server"]).resolv_conf(b"nameserver 127.0.0.1\n")
            .setup(|s| chmod(&s.root.join("resolv.conf"), 0o600)).nobody()
            .error(2, "cannot read /etc/resolv.conf to find a nameserver: set --dns-server");
    resolv_conf_search_list_without_kubernetes_entry_uses_the_defaults =>
        case().dns(|_| {}).without(&["--domain"])
            .resolv_conf(b"nameserver 127.0.0.1\nsearch example.com corp.example\n")
            .plan("WAIT", |plan| {
                expect_eq(&plan["pod"]["namespace"], "default")?;
                expect_eq(&plan["pod"]["domain"], DOMAIN)
            });
    resolv_conf_garbage_lines_around_a_kubernetes_search_list =>
        case().dns(|_| {}).without(&["--domain"]).resolv_conf(RESOLV_GARBAGE_AROUND_SEARCH)
            .plan("WAIT", |plan| {
                expect_eq(&plan["pod"]["namespace"], "prod")?;
                expect_eq(&plan["pod"]["domain"], "etcd.prod.svc.k8s.example")
            });
    resolv_conf_with_a_latin1_comment_is_still_read =>
        case().dns(|_| {}).without(&["--domain"]).resolv_conf(RESOLV_LATIN1)
            .plan("WAIT", |plan| expect_eq(&plan["pod"]["namespace"], "prod"));

    // ---- DNS answers (the test DNS server; --dns-server points at it) ----
    dns_peers_with_only_txt_records_wait =>
        case().dns(|d| for i in 0..3 { d.set_txt(&pod(i), vec![format!("etcd-{i}")]) })
            .safe_wait("waiting for DNS of etcd-0.etcd.default.svc.cluster.local, etcd-1");
    dns_servfail_for_everything_waits =>
        case().dns(|d| d.set_fault(Fault::Servfail)).safe_wait(WAITING_FOR_POD_0);
    wait_timeout_exits_5_naming_what_it_waited_for =>
        case().dns(|d| d.set_fault(Fault::Servfail)).readme("pod 0's name never resolves (a WAIT)");
    dns_refused_for_everything_waits =>
        case().dns(|d| d.set_fault(Fault::Refused)).safe_wait(WAITING_FOR_POD_0);
    dns_server_that_never_replies_waits =>
        case().dns(|d| d.set_fault(Fault::Drop)).safe_wait(WAITING_FOR_POD_0);
    dns_cname_loop_waits =>
        case().dns(|d| { loopback_pods(d, 3); d.remove_a(&pod(1)); d.set_cname(&pod(1), Some(&pod(1))) })
            .safe_wait("waiting for DNS of etcd-1.etcd.default.svc.cluster.local");
    dns_names_only_in_another_namespace_wait =>
        case().dns(|d| for i in 0..3 {
            d.set_a(&format!("etcd-{i}.etcd.other.svc.cluster.local"), LOCAL)
        })
            .safe_wait(WAITING_FOR_POD_0);
    dns_pod_beyond_the_initial_set_waits =>
        case().dns(|d| { loopback_pods(d, 4); srv(d, (0..4).map(pod)) })
            .safe_wait("pods beyond the initial set exist (etcd-3.etcd.default.svc.cluster.local)");
    dns_200_a_records_for_one_name_are_one_pod =>
        case().dns(|d| {
            loopback_pods(d, 3);
            d.set_a_all(&pod(1), (0..200).map(|i| [127, 0, 1, i].into()).collect())
        })
            .plan("NEW", |plan| {
                expect_eq(&plan["dns"]["resolved"], serde_json::json!([0, 1, 2]))?;
                expect_eq(&plan["cluster"]["answered"], false)
            });
    dns_srv_targets_outside_the_set_are_not_pods =>
        case().dns(|d| {
            loopback_pods(d, 3);
            let strangers = [
                format!("other-3.{DOMAIN}"),
                "etcd-4.etcd.other.svc.cluster.local".to_string(),
                format!("etcd-5.{DOMAIN}.evil"),
                format!("a.etcd-6.{DOMAIN}"),
                format!("etcd-07.{DOMAIN}"),
                format!("etcd-99999999999.{DOMAIN}"),
            ];
            for name in &strangers {
                d.set_a(name, LOCAL);
            }
            srv(d, (0..3).map(pod).chain(strangers));
        })
        .plan("NEW", |plan| {
            expect_eq(&plan["dns"]["source"], "srv")?;
            expect_eq(&plan["dns"]["resolved"], serde_json::json!([0, 1, 2]))?;
            expect_eq(&plan["dns"]["beyond_initial"], serde_json::json!([]))
        });
    dns_huge_srv_answer_of_another_set_adds_no_pods =>
        case().dns(|d| {
            loopback_pods(d, 3);
            srv(d, (0..3).map(pod).chain((0..300).map(|i| format!("other-{i}.{DOMAIN}"))));
        })
        .plan("NEW", |plan| {
            expect_eq(&plan["dns"]["resolved"], serde_json::json!([0, 1, 2]))?;
            expect_eq(&plan["dns"]["beyond_initial"], serde_json::json!([]))
        });
    dns_srv_name_with_a_records_only_falls_back_to_enumeration =>
        case().dns(|d| { loopback_pods(d, 3); d.set_a(SRV, Ipv4Addr::LOCALHOST) })
            .plan("NEW", |plan| expect_eq(&plan["dns"]["source"], "enumerated"));

    // ---- data dirs ----
    data_dir_that_is_a_file_is_rejected =>
        case().setup(|s| write(&s.data(), b"not a dir")).readme("a data dir that is a file");
    data_dir_below_a_file_is_rejected =>
        case().args(&["--data-dir", "{scratch}/etcd/data"]).error(3, "not a directory");
    dangling_data_dir_symlink_is_rejected =>
        case().setup(|s| symlink(&s.root.join("gone"), &s.data()))
            .error(3, "symbolic link to a missing target");
    data_dir_holding_other_files_is_refused_untouched =>
        case().setup(|s| { mkdir(&s.data()); write(&s.data().join("notes.txt"), b"keep me") })
            .readme("a data dir holding other files (`notes.txt`)");
    member_that_is_a_file_is_refused =>
        case().setup(|s| { mkdir(&s.data()); write(&s.data().join("member"), b"a file") })
            .error(4, "the data dir holds member which is not etcd member data");
    truncated_wal_is_a_data_dir_error =>
        case().setup(|s| write_wal(&s.data(), &[0x10, 0x00, 0x00])).readme("a WAL cut short (3 bytes)");
    wal_of_garbage_is_a_data_dir_error =>
        case().setup(|s| write_wal(&s.data(), b"this is not a write-ahead log at all"))
            .error(3, WAL_NAME);
    wal_with_a_valid_frame_but_no_metadata_is_a_data_dir_error =>
        case().setup(|s| {
            let mut w = frame(&record(4, 0, &[]));
            w.extend([0; 64]);
            write_wal(&s.data(), &w)
        })
            .error(3, "no metadata record: the records end at offset 16");
    wal_whose_metadata_fails_its_crc_is_a_data_dir_error =>
        case().setup(|s| {
            let meta = metadata(0x1111, 0x2222);
            let mut w = frame(&record(4, 0, &[]));
            w.extend(frame(&record(1, crc32c(0, &meta) ^ 1, &meta)));
            write_wal(&s.data(), &w)
        })
        .readme("a WAL whose metadata fails its CRC");
    wal_file_that_is_a_directory_is_a_data_dir_error =>
        case().setup(|s| mkdir(&s.data().join("member/wal").join(WAL_NAME)))
            .error(3, "cannot read member/wal/0000000000000000-0000000000000000.wal: is a directory");
    unreadable_data_dir_is_rejected =>
        case().setup(|s| { mkdir(&s.data().join("member")); chmod(&s.data(), 0o700) }).nobody()
            .error(3, "cannot list it: permission denied");
    unreadable_wal_dir_is_rejected =>
        case().setup(|s| {
            write_wal(&s.data(), &wal(0x1111, 0x2222));
            chmod(&s.data().join("member/wal"), 0o000)
        })
            .nobody().error(3, "cannot list member/wal: permission denied");
    read_only_empty_data_dir_is_rejected_before_etcd_starts =>
        case().setup(|s| { mkdir(&s.data()); chown_nobody(&s.data()); chmod(&s.data(), 0o555) }).nobody()
            .error(3, "cannot write it: permission denied");
    read_only_volume_with_member_data_is_rejected_untouched =>
        case().setup(|s| write_wal(&s.data(), &wal(0x1111, 0x2222))).read_only_data()
            .readme("a data dir on a read-only volume");
    read_only_volume_of_another_program_is_still_refused =>
        case().setup(|s| { mkdir(&s.data()); write(&s.data().join("pg_hba.conf"), b"local all all trust") })
            .read_only_data().error(4, "pg_hba.conf");

    // ---- etcd answers (peers resolve to 127.0.0.1, where something that is not etcd listens) ----
    peers_that_accept_and_say_nothing_are_no_answer =>
        case().dns(|d| loopback_pods(d, 3)).peers(FakePeer::Silent)
            .plan("NEW", |plan| expect_eq(&plan["cluster"]["answered"], false));
    peers_that_answer_garbage_http_are_no_answer =>
        case().dns(|d| loopback_pods(d, 3)).peers(FakePeer::GarbageHttp)
            .plan("NEW", |plan| expect_eq(&plan["cluster"]["answered"], false));
    peers_that_close_at_once_are_no_answer =>
        case().dns(|d| loopback_pods(d, 3)).peers(FakePeer::CloseAtOnce)
            .plan("NEW", |plan| expect_eq(&plan["cluster"]["answered"], false));
    member_data_with_peers_answering_garbage_starts_existing =>
        case().setup(|s| write_wal(&s.data(), &wal(0x1111, 0x2222)))
            .dns(|d| loopback_pods(d, 3)).peers(FakePeer::GarbageHttp)
            .plan("EXISTING", |plan| {
                expect_eq(&plan["data_dir"]["contents"]["member_id"], "1111")?;
                expect_eq(&plan["cluster"]["answered"], false)
            });
    garbage_peers_with_a_pod_beyond_the_initial_set_wait =>
        case().dns(|d| { loopback_pods(d, 4); srv(d, (0..4).map(pod)) }).peers(FakePeer::GarbageHttp)
            .safe_wait("no peer answers, but pods beyond the initial set exist");
}

#[test]
fn the_table_has_at_least_30_cases() {
    assert!(CASES.len() >= 30, "{} cases", CASES.len());
    let mut names = CASES.to_vec();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), CASES.len(), "case names are unique");
}

/// Every row of the README's bad-input table of `run` is one case here, and every case that
/// names a row names one that is there.
#[test]
fn every_readme_bad_input_row_is_a_case() {
    let rows = readme_tables::bad_input_rows(RUN_BAD_INPUT);
    readme_tables::assert_unique_inputs(&rows);
    let mut claimed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, case) in all_cases() {
        if let Some(Expect::Readme { input }) = case.expect {
            claimed.entry(input).or_default().push(name);
        }
    }
    let unrun: Vec<&str> =
        rows.iter().map(|r| r.input.as_str()).filter(|i| !claimed.contains_key(i)).collect();
    assert!(unrun.is_empty(), "README bad-input rows no case runs: {unrun:#?}");
    for (input, names) in &claimed {
        readme_tables::row(&rows, input);
        assert_eq!(names.len(), 1, "{input:?} is run by {names:?}");
    }
}

/// The exit code each case of this table ends with (0 for a plan, 5 for a WAIT), for the
/// exit-code table's test.
pub fn case_codes() -> Vec<(&'static str, i32)> {
    let rows = readme_tables::bad_input_rows(RUN_BAD_INPUT);
    all_cases()
        .into_iter()
        .map(|(name, case)| {
            let code = match case.expect {
                Some(Expect::Error { code, .. }) => code,
                Some(Expect::Readme { input }) => readme_tables::row(&rows, input).exit,
                Some(Expect::SafeWait { .. }) => 5,
                Some(Expect::Plan { .. }) => 0,
                None => panic!("{name}: the case expects nothing"),
            };
            (name, code)
        })
        .collect()
}

#[test]
fn bad_input_snapshot_sees_every_kind_of_change() {
    let scratch = Scratch::new();
    write_wal(&scratch.data(), &wal(1, 2));
    write(&scratch.data().join("keep"), b"same size");
    let before = scratch.snapshot();
    assert!(diff(&before, &scratch.snapshot()).is_empty());
    write(&scratch.data().join("keep"), b"same-size"); // same size, new contents
    chmod(&scratch.etcd(), 0o700);
    std::fs::remove_dir(scratch.data().join("member/snap")).expect("rmdir");
    write(&scratch.data().join("new"), b"");
    let changes = diff(&before, &scratch.snapshot());
    for want in
        ["changed {data}/keep: file", "mode 100700", "deleted {data}/member/snap", "created {data}/new"]
    {
        let want = scratch.fill(want);
        assert!(changes.iter().any(|c| c.contains(&want)), "{want}: {changes:#?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

/// What a case expects.
#[derive(Clone, Copy)]
enum Expect {
    /// One error line naming `needle` (placeholders filled in), exit `code`.
    Error { code: i32, needle: &'static str },
    /// One error line with the exit code and words of the README's bad-input row `input`.
    Readme { input: &'static str },
    /// `run` logs a WAIT naming `needle`, then exits 5 at `--wait-timeout` with it.
    SafeWait { needle: &'static str },
    /// `plan --format json` prints this decision and passes `check`.
    Plan { decision: &'static str, check: fn(&Value) -> Result<(), String> },
}

/// Something on the peers' client port that is not etcd.
#[derive(Clone, Copy, Debug)]
enum FakePeer {
    /// Accepts and says nothing, keeping the connection open.
    Silent,
    /// Answers an HTTP/1.1 page, whatever was asked, then closes.
    GarbageHttp,
    /// Accepts and closes at once.
    CloseAtOnce,
}

/// One case: how to run the binary, and what must come of it.
struct Case {
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    without: Vec<&'static str>,
    setups: Vec<fn(&Scratch)>,
    dns: Option<fn(&DnsServer)>,
    peers: Option<FakePeer>,
    hostname: Option<&'static str>,
    resolv_conf: Option<&'static [u8]>,
    nobody: bool,
    read_only_data: bool,
    busy_port: bool,
    expect: Option<Expect>,
}

fn case() -> Case {
    Case {
        args: Vec::new(),
        env: Vec::new(),
        without: Vec::new(),
        setups: Vec::new(),
        dns: None,
        peers: None,
        hostname: None,
        resolv_conf: None,
        nobody: false,
        read_only_data: false,
        busy_port: false,
        expect: None,
    }
}

impl Case {
    /// Arguments after the base flags (placeholders `{data}`, `{scratch}`); a base flag given
    /// here replaces the base one.
    fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(OsString::from));
        self
    }

    fn arg_os(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// A variable (placeholders allowed in the value); a base flag's variable replaces the flag.
    fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Leave out these base flags.
    fn without(mut self, flags: &[&'static str]) -> Self {
        self.without.extend(flags);
        self
    }

    /// Prepare the scratch dir (runs as root, before the snapshot).
    fn setup(mut self, setup: fn(&Scratch)) -> Self {
        self.setups.push(setup);
        self
    }

    /// Serve DNS from the test server, set up by `zone`; `--dns-server` and `--domain` point
    /// the binary at it.
    fn dns(mut self, zone: fn(&DnsServer)) -> Self {
        self.dns = Some(zone);
        self
    }

    /// Listen on 127.0.0.1 with `peer` and make it every peer's client port.
    fn peers(mut self, peer: FakePeer) -> Self {
        self.peers = Some(peer);
        self
    }

    /// Run in a UTS namespace with this hostname.
    fn hostname(mut self, name: &'static str) -> Self {
        self.hostname = Some(name);
        self
    }

    /// Run with this /etc/resolv.conf (a bind mount in a private mount namespace).
    fn resolv_conf(mut self, text: &'static [u8]) -> Self {
        self.resolv_conf = Some(text);
        self
    }

    /// Run as uid/gid 65534 with no groups.
    fn nobody(mut self) -> Self {
        self.nobody = true;
        self
    }

    /// Run with the data dir bind-mounted read-only.
    fn read_only_data(mut self) -> Self {
        self.read_only_data = true;
        self
    }

    /// Hold a TCP port on 0.0.0.0 for the run, named `{busy_port}` in the arguments.
    fn busy_port(mut self) -> Self {
        self.busy_port = true;
        self
    }

    /// Expect what the README's bad-input row `input` documents.
    fn readme(mut self, input: &'static str) -> Self {
        self.expect = Some(Expect::Readme { input });
        self
    }

    fn error(mut self, code: i32, needle: &'static str) -> Self {
        self.expect = Some(Expect::Error { code, needle });
        self
    }

    fn safe_wait(mut self, needle: &'static str) -> Self {
        self.expect = Some(Expect::SafeWait { needle });
        self
    }

    fn plan(mut self, decision: &'static str, check: fn(&Value) -> Result<(), String>) -> Self {
        self.expect = Some(Expect::Plan { decision, check });
        self
    }

    fn needs_root(&self) -> bool {
        self.hostname.is_some() || self.resolv_conf.is_some() || self.nobody || self.read_only_data
    }

    /// Run the case; panics with the case name and everything the binary said on a mismatch.
    fn run(self, name: &str) {
        let expect = self.expect.unwrap_or_else(|| panic!("{name}: the case expects nothing"));
        if self.needs_root() && !prereq::need_root(name) {
            return;
        }
        let scratch = Scratch::new();
        if let Some(text) = self.resolv_conf {
            write(&scratch.root.join("resolv.conf"), text);
        }
        if self.nobody {
            // nobody must reach the data dir and the fake etcd below the (0700) temp dir.
            chmod(&scratch.root, 0o755);
        }
        for setup in &self.setups {
            setup(&scratch);
        }
        let dns = self.dns.map(TestDns::start);
        let listener = self.peers.map(FakeEtcd::start);
        let busy = self.busy_port.then(|| TcpListener::bind("0.0.0.0:0").expect("hold a port"));
        let busy_port = busy.as_ref().map(|l| l.local_addr().expect("addr").port().to_string());
        let before = scratch.snapshot();

        let fill = |text: &str| {
            let text = scratch.fill(text);
            match &busy_port {
                Some(port) => text.replace("{busy_port}", port),
                None => text,
            }
        };
        let mut argv: Vec<OsString> = Vec::new();
        if let Expect::Plan { .. } = expect {
            argv.extend(["plan", "--format", "json"].map(OsString::from));
        }
        argv.extend(self.base_args(&scratch, dns.as_ref(), listener.as_ref()));
        argv.extend(self.args.iter().map(|a| a.to_str().map_or_else(|| a.clone(), |t| fill(t).into())));
        let env: Vec<(String, String)> = self.env.iter().map(|(k, v)| (k.clone(), fill(v))).collect();
        let out = self.spawn(&scratch, &argv, &env);
        drop(listener);
        drop(dns);
        drop(busy);

        let verdict = match expect {
            Expect::Error { code, needle } => check_error(&out, code, &fill(needle)),
            Expect::Readme { input } => {
                let rows = readme_tables::bad_input_rows(RUN_BAD_INPUT);
                let BadInputRow { exit, says, .. } = readme_tables::row(&rows, input);
                check_error_line(&out, *exit, |line| readme_tables::says(line, says))
            }
            Expect::SafeWait { needle } => check_safe_wait(&out, needle),
            Expect::Plan { decision, check } => check_plan(&out, decision, check),
        };
        let after = scratch.snapshot();
        let changed = diff(&before, &after);
        scratch.restore_modes();
        if let Err(why) = verdict {
            panic!("{name}: {why}\nexit: {:?}\nstdout:\n{}\nstderr:\n{}", out.code, out.stdout, out.stderr);
        }
        assert!(changed.is_empty(), "{name}: the run changed files:\n{}", changed.join("\n"));
    }

    /// The base flags that make a valid run, less those the case gives itself or leaves out.
    fn base_args(&self, scratch: &Scratch, dns: Option<&TestDns>, peer: Option<&FakeEtcd>) -> Vec<OsString> {
        let mut base: Vec<(&str, String)> = vec![
            ("--name", "etcd-0".into()),
            ("--wait-timeout", "2s".into()),
            ("--probe-timeout", "500ms".into()),
            ("--data-dir", scratch.data().display().to_string()),
            ("--etcd-binary", scratch.etcd().display().to_string()),
        ];
        match dns {
            Some(dns) => {
                base.push(("--dns-server", dns.addr.to_string()));
                base.push(("--domain", DOMAIN.into()));
            }
            // Nothing listens there: no query leaves the machine.
            None => base.push(("--dns-server", "127.0.0.1:1".into())),
        }
        if let Some(peer) = peer {
            base.push(("--client-port", peer.port.to_string()));
        }
        let given_by_variable = |flag: &str| {
            let var =
                format!("ETCD_BOOTSTRAP_{}", flag.trim_start_matches("--").replace('-', "_").to_uppercase());
            self.env.iter().any(|(k, _)| *k == var)
        };
        let given = |flag: &str| self.args.iter().any(|a| a == flag);
        let etcd_data_dir = self.env.iter().any(|(k, _)| k == "ETCD_DATA_DIR");
        let mut out = Vec::new();
        for (flag, value) in base {
            let skip = self.without.contains(&flag)
                || given(flag)
                || given_by_variable(flag)
                || (flag == "--data-dir" && etcd_data_dir);
            if !skip {
                out.push(flag.into());
                out.push(value.into());
            }
        }
        out
    }

    /// Spawn the binary, wrapped in namespaces and setpriv as the case asks.
    fn spawn(&self, scratch: &Scratch, argv: &[OsString], env: &[(String, String)]) -> Outcome {
        let mut script = vec!["set -e".to_string()];
        let mut unshare: Vec<&str> = Vec::new();
        let mut wrap_env: Vec<(&str, String)> = Vec::new();
        if let Some(host) = self.hostname {
            unshare.push("--uts");
            script.push("hostname \"$BAD_HOSTNAME\"".into());
            wrap_env.push(("BAD_HOSTNAME", host.to_string()));
        }
        if self.resolv_conf.is_some() || self.read_only_data {
            unshare.extend(["--mount", "--propagation", "private"]);
        }
        if self.resolv_conf.is_some() {
            script.push("mount --bind \"$BAD_RESOLV\" /etc/resolv.conf".into());
            wrap_env.push(("BAD_RESOLV", scratch.root.join("resolv.conf").display().to_string()));
        }
        if self.read_only_data {
            script.push("mount --bind \"$BAD_DATA\" \"$BAD_DATA\"".into());
            script.push("mount -o remount,bind,ro \"$BAD_DATA\"".into());
            wrap_env.push(("BAD_DATA", scratch.data().display().to_string()));
        }
        script.push("unset BAD_HOSTNAME BAD_RESOLV BAD_DATA".into());
        script.push("exec \"$@\"".into());

        let mut program: Vec<OsString> = Vec::new();
        if !unshare.is_empty() {
            program.push("unshare".into());
            program.extend(unshare.iter().map(OsString::from));
            program.extend(["/bin/sh", "-c"].map(OsString::from));
            program.push(script.join("\n").into());
            program.push("sh".into());
        }
        if self.nobody {
            program.extend(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"].map(OsString::from),
            );
        }
        program.push(bootstrap_bin().into());
        let mut cmd = Command::new(&program[0]);
        cmd.args(&program[1..]).args(argv);
        cmd.env_clear().env("PATH", "/usr/bin:/bin");
        for (k, v) in wrap_env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        run_with_deadline(cmd)
    }
}

// ---------------------------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------------------------

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run_with_deadline(mut cmd: Command) -> Outcome {
    let mut child = cmd.spawn().expect("spawn etcd-bootstrap");
    // Read both pipes on threads, so a chatty child cannot fill one and block.
    let mut stdout_pipe = child.stdout.take().expect("stdout");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout_pipe.read_to_string(&mut text);
        text
    });
    let stderr = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let deadline = Instant::now() + CASE_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("etcd-bootstrap did not exit within {CASE_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Exactly one error line, the last line of stderr, naming `needle`, with exit `code`.
fn check_error(out: &Outcome, code: i32, needle: &str) -> Result<(), String> {
    check_error_line(out, code, |line| {
        if line.contains(needle) {
            Ok(())
        } else {
            Err(format!("the error line lacks {needle:?}: {line}"))
        }
    })
}

/// Exactly one error line, the last line of stderr, that passes `check`, with exit `code`.
fn check_error_line(
    out: &Outcome,
    code: i32,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<(), String> {
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("etcd-bootstrap: error: ")).collect();
    let [line] = errors.as_slice() else {
        return Err(format!("want one error line, got {}", errors.len()));
    };
    check(line)?;
    if out.stderr.trim_end().lines().last() != Some(line) {
        return Err("the error line is not the last line".into());
    }
    if out.code != Some(code) {
        return Err(format!("want exit {code}, got {:?}", out.code));
    }
    Ok(())
}

/// A logged WAIT naming `needle`, then the wait-timeout error naming it, exit 5.
fn check_safe_wait(out: &Outcome, needle: &str) -> Result<(), String> {
    let logged = out.stderr.lines().any(|l| {
        !l.starts_with("etcd-bootstrap: error: ") && l.contains("decision=\"WAIT\"") && l.contains(needle)
    });
    if !logged {
        return Err(format!("no WAIT log line naming {needle:?}"));
    }
    check_error(out, 5, "gave up after")?;
    check_error(out, 5, needle)
}

/// `plan --format json` succeeded with `decision`, and the plan passes `check`.
fn check_plan(out: &Outcome, decision: &str, check: fn(&Value) -> Result<(), String>) -> Result<(), String> {
    if out.code != Some(0) {
        return Err(format!("plan exited {:?}", out.code));
    }
    if out.stderr.contains("etcd-bootstrap: error:") {
        return Err("plan printed an error".into());
    }
    let plan: Value = serde_json::from_str(&out.stdout).map_err(|e| format!("plan is not json: {e}"))?;
    expect_eq(&plan["decision"], decision)?;
    check(&plan)
}

/// `got` equals `want`, or a message naming both.
fn expect_eq(got: &Value, want: impl Into<Value>) -> Result<(), String> {
    let want = want.into();
    if *got == want {
        Ok(())
    } else {
        Err(format!("want {want}, got {got}"))
    }
}

// ---------------------------------------------------------------------------------------------
// The scratch dir and its snapshot
// ---------------------------------------------------------------------------------------------

/// A scratch dir: `data` (absent unless a case makes it) and an executable fake `etcd`.
struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

/// What is compared before and after: type, mode, owner, size, mtime, contents or link target.
type Snapshot = BTreeMap<PathBuf, String>;

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        write(&root.join("etcd"), b"#!/bin/sh\nexit 0\n");
        chmod(&root.join("etcd"), 0o755);
        Scratch { _dir: dir, root }
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn etcd(&self) -> PathBuf {
        self.root.join("etcd")
    }

    /// `text` with `{data}`, `{scratch}` filled in.
    fn fill(&self, text: &str) -> String {
        text.replace("{data}", &self.data().display().to_string())
            .replace("{scratch}", &self.root.display().to_string())
    }

    fn snapshot(&self) -> Snapshot {
        fn walk(dir: &Path, out: &mut Snapshot) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
                let kind = meta.file_type();
                let content = if kind.is_file() {
                    let mut hasher = std::collections::hash_map::DefaultHasher::new();
                    std::fs::read(&path).map(|b| b.hash(&mut hasher)).ok();
                    format!("file {:x}", hasher.finish())
                } else if kind.is_symlink() {
                    format!("link {:?}", std::fs::read_link(&path).ok())
                } else {
                    "dir".to_string()
                };
                let state = format!(
                    "{content} mode {:o} owner {}:{} size {} mtime {}.{}",
                    meta.mode(),
                    meta.uid(),
                    meta.gid(),
                    meta.len(),
                    meta.mtime(),
                    meta.mtime_nsec()
                );
                out.insert(path.clone(), state);
                if kind.is_dir() {
                    walk(&path, out);
                }
            }
        }
        let mut out = Snapshot::new();
        walk(&self.root, &mut out);
        out
    }

    /// Give every directory back a mode root's cleanup can walk (tempdir removal).
    fn restore_modes(&self) {
        fn walk(dir: &Path) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for entry in entries.flatten() {
                let path = entry.path();
                if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
                    walk(&path);
                }
            }
        }
        walk(&self.root);
    }
}

/// The differences between two snapshots, one line each.
fn diff(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (path, state) in before {
        match after.get(path) {
            None => out.push(format!("deleted {}", path.display())),
            Some(now) if now != state => out.push(format!("changed {}: {state} -> {now}", path.display())),
            Some(_) => {}
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        out.push(format!("created {}", path.display()));
    }
    out
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::File::create(path).and_then(|mut f| f.write_all(bytes)).expect("write");
}

fn mkdir(path: &Path) {
    std::fs::create_dir_all(path).expect("mkdir");
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown_nobody(path: &Path) {
    std::os::unix::fs::chown(path, Some(65534), Some(65534)).expect("chown");
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).expect("symlink");
}

// ---------------------------------------------------------------------------------------------
// WAL files (written from the format: frames of walpb.Record, CRC-32C chained)
// ---------------------------------------------------------------------------------------------

/// `<data>/member/wal/<first>.wal` with `bytes`, and an empty `member/snap`.
fn write_wal(data: &Path, bytes: &[u8]) {
    mkdir(&data.join("member/snap"));
    write(&data.join("member/wal").join(WAL_NAME), bytes);
}

// ---------------------------------------------------------------------------------------------
// DNS and fake peers
// ---------------------------------------------------------------------------------------------

/// `etcd-<i>.<DOMAIN>`.
fn pod(i: u32) -> String {
    format!("etcd-{i}.{DOMAIN}")
}

/// Pods `0..n` resolve to 127.0.0.1 (where a fake peer listens, if any).
fn loopback_pods(dns: &DnsServer, n: u32) {
    for i in 0..n {
        dns.set_a(&pod(i), Ipv4Addr::LOCALHOST);
    }
}

/// The headless service's SRV records list `targets` on the peer port.
fn srv(dns: &DnsServer, targets: impl IntoIterator<Item = String>) {
    dns.set_srv(SRV, targets.into_iter().map(|t| (t, 2380)).collect());
}

/// The bed's DNS server on 127.0.0.1, on a runtime of its own.
struct TestDns {
    server: Option<DnsServer>,
    addr: std::net::SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestDns {
    fn start(zone: fn(&DnsServer)) -> TestDns {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let server = runtime
            .block_on(DnsServer::start("127.0.0.1:0".parse().expect("addr")))
            .expect("start the dns server");
        zone(&server);
        TestDns { addr: server.addr(), server: Some(server), runtime: Some(runtime) }
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        drop(self.server.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// What the garbage peer answers: a web page, not gRPC.
const NOT_ETCD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 20\r\n\r\n<html>hello</html>\r\n";

/// A TCP listener on 127.0.0.1 that is not etcd; stops when dropped.
struct FakeEtcd {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeEtcd {
    fn start(kind: FakePeer) -> FakeEtcd {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fake peer");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopping.load(Ordering::SeqCst) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                match kind {
                    FakePeer::Silent => held.push(stream),
                    FakePeer::CloseAtOnce => drop(stream),
                    FakePeer::GarbageHttp => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                        let mut buf = [0u8; 1024];
                        let _ = stream.read(&mut buf);
                        let _ = stream.write_all(NOT_ETCD);
                    }
                }
            }
        });
        FakeEtcd { port, stop, thread: Some(thread) }
    }
}

impl Drop for FakeEtcd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
