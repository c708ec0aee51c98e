//! Difference storage: where the module keeps the original data of chunks written while a
//! snapshot is held.
//!
//! | [`DiffStorage`] | what is given to the module                                            |
//! |-----------------|------------------------------------------------------------------------|
//! | `Device`        | a whole scratch disk or a partition, minus [`SCRATCH_RESERVED`] at each end |
//! | `File`          | the extents of a preallocated, zero-filled file on a mounted scratch filesystem |
//!
//! # Safety rules (each has its own [`SessionError`])
//!
//! Devices:
//! - never a device that is, contains or is contained in a snapshotted device
//!   (`storage_is_snapshotted`), nor one stacked on such a device;
//! - never a mounted or held device, nor a disk with a mounted or held partition
//!   (`storage_in_use`);
//! - never a device (or a partition of a disk, or a disk with a partition) that another
//!   session of any process uses (`storage_in_use`): a session holds an exclusive `flock`
//!   on its storage device node (and a shared one on the disk of a partition) until it
//!   ends; the module itself opens storage without exclusion;
//! - a device holding a recognised filesystem or partition table only with `overwrite`
//!   (`storage_has_data`); blank devices, devices with unknown content and devices already
//!   labelled as scratch by this crate are used without asking;
//! - before use, [`SCRATCH_MAGIC`] is written at byte 0
//!   and the reserved areas are zeroed, so the device is recognised as scratch later and
//!   never looks like a copy of the filesystems whose data it holds.
//!
//! Files:
//! - only on ext2/3/4 or xfs on a listed block device: there FIEMAP's physical offsets are
//!   offsets on that device (btrfs, tmpfs, NFS, loop-backed and zram filesystems are
//!   refused);
//! - never on the filesystem of a snapshotted device (or a device stacked on one): the
//!   module's writes would go behind a production filesystem's back;
//! - never a file another session uses (exclusive `flock` on the file, as for devices);
//! - the file is allocated and zero-filled, then mapped; every byte must lie in written,
//!   unshared, aligned extents (no unwritten, delayed, inline, encoded or shared extents);
//! - while a session uses it, the file is kept open and made immutable (it cannot be
//!   deleted, truncated or moved, so its blocks cannot be handed to another file); the
//!   flag is cleared when the session ends, and on the next use of a file left immutable
//!   by a crash.
//!
//! Both kinds keep copies of production data after use: treat scratch devices and files
//! as sensitive.

mod file;
pub(crate) mod fsioctl;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use blksnap::{DevId, SectorRange};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::devices::{self, Device, FsType, Scanner};
use crate::error::SessionError;
use crate::formats::{SCRATCH_MAGIC, SCRATCH_NOTE, SCRATCH_RESERVED, SCRATCH_VERSION, SECTOR};

pub(crate) use file::FileGuard;

/// Where a session keeps its difference storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DiffStorage {
    /// A whole scratch disk or a partition, by stable id, serial or kernel name.
    Device {
        device: String,
        /// Use it even though it holds a recognised filesystem or partition table.
        #[serde(default)]
        overwrite: bool,
    },
    /// A file on a mounted scratch filesystem, created or grown to `size_bytes`.
    File { path: PathBuf, size_bytes: u64 },
}

impl DiffStorage {
    /// A whole device, refused when it holds data.
    pub fn device(query: impl Into<String>) -> Self {
        DiffStorage::Device {
            device: query.into(),
            overwrite: false,
        }
    }

    /// A file of `size_bytes`.
    pub fn file(path: impl Into<PathBuf>, size_bytes: u64) -> Self {
        DiffStorage::File {
            path: path.into(),
            size_bytes,
        }
    }
}

/// Storage ready to be handed to the module, piece by piece.
pub(crate) struct Prepared {
    /// For messages: `vdb (serial:scratch0)` or a file path.
    pub description: String,
    /// The block device the ranges are on.
    pub dev: DevId,
    pub pool: RangePool,
    /// Keeps a storage file open and immutable until dropped.
    pub _file: Option<FileGuard>,
    /// Locks that mark the storage as used by this session.
    pub _claim: Vec<Flock<File>>,
}

/// Takes a non-blocking `flock` on `path` (exclusive or shared), marking it as storage of
/// this session; `storage_in_use` when another session holds it.
pub(crate) fn claim(
    path: &Path,
    exclusive: bool,
    storage: &str,
) -> Result<Flock<File>, SessionError> {
    let f = File::open(path)
        .map_err(|e| SessionError::storage_io(format!("opening {}", path.display()), e))?;
    let arg = if exclusive {
        FlockArg::LockExclusiveNonblock
    } else {
        FlockArg::LockSharedNonblock
    };
    Flock::lock(f, arg).map_err(|(_, errno)| {
        if errno == Errno::EWOULDBLOCK {
            SessionError::StorageInUse {
                storage: storage.to_owned(),
                usage: format!(
                    "{} is difference storage of another snapshot",
                    path.display()
                ),
            }
        } else {
            SessionError::storage_io(format!("locking {}", path.display()), errno.into())
        }
    })
}

/// Ranges not yet given to the module, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RangePool {
    ranges: std::collections::VecDeque<SectorRange>,
    total: u64,
}

impl RangePool {
    /// A pool of `ranges` (empty ranges are dropped).
    pub fn new(ranges: Vec<SectorRange>) -> Self {
        let ranges: std::collections::VecDeque<_> =
            ranges.into_iter().filter(|r| r.count > 0).collect();
        let total = ranges.iter().map(|r| r.count).sum();
        RangePool { ranges, total }
    }

    /// Sectors in the pool at the start.
    pub fn total_sectors(&self) -> u64 {
        self.total
    }

    /// Sectors not handed out yet.
    #[cfg(test)]
    pub fn remaining_sectors(&self) -> u64 {
        self.ranges.iter().map(|r| r.count).sum()
    }

    /// Takes up to `sectors` sectors from the front, splitting a range when needed.
    pub fn take(&mut self, sectors: u64) -> Vec<SectorRange> {
        let mut want = sectors;
        let mut out = Vec::new();
        while want > 0 {
            let Some(front) = self.ranges.front_mut() else {
                break;
            };
            if front.count <= want {
                want -= front.count;
                out.push(*front);
                self.ranges.pop_front();
            } else {
                out.push(SectorRange::new(front.start.0, want));
                front.start.0 += want;
                front.count -= want;
                want = 0;
            }
        }
        out
    }
}

/// Checks `storage` against the rules in the module docs and prepares it. `snapshotted`
/// are the devices of the session; `required` is the least number of bytes it must offer.
pub(crate) fn prepare(
    storage: &DiffStorage,
    scanner: &Scanner,
    snapshotted: &[Device],
    required: u64,
) -> Result<Prepared, SessionError> {
    let all = scanner.scan()?;
    match storage {
        DiffStorage::Device { device, overwrite } => {
            let dev = devices::find(&all, device)?.clone();
            prepare_device(&dev, &all, snapshotted, *overwrite, required)
        }
        DiffStorage::File { path, size_bytes } => {
            file::prepare(path, *size_bytes, scanner, &all, snapshotted, required)
        }
    }
}

/// The first snapshotted device that `dev`, or a device it is stacked on, overlaps.
pub(crate) fn overlapping<'a>(
    dev: &Device,
    all: &[Device],
    snapshotted: &'a [Device],
) -> Option<&'a Device> {
    let mut stack = vec![dev.clone()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(d) = stack.pop() {
        if !seen.insert(d.name.clone()) {
            continue;
        }
        if let Some(s) = snapshotted.iter().find(|s| s.overlaps(&d)) {
            return Some(s);
        }
        for lower in &d.slaves {
            if let Some(l) = all.iter().find(|x| &x.name == lower) {
                stack.push(l.clone());
            }
        }
    }
    None
}

fn prepare_device(
    dev: &Device,
    all: &[Device],
    snapshotted: &[Device],
    overwrite: bool,
    required: u64,
) -> Result<Prepared, SessionError> {
    let label = dev.label();
    if let Some(s) = overlapping(dev, all, snapshotted) {
        return Err(SessionError::StorageIsSnapshotted {
            storage: label,
            device: s.label(),
        });
    }
    let usage = dev.usage_in(all);
    if !usage.is_empty() {
        return Err(SessionError::StorageInUse {
            storage: label,
            usage: usage.join("; "),
        });
    }
    if dev.read_only {
        return Err(SessionError::StorageUnsuitable {
            storage: label,
            reason: "the device is read-only".to_owned(),
        });
    }
    let scratch = dev.content.fs_type == Some(FsType::BlksnapScratch);
    if !scratch && !overwrite {
        if let Some(what) = dev.data() {
            return Err(SessionError::StorageHasData {
                storage: label,
                content: what,
            });
        }
    }
    let available = dev.size_bytes.saturating_sub(2 * SCRATCH_RESERVED) / SECTOR * SECTOR;
    if available == 0 || available < required {
        return Err(SessionError::ScratchTooSmall {
            storage: label,
            available,
            required,
        });
    }
    let mut locks = Vec::new();
    if let Some(disk) = dev
        .parent
        .as_ref()
        .and_then(|p| all.iter().find(|d| &d.name == p))
    {
        locks.push(claim(&disk.path, false, &label)?);
    }
    locks.push(claim(&dev.path, true, &label)?);
    write_scratch_label(dev)?;
    let start = SCRATCH_RESERVED / SECTOR;
    Ok(Prepared {
        description: label,
        dev: dev.dev,
        pool: RangePool::new(vec![SectorRange::new(start, available / SECTOR)]),
        _file: None,
        _claim: locks,
    })
}

/// Writes the scratch label and zeroes both reserved areas. The device is opened with
/// O_EXCL, which the kernel refuses while anything (a mount, a holder) has it open
/// exclusively.
fn write_scratch_label(dev: &Device) -> Result<(), SessionError> {
    let ctx = |what: &str| format!("{what} scratch device {}", dev.path.display());
    let f: File = OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_EXCL)
        .open(&dev.path)
        .map_err(|e| SessionError::storage_io(ctx("opening"), e))?;
    let mut head = vec![0u8; SCRATCH_RESERVED as usize];
    head[..SCRATCH_MAGIC.len()].copy_from_slice(SCRATCH_MAGIC);
    let v = SCRATCH_MAGIC.len();
    head[v..v + 4].copy_from_slice(&SCRATCH_VERSION.to_le_bytes());
    head[v + 4..v + 4 + SCRATCH_NOTE.len()].copy_from_slice(SCRATCH_NOTE);
    f.write_all_at(&head, 0)
        .map_err(|e| SessionError::storage_io(ctx("labelling"), e))?;
    let tail = vec![0u8; SCRATCH_RESERVED as usize];
    f.write_all_at(&tail, dev.size_bytes - SCRATCH_RESERVED)
        .map_err(|e| SessionError::storage_io(ctx("clearing the end of"), e))?;
    f.sync_all()
        .map_err(|e| SessionError::storage_io(ctx("syncing"), e))?;
    Ok(())
}

#[cfg(test)]
mod tests;
