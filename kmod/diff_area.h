/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_DIFF_AREA_H
#define __BLKSNAP_DIFF_AREA_H

#include <linux/blk_types.h>
#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
#include "diff_storage.h"

struct bs_snapshot;

/**
 * enum bs_chunk_state - Life of one chunk of an original device.
 * @BS_CHUNK_NEW: Untouched since the snapshot: the original holds the data.
 * @BS_CHUNK_LOADING: Being copied into the difference storage; writes
 *	to it are held.
 * @BS_CHUNK_STORED: The point-in-time data is in the difference storage.
 * @BS_CHUNK_FAILED: Could not be stored: the snapshot is corrupted.
 */
enum bs_chunk_state {
	BS_CHUNK_NEW = 0,
	BS_CHUNK_LOADING,
	BS_CHUNK_STORED,
	BS_CHUNK_FAILED,
};

/**
 * struct bs_chunk - Copy-on-write unit.
 * @da: Owner.
 * @number: Index on the device.
 * @sectors: Size (the last chunk of a device may be shorter).
 * @state: &enum bs_chunk_state; written under @da->lock, read locklessly
 *	by the bio hook's fast path.
 * @readers: Image reads of the original in flight (under @da->lock);
 *	held writes wait for them.
 * @loc: Location in the difference storage, valid once STORED.
 * @copy_link: Entry in &bs_diff_area.copy_queue, then in its copy batch.
 */
struct bs_chunk {
	struct bs_diff_area *da;
	unsigned long number;
	sector_t sectors;
	int state;
	int readers;
	struct bs_store_loc loc;
	struct list_head copy_link;
};

/**
 * struct bs_diff_area - Copy-on-write state of one device of a taken
 *	snapshot.
 * @snapshot: Owner.
 * @orig_bdev: Original device (the tracker's reference).
 * @orig_dev: Its device number.
 * @capacity: Size of the original in sectors.
 * @chunk_shift: Chunk size is 1 << @chunk_shift sectors.
 * @chunk_count: Number of chunks.
 * @ds: Difference storage of the snapshot.
 * @chunks: Chunks touched since the snapshot, by number.
 * @lock: Protects chunk states and readers, @held, @inflight, @stopping.
 * @held: Bios waiting for chunks (&struct bs_held).
 * @inflight: Copies, held bios, image clones and queued work in flight;
 *	the area is freed only when it drops to zero.
 * @stopping: The snapshot is being destroyed: everything passes.
 * @wq: Woken when @inflight reaches zero.
 * @release_work: Re-examines @held.
 * @copy_queue: Chunks waiting to be grouped into copy batches.
 * @copy_work: Groups @copy_queue into batches (chunk_copy.c).
 */
struct bs_diff_area {
	struct bs_snapshot *snapshot;
	struct block_device *orig_bdev;
	dev_t orig_dev;
	sector_t capacity;
	unsigned int chunk_shift;
	unsigned long chunk_count;
	struct bs_diff_storage *ds;
	struct xarray chunks;
	spinlock_t lock;
	struct list_head held;
	int inflight;
	bool stopping;
	wait_queue_head_t wq;
	struct work_struct release_work;
	struct list_head copy_queue;
	struct work_struct copy_work;
};

struct bs_diff_area *bs_diff_area_create(struct bs_snapshot *snapshot,
					 struct block_device *orig_bdev,
					 struct bs_diff_storage *ds);
void bs_diff_area_stop(struct bs_diff_area *da);
void bs_diff_area_wait_idle(struct bs_diff_area *da);
void bs_diff_area_destroy(struct bs_diff_area *da);
bool bs_diff_area_cow(struct bs_diff_area *da, struct bio *bio,
		      sector_t sector, sector_t count);
void bs_diff_area_image_io(struct bs_diff_area *da, struct bio *bio);
void bs_diff_area_kick(struct bs_diff_area *da);
bool bs_diff_area_passing(struct bs_diff_area *da);
void bs_da_put(struct bs_diff_area *da);
void bs_diff_area_chunks_done(struct bs_diff_area *da,
			      struct list_head *chunks, int error, bool report);
int bs_diff_area_init(void);
void bs_diff_area_exit(void);

#endif /* __BLKSNAP_DIFF_AREA_H */
