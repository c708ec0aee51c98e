/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_CBT_MAP_H
#define __BLKSNAP_CBT_MAP_H

#include <linux/blk_types.h>
#include <linux/spinlock.h>
#include <linux/uuid.h>

/**
 * struct bs_cbt_map - Change-block-tracking map of one tracked device.
 * @lock: Protects every field below against the bio hook.
 * @capacity: Device size in sectors.
 * @blk_shift: Tracking block size is 1 << @blk_shift bytes.
 * @blk_count: Number of tracking blocks (bytes of each map).
 * @write_map: Active map: one byte per block, the snap number current
 *	when the block was last written.
 * @read_map: Copy of @write_map frozen when the last snapshot was taken.
 * @snap_active: Number written into @write_map (last taken + 1).
 * @snap_taken: Number of the last snapshot taken; 0 before the first.
 * @generation: Changes when the map restarts; user space must then read
 *	the whole device.
 */
struct bs_cbt_map {
	spinlock_t lock;
	sector_t capacity;
	unsigned int blk_shift;
	unsigned long blk_count;
	u8 *write_map;
	u8 *read_map;
	u8 snap_active;
	u8 snap_taken;
	uuid_t generation;
};

struct bs_cbt_map *bs_cbt_map_create(sector_t capacity);
void bs_cbt_map_destroy(struct bs_cbt_map *map);
void bs_cbt_map_set(struct bs_cbt_map *map, sector_t sector, sector_t count);
void bs_cbt_map_switch(struct bs_cbt_map *map);
long bs_cbt_map_read(struct bs_cbt_map *map, unsigned int offset,
		     unsigned int length, u8 __user *buf);

#endif /* __BLKSNAP_CBT_MAP_H */
