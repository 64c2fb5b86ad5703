//! The object store at the edge: open a `file://` or `s3://` store, list complete snapshots,
//! upload one (data, then manifest), download one while checking it, delete one (manifest first).
//!
//! Errors become one line naming the store URL, never a credential: object_store's messages are
//! cut to their first line and any secret in them is masked.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::backup::credentials::{Keys, S3Settings};
use crate::backup::integrity::{Checked, SnapshotDigest};
use crate::backup::location::StoreUrl;
use crate::backup::manifest::{self, Manifest};
use crate::backup::segment::{self, Segment, SegmentName};
use crate::error::{Error, Result, StoreProblem};

/// Bytes read from or written to a local file per chunk.
const CHUNK: usize = 1 << 20;

/// The size of an upload's parts (S3's smallest but the last), and how many are sent at once:
/// one, so each part's end is progress a slow link shows (at 1 Mbit/s every 42 s), and a
/// sidecar's memory stays two parts whatever the database's size.
pub(crate) const UPLOAD_PART: usize = 5 << 20;
pub(crate) const UPLOAD_PARTS_IN_FLIGHT: usize = 1;

/// Copy `range` of a local store's file to `out` (or only read it, with None), checking it with
/// `digest` as it goes, in [`CHUNK`]s. Not synced: a download is read at once and never outlives
/// a crash (its work directory is discarded).
pub(crate) fn copy_checked(
    mut source: std::fs::File,
    source_path: &FsPath,
    range: std::ops::Range<u64>,
    out: Option<&FsPath>,
    mut digest: SnapshotDigest,
) -> Result<Checked> {
    use std::io::{Read, Seek, SeekFrom, Write};
    source.seek(SeekFrom::Start(range.start)).map_err(|e| Error::io(source_path, e))?;
    let mut source = source.take(range.end.saturating_sub(range.start));
    let mut to = match out {
        Some(out) => Some((std::fs::File::create(out).map_err(|e| Error::io(out, e))?, out)),
        None => None,
    };
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let n = source.read(&mut buffer).map_err(|e| Error::io(source_path, e))?;
        let Some(chunk) = buffer.get(..n).filter(|c| !c.is_empty()) else { break };
        digest.update(chunk);
        if let Some((to, out)) = &mut to {
            to.write_all(chunk).map_err(|e| Error::io(*out, e))?;
        }
        crate::crash::point("during-download");
    }
    Ok(digest.finish())
}

/// An open store.
pub(crate) struct Store {
    url: StoreUrl,
    inner: Arc<dyn ObjectStore>,
    /// Strings never to show in a message (secret key, session token).
    secrets: Vec<String>,
}

/// Resolves host names for the S3 client with our own resolver: a static binary cannot use
/// libc's.
pub(crate) type HostResolver = Arc<dyn object_store::client::DnsResolver>;

impl Store {
    /// Open the store at `url`. `s3` is required for `s3://`. A missing `file://` directory is
    /// an error, never created: it is usually a volume that is not mounted, and a backup written
    /// into the container's own file system would be lost with it.
    pub(crate) fn open(
        url: &StoreUrl,
        s3: Option<&S3Settings>,
        resolver: Option<HostResolver>,
    ) -> Result<Store> {
        match url {
            StoreUrl::File { root } => {
                if !FsPath::new(root).is_dir() {
                    // Not Unreachable: its hint is about endpoints and networks.
                    return Err(store_error(
                        url,
                        StoreProblem::NotFound,
                        "the directory does not exist (is the volume mounted?): create it, or mount the volume there",
                    ));
                }
                let fs = LocalFileSystem::new_with_prefix(root)
                    .map_err(|e| store_error(url, StoreProblem::Unreachable, &first_line(&e.to_string())))?;
                Ok(Store { url: url.clone(), inner: Arc::new(fs), secrets: Vec::new() })
            }
            StoreUrl::S3 { bucket, .. } => {
                let Some(s3) = s3 else {
                    return Err(Error::config(format!("{url}: no S3 settings")));
                };
                let (s3_store, secrets) = open_s3(bucket, s3, resolver)
                    .map_err(|e| store_error(url, StoreProblem::Other, &first_line(&e.to_string())))?;
                Ok(Store { url: url.clone(), inner: Arc::new(s3_store), secrets })
            }
        }
    }

    /// The store's URL.
    pub(crate) fn url(&self) -> &StoreUrl {
        &self.url
    }

    fn key(&self, object: &str) -> Path {
        Path::from(object)
    }

    fn error(&self, what: &str, e: &object_store::Error) -> Error {
        let problem = match e {
            object_store::Error::NotFound { .. } => StoreProblem::NotFound,
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                StoreProblem::Credentials
            }
            _ => classify_message(&e.to_string()),
        };
        let mut text = condense(&e.to_string());
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "***");
        }
        store_error(&self.url, problem, &format!("{what}: {text}"))
    }

    /// Every complete snapshot (one with a manifest), newest first. A manifest that cannot be
    /// read is skipped with a warning: it must not hide the others.
    pub(crate) async fn list(&self) -> Result<Vec<Manifest>> {
        let prefix = self.url.key_prefix();
        let dir = (!prefix.is_empty()).then(|| self.key(prefix.trim_end_matches('/')));
        let listing =
            self.inner.list_with_delimiter(dir.as_ref()).await.map_err(|e| self.error("list", &e))?;
        let mut manifests = Vec::new();
        for object in listing.objects {
            let Some(file) = object.location.filename() else { continue };
            let Some(name) = manifest::name_of_manifest(file) else { continue };
            match self.manifest(name).await {
                Ok(m) => manifests.push(m),
                Err(e) => tracing::warn!("skipping snapshot {name}: {e}"),
            }
        }
        manifest::newest_first(&mut manifests);
        Ok(manifests)
    }

    /// The manifest of snapshot `name`; a missing one is "does not exist".
    pub(crate) async fn manifest(&self, name: &str) -> Result<Manifest> {
        let key = self.key(&manifest::manifest_key(&self.url.key_prefix(), name));
        let got = self.inner.get(&key).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => store_error(
                &self.url,
                StoreProblem::NotFound,
                &format!("snapshot {name} does not exist (no {name}{}): pick a name from `etcd-bootstrap backup list {}`", manifest::MANIFEST_SUFFIX, self.url),
            ),
            other => self.error(&format!("read the manifest of {name}"), &other),
        })?;
        let bytes = got.bytes().await.map_err(|e| self.error(&format!("read the manifest of {name}"), &e))?;
        Manifest::parse(name, &bytes)
            .map_err(|problem| Error::Snapshot { snapshot: self.url.snapshot(name).to_string(), problem })
    }

    /// Upload the checked snapshot file at `file`, then its manifest: the snapshot counts only
    /// once both are there.
    pub(crate) async fn upload(&self, file: &FsPath, manifest: &Manifest) -> Result<()> {
        self.upload_counting(file, manifest, &|_| {}).await
    }

    /// [`Store::upload`], telling `moved` the bytes the store's writer takes: it holds at most
    /// [`UPLOAD_PARTS_IN_FLIGHT`] part of [`UPLOAD_PART`] ahead of the network, so the count
    /// moves as parts reach the store (a long upload's progress).
    pub(crate) async fn upload_counting(
        &self,
        file: &FsPath,
        manifest: &Manifest,
        moved: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let prefix = self.url.key_prefix();
        let data_key = self.key(&manifest::data_key(&prefix, &manifest.name));
        let mut source = tokio::fs::File::open(file).await.map_err(|e| Error::io(file, e))?;
        let mut writer = BufWriter::with_capacity(Arc::clone(&self.inner), data_key, UPLOAD_PART)
            .with_max_concurrency(UPLOAD_PARTS_IN_FLIGHT);
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let n = source.read(&mut buffer).await.map_err(|e| Error::io(file, e))?;
            if n == 0 {
                break;
            }
            if let Err(e) = writer.write_all(&buffer[..n]).await {
                let _ = writer.abort().await;
                return Err(self.io_error(&format!("upload {}", manifest.name), &e));
            }
            moved(n as u64);
        }
        writer.shutdown().await.map_err(|e| self.io_error(&format!("upload {}", manifest.name), &e))?;
        crate::crash::point("after-upload-data");
        let manifest_key = self.key(&manifest::manifest_key(&prefix, &manifest.name));
        self.inner
            .put(&manifest_key, PutPayload::from(manifest.to_bytes()))
            .await
            .map_err(|e| self.error(&format!("write the manifest of {}", manifest.name), &e))?;
        Ok(())
    }

    /// The file that holds snapshot `manifest`'s data where the store is a local directory, open
    /// (so a later rename in the store changes nothing read through it), and its path; None for
    /// any other store.
    pub(crate) async fn local_data(
        &self,
        manifest: &Manifest,
    ) -> Result<Option<(std::fs::File, std::path::PathBuf)>> {
        if !matches!(self.url, StoreUrl::File { .. }) {
            return Ok(None);
        }
        match self.get_data(manifest).await?.payload {
            GetResultPayload::File(file, path) => Ok(Some((file, path))),
            GetResultPayload::Stream(_) => Ok(None),
        }
    }

    async fn get_data(&self, manifest: &Manifest) -> Result<object_store::GetResult> {
        let key = self.key(&manifest::data_key(&self.url.key_prefix(), &manifest.name));
        self.inner.get(&key).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => Error::Snapshot {
                snapshot: self.url.snapshot(&manifest.name).to_string(),
                problem: format!(
                    "its manifest exists but its data ({}{}) does not",
                    manifest.name,
                    manifest::DATA_SUFFIX
                ),
            },
            other => self.error(&format!("download {}", manifest.name), &other),
        })
    }

    /// Download snapshot `manifest` into `file`, checked as it streams: with `trailer`, every
    /// digest (etcd's trailer too); without, only the one the manifest vouches by (see
    /// `SnapshotDigest::checking` for when that is enough).
    pub(crate) async fn download(
        &self,
        manifest: &Manifest,
        file: &FsPath,
        trailer: bool,
    ) -> Result<Checked> {
        let digest =
            if trailer { SnapshotDigest::new() } else { SnapshotDigest::checking(manifest.vouched().digest) };
        let what = format!("download {}", manifest.name);
        let got = self.get_data(manifest).await?;
        let range = got.range.clone();
        match got.payload {
            // A local store: one blocking loop of large reads and writes. object_store's stream
            // of a local file is 8 KiB chunks, each read on its own blocking task, and tokio's
            // file writes one blocking task each: seconds for a 100 MB snapshot.
            GetResultPayload::File(source, source_path) => {
                let file = file.to_path_buf();
                tokio::task::spawn_blocking(move || {
                    copy_checked(source, &source_path, range, Some(&file), digest)
                })
                .await
                .map_err(|e| Error::Runtime(format!("{what}: the copy task ended: {e}")))?
            }
            GetResultPayload::Stream(mut stream) => {
                let out = tokio::fs::File::create(file).await.map_err(|e| Error::io(file, e))?;
                let mut out = tokio::io::BufWriter::with_capacity(CHUNK, out);
                let mut digest = digest;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| self.error(&what, &e))?;
                    digest.update(&chunk);
                    out.write_all(&chunk).await.map_err(|e| Error::io(file, e))?;
                    crate::crash::point("during-download");
                }
                out.flush().await.map_err(|e| Error::io(file, e))?;
                Ok(digest.finish())
            }
        }
    }

    /// Delete snapshot `name`: the manifest first, so a half-deleted snapshot never lists, then
    /// its data, then its delta segments (nothing restores them without the snapshot).
    pub(crate) async fn delete(&self, name: &str) -> Result<()> {
        let prefix = self.url.key_prefix();
        let mut keys = vec![manifest::manifest_key(&prefix, name), manifest::data_key(&prefix, name)];
        for segment in self.segments(name).await? {
            keys.push(segment::segment_key(&prefix, name, &segment));
        }
        for key in keys {
            match self.inner.delete(&self.key(&key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error(&format!("delete {name}"), &e)),
            }
        }
        Ok(())
    }

    /// The delta segments the store holds for snapshot `name`, as their object names say (any
    /// order; [`segment::chain`] orders and checks them). Objects that are not segments are
    /// ignored.
    pub(crate) async fn segments(&self, name: &str) -> Result<Vec<SegmentName>> {
        let folder = self.key(&segment::folder_key(&self.url.key_prefix(), name));
        let listing = match self.inner.list_with_delimiter(Some(&folder)).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(self.error(&format!("list the delta segments of {name}"), &e)),
        };
        Ok(listing
            .objects
            .iter()
            .filter_map(|o| o.location.filename().and_then(SegmentName::parse))
            .collect())
    }

    /// Read and check segment `segment` of snapshot `name`.
    pub(crate) async fn segment(&self, name: &str, segment: &SegmentName) -> Result<Segment> {
        let key = self.key(&segment::segment_key(&self.url.key_prefix(), name, segment));
        let what = format!("read delta segment {} of {name}", segment.file_name());
        let got = self.inner.get(&key).await.map_err(|e| self.error(&what, &e))?;
        let bytes = got.bytes().await.map_err(|e| self.error(&what, &e))?;
        Segment::parse(name, segment, &bytes)
            .map_err(|problem| Error::Snapshot { snapshot: self.url.snapshot(name).to_string(), problem })
    }

    /// Write a segment of its snapshot's chain: one object, whole or not at all (a local store
    /// writes a temporary file and renames it; S3 publishes a PUT only once complete).
    pub(crate) async fn put_segment(&self, s: &Segment) -> Result<()> {
        let key = self.key(&segment::segment_key(&self.url.key_prefix(), &s.snapshot, &s.name()));
        self.inner.put(&key, PutPayload::from(s.to_bytes())).await.map_err(|e| {
            self.error(&format!("write delta segment {} of {}", s.name().file_name(), s.snapshot), &e)
        })?;
        Ok(())
    }

    fn io_error(&self, what: &str, e: &std::io::Error) -> Error {
        // BufWriter wraps the store's error in an io::Error; find it again for its kind.
        match e.get_ref().and_then(|inner| inner.downcast_ref::<object_store::Error>()) {
            Some(inner) => self.error(what, inner),
            None => {
                let mut text = condense(&e.to_string());
                for secret in &self.secrets {
                    text = text.replace(secret.as_str(), "***");
                }
                store_error(&self.url, classify_message(&text), &format!("{what}: {text}"))
            }
        }
    }
}

fn open_s3(
    bucket: &str,
    s3: &S3Settings,
    resolver: Option<HostResolver>,
) -> object_store::Result<(object_store::aws::AmazonS3, Vec<String>)> {
    install_tls_provider();
    let mut client = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(300));
    if let Some(resolver) = resolver {
        client = client.with_dns_resolver(resolver);
    }
    let mut secrets = Vec::new();
    let mut builder = match &s3.keys {
        // Web identity: the builder reads AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN and the rest.
        Keys::WebIdentity => AmazonS3Builder::from_env(),
        Keys::Static { access_key_id, secret_access_key, session_token } => {
            secrets.push(secret_access_key.expose().to_string());
            let mut b = AmazonS3Builder::new()
                .with_access_key_id(access_key_id)
                .with_secret_access_key(secret_access_key.expose());
            if let Some(token) = session_token {
                secrets.push(token.expose().to_string());
                b = b.with_token(token.expose());
            }
            b
        }
    };
    builder = builder.with_bucket_name(bucket).with_region(&s3.region).with_retry(RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
    });
    if let Some(endpoint) = &s3.endpoint {
        // S3-compatible stores: the given endpoint, path-style requests (endpoint/bucket/key).
        client = client.with_allow_http(endpoint.to_ascii_lowercase().starts_with("http://"));
        builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
    }
    Ok((builder.with_client_options(client).build()?, secrets))
}

/// reqwest is built without a TLS provider of its own: give it ring, as etcd-client uses.
fn install_tls_provider() {
    // Already installed (by us or a dependency) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A store problem from an error message where the error type does not say (connection errors).
fn classify_message(text: &str) -> StoreProblem {
    let lower = text.to_ascii_lowercase();
    if [
        "403",
        "401",
        "forbidden",
        "signaturedoesnotmatch",
        "invalidaccesskeyid",
        "access denied",
        "accessdenied",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
    {
        StoreProblem::Credentials
    } else if [
        "connect",
        "dns",
        "timed out",
        "timeout",
        "refused",
        "unreachable",
        "nosuchbucket",
        "no such bucket",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
    {
        StoreProblem::Unreachable
    } else {
        StoreProblem::Other
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let mut shown: String = line.chars().take(300).collect();
    if line.chars().count() > 300 {
        shown.push('…');
    }
    shown
}

/// object_store's message cut down to what a user acts on: the HTTP status and S3 error code,
/// or "cannot connect", or else its first line.
fn condense(text: &str) -> String {
    let code = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_string());
    if let Some((_, rest)) = text.split_once("status code: ") {
        let status: String = rest.chars().take_while(|c| *c != ':' && *c != '\n').collect();
        return match code {
            Some(code) => format!("{} ({code})", status.trim()),
            None => status.trim().to_string(),
        };
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("error sending request")
        || lower.contains("kind connect")
        || lower.contains("tcp connect")
    {
        let retries = if lower.contains("after ") { ", after retries" } else { "" };
        return format!("cannot connect to the endpoint (error sending request{retries})");
    }
    first_line(text)
}

fn store_error(url: &StoreUrl, problem: StoreProblem, message: &str) -> Error {
    Error::Store { url: url.to_string(), problem, message: message.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_messages_are_classified_by_what_the_user_fixes() {
        let table: &[(&str, StoreProblem)] = &[
            (
                "Client error with status 403 Forbidden: <Code>SignatureDoesNotMatch</Code>",
                StoreProblem::Credentials,
            ),
            ("InvalidAccessKeyId", StoreProblem::Credentials),
            (
                "error sending request: client error (Connect): tcp connect error: Connection refused",
                StoreProblem::Unreachable,
            ),
            ("operation timed out", StoreProblem::Unreachable),
            ("NoSuchBucket: The specified bucket does not exist", StoreProblem::Unreachable),
            ("Generic error: something else", StoreProblem::Other),
        ];
        for (text, want) in table {
            assert_eq!(classify_message(text), *want, "{text}");
        }
    }

    #[test]
    fn store_messages_are_condensed_to_what_the_user_acts_on() {
        let table: &[(&str, &str)] = &[
            (
                "Generic S3 error: Error performing list request: Error performing GET http://h/b?x in 1ms - Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code></Error>",
                "403 Forbidden (SignatureDoesNotMatch)",
            ),
            ("x status code: 404 Not Found: ", "404 Not Found"),
            (
                "Generic S3 error: Error performing GET http://127.0.0.1:1/b in 437ms, after 3 retries, max_retries: 3 - HTTP error: error sending request",
                "cannot connect to the endpoint (error sending request, after retries)",
            ),
            ("Object at location x not found\nmore", "Object at location x not found"),
        ];
        for (text, want) in table {
            assert_eq!(condense(text), *want);
        }
    }

    #[test]
    fn messages_keep_one_short_line() {
        assert_eq!(first_line("a\nb"), "a");
        assert_eq!(first_line(&"x".repeat(400)).chars().count(), 301);
    }
}
