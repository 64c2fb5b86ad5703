//! Continuous backups (`--backup-delta-interval`), the pure part: which snapshot's chain the
//! leader's sidecar records, when that chain cannot continue and a full snapshot is asked for,
//! how the changes a watch delivers are buffered, what one upload holds, which leases to ask
//! etcd about, and the lag behind the leader.
//!
//! The rules:
//! - the chain followed is that of the newest snapshot in the store of this very cluster (a
//!   restored cluster has a new ID: it never continues the chain of the cluster it came from)
//!   that has a `chain_from`; there is none: a full snapshot is asked for at once;
//! - it continues after the last segment in the store (a new leader's sidecar picks up where the
//!   old one stopped: no gap, no overlap); a chain the store holds broken cannot continue, nor one
//!   whose next revision etcd has compacted: a full snapshot is asked for at once;
//! - each upload is one segment of every change buffered and not yet stored, from the revision
//!   after the last stored one; an upload that fails is tried again with what came since.

use std::collections::BTreeMap;

use crate::backup::manifest::Manifest;
use crate::backup::segment::{Chain, Change, Revision, Segment};

/// What the deltas job should record, from the store's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Follow {
    /// The chain of snapshot `name`, which starts after `chain_from`.
    Snapshot { name: String, chain_from: i64 },
    /// No snapshot's chain can be recorded: ask for a full snapshot now, for this reason.
    AskFull(String),
}

/// The snapshot whose chain to record: the newest of `listed` (newest first, as the store lists)
/// taken from the cluster `cluster_id` (hex, as manifests write it) with a `chain_from`.
pub(crate) fn follow(listed: &[Manifest], cluster_id: &str) -> Follow {
    let ours = listed.iter().find(|m| m.cluster_id == cluster_id && m.chain_from.is_some());
    match ours {
        Some(m) => Follow::Snapshot { name: m.name.clone(), chain_from: m.chain_from.unwrap_or_default() },
        None if listed.iter().any(|m| m.cluster_id == cluster_id) => Follow::AskFull(format!(
            "no snapshot of this cluster ({cluster_id}) in the store has a chain start (taken by an earlier release)"
        )),
        None if !listed.is_empty() => Follow::AskFull(format!(
            "no snapshot in the store is of this cluster ({cluster_id}): a restored cluster never continues another's chain"
        )),
        None => Follow::AskFull("the store holds no snapshot yet".into()),
    }
}

/// Where the chain of a snapshot (starting after `chain_from`) continues: the last revision the
/// store holds, or why it cannot continue.
pub(crate) fn continues_after(chain_from: i64, chain: &Chain) -> Result<i64, String> {
    match &chain.broken {
        Some(why) => Err(format!("the chain cannot continue: {why}")),
        None => Ok(chain.last_revision(chain_from)),
    }
}

/// The watch from `start` found its start compacted (etcd's `compact_revision`): the chain cannot
/// continue.
pub(crate) fn compacted(start: i64, compact_revision: i64) -> String {
    format!(
        "etcd compacted the history up to revision {compact_revision}, past revision {start} the chain needs next"
    )
}

/// Add one change of `revision`, received at `unix_ms`, to `buffer`: changes of one revision stay
/// together (the first time seen), revisions at or before `after` or the buffer's last (a watch
/// started again sends them once more) are dropped. True when it was added.
pub(crate) fn buffer_change(
    buffer: &mut Vec<Revision>,
    after: i64,
    revision: i64,
    unix_ms: u64,
    change: Change,
) -> bool {
    match buffer.last_mut() {
        Some(last) if last.revision == revision => {
            last.changes.push(change);
            true
        }
        Some(last) if last.revision > revision => false,
        _ if revision <= after => false,
        _ => {
            buffer.push(Revision { revision, unix_ms, changes: vec![change] });
            true
        }
    }
}

/// The leases the puts of `revisions` name that `known` has no TTL for yet (each once, ascending).
pub(crate) fn leases_to_ask(revisions: &[Revision], known: &BTreeMap<i64, i64>) -> Vec<i64> {
    let mut out: Vec<i64> = revisions
        .iter()
        .flat_map(|r| r.changes.iter())
        .filter_map(|c| match c {
            Change::Put { lease, .. } if *lease != 0 && !known.contains_key(lease) => Some(*lease),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The next segment of `snapshot`'s chain, which the store holds up to `stored_last`: every
/// revision of `pending` after it, with the TTLs `known` has for the leases they name. None when
/// nothing is to be uploaded.
pub(crate) fn next_segment(
    snapshot: &str,
    stored_last: i64,
    pending: &[Revision],
    known: &BTreeMap<i64, i64>,
) -> Option<Segment> {
    let revisions: Vec<Revision> = pending.iter().filter(|r| r.revision > stored_last).cloned().collect();
    let mut leases = BTreeMap::new();
    for change in revisions.iter().flat_map(|r| r.changes.iter()) {
        if let Change::Put { lease, .. } = change {
            if *lease != 0 {
                leases.insert(*lease, known.get(lease).copied().unwrap_or_default());
            }
        }
    }
    Segment::new(snapshot, stored_last + 1, revisions, leases)
}

/// The revisions a watch delivered that the store does not hold yet: those after `stored_last`.
pub(crate) fn still_pending(pending: &mut Vec<Revision>, stored_last: i64) {
    pending.retain(|r| r.revision > stored_last);
}

/// How far the store is behind the leader, in revisions: the leader's revision as the watch last
/// told it minus the newest revision the store holds (0 when everything is recorded).
pub(crate) fn lag(leader_revision: i64, stored_last: i64) -> i64 {
    leader_revision.saturating_sub(stored_last).max(0)
}

/// Where a watch of the chain starts: after the last revision stored or received.
pub(crate) fn watch_start(stored_last: i64, pending: &[Revision]) -> i64 {
    pending.last().map_or(stored_last, |r| r.revision.max(stored_last)) + 1
}

/// How far a chain reaches, in words, for the job's log lines.
pub(crate) fn describe(chain_from: i64, chain: &Chain) -> String {
    match chain.segments.len() {
        0 => format!("no segment yet, from revision {}", chain_from + 1),
        n => format!(
            "{n} segment(s) up to revision {} ({})",
            chain.last_revision(chain_from),
            chain.segments.last().map(|s| crate::duration::rfc3339_ms(s.last_ms)).unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::segment::{chain, SegmentName};

    fn manifest(name: &str, cluster_id: &str, chain_from: Option<i64>) -> Manifest {
        Manifest {
            format: crate::backup::manifest::FORMAT,
            name: name.into(),
            cluster_id: cluster_id.into(),
            revision: chain_from.unwrap_or(5),
            etcd_version: "3.5.30".into(),
            members: Vec::new(),
            size: 1,
            sha256: "0".repeat(64),
            etcd_sha256: None,
            xxh3_128: None,
            time: String::new(),
            unix_time: 0,
            chain_from,
        }
    }

    fn put(key: &str, lease: i64) -> Change {
        Change::Put { key: key.into(), value: b"v".to_vec(), lease }
    }

    #[test]
    fn the_newest_snapshot_of_this_cluster_with_a_chain_start_is_followed() {
        let snap = |name: &str, chain_from| Follow::Snapshot { name: name.into(), chain_from };
        // (listing, newest first; what to follow, or a word of the reason to ask for a full one)
        let rows: Vec<(Vec<Manifest>, Result<Follow, &str>)> = vec![
            (vec![], Err("no snapshot yet")),
            (vec![manifest("s2", "aa", Some(20)), manifest("s1", "aa", Some(10))], Ok(snap("s2", 20))),
            (vec![manifest("s2", "bb", Some(20)), manifest("s1", "aa", Some(10))], Ok(snap("s1", 10))),
            (vec![manifest("s2", "bb", Some(20))], Err("never continues another's chain")),
            (vec![manifest("s2", "aa", None)], Err("earlier release")),
            (vec![manifest("s2", "aa", None), manifest("s1", "aa", Some(10))], Ok(snap("s1", 10))),
        ];
        for (listed, want) in rows {
            let got = follow(&listed, "aa");
            match (&got, want) {
                (Follow::AskFull(why), Err(word)) => assert!(why.contains(word), "{why}"),
                (got, Ok(want)) => assert_eq!(*got, want, "{listed:?}"),
                (got, Err(word)) => panic!("{listed:?}: {got:?}, wanted a full snapshot ({word})"),
            }
        }
    }

    #[test]
    fn a_chain_continues_after_its_last_segment_unless_broken() {
        let name = |first, last| SegmentName { first, last, last_ms: 0 };
        assert_eq!(continues_after(10, &chain(10, vec![])), Ok(10), "no segment: after the start");
        assert_eq!(continues_after(10, &chain(10, vec![name(11, 20), name(21, 25)])), Ok(25));
        let gap = continues_after(10, &chain(10, vec![name(11, 20), name(23, 25)])).expect_err("gap");
        assert!(gap.contains("cannot continue") && gap.contains("21..22"), "{gap}");
        // Two sidecars that both wrote from revision 15: the same history, the chain goes on.
        assert_eq!(continues_after(10, &chain(10, vec![name(11, 20), name(15, 25)])), Ok(25), "overlap");
        assert!(compacted(11, 40).contains("past revision 11"));
    }

    #[test]
    fn changes_are_buffered_by_revision_once() {
        let mut b = Vec::new();
        // (revision, added?)
        let rows = [(10, false), (11, true), (11, true), (13, true), (12, false), (13, true), (14, true)];
        for (i, (revision, added)) in rows.into_iter().enumerate() {
            let got = buffer_change(&mut b, 10, revision, 1000 + i as u64, put("k", 0));
            assert_eq!(got, added, "revision {revision} (row {i})");
        }
        let seen: Vec<(i64, usize, u64)> =
            b.iter().map(|r| (r.revision, r.changes.len(), r.unix_ms)).collect();
        assert_eq!(
            seen,
            [(11, 2, 1001), (13, 2, 1003), (14, 1, 1006)],
            "one entry per revision, first time kept"
        );
    }

    #[test]
    fn a_segment_holds_what_the_store_lacks_with_the_leases_named() {
        let r = |revision, changes| Revision { revision, unix_ms: revision as u64 * 10, changes };
        let pending = vec![
            r(11, vec![put("a", 0)]),
            r(12, vec![put("b", 7), put("c", 9)]),
            r(13, vec![Change::Delete { key: "a".into() }]),
        ];
        let mut known = BTreeMap::new();
        assert_eq!(leases_to_ask(&pending, &known), [7, 9]);
        known.insert(7, 30);
        assert_eq!(leases_to_ask(&pending, &known), [9]);
        known.insert(9, 0);
        assert!(leases_to_ask(&pending, &known).is_empty());
        let s = next_segment("snap", 10, &pending, &known).expect("a segment");
        assert_eq!((s.first, s.last, s.snapshot.as_str()), (11, 13, "snap"));
        assert_eq!(s.leases.into_iter().collect::<Vec<_>>(), [(7, 30), (9, 0)]);
        let later = next_segment("snap", 12, &pending, &known).expect("the rest");
        assert_eq!((later.first, later.last, later.revisions.len()), (13, 13, 1));
        assert!(later.leases.is_empty(), "no put there");
        assert_eq!(next_segment("snap", 13, &pending, &known), None, "nothing new");
        assert_eq!(next_segment("snap", 10, &[], &known), None);
        let mut left = pending.clone();
        still_pending(&mut left, 12);
        assert_eq!(left.iter().map(|r| r.revision).collect::<Vec<_>>(), [13]);
    }

    #[test]
    fn lag_and_where_a_watch_starts() {
        assert_eq!(lag(100, 90), 10);
        assert_eq!(lag(90, 90), 0, "everything recorded");
        assert_eq!(lag(80, 90), 0, "an older header is no lag");
        assert_eq!(lag(0, 90), 0, "not heard yet");
        let r = |revision| Revision { revision, unix_ms: 0, changes: vec![] };
        assert_eq!(watch_start(10, &[]), 11);
        assert_eq!(watch_start(10, &[r(12), r(15)]), 16, "after what was received");
        assert_eq!(watch_start(20, &[r(12)]), 21);
        assert!(describe(10, &chain(10, vec![])).contains("from revision 11"));
    }
}
