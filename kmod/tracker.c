// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/blkdev.h>
#include <linux/err.h>
#include <linux/sched.h>
#include <linux/uaccess.h>
#include <uapi/blksnap.h>
#include "cbt_map.h"
#include "common.h"
#include "compat.h"
#include "diff_area.h"
#include "filter.h"
#include "memory.h"
#include "tracker.h"

DEFINE_MUTEX(bs_ctl_mutex);
DEFINE_SRCU(bs_srcu);
static LIST_HEAD(bs_trackers);

static bool bs_bio_modifies(struct bio *bio)
{
	switch (bio_op(bio)) {
	case REQ_OP_WRITE:
	case REQ_OP_DISCARD:
	case REQ_OP_SECURE_ERASE:
	case REQ_OP_WRITE_ZEROES:
		return bio_sectors(bio) != 0;
	default:
		return false;
	}
}

static sector_t bs_bio_abs_sector(struct bio *bio)
{
	sector_t sector = bio->bi_iter.bi_sector;

	if (!bio_flagged(bio, BIO_REMAPPED))
		sector += bio->bi_bdev->bd_start_sect;
	return sector;
}

static struct bs_tracker *bs_tracker_overlapping(struct gendisk *disk,
						 sector_t start, sector_t end)
{
	struct bs_tracker *tr;

	list_for_each_entry_srcu(tr, &bs_trackers, link,
				 srcu_read_lock_held(&bs_srcu)) {
		if (tr->disk == disk && start < tr->start + tr->capacity &&
		    tr->start < end)
			return tr;
	}
	return NULL;
}

/* Split off the first @sectors of @bio and filter that part on its own. */
static void bs_tracker_split(struct bio *bio, sector_t sectors)
{
	struct bio *front;

	front = bio_split(bio, sectors, GFP_NOIO, &bs_split_set);
	bio_chain(front, bio);
	if (!bs_tracker_filter(front))
		bs_filter_resubmit(front);
}

/**
 * bs_tracker_filter() - The bio hook: track changes, copy on write.
 * @bio: A bio entering the block layer; the caller holds bs_srcu.
 *
 * Return: true when the bio was taken (held for copy-on-write or
 * completed); false when it goes on now.
 */
bool bs_tracker_filter(struct bio *bio)
{
	struct bs_diff_area *da;
	struct bs_tracker *tr;
	sector_t start, end;

	if (!bs_bio_modifies(bio) || bio->bi_pool == &bs_bioset)
		return false;

	for (;;) {
		start = bs_bio_abs_sector(bio);
		end = start + bio_sectors(bio);
		tr = bs_tracker_overlapping(bio->bi_bdev->bd_disk, start, end);
		if (!tr)
			return false;
		/* A bio crossing a tracker's edge is split there. */
		if (start < tr->start) {
			bs_tracker_split(bio, tr->start - start);
			continue;
		}
		if (end > tr->start + tr->capacity) {
			bs_tracker_split(bio, tr->start + tr->capacity - start);
			continue;
		}
		break;
	}

	bs_cbt_map_set(tr->cbt, start - tr->start, end - start);
	da = srcu_dereference(tr->diff_area, &bs_srcu);
	if (!da)
		return false;
	return bs_diff_area_cow(da, bio, start - tr->start, end - start);
}

/* Caller holds bs_ctl_mutex. */
struct bs_tracker *bs_tracker_find(dev_t dev)
{
	struct bs_tracker *tr;

	list_for_each_entry(tr, &bs_trackers, link)
		if (tr->dev == dev)
			return tr;
	return NULL;
}

static void bs_tracker_free(struct bs_tracker *tr)
{
	bs_cbt_map_destroy(tr->cbt);
	bs_bdev_close(tr->bdev, false);
	bs_kfree(tr);
}

/*
 * Find the tracker of @dev or attach a new one. Caller holds
 * bs_ctl_mutex. Return: the tracker or an ERR_PTR.
 */
struct bs_tracker *bs_tracker_attach(dev_t dev)
{
	struct block_device *bdev;
	struct bs_tracker *tr, *other;
	int ret;

	tr = bs_tracker_find(dev);
	if (tr)
		return tr;

	bdev = bs_bdev_open(dev, false);
	if (IS_ERR(bdev))
		return ERR_PTR(-ENODEV);
	ret = -EINVAL;
	/* rw_page and zoned devices bypass or break the bio hook. */
	if (bdev->bd_disk->fops->rw_page || bdev_is_zoned(bdev) ||
	    bdev->bd_disk->major == bs_image_major || !bdev_nr_sectors(bdev))
		goto fail_bdev;
	ret = -EBUSY;
	list_for_each_entry(other, &bs_trackers, link) {
		if (other->disk == bdev->bd_disk &&
		    bdev->bd_start_sect < other->start + other->capacity &&
		    other->start < bdev->bd_start_sect + bdev_nr_sectors(bdev))
			goto fail_bdev;
	}

	ret = -ENOMEM;
	tr = bs_kzalloc(sizeof(*tr), GFP_KERNEL);
	if (!tr)
		goto fail_bdev;
	tr->dev = dev;
	tr->bdev = bdev;
	tr->disk = bdev->bd_disk;
	tr->start = bdev->bd_start_sect;
	tr->capacity = bdev_nr_sectors(bdev);
	tr->cbt = bs_cbt_map_create(tr->capacity);
	if (IS_ERR(tr->cbt)) {
		ret = PTR_ERR(tr->cbt);
		goto fail_tracker;
	}
	list_add_tail_rcu(&tr->link, &bs_trackers);
	pr_info("tracking %u:%u (%llu sectors, %u byte blocks)\n",
		MAJOR(dev), MINOR(dev), (unsigned long long)tr->capacity,
		1U << tr->cbt->blk_shift);
	return tr;

fail_tracker:
	bs_kfree(tr);
fail_bdev:
	bs_bdev_close(bdev, false);
	return ERR_PTR(ret);
}

static void bs_tracker_detach(struct bs_tracker *tr)
{
	list_del_rcu(&tr->link);
	synchronize_srcu(&bs_srcu);
	pr_info("stopped tracking %u:%u\n", MAJOR(tr->dev), MINOR(tr->dev));
	bs_tracker_free(tr);
}

/* Caller holds bs_ctl_mutex. */
int bs_tracker_remove(dev_t dev)
{
	struct bs_tracker *tr = bs_tracker_find(dev);

	if (!tr)
		return -ENODEV;
	if (tr->snapshot)
		return -EBUSY;
	bs_tracker_detach(tr);
	return 0;
}

/* Module unload: snapshots are already gone. Caller holds bs_ctl_mutex. */
void bs_tracker_remove_all(void)
{
	struct bs_tracker *tr, *tmp;

	list_for_each_entry_safe(tr, tmp, &bs_trackers, link)
		bs_tracker_detach(tr);
}

static void bs_tracker_info(struct bs_tracker *tr,
			    struct blk_snap_cbt_info *info)
{
	struct bs_cbt_map *map = tr->cbt;
	unsigned long flags;

	memset(info, 0, sizeof(*info));
	info->dev_id.mj = MAJOR(tr->dev);
	info->dev_id.mn = MINOR(tr->dev);
	spin_lock_irqsave(&map->lock, flags);
	info->blk_size = 1U << map->blk_shift;
	info->device_capacity = (u64)map->capacity << SECTOR_SHIFT;
	info->blk_count = map->blk_count;
	memcpy(info->generation_id.b, map->generation.b,
	       sizeof(info->generation_id.b));
	info->snap_number = map->snap_taken;
	spin_unlock_irqrestore(&map->lock, flags);
}

/*
 * TRACKER_COLLECT. Caller holds bs_ctl_mutex. With a NULL @array only the
 * count is returned; a too small @count gives -ENODATA and the count.
 */
int bs_tracker_collect(unsigned int *count,
		       struct blk_snap_cbt_info __user *array)
{
	struct blk_snap_cbt_info info;
	struct bs_tracker *tr;
	unsigned int n = 0, i = 0;

	list_for_each_entry(tr, &bs_trackers, link)
		n++;
	if (!array) {
		*count = n;
		return 0;
	}
	if (*count < n) {
		*count = n;
		return -ENODATA;
	}
	list_for_each_entry(tr, &bs_trackers, link) {
		bs_tracker_info(tr, &info);
		if (copy_to_user(&array[i++], &info, sizeof(info)))
			return -EFAULT;
	}
	*count = n;
	return 0;
}
