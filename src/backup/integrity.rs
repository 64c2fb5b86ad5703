//! Checking a snapshot's bytes as they stream past: etcd ends every snapshot from its Maintenance
//! API with the sha256 of the bytes before it (32 bytes); the manifest records the size, the
//! sha256 and the XXH3-128 of the whole file. Pure: fed with chunks, no I/O.

use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::Xxh3;

/// Length of etcd's trailing sha256.
pub(crate) const TRAILER_LEN: usize = 32;

/// What a manifest vouches for a snapshot's bytes by: their size and a digest of them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vouched<'a> {
    pub size: u64,
    pub digest: Vouch<'a>,
}

/// The whole-file digest a manifest records, lowercase or uppercase hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vouch<'a> {
    /// XXH3-128 (manifests from the release that added it on): fast, checked by every restore.
    Xxh3(&'a str),
    /// sha256 (every manifest has it; the only one of earlier releases').
    Sha256(&'a str),
}

/// The digests of a snapshot being read, chunk by chunk: the whole file's (sha256, XXH3-128, or
/// both), and (only for [`SnapshotDigest::new`]) the one etcd's trailer is checked against.
#[derive(Clone)]
pub(crate) struct SnapshotDigest {
    /// sha256 of every byte; None: not computed.
    whole: Option<Sha256>,
    /// XXH3-128 of every byte; None: not computed.
    fast: Option<Xxh3>,
    /// Digest of every byte except the last [`TRAILER_LEN`] seen so far; None: the trailer is
    /// not checked.
    body: Option<Sha256>,
    /// The last bytes seen, at most [`TRAILER_LEN`] (not yet in `body`).
    tail: Vec<u8>,
    size: u64,
}

/// What the bytes were found to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checked {
    /// sha256 of all bytes, lowercase hex, where it was computed.
    pub sha256: Option<String>,
    /// XXH3-128 of all bytes, lowercase hex (32 digits), where it was computed.
    pub xxh3: Option<String>,
    pub size: u64,
    /// Whether the last 32 bytes are the sha256 of the bytes before them (etcd's own check);
    /// None where it was not checked.
    pub trailer_ok: Option<bool>,
    /// The last 32 bytes (etcd's trailing sha256), lowercase hex, where the trailer was checked
    /// and held.
    pub trailer: Option<String>,
}

impl SnapshotDigest {
    /// Every digest: for bytes no manifest vouches for yet (a snapshot being taken), and for
    /// `backup verify`.
    pub(crate) fn new() -> Self {
        SnapshotDigest {
            whole: Some(Sha256::new()),
            fast: Some(Xxh3::new()),
            body: Some(Sha256::new()),
            tail: Vec::new(),
            size: 0,
        }
    }

    /// Only the digest `vouch` names: for bytes whose manifest's digest they must match (a
    /// restore), since a manifest is written only for bytes whose trailer held when taken.
    pub(crate) fn checking(vouch: Vouch<'_>) -> Self {
        let (whole, fast) = match vouch {
            Vouch::Xxh3(_) => (None, Some(Xxh3::new())),
            Vouch::Sha256(_) => (Some(Sha256::new()), None),
        };
        SnapshotDigest { whole, fast, body: None, tail: Vec::new(), size: 0 }
    }

    /// Feed the next chunk.
    pub(crate) fn update(&mut self, chunk: &[u8]) {
        if let Some(whole) = &mut self.whole {
            whole.update(chunk);
        }
        if let Some(fast) = &mut self.fast {
            fast.update(chunk);
        }
        self.size += chunk.len() as u64;
        let Some(body) = &mut self.body else { return };
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > TRAILER_LEN {
            let spill = self.tail.len() - TRAILER_LEN;
            body.update(&self.tail[..spill]);
            self.tail.drain(..spill);
        }
    }

    /// The result over every chunk fed.
    pub(crate) fn finish(self) -> Checked {
        let trailer_ok = self.body.map(|body| {
            let body = body.finalize();
            self.tail.len() == TRAILER_LEN && self.size > TRAILER_LEN as u64 && body[..] == self.tail[..]
        });
        let trailer = (trailer_ok == Some(true)).then(|| hex(&self.tail));
        Checked {
            sha256: self.whole.map(|w| hex(&w.finalize())),
            xxh3: self.fast.map(|f| hex(&f.digest128().to_be_bytes())),
            size: self.size,
            trailer_ok,
            trailer,
        }
    }
}

impl Checked {
    /// Why these bytes may not be published or restored, if they may not: etcd's trailer must
    /// hold, and where a manifest is known, its size and digest must match (then a trailer not
    /// checked is fine: the bytes are the ones whose trailer held when the manifest was written).
    pub(crate) fn problem(&self, expected: Option<Vouched<'_>>) -> Option<String> {
        if let Some(Vouched { size, digest }) = expected {
            if self.size != size {
                return Some(format!(
                    "is {} bytes but its manifest says {size}: the snapshot is truncated or does not belong to this manifest",
                    self.size
                ));
            }
            let (name, got, want) = match digest {
                Vouch::Xxh3(want) => ("xxh3_128", self.xxh3.as_deref(), want),
                Vouch::Sha256(want) => ("sha256", self.sha256.as_deref(), want),
            };
            if !got.is_some_and(|got| got.eq_ignore_ascii_case(want)) {
                return Some(format!(
                    "has {name} {} but its manifest says {want}: the snapshot is corrupted or does not belong to this manifest",
                    got.unwrap_or("(not computed)")
                ));
            }
        }
        if self.trailer_ok == Some(false) || (self.trailer_ok.is_none() && expected.is_none()) {
            return Some(
                "fails etcd's own integrity check (its last 32 bytes are not the sha256 of the rest): the snapshot is truncated or corrupted"
                    .into(),
            );
        }
        None
    }
}

/// Why a file read in place may not be restored as snapshot `expected` (size, etcd's trailing
/// sha256 in hex), judged by its size and its last 32 bytes, if it may not. etcd's restore tool
/// then checks that those 32 bytes are the sha256 of the rest, on the copy it restores.
pub(crate) fn trailer_problem(size: u64, last: &[u8], expected: (u64, &str)) -> Option<String> {
    let (expected_size, trailer) = expected;
    if size != expected_size {
        return Some(format!(
            "is {size} bytes but its manifest says {expected_size}: the snapshot is truncated or does not belong to this manifest"
        ));
    }
    if !hex(last).eq_ignore_ascii_case(trailer) {
        return Some(format!(
            "ends with etcd's checksum {} but its manifest says {trailer}: the snapshot is corrupted or does not belong to this manifest",
            hex(last)
        ));
    }
    None
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake snapshot as etcd shapes it: body, then sha256(body).
    fn snapshot(body: &[u8]) -> Vec<u8> {
        let mut bytes = body.to_vec();
        bytes.extend_from_slice(&Sha256::digest(body));
        bytes
    }

    fn check(bytes: &[u8], chunk: usize) -> Checked {
        let mut digest = SnapshotDigest::new();
        for part in bytes.chunks(chunk.max(1)) {
            digest.update(part);
        }
        digest.finish()
    }

    #[test]
    fn etcd_trailer_is_checked_whatever_the_chunking() {
        let bytes = snapshot(&vec![7u8; 5000]);
        for chunk in [1, 31, 32, 33, 1000, 5032, 9999] {
            let checked = check(&bytes, chunk);
            assert_eq!(checked.trailer_ok, Some(true), "chunk {chunk}");
            assert_eq!(checked.size, 5032);
            let sha256 = checked.sha256.clone().expect("computed");
            assert_eq!(sha256, hex(&Sha256::digest(&bytes)));
            let xxh3 = checked.xxh3.clone().expect("computed");
            assert_eq!(xxh3, format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes)));
            for digest in [Vouch::Sha256(&sha256.to_uppercase()), Vouch::Xxh3(&xxh3.to_uppercase())] {
                assert_eq!(checked.problem(Some(Vouched { size: 5032, digest })), None);
            }
        }
    }

    #[test]
    fn truncated_corrupted_or_mismatched_bytes_are_refused() {
        let good = snapshot(b"etcd bbolt pages");
        let sums = check(&good, 7);
        let (sha, fast) = (sums.sha256.expect("sha256"), sums.xxh3.expect("xxh3"));
        let size = good.len() as u64;
        let by_sha = |sum| Some(Vouched { size, digest: Vouch::Sha256(sum) });
        let by_xxh3 = |sum| Some(Vouched { size, digest: Vouch::Xxh3(sum) });
        let mut flipped = good.clone();
        flipped[3] ^= 1;
        let zeros = "0".repeat(64);
        let cases: &[(&[u8], Option<Vouched>, &str)] = &[
            (&good[..good.len() - 1], None, "etcd's own integrity check"),
            (&flipped, None, "etcd's own integrity check"),
            (&[], None, "etcd's own integrity check"),
            (&good[..TRAILER_LEN], None, "etcd's own integrity check"),
            (&good[..good.len() - 1], by_sha(&sha), "truncated"),
            (&flipped, by_sha(&sha), "sha256"),
            (&flipped, by_sha(&sha), "corrupted"),
            (&good, by_sha(&zeros), "does not belong"),
            (&good[..good.len() - 1], by_xxh3(&fast), "truncated"),
            (&flipped, by_xxh3(&fast), "xxh3_128"),
            (&good, by_xxh3(&zeros[..32]), "does not belong"),
        ];
        for (bytes, expected, want) in cases {
            let problem = check(bytes, 5).problem(*expected).expect("refused");
            assert!(problem.contains(want), "{problem}");
        }
    }

    #[test]
    fn a_restore_checks_the_whole_file_against_its_manifests_digest_only() {
        let good = snapshot(b"etcd bbolt pages");
        let all = check(&good, 7);
        let (sha, fast) = (all.sha256.expect("sha256"), all.xxh3.expect("xxh3"));
        let size = good.len() as u64;
        for vouch in [Vouch::Sha256(&sha), Vouch::Xxh3(&fast)] {
            let mut digest = SnapshotDigest::checking(vouch);
            digest.update(&good);
            let checked = digest.finish();
            assert_eq!(checked.trailer_ok, None, "not checked");
            let computed = match vouch {
                Vouch::Sha256(_) => (checked.sha256.as_deref(), checked.xxh3.as_deref()),
                Vouch::Xxh3(_) => (checked.xxh3.as_deref(), checked.sha256.as_deref()),
            };
            assert_eq!(computed.1, None, "only the digest the manifest names is computed");
            let expected = Some(Vouched { size, digest: vouch });
            assert_eq!(checked.problem(expected), None, "the manifest vouches");
            assert!(checked.problem(None).is_some(), "nothing vouches for bytes no manifest names");
            let mut flipped = good.clone();
            flipped[3] ^= 1;
            let mut digest = SnapshotDigest::checking(vouch);
            digest.update(&flipped);
            let problem = digest.finish().problem(expected).expect("refused");
            assert!(problem.contains("corrupted"), "{problem}");
        }
    }

    #[test]
    fn a_file_read_in_place_is_known_by_its_size_and_etcds_trailer() {
        let good = snapshot(b"etcd bbolt pages");
        let checked = check(&good, 7);
        let trailer = checked.trailer.clone().expect("the trailer held");
        assert_eq!(trailer, hex(&good[good.len() - TRAILER_LEN..]));
        let size = good.len() as u64;
        let last = &good[good.len() - TRAILER_LEN..];
        assert_eq!(trailer_problem(size, last, (size, &trailer.to_uppercase())), None);
        let other = snapshot(b"other pages");
        let problem = trailer_problem(size, &other[other.len() - TRAILER_LEN..], (size, &trailer));
        assert!(problem.expect("refused").contains("does not belong"));
        let problem = trailer_problem(size - 1, last, (size, &trailer));
        assert!(problem.expect("refused").contains("truncated"));
        assert_eq!(check(&good[1..], 7).trailer, None, "no trailer recorded where it fails");
    }
}
