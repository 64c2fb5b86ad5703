//! The data directory: is it empty, an etcd member's (with its member ID and cluster ID read from
//! the WAL), or something else? Read only: moving a stale `member/` aside is `act::archive`.
//!
//! Layout of an etcd 3.x data dir: `<dir>/member/wal/<seq>-<index>.wal` (the write-ahead log) and
//! `<dir>/member/snap/` (snapshots and the bbolt backend). The first WAL file starts with a CRC
//! record and a metadata record holding the member ID and the cluster ID; that is what
//! [`read_wal_metadata`] (in `wal.rs`) decodes, so "am I still a member" is answered by ID, not by name.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, ErrorKind, Read};
use std::path::Path;

use crate::error::{lowercase_first, Error, Result};
use crate::observed::{DataDirState, WalMeta};

mod wal;

pub use wal::read_wal_metadata;
pub use wal::{crc32c_update, read_wal_tail, WalTail};
use wal::{scan, Scan};

/// Name prefix of the archives `act::archive` creates inside the data dir.
pub const ARCHIVE_PREFIX: &str = "member.removed-";
/// A restore's work directory inside the data dir (`--restore-from`): ours, not data.
pub const RESTORE_WORK_DIR: &str = "etcd-bootstrap-restore.work";
/// The marker a restore leaves in the data dir: ours, not data.
pub const RESTORE_MARKER: &str = "etcd-bootstrap-restore.json";

/// The entry etcd keeps its member data in.
pub const MEMBER: &str = "member";

/// A file system's own entry (ext4 mount points have one); never ours to judge.
const LOST_FOUND: &str = "lost+found";

/// The empty file etcd writes and removes at start to check that the data dir is writable
/// (`fileutil.IsDirWriteable`). An etcd killed between the two leaves it behind, in a data dir
/// that is otherwise empty: it is not data, and refusing on it would refuse that pod forever.
const ETCD_WRITE_PROBE: &str = ".touch";

// ---------------------------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------------------------

/// Classify the data directory at `dir`.
///
/// Missing means [`DataDirState::Empty`] (etcd creates it). Entries other than `member`,
/// `lost+found` and our archives make it [`DataDirState::Unknown`], whatever else is there. A
/// `member/` is read through its first WAL file; a WAL that cannot be parsed is [`Error::Wal`].
pub fn inspect(dir: &Path) -> Result<DataDirState> {
    if !existing_dir(dir)? {
        return Ok(DataDirState::Empty);
    }
    let names = list(dir).map_err(|e| access_error(dir, "list it", e))?;
    let mut has_member = false;
    let mut unknown = Vec::new();
    for name in names {
        if name == MEMBER && is_dir(&dir.join(MEMBER)) {
            has_member = true;
        } else if name == ETCD_WRITE_PROBE && is_empty_file(&dir.join(ETCD_WRITE_PROBE)) {
            // etcd's own write check, left by an etcd killed during its start: not data.
        } else if counts(&name) {
            unknown.push(name.to_string_lossy().into_owned());
        }
    }
    if !unknown.is_empty() {
        unknown.sort();
        return Ok(DataDirState::Unknown { entries: unknown });
    }
    if !has_member {
        return Ok(DataDirState::Empty);
    }
    inspect_member(dir)
}

/// True when `dir` is an existing directory, false when nothing is there; an error when something
/// else is there or it cannot be looked at.
fn existing_dir(dir: &Path) -> Result<bool> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(true),
        Ok(_) => Err(data_dir_error(
            dir,
            "is not a directory: point --data-dir at a directory, or remove what is there",
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if fs::symlink_metadata(dir).is_ok() {
                Err(data_dir_error(dir, "is a symbolic link to a missing target: fix the link or remove it"))
            } else {
                Ok(false)
            }
        }
        Err(e) => Err(access_error(dir, "look at it", e)),
    }
}

/// Whether an entry of the data dir counts as data: `lost+found` and our archives do not.
fn counts(name: &OsStr) -> bool {
    match name.to_str() {
        Some(name) => {
            name != LOST_FOUND
                && !name.starts_with(ARCHIVE_PREFIX)
                && name != RESTORE_WORK_DIR
                && !name.starts_with(RESTORE_MARKER)
        }
        None => true,
    }
}

/// True when `path` is an empty regular file (not following symbolic links).
fn is_empty_file(path: &Path) -> bool {
    fs::symlink_metadata(path).map(|m| m.is_file() && m.len() == 0).unwrap_or(false)
}

/// True when `path` is a directory (following symbolic links).
fn is_dir(path: &Path) -> bool {
    fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false)
}

/// The names of the entries of a directory, in no particular order.
fn list(dir: &Path) -> io::Result<Vec<OsString>> {
    fs::read_dir(dir)?.map(|entry| entry.map(|e| e.file_name())).collect()
}

/// Read the member IDs of the `member/` in `dir`, which exists and is a directory.
fn inspect_member(dir: &Path) -> Result<DataDirState> {
    let wal_dir = dir.join(MEMBER).join("wal");
    let names = match list(&wal_dir) {
        Ok(names) => names,
        // etcd writes its first WAL file in `member/wal.tmp` and renames that directory to
        // `member/wal` when the file is complete, so a `member/` without `member/wal` (or without
        // any `.wal` file in it, which is etcd's own test for "has a WAL") is a crash during
        // etcd's very first start: no member data was ever committed. etcd itself starts fresh
        // over such a directory, so it counts as empty. Nothing is deleted here.
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(DataDirState::Empty),
        Err(e) => return Err(access_error(dir, "list member/wal", e)),
    };
    let Some(first) = first_wal_name(names) else {
        return Ok(DataDirState::Empty); // Same reason as above: etcd never wrote its WAL.
    };
    let path = wal_dir.join(first);
    read_wal_file(dir, &path).map(DataDirState::Member)
}

/// The first WAL file name (`%016x-%016x.wal`, lowest sequence number first), if any.
fn first_wal_name(names: Vec<OsString>) -> Option<String> {
    names.into_iter().filter_map(|n| n.into_string().ok()).filter(|n| is_wal_name(n)).min()
}

/// True for a WAL file name as etcd writes it: 16 hex digits, `-`, 16 hex digits, `.wal`.
fn is_wal_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".wal") else {
        return false;
    };
    let Some((seq, index)) = stem.split_once('-') else {
        return false;
    };
    let hex16 = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
    hex16(seq) && hex16(index)
}

/// How much of a WAL file is read first; the metadata record is the second frame, a few dozen
/// bytes in, so the rest of the (64 MB, mostly preallocated) file is only read when needed.
const WAL_PREFIX_BYTES: u64 = 64 * 1024;

/// Read the metadata record of the WAL file at `path`, inside data dir `dir`.
fn read_wal_file(dir: &Path, path: &Path) -> Result<WalMeta> {
    let wal_error = |problem: String| Error::Wal { path: path.to_path_buf(), problem };
    let unreadable = |e: io::Error| {
        let name = path.strip_prefix(dir).unwrap_or(path).display().to_string();
        access_error(dir, &format!("read {name}"), e)
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    (&mut file).take(WAL_PREFIX_BYTES).read_to_end(&mut bytes).map_err(unreadable)?;
    match scan(&bytes) {
        Err(Scan::Truncated(_)) if bytes.len() as u64 == WAL_PREFIX_BYTES => {
            file.read_to_end(&mut bytes).map_err(unreadable)?;
            scan(&bytes).map_err(|e| wal_error(e.into_message()))
        }
        result => result.map_err(|e| wal_error(e.into_message())),
    }
}

// ---------------------------------------------------------------------------------------------
// Writability
// ---------------------------------------------------------------------------------------------

/// Check that etcd will be able to write the data dir, so a read-only volume or a wrong owner is
/// one clear error before anything happens rather than an etcd crash loop after a membership
/// change. Checked with `access(W_OK | X_OK)`, which creates and removes nothing and also sees a
/// read-only mount: the dir itself, or when it is missing the nearest existing ancestor (etcd
/// creates the missing ones), and `member/`, `member/wal` and `member/snap` where they exist.
pub fn check_writable(dir: &Path) -> Result<()> {
    if !existing_dir(dir)? {
        let Some(parent) = dir.ancestors().skip(1).find(|p| fs::symlink_metadata(p).is_ok()) else {
            return Ok(());
        };
        let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
        if !is_dir(parent) {
            return Err(data_dir_error(
                dir,
                &format!("cannot be created: {} is not a directory", parent.display()),
            ));
        }
        return writable(parent)
            .map_err(|e| access_error(dir, &format!("create it in {}", parent.display()), e));
    }
    writable(dir).map_err(|e| access_error(dir, "write it", e))?;
    for sub in ["member", "member/wal", "member/snap"] {
        let path = dir.join(sub);
        if is_dir(&path) {
            writable(&path).map_err(|e| access_error(dir, &format!("write {sub}"), e))?;
        }
    }
    Ok(())
}

/// `access(path, W_OK | X_OK)` as an io result.
fn writable(path: &Path) -> io::Result<()> {
    use nix::unistd::{access, AccessFlags};
    access(path, AccessFlags::W_OK | AccessFlags::X_OK).map_err(io::Error::from)
}

/// A data dir error with a problem text.
fn data_dir_error(dir: &Path, problem: &str) -> Error {
    Error::DataDir { path: dir.to_path_buf(), problem: problem.to_string() }
}

/// A data dir error for a failed file system call: what we tried, why it failed, and the fix.
pub fn access_error(dir: &Path, action: &str, e: io::Error) -> Error {
    let fix = match e.kind() {
        ErrorKind::PermissionDenied => {
            "run etcd-bootstrap as the user that owns the data dir, or fix its owner and mode \
             (in kubernetes: the pod's securityContext.fsGroup)"
        }
        ErrorKind::NotADirectory => "the data dir is damaged: inspect it, or move it aside",
        ErrorKind::ReadOnlyFilesystem => "etcd writes its data dir: mount the volume read-write",
        _ => "check the volume mounted at the data dir",
    };
    let problem = format!("cannot {action}: {}; {fix}", lowercase_first(&e.to_string()));
    Error::DataDir { path: dir.to_path_buf(), problem }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// The encoder side, written from the format, for hand-made WAL files in tests.
#[cfg(test)]
#[path = "../../../tests/fixtures/wal.rs"]
mod wal_fixture;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    use super::wal::tests::{meta, CLUSTER, NODE};
    use super::wal_fixture::{frame, metadata, record, wal};

    #[test]
    fn wal_names_follow_etcds_pattern() {
        assert!(is_wal_name("0000000000000000-0000000000000000.wal"));
        assert!(is_wal_name("000000000000000a-00000000000003e8.wal"));
        assert!(!is_wal_name("0.tmp"));
        assert!(!is_wal_name("0000000000000000-0000000000000000.wal.broken"));
        assert!(!is_wal_name("000000000000000-0000000000000000.wal"));
        assert!(!is_wal_name("000000000000000g-0000000000000000.wal"));
        assert!(!is_wal_name("x.wal"));
    }

    // ---- inspect ----

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().expect("create a temp dir")
    }

    /// Write a member data dir under `dir` with a first WAL file of the given bytes.
    fn write_member(dir: &Path, wal_bytes: &[u8]) -> std::path::PathBuf {
        let wal_dir = dir.join("member").join("wal");
        fs::create_dir_all(&wal_dir).unwrap();
        fs::create_dir_all(dir.join("member").join("snap")).unwrap();
        let path = wal_dir.join("0000000000000000-0000000000000000.wal");
        fs::write(&path, wal_bytes).unwrap();
        path
    }

    #[test]
    fn missing_dir_is_empty() {
        let tmp = tempdir();
        assert_eq!(inspect(&tmp.path().join("data")).unwrap(), DataDirState::Empty);
    }

    #[test]
    fn empty_dir_is_empty() {
        let tmp = tempdir();
        assert_eq!(inspect(tmp.path()).unwrap(), DataDirState::Empty);
    }

    #[test]
    fn lost_found_only_is_empty() {
        let tmp = tempdir();
        fs::create_dir(tmp.path().join("lost+found")).unwrap();
        assert_eq!(inspect(tmp.path()).unwrap(), DataDirState::Empty);
    }

    #[test]
    fn etcds_empty_write_probe_left_by_a_killed_etcd_is_not_data() {
        // Found by the chaos test: etcd killed -9 between writing and removing `.touch`.
        let tmp = tempdir();
        fs::write(tmp.path().join(".touch"), b"").unwrap();
        assert_eq!(inspect(tmp.path()).unwrap(), DataDirState::Empty);
        write_member(tmp.path(), &wal(NODE, CLUSTER));
        assert_eq!(inspect(tmp.path()).unwrap(), DataDirState::Member(meta()));
    }

    #[test]
    fn a_touch_file_with_content_or_a_touch_directory_is_not_ours_to_ignore() {
        let tmp = tempdir();
        fs::write(tmp.path().join(".touch"), b"someone's data").unwrap();
        assert_eq!(inspect(tmp.path()).unwrap(), DataDirState::Unknown { entries: vec![".touch".into()] });
        let tmp = tempdir();
        fs::create_dir(tmp.path().join(".touch")).unwrap();
        assert_eq!(inspect(tmp.path()).unwrap(), DataDirState::Unknown { entries: vec![".touch".into()] });
    }

    #[test]
    fn archives_only_are_empty() {
        let tmp = tempdir();
        fs::create_dir(tmp.path().join("member.removed-1700000000")).unwrap();
        fs::create_dir(tmp.path().join("member.removed-1700000000-1")).unwrap();
        fs::create_dir(tmp.path().join("lost+found")).unwrap();
        assert_eq!(inspect(tmp.path()).unwrap(), DataDirState::Empty);
    }

    #[test]
    fn member_with_wal_is_member_with_its_ids() {
        let tmp = tempdir();
        write_member(tmp.path(), &wal(NODE, CLUSTER));
        fs::create_dir(tmp.path().join("lost+found")).unwrap();
        assert_eq!(inspect(tmp.path()).unwrap(), DataDirState::Member(meta()));
    }

    #[test]
    fn a_large_wal_with_the_metadata_past_the_first_read_is_read_whole() {
        // A first record larger than the first read: the rest of the file is read.
        let tmp = tempdir();
        let big = vec![7u8; WAL_PREFIX_BYTES as usize + 100];
        let big_crc = crc32c_update(0, &big);
        let meta_bytes = metadata(NODE, CLUSTER);
        let mut bytes = frame(&record(3, big_crc, &big));
        bytes.extend(frame(&record(1, crc32c_update(big_crc, &meta_bytes), &meta_bytes)));
        write_member(tmp.path(), &bytes);
        assert_eq!(inspect(tmp.path()).unwrap(), DataDirState::Member(meta()));
    }

    #[test]
    fn the_first_wal_file_by_name_is_read() {
        let tmp = tempdir();
        let wal_dir = tmp.path().join("member").join("wal");
        fs::create_dir_all(&wal_dir).unwrap();
        // Created first, named later: garbage that must not be read.
        fs::write(wal_dir.join("0000000000000002-0000000000000100.wal"), b"garbage").unwrap();
        fs::write(wal_dir.join("0000000000000001-0000000000000050.wal"), wal(NODE, CLUSTER)).unwrap();
        fs::write(wal_dir.join("0.tmp"), b"preallocated").unwrap();
        assert_eq!(inspect(tmp.path()).unwrap(), DataDirState::Member(meta()));
    }

    #[test]
    fn member_without_wal_dir_is_empty() {
        let tmp = tempdir();
        fs::create_dir_all(tmp.path().join("member").join("snap")).unwrap();
        fs::create_dir_all(tmp.path().join("member").join("wal.tmp")).unwrap();
        assert_eq!(inspect(tmp.path()).unwrap(), DataDirState::Empty);
        assert!(tmp.path().join("member").join("snap").is_dir(), "nothing is deleted");
    }

    #[test]
    fn member_with_no_wal_file_is_empty() {
        let tmp = tempdir();
        let wal_dir = tmp.path().join("member").join("wal");
        fs::create_dir_all(&wal_dir).unwrap();
        fs::write(wal_dir.join("0.tmp"), [0u8; 16]).unwrap();
        assert_eq!(inspect(tmp.path()).unwrap(), DataDirState::Empty);
    }

    #[test]
    fn another_entry_is_unknown() {
        let tmp = tempdir();
        fs::write(tmp.path().join("foo.txt"), b"hello").unwrap();
        fs::create_dir(tmp.path().join("lost+found")).unwrap();
        let want = DataDirState::Unknown { entries: vec!["foo.txt".into()] };
        assert_eq!(inspect(tmp.path()).unwrap(), want);
    }

    #[test]
    fn other_entries_next_to_member_are_unknown_and_sorted() {
        let tmp = tempdir();
        write_member(tmp.path(), b"not read: the data dir is refused first");
        fs::write(tmp.path().join("foo.txt"), b"hello").unwrap();
        fs::create_dir(tmp.path().join("backup")).unwrap();
        fs::create_dir(tmp.path().join("member.removed-5")).unwrap();
        let want = DataDirState::Unknown { entries: vec!["backup".into(), "foo.txt".into()] };
        assert_eq!(inspect(tmp.path()).unwrap(), want);
    }

    #[test]
    fn a_member_file_that_is_not_a_directory_is_unknown() {
        let tmp = tempdir();
        fs::write(tmp.path().join("member"), b"a file").unwrap();
        let want = DataDirState::Unknown { entries: vec!["member".into()] };
        assert_eq!(inspect(tmp.path()).unwrap(), want);
    }

    #[test]
    fn a_file_instead_of_a_dir_is_an_error() {
        let tmp = tempdir();
        let path = tmp.path().join("data");
        fs::write(&path, b"x").unwrap();
        let err = inspect(&path).unwrap_err();
        assert!(matches!(err, Error::DataDir { .. }), "{err:?}");
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }

    #[test]
    fn a_dangling_symlink_is_an_error() {
        let tmp = tempdir();
        let path = tmp.path().join("data");
        std::os::unix::fs::symlink(tmp.path().join("gone"), &path).unwrap();
        let err = inspect(&path).unwrap_err();
        assert!(err.to_string().contains("symbolic link to a missing target"), "{err}");
    }

    #[test]
    fn a_corrupt_wal_is_a_wal_error_naming_the_file() {
        let tmp = tempdir();
        let mut bytes = wal(NODE, CLUSTER);
        bytes.truncate(20);
        let path = write_member(tmp.path(), &bytes);
        let err = inspect(tmp.path()).unwrap_err();
        match &err {
            Error::Wal { path: p, .. } => assert_eq!(p, &path),
            other => panic!("want a wal error, got {other:?}"),
        }
        assert!(err.to_string().contains("0000000000000000-0000000000000000.wal"), "{err}");
    }

    #[test]
    fn permission_errors_name_the_path_and_the_fix() {
        let err = access_error(
            Path::new("/var/lib/etcd"),
            "list member/wal",
            io::Error::from(ErrorKind::PermissionDenied),
        );
        let text = err.to_string();
        assert!(text.starts_with("data dir /var/lib/etcd: cannot list member/wal:"), "{text}");
        assert!(text.contains("fsGroup"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    /// Environment variable that tells [`unreadable_probe_as_another_user`] where to look.
    const PROBE_ENV: &str = "DATADIR_UNREADABLE_PROBE_ROOT";

    /// Three data dirs, each unreadable in a different place (mode 000).
    fn make_unreadable(root: &Path) {
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
        let top = root.join("top");
        write_member(&top, &wal(NODE, CLUSTER));
        let wal_dir = root.join("waldir");
        write_member(&wal_dir, &wal(NODE, CLUSTER));
        let file = root.join("walfile");
        let wal_file = write_member(&file, &wal(NODE, CLUSTER));
        for p in [&top, &wal_dir.join("member").join("wal"), &wal_file] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o000)).unwrap();
        }
    }

    /// Undo [`make_unreadable`]'s modes.
    fn restore_modes(root: &Path) {
        let wal_file = |d: &str| root.join(d).join("member/wal/0000000000000000-0000000000000000.wal");
        let _ = fs::set_permissions(root.join("top"), fs::Permissions::from_mode(0o755));
        let _ = fs::set_permissions(root.join("waldir/member/wal"), fs::Permissions::from_mode(0o755));
        let _ = fs::set_permissions(wal_file("walfile"), fs::Permissions::from_mode(0o644));
    }

    /// The assertions on the data dirs of [`make_unreadable`]; needs a user that mode 000 stops.
    fn check_unreadable(root: &Path) {
        for (dir, what) in [
            ("top", "cannot list it"),
            ("waldir", "cannot list member/wal"),
            ("walfile", "cannot read member/wal/0000000000000000-0000000000000000.wal"),
        ] {
            let err = inspect(&root.join(dir)).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Error::DataDir { .. }), "{dir}: {err:?}");
            assert!(text.contains(what), "{dir}: {text}");
            assert!(text.contains("permission denied"), "{dir}: {text}");
            assert!(text.contains("fsGroup"), "{dir}: {text}");
        }
    }

    #[test]
    fn unreadable_dirs_are_errors_that_name_the_path_and_the_fix() {
        let tmp = tempdir();
        make_unreadable(tmp.path());
        let privileged = fs::read_dir(tmp.path().join("top")).is_ok();
        if !privileged {
            let result = std::panic::catch_unwind(|| check_unreadable(tmp.path()));
            restore_modes(tmp.path()); // so the temp dir can be removed
            if let Err(panic) = result {
                std::panic::resume_unwind(panic);
            }
            return;
        }
        // Mode 000 does not stop root (CAP_DAC_OVERRIDE): run the check as `nobody`, in a copy
        // of this test binary, so the real permission-denied paths are exercised.
        if !nix::unistd::geteuid().is_root() {
            skipped("privileged without being root, cannot drop");
            return;
        }
        // A copy of this test binary in a directory nobody can reach: the checkout itself may
        // sit in a directory only root can enter (a `mktemp -d` clone is 0700).
        use std::os::unix::fs::PermissionsExt;
        let bin_dir = tempdir();
        fs::set_permissions(bin_dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let exe = bin_dir.path().join("probe");
        fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        let test = "observe::datadir::tests::unreadable_probe_as_another_user";
        let out = std::process::Command::new(&exe)
            .args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"])
            .env(PROBE_ENV, tmp.path())
            .uid(65534)
            .gid(65534)
            .output();
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                skipped(&format!("cannot run {} as nobody: {e}", exe.display()));
                return;
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "probe as nobody failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "probe did not run:\n{stdout}\n{stderr}");
    }

    /// A skip, on stderr and in `$TEST_SKIP_LOG` (which the test command counts).
    fn skipped(why: &str) {
        use std::io::Write;
        let line = format!("SKIPPED unreadable_dirs_are_errors_that_name_the_path_and_the_fix: {why}");
        eprintln!("{line}");
        if let Some(path) = std::env::var_os("TEST_SKIP_LOG") {
            let file = fs::OpenOptions::new().create(true).append(true).open(path);
            file.and_then(|mut f| writeln!(f, "{line}")).expect("record the skip");
        }
    }

    #[test]
    #[ignore = "helper: run as an unprivileged user by unreadable_dirs_are_errors_that_name_the_path_and_the_fix"]
    fn unreadable_probe_as_another_user() {
        match std::env::var_os(PROBE_ENV) {
            Some(root) => check_unreadable(Path::new(&root)),
            None => eprintln!("nothing to do: {PROBE_ENV} is set by the unreadable dirs test"),
        }
    }

    // ---- check_writable ----

    #[test]
    fn check_writable_accepts_a_missing_dir_under_a_writable_parent() {
        let tmp = tempdir();
        assert!(check_writable(&tmp.path().join("data").join("deeper")).is_ok());
    }

    #[test]
    fn check_writable_accepts_a_member_data_dir() {
        let tmp = tempdir();
        write_member(tmp.path(), &wal(NODE, CLUSTER));
        assert!(check_writable(tmp.path()).is_ok());
    }

    #[test]
    fn check_writable_rejects_a_data_dir_below_a_file() {
        let tmp = tempdir();
        fs::write(tmp.path().join("file"), b"x").unwrap();
        let err = check_writable(&tmp.path().join("file").join("data")).unwrap_err();
        assert!(matches!(err, Error::DataDir { .. }), "{err:?}");
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn check_writable_rejects_a_read_only_dir_for_an_unprivileged_user() {
        let tmp = tempdir();
        let data = tmp.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o555)).unwrap();
        let result = check_writable(&data);
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        if nix::unistd::geteuid().is_root() {
            // Root writes anyway (access(2) agrees); the integration suite runs this as nobody.
            assert!(result.is_ok(), "{result:?}");
            return;
        }
        let text = result.unwrap_err().to_string();
        assert!(text.contains("cannot write it: permission denied"), "{text}");
    }

    #[test]
    fn read_only_file_system_errors_name_the_fix() {
        let err = access_error(Path::new("/d"), "write it", io::Error::from_raw_os_error(30));
        assert!(err.to_string().contains("mount the volume read-write"), "{err}");
    }
}
