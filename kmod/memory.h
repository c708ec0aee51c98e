/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_MEMORY_H
#define __BLKSNAP_MEMORY_H

#include <linux/types.h>
#include <linux/gfp.h>

/*
 * Every allocation the module makes goes through these helpers, so that
 * module unload can report anything left behind (Debian's kernel has no
 * kmemleak).
 */
void *bs_kzalloc(size_t size, gfp_t gfp);
void bs_kfree(const void *ptr);
void *bs_vzalloc(unsigned long size);
void bs_vfree(const void *ptr);
struct page *bs_alloc_page(gfp_t gfp);
void bs_free_page(struct page *page);
struct page *bs_alloc_pages(gfp_t gfp, unsigned int order);
void bs_free_pages(struct page *page, unsigned int order);
long bs_memory_outstanding(void);

#endif /* __BLKSNAP_MEMORY_H */
