//! The monitoring component (k8s/components/monitoring) against real Prometheus parts: the alert
//! rules pass `promtool check rules`, every alert has `promtool test rules` unit tests that make
//! it fire, and every runbook link names a section of k8s/README.md.
//!
//! promtool comes with Debian's `prometheus` package (scripts/test.sh installs it); outside CI a
//! missing promtool skips with a printed reason. `PROMTOOL=<path>` picks the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

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
