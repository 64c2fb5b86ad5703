//! etcd-bootstrap: thin entry point. Gathers the surroundings, runs, and maps errors to the
//! documented exit codes with one line on stderr.

use std::process::ExitCode;

use etcd_bootstrap::cli;
use etcd_bootstrap::context::Surroundings;

fn main() -> ExitCode {
    let surroundings = Surroundings {
        env: std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect(),
        hostname: nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()),
        // Bytes, not UTF-8 text: a comment in another encoding must not hide the nameservers.
        resolv_conf: std::fs::read("/etc/resolv.conf").ok().map(|b| String::from_utf8_lossy(&b).into_owned()),
    };
    match cli::main_with(std::env::args_os().collect(), surroundings) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("etcd-bootstrap: error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
