/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_TRACKER_H
#define __BLKSNAP_TRACKER_H

#include <linux/blk_types.h>
#include <linux/list.h>
#include <linux/rcupdate.h>

struct bs_cbt_map;
struct bs_diff_area;
struct bs_snapshot;
struct blk_snap_cbt_info;

/**
 * struct bs_tracker - A tracked disk or partition.
 * @link: Entry in the tracker list (RCU; changed under bs_ctl_mutex).
 * @dev: Device number.
 * @bdev: Reference held while tracked.
 * @disk: @bdev's disk, compared with each bio's.
 * @start: First sector on the disk.
 * @capacity: Size in sectors.
 * @cbt: Change map.
 * @diff_area: Copy-on-write state while a snapshot is taken (SRCU).
 * @snapshot: Snapshot the device belongs to (under bs_ctl_mutex).
 */
struct bs_tracker {
	struct list_head link;
	dev_t dev;
	struct block_device *bdev;
	struct gendisk *disk;
	sector_t start;
	sector_t capacity;
	struct bs_cbt_map *cbt;
	struct bs_diff_area __rcu *diff_area;
	struct bs_snapshot *snapshot;
};

bool bs_tracker_filter(struct bio *bio);
struct bs_tracker *bs_tracker_find(dev_t dev);
struct bs_tracker *bs_tracker_attach(dev_t dev);
int bs_tracker_remove(dev_t dev);
void bs_tracker_remove_all(void);
int bs_tracker_collect(unsigned int *count,
		       struct blk_snap_cbt_info __user *array);

#endif /* __BLKSNAP_TRACKER_H */
