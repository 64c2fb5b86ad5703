//! Everything `run`, `plan` and `sidecar` need, resolved once from the command line, the
//! environment, the hostname and resolv.conf (side effects passed in by the caller).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::backup_args::StoreOptions;
use crate::config::Common;
use crate::decide::{DecisionSettings, Launch, Me};
use crate::error::{Error, Result};
use crate::etcd_args::{MemberSpec, UserSettings};
use crate::identity::{self, Identity};
use crate::observe::cluster::Access;
use crate::observe::dns::Resolver;
use crate::observe::peer_members::{PeerAccess, PeerTlsFiles};
use crate::observe::peers::ScanSettings;
use crate::observe::Sources;
use crate::observed::{static_member_id, LocalEtcd};

/// What the process sees of its surroundings, gathered by `main`.
#[derive(Debug, Clone, Default)]
pub struct Surroundings {
    pub env: BTreeMap<String, String>,
    pub hostname: Option<String>,
    /// Contents of /etc/resolv.conf, when readable.
    pub resolv_conf: Option<String>,
}

/// How a run reaches the world, made once at resolve: the DNS resolver, and the access material
/// (scheme, TLS, credentials) of etcd's client and peer ports.
pub struct Clients {
    pub resolver: Arc<Resolver>,
    pub access: Access,
    /// How to reach peers' peer ports (`GET /members`), with etcd's peer TLS files.
    pub peer_access: PeerAccess,
}

/// What a run reads of its environment besides its settings.
pub struct Environment {
    /// `PATH`, to find a bare `etcd`.
    pub path_var: Option<String>,
    /// The variables a store reads (`AWS_*`, `HOME`), never logged.
    pub store_env: BTreeMap<String, String>,
}

/// One run, resolved once and never changed after: its settings, its clients and what it read
/// of its environment.
pub struct Context {
    pub identity: Identity,
    pub namespace: String,
    pub service: String,
    pub me: Me,
    pub settings: DecisionSettings,
    pub user: UserSettings,
    pub member: MemberSpec,
    pub token: String,
    pub scan: ScanSettings,
    pub wait_timeout: Duration,
    pub probe_timeout: Duration,
    /// The etcd binary as given (`--etcd-binary`, else `etcd`); `act::exec::locate` finds it.
    pub etcd_binary: PathBuf,
    /// The static initial cluster of a NEW start: every initial pod by name and peer URL.
    pub initial_cluster: Vec<(String, String)>,
    /// `--restore-from` and where its replay stops (run and plan only).
    pub restore: Option<RestoreAsk>,
    /// This pod's etcd version (run and plan only; set by the command: `observe::local_etcd`).
    pub etcd_version: LocalEtcd,
    /// Backup store settings.
    pub store: StoreOptions,
    pub clients: Clients,
    pub env: Environment,
}

/// `--restore-from SNAPSHOT-URL`, and where the replay of its delta segments stops
/// (`--restore-to-revision`, `--restore-to-time`; neither: the newest point its chain reaches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreAsk {
    pub from: String,
    pub to_revision: Option<i64>,
    /// Milliseconds since the epoch.
    pub to_time_ms: Option<u64>,
}

impl Context {
    /// Resolve the settings; every bad input fails here, before anything is touched. Nothing
    /// changes a context after this: `restore` is the command's `--restore-from` (run and
    /// plan), `None` for the sidecar.
    pub fn resolve(
        common: &Common,
        etcd_flags: &[String],
        restore: Option<RestoreAsk>,
        env: &Surroundings,
    ) -> Result<Self> {
        common.validate()?;
        let user = UserSettings::new(etcd_flags, &env.env)?;
        let identity_parts = IdentityParts::resolve(common, env)?;
        let identity = identity_parts.identity;
        if let Some(name) = user.get("name") {
            if name != identity.pod_name {
                return Err(Error::config(format!(
                    "etcd --name {name:?} differs from the pod name {:?}: remove --name (ETCD_NAME), the member name is the pod name",
                    identity.pod_name
                )));
            }
        }
        let data_dir = user.data_dir(common.data_dir.as_ref())?;
        let peer_scheme = if user.peer_tls() { "https" } else { "http" };
        let client_scheme = if user.client_tls() { "https" } else { "http" };
        let own_host = identity.own_host();
        let peer_url = first_url(&user, "initial-advertise-peer-urls")
            .unwrap_or_else(|| format!("{peer_scheme}://{own_host}:{}", common.peer_port));
        let client_url = first_url(&user, "advertise-client-urls")
            .unwrap_or_else(|| format!("{client_scheme}://{own_host}:{}", common.client_port));
        let peer_access = PeerAccess::load(user.peer_tls(), &PeerTlsFiles::from_etcd(&user))?;
        let access = Access::load(
            user.client_tls(),
            &user.client_tls_files(),
            common.auth_user.as_deref(),
            common.auth_password_file.as_deref(),
        )?;
        let resolver = Arc::new(resolver(common, env)?);
        let token = common
            .initial_cluster_token
            .clone()
            .or_else(|| user.get("initial-cluster-token"))
            .unwrap_or_else(|| {
                format!("etcd-bootstrap-{}-{}", identity_parts.namespace, identity_parts.service)
            });
        let etcd_binary = common.etcd_binary.clone().unwrap_or_else(|| PathBuf::from("etcd"));
        let initial_cluster =
            initial_cluster(&identity, common.initial_cluster_size, peer_scheme, common.peer_port);
        Ok(Context {
            me: Me {
                name: identity.pod_name.clone(),
                ordinal: identity.ordinal,
                static_id: static_member_id(std::slice::from_ref(&peer_url), &token),
                peer_url: peer_url.clone(),
            },
            settings: DecisionSettings {
                initial_cluster_size: common.initial_cluster_size,
                join_as: common.join_as,
            },
            member: MemberSpec {
                name: identity.pod_name.clone(),
                data_dir,
                peer_url,
                client_url,
                peer_port: common.peer_port,
                client_port: common.client_port,
            },
            scan: ScanSettings {
                initial_cluster_size: common.initial_cluster_size,
                client_port: common.client_port,
                peer_port_name: common.peer_port_name.clone(),
                client_scheme,
            },
            namespace: identity_parts.namespace,
            service: identity_parts.service,
            identity,
            user,
            token,
            clients: Clients { resolver, access, peer_access },
            wait_timeout: common.wait_timeout,
            probe_timeout: common.probe_timeout,
            etcd_binary: etcd_binary.clone(),
            initial_cluster,
            restore,
            // `etcd --version` of the binary this pod would exec, looked at once here.
            etcd_version: crate::observe::local_etcd::version(
                &etcd_binary,
                env.env.get("PATH").map(String::as_str),
            ),
            store: common.store.clone(),
            env: Environment {
                path_var: env.env.get("PATH").cloned(),
                store_env: env
                    .env
                    .iter()
                    .filter(|(k, _)| k.starts_with("AWS_") || k.as_str() == "HOME")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
        })
    }

    /// Where one round looks.
    pub fn sources(&self) -> Sources<'_> {
        Sources {
            data_dir: &self.member.data_dir,
            resolver: &self.clients.resolver,
            identity: &self.identity,
            scan: &self.scan,
            access: &self.clients.access,
            peer_access: &self.clients.peer_access,
            peer_port: self.member.peer_port,
            me: &self.me,
            probe_timeout: self.probe_timeout,
            // The restore policy reads quorum from the client port's answers: with
            // `--restore-from` set, wait for them even where a peer port settled the rest.
            every_client_answer: self.restore.is_some(),
            etcd_version: &self.etcd_version,
        }
    }

    /// What a start mode depends on besides the decision (see `decide::start_mode`).
    pub fn launch(&self) -> Launch<'_> {
        Launch {
            me: &self.me,
            identity: &self.identity,
            initial_cluster: &self.initial_cluster,
            token: &self.token,
        }
    }
}

/// The static initial cluster of a NEW start: every initial pod by name and peer URL.
fn initial_cluster(identity: &Identity, size: u32, scheme: &str, peer_port: u16) -> Vec<(String, String)> {
    (0..size)
        .map(|ordinal| {
            let name = identity::host_name(&identity.set_name, ordinal, "");
            (name, format!("{scheme}://{}:{peer_port}", identity.peer_host(ordinal)))
        })
        .collect()
}

fn first_url(user: &UserSettings, name: &str) -> Option<String> {
    user.get(name).and_then(|v| v.split(',').next().map(str::trim).map(str::to_string))
}

struct IdentityParts {
    identity: Identity,
    namespace: String,
    service: String,
}

impl IdentityParts {
    fn resolve(common: &Common, env: &Surroundings) -> Result<Self> {
        let pod_name = common
            .name
            .clone()
            .or_else(|| env.env.get("POD_NAME").filter(|v| !v.is_empty()).cloned())
            .or_else(|| env.hostname.clone())
            .ok_or_else(|| {
                Error::config("no pod name: the hostname is unreadable; set --name or POD_NAME")
            })?;
        let (set_name, ordinal) = identity::split_pod_name(&pod_name)?;
        let searched = env.resolv_conf.as_deref().and_then(identity::from_search_list);
        let namespace = common
            .namespace
            .clone()
            .or_else(|| env.env.get("POD_NAMESPACE").filter(|v| !v.is_empty()).cloned())
            .or_else(|| searched.as_ref().map(|(ns, _)| ns.clone()))
            .unwrap_or_else(|| "default".into());
        let cluster_domain = common
            .cluster_domain
            .clone()
            .or_else(|| searched.as_ref().map(|(_, d)| d.clone()))
            .unwrap_or_else(|| "cluster.local".into());
        let service = common.service.clone().unwrap_or_else(|| set_name.clone());
        for (what, value) in [("--namespace", &namespace), ("--service", &service)] {
            if !is_dns_label(value) {
                return Err(Error::config(format!(
                    "{what} {value:?} is not a DNS label (lowercase letters, digits and '-', at most 63)"
                )));
            }
        }
        let domain = match &common.domain {
            Some(d) => d.trim_end_matches('.').to_string(),
            None => format!("{service}.{namespace}.svc.{}", cluster_domain.trim_end_matches('.')),
        };
        Ok(IdentityParts { identity: Identity { pod_name, set_name, ordinal, domain }, namespace, service })
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn resolver(common: &Common, env: &Surroundings) -> Result<Resolver> {
    match (common.dns_server, &env.resolv_conf) {
        (Some(addr), _) => Resolver::with_server(addr),
        (None, Some(text)) => Resolver::from_resolv_conf(text),
        (None, None) => Err(Error::config(
            "cannot read /etc/resolv.conf to find a nameserver: set --dns-server host:port",
        )),
    }
}
