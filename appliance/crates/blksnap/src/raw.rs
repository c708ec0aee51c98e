//! Raw access to every request, for tests that hand the module malformed
//! arguments (null pointers, huge counts, unknown ids).
//!
//! Each function issues the ioctl with the argument pointer as given and
//! returns the ioctl's result (a non-negative value) or the errno.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

use crate::uapi::{self, ioctl};

macro_rules! raw_request {
    ($(#[$doc:meta])* $name:ident, $ty:ty, mut) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// `arg` and every user pointer inside `*arg` are handed to the
        /// kernel unchecked: each must be null, or point to memory of the size
        /// the request implies that the kernel may read and (for results)
        /// overwrite while no Rust reference to it is alive. Invalid pointers
        /// the module must reject with EFAULT are allowed when they point to
        /// no mapped memory at all.
        pub unsafe fn $name(fd: BorrowedFd<'_>, arg: *mut $ty) -> Result<i32, Errno> {
            // SAFETY: the caller upholds the contract stated above.
            unsafe { ioctl::$name(fd.as_raw_fd(), arg) }
        }
    };
    ($(#[$doc:meta])* $name:ident, $ty:ty, const) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// `arg` and every user pointer inside `*arg` are handed to the
        /// kernel unchecked: each must be null, or point to memory of the size
        /// the request implies that the kernel may read and (for results)
        /// overwrite while no Rust reference to it is alive. Invalid pointers
        /// the module must reject with EFAULT are allowed when they point to
        /// no mapped memory at all.
        pub unsafe fn $name(fd: BorrowedFd<'_>, arg: *mut $ty) -> Result<i32, Errno> {
            // SAFETY: the caller upholds the contract stated above; the
            // pointer keeps the provenance of `arg`, so the kernel's writes
            // through it are writes the caller allowed.
            unsafe { ioctl::$name(fd.as_raw_fd(), arg.cast_const()) }
        }
    };
}

raw_request!(
    /// IOCTL_BLK_SNAP_VERSION.
    version, uapi::BlkSnapVersion, const
);
raw_request!(
    /// IOCTL_BLK_SNAP_TRACKER_REMOVE.
    tracker_remove, uapi::BlkSnapTrackerRemove, const
);
raw_request!(
    /// IOCTL_BLK_SNAP_TRACKER_COLLECT.
    tracker_collect, uapi::BlkSnapTrackerCollect, const
);
raw_request!(
    /// IOCTL_BLK_SNAP_TRACKER_READ_CBT_MAP.
    tracker_read_cbt_map, uapi::BlkSnapTrackerReadCbtBitmap, mut
);
raw_request!(
    /// IOCTL_BLK_SNAP_TRACKER_MARK_DIRTY_BLOCKS.
    tracker_mark_dirty_blocks, uapi::BlkSnapTrackerMarkDirtyBlocks, mut
);
raw_request!(
    /// IOCTL_BLK_SNAP_SNAPSHOT_CREATE.
    snapshot_create, uapi::BlkSnapSnapshotCreate, const
);
raw_request!(
    /// IOCTL_BLK_SNAP_SNAPSHOT_DESTROY.
    snapshot_destroy, uapi::BlkSnapSnapshotDestroy, mut
);
raw_request!(
    /// IOCTL_BLK_SNAP_SNAPSHOT_APPEND_STORAGE.
    snapshot_append_storage, uapi::BlkSnapSnapshotAppendStorage, const
);
raw_request!(
    /// IOCTL_BLK_SNAP_SNAPSHOT_TAKE.
    snapshot_take, uapi::BlkSnapSnapshotTake, mut
);
raw_request!(
    /// IOCTL_BLK_SNAP_SNAPSHOT_COLLECT.
    snapshot_collect, uapi::BlkSnapSnapshotCollect, const
);
raw_request!(
    /// IOCTL_BLK_SNAP_SNAPSHOT_COLLECT_IMAGES.
    snapshot_collect_images, uapi::BlkSnapSnapshotCollectImages, const
);
raw_request!(
    /// IOCTL_BLK_SNAP_SNAPSHOT_WAIT_EVENT.
    snapshot_wait_event, uapi::BlkSnapSnapshotEvent, const
);
