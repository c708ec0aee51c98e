// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/blkdev.h>
#include <linux/err.h>
#include <linux/idr.h>
#include <linux/module.h>
#include <uapi/blksnap.h>
#include "common.h"
#include "diff_area.h"
#include "memory.h"
#include "snapimage.h"

#define BS_IMAGE_MINORS (1U << MINORBITS)

int bs_image_major;
static DEFINE_IDA(bs_image_ida);

static void bs_snapimage_submit_bio(struct bio *bio)
{
	struct bs_snapimage *img = bio->bi_bdev->bd_disk->private_data;

	bs_diff_area_image_io(img->da, bio);
}

static const struct block_device_operations bs_snapimage_fops = {
	.owner = THIS_MODULE,
	.submit_bio = bs_snapimage_submit_bio,
};

/* Prepare the image of @da; it appears with bs_snapimage_add(). */
struct bs_snapimage *bs_snapimage_create(struct bs_diff_area *da)
{
	struct bs_snapimage *img;
	struct gendisk *disk;
	int minor, ret;

	img = bs_kzalloc(sizeof(*img), GFP_KERNEL);
	if (!img)
		return ERR_PTR(-ENOMEM);
	minor = ida_alloc_max(&bs_image_ida, BS_IMAGE_MINORS - 1, GFP_KERNEL);
	if (minor < 0) {
		ret = minor;
		goto fail_img;
	}
	disk = blk_alloc_disk(NUMA_NO_NODE);
	if (!disk) {
		ret = -ENOMEM;
		goto fail_minor;
	}
	disk->major = bs_image_major;
	disk->first_minor = minor;
	disk->minors = 1;
	disk->flags |= GENHD_FL_NO_PART;
	disk->fops = &bs_snapimage_fops;
	disk->private_data = img;
	snprintf(disk->disk_name, DISK_NAME_LEN, BLK_SNAP_IMAGE_NAME "%d",
		 minor);
	set_capacity(disk, da->capacity);
	blk_queue_logical_block_size(disk->queue,
				     bdev_logical_block_size(da->orig_bdev));
	blk_queue_physical_block_size(disk->queue,
				      bdev_physical_block_size(da->orig_bdev));
	blk_queue_max_hw_sectors(disk->queue, BIO_MAX_VECS << (PAGE_SHIFT - SECTOR_SHIFT));

	img->disk = disk;
	img->da = da;
	img->dev = MKDEV(bs_image_major, minor);
	return img;

fail_minor:
	ida_free(&bs_image_ida, minor);
fail_img:
	bs_kfree(img);
	return ERR_PTR(ret);
}

int bs_snapimage_add(struct bs_snapimage *img)
{
	int ret = add_disk(img->disk);

	if (!ret)
		img->added = true;
	return ret;
}

/* Remove the device: no new bios arrive after this. */
void bs_snapimage_del(struct bs_snapimage *img)
{
	if (img && img->added) {
		del_gendisk(img->disk);
		img->added = false;
	}
}

void bs_snapimage_free(struct bs_snapimage *img)
{
	if (!img)
		return;
	bs_snapimage_del(img);
	put_disk(img->disk);
	ida_free(&bs_image_ida, MINOR(img->dev));
	bs_kfree(img);
}

int bs_snapimage_init(void)
{
	int ret = register_blkdev(0, BLK_SNAP_IMAGE_NAME);

	if (ret < 0)
		return ret;
	bs_image_major = ret;
	return 0;
}

void bs_snapimage_exit(void)
{
	unregister_blkdev(bs_image_major, BLK_SNAP_IMAGE_NAME);
	ida_destroy(&bs_image_ida);
}
