//! The command line: clap (derive), every option also read from `ETCD_BOOTSTRAP_<NAME>`.
//! Validation that clap cannot express lives here too, so bad input fails before anything runs.

pub(crate) mod backup_args;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::ffi::OsString;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::decide::JoinAs;
use crate::duration;

/// Bootstrap an etcd member in a StatefulSet pod, then exec etcd.
#[derive(Debug, Parser)]
#[command(
    name = "etcd-bootstrap",
    version,
    about = "Start etcd correctly in a StatefulSet pod: works out who it is, looks at its data \
             directory and at the cluster, prepares membership, then execs etcd.",
    args_conflicts_with_subcommands = true,
    allow_negative_numbers = true,
    subcommand_negates_reqs = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Options of `run` (the default command).
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Bootstrap, then exec etcd (the default).
    Run(RunArgs),
    /// Observe and decide; print the decision, the reasons and the etcd argv; change nothing.
    Plan(PlanArgs),
    /// Run beside etcd: promote learners, remove members whose pods were scaled away,
    /// defragment, clear a NOSPACE alarm once space is free, follow renewed TLS files.
    Sidecar(SidecarArgs),
    /// Take one snapshot now and upload it (`--to URL`), or `list` / `verify` a store's snapshots.
    Backup(backup_args::BackupCommand),
}

/// `run`: common options plus the etcd flags after `--`.
#[derive(Debug, Args, Clone)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub common: Common,

    /// Restore this snapshot (a URL `backup list` prints) where this pod would start a brand-new
    /// initial cluster, or after a permanent quorum loss with a new --initial-cluster-token (see
    /// the README's runbook). Does nothing once the data belongs to the restored cluster.
    #[arg(long, env = "ETCD_BOOTSTRAP_RESTORE_FROM", value_name = "SNAPSHOT-URL")]
    pub restore_from: Option<String>,

    /// With --restore-from: replay the snapshot's delta segments up to exactly this revision
    /// (default: the newest point the chain reaches; `backup list` shows it).
    #[arg(
        long,
        env = "ETCD_BOOTSTRAP_RESTORE_TO_REVISION",
        value_name = "N",
        requires = "restore_from",
        conflicts_with = "restore_to_time",
        value_parser = clap::value_parser!(i64).range(1..)
    )]
    pub restore_to_revision: Option<i64>,

    /// With --restore-from: replay the snapshot's delta segments up to the last change received
    /// at or before this time (RFC 3339, e.g. 2026-12-05T07:30:00Z).
    #[arg(
        long,
        env = "ETCD_BOOTSTRAP_RESTORE_TO_TIME",
        value_name = "TIME",
        requires = "restore_from",
        value_parser = crate::duration::parse_rfc3339_ms
    )]
    pub restore_to_time: Option<u64>,

    /// etcd's own flags, passed through; the bootstrap reads its settings from them.
    #[arg(last = true, value_name = "ETCD_FLAGS")]
    pub etcd_flags: Vec<String>,
}

impl RunArgs {
    /// `--restore-from` with where its replay stops; None where no snapshot is named (an empty
    /// value counts as none).
    pub(crate) fn restore_ask(&self) -> Option<crate::context::RestoreAsk> {
        let from = self.restore_from.as_deref().filter(|t| !t.trim().is_empty())?;
        Some(crate::context::RestoreAsk {
            from: from.to_string(),
            to_revision: self.restore_to_revision,
            to_time_ms: self.restore_to_time,
        })
    }
}

/// `plan`: like `run`, plus the output format.
#[derive(Debug, Args, Clone)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub run: RunArgs,

    /// Output format of the plan.
    #[arg(long, env = "ETCD_BOOTSTRAP_FORMAT", value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `sidecar`.
#[derive(Debug, Args, Clone)]
pub(crate) struct SidecarArgs {
    #[command(flatten)]
    pub common: Common,

    /// How often the sidecar looks at the cluster.
    #[arg(long, env = "ETCD_BOOTSTRAP_INTERVAL", value_parser = parse_duration, allow_hyphen_values = true, default_value = "10s")]
    pub interval: Duration,

    /// How long a pod's name must have been absent from DNS before its member is removed.
    #[arg(long, env = "ETCD_BOOTSTRAP_REMOVAL_DELAY", value_parser = parse_duration, allow_hyphen_values = true, default_value = "2m")]
    pub removal_delay: Duration,

    /// Port of the sidecar's HTTP endpoint (/healthz, /readyz, /metrics).
    #[arg(long, env = "ETCD_BOOTSTRAP_METRICS_PORT", default_value_t = 2381)]
    pub metrics_port: u16,

    /// Defragment a member when more than this share of its database is free pages (a fraction;
    /// 0 switches routine defragmentation off).
    #[arg(long, env = "ETCD_BOOTSTRAP_DEFRAG_THRESHOLD", allow_hyphen_values = true, default_value_t = 0.45)]
    pub defrag_threshold: f64,

    /// Defragment only members whose database is larger than this (100MB, 1GiB, or bytes).
    #[arg(long, env = "ETCD_BOOTSTRAP_DEFRAG_MIN_SIZE", value_parser = parse_size, allow_hyphen_values = true, default_value = "100MB")]
    pub defrag_min_size: u64,

    /// Under a NOSPACE alarm, compact the key history at the current revision before
    /// defragmenting (never past a backup being written). Off by default: it drops old revisions.
    #[arg(long, env = "ETCD_BOOTSTRAP_COMPACT_ON_NOSPACE")]
    pub compact_on_nospace: bool,

    /// Scheduled backups: the store to upload to (file:///path or s3://bucket/prefix). Only the
    /// sidecar beside the leader takes them.
    #[arg(long, env = "ETCD_BOOTSTRAP_BACKUP_TO", value_name = "URL")]
    pub backup_to: Option<String>,

    /// At most one backup per this interval across the cluster (the newest snapshot's time in the
    /// store decides, so a leader change does not take an extra one).
    #[arg(long, env = "ETCD_BOOTSTRAP_BACKUP_INTERVAL", value_parser = parse_duration, allow_hyphen_values = true, default_value = "1h")]
    pub backup_interval: Duration,

    /// Keep the newest N complete snapshots (never fewer than 1).
    #[arg(long, env = "ETCD_BOOTSTRAP_BACKUP_KEEP", default_value_t = 7)]
    pub backup_keep: usize,

    /// Continuous backups (point-in-time restore): beside the leader, record every change after
    /// the newest full snapshot and upload it as a delta segment every this interval when there
    /// were changes. Off unless set; needs --backup-to.
    #[arg(long, env = "ETCD_BOOTSTRAP_BACKUP_DELTA_INTERVAL", value_parser = parse_duration, allow_hyphen_values = true, value_name = "DURATION")]
    pub backup_delta_interval: Option<Duration>,

    /// Directory for the local copy of a snapshot while it is checked and uploaded.
    #[arg(long, env = "ETCD_BOOTSTRAP_SCRATCH_DIR", value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,

    /// etcd's own flags, as given to `run`, so the sidecar finds TLS files and ports.
    #[arg(last = true, value_name = "ETCD_FLAGS")]
    pub etcd_flags: Vec<String>,
}

/// Options shared by every command.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// Pod name (`<set>-<ordinal>`); default: $POD_NAME, else the hostname.
    #[arg(long, env = "ETCD_BOOTSTRAP_NAME")]
    pub name: Option<String>,

    /// Headless service name; default: the StatefulSet name.
    #[arg(long, env = "ETCD_BOOTSTRAP_SERVICE")]
    pub service: Option<String>,

    /// Namespace; default: $POD_NAMESPACE, else resolv.conf's search list, else `default`.
    #[arg(long, env = "ETCD_BOOTSTRAP_NAMESPACE")]
    pub namespace: Option<String>,

    /// Cluster domain; default: from resolv.conf's search list, else `cluster.local`.
    #[arg(long, env = "ETCD_BOOTSTRAP_CLUSTER_DOMAIN")]
    pub cluster_domain: Option<String>,

    /// Domain of the pod names; default `<service>.<namespace>.svc.<cluster-domain>`; empty means
    /// bare names (docker-compose).
    #[arg(long, env = "ETCD_BOOTSTRAP_DOMAIN")]
    pub domain: Option<String>,

    /// Number of members of the initial cluster (the StatefulSet's first replicas count).
    #[arg(long, env = "ETCD_BOOTSTRAP_INITIAL_CLUSTER_SIZE", default_value_t = 3)]
    pub initial_cluster_size: u32,

    /// Initial cluster token; default: derived from namespace and service.
    #[arg(long, env = "ETCD_BOOTSTRAP_INITIAL_CLUSTER_TOKEN")]
    pub initial_cluster_token: Option<String>,

    /// etcd data directory; default: etcd's --data-dir or $ETCD_DATA_DIR, else /var/lib/etcd.
    #[arg(long, env = "ETCD_BOOTSTRAP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// etcd client port.
    #[arg(long, env = "ETCD_BOOTSTRAP_CLIENT_PORT", default_value_t = 2379)]
    pub client_port: u16,

    /// etcd peer port.
    #[arg(long, env = "ETCD_BOOTSTRAP_PEER_PORT", default_value_t = 2380)]
    pub peer_port: u16,

    /// SRV port name of the peer port on the headless service.
    #[arg(long, env = "ETCD_BOOTSTRAP_PEER_PORT_NAME", default_value = "etcd-server")]
    pub peer_port_name: String,

    /// How a new member joins a running cluster.
    #[arg(
        long,
        env = "ETCD_BOOTSTRAP_JOIN_AS",
        value_parser = PossibleValuesParser::new(JoinAs::ALL.map(JoinAs::as_str)).try_map(|s| s.parse::<JoinAs>()),
        default_value_t = JoinAs::Voter
    )]
    pub join_as: JoinAs,

    /// How long to wait (for DNS, peers, quorum) before exiting non-zero.
    #[arg(long, env = "ETCD_BOOTSTRAP_WAIT_TIMEOUT", value_parser = parse_duration, allow_hyphen_values = true, default_value = "5m")]
    pub wait_timeout: Duration,

    /// Deadline of one probe of one peer (member list, status).
    #[arg(long, env = "ETCD_BOOTSTRAP_PROBE_TIMEOUT", value_parser = parse_duration, allow_hyphen_values = true, default_value = "2s")]
    pub probe_timeout: Duration,

    /// DNS server: `ip:port`, `[ipv6]:port` or a bare IP (port 53); not a host name. Default:
    /// resolv.conf's nameservers.
    #[arg(long, env = "ETCD_BOOTSTRAP_DNS_SERVER", value_name = "IP:PORT", value_parser = parse_dns_server)]
    pub dns_server: Option<SocketAddr>,

    /// etcd binary; default `etcd` on PATH.
    #[arg(long, env = "ETCD_BOOTSTRAP_ETCD_BINARY")]
    pub etcd_binary: Option<PathBuf>,

    /// etcd user for membership calls (with --auth-password-file).
    #[arg(long, env = "ETCD_BOOTSTRAP_AUTH_USER", requires = "auth_password_file")]
    pub auth_user: Option<String>,

    /// File holding the password of --auth-user.
    #[arg(long, env = "ETCD_BOOTSTRAP_AUTH_PASSWORD_FILE", requires = "auth_user")]
    pub auth_password_file: Option<PathBuf>,

    /// Log format.
    #[arg(long, env = "ETCD_BOOTSTRAP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Backup store settings (`--restore-from`, the sidecar's `--backup-to`).
    #[command(flatten)]
    pub store: backup_args::StoreOptions,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Plan output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

impl Cli {
    /// Parse argv (program name first). Options may also come before the subcommand
    /// (`etcd-bootstrap --name etcd-0 plan`): the subcommand is moved in front of them.
    pub(crate) fn parse_any_order<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        Cli::try_parse_from(subcommand_first(&Cli::command(), args))
    }
}

/// Move a subcommand that follows options (before any `--`) to the front of them. The first word
/// that is neither an option nor an option's value is the subcommand, if it names one; anything
/// else is left for clap to judge.
fn subcommand_first(cmd: &clap::Command, mut args: Vec<OsString>) -> Vec<OsString> {
    let commands: Vec<&clap::Command> = std::iter::once(cmd).chain(cmd.get_subcommands()).collect();
    let takes_value = |word: &str| {
        commands.iter().flat_map(|c| c.get_arguments()).any(|a| {
            let named = match word.strip_prefix("--") {
                Some(long) => a.get_long() == Some(long),
                None => word.len() == 2 && a.get_short().map(|c| format!("-{c}")).as_deref() == Some(word),
            };
            named && a.get_action().takes_values()
        })
    };
    let mut i = 1;
    while i < args.len() {
        let Some(word) = args[i].to_str() else { return args };
        if word == "--" {
            return args;
        }
        if !word.starts_with('-') {
            if i > 1 && cmd.find_subcommand(word).is_some() {
                let sub = args.remove(i);
                args.insert(1, sub);
            }
            return args;
        }
        // `--name etcd-0`: skip the value too (not for `--name=etcd-0`).
        i += if !word.contains('=') && takes_value(word) { 2 } else { 1 };
    }
    args
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text)
}

fn parse_size(text: &str) -> Result<u64, String> {
    crate::size::parse(text)
}

fn parse_dns_server(text: &str) -> Result<SocketAddr, String> {
    crate::observe::dns::parse_dns_server(text).map_err(|e| e.to_string())
}

impl Common {
    /// Checks clap cannot express.
    pub fn validate(&self) -> crate::error::Result<()> {
        use crate::error::Error;
        if self.initial_cluster_size == 0 {
            return Err(Error::config(
                "--initial-cluster-size 0: a cluster needs at least 1 member; set the StatefulSet's initial replicas (usually 3)",
            ));
        }
        if self.client_port == 0 || self.peer_port == 0 || self.client_port == self.peer_port {
            return Err(Error::config(format!(
                "--client-port {} and --peer-port {}: ports must be non-zero and different",
                self.client_port, self.peer_port
            )));
        }
        if self.wait_timeout.is_zero() {
            return Err(Error::config("--wait-timeout 0s: give a positive duration such as 5m"));
        }
        if self.probe_timeout.is_zero() {
            return Err(Error::config("--probe-timeout 0s: give a positive duration such as 2s"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("etcd-bootstrap").chain(args.iter().copied()))
    }

    #[test]
    fn bare_invocation_is_run_with_etcd_flags_after_double_dash() {
        let cli = parse(&["--initial-cluster-size", "5", "--", "--data-dir=/x", "--debug"]).expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(cli.run.common.initial_cluster_size, 5);
        assert_eq!(cli.run.etcd_flags, ["--data-dir=/x", "--debug"]);
    }

    #[test]
    fn plan_takes_format_and_etcd_flags() {
        let cli = parse(&["plan", "--format", "json", "--", "--name=x"]).expect("parses");
        match cli.command {
            Some(Command::Plan(p)) => {
                assert_eq!(p.format, Format::Json);
                assert_eq!(p.run.etcd_flags, ["--name=x"]);
            }
            other => panic!("expected plan, got {other:?}"),
        }
    }

    #[test]
    fn durations_and_join_mode_parse() {
        let cli = parse(&["run", "--wait-timeout", "30s", "--join-as", "learner"]).expect("parses");
        let Some(Command::Run(run)) = cli.command else { panic!("expected run") };
        assert_eq!(run.common.wait_timeout, Duration::from_secs(30));
        assert_eq!(run.common.join_as, JoinAs::Learner);
    }

    #[test]
    fn options_before_the_subcommand() {
        let any = |args: &[&str]| {
            Cli::parse_any_order(std::iter::once("etcd-bootstrap").chain(args.iter().copied()))
        };
        let cli = any(&["--name", "etcd-0", "plan", "--format", "json"]).expect("parses");
        let Some(Command::Plan(plan)) = cli.command else { panic!("expected plan") };
        assert_eq!(plan.run.common.name.as_deref(), Some("etcd-0"));
        assert_eq!(plan.format, Format::Json);

        let cli = any(&["--name=etcd-1", "--wait-timeout", "30s", "run", "--", "plan"]).expect("parses");
        let Some(Command::Run(run)) = cli.command else { panic!("expected run") };
        assert_eq!(run.common.name.as_deref(), Some("etcd-1"));
        assert_eq!(run.common.wait_timeout, Duration::from_secs(30));
        assert_eq!(run.etcd_flags, ["plan"], "after --, a word is etcd's");

        let cli = any(&["--format", "json", "plan"]).expect("a plan option before plan");
        let Some(Command::Plan(plan)) = cli.command else { panic!("expected plan") };
        assert_eq!(plan.format, Format::Json);

        let cli = any(&["--interval", "5s", "--name", "etcd-2", "sidecar"]).expect("parses");
        let Some(Command::Sidecar(sidecar)) = cli.command else { panic!("expected sidecar") };
        assert_eq!(
            (sidecar.interval, sidecar.common.name.as_deref()),
            (Duration::from_secs(5), Some("etcd-2"))
        );

        // An option's value that happens to be a command's name stays a value.
        let cli = any(&["--name", "plan"]).expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(cli.run.common.name.as_deref(), Some("plan"));
        // The usual order is unchanged, and a stray word is still an error.
        assert!(matches!(
            any(&["plan", "--name", "etcd-0"]).expect("parses").command,
            Some(Command::Plan(_))
        ));
        assert!(any(&["--name", "etcd-0", "planx"]).is_err());
    }

    #[test]
    fn dns_server_help_says_what_is_accepted() {
        let help = Cli::command().render_long_help().to_string();
        let at = help.find("--dns-server <IP:PORT>").expect("--dns-server takes IP:PORT");
        let text: String = help[at..].split_whitespace().take(20).collect::<Vec<_>>().join(" ");
        assert!(text.contains("not a host name") && !text.contains("host:port"), "{text}");
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["--join-as", "observer"][..],
            &["--wait-timeout", "-5s"],
            &["--wait-timeout", "soon"],
            &["--initial-cluster-size", "-1"],
            &["--auth-user", "root"],
        ] {
            let err = parse(args).expect_err(&format!("{args:?}"));
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn maintenance_options_parse_with_their_defaults() {
        let Some(Command::Sidecar(s)) = parse(&["sidecar"]).expect("parses").command else {
            panic!("sidecar")
        };
        assert_eq!((s.defrag_threshold, s.defrag_min_size, s.compact_on_nospace), (0.45, 100_000_000, false));
        let args =
            ["sidecar", "--defrag-threshold", "0", "--defrag-min-size", "1GiB", "--compact-on-nospace"];
        let Some(Command::Sidecar(s)) = parse(&args).expect("parses").command else { panic!("sidecar") };
        assert_eq!((s.defrag_threshold, s.defrag_min_size, s.compact_on_nospace), (0.0, 1 << 30, true));
        for bad in [&["sidecar", "--defrag-min-size", "lots"][..], &["sidecar", "--defrag-threshold", "half"]]
        {
            assert_eq!(parse(bad).expect_err("bad").exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn validate_rejects_zero_size_and_equal_ports() {
        let mut common = parse(&[]).expect("parses").run.common;
        common.initial_cluster_size = 0;
        assert!(common.validate().expect_err("size 0").to_string().contains("--initial-cluster-size 0"));
        common.initial_cluster_size = 3;
        common.peer_port = common.client_port;
        assert!(common.validate().is_err());
    }
}
