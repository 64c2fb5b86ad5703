//! The chaos run's backups, checked after the run: every snapshot in the store is downloaded
//! over the S3 protocol, checked against its manifest, restored with etcd's own tool (etcdutl,
//! or etcdctl on 3.4) into a scratch one-member etcd, and must hold every write acknowledged at
//! or before its revision, with its value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::s3_server::{S3Server, ACCESS_KEY, SECRET_KEY};
use crate::stateful_set::{value_of, written_keys};

/// How long a restored scratch etcd may take to serve.
const SERVE_WITHIN: Duration = Duration::from_secs(60);

/// A snapshot as `backup list --format json` shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub revision: i64,
    pub cluster_id: String,
    pub sha256: String,
}

impl Listed {
    fn from_json(v: &Value) -> Listed {
        let text = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}")).to_string();
        Listed {
            name: text("name"),
            revision: v["revision"].as_i64().unwrap_or_else(|| panic!("revision in {v}")),
            cluster_id: text("cluster_id"),
            sha256: text("sha256"),
        }
    }
}

/// `etcd-bootstrap backup list URL --format json`, newest first.
pub fn list(url: &str, env: &[(String, String)], home: &Path) -> Result<Vec<Listed>, String> {
    let out = crate::backup::run(&["backup", "list", url, "--format", "json"], env, home);
    if out.code != 0 {
        return Err(format!("backup list {url}: exit {}: {}", out.code, out.stderr.trim()));
    }
    let json: Value = serde_json::from_str(out.stdout.trim()).map_err(|e| format!("backup list: {e}"))?;
    Ok(json.as_array().map(|a| a.iter().map(Listed::from_json).collect()).unwrap_or_default())
}

/// Download object `key` of `bucket` from `s3` into `to` (SigV4, path-style, as any S3 client).
pub async fn download(s3: &S3Server, bucket: &str, key: &str, to: &Path) -> Result<(), String> {
    use object_store::ObjectStoreExt;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .with_endpoint(&s3.endpoint)
        .with_virtual_hosted_style_request(false)
        .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
        .build()
        .map_err(|e| format!("S3 client: {e}"))?;
    let got = store.get(&object_store::path::Path::from(key)).await.map_err(|e| format!("GET {key}: {e}"))?;
    let bytes = got.bytes().await.map_err(|e| format!("GET {key}: {e}"))?;
    std::fs::write(to, &bytes).map_err(|e| format!("write {}: {e}", to.display()))
}

/// etcd's restore tool for `etcd`: etcdutl beside it (3.5 on), else etcdctl beside it (3.4).
fn restore_tool(etcd: &Path) -> (PathBuf, bool) {
    let beside = |name: &str| etcd.with_file_name(name);
    if beside("etcdutl").is_file() {
        (beside("etcdutl"), false)
    } else {
        (beside("etcdctl"), true)
    }
}

/// A scratch one-member etcd on 127.0.0.1, killed and reaped when dropped.
struct Scratch {
    child: Child,
    client_url: String,
    log: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    l.local_addr().expect("local address").port()
}

/// Restore `file` with `etcd`'s tool into `dir/data` and start `etcd` on it.
fn restore_and_start(etcd: &Path, file: &Path, dir: &Path) -> Result<Scratch, String> {
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let data = dir.join("data");
    let (tool, etcdctl) = restore_tool(etcd);
    let mut restore = Command::new(&tool);
    restore
        .args(["snapshot", "restore"])
        .arg(file)
        .arg(format!("--data-dir={}", data.display()))
        .args(["--name=scratch", &format!("--initial-cluster=scratch={peer_url}")])
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg("--initial-cluster-token=chaos-restore-check");
    if etcdctl {
        restore.env("ETCDCTL_API", "3");
    }
    let out = restore.output().map_err(|e| format!("run {}: {e}", tool.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} snapshot restore {}: {}",
            tool.display(),
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let log = dir.join("etcd.log");
    let stdout = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let stderr = stdout.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
    let mut cmd = Command::new(etcd);
    cmd.args(["--name=scratch", &format!("--data-dir={}", data.display())])
        .args([format!("--listen-client-urls={client_url}"), format!("--advertise-client-urls={client_url}")])
        .args([format!("--listen-peer-urls={peer_url}"), format!("--initial-advertise-peer-urls={peer_url}")])
        .arg(format!("--initial-cluster=scratch={peer_url}"))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ETCD_") {
            cmd.env_remove(name);
        }
    }
    let child = cmd.spawn().map_err(|e| format!("start {}: {e}", etcd.display()))?;
    Ok(Scratch { child, client_url, log })
}

/// Every `acked/` key of the scratch etcd, once it serves (polled, within [`SERVE_WITHIN`]).
async fn read_all(scratch: &mut Scratch) -> Result<BTreeMap<String, String>, String> {
    let deadline = Instant::now() + SERVE_WITHIN;
    let options = ConnectOptions::new()
        .with_timeout(Duration::from_secs(5))
        .with_connect_timeout(Duration::from_secs(1));
    loop {
        if let Ok(Some(status)) = scratch.child.try_wait() {
            let log = std::fs::read_to_string(&scratch.log).unwrap_or_default();
            return Err(format!("the restored etcd exited with {status}:\n{log}"));
        }
        let last = match Client::connect([scratch.client_url.as_str()], Some(options.clone())).await {
            Ok(mut c) => match c.status().await {
                Ok(s) if s.leader() != 0 => match written_keys(&mut c).await {
                    Ok(keys) => return Ok(keys),
                    Err(e) => e,
                },
                Ok(_) => "no leader yet".to_string(),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&scratch.log).unwrap_or_default();
            return Err(format!("the restored etcd did not serve within {SERVE_WITHIN:?}: {last}\n{log}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one snapshot's check found.
#[derive(Debug, Clone)]
pub struct Checked {
    pub name: String,
    pub revision: i64,
    /// Acknowledged writes at or before the revision, all found with their values.
    pub writes: usize,
    pub size: u64,
}

/// Download snapshot `listed` (data key `<prefix><name>.db` in `bucket`), check its sha256
/// against the manifest, restore it into a scratch etcd under `dir` and check it holds every
/// write of `acked` (key, acknowledged revision) at or before its revision, with its value.
/// Keys are never written twice, so none can have been overwritten before the revision.
pub async fn check_snapshot(
    s3: &S3Server,
    bucket: &str,
    prefix: &str,
    listed: &Listed,
    etcd: &Path,
    acked: &[(String, i64)],
    dir: &Path,
) -> Result<Checked, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join(format!("{}.db", listed.name));
    download(s3, bucket, &format!("{prefix}{}.db", listed.name), &file).await?;
    let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    if sha != listed.sha256 {
        return Err(format!("{}: sha256 {sha}, the manifest says {}", listed.name, listed.sha256));
    }
    let mut scratch = restore_and_start(etcd, &file, dir)?;
    let have = read_all(&mut scratch).await.map_err(|e| format!("{}: {e}", listed.name))?;
    drop(scratch);
    let due: Vec<&(String, i64)> = acked.iter().filter(|(_, rev)| *rev <= listed.revision).collect();
    let missing: Vec<String> = due
        .iter()
        .filter(|(k, _)| have.get(k.as_str()) != Some(&value_of(k)))
        .map(|(k, rev)| format!("{k} (acknowledged at revision {rev})"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "snapshot {} (revision {}) restored lacks {} of the {} writes acknowledged at or before its \
             revision, e.g. {:?}",
            listed.name,
            listed.revision,
            missing.len(),
            due.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(Checked {
        name: listed.name.clone(),
        revision: listed.revision,
        writes: due.len(),
        size: bytes.len() as u64,
    })
}
