//! The sidecar's own settings, checked against each other and against etcd's.

use std::path::PathBuf;
use std::time::Duration;

use crate::backup::location::StoreUrl;
use crate::config::SidecarArgs;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::identity::url_port;

use super::policy::{defrag, nospace};

/// The sidecar's own settings, checked.
#[derive(Debug, Clone)]
pub(crate) struct SidecarSettings {
    pub interval: Duration,
    pub removal_delay: Duration,
    pub metrics_port: u16,
    pub maintenance: MaintenanceSettings,
    /// Scheduled backups, when `--backup-to` is given.
    pub backups: Option<BackupSchedule>,
}

/// Scheduled backups: where, how often, how many kept.
#[derive(Debug, Clone)]
pub(crate) struct BackupSchedule {
    pub to: StoreUrl,
    pub interval: Duration,
    pub keep: usize,
    pub scratch_dir: PathBuf,
}

impl SidecarSettings {
    /// Check the sidecar's options against each other and against etcd's settings.
    pub(crate) fn new(args: &SidecarArgs, ctx: &Context) -> Result<Self> {
        if args.interval.is_zero() {
            return Err(Error::config("--interval 0s: give a positive duration such as 10s"));
        }
        if args.removal_delay.is_zero() {
            return Err(Error::config(
                "--removal-delay 0s: a restarting pod is absent from DNS for a while, and its member must not be removed for that; give a duration such as 2m",
            ));
        }
        let port = args.metrics_port;
        if port == 0 {
            return Err(Error::config("--metrics-port 0: give a port such as 2381"));
        }
        if port == ctx.member.client_port || port == ctx.member.peer_port {
            return Err(Error::config(format!(
                "--metrics-port {port} is etcd's client or peer port in this pod: choose another (default 2381)"
            )));
        }
        let etcd_metrics = ctx.user.get("listen-metrics-urls").unwrap_or_default();
        if etcd_metrics.split(',').filter_map(|u| url_port(u.trim())).any(|p| p == port) {
            return Err(Error::config(format!(
                "--metrics-port {port}: etcd's --listen-metrics-urls uses that port in this pod; choose another"
            )));
        }
        let maintenance = MaintenanceSettings::new(args, ctx)?;
        let backups = match args.backup_to.as_deref().filter(|t| !t.trim().is_empty()) {
            None => None,
            Some(text) => {
                let to = StoreUrl::parse(text).map_err(|e| Error::config(format!("--backup-to: {e}")))?;
                if args.backup_interval.is_zero() {
                    return Err(Error::config("--backup-interval 0s: give a positive duration such as 1h"));
                }
                if args.backup_keep == 0 {
                    return Err(Error::config("--backup-keep 0: keep at least 1 snapshot"));
                }
                let scratch_dir = args.scratch_dir.clone().unwrap_or_else(std::env::temp_dir);
                Some(BackupSchedule {
                    to,
                    interval: args.backup_interval,
                    keep: args.backup_keep,
                    scratch_dir,
                })
            }
        };
        Ok(SidecarSettings {
            interval: args.interval,
            removal_delay: args.removal_delay,
            metrics_port: port,
            maintenance,
            backups,
        })
    }

    /// /healthz fails for a job in a pass that has moved no byte for this long: a pass is bounded
    /// by its calls' timeouts (a defragmentation's 90 s the longest), and a transfer moves bytes,
    /// so only a stuck job gets there.
    pub(crate) fn stall_limit(&self) -> Duration {
        self.interval.saturating_mul(3).max(self.interval.saturating_add(Duration::from_secs(120)))
    }
}

/// The maintenance settings, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MaintenanceSettings {
    pub defrag: defrag::DefragSettings,
    pub nospace: nospace::NospaceSettings,
}

impl MaintenanceSettings {
    /// From the sidecar's options, and its own view of etcd's quota setting: the fallback when
    /// etcd's own cannot be read (`jobs::quota`).
    pub(crate) fn new(args: &SidecarArgs, ctx: &Context) -> Result<Self> {
        let threshold = defrag::check_threshold(args.defrag_threshold).map_err(Error::config)?;
        let quota =
            nospace::quota_from(ctx.user.get("quota-backend-bytes").as_deref()).map_err(Error::config)?;
        Ok(MaintenanceSettings {
            defrag: defrag::DefragSettings { threshold, min_size: args.defrag_min_size },
            nospace: nospace::NospaceSettings { quota, compact: args.compact_on_nospace },
        })
    }
}
