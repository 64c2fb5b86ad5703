//! The version check before exec: this pod's etcd (`etcd --version`) against the cluster's
//! version (each peer port's `GET /version`: `etcdcluster`) and the members' own versions (the
//! peer ports' `etcdserver`, the client ports' status). Pure: a function of what was observed.
//!
//! etcd's rules, each a row of the table tests below with its source:
//! - An etcd older than the cluster version exits on start ("cluster cannot be downgraded"): it
//!   is never exec'd. The way out is the image back, or, from 3.6 on, etcd's downgrade procedure
//!   (`etcdctl downgrade validate/enable`), which lowers the cluster version first.
//! - Upgrades go one minor version at a time ("Upgrades that skip a minor version are not
//!   supported and will likely fail", etcd's upgrade policy).
//! - Before 3.6, every 3.5 member runs 3.5.26 or later (etcd's 3.5 -> 3.6 upgrade guide: 3.5.24
//!   through 3.5.26 fix upgrade blockers, etcd-io/etcd#19557); before 3.7, every 3.6 member runs
//!   3.6.11 or later (etcd's 3.6 -> 3.7 upgrade guide).

use crate::observed::{LocalEtcd, PeerVersion, Release, Versions};

use super::{Decision, Verdict};

/// The oldest patch release of the previous minor version that etcd's upgrade guide allows a
/// rolling upgrade from, per target minor version: `(target, oldest of the previous minor)`.
const UPGRADE_FLOORS: [(Release, Release); 2] = [
    // etcd's "Upgrade etcd from v3.5 to v3.6": all 3.5 members on 3.5.26 or later.
    (Release::new(3, 6, 0), Release::new(3, 5, 26)),
    // etcd's "Upgrade etcd from v3.6 to v3.7": all 3.6 members on 3.6.11 or later.
    (Release::new(3, 7, 0), Release::new(3, 6, 11)),
];

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    /// Nothing against starting: the words say what was compared (for `plan`).
    Fine(String),
    /// Not comparable (this pod's etcd version unknown, or nobody told a version): the words say
    /// why; the start is not held for it.
    Unchecked(String),
    /// Never exec etcd: the words name both versions and the way out.
    Refused(String),
}

impl Check {
    /// `fine`, `unchecked` or `refused`, as `plan` prints it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Check::Fine(_) => "fine",
            Check::Unchecked(_) => "unchecked",
            Check::Refused(_) => "refused",
        }
    }

    /// The words, whichever the outcome.
    pub(crate) fn words(&self) -> &str {
        match self {
            Check::Fine(w) | Check::Unchecked(w) | Check::Refused(w) => w,
        }
    }
}

/// The cluster version as the peers told it: the highest `etcdcluster` answered (it only ever
/// rises, except by etcd's downgrade procedure), with who told it.
pub(crate) fn cluster_version(peers: &[PeerVersion]) -> Option<(Release, &str)> {
    let told = peers.iter().filter_map(|p| p.cluster.map(|c| (c, p.host.as_str())));
    told.fold(None, |best, (c, host)| match best {
        Some((b, _)) if b >= c => best,
        _ => Some((c, host)),
    })
}

/// The oldest member version any answer told, with who runs it.
pub(crate) fn oldest_member(peers: &[PeerVersion]) -> Option<(Release, &str)> {
    peers.iter().filter_map(|p| p.server.map(|s| (s, p.host.as_str()))).min_by_key(|(s, _)| *s)
}

/// Compare this pod's etcd with the cluster's versions.
pub(crate) fn check(versions: &Versions) -> Check {
    let mine = match &versions.local {
        LocalEtcd::Known(r) => *r,
        LocalEtcd::Unknown(why) => {
            return Check::Unchecked(format!("this pod's etcd version is unknown ({why}): not compared"))
        }
    };
    let cluster = cluster_version(&versions.peers);
    let oldest = oldest_member(&versions.peers);
    if let Some((c, host)) = cluster {
        if mine.minor_line() < c.minor_line() {
            let back = mine.minor_line_text();
            let downgrade = if c.minor_line() >= (3, 6) {
                format!("to go back to {back} for good, etcd's downgrade procedure (etcdctl downgrade validate {back}, then downgrade enable {back}) lowers the cluster version first, then roll the members back one by one")
            } else {
                format!("etcd {} has no downgrade procedure (etcd 3.6 and later have one): to go back to {back} for good, restore a snapshot into a new cluster", c.minor_line_text())
            };
            return Check::Refused(format!(
                "this pod's etcd {mine} is older than the cluster version {} (told by {host}): etcd refuses to start a member older than its cluster, so it is not started. Way out: run this pod's image with etcd {} or newer again; {downgrade}",
                c.minor_line_text(),
                c.minor_line_text(),
            ));
        }
    }
    // A jump is measured from the oldest member's own version, never from the cluster version:
    // etcd reports a placeholder 3.0 as the cluster version while a new cluster forms (its
    // leader cannot ask every member yet), long before it settles at the members' version.
    let Some((from, host)) = oldest else {
        let told = match cluster {
            Some((c, host)) => format!("only the cluster version {} ({host}) was told", c.minor_line_text()),
            None => "no peer told a version".to_string(),
        };
        return Check::Unchecked(format!("{told}: this pod's etcd {mine} not compared with the members'"));
    };
    if mine.major != from.major || mine.minor > from.minor + 1 {
        return Check::Refused(format!(
            "this pod's etcd {mine} is more than one minor version ahead of member {host}'s etcd {from}: etcd upgrades one minor version at a time, so it is not started. Way out: run this pod's image with etcd {}.{} first, or the image back",
            from.major,
            from.minor + 1
        ));
    }
    if let Some(refusal) = below_upgrade_floor(mine, &versions.peers) {
        return Check::Refused(refusal);
    }
    let told = match cluster {
        Some((c, chost)) => format!(
            "the cluster version {} (told by {chost}) and the oldest member's etcd {from} ({host})",
            c.minor_line_text()
        ),
        None => format!("the oldest member's etcd {from} ({host}); no cluster version decided yet"),
    };
    Check::Fine(format!("this pod's etcd {mine} may run beside {told}"))
}

/// The upgrade guide's floor for `mine`'s minor version: a member of the previous minor version
/// older than it makes the upgrade one the guide forbids.
fn below_upgrade_floor(mine: Release, peers: &[PeerVersion]) -> Option<String> {
    let (_, floor) = UPGRADE_FLOORS.iter().find(|(target, _)| target.minor_line() == mine.minor_line())?;
    let (old, host) = peers
        .iter()
        .filter_map(|p| p.server.map(|s| (s, p.host.as_str())))
        .filter(|(s, _)| s.minor_line() == floor.minor_line() && s < floor)
        .min_by_key(|(s, _)| *s)?;
    Some(format!(
        "this pod's etcd {mine} would upgrade a cluster whose member {host} runs etcd {old}: etcd's upgrade guide to {}.{} requires every {}.{} member on {floor} or later first, so it is not started. Way out: update every member to {floor} or later, then this image; or the image back",
        mine.major,
        mine.minor,
        floor.major,
        floor.minor
    ))
}

/// The round's verdict with the version check applied: a decision that starts etcd (or changes
/// the membership or the data dir on the way to starting it) becomes WAIT when the check
/// refuses; WAIT and REFUSE stand as they are.
pub(crate) fn gate(usual: Verdict, versions: &Versions) -> Verdict {
    if matches!(usual.decision, Decision::Wait | Decision::Refuse) {
        return usual;
    }
    match check(versions) {
        Check::Refused(why) => crate::decide::verdict(
            Decision::Wait,
            format!("{why} (otherwise: {} because {})", usual.decision.name(), usual.reason),
        ),
        Check::Fine(_) | Check::Unchecked(_) => usual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> Release {
        Release::parse(text).unwrap_or_else(|| panic!("{text} is not a release"))
    }

    fn peer(host: &str, server: &str, cluster: Option<&str>) -> PeerVersion {
        PeerVersion { host: host.into(), server: Some(r(server)), cluster: cluster.map(r) }
    }

    fn versions(mine: &str, peers: Vec<PeerVersion>) -> Versions {
        Versions { local: LocalEtcd::Known(r(mine)), peers }
    }

    /// Which outcome a row wants.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Want {
        Fine,
        Unchecked,
        Refused,
    }

    fn outcome(c: &Check) -> Want {
        match c {
            Check::Fine(_) => Want::Fine,
            Check::Unchecked(_) => Want::Unchecked,
            Check::Refused(_) => Want::Refused,
        }
    }

    #[test]
    fn each_row_of_etcds_version_rules() {
        let v35 = Some("3.5.0");
        let v34 = Some("3.4.0");
        let v36 = Some("3.6.0");
        let rows: Vec<(&str, Versions, Want, &[&str])> = vec![
            // etcd refuses to start a member older than the cluster version (etcd's server
            // checks "cluster cannot be downgraded"); seen here: 3.4.23 exec'd beside a 3.5
            // cluster exited 1 (issue 20).
            (
                "3.4 beside a 3.5 cluster: refused, naming both and the way out",
                versions("3.4.23", vec![peer("etcd-0", "3.5.30", v35), peer("etcd-2", "3.5.30", v35)]),
                Want::Refused,
                &["3.4.23", "cluster version 3.5", "etcd-0", "image", "no downgrade procedure"],
            ),
            // Patch releases of one minor version mix freely (etcd's upgrade policy: patch upgrade).
            (
                "3.5.1 beside 3.5.30 members",
                versions("3.5.1", vec![peer("etcd-0", "3.5.30", v35)]),
                Want::Fine,
                &["3.5"],
            ),
            (
                "3.5.30 beside 3.5.1 members",
                versions("3.5.30", vec![peer("etcd-0", "3.5.1", v35)]),
                Want::Fine,
                &[],
            ),
            // One minor version up is a rolling upgrade (etcd's 3.4 -> 3.5 upgrade guide; tested
            // here under writes).
            (
                "3.5 joining a 3.4 cluster",
                versions("3.5.30", vec![peer("etcd-0", "3.4.23", v34)]),
                Want::Fine,
                &[],
            ),
            // "Upgrades that skip a minor version are not supported" (etcd's upgrade policy).
            (
                "3.6 beside a 3.4 cluster: a skipped minor version",
                versions("3.6.14", vec![peer("etcd-0", "3.4.23", v34)]),
                Want::Refused,
                &["3.6.14", "3.4", "one minor version at a time", "3.5"],
            ),
            (
                "3.7 beside 3.5 members without a decided cluster version",
                versions("3.7.1", vec![peer("etcd-0", "3.5.30", None)]),
                Want::Refused,
                &["3.7.1", "member etcd-0's etcd 3.5.30", "etcd 3.6 first"],
            ),
            (
                "a major version apart",
                versions("4.0.0", vec![peer("etcd-0", "3.7.1", Some("3.7.0"))]),
                Want::Refused,
                &[],
            ),
            // etcd's 3.5 -> 3.6 upgrade guide: every 3.5 member on 3.5.26 or later first
            // (etcd-io/etcd#19557: "too many learner members" after 3.5.1-3.5.19).
            (
                "3.6 beside a 3.5.19 member: the guide forbids it",
                versions("3.6.14", vec![peer("etcd-0", "3.5.30", v35), peer("etcd-1", "3.5.19", v35)]),
                Want::Refused,
                &["3.6.14", "etcd-1", "3.5.19", "3.5.26"],
            ),
            (
                "3.6 beside 3.5.26 members",
                versions("3.6.0", vec![peer("etcd-0", "3.5.26", v35)]),
                Want::Fine,
                &[],
            ),
            // etcd's 3.6 -> 3.7 upgrade guide: every 3.6 member on 3.6.11 or later first.
            (
                "3.7 beside a 3.6.10 member: the guide forbids it",
                versions("3.7.1", vec![peer("etcd-0", "3.6.10", v36)]),
                Want::Refused,
                &["3.6.11"],
            ),
            (
                "3.7 beside 3.6.14 members",
                versions("3.7.1", vec![peer("etcd-0", "3.6.14", v36)]),
                Want::Fine,
                &[],
            ),
            // The cluster version is the highest told (it only rises, etcd raises it once every
            // member runs the new version); an older member is still measured for the jump.
            (
                "3.5 beside a cluster at 3.6",
                versions("3.5.30", vec![peer("etcd-0", "3.6.14", v36), peer("etcd-1", "3.6.14", v36)]),
                Want::Refused,
                &["cluster version 3.6", "downgrade validate 3.5", "downgrade enable 3.5"],
            ),
            // While a new cluster forms its leader reports the placeholder cluster version 3.0
            // (seen here: 3.5.1 members told etcdcluster 3.0.0 before the last initial member
            // started): the jump is measured from the members' own versions, so this starts.
            (
                "3.5.1 joining a forming 3.5.1 cluster that tells 3.0",
                versions(
                    "3.5.1",
                    vec![peer("etcd-0", "3.5.1", Some("3.0.0")), peer("etcd-1", "3.5.1", Some("3.0.0"))],
                ),
                Want::Fine,
                &["3.0", "3.5.1"],
            ),
            (
                "only a cluster version told",
                versions(
                    "3.5.30",
                    vec![PeerVersion { host: "etcd-0".into(), server: None, cluster: Some(r("3.5.0")) }],
                ),
                Want::Unchecked,
                &["only the cluster version 3.5"],
            ),
            // Nothing to compare: never held for it.
            ("nobody told a version", versions("3.5.30", vec![]), Want::Unchecked, &["3.5.30"]),
            (
                "this pod's etcd unknown",
                Versions {
                    local: LocalEtcd::Unknown("no etcd on PATH".into()),
                    peers: vec![peer("etcd-0", "3.5.30", v35)],
                },
                Want::Unchecked,
                &["no etcd on PATH"],
            ),
        ];
        for (what, v, want, words) in rows {
            let got = check(&v);
            assert_eq!(outcome(&got), want, "{what}: {got:?}");
            for w in words {
                assert!(got.words().contains(w), "{what}: no {w:?} in {:?}", got.words());
            }
        }
    }

    #[test]
    fn a_refusal_turns_an_actionable_verdict_into_wait_and_leaves_wait_and_refuse_alone() {
        let older = versions("3.4.23", vec![peer("etcd-0", "3.5.30", Some("3.5.0"))]);
        let fine = versions("3.5.30", vec![peer("etcd-0", "3.5.30", Some("3.5.0"))]);
        let existing = crate::decide::verdict(Decision::Existing { update_peer_urls: None }, "listed");
        let held = gate(existing.clone(), &older);
        assert_eq!(held.decision, Decision::Wait);
        assert!(
            held.reason.contains("3.4.23") && held.reason.contains("EXISTING because listed"),
            "{}",
            held.reason
        );
        assert_eq!(gate(existing.clone(), &fine), existing);
        let join = crate::decide::verdict(Decision::Join { reuse: None, as_learner: false }, "add");
        assert_eq!(gate(join, &older).decision, Decision::Wait);
        for stands in [Decision::Wait, Decision::Refuse] {
            let v = crate::decide::verdict(stands.clone(), "x");
            assert_eq!(gate(v.clone(), &older), v);
        }
    }
}
