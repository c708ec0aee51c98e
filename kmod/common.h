/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_COMMON_H
#define __BLKSNAP_COMMON_H

#include <linux/bio.h>
#include <linux/mutex.h>
#include <linux/srcu.h>
#include <linux/workqueue.h>

/* Shared module state, defined in main.c and tracker.c. */

/* Bios the module allocates itself; the hook lets them pass untouched. */
extern struct bio_set bs_bioset;
/* Splits of production bios at tracker boundaries. */
extern struct bio_set bs_split_set;
/* Copy-on-write and release work. */
extern struct workqueue_struct *bs_wq;
/* Serialises every control operation (trackers, snapshots). */
extern struct mutex bs_ctl_mutex;
/* Readers: the bio hook. Writers publish trackers and diff areas. */
extern struct srcu_struct bs_srcu;
/* Major number of the snapshot image devices. */
extern int bs_image_major;

#endif /* __BLKSNAP_COMMON_H */
