/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * blksnap - block device snapshots: user-space interface (v2 layout).
 *
 * Control device: /dev/blksnap (class "blksnap"). Snapshot images:
 * /dev/blksnap-image<minor>. The layout below is an interface fact:
 * names, request numbers, field order and sizes must stay as they are.
 */
#ifndef _UAPI_LINUX_BLKSNAP_H
#define _UAPI_LINUX_BLKSNAP_H

#include <linux/types.h>

#define BLK_SNAP_CTL "blksnap"
#define BLK_SNAP_IMAGE_NAME "blksnap-image"
#define BLK_SNAP 'V'

enum blk_snap_ioctl {
	blk_snap_ioctl_version,
	blk_snap_ioctl_tracker_remove,
	blk_snap_ioctl_tracker_collect,
	blk_snap_ioctl_tracker_read_cbt_map,
	blk_snap_ioctl_tracker_mark_dirty_blocks,
	blk_snap_ioctl_snapshot_create,
	blk_snap_ioctl_snapshot_destroy,
	blk_snap_ioctl_snapshot_append_storage,
	blk_snap_ioctl_snapshot_take,
	blk_snap_ioctl_snapshot_collect,
	blk_snap_ioctl_snapshot_collect_images,
	blk_snap_ioctl_snapshot_wait_event,
	blk_snap_ioctl_end,
};

/**
 * struct blk_snap_version - Module version.
 * @major: Major number.
 * @minor: Minor number.
 * @revision: Revision number.
 * @build: Build number (informational).
 */
struct blk_snap_version {
	__u16 major;
	__u16 minor;
	__u16 revision;
	__u16 build;
};

/**
 * define IOCTL_BLK_SNAP_VERSION - Get the module version.
 *
 * Return: 0 and the filled &struct blk_snap_version.
 */
#define IOCTL_BLK_SNAP_VERSION \
	_IOW(BLK_SNAP, blk_snap_ioctl_version, struct blk_snap_version)

/**
 * struct blk_snap_dev - Block device identity.
 * @mj: Device major number.
 * @mn: Device minor number.
 */
struct blk_snap_dev {
	__u32 mj;
	__u32 mn;
};

/**
 * struct blk_snap_tracker_remove - Argument of IOCTL_BLK_SNAP_TRACKER_REMOVE.
 * @dev_id: Device whose tracker is detached.
 */
struct blk_snap_tracker_remove {
	struct blk_snap_dev dev_id;
};

/**
 * define IOCTL_BLK_SNAP_TRACKER_REMOVE - Detach a tracker from a device.
 *
 * Return: 0, -ENODEV for an untracked device, -EBUSY while the device is
 * part of a snapshot.
 */
#define IOCTL_BLK_SNAP_TRACKER_REMOVE \
	_IOW(BLK_SNAP, blk_snap_ioctl_tracker_remove,                      \
	     struct blk_snap_tracker_remove)

/**
 * struct blk_snap_uuid - 16-byte unique identifier.
 * @b: The bytes.
 */
struct blk_snap_uuid {
	__u8 b[16];
};

/**
 * struct blk_snap_cbt_info - Change tracking state of one device.
 * @dev_id: Tracked device.
 * @blk_size: Tracking block size in bytes.
 * @device_capacity: Device capacity in bytes.
 * @blk_count: Number of tracking blocks (bytes of the change map).
 * @generation_id: Changes whenever the change map restarts.
 * @snap_number: Number of the last snapshot taken.
 */
struct blk_snap_cbt_info {
	struct blk_snap_dev dev_id;
	__u32 blk_size;
	__u64 device_capacity;
	__u32 blk_count;
	struct blk_snap_uuid generation_id;
	__u8 snap_number;
};

/**
 * struct blk_snap_tracker_collect - Argument of IOCTL_BLK_SNAP_TRACKER_COLLECT.
 * @count: In: size of @cbt_info_array. Out: number of trackers.
 * @cbt_info_array: User array, or NULL to ask for the count.
 */
struct blk_snap_tracker_collect {
	__u32 count;
	struct blk_snap_cbt_info *cbt_info_array;
};

/**
 * define IOCTL_BLK_SNAP_TRACKER_COLLECT - List the tracked devices.
 *
 * Return: 0; -ENODATA and the needed @count when @count is too small.
 */
#define IOCTL_BLK_SNAP_TRACKER_COLLECT \
	_IOW(BLK_SNAP, blk_snap_ioctl_tracker_collect,                     \
	     struct blk_snap_tracker_collect)

/**
 * struct blk_snap_tracker_read_cbt_bitmap - Argument of
 *	IOCTL_BLK_SNAP_TRACKER_READ_CBT_MAP.
 * @dev_id: Tracked device.
 * @offset: First byte of the change map to copy.
 * @length: Number of bytes to copy.
 * @buff: User buffer of at least @length bytes.
 */
struct blk_snap_tracker_read_cbt_bitmap {
	struct blk_snap_dev dev_id;
	__u32 offset;
	__u32 length;
	__u8 *buff;
};

/**
 * define IOCTL_BLK_SNAP_TRACKER_READ_CBT_MAP - Read the frozen change map.
 *
 * Return: the number of bytes copied, -ENODEV for an untracked device.
 */
#define IOCTL_BLK_SNAP_TRACKER_READ_CBT_MAP \
	_IOR(BLK_SNAP, blk_snap_ioctl_tracker_read_cbt_map,                \
	     struct blk_snap_tracker_read_cbt_bitmap)

/**
 * struct blk_snap_block_range - A range of 512-byte sectors.
 * @sector_offset: First sector.
 * @sector_count: Number of sectors.
 */
struct blk_snap_block_range {
	__u64 sector_offset;
	__u64 sector_count;
};

/**
 * struct blk_snap_tracker_mark_dirty_blocks - Argument of
 *	IOCTL_BLK_SNAP_TRACKER_MARK_DIRTY_BLOCKS.
 * @dev_id: Tracked device or snapshot image.
 * @count: Number of ranges.
 * @dirty_blocks_array: User array of ranges.
 */
struct blk_snap_tracker_mark_dirty_blocks {
	struct blk_snap_dev dev_id;
	__u32 count;
	struct blk_snap_block_range *dirty_blocks_array;
};

/**
 * define IOCTL_BLK_SNAP_TRACKER_MARK_DIRTY_BLOCKS - Mark ranges as changed.
 *
 * Return: 0, -ENODEV for an untracked device.
 */
#define IOCTL_BLK_SNAP_TRACKER_MARK_DIRTY_BLOCKS \
	_IOR(BLK_SNAP, blk_snap_ioctl_tracker_mark_dirty_blocks,           \
	     struct blk_snap_tracker_mark_dirty_blocks)

/**
 * struct blk_snap_snapshot_create - Argument of IOCTL_BLK_SNAP_SNAPSHOT_CREATE.
 * @count: Number of devices.
 * @dev_id_array: User array of devices.
 * @id: Out: the new snapshot's id.
 */
struct blk_snap_snapshot_create {
	__u32 count;
	struct blk_snap_dev *dev_id_array;
	struct blk_snap_uuid id;
};

/**
 * define IOCTL_BLK_SNAP_SNAPSHOT_CREATE - Create a snapshot (not yet taken).
 *
 * Return: 0, -EBUSY when a device already belongs to a snapshot.
 */
#define IOCTL_BLK_SNAP_SNAPSHOT_CREATE \
	_IOW(BLK_SNAP, blk_snap_ioctl_snapshot_create,                     \
	     struct blk_snap_snapshot_create)

/**
 * struct blk_snap_snapshot_destroy - Argument of IOCTL_BLK_SNAP_SNAPSHOT_DESTROY.
 * @id: Snapshot id.
 */
struct blk_snap_snapshot_destroy {
	struct blk_snap_uuid id;
};

/**
 * define IOCTL_BLK_SNAP_SNAPSHOT_DESTROY - Release a snapshot.
 *
 * Return: 0, -ESRCH for an unknown id.
 */
#define IOCTL_BLK_SNAP_SNAPSHOT_DESTROY \
	_IOR(BLK_SNAP, blk_snap_ioctl_snapshot_destroy,                    \
	     struct blk_snap_snapshot_destroy)

/**
 * struct blk_snap_snapshot_append_storage - Argument of
 *	IOCTL_BLK_SNAP_SNAPSHOT_APPEND_STORAGE.
 * @id: Snapshot id.
 * @dev_id: Block device holding the ranges.
 * @count: Number of ranges.
 * @ranges: User array of ranges.
 */
struct blk_snap_snapshot_append_storage {
	struct blk_snap_uuid id;
	struct blk_snap_dev dev_id;
	__u32 count;
	struct blk_snap_block_range *ranges;
};

/**
 * define IOCTL_BLK_SNAP_SNAPSHOT_APPEND_STORAGE - Grow the difference storage.
 *
 * Return: 0, -ESRCH for an unknown id, -ENODEV for an unknown device.
 */
#define IOCTL_BLK_SNAP_SNAPSHOT_APPEND_STORAGE \
	_IOW(BLK_SNAP, blk_snap_ioctl_snapshot_append_storage,             \
	     struct blk_snap_snapshot_append_storage)

/**
 * struct blk_snap_snapshot_take - Argument of IOCTL_BLK_SNAP_SNAPSHOT_TAKE.
 * @id: Snapshot id.
 */
struct blk_snap_snapshot_take {
	struct blk_snap_uuid id;
};

/**
 * define IOCTL_BLK_SNAP_SNAPSHOT_TAKE - Take the snapshot.
 *
 * Return: 0, -ESRCH for an unknown id, -EALREADY when already taken,
 * -ENOSPC without difference storage.
 */
#define IOCTL_BLK_SNAP_SNAPSHOT_TAKE \
	_IOR(BLK_SNAP, blk_snap_ioctl_snapshot_take,                       \
	     struct blk_snap_snapshot_take)

/**
 * struct blk_snap_snapshot_collect - Argument of IOCTL_BLK_SNAP_SNAPSHOT_COLLECT.
 * @count: In: size of @ids. Out: number of snapshots.
 * @ids: User array, or NULL to ask for the count.
 */
struct blk_snap_snapshot_collect {
	__u32 count;
	struct blk_snap_uuid *ids;
};

/**
 * define IOCTL_BLK_SNAP_SNAPSHOT_COLLECT - List the snapshots.
 *
 * Return: 0; -ENODATA and the needed @count when @count is too small.
 */
#define IOCTL_BLK_SNAP_SNAPSHOT_COLLECT \
	_IOW(BLK_SNAP, blk_snap_ioctl_snapshot_collect,                    \
	     struct blk_snap_snapshot_collect)

/**
 * struct blk_snap_image_info - An original device and its snapshot image.
 * @orig_dev_id: Original device.
 * @image_dev_id: Image device.
 */
struct blk_snap_image_info {
	struct blk_snap_dev orig_dev_id;
	struct blk_snap_dev image_dev_id;
};

/**
 * struct blk_snap_snapshot_collect_images - Argument of
 *	IOCTL_BLK_SNAP_SNAPSHOT_COLLECT_IMAGES.
 * @id: Snapshot id.
 * @count: In: size of @image_info_array. Out: number of images.
 * @image_info_array: User array, or NULL to ask for the count.
 */
struct blk_snap_snapshot_collect_images {
	struct blk_snap_uuid id;
	__u32 count;
	struct blk_snap_image_info *image_info_array;
};

/**
 * define IOCTL_BLK_SNAP_SNAPSHOT_COLLECT_IMAGES - List a snapshot's images.
 *
 * Return: 0; -ENODEV before TAKE; -ENODATA and the needed @count when
 * @count is too small.
 */
#define IOCTL_BLK_SNAP_SNAPSHOT_COLLECT_IMAGES \
	_IOW(BLK_SNAP, blk_snap_ioctl_snapshot_collect_images,             \
	     struct blk_snap_snapshot_collect_images)

enum blk_snap_event_codes {
	blk_snap_event_code_low_free_space,
	blk_snap_event_code_corrupted,
};

/**
 * struct blk_snap_snapshot_event - Argument of
 *	IOCTL_BLK_SNAP_SNAPSHOT_WAIT_EVENT.
 * @id: Snapshot id.
 * @timeout_ms: Longest wait in milliseconds.
 * @code: Out: event code (&enum blk_snap_event_codes).
 * @time_label: Out: when the event was queued (ktime, ns).
 * @data: Out: event body.
 */
struct blk_snap_snapshot_event {
	struct blk_snap_uuid id;
	__u32 timeout_ms;
	__u32 code;
	__s64 time_label;
	__u8 data[4096 - 32];
};

/**
 * define IOCTL_BLK_SNAP_SNAPSHOT_WAIT_EVENT - Wait for a snapshot event.
 *
 * Return: 0, -ENOENT on timeout, -EINTR on a signal, -ESRCH for an
 * unknown id.
 */
#define IOCTL_BLK_SNAP_SNAPSHOT_WAIT_EVENT \
	_IOW(BLK_SNAP, blk_snap_ioctl_snapshot_wait_event,                 \
	     struct blk_snap_snapshot_event)

/**
 * struct blk_snap_event_low_free_space - Body of a low free space event.
 * @requested_nr_sect: Sectors user space should append.
 */
struct blk_snap_event_low_free_space {
	__u64 requested_nr_sect;
};

/**
 * struct blk_snap_event_corrupted - Body of a corrupted event.
 * @orig_dev_id: Original device whose chunk could not be stored.
 * @err_code: Negative errno.
 */
struct blk_snap_event_corrupted {
	struct blk_snap_dev orig_dev_id;
	__s32 err_code;
};

#endif /* _UAPI_LINUX_BLKSNAP_H */
