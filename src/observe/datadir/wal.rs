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
    while let Some((body, next)) = next_frame(bytes, offset)? {
        let rec = decode_record(body).map_err(|e| Scan::Bad(format!("record at offset {offset}: {e}")))?;
        if rec.kind == CRC_TYPE {
            // Carries the running CRC of the previous file; the chain continues from it.
            if crc != 0 && rec.crc != crc {
                return Err(crc_mismatch(offset, &rec, crc));
            }
            crc = rec.crc;
        } else {
            crc = crc32c_update(crc, rec.data);
            if rec.crc != crc {
                return Err(crc_mismatch(offset, &rec, crc));
            }
            if rec.kind == METADATA_TYPE {
                return decode_metadata(rec.data)
                    .map_err(|e| Scan::Bad(format!("metadata record at offset {offset}: {e}")));
            }
        }
        offset = next;
    }
    Err(Scan::Bad(format!("no metadata record: the records end at offset {offset}")))
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
pub(super) fn crc32c_update(crc: u32, data: &[u8]) -> u32 {
    let mut crc = !crc;
    for &byte in data {
        crc = CRC32C_TABLE[usize::from(crc as u8 ^ byte)] ^ (crc >> 8);
    }
    !crc
}
