//! Garbage collection.
//!
//! Both operations take the writer lock, so no backup of a writer sharing the lock is in
//! progress while they run.
//!
//! * [`Repository::gc_temp`] removes temporary objects of interrupted writes and the index
//!   objects of backups that were never published (an index without a manifest).
//! * [`Repository::gc`] does that, then marks every chunk referenced by an index of a
//!   published backup and deletes every other chunk object older than the grace period.
//!   If any published index cannot be read, it deletes nothing (it cannot tell what that
//!   backup needs). The grace period protects chunks of writers that do not honour the
//!   lock (several hosts on an object store without locking); with a single writer per
//!   repository it can be zero.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use crate::chunk::digest_of_key;
use crate::error::{RepoError, Result};
use crate::formats::CHUNKS_PREFIX;
use crate::index::Index;
use crate::repo::{index_key, Repository};
use crate::types::BackupId;

/// Settings of [`Repository::gc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GcOptions {
    /// Chunk objects written less than this long ago are kept even when unreferenced.
    pub grace: Duration,
}

/// What a collection removed and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GcReport {
    /// Temporary objects removed.
    pub removed_temp: u64,
    /// Index objects of unpublished backups removed.
    pub removed_orphan_indexes: u64,
    /// Unreferenced chunk objects removed.
    pub removed_chunks: u64,
    /// Bytes of the chunk objects removed.
    pub removed_bytes: u64,
    /// Chunk objects kept because a backup refers to them.
    pub kept_chunks: u64,
    /// Bytes of the chunk objects kept.
    pub kept_bytes: u64,
    /// Unreferenced chunk objects kept because they are younger than the grace period.
    pub recent_chunks: u64,
}

impl Repository {
    /// Removes leftovers of interrupted backups: temporary objects and unpublished indexes.
    pub fn gc_temp(&self) -> Result<GcReport> {
        let _lock = self.lock()?;
        self.gc_temp_locked()
    }

    fn gc_temp_locked(&self) -> Result<GcReport> {
        let mut report = GcReport {
            removed_temp: self.target().remove_temp()?,
            ..GcReport::default()
        };
        for dir in self.backup_dirs()? {
            if dir.has_index && !dir.has_manifest {
                if let Ok(id) = BackupId::new(dir.id) {
                    self.target().delete(&index_key(&id))?;
                    report.removed_orphan_indexes += 1;
                }
            }
        }
        self.target().flush()?;
        Ok(report)
    }

    /// Deletes every chunk object no published backup refers to (see the module docs).
    pub fn gc(&self, opts: &GcOptions) -> Result<GcReport> {
        let _lock = self.lock()?;
        let mut report = self.gc_temp_locked()?;

        let mut referenced = HashSet::new();
        for dir in self.backup_dirs()?.into_iter().filter(|d| d.has_manifest) {
            // Read the index object directly: even a backup whose manifest is damaged keeps
            // its chunks.
            let what = format!("index of backup {}", dir.id);
            let index = BackupId::new(dir.id.clone())
                .and_then(|id| self.target().get(&index_key(&id)))
                .and_then(|bytes| Index::decode(&bytes, &what))
                .map_err(|e| {
                    RepoError::corrupt(
                        format!("backup {}", dir.id),
                        format!("garbage collection stopped, nothing was deleted: {e}"),
                    )
                })?;
            referenced.extend(index.data_digests());
        }

        let now = SystemTime::now();
        for obj in self.target().list(CHUNKS_PREFIX)? {
            let Some(digest) = digest_of_key(&obj.key) else {
                continue;
            };
            if referenced.contains(&digest) {
                report.kept_chunks += 1;
                report.kept_bytes += obj.size;
                continue;
            }
            let age = now.duration_since(obj.modified).unwrap_or(Duration::ZERO);
            if age < opts.grace {
                report.recent_chunks += 1;
                continue;
            }
            self.target().delete(&obj.key)?;
            report.removed_chunks += 1;
            report.removed_bytes += obj.size;
        }
        self.target().flush()?;
        Ok(report)
    }
}
