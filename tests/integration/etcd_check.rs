//! What a user checks of a cluster, from outside the pods: health, members, keys; over plain HTTP
//! or with TLS and auth. Every wait polls with a deadline.

use std::time::{Duration, Instant};

use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};

use crate::bed::{pod_fqdn, Bed};

/// A member as the test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenMember {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// TLS material (PEM) and credentials the checker uses.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// CA, client certificate, client key.
    pub tls: Option<(String, String, String)>,
    pub auth: Option<(String, String)>,
}

/// Talks to the pods of a bed the way a user's client would.
pub struct Checker<'a> {
    bed: &'a Bed,
    security: Security,
}

impl<'a> Checker<'a> {
    pub fn new(bed: &'a Bed, security: Security) -> Self {
        Checker { bed, security }
    }

    pub fn plain(bed: &'a Bed) -> Self {
        Checker { bed, security: Security::default() }
    }

    /// A client of one pod (short timeouts: a dead pod must not stall a poll).
    pub async fn client(&self, ordinal: u32) -> Option<Client> {
        let scheme = if self.security.tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}:2379", self.bed.pod_ip(ordinal));
        let mut options = ConnectOptions::new()
            .with_timeout(Duration::from_secs(3))
            .with_connect_timeout(Duration::from_secs(2));
        if let Some((ca, cert, key)) = &self.security.tls {
            let tls = TlsOptions::new()
                .domain_name(pod_fqdn(ordinal))
                .ca_certificate(Certificate::from_pem(ca))
                .identity(Identity::from_pem(cert, key));
            options = options.with_tls(tls);
        }
        if let Some((user, password)) = &self.security.auth {
            options = options.with_user(user.clone(), password.clone());
        }
        let connecting = Client::connect([url], Some(options));
        tokio::time::timeout(Duration::from_secs(5), connecting).await.ok()?.ok()
    }

    /// A client of the first of `ordinals` that connects.
    pub async fn any_client(&self, ordinals: &[u32]) -> Option<Client> {
        for &o in ordinals {
            if let Some(c) = self.client(o).await {
                return Some(c);
            }
        }
        None
    }

    /// One pod's member list, if it answers, has a leader and serves a linearizable read.
    pub async fn healthy_view(&self, ordinal: u32) -> Result<Vec<SeenMember>, String> {
        let mut c = self.client(ordinal).await.ok_or("connect failed")?;
        let status = c.status().await.map_err(|e| format!("status: {e}"))?;
        if status.leader() == 0 {
            return Err("no leader".into());
        }
        c.get("health-probe", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(|e| format!("linearizable get: {e}"))?;
        let list = c.member_list().await.map_err(|e| format!("member list: {e}"))?;
        Ok(list.members().iter().map(seen).collect())
    }

    /// The member list as one of `ordinals` reports it (any answer, learners included).
    pub async fn members(&self, ordinals: &[u32]) -> Result<Vec<SeenMember>, String> {
        let mut c = self.any_client(ordinals).await.ok_or("no pod connects")?;
        let list = c.member_list().await.map_err(|e| format!("member list: {e}"))?;
        Ok(list.members().iter().map(seen).collect())
    }

    /// Poll until every pod in `ordinals` is healthy and reports exactly `ordinals` as started
    /// voting members named by pod name.
    pub async fn wait_healthy(&self, ordinals: &[u32], timeout: Duration) -> Vec<SeenMember> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.check_once(ordinals).await {
                Ok(members) => return members,
                Err(problem) => last = problem,
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        panic!(
            "cluster of pods {ordinals:?} not healthy within {timeout:?}: {last}\n{}",
            bed_logs(self.bed, ordinals)
        );
    }

    async fn check_once(&self, ordinals: &[u32]) -> Result<Vec<SeenMember>, String> {
        let mut want: Vec<String> = ordinals.iter().map(|o| format!("etcd-{o}")).collect();
        want.sort();
        let mut first: Option<Vec<SeenMember>> = None;
        for &o in ordinals {
            let members = self.healthy_view(o).await.map_err(|e| format!("etcd-{o}: {e}"))?;
            let mut names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
            names.sort();
            if names != want {
                return Err(format!("etcd-{o} lists members {names:?}, want {want:?}"));
            }
            if let Some(m) = members.iter().find(|m| m.is_learner) {
                return Err(format!("{} is still a learner", m.name));
            }
            first.get_or_insert(members);
        }
        first.ok_or_else(|| "no pods given".into())
    }

    /// Write `count` keys `prefix/i = v-i` (linearizable puts, each acknowledged).
    pub async fn put_keys(&self, ordinals: &[u32], prefix: &str, count: usize) {
        let mut c = self.any_client(ordinals).await.expect("connect for puts");
        for i in 0..count {
            c.put(format!("{prefix}/{i}"), format!("v-{i}"), None).await.expect("acknowledged put");
        }
    }

    /// Every key written by `put_keys` is readable from `ordinal`'s own data (serializable).
    pub async fn assert_keys_on(&self, ordinal: u32, prefix: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut want: Vec<(String, String)> =
            (0..count).map(|i| (format!("{prefix}/{i}"), format!("v-{i}"))).collect();
        want.sort();
        loop {
            let problem = match self.read_keys(ordinal, prefix).await {
                Ok(mut got) => {
                    got.sort();
                    if got == want {
                        return;
                    }
                    format!("etcd-{ordinal} has {} of {count} keys under {prefix}", got.len())
                }
                Err(e) => format!("etcd-{ordinal}: cannot read keys: {e}"),
            };
            if Instant::now() >= deadline {
                panic!("{problem}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn read_keys(&self, ordinal: u32, prefix: &str) -> Result<Vec<(String, String)>, String> {
        let mut c = self.client(ordinal).await.ok_or("connect failed")?;
        let options = GetOptions::new().with_prefix().with_serializable();
        let resp = c.get(format!("{prefix}/"), Some(options)).await.map_err(|e| e.to_string())?;
        Ok(resp
            .kvs()
            .iter()
            .map(|kv| (kv.key_str().unwrap_or("").to_string(), kv.value_str().unwrap_or("").to_string()))
            .collect())
    }
}

fn seen(m: &etcd_client::Member) -> SeenMember {
    SeenMember {
        id: m.id(),
        name: m.name().to_string(),
        peer_urls: m.peer_urls().to_vec(),
        client_urls: m.client_urls().to_vec(),
        is_learner: m.is_learner(),
    }
}

/// See [`Checker::wait_healthy`] (plain HTTP, no auth).
pub async fn wait_healthy(bed: &Bed, ordinals: &[u32], timeout: Duration) -> Vec<SeenMember> {
    Checker::plain(bed).wait_healthy(ordinals, timeout).await
}

/// See [`Checker::put_keys`].
pub async fn put_keys(bed: &Bed, ordinals: &[u32], prefix: &str, count: usize) {
    Checker::plain(bed).put_keys(ordinals, prefix, count).await
}

/// See [`Checker::assert_keys_on`].
pub async fn assert_keys_on(bed: &Bed, ordinal: u32, prefix: &str, count: usize) {
    Checker::plain(bed).assert_keys_on(ordinal, prefix, count).await
}

/// All logs of the given pods, for failure messages.
pub fn bed_logs(bed: &Bed, ordinals: &[u32]) -> String {
    ordinals.iter().map(|o| format!("--- etcd-{o} ---\n{}\n", bed.logs(*o))).collect()
}
