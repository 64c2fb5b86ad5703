//! The certificates job: every interval, on every sidecar, the client TLS files are read; a change
//! is used at once by every job (a Kubernetes Secret update swaps a symlink; nothing here caches a
//! file), and the certificate's state is the metric, the readiness and one log line per change of
//! state. Which state a certificate is in is the pure policy in [`super::super::policy::certs`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::error::Error;
use crate::etcd_args::ClientTlsFiles;
use crate::observe::cluster::Access;

use super::super::job::{Action, Job};
use super::super::metrics::Shared;
use super::super::policy::certs::{self, CertState};
use super::Sidecar;

/// The job.
pub(crate) struct CertificatesJob {
    s: Arc<Sidecar>,
    certificates: Certificates,
}

impl CertificatesJob {
    pub(crate) fn new(s: Arc<Sidecar>) -> Self {
        let certificates = Certificates::new(s.ctx.user.client_tls_files());
        CertificatesJob { s, certificates }
    }
}

impl Job for CertificatesJob {
    const NAME: &'static str = "certificates";

    fn interval(&self) -> Duration {
        self.s.settings.interval
    }

    async fn reconcile(&mut self) -> Result<Action, Error> {
        let (_, access) = self.s.coordination.access();
        if let Some(access) = self.certificates.check(&access, &self.s.shared) {
            self.s.coordination.set_access(access);
        }
        Ok(Action::requeue(self.s.settings.interval))
    }
}

/// The client TLS files, read every round: a change is used at once (a Kubernetes Secret
/// update swaps a symlink; nothing here caches a file), and the certificate's state is the
/// metric, the readiness and one log line per change of state.
pub(crate) struct Certificates {
    files: ClientTlsFiles,
    /// The bytes of (certificate, key, CA) last read.
    seen: Option<[Option<Vec<u8>>; 3]>,
    /// The state last logged (its kind), so one line is written per change.
    logged: Option<&'static str>,
}

impl Certificates {
    pub(crate) fn new(files: ClientTlsFiles) -> Self {
        Certificates { files, seen: None, logged: None }
    }

    /// Read the files; a new access when they changed since the last round (the caller
    /// reconnects with it). Updates the metrics and readiness.
    pub(crate) fn check(&mut self, access: &Access, shared: &Shared) -> Option<Access> {
        let cert_path = self.files.cert.clone()?;
        let read = |p: &Option<std::path::PathBuf>| p.as_ref().map(std::fs::read).transpose();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let what = format!("client certificate {}", cert_path.display());
        let files = (read(&self.files.cert), read(&self.files.key), read(&self.files.ca));
        let (state, ca_state, contents) = match files {
            (Ok(cert), Ok(key), Ok(ca)) => {
                let validity = cert.as_deref().map(certs::validity_of_pem).unwrap_or(Err("no file".into()));
                let ca_state = ca.as_deref().map(|c| CertState::at(&certs::validity_of_pem(c), now));
                (CertState::at(&validity, now), ca_state, Some([cert, key, ca]))
            }
            (cert, key, ca) => {
                let why = [(&cert, &self.files.cert), (&key, &self.files.key), (&ca, &self.files.ca)]
                    .iter()
                    .find_map(|(r, p)| match (r, p) {
                        (Err(e), Some(p)) => Some(format!("cannot read {}: {e}", p.display())),
                        _ => None,
                    })
                    .unwrap_or_default();
                (CertState::Unreadable(why), None, None)
            }
        };
        let ca_usable = ca_state.as_ref().is_none_or(CertState::usable);
        let line = match (&state, &ca_state) {
            (s, Some(ca)) if s.usable() && !ca_usable => ca.describe(&format!(
                "CA certificate {}",
                self.files.ca.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
            )),
            _ => state.describe(&what),
        };
        let kind = match (&state, ca_usable) {
            (_, false) => "ca",
            (CertState::Valid { .. }, _) if state.expiring_soon() => "soon",
            (CertState::Valid { .. }, _) => "valid",
            (CertState::Expired { .. }, _) => "expired",
            (CertState::NotYetValid { .. }, _) => "early",
            (CertState::Unreadable(_), _) => "unreadable",
        };
        {
            let mut m = shared.lock();
            let maintenance = &mut m.maintenance;
            maintenance.cert_expiry.clear();
            if let Some(left) = state.seconds_to_expiry() {
                maintenance.cert_expiry.insert("cert", left);
            }
            if let Some(left) = ca_state.as_ref().and_then(CertState::seconds_to_expiry) {
                maintenance.cert_expiry.insert("ca", left);
            }
            maintenance.cert_problem = (!(state.usable() && ca_usable)).then(|| line.clone());
        }
        let changed = match (&self.seen, &contents) {
            (Some(before), Some(now)) => before != now,
            _ => false,
        };
        if self.logged != Some(kind) && !changed {
            match kind {
                "valid" => info!("{line}"),
                _ => warn!("{line}"),
            }
        }
        self.logged = Some(kind);
        let contents = contents?;
        let first = self.seen.is_none();
        self.seen = Some(contents.clone());
        if first || !changed {
            return None;
        }
        info!("client TLS files changed on disk: using them from now on; {line}");
        let [cert, key, ca] = contents;
        let identity = cert.zip(key);
        Some(access.with_client_tls(ca, identity))
    }
}
