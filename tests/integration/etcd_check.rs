//! What a user checks of a cluster, from outside the pods: health, members, keys. Every wait polls
//! with a deadline.

use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};

use crate::bed::Bed;

/// A member as the test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenMember {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// Connect to the given pods' client URLs (short timeouts: a dead pod must not stall a poll).
pub async fn client(bed: &Bed, ordinals: &[u32]) -> Option<Client> {
    let urls: Vec<String> = ordinals.iter().map(|o| bed.client_url(*o)).collect();
    let options = ConnectOptions::new()
        .with_timeout(Duration::from_secs(3))
        .with_connect_timeout(Duration::from_secs(2));
    Client::connect(urls, Some(options)).await.ok()
}

/// One pod's view: its member list, if it answers and has a leader.
async fn healthy_view(bed: &Bed, ordinal: u32) -> Result<Vec<SeenMember>, String> {
    let mut c = client(bed, &[ordinal]).await.ok_or("connect failed")?;
    let status = c.status().await.map_err(|e| format!("status: {e}"))?;
    if status.leader() == 0 {
        return Err("no leader".into());
    }
    // A linearizable read proves this member is part of a quorum right now.
    c.get("health-probe", Some(GetOptions::new().with_count_only()))
        .await
        .map_err(|e| format!("linearizable get: {e}"))?;
    let list = c.member_list().await.map_err(|e| format!("member list: {e}"))?;
    Ok(list
        .members()
        .iter()
        .map(|m| SeenMember {
            id: m.id(),
            name: m.name().to_string(),
            peer_urls: m.peer_urls().to_vec(),
            client_urls: m.client_urls().to_vec(),
            is_learner: m.is_learner(),
        })
        .collect())
}

/// Poll until every pod in `ordinals` is healthy and reports exactly `ordinals` as started voting
/// members named by pod name. Returns the member list; panics with the last problem on timeout.
pub async fn wait_healthy(bed: &Bed, ordinals: &[u32], timeout: Duration) -> Vec<SeenMember> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match check_once(bed, ordinals).await {
            Ok(members) => return members,
            Err(problem) => last = problem,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!(
        "cluster of pods {ordinals:?} not healthy within {timeout:?}: {last}\n{}",
        bed_logs(bed, ordinals)
    );
}

async fn check_once(bed: &Bed, ordinals: &[u32]) -> Result<Vec<SeenMember>, String> {
    let mut first: Option<Vec<SeenMember>> = None;
    for &o in ordinals {
        let members = healthy_view(bed, o).await.map_err(|e| format!("etcd-{o}: {e}"))?;
        let mut names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
        names.sort();
        let mut want: Vec<String> = ordinals.iter().map(|o| format!("etcd-{o}")).collect();
        want.sort();
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

/// All logs of the given pods, for failure messages.
pub fn bed_logs(bed: &Bed, ordinals: &[u32]) -> String {
    ordinals.iter().map(|o| format!("--- etcd-{o} ---\n{}\n", bed.logs(*o))).collect()
}

/// Write `count` keys `prefix/i = v-i` through the given pods (linearizable puts, acknowledged).
pub async fn put_keys(bed: &Bed, ordinals: &[u32], prefix: &str, count: usize) {
    let mut c = client(bed, ordinals).await.expect("connect for puts");
    for i in 0..count {
        c.put(format!("{prefix}/{i}"), format!("v-{i}"), None).await.expect("acknowledged put");
    }
}

/// Assert every key written by `put_keys` is readable from `ordinal` itself (serializable read from
/// that member's own data, so the test proves that member has the data).
pub async fn assert_keys_on(bed: &Bed, ordinal: u32, prefix: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = read_keys(bed, ordinal, prefix).await;
        let want: Vec<(String, String)> =
            (0..count).map(|i| (format!("{prefix}/{i}"), format!("v-{i}"))).collect();
        match got {
            Ok(mut got) => {
                got.sort();
                let mut want = want.clone();
                want.sort();
                if got == want {
                    return;
                }
                if Instant::now() >= deadline {
                    panic!("etcd-{ordinal} has {} of {count} keys under {prefix}", got.len());
                }
            }
            Err(e) if Instant::now() >= deadline => panic!("etcd-{ordinal}: cannot read keys: {e}"),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn read_keys(bed: &Bed, ordinal: u32, prefix: &str) -> Result<Vec<(String, String)>, String> {
    let mut c = client(bed, &[ordinal]).await.ok_or("connect failed")?;
    let options = GetOptions::new().with_prefix().with_serializable();
    let resp = c.get(format!("{prefix}/"), Some(options)).await.map_err(|e| e.to_string())?;
    Ok(resp
        .kvs()
        .iter()
        .map(|kv| (kv.key_str().unwrap_or("").to_string(), kv.value_str().unwrap_or("").to_string()))
        .collect())
}
