//! This pod's etcd version: `etcd --version`, run once per start (the binary does not change
//! under a running pod). Read only; the output is parsed by `Release::from_version_output`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

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
    // Its output is read to the end on a thread, which ends when etcd does: the answer is taken
    // the moment it comes (no polling interval on every start's path), and within LIMIT.
    let stdout = child.stdout.take();
    let (done, answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        if let Some(mut stdout) = stdout {
            use std::io::Read;
            let _ = stdout.read_to_string(&mut out);
        }
        let _ = done.send(out);
    });
    let out = match answer.recv_timeout(LIMIT) {
        Ok(out) => {
            let _ = child.wait();
            out
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return LocalEtcd::Unknown(format!("{} --version: no answer within 10s", binary.display()));
        }
    };
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
