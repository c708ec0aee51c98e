// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/err.h>
#include <linux/mm.h>
#include <linux/uaccess.h>
#include "cbt_map.h"
#include "memory.h"
#include "params.h"

static unsigned int bs_cbt_block_shift(sector_t capacity)
{
	unsigned long long bytes = (unsigned long long)capacity << SECTOR_SHIFT;
	unsigned long long max_count = max(bs_tracking_block_maximum_count, 1);
	unsigned int shift = clamp(bs_tracking_block_minimum_shift,
				   SECTOR_SHIFT, 30);

	/* Grow one step at a time: the finest block that fits the limit. */
	while (shift < 40 && DIV_ROUND_UP_ULL(bytes, 1ULL << shift) > max_count)
		shift++;
	return shift;
}

struct bs_cbt_map *bs_cbt_map_create(sector_t capacity)
{
	struct bs_cbt_map *map;

	map = bs_kzalloc(sizeof(*map), GFP_KERNEL);
	if (!map)
		return ERR_PTR(-ENOMEM);
	spin_lock_init(&map->lock);
	map->capacity = capacity;
	map->blk_shift = bs_cbt_block_shift(capacity);
	map->blk_count = DIV_ROUND_UP_ULL((u64)capacity << SECTOR_SHIFT,
					  1ULL << map->blk_shift);
	if (!map->blk_count)
		map->blk_count = 1;
	map->write_map = bs_vzalloc(map->blk_count);
	if (!map->write_map)
		goto fail_map;
	map->read_map = bs_vzalloc(map->blk_count);
	if (!map->read_map)
		goto fail_read;
	map->snap_active = 1;
	map->snap_taken = 0;
	uuid_gen(&map->generation);
	return map;

fail_read:
	bs_vfree(map->write_map);
fail_map:
	bs_kfree(map);
	return ERR_PTR(-ENOMEM);
}

void bs_cbt_map_destroy(struct bs_cbt_map *map)
{
	if (!map)
		return;
	bs_vfree(map->read_map);
	bs_vfree(map->write_map);
	bs_kfree(map);
}

/* Mark [sector, sector + count) written; callable from the bio hook. */
void bs_cbt_map_set(struct bs_cbt_map *map, sector_t sector, sector_t count)
{
	unsigned long first, last, blk;
	unsigned long flags;
	unsigned int shift = map->blk_shift - SECTOR_SHIFT;

	if (!count || sector >= map->capacity)
		return;
	if (count > map->capacity - sector)
		count = map->capacity - sector;
	first = sector >> shift;
	last = (sector + count - 1) >> shift;

	spin_lock_irqsave(&map->lock, flags);
	for (blk = first; blk <= last && blk < map->blk_count; blk++)
		map->write_map[blk] = map->snap_active;
	spin_unlock_irqrestore(&map->lock, flags);
}

/*
 * The instant of a snapshot: freeze the active map into the read map and
 * move on to the next snap number. When the number would pass 255 the map
 * restarts with a new generation id, which tells user space to read all.
 */
void bs_cbt_map_switch(struct bs_cbt_map *map)
{
	unsigned long flags;

	spin_lock_irqsave(&map->lock, flags);
	if (map->snap_active == U8_MAX) {
		memset(map->write_map, 0, map->blk_count);
		uuid_gen(&map->generation);
		map->snap_active = 1;
	}
	memcpy(map->read_map, map->write_map, map->blk_count);
	map->snap_taken = map->snap_active;
	map->snap_active++;
	spin_unlock_irqrestore(&map->lock, flags);
}

/* Copy part of the frozen map to user space; returns the bytes copied. */
long bs_cbt_map_read(struct bs_cbt_map *map, unsigned int offset,
		     unsigned int length, u8 __user *buf)
{
	unsigned long done = 0;
	unsigned long flags;
	u8 *bounce;

	if (offset >= map->blk_count)
		return -EINVAL;
	length = min_t(unsigned long, length, map->blk_count - offset);

	bounce = (u8 *)bs_kzalloc(PAGE_SIZE, GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;
	while (done < length) {
		unsigned long part = min_t(unsigned long, length - done,
					   PAGE_SIZE);

		spin_lock_irqsave(&map->lock, flags);
		memcpy(bounce, map->read_map + offset + done, part);
		spin_unlock_irqrestore(&map->lock, flags);
		if (copy_to_user(buf + done, bounce, part)) {
			bs_kfree(bounce);
			return -EFAULT;
		}
		done += part;
	}
	bs_kfree(bounce);
	return done;
}
