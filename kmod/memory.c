// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/atomic.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include "memory.h"

static atomic_long_t bs_allocations = ATOMIC_LONG_INIT(0);

void *bs_kzalloc(size_t size, gfp_t gfp)
{
	void *ptr = kzalloc(size, gfp);

	if (ptr)
		atomic_long_inc(&bs_allocations);
	return ptr;
}

void bs_kfree(const void *ptr)
{
	if (!ptr)
		return;
	atomic_long_dec(&bs_allocations);
	kfree(ptr);
}

void *bs_vzalloc(unsigned long size)
{
	void *ptr = vzalloc(size);

	if (ptr)
		atomic_long_inc(&bs_allocations);
	return ptr;
}

void bs_vfree(const void *ptr)
{
	if (!ptr)
		return;
	atomic_long_dec(&bs_allocations);
	vfree(ptr);
}

struct page *bs_alloc_page(gfp_t gfp)
{
	struct page *page = alloc_page(gfp);

	if (page)
		atomic_long_inc(&bs_allocations);
	return page;
}

void bs_free_page(struct page *page)
{
	if (!page)
		return;
	atomic_long_dec(&bs_allocations);
	__free_page(page);
}

struct page *bs_alloc_pages(gfp_t gfp, unsigned int order)
{
	struct page *page = alloc_pages(gfp, order);

	if (page)
		atomic_long_inc(&bs_allocations);
	return page;
}

void bs_free_pages(struct page *page, unsigned int order)
{
	if (!page)
		return;
	atomic_long_dec(&bs_allocations);
	__free_pages(page, order);
}

long bs_memory_outstanding(void)
{
	return atomic_long_read(&bs_allocations);
}
