//! `plan`: observe once, decide, and print the state, the decision with its reason, and the etcd
//! argv that `run` would exec. Changes nothing.

use serde_json::{json, Value};

use crate::act::exec;
use crate::backup::manifest::Manifest;
use crate::backup::replay::Replay;
use crate::context::Context;
use crate::decide::{start_mode, version, Decision, StartMode, Verdict};
use crate::etcd_args;
use crate::observe::Round;
use crate::observed::{ClusterView, DataDirState, LocalEtcd, Member};
use crate::round::Decided;

/// The etcd argv `run` would exec for this verdict, where it is known without acting: the same
/// pure `decide::start_mode` that `run` calls.
pub(crate) fn predicted_mode(ctx: &Context, round: &Round, verdict: &Verdict) -> Option<StartMode> {
    start_mode(&verdict.decision, round.members(), &ctx.launch())
}

/// The etcd binary `run` would exec, or the name as given when it cannot be found here.
fn etcd_path(ctx: &Context) -> String {
    exec::locate(&ctx.etcd_binary, ctx.env.path_var.as_deref())
        .unwrap_or_else(|_| ctx.etcd_binary.clone())
        .display()
        .to_string()
}

fn hex(id: u64) -> String {
    format!("{id:x}")
}

fn member_json(m: &Member) -> Value {
    json!({
        "id": hex(m.id),
        "name": m.name,
        "peer_urls": m.peer_urls,
        "client_urls": m.client_urls,
        "learner": m.is_learner,
        "started": m.started(),
        "served": m.served(),
    })
}

/// The snapshot `--restore-from` names, as far as the round read it: its URL (never with
/// credentials), manifest, and the delta segments a restore replays after it.
pub(crate) struct Restoring<'a> {
    pub url: String,
    pub manifest: &'a Manifest,
    pub replay: Option<&'a Replay>,
}

impl Restoring<'_> {
    /// The point restored to: the last revision replayed, or the snapshot's own.
    fn point(&self) -> i64 {
        self.replay.map_or(self.manifest.revision, |r| r.to_revision)
    }

    /// The replay in words, if there is one.
    fn replay_words(&self) -> Option<String> {
        let r = self.replay?;
        let (first, last) = (r.segments.first()?, r.segments.last()?);
        let received = if last.last == r.to_revision {
            format!(", received {}", crate::duration::rfc3339_ms(last.last_ms))
        } else {
            String::new()
        };
        Some(format!(
            "{} delta segment(s), revisions {}..{}, replayed to revision {}{received}",
            r.segments.len(),
            first.first,
            last.last,
            r.to_revision
        ))
    }
}

/// What a RESTORE verdict restores.
fn restored<'a, 'b>(verdict: &Verdict, snapshot: Option<&'b Restoring<'a>>) -> Option<&'b Restoring<'a>> {
    snapshot.filter(|_| matches!(verdict.decision, Decision::Restore { .. }))
}

/// The plan as JSON.
pub(crate) fn to_json(ctx: &Context, decided: &Decided, snapshot: Option<&Restoring<'_>>) -> Value {
    let (round, verdict) = (&decided.round, &decided.verdict);
    let data = match &round.data {
        DataDirState::Empty => json!({"state": "empty"}),
        DataDirState::Member(meta) => {
            json!({"state": "member", "member_id": hex(meta.member_id), "cluster_id": hex(meta.cluster_id)})
        }
        DataDirState::Unknown { entries } => json!({"state": "unknown", "entries": entries}),
    };
    let cluster = match &round.observed.view {
        ClusterView::NoAnswer { tried } => json!({
            "answered": false,
            "tried": tried.iter().map(|(e, why)| json!({"endpoint": e, "error": why})).collect::<Vec<_>>(),
        }),
        ClusterView::Answer { endpoint, cluster_id, members, quorum } => json!({
            "answered": true,
            "endpoint": endpoint,
            "cluster_id": hex(*cluster_id),
            "quorum": quorum,
            "members": members.iter().map(member_json).collect::<Vec<_>>(),
        }),
    };
    let detail = match &verdict.decision {
        Decision::Existing { update_peer_urls: Some(id) } => json!({"update_peer_urls": hex(*id)}),
        Decision::Join { reuse, as_learner } => json!({"reuse": reuse.map(hex), "learner": as_learner}),
        Decision::Replace { remove } => json!({"remove": hex(*remove)}),
        Decision::Stale { member_id } => json!({"archive_member": hex(*member_id)}),
        Decision::Restore { archive_member, .. } => json!({"archive_member": archive_member.map(hex)}),
        _ => json!({}),
    };
    let argv = predicted_mode(ctx, round, verdict).map(|mode| {
        let mut argv = vec![etcd_path(ctx)];
        argv.extend(etcd_args::argv(&ctx.user, &ctx.member, &mode));
        argv
    });
    json!({
        "pod": {
            "name": ctx.identity.pod_name,
            "set": ctx.identity.set_name,
            "ordinal": ctx.identity.ordinal,
            "namespace": ctx.namespace,
            "domain": ctx.identity.domain,
            "peer_url": ctx.me.peer_url,
        },
        "data_dir": {"path": ctx.member.data_dir.display().to_string(), "contents": data},
        "dns": {
            "source": round.scan.source,
            "resolved": round.scan.resolved,
            "unresolved_initial": round.scan.dns.unresolved_initial,
            "beyond_initial": round.scan.dns.beyond_initial,
        },
        "cluster": cluster,
        "peer_ports": round.heard.peer_lists.iter().map(|l| json!({
            "endpoint": l.host,
            "cluster_id": hex(l.cluster_id),
            "served": l.served(),
            "members": l.members.iter().map(member_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "versions": versions_json(round),
        "decision": verdict.decision.name(),
        "detail": detail,
        "reason": verdict.reason,
        "etcd_argv": argv,
        "warning": verdict.warning,
        "restore": restored(verdict, snapshot).map(|r| json!({
            "source": r.url,
            "sha256": r.manifest.sha256,
            "revision": r.manifest.revision,
            "size": r.manifest.size,
            "cluster_id": r.manifest.cluster_id,
            "time": r.manifest.time,
            "segments": r.replay.map(|p| p.segments.iter().map(|s| json!({
                "first": s.first,
                "last": s.last,
                "time": crate::duration::rfc3339_ms(s.last_ms),
            })).collect::<Vec<_>>()).unwrap_or_default(),
            "to_revision": r.point(),
        })),
    })
}

/// The version check as `plan` shows it: this pod's etcd, the cluster version, each version a
/// peer told, and the check's outcome with its words.
fn versions_json(round: &Round) -> Value {
    let v = &round.versions;
    let check = version::check(v);
    json!({
        "etcd": match &v.local { LocalEtcd::Known(r) => Some(r.to_string()), LocalEtcd::Unknown(_) => None },
        "cluster_version": version::cluster_version(&v.peers).map(|(c, _)| c.minor_line_text()),
        "peers": v.peers.iter().map(|p| json!({
            "endpoint": p.host,
            "etcd": p.server.map(|r| r.to_string()),
            "cluster_version": p.cluster.map(|r| r.minor_line_text()),
        })).collect::<Vec<_>>(),
        "check": check.name(),
        "check_reason": check.words(),
    })
}

/// The `dns` line of the text plan: how pods were looked for, which ordinals resolve, and which
/// initial pods do not. Says so in words where there is nothing to list.
fn dns_summary(source: &str, resolved: &std::collections::BTreeSet<u32>, unresolved: &[String]) -> String {
    let how = match source {
        "" => return "not looked up".to_string(),
        "srv" => "by SRV record",
        "enumerated" => "by ordinal",
        other => other,
    };
    let mut text = if resolved.is_empty() {
        format!("no pod found ({how})")
    } else {
        let ordinals: Vec<String> = resolved.iter().map(u32::to_string).collect();
        format!("pods found ({how}): ordinals {}", ordinals.join(","))
    };
    if !unresolved.is_empty() {
        text.push_str(&format!("; not resolving yet: {}", unresolved.join(", ")));
    }
    text
}

/// The plan as text for a person.
pub(crate) fn to_text(ctx: &Context, decided: &Decided, snapshot: Option<&Restoring<'_>>) -> String {
    let (round, verdict) = (&decided.round, &decided.verdict);
    let mut out = String::new();
    let id = &ctx.identity;
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<10} {v}\n"));
    line(
        "pod",
        format!("{} (set {}, ordinal {}, namespace {})", id.pod_name, id.set_name, id.ordinal, ctx.namespace),
    );
    line("peer url", ctx.me.peer_url.clone());
    let data = match &round.data {
        DataDirState::Empty => "empty".to_string(),
        DataDirState::Member(m) => format!("member {:x} of cluster {:x}", m.member_id, m.cluster_id),
        DataDirState::Unknown { entries } => format!("not etcd data: {}", entries.join(", ")),
    };
    line("data dir", format!("{}: {data}", ctx.member.data_dir.display()));
    let looked_up = !round.scan.source.is_empty();
    line("dns", dns_summary(round.scan.source, &round.scan.resolved, &round.scan.dns.unresolved_initial));
    match &round.view {
        // A refused data dir: neither DNS nor the cluster is asked.
        ClusterView::NoAnswer { .. } if !looked_up => line("cluster", "not asked".into()),
        ClusterView::NoAnswer { tried } if tried.is_empty() => line("cluster", "no peer to ask".into()),
        ClusterView::NoAnswer { tried } => {
            let why: Vec<String> = tried.iter().map(|(e, w)| format!("{e}: {w}")).collect();
            line("cluster", format!("no answer ({})", why.join("; ")));
        }
        ClusterView::Answer { endpoint, cluster_id, members, quorum } => {
            line(
                "cluster",
                format!("{cluster_id:x} via {endpoint}, quorum {}", if *quorum { "yes" } else { "no" }),
            );
            for m in members {
                let state = match (m.served(), m.is_learner) {
                    (false, _) => "not started",
                    (true, true) => "learner",
                    (true, false) => "voter",
                };
                line(
                    "  member",
                    format!(
                        "{:x} {} {} {}",
                        m.id,
                        if m.name.is_empty() { "-" } else { &m.name },
                        m.peer_urls.join(","),
                        state
                    ),
                );
            }
        }
    }
    if looked_up {
        let check = version::check(&round.versions);
        line("versions", format!("{}: {}", check.name(), check.words()));
    }
    line("decision", verdict.decision.name().to_string());
    line("reason", verdict.reason.clone());
    if let Some(warning) = &verdict.warning {
        line("warning", warning.clone());
    }
    if let Some(r) = restored(verdict, snapshot) {
        let m = r.manifest;
        line(
            "restore",
            format!("{} (revision {}, sha256 {}, {} bytes)", r.url, m.revision, m.sha256, m.size),
        );
        if let Some(words) = r.replay_words() {
            line("replay", words);
        }
    }
    if let Some(mode) = predicted_mode(ctx, round, verdict) {
        let argv = etcd_args::argv(&ctx.user, &ctx.member, &mode);
        line("etcd argv", format!("{} {}", etcd_path(ctx), argv.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::dns_summary;
    use std::collections::BTreeSet;

    #[test]
    fn dns_line_never_prints_empty_lists() {
        let none = BTreeSet::new();
        let some: BTreeSet<u32> = [0, 2].into();
        let pod1 = vec!["etcd-1.etcd".to_string()];
        let two = vec!["etcd-1.etcd".to_string(), "etcd-2.etcd".to_string()];
        for (source, resolved, unresolved, want) in [
            ("", &none, &vec![], "not looked up"),
            ("enumerated", &none, &vec![], "no pod found (by ordinal)"),
            ("srv", &none, &two, "no pod found (by SRV record); not resolving yet: etcd-1.etcd, etcd-2.etcd"),
            ("srv", &some, &vec![], "pods found (by SRV record): ordinals 0,2"),
            (
                "enumerated",
                &some,
                &pod1,
                "pods found (by ordinal): ordinals 0,2; not resolving yet: etcd-1.etcd",
            ),
        ] {
            assert_eq!(
                dns_summary(source, resolved, unresolved),
                want,
                "{source:?} {resolved:?} {unresolved:?}"
            );
        }
    }
}
