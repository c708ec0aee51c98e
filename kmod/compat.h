/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_COMPAT_H
#define __BLKSNAP_COMPAT_H

#include <linux/blkdev.h>

/*
 * The module targets the 6.1 block layer (Debian 12). Kernel API
 * differences live here and nowhere else: 6.5 replaced fmode_t opens
 * with blk_mode_t and holder ops, 6.8 with bdev_file_open_by_dev(),
 * and freeze_bdev() became bdev_freeze().
 */

static inline struct block_device *bs_bdev_open(dev_t dev, bool write)
{
	return blkdev_get_by_dev(dev, write ? FMODE_READ | FMODE_WRITE :
					      FMODE_READ, NULL);
}

static inline void bs_bdev_close(struct block_device *bdev, bool write)
{
	blkdev_put(bdev, write ? FMODE_READ | FMODE_WRITE : FMODE_READ);
}

#define bs_class_create(name) class_create(THIS_MODULE, name)

#endif /* __BLKSNAP_COMPAT_H */
