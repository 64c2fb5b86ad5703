//! etcd's WAL, as far as the bootstrap reads it: the metadata record of the first WAL file,
//! which holds this member's ID and its cluster's ID.
//!
//! The file is a sequence of frames (an 8-byte little-endian length field whose top byte is
//! `0x80|pad` when padded, a `walpb.Record{type=1, crc=2, data=3}` protobuf, padding). Pure: bytes
//! in, IDs or an error out; any input is safe.

use crate::observed::WalMeta;

/// `walpb.Record.type` of the metadata record.
const METADATA_TYPE: i64 = 1;
/// `walpb.Record.type` of the record that carries the CRC of the previous file.
const CRC_TYPE: i64 = 4;
/// Size of a frame's length field.
const FRAME_HEADER_BYTES: usize = 8;

/// Parse the metadata record of a WAL file's bytes.
///
/// The file is a sequence of frames (an 8-byte little-endian length field, the `walpb.Record`
/// protobuf, padding); frames are read from the start until the first metadata record (type 1),
/// whose data is an `etcdserverpb.Metadata { NodeID = 1, ClusterID = 2 }`. CRCs are checked the
/// way etcd checks them (CRC-32C, chained from the file's CRC record). Any input is safe: errors,
/// never panics.
pub fn read_wal_metadata(bytes: &[u8]) -> Result<WalMeta, String> {
    scan(bytes).map_err(Scan::into_message)
}

/// Why a scan found no metadata.
#[derive(Debug)]
pub(super) enum Scan {
    /// The bytes end before the metadata record: more bytes of the same file may complete it.
    Truncated(String),
    /// The bytes are not a WAL, or hold no metadata record.
    Bad(String),
}

impl Scan {
    pub(super) fn into_message(self) -> String {
        match self {
            Scan::Truncated(m) | Scan::Bad(m) => m,
        }
    }
}

/// One decoded `walpb.Record`.
#[derive(Debug, Default)]
struct Record<'a> {
    kind: i64,
    crc: u32,
    data: &'a [u8],
}

/// Walk the frames of `bytes` up to the first metadata record and decode it.
pub(super) fn scan(bytes: &[u8]) -> Result<WalMeta, Scan> {
    let mut offset = 0;
    let mut crc = 0u32;
    while let Some((rec, next)) = next_record(bytes, offset, &mut crc)? {
        if rec.kind == METADATA_TYPE {
            return decode_metadata(rec.data)
                .map_err(|e| Scan::Bad(format!("metadata record at offset {offset}: {e}")));
        }
        offset = next;
    }
    Err(Scan::Bad(format!("no metadata record: the records end at offset {offset}")))
}

/// The record at `offset` and the offset of the next one, its CRC checked the way etcd checks
/// it (CRC-32C over the data, chained through `crc`; a CRC record carries the running CRC of the
/// previous file and restarts the chain from it), or `None` at a zero length field.
fn next_record<'a>(
    bytes: &'a [u8],
    offset: usize,
    crc: &mut u32,
) -> Result<Option<(Record<'a>, usize)>, Scan> {
    let Some((body, next)) = next_frame(bytes, offset)? else {
        return Ok(None);
    };
    let rec = decode_record(body).map_err(|e| Scan::Bad(format!("record at offset {offset}: {e}")))?;
    if rec.kind == CRC_TYPE {
        if *crc != 0 && rec.crc != *crc {
            return Err(crc_mismatch(offset, &rec, *crc));
        }
        *crc = rec.crc;
    } else {
        let computed = crc32c_update(*crc, rec.data);
        if rec.crc != computed {
            return Err(crc_mismatch(offset, &rec, computed));
        }
        *crc = computed;
    }
    Ok(Some((rec, next)))
}

/// `walpb.Record.type` of a raft entry, a hard state and a snapshot record.
const ENTRY_TYPE: i64 = 2;
const STATE_TYPE: i64 = 3;
const SNAPSHOT_TYPE: i64 = 5;

/// Where the records of a WAL file end, and the raft state they leave: what an appender needs to
/// continue the file the way etcd's own encoder would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalTail {
    /// The offset just past the last record: the next frame goes here.
    pub end: u64,
    /// The running CRC after the last record (the next record's chains from it).
    pub crc: u32,
    /// The highest raft index of an entry or snapshot record.
    pub last_index: u64,
    /// The last hard state (`raftpb.HardState { term = 1, vote = 2, commit = 3 }`).
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

/// Read every record of a WAL file's bytes (CRCs checked as etcd checks them) up to the first
/// zero length field or the end of the bytes, and return where they end. Pure; any input is
/// safe.
pub fn read_wal_tail(bytes: &[u8]) -> Result<WalTail, String> {
    let mut tail = WalTail { end: 0, crc: 0, last_index: 0, term: 0, vote: 0, commit: 0 };
    let mut offset = 0;
    while offset < bytes.len() {
        let Some((rec, next)) = next_record(bytes, offset, &mut tail.crc).map_err(Scan::into_message)? else {
            break;
        };
        let fields = |what: &str| {
            varint_fields(rec.data).map_err(|e| format!("{what} record at offset {offset}: {e}"))
        };
        match rec.kind {
            // raftpb.Entry { Type = 1, Term = 2, Index = 3, Data = 4 }
            ENTRY_TYPE => tail.last_index = tail.last_index.max(fields("entry")?[3]),
            STATE_TYPE => {
                let f = fields("state")?;
                (tail.term, tail.vote, tail.commit) = (f[1], f[2], f[3]);
            }
            // walpb.Snapshot { index = 1, term = 2 }
            SNAPSHOT_TYPE => tail.last_index = tail.last_index.max(fields("snapshot")?[1]),
            _ => {}
        }
        offset = next;
    }
    tail.end = offset as u64;
    Ok(tail)
}

/// The varint fields 1 to 3 of a protobuf message (0 where absent); other fields skipped.
fn varint_fields(bytes: &[u8]) -> Result<[u64; 4], String> {
    let mut reader = ProtoReader::new(bytes);
    let mut out = [0u64; 4];
    while let Some((field, wire)) = reader.key()? {
        match (field, wire) {
            (1..=3, WIRE_VARINT) => out[field as usize] = reader.varint()?,
            _ => reader.skip(wire)?,
        }
    }
    Ok(out)
}

/// The error for a record whose stored CRC is not the computed one.
fn crc_mismatch(offset: usize, rec: &Record, computed: u32) -> Scan {
    Scan::Bad(format!(
        "record at offset {offset} (type {}) fails its crc check: stored {:#010x}, computed {computed:#010x}",
        rec.kind, rec.crc
    ))
}

/// The frame at `offset`: its record bytes and the offset of the next frame, or `None` at a
/// zero length field (etcd preallocates WAL files with zeros), which ends the records.
fn next_frame(bytes: &[u8], offset: usize) -> Result<Option<(&[u8], usize)>, Scan> {
    let rest = bytes.get(offset..).unwrap_or_default();
    if rest.is_empty() {
        return Err(Scan::Truncated(format!("the file ends at offset {offset} before a metadata record")));
    }
    let Some(header) = rest.first_chunk::<FRAME_HEADER_BYTES>() else {
        return Err(Scan::Truncated(format!(
            "the frame header at offset {offset} is cut short: {} of {FRAME_HEADER_BYTES} bytes",
            rest.len()
        )));
    };
    let length_field = u64::from_le_bytes(*header);
    if length_field == 0 {
        return Ok(None);
    }
    let (record_len, pad_len) = frame_size(length_field);
    let available = rest.len() - FRAME_HEADER_BYTES; // first_chunk succeeded, cannot underflow
    let body = usize::try_from(record_len)
        .ok()
        .zip(usize::try_from(pad_len).ok())
        .filter(|(r, p)| r.checked_add(*p).is_some_and(|total| total <= available))
        .and_then(|(r, p)| Some((rest.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + r)?, r + p)));
    let Some((record, body_len)) = body else {
        return Err(Scan::Truncated(format!(
            "frame at offset {offset} declares {record_len} record bytes and {pad_len} padding \
             bytes, but only {available} bytes follow"
        )));
    };
    Ok(Some((record, offset + FRAME_HEADER_BYTES + body_len)))
}

/// Split a frame's length field: the record length is in the low 56 bits; when the top bit is
/// set, the low 3 bits of the top byte are the number of padding bytes after the record.
fn frame_size(length_field: u64) -> (u64, u64) {
    let record_len = length_field & 0x00ff_ffff_ffff_ffff;
    let top = length_field >> 56;
    let pad_len = if top & 0x80 != 0 { top & 0x7 } else { 0 };
    (record_len, pad_len)
}

/// Decode a `walpb.Record { int64 type = 1; uint32 crc = 2; bytes data = 3; }`.
fn decode_record(bytes: &[u8]) -> Result<Record<'_>, String> {
    let mut reader = ProtoReader::new(bytes);
    let mut rec = Record::default();
    while let Some((field, wire)) = reader.key()? {
        match (field, wire) {
            // int64 and uint32 are varints; like Go, keep the low bits of a longer value.
            (1, WIRE_VARINT) => rec.kind = reader.varint()? as i64,
            (2, WIRE_VARINT) => rec.crc = reader.varint()? as u32,
            (3, WIRE_LEN) => rec.data = reader.len_delimited()?,
            (1..=3, _) => return Err(format!("field {field} has the wrong wire type {wire}")),
            _ => reader.skip(wire)?,
        }
    }
    Ok(rec)
}

/// Decode an `etcdserverpb.Metadata { uint64 NodeID = 1; uint64 ClusterID = 2; }`.
fn decode_metadata(bytes: &[u8]) -> Result<WalMeta, String> {
    let mut reader = ProtoReader::new(bytes);
    let mut meta = WalMeta { member_id: 0, cluster_id: 0 };
    while let Some((field, wire)) = reader.key()? {
        match (field, wire) {
            (1, WIRE_VARINT) => meta.member_id = reader.varint()?,
            (2, WIRE_VARINT) => meta.cluster_id = reader.varint()?,
            (1 | 2, _) => return Err(format!("field {field} has the wrong wire type {wire}")),
            _ => reader.skip(wire)?,
        }
    }
    // etcd never uses ID 0 (raft reserves it for "none"); a zero here means damaged metadata.
    if meta.member_id == 0 {
        return Err("it holds no member id".into());
    }
    if meta.cluster_id == 0 {
        return Err("it holds no cluster id".into());
    }
    Ok(meta)
}

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

/// A bounds-checked cursor over protobuf wire-format bytes.
struct ProtoReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> ProtoReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        ProtoReader { bytes, pos: 0 }
    }

    /// The next field key as (field number, wire type), or `None` at the end of the message.
    fn key(&mut self) -> Result<Option<(u64, u8)>, String> {
        if self.pos >= self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err("field number 0 is invalid protobuf".into());
        }
        Ok(Some((field, (key & 0x7) as u8)))
    }

    /// A base-128 varint of at most 10 bytes; bits beyond 64 are dropped, as Go does.
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.bytes.get(self.pos) else {
                return Err("a varint runs past the end of the record".into());
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint is longer than 10 bytes".into())
    }

    /// The next `n` bytes.
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let slice = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .and_then(|end| Some((self.bytes.get(self.pos..end)?, end)));
        let Some((slice, end)) = slice else {
            let left = self.bytes.len().saturating_sub(self.pos);
            return Err(format!("a field of {n} bytes runs past the end ({left} bytes left)"));
        };
        self.pos = end;
        Ok(slice)
    }

    /// A length-delimited field's bytes.
    fn len_delimited(&mut self) -> Result<&'a [u8], String> {
        let len = self.varint()?;
        self.take(len)
    }

    /// Skip a field of an unknown number.
    fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_FIXED64 => self.take(8).map(drop),
            WIRE_LEN => self.len_delimited().map(drop),
            WIRE_FIXED32 => self.take(4).map(drop),
            _ => Err(format!("unsupported protobuf wire type {wire}")),
        }
    }
}

/// CRC-32C (Castagnoli, reflected polynomial), the checksum of etcd's WAL.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Continue a CRC-32C over `data` (Go's `crc32.Update` with the Castagnoli table).
pub fn crc32c_update(crc: u32, data: &[u8]) -> u32 {
    let mut crc = !crc;
    for &byte in data {
        crc = CRC32C_TABLE[usize::from(crc as u8 ^ byte)] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    use super::super::wal_fixture::{frame, frame_with_pad, metadata, record, varint as put_varint, wal};

    /// The IDs the hand-made WAL files carry (the data dir's tests use them too).
    pub(in crate::observe::datadir) const NODE: u64 = 0x8e9e_05c5_2164_694d;
    pub(in crate::observe::datadir) const CLUSTER: u64 = 0xcdf8_1819_4e3a_8c32;

    pub(in crate::observe::datadir) fn meta() -> WalMeta {
        WalMeta { member_id: NODE, cluster_id: CLUSTER }
    }

    #[test]
    fn crc32c_matches_the_castagnoli_check_value() {
        assert_eq!(crc32c_update(0, b"123456789"), 0xe306_9283);
        // Chaining is the same as one pass.
        assert_eq!(crc32c_update(crc32c_update(0, b"1234"), b"56789"), 0xe306_9283);
    }

    #[test]
    fn metadata_is_found_after_the_crc_record() {
        assert_eq!(read_wal_metadata(&wal(NODE, CLUSTER)), Ok(meta()));
    }

    #[test]
    fn metadata_is_found_in_padded_and_unpadded_frames() {
        let meta_bytes = metadata(NODE, CLUSTER);
        let rec = record(1, crc32c_update(0, &meta_bytes), &meta_bytes);
        for pad in 0..=7 {
            let mut bytes = frame_with_pad(&record(4, 0, &[]), pad);
            bytes.extend(frame_with_pad(&rec, 7 - pad));
            assert_eq!(read_wal_metadata(&bytes), Ok(meta()), "padding {pad}");
        }
    }

    #[test]
    fn metadata_is_found_without_a_crc_record_and_without_trailing_zeros() {
        let meta_bytes = metadata(NODE, CLUSTER);
        let bytes = frame(&record(1, crc32c_update(0, &meta_bytes), &meta_bytes));
        assert_eq!(read_wal_metadata(&bytes), Ok(meta()));
    }

    #[test]
    fn crc_chain_starts_from_the_crc_record_of_a_later_file() {
        let prev = 0x1234_5678;
        let state = b"state bytes";
        let state_crc = crc32c_update(prev, state);
        let meta_bytes = metadata(NODE, CLUSTER);
        let mut bytes = frame(&record(4, prev, &[]));
        bytes.extend(frame(&record(3, state_crc, state)));
        bytes.extend(frame(&record(1, crc32c_update(state_crc, &meta_bytes), &meta_bytes)));
        assert_eq!(read_wal_metadata(&bytes), Ok(meta()), "records before metadata are skipped");
    }

    #[test]
    fn unknown_protobuf_fields_are_skipped() {
        let mut meta_bytes = metadata(NODE, CLUSTER);
        meta_bytes.extend([(9 << 3) | 5, 1, 2, 3, 4]); // fixed32 field 9
        meta_bytes.extend([(10 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8]); // fixed64 field 10
        let mut rec = record(1, crc32c_update(0, &meta_bytes), &meta_bytes);
        rec.extend([(7 << 3) | 2, 2, 0xaa, 0xbb]); // bytes field 7
        rec.extend([7 << 3, 0x96, 0x01]); // varint field 7
        assert_eq!(read_wal_metadata(&frame(&rec)), Ok(meta()));
    }

    #[test]
    fn every_truncation_before_the_end_of_the_metadata_frame_is_an_error() {
        let bytes = wal(NODE, CLUSTER);
        let end_of_metadata = bytes.len() - 64;
        for cut in 0..bytes.len() {
            let result = read_wal_metadata(&bytes[..cut]);
            if cut < end_of_metadata {
                assert!(result.is_err(), "cut at {cut} gave {result:?}");
            } else {
                assert_eq!(result, Ok(meta()), "cut at {cut}");
            }
        }
    }

    #[test]
    fn truncation_inside_a_frame_is_reported_as_truncated() {
        let bytes = wal(NODE, CLUSTER);
        assert!(matches!(scan(&bytes[..3]), Err(Scan::Truncated(_))));
        assert!(matches!(scan(&bytes[..20]), Err(Scan::Truncated(_))));
        assert!(matches!(scan(&bytes[..16]), Err(Scan::Truncated(_))), "ends between frames");
    }

    #[test]
    fn zeros_only_hold_no_metadata_record() {
        let err = read_wal_metadata(&[0u8; 4096]).unwrap_err();
        assert!(err.contains("no metadata record"), "{err}");
        assert!(read_wal_metadata(&[]).is_err());
    }

    #[test]
    fn a_zero_length_frame_before_the_metadata_ends_the_records() {
        let mut bytes = frame(&record(4, 0, &[]));
        bytes.extend([0u8; 8]);
        bytes.extend(&wal(NODE, CLUSTER)[16..]);
        let err = read_wal_metadata(&bytes).unwrap_err();
        assert!(err.contains("no metadata record"), "{err}");
    }

    #[test]
    fn huge_frame_lengths_are_errors_not_panics() {
        for field in [
            u64::MAX,
            0x00ff_ffff_ffff_ffff,
            0x87ff_ffff_ffff_fff8,
            0x7fff_ffff_ffff_ffff,
            0x8000_0000_0000_0010,
            1 << 55,
        ] {
            let mut bytes = field.to_le_bytes().to_vec();
            bytes.extend([0x08, 0x01, 0x10, 0x00]);
            let err = read_wal_metadata(&bytes).unwrap_err();
            assert!(err.contains("declares"), "{field:#x}: {err}");
        }
    }

    #[test]
    fn huge_field_lengths_inside_a_record_are_errors_not_panics() {
        let mut rec = vec![(3 << 3) | 2];
        put_varint(&mut rec, u64::MAX);
        rec.extend([1, 2, 3]);
        let err = read_wal_metadata(&frame(&rec)).unwrap_err();
        assert!(err.contains("runs past the end"), "{err}");
    }

    #[test]
    fn overlong_varints_are_errors() {
        let rec = [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        let err = read_wal_metadata(&frame(&rec)).unwrap_err();
        assert!(err.contains("longer than 10 bytes"), "{err}");
    }

    #[test]
    fn a_crc_mismatch_is_an_error() {
        let meta_bytes = metadata(NODE, CLUSTER);
        let mut bytes = frame(&record(4, 0, &[]));
        bytes.extend(frame(&record(1, crc32c_update(0, &meta_bytes) ^ 1, &meta_bytes)));
        let err = read_wal_metadata(&bytes).unwrap_err();
        assert!(err.contains("crc check"), "{err}");
    }

    #[test]
    fn wrong_wire_types_and_invalid_fields_are_errors() {
        // Record type as a length-delimited field.
        assert!(read_wal_metadata(&frame(&[(1 << 3) | 2, 0])).is_err());
        // Field number 0.
        assert!(read_wal_metadata(&frame(&[0x00, 0x01])).is_err());
        // Group wire types are not supported.
        assert!(read_wal_metadata(&frame(&[(9 << 3) | 3])).is_err());
        // Metadata NodeID as fixed64.
        let meta_bytes = [(1 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8];
        let rec = record(1, crc32c_update(0, &meta_bytes), &meta_bytes);
        let err = read_wal_metadata(&frame(&rec)).unwrap_err();
        assert!(err.contains("wrong wire type"), "{err}");
    }

    #[test]
    fn zero_ids_are_damaged_metadata() {
        for (node, cluster, want) in [(0, CLUSTER, "member id"), (NODE, 0, "cluster id")] {
            let meta_bytes = metadata(node, cluster);
            let rec = record(1, crc32c_update(0, &meta_bytes), &meta_bytes);
            let err = read_wal_metadata(&frame(&rec)).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // xorshift64: deterministic pseudo-random inputs, including valid-looking prefixes.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let valid = wal(NODE, CLUSTER);
        for round in 0..20_000 {
            let len = (next() % 96) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 {
                // Mutate a valid file instead: flip a few bytes.
                bytes = valid.clone();
                for _ in 0..1 + next() % 3 {
                    let i = (next() as usize) % bytes.len();
                    bytes[i] = next() as u8;
                }
            }
            let _ = read_wal_metadata(&bytes);
        }
        assert!(read_wal_metadata(&[0xff; 256]).is_err());
    }

    #[test]
    fn error_messages_are_one_lowercase_line() {
        let samples = [
            read_wal_metadata(&[1, 2, 3]),
            read_wal_metadata(&[0; 16]),
            read_wal_metadata(&u64::MAX.to_le_bytes()),
        ];
        for err in samples.into_iter().map(Result::unwrap_err) {
            assert!(!err.contains('\n'), "{err}");
            assert_eq!(err.chars().next().map(|c| c.is_lowercase()), Some(true), "{err}");
        }
    }

    /// Property tests of the WAL reader: any bytes give a result, never a panic; files built from
    /// the format round-trip their IDs; a damaged valid file gives an error or its own IDs.
    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// A record before the metadata (type 2 entry or 3 state), as (type, data).
        fn early_record() -> impl Strategy<Value = (u64, Vec<u8>)> {
            (2u64..=3, proptest::collection::vec(any::<u8>(), 0..40))
        }

        /// A first WAL file: an optional CRC record carrying `prev`, records, the metadata, zeros.
        fn build(
            prev: Option<u32>,
            early: &[(u64, Vec<u8>)],
            node: u64,
            cluster: u64,
            pads: bool,
        ) -> Vec<u8> {
            let framed = |rec: &[u8]| if pads { frame(rec) } else { frame_with_pad(rec, 0) };
            let mut out = Vec::new();
            let mut crc = 0;
            if let Some(prev) = prev {
                out.extend(framed(&record(4, prev, &[])));
                crc = prev;
            }
            for (kind, data) in early {
                crc = crc32c_update(crc, data);
                out.extend(framed(&record(*kind, crc, data)));
            }
            let meta_bytes = metadata(node, cluster);
            out.extend(framed(&record(1, crc32c_update(crc, &meta_bytes), &meta_bytes)));
            out.extend([0u8; 32]);
            out
        }

        /// One damage to a file: overwrite a byte, cut the file, insert or remove a byte.
        #[derive(Debug, Clone)]
        enum Damage {
            Set(usize, u8),
            Cut(usize),
            Insert(usize, u8),
            Remove(usize),
        }

        fn damage() -> impl Strategy<Value = Damage> {
            prop_oneof![
                (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Set(i, b)),
                any::<usize>().prop_map(Damage::Cut),
                (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Insert(i, b)),
                any::<usize>().prop_map(Damage::Remove),
            ]
        }

        fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
            let len = bytes.len().max(1);
            match *damage {
                Damage::Set(i, b) => {
                    if let Some(byte) = bytes.get_mut(i % len) {
                        *byte = b;
                    }
                }
                Damage::Cut(i) => bytes.truncate(i % len),
                Damage::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
                Damage::Remove(i) => {
                    if !bytes.is_empty() {
                        bytes.remove(i % len);
                    }
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn any_bytes_give_a_one_line_result(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                if let Err(e) = read_wal_metadata(&bytes) {
                    prop_assert!(!e.contains('\n'), "{}", e);
                }
            }

            #[test]
            fn frame_headers_with_any_length_never_panic(
                length in any::<u64>(),
                rest in proptest::collection::vec(any::<u8>(), 0..64),
            ) {
                let mut bytes = length.to_le_bytes().to_vec();
                bytes.extend(rest);
                let _ = read_wal_metadata(&bytes);
            }

            #[test]
            fn built_files_round_trip_their_ids(
                prev in proptest::option::of(any::<u32>()),
                early in proptest::collection::vec(early_record(), 0..4),
                node in 1u64..,
                cluster in 1u64..,
                pads in any::<bool>(),
            ) {
                let bytes = build(prev, &early, node, cluster, pads);
                let want = WalMeta { member_id: node, cluster_id: cluster };
                prop_assert_eq!(read_wal_metadata(&bytes), Ok(want));
            }

            #[test]
            fn damaged_files_give_an_error_or_their_own_ids(
                prev in proptest::option::of(any::<u32>()),
                early in proptest::collection::vec(early_record(), 0..3),
                node in 1u64..,
                cluster in 1u64..,
                damages in proptest::collection::vec(damage(), 1..4),
            ) {
                let mut bytes = build(prev, &early, node, cluster, true);
                for d in &damages {
                    apply(&mut bytes, d);
                }
                if let Ok(got) = read_wal_metadata(&bytes) {
                    // The CRC chain guards the metadata: damage never yields other IDs.
                    prop_assert_eq!(got, WalMeta { member_id: node, cluster_id: cluster });
                }
            }
        }
    }
}
