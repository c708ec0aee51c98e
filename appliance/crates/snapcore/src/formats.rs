//! Fixed values this crate writes to disks, and defaults of its behaviour.
//!
//! # DO NOT MODIFY the on-disk values
//!
//! [`SCRATCH_MAGIC`] and the reserved areas are how a scratch device used by an earlier
//! build is recognised as reusable difference storage (and not as a disk holding data).
//! Changing them makes every prepared scratch device look foreign.

/// Written at byte 0 of a whole-device difference storage (a scratch disk or partition)
/// before the module is given any of it. Devices carrying it are reused without asking.
pub const SCRATCH_MAGIC: &[u8] = b"BLKSNAP-SCRATCH\0";

/// Version written after [`SCRATCH_MAGIC`] (little-endian u32).
pub const SCRATCH_VERSION: u32 = 1;

/// Text written after the version, for people looking at the device.
pub const SCRATCH_NOTE: &[u8] =
    b"blksnap appliance difference storage: holds copies of snapshotted data\n";

/// Bytes at the start and at the end of a scratch device that are never given to the
/// module: the label lives in the first, and neither area can ever hold copied data, so
/// filesystem probes (which look near both ends) never mistake a scratch device for a
/// copy of a production filesystem.
pub const SCRATCH_RESERVED: u64 = 1 << 20;

/// Size of a 512-byte sector, the unit of the module's ranges.
pub const SECTOR: u64 = blksnap::SECTOR_SIZE;
