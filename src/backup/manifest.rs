//! The manifest written beside each snapshot, the names of a snapshot's two objects, the order
//! of a listing and the retention policy. Pure: no I/O.
//!
//! A snapshot `NAME` is two objects in its store: `NAME.db` (etcd's snapshot, byte for byte) and
//! `NAME.manifest.json`, written last. A snapshot counts only once its manifest exists, so an
//! upload cut short leaves at most a `.db` that nothing lists.

use std::time::{Duration, UNIX_EPOCH};

use crate::backup::integrity::{Vouch, Vouched};

/// Suffix of the snapshot data object.
pub(crate) const DATA_SUFFIX: &str = ".db";
/// Suffix of the manifest object.
pub(crate) const MANIFEST_SUFFIX: &str = ".manifest.json";
/// The manifest format this binary writes and reads.
pub(crate) const FORMAT: u32 = 1;

/// One member of the cluster the snapshot was taken from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ManifestMember {
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// What is known of a snapshot, written as `NAME.manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Manifest {
    pub format: u32,
    pub name: String,
    /// The cluster ID, hex as etcd prints it.
    pub cluster_id: String,
    /// The store revision the snapshot holds at least.
    pub revision: i64,
    pub etcd_version: String,
    pub members: Vec<ManifestMember>,
    /// Bytes of `NAME.db`.
    pub size: u64,
    /// sha256 of all of `NAME.db` (etcd's own trailing sha256 included), lowercase hex.
    pub sha256: String,
    /// etcd's own trailing sha256 (the last 32 bytes of `NAME.db`, the sha256 of the bytes before
    /// them), lowercase hex: with it, a restore that reads the file in place checks the file is
    /// this snapshot by its last 32 bytes, and etcd's tool checks the rest. Absent in snapshots of
    /// earlier releases (their whole file is hashed instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_sha256: Option<String>,
    /// XXH3-128 of all of `NAME.db`, lowercase hex (32 digits): what a restore checks every byte
    /// against (many times faster than sha256), telling etcd's tool to skip its own check. Absent
    /// in snapshots of earlier releases (the sha256 is checked instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xxh3_128: Option<String>,
    /// When the snapshot was taken, RFC 3339 UTC.
    pub time: String,
    /// The same instant in seconds since the epoch, for ordering and the interval check.
    pub unix_time: u64,
    /// The revision read just before the snapshot began (the snapshot holds at least it): its
    /// chain of delta segments starts after it. Absent in snapshots of earlier releases, which
    /// have no chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_from: Option<i64>,
}

impl Manifest {
    /// Parse and check a manifest read from `NAME.manifest.json`.
    pub(crate) fn parse(name: &str, bytes: &[u8]) -> Result<Manifest, String> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| format!("manifest of {name} is not valid: {e}"))?;
        if manifest.format != FORMAT {
            return Err(format!(
                "manifest of {name} has format {}, this etcd-bootstrap reads format {FORMAT}: use a matching release",
                manifest.format
            ));
        }
        if manifest.name != name {
            return Err(format!(
                "manifest of {name} names another snapshot ({:?}): the store was edited by hand",
                manifest.name
            ));
        }
        if !is_hex(&manifest.sha256, 64) {
            return Err(format!("manifest of {name} has no valid sha256"));
        }
        let optional = [(&manifest.xxh3_128, 32), (&manifest.etcd_sha256, 64)];
        if !optional.iter().all(|(text, digits)| text.as_deref().is_none_or(|t| is_hex(t, *digits))) {
            return Err(format!(
                "manifest of {name} has an xxh3_128 or etcd_sha256 that is not hex of its length"
            ));
        }
        Ok(manifest)
    }

    /// What the manifest vouches for the snapshot's bytes by: its size, and the fast digest where
    /// it records one, else the sha256.
    pub(crate) fn vouched(&self) -> Vouched<'_> {
        let digest = match &self.xxh3_128 {
            Some(fast) => Vouch::Xxh3(fast),
            None => Vouch::Sha256(&self.sha256),
        };
        Vouched { size: self.size, digest }
    }

    /// The manifest as written (pretty JSON, newline at the end).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text.into_bytes()
    }
}

/// Whether `text` is `digits` hex digits.
fn is_hex(text: &str, digits: usize) -> bool {
    text.len() == digits && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The name of a snapshot taken at `unix_time` holding `revision`: sorts by time as text.
pub(crate) fn snapshot_name(unix_time: u64, revision: i64) -> String {
    let stamp = compact_utc(unix_time);
    format!("snapshot-{stamp}-r{revision}")
}

/// The object key of the data of snapshot `name` under `key_prefix` ("" or "a/b/").
pub(crate) fn data_key(key_prefix: &str, name: &str) -> String {
    format!("{key_prefix}{name}{DATA_SUFFIX}")
}

/// The object key of the manifest of snapshot `name` under `key_prefix`.
pub(crate) fn manifest_key(key_prefix: &str, name: &str) -> String {
    format!("{key_prefix}{name}{MANIFEST_SUFFIX}")
}

/// The snapshot name of an object file name that is a manifest (`NAME.manifest.json`).
pub(crate) fn name_of_manifest(file_name: &str) -> Option<&str> {
    file_name.strip_suffix(MANIFEST_SUFFIX).filter(|n| !n.is_empty())
}

/// RFC 3339 in UTC, seconds: `2026-11-28T02:30:00Z`.
pub(crate) fn rfc3339(unix_time: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix_time)).to_string()
}

/// `20261128T023000Z`: RFC 3339 without its separators, safe in an object key.
fn compact_utc(unix_time: u64) -> String {
    rfc3339(unix_time).chars().filter(|c| !matches!(c, '-' | ':')).collect()
}

/// Newest first: by time, then by name (both descending), so the order never depends on how the
/// store listed them.
pub(crate) fn newest_first(manifests: &mut [Manifest]) {
    manifests.sort_by(|a, b| b.unix_time.cmp(&a.unix_time).then_with(|| b.name.cmp(&a.name)));
}

/// Retention: the names of complete snapshots to delete so that the newest `keep` remain.
/// `manifests` are newest first. Never returns every snapshot: the newest always stays, even
/// with `keep` 0.
pub(crate) fn beyond_retention(manifests: &[Manifest], keep: usize) -> Vec<String> {
    manifests.iter().skip(keep.max(1)).map(|m| m.name.clone()).collect()
}

/// How long until a scheduled snapshot is due (zero: now): none exists, or the newest is at
/// least `interval` old at `now` (a newest one from the future counts as just taken).
pub(crate) fn due_in(newest: Option<&Manifest>, now_unix: u64, interval: Duration) -> Duration {
    match newest {
        None => Duration::ZERO,
        Some(m) => {
            let age = Duration::from_secs(now_unix.saturating_sub(m.unix_time));
            interval.saturating_sub(age)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn manifest(name: &str, unix_time: u64) -> Manifest {
        Manifest {
            format: FORMAT,
            name: name.into(),
            cluster_id: "cdf818194e3a8c32".into(),
            revision: 7,
            etcd_version: "3.5.1".into(),
            members: vec![ManifestMember {
                name: "etcd-0".into(),
                peer_urls: vec!["http://etcd-0:2380".into()],
            }],
            size: 20480,
            sha256: "ab".repeat(32),
            etcd_sha256: None,
            xxh3_128: None,
            time: rfc3339(unix_time),
            unix_time,
            chain_from: None,
        }
    }

    #[test]
    fn names_sort_by_time_and_carry_the_revision() {
        assert_eq!(snapshot_name(1_795_833_000, 42), "snapshot-20261128T023000Z-r42");
        assert!(snapshot_name(1_795_833_000, 9) < snapshot_name(1_795_833_001, 1));
        assert_eq!(data_key("etcd/", "s"), "etcd/s.db");
        assert_eq!(manifest_key("", "s"), "s.manifest.json");
        assert_eq!(name_of_manifest("s.manifest.json"), Some("s"));
        assert_eq!(name_of_manifest("s.db"), None);
        assert_eq!(name_of_manifest(".manifest.json"), None);
    }

    #[test]
    fn manifest_round_trips_and_is_checked() {
        let m = manifest("snap-1", 1_795_833_000);
        assert_eq!(m.time, "2026-11-28T02:30:00Z");
        assert_eq!(Manifest::parse("snap-1", &m.to_bytes()).expect("parses"), m);
        assert!(Manifest::parse("snap-2", &m.to_bytes())
            .expect_err("other name")
            .contains("another snapshot"));
        assert!(Manifest::parse("snap-1", b"{\"format\":1").expect_err("cut").contains("not valid"));
        let mut future = m.clone();
        future.format = 2;
        assert!(Manifest::parse("snap-1", &future.to_bytes()).expect_err("format").contains("format 2"));
        let mut bad = m.clone();
        bad.sha256 = "xyz".into();
        assert!(Manifest::parse("snap-1", &bad.to_bytes()).expect_err("sha").contains("sha256"));
        let mut bad = m.clone();
        bad.xxh3_128 = Some("ab".repeat(32));
        assert!(Manifest::parse("snap-1", &bad.to_bytes()).expect_err("xxh3").contains("xxh3_128"));
        let mut bad = m.clone();
        bad.etcd_sha256 = Some("zz".repeat(32));
        assert!(Manifest::parse("snap-1", &bad.to_bytes()).expect_err("trailer").contains("etcd_sha256"));
    }

    #[test]
    fn a_manifest_vouches_by_its_fast_digest_where_it_has_one() {
        let mut m = manifest("snap-1", 1_795_833_000);
        assert_eq!(m.vouched(), Vouched { size: 20480, digest: Vouch::Sha256(&"ab".repeat(32)) });
        m.xxh3_128 = Some("cd".repeat(16));
        assert_eq!(Manifest::parse("snap-1", &m.to_bytes()).expect("parses"), m);
        assert_eq!(m.vouched(), Vouched { size: 20480, digest: Vouch::Xxh3(&"cd".repeat(16)) });
    }

    #[test]
    fn listing_is_newest_first_whatever_the_store_order() {
        let mut list = vec![manifest("a", 10), manifest("c", 30), manifest("b", 20), manifest("b2", 20)];
        newest_first(&mut list);
        let names: Vec<_> = list.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["c", "b2", "b", "a"]);
    }

    #[test]
    fn retention_keeps_the_newest_n_and_never_the_last_one() {
        let list = vec![manifest("d", 40), manifest("c", 30), manifest("b", 20), manifest("a", 10)];
        let table: &[(usize, &[&str])] =
            &[(0, &["c", "b", "a"]), (1, &["c", "b", "a"]), (2, &["b", "a"]), (4, &[]), (9, &[])];
        for (keep, want) in table {
            assert_eq!(beyond_retention(&list, *keep), *want, "keep {keep}");
        }
        assert!(beyond_retention(&list[..1], 0).is_empty(), "the only snapshot stays");
        assert!(beyond_retention(&[], 3).is_empty());
    }

    #[test]
    fn a_backup_is_due_once_per_interval() {
        let hour = Duration::from_secs(3600);
        let newest = manifest("a", 10_000);
        let table: &[(Option<&Manifest>, u64, bool)] = &[
            (None, 0, true),
            (Some(&newest), 10_000, false),
            (Some(&newest), 13_599, false),
            (Some(&newest), 13_600, true),
            (Some(&newest), 5_000, false), // clock behind the newest: not due
        ];
        for (newest, now, want) in table {
            assert_eq!(due_in(*newest, *now, hour).is_zero(), *want, "now {now}");
        }
        assert_eq!(due_in(Some(&newest), 10_600, hour), Duration::from_secs(3000));
        assert_eq!(due_in(Some(&newest), 5_000, hour), hour, "clock behind: a full interval");
    }
}
