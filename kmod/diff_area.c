// SPDX-License-Identifier: GPL-2.0
/*
 * Copy-on-write engine.
 *
 * The bio hook never waits for I/O. A write that touches chunks whose
 * original data is not yet in the difference storage is held; the chunks
 * are copied by work items (read the original, write it to the storage)
 * and the held bio is resubmitted once all its chunks are stored. Image
 * reads of chunks still on the original count as readers; a held write
 * is released only when no such read is in flight.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/blkdev.h>
#include <linux/err.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include "common.h"
#include "chunk_copy.h"
#include "diff_area.h"
#include "filter.h"
#include "memory.h"
#include "params.h"
#include "snapshot.h"


/**
 * struct bs_held - A bio waiting for chunks.
 * @link: Entry in &bs_diff_area.held.
 * @bio: The bio.
 * @first: First chunk it waits for.
 * @last: Last chunk it waits for.
 * @image: An image bio (else a production write).
 * @write: The image bio writes.
 */
struct bs_held {
	struct list_head link;
	struct bio *bio;
	unsigned long first;
	unsigned long last;
	bool image;
	bool write;
};

static void bs_release_work(struct work_struct *work);

struct bs_diff_area *bs_diff_area_create(struct bs_snapshot *snapshot,
					 struct block_device *orig_bdev,
					 struct bs_diff_storage *ds)
{
	struct bs_diff_area *da;
	unsigned int shift;
	unsigned long long max_count = max(bs_chunk_maximum_count, 1);

	da = bs_kzalloc(sizeof(*da), GFP_KERNEL);
	if (!da)
		return ERR_PTR(-ENOMEM);
	da->snapshot = snapshot;
	da->orig_bdev = orig_bdev;
	da->orig_dev = orig_bdev->bd_dev;
	da->capacity = bdev_nr_sectors(orig_bdev);
	da->ds = ds;

	shift = clamp(bs_chunk_minimum_shift, PAGE_SHIFT, 30) - SECTOR_SHIFT;
	while (shift < 40 &&
	       DIV_ROUND_UP_ULL(da->capacity, 1ULL << shift) > max_count)
		shift++;
	da->chunk_shift = shift;
	da->chunk_count = DIV_ROUND_UP_ULL(da->capacity, 1ULL << shift);

	xa_init(&da->chunks);
	spin_lock_init(&da->lock);
	INIT_LIST_HEAD(&da->held);
	init_waitqueue_head(&da->wq);
	INIT_WORK(&da->release_work, bs_release_work);
	INIT_LIST_HEAD(&da->copy_queue);
	INIT_WORK(&da->copy_work, bs_copy_queue_work);
	return da;
}

static void bs_chunk_free(struct bs_chunk *c)
{
	bs_kfree(c);
}

void bs_diff_area_destroy(struct bs_diff_area *da)
{
	struct bs_chunk *c;
	unsigned long index;

	if (!da)
		return;
	xa_for_each(&da->chunks, index, c)
		bs_chunk_free(c);
	xa_destroy(&da->chunks);
	bs_kfree(da);
}

bool bs_diff_area_passing(struct bs_diff_area *da)
{
	return READ_ONCE(da->stopping) || bs_snapshot_is_corrupted(da->snapshot);
}

/* Drop one in-flight reference; the last one wakes bs_diff_area_wait_idle(). */
void bs_da_put(struct bs_diff_area *da)
{
	unsigned long flags;

	spin_lock_irqsave(&da->lock, flags);
	if (!--da->inflight)
		wake_up(&da->wq);
	spin_unlock_irqrestore(&da->lock, flags);
}

static bool bs_da_idle(struct bs_diff_area *da)
{
	unsigned long flags;
	bool idle;

	spin_lock_irqsave(&da->lock, flags);
	idle = !da->inflight;
	spin_unlock_irqrestore(&da->lock, flags);
	return idle;
}

/* Caller holds da->lock. Queue a scan of the held bios. */
static void bs_da_kick_locked(struct bs_diff_area *da)
{
	if (queue_work(bs_wq, &da->release_work))
		da->inflight++;
}

void bs_diff_area_kick(struct bs_diff_area *da)
{
	unsigned long flags;

	spin_lock_irqsave(&da->lock, flags);
	bs_da_kick_locked(da);
	spin_unlock_irqrestore(&da->lock, flags);
}

static sector_t bs_chunk_start(struct bs_diff_area *da, unsigned long nr)
{
	return (sector_t)nr << da->chunk_shift;
}

static sector_t bs_chunk_sectors(struct bs_diff_area *da, unsigned long nr)
{
	sector_t start = bs_chunk_start(da, nr);

	return min_t(sector_t, 1ULL << da->chunk_shift, da->capacity - start);
}

/* Find chunk @nr, creating it in state NEW when missing. */
static struct bs_chunk *bs_chunk_get(struct bs_diff_area *da,
				     unsigned long nr, gfp_t gfp)
{
	struct bs_chunk *c, *old;

	c = xa_load(&da->chunks, nr);
	if (c)
		return c;
	c = bs_kzalloc(sizeof(*c), gfp);
	if (!c)
		return NULL;
	c->da = da;
	c->number = nr;
	c->sectors = bs_chunk_sectors(da, nr);
	c->state = BS_CHUNK_NEW;
	INIT_LIST_HEAD(&c->copy_link);

	old = xa_cmpxchg(&da->chunks, nr, NULL, c, gfp);
	if (!old)
		return c;
	bs_chunk_free(c);
	return xa_is_err(old) ? NULL : old;
}

/* A production write may pass a chunk in this state. */
static bool bs_chunk_settled(struct bs_chunk *c)
{
	int state = READ_ONCE(c->state);

	if (state == BS_CHUNK_FAILED)
		return true;
	if (state != BS_CHUNK_STORED)
		return false;
	smp_rmb(); /* pairs with the state change under da->lock */
	return !READ_ONCE(c->readers);
}

/* Caller holds da->lock. Start copying a NEW chunk. */
static void bs_chunk_start_copy(struct bs_diff_area *da, struct bs_chunk *c)
{
	if (c->state != BS_CHUNK_NEW)
		return;
	c->state = BS_CHUNK_LOADING;
	da->inflight++;
	list_add_tail(&c->copy_link, &da->copy_queue);
	if (queue_work(bs_wq, &da->copy_work))
		da->inflight++;
}

static bool bs_held_ready(struct bs_diff_area *da, struct bs_held *h)
{
	unsigned long nr;

	for (nr = h->first; nr <= h->last; nr++) {
		struct bs_chunk *c = xa_load(&da->chunks, nr);
		int state = c ? c->state : BS_CHUNK_NEW;

		if (!h->image) {
			if (!c || !bs_chunk_settled(c))
				return false;
		} else if (h->write) {
			if (state != BS_CHUNK_STORED && state != BS_CHUNK_FAILED)
				return false;
		} else if (state == BS_CHUNK_LOADING) {
			return false;
		}
	}
	return true;
}

/* Resubmit or re-dispatch every held bio whose chunks are settled. */
static void bs_da_release(struct bs_diff_area *da)
{
	struct bs_held *h, *tmp;
	unsigned long flags;
	LIST_HEAD(ready);
	bool all;

	spin_lock_irqsave(&da->lock, flags);
	all = da->stopping || bs_snapshot_is_corrupted(da->snapshot);
	list_for_each_entry_safe(h, tmp, &da->held, link) {
		if (all || bs_held_ready(da, h))
			list_move_tail(&h->link, &ready);
	}
	spin_unlock_irqrestore(&da->lock, flags);

	list_for_each_entry_safe(h, tmp, &ready, link) {
		list_del(&h->link);
		if (h->image)
			bs_diff_area_image_io(da, h->bio);
		else
			bs_filter_resubmit(h->bio);
		bs_kfree(h);
		bs_da_put(da);
	}
}

static void bs_release_work(struct work_struct *work)
{
	struct bs_diff_area *da = container_of(work, struct bs_diff_area,
					       release_work);

	bs_da_release(da);
	bs_da_put(da);
}

/*
 * A batch of chunks was copied (or failed): publish their states, release
 * the bios waiting for them and drop their references.
 */
void bs_diff_area_chunks_done(struct bs_diff_area *da,
			      struct list_head *chunks, int error, bool report)
{
	struct bs_chunk *c, *tmp;
	unsigned long flags;
	unsigned int n = 0;

	spin_lock_irqsave(&da->lock, flags);
	list_for_each_entry_safe(c, tmp, chunks, copy_link) {
		list_del_init(&c->copy_link);
		WRITE_ONCE(c->state, error ? BS_CHUNK_FAILED : BS_CHUNK_STORED);
		n++;
	}
	spin_unlock_irqrestore(&da->lock, flags);

	if (error && report)
		bs_snapshot_corrupt(da->snapshot, da, error);
	bs_da_release(da);
	while (n--)
		bs_da_put(da);
}

/*
 * The bio hook's part: @bio writes [@sector, @sector + @count) of the
 * original. Return true when the bio was taken (held, or completed with
 * BLK_STS_AGAIN for a NOWAIT bio); false lets it pass now.
 */
bool bs_diff_area_cow(struct bs_diff_area *da, struct bio *bio,
		      sector_t sector, sector_t count)
{
	bool nowait = (bio->bi_opf & REQ_NOWAIT) ||
		      (current->plug && current->plug->nowait);
	gfp_t gfp = nowait ? GFP_NOWAIT | __GFP_NOWARN : GFP_NOIO;
	unsigned long first, last, nr, ahead_end = 0;
	struct bs_held *held;
	unsigned long flags;
	bool hold = false;
	struct bs_chunk *c;

	if (!count || sector >= da->capacity || bs_diff_area_passing(da))
		return false;
	first = sector >> da->chunk_shift;
	last = min_t(u64, (sector + count - 1) >> da->chunk_shift,
		     da->chunk_count - 1);

	/* Fast path: every chunk already stored. */
	for (nr = first; nr <= last; nr++) {
		c = xa_load(&da->chunks, nr);
		if (!c || !bs_chunk_settled(c))
			break;
	}
	if (nr > last)
		return false;

	if (nowait) {
		bio_wouldblock_error(bio);
		return true;
	}

	held = bs_kzalloc(sizeof(*held), gfp);
	if (!held)
		goto nomem;
	for (nr = first; nr <= last; nr++) {
		if (!bs_chunk_get(da, nr, gfp))
			goto nomem_held;
	}
	/* A writer that stored the chunk before this one moves forward. */
	if (first > 0) {
		c = xa_load(&da->chunks, first - 1);
		if (c && READ_ONCE(c->state) != BS_CHUNK_NEW) {
			ahead_end = min_t(u64, last + 1 +
					  max(bs_copy_ahead_chunks, 0),
					  da->chunk_count);
			for (nr = last + 1; nr < ahead_end; nr++)
				if (!bs_chunk_get(da, nr, gfp))
					break;
			ahead_end = nr;
		}
	}

	spin_lock_irqsave(&da->lock, flags);
	if (da->stopping || bs_snapshot_is_corrupted(da->snapshot)) {
		spin_unlock_irqrestore(&da->lock, flags);
		bs_kfree(held);
		return false;
	}
	for (nr = first; nr <= last; nr++) {
		c = xa_load(&da->chunks, nr);
		bs_chunk_start_copy(da, c);
		if (!bs_chunk_settled(c))
			hold = true;
	}
	for (nr = last + 1; nr < ahead_end; nr++)
		bs_chunk_start_copy(da, xa_load(&da->chunks, nr));
	if (hold) {
		held->bio = bio;
		held->first = first;
		held->last = last;
		list_add_tail(&held->link, &da->held);
		da->inflight++;
	}
	spin_unlock_irqrestore(&da->lock, flags);

	if (!hold)
		bs_kfree(held);
	return hold;

nomem_held:
	bs_kfree(held);
nomem:
	/* Never fail a production write: give up the snapshot instead. */
	bs_snapshot_corrupt(da->snapshot, da, -ENOMEM);
	return false;
}

/**
 * struct bs_clone - An image bio's part that maps to one chunk.
 * @da: Diff area.
 * @chunk: The chunk, when the part reads the original (a reader).
 * @parent: The image bio.
 * @bio: The clone; must be last (bioset front padding).
 */
struct bs_clone {
	struct bs_diff_area *da;
	struct bs_chunk *chunk;
	struct bio *parent;
	struct bio bio;
};

static void bs_clone_endio(struct bio *bio)
{
	struct bs_clone *clone = container_of(bio, struct bs_clone, bio);
	struct bs_diff_area *da = clone->da;
	struct bio *parent = clone->parent;
	unsigned long flags;

	if (bio->bi_status && !parent->bi_status)
		parent->bi_status = bio->bi_status;
	if (clone->chunk) {
		spin_lock_irqsave(&da->lock, flags);
		if (!--clone->chunk->readers && !list_empty(&da->held))
			bs_da_kick_locked(da);
		spin_unlock_irqrestore(&da->lock, flags);
	}
	bio_put(bio);
	bio_endio(parent);
	bs_da_put(da);
}

static bool bs_image_must_hold(struct bs_diff_area *da, unsigned long first,
			       unsigned long last, bool write)
{
	unsigned long nr;
	bool hold = false;

	for (nr = first; nr <= last; nr++) {
		struct bs_chunk *c = xa_load(&da->chunks, nr);

		if (write) {
			bs_chunk_start_copy(da, c);
			if (c->state != BS_CHUNK_STORED)
				hold = true;
		} else if (c->state == BS_CHUNK_LOADING) {
			hold = true;
		}
	}
	return hold;
}

/* Submit the part of @bio that falls into chunk @nr. */
static void bs_image_submit_part(struct bs_diff_area *da, struct bio *bio,
				 unsigned long nr, sector_t start,
				 sector_t end, bool write)
{
	struct bs_chunk *c = xa_load(&da->chunks, nr);
	sector_t cstart = bs_chunk_start(da, nr);
	struct block_device *bdev;
	struct bs_clone *clone;
	struct bio *cbio;
	unsigned long flags;
	sector_t target;
	bool origin;

	spin_lock_irqsave(&da->lock, flags);
	origin = !write && c->state != BS_CHUNK_STORED;
	if (origin) {
		c->readers++;
		bdev = da->orig_bdev;
		target = start;
	} else {
		bdev = c->loc.bdev;
		target = c->loc.sector + (start - cstart);
	}
	da->inflight++;
	spin_unlock_irqrestore(&da->lock, flags);

	cbio = bio_alloc_clone(bdev, bio, GFP_NOIO, &bs_bioset);
	clone = container_of(cbio, struct bs_clone, bio);
	clone->da = da;
	clone->chunk = origin ? c : NULL;
	clone->parent = bio;
	bio_trim(cbio, start - bio->bi_iter.bi_sector, end - start);
	cbio->bi_iter.bi_sector = target;
	bio_clear_flag(cbio, BIO_REMAPPED);
	cbio->bi_end_io = bs_clone_endio;
	bio_inc_remaining(bio);
	submit_bio_noacct(cbio);
}

/*
 * Serve a bio of the snapshot image: reads come from the difference
 * storage for stored chunks and from the original for the others;
 * writes go to the difference storage after the chunk is stored.
 */
void bs_diff_area_image_io(struct bs_diff_area *da, struct bio *bio)
{
	sector_t sector = bio->bi_iter.bi_sector;
	sector_t count = bio_sectors(bio);
	enum req_op op = bio_op(bio);
	unsigned long first, last, nr;
	struct bs_held *held;
	unsigned long flags;
	bool write;

	if (bs_snapshot_is_corrupted(da->snapshot)) {
		bio_io_error(bio);
		return;
	}
	if (op == REQ_OP_FLUSH || !count) {
		bio_endio(bio);
		return;
	}
	if (op != REQ_OP_READ && op != REQ_OP_WRITE) {
		bio->bi_status = BLK_STS_NOTSUPP;
		bio_endio(bio);
		return;
	}
	if (sector >= da->capacity || count > da->capacity - sector) {
		bio_io_error(bio);
		return;
	}
	write = op == REQ_OP_WRITE;
	first = sector >> da->chunk_shift;
	last = (sector + count - 1) >> da->chunk_shift;

	held = bs_kzalloc(sizeof(*held), GFP_NOIO);
	if (!held)
		goto nomem;
	for (nr = first; nr <= last; nr++)
		if (!bs_chunk_get(da, nr, GFP_NOIO))
			goto nomem_held;

	spin_lock_irqsave(&da->lock, flags);
	if (da->stopping) {
		spin_unlock_irqrestore(&da->lock, flags);
		bs_kfree(held);
		bio_io_error(bio);
		return;
	}
	if (bs_image_must_hold(da, first, last, write)) {
		held->bio = bio;
		held->first = first;
		held->last = last;
		held->image = true;
		held->write = write;
		list_add_tail(&held->link, &da->held);
		da->inflight++;
		spin_unlock_irqrestore(&da->lock, flags);
		return;
	}
	spin_unlock_irqrestore(&da->lock, flags);
	bs_kfree(held);

	for (nr = first; nr <= last; nr++) {
		sector_t cstart = bs_chunk_start(da, nr);
		sector_t cend = cstart + bs_chunk_sectors(da, nr);

		bs_image_submit_part(da, bio, nr, max(sector, cstart),
				     min(sector + count, cend), write);
	}
	bio_endio(bio);
	return;

nomem_held:
	bs_kfree(held);
nomem:
	bio->bi_status = BLK_STS_RESOURCE;
	bio_endio(bio);
}

/* Stop copying: held bios pass, copies in progress finish or cancel. */
void bs_diff_area_stop(struct bs_diff_area *da)
{
	unsigned long flags;

	spin_lock_irqsave(&da->lock, flags);
	da->stopping = true;
	da->inflight++;
	spin_unlock_irqrestore(&da->lock, flags);
	bs_da_release(da);
	bs_da_put(da);
}

void bs_diff_area_wait_idle(struct bs_diff_area *da)
{
	wait_event(da->wq, bs_da_idle(da));
}

int bs_diff_area_init(void)
{
	return bioset_init(&bs_bioset, 64, offsetof(struct bs_clone, bio),
			   BIOSET_NEED_BVECS);
}

void bs_diff_area_exit(void)
{
	bioset_exit(&bs_bioset);
}
