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
            return Err(format!("{:?} is not a URL: use {SCHEMES}", shown(text)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => parse_file(rest),
            "s3" => parse_s3(rest),
            other => Err(format!("unknown scheme {other:?} in {:?}: use {SCHEMES}", shown(text))),
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
                shown(text)
            ));
        };
        let store = StoreUrl::parse(store)?;
        let name_ok = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && name != "."
            && name != "..";
        if !name_ok {
            return Err(format!(
                "{:?} does not name a snapshot: give a name that `etcd-bootstrap backup list` prints",
                shown(text)
            ));
        }
        Ok(SnapshotUrl { store, name: name.to_string() })
    }
}

fn parse_file(rest: &str) -> Result<StoreUrl, String> {
    // file:///abs/path: an empty host, then the absolute path. file://host/path is refused.
    if !rest.starts_with('/') {
        return Err(format!(
            "file://{rest}: a file URL needs an absolute path with three slashes, as in file:///backups/etcd"
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
    if authority.contains('@') {
        // Never echo it: that part may hold a secret.
        return Err("s3 URL with user information: credentials never go in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a credentials file)".into());
    }
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

/// The text of a URL as shown in an error: anything between `://` and `@` is dropped.
fn shown(text: &str) -> String {
    match text.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/').unwrap_or((rest, "")) {
            (authority, path) if authority.contains('@') => {
                let host = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or("");
                format!("{scheme}://***@{host}/{path}")
            }
            _ => text.to_string(),
        },
        None => text.to_string(),
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::File { root } => write!(f, "file://{root}"),
            StoreUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StoreUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl fmt::Display for SnapshotUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.store, self.name)
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
        for text in ["s3://AKIA:hunter2@bucket/x", "gs://AKIA:hunter2@bucket/x", "nope://u:hunter2@h"] {
            let err = StoreUrl::parse(text).expect_err(text);
            assert!(!err.contains("hunter2"), "{err}");
            let err = SnapshotUrl::parse(&format!("{text}/snap")).expect_err(text);
            assert!(!err.contains("hunter2"), "{err}");
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
