//! Replace this process with etcd (`execve`), so etcd runs as PID 1 and no child is left behind.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::error::{exit, Error, Result};

/// Find the etcd binary: a path with a `/` as given, else searched on `path_var`.
pub(crate) fn locate(binary: &Path, path_var: Option<&str>) -> Result<PathBuf> {
    if binary.components().count() > 1 || binary.is_absolute() {
        return Ok(binary.to_path_buf());
    }
    let found = path_var
        .unwrap_or("/usr/local/bin:/usr/bin:/bin")
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(binary))
        .find(|candidate| candidate.is_file());
    found.ok_or_else(|| Error::Exec {
        path: binary.to_path_buf(),
        problem: "not found on PATH; install etcd there or set --etcd-binary".into(),
        code: exit::EXEC_NOT_FOUND,
    })
}

/// Check before acting that the binary can be exec'd, so a membership change is never made for
/// an etcd that cannot start.
pub(crate) fn check_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| exec_error(path, Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(exec_error(path, Errno::EACCES));
    }
    Ok(())
}

/// exec etcd. Returns only on failure.
pub(crate) fn exec(path: &Path, args: &[String], env: &[(String, String)]) -> Error {
    let Ok(program) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return exec_error(path, Errno::EINVAL);
    };
    let argv: Result<Vec<CString>, _> =
        std::iter::once(path.display().to_string()).chain(args.iter().cloned()).map(CString::new).collect();
    let envp: Result<Vec<CString>, _> = env.iter().map(|(k, v)| CString::new(format!("{k}={v}"))).collect();
    let (Ok(argv), Ok(envp)) = (argv, envp) else {
        return Error::config("an etcd argument or variable contains a NUL byte");
    };
    match nix::unistd::execve(&program, &argv, &envp) {
        Err(errno) => exec_error(path, errno),
        Ok(never) => match never {},
    }
}

fn exec_error(path: &Path, errno: Errno) -> Error {
    let (problem, code) = match errno {
        Errno::ENOENT => ("not found; install etcd or set --etcd-binary".to_string(), exit::EXEC_NOT_FOUND),
        Errno::EACCES => (
            "permission denied: not an executable file; check --etcd-binary and its mode".into(),
            exit::EXEC_NOT_EXECUTABLE,
        ),
        Errno::ENOEXEC => (
            "not an executable format; check --etcd-binary points to the etcd binary".into(),
            exit::EXEC_NOT_EXECUTABLE,
        ),
        other => (other.desc().to_lowercase(), exit::EXEC_NOT_EXECUTABLE),
    };
    Error::Exec { path: path.to_path_buf(), problem, code }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_is_127_and_not_executable_is_126() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing =
            locate(Path::new("etcd"), Some(dir.path().to_str().expect("utf8"))).expect_err("missing");
        assert_eq!(missing.exit_code(), 127, "{missing}");
        let file = dir.path().join("etcd");
        std::fs::write(&file, b"not a program").expect("write");
        let err = check_executable(&file).expect_err("mode 644");
        assert_eq!(err.exit_code(), 126, "{err}");
        assert_eq!(check_executable(&dir.path().join("nope")).expect_err("gone").exit_code(), 127);
    }

    #[test]
    fn path_search_finds_the_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("etcd");
        std::fs::write(&file, b"#!/bin/sh\n").expect("write");
        let path = format!("/nonexistent:{}", dir.path().display());
        assert_eq!(locate(Path::new("etcd"), Some(&path)).expect("found"), file);
        assert_eq!(locate(Path::new("/opt/etcd"), None).expect("as given"), PathBuf::from("/opt/etcd"));
    }
}
