//! `backup --to`, `backup list` and `backup verify` against real etcd 3.5 and two real stores: a
//! directory and the S3 server `s3s-fs` (SigV4 checked). What a user checks: the snapshots list
//! newest first, each verifies, retention holds, an upload killed before its manifest never
//! lists, and every bad input is one line with its documented exit code and no change to the
//! store.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::bed::dns_server::DnsServer;
use crate::bootstrap::bootstrap_bin;
use crate::datadir_wal::EtcdProcess;
use crate::prereq;
use crate::readme_tables;
use crate::s3_server::{S3Server, SECRET_KEY};

/// The bucket and prefix of the S3 store.
const BUCKET: &str = "etcd-backups";
/// The domain of the pod names of the `--restore-from` cases.
const DOMAIN: &str = "etcd.default.svc.cluster.local";

/// What one run of the binary gave.
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The one error line: the last line of stderr, the only `etcd-bootstrap: error:` line.
    fn error_line(&self) -> &str {
        let errors: Vec<&str> =
            self.stderr.lines().filter(|l| l.starts_with("etcd-bootstrap: error: ")).collect();
        assert_eq!(errors.len(), 1, "exactly one error line:\n{}", self.stderr);
        assert_eq!(
            self.stderr.lines().last(),
            Some(errors[0]),
            "the error line comes last:\n{}",
            self.stderr
        );
        errors[0]
    }
}

/// Run `etcd-bootstrap ARGS` with only `env` (plus PATH), never the test's own AWS_*/ETCD_*.
pub fn run(args: &[&str], env: &[(String, String)], home: &Path) -> Outcome {
    let mut cmd = Command::new(bootstrap_bin());
    cmd.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("HOME", home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run etcd-bootstrap");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One etcd, one S3 server, one scratch dir.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub etcd: EtcdProcess,
    pub s3: S3Server,
}

impl Fixture {
    pub fn start(test: &str) -> Option<Fixture> {
        let etcd_bin = prereq::need_etcd(test)?;
        let s3_bin = prereq::need_s3_server(test)?;
        let dir = tempfile::tempdir().expect("scratch dir");
        let mut etcd = EtcdProcess::start(&etcd_bin, &dir.path().join("etcd"), &dir.path().join("etcd.log"));
        etcd.wait_healthy();
        let s3 = S3Server::start(&s3_bin, &dir.path().join("s3"), &[BUCKET]);
        // A directory store must exist: backup never creates it (a missing volume is an error).
        std::fs::create_dir(dir.path().join("backups")).expect("the directory store");
        Some(Fixture { dir, etcd, s3 })
    }

    pub fn file_url(&self) -> String {
        format!("file://{}/backups", self.dir.path().display())
    }

    pub fn s3_url(&self) -> String {
        format!("s3://{BUCKET}/etcd/prod")
    }

    /// Where the objects of a store URL lie on disk.
    pub fn objects_dir(&self, url: &str) -> PathBuf {
        match url.strip_prefix("file://") {
            Some(path) => PathBuf::from(path),
            None => self.s3.root.join(BUCKET).join("etcd/prod"),
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn backup(&self, url: &str, extra: &[&str]) -> Outcome {
        let mut args = vec!["backup", "--to", url, "--endpoints", &self.etcd.client_url];
        args.extend_from_slice(extra);
        run(&args, &self.s3.client_env(), &self.home())
    }

    /// `backup list URL --format json`, parsed.
    pub fn list(&self, url: &str) -> Vec<Value> {
        let out = run(&["backup", "list", url, "--format", "json"], &self.s3.client_env(), &self.home());
        assert_eq!(out.code, 0, "backup list {url}: {}", out.stderr);
        let parsed: Value = serde_json::from_str(out.stdout.trim()).expect("json listing");
        parsed.as_array().cloned().expect("an array")
    }

    pub fn verify(&self, snapshot_url: &str) -> Outcome {
        run(&["backup", "verify", snapshot_url], &self.s3.client_env(), &self.home())
    }

    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.etcd.client_url.as_str()], None).await.expect("connect to etcd")
    }

    /// Put `count` keys `<prefix>/<i>`; returns the revision after the last put.
    pub async fn put_keys(&self, prefix: &str, count: usize) -> i64 {
        let mut client = self.client().await;
        let mut revision = 0;
        for i in 0..count {
            let resp = client.put(format!("{prefix}/{i}"), format!("value-{i}"), None).await.expect("put");
            revision = resp.header().map(|h| h.revision()).unwrap_or_default();
        }
        revision
    }

    pub async fn cluster_id(&self) -> String {
        let mut client = self.client().await;
        let status = client.status().await.expect("status");
        format!("{:x}", status.header().map(|h| h.cluster_id()).unwrap_or_default())
    }
}

/// Every file below `dir` with its size and contents hash, to prove nothing changed.
pub fn snapshot_of_tree(dir: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    use std::hash::{Hash, Hasher};
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                out.insert(path, (bytes.len() as u64, h.finish()));
            }
        }
    }
    out
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.retain(|n| !n.starts_with('.'));
    names.sort();
    names
}

fn closed_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_to_a_directory_and_to_s3_list_newest_first_verify_and_keep_the_newest_n() {
    let Some(fx) =
        Fixture::start("backups_to_a_directory_and_to_s3_list_newest_first_verify_and_keep_the_newest_n")
    else {
        return;
    };
    let cluster_id = fx.cluster_id().await;
    for url in [fx.file_url(), fx.s3_url()] {
        let mut printed = Vec::new();
        let mut revisions = Vec::new();
        for round in 0..3 {
            revisions.push(fx.put_keys(&format!("/{round}"), 20).await);
            let out = fx.backup(&url, &["--keep", "2"]);
            assert_eq!(out.code, 0, "backup to {url}: {}", out.stderr);
            assert!(!out.stderr.contains(SECRET_KEY) && !out.stdout.contains(SECRET_KEY));
            printed.push(out.stdout.trim().to_string());
            // Names carry the second of the snapshot: keep them apart.
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        let listed = fx.list(&url);
        assert_eq!(listed.len(), 2, "retention keeps the newest 2 in {url}: {listed:#?}");
        let urls: Vec<&str> = listed.iter().map(|m| m["url"].as_str().expect("url")).collect();
        assert_eq!(urls, [printed[2].as_str(), printed[1].as_str()], "newest first, as printed by backup");
        for (item, revision) in listed.iter().zip([revisions[2], revisions[1]]) {
            assert!(item["revision"].as_i64().expect("revision") >= revision, "{item}");
            assert_eq!(item["cluster_id"], cluster_id.as_str());
            assert_eq!(item["etcd_version"], "3.5.1");
            assert_eq!(item["members"][0]["name"], "datadir-test");
            let verified = fx.verify(item["url"].as_str().expect("url"));
            assert_eq!(verified.code, 0, "verify {item}: {}", verified.stderr);
            assert!(verified.stdout.contains(": ok ("), "{}", verified.stdout);
        }
        let names = names_in(&fx.objects_dir(&url));
        assert_eq!(names.len(), 4, "two snapshots, two objects each, nothing else: {names:?}");
        // The text listing: a header, then the same URLs in the same order.
        let text = run(&["backup", "list", &url], &fx.s3.client_env(), &fx.home());
        let first_column: Vec<&str> =
            text.stdout.lines().skip(1).filter_map(|l| l.split('\t').next()).collect();
        assert_eq!(first_column, urls);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_killed_before_its_manifest_never_lists_as_a_snapshot() {
    let Some(fx) = Fixture::start("an_upload_killed_before_its_manifest_never_lists_as_a_snapshot") else {
        return;
    };
    fx.put_keys("/k", 10).await;
    for url in [fx.file_url(), fx.s3_url()] {
        let first = fx.backup(&url, &[]);
        assert_eq!(first.code, 0, "{}", first.stderr);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        fx.put_keys("/more", 5).await;
        let mut env = fx.s3.client_env();
        env.push(("ETCD_BOOTSTRAP_TEST_CRASH_AFTER".into(), "after-upload-data".into()));
        let args = ["backup", "--to", url.as_str(), "--endpoints", fx.etcd.client_url.as_str()];
        let killed = run(&args, &env, &fx.home());
        assert_eq!(killed.code, 137, "the crash point ends the upload: {}", killed.stderr);
        let listed = fx.list(&url);
        let urls: Vec<&str> = listed.iter().map(|m| m["url"].as_str().expect("url")).collect();
        assert_eq!(urls, [first.stdout.trim()], "only the complete snapshot lists in {url}");
        assert!(
            names_in(&fx.objects_dir(&url))
                .iter()
                .any(|n| n.ends_with(".db") && !first.stdout.contains(n.trim_end_matches(".db"))),
            "the cut upload left its data only"
        );
    }
}

/// One bad-input case: the README row it runs (its input cell), what to run.
struct Case {
    input: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// Every row of the README's bad-input table of `backup` and `--restore-from`, run against a
/// real etcd and a real S3 server: the documented exit code, one error line with the documented
/// words (for `backup`, the only line on stderr), no secret printed, no store changed, and no
/// missing directory created.
#[tokio::test(flavor = "multi_thread")]
async fn bad_backup_input_is_one_line_with_its_exit_code_and_changes_no_store() {
    let Some(fx) = Fixture::start("bad_backup_input_is_one_line_with_its_exit_code_and_changes_no_store")
    else {
        return;
    };
    let etcd_bin = prereq::etcd_bin().expect("etcd, as the fixture found it");
    fx.put_keys("/k", 10).await;
    // Three snapshots in the directory to damage: truncated, corrupted, manifest of another.
    let mut good = Vec::new();
    for round in 0..4 {
        fx.put_keys(&format!("/round-{round}"), 3).await;
        let out = fx.backup(&fx.file_url(), &[]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        good.push(out.stdout.trim().to_string());
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let s3_ok = fx.backup(&fx.s3_url(), &[]);
    assert_eq!(s3_ok.code, 0, "{}", s3_ok.stderr);
    let dir = fx.objects_dir(&fx.file_url());
    let db = |url: &str| dir.join(format!("{}.db", url.rsplit('/').next().expect("name")));
    // Truncated: the last byte gone.
    let bytes = std::fs::read(db(&good[0])).expect("read");
    std::fs::write(db(&good[0]), &bytes[..bytes.len() - 1]).expect("truncate");
    // Corrupted: one byte flipped in the middle.
    let mut bytes = std::fs::read(db(&good[1])).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(db(&good[1]), &bytes).expect("corrupt");
    // Manifest and data disagree: the data of snapshot 3 under the name of snapshot 2.
    std::fs::copy(db(&good[3]), db(&good[2])).expect("swap data");
    // A pod that would start a new one-member cluster, for `--restore-from`: its name resolves
    // (the bed's DNS server), nobody answers on its ports.
    let dns = DnsServer::start("127.0.0.1:0".parse().expect("addr")).await.expect("dns server");
    dns.set_a(&format!("etcd-0.{DOMAIN}"), Ipv4Addr::LOCALHOST);
    let (client_port, peer_port) = (closed_port().to_string(), closed_port().to_string());
    let pod = |data: &str, from: &str| -> Vec<String> {
        let data = fx.dir.path().join(data);
        std::fs::create_dir_all(&data).expect("data dir");
        [
            "run",
            "--name",
            "etcd-0",
            "--initial-cluster-size",
            "1",
            "--domain",
            DOMAIN,
            "--dns-server",
            &dns.addr().to_string(),
            "--client-port",
            &client_port,
            "--peer-port",
            &peer_port,
            "--wait-timeout",
            "20s",
            "--data-dir",
            &data.display().to_string(),
            "--etcd-binary",
            &etcd_bin.display().to_string(),
            "--restore-from",
            from,
        ]
        .map(String::from)
        .to_vec()
    };

    let s = |v: &str| v.to_string();
    let s3_env = fx.s3.client_env();
    let mut wrong_secret = s3_env.clone();
    wrong_secret.retain(|(k, _)| k != "AWS_SECRET_ACCESS_KEY");
    wrong_secret.push((s("AWS_SECRET_ACCESS_KEY"), s("wrong-secret-never-printed")));
    let no_keys: Vec<(String, String)> =
        s3_env.iter().filter(|(k, _)| k == "AWS_ENDPOINT_URL").cloned().collect();
    let unreachable = vec![
        (s("AWS_ACCESS_KEY_ID"), s("x")),
        (s("AWS_SECRET_ACCESS_KEY"), s("y")),
        (s("AWS_ENDPOINT_URL"), format!("http://127.0.0.1:{}", closed_port())),
    ];
    let mut secret_endpoint = s3_env.clone();
    secret_endpoint.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    secret_endpoint.push((s("AWS_ENDPOINT_URL"), s("http://user:secret-in-a-url@host:9000")));
    let endpoints = fx.etcd.client_url.clone();
    let take = |to: &str| vec![s("backup"), s("--to"), s(to), s("--endpoints"), endpoints.clone()];
    let missing = "/missing/dir";
    assert!(!Path::new(missing).exists(), "{missing} exists on this machine");
    let cases = vec![
        Case { input: "`backup` without `--to`", args: vec![s("backup")], env: vec![] },
        Case { input: "`backup list` without a URL", args: vec![s("backup"), s("list")], env: vec![] },
        Case {
            input: "an unknown scheme (`backup --to gs://bucket/etcd`)",
            args: take("gs://bucket/etcd"),
            env: s3_env.clone(),
        },
        Case {
            input: "a password in the store URL (`backup --to file://user:secret@host/backups`)",
            args: take("file://user:secret-in-a-url@host/backups"),
            env: vec![],
        },
        Case {
            input: "a password in the S3 endpoint (`AWS_ENDPOINT_URL=http://user:secret@host:9000`)",
            args: take(&fx.s3_url()),
            env: secret_endpoint,
        },
        Case {
            input: "no S3 credentials anywhere (`backup --to s3://...`)",
            args: take(&fx.s3_url()),
            env: no_keys,
        },
        Case {
            input: "an S3 endpoint that does not answer (`backup --to s3://...`)",
            args: take(&fx.s3_url()),
            env: unreachable.clone(),
        },
        Case {
            input: "an S3 endpoint that does not answer (`backup list s3://...`)",
            args: vec![s("backup"), s("list"), fx.s3_url()],
            env: unreachable,
        },
        Case {
            input: "a missing directory, often a volume not mounted (`backup --to file:///missing/dir`)",
            args: take(&format!("file://{missing}")),
            env: vec![],
        },
        Case {
            input: "a missing directory (`backup list file:///missing/dir`)",
            args: vec![s("backup"), s("list"), format!("file://{missing}")],
            env: vec![],
        },
        Case {
            input: "a missing bucket (`backup list s3://no-such-bucket/etcd`)",
            args: vec![s("backup"), s("list"), s("s3://no-such-bucket/etcd")],
            env: s3_env.clone(),
        },
        Case {
            input: "wrong credentials (`backup --to s3://...`)",
            args: take(&fx.s3_url()),
            env: wrong_secret.clone(),
        },
        Case {
            input: "wrong credentials (`backup list s3://...`)",
            args: vec![s("backup"), s("list"), fx.s3_url()],
            env: wrong_secret,
        },
        Case {
            input: "a snapshot URL that does not exist (`backup verify`)",
            args: vec![s("backup"), s("verify"), format!("{}/snapshot-19700101T000000Z-r1", fx.s3_url())],
            env: s3_env.clone(),
        },
        Case {
            input: "a truncated snapshot (`backup verify`)",
            args: vec![s("backup"), s("verify"), good[0].clone()],
            env: vec![],
        },
        Case {
            input: "a corrupted snapshot (`backup verify`)",
            args: vec![s("backup"), s("verify"), good[1].clone()],
            env: vec![],
        },
        Case {
            input: "a manifest that does not match its data (`backup verify`)",
            args: vec![s("backup"), s("verify"), good[2].clone()],
            env: vec![],
        },
        Case {
            input: "etcd does not answer (`backup --to ... --endpoints http://127.0.0.1:PORT`)",
            args: vec![
                s("backup"),
                s("--to"),
                fx.file_url(),
                s("--endpoints"),
                format!("http://127.0.0.1:{}", closed_port()),
            ],
            env: vec![],
        },
        Case {
            input: "`--restore-from` with an unknown scheme (`gs://bucket/etcd/snapshot-1`)",
            args: pod("data-scheme", "gs://bucket/etcd/snapshot-1"),
            env: vec![],
        },
        Case {
            input: "`--restore-from` a store instead of a snapshot (`file:///backups`)",
            args: pod("data-store", "file:///backups"),
            env: vec![],
        },
        Case {
            input: "`--restore-from` a snapshot that fails its check on download",
            args: pod("data-corrupted", &good[1]),
            env: vec![],
        },
        Case {
            input: "`--restore-to-revision` without `--restore-from`",
            args: pod("data-no-from", &good[0])
                .into_iter()
                .take_while(|a| a != "--restore-from")
                .chain([s("--restore-to-revision"), s("5")])
                .collect(),
            env: vec![],
        },
        Case {
            input: "`--restore-to-revision` and `--restore-to-time` together",
            args: [
                pod("data-both", &good[0]),
                vec![s("--restore-to-revision"), s("5"), s("--restore-to-time"), s("2026-12-05T07:30:00Z")],
            ]
            .concat(),
            env: vec![],
        },
        Case {
            input: "a time that is not RFC 3339 (`--restore-to-time yesterday`)",
            args: [pod("data-time", &good[0]), vec![s("--restore-to-time"), s("yesterday")]].concat(),
            env: vec![],
        },
        Case {
            input: "a revision past what the snapshot's chain reaches (`--restore-to-revision 999999`)",
            args: [pod("data-past", &good[0]), vec![s("--restore-to-revision"), s("999999")]].concat(),
            env: vec![],
        },
    ];
    let rows = readme_tables::bad_input_rows(readme_tables::BACKUP_BAD_INPUT);
    readme_tables::assert_unique_inputs(&rows);
    let unrun: Vec<&str> =
        rows.iter().map(|r| r.input.as_str()).filter(|i| !cases.iter().any(|c| c.input == *i)).collect();
    assert!(unrun.is_empty(), "README bad-input rows no case runs: {unrun:#?}");
    for case in cases {
        let row = readme_tables::row(&rows, case.input);
        let before = snapshot_of_tree(fx.dir.path().join("backups").as_path());
        let before_s3 = snapshot_of_tree(&fx.s3.root);
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let out = run(&args, &case.env, &fx.home());
        assert_eq!(out.code, row.exit, "{}: {}", case.input, out.stderr);
        let line = out.error_line();
        if let Err(why) = readme_tables::says(line, &row.says) {
            panic!("{}: {why}", case.input);
        }
        if args[0] == "backup" {
            assert_eq!(
                out.stderr.trim_end().lines().count(),
                1,
                "{}: one line on stderr:\n{}",
                case.input,
                out.stderr
            );
        }
        for secret in [SECRET_KEY, "wrong-secret-never-printed", "secret-in-a-url"] {
            assert!(
                !out.stderr.contains(secret) && !out.stdout.contains(secret),
                "{}: a secret printed",
                case.input
            );
        }
        assert_eq!(
            before,
            snapshot_of_tree(fx.dir.path().join("backups").as_path()),
            "{}: the directory store changed",
            case.input
        );
        assert_eq!(before_s3, snapshot_of_tree(&fx.s3.root), "{}: the S3 store changed", case.input);
        assert!(!Path::new(missing).exists(), "{}: created {missing}", case.input);
    }
    drop(dns);
}
