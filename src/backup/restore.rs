//! Restoring a snapshot into the data dir, at the edge: download and check it into a work
//! directory inside the data dir, restore it there with etcd's own tool (etcdutl from etcd 3.5 on,
//! etcdctl on 3.4), archive the old member data if any, move the restored member into place,
//! record a marker. A crash at any step leaves the old state or the finished restore:
//! - before the move, `member/` is the old data (or absent) and the work dir is ours to redo;
//! - the move of `member/` is one rename on the same volume;
//! - the old data is archived (renamed), never deleted.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::backup::integrity::{trailer_problem, SnapshotDigest, Vouched, TRAILER_LEN};
use crate::backup::manifest::Manifest;
use crate::backup::replay::Replay;
use crate::backup::segment::Segment;
use crate::backup::store::Store;
use crate::crash;
use crate::error::{Error, Result};
use crate::observe::datadir;

/// The work directory inside the data dir (ours: removed and redone after a crash).
pub(crate) const WORK_DIR: &str = datadir::RESTORE_WORK_DIR;
/// The marker written into the data dir after a restore, for the operator and for later rounds.
pub(crate) const MARKER: &str = datadir::RESTORE_MARKER;
/// How far a restore moves the revision past the snapshot's where etcdutl can, so a watcher
/// never sees a revision go backwards (etcd's own recovery guide suggests a large bump).
pub(crate) const BUMP_REVISION: u64 = 1_000_000_000;

/// etcd's restore tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestoreTool {
    pub path: PathBuf,
    /// `etcdctl` (etcd 3.4) or `etcdutl` (3.5 on).
    pub etcdctl: bool,
    /// The tool has `--bump-revision` and `--mark-compacted`.
    pub bumps_revision: bool,
}

/// What one member restores as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestoreTarget {
    pub name: String,
    pub peer_url: String,
    pub initial_cluster: Vec<(String, String)>,
    /// The restore token (see `decide::restore::restore_token`).
    pub token: String,
}

/// What the marker records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Marker {
    pub snapshot: String,
    pub sha256: String,
    pub revision: i64,
    pub token: String,
    /// Where the old member data went, if there was any.
    pub archived: Option<String>,
    /// The last revision of the delta segments replayed after the snapshot, if any were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_to: Option<i64>,
    pub restored_at: String,
}

/// The restore tool for `etcd_binary` (of `release`, as `etcd --version` said): `etcdutl` beside
/// it, else `etcdctl` beside it, else the same names on `PATH`. From etcd 3.6 on, `etcdutl` only:
/// etcd 3.6 removed `etcdctl snapshot restore` (CHANGELOG-3.6, etcd-io/etcd#13809).
pub(crate) fn find_tool(
    etcd_binary: &Path,
    path_var: Option<&str>,
    release: Option<crate::observed::Release>,
) -> Result<PathBuf> {
    let found = find_any_tool(etcd_binary, path_var)?;
    tool_fits(&found, release)?;
    Ok(found)
}

/// Whether `tool` can restore for etcd `release` (pure): etcdctl only before 3.6.
pub(crate) fn tool_fits(tool: &Path, release: Option<crate::observed::Release>) -> Result<()> {
    match release {
        Some(r) if r.minor_line() >= (3, 6) && tool.file_name().is_some_and(|n| n == "etcdctl") => {
            Err(Error::config(format!(
                "--restore-from with etcd {r} needs etcdutl (etcd 3.6 removed `etcdctl snapshot restore`), but only {} was found: add etcdutl of the same release beside etcd",
                tool.display()
            )))
        }
        _ => Ok(()),
    }
}

fn find_any_tool(etcd_binary: &Path, path_var: Option<&str>) -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = etcd_binary
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    dirs.extend(path_var.unwrap_or_default().split(':').filter(|d| !d.is_empty()).map(PathBuf::from));
    for name in ["etcdutl", "etcdctl"] {
        for dir in &dirs {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(Error::config(format!(
        "--restore-from needs etcd's restore tool: no etcdutl or etcdctl beside {} or on PATH; add etcdutl (etcd 3.5+) or etcdctl (3.4) to the image",
        etcd_binary.display()
    )))
}

impl RestoreTool {
    /// The tool at `path`, assumed to have `--bump-revision` and `--mark-compacted` until it
    /// refuses them ([`refuses_bump_flags`]): one run of the tool where it has them (etcd 3.5's
    /// later releases on), rather than a `--help` run first.
    pub(crate) fn at(path: &Path) -> RestoreTool {
        let etcdctl = path.file_name().is_some_and(|n| n == "etcdctl");
        RestoreTool { path: path.to_path_buf(), etcdctl, bumps_revision: true }
    }
}

/// Whether the restore tool's output says it refused the bump flags as unknown (pure): an etcdutl
/// or etcdctl from before them stops at the flag, having written nothing, and is run again
/// without them. Any other failure is the restore's.
pub(crate) fn refuses_bump_flags(output: &str) -> bool {
    ["--bump-revision", "--mark-compacted"]
        .iter()
        .any(|flag| output.contains(&format!("unknown flag: {flag}")))
}

/// The tool's arguments for restoring `snapshot` into the new directory `into`.
pub(crate) fn tool_args(
    tool: &RestoreTool,
    target: &RestoreTarget,
    snapshot: &Path,
    into: &Path,
    skip_hash_check: bool,
) -> Vec<String> {
    let cluster: Vec<String> = target.initial_cluster.iter().map(|(n, u)| format!("{n}={u}")).collect();
    let mut args = vec![
        "snapshot".to_string(),
        "restore".to_string(),
        snapshot.display().to_string(),
        format!("--data-dir={}", into.display()),
        format!("--name={}", target.name),
        format!("--initial-cluster={}", cluster.join(",")),
        format!("--initial-cluster-token={}", target.token),
        format!("--initial-advertise-peer-urls={}", target.peer_url),
    ];
    if skip_hash_check {
        // Downloaded bytes checked against the manifest's sha256 already, which is written only
        // for bytes whose trailing sha256 held (`integrity::Checked::problem`): the tool need not
        // read and hash them once more.
        args.push("--skip-hash-check".to_string());
    }
    if tool.bumps_revision {
        args.push(format!("--bump-revision={BUMP_REVISION}"));
        args.push("--mark-compacted".to_string());
    }
    args
}

/// Restore `snapshot` into the new directory `into` as `target` with the tool, without its own
/// hash check where `skip_hash_check`; with the bump flags unless it refuses them, in which case
/// `tool` is left saying so. A failure is a snapshot error about `url`, the tool's last line of
/// output.
async fn run_tool(
    tool: &mut RestoreTool,
    target: &RestoreTarget,
    (snapshot, into): (&Path, &Path),
    skip_hash_check: bool,
    url: &str,
) -> Result<()> {
    let run = |tool: &RestoreTool| {
        let args = tool_args(tool, target, snapshot, into, skip_hash_check);
        tokio::process::Command::new(&tool.path)
            .args(args)
            .env_clear()
            .env("ETCDCTL_API", "3")
            .stdin(Stdio::null())
            .output()
    };
    let mut out = run(tool).await.map_err(|e| Error::io(&tool.path, e))?;
    if !out.status.success()
        && tool.bumps_revision
        && refuses_bump_flags(&String::from_utf8_lossy(&out.stderr))
    {
        tool.bumps_revision = false;
        tracing::warn!(
            "{} has no --bump-revision/--mark-compacted: the restored cluster continues from the snapshot's revision, so a watcher of the old cluster may see revisions it saw already",
            tool.path.display()
        );
        out = run(tool).await.map_err(|e| Error::io(&tool.path, e))?;
    }
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim().to_string();
    Err(Error::Snapshot {
        snapshot: url.to_string(),
        problem: format!("could not be restored by {} ({}): {last}", tool.path.display(), out.status),
    })
}

/// Read the marker of `data_dir`, if there is a readable one.
pub(crate) fn read_marker(data_dir: &Path) -> Option<Marker> {
    let bytes = std::fs::read(data_dir.join(MARKER)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Restore `manifest`'s snapshot from `store` into `data_dir` as `target`, with the delta
/// segments of `replay` appended to the restored member's log when given (within etcd's
/// `quota`); archive the old
/// `member/` first when there is one. Returns the marker written.
pub(crate) async fn restore(
    store: &Store,
    manifest: &Manifest,
    mut tool: RestoreTool,
    target: &RestoreTarget,
    data_dir: &Path,
    replay: Option<&Replay>,
    quota: u64,
) -> Result<Marker> {
    let work = data_dir.join(WORK_DIR);
    remove_work_dir(&work)?;
    std::fs::create_dir(&work).map_err(|e| data_dir_error(data_dir, &format!("create {WORK_DIR}"), &e))?;
    let url = store.url().snapshot(&manifest.name).to_string();
    let restored = work.join(RESTORED_DIR);
    tracing::info!(tool = %tool.path.display(), "restoring {url} (revision {}, sha256 {})", manifest.revision, manifest.sha256);
    let snapshot = Snapshot { store, manifest, url: &url };
    let (from_revision, prefetched) =
        match restore_snapshot(&snapshot, &mut tool, target, &work, replay).await {
            Ok(done) => done,
            Err(e) => {
                // Nothing was restored: the volume keeps no work dir.
                remove_work_dir(&work)?;
                return Err(e);
            }
        };
    let replayed_to = match (replay, from_revision) {
        (Some(replay), Some(from)) => {
            // Revisions merge into larger transactions only where the tool moved the revision
            // past the snapshot's anyway (the replay's own revisions then matter to nobody).
            let room = (manifest.size, quota);
            let one_per_revision = !tool.bumps_revision;
            let done = crate::backup::replay::replay(
                store,
                replay,
                prefetched,
                from,
                one_per_revision,
                &restored,
                room,
            )
            .await?;
            Some(done.to_revision)
        }
        _ => None,
    };
    crash::point("after-restore");
    let archived = if data_dir.join("member").exists() {
        let moved = crate::act::archive::archive_member(data_dir, unix_now())?;
        crash::point("after-restore-archive");
        tracing::warn!(archive = %moved.display(), "old member data archived before the restore (kept, never deleted)");
        Some(moved.display().to_string())
    } else {
        None
    };
    let from = restored.join("member");
    let to = data_dir.join("member");
    std::fs::rename(&from, &to)
        .map_err(|e| data_dir_error(data_dir, "move the restored member/ into place", &e))?;
    sync_dir(data_dir)?;
    crash::point("after-restore-move");
    let marker = Marker {
        snapshot: url,
        sha256: manifest.sha256.clone(),
        revision: manifest.revision,
        token: target.token.clone(),
        archived,
        replayed_to,
        restored_at: crate::backup::manifest::rfc3339(unix_now()),
    };
    write_marker(data_dir, &marker)?;
    remove_work_dir(&work)?;
    Ok(marker)
}

/// Where the tool restores the snapshot, inside the work dir.
const RESTORED_DIR: &str = "restored";

/// The snapshot a restore reads: its store, manifest and URL (for messages).
struct Snapshot<'a> {
    store: &'a Store,
    manifest: &'a Manifest,
    url: &'a str,
}

/// Restore `snapshot` with `tool` into the work dir's [`RESTORED_DIR`] as `target`, checked to be
/// the manifest's bytes; with a `replay`, also return the revision the snapshot holds (read from
/// its file before the tool runs, which may move it) and the replay's first segments (read while
/// the tool runs). On an error the caller removes the work dir.
async fn restore_snapshot(
    snapshot: &Snapshot<'_>,
    tool: &mut RestoreTool,
    target: &RestoreTarget,
    work: &Path,
    replay: Option<&Replay>,
) -> Result<(Option<i64>, Vec<Segment>)> {
    let Snapshot { store, manifest, url } = *snapshot;
    let restored = work.join(RESTORED_DIR);
    let refused = |problem: String| Error::Snapshot {
        snapshot: url.to_string(),
        problem: format!("{problem}; nothing was restored"),
    };
    let vouched = manifest.vouched();
    let from_revision =
        |file: &Path| replay.map(|_| crate::backup::bolt::content_revision_of(file)).transpose();
    let Some((file, path)) = store.local_data(manifest).await? else {
        // Any other store: downloaded into the work dir first. The manifest's digest vouches for
        // the bytes (etcd's trailer held when it was written), and the tool skips its own check:
        // each byte is hashed once.
        let snapshot_file = work.join("snapshot.db");
        let checked = store.download(manifest, &snapshot_file, false).await?;
        if let Some(problem) = checked.problem(Some(vouched)) {
            return Err(refused(problem));
        }
        crash::point("after-snapshot-check");
        let from = from_revision(&snapshot_file)?;
        let run = restore_and_prefetch(tool, target, (&snapshot_file, &restored), true, url, store, replay);
        let (ran, prefetched) = run.await;
        ran?;
        return Ok((from, prefetched?));
    };
    // A directory store: the tool reads the snapshot where it is, as a by-hand restore would.
    let from = from_revision(&path)?;
    if let (None, Some(trailer)) = (&manifest.xxh3_128, manifest.etcd_sha256.as_deref()) {
        // A manifest of the release before the fast digest names etcd's trailer: the file is this
        // snapshot when its size and last 32 bytes are the manifest's (before and after the tool
        // read it, the same file still at that name), and the tool checks the rest against them.
        let expected = (manifest.size, trailer);
        if let Some(problem) = in_place_problem(&file, &path, expected)? {
            return Err(refused(problem));
        }
        crash::point("after-snapshot-check");
        let clone = file.try_clone().map_err(|e| Error::io(&path, e));
        let run = restore_and_prefetch(tool, target, (&path, &restored), false, url, store, replay);
        let (ran, prefetched) = run.await;
        if let Err(failed) = ran {
            // Say why where the file is not what its manifest says (the tool's message for a bad
            // checksum names none of that).
            let checked = whole_file_check(clone?, path.clone(), vouched).await?;
            return Err(checked.problem(Some(vouched)).map_or(failed, refused));
        }
        if let Some(problem) = in_place_problem(&file, &path, expected)? {
            return Err(refused(problem));
        }
        return Ok((from, prefetched?));
    }
    // Otherwise the whole file is checked against the manifest's digest (XXH3-128, or the
    // sha256 of a manifest of an earlier release) beside the tool, which skips its own sha256
    // pass: the bytes the digest vouches for are ones whose trailer held when the manifest was
    // written. The restore counts only if the digest matches and the file at that name is still
    // the one read, unwritten since (same inode, size, change and modification times).
    let before = FileStamp::of(&file.metadata().map_err(|e| Error::io(&path, e))?);
    let run = restore_and_prefetch(tool, target, (&path, &restored), true, url, store, replay);
    let ((ran, prefetched), checked) = tokio::join!(run, whole_file_check(file, path.clone(), vouched));
    if let Some(problem) = checked?.problem(Some(vouched)) {
        return Err(refused(problem));
    }
    crash::point("after-snapshot-check");
    let now = FileStamp::of(&std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?);
    if now != before {
        return Err(refused("was replaced or written in the store while it was restored".into()));
    }
    ran?;
    Ok((from, prefetched?))
}

/// What shows a file replaced or written: its inode, size, and change and modification times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    ctime: (i64, i64),
    mtime: (i64, i64),
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }
}

/// Run the restore tool ([`run_tool`]), and meanwhile read the first segments `replay` (if any)
/// needs (`replay::prefetch`).
async fn restore_and_prefetch(
    tool: &mut RestoreTool,
    target: &RestoreTarget,
    paths: (&Path, &Path),
    skip_hash_check: bool,
    url: &str,
    store: &Store,
    replay: Option<&Replay>,
) -> (Result<()>, Result<Vec<Segment>>) {
    let prefetch = async {
        match replay {
            Some(replay) => crate::backup::replay::prefetch(store, replay).await,
            None => Ok(Vec::new()),
        }
    };
    tokio::join!(run_tool(tool, target, paths, skip_hash_check, url), prefetch)
}

/// The whole of the store's file `path` (open as `file`) hashed with the digest `vouched` names,
/// on a blocking thread.
async fn whole_file_check(
    file: std::fs::File,
    path: PathBuf,
    vouched: Vouched<'_>,
) -> Result<crate::backup::integrity::Checked> {
    let shown = path.display().to_string();
    let digest = SnapshotDigest::checking(vouched.digest);
    tokio::task::spawn_blocking(move || {
        crate::backup::store::copy_checked(file, &path, 0..u64::MAX, None, digest)
    })
    .await
    .map_err(|e| Error::Runtime(format!("check {shown}: the task ended: {e}")))?
}

/// Why the store's file `path` (open as `file`) may not be restored as the snapshot of size and
/// etcd trailer `expected`, if it may not: its size and last 32 bytes (`integrity`), and the
/// name still naming the open file (not replaced in the store meanwhile).
fn in_place_problem(file: &std::fs::File, path: &Path, expected: (u64, &str)) -> Result<Option<String>> {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let open = file.metadata().map_err(|e| Error::io(path, e))?;
    let named = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if (open.dev(), open.ino()) != (named.dev(), named.ino()) {
        return Ok(Some("was replaced in the store while it was restored".into()));
    }
    let size = open.len();
    let mut last = [0u8; TRAILER_LEN];
    if size >= TRAILER_LEN as u64 {
        file.read_exact_at(&mut last, size - TRAILER_LEN as u64).map_err(|e| Error::io(path, e))?;
    }
    Ok(trailer_problem(size, &last, expected))
}

fn write_marker(data_dir: &Path, marker: &Marker) -> Result<()> {
    let tmp = data_dir.join(format!("{MARKER}.tmp"));
    let text = serde_json::to_string_pretty(marker).unwrap_or_default();
    std::fs::write(&tmp, text).map_err(|e| data_dir_error(data_dir, "write the restore marker", &e))?;
    std::fs::rename(&tmp, data_dir.join(MARKER))
        .map_err(|e| data_dir_error(data_dir, "write the restore marker", &e))?;
    sync_dir(data_dir)
}

/// Remove what a restore cut short by a crash left in the data dir (its work directory: a
/// partial download or restore, ours, never user data). A restore still due is redone from the
/// start. Returns whether there was something to remove.
pub(crate) fn discard_leftover_work(data_dir: &Path) -> Result<bool> {
    let work = data_dir.join(WORK_DIR);
    if !work.exists() {
        return Ok(false);
    }
    remove_work_dir(&work)?;
    sync_dir(data_dir)?;
    Ok(true)
}

/// Remove our own work directory (a download or restore a crash cut short); never user data.
fn remove_work_dir(work: &Path) -> Result<()> {
    match std::fs::remove_dir_all(work) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(data_dir_error(work.parent().unwrap_or(work), &format!("remove {WORK_DIR}"), &e)),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(|e| data_dir_error(dir, "sync", &e))
}

fn data_dir_error(dir: &Path, what: &str, e: &std::io::Error) -> Error {
    Error::DataDir { path: dir.to_path_buf(), problem: format!("cannot {what}: {e}") }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    // CHANGELOG-3.6: "Removed etcdctl snapshot restore" (etcd-io/etcd#13809): from 3.6 on the
    // restore is etcdutl's only; 3.4 has only etcdctl's, 3.5 both.
    #[test]
    fn restore_uses_etcdutl_only_from_etcd_36_on() {
        use crate::observed::Release;
        let (ctl, utl) = (Path::new("/usr/bin/etcdctl"), Path::new("/usr/bin/etcdutl"));
        let rows: [(&Path, Option<Release>, bool); 6] = [
            (ctl, Some(Release::new(3, 4, 23)), true),
            (ctl, Some(Release::new(3, 5, 30)), true),
            (ctl, Some(Release::new(3, 6, 14)), false),
            (ctl, Some(Release::new(3, 7, 1)), false),
            (utl, Some(Release::new(3, 7, 1)), true),
            (ctl, None, true),
        ];
        for (tool, release, fits) in rows {
            let got = tool_fits(tool, release);
            assert_eq!(got.is_ok(), fits, "{} for {release:?}: {got:?}", tool.display());
            if let Err(e) = got {
                assert!(e.to_string().contains("needs etcdutl"), "{e}");
            }
        }
    }

    fn target() -> RestoreTarget {
        RestoreTarget {
            name: "etcd-1".into(),
            peer_url: "http://etcd-1.etcd:2380".into(),
            initial_cluster: (0..3)
                .map(|o| (format!("etcd-{o}"), format!("http://etcd-{o}.etcd:2380")))
                .collect(),
            token: "t-restore-abc".into(),
        }
    }

    #[test]
    fn the_restore_uses_name_initial_cluster_token_and_peer_url_and_bumps_where_it_can() {
        let mut tool = RestoreTool { path: "/bin/etcdutl".into(), etcdctl: false, bumps_revision: false };
        let args =
            tool_args(&tool, &target(), Path::new("/d/w/snapshot.db"), Path::new("/d/w/restored"), true);
        assert_eq!(
            args,
            [
                "snapshot",
                "restore",
                "/d/w/snapshot.db",
                "--data-dir=/d/w/restored",
                "--name=etcd-1",
                "--initial-cluster=etcd-0=http://etcd-0.etcd:2380,etcd-1=http://etcd-1.etcd:2380,etcd-2=http://etcd-2.etcd:2380",
                "--initial-cluster-token=t-restore-abc",
                "--initial-advertise-peer-urls=http://etcd-1.etcd:2380",
                "--skip-hash-check",
            ]
        );
        tool.bumps_revision = true;
        let args = tool_args(&tool, &target(), Path::new("/s"), Path::new("/r"), false);
        assert!(args.ends_with(&["--bump-revision=1000000000".to_string(), "--mark-compacted".to_string()]));
        assert!(!args.contains(&"--skip-hash-check".to_string()), "the tool checks what it reads in place");
    }

    #[test]
    fn only_a_refusal_of_the_bump_flags_as_unknown_retries_without_them() {
        // What etcdutl 3.5.1 and etcdctl 3.4.23 print (checked here) for flags they lack.
        assert!(refuses_bump_flags("Usage: ...\nError: unknown flag: --bump-revision\n"));
        assert!(refuses_bump_flags("Error: unknown flag: --mark-compacted"));
        for other in [
            "Error: snapshot file integrity check failed. 2 errors occurred",
            "Error: expected sha256 [..], got [..]",
            "Error: unknown flag: --skip-hash-check",
            "--mark-compacted required if --bump-revision > 0",
            "",
        ] {
            assert!(!refuses_bump_flags(other), "{other}");
        }
        let tool = RestoreTool::at(Path::new("/usr/bin/etcdctl"));
        assert!(tool.etcdctl && tool.bumps_revision, "assumed until refused");
        assert!(!RestoreTool::at(Path::new("/usr/bin/etcdutl")).etcdctl);
    }

    #[test]
    fn a_file_written_in_place_or_replaced_no_longer_has_its_stamp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("snapshot.db");
        std::fs::write(&path, b"the snapshot's bytes").expect("write");
        let stamp = || FileStamp::of(&std::fs::metadata(&path).expect("stat"));
        let before = stamp();
        assert_eq!(stamp(), before, "read again: the same");
        // The same size, written in place: the change time moves (nanoseconds, or a second).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while stamp() == before && std::time::Instant::now() < deadline {
            use std::os::unix::fs::FileExt;
            let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
            file.write_all_at(b"T", 0).expect("write in place");
        }
        let written = stamp();
        assert_ne!(written, before, "written in place");
        assert_eq!((written.dev, written.ino, written.size), (before.dev, before.ino, before.size));
        let other = dir.path().join("other.db");
        std::fs::write(&other, b"the snapshot's bytes").expect("write");
        std::fs::rename(&other, &path).expect("replace");
        assert_ne!(stamp().ino, before.ino, "replaced");
    }

    #[test]
    fn the_tool_is_found_beside_etcd_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        let other = dir.path().join("other");
        std::fs::create_dir_all(&bin).expect("mkdir");
        std::fs::create_dir_all(&other).expect("mkdir");
        std::fs::write(other.join("etcdutl"), "").expect("write");
        let path_var = other.display().to_string();
        assert_eq!(
            find_tool(&bin.join("etcd"), Some(&path_var), None).expect("found"),
            other.join("etcdutl")
        );
        std::fs::write(bin.join("etcdctl"), "").expect("write");
        // etcdutl wins over etcdctl, beside etcd or on PATH.
        assert_eq!(
            find_tool(&bin.join("etcd"), Some(&path_var), None).expect("found"),
            other.join("etcdutl")
        );
        std::fs::write(bin.join("etcdutl"), "").expect("write");
        assert_eq!(find_tool(&bin.join("etcd"), Some(&path_var), None).expect("found"), bin.join("etcdutl"));
        let err = find_tool(Path::new("/nowhere/etcd"), Some("/nowhere"), None).expect_err("none");
        assert!(err.to_string().contains("add etcdutl"), "{err}");
    }
}
