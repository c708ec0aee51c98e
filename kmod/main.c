// SPDX-License-Identifier: GPL-2.0
/*
 * blksnap - block device snapshots with change-block tracking.
 *
 * A clean-room implementation of the v2 user-space interface
 * (include/uapi/blksnap.h) for kernels without a block-filter hook.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/module.h>
#include <linux/moduleparam.h>
#include "common.h"
#include "ctrl.h"
#include "diff_area.h"
#include "filter.h"
#include "memory.h"
#include "params.h"
#include "snapimage.h"
#include "snapshot.h"
#include "tracker.h"

int bs_tracking_block_minimum_shift = 16;
int bs_tracking_block_maximum_count = 2097152;
int bs_chunk_minimum_shift = 18;
int bs_chunk_maximum_count = 2097152;
int bs_chunk_maximum_in_cache = 32;
int bs_free_diff_buffer_pool_size = 128;
int bs_diff_storage_minimum = 2097152;
int bs_copy_ahead_chunks = 16;

module_param_named(tracking_block_minimum_shift,
		   bs_tracking_block_minimum_shift, int, 0644);
MODULE_PARM_DESC(tracking_block_minimum_shift,
		 "Minimum tracking block size is 2^this bytes");
module_param_named(tracking_block_maximum_count,
		   bs_tracking_block_maximum_count, int, 0644);
MODULE_PARM_DESC(tracking_block_maximum_count,
		 "Most tracking blocks per device");
module_param_named(chunk_minimum_shift, bs_chunk_minimum_shift, int, 0644);
MODULE_PARM_DESC(chunk_minimum_shift, "Minimum chunk size is 2^this bytes");
module_param_named(chunk_maximum_count, bs_chunk_maximum_count, int, 0644);
MODULE_PARM_DESC(chunk_maximum_count, "Most chunks per device");
module_param_named(chunk_maximum_in_cache, bs_chunk_maximum_in_cache, int,
		   0644);
MODULE_PARM_DESC(chunk_maximum_in_cache,
		 "Chunks kept in memory for reading images");
module_param_named(free_diff_buffer_pool_size, bs_free_diff_buffer_pool_size,
		   int, 0644);
MODULE_PARM_DESC(free_diff_buffer_pool_size,
		 "Chunk copies in flight at once (copy buffers)");
module_param_named(diff_storage_minimum, bs_diff_storage_minimum, int, 0644);
MODULE_PARM_DESC(diff_storage_minimum,
		 "Sectors requested by a low free space event");
module_param_named(copy_ahead_chunks, bs_copy_ahead_chunks, int, 0644);
MODULE_PARM_DESC(copy_ahead_chunks,
		 "Chunks copied ahead of a sequential writer (0: off)");

struct bio_set bs_bioset;
struct bio_set bs_split_set;
struct workqueue_struct *bs_wq;

static int __init bs_init(void)
{
	int ret;

	ret = bs_diff_area_init();
	if (ret)
		return ret;
	ret = bioset_init(&bs_split_set, 64, 0, 0);
	if (ret)
		goto fail_bioset;
	bs_wq = alloc_workqueue("blksnap", WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!bs_wq) {
		ret = -ENOMEM;
		goto fail_wq;
	}
	ret = bs_snapimage_init();
	if (ret)
		goto fail_image;
	ret = bs_filter_register();
	if (ret)
		goto fail_filter;
	ret = bs_ctrl_init();
	if (ret)
		goto fail_ctrl;
	pr_info("version 1.0.0.0 loaded\n");
	return 0;

fail_ctrl:
	bs_filter_unregister();
fail_filter:
	bs_snapimage_exit();
fail_image:
	destroy_workqueue(bs_wq);
fail_wq:
	bioset_exit(&bs_split_set);
fail_bioset:
	bs_diff_area_exit();
	return ret;
}

static void __exit bs_exit(void)
{
	long left;

	bs_ctrl_exit();
	mutex_lock(&bs_ctl_mutex);
	bs_snapshot_destroy_all();
	bs_tracker_remove_all();
	mutex_unlock(&bs_ctl_mutex);
	bs_filter_unregister();
	destroy_workqueue(bs_wq);
	/* Completion handlers may still be returning from their last call. */
	synchronize_rcu();
	bs_snapimage_exit();
	bioset_exit(&bs_split_set);
	bs_diff_area_exit();

	left = bs_memory_outstanding();
	if (left)
		pr_err("memory leak: %ld allocations not freed at unload\n",
		       left);
	else
		pr_info("unloaded, all memory released\n");
}

module_init(bs_init);
module_exit(bs_exit);
MODULE_DESCRIPTION("Block device snapshots with change-block tracking");
MODULE_VERSION("1.0.0.0");
MODULE_LICENSE("GPL");
