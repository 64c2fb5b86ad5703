//! The commands, wired: parse, set up logging, resolve the context, dispatch. `main` turns the
//! result into an exit code.

use std::ffi::OsString;
use std::process::ExitCode;

use tracing::{info, warn};

use crate::act::{self, exec};
use crate::config::backup_args::{BackupAction, BackupCommand};
use crate::config::{Cli, Command, Format, LogFormat, PlanArgs, RunArgs, SidecarArgs};
use crate::context::{Context, Surroundings};
use crate::error::{Error, Result};
use crate::observe::{self, datadir};
use crate::observed::DataDirState;
use crate::signals::Shutdown;
use crate::{backup, etcd_args, sidecar};

/// Run the program with `args` (argv, program name first) and its surroundings.
pub fn main_with(args: Vec<OsString>, surroundings: Surroundings) -> Result<ExitCode> {
    let cli = match Cli::parse_any_order(args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match cli.command {
        None => start(&cli.run, &surroundings),
        Some(Command::Run(run)) => start(&run, &surroundings),
        Some(Command::Plan(plan)) => plan_command(&plan, &surroundings),
        Some(Command::Sidecar(args)) => sidecar_command(&args, &surroundings),
        Some(Command::Backup(args)) => backup_command(&args, &surroundings),
    }
}

/// clap's help and version go to stdout with exit 0; a usage error becomes one line, exit 2.
fn usage_error(e: clap::Error) -> Result<ExitCode> {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            print!("{e}");
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(Error::config(usage_line(&e.render().to_string()))),
    }
}

/// clap's rendered error as one line: its first line, the valid values where it lists them
/// (`[possible values: text, json]`), and a pointer to --help.
fn usage_line(rendered: &str) -> String {
    let mut lines = rendered.lines();
    let first = lines.next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // "the following required arguments were not provided:" lists them on indented lines below.
    let listed: Vec<&str> = if first.ends_with(':') {
        lines.take_while(|l| l.starts_with("  ")).map(str::trim).filter(|l| !l.is_empty()).collect()
    } else {
        Vec::new()
    };
    let first = if listed.is_empty() { first.to_string() } else { format!("{first} {}", listed.join(", ")) };
    let possible = rendered.lines().map(str::trim).find(|l| l.starts_with("[possible values:"));
    match possible {
        Some(values) => format!("{first} {values} (see --help)"),
        None => format!("{first} (see --help)"),
    }
}

fn init_logging(format: LogFormat) {
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false);
    let filter = tracing_subscriber::EnvFilter::try_from_env("ETCD_BOOTSTRAP_LOG")
        // The S3 client's own retry notes are noise at info; its warnings stay.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,object_store=warn"));
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).with_env_filter(filter).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_env_filter(filter).try_init(),
    };
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))
}

fn start(args: &RunArgs, surroundings: &Surroundings) -> Result<ExitCode> {
    init_logging(args.common.log_format);
    let ctx = Context::resolve(&args.common, &args.etcd_flags, args.restore_ask(), surroundings)?;
    let etcd = exec::locate(&ctx.etcd_binary, ctx.env.path_var.as_deref())?;
    exec::check_executable(&etcd)?;
    // A setting this etcd refuses (a 3.7 binary and an --experimental-* flag) is an error now,
    // before any membership change; a deprecated one is a warning.
    let deprecated = match &ctx.etcd_version {
        crate::observed::LocalEtcd::Known(release) => etcd_args::check_release(&ctx.user, *release)?,
        crate::observed::LocalEtcd::Unknown(_) => Vec::new(),
    };
    // etcd must write its data dir: say so now rather than let it crash-loop after a membership
    // change. A data dir that is refused anyway is left to the loop, whose REFUSE names the problem.
    if !matches!(datadir::inspect(&ctx.member.data_dir)?, DataDirState::Unknown { .. }) {
        datadir::check_writable(&ctx.member.data_dir)?;
    }
    let rt = runtime()?;
    let mode = rt.block_on(async {
        let mut shutdown = Shutdown::install()?;
        info!(
            pod = %ctx.identity.pod_name,
            domain = %ctx.identity.domain,
            data_dir = %ctx.member.data_dir.display(),
            "etcd-bootstrap {} starting",
            env!("CARGO_PKG_VERSION")
        );
        for warning in &deprecated {
            warn!("{warning}");
        }
        act::bootstrap(&ctx, &mut shutdown).await
    })?;
    drop(rt);
    let argv = etcd_args::argv(&ctx.user, &ctx.member, &mode);
    info!(binary = %etcd.display(), "exec etcd {}", argv.join(" "));
    Err(exec::exec(&etcd, &argv, &ctx.user.exec_env()))
}

fn plan_command(plan: &PlanArgs, surroundings: &Surroundings) -> Result<ExitCode> {
    init_logging(plan.run.common.log_format);
    let run = &plan.run;
    let ctx = Context::resolve(&run.common, &run.etcd_flags, run.restore_ask(), surroundings)?;
    let mut source = backup::restore_round::RestoreSource::from_context(&ctx)?;
    let rt = runtime()?;
    let decided = rt.block_on(async {
        let sources = observe::Sources { every_client_answer: true, ..ctx.sources() };
        // A fresh start's first round: nothing held yet.
        crate::round::gather_and_decide(&ctx, &sources, source.as_mut(), std::time::Duration::ZERO).await
    })?;
    let snapshot = source.as_ref().and_then(|s| {
        s.manifest_read().map(|manifest| crate::plan::Restoring {
            url: s.url.to_string(),
            manifest,
            replay: s.replay_read(),
        })
    });
    match plan.format {
        Format::Text => print!("{}", crate::plan::to_text(&ctx, &decided, snapshot.as_ref())),
        Format::Json => println!("{}", crate::plan::to_json(&ctx, &decided, snapshot.as_ref())),
    }
    Ok(ExitCode::SUCCESS)
}

fn sidecar_command(args: &SidecarArgs, surroundings: &Surroundings) -> Result<ExitCode> {
    init_logging(args.common.log_format);
    let ctx = Context::resolve(&args.common, &args.etcd_flags, None, surroundings)?;
    let settings = sidecar::SidecarSettings::new(args, &ctx)?;
    let rt = runtime()?;
    let result = rt.block_on(async {
        let mut shutdown = Shutdown::install()?;
        sidecar::run(ctx, settings, &mut shutdown).await
    });
    // Leave at once on a signal: nothing in flight needs finishing (every step is idempotent).
    rt.shutdown_background();
    result
}

fn backup_command(args: &BackupCommand, surroundings: &Surroundings) -> Result<ExitCode> {
    let env =
        backup::command::Env { vars: &surroundings.env, resolv_conf: surroundings.resolv_conf.as_deref() };
    let rt = runtime()?;
    let printed = match &args.action {
        None => {
            init_logging(args.take.log_format);
            rt.block_on(backup::command::take_command(&args.take, &env))?
        }
        Some(BackupAction::List(list)) => {
            init_logging(LogFormat::Text);
            rt.block_on(backup::command::list_command(list, &env))?
        }
        Some(BackupAction::Verify(verify)) => {
            init_logging(LogFormat::Text);
            rt.block_on(backup::command::verify_command(verify, &env))?
        }
    };
    print!("{printed}");
    if !printed.ends_with('\n') {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage_error_line(args: &[&str]) -> String {
        let argv = std::iter::once("etcd-bootstrap").chain(args.iter().copied());
        let err = Cli::parse_any_order(argv).expect_err("a usage error");
        usage_line(&err.render().to_string())
    }

    #[test]
    fn a_bad_value_names_the_valid_ones() {
        let line = usage_error_line(&["plan", "--format", "yaml"]);
        assert!(line.contains("'yaml'") && line.contains("[possible values: text, json]"), "{line}");
        assert!(!line.contains('\n'), "{line}");
        let line = usage_error_line(&["--join-as", "observer"]);
        assert!(line.contains("[possible values: voter, learner]"), "{line}");
    }

    #[test]
    fn a_missing_argument_is_named() {
        let line = usage_error_line(&["backup"]);
        assert!(line.contains("not provided: --to <URL>"), "{line}");
        let line = usage_error_line(&["backup", "list"]);
        assert!(line.contains("not provided: <URL>"), "{line}");
        let line = usage_error_line(&["backup", "verify"]);
        assert!(line.contains("not provided: <SNAPSHOT-URL>"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn other_usage_errors_stay_one_line() {
        let line = usage_error_line(&["--no-such-flag"]);
        assert!(line.contains("--no-such-flag") && line.ends_with("(see --help)"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
}
