//! The per-backup chunk index: for every chunk of the image, in order, the digest of its
//! content or "zero".
//!
//! Index object layout (little endian):
//!
//! | offset          | size | field                                              |
//! |-----------------|------|----------------------------------------------------|
//! | 0               | 8    | [`INDEX_MAGIC`]                                    |
//! | 8               | 4    | version ([`INDEX_VERSION`])                        |
//! | 12              | 4    | chunk size in bytes                                |
//! | 16              | 8    | image size in bytes                                |
//! | 24              | 8    | chunk count (= ceil(image size / chunk size))      |
//! | 32              | 32*n | entries: SHA-256 of the chunk, or 32 zero bytes for an all-zero chunk |
//! | 32 + 32*n       | 32   | SHA-256 of all preceding bytes                     |

use sha2::{Digest as _, Sha256};

use crate::error::{RepoError, Result};
use crate::formats::{
    CONTENT_DIGEST_DOMAIN, INDEX_ENTRY_LEN, INDEX_HEADER_LEN, INDEX_MAGIC, INDEX_TRAILER_LEN,
    INDEX_VERSION,
};
use crate::types::{ChunkIdx, ChunkSize, Digest};

/// What one chunk of an image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkRef {
    /// Every byte is zero; nothing is stored.
    Zero,
    /// The chunk object with this digest.
    Data(Digest),
}

impl ChunkRef {
    fn to_bytes(self) -> [u8; 32] {
        match self {
            ChunkRef::Zero => [0u8; 32],
            ChunkRef::Data(d) => d.0,
        }
    }

    fn from_bytes(b: [u8; 32]) -> Self {
        if b == [0u8; 32] {
            ChunkRef::Zero
        } else {
            ChunkRef::Data(Digest(b))
        }
    }
}

/// The ordered chunk list of one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    chunk_size: ChunkSize,
    image_size: u64,
    entries: Vec<ChunkRef>,
}

impl Index {
    /// An index; `entries` must have exactly one entry per chunk of `image_size`.
    pub fn new(chunk_size: ChunkSize, image_size: u64, entries: Vec<ChunkRef>) -> Result<Self> {
        let expected = chunk_size.chunk_count(image_size);
        if entries.len() as u64 != expected {
            return Err(RepoError::invalid(
                "index",
                format!(
                    "{} entries for {expected} chunks of {image_size} bytes",
                    entries.len()
                ),
            ));
        }
        Ok(Index {
            chunk_size,
            image_size,
            entries,
        })
    }

    /// Chunk size of the image.
    pub fn chunk_size(&self) -> ChunkSize {
        self.chunk_size
    }

    /// Image size in bytes.
    pub fn image_size(&self) -> u64 {
        self.image_size
    }

    /// Entries in chunk order.
    pub fn entries(&self) -> &[ChunkRef] {
        &self.entries
    }

    /// The entry of chunk `idx`.
    pub fn get(&self, idx: ChunkIdx) -> Option<ChunkRef> {
        usize::try_from(idx.0)
            .ok()
            .and_then(|i| self.entries.get(i).copied())
    }

    /// Entries with their chunk index.
    pub fn iter(&self) -> impl Iterator<Item = (ChunkIdx, ChunkRef)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, r)| (ChunkIdx(i as u64), *r))
    }

    /// Serialises the index object.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            INDEX_HEADER_LEN + self.entries.len() * INDEX_ENTRY_LEN + INDEX_TRAILER_LEN,
        );
        out.extend_from_slice(&INDEX_MAGIC);
        out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        out.extend_from_slice(&self.chunk_size.bytes().to_le_bytes());
        out.extend_from_slice(&self.image_size.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.to_bytes());
        }
        let trailer = Sha256::digest(&out);
        out.extend_from_slice(&trailer);
        out
    }

    /// Parses an index object; `what` names it in errors ("index of backup X").
    pub fn decode(bytes: &[u8], what: &str) -> Result<Self> {
        let corrupt = |detail: String| RepoError::corrupt(what, detail);
        if bytes.len() < INDEX_HEADER_LEN + INDEX_TRAILER_LEN {
            return Err(corrupt(format!("{} bytes is too short", bytes.len())));
        }
        if bytes[..8] != INDEX_MAGIC {
            return Err(corrupt("bad magic".into()));
        }
        let u32_at = |o: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[o..o + 4]);
            u32::from_le_bytes(b)
        };
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let version = u32_at(8);
        if version != INDEX_VERSION {
            return Err(RepoError::FormatVersion {
                what: what.to_owned(),
                found: version,
                supported: INDEX_VERSION,
            });
        }
        let body_len = bytes.len() - INDEX_TRAILER_LEN;
        let trailer = Sha256::digest(&bytes[..body_len]);
        if trailer.as_slice() != &bytes[body_len..] {
            return Err(corrupt("checksum mismatch".into()));
        }
        let chunk_size = ChunkSize::new(u32_at(12)).map_err(|e| corrupt(e.to_string()))?;
        let image_size = u64_at(16);
        let count = u64_at(24);
        let entry_bytes = body_len - INDEX_HEADER_LEN;
        if count != chunk_size.chunk_count(image_size)
            || entry_bytes % INDEX_ENTRY_LEN != 0
            || (entry_bytes / INDEX_ENTRY_LEN) as u64 != count
        {
            return Err(corrupt(format!(
                "{count} chunks and {entry_bytes} entry bytes do not fit {image_size} bytes in chunks of {}",
                chunk_size.bytes()
            )));
        }
        let entries = bytes[INDEX_HEADER_LEN..body_len]
            .chunks_exact(INDEX_ENTRY_LEN)
            .map(|c| {
                let mut b = [0u8; 32];
                b.copy_from_slice(c);
                ChunkRef::from_bytes(b)
            })
            .collect();
        Ok(Index {
            chunk_size,
            image_size,
            entries,
        })
    }

    /// The content digest: SHA-256 over [`CONTENT_DIGEST_DOMAIN`], the image size (u64 LE),
    /// the chunk size (u32 LE), the chunk count (u64 LE) and the 32-byte entries in order.
    /// Two backups have the same content digest exactly when their images are identical
    /// (given the same chunk size), without reading any chunk.
    pub fn content_digest(&self) -> Digest {
        let mut h = Sha256::new();
        h.update(CONTENT_DIGEST_DOMAIN);
        h.update(self.image_size.to_le_bytes());
        h.update(self.chunk_size.bytes().to_le_bytes());
        h.update((self.entries.len() as u64).to_le_bytes());
        for e in &self.entries {
            h.update(e.to_bytes());
        }
        Digest(h.finalize().into())
    }

    /// Digests of every stored chunk the index refers to (with repeats).
    pub fn data_digests(&self) -> impl Iterator<Item = Digest> + '_ {
        self.entries.iter().filter_map(|e| match e {
            ChunkRef::Data(d) => Some(*d),
            ChunkRef::Zero => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Index {
        let cs = ChunkSize::new(4096).unwrap();
        Index::new(
            cs,
            4096 * 2 + 10,
            vec![
                ChunkRef::Data(Digest::of(b"a")),
                ChunkRef::Zero,
                ChunkRef::Data(Digest::of(b"b")),
            ],
        )
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let idx = sample();
        let bytes = idx.encode();
        assert_eq!(bytes.len(), 32 + 3 * 32 + 32);
        assert_eq!(Index::decode(&bytes, "t").unwrap(), idx);
        assert_eq!(idx.data_digests().count(), 2);
    }

    #[test]
    fn damage_is_detected() {
        let bytes = sample().encode();
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        assert!(matches!(
            Index::decode(&bad, "t"),
            Err(RepoError::Corrupt { .. })
        ));
        assert!(Index::decode(&bytes[..bytes.len() - 1], "t").is_err());
        let mut newer = bytes.clone();
        newer[8] = 9;
        assert!(matches!(
            Index::decode(&newer, "t"),
            Err(RepoError::FormatVersion { found: 9, .. })
        ));
    }

    #[test]
    fn wrong_entry_count_is_refused() {
        let cs = ChunkSize::new(4096).unwrap();
        assert!(Index::new(cs, 4097, vec![ChunkRef::Zero]).is_err());
    }
}
