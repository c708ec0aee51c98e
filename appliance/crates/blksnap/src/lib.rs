//! Interface to the blksnap kernel module (`/dev/blksnap`, v2 UAPI).
//!
//! - [`uapi`]: the `#[repr(C)]` mirror of `kmod/include/uapi/blksnap.h` and
//!   the request numbers; tested against the header by `tests/layout.rs`.
//! - [`Blksnap`]: one safe method per request, with the two-call count
//!   protocols and the read loop of the change map handled inside.
//! - [`raw`]: unsafe access with caller-made arguments, for tests that feed
//!   the module malformed input.
//!
//! This crate knows nothing about sessions, jobs or repositories: it only
//! speaks the module's interface.

pub mod raw;
pub mod uapi;

mod error;
mod types;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::ptr;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

pub use error::{Error, Result};
pub use types::{
    CbtInfo, DevId, Event, GenerationId, ImageInfo, ParseDevIdError, ParseSnapshotIdError, Sector,
    SectorRange, SnapshotId, Version, SECTOR_SIZE,
};

/// Path of the control device.
pub const DEFAULT_PATH: &str = "/dev/blksnap";

/// How often a two-call count protocol is retried when the number of items
/// grows between the two calls.
const COLLECT_RETRIES: usize = 16;

/// An open control device of the module.
#[derive(Debug)]
pub struct Blksnap {
    fd: OwnedFd,
}

fn count_of(call: &'static str, len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| Error::new(call, Errno::EINVAL))
}

impl Blksnap {
    /// Opens `/dev/blksnap`.
    pub fn open() -> Result<Self> {
        Self::open_path(DEFAULT_PATH)
    }

    /// Opens the control device at `path`.
    pub fn open_path(path: impl AsRef<Path>) -> Result<Self> {
        let fd = open(
            path.as_ref(),
            OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| Error::new("open", errno))?;
        // SAFETY: `open` just returned this descriptor and nothing else owns it.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// VERSION: the module's version (informational only).
    pub fn version(&self) -> Result<Version> {
        let mut v = uapi::BlkSnapVersion::default();
        // SAFETY: `v` is a live, exclusively borrowed struct of the size the
        // request names; the kernel fills it.
        unsafe { raw::version(self.fd(), &mut v) }.map_err(|e| Error::new("VERSION", e))?;
        Ok(Version {
            major: v.major,
            minor: v.minor,
            revision: v.revision,
            build: v.build,
        })
    }

    /// TRACKER_REMOVE: detaches the tracker (and its change map) of `dev`.
    pub fn tracker_remove(&self, dev: DevId) -> Result<()> {
        let mut arg = uapi::BlkSnapTrackerRemove {
            dev_id: dev.to_raw(),
        };
        // SAFETY: `arg` is a live struct holding no pointers.
        unsafe { raw::tracker_remove(self.fd(), &mut arg) }
            .map_err(|e| Error::new("TRACKER_REMOVE", e))?;
        Ok(())
    }

    /// TRACKER_COLLECT: the change tracking state of every tracked device.
    pub fn tracker_collect(&self) -> Result<Vec<CbtInfo>> {
        const CALL: &str = "TRACKER_COLLECT";
        for _ in 0..COLLECT_RETRIES {
            let mut arg = uapi::BlkSnapTrackerCollect {
                count: 0,
                cbt_info_array: ptr::null_mut(),
            };
            // SAFETY: a null array asks for the count only; `arg` is live.
            unsafe { raw::tracker_collect(self.fd(), &mut arg) }
                .map_err(|e| Error::new(CALL, e))?;
            if arg.count == 0 {
                return Ok(Vec::new());
            }
            let mut buf = vec![uapi::BlkSnapCbtInfo::default(); arg.count as usize];
            arg.cbt_info_array = buf.as_mut_ptr();
            // SAFETY: the array has room for `arg.count` entries and no
            // reference to it is used while the kernel fills it.
            match unsafe { raw::tracker_collect(self.fd(), &mut arg) } {
                Ok(_) => {
                    buf.truncate(arg.count as usize);
                    return Ok(buf.iter().map(CbtInfo::from_raw).collect());
                }
                Err(Errno::ENODATA) => continue,
                Err(e) => return Err(Error::new(CALL, e)),
            }
        }
        Err(Error::new(CALL, Errno::ENODATA))
    }

    /// The tracking state of one device, if it is tracked.
    pub fn tracker_info(&self, dev: DevId) -> Result<Option<CbtInfo>> {
        Ok(self.tracker_collect()?.into_iter().find(|i| i.dev == dev))
    }

    /// TRACKER_READ_CBT_MAP: `len` bytes of the (frozen) change map of `dev`
    /// from byte `offset`, read in a loop until all came or the module
    /// returns no more (then the result is shorter).
    pub fn read_cbt_map(&self, dev: DevId, offset: u32, len: u32) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len as usize];
        let mut done: u32 = 0;
        while done < len {
            let mut arg = uapi::BlkSnapTrackerReadCbtBitmap {
                dev_id: dev.to_raw(),
                offset: offset.saturating_add(done),
                length: len - done,
                buff: buf[done as usize..].as_mut_ptr(),
            };
            // SAFETY: `buff` points into `buf` with `length` bytes left, and
            // `buf` is not otherwise used until the call returns.
            let n = unsafe { raw::tracker_read_cbt_map(self.fd(), &mut arg) }
                .map_err(|e| Error::new("TRACKER_READ_CBT_MAP", e))?;
            let n = u32::try_from(n).unwrap_or(0);
            if n == 0 {
                break;
            }
            done = done.saturating_add(n).min(len);
        }
        buf.truncate(done as usize);
        Ok(buf)
    }

    /// TRACKER_MARK_DIRTY_BLOCKS: marks the tracking blocks covering `ranges`
    /// changed. `dev` may be an original or a snapshot image.
    pub fn mark_dirty(&self, dev: DevId, ranges: &[SectorRange]) -> Result<()> {
        const CALL: &str = "TRACKER_MARK_DIRTY_BLOCKS";
        let mut raw_ranges: Vec<_> = ranges.iter().map(|r| r.to_raw()).collect();
        let mut arg = uapi::BlkSnapTrackerMarkDirtyBlocks {
            dev_id: dev.to_raw(),
            count: count_of(CALL, raw_ranges.len())?,
            dirty_blocks_array: raw_ranges.as_mut_ptr(),
        };
        // SAFETY: the array holds `count` ranges and outlives the call.
        unsafe { raw::tracker_mark_dirty_blocks(self.fd(), &mut arg) }
            .map_err(|e| Error::new(CALL, e))?;
        Ok(())
    }

    /// SNAPSHOT_CREATE: a new (not yet taken) snapshot of `devs`.
    pub fn snapshot_create(&self, devs: &[DevId]) -> Result<SnapshotId> {
        const CALL: &str = "SNAPSHOT_CREATE";
        let mut raw_devs: Vec<_> = devs.iter().map(|d| d.to_raw()).collect();
        let mut arg = uapi::BlkSnapSnapshotCreate {
            count: count_of(CALL, raw_devs.len())?,
            dev_id_array: raw_devs.as_mut_ptr(),
            id: uapi::BlkSnapUuid::default(),
        };
        // SAFETY: the array holds `count` devices and outlives the call;
        // `arg` is live and receives the id.
        unsafe { raw::snapshot_create(self.fd(), &mut arg) }.map_err(|e| Error::new(CALL, e))?;
        Ok(SnapshotId::from_raw(arg.id))
    }

    /// SNAPSHOT_DESTROY: releases the snapshot; trackers stay attached.
    pub fn snapshot_destroy(&self, id: SnapshotId) -> Result<()> {
        let mut arg = uapi::BlkSnapSnapshotDestroy { id: id.to_raw() };
        // SAFETY: `arg` is a live struct holding no pointers.
        unsafe { raw::snapshot_destroy(self.fd(), &mut arg) }
            .map_err(|e| Error::new("SNAPSHOT_DESTROY", e))?;
        Ok(())
    }

    /// SNAPSHOT_APPEND_STORAGE: adds `ranges` of `dev` to the difference
    /// storage of snapshot `id`.
    pub fn append_storage(&self, id: SnapshotId, dev: DevId, ranges: &[SectorRange]) -> Result<()> {
        const CALL: &str = "SNAPSHOT_APPEND_STORAGE";
        let mut raw_ranges: Vec<_> = ranges.iter().map(|r| r.to_raw()).collect();
        let mut arg = uapi::BlkSnapSnapshotAppendStorage {
            id: id.to_raw(),
            dev_id: dev.to_raw(),
            count: count_of(CALL, raw_ranges.len())?,
            ranges: raw_ranges.as_mut_ptr(),
        };
        // SAFETY: the array holds `count` ranges and outlives the call.
        unsafe { raw::snapshot_append_storage(self.fd(), &mut arg) }
            .map_err(|e| Error::new(CALL, e))?;
        Ok(())
    }

    /// SNAPSHOT_TAKE: the instant of the snapshot; creates the images.
    pub fn take(&self, id: SnapshotId) -> Result<()> {
        let mut arg = uapi::BlkSnapSnapshotTake { id: id.to_raw() };
        // SAFETY: `arg` is a live struct holding no pointers.
        unsafe { raw::snapshot_take(self.fd(), &mut arg) }
            .map_err(|e| Error::new("SNAPSHOT_TAKE", e))?;
        Ok(())
    }

    /// SNAPSHOT_COLLECT: the ids of every snapshot.
    pub fn snapshot_collect(&self) -> Result<Vec<SnapshotId>> {
        const CALL: &str = "SNAPSHOT_COLLECT";
        for _ in 0..COLLECT_RETRIES {
            let mut arg = uapi::BlkSnapSnapshotCollect {
                count: 0,
                ids: ptr::null_mut(),
            };
            // SAFETY: a null array asks for the count only; `arg` is live.
            unsafe { raw::snapshot_collect(self.fd(), &mut arg) }
                .map_err(|e| Error::new(CALL, e))?;
            if arg.count == 0 {
                return Ok(Vec::new());
            }
            let mut buf = vec![uapi::BlkSnapUuid::default(); arg.count as usize];
            arg.ids = buf.as_mut_ptr();
            // SAFETY: the array has room for `arg.count` ids and no
            // reference to it is used while the kernel fills it.
            match unsafe { raw::snapshot_collect(self.fd(), &mut arg) } {
                Ok(_) => {
                    buf.truncate(arg.count as usize);
                    return Ok(buf.into_iter().map(SnapshotId::from_raw).collect());
                }
                Err(Errno::ENODATA) => continue,
                Err(e) => return Err(Error::new(CALL, e)),
            }
        }
        Err(Error::new(CALL, Errno::ENODATA))
    }

    /// SNAPSHOT_COLLECT_IMAGES: the (original, image) pairs of a taken
    /// snapshot.
    pub fn collect_images(&self, id: SnapshotId) -> Result<Vec<ImageInfo>> {
        const CALL: &str = "SNAPSHOT_COLLECT_IMAGES";
        for _ in 0..COLLECT_RETRIES {
            let mut arg = uapi::BlkSnapSnapshotCollectImages {
                id: id.to_raw(),
                count: 0,
                image_info_array: ptr::null_mut(),
            };
            // SAFETY: a null array asks for the count only; `arg` is live.
            unsafe { raw::snapshot_collect_images(self.fd(), &mut arg) }
                .map_err(|e| Error::new(CALL, e))?;
            if arg.count == 0 {
                return Ok(Vec::new());
            }
            let mut buf = vec![uapi::BlkSnapImageInfo::default(); arg.count as usize];
            arg.image_info_array = buf.as_mut_ptr();
            // SAFETY: the array has room for `arg.count` entries and no
            // reference to it is used while the kernel fills it.
            match unsafe { raw::snapshot_collect_images(self.fd(), &mut arg) } {
                Ok(_) => {
                    buf.truncate(arg.count as usize);
                    return Ok(buf
                        .iter()
                        .map(|i| ImageInfo {
                            orig: DevId::from_raw(i.orig_dev_id),
                            image: DevId::from_raw(i.image_dev_id),
                        })
                        .collect());
                }
                Err(Errno::ENODATA) => continue,
                Err(e) => return Err(Error::new(CALL, e)),
            }
        }
        Err(Error::new(CALL, Errno::ENODATA))
    }

    /// SNAPSHOT_WAIT_EVENT: the next event of snapshot `id`, waiting up to
    /// `timeout` (rounded down to milliseconds, at most `u32::MAX` ms).
    /// A timeout (ENOENT) gives `Ok(None)`.
    pub fn wait_event(&self, id: SnapshotId, timeout: Duration) -> Result<Option<Event>> {
        let mut arg = Box::new(uapi::BlkSnapSnapshotEvent {
            id: id.to_raw(),
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
            ..Default::default()
        });
        // SAFETY: `arg` is a live, exclusively owned 4096-byte event struct;
        // the kernel fills its code, time label and data.
        match unsafe { raw::snapshot_wait_event(self.fd(), &mut *arg) } {
            Ok(_) => Ok(Some(Event::from_raw(&arg))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(Error::new("SNAPSHOT_WAIT_EVENT", e)),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsFd for Blksnap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_missing_device_names_call() {
        let err = Blksnap::open_path("/nonexistent/blksnap").unwrap_err();
        assert_eq!(err, Error::new("open", Errno::ENOENT));
    }

    #[test]
    fn requests_on_a_non_blksnap_fd_fail_cleanly() {
        // /dev/null rejects every unknown ioctl with ENOTTY: checks the
        // plumbing (argument marshalling and error mapping) without a module.
        let ctl = Blksnap::open_path("/dev/null").expect("open /dev/null");
        assert_eq!(
            ctl.version().unwrap_err(),
            Error::new("VERSION", Errno::ENOTTY)
        );
        assert_eq!(
            ctl.tracker_collect().unwrap_err(),
            Error::new("TRACKER_COLLECT", Errno::ENOTTY)
        );
        assert_eq!(
            ctl.wait_event(SnapshotId::default(), Duration::from_millis(1))
                .unwrap_err()
                .errno,
            Errno::ENOTTY
        );
    }
}
