//! This pod's etcd version: `etcd --version`, run once per start (the binary does not change
//! under a running pod). Read only; the output is parsed by `Release::from_version_output`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::observed::{LocalEtcd, Release};

/// How long `etcd --version` may take (it answers in milliseconds).
const LIMIT: Duration = Duration::from_secs(10);

/// Run `binary --version` with no `ETCD_*` variables (etcd reads them even for `--version` and
/// exits when one shadows a flag); `Unknown` with the reason when it cannot tell.
pub fn version(binary: &Path, path_var: Option<&str>) -> LocalEtcd {
    let mut command = Command::new(binary);
    command.arg("--version").env_clear().stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    if let Some(path) = path_var {
        command.env("PATH", path);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return LocalEtcd::Unknown(format!("{} --version: {e}", binary.display())),
    };
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < LIMIT => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return LocalEtcd::Unknown(format!("{} --version: no answer within 10s", binary.display()));
            }
            Err(e) => return LocalEtcd::Unknown(format!("{} --version: {e}", binary.display())),
        }
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read;
        let _ = stdout.read_to_string(&mut out);
    }
    match Release::from_version_output(&out) {
        Some(release) => LocalEtcd::Known(release),
        None => {
            LocalEtcd::Unknown(format!("{} --version printed no \"etcd Version:\" line", binary.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_or_one_without_a_version_line_is_unknown_with_the_reason() {
        let missing = version(Path::new("/nonexistent/etcd"), None);
        assert!(
            matches!(&missing, LocalEtcd::Unknown(why) if why.contains("/nonexistent/etcd")),
            "{missing:?}"
        );
        let silent = version(Path::new("/bin/true"), None);
        assert!(matches!(&silent, LocalEtcd::Unknown(why) if why.contains("etcd Version")), "{silent:?}");
    }
}
