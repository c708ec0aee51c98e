// SPDX-License-Identifier: GPL-2.0
/*
 * The control device /dev/blksnap and its ioctls (v2 interface). Every
 * request runs under bs_ctl_mutex, except WAIT_EVENT, which sleeps on a
 * referenced snapshot without it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/blkdev.h>
#include <linux/device.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/uaccess.h>
#include <uapi/blksnap.h>
#include "cbt_map.h"
#include "common.h"
#include "compat.h"
#include "ctrl.h"
#include "diff_storage.h"
#include "event_queue.h"
#include "memory.h"
#include "snapshot.h"
#include "tracker.h"

static_assert(sizeof(struct blk_snap_snapshot_event) == 4096);

/* Ranges marked dirty are copied from user space this many at a time. */
#define BS_DIRTY_BATCH 64
#define BS_DIRTY_MAX (1U << 24)

static int bs_ctrl_major;
static struct class *bs_class;

static int bs_dev_from_user(const struct blk_snap_dev *d, dev_t *dev)
{
	if (d->mj >= (1U << (32 - MINORBITS)) || d->mn >= (1U << MINORBITS))
		return -ENODEV;
	*dev = MKDEV(d->mj, d->mn);
	return 0;
}

static long bs_ioctl_version(void __user *arg)
{
	struct blk_snap_version v = {
		.major = 1, .minor = 0, .revision = 0, .build = 0,
	};

	return copy_to_user(arg, &v, sizeof(v)) ? -EFAULT : 0;
}

static long bs_ioctl_tracker_remove(void __user *arg)
{
	struct blk_snap_tracker_remove kp;
	dev_t dev;
	int ret;

	if (copy_from_user(&kp, arg, sizeof(kp)))
		return -EFAULT;
	ret = bs_dev_from_user(&kp.dev_id, &dev);
	if (ret)
		return ret;
	mutex_lock(&bs_ctl_mutex);
	ret = bs_tracker_remove(dev);
	mutex_unlock(&bs_ctl_mutex);
	return ret;
}

static long bs_ioctl_tracker_collect(void __user *arg)
{
	struct blk_snap_tracker_collect kp;
	int ret;

	if (copy_from_user(&kp, arg, sizeof(kp)))
		return -EFAULT;
	mutex_lock(&bs_ctl_mutex);
	ret = bs_tracker_collect(&kp.count, kp.cbt_info_array);
	mutex_unlock(&bs_ctl_mutex);
	if ((!ret || ret == -ENODATA) && copy_to_user(arg, &kp, sizeof(kp)))
		return -EFAULT;
	return ret;
}

static long bs_ioctl_read_cbt_map(void __user *arg)
{
	struct blk_snap_tracker_read_cbt_bitmap kp;
	struct bs_tracker *tr;
	dev_t dev;
	long ret;

	if (copy_from_user(&kp, arg, sizeof(kp)))
		return -EFAULT;
	ret = bs_dev_from_user(&kp.dev_id, &dev);
	if (ret)
		return ret;
	mutex_lock(&bs_ctl_mutex);
	tr = bs_tracker_find(dev);
	if (tr)
		ret = bs_cbt_map_read(tr->cbt, kp.offset, kp.length, kp.buff);
	else
		ret = -ENODEV;
	mutex_unlock(&bs_ctl_mutex);
	return ret;
}

static long bs_ioctl_mark_dirty(void __user *arg)
{
	struct blk_snap_tracker_mark_dirty_blocks kp;
	struct blk_snap_block_range *batch;
	struct bs_tracker *tr;
	unsigned int done = 0;
	dev_t dev;
	long ret;

	if (copy_from_user(&kp, arg, sizeof(kp)))
		return -EFAULT;
	ret = bs_dev_from_user(&kp.dev_id, &dev);
	if (ret)
		return ret;
	if (!kp.count || kp.count > BS_DIRTY_MAX)
		return -EINVAL;
	batch = bs_kzalloc(sizeof(*batch) * BS_DIRTY_BATCH, GFP_KERNEL);
	if (!batch)
		return -ENOMEM;

	mutex_lock(&bs_ctl_mutex);
	tr = bs_tracker_find(dev);
	if (!tr)
		tr = bs_snapshot_image_tracker(dev);
	if (!tr) {
		ret = -ENODEV;
		goto out;
	}
	while (done < kp.count) {
		unsigned int n = min_t(unsigned int, kp.count - done,
				       BS_DIRTY_BATCH);
		unsigned int i;

		if (copy_from_user(batch, kp.dirty_blocks_array + done,
				   sizeof(*batch) * n)) {
			ret = -EFAULT;
			goto out;
		}
		for (i = 0; i < n; i++) {
			if (batch[i].sector_offset >= tr->capacity ||
			    !batch[i].sector_count) {
				ret = -EINVAL;
				goto out;
			}
		}
		for (i = 0; i < n; i++)
			bs_cbt_map_set(tr->cbt, batch[i].sector_offset,
				       batch[i].sector_count);
		done += n;
	}
out:
	mutex_unlock(&bs_ctl_mutex);
	bs_kfree(batch);
	return ret;
}

static long bs_ioctl_snapshot_create(void __user *arg)
{
	struct blk_snap_snapshot_create kp;
	int ret;

	if (copy_from_user(&kp, arg, sizeof(kp)))
		return -EFAULT;
	mutex_lock(&bs_ctl_mutex);
	ret = bs_snapshot_create(kp.dev_id_array, kp.count, &kp.id);
	if (!ret && copy_to_user(arg, &kp, sizeof(kp))) {
		bs_snapshot_destroy(&kp.id);
		ret = -EFAULT;
	}
	mutex_unlock(&bs_ctl_mutex);
	return ret;
}

static long bs_ioctl_snapshot_destroy(void __user *arg)
{
	struct blk_snap_snapshot_destroy kp;
	int ret;

	if (copy_from_user(&kp, arg, sizeof(kp)))
		return -EFAULT;
	mutex_lock(&bs_ctl_mutex);
	ret = bs_snapshot_destroy(&kp.id);
	mutex_unlock(&bs_ctl_mutex);
	return ret;
}

static long bs_ioctl_append_storage(void __user *arg)
{
	struct blk_snap_snapshot_append_storage kp;
	struct bs_snapshot *s;
	dev_t dev;
	int ret;

	if (copy_from_user(&kp, arg, sizeof(kp)))
		return -EFAULT;
	ret = bs_dev_from_user(&kp.dev_id, &dev);
	if (ret)
		return ret;
	mutex_lock(&bs_ctl_mutex);
	s = bs_snapshot_find(&kp.id);
	if (s)
		ret = bs_diff_storage_append(s->ds, dev, kp.ranges, kp.count);
	else
		ret = -ESRCH;
	mutex_unlock(&bs_ctl_mutex);
	return ret;
}

static long bs_ioctl_snapshot_take(void __user *arg)
{
	struct blk_snap_snapshot_take kp;
	int ret;

	if (copy_from_user(&kp, arg, sizeof(kp)))
		return -EFAULT;
	mutex_lock(&bs_ctl_mutex);
	ret = bs_snapshot_take(&kp.id);
	mutex_unlock(&bs_ctl_mutex);
	return ret;
}

static long bs_ioctl_snapshot_collect(void __user *arg)
{
	struct blk_snap_snapshot_collect kp;
	int ret;

	if (copy_from_user(&kp, arg, sizeof(kp)))
		return -EFAULT;
	mutex_lock(&bs_ctl_mutex);
	ret = bs_snapshot_collect(&kp.count, kp.ids);
	mutex_unlock(&bs_ctl_mutex);
	if ((!ret || ret == -ENODATA) && copy_to_user(arg, &kp, sizeof(kp)))
		return -EFAULT;
	return ret;
}

static long bs_ioctl_collect_images(void __user *arg)
{
	struct blk_snap_snapshot_collect_images kp;
	int ret;

	if (copy_from_user(&kp, arg, sizeof(kp)))
		return -EFAULT;
	mutex_lock(&bs_ctl_mutex);
	ret = bs_snapshot_collect_images(&kp.id, &kp.count,
					 kp.image_info_array);
	mutex_unlock(&bs_ctl_mutex);
	if ((!ret || ret == -ENODATA) && copy_to_user(arg, &kp, sizeof(kp)))
		return -EFAULT;
	return ret;
}

static long bs_ioctl_wait_event(void __user *arg)
{
	struct blk_snap_snapshot_event *kp;
	struct bs_snapshot *s;
	struct bs_event *ev;
	long ret = 0;

	kp = bs_kzalloc(sizeof(*kp), GFP_KERNEL);
	if (!kp)
		return -ENOMEM;
	if (copy_from_user(kp, arg, offsetof(typeof(*kp), code))) {
		ret = -EFAULT;
		goto out;
	}
	mutex_lock(&bs_ctl_mutex);
	s = bs_snapshot_find(&kp->id);
	if (s)
		kref_get(&s->kref);
	mutex_unlock(&bs_ctl_mutex);
	if (!s) {
		ret = -ESRCH;
		goto out;
	}

	ev = bs_event_wait(&s->eq, kp->timeout_ms);
	bs_snapshot_put(s);
	if (IS_ERR(ev)) {
		ret = PTR_ERR(ev);
		goto out;
	}
	kp->code = ev->code;
	kp->time_label = ev->time;
	memcpy(kp->data, ev->data, min(ev->size, sizeof(kp->data)));
	bs_event_free(ev);
	if (copy_to_user(arg, kp, sizeof(*kp)))
		ret = -EFAULT;
out:
	bs_kfree(kp);
	return ret;
}

static long bs_ctrl_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;

	switch (cmd) {
	case IOCTL_BLK_SNAP_VERSION:
		return bs_ioctl_version(uarg);
	case IOCTL_BLK_SNAP_TRACKER_REMOVE:
		return bs_ioctl_tracker_remove(uarg);
	case IOCTL_BLK_SNAP_TRACKER_COLLECT:
		return bs_ioctl_tracker_collect(uarg);
	case IOCTL_BLK_SNAP_TRACKER_READ_CBT_MAP:
		return bs_ioctl_read_cbt_map(uarg);
	case IOCTL_BLK_SNAP_TRACKER_MARK_DIRTY_BLOCKS:
		return bs_ioctl_mark_dirty(uarg);
	case IOCTL_BLK_SNAP_SNAPSHOT_CREATE:
		return bs_ioctl_snapshot_create(uarg);
	case IOCTL_BLK_SNAP_SNAPSHOT_DESTROY:
		return bs_ioctl_snapshot_destroy(uarg);
	case IOCTL_BLK_SNAP_SNAPSHOT_APPEND_STORAGE:
		return bs_ioctl_append_storage(uarg);
	case IOCTL_BLK_SNAP_SNAPSHOT_TAKE:
		return bs_ioctl_snapshot_take(uarg);
	case IOCTL_BLK_SNAP_SNAPSHOT_COLLECT:
		return bs_ioctl_snapshot_collect(uarg);
	case IOCTL_BLK_SNAP_SNAPSHOT_COLLECT_IMAGES:
		return bs_ioctl_collect_images(uarg);
	case IOCTL_BLK_SNAP_SNAPSHOT_WAIT_EVENT:
		return bs_ioctl_wait_event(uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations bs_ctrl_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = bs_ctrl_ioctl,
};

static ssize_t major_show(struct class *class, struct class_attribute *attr,
			  char *buf)
{
	return sysfs_emit(buf, "%d\n", bs_ctrl_major);
}
static CLASS_ATTR_RO(major);

int bs_ctrl_init(void)
{
	struct device *dev;
	int ret;

	ret = register_chrdev(0, BLK_SNAP_CTL, &bs_ctrl_fops);
	if (ret < 0)
		return ret;
	bs_ctrl_major = ret;

	bs_class = bs_class_create(BLK_SNAP_CTL);
	if (IS_ERR(bs_class)) {
		ret = PTR_ERR(bs_class);
		goto fail_chrdev;
	}
	ret = class_create_file(bs_class, &class_attr_major);
	if (ret)
		goto fail_class;
	dev = device_create(bs_class, NULL, MKDEV(bs_ctrl_major, 0), NULL,
			    BLK_SNAP_CTL);
	if (IS_ERR(dev)) {
		ret = PTR_ERR(dev);
		goto fail_attr;
	}
	return 0;

fail_attr:
	class_remove_file(bs_class, &class_attr_major);
fail_class:
	class_destroy(bs_class);
fail_chrdev:
	unregister_chrdev(bs_ctrl_major, BLK_SNAP_CTL);
	return ret;
}

void bs_ctrl_exit(void)
{
	device_destroy(bs_class, MKDEV(bs_ctrl_major, 0));
	class_remove_file(bs_class, &class_attr_major);
	class_destroy(bs_class);
	unregister_chrdev(bs_ctrl_major, BLK_SNAP_CTL);
}
