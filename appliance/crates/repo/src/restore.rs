//! Reading a backup back: the shared ordered chunk reader, restore to a block device or
//! file, and raw export.
//!
//! Every data chunk is decoded and its SHA-256 compared with the index entry before it is
//! written anywhere; the SHA-256 of the whole restored image is computed on the way and,
//! for a full backup, compared with the manifest's `image_sha256`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

use nix::fcntl::{fallocate, FallocateFlags};
use sha2::{Digest as _, Sha256};

use crate::chunk::{ChunkRead, ChunkStore};
use crate::error::{RepoError, Result};
use crate::index::{ChunkRef, Index};
use crate::job::{JobCtl, Phase};
use crate::manifest::Manifest;
use crate::pipeline::{default_workers, run_ordered};
use crate::repo::Repository;
use crate::source::ImageSource;
use crate::types::{BackupId, ChunkIdx, Digest};

/// One chunk of an image as handed to a sink.
pub(crate) enum ChunkData {
    /// `len` zero bytes.
    Zero(usize),
    /// Verified content.
    Data(Vec<u8>),
}

/// Where a restore wrote to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestKind {
    /// A regular file, truncated and written sparse: zero chunks are holes.
    SparseFile,
    /// A block device: every byte of the image is written, zero chunks included (zeroed
    /// with `fallocate(FALLOC_FL_ZERO_RANGE)` where the device supports it).
    BlockDevice,
}

/// Outcome of a restore or raw export.
#[derive(Debug, Clone)]
pub struct RestoreResult {
    /// SHA-256 of the image as written.
    pub image_sha256: Digest,
    /// Image size in bytes.
    pub image_size: u64,
    /// Bytes written to the destination (zero chunks of a sparse file are not written).
    pub written_bytes: u64,
    /// Chunks that were all zero.
    pub zero_chunks: u64,
    /// What the destination was.
    pub destination: DestKind,
}

/// Zeroes `len` bytes at `offset` of a block device without writing them; `false` when the
/// device (or kernel) cannot.
fn zero_range_on_device(dev: &File, offset: u64, len: usize) -> bool {
    let (Ok(off), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return false;
    };
    fallocate(
        dev.as_raw_fd(),
        FallocateFlags::FALLOC_FL_ZERO_RANGE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
        off,
        len,
    )
    .is_ok()
}

fn dest_err(path: &Path, what: &str, source: io::Error) -> RepoError {
    RepoError::Destination {
        context: format!("{what} {}", path.display()),
        source,
    }
}

/// Chunk `idx` of backup `id`: the object `digest`, decoded and checked, `len` bytes long.
/// A missing or damaged object is [`RepoError::Corrupt`] naming the chunk and backup.
pub(crate) fn load_chunk(
    store: &ChunkStore<'_>,
    id: &BackupId,
    idx: ChunkIdx,
    digest: &Digest,
    len: usize,
) -> Result<Vec<u8>> {
    let what = || format!("chunk {idx} of backup {id} ({})", digest.short());
    match store.read_checked(digest)? {
        ChunkRead::Good(data) if data.len() == len => Ok(data),
        ChunkRead::Good(data) => Err(RepoError::corrupt(
            what(),
            format!("{} bytes where the image needs {len}", data.len()),
        )),
        ChunkRead::Missing => Err(RepoError::corrupt(
            what(),
            "the chunk object is missing from the repository",
        )),
        ChunkRead::Corrupt(why) => Err(RepoError::corrupt(what(), why)),
    }
}

impl Repository {
    /// Reads every chunk of backup `m` in order (fetch, decode and digest check in parallel),
    /// hands it to `sink` and returns the SHA-256 of the whole image.
    pub(crate) fn read_image(
        &self,
        m: &Manifest,
        index: &Index,
        phase: Phase,
        ctl: &JobCtl,
        mut sink: impl FnMut(ChunkIdx, ChunkData) -> Result<()>,
    ) -> Result<Digest> {
        let store = ChunkStore::new(self.target());
        let cs = index.chunk_size();
        let size = index.image_size();
        let id = &m.backup_id;
        let inputs = index.iter().map(|(idx, r)| {
            ctl.check()?;
            Ok((idx, r))
        });
        let work = |(idx, r): (ChunkIdx, ChunkRef)| -> Result<(ChunkIdx, ChunkData)> {
            let len = cs.len_of(idx, size);
            match r {
                ChunkRef::Zero => Ok((idx, ChunkData::Zero(len))),
                ChunkRef::Data(d) => {
                    load_chunk(&store, id, idx, &d, len).map(|data| (idx, ChunkData::Data(data)))
                }
            }
        };
        let zeros = vec![0u8; cs.bytes() as usize];
        let mut hash = Sha256::new();
        let mut done = 0u64;
        let consume = |(idx, data): (ChunkIdx, ChunkData)| -> Result<()> {
            ctl.check()?;
            let len = match &data {
                ChunkData::Zero(len) => {
                    hash.update(&zeros[..*len]);
                    *len
                }
                ChunkData::Data(d) => {
                    hash.update(d);
                    d.len()
                }
            };
            sink(idx, data)?;
            done += len as u64;
            ctl.report(phase, done, size);
            Ok(())
        };
        ctl.report(phase, 0, size);
        run_ordered(default_workers(), inputs, work, consume)?;
        let digest = Digest(hash.finalize().into());
        if let Some(expected) = m.image_sha256 {
            if expected != digest {
                return Err(RepoError::corrupt(
                    format!("backup {id}"),
                    format!(
                        "the image hashes to {} but the manifest records {}",
                        digest.short(),
                        expected.short()
                    ),
                ));
            }
        }
        Ok(digest)
    }

    /// Restores backup `id` bit-exact to `dest`: a block device (at least as big as the
    /// image; every byte of the image is written) or a regular file (created or truncated,
    /// zero chunks left as holes). Returns the SHA-256 of what was written.
    pub fn restore(&self, id: &BackupId, dest: &Path, ctl: &JobCtl) -> Result<RestoreResult> {
        let m = self.manifest(id)?;
        let index = self.index(&m)?;
        match fs::metadata(dest) {
            Ok(meta) if meta.file_type().is_block_device() => {
                self.restore_to_device(&m, &index, dest, ctl)
            }
            Ok(meta) if !meta.is_file() => Err(RepoError::invalid(
                "destination",
                format!("{} is neither a block device nor a file", dest.display()),
            )),
            _ => self.restore_to_file(&m, &index, dest, ctl, Phase::Restore),
        }
    }

    /// Writes backup `id` as a raw image file at `path` (sparse: zero chunks are holes).
    pub fn export_raw(&self, id: &BackupId, path: &Path, ctl: &JobCtl) -> Result<RestoreResult> {
        let m = self.manifest(id)?;
        let index = self.index(&m)?;
        if let Ok(meta) = fs::metadata(path) {
            if !meta.is_file() {
                return Err(RepoError::invalid(
                    "export path",
                    format!("{} exists and is not a regular file", path.display()),
                ));
            }
        }
        self.restore_to_file(&m, &index, path, ctl, Phase::Export)
    }

    fn restore_to_file(
        &self,
        m: &Manifest,
        index: &Index,
        path: &Path,
        ctl: &JobCtl,
        phase: Phase,
    ) -> Result<RestoreResult> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| dest_err(path, "creating", e))?;
        file.set_len(m.image_size)
            .map_err(|e| dest_err(path, "sizing", e))?;
        let cs = index.chunk_size();
        let mut written = 0u64;
        let mut zero_chunks = 0u64;
        let digest = self.read_image(m, index, phase, ctl, |idx, data| {
            match data {
                ChunkData::Zero(_) => zero_chunks += 1,
                ChunkData::Data(d) => {
                    file.write_all_at(&d, cs.offset_of(idx))
                        .map_err(|e| dest_err(path, "writing", e))?;
                    written += d.len() as u64;
                }
            }
            Ok(())
        })?;
        file.sync_all().map_err(|e| dest_err(path, "syncing", e))?;
        Ok(RestoreResult {
            image_sha256: digest,
            image_size: m.image_size,
            written_bytes: written,
            zero_chunks,
            destination: DestKind::SparseFile,
        })
    }

    fn restore_to_device(
        &self,
        m: &Manifest,
        index: &Index,
        path: &Path,
        ctl: &JobCtl,
    ) -> Result<RestoreResult> {
        let dev = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| dest_err(path, "opening", e))?;
        let dev_size = dev.size().map_err(|e| dest_err(path, "sizing", e))?;
        if dev_size < m.image_size {
            return Err(RepoError::invalid(
                "destination",
                format!(
                    "{} holds {dev_size} bytes, the image needs {}",
                    path.display(),
                    m.image_size
                ),
            ));
        }
        let cs = index.chunk_size();
        let zeros = vec![0u8; cs.bytes() as usize];
        let mut written = 0u64;
        let mut zero_chunks = 0u64;
        // Zero chunks are zeroed with fallocate(ZERO_RANGE) (cheap on thin-provisioned
        // devices); where the device does not support it, zeros are written.
        let mut zero_range = true;
        let digest = self.read_image(m, index, Phase::Restore, ctl, |idx, data| {
            let offset = cs.offset_of(idx);
            let buf = match &data {
                ChunkData::Zero(len) => {
                    zero_chunks += 1;
                    if zero_range && zero_range_on_device(&dev, offset, *len) {
                        written += *len as u64;
                        return Ok(());
                    }
                    zero_range = false;
                    &zeros[..*len]
                }
                ChunkData::Data(d) => d.as_slice(),
            };
            dev.write_all_at(buf, offset)
                .map_err(|e| dest_err(path, "writing", e))?;
            written += buf.len() as u64;
            Ok(())
        })?;
        dev.sync_all().map_err(|e| dest_err(path, "syncing", e))?;
        Ok(RestoreResult {
            image_sha256: digest,
            image_size: m.image_size,
            written_bytes: written,
            zero_chunks,
            destination: DestKind::BlockDevice,
        })
    }
}
