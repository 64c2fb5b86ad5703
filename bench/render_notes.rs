//! The report's explanations: why a missed goal is missed and what would close it, resting on
//! the figures of the same run and on what etcd-bootstrap's own logs say (the diagnostics).

use std::fmt::Write;

use crate::facts::Facts;
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
        return format!(
            "etcd-bootstrap took {b3} and {b5} (3 and 5 members, DNS on time) where the floor took {f3} and {f5}; \
             with DNS late {l3} and {l5} against {lf3} and {lf5}. Its pods took {x3} (median, 3 members) from \
             their start to the exec of etcd (diagnostics below). The waits of the previous report are gone: a \
             peer whose etcd accepts connections but has not formed its cluster is no longer waited out for the \
             2 s probe timeout (its peer port's member list, with no client URLs, is an authoritative \"never \
             started\" within milliseconds), and a pod that finds an initial peer missing from DNS looks again \
             after 25 ms, not 250 ms. What is left, and why it stays:\n\n\
             1. *DNS.* A NEW start needs every initial peer to resolve, so that every one of them has been \
             asked whether a cluster exists (an empty pod must never start NEW beside a formed cluster: that \
             is the lost-volume hole). Every pod but the last starts before its peers are in DNS and sees them \
             at its next look, up to 25 ms later (`act::pacing::DNS_POLL`); a shorter poll would only add DNS \
             queries.\n\
             2. *etcd's own start after the exec.* The floor's etcd runs from the moment its pod starts and, \
             with DNS late, has been retrying its peers for 2 s when the records appear; etcd-bootstrap execs \
             etcd only once it has decided, so etcd's own start (opening its data dir, writing its first WAL \
             and snapshot, listening) comes after the last record instead of before it. With DNS late the \
             floor's figure is only that reconnect (tens of milliseconds), so no bootstrap that decides \
             before starting etcd can be within 1.25x of it; starting etcd before the decision would give up \
             the decision. What etcd-bootstrap's pods take after the last record is etcd's own start and \
             first election: {l3} with DNS late, against {f3} for the floor's whole cold start, which is \
             that same start and election; its pods exec etcd about {lx} after the last record (diagnostics: pod start to exec, less the 2 s). \
             DNS on time has a smaller form of the same head start: the figures count from the last pod's \
             start, when the floor's first etcd has already run for the pods' creation spread ({sp3} and \
             {sp5}, 3 and 5 members, medians), while etcd-bootstrap's first etcd starts only once the last \
             pod is in DNS and decided, and the others one look after it has answered (item 3).\n\
             3. *etcd's own bootstrap check.* At a NEW start etcd asks the other initial members' peer ports \
             for their member list, one after the other in the order of their peer URLs, up to 1 s each, and \
             stops at the first answer; a member whose etcd has opened its listener but is still in that check \
             itself answers nothing. Pods that exec etcd together would wait out a second per such peer, so \
             every member but the one whose peer URL sorts first starts once that one's peer port answers \
             (`decide::new_hold::hold_new`, at most 1 s): one etcd start (tens of milliseconds) and one look.\n\
             4. *etcd's first election.* Once its peers are connected, each etcd campaigns after a \
             randomized part of its election timeout (1 s by default), the same for every contestant: the \
             medians of {runs} runs swing by a few tenths of a second from one benchmark run to the next \
             (the floor's own min and max in the tables span {fmin} to {fmax} for 5 members).\n\
             5. *Load.* Two cores are shared by up to {n} etcd processes starting at once and by the other \
             engineers' builds (load average {l0} at the start of this run): compare the ratios with the \
             spread of the floor's own runs (min and max in the tables).",
            b3 = s(r, "cold.3.bootstrap"),
            b5 = s(r, "cold.5.bootstrap"),
            f3 = s(r, "cold.3.floor"),
            f5 = s(r, "cold.5.floor"),
            x3 = s(r, "diag.cold.3.bootstrap.to_exec"),
            l3 = s(r, "late.3.bootstrap"),
            l5 = s(r, "late.5.bootstrap"),
            lf3 = s(r, "late.3.floor"),
            lf5 = s(r, "late.5.floor"),
            lx = r
                .median("diag.late.3.bootstrap.to_exec")
                .map(|v| format!("{:.3} s", v - crate::cold::DNS_DELAY.as_secs_f64()))
                .unwrap_or_else(|| "?".into()),
            sp3 = s(r, "spread.3"),
            sp5 = s(r, "spread.5"),
            n = 5,
            runs = f.runs,
            fmin = r.summary("cold.5.floor").map(|x| format!("{:.2} s", x.min)).unwrap_or_else(|| "?".into()),
            fmax = r.summary("cold.5.floor").map(|x| format!("{:.2} s", x.max)).unwrap_or_else(|| "?".into()),
            l0 = f.load_start,
        );
    }
    if goal.starts_with("faster than the shell") {
        return "The shell script pings each peer once a second and then starts etcd with `new` whatever the \
                volume holds; where it is faster in a row, that row's etcd-bootstrap figure is explained \
                under the cold-start goal (DNS, then etcd's own start after the decision). The script is \
                also unsafe in exactly the cases etcd-bootstrap checks (a lost volume, a foreign one, a \
                scale-up)."
            .to_string();
    }
    if goal.starts_with("voter join") {
        return format!(
            "A voter join took {v} where the floor took {fv}. The floor's figure starts at its hand-made \
             `member add`, with the pod's etcd started right after it; etcd-bootstrap's starts at the pod's \
             start and includes its own look at DNS and the cluster (status, a linearizable read, the member \
             list of every peer), the `member add`, and the exec. No pause is left in that path when no other \
             pod can be joining (the 500 ms settle pause stays only where DNS shows another pod that is not \
             a member yet, so that two concurrent joiners each start with a complete member list).",
            v = s(r, "join.voter.bootstrap"),
            fv = s(r, "join.voter.floor"),
        );
    }
    if goal.starts_with("removal") {
        return removal(r);
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

/// What the removal figures are made of (shown under the scale-down table, and as the reason when
/// the goal is missed).
pub fn removal(r: &Results) -> String {
    format!(
        "The sidecar removed the member {v} (voter) and {l} (learner) after the pod's deletion, and {vr} and \
         {lr} after its records went, with `--removal-delay` {d} s. The part after the records is the \
         sidecar's: between rounds the leader's sidecar reads its etcd's peer connections once a second and looks \
         up the name of a pod whose connections closed every 100 ms, so its clock starts moments after the records go, \
         and it looks again exactly when the delay has passed. What comes before the records go is \
         etcd's own stop on SIGTERM (the floor's whole figure, {fl} for a voter, is that; the samples of \
         both fall near 0.05 s, 0.6 s and 1.05 s after the deletion: etcd's shutdown waits in steps of about \
         half a second), and it must stay outside the \
         delay: the clock starts only with a definite \"no such name\", and a pod that still exists, \
         even one that is stopping, keeps its records.",
        v = s(r, "remove.voter.bootstrap"),
        l = s(r, "remove.learner.bootstrap"),
        vr = s(r, "remove.voter.bootstrap.after_records"),
        lr = s(r, "remove.learner.bootstrap.after_records"),
        d = crate::pods::REMOVAL_DELAY.as_secs(),
        fl = s(r, "remove.voter.floor"),
    )
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
    let runs: [(&str, &str, &[u32]); 5] = [
        ("cold", "cold start", crate::cold::sizes(false)),
        ("late", "DNS late", crate::cold::sizes(true)),
        ("restart", "full restart", &[crate::restart::SIZE]),
        (
            "restore",
            "restore from a snapshot (etcdutl restore beside the XXH3-128 check, move)",
            &[crate::restore::SIZE],
        ),
        (
            "pitr",
            "point-in-time restore (etcdutl restore beside the XXH3-128 check, the chain appended to the log, move)",
            &[crate::restore::SIZE],
        ),
    ];
    for (what, scenario, sizes) in runs {
        for &size in sizes {
            let start = if what == "late" { "pod start (records 2 s after the last)" } else { "pod start" };
            for (metric, label, unit) in [
                ("to_exec", format!("{start} to exec etcd"), " s"),
                ("waits", "WAIT lines logged per pod".to_string(), ""),
            ] {
                if what == "late" && metric == "waits" {
                    continue;
                }
                let key = format!("diag.{what}.{size}.bootstrap.{metric}");
                if let Some(x) = r.summary(&key) {
                    let d = if unit.is_empty() { 0 } else { 3 };
                    let _ = writeln!(
                        w,
                        "| {scenario}, {size} members: {label} | {:.d$}{unit} | {:.d$}{unit} | {:.d$}{unit} | {} |",
                        x.median, x.min, x.max, x.n
                    );
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
         not found\". The JOIN start-to-exec series pauses 1.1 s between runs for that reason. etcd-bootstrap \
         treats that answer to `member add` as \"refused for now\" and retries with its backoff (100 ms, \
         doubling, jittered), so a pod recreated within that second starts a moment later.",
        "The removal figure from the deletion includes the time etcd takes to stop on SIGTERM (most of the \
         floor's figure); the figure from the records going starts when the bed has removed the ended pod's \
         records. The sidecar starts its clock at the first \"no such name\" it sees: between rounds it \
         reads its etcd's peer connections once a second and looks the name of a disconnected pod up every \
         100 ms.",
    ] {
        let _ = writeln!(w, "- {note}");
    }
    let _ = writeln!(w);
}
