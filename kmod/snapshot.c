// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/blkdev.h>
#include <linux/blk-mq.h>
#include <linux/err.h>
#include <linux/uaccess.h>
#include <uapi/blksnap.h>
#include "cbt_map.h"
#include "chunk_copy.h"
#include "common.h"
#include "diff_area.h"
#include "diff_storage.h"
#include "memory.h"
#include "snapimage.h"
#include "snapshot.h"
#include "tracker.h"

/* No snapshot covers more devices than this. */
#define BS_SNAPSHOT_DEVICES_MAX 256U

static LIST_HEAD(bs_snapshots);

static void bs_snapshot_release(struct kref *kref)
{
	struct bs_snapshot *s = container_of(kref, struct bs_snapshot, kref);

	bs_event_queue_done(&s->eq);
	bs_kfree(s->images);
	bs_kfree(s->areas);
	bs_kfree(s->trackers);
	bs_kfree(s);
}

void bs_snapshot_put(struct bs_snapshot *s)
{
	kref_put(&s->kref, bs_snapshot_release);
}

/* Caller holds bs_ctl_mutex. */
struct bs_snapshot *bs_snapshot_find(const struct blk_snap_uuid *id)
{
	struct bs_snapshot *s;

	list_for_each_entry(s, &bs_snapshots, link)
		if (!memcmp(s->id.b, id->b, sizeof(id->b)))
			return s;
	return NULL;
}

/* Mark the snapshot corrupted once; production I/O is not affected. */
void bs_snapshot_corrupt(struct bs_snapshot *s, struct bs_diff_area *da,
			 int error)
{
	struct blk_snap_event_corrupted body = {
		.orig_dev_id.mj = MAJOR(da->orig_dev),
		.orig_dev_id.mn = MINOR(da->orig_dev),
		.err_code = error,
	};
	unsigned int i;

	if (atomic_cmpxchg(&s->corrupted, 0, 1))
		return;
	pr_err("snapshot %pUb corrupted on %u:%u: error %d\n", s->id.b,
	       MAJOR(da->orig_dev), MINOR(da->orig_dev), error);
	bs_event_push(&s->eq, blk_snap_event_code_corrupted, &body,
		      sizeof(body), GFP_NOIO);
	/* Every held bio of the snapshot may pass now. */
	for (i = 0; i < s->count; i++)
		if (s->areas[i])
			bs_diff_area_kick(s->areas[i]);
}

static int bs_snapshot_copy_devs(struct bs_snapshot *s,
				 const struct blk_snap_dev __user *devs)
{
	struct blk_snap_dev dev;
	unsigned int i, j;
	dev_t devt;

	for (i = 0; i < s->count; i++) {
		if (copy_from_user(&dev, &devs[i], sizeof(dev)))
			return -EFAULT;
		if (dev.mj >= (1U << (32 - MINORBITS)) ||
		    dev.mn >= (1U << MINORBITS))
			return -ENODEV;
		devt = MKDEV(dev.mj, dev.mn);
		for (j = 0; j < i; j++)
			if (s->trackers[j]->dev == devt)
				return -EINVAL;
		s->trackers[i] = bs_tracker_attach(devt);
		if (IS_ERR(s->trackers[i])) {
			int ret = PTR_ERR(s->trackers[i]);

			s->trackers[i] = NULL;
			return ret;
		}
		if (s->trackers[i]->snapshot) {
			s->trackers[i] = NULL;
			return -EBUSY;
		}
	}
	return 0;
}

/* SNAPSHOT_CREATE. Caller holds bs_ctl_mutex. */
int bs_snapshot_create(const struct blk_snap_dev __user *devs,
		       unsigned int count, struct blk_snap_uuid *id)
{
	struct bs_snapshot *s;
	unsigned int i;
	int ret;

	if (!count || count > BS_SNAPSHOT_DEVICES_MAX)
		return -EINVAL;
	s = bs_kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	kref_init(&s->kref);
	bs_event_queue_init(&s->eq);
	atomic_set(&s->corrupted, 0);
	s->count = count;
	ret = -ENOMEM;
	s->trackers = bs_kzalloc(sizeof(*s->trackers) * count, GFP_KERNEL);
	s->areas = bs_kzalloc(sizeof(*s->areas) * count, GFP_KERNEL);
	s->images = bs_kzalloc(sizeof(*s->images) * count, GFP_KERNEL);
	if (!s->trackers || !s->areas || !s->images)
		goto fail;
	s->ds = bs_diff_storage_create(&s->eq);
	if (!s->ds)
		goto fail;
	ret = bs_snapshot_copy_devs(s, devs);
	if (ret)
		goto fail_ds;

	for (i = 0; i < count; i++)
		s->trackers[i]->snapshot = s;
	uuid_gen(&s->id);
	memcpy(id->b, s->id.b, sizeof(id->b));
	list_add_tail(&s->link, &bs_snapshots);
	/* The new snapshot has no storage: ask for some at once. */
	bs_diff_storage_request(s->ds);
	pr_info("snapshot %pUb created with %u device(s)\n", s->id.b, count);
	return 0;

fail_ds:
	bs_diff_storage_destroy(s->ds);
fail:
	bs_snapshot_put(s);
	return ret;
}

static void bs_snapshot_teardown(struct bs_snapshot *s)
{
	unsigned int i;

	for (i = 0; i < s->count; i++)
		bs_snapimage_del(s->images[i]);
	for (i = 0; i < s->count; i++) {
		if (s->trackers[i] && s->areas[i])
			rcu_assign_pointer(s->trackers[i]->diff_area, NULL);
	}
	synchronize_srcu(&bs_srcu);
	for (i = 0; i < s->count; i++)
		if (s->areas[i])
			bs_diff_area_stop(s->areas[i]);
	for (i = 0; i < s->count; i++)
		if (s->areas[i])
			bs_diff_area_wait_idle(s->areas[i]);
	for (i = 0; i < s->count; i++) {
		bs_snapimage_free(s->images[i]);
		s->images[i] = NULL;
	}
	for (i = 0; i < s->count; i++) {
		bs_diff_area_destroy(s->areas[i]);
		s->areas[i] = NULL;
	}
}

static void bs_snapshot_unlink(struct bs_snapshot *s)
{
	unsigned int i;

	list_del(&s->link);
	bs_snapshot_teardown(s);
	bs_diff_storage_destroy(s->ds);
	s->ds = NULL;
	for (i = 0; i < s->count; i++)
		if (s->trackers[i])
			s->trackers[i]->snapshot = NULL;
	bs_event_queue_close(&s->eq);
	pr_info("snapshot %pUb destroyed\n", s->id.b);
	bs_snapshot_put(s);
	if (list_empty(&bs_snapshots))
		bs_copy_pool_trim();
}

/* SNAPSHOT_DESTROY. Caller holds bs_ctl_mutex. */
int bs_snapshot_destroy(const struct blk_snap_uuid *id)
{
	struct bs_snapshot *s = bs_snapshot_find(id);

	if (!s)
		return -ESRCH;
	bs_snapshot_unlink(s);
	return 0;
}

void bs_snapshot_destroy_all(void)
{
	struct bs_snapshot *s, *tmp;

	list_for_each_entry_safe(s, tmp, &bs_snapshots, link)
		bs_snapshot_unlink(s);
}

/* Wait until every write that passed the hook unsnapshotted completed. */
static void bs_snapshot_drain(struct bs_snapshot *s)
{
	unsigned int i, j;

	synchronize_srcu(&bs_srcu);
	for (i = 0; i < s->count; i++) {
		struct request_queue *q = bdev_get_queue(s->trackers[i]->bdev);

		for (j = 0; j < i; j++)
			if (bdev_get_queue(s->trackers[j]->bdev) == q)
				break;
		if (j < i)
			continue;
		blk_mq_freeze_queue(q);
		blk_mq_unfreeze_queue(q);
	}
}

/* SNAPSHOT_TAKE. Caller holds bs_ctl_mutex. */
int bs_snapshot_take(const struct blk_snap_uuid *id)
{
	struct bs_snapshot *s = bs_snapshot_find(id);
	unsigned int i, frozen = 0;
	int ret;

	if (!s)
		return -ESRCH;
	if (s->taken)
		return -EALREADY;
	if (!bs_diff_storage_capacity(s->ds))
		return -ENOSPC;

	for (i = 0; i < s->count; i++) {
		s->areas[i] = bs_diff_area_create(s, s->trackers[i]->bdev,
						  s->ds);
		if (IS_ERR(s->areas[i])) {
			ret = PTR_ERR(s->areas[i]);
			s->areas[i] = NULL;
			goto fail;
		}
		s->images[i] = bs_snapimage_create(s->areas[i]);
		if (IS_ERR(s->images[i])) {
			ret = PTR_ERR(s->images[i]);
			s->images[i] = NULL;
			goto fail;
		}
	}

	/* Filesystems on the devices are quiet at the instant. */
	for (frozen = 0; frozen < s->count; frozen++) {
		ret = freeze_bdev(s->trackers[frozen]->bdev);
		if (ret)
			goto fail_thaw;
	}
	for (i = 0; i < s->count; i++) {
		bs_cbt_map_switch(s->trackers[i]->cbt);
		rcu_assign_pointer(s->trackers[i]->diff_area, s->areas[i]);
	}
	bs_snapshot_drain(s);
	for (i = 0; i < s->count; i++)
		thaw_bdev(s->trackers[i]->bdev);
	frozen = 0;

	for (i = 0; i < s->count; i++) {
		ret = bs_snapimage_add(s->images[i]);
		if (ret)
			goto fail;
	}
	s->taken = true;
	pr_info("snapshot %pUb taken\n", s->id.b);
	return 0;

fail_thaw:
	while (frozen--)
		thaw_bdev(s->trackers[frozen]->bdev);
fail:
	bs_snapshot_teardown(s);
	return ret;
}

/* SNAPSHOT_COLLECT. Caller holds bs_ctl_mutex. */
int bs_snapshot_collect(unsigned int *count, struct blk_snap_uuid __user *ids)
{
	struct bs_snapshot *s;
	unsigned int n = 0, i = 0;

	list_for_each_entry(s, &bs_snapshots, link)
		n++;
	if (!ids) {
		*count = n;
		return 0;
	}
	if (*count < n) {
		*count = n;
		return -ENODATA;
	}
	list_for_each_entry(s, &bs_snapshots, link) {
		if (copy_to_user(&ids[i++], s->id.b, sizeof(s->id.b)))
			return -EFAULT;
	}
	*count = n;
	return 0;
}

/* SNAPSHOT_COLLECT_IMAGES. Caller holds bs_ctl_mutex. */
int bs_snapshot_collect_images(const struct blk_snap_uuid *id,
			       unsigned int *count,
			       struct blk_snap_image_info __user *array)
{
	struct bs_snapshot *s = bs_snapshot_find(id);
	struct blk_snap_image_info info;
	unsigned int i;

	if (!s)
		return -ESRCH;
	if (!s->taken)
		return -ENODEV;
	if (!array) {
		*count = s->count;
		return 0;
	}
	if (*count < s->count) {
		*count = s->count;
		return -ENODATA;
	}
	for (i = 0; i < s->count; i++) {
		info.orig_dev_id.mj = MAJOR(s->trackers[i]->dev);
		info.orig_dev_id.mn = MINOR(s->trackers[i]->dev);
		info.image_dev_id.mj = MAJOR(s->images[i]->dev);
		info.image_dev_id.mn = MINOR(s->images[i]->dev);
		if (copy_to_user(&array[i], &info, sizeof(info)))
			return -EFAULT;
	}
	*count = s->count;
	return 0;
}

/* The tracker behind image device @dev. Caller holds bs_ctl_mutex. */
struct bs_tracker *bs_snapshot_image_tracker(dev_t dev)
{
	struct bs_snapshot *s;
	unsigned int i;

	list_for_each_entry(s, &bs_snapshots, link) {
		if (!s->taken)
			continue;
		for (i = 0; i < s->count; i++)
			if (s->images[i]->dev == dev)
				return s->trackers[i];
	}
	return NULL;
}
