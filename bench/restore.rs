//! Restore to healthy (issue 13): a new 3-member cluster started from a snapshot of another
//! cluster's database of more than 100 MB, timed from the last pod started to a healthy cluster
//! that serves every key of the snapshot on every member.
//!
//! The snapshot is made once per run of the benchmark: a one-member etcd on the bed is filled with
//! [`KEYS`] values of [`VALUE_BYTES`] random bytes, then `etcd-bootstrap backup --to file://DIR`
//! stores it (the `.db` file is etcd's snapshot byte for byte). The floor is the by-hand way of
//! etcd's recovery guide: each pod runs `etcdutl snapshot restore` of that `.db` with its own name,
//! peer URL, the full initial cluster and the token, then execs etcd with a static configuration.
//! etcd-bootstrap's pods get `--restore-from` with the snapshot's URL: each copies the snapshot
//! out of the store, checks its sha256 against the manifest, runs the same `etcdutl snapshot
//! restore` into a temporary directory inside the data dir, moves it into place and execs etcd.
//! The shell script has no restore.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};

use crate::bed::{pod_name, Bed, PodSpec};
use crate::pods::{self, Sidecars, Tools, Who, TOKEN};
use crate::probe;
use crate::results::Results;

/// Keys in the snapshot, each [`VALUE_BYTES`] of random data: a database of about 119 MB.
pub const KEYS: usize = 110;
const VALUE_BYTES: usize = 1_000_000;
pub const PREFIX: &str = "bench/restore/";
/// The cluster size restored.
pub const SIZE: u32 = 3;
const HEALTHY_WITHIN: Duration = Duration::from_secs(180);

/// The snapshot both contestants restore.
pub struct Snapshot {
    /// `file:///.../NAME`, as `backup` prints it and `--restore-from` takes it.
    pub url: String,
    /// The `.db` file: etcd's snapshot.
    pub db: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

pub async fn run(t: &Tools, runs: usize, r: &mut Results) {
    let store = std::env::temp_dir().join(format!("ebt-bench-restore-{}", std::process::id()));
    let snapshot = match make_snapshot(t, &store).await {
        Ok(s) => s,
        Err(e) => {
            for who in [Who::Floor, Who::Bootstrap] {
                r.fail(&format!("restore.{SIZE}.{}", who.key()), format!("making the snapshot: {e}"));
            }
            let _ = std::fs::remove_dir_all(&store);
            return;
        }
    };
    r.add("restore.db_mb", snapshot.bytes as f64 / 1e6);
    eprintln!("restore: snapshot {} ({} bytes)", snapshot.url, snapshot.bytes);
    measure(t, runs, &snapshot.url, &snapshot.db, &[(PREFIX, KEYS)], "restore", false, r).await;
    let _ = std::fs::remove_dir_all(&store);
}

/// `runs` restores by each contestant, rotating who goes first: `<what>.<SIZE>.<who>`. With
/// `bumped_floor`, a third: the floor's restore with the flags etcd-bootstrap's restore adds
/// (`--bump-revision`, `--mark-compacted`), as `<what>.<SIZE>.floor_bumped`.
#[allow(clippy::too_many_arguments)]
pub async fn measure(
    t: &Tools,
    runs: usize,
    url: &str,
    floor_db: &Path,
    expect: &[(&str, usize)],
    what: &str,
    bumped_floor: bool,
    r: &mut Results,
) {
    let mut contestants = vec![(Who::Floor, false), (Who::Bootstrap, false)];
    if bumped_floor {
        contestants.insert(1, (Who::Floor, true));
    }
    let n = contestants.len();
    for run in 0..runs {
        for k in 0..n {
            let (who, bump) = contestants[(run + k) % n];
            let key = format!("{what}.{SIZE}.{}{}", who.key(), if bump { "_bumped" } else { "" });
            eprint!("{key} run {}/{runs}: ", run + 1);
            match once_expecting(t, who, bump, url, floor_db, expect, what, r).await {
                Ok(secs) => {
                    eprintln!("{secs:.3} s");
                    r.add(&key, secs);
                }
                Err(e) => {
                    eprintln!("failed");
                    r.fail(&key, e);
                }
            }
        }
    }
}

/// Fill a one-member etcd and back it up into `store` with etcd-bootstrap.
async fn make_snapshot(t: &Tools, store: &Path) -> Result<Snapshot, String> {
    let (_bed, _client, ip) = fill_source(t, "bench-restore-source").await?;
    backup(t, store, &ip.to_string())
}

/// A one-member etcd on a bed of its own, filled with [`KEYS`] values of [`VALUE_BYTES`] random
/// bytes: the bed (the pod ends with it), a client, and the pod's IP.
pub async fn fill_source(t: &Tools, bed_name: &str) -> Result<(Bed, Client, std::net::IpAddr), String> {
    let bed = Bed::new(bed_name).await;
    bed.start_pod(0, pods::cold_spec(&bed, t, Who::Floor, 0, 1)).await;
    let ip = bed.pod_ip(0);
    probe::wait_healthy(&[(0, ip)], Duration::from_secs(60))
        .await
        .map_err(|e| format!("source etcd: {e}"))?;
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(30));
    let mut c = Client::connect([format!("http://{ip}:2379")], Some(options))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut random = Random(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    for i in 0..KEYS {
        c.put(format!("{PREFIX}{i:04}"), random.bytes(VALUE_BYTES), None)
            .await
            .map_err(|e| format!("put: {e}"))?;
    }
    Ok((bed, c, ip.into()))
}

/// `etcd-bootstrap backup --to file://STORE` of the etcd at `ip`.
pub fn backup(t: &Tools, store: &Path, ip: &str) -> Result<Snapshot, String> {
    std::fs::create_dir_all(store).map_err(|e| format!("{}: {e}", store.display()))?;
    let out = Command::new(&t.bootstrap)
        .args([
            "backup",
            "--to",
            &format!("file://{}", store.display()),
            "--endpoints",
            &format!("http://{ip}:2379"),
        ])
        .env("TMPDIR", store)
        .output()
        .map_err(|e| format!("run {}: {e}", t.bootstrap.display()))?;
    if !out.status.success() {
        return Err(format!("etcd-bootstrap backup: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let url = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
    let name = url.rsplit('/').next().unwrap_or_default();
    let db = store.join(format!("{name}.db"));
    let bytes = std::fs::metadata(&db).map_err(|e| format!("{} (from {url:?}): {e}", db.display()))?.len();
    Ok(Snapshot { url, db, bytes })
}

/// One restored cluster: etcd-bootstrap restores `url`, the floor `floor_db` by hand (with
/// `bump`: with `--bump-revision` and `--mark-compacted`); seconds from the last pod started to
/// healthy with `expect` (prefix, keys) on every member.
#[allow(clippy::too_many_arguments)]
pub async fn once_expecting(
    t: &Tools,
    who: Who,
    bump: bool,
    url: &str,
    floor_db: &Path,
    expect: &[(&str, usize)],
    what: &str,
    r: &mut Results,
) -> Result<f64, String> {
    let bed = Bed::new(&format!("bench-{what}-{}{}", who.key(), if bump { "-bumped" } else { "" })).await;
    for o in 0..SIZE {
        let spec = match who {
            Who::Bootstrap => {
                pods::cold_spec(&bed, t, who, o, SIZE).env("ETCD_BOOTSTRAP_RESTORE_FROM", url.to_string())
            }
            _ => by_hand_spec(&bed, t, o, floor_db, bump),
        };
        bed.start_pod(o, spec).await;
    }
    let t0 = Instant::now();
    let targets = pods::targets(&bed, 0..SIZE);
    let healthy = probe::wait_healthy(&targets, HEALTHY_WITHIN).await;
    pods::keep_logs(&bed);
    let at = healthy.map_err(|e| format!("{e}\n{}", pods::tails(&bed, 0..SIZE, &Sidecars::default())))?;
    for (o, ip) in &targets {
        let mut c = probe::connect(&[*ip]).await?;
        for (prefix, keys) in expect {
            let got = c
                .get(*prefix, Some(GetOptions::new().with_prefix().with_count_only()))
                .await
                .map_err(|e| format!("{}: count: {e}", pod_name(*o)))?
                .count();
            if got != *keys as i64 {
                return Err(format!("{} serves {got} keys {prefix}* of {keys}", pod_name(*o)));
            }
        }
    }
    if who == Who::Bootstrap {
        crate::cold::diagnose(&bed, what, SIZE, r);
    }
    Ok(at.saturating_duration_since(t0).as_secs_f64())
}

/// The floor's pod: `etcdutl snapshot restore` into the volume (with `bump`: moving the revision
/// and marking it compacted, as etcd-bootstrap's restore does), then etcd with static flags.
fn by_hand_spec(bed: &Bed, t: &Tools, ordinal: u32, db: &Path, bump: bool) -> PodSpec {
    let etcdutl = t.etcd.with_file_name("etcdutl");
    let script = format!(
        "set -e\n'{etcdutl}' snapshot restore '{db}' --data-dir \"$ETCD_DATA_DIR/restored\" --name {name} \
         --initial-cluster {cluster} --initial-cluster-token {TOKEN} --initial-advertise-peer-urls {peer}{flags} >/dev/null\n\
         ETCD_DATA_DIR=\"$ETCD_DATA_DIR/restored\" exec \"$0\" \"$@\"",
        etcdutl = etcdutl.display(),
        db = db.display(),
        name = pod_name(ordinal),
        cluster = pods::initial_cluster(SIZE),
        peer = pods::peer_url(ordinal),
        flags = if bump { " --bump-revision 1000000000 --mark-compacted" } else { "" },
    );
    let flags = pods::static_flags(ordinal, &pods::initial_cluster(SIZE), "new");
    pods::base(bed, ordinal, PodSpec::shell(&script).arg(&t.etcd).args(flags))
}

/// xorshift64*: incompressible enough for a database of values, with no crate for it.
struct Random(u64);

impl Random {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            out.extend_from_slice(&self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        out.truncate(n);
        out
    }
}
