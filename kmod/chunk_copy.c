// SPDX-License-Identifier: GPL-2.0
/*
 * Copies of original chunks into the difference storage.
 *
 * Chunks queued by the bio hook are grouped into batches of consecutive
 * chunks, so that a sequential writer costs one large read and one large
 * write per batch instead of two I/Os per chunk. Each batch is copied by a
 * work item in three stages: read the original, write the storage, then
 * publish the chunks as stored. The number of chunks being copied at once
 * is bounded by free_diff_buffer_pool_size.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/blkdev.h>
#include <linux/list.h>
#include <linux/spinlock.h>
#include "chunk_copy.h"
#include "common.h"
#include "diff_area.h"
#include "memory.h"
#include "params.h"

/* Largest batch: 4 MiB or 16 chunks, whichever is more. */
#define BS_BATCH_MIN_CHUNKS 16
#define BS_BATCH_BYTES (4U << 20)

enum {
	BS_COPY_START = 0,
	BS_COPY_READ_DONE,
	BS_COPY_WRITE_DONE,
};

/**
 * struct bs_copy - A batch of consecutive chunks being copied.
 * @da: Diff area of the chunks.
 * @chunks: The chunks, ascending (&bs_chunk.copy_link).
 * @nr_chunks: Number of chunks, also the buffer slots it holds.
 * @first: Number of the first chunk.
 * @sectors: Size of the batch.
 * @loc: Storage allocated for the batch.
 * @stage: Progress, owned by whoever runs @work.
 * @has_slots: Holds @nr_chunks buffer slots.
 * @pages: Copy buffer: 64 KiB segments.
 * @nr_pages: Segments in @pages.
 * @io_pending: Bios of the current stage in flight, plus one.
 * @io_error: First error of the current stage.
 * @work: Runs the stages on bs_wq.
 * @wait_link: Entry in the list of batches waiting for buffer slots.
 */
struct bs_copy {
	struct bs_diff_area *da;
	struct list_head chunks;
	unsigned int nr_chunks;
	unsigned long first;
	sector_t sectors;
	struct bs_store_loc loc;
	int stage;
	bool has_slots;
	struct page **pages;
	unsigned int nr_pages;
	atomic_t io_pending;
	int io_error;
	struct work_struct work;
	struct list_head wait_link;
};

#define BS_SEG_ORDER 4
#define BS_SEG_SHIFT (PAGE_SHIFT + BS_SEG_ORDER)
#define BS_SEG_SIZE (1U << BS_SEG_SHIFT)

/* Idle copy buffer segments. */
static DEFINE_SPINLOCK(bs_pool_lock);
static LIST_HEAD(bs_pool);
static unsigned int bs_pool_size;

/* Keep at most the segments of free_diff_buffer_pool_size 256 KiB chunks. */
static unsigned int bs_pool_max(void)
{
	return max(bs_free_diff_buffer_pool_size, 0) * 4;
}

/* Buffer slots (one per chunk) in use, and batches waiting for slots. */
static DEFINE_SPINLOCK(bs_slot_lock);
static LIST_HEAD(bs_slot_waiters);
static int bs_slots_used;

static int bs_slot_limit(void)
{
	return max(bs_free_diff_buffer_pool_size, BS_BATCH_MIN_CHUNKS);
}

static bool bs_slots_acquire(struct bs_copy *copy)
{
	bool ok = false;

	spin_lock(&bs_slot_lock);
	if (list_empty(&bs_slot_waiters) &&
	    bs_slots_used + copy->nr_chunks <= bs_slot_limit()) {
		bs_slots_used += copy->nr_chunks;
		copy->has_slots = true;
		ok = true;
	} else {
		list_add_tail(&copy->wait_link, &bs_slot_waiters);
	}
	spin_unlock(&bs_slot_lock);
	return ok;
}

/* Return the batch's slots and start the waiters that now fit, in order. */
static void bs_slots_release(struct bs_copy *copy)
{
	struct bs_copy *next;

	if (!copy->has_slots)
		return;
	copy->has_slots = false;
	spin_lock(&bs_slot_lock);
	bs_slots_used -= copy->nr_chunks;
	while ((next = list_first_entry_or_null(&bs_slot_waiters,
						struct bs_copy, wait_link))) {
		if (bs_slots_used + next->nr_chunks > bs_slot_limit())
			break;
		list_del_init(&next->wait_link);
		bs_slots_used += next->nr_chunks;
		next->has_slots = true;
		queue_work(bs_wq, &next->work);
	}
	spin_unlock(&bs_slot_lock);
}

/*
 * Copy buffers are built from 64 KiB segments (order-4 pages) kept in a
 * pool between copies: allocating and freeing single pages for every
 * copy costs more than the copy itself on slow CPUs.
 */
static struct page *bs_seg_get(void)
{
	struct page *page;

	spin_lock(&bs_pool_lock);
	page = list_first_entry_or_null(&bs_pool, struct page, lru);
	if (page) {
		list_del(&page->lru);
		bs_pool_size--;
	}
	spin_unlock(&bs_pool_lock);
	if (page)
		return page;
	return bs_alloc_pages(GFP_NOIO | __GFP_NOWARN | __GFP_NORETRY,
			      BS_SEG_ORDER);
}

static void bs_seg_put(struct page *page)
{
	spin_lock(&bs_pool_lock);
	if (bs_pool_size < bs_pool_max()) {
		list_add(&page->lru, &bs_pool);
		bs_pool_size++;
		page = NULL;
	}
	spin_unlock(&bs_pool_lock);
	if (page)
		bs_free_pages(page, BS_SEG_ORDER);
}

/* Free the pooled segments (no snapshot is left). */
void bs_copy_pool_trim(void)
{
	struct page *page, *tmp;
	LIST_HEAD(list);

	spin_lock(&bs_pool_lock);
	list_splice_init(&bs_pool, &list);
	bs_pool_size = 0;
	spin_unlock(&bs_pool_lock);
	list_for_each_entry_safe(page, tmp, &list, lru) {
		list_del(&page->lru);
		bs_free_pages(page, BS_SEG_ORDER);
	}
}

static void bs_copy_free_pages(struct bs_copy *copy)
{
	unsigned int i;

	if (!copy->pages)
		return;
	for (i = 0; i < copy->nr_pages; i++)
		bs_seg_put(copy->pages[i]);
	bs_kfree(copy->pages);
	copy->pages = NULL;
	copy->nr_pages = 0;
}

static int bs_copy_alloc_pages(struct bs_copy *copy)
{
	unsigned int nr = DIV_ROUND_UP(copy->sectors << SECTOR_SHIFT,
				       BS_SEG_SIZE);
	unsigned int i;

	copy->pages = bs_kzalloc(sizeof(*copy->pages) * nr, GFP_NOIO);
	if (!copy->pages)
		return -ENOMEM;
	copy->nr_pages = nr;
	for (i = 0; i < nr; i++) {
		copy->pages[i] = bs_seg_get();
		if (!copy->pages[i]) {
			copy->nr_pages = i;
			bs_copy_free_pages(copy);
			return -ENOMEM;
		}
	}
	return 0;
}

static void bs_copy_io_put(struct bs_copy *copy)
{
	if (atomic_dec_and_test(&copy->io_pending))
		queue_work(bs_wq, &copy->work);
}

static void bs_copy_endio(struct bio *bio)
{
	struct bs_copy *copy = bio->bi_private;

	if (bio->bi_status && !copy->io_error)
		copy->io_error = blk_status_to_errno(bio->bi_status);
	bio_put(bio);
	bs_copy_io_put(copy);
}

/* Read or write the whole buffer; the last completion requeues the work. */
static void bs_copy_io(struct bs_copy *copy, struct block_device *bdev,
		       sector_t sector, enum req_op op)
{
	unsigned int bytes_left = copy->sectors << SECTOR_SHIFT;
	unsigned int done = 0;

	copy->io_error = 0;
	atomic_set(&copy->io_pending, 1);
	while (done < copy->nr_pages) {
		unsigned int n = min_t(unsigned int, copy->nr_pages - done,
				       BIO_MAX_VECS);
		struct bio *bio;
		unsigned int i;

		bio = bio_alloc_bioset(bdev, n, op, GFP_NOIO, &bs_bioset);
		bio->bi_iter.bi_sector = sector +
			((sector_t)done << (BS_SEG_SHIFT - SECTOR_SHIFT));
		bio->bi_end_io = bs_copy_endio;
		bio->bi_private = copy;
		for (i = 0; i < n; i++) {
			unsigned int len = min_t(unsigned int, bytes_left,
						 BS_SEG_SIZE);

			bio_add_page(bio, copy->pages[done + i], len, 0);
			bytes_left -= len;
		}
		atomic_inc(&copy->io_pending);
		submit_bio_noacct(bio);
		done += n;
	}
	bs_copy_io_put(copy);
}

static void bs_copy_finish(struct bs_copy *copy, int error, bool report)
{
	struct bs_diff_area *da = copy->da;
	struct bs_chunk *c;

	bs_copy_free_pages(copy);
	bs_slots_release(copy);
	if (!error) {
		list_for_each_entry(c, &copy->chunks, copy_link) {
			c->loc.bdev = copy->loc.bdev;
			c->loc.sector = copy->loc.sector +
				((sector_t)(c->number - copy->first) <<
				 da->chunk_shift);
		}
	}
	bs_diff_area_chunks_done(da, &copy->chunks, error, report);
	bs_kfree(copy);
}

static void bs_copy_work(struct work_struct *work)
{
	struct bs_copy *copy = container_of(work, struct bs_copy, work);
	struct bs_diff_area *da = copy->da;
	int ret;

	switch (copy->stage) {
	case BS_COPY_START:
		if (bs_diff_area_passing(da)) {
			bs_copy_finish(copy, -ECANCELED, false);
			return;
		}
		if (!copy->has_slots && !bs_slots_acquire(copy))
			return; /* requeued when slots free up */
		ret = bs_copy_alloc_pages(copy);
		if (ret) {
			bs_copy_finish(copy, ret, true);
			return;
		}
		copy->stage = BS_COPY_READ_DONE;
		bs_copy_io(copy, da->orig_bdev,
			   (sector_t)copy->first << da->chunk_shift,
			   REQ_OP_READ);
		return;

	case BS_COPY_READ_DONE:
		if (copy->io_error) {
			bs_copy_finish(copy, copy->io_error, true);
			return;
		}
		if (bs_diff_area_passing(da)) {
			bs_copy_finish(copy, -ECANCELED, false);
			return;
		}
		/* Keep storage allocations 4 KiB aligned. */
		ret = bs_diff_storage_alloc(da->ds, round_up(copy->sectors, 8),
					    &copy->loc);
		if (ret) {
			bs_copy_finish(copy, ret, true);
			return;
		}
		copy->stage = BS_COPY_WRITE_DONE;
		bs_copy_io(copy, copy->loc.bdev, copy->loc.sector,
			   REQ_OP_WRITE);
		return;

	case BS_COPY_WRITE_DONE:
		bs_copy_finish(copy, copy->io_error, true);
		return;
	}
}

static unsigned int bs_batch_max_chunks(struct bs_diff_area *da)
{
	unsigned int by_bytes = BS_BATCH_BYTES >>
				(da->chunk_shift + SECTOR_SHIFT);

	return min_t(unsigned int, max_t(unsigned int, by_bytes,
					 BS_BATCH_MIN_CHUNKS),
		     bs_slot_limit());
}

/* Cut the queued chunks into batches of consecutive chunks and start them. */
void bs_copy_queue_work(struct work_struct *work)
{
	struct bs_diff_area *da = container_of(work, struct bs_diff_area,
					       copy_work);
	unsigned int max_chunks = bs_batch_max_chunks(da);
	struct bs_chunk *c, *prev;
	unsigned long flags;
	struct bs_copy *copy;
	LIST_HEAD(queue);

	spin_lock_irqsave(&da->lock, flags);
	list_splice_init(&da->copy_queue, &queue);
	spin_unlock_irqrestore(&da->lock, flags);

	while ((c = list_first_entry_or_null(&queue, struct bs_chunk,
					     copy_link))) {
		copy = bs_kzalloc(sizeof(*copy), GFP_NOIO);
		if (!copy) {
			LIST_HEAD(failed);

			list_move_tail(&c->copy_link, &failed);
			bs_diff_area_chunks_done(da, &failed, -ENOMEM, true);
			continue;
		}
		copy->da = da;
		INIT_LIST_HEAD(&copy->chunks);
		INIT_LIST_HEAD(&copy->wait_link);
		INIT_WORK(&copy->work, bs_copy_work);
		copy->first = c->number;
		do {
			list_move_tail(&c->copy_link, &copy->chunks);
			copy->nr_chunks++;
			copy->sectors += c->sectors;
			prev = c;
			c = list_first_entry_or_null(&queue, struct bs_chunk,
						     copy_link);
		} while (c && c->number == prev->number + 1 &&
			 copy->nr_chunks < max_chunks);
		/* Start it here: one work item hop less per batch. */
		bs_copy_work(&copy->work);
	}
	bs_da_put(da);
}
