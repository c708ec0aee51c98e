/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_DIFF_STORAGE_H
#define __BLKSNAP_DIFF_STORAGE_H

#include <linux/blk_types.h>
#include <linux/list.h>
#include <linux/spinlock.h>

struct bs_event_queue;
struct blk_snap_block_range;

/**
 * struct bs_storage_range - Sectors of a block device given to a snapshot.
 * @link: Entry in &bs_diff_storage.ranges.
 * @bdev: Opened for reading and writing while the range is held.
 * @start: First sector.
 * @count: Number of sectors.
 */
struct bs_storage_range {
	struct list_head link;
	struct block_device *bdev;
	sector_t start;
	sector_t count;
};

/**
 * struct bs_store_loc - Where a chunk lives in the difference storage.
 * @bdev: Device of the range.
 * @sector: First sector.
 */
struct bs_store_loc {
	struct block_device *bdev;
	sector_t sector;
};

/**
 * struct bs_diff_storage - Difference storage of one snapshot, shared by
 *	all its devices; space is handed out front to back.
 * @lock: Protects the fields below.
 * @ranges: All appended ranges, in order.
 * @cur: Range being filled, or NULL when all are full.
 * @cur_used: Sectors of @cur already handed out.
 * @capacity: Sum of all ranges.
 * @used: Sectors handed out or skipped.
 * @low_reported: A low-free-space event is pending an append.
 * @eq: Event queue of the snapshot.
 */
struct bs_diff_storage {
	spinlock_t lock;
	struct list_head ranges;
	struct bs_storage_range *cur;
	sector_t cur_used;
	sector_t capacity;
	sector_t used;
	bool low_reported;
	struct bs_event_queue *eq;
};

struct bs_diff_storage *bs_diff_storage_create(struct bs_event_queue *eq);
void bs_diff_storage_destroy(struct bs_diff_storage *ds);
int bs_diff_storage_append(struct bs_diff_storage *ds, dev_t dev,
			   const struct blk_snap_block_range __user *ranges,
			   unsigned int count);
int bs_diff_storage_alloc(struct bs_diff_storage *ds, sector_t count,
			  struct bs_store_loc *loc);
sector_t bs_diff_storage_capacity(struct bs_diff_storage *ds);
int bs_diff_storage_request(struct bs_diff_storage *ds);

#endif /* __BLKSNAP_DIFF_STORAGE_H */
