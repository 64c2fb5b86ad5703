//! The revision an etcd database file holds, read from its bbolt pages without starting etcd.
//!
//! An etcd snapshot (`etcdctl snapshot save`, the maintenance Snapshot API) and a member's
//! `member/snap/db` are bbolt files. When etcd opens one, its mvcc store restores as its current
//! revision the largest of: the main revision of the last key of the bucket `key`, the main
//! revision of `finishedCompactRev` in the bucket `meta` (a compaction may have removed every key
//! up to it, the newest tombstone included), and 1 (an empty store). [`content_revision`] answers
//! the same, and also counts `scheduledCompactRev` (written before a compaction starts, so never
//! above the revision etcd had then). It reads only the pages on two paths down the tree: the
//! meta pages, the root bucket's pages, the right edge of `key` and the way to two keys of `meta`.
//!
//! The format, as bbolt writes it (all little-endian):
//! - pages of `page_size` bytes; a page starts with a 16-byte header: id u64, flags u16 (branch
//!   0x01, leaf 0x02, meta 0x04, freelist 0x10), count u16, overflow u32 (it spans overflow + 1
//!   pages);
//! - pages 0 and 1 are metas: after the header, magic u32 (0xED0CDAED), version u32 (2),
//!   page_size u32, flags u32, the root bucket {root pgid u64, sequence u64}, freelist pgid u64,
//!   pgid u64 (the first page past the end), txid u64 and the FNV-1a 64 checksum of the 56 bytes
//!   before it; the valid one with the higher txid is the current one;
//! - a branch element is {pos u32, ksize u32, pgid u64}, a leaf element {flags u32, pos u32,
//!   ksize u32, vsize u32}, both 16 bytes after the header, `pos` counted from the element's own
//!   address, elements sorted by key;
//! - a leaf element with flags & 1 is a bucket: its value starts with {root pgid u64, sequence
//!   u64}; root 0 means an inline bucket, whose leaf page follows in the value.
//!
//! Any bytes are safe to read: every offset is checked, the walk down a tree is capped and never
//! visits a page twice, and each problem names what is wrong.

use std::path::Path;

use crate::error::{Error, Result};

/// Reads `len` bytes at `offset` of the database file.
pub(crate) type ReadAt<'a> = dyn FnMut(u64, usize) -> std::io::Result<Vec<u8>> + 'a;

const HEADER: usize = 16;
const ELEMENT: usize = 16;
const META_LEN: usize = 64;
/// Where the checksum sits in the meta struct: it covers the bytes before it.
const CHECKSUM_AT: usize = 56;
const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const BUCKET_LEAF: u32 = 0x01;
/// A bucket value starts with {root pgid, sequence}.
const BUCKET_HEADER: usize = 16;
/// Where meta page 1 may be when meta page 0 is unreadable (the page sizes bbolt is used with).
const PAGE_SIZES: &[u64] = &[4096, 8192, 16384, 32768, 65536];
const MIN_PAGE_SIZE: u64 = 512;
const MAX_PAGE_SIZE: u64 = 1 << 24;
/// Deeper than any real tree (a 4 KB page holds about 100 branch elements of etcd's keys).
const MAX_DEPTH: usize = 64;

/// etcd's revision encoding: 8-byte big-endian main revision, `_`, 8-byte big-endian sub revision.
const REVISION_LEN: usize = 17;
const TOMBSTONE: u8 = b't';

const KEY_BUCKET: &str = "key";
const META_BUCKET: &str = "meta";
const COMPACT_KEYS: &[&str] = &["finishedCompactRev", "scheduledCompactRev"];

/// The revision etcd restores as current when it opens the bbolt file at `path`, reading only the
/// pages it needs (positioned reads). A file that is not an etcd database is a snapshot error.
pub fn content_revision_of(path: &Path) -> Result<i64> {
    use std::os::unix::fs::FileExt;

    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut read = |offset: u64, len: usize| -> std::io::Result<Vec<u8>> {
        // Checked before allocating: a corrupt page may ask for any length.
        if offset.checked_add(len as u64).is_none_or(|end| end > size) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{len} bytes at offset {offset} are past the end of the file ({size} bytes)"),
            ));
        }
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    };
    content_revision(&mut read)
        .map_err(|problem| Error::Snapshot { snapshot: path.display().to_string(), problem })
}

/// The revision etcd restores as current from the bbolt database that `read` reads: the largest
/// of the last key of the bucket `key`, the bucket `meta`'s `finishedCompactRev` and
/// `scheduledCompactRev`, and 1. The error says what is wrong with the bytes.
pub(crate) fn content_revision(read: &mut ReadAt<'_>) -> Result<i64, String> {
    let meta = current_meta(read)?;
    let mut db = Db { read, page_size: meta.page_size, end: meta.end };
    let top = Root::Page(meta.root);
    let keys =
        db.bucket(&top, "the root bucket", KEY_BUCKET)?.ok_or(format!("bucket `{KEY_BUCKET}` not found"))?;
    let mut revision = 1;
    if let Some(last) = db.last_key(&keys, KEY_BUCKET)? {
        revision = revision.max(key_revision(&last)?);
    }
    if let Some(metas) = db.bucket(&top, "the root bucket", META_BUCKET)? {
        for name in COMPACT_KEYS {
            if let Some(value) = db.get(&metas, META_BUCKET, name.as_bytes())? {
                revision = revision.max(meta_revision(name, &value)?);
            }
        }
    }
    Ok(revision)
}

/// The fields of a valid meta page this reader uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    page_size: u64,
    root: u64,
    /// The first page id past the end of the database.
    end: u64,
    txid: u64,
}

/// The valid meta with the higher txid; an error naming both metas' problems when neither is.
fn current_meta(read: &mut ReadAt<'_>) -> Result<Meta, String> {
    let first = read_meta(read, 0, 0);
    let second = match &first {
        Ok(meta) => read_meta(read, 1, meta.page_size),
        // Page 0 tells no page size: look for page 1 where each usual page size puts it.
        Err(_) => {
            let mut tries = PAGE_SIZES.iter().map(|&size| read_meta(read, 1, size));
            let first_try = tries.next().unwrap_or_else(|| Err("meta page 1: no page size to try".into()));
            match first_try {
                Ok(meta) => Ok(meta),
                Err(problem) => tries.find(Result::is_ok).unwrap_or_else(|| {
                    Err(format!("{problem} (nor at the larger usual page sizes, up to 65536)"))
                }),
            }
        }
    };
    match (first, second) {
        (Ok(a), Ok(b)) => Ok(if b.txid > a.txid { b } else { a }),
        (Ok(meta), Err(_)) | (Err(_), Ok(meta)) => Ok(meta),
        (Err(a), Err(b)) => Err(format!("not a bbolt database: {a}; {b}")),
    }
}

/// Meta page `index`, at `index * page_size`, validated (magic, version, checksum, and for page 1
/// a page size equal to the one it was looked for at).
fn read_meta(read: &mut ReadAt<'_>, index: u64, page_size: u64) -> Result<Meta, String> {
    let offset = index * page_size;
    let bytes = read(offset, HEADER + META_LEN)
        .map_err(|e| format!("meta page {index}: cannot read it at offset {offset}: {e}"))?;
    let meta = parse_meta(&bytes).map_err(|problem| format!("{problem} at page {index}"))?;
    if index == 1 && meta.page_size != page_size {
        return Err(format!(
            "page size {} at page 1, which is at offset {offset}: the metas disagree",
            meta.page_size
        ));
    }
    Ok(meta)
}

/// One meta page (header and meta struct) checked and read.
fn parse_meta(page: &[u8]) -> Result<Meta, String> {
    let meta = page.get(HEADER..HEADER + META_LEN).ok_or("meta page too short")?;
    let magic = le_u32(meta, 0)?;
    if magic != MAGIC {
        return Err(format!("bad magic {magic:#010x} (bbolt's is {MAGIC:#010x})"));
    }
    let version = le_u32(meta, 4)?;
    if version != VERSION {
        return Err(format!("version {version}, not bbolt's {VERSION}"));
    }
    let checksum = le_u64(meta, CHECKSUM_AT)?;
    let computed = fnv1a64(&meta[..CHECKSUM_AT]);
    if checksum != computed {
        return Err(format!("checksum {checksum:#018x} does not match the content ({computed:#018x})"));
    }
    let page_size = u64::from(le_u32(meta, 8)?);
    if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(format!("page size {page_size} out of range"));
    }
    Ok(Meta { page_size, root: le_u64(meta, 16)?, end: le_u64(meta, 40)?, txid: le_u64(meta, 48)? })
}

/// The 64-bit FNV-1a hash, bbolt's meta checksum.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Where a bucket's tree starts.
#[derive(Debug)]
enum Root {
    /// The root page's id.
    Page(u64),
    /// An inline bucket: its one leaf page, from the parent's value.
    Inline(Vec<u8>),
}

/// What to find in a tree.
#[derive(Clone, Copy)]
enum Target<'k> {
    Key(&'k [u8]),
    Last,
}

/// The database's pages, read on demand.
struct Db<'r, 'a> {
    read: &'r mut ReadAt<'a>,
    page_size: u64,
    end: u64,
}

impl Db<'_, '_> {
    /// Page `id` with its overflow pages: a branch or leaf page that says it is `id`.
    fn page(&mut self, id: u64) -> Result<Vec<u8>, String> {
        if id < 2 {
            return Err(format!("a tree points at meta page {id}"));
        }
        if id >= self.end {
            return Err(format!("page {id} is past the end of the database ({} pages)", self.end));
        }
        let offset = id.checked_mul(self.page_size).ok_or(format!("page {id} is past any file"))?;
        let size = usize::try_from(self.page_size).map_err(|_| "page size out of range".to_string())?;
        let mut bytes = (self.read)(offset, size)
            .map_err(|e| format!("cannot read page {id} at offset {offset}: {e}"))?;
        let said = le_u64(&bytes, 0)?;
        if said != id {
            return Err(format!("page {id} says it is page {said}"));
        }
        let flags = le_u16(&bytes, 8)?;
        if flags != BRANCH && flags != LEAF {
            return Err(format!("page {id} is not a branch or leaf page (flags {flags:#06x})"));
        }
        let overflow = u64::from(le_u32(&bytes, 12)?);
        if overflow > 0 {
            if id.saturating_add(overflow) >= self.end {
                return Err(format!(
                    "page {id} spans {overflow} more pages, past the end of the database ({} pages)",
                    self.end
                ));
            }
            let more = usize::try_from(overflow * self.page_size)
                .map_err(|_| format!("page {id} spans {overflow} more pages: too large"))?;
            let rest = (self.read)(offset.saturating_add(self.page_size), more)
                .map_err(|e| format!("cannot read the {overflow} overflow pages of page {id}: {e}"))?;
            bytes.extend_from_slice(&rest);
        }
        Ok(bytes)
    }

    /// The leaf page of `root`'s tree that holds `target` (or would), walking down branch pages.
    fn leaf(&mut self, root: &Root, bucket: &str, target: Target<'_>) -> Result<Vec<u8>, String> {
        let mut id = match root {
            Root::Inline(page) => {
                let flags = le_u16(page, 8).map_err(|e| format!("bucket `{bucket}`'s inline page: {e}"))?;
                if flags != LEAF {
                    return Err(format!(
                        "bucket `{bucket}`'s inline page is not a leaf (flags {flags:#06x})"
                    ));
                }
                return Ok(page.clone());
            }
            Root::Page(id) => *id,
        };
        let mut seen = Vec::new();
        loop {
            if seen.contains(&id) {
                return Err(format!("bucket `{bucket}`: page {id} is reached twice down the tree (a cycle)"));
            }
            if seen.len() >= MAX_DEPTH {
                return Err(format!("bucket `{bucket}`: the tree is deeper than {MAX_DEPTH} pages"));
            }
            seen.push(id);
            let page = self.page(id)?;
            let node = Node::of(&page).map_err(|e| format!("page {id}: {e}"))?;
            if node.flags == LEAF {
                if node.count == 0 && seen.len() > 1 {
                    return Err(format!("bucket `{bucket}`: page {id} is an empty leaf below a branch"));
                }
                return Ok(page);
            }
            if node.count == 0 {
                return Err(format!("bucket `{bucket}`: page {id} is an empty branch"));
            }
            let index = match target {
                Target::Last => node.count - 1,
                Target::Key(key) => {
                    // The last element whose key is not above the one looked for (else the first).
                    let mut index = 0;
                    for i in 1..node.count {
                        let (k, _) = node.branch(i).map_err(|e| format!("page {id}: {e}"))?;
                        if k > key {
                            break;
                        }
                        index = i;
                    }
                    index
                }
            };
            let (_, child) = node.branch(index).map_err(|e| format!("page {id}: {e}"))?;
            id = child;
        }
    }

    /// The value under `key` in `root`'s tree with its element flags, if there is one.
    fn lookup(&mut self, root: &Root, bucket: &str, key: &[u8]) -> Result<Option<(u32, Vec<u8>)>, String> {
        let page = self.leaf(root, bucket, Target::Key(key))?;
        let node = Node::of(&page).map_err(|e| format!("bucket `{bucket}`: {e}"))?;
        for i in 0..node.count {
            let (flags, k, v) = node.leaf(i).map_err(|e| format!("bucket `{bucket}`: {e}"))?;
            if k == key {
                return Ok(Some((flags, v.to_vec())));
            }
        }
        Ok(None)
    }

    /// The plain value under `key` in `root`'s tree (a sub-bucket there is an error).
    fn get(&mut self, root: &Root, bucket: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match self.lookup(root, bucket, key)? {
            Some((flags, _)) if flags & BUCKET_LEAF != 0 => {
                Err(format!("bucket `{bucket}`: `{}` is a bucket, not a value", String::from_utf8_lossy(key)))
            }
            found => Ok(found.map(|(_, value)| value)),
        }
    }

    /// The sub-bucket `name` of `root`'s tree, if there is one.
    fn bucket(&mut self, root: &Root, parent: &str, name: &str) -> Result<Option<Root>, String> {
        let Some((flags, value)) = self.lookup(root, parent, name.as_bytes())? else {
            return Ok(None);
        };
        if flags & BUCKET_LEAF == 0 {
            return Err(format!("`{name}` in {parent} is a value, not a bucket"));
        }
        let id = le_u64(&value, 0).map_err(|e| format!("bucket `{name}`'s header: {e}"))?;
        if id != 0 {
            return Ok(Some(Root::Page(id)));
        }
        match value.get(BUCKET_HEADER..) {
            Some(page) if page.len() >= HEADER => Ok(Some(Root::Inline(page.to_vec()))),
            _ => Err(format!("bucket `{name}` is inline but its page is cut short")),
        }
    }

    /// The last key of `root`'s tree; None for an empty bucket.
    fn last_key(&mut self, root: &Root, bucket: &str) -> Result<Option<Vec<u8>>, String> {
        let page = self.leaf(root, bucket, Target::Last)?;
        let node = Node::of(&page).map_err(|e| format!("bucket `{bucket}`: {e}"))?;
        if node.count == 0 {
            return Ok(None);
        }
        let (_, key, _) = node.leaf(node.count - 1).map_err(|e| format!("bucket `{bucket}`: {e}"))?;
        Ok(Some(key.to_vec()))
    }
}

/// A branch or leaf page's bytes (header first, overflow pages included), bounds-checked.
struct Node<'b> {
    bytes: &'b [u8],
    flags: u16,
    count: usize,
}

impl<'b> Node<'b> {
    fn of(bytes: &'b [u8]) -> Result<Node<'b>, String> {
        let flags = le_u16(bytes, 8)?;
        let count = usize::from(le_u16(bytes, 10)?);
        if HEADER + count * ELEMENT > bytes.len() {
            return Err(format!("{count} elements do not fit in {} bytes", bytes.len()));
        }
        Ok(Node { bytes, flags, count })
    }

    /// Branch element `i`: its key and child page id.
    fn branch(&self, i: usize) -> Result<(&'b [u8], u64), String> {
        if self.flags != BRANCH {
            return Err(format!("not a branch page (flags {:#06x})", self.flags));
        }
        let at = HEADER + i * ELEMENT;
        let pos = le_u32(self.bytes, at)? as usize;
        let ksize = le_u32(self.bytes, at + 4)? as usize;
        let child = le_u64(self.bytes, at + 8)?;
        let key = slice(self.bytes, at + pos, ksize).map_err(|e| format!("branch element {i}'s key: {e}"))?;
        Ok((key, child))
    }

    /// Leaf element `i`: its flags, key and value.
    fn leaf(&self, i: usize) -> Result<(u32, &'b [u8], &'b [u8]), String> {
        if self.flags != LEAF {
            return Err(format!("not a leaf page (flags {:#06x})", self.flags));
        }
        let at = HEADER + i * ELEMENT;
        let flags = le_u32(self.bytes, at)?;
        let pos = le_u32(self.bytes, at + 4)? as usize;
        let ksize = le_u32(self.bytes, at + 8)? as usize;
        let vsize = le_u32(self.bytes, at + 12)? as usize;
        let key = slice(self.bytes, at + pos, ksize).map_err(|e| format!("leaf element {i}'s key: {e}"))?;
        let value = slice(self.bytes, at + pos + ksize, vsize)
            .map_err(|e| format!("leaf element {i}'s value: {e}"))?;
        Ok((flags, key, value))
    }
}

/// The main revision of a key of the bucket `key` (17 bytes, 18 for a tombstone).
fn key_revision(key: &[u8]) -> Result<i64, String> {
    let revision = match key.len() {
        REVISION_LEN => key,
        18 if key[REVISION_LEN] == TOMBSTONE => &key[..REVISION_LEN],
        _ => {
            return Err(format!(
                "the last key of bucket `{KEY_BUCKET}` is not a revision ({} bytes: {key:02x?})",
                key.len()
            ))
        }
    };
    main_revision(revision).map_err(|e| format!("the last key of bucket `{KEY_BUCKET}`: {e}"))
}

/// The main revision of `name`'s value in the bucket `meta` (17 bytes).
fn meta_revision(name: &str, value: &[u8]) -> Result<i64, String> {
    if value.len() != REVISION_LEN {
        return Err(format!("`{name}` in bucket `{META_BUCKET}` is {} bytes, not a revision", value.len()));
    }
    main_revision(value).map_err(|e| format!("`{name}` in bucket `{META_BUCKET}`: {e}"))
}

/// The main revision of etcd's 17-byte revision encoding.
fn main_revision(bytes: &[u8]) -> Result<i64, String> {
    if bytes.get(8) != Some(&b'_') {
        return Err(format!("no `_` after the main revision: {bytes:02x?}"));
    }
    let main = bytes.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).ok_or("a revision is cut short")?;
    let main = i64::from_be_bytes(main);
    if main < 0 {
        return Err(format!("negative main revision {main}"));
    }
    Ok(main)
}

/// `len` bytes at `at`, or what is out of bounds.
fn slice(bytes: &[u8], at: usize, len: usize) -> Result<&[u8], String> {
    at.checked_add(len)
        .and_then(|end| bytes.get(at..end))
        .ok_or(format!("{len} bytes at {at} are past the page's {} bytes", bytes.len()))
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], String> {
    slice(bytes, at, N).and_then(|b| <[u8; N]>::try_from(b).map_err(|_| "cut short".to_string()))
}

fn le_u16(bytes: &[u8], at: usize) -> Result<u16, String> {
    array(bytes, at).map(u16::from_le_bytes)
}

fn le_u32(bytes: &[u8], at: usize) -> Result<u32, String> {
    array(bytes, at).map(u32::from_le_bytes)
}

fn le_u64(bytes: &[u8], at: usize) -> Result<u64, String> {
    array(bytes, at).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Vec<u8> {
        let mut key = main.to_be_bytes().to_vec();
        key.push(b'_');
        key.extend(0i64.to_be_bytes());
        key
    }

    fn tombstone(main: i64) -> Vec<u8> {
        let mut key = rev(main);
        key.push(TOMBSTONE);
        key
    }

    fn header(id: u64, flags: u16, count: usize) -> Vec<u8> {
        let mut page = id.to_le_bytes().to_vec();
        page.extend(flags.to_le_bytes());
        page.extend(u16::try_from(count).expect("count").to_le_bytes());
        page.extend(0u32.to_le_bytes()); // overflow: set by `file`
        page
    }

    fn u32_of(n: usize) -> [u8; 4] {
        u32::try_from(n).expect("fits").to_le_bytes()
    }

    /// A leaf page (unpadded): elements, then each key and value.
    fn leaf(id: u64, elements: &[(u32, Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut page = header(id, LEAF, elements.len());
        let mut data = Vec::new();
        let data_at = HEADER + elements.len() * ELEMENT;
        for (i, (flags, key, value)) in elements.iter().enumerate() {
            page.extend(flags.to_le_bytes());
            page.extend(u32_of(data_at + data.len() - (HEADER + i * ELEMENT)));
            page.extend(u32_of(key.len()));
            page.extend(u32_of(value.len()));
            data.extend_from_slice(key);
            data.extend_from_slice(value);
        }
        page.extend(data);
        page
    }

    /// A branch page (unpadded).
    fn branch(id: u64, elements: &[(Vec<u8>, u64)]) -> Vec<u8> {
        let mut page = header(id, BRANCH, elements.len());
        let mut data = Vec::new();
        let data_at = HEADER + elements.len() * ELEMENT;
        for (i, (key, child)) in elements.iter().enumerate() {
            page.extend(u32_of(data_at + data.len() - (HEADER + i * ELEMENT)));
            page.extend(u32_of(key.len()));
            page.extend(child.to_le_bytes());
            data.extend_from_slice(key);
        }
        page.extend(data);
        page
    }

    fn meta(id: u64, page_size: u32, root: u64, end: u64, txid: u64) -> Vec<u8> {
        let mut m = MAGIC.to_le_bytes().to_vec();
        m.extend(VERSION.to_le_bytes());
        m.extend(page_size.to_le_bytes());
        m.extend(0u32.to_le_bytes());
        m.extend(root.to_le_bytes());
        m.extend(0u64.to_le_bytes());
        m.extend(2u64.to_le_bytes()); // freelist
        m.extend(end.to_le_bytes());
        m.extend(txid.to_le_bytes());
        let checksum = fnv1a64(&m);
        m.extend(checksum.to_le_bytes());
        let mut page = header(id, 0x04, 0);
        page.extend(m);
        page
    }

    fn bucket(root: u64) -> (u32, Vec<u8>) {
        let mut value = root.to_le_bytes().to_vec();
        value.extend(0u64.to_le_bytes());
        (BUCKET_LEAF, value)
    }

    fn inline(page: Vec<u8>) -> (u32, Vec<u8>) {
        let (flags, mut value) = bucket(0);
        value.extend(page);
        (flags, value)
    }

    fn named((flags, value): (u32, Vec<u8>), name: &str) -> (u32, Vec<u8>, Vec<u8>) {
        (flags, name.as_bytes().to_vec(), value)
    }

    fn put(key: Vec<u8>, value: &[u8]) -> (u32, Vec<u8>, Vec<u8>) {
        (0, key, value.to_vec())
    }

    /// The pages placed at `id * page_size`, each padded to whole pages, its overflow set.
    fn file(page_size: usize, pages: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for page in pages {
            let id = usize::try_from(u64::from_le_bytes(page[..8].try_into().expect("id"))).expect("id");
            let spans = page.len().div_ceil(page_size).max(1);
            let at = id * page_size;
            if bytes.len() < at + spans * page_size {
                bytes.resize(at + spans * page_size, 0);
            }
            bytes[at..at + page.len()].copy_from_slice(page);
            let overflow = u32::try_from(spans - 1).expect("overflow");
            if page[8] != 0x04 {
                bytes[at + 12..at + 16].copy_from_slice(&overflow.to_le_bytes());
            }
        }
        bytes
    }

    /// What the test database holds, before `build` lays it out.
    struct Spec {
        page_size: usize,
        /// The meta values (name, value), sorted.
        metas: Vec<(&'static str, Vec<u8>)>,
        /// Whether the root bucket holds `key` (as the multi-page tree) and `meta`.
        key_bucket: bool,
        meta_bucket: bool,
        /// The last leaf of `key`: the second child of its branch page.
        last_leaf: Vec<(u32, Vec<u8>, Vec<u8>)>,
        /// The txids of meta 0 (whose root is the older tree, revision 4) and meta 1 (revision 12).
        txids: (u64, u64),
    }

    impl Default for Spec {
        fn default() -> Self {
            Spec {
                page_size: 4096,
                metas: vec![("consistent_index", 42u64.to_be_bytes().to_vec())],
                key_bucket: true,
                meta_bucket: true,
                // The first value spans two pages: page 6 has an overflow page.
                last_leaf: vec![put(rev(10), &[7; 5000]), put(rev(11), b"v"), put(tombstone(12), b"")],
                txids: (4, 5),
            }
        }
    }

    const END: u64 = 10;

    /// Pages: 0 and 1 metas, 2 freelist, 3 the root bucket, 4 `key`'s branch, 5 and 6-7 its
    /// leaves, 9 the older root bucket (meta 0's) with `key` inline holding revision 4.
    fn build(spec: &Spec) -> Vec<u8> {
        let size = u32::try_from(spec.page_size).expect("page size");
        let metas: Vec<_> = spec.metas.iter().map(|(k, v)| put(k.as_bytes().to_vec(), v)).collect();
        let mut root = Vec::new();
        if spec.key_bucket {
            root.push(named(bucket(4), KEY_BUCKET));
        }
        if spec.meta_bucket {
            root.push(named(inline(leaf(0, &metas)), META_BUCKET));
        }
        let older_keys = leaf(0, &[put(rev(2), b"a"), put(rev(4), b"b")]);
        file(
            spec.page_size,
            &[
                meta(0, size, 9, END, spec.txids.0),
                meta(1, size, 3, END, spec.txids.1),
                header(2, 0x10, 0),
                leaf(3, &root),
                branch(4, &[(rev(1), 5), (rev(10), 6)]),
                leaf(5, &[put(rev(1), b"x"), put(rev(2), b"y"), put(tombstone(3), b"")]),
                leaf(6, &spec.last_leaf),
                leaf(9, &[named(inline(older_keys), KEY_BUCKET)]),
            ],
        )
    }

    fn revision_of(bytes: &[u8]) -> Result<i64, String> {
        let mut read = |offset: u64, len: usize| -> std::io::Result<Vec<u8>> {
            usize::try_from(offset)
                .ok()
                .and_then(|at| bytes.get(at..at.checked_add(len)?))
                .map(<[u8]>::to_vec)
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
        };
        content_revision(&mut read)
    }

    fn set_u64(bytes: &mut [u8], at: usize, value: u64) {
        bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    /// Corrupts meta page `index`'s txid without fixing its checksum.
    fn break_meta(bytes: &mut [u8], index: usize, page_size: usize) {
        bytes[index * page_size + HEADER + 48] ^= 0xff;
    }

    /// Where branch page 4's element `i` keeps its child's page id.
    fn child_at(i: usize) -> usize {
        4 * 4096 + HEADER + i * ELEMENT + 8
    }

    #[test]
    fn the_revision_is_the_newest_of_the_last_key_and_the_compaction_revisions() {
        let many: Vec<_> = (20..100).map(|r| put(rev(r), &[1; 30])).collect();
        let cases: Vec<(&str, Spec, i64)> = vec![
            ("the last key, a tombstone", Spec::default(), 12),
            (
                "the last key, a put",
                Spec { last_leaf: vec![put(rev(10), b"a"), put(rev(15), b"b")], ..Spec::default() },
                15,
            ),
            ("a leaf of many keys spanning pages", Spec { last_leaf: many, ..Spec::default() }, 99),
            (
                "finished compaction above the last key (its tombstone compacted away)",
                Spec { metas: vec![("finishedCompactRev", rev(20))], ..Spec::default() },
                20,
            ),
            (
                "scheduled compaction above both",
                Spec {
                    metas: vec![
                        ("consistent_index", vec![0; 8]),
                        ("finishedCompactRev", rev(20)),
                        ("scheduledCompactRev", rev(30)),
                    ],
                    ..Spec::default()
                },
                30,
            ),
            (
                "compactions below the last key",
                Spec {
                    metas: vec![("finishedCompactRev", rev(5)), ("scheduledCompactRev", rev(5))],
                    ..Spec::default()
                },
                12,
            ),
            ("no `meta` bucket", Spec { meta_bucket: false, ..Spec::default() }, 12),
            ("meta 0 is the newer one", Spec { txids: (9, 5), ..Spec::default() }, 4),
            ("page size 8192", Spec { page_size: 8192, ..Spec::default() }, 12),
        ];
        for (name, spec, want) in cases {
            assert_eq!(revision_of(&build(&spec)), Ok(want), "{name}");
        }
    }

    #[test]
    fn an_empty_inline_key_bucket_is_revision_one() {
        let size = 4096;
        let root = leaf(3, &[named(inline(leaf(0, &[])), KEY_BUCKET)]);
        let bytes = file(size, &[meta(0, 4096, 3, 4, 1), meta(1, 4096, 3, 4, 2), header(2, 0x10, 0), root]);
        assert_eq!(revision_of(&bytes), Ok(1));
        let root = leaf(
            3,
            &[
                named(inline(leaf(0, &[])), KEY_BUCKET),
                named(inline(leaf(0, &[put(b"finishedCompactRev".to_vec(), &rev(9))])), META_BUCKET),
            ],
        );
        let bytes = file(size, &[meta(0, 4096, 3, 4, 1), meta(1, 4096, 3, 4, 2), header(2, 0x10, 0), root]);
        assert_eq!(revision_of(&bytes), Ok(9), "compacted down to nothing");
    }

    #[test]
    fn the_other_meta_serves_when_one_is_corrupt() {
        let mut bytes = build(&Spec::default());
        break_meta(&mut bytes, 1, 4096);
        assert_eq!(revision_of(&bytes), Ok(4), "meta 1 broken: meta 0's older tree");
        let mut bytes = build(&Spec::default());
        break_meta(&mut bytes, 0, 4096);
        assert_eq!(revision_of(&bytes), Ok(12), "meta 0 broken: meta 1 found at page size 4096");
        let mut bytes = build(&Spec { page_size: 16384, ..Spec::default() });
        break_meta(&mut bytes, 0, 16384);
        assert_eq!(revision_of(&bytes), Ok(12), "meta 0 broken: meta 1 found at page size 16384");
    }

    #[test]
    fn bad_input_is_an_error_that_says_what_is_wrong() {
        let good = build(&Spec::default());
        let patched = |patch: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = good.clone();
            patch(&mut bytes);
            bytes
        };
        let deep = {
            // Branch pages 3..=72, each pointing at the next: deeper than any real tree.
            let mut pages = vec![meta(0, 4096, 3, 80, 1), meta(1, 4096, 3, 80, 2), header(2, 0x10, 0)];
            pages.push(leaf(3, &[named(bucket(4), KEY_BUCKET)]));
            pages.extend((4..76).map(|id| branch(id, &[(rev(1), id + 1)])));
            file(4096, &pages)
        };
        let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
            ("an empty file", vec![], &["not a bbolt database", "meta page 0: cannot read"]),
            (
                "not a database",
                vec![0xab; 3 * 4096],
                &["not a bbolt database: bad magic 0xabababab", "at page 0"],
            ),
            (
                "both metas corrupt",
                patched(&|b| {
                    break_meta(b, 0, 4096);
                    break_meta(b, 1, 4096);
                }),
                &["not a bbolt database", "checksum", "at page 0", "at page 1"],
            ),
            (
                "another version",
                patched(&|b| {
                    for page in [0, 1] {
                        b[page * 4096 + HEADER + 4] = 1;
                    }
                }),
                &["version 1"],
            ),
            ("a child past the end", patched(&|b| set_u64(b, child_at(1), 99)), &["page 99 is past the end"]),
            ("a cycle", patched(&|b| set_u64(b, child_at(1), 4)), &["page 4 is reached twice", "cycle"]),
            ("a child at a meta page", patched(&|b| set_u64(b, child_at(1), 1)), &["meta page 1"]),
            (
                "a child that is a freelist",
                patched(&|b| set_u64(b, child_at(1), 2)),
                &["not a branch or leaf"],
            ),
            ("too deep", deep, &["deeper than 64"]),
            (
                "an empty leaf below a branch (not read as an empty bucket)",
                build(&Spec { last_leaf: vec![], ..Spec::default() }),
                &["page 6 is an empty leaf below a branch"],
            ),
            ("a truncated file", good[..7 * 4096].to_vec(), &["cannot read the 1 overflow pages of page 6"]),
            ("a page that is another", patched(&|b| set_u64(b, 6 * 4096, 7)), &["page 6 says it is page 7"]),
            (
                "an element past its page",
                patched(&|b| b[6 * 4096 + HEADER + 2 * ELEMENT + 5] = 0x7f),
                &["leaf element 2's key", "past the page"],
            ),
            ("a count past its page", patched(&|b| b[6 * 4096 + 11] = 0xff), &["elements do not fit"]),
            (
                "no `key` bucket",
                build(&Spec { key_bucket: false, ..Spec::default() }),
                &["bucket `key` not found"],
            ),
            (
                "`key` is a value",
                patched(&|b| b[3 * 4096 + HEADER] = 0),
                &["`key` in the root bucket is a value, not a bucket"],
            ),
            (
                "a key that is no revision",
                build(&Spec { last_leaf: vec![put(b"hello".to_vec(), b"")], ..Spec::default() }),
                &["not a revision (5 bytes"],
            ),
            (
                "a negative revision",
                build(&Spec { last_leaf: vec![put(rev(-3), b"")], ..Spec::default() }),
                &["negative main revision -3"],
            ),
            (
                "a compaction revision that is no revision",
                build(&Spec { metas: vec![("finishedCompactRev", vec![1, 2, 3])], ..Spec::default() }),
                &["`finishedCompactRev` in bucket `meta` is 3 bytes"],
            ),
        ];
        for (name, bytes, words) in cases {
            let got = revision_of(&bytes);
            let Err(problem) = &got else { panic!("{name}: {got:?}") };
            for word in words {
                assert!(problem.contains(word), "{name}: {problem:?} lacks {word:?}");
            }
        }
    }

    #[test]
    fn only_the_pages_on_the_way_are_read() {
        // Many more pages than the way down: the reads stay the metas, the root, the branch and
        // the last leaf (with its overflow page), and the same root for `meta`.
        let mut bytes = build(&Spec::default());
        bytes.resize(10_000 * 4096, 0);
        let mut read_bytes = 0;
        let mut reads = 0;
        let mut read = |offset: u64, len: usize| -> std::io::Result<Vec<u8>> {
            reads += 1;
            read_bytes += len;
            let at = usize::try_from(offset).expect("offset");
            Ok(bytes[at..at + len].to_vec())
        };
        assert_eq!(content_revision(&mut read), Ok(12));
        assert!(reads <= 8 && read_bytes <= 7 * 4096, "{reads} reads, {read_bytes} bytes");
    }

    #[test]
    fn the_file_edge_reads_a_file_and_names_it_in_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let good = dir.path().join("snapshot.db");
        std::fs::write(&good, build(&Spec::default())).expect("write");
        assert_eq!(content_revision_of(&good).expect("read"), 12);

        let bad = dir.path().join("bad.db");
        std::fs::write(&bad, b"short").expect("write");
        let err = content_revision_of(&bad).expect_err("not a database");
        assert!(matches!(err, Error::Snapshot { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("bad.db") && text.contains("not a bbolt database"), "{text}");

        let err = content_revision_of(&dir.path().join("missing.db")).expect_err("missing");
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
    }

    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(500))]

            /// Any bytes flipped, anywhere, or a file cut anywhere: an answer or an error, never
            /// a panic or an endless walk.
            #[test]
            fn damaged_databases_never_panic(
                flips in proptest::collection::vec((0usize..10 * 4096, any::<u8>()), 1..12),
                cut in proptest::option::of(0usize..10 * 4096),
            ) {
                let mut bytes = build(&Spec::default());
                for (at, byte) in flips {
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= byte;
                    }
                }
                if let Some(cut) = cut {
                    bytes.truncate(cut);
                }
                let _ = revision_of(&bytes);
            }

            /// Flips in the pages the walk reads (page headers and elements), where they matter.
            #[test]
            fn damaged_tree_pages_never_panic(
                flips in proptest::collection::vec((0usize..4, 0usize..128, any::<u8>()), 1..6),
            ) {
                let mut bytes = build(&Spec::default());
                for (page, at, byte) in flips {
                    bytes[[3, 4, 6, 9][page] * 4096 + at] ^= byte;
                }
                let _ = revision_of(&bytes);
            }
        }
    }
}
