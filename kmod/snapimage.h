/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_SNAPIMAGE_H
#define __BLKSNAP_SNAPIMAGE_H

#include <linux/types.h>

struct bs_diff_area;
struct gendisk;

/**
 * struct bs_snapimage - Block device showing a snapshot's content.
 * @disk: The bio-based disk, named blksnap-image<minor>.
 * @da: Diff area serving its bios.
 * @dev: Its device number.
 * @added: add_disk() succeeded.
 */
struct bs_snapimage {
	struct gendisk *disk;
	struct bs_diff_area *da;
	dev_t dev;
	bool added;
};

struct bs_snapimage *bs_snapimage_create(struct bs_diff_area *da);
int bs_snapimage_add(struct bs_snapimage *img);
void bs_snapimage_del(struct bs_snapimage *img);
void bs_snapimage_free(struct bs_snapimage *img);
int bs_snapimage_init(void);
void bs_snapimage_exit(void);

#endif /* __BLKSNAP_SNAPIMAGE_H */
