//! Where backups live, named by a URL: `file:///path` (a mounted volume) or `s3://bucket/prefix`
//! (S3 and S3-compatible stores). Pure parsing; the store itself is built in `store`.
//!
//! A snapshot is named by its store's URL plus its name (`s3://b/etcd/snapshot-...`): what
//! `backup list` prints and `--restore-from` takes.

use std::fmt;

/// A store: a directory or a bucket prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreUrl {
    /// An absolute local directory.
    File { root: String },
    /// A bucket and a key prefix (no leading or trailing `/`; may be empty).
    S3 { bucket: String, prefix: String },
}

/// One snapshot in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SnapshotUrl {
    pub store: StoreUrl,
    pub name: String,
}

/// The schemes `--to`, `--backup-to`, `backup list` and `--restore-from` accept.
pub(crate) const SCHEMES: &str = "file:///path or s3://bucket/prefix";

impl StoreUrl {
    /// Parse a store URL. The error names the problem and what is accepted; it never repeats
    /// a user:password part.
    pub(crate) fn parse(text: &str) -> Result<StoreUrl, String> {
        let text = text.trim();
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(format!("{:?} is not a URL: use {SCHEMES}", display_url(text)));
        };
        if has_userinfo(text) {
            // Never echo it: that part may hold a secret.
            return Err(format!(
                "{:?} has user information: credentials never go in a store URL; for S3 set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a credentials file)",
                display_url(text)
            ));
        }
        match scheme.to_ascii_lowercase().as_str() {
            "file" => parse_file(rest),
            "s3" => parse_s3(rest),
            other => Err(format!("unknown scheme {other:?} in {:?}: use {SCHEMES}", display_url(text))),
        }
    }

    /// The URL of the snapshot `name` in this store.
    pub(crate) fn snapshot(&self, name: &str) -> SnapshotUrl {
        SnapshotUrl { store: self.clone(), name: name.to_string() }
    }

    /// Key prefix of this store's objects inside its bucket or directory ("" or "a/b/").
    pub(crate) fn key_prefix(&self) -> String {
        match self {
            StoreUrl::File { .. } => String::new(),
            StoreUrl::S3 { prefix, .. } if prefix.is_empty() => String::new(),
            StoreUrl::S3 { prefix, .. } => format!("{prefix}/"),
        }
    }
}

impl SnapshotUrl {
    /// Parse the URL of one snapshot: a store URL with the snapshot's name as its last part.
    pub(crate) fn parse(text: &str) -> Result<SnapshotUrl, String> {
        let trimmed = text.trim().trim_end_matches('/');
        let Some((store, name)) = trimmed.rsplit_once('/') else {
            return Err(format!(
                "{:?} is not a URL: use {SCHEMES} followed by /<snapshot name>",
                display_url(text)
            ));
        };
        let store = match StoreUrl::parse(store) {
            Ok(store) => store,
            // `file:///backups` is a store (a directory), not a snapshot in one.
            Err(_) if StoreUrl::parse(trimmed).is_ok() => {
                return Err(format!(
                    "{:?} names a store, not a snapshot in it: give one of the snapshot URLs that `etcd-bootstrap backup list {}` prints",
                    display_url(text),
                    display_url(trimmed)
                ))
            }
            Err(e) => return Err(e),
        };
        let name_ok = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && name != "."
            && name != "..";
        if !name_ok {
            return Err(format!(
                "{:?} does not name a snapshot: give a name that `etcd-bootstrap backup list` prints",
                display_url(text)
            ));
        }
        Ok(SnapshotUrl { store, name: name.to_string() })
    }
}

fn parse_file(rest: &str) -> Result<StoreUrl, String> {
    // file:///abs/path: an empty host, then the absolute path. file://host/path is refused.
    if !rest.starts_with('/') {
        return Err(format!(
            "{}: a file URL needs an absolute path with three slashes, as in file:///backups/etcd",
            display_url(&format!("file://{rest}"))
        ));
    }
    let root = rest.trim_end_matches('/');
    if root.is_empty() {
        return Err("file:///: give a directory below /, as in file:///backups/etcd".into());
    }
    if root.split('/').any(|part| part == "..") {
        return Err(format!("file://{root}: '..' is not allowed in a backup path"));
    }
    Ok(StoreUrl::File { root: root.to_string() })
}

fn parse_s3(rest: &str) -> Result<StoreUrl, String> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&authority.len())
        && authority.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
    if !bucket_ok {
        return Err(format!(
            "s3://{authority}: {:?} is not a bucket name (3 to 63 lowercase letters, digits, '-' or '.')",
            authority
        ));
    }
    let prefix = path.trim_matches('/');
    if prefix.split('/').any(|part| part == ".." || part == ".") || prefix.contains("//") {
        return Err(format!("s3://{authority}/{path}: the prefix has an empty, '.' or '..' part"));
    }
    Ok(StoreUrl::S3 { bucket: authority.to_string(), prefix: prefix.to_string() })
}

/// Where the user information of a URL would be: after `scheme://` (or from the start when there
/// is no scheme) up to the first `/`, `?` or `#`; the part up to its last `@`.
fn userinfo_span(text: &str) -> Option<std::ops::Range<usize>> {
    let start = text.find("://").map_or(0, |i| i + 3);
    let rest = text.get(start..)?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest.get(..end)?.rfind('@')?;
    Some(start..start + at)
}

/// Whether `text` has user information (`user:password@`) in its authority.
pub(crate) fn has_userinfo(text: &str) -> bool {
    userinfo_span(text).is_some()
}

/// A URL (store, snapshot, S3 or etcd endpoint) as it may be shown in an error, a log line,
/// `plan` or a metric label: any user information is replaced by `***`, so a password written
/// into the URL never leaves the process. Every Display of a store or snapshot URL, and every
/// message that repeats a URL the user gave, goes through here.
pub(crate) fn display_url(text: &str) -> String {
    match userinfo_span(text) {
        Some(span) => format!("{}***{}", &text[..span.start], &text[span.end..]),
        None => text.to_string(),
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            StoreUrl::File { root } => format!("file://{root}"),
            StoreUrl::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            StoreUrl::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        };
        f.write_str(&display_url(&text))
    }
}

impl fmt::Display for SnapshotUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&display_url(&format!("{}/{}", self.store, self.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse_as_a_user_writes_them() {
        let cases: &[(&str, StoreUrl)] = &[
            ("file:///backups/etcd", StoreUrl::File { root: "/backups/etcd".into() }),
            ("file:///backups/etcd/", StoreUrl::File { root: "/backups/etcd".into() }),
            ("s3://my-bucket", StoreUrl::S3 { bucket: "my-bucket".into(), prefix: String::new() }),
            ("s3://my-bucket/", StoreUrl::S3 { bucket: "my-bucket".into(), prefix: String::new() }),
            (
                "s3://my-bucket/etcd/prod/",
                StoreUrl::S3 { bucket: "my-bucket".into(), prefix: "etcd/prod".into() },
            ),
            ("S3://b.c-d/x", StoreUrl::S3 { bucket: "b.c-d".into(), prefix: "x".into() }),
        ];
        for (text, want) in cases {
            assert_eq!(&StoreUrl::parse(text).expect(text), want, "{text}");
        }
    }

    #[test]
    fn bad_store_urls_say_what_is_accepted() {
        let cases: &[(&str, &str)] = &[
            ("gs://bucket/x", "unknown scheme \"gs\""),
            ("ftp://host/x", "unknown scheme \"ftp\""),
            ("/backups", "is not a URL"),
            ("file://backups/etcd", "three slashes"),
            ("file:///", "give a directory"),
            ("file:///a/../b", "'..'"),
            ("s3://Bad_Bucket/x", "not a bucket name"),
            ("s3://", "not a bucket name"),
            ("s3://bucket/a//b", "empty"),
        ];
        for (text, want) in cases {
            let err = StoreUrl::parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn credentials_in_a_url_are_refused_and_never_repeated() {
        for text in [
            "s3://AKIA:hunter2@bucket/x",
            "gs://AKIA:hunter2@bucket/x",
            "nope://u:hunter2@h",
            "file://u:hunter2@host/backups",
            "file://u:hunter2@/backups",
            "FILE://hunter2@host",
            "u:hunter2@host/x",
        ] {
            let err = StoreUrl::parse(text).expect_err(text);
            assert!(!err.contains("hunter2"), "{err}");
            let err = SnapshotUrl::parse(&format!("{text}/snap")).expect_err(text);
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn display_url_drops_user_information_only() {
        let table: &[(&str, &str)] = &[
            ("file://u:hunter2@host/backups", "file://***@host/backups"),
            ("http://user:hunter2@minio:9000", "http://***@minio:9000"),
            ("http://a@b:hunter2@minio:9000/x@y", "http://***@minio:9000/x@y"),
            ("https://minio:9000/p?q=a@b", "https://minio:9000/p?q=a@b"),
            ("u:hunter2@etcd-0:2379", "***@etcd-0:2379"),
            ("file:///backups/a@b", "file:///backups/a@b"),
            ("s3://bucket/etcd", "s3://bucket/etcd"),
            ("", ""),
        ];
        for (text, want) in table {
            assert_eq!(display_url(text), *want, "{text}");
            assert_eq!(has_userinfo(text), text != want, "{text}");
        }
    }

    #[test]
    fn a_store_given_where_a_snapshot_belongs_is_named_as_such() {
        for text in ["file:///backups", "file:///backups/", "s3://bucket"] {
            let err = SnapshotUrl::parse(text).expect_err(text);
            assert!(err.contains("names a store, not a snapshot"), "{text}: {err}");
            assert!(!err.contains("three slashes"), "{text}: {err}");
        }
    }

    #[test]
    fn snapshot_urls_round_trip_through_display() {
        for text in [
            "file:///backups/etcd/snapshot-20261128T023000Z-r42",
            "s3://bucket/etcd/prod/snapshot-20261128T023000Z-r42",
            "s3://bucket/snapshot-20261128T023000Z-r42",
        ] {
            let url = SnapshotUrl::parse(text).expect(text);
            assert_eq!(url.name, "snapshot-20261128T023000Z-r42");
            assert_eq!(url.to_string(), text);
        }
        let store = StoreUrl::parse("s3://bucket/etcd").expect("parses");
        assert_eq!(store.snapshot("s1").to_string(), "s3://bucket/etcd/s1");
    }

    #[test]
    fn a_snapshot_url_must_name_a_snapshot() {
        for text in ["s3://bucket", "file:///", "s3://bucket/a b", "file:///backups/.."] {
            assert!(SnapshotUrl::parse(text).is_err(), "{text}");
        }
    }
}
