//! The replay of a point-in-time restore as raft log entries, written the way etcd's own WAL
//! encoder writes them. Pure: requests in, the bytes to append to a restored member's WAL out.
//!
//! `etcdutl snapshot restore` (and 3.4's `etcdctl`) leaves a member whose WAL holds the initial
//! membership as committed entries up to index `n`, a raft snapshot at `n`, and a database whose
//! consistent index is `n`. The replay appends the chain's changes after that as more committed
//! entries of the same term (an `etcdserverpb.InternalRaftRequest` each: a lease grant, or a
//! transaction of puts and deletes) and a hard state that commits them. When etcd starts on the
//! data dir it applies every committed entry past its consistent index through its own apply
//! path, exactly as after a crash: every initial member appends the same entries (the same
//! chain, cut at the same point), so every member applies the same changes and ends with the
//! same data.
//!
//! The requests carry the user `root` and the largest auth revision, so a keyspace with
//! authentication enabled applies them too (etcd lets a root-role user do anything; without
//! authentication the fields are ignored).

use crate::backup::segment::Change;
use crate::observe::datadir::{crc32c_update, WalTail};

/// `walpb.Record.type` of a raft entry and of a hard state.
const ENTRY_TYPE: u64 = 2;
const STATE_TYPE: u64 = 3;

/// One replayed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request<'a> {
    /// `LeaseGrant { TTL, ID }`: a lease a replayed key names. Granting one the database already
    /// holds is refused by etcd and changes nothing.
    LeaseGrant { id: i64, ttl: i64 },
    /// A transaction of puts and deletes (no compares): one revision.
    Txn(Vec<&'a Change>),
}

/// Whether `tail` is a WAL as a restore leaves it: every entry committed, a term set. Appending
/// to any other WAL is refused.
pub(crate) fn check_restored(tail: &WalTail) -> Result<(), String> {
    if tail.commit != tail.last_index || tail.term == 0 {
        return Err(format!(
            "the restored WAL is not the one a restore writes (term {}, commit {}, last index {})",
            tail.term, tail.commit, tail.last_index
        ));
    }
    Ok(())
}

/// The frames of `requests` as entries at the indexes after `tail`'s last one, at its term, and
/// the tail they leave (its end moved past them, its CRC and last index advanced; not committed
/// until [`commit`]).
pub(crate) fn entries(tail: &WalTail, requests: &[Request<'_>]) -> (Vec<u8>, WalTail) {
    let mut bytes = Vec::new();
    let mut next = *tail;
    for request in requests {
        next.last_index += 1;
        let mut entry = Vec::new();
        // raftpb.Entry { Type = 1 (EntryNormal: 0), Term = 2, Index = 3, Data = 4 }
        uint(&mut entry, 1, 0);
        uint(&mut entry, 2, tail.term);
        uint(&mut entry, 3, next.last_index);
        len_field(&mut entry, 4, &raft_request(next.last_index, request));
        next.crc = frame(&mut bytes, ENTRY_TYPE, next.crc, &entry);
    }
    next.end += bytes.len() as u64;
    (bytes, next)
}

/// The frame of a hard state that commits every entry up to `tail`'s last (term and vote kept).
pub(crate) fn commit(tail: &WalTail) -> (Vec<u8>, WalTail) {
    let mut bytes = Vec::new();
    // raftpb.HardState { term = 1, vote = 2, commit = 3 }
    let mut state = Vec::new();
    uint(&mut state, 1, tail.term);
    uint(&mut state, 2, tail.vote);
    uint(&mut state, 3, tail.last_index);
    let crc = frame(&mut bytes, STATE_TYPE, tail.crc, &state);
    let next = WalTail { end: tail.end + bytes.len() as u64, crc, commit: tail.last_index, ..*tail };
    (bytes, next)
}

/// Whether the replayed changes (`change_bytes` of keys and values) fit etcd's quota on top of
/// the restored database (`database_bytes`): etcd refuses a write past its quota, and a refused
/// replayed entry would be a lost write. The check is the sure case (the changes alone pass the
/// quota); the database grows by more than the bytes it stores, so a replay close to the quota
/// may still raise NOSPACE when the restored cluster applies it.
pub(crate) fn fits_quota(database_bytes: u64, change_bytes: u64, quota: u64) -> Result<(), String> {
    if database_bytes.saturating_add(change_bytes) <= quota {
        return Ok(());
    }
    Err(format!(
        "the snapshot ({database_bytes} bytes) and the {change_bytes} bytes of keys and values its delta segments replay exceed etcd's --quota-backend-bytes ({quota}): set the quota at least to the source cluster's, or restore to an earlier point"
    ))
}

/// An `etcdserverpb.InternalRaftRequest { header = 100, txn = 6, lease_grant = 8 }`.
fn raft_request(id: u64, request: &Request<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    // RequestHeader { ID = 1, username = 2, auth_revision = 3 }
    let mut header = Vec::new();
    uint(&mut header, 1, id);
    len_field(&mut header, 2, b"root");
    uint(&mut header, 3, u64::MAX);
    len_field(&mut out, 100, &header);
    match request {
        Request::LeaseGrant { id, ttl } => {
            // LeaseGrantRequest { TTL = 1, ID = 2 }
            let mut grant = Vec::new();
            uint(&mut grant, 1, *ttl as u64);
            uint(&mut grant, 2, *id as u64);
            len_field(&mut out, 8, &grant);
        }
        Request::Txn(changes) => {
            // TxnRequest { success = 2 } of RequestOp { request_put = 2, request_delete_range = 3 }
            let mut txn = Vec::new();
            for change in changes {
                let mut op = Vec::new();
                match change {
                    Change::Put { key, value, lease } => {
                        // PutRequest { key = 1, value = 2, lease = 3 }
                        let mut put = Vec::new();
                        len_field(&mut put, 1, key);
                        len_field(&mut put, 2, value);
                        uint(&mut put, 3, *lease as u64);
                        len_field(&mut op, 2, &put);
                    }
                    Change::Delete { key } => {
                        // DeleteRangeRequest { key = 1 }
                        let mut delete = Vec::new();
                        len_field(&mut delete, 1, key);
                        len_field(&mut op, 3, &delete);
                    }
                }
                len_field(&mut txn, 2, &op);
            }
            len_field(&mut out, 6, &txn);
        }
    }
    out
}

/// Append one frame (etcd's encoder: an 8-byte little-endian length field, with `0x80|pad` in
/// the top byte when padded to 8 bytes; a `walpb.Record { type = 1, crc = 2, data = 3 }`; zero
/// padding) whose CRC continues `crc`; returns the new running CRC.
fn frame(out: &mut Vec<u8>, kind: u64, crc: u32, data: &[u8]) -> u32 {
    let crc = crc32c_update(crc, data);
    let mut record = Vec::with_capacity(data.len() + 16);
    uint(&mut record, 1, kind);
    uint(&mut record, 2, u64::from(crc));
    len_field(&mut record, 3, data);
    let pad = (8 - record.len() % 8) % 8;
    let mut length = record.len() as u64;
    if pad != 0 {
        length |= (0x80 | pad as u64) << 56;
    }
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&record);
    out.resize(out.len() + pad, 0);
    crc
}

/// A varint field; zero is left out, as proto3 does.
fn uint(out: &mut Vec<u8>, field: u64, value: u64) {
    if value != 0 {
        varint(out, field << 3);
        varint(out, value);
    }
}

/// A length-delimited field (always written: an empty message still says it is there).
fn len_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::datadir::read_wal_tail;

    fn put(key: &str, value: &str, lease: i64) -> Change {
        Change::Put { key: key.into(), value: value.into(), lease }
    }

    /// Append `requests` and commit them, as the replay does.
    fn append(bytes: &mut Vec<u8>, tail: &WalTail, requests: &[Request<'_>]) -> WalTail {
        check_restored(tail).expect("a restored WAL");
        let (frames, after) = entries(tail, requests);
        let (state, after) = commit(&after);
        let end = tail.end as usize;
        bytes.splice(end..end, frames.into_iter().chain(state));
        after
    }

    /// A WAL as a restore leaves it, read back by the decoder: its bytes and tail.
    fn restored_tail() -> (Vec<u8>, WalTail) {
        // Three membership entries are stood in for by three empty transactions at term 1,
        // then a hard state committing them; etcd preallocates with zeros.
        let empty = WalTail { end: 0, crc: 0, last_index: 0, term: 1, vote: 7, commit: 0 };
        let mut bytes = vec![0u8; 64];
        let (frames, after) =
            entries(&empty, &[Request::Txn(vec![]), Request::Txn(vec![]), Request::Txn(vec![])]);
        let (state, _) = commit(&after);
        bytes.splice(0..0, frames.into_iter().chain(state));
        let read = read_wal_tail(&bytes).expect("the decoder reads the encoder's frames");
        (bytes, read)
    }

    #[test]
    fn appended_frames_are_read_back_with_their_crcs_index_and_hard_state() {
        let (mut bytes, tail) = restored_tail();
        assert_eq!((tail.last_index, tail.commit, tail.term, tail.vote), (3, 3, 1, 7));
        let changes = [put("a", "1", 0), Change::Delete { key: b"b".to_vec() }, put("c", "", 5)];
        let requests = [
            Request::LeaseGrant { id: 5, ttl: 30 },
            Request::Txn(changes.iter().collect()),
            Request::Txn(vec![]),
        ];
        let after = append(&mut bytes, &tail, &requests);
        assert_eq!((after.last_index, after.commit), (6, 6));
        assert_eq!((after.end - tail.end) % 8, 0, "frames are 8-byte aligned");
        let read = read_wal_tail(&bytes).expect("read back");
        assert_eq!(read, after, "the decoder sees what the encoder says it wrote");
        // A flipped byte in an appended record fails the CRC chain.
        let mut broken = bytes.clone();
        broken[tail.end as usize + 40] ^= 0x01;
        assert!(read_wal_tail(&broken).is_err());
    }

    #[test]
    fn the_request_encodes_header_txn_and_lease_fields_etcd_reads() {
        let change = put("k", "v", 9);
        let txn = raft_request(12, &Request::Txn(vec![&change]));
        // header (100, len): ID 12, "root", auth revision u64::MAX
        assert_eq!(&txn[..3], &[0xa2, 0x06, 19]);
        assert_eq!(&txn[3..5], &[0x08, 12]);
        assert_eq!(&txn[5..11], &[0x12, 4, b'r', b'o', b'o', b't']);
        assert_eq!(txn[11], 0x18);
        // txn (6): success (2) RequestOp { request_put (2): PutRequest { 1: "k", 2: "v", 3: 9 } }
        assert_eq!(&txn[22..], &[0x32, 12, 0x12, 10, 0x12, 8, 0x0a, 1, b'k', 0x12, 1, b'v', 0x18, 9]);
        let grant = raft_request(1, &Request::LeaseGrant { id: 300, ttl: 60 });
        assert_eq!(&grant[22..], &[0x42, 5, 0x08, 60, 0x10, 0xac, 0x02]);
    }

    #[test]
    fn a_wal_that_is_not_freshly_restored_is_refused() {
        let (_, tail) = restored_tail();
        assert_eq!(check_restored(&tail), Ok(()));
        let uncommitted = WalTail { commit: 2, ..tail };
        assert!(check_restored(&uncommitted).unwrap_err().contains("not the one a restore writes"));
        let no_term = WalTail { term: 0, ..tail };
        assert!(check_restored(&no_term).is_err());
    }

    #[test]
    fn the_replay_must_fit_the_quota_with_the_database() {
        // (database, changes, quota, fits)
        let rows = [
            (100, 0, 100, true),
            (60, 40, 100, true),
            (60, 41, 100, false),
            (0, 2, 1, false),
            (u64::MAX, 1, u64::MAX, true),
        ];
        for (db, changes, quota, fits) in rows {
            let got = fits_quota(db, changes, quota);
            assert_eq!(got.is_ok(), fits, "{db} + {changes} against {quota}: {got:?}");
            if let Err(e) = got {
                assert!(e.contains("--quota-backend-bytes"), "{e}");
            }
        }
    }

    #[test]
    fn varints_match_protobuf() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        varint(&mut out, u64::MAX);
        assert_eq!(out[..2], [0xac, 0x02]);
        assert_eq!(out.len(), 2 + 10);
    }
}
