//! `#[repr(C)]` mirror of `kmod/include/uapi/blksnap.h` (the blksnap v2 layout).
//!
//! Field order, types and sizes are interface facts: they must match the C
//! header byte for byte. The `tests/layout.rs` test compiles a C program
//! against the header and compares every size, offset and request number with
//! the ones below. Pointers are user pointers handed to the kernel as they are.

use std::mem::size_of;

/// Name of the control device under `/dev`.
pub const BLK_SNAP_CTL: &str = "blksnap";
/// Prefix of the snapshot image block devices (`blksnap-image<minor>`).
pub const BLK_SNAP_IMAGE_NAME: &str = "blksnap-image";
/// The ioctl type character.
pub const BLK_SNAP: u8 = b'V';

/// `enum blk_snap_ioctl`: the request numbers, in header order.
pub mod nr {
    pub const VERSION: u8 = 0;
    pub const TRACKER_REMOVE: u8 = 1;
    pub const TRACKER_COLLECT: u8 = 2;
    pub const TRACKER_READ_CBT_MAP: u8 = 3;
    pub const TRACKER_MARK_DIRTY_BLOCKS: u8 = 4;
    pub const SNAPSHOT_CREATE: u8 = 5;
    pub const SNAPSHOT_DESTROY: u8 = 6;
    pub const SNAPSHOT_APPEND_STORAGE: u8 = 7;
    pub const SNAPSHOT_TAKE: u8 = 8;
    pub const SNAPSHOT_COLLECT: u8 = 9;
    pub const SNAPSHOT_COLLECT_IMAGES: u8 = 10;
    pub const SNAPSHOT_WAIT_EVENT: u8 = 11;
    /// `blk_snap_ioctl_end`: one past the last request.
    pub const END: u8 = 12;
}

/// `enum blk_snap_event_codes`.
pub const BLK_SNAP_EVENT_CODE_LOW_FREE_SPACE: u32 = 0;
/// `enum blk_snap_event_codes`.
pub const BLK_SNAP_EVENT_CODE_CORRUPTED: u32 = 1;

/// `struct blk_snap_version`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkSnapVersion {
    pub major: u16,
    pub minor: u16,
    pub revision: u16,
    pub build: u16,
}

/// `struct blk_snap_dev`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkSnapDev {
    pub mj: u32,
    pub mn: u32,
}

/// `struct blk_snap_tracker_remove`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct BlkSnapTrackerRemove {
    pub dev_id: BlkSnapDev,
}

/// `struct blk_snap_uuid`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkSnapUuid {
    pub b: [u8; 16],
}

/// `struct blk_snap_cbt_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct BlkSnapCbtInfo {
    pub dev_id: BlkSnapDev,
    pub blk_size: u32,
    pub device_capacity: u64,
    pub blk_count: u32,
    pub generation_id: BlkSnapUuid,
    pub snap_number: u8,
}

/// `struct blk_snap_tracker_collect`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlkSnapTrackerCollect {
    pub count: u32,
    pub cbt_info_array: *mut BlkSnapCbtInfo,
}

/// `struct blk_snap_tracker_read_cbt_bitmap`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlkSnapTrackerReadCbtBitmap {
    pub dev_id: BlkSnapDev,
    pub offset: u32,
    pub length: u32,
    pub buff: *mut u8,
}

/// `struct blk_snap_block_range` (512-byte sectors).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkSnapBlockRange {
    pub sector_offset: u64,
    pub sector_count: u64,
}

/// `struct blk_snap_tracker_mark_dirty_blocks`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlkSnapTrackerMarkDirtyBlocks {
    pub dev_id: BlkSnapDev,
    pub count: u32,
    pub dirty_blocks_array: *mut BlkSnapBlockRange,
}

/// `struct blk_snap_snapshot_create`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlkSnapSnapshotCreate {
    pub count: u32,
    pub dev_id_array: *mut BlkSnapDev,
    pub id: BlkSnapUuid,
}

/// `struct blk_snap_snapshot_destroy`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct BlkSnapSnapshotDestroy {
    pub id: BlkSnapUuid,
}

/// `struct blk_snap_snapshot_append_storage`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlkSnapSnapshotAppendStorage {
    pub id: BlkSnapUuid,
    pub dev_id: BlkSnapDev,
    pub count: u32,
    pub ranges: *mut BlkSnapBlockRange,
}

/// `struct blk_snap_snapshot_take`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct BlkSnapSnapshotTake {
    pub id: BlkSnapUuid,
}

/// `struct blk_snap_snapshot_collect`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlkSnapSnapshotCollect {
    pub count: u32,
    pub ids: *mut BlkSnapUuid,
}

/// `struct blk_snap_image_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkSnapImageInfo {
    pub orig_dev_id: BlkSnapDev,
    pub image_dev_id: BlkSnapDev,
}

/// `struct blk_snap_snapshot_collect_images`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlkSnapSnapshotCollectImages {
    pub id: BlkSnapUuid,
    pub count: u32,
    pub image_info_array: *mut BlkSnapImageInfo,
}

/// Size of `blk_snap_snapshot_event::data`.
pub const BLK_SNAP_EVENT_DATA_LEN: usize = 4096 - 32;

/// `struct blk_snap_snapshot_event`: exactly 4096 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlkSnapSnapshotEvent {
    pub id: BlkSnapUuid,
    pub timeout_ms: u32,
    pub code: u32,
    pub time_label: i64,
    pub data: [u8; BLK_SNAP_EVENT_DATA_LEN],
}

impl Default for BlkSnapSnapshotEvent {
    fn default() -> Self {
        Self {
            id: BlkSnapUuid::default(),
            timeout_ms: 0,
            code: 0,
            time_label: 0,
            data: [0; BLK_SNAP_EVENT_DATA_LEN],
        }
    }
}

impl std::fmt::Debug for BlkSnapSnapshotEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlkSnapSnapshotEvent")
            .field("id", &self.id)
            .field("timeout_ms", &self.timeout_ms)
            .field("code", &self.code)
            .field("time_label", &self.time_label)
            .field("data[..16]", &&self.data[..16])
            .finish()
    }
}

/// `struct blk_snap_event_low_free_space`: body of a low free space event.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct BlkSnapEventLowFreeSpace {
    pub requested_nr_sect: u64,
}

/// `struct blk_snap_event_corrupted`: body of a corrupted event.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct BlkSnapEventCorrupted {
    pub orig_dev_id: BlkSnapDev,
    pub err_code: i32,
}

// The sizes the header has on the 64-bit ABIs this project targets.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(size_of::<BlkSnapVersion>() == 8);
    assert!(size_of::<BlkSnapDev>() == 8);
    assert!(size_of::<BlkSnapTrackerRemove>() == 8);
    assert!(size_of::<BlkSnapUuid>() == 16);
    assert!(size_of::<BlkSnapCbtInfo>() == 48);
    assert!(size_of::<BlkSnapTrackerCollect>() == 16);
    assert!(size_of::<BlkSnapTrackerReadCbtBitmap>() == 24);
    assert!(size_of::<BlkSnapBlockRange>() == 16);
    assert!(size_of::<BlkSnapTrackerMarkDirtyBlocks>() == 24);
    assert!(size_of::<BlkSnapSnapshotCreate>() == 32);
    assert!(size_of::<BlkSnapSnapshotDestroy>() == 16);
    assert!(size_of::<BlkSnapSnapshotAppendStorage>() == 40);
    assert!(size_of::<BlkSnapSnapshotTake>() == 16);
    assert!(size_of::<BlkSnapSnapshotCollect>() == 16);
    assert!(size_of::<BlkSnapImageInfo>() == 16);
    assert!(size_of::<BlkSnapSnapshotCollectImages>() == 32);
    assert!(size_of::<BlkSnapEventLowFreeSpace>() == 8);
    assert!(size_of::<BlkSnapEventCorrupted>() == 12);
};

// Fixed by the interface on every ABI.
const _: () = assert!(size_of::<BlkSnapSnapshotEvent>() == 4096);
const _: () = assert!(size_of::<BlkSnapEventLowFreeSpace>() <= BLK_SNAP_EVENT_DATA_LEN);
const _: () = assert!(size_of::<BlkSnapEventCorrupted>() <= BLK_SNAP_EVENT_DATA_LEN);

/// The ioctl request numbers, built with the direction each has in the header
/// (`_IOW` or `_IOR`; the directions are part of the numbers).
pub mod request {
    use std::mem::size_of;

    use nix::{request_code_read, request_code_write};

    use super::*;

    /// The platform's ioctl request type.
    pub type Request = nix::sys::ioctl::ioctl_num_type;

    pub const VERSION: Request =
        request_code_write!(BLK_SNAP, nr::VERSION, size_of::<BlkSnapVersion>());
    pub const TRACKER_REMOVE: Request = request_code_write!(
        BLK_SNAP,
        nr::TRACKER_REMOVE,
        size_of::<BlkSnapTrackerRemove>()
    );
    pub const TRACKER_COLLECT: Request = request_code_write!(
        BLK_SNAP,
        nr::TRACKER_COLLECT,
        size_of::<BlkSnapTrackerCollect>()
    );
    pub const TRACKER_READ_CBT_MAP: Request = request_code_read!(
        BLK_SNAP,
        nr::TRACKER_READ_CBT_MAP,
        size_of::<BlkSnapTrackerReadCbtBitmap>()
    );
    pub const TRACKER_MARK_DIRTY_BLOCKS: Request = request_code_read!(
        BLK_SNAP,
        nr::TRACKER_MARK_DIRTY_BLOCKS,
        size_of::<BlkSnapTrackerMarkDirtyBlocks>()
    );
    pub const SNAPSHOT_CREATE: Request = request_code_write!(
        BLK_SNAP,
        nr::SNAPSHOT_CREATE,
        size_of::<BlkSnapSnapshotCreate>()
    );
    pub const SNAPSHOT_DESTROY: Request = request_code_read!(
        BLK_SNAP,
        nr::SNAPSHOT_DESTROY,
        size_of::<BlkSnapSnapshotDestroy>()
    );
    pub const SNAPSHOT_APPEND_STORAGE: Request = request_code_write!(
        BLK_SNAP,
        nr::SNAPSHOT_APPEND_STORAGE,
        size_of::<BlkSnapSnapshotAppendStorage>()
    );
    pub const SNAPSHOT_TAKE: Request = request_code_read!(
        BLK_SNAP,
        nr::SNAPSHOT_TAKE,
        size_of::<BlkSnapSnapshotTake>()
    );
    pub const SNAPSHOT_COLLECT: Request = request_code_write!(
        BLK_SNAP,
        nr::SNAPSHOT_COLLECT,
        size_of::<BlkSnapSnapshotCollect>()
    );
    pub const SNAPSHOT_COLLECT_IMAGES: Request = request_code_write!(
        BLK_SNAP,
        nr::SNAPSHOT_COLLECT_IMAGES,
        size_of::<BlkSnapSnapshotCollectImages>()
    );
    pub const SNAPSHOT_WAIT_EVENT: Request = request_code_write!(
        BLK_SNAP,
        nr::SNAPSHOT_WAIT_EVENT,
        size_of::<BlkSnapSnapshotEvent>()
    );
}

/// The ioctl wrappers generated by nix, one per request, each with the
/// direction of the header. Private: the crate's safe API and [`crate::raw`]
/// are the ways in.
pub(crate) mod ioctl {
    use nix::{ioctl_read, ioctl_write_ptr};

    use super::*;

    ioctl_write_ptr!(version, BLK_SNAP, nr::VERSION, BlkSnapVersion);
    ioctl_write_ptr!(
        tracker_remove,
        BLK_SNAP,
        nr::TRACKER_REMOVE,
        BlkSnapTrackerRemove
    );
    ioctl_write_ptr!(
        tracker_collect,
        BLK_SNAP,
        nr::TRACKER_COLLECT,
        BlkSnapTrackerCollect
    );
    ioctl_read!(
        tracker_read_cbt_map,
        BLK_SNAP,
        nr::TRACKER_READ_CBT_MAP,
        BlkSnapTrackerReadCbtBitmap
    );
    ioctl_read!(
        tracker_mark_dirty_blocks,
        BLK_SNAP,
        nr::TRACKER_MARK_DIRTY_BLOCKS,
        BlkSnapTrackerMarkDirtyBlocks
    );
    ioctl_write_ptr!(
        snapshot_create,
        BLK_SNAP,
        nr::SNAPSHOT_CREATE,
        BlkSnapSnapshotCreate
    );
    ioctl_read!(
        snapshot_destroy,
        BLK_SNAP,
        nr::SNAPSHOT_DESTROY,
        BlkSnapSnapshotDestroy
    );
    ioctl_write_ptr!(
        snapshot_append_storage,
        BLK_SNAP,
        nr::SNAPSHOT_APPEND_STORAGE,
        BlkSnapSnapshotAppendStorage
    );
    ioctl_read!(
        snapshot_take,
        BLK_SNAP,
        nr::SNAPSHOT_TAKE,
        BlkSnapSnapshotTake
    );
    ioctl_write_ptr!(
        snapshot_collect,
        BLK_SNAP,
        nr::SNAPSHOT_COLLECT,
        BlkSnapSnapshotCollect
    );
    ioctl_write_ptr!(
        snapshot_collect_images,
        BLK_SNAP,
        nr::SNAPSHOT_COLLECT_IMAGES,
        BlkSnapSnapshotCollectImages
    );
    ioctl_write_ptr!(
        snapshot_wait_event,
        BLK_SNAP,
        nr::SNAPSHOT_WAIT_EVENT,
        BlkSnapSnapshotEvent
    );
}
