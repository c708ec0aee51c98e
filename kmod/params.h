/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_PARAMS_H
#define __BLKSNAP_PARAMS_H

/* Module parameters, defined in main.c (see blksnap-uapi.md). */
extern int bs_tracking_block_minimum_shift;
extern int bs_tracking_block_maximum_count;
extern int bs_chunk_minimum_shift;
extern int bs_chunk_maximum_count;
extern int bs_chunk_maximum_in_cache;
extern int bs_free_diff_buffer_pool_size;
extern int bs_diff_storage_minimum;
extern int bs_copy_ahead_chunks;

#endif /* __BLKSNAP_PARAMS_H */
