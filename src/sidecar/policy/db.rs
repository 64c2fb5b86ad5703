//! The members' databases as the maintenance policies see them, and the rules shared by the
//! routine defragmentation ([`super::defrag`]) and the NOSPACE recovery ([`super::nospace`])
//! ([`choose`]):
//! - one member at a time: the member defragmented last must answer again before the next;
//! - only while every voting member answers;
//! - never a member whose defragmentation leaves fewer answering voters than a quorum (a member
//!   being defragmented answers nothing for the time it takes), so never in a cluster of one or
//!   two voters;
//! - followers first, the one with the most space to win first; the leader last;
//! - never the member a snapshot is being read from (the backups job's hold): it waits until
//!   etcd has sent the snapshot.

/// One member's database, as its own `status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DbStatus {
    /// Size of the database file (`dbSize`): what counts against the quota.
    pub size: u64,
    /// Bytes in use (`dbSizeInUse`); 0 where etcd does not report it (before 3.4).
    pub in_use: u64,
}

impl DbStatus {
    /// The share of the file that is free pages: `1 - in_use / size`; 0 when unknown.
    pub(crate) fn fragmentation(&self) -> f64 {
        if self.size == 0 || self.in_use == 0 || self.in_use >= self.size {
            return 0.0;
        }
        1.0 - self.in_use as f64 / self.size as f64
    }

    /// Bytes a defragmentation would give back (about).
    pub(crate) fn reclaimable(&self) -> u64 {
        if self.in_use == 0 {
            return 0;
        }
        self.size.saturating_sub(self.in_use)
    }
}

/// One member as the maintenance policies see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberDb {
    pub id: u64,
    /// For messages: `name (id)`.
    pub label: String,
    pub is_learner: bool,
    /// Its status this round; None when it did not answer.
    pub status: Option<DbStatus>,
}

/// A member to defragment now, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub id: u64,
    pub label: String,
    pub reason: String,
}

/// Why a defragmentation that is wanted is not made this round. `as_str` values are the
/// metric's `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum SkipReason {
    /// The member defragmented last has not answered since.
    Waiting,
    /// A voting member does not answer.
    Unhealthy,
    /// The cluster has too few voters to lose one for the time it takes (one or two).
    Quorum,
    /// etcd refused or failed the call (retried next round).
    EtcdRefused,
    /// A snapshot is being read from the member (a backup): it waits until etcd has sent it.
    Snapshot,
}

impl SkipReason {
    pub(crate) const ALL: [SkipReason; 5] = [
        SkipReason::Waiting,
        SkipReason::Unhealthy,
        SkipReason::Quorum,
        SkipReason::EtcdRefused,
        SkipReason::Snapshot,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SkipReason::Waiting => "waiting",
            SkipReason::Unhealthy => "unhealthy",
            SkipReason::Quorum => "quorum",
            SkipReason::EtcdRefused => "etcd_refused",
            SkipReason::Snapshot => "snapshot",
        }
    }
}

/// A wanted defragmentation not made, with the details for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skip {
    pub reason: SkipReason,
    pub detail: String,
}

/// Of the members `wanted` says need it, the one to defragment now, or why none may be; None when
/// none is wanted. `awaiting` is the member defragmented last until it has answered again;
/// `snapshotting` the member a snapshot is being read from.
pub(crate) fn choose(
    members: &[MemberDb],
    leader: u64,
    awaiting: Option<u64>,
    snapshotting: Option<u64>,
    wanted: impl Fn(&MemberDb) -> Option<String>,
) -> Option<Result<Target, Skip>> {
    let mut candidates: Vec<(&MemberDb, String)> =
        members.iter().filter_map(|m| wanted(m).map(|why| (m, why))).collect();
    if candidates.is_empty() {
        return None;
    }
    if let Some(previous) = awaiting {
        if let Some(m) = members.iter().find(|m| m.id == previous && m.status.is_none()) {
            return Some(Err(Skip {
                reason: SkipReason::Waiting,
                detail: format!("{} was defragmented and has not answered since", m.label),
            }));
        }
    }
    let voters: Vec<&MemberDb> = members.iter().filter(|m| !m.is_learner).collect();
    if let Some(down) = voters.iter().find(|m| m.status.is_none()) {
        return Some(Err(Skip {
            reason: SkipReason::Unhealthy,
            detail: format!(
                "{} does not answer; defragmenting only while every voting member does",
                down.label
            ),
        }));
    }
    // Followers first, most space to win first; the leader last; ties by ID.
    candidates.sort_by_key(|(m, _)| {
        (m.id == leader, std::cmp::Reverse(m.status.map(|s| s.reclaimable()).unwrap_or(0)), m.id)
    });
    let (member, why) = candidates.swap_remove(0);
    let n = voters.len();
    let quorum = n / 2 + 1;
    let left = n - usize::from(!member.is_learner);
    if left < quorum {
        return Some(Err(Skip {
            reason: SkipReason::Quorum,
            detail: format!(
                "{} of the {n} voting members would answer while {} is defragmented, and a quorum is {quorum}: defragment it by hand in a quiet moment (etcdctl defrag)",
                left, member.label
            ),
        }));
    }
    if snapshotting == Some(member.id) {
        return Some(Err(Skip {
            reason: SkipReason::Snapshot,
            detail: format!("a snapshot is being read from {} for a backup: after it", member.label),
        }));
    }
    let role = if member.id == leader { "the leader, last" } else { "a follower" };
    Some(Ok(Target { id: member.id, label: member.label.clone(), reason: format!("{why} ({role})") }))
}

pub(crate) use crate::size::format as size;

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::sidecar::policy) fn member(id: u64, size: u64, in_use: u64) -> MemberDb {
        MemberDb {
            id,
            label: format!("etcd-{} ({id:x})", id % 100),
            is_learner: false,
            status: Some(DbStatus { size, in_use }),
        }
    }

    const MB: u64 = 1_000_000;

    #[test]
    fn fragmentation_table() {
        // (size, in use, fragmentation, reclaimable, why)
        let rows: [(u64, u64, f64, u64, &str); 6] = [
            (100 * MB, 40 * MB, 0.6, 60 * MB, "60% free pages"),
            (100 * MB, 100 * MB, 0.0, 0, "all in use"),
            (100 * MB, 0, 0.0, 0, "in use unknown (etcd before 3.4): never counts as fragmented"),
            (0, 0, 0.0, 0, "an empty report"),
            (10 * MB, 12 * MB, 0.0, 0, "in use above size (a racy report): not fragmented"),
            (200 * MB, 50 * MB, 0.75, 150 * MB, "three quarters free"),
        ];
        for (size, in_use, frag, reclaim, why) in rows {
            let db = DbStatus { size, in_use };
            assert!((db.fragmentation() - frag).abs() < 1e-9, "{why}: {}", db.fragmentation());
            assert_eq!(db.reclaimable(), reclaim, "{why}");
        }
    }

    fn all(_: &MemberDb) -> Option<String> {
        Some("wanted".into())
    }

    #[test]
    fn choose_table() {
        let healthy =
            vec![member(100, 50 * MB, 40 * MB), member(101, 50 * MB, 10 * MB), member(102, 50 * MB, 30 * MB)];
        let mut down = healthy.clone();
        down[2].status = None;
        let mut learner_down = healthy.clone();
        learner_down.push(MemberDb { is_learner: true, status: None, ..member(103, 0, 0) });
        let two = healthy[..2].to_vec();
        // (members, leader, awaiting, wanted ids, expected: Ok(id) or Err(reason) or None, why)
        type Want = Option<Result<u64, SkipReason>>;
        type Row = (Vec<MemberDb>, u64, Option<u64>, Vec<u64>, Want, &'static str);
        let rows: Vec<Row> = vec![
            (healthy.clone(), 100, None, vec![], None, "nothing wanted: nothing to say"),
            (
                healthy.clone(),
                100,
                None,
                vec![100, 101, 102],
                Some(Ok(101)),
                "followers first, most space to win first",
            ),
            (
                healthy.clone(),
                100,
                None,
                vec![100, 102],
                Some(Ok(102)),
                "the only follower wanted before the leader",
            ),
            (healthy.clone(), 100, None, vec![100], Some(Ok(100)), "the leader last"),
            (down.clone(), 100, None, vec![101], Some(Err(SkipReason::Unhealthy)), "a voter does not answer"),
            (
                down.clone(),
                100,
                Some(102),
                vec![101],
                Some(Err(SkipReason::Waiting)),
                "the one before has not answered again",
            ),
            (
                healthy.clone(),
                100,
                Some(102),
                vec![101],
                Some(Ok(101)),
                "the one before answers again: go on",
            ),
            (
                learner_down.clone(),
                100,
                None,
                vec![101],
                Some(Ok(101)),
                "a learner not answering costs no quorum",
            ),
            (
                two.clone(),
                100,
                None,
                vec![101],
                Some(Err(SkipReason::Quorum)),
                "two voters: one defragmenting leaves no quorum",
            ),
            (
                two[..1].to_vec(),
                100,
                None,
                vec![100],
                Some(Err(SkipReason::Quorum)),
                "a single member is never defragmented by the sidecar",
            ),
        ];
        for (members, leader, awaiting, wanted, expected, why) in rows {
            let got =
                choose(&members, leader, awaiting, None, |m| wanted.contains(&m.id).then(|| "wanted".into()));
            let got: Want = got.map(|r| r.map(|t| t.id).map_err(|s| s.reason));
            assert_eq!(got, expected, "{why}");
        }
        // A learner is defragmented without counting against the voters.
        let mut with_learner = two.clone();
        with_learner.push(MemberDb { is_learner: true, ..member(103, 50 * MB, MB) });
        let got = choose(&with_learner, 100, None, None, all).expect("wanted").expect("a learner");
        assert_eq!(got.id, 103, "{got:?}");
    }

    #[test]
    fn reasons_name_the_role() {
        let members =
            vec![member(100, 50 * MB, 40 * MB), member(101, 50 * MB, 10 * MB), member(102, 50 * MB, 30 * MB)];
        let t = choose(&members, 100, None, None, |m| (m.id == 100).then(|| "60% free".into()))
            .expect("x")
            .expect("y");
        assert_eq!(t.reason, "60% free (the leader, last)");
        let s = choose(&members[..2], 100, None, None, all).expect("x").expect_err("quorum");
        assert!(s.detail.contains("1 of the 2 voting members would answer"), "{}", s.detail);
    }

    #[test]
    fn skip_reasons_have_stable_labels() {
        let labels: Vec<&str> = SkipReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels, ["waiting", "unhealthy", "quorum", "etcd_refused", "snapshot"]);
    }

    #[test]
    fn the_member_a_snapshot_is_read_from_is_not_defragmented() {
        let members =
            vec![member(100, 50 * MB, 10 * MB), member(101, 50 * MB, 10 * MB), member(102, 50 * MB, 30 * MB)];
        let leader_only = |m: &MemberDb| (m.id == 100).then(|| "wanted".into());
        let got = choose(&members, 100, None, Some(100), leader_only).expect("wanted");
        assert_eq!(got.map_err(|s| s.reason), Err(SkipReason::Snapshot), "the leader is being snapshotted");
        let got = choose(&members, 100, None, Some(100), all).expect("wanted").expect("a follower");
        assert_eq!(got.id, 101, "a follower is not held by the leader's snapshot");
        let got = choose(&members, 100, None, None, leader_only).expect("wanted").expect("the leader");
        assert_eq!(got.id, 100, "the snapshot done: the leader goes");
    }
}
