//! etcd's own settings, read once from the flags after `--` and from etcd's `ETCD_*` variables,
//! and the argv and environment the bootstrap execs etcd with.
//!
//! Rules: a setting is stated once (flag or variable, never both: etcd 3.5 refuses to start);
//! the bootstrap adds only flags the user did not set, never a flag that shadows an `ETCD_*`
//! variable, and removes its own `ETCD_BOOTSTRAP_*` variables.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::decide::StartMode;
use crate::error::{Error, Result};

/// Prefix of the bootstrap's own variables, stripped before exec.
pub(crate) const OWN_ENV_PREFIX: &str = "ETCD_BOOTSTRAP_";

/// Default data dir when neither the bootstrap nor etcd is told one.
pub(crate) const DEFAULT_DATA_DIR: &str = "/var/lib/etcd";

/// etcd flags that take no separate value (Go boolean flags): `--flag value` does not consume
/// `value` for these. Everything else takes the next argument as its value, as Go's flag package
/// does.
const BOOL_FLAGS: &[&str] = &[
    "auto-tls",
    "client-cert-auth",
    "debug",
    "enable-distributed-tracing",
    "enable-grpc-gateway",
    "enable-log-rotation",
    "enable-pprof",
    "enable-v2",
    "experimental-enable-distributed-tracing",
    "experimental-enable-lease-checkpoint",
    "experimental-enable-lease-checkpoint-persist",
    "experimental-initial-corrupt-check",
    "experimental-memory-mlock",
    "experimental-peer-skip-client-san-verification",
    "experimental-txn-mode-write-with-shared-buffer",
    "experimental-stop-grpc-service-on-defrag",
    "force-new-cluster",
    "help",
    "memory-mlock",
    "peer-auto-tls",
    "peer-client-cert-auth",
    "peer-skip-client-san-verification",
    "pre-vote",
    "socket-reuse-address",
    "socket-reuse-port",
    "strict-reconfig-check",
    "unsafe-no-fsync",
    "version",
];

/// What etcd 3.6 and 3.7 did to a flag of 3.5 (etcd's upgrade guides "Upgrade etcd from v3.5 to
/// v3.6" and "from v3.6 to v3.7", CHANGELOG-3.6 and CHANGELOG-3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagFate {
    /// Deprecated in 3.6 for a flag of the new name (added in 3.6), removed in 3.7.
    Renamed(&'static str),
    /// Deprecated in 3.6 for this `--feature-gates` entry (`--feature-gates=NAME=true`, added in
    /// 3.6), removed in 3.7.
    FeatureGate(&'static str),
    /// Deprecated in 3.6 for a flag of the new name, and not (yet) removed.
    RenamedKept(&'static str),
    /// Removed in 3.6 with nothing in its place: the v2 API and the v2 proxy.
    RemovedV2,
}

/// Every 3.5 flag etcd 3.6 or 3.7 renamed, turned into a feature gate or removed. Each row is a
/// test citing its source.
pub(crate) const FLAG_FATES: &[(&str, FlagFate)] = &[
    (
        "experimental-bootstrap-defrag-threshold-megabytes",
        FlagFate::Renamed("bootstrap-defrag-threshold-megabytes"),
    ),
    ("experimental-compaction-batch-limit", FlagFate::Renamed("compaction-batch-limit")),
    ("experimental-compact-hash-check-time", FlagFate::Renamed("compact-hash-check-time")),
    ("experimental-compaction-sleep-interval", FlagFate::Renamed("compaction-sleep-interval")),
    ("experimental-corrupt-check-time", FlagFate::Renamed("corrupt-check-time")),
    ("experimental-enable-distributed-tracing", FlagFate::Renamed("enable-distributed-tracing")),
    ("experimental-distributed-tracing-address", FlagFate::Renamed("distributed-tracing-address")),
    ("experimental-distributed-tracing-instance-id", FlagFate::Renamed("distributed-tracing-instance-id")),
    (
        "experimental-distributed-tracing-sampling-rate",
        FlagFate::Renamed("distributed-tracing-sampling-rate"),
    ),
    ("experimental-distributed-tracing-service-name", FlagFate::Renamed("distributed-tracing-service-name")),
    ("experimental-downgrade-check-time", FlagFate::Renamed("downgrade-check-time")),
    ("experimental-max-learners", FlagFate::RenamedKept("max-learners")),
    ("experimental-memory-mlock", FlagFate::Renamed("memory-mlock")),
    (
        "experimental-peer-skip-client-san-verification",
        FlagFate::Renamed("peer-skip-client-san-verification"),
    ),
    ("experimental-snapshot-catchup-entries", FlagFate::Renamed("snapshot-catchup-entries")),
    ("experimental-warning-apply-duration", FlagFate::Renamed("warning-apply-duration")),
    ("experimental-warning-unary-request-duration", FlagFate::Renamed("warning-unary-request-duration")),
    ("experimental-watch-progress-notify-interval", FlagFate::Renamed("watch-progress-notify-interval")),
    ("experimental-compact-hash-check-enabled", FlagFate::FeatureGate("CompactHashCheck")),
    ("experimental-initial-corrupt-check", FlagFate::FeatureGate("InitialCorruptCheck")),
    ("experimental-enable-lease-checkpoint", FlagFate::FeatureGate("LeaseCheckpoint")),
    ("experimental-enable-lease-checkpoint-persist", FlagFate::FeatureGate("LeaseCheckpointPersist")),
    ("experimental-stop-grpc-service-on-defrag", FlagFate::FeatureGate("StopGRPCServiceOnDefrag")),
    ("experimental-txn-mode-write-with-shared-buffer", FlagFate::FeatureGate("TxnModeWriteWithSharedBuffer")),
    ("enable-v2", FlagFate::RemovedV2),
    ("experimental-enable-v2v3", FlagFate::RemovedV2),
    ("proxy", FlagFate::RemovedV2),
    ("proxy-failure-wait", FlagFate::RemovedV2),
    ("proxy-refresh-interval", FlagFate::RemovedV2),
    ("proxy-dial-timeout", FlagFate::RemovedV2),
    ("proxy-write-timeout", FlagFate::RemovedV2),
    ("proxy-read-timeout", FlagFate::RemovedV2),
];

/// Flags etcd added in 3.6 besides the new names above: an older etcd refuses them.
const ADDED_IN_36: &[&str] = &["feature-gates"];

/// The user's etcd settings against the etcd release that will run them: a setting that release
/// refuses ("flag provided but not defined") is an error naming what to write instead, before
/// anything is changed or exec'd; a deprecated one is a warning (returned, for the log).
pub(crate) fn check_release(user: &UserSettings, release: crate::observed::Release) -> Result<Vec<String>> {
    let line = release.minor_line();
    let mut warnings = Vec::new();
    let given = |flag: &str| user.is_set(flag).then(|| format!("--{flag} ({})", env_name(flag)));
    for (flag, fate) in FLAG_FATES {
        if let Some(setting) = given(flag) {
            let instead = match fate {
                FlagFate::Renamed(new) | FlagFate::RenamedKept(new) => format!("--{new}"),
                FlagFate::FeatureGate(gate) => {
                    format!("--feature-gates={gate}=true (or =false, as the old flag was set)")
                }
                FlagFate::RemovedV2 => {
                    "nothing: migrate the v2 data and drop it (etcd's v2 migration guide)".to_string()
                }
            };
            let removed = match fate {
                FlagFate::RemovedV2 => Some((3, 6)),
                FlagFate::Renamed(_) | FlagFate::FeatureGate(_) => Some((3, 7)),
                FlagFate::RenamedKept(_) => None,
            };
            if removed.is_some_and(|r| line >= r) {
                return Err(Error::config(format!(
                    "etcd {release} refuses {setting}: it was removed (etcd's upgrade guide to {}.{}); use {instead}",
                    removed.map_or(0, |r| r.0),
                    removed.map_or(0, |r| r.1)
                )));
            }
            if line >= (3, 6) {
                warnings.push(format!(
                    "{setting} is deprecated in etcd {}.{} and refused from 3.7 on: use {instead}",
                    release.major, release.minor
                ));
            }
        }
        let new_name = match fate {
            FlagFate::Renamed(new) | FlagFate::RenamedKept(new) => Some(*new),
            FlagFate::FeatureGate(_) | FlagFate::RemovedV2 => None,
        };
        if let Some(setting) = new_name.and_then(&given).filter(|_| line < (3, 6)) {
            return Err(Error::config(format!(
                "etcd {release} refuses {setting}: the name comes with etcd 3.6; with {release} write --{flag}"
            )));
        }
    }
    for flag in ADDED_IN_36 {
        if let Some(setting) = given(flag).filter(|_| line < (3, 6)) {
            return Err(Error::config(format!(
                "etcd {release} refuses {setting}: it comes with etcd 3.6; with {release} use the --experimental-* flags"
            )));
        }
    }
    Ok(warnings)
}

/// Flags the bootstrap decides itself; a user value would defeat it.
const MANAGED_FLAGS: &[&str] = &["initial-cluster", "initial-cluster-state", "discovery", "discovery-srv"];

/// One flag the user gave etcd, as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserFlag {
    /// Flag name without dashes.
    pub name: String,
    /// Its value; `None` for a bare boolean flag.
    pub value: Option<String>,
}

/// etcd's quota when `--quota-backend-bytes` is unset or 0.
pub(crate) const DEFAULT_QUOTA: u64 = 2 * 1024 * 1024 * 1024;

/// etcd's quota from its own setting (`--quota-backend-bytes` / `ETCD_QUOTA_BACKEND_BYTES`):
/// unset or 0 is etcd's default; a negative value switches etcd's quota off (no limit).
pub(crate) fn quota_from(setting: Option<&str>) -> Result<u64, String> {
    match setting.map(str::trim) {
        None | Some("") => Ok(DEFAULT_QUOTA),
        Some(text) => match text.parse::<i64>() {
            Ok(0) => Ok(DEFAULT_QUOTA),
            Ok(n) if n > 0 => Ok(n.unsigned_abs()),
            Ok(_) => Ok(u64::MAX),
            Err(_) => Err(format!(
                "etcd's --quota-backend-bytes {text:?} is not a number of bytes: give one such as 8589934592 (8 GiB), or leave it unset for etcd's 2 GiB"
            )),
        },
    }
}

/// The `ETCD_*` variable that corresponds to an etcd flag.
pub(crate) fn env_name(flag: &str) -> String {
    format!("ETCD_{}", flag.to_ascii_uppercase().replace('-', "_"))
}

/// Parse etcd flags as Go's flag package does: `--f=v`, `-f=v`, `--f v`, `-f v`, bare booleans.
pub(crate) fn parse_flags(args: &[String]) -> Result<Vec<UserFlag>> {
    let mut flags = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(Error::config(format!(
                "etcd argument {arg:?} is not a flag: etcd takes no positional arguments; write flags as --name=value after --"
            )));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if name.is_empty() || name.starts_with('-') {
            return Err(Error::config(format!("etcd argument {arg:?} is not a valid flag")));
        }
        let value = match inline {
            Some(v) => Some(v),
            None if BOOL_FLAGS.contains(&name) => None,
            None => Some(iter.next().cloned().ok_or_else(|| {
                Error::config(format!("etcd flag --{name} needs a value: write --{name}=VALUE"))
            })?),
        };
        flags.push(UserFlag { name: name.to_string(), value });
    }
    Ok(flags)
}

/// The user's etcd settings: flags and `ETCD_*` variables together, checked for conflicts.
#[derive(Debug, Clone)]
pub struct UserSettings {
    flags: Vec<UserFlag>,
    raw_flags: Vec<String>,
    env: BTreeMap<String, String>,
}

impl UserSettings {
    /// Read the flags after `--` and the process environment `env`.
    pub fn new(raw_flags: &[String], env: &BTreeMap<String, String>) -> Result<Self> {
        let flags = parse_flags(raw_flags)?;
        let mut seen = std::collections::BTreeSet::new();
        for flag in &flags {
            if !seen.insert(flag.name.as_str()) {
                return Err(Error::config(format!(
                    "etcd flag --{} is given twice after --: give it once",
                    flag.name
                )));
            }
            let var = env_name(&flag.name);
            if env.contains_key(&var) {
                return Err(Error::DuplicateEtcdSetting { flag: flag.name.clone(), var });
            }
        }
        let settings = UserSettings { flags, raw_flags: raw_flags.to_vec(), env: env.clone() };
        for managed in MANAGED_FLAGS {
            if settings.is_set(managed) {
                return Err(Error::config(format!(
                    "etcd setting --{managed} ({}) is decided by etcd-bootstrap: remove it",
                    env_name(managed)
                )));
            }
        }
        Ok(settings)
    }

    /// The value of an etcd setting, from its flag or its variable.
    pub fn get(&self, name: &str) -> Option<String> {
        self.flags
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.clone().unwrap_or_else(|| "true".into()))
            .or_else(|| self.env.get(&env_name(name)).cloned())
    }

    /// Whether the user set this etcd setting (flag or variable).
    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A boolean etcd setting (`--client-cert-auth`, `ETCD_AUTO_TLS=true`).
    pub fn is_true(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    }

    /// The user's flags as given, passed to etcd unchanged.
    pub fn raw_flags(&self) -> &[String] {
        &self.raw_flags
    }

    /// Peer URLs use https when etcd has peer TLS files (or peer auto TLS).
    pub fn peer_tls(&self) -> bool {
        self.is_set("peer-cert-file") || self.is_true("peer-auto-tls")
    }

    /// Client URLs use https when etcd has client TLS files (or auto TLS).
    pub fn client_tls(&self) -> bool {
        self.is_set("cert-file") || self.is_true("auto-tls")
    }

    /// The client TLS files the bootstrap uses for its own API calls.
    pub fn client_tls_files(&self) -> ClientTlsFiles {
        ClientTlsFiles {
            ca: self.get("trusted-ca-file").map(PathBuf::from),
            cert: self.get("cert-file").map(PathBuf::from),
            key: self.get("key-file").map(PathBuf::from),
        }
    }

    /// The data dir: the bootstrap's `--data-dir` and etcd's own setting must agree if both are set.
    pub fn data_dir(&self, bootstrap_value: Option<&PathBuf>) -> Result<PathBuf> {
        match (self.get("data-dir"), bootstrap_value) {
            (Some(etcd), Some(ours)) if std::path::Path::new(&etcd) != ours.as_path() => {
                Err(Error::config(format!(
                    "--data-dir {} differs from etcd's data dir {etcd}: set it in one place",
                    ours.display()
                )))
            }
            (Some(etcd), _) => Ok(PathBuf::from(etcd)),
            (None, Some(ours)) => Ok(ours.clone()),
            (None, None) => Ok(PathBuf::from(DEFAULT_DATA_DIR)),
        }
    }

    /// The environment etcd gets: ours minus the bootstrap's own variables.
    pub fn exec_env(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .filter(|(k, _)| !k.starts_with(OWN_ENV_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Client TLS files for the bootstrap's API calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// What the argv builder needs about this member.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub name: String,
    pub data_dir: PathBuf,
    pub peer_url: String,
    pub client_url: String,
    pub peer_port: u16,
    pub client_port: u16,
}

/// The flags etcd-bootstrap adds to the user's flags, in order, skipping what the user set.
pub(crate) fn derived_flags(user: &UserSettings, member: &MemberSpec, mode: &StartMode) -> Vec<String> {
    let peer_scheme = if user.peer_tls() { "https" } else { "http" };
    let client_scheme = if user.client_tls() { "https" } else { "http" };
    let mut wanted: Vec<(&str, String)> = vec![
        ("name", member.name.clone()),
        ("data-dir", member.data_dir.display().to_string()),
        ("listen-peer-urls", format!("{peer_scheme}://0.0.0.0:{}", member.peer_port)),
        ("listen-client-urls", format!("{client_scheme}://0.0.0.0:{}", member.client_port)),
        ("initial-advertise-peer-urls", member.peer_url.clone()),
        ("advertise-client-urls", member.client_url.clone()),
    ];
    let (cluster, state, token) = match mode {
        StartMode::Existing => (None, None, None),
        StartMode::New { initial_cluster, token } => (Some(initial_cluster), Some("new"), Some(token)),
        StartMode::Join { initial_cluster, token } => (Some(initial_cluster), Some("existing"), Some(token)),
    };
    if let Some(cluster) = cluster {
        let joined: Vec<String> = cluster.iter().map(|(n, u)| format!("{n}={u}")).collect();
        wanted.push(("initial-cluster", joined.join(",")));
    }
    if let Some(state) = state {
        wanted.push(("initial-cluster-state", state.to_string()));
    }
    if let Some(token) = token {
        wanted.push(("initial-cluster-token", token.clone()));
    }
    wanted
        .into_iter()
        .filter(|(name, _)| !user.is_set(name))
        .map(|(name, value)| format!("--{name}={value}"))
        .collect()
}

/// The full argv (without the program) etcd is exec'd with: derived flags, then the user's.
pub(crate) fn argv(user: &UserSettings, member: &MemberSpec, mode: &StartMode) -> Vec<String> {
    let mut args = derived_flags(user, member, mode);
    args.extend(user.raw_flags().iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn member() -> MemberSpec {
        MemberSpec {
            name: "etcd-1".into(),
            data_dir: "/var/lib/etcd".into(),
            peer_url: "http://etcd-1.etcd:2380".into(),
            client_url: "http://etcd-1.etcd:2379".into(),
            peer_port: 2380,
            client_port: 2379,
        }
    }

    /// Each row of the table as a user would meet it, with its source: etcd's "Upgrade etcd from
    /// v3.5 to v3.6" ("Flags deprecated", "Flags removed"), "Upgrade etcd from v3.6 to v3.7"
    /// ("Flags removed": every deprecated --experimental-* flag, etcd-io/etcd#19959), and 3.6's
    /// feature-gates page (--feature-gates).
    #[test]
    fn each_renamed_gated_or_removed_flag_meets_each_release_as_etcd_would() {
        use crate::observed::Release;
        let (r35, r36, r37) = (Release::new(3, 5, 30), Release::new(3, 6, 14), Release::new(3, 7, 1));
        for (flag, fate) in FLAG_FATES {
            let user = UserSettings::new(&strings(&[&format!("--{flag}=1")]), &env(&[])).expect("parses");
            let as_var = UserSettings::new(&[], &env(&[(&env_name(flag), "1")])).expect("parses");
            for u in [&user, &as_var] {
                let (on35, on36, on37) =
                    (check_release(u, r35), check_release(u, r36), check_release(u, r37));
                match fate {
                    // Removed in 3.6 (upgrade guide 3.6, "Flags removed").
                    FlagFate::RemovedV2 => {
                        assert_eq!(on35.as_ref().map(Vec::len).ok(), Some(0), "{flag} on 3.5");
                        let err = on36.expect_err(flag).to_string();
                        assert!(err.contains("refuses") && err.contains(flag), "{err}");
                        assert!(on37.is_err(), "{flag} on 3.7");
                    }
                    // Deprecated in 3.6 (upgrade guide 3.6, "Flags deprecated"); removed in 3.7
                    // (upgrade guide 3.7, "Flags removed").
                    FlagFate::Renamed(new) | FlagFate::FeatureGate(new) => {
                        assert_eq!(on35.as_ref().map(Vec::len).ok(), Some(0), "{flag} on 3.5");
                        let warned = on36.expect("3.6 still takes it");
                        assert!(warned.len() == 1 && warned[0].contains(new), "{flag}: {warned:?}");
                        let err = on37.expect_err(flag).to_string();
                        assert!(err.contains("etcd 3.7.1 refuses") && err.contains(new), "{err}");
                        assert!(err.contains(&env_name(flag)), "names the variable too: {err}");
                    }
                    // Deprecated in 3.6, not in 3.7's list of removed flags.
                    FlagFate::RenamedKept(new) => {
                        assert!(on36.expect("3.6").iter().any(|w| w.contains(new)));
                        assert!(on37.is_ok(), "{flag} on 3.7");
                    }
                }
            }
            // The new names and --feature-gates come with 3.6: etcd 3.5 refuses them.
            if let FlagFate::Renamed(new) | FlagFate::RenamedKept(new) = fate {
                let user = UserSettings::new(&strings(&[&format!("--{new}=1")]), &env(&[])).expect("parses");
                assert!(check_release(&user, r35).is_err(), "--{new} on 3.5");
                assert_eq!(check_release(&user, r37).map(|w| w.len()).ok(), Some(0), "--{new} on 3.7");
            }
        }
        let gates =
            UserSettings::new(&strings(&["--feature-gates=InitialCorruptCheck=true"]), &env(&[])).unwrap();
        assert!(check_release(&gates, r35).unwrap_err().to_string().contains("etcd 3.6"));
        assert_eq!(check_release(&gates, r36).map(|w| w.len()).ok(), Some(0));
        assert_eq!(check_release(&gates, r37).map(|w| w.len()).ok(), Some(0));
        // The 3.7 guide's list, whole: the renamed and gated rows are exactly its 23 flags.
        let removed_in_37 = FLAG_FATES
            .iter()
            .filter(|(_, f)| matches!(f, FlagFate::Renamed(_) | FlagFate::FeatureGate(_)))
            .count();
        assert_eq!(removed_in_37, 23);
    }

    #[test]
    fn the_new_boolean_flags_take_no_separate_value() {
        for flag in ["enable-distributed-tracing", "memory-mlock", "peer-skip-client-san-verification"] {
            let parsed = parse_flags(&strings(&[&format!("--{flag}"), "--name=a"])).expect("parses");
            assert_eq!(parsed.len(), 2, "--{flag}: {parsed:?}");
        }
    }

    #[test]
    fn parses_go_flag_forms() {
        let flags = parse_flags(&strings(&["--a=1", "-b=2", "--c", "3", "-d", "4", "--debug", "--e="]))
            .expect("parses");
        let got: Vec<(String, Option<String>)> = flags.into_iter().map(|f| (f.name, f.value)).collect();
        let want = [
            ("a", Some("1")),
            ("b", Some("2")),
            ("c", Some("3")),
            ("d", Some("4")),
            ("debug", None),
            ("e", Some("")),
        ];
        let want: Vec<(String, Option<String>)> =
            want.iter().map(|(n, v)| (n.to_string(), v.map(str::to_string))).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rejects_positional_and_missing_values() {
        assert!(parse_flags(&strings(&["etcd"])).is_err());
        assert!(parse_flags(&strings(&["--data-dir"])).is_err());
        assert!(parse_flags(&strings(&["---x=1"])).is_err());
    }

    #[test]
    fn flag_and_variable_for_one_setting_is_an_error() {
        let err = UserSettings::new(&strings(&["--data-dir=/d"]), &env(&[("ETCD_DATA_DIR", "/d")]))
            .expect_err("duplicate");
        assert!(matches!(err, Error::DuplicateEtcdSetting { .. }), "{err}");
        assert!(err.to_string().contains("ETCD_DATA_DIR"));
    }

    #[test]
    fn managed_settings_are_refused() {
        assert!(UserSettings::new(&strings(&["--initial-cluster=a=http://a:2380"]), &env(&[])).is_err());
        assert!(UserSettings::new(&[], &env(&[("ETCD_INITIAL_CLUSTER_STATE", "new")])).is_err());
    }

    #[test]
    fn settings_come_from_flags_or_variables() {
        let user = UserSettings::new(
            &strings(&["--cert-file=/tls/c.pem", "--client-cert-auth"]),
            &env(&[("ETCD_PEER_CERT_FILE", "/tls/p.pem"), ("ETCD_TRUSTED_CA_FILE", "/tls/ca.pem")]),
        )
        .expect("valid");
        assert!(user.client_tls());
        assert!(user.peer_tls());
        assert!(user.is_true("client-cert-auth"));
        assert_eq!(user.client_tls_files().ca, Some(PathBuf::from("/tls/ca.pem")));
    }

    #[test]
    fn data_dir_from_either_place_but_not_conflicting() {
        let from_env = UserSettings::new(&[], &env(&[("ETCD_DATA_DIR", "/e")])).expect("valid");
        assert_eq!(from_env.data_dir(None).expect("ok"), PathBuf::from("/e"));
        assert!(from_env.data_dir(Some(&PathBuf::from("/other"))).is_err());
        let none = UserSettings::new(&[], &env(&[])).expect("valid");
        assert_eq!(none.data_dir(None).expect("ok"), PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn never_passes_a_flag_the_user_set_by_variable() {
        let user = UserSettings::new(
            &strings(&["--listen-client-urls=http://127.0.0.1:2379"]),
            &env(&[("ETCD_DATA_DIR", "/d")]),
        )
        .expect("valid");
        let args = argv(&user, &member(), &StartMode::Existing);
        assert!(!args.iter().any(|a| a.starts_with("--data-dir")), "{args:?}");
        assert_eq!(args.iter().filter(|a| a.starts_with("--listen-client-urls")).count(), 1, "{args:?}");
        assert!(args.contains(&"--name=etcd-1".to_string()));
        assert!(!args.iter().any(|a| a.starts_with("--initial-cluster")), "{args:?}");
    }

    #[test]
    fn new_and_join_carry_the_initial_cluster() {
        let user = UserSettings::new(&[], &env(&[])).expect("valid");
        let cluster = vec![
            ("etcd-0".to_string(), "http://e0:2380".to_string()),
            ("etcd-1".to_string(), "http://e1:2380".to_string()),
        ];
        let new =
            argv(&user, &member(), &StartMode::New { initial_cluster: cluster.clone(), token: "t".into() });
        assert!(new.contains(&"--initial-cluster=etcd-0=http://e0:2380,etcd-1=http://e1:2380".to_string()));
        assert!(new.contains(&"--initial-cluster-state=new".to_string()));
        assert!(new.contains(&"--initial-cluster-token=t".to_string()));
        let join = argv(&user, &member(), &StartMode::Join { initial_cluster: cluster, token: "t".into() });
        assert!(join.contains(&"--initial-cluster-state=existing".to_string()));
    }

    #[test]
    fn tls_makes_urls_https_and_own_variables_are_stripped() {
        let user = UserSettings::new(
            &strings(&["--peer-cert-file=/p.pem", "--cert-file=/c.pem"]),
            &env(&[("ETCD_BOOTSTRAP_NAME", "etcd-1"), ("ETCD_LOG_LEVEL", "info")]),
        )
        .expect("valid");
        let args = argv(&user, &member(), &StartMode::Existing);
        assert!(args.contains(&"--listen-peer-urls=https://0.0.0.0:2380".to_string()));
        assert!(args.contains(&"--listen-client-urls=https://0.0.0.0:2379".to_string()));
        let env = user.exec_env();
        assert_eq!(env, vec![("ETCD_LOG_LEVEL".to_string(), "info".to_string())]);
    }
}

/// Property tests: the reader of etcd's flags (outside input after `--`) never panics, reads back
/// what it is given in Go's forms, and the argv never states a setting twice.
#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;

    /// A flag name as etcd spells them (no '=', not starting with '-').
    fn flag_name() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9-]{0,30}"
    }

    /// Settings the bootstrap derives itself, so a user value must win over ours.
    const DERIVED: &[&str] = &[
        "name",
        "data-dir",
        "listen-peer-urls",
        "listen-client-urls",
        "initial-advertise-peer-urls",
        "advertise-client-urls",
        "initial-cluster-token",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parse_flags_never_panics(args in proptest::collection::vec(any::<String>(), 0..8)) {
            let _ = parse_flags(&args);
        }

        #[test]
        fn parse_flags_never_panics_on_flag_like_args(
            args in proptest::collection::vec("-{0,3}[a-z-]{0,8}(=[a-z=-]{0,5})?", 0..8),
        ) {
            let _ = parse_flags(&args);
        }

        #[test]
        fn equals_forms_parse_back_exactly(
            flags in proptest::collection::vec((flag_name(), any::<String>(), any::<bool>()), 0..8),
        ) {
            let args: Vec<String> = flags
                .iter()
                .map(|(k, v, single)| format!("{}{k}={v}", if *single { "-" } else { "--" }))
                .collect();
            let parsed = parse_flags(&args).expect("--k=v always parses");
            let want: Vec<UserFlag> =
                flags.into_iter().map(|(name, v, _)| UserFlag { name, value: Some(v) }).collect();
            prop_assert_eq!(parsed, want);
        }

        #[test]
        fn separate_value_forms_parse_back_exactly(
            flags in proptest::collection::vec((flag_name(), any::<String>()), 0..8),
        ) {
            let mut args = Vec::new();
            let mut want = Vec::new();
            for (name, value) in flags {
                if BOOL_FLAGS.contains(&name.as_str()) {
                    args.push(format!("--{name}"));
                    want.push(UserFlag { name, value: None });
                } else {
                    // Go's flag package takes the next argument as the value, whatever it is.
                    args.push(format!("--{name}"));
                    args.push(value.clone());
                    want.push(UserFlag { name, value: Some(value) });
                }
            }
            prop_assert_eq!(parse_flags(&args).expect("parses"), want);
        }

        #[test]
        fn argv_states_each_derived_setting_once(
            choices in proptest::collection::vec(0u8..3, DERIVED.len()),
            new in any::<bool>(),
        ) {
            // For each derived setting: 0 = not set, 1 = a flag after --, 2 = an ETCD_* variable.
            let mut raw = Vec::new();
            let mut env = BTreeMap::new();
            for (name, choice) in DERIVED.iter().zip(&choices) {
                match choice {
                    1 => raw.push(format!("--{name}=user")),
                    2 => { env.insert(env_name(name), "user".to_string()); }
                    _ => {}
                }
            }
            let user = UserSettings::new(&raw, &env).expect("no conflicts were generated");
            let member = MemberSpec {
                name: "etcd-0".into(),
                data_dir: "/d".into(),
                peer_url: "http://etcd-0:2380".into(),
                client_url: "http://etcd-0:2379".into(),
                peer_port: 2380,
                client_port: 2379,
            };
            let mode = if new {
                StartMode::New { initial_cluster: vec![("etcd-0".into(), "http://etcd-0:2380".into())], token: "t".into() }
            } else {
                StartMode::Existing
            };
            let args = argv(&user, &member, &mode);
            for (name, choice) in DERIVED.iter().zip(&choices) {
                let count = args.iter().filter(|a| a.starts_with(&format!("--{name}="))).count();
                let want = match choice {
                    2 => 0,
                    1 => 1,
                    _ if *name == "initial-cluster-token" && !new => 0,
                    _ => 1,
                };
                prop_assert_eq!(count, want, "{} (choice {}) in {:?}", name, choice, args);
            }
        }
    }
}
