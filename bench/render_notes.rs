//! The report's explanations: why a missed goal is missed and what would close it, resting on
//! the figures of the same run and on what etcd-bootstrap's own logs say (the diagnostics).

use std::fmt::Write;

use crate::facts::Facts;
use crate::pods::{Who, SIDECAR_INTERVAL};
use crate::results::Results;

fn s(r: &Results, key: &str) -> String {
    r.median(key).map(|v| format!("{v:.2} s")).unwrap_or_else(|| "?".into())
}

fn ms(r: &Results, key: &str) -> String {
    r.median(key).map(|v| format!("{v:.1} ms")).unwrap_or_else(|| "?".into())
}

/// One paragraph per missed goal.
pub fn missed(w: &mut String, f: &Facts, r: &Results, goals: &[(&str, Option<bool>)]) {
    let missed: Vec<&str> = goals.iter().filter(|(_, met)| *met == Some(false)).map(|(t, _)| *t).collect();
    if missed.is_empty() {
        return;
    }
    let _ = writeln!(w, "### Why a goal is missed, and what would close it\n");
    for goal in missed {
        let _ = writeln!(w, "**{goal}**\n\n{}\n", why(goal, f, r));
    }
}

fn why(goal: &str, f: &Facts, r: &Results) -> String {
    if goal.starts_with("cold start") {
        let probe = Who::BootstrapShortProbe.key();
        return format!(
            "etcd-bootstrap took {b3} (3 members) and {b5} (5 members) where the floor took {f3} and {f5}, and \
             the shell script {s3} and {s5}. The floor's figure is etcd's own time to form a cluster after the \
             last pod started, a fraction of a second, so 1.10x leaves a few tens of milliseconds for everything \
             etcd-bootstrap does. Its pods took {x3} (median) from their start to the exec of etcd (diagnostics \
             below); two waits make up nearly all of it:\n\n\
             1. *The poll.* Pods start one after the other and appear in DNS as they start, so every pod \
             but the last finds an initial peer missing on its first look, logs a WAIT, and looks again \
             after the poll interval (`POLL_INTERVAL`, 250 ms, in `src/act/mod.rs`; it was 1 s, like the shell \
             script's `sleep 1`, until this report's commit).\n\
             2. *The probe timeout.* The last pod saw every peer at once and exec'd etcd within milliseconds. \
             That etcd accepts connections but answers nothing until the cluster has formed, which needs the \
             other pods; so on their second look every other pod's probe of it lasts the whole \
             `--probe-timeout` (2 s) before \"nobody answers\" lets it decide NEW. With `--probe-timeout {p}` \
             the same start takes {q3} and {q5}: what is left is the poll.\n\n\
             The DNS-late starts show the same two waits (etcd-bootstrap {l3} and {l5} from the last record, \
             the floor {lf3} and {lf5}).\n\n\
             What would close it: the probe timeout is the wait that is left. During an initial bootstrap, do \
             not wait it out on peers that accept connections but answer nothing: ask their peer port instead \
             (`GET /members` on 2380, which etcd serves before it has quorum, as etcd's own \
             `--initial-cluster-state existing` does): a member list with no client URLs is a static cluster \
             that has never served, which is an authoritative \"never started\" within milliseconds. \
             Shortening `--probe-timeout` for everything is not the fix: a slow but formed cluster would then \
             look absent, and an empty pod must never take a formed cluster for a new one. With both, what remains per pod is etcd-bootstrap's own start-to-exec (about \
             {e} with peers ready, below) and one short poll period; whether that fits a 10% margin of a \
             sub-second floor has to be measured.",
            b3 = s(r, "cold.3.bootstrap"),
            b5 = s(r, "cold.5.bootstrap"),
            f3 = s(r, "cold.3.floor"),
            f5 = s(r, "cold.5.floor"),
            s3 = s(r, "cold.3.shell"),
            s5 = s(r, "cold.5.shell"),
            x3 = s(r, "diag.cold.3.bootstrap.to_exec"),
            p = Who::SHORT_PROBE,
            q3 = s(r, &format!("cold.3.{probe}")),
            q5 = s(r, &format!("cold.5.{probe}")),
            l3 = s(r, "late.3.bootstrap"),
            l5 = s(r, "late.5.bootstrap"),
            lf3 = s(r, "late.3.floor"),
            lf5 = s(r, "late.5.floor"),
            e = ms(r, "exec.existing.bootstrap"),
        );
    }
    if goal.starts_with("start-to-exec") {
        return format!(
            "etcd-bootstrap's EXISTING restart took {b} from start to exec (the stamp alone: {fl}). Before it \
             execs etcd it reads the first WAL record, resolves the headless service (SRV) and every initial \
             peer (A), uncached, and asks the answering peers for status and a linearizable member list; each \
             step is a round trip to the DNS server or a peer, and on a loaded machine (load average {l0} at \
             the start of this run, {l1} at the end, on {c} cores) each waits for a core. What would close it: \
             run on an idle machine first to see whether it is the load; then skip the SRV lookup when the data \
             dir holds a member (its peers come from the member list), and ask one peer first instead of all.",
            b = ms(r, "exec.existing.bootstrap"),
            fl = ms(r, "exec.existing.floor"),
            l0 = f.load_start,
            l1 = f.load_end,
            c = f.cores,
        );
    }
    if goal.starts_with("join") {
        return format!(
            "Voter joins took {v}, learner joins {l} (the floor: {fv} and {fl}). A learner is promoted by the \
             leader's sidecar, which looks every `--interval` ({SIDECAR_INTERVAL} here; the default is 10s, \
             which alone would exceed the goal): a shorter interval, or promoting as soon as etcd reports the \
             learner in sync, would close it.",
            v = s(r, "join.voter.bootstrap"),
            l = s(r, "join.learner.bootstrap"),
            fv = s(r, "join.voter.floor"),
            fl = s(r, "join.learner.floor"),
        );
    }
    if goal.starts_with("binary") {
        return "The binary links tokio, hickory-resolver, etcd-client (tonic, rustls, ring) and clap; \
                opt-level z, LTO, one codegen unit and panic=abort are already set. Dropping clap's help \
                texts or TLS (ring) would shrink it most."
            .to_string();
    }
    if goal.starts_with("peak memory") {
        return "The figure is the peak of the pod's PID 1 over its whole chain (bed wrapper, stamp, \
                etcd-bootstrap): compare with the floor's chain in the memory table to see how much is \
                etcd-bootstrap's. Its largest buffers are the gRPC channels to the peers; asking one peer \
                at a time would lower the peak."
            .to_string();
    }
    if goal.starts_with("sidecar") {
        return "The sidecar keeps one etcd client to its local member, the resolver and the metrics server; \
                a growing RSS over a longer run would point at a leak in one of them."
            .to_string();
    }
    String::new()
}

/// What etcd-bootstrap's logs say about the cold starts, and what was learnt building the
/// benchmark.
pub fn diagnostics(w: &mut String, r: &Results) {
    let _ = writeln!(w, "## Diagnostics (from etcd-bootstrap's own logs in this run)\n");
    let _ = writeln!(
        w,
        "Per pod, from the timestamps of etcd-bootstrap's \"starting\" and \"exec etcd\" log lines, and the \
         number of WAIT lines it logged (one when the reason changes, then one every 5 s): 0 means the pod \
         decided on its first look.\n"
    );
    let _ = writeln!(w, "| series | median | min | max | pods |\n|---|---|---|---|---|");
    for what in ["cold", "late"] {
        for size in [3u32, 5] {
            for who in [Who::Bootstrap, Who::BootstrapShortProbe] {
                let scenario = if what == "cold" { "cold start" } else { "DNS late" };
                let variant = if who == Who::Bootstrap {
                    String::new()
                } else {
                    format!(", `--probe-timeout {}`", Who::SHORT_PROBE)
                };
                let start =
                    if what == "cold" { "pod start" } else { "pod start (records 2 s after the last)" };
                for (metric, label, unit) in [
                    ("to_exec", format!("{start} to exec etcd"), " s"),
                    ("waits", "WAIT lines logged per pod".to_string(), ""),
                ] {
                    if what == "late" && metric == "waits" {
                        continue;
                    }
                    let key = format!("diag.{what}.{size}.{}.{metric}", who.key());
                    if let Some(x) = r.summary(&key) {
                        let d = if unit.is_empty() { 0 } else { 3 };
                        let _ = writeln!(
                            w,
                            "| {scenario}, {size} members{variant}: {label} | {:.d$}{unit} | {:.d$}{unit} | {:.d$}{unit} | {} |",
                            x.median, x.min, x.max, x.n
                        );
                    }
                }
            }
        }
    }
    let _ = writeln!(w);
}

/// Method notes: what the figures include and what they leave out on purpose.
pub fn method(w: &mut String) {
    let _ = writeln!(w, "## Notes on the method\n");
    for note in [
        "The pods are the integration tests' pod bed: each pod a network, UTS, PID and mount namespace \
         with its own IP, hostname, resolv.conf and hosts file (the kubelet's shape: the pod's own name is \
         in /etc/hosts), a volume that survives it, and its program as PID 1; a real DNS server on the bed \
         publishes the headless service's A and SRV records (`publishNotReadyAddresses`). Every contestant \
         runs the same etcd binary with the same flags; only the way it is started differs.",
        "Health is checked from outside the pods with etcd's client API, every 50 ms, so a figure has a \
         resolution of about 50 ms plus a round trip.",
        "etcd up to 3.5.29 refuses `member add` (\"unhealthy cluster\") until the member asked has been \
         connected to every voter for 5 s. A scale-up normally comes long after the cluster formed, so the \
         scale and JOIN series wait 6 s after forming their cluster before the first join rather than time \
         that rule.",
        "etcd derives a new member's ID from its peer URL and the current second, so adding the same peer URL \
         again within the second of an add that was removed gets the removed ID and is refused with \"member \
         not found\". The JOIN start-to-exec series pauses 1.1 s between runs for that reason. (Found while \
         building this benchmark: etcd-bootstrap treats that answer to `member add` as \"already done\" and \
         observes again at once, so for up to a second it repeats member list and member add every few \
         milliseconds instead of backing off.)",
        "The sidecar probes a removal candidate at the last address its name had; a deleted pod's address \
         answers nothing, so that probe lasts the whole `--probe-timeout` (2 s) and is part of the overhead \
         beyond the removal delay, together with the time etcd takes to stop on SIGTERM (most of the floor's \
         figure) and the sidecar's interval.",
    ] {
        let _ = writeln!(w, "- {note}");
    }
    let _ = writeln!(w);
}
