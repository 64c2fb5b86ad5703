//! Moving a data dir's `member/` aside (a STALE member's data, or the data a restore replaces):
//! renamed inside the data dir, never deleted, never overwriting an earlier archive. The one
//! write to the data dir besides etcd's own and a restore's; `observe::datadir` reads archives
//! (by [`ARCHIVE_PREFIX`]) as ours, not data.
//!
//! It sits in a layer of its own below `backup` (see `LAYERS` in `lib.rs`): a restore archives
//! the member data it replaces.

use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::observe::datadir::{access_error, ARCHIVE_PREFIX, MEMBER};

/// A data dir error with a problem text.
fn data_dir_error(dir: &Path, problem: &str) -> Error {
    Error::DataDir { path: dir.to_path_buf(), problem: problem.to_string() }
}

/// How many `-N` suffixes are tried before giving up on finding a free archive name.
const MAX_ARCHIVE_SUFFIX: u32 = 1000;

/// Move `<dir>/member` to `<dir>/member.removed-<unix_time>`; returns the new path.
///
/// The archive stays in the data dir (usually a volume's mount point, which cannot be renamed),
/// so the rename is atomic. An existing archive name is never overwritten: `-1`, `-2`... are
/// appended. The data dir is fsynced after the rename so the move survives a crash.
pub(crate) fn archive_member(dir: &Path, unix_time: u64) -> Result<PathBuf> {
    let from = dir.join(MEMBER);
    match fs::symlink_metadata(&from) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(data_dir_error(dir, "has no member/ to archive: nothing to move aside"));
        }
        Err(e) => return Err(access_error(dir, "look at member/", e)),
    }
    for suffix in 0..MAX_ARCHIVE_SUFFIX {
        let name = archive_name(unix_time, suffix);
        let to = dir.join(&name);
        match rename_no_replace(&from, &to) {
            Ok(()) => {
                sync_dir(dir, &name)?;
                return Ok(to);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(access_error(dir, &format!("move member/ to {name}"), e)),
        }
    }
    Err(data_dir_error(
        dir,
        &format!(
            "cannot archive member/: {} and {MAX_ARCHIVE_SUFFIX} suffixed names are taken; \
             move old archives out of the data dir",
            archive_name(unix_time, 0)
        ),
    ))
}

/// `member.removed-<unix_time>`, then `member.removed-<unix_time>-<suffix>`.
fn archive_name(unix_time: u64, suffix: u32) -> String {
    match suffix {
        0 => format!("{ARCHIVE_PREFIX}{unix_time}"),
        n => format!("{ARCHIVE_PREFIX}{unix_time}-{n}"),
    }
}

/// Rename `from` to `to`, failing with `AlreadyExists` when `to` exists (a plain rename would
/// replace an empty directory or a file there).
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::errno::Errno;
        use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
        match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => return Ok(()),
            // The file system does not support the flag: fall back to check, then rename.
            Err(Errno::EINVAL | Errno::ENOSYS) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Without RENAME_NOREPLACE there is a window between the check and the rename; nothing else
    // writes to the data dir while the bootstrap runs (it is PID 1, before etcd starts).
    if fs::symlink_metadata(to).is_ok() {
        return Err(io::Error::from(ErrorKind::AlreadyExists));
    }
    fs::rename(from, to)
}

/// fsync the data dir so a rename in it is durable.
fn sync_dir(dir: &Path, archived_as: &str) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| {
        let action =
            format!("fsync after moving member/ to {archived_as} (the move may not survive a crash)");
        access_error(dir, &action, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::datadir::inspect;
    use crate::observed::DataDirState;

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    /// Some member data: a file in `member/wal`.
    const DATA: &[u8] = b"a member's write-ahead log";

    fn write_member(dir: &Path) {
        fs::create_dir_all(dir.join("member").join("wal")).unwrap();
        fs::write(dir.join("member").join("wal").join("0000000000000000-0000000000000000.wal"), DATA)
            .unwrap();
    }

    #[test]
    fn archive_moves_member_aside_and_the_dir_reads_empty() {
        let tmp = tempdir();
        write_member(tmp.path());
        let to = archive_member(tmp.path(), 1_700_000_000).unwrap();
        assert_eq!(to, tmp.path().join("member.removed-1700000000"));
        assert!(!tmp.path().join("member").exists());
        let kept = to.join("wal").join("0000000000000000-0000000000000000.wal");
        assert_eq!(fs::read(kept).unwrap(), DATA, "data kept as it was");
        assert_eq!(inspect(tmp.path()).unwrap(), DataDirState::Empty);
    }

    #[test]
    fn archive_name_collisions_get_a_suffix_and_nothing_is_overwritten() {
        let tmp = tempdir();
        // An empty directory and a file: a plain rename would replace either.
        fs::create_dir(tmp.path().join("member.removed-42")).unwrap();
        fs::write(tmp.path().join("member.removed-42-1"), b"keep me").unwrap();
        write_member(tmp.path());
        let to = archive_member(tmp.path(), 42).unwrap();
        assert_eq!(to, tmp.path().join("member.removed-42-2"));
        assert!(to.join("wal").is_dir());
        assert_eq!(fs::read_dir(tmp.path().join("member.removed-42")).unwrap().count(), 0);
        assert_eq!(fs::read(tmp.path().join("member.removed-42-1")).unwrap(), b"keep me");
        // A second archive with the same time takes the next free name.
        write_member(tmp.path());
        assert_eq!(archive_member(tmp.path(), 42).unwrap(), tmp.path().join("member.removed-42-3"));
    }

    #[test]
    fn archive_without_member_is_an_error() {
        let tmp = tempdir();
        let err = archive_member(tmp.path(), 1).unwrap_err();
        assert!(err.to_string().contains("has no member/ to archive"), "{err}");
    }
}
