//! The monitoring component (k8s/components/monitoring) against real Prometheus parts: the alert
//! rules pass `promtool check rules`, every alert has `promtool test rules` unit tests that make
//! it fire, and every runbook link names a section of k8s/README.md.
//!
//! promtool comes with Debian's `prometheus` package (scripts/test.sh installs it); outside CI a
//! missing promtool skips with a printed reason. `PROMTOOL=<path>` picks the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::maintenance::fill;
use crate::prereq;

fn component_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("k8s/components/monitoring")
}

fn promtool() -> String {
    std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into())
}

/// Skip (false) or, in CI, fail when a Prometheus binary is missing.
pub fn have(test: &str, program: &str) -> bool {
    let works = Command::new(program).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if works {
        return true;
    }
    let why = format!("{program} is not installed (Debian: apt-get install prometheus)");
    if prereq::in_ci() {
        panic!("{test}: prerequisite missing in CI: {why}");
    }
    prereq::skipped(test, &format!("{why} (runs in CI, or run scripts/test.sh)"));
    false
}

/// The PrometheusRule's `spec` (a Prometheus rules file: `groups:`), as JSON.
pub fn rule_groups() -> Value {
    let path = component_dir().join("prometheusrule.yaml");
    let script = "import json,sys,yaml;print(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
    let out = Command::new("python3").args(["-c", script]).arg(&path).output().expect("run python3");
    assert!(
        out.status.success(),
        "{} does not parse: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let rule: Value = serde_json::from_slice(&out.stdout).expect("JSON from python");
    assert_eq!(rule["kind"], "PrometheusRule");
    rule["spec"].clone()
}

/// Every alerting rule: (name, rule).
pub fn alerts(groups: &Value) -> Vec<(String, Value)> {
    groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["alert"].as_str().map(|name| (name.to_string(), r.clone())))
        .collect()
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// GitHub's anchor of a heading: lower case, spaces to dashes, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

#[test]
fn alert_rules_pass_promtool_and_every_alert_has_unit_tests_and_a_runbook() {
    const TEST: &str = "alert_rules_pass_promtool_and_every_alert_has_unit_tests_and_a_runbook";
    if !have(TEST, &promtool()) {
        return;
    }
    let groups = rule_groups();
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = write(dir.path(), "rules.yaml", &groups.to_string());
    let (ok, out) = run(Command::new(promtool()).args(["check", "rules"]).arg(&rules));
    assert!(ok, "promtool check rules:\n{out}");
    let alerts = alerts(&groups);
    assert!(out.contains(&format!("SUCCESS: {} rules found", alerts.len())), "{out}");

    // The checker is real: a broken expression fails it.
    let broken = groups.to_string().replacen("max by (namespace)", "max by (namespace", 1);
    let broken = write(dir.path(), "broken.yaml", &broken);
    let (ok, out) = run(Command::new(promtool()).args(["check", "rules"]).arg(&broken));
    assert!(!ok, "a broken expression must fail promtool check rules:\n{out}");

    // The unit tests, beside the extracted rules; each alert is expected to fire in one of them.
    let tests_dir = component_dir().join("tests");
    let mut tested = Vec::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&tests_dir).expect("k8s/components/monitoring/tests") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read test file");
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_string();
        files.push(write(dir.path(), &name, &text));
        // "alertname: X" followed by a non-empty exp_alerts list.
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if let Some(alert) = line.trim().strip_prefix("alertname: ") {
                let fires = lines.get(i + 1).is_some_and(|l| l.trim() == "exp_alerts:");
                if fires {
                    tested.push(alert.trim().to_string());
                }
            }
        }
    }
    assert!(!files.is_empty(), "no promtool test files in {}", tests_dir.display());
    let (ok, out) = run(Command::new(promtool()).args(["test", "rules"]).args(&files));
    assert!(ok, "promtool test rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");

    let readme = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("k8s/README.md"))
        .expect("k8s/README.md");
    let anchors: Vec<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| anchor(h.trim_start_matches('#')))
        .collect();
    for (name, rule) in &alerts {
        assert!(tested.contains(name), "{name}: no promtool unit test makes it fire");
        let runbook = rule["annotations"]["runbook_url"].as_str().unwrap_or_default();
        let section = runbook.strip_prefix("k8s/README.md#").unwrap_or_else(|| panic!("{name}: {runbook}"));
        assert!(anchors.iter().any(|a| a == section), "{name}: k8s/README.md has no section #{section}");
    }
    eprintln!("{} alerts: promtool check and unit tests pass, each with a runbook section", alerts.len());
}

/// The sidecar metric names a text mentions.
fn sidecar_metric_names(text: &str) -> Vec<String> {
    // The sidecar's own families, and those of continuous backups.
    const PREFIXES: [&str; 2] = ["etcd_bootstrap_sidecar_", "etcd_bootstrap_backup_delta_"];
    let mut names: Vec<String> = PREFIXES
        .iter()
        .flat_map(|prefix| text.match_indices(prefix))
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_rules_and_the_dashboard_name_only_metrics_the_sidecar_exports() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let exported = std::fs::read_to_string(root.join("src/sidecar/metrics.rs")).expect("metrics.rs");
    let exported: Vec<String> = sidecar_metric_names(&exported)
        .into_iter()
        .filter(|n| exported.contains(&format!("\"{n}\"")))
        .collect();
    let dashboard = std::fs::read_to_string(component_dir().join("etcd-dashboard.json")).expect("dashboard");
    let rules = rule_groups().to_string();
    for (what, text) in [("the rules", &rules), ("the dashboard", &dashboard)] {
        let used = sidecar_metric_names(text);
        assert!(!used.is_empty(), "{what} use sidecar metrics");
        for name in used {
            assert!(
                exported.contains(&name),
                "{what} use {name}, which src/sidecar/metrics.rs does not export"
            );
        }
    }
    // Every panel queries something and every query has an id, as Grafana needs.
    let parsed: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = parsed["panels"].as_array().expect("panels");
    let mut ids: Vec<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "every panel has its own id");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().unwrap_or("?");
        let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no queries");
        for t in targets {
            assert!(
                t["expr"].as_str().is_some_and(|e| e.contains("namespace=~\"$namespace\"")),
                "{title}: {t}"
            );
            assert!(t["refId"].is_string(), "{title}: refId");
        }
    }
    assert_eq!(
        dashboard_exprs().len(),
        panels.iter().map(|p| p["targets"].as_array().map_or(0, Vec::len)).sum::<usize>()
    );
}

// ---- a real Prometheus against a real cluster ----------------------------------------------

/// A Prometheus server on 127.0.0.1 with its own data dir, scraping the pods every second and
/// evaluating the component's rules (their `for:` shortened) every second. Killed on drop.
struct Prometheus {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long `for:` lasts in the test's copy of the rules: long enough that the clause is really
/// evaluated, short enough for the test.
const TEST_FOR: &str = "2s";

/// The rules with every `for:` set to [`TEST_FOR`].
fn rules_for_test() -> Value {
    let mut groups = rule_groups();
    for group in groups["groups"].as_array_mut().expect("groups") {
        for rule in group["rules"].as_array_mut().expect("rules") {
            if rule.get("for").is_some() {
                rule["for"] = Value::from(TEST_FOR);
            }
        }
    }
    groups
}

impl Prometheus {
    /// Start Prometheus scraping `targets`: (job, address, pod name).
    async fn start(targets: &[(&str, String, String)], namespace: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = write(dir.path(), "rules.yaml", &rules_for_test().to_string());
        let mut jobs: Vec<Value> = Vec::new();
        for job in ["etcd", "etcd-bootstrap-sidecar"] {
            let statics: Vec<Value> = targets
                .iter()
                .filter(|(j, _, _)| *j == job)
                .map(|(_, addr, pod)| {
                    serde_json::json!({"targets": [addr], "labels": {"namespace": namespace, "pod": pod}})
                })
                .collect();
            jobs.push(serde_json::json!({
                "job_name": job,
                "scrape_interval": "1s",
                "scrape_timeout": "900ms",
                "static_configs": statics,
            }));
        }
        let config = serde_json::json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [rules],
            "scrape_configs": jobs,
        });
        let config = write(dir.path(), "prometheus.yml", &config.to_string());
        let addr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("its address")
        };
        let log = dir.path().join("prometheus.log");
        let out = std::fs::File::create(&log).expect("prometheus log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus { child, addr, log, _dir: dir };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while prometheus.get("/-/ready").await.map(|(status, _)| status) != Some(200) {
            assert!(std::time::Instant::now() < deadline, "Prometheus not ready:\n{}", prometheus.log());
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        prometheus
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` (HTTP/1.0: the whole body, then the server closes); status and body.
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = format!("GET {path} HTTP/1.0\r\nHost: prometheus\r\n\r\n");
        let addr = self.addr;
        let text = tokio::time::timeout(std::time::Duration::from_secs(10), async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut bytes = Vec::new();
            stream.read_to_end(&mut bytes).await.ok()?;
            String::from_utf8(bytes).ok()
        })
        .await
        .ok()??;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    }

    /// An instant query: the result vector, or Prometheus's error.
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let (_, body) = self
            .get(&format!("/api/v1/query?query={}", url_encode(expr)))
            .await
            .ok_or_else(|| format!("no answer from Prometheus to {expr}"))?;
        let answer: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if answer["status"] != "success" {
            return Err(format!("{}: {}", answer["errorType"], answer["error"]));
        }
        Ok(answer["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The value of a query that returns one sample.
    async fn value(&self, expr: &str) -> Option<f64> {
        let result = self.query(expr).await.ok()?;
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// The alerts now (pending or firing): (name, pod, state).
    async fn alerts(&self) -> Vec<(String, String, String)> {
        let Some((_, body)) = self.get("/api/v1/alerts").await else { return Vec::new() };
        let answer: Value = serde_json::from_str(&body).unwrap_or_default();
        answer["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|a| {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (text(&a["labels"]["alertname"]), text(&a["labels"]["pod"]), text(&a["state"]))
            })
            .collect()
    }

    /// Whether `alert` (of `pod`, when given) fired at some time since `since`: Prometheus's own
    /// ALERTS series, so a short firing between two polls counts too.
    async fn fired(&self, alert: &str, pod: Option<&str>, since: std::time::Instant) -> bool {
        let pod = pod.map(|p| format!(",pod=\"{p}\"")).unwrap_or_default();
        let window = since.elapsed().as_secs() + 1;
        let expr =
            format!("max_over_time(ALERTS{{alertname=\"{alert}\",alertstate=\"firing\"{pod}}}[{window}s])");
        self.value(&expr).await == Some(1.0)
    }

    /// Whether `alert` is pending or firing now.
    async fn active(&self, alert: &str) -> bool {
        self.alerts().await.iter().any(|(name, _, _)| name == alert)
    }

    /// What Prometheus sees, for failure messages: alerts and target health.
    async fn state(&self) -> String {
        let up = self.query("up").await.unwrap_or_default();
        let up: Vec<String> = up
            .iter()
            .map(|s| format!("{} {} = {}", s["metric"]["job"], s["metric"]["pod"], s["value"][1]))
            .collect();
        format!("alerts: {:?}\nup: {up:?}", self.alerts().await)
    }

    /// Poll until each of `alerts` (name, pod) has fired after the call.
    async fn wait_fired(&self, alerts: &[(&str, Option<&str>)], timeout: std::time::Duration, why: &str) {
        let since = std::time::Instant::now();
        let deadline = since + timeout;
        for (alert, pod) in alerts {
            while !self.fired(alert, *pod, since).await {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{alert} ({pod:?}) did not fire within {timeout:?} after {why}\n{}",
                    self.state().await
                );
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            eprintln!("{alert} fired ({why})");
        }
    }

    /// Poll until none of `alerts` is pending or firing.
    async fn wait_resolved(&self, alerts: &[&str], timeout: std::time::Duration, why: &str) {
        let deadline = std::time::Instant::now() + timeout;
        for alert in alerts {
            while self.active(alert).await {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{alert} still active {timeout:?} after {why}\n{}",
                    self.state().await
                );
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            eprintln!("{alert} resolved ({why})");
        }
    }
}

/// Percent-encoding for a query string value (unreserved characters as they are).
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every PromQL expression of the dashboard, with Grafana's variables replaced as Grafana does
/// for "All" and a short range.
fn dashboard_exprs() -> Vec<(String, String)> {
    let path = component_dir().join("etcd-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    let mut panels: Vec<Value> = dashboard["panels"].as_array().cloned().unwrap_or_default();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().cloned().unwrap_or_default());
        for target in panel["targets"].as_array().cloned().unwrap_or_default() {
            if let Some(expr) = target["expr"].as_str() {
                let title = panel["title"].as_str().unwrap_or_default().to_string();
                let expr = expr.replace("$namespace", ".*").replace("$__rate_interval", "1m");
                exprs.push((title, expr));
            }
        }
    }
    exprs
}

async fn nospace_raised(c: &mut etcd_client::Client) -> bool {
    let alarms =
        c.alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None).await.expect("alarm list");
    alarms.alarms().iter().any(|a| a.alarm() == etcd_client::AlarmType::Nospace)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_fires_and_resolves_the_alerts_of_a_real_cluster() {
    use std::time::Duration;

    use crate::stateful_set::{client, Extra, Set, METRICS_PORT};

    const TEST: &str = "a_real_prometheus_fires_and_resolves_the_alerts_of_a_real_cluster";
    let Some(etcd) = crate::bootstrap::setup(TEST) else { return };
    if !have(TEST, "prometheus") {
        return;
    }
    let scratch = tempfile::tempdir().expect("scratch");
    let store = scratch.path().join("backups");
    std::fs::create_dir(&store).expect("the backup store");
    let quota = ("ETCD_QUOTA_BACKEND_BYTES".to_string(), (16 * 1024 * 1024).to_string());
    let extra = Extra {
        pod_env: vec![quota.clone()],
        sidecar_env: vec![
            quota,
            ("ETCD_BOOTSTRAP_BACKUP_TO".into(), format!("file://{}", store.display())),
            ("ETCD_BOOTSTRAP_BACKUP_INTERVAL".into(), "3s".into()),
            ("ETCD_BOOTSTRAP_BACKUP_KEEP".into(), "2".into()),
            ("ETCD_BOOTSTRAP_BACKUP_DELTA_INTERVAL".into(), "1s".into()),
        ],
        sidecar_args: vec!["--compact-on-nospace".into()],
        ..Extra::default()
    };
    let set = Set::with("prometheus", etcd, extra).await;
    let all = [0, 1, 2];
    for o in all {
        set.start(o, false).await;
    }
    set.healthy(&all).await;

    let namespace = "monitoring-test";
    let mut targets = Vec::new();
    for o in all {
        let ip = set.bed.pod_ip(o);
        targets.push(("etcd", format!("{ip}:2379"), format!("etcd-{o}")));
        targets.push(("etcd-bootstrap-sidecar", format!("{ip}:{METRICS_PORT}"), format!("etcd-{o}")));
    }
    let prom = Prometheus::start(&targets, namespace).await;
    let minute = Duration::from_secs(60);

    // A healthy cluster: every target up, the leader's view and a backup seen, nothing firing.
    let deadline = std::time::Instant::now() + minute;
    loop {
        let up = prom.value("count(up == 1)").await;
        let voters = prom.value("max(etcd_bootstrap_sidecar_members{state=\"voter\"})").await;
        let pods = prom.value("max(etcd_bootstrap_sidecar_pods)").await;
        let backup = prom.value("time() - max(etcd_bootstrap_sidecar_backup_newest_timestamp_seconds)").await;
        let firing = prom.alerts().await.iter().any(|(_, _, state)| state == "firing");
        if up == Some(6.0)
            && voters == Some(3.0)
            && pods == Some(3.0)
            && backup.is_some_and(|a| a < 10.0)
            && !firing
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not healthy in Prometheus's eyes: up {up:?}, voters {voters:?}, pods {pods:?}, backup age {backup:?}\n{}\n{}",
            prom.state().await,
            set.logs(&all)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("healthy: 6 targets up, 3 voters, a fresh backup, no alert firing");

    // The backup store unusable: its directory replaced by a file (root ignores permissions).
    let moved = scratch.path().join("backups.moved");
    std::fs::rename(&store, &moved).expect("move the store away");
    std::fs::write(&store, "not a directory").expect("a file in its place");
    // (The delta chain's own alerts need a store that answers but fails: a store that lists
    // nothing makes the sidecar ask for a full snapshot, and EtcdBackupFailing says why.)
    prom.wait_fired(&[("EtcdBackupFailing", None), ("EtcdBackupTooOld", None)], minute, "the store broke")
        .await;
    std::fs::remove_file(&store).expect("remove the file");
    std::fs::rename(&moved, &store).expect("the store back");
    prom.wait_resolved(&["EtcdBackupFailing", "EtcdBackupTooOld"], minute, "the store came back").await;

    // A member stopped (its etcd killed, the pod left in place) and another pod's sidecar gone.
    assert!(set.bed.signal_pid1(2, nix::sys::signal::Signal::SIGKILL).await, "etcd-2 was running");
    set.kill_sidecar(1);
    prom.wait_fired(
        &[("EtcdMemberDown", Some("etcd-2")), ("EtcdBootstrapSidecarDown", Some("etcd-1"))],
        minute,
        "etcd-2's etcd and etcd-1's sidecar stopped",
    )
    .await;
    set.bed.restart_container(2).await;
    set.start_sidecar(1);
    set.healthy(&all).await;
    prom.wait_resolved(&["EtcdMemberDown", "EtcdBootstrapSidecarDown"], minute, "both came back").await;

    // NOSPACE: fill the 16 MiB quota. The sidecars defragment and may disarm by themselves when
    // that frees enough; fill again until the alert has fired (at most five fills).
    let mut c = client(&set.bed, &all).await.expect("connect");
    let since = std::time::Instant::now();
    let mut next = 0;
    let kept = "keeping the NOSPACE alarm";
    let mut kept_before = 0;
    for round in 1..=5 {
        kept_before = set.log_count(&all, kept);
        next = fill(&mut c, next).await;
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while !prom.fired("EtcdNoSpace", None, since).await && nospace_raised(&mut c).await {
            assert!(std::time::Instant::now() < until, "EtcdNoSpace not fired\n{}", prom.state().await);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if prom.fired("EtcdNoSpace", None, since).await {
            eprintln!("EtcdNoSpace fired (fill {round})");
            break;
        }
    }
    assert!(prom.fired("EtcdNoSpace", None, since).await, "EtcdNoSpace never fired\n{}", prom.state().await);
    // Delete only once the sidecars have decided on this alarm (kept it, having defragmented
    // every member): a delete made while they still defragment is not seen as a change, and the
    // kept alarm would then wait ten minutes for its next look.
    let until = std::time::Instant::now() + minute;
    while set.log_count(&all, kept) == kept_before && nospace_raised(&mut c).await {
        assert!(std::time::Instant::now() < until, "no sidecar kept or disarmed NOSPACE\n{}", set.logs(&all));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Free the space: the sidecars compact, defragment and disarm by themselves.
    c.delete("fill/", Some(etcd_client::DeleteOptions::new().with_prefix()))
        .await
        .expect("delete under NOSPACE");
    prom.wait_resolved(&["EtcdNoSpace"], 2 * minute, "the keys were deleted").await;
    assert!(!nospace_raised(&mut c).await, "the alarm is gone");

    // Every expression of the dashboard evaluates; all but the TLS panels have data here.
    let mut empty = Vec::new();
    for (title, expr) in dashboard_exprs() {
        let result =
            prom.query(&expr).await.unwrap_or_else(|e| panic!("dashboard panel {title:?}: {expr}: {e}"));
        if result.is_empty() && !expr.contains("certificate_expiry") {
            empty.push(format!("{title}: {expr}"));
        }
    }
    assert!(empty.is_empty(), "dashboard expressions without data:\n{}", empty.join("\n"));
    eprintln!("{} dashboard expressions evaluated", dashboard_exprs().len());
}
