//! The two filesystem ioctls difference-storage files need, wrapped safely: FS_IOC_FIEMAP
//! (where a file's data lies on its device) and FS_IOC_GETFLAGS/SETFLAGS (the immutable
//! flag). The only unsafe code of the crate.

#![allow(unsafe_code)]

use std::fs::File;
use std::mem::size_of;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::libc::{c_int, c_long};
use nix::{ioctl_read_bad, ioctl_readwrite_bad, ioctl_write_ptr_bad};
use nix::{request_code_read, request_code_readwrite, request_code_write};

/// `FIEMAP_FLAG_SYNC`: write dirty data back before mapping.
const FIEMAP_FLAG_SYNC: u32 = 0x1;
/// `FIEMAP_EXTENT_LAST`.
pub const EXTENT_LAST: u32 = 0x1;
/// `FIEMAP_EXTENT_MERGED`: the filesystem has no native extents (ext2/3); informational.
pub const EXTENT_MERGED: u32 = 0x1000;
/// `FIEMAP_EXTENT_UNWRITTEN`.
pub const EXTENT_UNWRITTEN: u32 = 0x800;
/// `FS_IMMUTABLE_FL`.
const FS_IMMUTABLE_FL: c_int = 0x10;

/// Extents asked for per call.
const BATCH: usize = 128;

/// `struct fiemap` without its flexible array.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapHeader {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
}

/// `struct fiemap_extent`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtentRaw {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

/// The header followed by room for [`BATCH`] extents, as the kernel expects it.
#[repr(C)]
struct FiemapBuf {
    hdr: FiemapHeader,
    extents: [FiemapExtentRaw; BATCH],
}

const _: () = assert!(size_of::<FiemapHeader>() == 32);
const _: () = assert!(size_of::<FiemapExtentRaw>() == 56);

ioctl_readwrite_bad!(
    fs_ioc_fiemap,
    request_code_readwrite!(b'f', 11, size_of::<FiemapHeader>()),
    FiemapBuf
);
// The flags requests are declared with `long` but the kernel moves an `int`.
ioctl_read_bad!(
    fs_ioc_getflags,
    request_code_read!(b'f', 1, size_of::<c_long>()),
    c_int
);
ioctl_write_ptr_bad!(
    fs_ioc_setflags,
    request_code_write!(b'f', 2, size_of::<c_long>()),
    c_int
);

/// One mapped extent of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Byte offset in the file.
    pub logical: u64,
    /// Byte offset on the filesystem's device.
    pub physical: u64,
    pub length: u64,
    /// `FIEMAP_EXTENT_*` flags.
    pub flags: u32,
}

/// Every extent of `file` (after syncing its data), in file order.
pub fn fiemap(file: &File) -> Result<Vec<Extent>, Errno> {
    let mut out = Vec::new();
    let mut start = 0u64;
    loop {
        let mut buf = Box::new(FiemapBuf {
            hdr: FiemapHeader {
                fm_start: start,
                fm_length: u64::MAX - start,
                fm_flags: FIEMAP_FLAG_SYNC,
                fm_extent_count: BATCH as u32,
                ..FiemapHeader::default()
            },
            extents: [FiemapExtentRaw::default(); BATCH],
        });
        // SAFETY: `buf` is a live, exclusively owned header followed by room for
        // `fm_extent_count` extents, which is all the kernel writes.
        unsafe { fs_ioc_fiemap(file.as_raw_fd(), &mut *buf) }?;
        let n = (buf.hdr.fm_mapped_extents as usize).min(BATCH);
        if n == 0 {
            return Ok(out);
        }
        let mut last = false;
        for raw in &buf.extents[..n] {
            out.push(Extent {
                logical: raw.fe_logical,
                physical: raw.fe_physical,
                length: raw.fe_length,
                flags: raw.fe_flags,
            });
            last |= raw.fe_flags & EXTENT_LAST != 0;
        }
        let next = buf.extents[n - 1]
            .fe_logical
            .saturating_add(buf.extents[n - 1].fe_length);
        if last || next <= start {
            return Ok(out);
        }
        start = next;
    }
}

fn get_flags(file: &File) -> Result<c_int, Errno> {
    let mut flags: c_int = 0;
    // SAFETY: `flags` is a live int the kernel fills.
    unsafe { fs_ioc_getflags(file.as_raw_fd(), &mut flags) }?;
    Ok(flags)
}

/// Sets or clears the immutable flag of `file` (root only; ext2/3/4, xfs, btrfs, ...).
pub fn set_immutable(file: &File, on: bool) -> Result<(), Errno> {
    let flags = get_flags(file)?;
    let wanted = if on {
        flags | FS_IMMUTABLE_FL
    } else {
        flags & !FS_IMMUTABLE_FL
    };
    if wanted == flags {
        return Ok(());
    }
    // SAFETY: `wanted` is a live int the kernel only reads.
    unsafe { fs_ioc_setflags(file.as_raw_fd(), &wanted) }?;
    Ok(())
}

/// Whether `file` carries the immutable flag.
pub fn is_immutable(file: &File) -> Result<bool, Errno> {
    Ok(get_flags(file)? & FS_IMMUTABLE_FL != 0)
}
