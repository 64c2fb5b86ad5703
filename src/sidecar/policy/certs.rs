//! The state of a TLS certificate file: valid (and for how long), expired, not valid yet, or
//! unreadable. The sidecar is ready only while its client certificate is valid; the metric is
//! the seconds to expiry.
//!
//! A file holding several certificates (a leaf with its chain, a CA bundle) stops working at the
//! earliest expiry in it, so that one counts; likewise the latest start of validity.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::der::{self, Validity};

/// Below this much time left, a valid certificate is reported as expiring soon.
pub(crate) const SOON_SECS: i64 = 7 * 86_400;

/// The validity of every certificate in a PEM file, combined: the latest start, the earliest end.
pub(crate) fn validity_of_pem(pem: &[u8]) -> Result<Validity, String> {
    let mut combined: Option<Validity> = None;
    for item in CertificateDer::pem_slice_iter(pem) {
        let cert = item.map_err(|e| format!("not a PEM certificate file: {e}"))?;
        let v = der::validity(cert.as_ref())?;
        combined = Some(match combined {
            None => v,
            Some(c) => Validity {
                not_before: c.not_before.max(v.not_before),
                not_after: c.not_after.min(v.not_after),
            },
        });
    }
    combined.ok_or_else(|| "no certificate in the file (no BEGIN CERTIFICATE block)".into())
}

/// What a certificate file is worth now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertState {
    /// Valid for this many more seconds.
    Valid { seconds_left: i64 },
    /// Expired this many seconds ago.
    Expired { seconds_ago: i64 },
    /// Valid only in this many seconds (a clock or issuing mistake).
    NotYetValid { seconds_until: i64 },
    /// The file cannot be read or parsed.
    Unreadable(String),
}

impl CertState {
    /// The state at Unix time `now` of a file whose validity was read as `validity`.
    pub(crate) fn at(validity: &Result<Validity, String>, now: i64) -> CertState {
        match validity {
            Err(why) => CertState::Unreadable(why.clone()),
            Ok(v) if now < v.not_before => CertState::NotYetValid { seconds_until: v.not_before - now },
            Ok(v) if now >= v.not_after => CertState::Expired { seconds_ago: now - v.not_after },
            Ok(v) => CertState::Valid { seconds_left: v.not_after - now },
        }
    }

    /// Whether TLS with this certificate can work: `/readyz` is false otherwise.
    pub(crate) fn usable(&self) -> bool {
        matches!(self, CertState::Valid { .. })
    }

    /// Seconds to expiry (negative once expired), for the metric; None when unknown.
    pub(crate) fn seconds_to_expiry(&self) -> Option<i64> {
        match self {
            CertState::Valid { seconds_left } => Some(*seconds_left),
            CertState::Expired { seconds_ago } => Some(-seconds_ago),
            CertState::NotYetValid { .. } | CertState::Unreadable(_) => None,
        }
    }

    /// Few days left: worth a warning.
    pub(crate) fn expiring_soon(&self) -> bool {
        matches!(self, CertState::Valid { seconds_left } if *seconds_left < SOON_SECS)
    }

    /// One line for the log about the file `what` (for example `client certificate /tls/tls.crt`).
    pub(crate) fn describe(&self, what: &str) -> String {
        match self {
            CertState::Valid { seconds_left } if self.expiring_soon() => format!(
                "{what} expires in {}: renew it (the sidecar picks up the new files by itself)",
                span(*seconds_left)
            ),
            CertState::Valid { seconds_left } => format!("{what} is valid for {}", span(*seconds_left)),
            CertState::Expired { seconds_ago } => format!(
                "{what} expired {} ago: etcd refuses it; renew the certificate (the sidecar picks up the new files by itself)",
                span(*seconds_ago)
            ),
            CertState::NotYetValid { seconds_until } => format!(
                "{what} is not valid for another {}: check the clocks, or the certificate's start date",
                span(*seconds_until)
            ),
            CertState::Unreadable(why) => format!("{what} cannot be used: {why}"),
        }
    }
}

/// `3d4h`, `5h12m`, `42m`, `17s`.
fn span(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn state_table() {
        let v = Ok(Validity { not_before: 1_000, not_after: 1_000 + 90 * DAY });
        // (now, state, usable, seconds to expiry, why)
        let rows: [(i64, CertState, bool, Option<i64>, &str); 6] = [
            (1_000 + DAY, CertState::Valid { seconds_left: 89 * DAY }, true, Some(89 * DAY), "fresh"),
            (
                1_000,
                CertState::Valid { seconds_left: 90 * DAY },
                true,
                Some(90 * DAY),
                "valid from its first second",
            ),
            (999, CertState::NotYetValid { seconds_until: 1 }, false, None, "one second early"),
            (1_000 + 90 * DAY, CertState::Expired { seconds_ago: 0 }, false, Some(0), "not after is the end"),
            (
                1_000 + 91 * DAY,
                CertState::Expired { seconds_ago: DAY },
                false,
                Some(-DAY),
                "expired a day ago",
            ),
            (1_000 + 89 * DAY, CertState::Valid { seconds_left: DAY }, true, Some(DAY), "a day left"),
        ];
        for (now, state, usable, left, why) in rows {
            let got = CertState::at(&v, now);
            assert_eq!(got, state, "{why}");
            assert_eq!(got.usable(), usable, "{why}");
            assert_eq!(got.seconds_to_expiry(), left, "{why}");
        }
        let unreadable = CertState::at(&Err("permission denied".into()), 0);
        assert!(!unreadable.usable() && unreadable.seconds_to_expiry().is_none());
    }

    #[test]
    fn lines_say_what_to_do() {
        // (state, expected line, why)
        let rows = [
            (CertState::Valid { seconds_left: 30 * DAY }, "client certificate /tls/tls.crt is valid for 30d0h", "plenty"),
            (
                CertState::Valid { seconds_left: 2 * DAY + 3_600 },
                "client certificate /tls/tls.crt expires in 2d1h: renew it (the sidecar picks up the new files by itself)",
                "under a week: a warning",
            ),
            (
                CertState::Expired { seconds_ago: 300 },
                "client certificate /tls/tls.crt expired 5m ago: etcd refuses it; renew the certificate (the sidecar picks up the new files by itself)",
                "expired",
            ),
            (
                CertState::NotYetValid { seconds_until: 7_260 },
                "client certificate /tls/tls.crt is not valid for another 2h1m: check the clocks, or the certificate's start date",
                "early",
            ),
            (
                CertState::Unreadable("cannot read /tls/tls.crt: permission denied".into()),
                "client certificate /tls/tls.crt cannot be used: cannot read /tls/tls.crt: permission denied",
                "unreadable",
            ),
        ];
        for (state, line, why) in rows {
            assert_eq!(state.describe("client certificate /tls/tls.crt"), line, "{why}");
        }
        assert_eq!(span(17), "17s");
    }

    fn pem_of(days_from_now: (i64, i64)) -> String {
        let now = std::time::SystemTime::now();
        let at = |d: i64| {
            let t = if d >= 0 {
                now + std::time::Duration::from_secs(d.unsigned_abs() * 86_400)
            } else {
                now - std::time::Duration::from_secs(d.unsigned_abs() * 86_400)
            };
            rcgen::date_time_ymd(1970, 1, 1)
                + std::time::Duration::from_secs(
                    t.duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs(),
                )
        };
        let mut params = rcgen::CertificateParams::new(vec!["etcd-0".to_string()]).expect("params");
        params.not_before = at(days_from_now.0);
        params.not_after = at(days_from_now.1);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").pem()
    }

    #[test]
    fn a_chain_counts_by_its_earliest_expiry() {
        let leaf = pem_of((-1, 30));
        let ca = pem_of((-10, 20));
        let both = validity_of_pem(format!("{leaf}{ca}").as_bytes()).expect("chain");
        let leaf_only = validity_of_pem(leaf.as_bytes()).expect("leaf");
        let ca_only = validity_of_pem(ca.as_bytes()).expect("ca");
        assert_eq!(both.not_after, ca_only.not_after, "the CA expires first");
        assert_eq!(both.not_before, leaf_only.not_before, "the leaf starts last");
    }

    #[test]
    fn files_that_are_not_certificates_are_unreadable() {
        // (contents, expected error start, why)
        let rows = [
            ("", "no certificate in the file", "empty"),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "no certificate in the file",
                "a key file given as the certificate",
            ),
            (
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                "not a PEM certificate file",
                "bad base64",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not a certificate",
                "base64 of no certificate",
            ),
        ];
        for (text, want, why) in rows {
            let err = validity_of_pem(text.as_bytes()).expect_err(why);
            assert!(err.starts_with(want), "{why}: {err}");
        }
    }
}
