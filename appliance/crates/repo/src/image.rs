//! Random access to a backup's image straight from the repository, for serving a backup
//! as a block device (NBD) without restoring it first.
//!
//! [`BackupImage`] answers `read_at` from the index: zero chunks cost nothing, data chunks
//! are fetched, decoded and checked against their digest, and the last few decoded chunks
//! stay in memory so that the small sequential requests block-device clients make do not
//! fetch a chunk once per request.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use crate::chunk::ChunkStore;
use crate::error::{RepoError, Result};
use crate::index::{ChunkRef, Index};
use crate::manifest::Manifest;
use crate::repo::Repository;
use crate::restore::load_chunk;
use crate::types::{BackupId, ChunkIdx, Digest};

/// Decoded chunks kept by default (16 MiB with the default 4 MiB chunk).
pub const DEFAULT_CACHED_CHUNKS: usize = 4;

/// One backup's image, readable at any offset. Cheap to share between threads.
pub struct BackupImage {
    repo: Repository,
    manifest: Manifest,
    index: Index,
    cache: Mutex<ChunkCache>,
}

impl std::fmt::Debug for BackupImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupImage")
            .field("backup", &self.manifest.backup_id)
            .field("size", &self.index.image_size())
            .finish()
    }
}

impl BackupImage {
    /// Opens backup `id` of `repo` (reads and checks its manifest and index), keeping up
    /// to `cached_chunks` decoded chunks (at least one).
    pub fn open(repo: Repository, id: &BackupId, cached_chunks: usize) -> Result<Self> {
        let manifest = repo.manifest(id)?;
        let index = repo.index(&manifest)?;
        Ok(BackupImage {
            repo,
            manifest,
            index,
            cache: Mutex::new(ChunkCache::new(cached_chunks.max(1))),
        })
    }

    /// The backup's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Image size in bytes.
    pub fn size(&self) -> u64 {
        self.index.image_size()
    }

    /// Fills `buf` with the image's bytes from `offset`. Reading past the end is
    /// [`RepoError::Invalid`]; a missing or damaged chunk is [`RepoError::Corrupt`].
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|end| *end <= self.size())
            .ok_or_else(|| {
                RepoError::invalid(
                    "read range",
                    format!(
                        "{} bytes at {offset} go past the end of the {}-byte image",
                        buf.len(),
                        self.size()
                    ),
                )
            })?;
        let cs = self.index.chunk_size();
        let mut pos = offset;
        while pos < end {
            let idx = cs.index_of(pos);
            let in_chunk = (pos - cs.offset_of(idx)) as usize;
            let chunk_len = cs.len_of(idx, self.size());
            let n = (chunk_len - in_chunk).min((end - pos) as usize);
            let out = &mut buf[(pos - offset) as usize..][..n];
            match self.index.get(idx) {
                Some(ChunkRef::Data(d)) => {
                    let data = self.chunk(idx, &d, chunk_len)?;
                    out.copy_from_slice(&data[in_chunk..in_chunk + n]);
                }
                Some(ChunkRef::Zero) => out.fill(0),
                None => {
                    return Err(RepoError::corrupt(
                        format!("index of backup {}", self.manifest.backup_id),
                        format!("it has no entry for chunk {idx}"),
                    ))
                }
            }
            pos += n as u64;
        }
        Ok(())
    }

    /// The decoded chunk `digest`, from the cache or the repository. The cache lock is not
    /// held while fetching, so readers of different chunks do not wait for each other.
    fn chunk(&self, idx: ChunkIdx, digest: &Digest, len: usize) -> Result<Arc<Vec<u8>>> {
        if let Some(hit) = self.lock_cache().get(digest) {
            return Ok(hit);
        }
        let store = ChunkStore::new(self.repo.target());
        let data = Arc::new(load_chunk(
            &store,
            &self.manifest.backup_id,
            idx,
            digest,
            len,
        )?);
        self.lock_cache().insert(*digest, data.clone());
        Ok(data)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ChunkCache> {
        // The cache holds only checked copies: a panic elsewhere cannot leave it wrong.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The most recently used decoded chunks, newest first.
struct ChunkCache {
    capacity: usize,
    entries: VecDeque<(Digest, Arc<Vec<u8>>)>,
}

impl ChunkCache {
    fn new(capacity: usize) -> Self {
        ChunkCache {
            capacity,
            entries: VecDeque::with_capacity(capacity),
        }
    }

    fn get(&mut self, digest: &Digest) -> Option<Arc<Vec<u8>>> {
        let at = self.entries.iter().position(|(d, _)| d == digest)?;
        let entry = self.entries.remove(at)?;
        let data = entry.1.clone();
        self.entries.push_front(entry);
        Some(data)
    }

    fn insert(&mut self, digest: Digest, data: Arc<Vec<u8>>) {
        if self.entries.iter().any(|(d, _)| *d == digest) {
            return;
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_back();
        }
        self.entries.push_front((digest, data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest([n; 32])
    }

    #[test]
    fn the_cache_keeps_the_most_recently_used_chunks() {
        let mut cache = ChunkCache::new(2);
        cache.insert(digest(1), Arc::new(vec![1]));
        cache.insert(digest(2), Arc::new(vec![2]));
        // Using 1 makes 2 the oldest: it is the one a third chunk pushes out.
        assert_eq!(cache.get(&digest(1)).as_deref(), Some(&vec![1]));
        cache.insert(digest(3), Arc::new(vec![3]));
        assert!(cache.get(&digest(2)).is_none());
        assert!(cache.get(&digest(1)).is_some());
        assert!(cache.get(&digest(3)).is_some());
        // Inserting a chunk already there does not duplicate it.
        cache.insert(digest(3), Arc::new(vec![3]));
        assert_eq!(cache.entries.len(), 2);
    }
}
