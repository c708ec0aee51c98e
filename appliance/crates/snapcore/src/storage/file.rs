//! Difference storage in a preallocated file (rules in the parent module's docs).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use blksnap::{DevId, SectorRange};
use nix::errno::Errno;
use nix::fcntl::{fallocate, FallocateFlags};
use std::os::fd::AsRawFd;

use super::fsioctl::{self, Extent, EXTENT_LAST, EXTENT_MERGED, EXTENT_UNWRITTEN};
use super::{overlapping, Prepared, RangePool};
use crate::devices::{Device, Scanner};
use crate::error::SessionError;
use crate::formats::SECTOR;

/// Filesystems whose FIEMAP physical offsets are byte offsets on their one block device.
const MAPPABLE_FS: &[&str] = &["ext2", "ext3", "ext4", "xfs"];

/// Storage files are sized in whole MiB.
const FILE_GRANULE: u64 = 1 << 20;

/// Keeps a storage file open and immutable while a session uses it; clears the flag when
/// dropped.
pub(crate) struct FileGuard {
    file: File,
    path: PathBuf,
    immutable: bool,
}

impl Drop for FileGuard {
    fn drop(&mut self) {
        if self.immutable {
            // Best effort: a failure leaves the file immutable, which the next prepare of
            // the same path undoes.
            let _ = fsioctl::set_immutable(&self.file, false);
        }
    }
}

impl std::fmt::Debug for FileGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileGuard")
            .field("path", &self.path)
            .field("immutable", &self.immutable)
            .finish()
    }
}

fn unsuitable(path: &Path, reason: impl Into<String>) -> SessionError {
    SessionError::StorageUnsuitable {
        storage: path.display().to_string(),
        reason: reason.into(),
    }
}

fn io(path: &Path, what: &str, e: impl Into<std::io::Error>) -> SessionError {
    SessionError::storage_io(format!("{what} {}", path.display()), e.into())
}

pub(super) fn prepare(
    path: &Path,
    size_bytes: u64,
    scanner: &Scanner,
    all: &[Device],
    snapshotted: &[Device],
    required: u64,
) -> Result<Prepared, SessionError> {
    if !path.is_absolute() {
        return Err(unsuitable(path, "the path must be absolute"));
    }
    let size = size_bytes.div_ceil(FILE_GRANULE) * FILE_GRANULE;
    if size == 0 || size < required {
        return Err(SessionError::ScratchTooSmall {
            storage: path.display().to_string(),
            available: size,
            required,
        });
    }
    let dir = path
        .parent()
        .ok_or_else(|| unsuitable(path, "it has no parent directory"))?;
    let meta = std::fs::metadata(dir).map_err(|e| io(dir, "cannot stat", e))?;
    let dev = DevId::from_dev_t(meta.dev());
    let device = holding_device(path, dev, scanner, all)?;
    if let Some(s) = overlapping(&device, all, snapshotted) {
        return Err(SessionError::StorageIsSnapshotted {
            storage: format!("{} (on {})", path.display(), device.name),
            device: s.label(),
        });
    }

    // Claimed before anything is changed: another session may be using the file.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(path, "cannot create", e)),
    }
    let lock = super::claim(path, true, &path.display().to_string())?;
    let file = open_storage_file(path)?;
    let meta = file.metadata().map_err(|e| io(path, "cannot stat", e))?;
    let allocated = meta.blocks().saturating_mul(512);
    // The statvfs counters are u64 here but not on every target.
    #[allow(clippy::unnecessary_cast)]
    let free = nix::sys::statvfs::fstatvfs(&file)
        .map(|s| (s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
        .map_err(|e| {
            io(
                path,
                "cannot read the free space of the filesystem holding",
                e,
            )
        })?;
    if size > allocated.saturating_add(free) {
        return Err(SessionError::ScratchTooSmall {
            storage: path.display().to_string(),
            available: allocated.saturating_add(free),
            required: size,
        });
    }
    if meta.len() > size {
        file.set_len(size)
            .map_err(|e| io(path, "cannot truncate", e))?;
    }
    let len = i64::try_from(size).map_err(|_| unsuitable(path, "the size is too large"))?;
    match fallocate(file.as_raw_fd(), FallocateFlags::empty(), 0, len) {
        Ok(()) => {}
        Err(Errno::ENOSPC) | Err(Errno::EDQUOT) => {
            return Err(SessionError::ScratchTooSmall {
                storage: path.display().to_string(),
                available: allocated.saturating_add(free),
                required: size,
            })
        }
        Err(Errno::EOPNOTSUPP) => {
            return Err(unsuitable(path, "its filesystem cannot preallocate files"))
        }
        Err(e) => return Err(io(path, "cannot preallocate", e)),
    }
    let map = |f: &File| fsioctl::fiemap(f).map_err(|e| io(path, "cannot map the extents of", e));
    zero_fill(&file, path, &map(&file)?, size)?;
    file.sync_all().map_err(|e| io(path, "cannot sync", e))?;
    let ranges = extents_to_ranges(&map(&file)?, size).map_err(|r| unsuitable(path, r))?;
    let mut guard = FileGuard {
        file,
        path: path.to_path_buf(),
        immutable: false,
    };
    fsioctl::set_immutable(&guard.file, true).map_err(|e| io(path, "cannot make immutable", e))?;
    guard.immutable = true;
    Ok(Prepared {
        description: format!("{} (on {})", path.display(), device.label()),
        dev,
        pool: RangePool::new(ranges),
        _file: Some(guard),
        _claim: vec![lock],
    })
}

/// The listed device a filesystem with `st_dev` = `dev` lives on, if its type maps files
/// to device offsets.
fn holding_device(
    path: &Path,
    dev: DevId,
    scanner: &Scanner,
    all: &[Device],
) -> Result<Device, SessionError> {
    if !scanner.is_block_device(dev) {
        return Err(unsuitable(
            path,
            format!("its filesystem ({dev}) is not on a block device"),
        ));
    }
    let mounts = scanner.mounts();
    let fs_type = mounts
        .iter()
        .find(|m| m.dev == dev)
        .map(|m| m.fs_type.clone())
        .ok_or_else(|| unsuitable(path, format!("no mounted filesystem has device {dev}")))?;
    if !MAPPABLE_FS.contains(&fs_type.as_str()) {
        return Err(unsuitable(
            path,
            format!(
                "its filesystem is {fs_type}; only {} map files to device offsets",
                MAPPABLE_FS.join(", ")
            ),
        ));
    }
    all.iter().find(|d| d.dev == dev).cloned().ok_or_else(|| {
        unsuitable(
            path,
            format!("its filesystem is on {dev}, which is not a listed disk or partition"),
        )
    })
}

/// Opens (creating, mode 0600) the storage file, first clearing an immutable flag left by
/// a session that did not end cleanly.
fn open_storage_file(path: &Path) -> Result<File, SessionError> {
    if let Ok(existing) = File::open(path) {
        let meta = existing
            .metadata()
            .map_err(|e| io(path, "cannot stat", e))?;
        if !meta.is_file() {
            return Err(unsuitable(path, "it exists and is not a regular file"));
        }
        if fsioctl::is_immutable(&existing).unwrap_or(false) {
            fsioctl::set_immutable(&existing, false)
                .map_err(|e| io(path, "cannot clear the immutable flag of", e))?;
        }
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| io(path, "cannot open", e))
}

/// Writes zeros over every part of `0..size` that is not a written extent (unwritten
/// extents after fallocate, holes).
fn zero_fill(file: &File, path: &Path, extents: &[Extent], size: u64) -> Result<(), SessionError> {
    let zeros = vec![0u8; FILE_GRANULE as usize];
    let write_zeros = |from: u64, to: u64| -> Result<(), SessionError> {
        let mut at = from;
        while at < to {
            let n = (to - at).min(FILE_GRANULE) as usize;
            file.write_all_at(&zeros[..n], at)
                .map_err(|e| io(path, "cannot zero-fill", e))?;
            at += n as u64;
        }
        Ok(())
    };
    let mut covered = 0u64;
    for e in extents {
        if e.logical >= size {
            break;
        }
        let end = e.logical.saturating_add(e.length).min(size);
        if e.logical > covered {
            write_zeros(covered, e.logical)?;
        }
        if e.flags & EXTENT_UNWRITTEN != 0 {
            write_zeros(e.logical.max(covered), end)?;
        }
        covered = covered.max(end);
    }
    if covered < size {
        write_zeros(covered, size)?;
    }
    Ok(())
}

/// Device sector ranges holding bytes `0..size` of a file, given its extents; an error
/// names the first extent that cannot be used.
pub(crate) fn extents_to_ranges(extents: &[Extent], size: u64) -> Result<Vec<SectorRange>, String> {
    let mut out: Vec<SectorRange> = Vec::new();
    let mut covered = 0u64;
    for e in extents {
        if covered >= size {
            break;
        }
        let bad = e.flags & !(EXTENT_LAST | EXTENT_MERGED);
        if bad != 0 {
            return Err(format!(
                "the extent at file offset {} has flags {bad:#x} (unwritten, shared, inline, encoded or delayed data cannot be used)",
                e.logical
            ));
        }
        if e.logical != covered {
            return Err(format!(
                "the file has a hole at offset {covered} after zero-filling"
            ));
        }
        if e.physical % SECTOR != 0 || e.length % SECTOR != 0 || e.length == 0 {
            return Err(format!(
                "the extent at file offset {} is not sector-aligned",
                e.logical
            ));
        }
        let len = e.length.min(size - covered);
        let start = e.physical / SECTOR;
        let count = len.div_ceil(SECTOR);
        match out.last_mut() {
            Some(last) if last.start.0 + last.count == start => last.count += count,
            _ => out.push(SectorRange::new(start, count)),
        }
        covered += len;
    }
    if covered < size {
        return Err(format!(
            "only {covered} of {size} bytes are mapped to the device"
        ));
    }
    Ok(out)
}
