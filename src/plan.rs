//! `plan`: observe once, decide, and print the state, the decision with its reason, and the etcd
//! argv that `run` would exec. Changes nothing.

use serde_json::{json, Value};

use crate::context::Context;
use crate::datadir::DataDirState;
use crate::decide::{Decision, Verdict};
use crate::etcd_args::{self, StartMode};
use crate::run::{self, Round};
use crate::view::{ClusterView, Member};

/// The etcd argv `run` would exec for this verdict, where it is known without acting.
pub fn predicted_mode(ctx: &Context, round: &Round, verdict: &Verdict) -> Option<StartMode> {
    let members = match round.view() {
        ClusterView::Answer { members, .. } => members,
        ClusterView::NoAnswer { .. } => Vec::new(),
    };
    match &verdict.decision {
        Decision::New => {
            Some(StartMode::New { initial_cluster: ctx.initial_cluster(), token: ctx.token.clone() })
        }
        Decision::Existing { .. } => Some(StartMode::Existing),
        Decision::Join { reuse: Some(_), .. } => Some(run::join_mode(ctx, &members)),
        Decision::Join { reuse: None, as_learner } => {
            Some(run::join_mode(ctx, &with_me(ctx, members, *as_learner)))
        }
        Decision::Replace { remove } => {
            let rest = members.into_iter().filter(|m| m.id != *remove).collect();
            Some(run::join_mode(ctx, &with_me(ctx, rest, false)))
        }
        Decision::Stale { .. } | Decision::Wait | Decision::Refuse => None,
    }
}

fn with_me(ctx: &Context, mut members: Vec<Member>, learner: bool) -> Vec<Member> {
    members.push(Member {
        id: 0,
        name: String::new(),
        peer_urls: vec![ctx.me.peer_url.clone()],
        client_urls: Vec::new(),
        is_learner: learner,
    });
    members
}

/// The etcd binary `run` would exec, or the name as given when it cannot be found here.
fn etcd_path(ctx: &Context) -> String {
    ctx.locate_etcd().unwrap_or_else(|_| ctx.etcd_binary.clone()).display().to_string()
}

fn hex(id: u64) -> String {
    format!("{id:x}")
}

fn decision_name(d: &Decision) -> &'static str {
    match d {
        Decision::New => "NEW",
        Decision::Existing { .. } => "EXISTING",
        Decision::Join { .. } => "JOIN",
        Decision::Replace { .. } => "REPLACE",
        Decision::Stale { .. } => "STALE",
        Decision::Wait => "WAIT",
        Decision::Refuse => "REFUSE",
    }
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

/// The plan as JSON.
pub fn to_json(ctx: &Context, round: &Round, verdict: &Verdict) -> Value {
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
        "decision": decision_name(&verdict.decision),
        "detail": detail,
        "reason": verdict.reason,
        "etcd_argv": argv,
    })
}

/// The plan as text for a person.
pub fn to_text(ctx: &Context, round: &Round, verdict: &Verdict) -> String {
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
    let resolved: Vec<String> = round.scan.resolved.iter().map(u32::to_string).collect();
    let mut dns = format!("pods found ({}): {}", round.scan.source, resolved.join(","));
    if !round.scan.dns.unresolved_initial.is_empty() {
        dns.push_str(&format!("; unresolved: {}", round.scan.dns.unresolved_initial.join(",")));
    }
    line("dns", dns);
    match &round.view() {
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
    line("decision", decision_name(&verdict.decision).to_string());
    line("reason", verdict.reason.clone());
    if let Some(mode) = predicted_mode(ctx, round, verdict) {
        let argv = etcd_args::argv(&ctx.user, &ctx.member, &mode);
        line("etcd argv", format!("{} {}", etcd_path(ctx), argv.join(" ")));
    }
    out
}
