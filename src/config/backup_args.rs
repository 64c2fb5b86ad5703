//! The command line of `backup`: `backup --to URL`, `backup list URL`, `backup verify URL`, and
//! the store options shared with `run --restore-from` and the sidecar's scheduled backups.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Format, LogFormat};

/// Options of any command that talks to a backup store.
#[derive(Debug, Args, Clone, Default)]
pub struct StoreOptions {
    /// Endpoint of an S3-compatible store (path-style requests), e.g. http://minio.backup:9000;
    /// default: $AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL, else AWS S3 itself. Credentials
    /// come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the shared credentials file or web
    /// identity, never from a flag.
    #[arg(long, env = "ETCD_BOOTSTRAP_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
}

/// `backup`: take one snapshot now, or `list` / `verify` the snapshots of a store.
#[derive(Debug, Args, Clone)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct BackupCommand {
    #[command(subcommand)]
    pub action: Option<BackupAction>,

    #[command(flatten)]
    pub take: TakeArgs,
}

/// `backup list` and `backup verify`.
#[derive(Debug, Subcommand, Clone)]
pub(crate) enum BackupAction {
    /// Print the complete snapshots of a store, newest first, as URLs `--restore-from` takes.
    List(ListArgs),
    /// Download one snapshot and check it against its manifest and etcd's own checksum.
    Verify(VerifyArgs),
}

/// `backup --to URL`.
#[derive(Debug, Args, Clone)]
pub(crate) struct TakeArgs {
    /// Store to upload to: file:///path or s3://bucket/prefix.
    #[arg(long, env = "ETCD_BOOTSTRAP_BACKUP_TO", value_name = "URL", required = true)]
    pub to: Option<String>,

    /// etcd client URLs to take the snapshot from, comma-separated; the first that answers is used.
    #[arg(
        long,
        env = "ETCD_BOOTSTRAP_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,

    /// After the upload, keep only the newest N complete snapshots (never fewer than 1).
    #[arg(long, env = "ETCD_BOOTSTRAP_BACKUP_KEEP", value_name = "N")]
    pub keep: Option<usize>,

    /// Directory for the local copy of the snapshot while it is checked and uploaded.
    #[arg(long, env = "ETCD_BOOTSTRAP_SCRATCH_DIR", value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,

    #[command(flatten)]
    pub etcd: EtcdAccessArgs,

    #[command(flatten)]
    pub store: StoreOptions,

    /// Log format.
    #[arg(long, env = "ETCD_BOOTSTRAP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How `backup` reaches etcd (etcdctl's flag names).
#[derive(Debug, Args, Clone)]
pub(crate) struct EtcdAccessArgs {
    /// CA of etcd's client certificates (https endpoints).
    #[arg(long, env = "ETCD_BOOTSTRAP_CACERT")]
    pub cacert: Option<PathBuf>,
    /// Client certificate (with --key).
    #[arg(long, env = "ETCD_BOOTSTRAP_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client key (with --cert).
    #[arg(long, env = "ETCD_BOOTSTRAP_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
    /// etcd user (with --auth-password-file).
    #[arg(long, env = "ETCD_BOOTSTRAP_AUTH_USER", requires = "auth_password_file")]
    pub auth_user: Option<String>,
    /// File holding the password of --auth-user.
    #[arg(long, env = "ETCD_BOOTSTRAP_AUTH_PASSWORD_FILE", requires = "auth_user")]
    pub auth_password_file: Option<PathBuf>,
    /// DNS server `host:port` for host names in --endpoints and the S3 endpoint; default:
    /// resolv.conf's nameservers.
    #[arg(long, env = "ETCD_BOOTSTRAP_DNS_SERVER", value_parser = parse_dns_server)]
    pub dns_server: Option<SocketAddr>,
}

/// `backup list URL`.
#[derive(Debug, Args, Clone)]
pub(crate) struct ListArgs {
    /// Store: file:///path or s3://bucket/prefix.
    #[arg(value_name = "URL")]
    pub url: String,

    /// Output format.
    #[arg(long, env = "ETCD_BOOTSTRAP_FORMAT", value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// DNS server `host:port` for the S3 endpoint's host name.
    #[arg(long, env = "ETCD_BOOTSTRAP_DNS_SERVER", value_parser = parse_dns_server)]
    pub dns_server: Option<SocketAddr>,

    #[command(flatten)]
    pub store: StoreOptions,
}

/// `backup verify SNAPSHOT-URL`.
#[derive(Debug, Args, Clone)]
pub(crate) struct VerifyArgs {
    /// One snapshot, as `backup list` prints it.
    #[arg(value_name = "SNAPSHOT-URL")]
    pub url: String,

    /// Directory for the downloaded copy while it is checked.
    #[arg(long, env = "ETCD_BOOTSTRAP_SCRATCH_DIR", value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,

    /// DNS server `host:port` for the S3 endpoint's host name.
    #[arg(long, env = "ETCD_BOOTSTRAP_DNS_SERVER", value_parser = parse_dns_server)]
    pub dns_server: Option<SocketAddr>,

    #[command(flatten)]
    pub store: StoreOptions,
}

fn parse_dns_server(text: &str) -> Result<SocketAddr, String> {
    crate::observe::dns::parse_dns_server(text).map_err(|e| e.to_string())
}
