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
    /// `--backup-delta-interval`: continuous backups (delta segments) every this long; None: off.
    pub delta_interval: Option<Duration>,
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
        let backup_to = args.backup_to.as_deref().filter(|t| !t.trim().is_empty());
        let delta_interval =
            delta_interval(backup_to.is_some(), args.backup_delta_interval).map_err(Error::config)?;
        let backups = match backup_to {
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
                    delta_interval,
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

/// `--backup-delta-interval`, checked: only with `--backup-to` (the segments go beside the full
/// snapshots), and positive.
pub(crate) fn delta_interval(backup_to: bool, delta: Option<Duration>) -> Result<Option<Duration>, String> {
    match delta {
        None => Ok(None),
        Some(d) if !backup_to => Err(format!(
            "--backup-delta-interval {} needs --backup-to: delta segments are stored beside the full snapshots; give --backup-to URL, or leave --backup-delta-interval out",
            crate::duration::format(d)
        )),
        Some(d) if d.is_zero() => {
            Err("--backup-delta-interval 0s: give a positive duration such as 10s".to_string())
        }
        Some(d) => Ok(Some(d)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delta_interval_needs_a_store_and_a_positive_duration() {
        let s = Duration::from_secs;
        assert_eq!(delta_interval(false, None), Ok(None), "off unless set");
        assert_eq!(delta_interval(true, None), Ok(None), "off unless set, also with a store");
        assert_eq!(delta_interval(true, Some(s(10))), Ok(Some(s(10))));
        let no_store = delta_interval(false, Some(s(10))).expect_err("without --backup-to");
        assert!(no_store.starts_with("--backup-delta-interval 10s needs --backup-to"), "{no_store}");
        assert!(!no_store.contains('\n'), "one line: {no_store}");
        let zero = delta_interval(true, Some(s(0))).expect_err("zero");
        assert!(zero.contains("--backup-delta-interval 0s"), "{zero}");
    }
}
