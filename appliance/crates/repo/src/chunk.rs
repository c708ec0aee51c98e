//! Chunk objects: encoding (header + zstd or raw payload), decoding with checks, and the
//! content-addressed [`ChunkStore`] over a [`Target`].
//!
//! Chunk object layout (little endian):
//!
//! | offset | size | field                                                    |
//! |--------|------|----------------------------------------------------------|
//! | 0      | 8    | [`CHUNK_MAGIC`]                                          |
//! | 8      | 1    | version ([`CHUNK_VERSION`])                              |
//! | 9      | 1    | encoding: [`CHUNK_ENCODING_RAW`] or [`CHUNK_ENCODING_ZSTD`] |
//! | 10     | 2    | reserved, zero                                           |
//! | 12     | 4    | uncompressed length                                      |
//! | 16     | ...  | payload                                                  |
//!
//! The key is `chunks/<first 2 hex>/<64 hex>` of the SHA-256 of the uncompressed bytes.

use crate::error::{RepoError, Result};
use crate::formats::{
    CHUNKS_PREFIX, CHUNK_ENCODING_RAW, CHUNK_ENCODING_ZSTD, CHUNK_HEADER_LEN, CHUNK_MAGIC,
    CHUNK_VERSION, MAX_CHUNK_SIZE,
};
use crate::target::{ObjectKey, Target};
use crate::types::Digest;

/// Key of the chunk object with digest `d`.
pub fn chunk_key(d: &Digest) -> ObjectKey {
    let hex = d.to_hex();
    ObjectKey::trusted(format!("{CHUNKS_PREFIX}/{}/{hex}", &hex[..2]))
}

/// Parses a chunk key back into its digest (`None` for anything that is not one).
pub fn digest_of_key(key: &ObjectKey) -> Option<Digest> {
    let mut parts = key.as_str().split('/');
    let (top, fan, name) = (parts.next()?, parts.next()?, parts.next()?);
    if top != CHUNKS_PREFIX || parts.next().is_some() || name.len() != 64 || !name.starts_with(fan)
    {
        return None;
    }
    Digest::from_hex(name).ok()
}

/// Encodes `data` as a chunk object, compressed with zstd at `level` unless that does not
/// make it smaller.
pub fn encode(data: &[u8], level: i32) -> Result<Vec<u8>> {
    let len = u32::try_from(data.len())
        .ok()
        .filter(|l| *l <= MAX_CHUNK_SIZE)
        .ok_or_else(|| RepoError::invalid("chunk", format!("{} bytes is too big", data.len())))?;
    let compressed = zstd::bulk::compress(data, level).map_err(|e| RepoError::Io {
        context: "compressing a chunk".into(),
        source: e,
    })?;
    let (encoding, payload) = if compressed.len() < data.len() {
        (CHUNK_ENCODING_ZSTD, compressed.as_slice())
    } else {
        (CHUNK_ENCODING_RAW, data)
    };
    let mut out = Vec::with_capacity(CHUNK_HEADER_LEN + payload.len());
    out.extend_from_slice(&CHUNK_MAGIC);
    out.push(CHUNK_VERSION);
    out.push(encoding);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Why a chunk object could not be decoded (no I/O involved).
pub fn decode(obj: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if obj.len() < CHUNK_HEADER_LEN {
        return Err(format!(
            "object is {} bytes, shorter than its header",
            obj.len()
        ));
    }
    if obj[..8] != CHUNK_MAGIC {
        return Err("bad magic".into());
    }
    if obj[8] != CHUNK_VERSION {
        return Err(format!("unknown chunk version {}", obj[8]));
    }
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&obj[12..16]);
    let len = u32::from_le_bytes(len_bytes);
    if len > MAX_CHUNK_SIZE {
        return Err(format!("length {len} exceeds the maximum chunk size"));
    }
    let payload = &obj[CHUNK_HEADER_LEN..];
    let data = match obj[9] {
        CHUNK_ENCODING_RAW => payload.to_vec(),
        CHUNK_ENCODING_ZSTD => zstd::bulk::decompress(payload, len as usize)
            .map_err(|e| format!("zstd payload does not decode: {e}"))?,
        other => return Err(format!("unknown encoding {other}")),
    };
    if data.len() != len as usize {
        return Err(format!(
            "payload holds {} bytes, header says {len}",
            data.len()
        ));
    }
    Ok(data)
}

/// Result of reading one chunk for checking.
#[derive(Debug)]
pub enum ChunkRead {
    /// Decoded and its digest matches.
    Good(Vec<u8>),
    /// No object with that digest.
    Missing,
    /// The object exists but is damaged; the text says how.
    Corrupt(String),
}

/// Content-addressed chunk objects in a target.
pub struct ChunkStore<'t> {
    target: &'t dyn Target,
}

/// What [`ChunkStore::put_if_absent`] did.
#[derive(Debug, Clone, Copy)]
pub struct PutOutcome {
    /// Whether a new object was written.
    pub written: bool,
    /// Bytes of the written object (0 when not written).
    pub stored_bytes: u64,
}

impl<'t> ChunkStore<'t> {
    /// Chunks of `target`.
    pub fn new(target: &'t dyn Target) -> Self {
        ChunkStore { target }
    }

    /// Stores `data` (whose SHA-256 is `digest`) unless a chunk with that digest exists.
    pub fn put_if_absent(&self, digest: &Digest, data: &[u8], level: i32) -> Result<PutOutcome> {
        let key = chunk_key(digest);
        if self.target.exists(&key)? {
            return Ok(PutOutcome {
                written: false,
                stored_bytes: 0,
            });
        }
        let obj = encode(data, level)?;
        self.target.put_batched(&key, &obj)?;
        Ok(PutOutcome {
            written: true,
            stored_bytes: obj.len() as u64,
        })
    }

    /// Reads, decodes and checks the chunk `digest`; I/O errors other than absence are errors.
    pub fn read_checked(&self, digest: &Digest) -> Result<ChunkRead> {
        let obj = match self.target.get(&chunk_key(digest)) {
            Ok(o) => o,
            Err(RepoError::NotFound { .. }) => return Ok(ChunkRead::Missing),
            Err(e) => return Err(e),
        };
        match decode(&obj) {
            Ok(data) => {
                let actual = Digest::of(&data);
                if actual == *digest {
                    Ok(ChunkRead::Good(data))
                } else {
                    Ok(ChunkRead::Corrupt(format!(
                        "content hashes to {}",
                        actual.short()
                    )))
                }
            }
            Err(why) => Ok(ChunkRead::Corrupt(why)),
        }
    }

    /// Deletes the chunk `digest`.
    pub fn delete(&self, digest: &Digest) -> Result<()> {
        self.target.delete(&chunk_key(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let text = b"hello hello hello hello hello hello hello hello".repeat(100);
        let enc = encode(&text, 3).unwrap();
        assert_eq!(enc[9], CHUNK_ENCODING_ZSTD);
        assert!(enc.len() < text.len());
        assert_eq!(decode(&enc).unwrap(), text);

        // Incompressible data is stored raw.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let enc = encode(&noise, 3).unwrap();
        assert_eq!(enc[9], CHUNK_ENCODING_RAW);
        assert_eq!(decode(&enc).unwrap(), noise);
    }

    #[test]
    fn damaged_objects_are_rejected() {
        let enc = encode(&[7u8; 1000], 3).unwrap();
        assert!(decode(&enc[..10]).is_err());
        let mut bad = enc.clone();
        bad[0] ^= 1;
        assert_eq!(decode(&bad).unwrap_err(), "bad magic");
        let mut bad = enc.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(decode(&bad).is_err());
    }

    #[test]
    fn keys_round_trip() {
        let d = Digest::of(b"x");
        let k = chunk_key(&d);
        assert!(k.as_str().starts_with("chunks/"));
        assert_eq!(digest_of_key(&k), Some(d));
        assert_eq!(
            digest_of_key(&ObjectKey::new("chunks/aa/bb").unwrap()),
            None
        );
    }
}
