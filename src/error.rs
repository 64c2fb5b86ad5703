//! The one error type of etcd-bootstrap, and the exit code each error maps to.
//!
//! Messages are lowercase, one line, and name what is wrong and how to fix it.

use std::path::PathBuf;

/// Exit codes, documented in the README. Kept here so every path agrees.
pub mod exit {
    /// Configuration error: a bad flag, variable, hostname or resolv.conf.
    pub const CONFIG: u8 = 2;
    /// The data directory cannot be used (not a directory, unreadable, corrupt WAL).
    pub const DATA_DIR: u8 = 3;
    /// REFUSE: the data directory holds something that is not this cluster's member data.
    pub const REFUSED: u8 = 4;
    /// A WAIT did not end before `--wait-timeout`.
    pub const WAIT_TIMEOUT: u8 = 5;
    /// A membership call to etcd failed in a way that retrying inside the deadline did not fix.
    pub const CLUSTER: u8 = 6;
    /// The process could not set itself up: the async runtime, the signal handlers, or the
    /// sidecar's listening socket (a port in use).
    pub const RUNTIME: u8 = 7;
    /// A backup store could not be used: unreachable, credentials refused, snapshot not found.
    pub const STORE: u8 = 8;
    /// A snapshot failed a check (truncated, corrupted, manifest and data disagree): nothing
    /// was published or restored.
    pub const SNAPSHOT: u8 = 9;
    /// The etcd binary exists but could not be executed.
    pub const EXEC_NOT_EXECUTABLE: u8 = 126;
    /// The etcd binary was not found.
    pub const EXEC_NOT_FOUND: u8 = 127;
    /// Stopped by SIGINT (128 + 2).
    pub const SIGINT: u8 = 130;
    /// Stopped by SIGTERM (128 + 15).
    pub const SIGTERM: u8 = 143;
}

/// Every failure etcd-bootstrap reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is malformed or contradicts another one.
    #[error("{0}")]
    Config(String),

    /// The pod name does not end in `-<ordinal>`.
    #[error("pod name {name:?} {problem}: a StatefulSet pod is named <set>-<ordinal> (for example etcd-0); set --name or POD_NAME")]
    PodName { name: String, problem: String },

    /// The same etcd setting was given twice (flag and variable), which etcd refuses.
    #[error("etcd setting --{flag} is given both as a flag and as {var}: etcd refuses to start on that; keep one of them")]
    DuplicateEtcdSetting { flag: String, var: String },

    /// The data directory path is not usable.
    #[error("data dir {path}: {problem}")]
    DataDir { path: PathBuf, problem: String },

    /// A WAL file could not be read as etcd's WAL.
    #[error("wal {path}: {problem}; the data dir may be damaged: inspect it, or move it aside to start this member empty")]
    Wal { path: PathBuf, problem: String },

    /// The decision was REFUSE.
    #[error("refusing to start: {0}")]
    Refused(String),

    /// A WAIT reached `--wait-timeout`.
    #[error("gave up after {waited_secs}s: {reason}")]
    WaitTimeout { waited_secs: u64, reason: String },

    /// A DNS setting or lookup failed in a way that is not "not yet".
    #[error("dns: {0}")]
    Dns(String),

    /// A call to the etcd API failed.
    #[error("etcd api {call} at {endpoint}: {message}")]
    Cluster { call: String, endpoint: String, message: String },

    /// A file named by a setting (TLS files, the password file) cannot be read.
    #[error("cannot read {}: {}", path.display(), lowercase_first(&source.to_string()))]
    Io { path: PathBuf, source: std::io::Error },

    /// The etcd binary could not be executed.
    #[error("cannot exec {path}: {problem}")]
    Exec { path: PathBuf, problem: String, code: u8 },

    /// The process could not set itself up (runtime, signal handlers, a listening socket).
    #[error("{0}")]
    Runtime(String),

    /// A backup store could not be used.
    #[error("store {url}: {message}{}", problem.hint())]
    Store { url: String, problem: StoreProblem, message: String },

    /// A snapshot failed a check; it was neither published nor restored.
    #[error("snapshot {snapshot} {problem}")]
    Snapshot { snapshot: String, problem: String },

    /// A termination signal arrived while waiting.
    #[error("stopped by {name} while {doing}")]
    Signalled { name: &'static str, code: u8, doing: String },
}

impl Error {
    /// The documented process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::PodName { .. } | Error::DuplicateEtcdSetting { .. } => exit::CONFIG,
            Error::Dns(_) => exit::CONFIG,
            // Io is a file a setting names (TLS, password): a configuration error, not the data dir.
            Error::Io { .. } => exit::CONFIG,
            Error::DataDir { .. } | Error::Wal { .. } => exit::DATA_DIR,
            Error::Refused(_) => exit::REFUSED,
            Error::WaitTimeout { .. } => exit::WAIT_TIMEOUT,
            Error::Cluster { .. } => exit::CLUSTER,
            Error::Runtime(_) => exit::RUNTIME,
            Error::Store { .. } => exit::STORE,
            Error::Snapshot { .. } => exit::SNAPSHOT,
            Error::Exec { code, .. } => *code,
            Error::Signalled { code, .. } => *code,
        }
    }

    /// Shorthand for a configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config(message.into())
    }

    /// Shorthand for an I/O error on a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

/// What kind of store failure it is, for the hint the message ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreProblem {
    /// No answer: wrong endpoint, network, missing directory or bucket.
    Unreachable,
    /// The store refused the credentials.
    Credentials,
    /// The object asked for does not exist (the message says which).
    NotFound,
    /// Anything else.
    Other,
}

impl StoreProblem {
    fn hint(&self) -> &'static str {
        match self {
            StoreProblem::Unreachable => {
                "; check the URL, the bucket, --s3-endpoint (or AWS_ENDPOINT_URL) and the network"
            }
            StoreProblem::Credentials => {
                "; the store refused the credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the credentials file) and their rights on the bucket"
            }
            StoreProblem::NotFound | StoreProblem::Other => "",
        }
    }
}

/// `text` with its first letter lowercased (io errors read "No such file or directory").
pub fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_settings_file_is_a_config_error_not_a_data_dir_error() {
        // Regression: a missing --auth-password-file or TLS file exited 3 ("the data dir cannot
        // be used") with an uppercase io message.
        let err = Error::io("/secrets/pw", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(err.exit_code(), exit::CONFIG);
        let text = err.to_string();
        assert!(text.starts_with("cannot read /secrets/pw: "), "{text}");
        assert!(!text.contains("Entity") && !text.contains("No such"), "lowercase: {text}");
    }
}
