//! Delta segments (point-in-time restore): every change after a full snapshot, as the leader's
//! sidecar saw it through a watch of the whole keyspace, in objects beside the snapshot. Pure: the
//! format, the object names, the chain rules and what a restore replays.
//!
//! A snapshot `NAME` with `chain_from` in its manifest (the revision read before the snapshot
//! began: the snapshot holds at least that one) has a chain of segments, the objects
//! `NAME.deltas/r<FIRST>-r<LAST>-t<MS>.json`. Each covers the revisions `FIRST..=LAST` (the first
//! one `chain_from + 1`, each next one the previous `LAST + 1`: no gap, no overlap; an overlap two
//! sidecars leave is the same history, read once), holds every
//! change of those revisions with the time (milliseconds since the epoch) the sidecar received
//! it, and `MS` is the time of its last revision. A segment is one object written at once, and is
//! read only once it parses and its digest and revisions agree with its name: a segment cut short
//! never counts. Revisions the snapshot already holds (between `chain_from` and the snapshot's
//! own revision) are skipped by the replay, which knows the restored revision.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// The segment format this binary writes and reads.
pub(crate) const FORMAT: u32 = 1;
/// The folder of a snapshot's segments, after its name.
pub(crate) const FOLDER_SUFFIX: &str = ".deltas";

/// One change of one revision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(crate) enum Change {
    /// The key was written: its value, and its lease (0: none).
    Put {
        #[serde(with = "b64")]
        key: Vec<u8>,
        #[serde(with = "b64")]
        value: Vec<u8>,
        #[serde(default, skip_serializing_if = "is_zero")]
        lease: i64,
    },
    /// The key was deleted.
    Delete {
        #[serde(with = "b64")]
        key: Vec<u8>,
    },
}

impl Change {
    /// The key changed.
    pub(crate) fn key(&self) -> &[u8] {
        match self {
            Change::Put { key, .. } | Change::Delete { key } => key,
        }
    }

    /// Bytes of key and value.
    pub(crate) fn size(&self) -> usize {
        match self {
            Change::Put { key, value, .. } => key.len() + value.len(),
            Change::Delete { key } => key.len(),
        }
    }
}

/// Every change of one revision, and when the sidecar received it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Revision {
    pub revision: i64,
    /// Milliseconds since the epoch.
    pub unix_ms: u64,
    pub changes: Vec<Change>,
}

/// A segment, as written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Segment {
    pub format: u32,
    /// The snapshot whose chain it continues.
    pub snapshot: String,
    pub first: i64,
    pub last: i64,
    /// The leases the puts name, with the TTL (seconds) each was granted; 0 where the lease was
    /// gone before the sidecar could ask (its keys' deletion follows in the chain).
    #[serde(default)]
    pub leases: BTreeMap<i64, i64>,
    pub revisions: Vec<Revision>,
    /// sha256 of `revisions` as written (JSON), lowercase hex.
    pub sha256: String,
}

/// Where a segment's object sits and what its name says, without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentName {
    pub first: i64,
    pub last: i64,
    /// The time of its last revision, in milliseconds since the epoch.
    pub last_ms: u64,
}

impl SegmentName {
    /// The object's file name.
    pub(crate) fn file_name(&self) -> String {
        format!("r{:019}-r{:019}-t{:013}.json", self.first, self.last, self.last_ms)
    }

    /// Parse a file name as [`SegmentName::file_name`] writes it; anything else is not a segment.
    pub(crate) fn parse(file_name: &str) -> Option<SegmentName> {
        let rest = file_name.strip_suffix(".json")?;
        let mut parts = rest.split('-');
        let first = parts.next()?.strip_prefix('r')?.parse().ok()?;
        let last = parts.next()?.strip_prefix('r')?.parse().ok()?;
        let last_ms = parts.next()?.strip_prefix('t')?.parse().ok()?;
        if parts.next().is_some() || first > last || first < 1 {
            return None;
        }
        Some(SegmentName { first, last, last_ms })
    }
}

/// The object key of snapshot `snapshot`'s segment folder under `key_prefix` ("" or "a/b/"),
/// without the trailing slash.
pub(crate) fn folder_key(key_prefix: &str, snapshot: &str) -> String {
    format!("{key_prefix}{snapshot}{FOLDER_SUFFIX}")
}

/// The object key of a segment of `snapshot`.
pub(crate) fn segment_key(key_prefix: &str, snapshot: &str, name: &SegmentName) -> String {
    format!("{}/{}", folder_key(key_prefix, snapshot), name.file_name())
}

fn digest_of(revisions: &[Revision]) -> String {
    let bytes = serde_json::to_vec(revisions).unwrap_or_default();
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Segment {
    /// Bytes of the keys and values its changes carry.
    pub(crate) fn change_bytes(&self) -> usize {
        self.revisions.iter().flat_map(|r| &r.changes).map(Change::size).sum()
    }

    /// A segment of `snapshot`'s chain covering `first..=` the last of `revisions` (which must
    /// not be empty, and all lie at or after `first`, ascending).
    pub(crate) fn new(
        snapshot: &str,
        first: i64,
        revisions: Vec<Revision>,
        leases: BTreeMap<i64, i64>,
    ) -> Option<Segment> {
        let last = revisions.last()?.revision;
        if revisions.first()?.revision < first || !ascending(&revisions) {
            return None;
        }
        let sha256 = digest_of(&revisions);
        Some(Segment {
            format: FORMAT,
            snapshot: snapshot.to_string(),
            first,
            last,
            leases,
            revisions,
            sha256,
        })
    }

    /// Its object name.
    pub(crate) fn name(&self) -> SegmentName {
        let last_ms = self.revisions.last().map(|r| r.unix_ms).unwrap_or_default();
        SegmentName { first: self.first, last: self.last, last_ms }
    }

    /// The segment as written (compact JSON).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parse and check the segment read from the object `name` of `snapshot`'s chain.
    pub(crate) fn parse(snapshot: &str, name: &SegmentName, bytes: &[u8]) -> Result<Segment, String> {
        let what = name.file_name();
        let segment: Segment =
            serde_json::from_slice(bytes).map_err(|e| format!("segment {what} is not valid: {e}"))?;
        if segment.format != FORMAT {
            return Err(format!(
                "segment {what} has format {}, this etcd-bootstrap reads format {FORMAT}: use a matching release",
                segment.format
            ));
        }
        if segment.snapshot != snapshot {
            return Err(format!(
                "segment {what} belongs to snapshot {:?}, not {snapshot}: the store was edited by hand",
                segment.snapshot
            ));
        }
        if digest_of(&segment.revisions) != segment.sha256 {
            return Err(format!("segment {what} does not match its sha256: it is damaged"));
        }
        if segment.name() != *name || !ascending(&segment.revisions) {
            return Err(format!("segment {what} holds other revisions than its name says: it is damaged"));
        }
        Ok(segment)
    }
}

fn ascending(revisions: &[Revision]) -> bool {
    revisions.windows(2).all(|w| w[0].revision < w[1].revision)
}

/// How far the chain of a snapshot reaches: the segments that continue each other from
/// `chain_from + 1`, in order (one that overlaps the chain and reaches further continues it: the
/// same history, applied once), and where a gap stops it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    pub segments: Vec<SegmentName>,
    /// Why the chain stops before a segment the store holds, if it does.
    pub broken: Option<String>,
}

impl Chain {
    /// The last revision the chain covers (`chain_from` with no segment).
    pub(crate) fn last_revision(&self, chain_from: i64) -> i64 {
        self.segments.last().map_or(chain_from, |s| s.last)
    }
}

/// The chain of a snapshot whose segments the store lists as `names` (any order): from
/// `chain_from + 1` on, each segment that starts at or before the next revision needed and reaches
/// past it; a segment after a gap ends it (`broken` says which revisions are missing).
pub(crate) fn chain(chain_from: i64, mut names: Vec<SegmentName>) -> Chain {
    names.sort_by_key(|n| (n.first, n.last));
    let mut segments = Vec::new();
    let mut next = chain_from + 1;
    for name in names {
        if name.first == next {
            next = name.last + 1;
            segments.push(name);
            continue;
        }
        if name.last < next {
            // What the chain covers already (a sidecar that wrote a segment twice): not read.
            continue;
        }
        if name.first < next {
            // It overlaps the chain and reaches further: two sidecars that both believed for a
            // moment that their member led. Their segments hold the same history (revisions are
            // the cluster's), and a replay applies each revision once (`cut` skips what it
            // applied), so the chain goes on through it.
            next = name.last + 1;
            segments.push(name);
            continue;
        }
        let broken =
            format!("revisions {next}..{} are missing before segment {}", name.first - 1, name.file_name());
        return Chain { segments, broken: Some(broken) };
    }
    Chain { segments, broken: None }
}

pub(crate) use crate::decide::restore::RestorePoint as Target;

/// What a restore replays: the segments to read, and the point it stops at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplayPlan {
    pub segments: Vec<SegmentName>,
    /// The last revision replayed (for `Target::Time`, an upper bound until the segments are read:
    /// [`cut`] finds the exact one).
    pub to_revision: i64,
}

/// The segments a restore to `target` reads, from a snapshot whose chain starts after
/// `chain_from`, taken at `snapshot_ms`; an error names what cannot be reached and what to do.
pub(crate) fn replay_plan(
    chain_from: i64,
    snapshot_ms: u64,
    chain: &Chain,
    target: Target,
) -> Result<ReplayPlan, String> {
    let newest = chain.last_revision(chain_from);
    match target {
        Target::Newest => Ok(ReplayPlan { segments: chain.segments.clone(), to_revision: newest }),
        Target::Revision(n) if n <= chain_from => Err(format!(
            "--restore-to-revision {n} is at or before the snapshot's revision {chain_from}: restore from an older snapshot, or leave --restore-to-revision out"
        )),
        Target::Revision(n) if n > newest => Err(format!(
            "--restore-to-revision {n} is past the newest revision this snapshot's chain reaches ({newest}{}): see `etcd-bootstrap backup list`",
            broken_note(chain)
        )),
        Target::Revision(n) => {
            let segments = chain.segments.iter().take_while(|s| s.first <= n).cloned().collect();
            Ok(ReplayPlan { segments, to_revision: n })
        }
        Target::Time(ms) if ms < snapshot_ms => Err(format!(
            "--restore-to-time {} is before the snapshot was taken ({}): restore from an older snapshot",
            crate::duration::rfc3339_ms(ms),
            crate::duration::rfc3339_ms(snapshot_ms)
        )),
        Target::Time(ms) => {
            // Every segment that ends at or before the time, and the first one after it (whose
            // revisions up to the time count).
            let mut segments = Vec::new();
            for s in &chain.segments {
                segments.push(s.clone());
                if s.last_ms > ms {
                    break;
                }
            }
            let to_revision = segments.last().map_or(chain_from, |s| s.last);
            Ok(ReplayPlan { segments, to_revision })
        }
    }
}

fn broken_note(chain: &Chain) -> String {
    chain.broken.as_ref().map(|b| format!("; the chain stops there because {b}")).unwrap_or_default()
}

/// The revisions of `segments` (read in chain order) a restore applies: after `restored` (the
/// revision the restored snapshot holds) and up to `target`. For a time, the revisions stop
/// before the first one received after it. Returns them and the last revision applied.
pub(crate) fn cut(segments: &[Segment], restored: i64, target: Target) -> (Vec<&Revision>, i64) {
    let mut out = Vec::new();
    let mut last = restored;
    for r in segments.iter().flat_map(|s| s.revisions.iter()) {
        let past = match target {
            Target::Newest => false,
            Target::Revision(n) => r.revision > n,
            Target::Time(ms) => r.unix_ms > ms,
        };
        if past {
            break;
        }
        if r.revision > restored {
            last = r.revision;
            out.push(r);
        }
    }
    (out, last)
}

/// One batch of a replay: the last change of each key over a run of revisions, as one
/// transaction (a transaction may name a key once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch<'a> {
    pub changes: Vec<&'a Change>,
    /// The last revision the batch brings the data to.
    pub through: i64,
}

/// The replay in transactions of at most `max_ops` keys and about `max_bytes` of keys and values
/// (a revision larger than that is a transaction of its own). With `one_per_revision` each revision
/// is its own transaction (the restored revision then ends exactly where the source's did: for a
/// restore tool that cannot move the revision past it); otherwise consecutive revisions merge,
/// keeping each key's last change.
pub(crate) fn batches<'a>(
    revisions: &[&'a Revision],
    max_ops: usize,
    max_bytes: usize,
    one_per_revision: bool,
) -> Vec<Batch<'a>> {
    let max_ops = max_ops.max(1);
    let mut out: Vec<Batch<'a>> = Vec::new();
    let mut keys: BTreeMap<&'a [u8], usize> = BTreeMap::new();
    let mut current = Batch { changes: Vec::new(), through: 0 };
    let mut bytes = 0usize;
    for r in revisions {
        let size: usize = r.changes.iter().map(Change::size).sum();
        let fits = !one_per_revision
            && current.changes.len() + r.changes.len() <= max_ops
            && bytes + size <= max_bytes;
        if !current.changes.is_empty() && !fits {
            out.push(std::mem::replace(&mut current, Batch { changes: Vec::new(), through: 0 }));
            keys.clear();
            bytes = 0;
        }
        bytes += size;
        for change in &r.changes {
            match keys.get(change.key()) {
                Some(&i) => current.changes[i] = change,
                None => {
                    keys.insert(change.key(), current.changes.len());
                    current.changes.push(change);
                }
            }
        }
        current.through = r.revision;
    }
    if !current.changes.is_empty() {
        out.push(current);
    }
    out
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

mod b64 {
    use base64::Engine;

    pub(super) fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Change {
        Change::Put { key: key.into(), value: value.into(), lease: 0 }
    }

    fn rev(revision: i64, unix_ms: u64, changes: Vec<Change>) -> Revision {
        Revision { revision, unix_ms, changes }
    }

    fn name(first: i64, last: i64, last_ms: u64) -> SegmentName {
        SegmentName { first, last, last_ms }
    }

    #[test]
    fn names_sort_by_revision_and_round_trip() {
        let n = name(101, 250, 1_795_833_000_123);
        assert_eq!(n.file_name(), "r0000000000000000101-r0000000000000000250-t1795833000123.json");
        assert_eq!(SegmentName::parse(&n.file_name()), Some(n.clone()));
        assert!(name(9, 9, 1).file_name() < name(10, 10, 0).file_name());
        for bad in
            ["r1-r2.json", "x.json", "r2-r1-t5.json", "r1-r2-t3.json.tmp", "r0-r2-t3.json", "r1-r2-t3-x.json"]
        {
            assert_eq!(SegmentName::parse(bad), None, "{bad}");
        }
        assert_eq!(
            segment_key("etcd/", "snap", &name(1, 2, 3)),
            "etcd/snap.deltas/".to_string() + &name(1, 2, 3).file_name()
        );
    }

    #[test]
    fn a_segment_round_trips_and_a_damaged_one_never_counts() {
        let mut leases = BTreeMap::new();
        leases.insert(7, 30);
        let revisions = vec![
            rev(
                11,
                1000,
                vec![put("a", "1"), Change::Put { key: b"\xff\x00".to_vec(), value: vec![0, 1], lease: 7 }],
            ),
            rev(12, 2000, vec![Change::Delete { key: "a".into() }]),
        ];
        let s = Segment::new("snap", 10, revisions.clone(), leases).expect("segment");
        assert_eq!(s.name(), name(10, 12, 2000));
        let bytes = s.to_bytes();
        assert_eq!(Segment::parse("snap", &s.name(), &bytes).expect("parses"), s);
        assert!(Segment::parse("other", &s.name(), &bytes).expect_err("snapshot").contains("belongs to"));
        assert!(Segment::parse("snap", &name(10, 13, 2000), &bytes)
            .expect_err("name")
            .contains("other revisions"));
        assert!(Segment::parse("snap", &s.name(), &bytes[..bytes.len() - 5])
            .expect_err("cut")
            .contains("not valid"));
        let text = String::from_utf8(bytes).expect("utf8").replace("\"MQ==\"", "\"Mg==\"");
        assert!(Segment::parse("snap", &s.name(), text.as_bytes()).expect_err("edited").contains("sha256"));
        assert_eq!(
            Segment::new("snap", 12, revisions.clone(), BTreeMap::new()),
            None,
            "first after a revision"
        );
        let mut backwards = revisions;
        backwards.reverse();
        assert_eq!(Segment::new("snap", 1, backwards, BTreeMap::new()), None, "not ascending");
        assert_eq!(Segment::new("snap", 1, Vec::new(), BTreeMap::new()), None, "empty");
    }

    #[test]
    fn the_chain_follows_from_the_snapshot_and_stops_at_a_gap_or_overlap() {
        // (chain_from, segments as (first, last), segments in the chain, broken?)
        type Ranges<'a> = &'a [(i64, i64)];
        let rows: &[(i64, Ranges<'_>, Ranges<'_>, bool)] = &[
            (10, &[], &[], false),
            (10, &[(11, 20), (21, 21), (22, 40)], &[(11, 20), (21, 21), (22, 40)], false),
            (10, &[(22, 40), (11, 20), (21, 21)], &[(11, 20), (21, 21), (22, 40)], false),
            (10, &[(11, 20), (23, 30)], &[(11, 20)], true),
            (10, &[(12, 20)], &[], true),
            (10, &[(11, 20), (15, 25)], &[(11, 20), (15, 25)], false),
            (10, &[(11, 20), (15, 25), (26, 30)], &[(11, 20), (15, 25), (26, 30)], false),
            (10, &[(11, 20), (12, 18), (21, 30)], &[(11, 20), (21, 30)], false),
            (10, &[(11, 20), (11, 20), (21, 22)], &[(11, 20), (21, 22)], false),
        ];
        for (from, given, want, broken) in rows {
            let names = given.iter().map(|(f, l)| name(*f, *l, 0)).collect();
            let c = chain(*from, names);
            let got: Vec<(i64, i64)> = c.segments.iter().map(|s| (s.first, s.last)).collect();
            assert_eq!(got, *want, "{given:?}");
            assert_eq!(c.broken.is_some(), *broken, "{given:?}: {:?}", c.broken);
        }
    }

    #[test]
    fn a_restore_reads_the_segments_up_to_its_point() {
        let c = chain(10, vec![name(11, 20, 5_000), name(21, 30, 9_000), name(31, 40, 12_000)]);
        let firsts = |p: &ReplayPlan| p.segments.iter().map(|s| s.first).collect::<Vec<_>>();
        let newest = replay_plan(10, 1_000, &c, Target::Newest).expect("newest");
        assert_eq!((firsts(&newest), newest.to_revision), (vec![11, 21, 31], 40));
        let at = replay_plan(10, 1_000, &c, Target::Revision(21)).expect("21");
        assert_eq!((firsts(&at), at.to_revision), (vec![11, 21], 21));
        let at = replay_plan(10, 1_000, &c, Target::Revision(20)).expect("20");
        assert_eq!(firsts(&at), vec![11]);
        assert!(replay_plan(10, 1_000, &c, Target::Revision(10))
            .expect_err("old")
            .contains("older snapshot"));
        assert!(replay_plan(10, 1_000, &c, Target::Revision(41))
            .expect_err("new")
            .contains("past the newest"));
        let t = replay_plan(10, 1_000, &c, Target::Time(9_500)).expect("time");
        assert_eq!(firsts(&t), vec![11, 21, 31], "the segment that passes the time is read too");
        let t = replay_plan(10, 1_000, &c, Target::Time(9_000)).expect("time");
        assert_eq!(firsts(&t), vec![11, 21, 31]);
        let t = replay_plan(10, 1_000, &c, Target::Time(8_999)).expect("time");
        assert_eq!(firsts(&t), vec![11, 21]);
        assert!(replay_plan(10, 1_000, &c, Target::Time(999))
            .expect_err("before")
            .contains("before the snapshot"));
        let empty = chain(10, Vec::new());
        assert_eq!(replay_plan(10, 1_000, &empty, Target::Newest).expect("none").to_revision, 10);
    }

    #[test]
    fn the_replay_skips_what_the_snapshot_holds_and_stops_at_the_point() {
        let s1 = Segment::new(
            "s",
            11,
            vec![rev(11, 100, vec![put("a", "1")]), rev(12, 200, vec![put("b", "1")])],
            BTreeMap::new(),
        )
        .expect("s1");
        let s2 = Segment::new(
            "s",
            13,
            vec![rev(13, 300, vec![put("a", "2")]), rev(15, 400, vec![put("c", "1")])],
            BTreeMap::new(),
        )
        .expect("s2");
        let segs = [s1, s2];
        let revs = |t| cut(&segs, 11, t).0.iter().map(|r| r.revision).collect::<Vec<_>>();
        assert_eq!(revs(Target::Newest), [12, 13, 15], "11 is in the snapshot");
        assert_eq!(revs(Target::Revision(13)), [12, 13]);
        assert_eq!(cut(&segs, 11, Target::Revision(14)).1, 13, "the last revision at or before the point");
        assert_eq!(revs(Target::Time(299)), [12]);
        assert_eq!(revs(Target::Time(300)), [12, 13]);
        assert_eq!(cut(&segs, 20, Target::Newest), (Vec::new(), 20), "nothing past the restored revision");
    }

    #[test]
    fn batches_keep_each_keys_last_change_and_respect_the_size() {
        let r1 = rev(1, 0, vec![put("a", "1"), put("b", "1")]);
        let r2 = rev(2, 0, vec![put("a", "2")]);
        let r3 = rev(3, 0, vec![Change::Delete { key: "b".into() }, put("c", "1")]);
        let all = [&r1, &r2, &r3];
        let merged = batches(&all, 100, 1 << 20, false);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].through, 3);
        assert_eq!(
            merged[0].changes,
            vec![&put("a", "2"), &Change::Delete { key: "b".into() }, &put("c", "1")]
        );
        let each = batches(&all, 100, 1 << 20, true);
        assert_eq!(each.iter().map(|b| b.through).collect::<Vec<_>>(), [1, 2, 3]);
        let small = batches(&all, 3, 1 << 20, false);
        assert_eq!(small.iter().map(|b| b.through).collect::<Vec<_>>(), [2, 3]);
        assert!(batches(&[], 10, 10, false).is_empty());
        let by_bytes = batches(&all, 100, 5, false);
        assert_eq!(
            by_bytes.iter().map(|b| b.through).collect::<Vec<_>>(),
            [1, 3],
            "5 bytes: r1 (4) alone, then r2 (2) and r3 (3)"
        );
    }
}
