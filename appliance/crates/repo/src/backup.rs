//! Full and incremental backups.
//!
//! Order of writes (crash safety):
//! 1. chunk objects, each all-or-nothing ([`crate::Target::put`]); nothing refers to them yet;
//! 2. [`crate::Target::flush`]: the chunks are durable;
//! 3. the index object, flush;
//! 4. the manifest object, flush: the backup is published.
//!
//! A crash or failure before 4 leaves only unreferenced objects, which no listing shows and
//! [`Repository::gc_temp`] / [`Repository::gc`] remove; earlier backups are never touched
//! (chunk objects are immutable, and a chunk already present is not written again). On a
//! failure the job also deletes the chunk objects it created itself, best effort.
//!
//! The work runs in the [`crate::pipeline`]: one thread reads the source sequentially in
//! chunk-size blocks (and hashes the whole image for full backups), workers detect zero
//! chunks, hash, compress and store, and the calling thread assembles the index in order,
//! reports progress and checks for cancellation.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::chunk::ChunkStore;
use crate::error::{RepoError, Result};
use crate::formats::MANIFEST_VERSION;
use crate::index::{ChunkRef, Index};
use crate::job::{JobCtl, Phase};
use crate::manifest::{BackupKind, BackupStats, CbtPosition, Compression, DiskIdentity, Manifest};
use crate::pipeline::{io_workers, run_ordered};
use crate::repo::{index_key, manifest_key, Repository};
use crate::source::{is_zero, ImageSource};
use crate::types::{BackupId, ByteRange, ChunkIdx, ChunkSize, Digest};
use crate::util::{compact_time, nonce_hex, rfc3339, unix_now};

use sha2::{Digest as _, Sha256};

/// What to record about a backup, and how to cut it.
#[derive(Debug, Clone, Default)]
pub struct BackupRequest {
    /// The disk being backed up (`size_bytes` 0 means: the image size).
    pub disk: DiskIdentity,
    /// CBT position of the snapshot being read.
    pub cbt: Option<CbtPosition>,
    /// Use this id instead of a generated one (`<UTC time>-<8 hex>`).
    pub id: Option<BackupId>,
    /// Chunk size of a full backup (default: the repository's). Incrementals always use
    /// their parent's.
    pub chunk_size: Option<ChunkSize>,
    /// zstd level (default: the repository's).
    pub zstd_level: Option<i32>,
    /// Program name and version recorded in the manifest (default: `repo <version>`).
    pub tool_version: Option<String>,
}

impl BackupRequest {
    /// A request for `disk` with every other setting at its default.
    pub fn new(disk: DiskIdentity) -> Self {
        BackupRequest {
            disk,
            ..Self::default()
        }
    }
}

/// Outcome of a published backup.
#[derive(Debug, Clone)]
pub struct BackupResult {
    /// The published manifest (its `stats` hold the job's counters).
    pub manifest: Manifest,
}

impl BackupResult {
    /// The new backup's id.
    pub fn id(&self) -> &BackupId {
        &self.manifest.backup_id
    }

    /// Bytes read from the source.
    pub fn read_bytes(&self) -> u64 {
        self.manifest.stats.read_bytes
    }
}

/// What a backup job will do, worked out before any I/O on the target.
struct Plan {
    id: BackupId,
    kind: BackupKind,
    parent: Option<BackupId>,
    chunk_size: ChunkSize,
    image_size: u64,
    /// Initial entries: the parent's for an incremental; overwritten for chunks read.
    entries: Vec<ChunkRef>,
    /// Chunks to read, ascending.
    to_read: Vec<ChunkIdx>,
}

/// One chunk after a worker processed it.
struct Processed {
    idx: ChunkIdx,
    entry: ChunkRef,
    len: u64,
    /// Content already stored (earlier backup or earlier in this job).
    reused: bool,
    stored_bytes: u64,
}

/// Chunk objects this job created, for deleting them again when the job fails.
#[derive(Default)]
struct Created {
    claimed: Mutex<HashSet<Digest>>,
    written: Mutex<Vec<Digest>>,
}

impl Repository {
    /// Backs up the whole of `source` (a file or a block device): reads it sequentially,
    /// stores the chunks not yet in the repository and publishes the backup.
    pub fn backup_full<S: ImageSource + ?Sized>(
        &self,
        source: &S,
        req: &BackupRequest,
        ctl: &JobCtl,
    ) -> Result<BackupResult> {
        let _lock = self.lock()?;
        let image_size = source_size(source)?;
        let chunk_size = req.chunk_size.unwrap_or(self.config().default_chunk_size);
        let count = chunk_size.chunk_count(image_size);
        let plan = Plan {
            id: self.new_backup_id(req)?,
            kind: BackupKind::Full,
            parent: None,
            chunk_size,
            image_size,
            entries: vec![ChunkRef::Zero; to_usize(count)?],
            to_read: (0..count).map(ChunkIdx).collect(),
        };
        self.run_backup(source, plan, req, ctl)
    }

    /// Backs up `source` on top of backup `parent`: reads only the chunks that cover
    /// `changed` (byte ranges of the image, e.g. converted from the CBT map; ranges past
    /// the end of the image are clipped) and takes every other chunk from the parent's
    /// index. When the image size differs from the parent's, the chunks from the parent's
    /// last one onwards are read as well. The result's `read_bytes` is exactly the bytes
    /// read from `source`.
    pub fn backup_incremental<S: ImageSource + ?Sized>(
        &self,
        source: &S,
        parent: &BackupId,
        changed: &[ByteRange],
        req: &BackupRequest,
        ctl: &JobCtl,
    ) -> Result<BackupResult> {
        let _lock = self.lock()?;
        let parent_manifest = self.manifest(parent)?;
        let parent_index = self.index(&parent_manifest)?;
        let image_size = source_size(source)?;
        let chunk_size = parent_manifest.chunk_size;
        let count = chunk_size.chunk_count(image_size);
        let count_usize = to_usize(count)?;

        let mut read = vec![false; count_usize];
        let mut mark = |first: u64, end_exclusive: u64| {
            for i in first..end_exclusive.min(count) {
                // i < count, which fits in usize (checked above).
                if let Some(slot) = read.get_mut(i as usize) {
                    *slot = true;
                }
            }
        };
        for r in changed {
            let end = r
                .end()
                .ok_or_else(|| RepoError::invalid("changed range", format!("{r:?} overflows")))?
                .min(image_size);
            if r.len == 0 || r.offset >= end {
                continue;
            }
            mark(
                chunk_size.index_of(r.offset).0,
                chunk_size.index_of(end - 1).0 + 1,
            );
        }
        if image_size != parent_manifest.image_size {
            let kept = parent_manifest.chunk_count.min(count);
            mark(kept.saturating_sub(1), count);
        }

        let mut entries = parent_index.entries().to_vec();
        entries.resize(count_usize, ChunkRef::Zero);
        let to_read = read
            .iter()
            .enumerate()
            .filter(|(_, r)| **r)
            .map(|(i, _)| ChunkIdx(i as u64))
            .collect();
        let plan = Plan {
            id: self.new_backup_id(req)?,
            kind: BackupKind::Incremental,
            parent: Some(parent.clone()),
            chunk_size,
            image_size,
            entries,
            to_read,
        };
        self.run_backup(source, plan, req, ctl)
    }

    fn new_backup_id(&self, req: &BackupRequest) -> Result<BackupId> {
        let id = match &req.id {
            Some(id) => id.clone(),
            None => BackupId::new(format!(
                "{}-{}",
                compact_time(unix_now()),
                &nonce_hex()[..8]
            ))?,
        };
        let t = self.target();
        if t.exists(&manifest_key(&id))? || t.exists(&index_key(&id))? {
            return Err(RepoError::AlreadyExists {
                what: format!("backup {id}"),
            });
        }
        Ok(id)
    }

    fn run_backup<S: ImageSource + ?Sized>(
        &self,
        source: &S,
        plan: Plan,
        req: &BackupRequest,
        ctl: &JobCtl,
    ) -> Result<BackupResult> {
        let level = req.zstd_level.unwrap_or(self.config().default_zstd_level);
        let created = Created::default();
        let result = self.store_and_publish(source, plan, req, level, &created, ctl);
        if result.is_err() {
            // Nothing published refers to chunks this job created (the lock kept other
            // writers out), so they can go; failures here leave garbage for gc, no harm.
            let store = ChunkStore::new(self.target());
            if let Ok(written) = created.written.lock() {
                for d in written.iter() {
                    let _ = store.delete(d);
                }
            }
            let _ = self.target().flush();
        }
        result
    }

    fn store_and_publish<S: ImageSource + ?Sized>(
        &self,
        source: &S,
        mut plan: Plan,
        req: &BackupRequest,
        level: i32,
        created: &Created,
        ctl: &JobCtl,
    ) -> Result<BackupResult> {
        ctl.check()?;
        let target = self.target();
        let store = ChunkStore::new(target);
        let cs = plan.chunk_size;
        let size = plan.image_size;
        let total: u64 = plan
            .to_read
            .iter()
            .map(|i| cs.len_of(*i, size) as u64)
            .sum();
        let whole_image = plan.to_read.len() as u64 == cs.chunk_count(size);
        let mut image_hash = Sha256::new();
        let mut stats = BackupStats {
            unchanged_chunks: cs.chunk_count(size) - plan.to_read.len() as u64,
            ..BackupStats::default()
        };

        {
            let image_hash = &mut image_hash;
            let inputs = plan.to_read.iter().map(|&idx| {
                ctl.check()?;
                let offset = cs.offset_of(idx);
                let mut buf = vec![0u8; cs.len_of(idx, size)];
                source
                    .read_exact_at(&mut buf, offset)
                    .map_err(|source| RepoError::Source { offset, source })?;
                if whole_image {
                    image_hash.update(&buf);
                }
                Ok((idx, buf))
            });
            let work = |(idx, buf): (ChunkIdx, Vec<u8>)| -> Result<Processed> {
                let len = buf.len() as u64;
                if is_zero(&buf) {
                    return Ok(Processed {
                        idx,
                        entry: ChunkRef::Zero,
                        len,
                        reused: false,
                        stored_bytes: 0,
                    });
                }
                let digest = Digest::of(&buf);
                let first_in_job = created
                    .claimed
                    .lock()
                    .map(|mut c| c.insert(digest))
                    .unwrap_or(true);
                let (reused, stored_bytes) = if first_in_job {
                    let put = store.put_if_absent(&digest, &buf, level)?;
                    if put.written {
                        if let Ok(mut w) = created.written.lock() {
                            w.push(digest);
                        }
                    }
                    (!put.written, put.stored_bytes)
                } else {
                    (true, 0)
                };
                Ok(Processed {
                    idx,
                    entry: ChunkRef::Data(digest),
                    len,
                    reused,
                    stored_bytes,
                })
            };
            let entries = &mut plan.entries;
            let stats = &mut stats;
            let consume = |p: Processed| -> Result<()> {
                ctl.check()?;
                let slot = usize::try_from(p.idx.0)
                    .ok()
                    .and_then(|i| entries.get_mut(i))
                    .ok_or_else(|| RepoError::invalid("chunk index", p.idx.to_string()))?;
                *slot = p.entry;
                stats.read_bytes += p.len;
                stats.read_chunks += 1;
                match p.entry {
                    ChunkRef::Zero => stats.zero_chunks += 1,
                    ChunkRef::Data(_) if p.reused => stats.reused_chunks += 1,
                    ChunkRef::Data(_) => {
                        stats.new_chunks += 1;
                        stats.new_bytes += p.len;
                        stats.stored_bytes += p.stored_bytes;
                    }
                }
                ctl.report(Phase::Backup, stats.read_bytes, total);
                Ok(())
            };
            ctl.report(Phase::Backup, 0, total);
            run_ordered(io_workers(), inputs, work, consume)?;
        }
        // Every chunk read: a cancel arriving now still publishes nothing.
        ctl.check()?;

        let index = Index::new(cs, size, plan.entries)?;
        let index_bytes = index.encode();
        let now = unix_now();
        let manifest = Manifest {
            manifest_version: MANIFEST_VERSION,
            backup_id: plan.id.clone(),
            kind: plan.kind,
            parent: plan.parent,
            disk: DiskIdentity {
                size_bytes: if req.disk.size_bytes == 0 {
                    size
                } else {
                    req.disk.size_bytes
                },
                ..req.disk.clone()
            },
            image_size: size,
            chunk_size: cs,
            chunk_count: cs.chunk_count(size),
            created: rfc3339(now),
            created_unix: now,
            cbt: req.cbt.clone(),
            image_sha256: whole_image.then(|| Digest(image_hash.finalize().into())),
            content_digest: index.content_digest(),
            index_sha256: Digest::of(&index_bytes),
            stats,
            compression: Compression {
                algorithm: "zstd".to_owned(),
                level,
            },
            tool_version: req
                .tool_version
                .clone()
                .unwrap_or_else(|| format!("repo {}", env!("CARGO_PKG_VERSION"))),
        };
        let manifest_json = manifest.to_json()?;

        target.flush()?;
        let publish = || -> Result<()> {
            target.put(&index_key(&plan.id), &index_bytes)?;
            target.flush()?;
            target.put(&manifest_key(&plan.id), &manifest_json)?;
            target.flush()
        };
        if let Err(e) = publish() {
            let _ = target.delete(&manifest_key(&plan.id));
            let _ = target.delete(&index_key(&plan.id));
            return Err(e);
        }
        Ok(BackupResult { manifest })
    }
}

fn source_size<S: ImageSource + ?Sized>(source: &S) -> Result<u64> {
    let size = source
        .size()
        .map_err(|source| RepoError::Source { offset: 0, source })?;
    if size == 0 {
        return Err(RepoError::invalid("source", "the image is empty"));
    }
    Ok(size)
}

fn to_usize(count: u64) -> Result<usize> {
    usize::try_from(count)
        .map_err(|_| RepoError::invalid("image size", format!("{count} chunks is too many")))
}
