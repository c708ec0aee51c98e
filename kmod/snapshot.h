/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_SNAPSHOT_H
#define __BLKSNAP_SNAPSHOT_H

#include <linux/atomic.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/uuid.h>
#include "event_queue.h"

struct bs_diff_area;
struct bs_diff_storage;
struct bs_snapimage;
struct bs_tracker;
struct blk_snap_dev;
struct blk_snap_image_info;
struct blk_snap_uuid;

/**
 * struct bs_snapshot - A snapshot of one or several devices.
 * @link: Entry in the snapshot list (under bs_ctl_mutex).
 * @kref: The list holds one reference, event waiters another.
 * @id: Random id given to user space.
 * @count: Number of devices.
 * @trackers: The devices' trackers, in CREATE order.
 * @areas: Copy-on-write state per device, once taken.
 * @images: Image devices per device, once taken.
 * @ds: Difference storage shared by all devices.
 * @eq: Event queue.
 * @taken: TAKE succeeded.
 * @corrupted: Set once, on the first chunk that could not be stored.
 */
struct bs_snapshot {
	struct list_head link;
	struct kref kref;
	uuid_t id;
	unsigned int count;
	struct bs_tracker **trackers;
	struct bs_diff_area **areas;
	struct bs_snapimage **images;
	struct bs_diff_storage *ds;
	struct bs_event_queue eq;
	bool taken;
	atomic_t corrupted;
};

static inline bool bs_snapshot_is_corrupted(struct bs_snapshot *s)
{
	return atomic_read(&s->corrupted);
}

void bs_snapshot_corrupt(struct bs_snapshot *s, struct bs_diff_area *da,
			 int error);
void bs_snapshot_put(struct bs_snapshot *s);
struct bs_snapshot *bs_snapshot_find(const struct blk_snap_uuid *id);
int bs_snapshot_create(const struct blk_snap_dev __user *devs,
		       unsigned int count, struct blk_snap_uuid *id);
int bs_snapshot_destroy(const struct blk_snap_uuid *id);
int bs_snapshot_take(const struct blk_snap_uuid *id);
int bs_snapshot_collect(unsigned int *count,
			struct blk_snap_uuid __user *ids);
int bs_snapshot_collect_images(const struct blk_snap_uuid *id,
			       unsigned int *count,
			       struct blk_snap_image_info __user *array);
struct bs_tracker *bs_snapshot_image_tracker(dev_t dev);
void bs_snapshot_destroy_all(void);

#endif /* __BLKSNAP_SNAPSHOT_H */
