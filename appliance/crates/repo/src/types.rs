//! Unit newtypes shared by every module: digests, chunk indices and sizes, byte ranges,
//! backup ids.

use std::fmt;
use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{RepoError, Result};
use crate::formats;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Self {
        Digest(Sha256::digest(data).into())
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|e| RepoError::invalid("digest", format!("{s:?}: {e}")))?;
        Ok(Digest(out))
    }

    /// The first 12 hex characters, for messages.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Index of a chunk within an image: chunk `i` covers bytes
/// `i * chunk_size .. min((i + 1) * chunk_size, image_size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChunkIdx(pub u64);

impl fmt::Display for ChunkIdx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Size of the image slices a backup is cut into: a power of two between
/// [`formats::MIN_CHUNK_SIZE`] and [`formats::MAX_CHUNK_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct ChunkSize(NonZeroU32);

impl ChunkSize {
    /// Checks the bounds and that `bytes` is a power of two.
    pub fn new(bytes: u32) -> Result<Self> {
        if !(formats::MIN_CHUNK_SIZE..=formats::MAX_CHUNK_SIZE).contains(&bytes)
            || !bytes.is_power_of_two()
        {
            return Err(RepoError::invalid(
                "chunk size",
                format!(
                    "{bytes} is not a power of two between {} and {}",
                    formats::MIN_CHUNK_SIZE,
                    formats::MAX_CHUNK_SIZE
                ),
            ));
        }
        NonZeroU32::new(bytes)
            .map(ChunkSize)
            .ok_or_else(|| RepoError::invalid("chunk size", "zero"))
    }

    /// The size in bytes.
    pub fn bytes(self) -> u32 {
        self.0.get()
    }

    /// The size in bytes, as u64 for offset arithmetic.
    pub fn bytes_u64(self) -> u64 {
        u64::from(self.0.get())
    }

    /// Number of chunks an image of `image_size` bytes is cut into.
    pub fn chunk_count(self, image_size: u64) -> u64 {
        image_size.div_ceil(self.bytes_u64())
    }

    /// Byte offset of chunk `idx`.
    pub fn offset_of(self, idx: ChunkIdx) -> u64 {
        idx.0 * self.bytes_u64()
    }

    /// Length of chunk `idx` in an image of `image_size` bytes (the last chunk may be short).
    pub fn len_of(self, idx: ChunkIdx, image_size: u64) -> usize {
        let start = self.offset_of(idx);
        let len = image_size.saturating_sub(start).min(self.bytes_u64());
        // Bounded by the chunk size, which is a u32.
        usize::try_from(len).unwrap_or(self.bytes() as usize)
    }

    /// The chunk containing byte `offset`.
    pub fn index_of(self, offset: u64) -> ChunkIdx {
        ChunkIdx(offset / self.bytes_u64())
    }
}

const DEFAULT_CHUNK_SIZE: NonZeroU32 = match NonZeroU32::new(formats::DEFAULT_CHUNK_SIZE) {
    Some(n) => n,
    None => panic!("the default chunk size is zero"),
};

impl Default for ChunkSize {
    /// [`formats::DEFAULT_CHUNK_SIZE`] (4 MiB).
    fn default() -> Self {
        ChunkSize(DEFAULT_CHUNK_SIZE)
    }
}

impl TryFrom<u32> for ChunkSize {
    type Error = RepoError;
    fn try_from(v: u32) -> Result<Self> {
        ChunkSize::new(v)
    }
}

impl From<ChunkSize> for u32 {
    fn from(c: ChunkSize) -> u32 {
        c.bytes()
    }
}

/// A range of bytes of an image: `offset .. offset + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

impl ByteRange {
    /// `offset .. offset + len`.
    pub fn new(offset: u64, len: u64) -> Self {
        ByteRange { offset, len }
    }

    /// One past the last byte, or `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.len)
    }
}

/// Identifier of a backup: 1 to 128 characters of `[A-Za-z0-9._-]`, not starting with `.`
/// or `-`. Generated ids look like `20250102T030405Z-1a2b3c4d` and sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

impl BackupId {
    /// Validates `s` (it becomes part of an object key, so no path tricks).
    pub fn new(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 128
            && !s.starts_with('.')
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        if ok {
            Ok(BackupId(s))
        } else {
            Err(RepoError::invalid(
                "backup id",
                format!("{s:?} must be 1-128 characters of [A-Za-z0-9._-], not starting with '.' or '-'"),
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for BackupId {
    type Error = RepoError;
    fn try_from(s: String) -> Result<Self> {
        BackupId::new(s)
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> String {
        id.0
    }
}

impl std::str::FromStr for BackupId {
    type Err = RepoError;
    fn from_str(s: &str) -> Result<Self> {
        BackupId::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_geometry() {
        let cs = ChunkSize::new(4096).unwrap();
        assert_eq!(cs.chunk_count(0), 0);
        assert_eq!(cs.chunk_count(4096), 1);
        assert_eq!(cs.chunk_count(4097), 2);
        assert_eq!(cs.len_of(ChunkIdx(1), 4097), 1);
        assert_eq!(cs.len_of(ChunkIdx(0), 4097), 4096);
        assert_eq!(cs.index_of(8191), ChunkIdx(1));
        assert_eq!(ChunkSize::default().bytes(), 4 << 20);
        assert!(ChunkSize::new(3 << 20).is_err());
        assert!(ChunkSize::new(1024).is_err());
    }

    #[test]
    fn backup_ids_reject_path_tricks() {
        assert!(BackupId::new("20250101T000000Z-0a1b2c3d").is_ok());
        for bad in ["", "..", ".x", "a/b", "-x", "a b", &"x".repeat(129)] {
            assert!(BackupId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn digest_hex_round_trip() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::from_hex(&d.to_hex()).unwrap(), d);
        assert!(Digest::from_hex("zz").is_err());
    }
}
