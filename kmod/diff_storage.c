// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/blkdev.h>
#include <linux/err.h>
#include <linux/uaccess.h>
#include <uapi/blksnap.h>
#include "compat.h"
#include "diff_storage.h"
#include "event_queue.h"
#include "memory.h"
#include "params.h"

/* Ranges are copied from user space this many at a time. */
#define BS_RANGE_BATCH 64
/* No snapshot needs more ranges than this. */
#define BS_RANGES_MAX (1U << 20)

struct bs_diff_storage *bs_diff_storage_create(struct bs_event_queue *eq)
{
	struct bs_diff_storage *ds;

	ds = bs_kzalloc(sizeof(*ds), GFP_KERNEL);
	if (!ds)
		return NULL;
	spin_lock_init(&ds->lock);
	INIT_LIST_HEAD(&ds->ranges);
	ds->eq = eq;
	return ds;
}

void bs_diff_storage_destroy(struct bs_diff_storage *ds)
{
	struct bs_storage_range *r, *tmp;

	if (!ds)
		return;
	list_for_each_entry_safe(r, tmp, &ds->ranges, link) {
		list_del(&r->link);
		bs_bdev_close(r->bdev, true);
		bs_kfree(r);
	}
	bs_kfree(ds);
}

/* Queue a low-free-space event asking for diff_storage_minimum sectors. */
int bs_diff_storage_request(struct bs_diff_storage *ds)
{
	struct blk_snap_event_low_free_space body = {
		.requested_nr_sect = max(bs_diff_storage_minimum, 1),
	};

	return bs_event_push(ds->eq, blk_snap_event_code_low_free_space,
			     &body, sizeof(body), GFP_NOIO);
}

static int bs_range_add(struct bs_diff_storage *ds, dev_t dev,
			const struct blk_snap_block_range *ur)
{
	struct bs_storage_range *r;
	struct block_device *bdev;

	if (!ur->sector_count)
		return -EINVAL;
	bdev = bs_bdev_open(dev, true);
	if (IS_ERR(bdev))
		return -ENODEV;
	if (ur->sector_offset >= bdev_nr_sectors(bdev) ||
	    ur->sector_count > bdev_nr_sectors(bdev) - ur->sector_offset) {
		bs_bdev_close(bdev, true);
		return -EINVAL;
	}
	r = bs_kzalloc(sizeof(*r), GFP_KERNEL);
	if (!r) {
		bs_bdev_close(bdev, true);
		return -ENOMEM;
	}
	r->bdev = bdev;
	r->start = ur->sector_offset;
	r->count = ur->sector_count;

	spin_lock(&ds->lock);
	list_add_tail(&r->link, &ds->ranges);
	ds->capacity += r->count;
	if (!ds->cur) {
		ds->cur = r;
		ds->cur_used = 0;
	}
	ds->low_reported = false;
	spin_unlock(&ds->lock);
	return 0;
}

int bs_diff_storage_append(struct bs_diff_storage *ds, dev_t dev,
			   const struct blk_snap_block_range __user *ranges,
			   unsigned int count)
{
	struct blk_snap_block_range *batch;
	unsigned int done = 0;
	int ret = 0;

	if (!count || count > BS_RANGES_MAX)
		return -EINVAL;
	batch = bs_kzalloc(sizeof(*batch) * BS_RANGE_BATCH, GFP_KERNEL);
	if (!batch)
		return -ENOMEM;
	while (done < count && !ret) {
		unsigned int n = min_t(unsigned int, count - done,
				       BS_RANGE_BATCH);
		unsigned int i;

		if (copy_from_user(batch, ranges + done, sizeof(*batch) * n)) {
			ret = -EFAULT;
			break;
		}
		for (i = 0; i < n && !ret; i++)
			ret = bs_range_add(ds, dev, &batch[i]);
		done += n;
	}
	bs_kfree(batch);
	return ret;
}

/*
 * Hand out @count contiguous sectors. A range too short for the request
 * is skipped. Below half of diff_storage_minimum free, one
 * low-free-space event is queued until storage is appended.
 * Return: 0, or -ENOSPC when the storage is exhausted.
 */
int bs_diff_storage_alloc(struct bs_diff_storage *ds, sector_t count,
			  struct bs_store_loc *loc)
{
	bool report = false;
	int ret = -ENOSPC;

	spin_lock(&ds->lock);
	while (ds->cur) {
		struct bs_storage_range *r = ds->cur;

		if (r->count - ds->cur_used >= count) {
			loc->bdev = r->bdev;
			loc->sector = r->start + ds->cur_used;
			ds->cur_used += count;
			ds->used += count;
			ret = 0;
			break;
		}
		ds->used += r->count - ds->cur_used;
		ds->cur = list_is_last(&r->link, &ds->ranges) ? NULL :
			  list_next_entry(r, link);
		ds->cur_used = 0;
	}
	if (!ds->low_reported &&
	    ds->capacity - ds->used < (sector_t)max(bs_diff_storage_minimum, 2) / 2) {
		ds->low_reported = true;
		report = true;
	}
	spin_unlock(&ds->lock);

	if (report)
		bs_diff_storage_request(ds);
	return ret;
}

sector_t bs_diff_storage_capacity(struct bs_diff_storage *ds)
{
	sector_t cap;

	spin_lock(&ds->lock);
	cap = ds->capacity;
	spin_unlock(&ds->lock);
	return cap;
}
