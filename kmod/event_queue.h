/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_EVENT_QUEUE_H
#define __BLKSNAP_EVENT_QUEUE_H

#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/ktime.h>

/**
 * struct bs_event - One queued snapshot event.
 * @link: Entry in &bs_event_queue.list.
 * @time: When it was queued (ktime_get_ns()).
 * @code: &enum blk_snap_event_codes.
 * @size: Number of bytes in @data.
 * @data: Event body.
 */
struct bs_event {
	struct list_head link;
	s64 time;
	int code;
	size_t size;
	u8 data[];
};

/**
 * struct bs_event_queue - Events of one snapshot, read by WAIT_EVENT.
 * @lock: Protects @list and @closed.
 * @list: Pending events, oldest first.
 * @closed: Set when the snapshot is destroyed: waiters return.
 * @wq: Waiters.
 */
struct bs_event_queue {
	spinlock_t lock;
	struct list_head list;
	bool closed;
	wait_queue_head_t wq;
};

void bs_event_queue_init(struct bs_event_queue *eq);
void bs_event_queue_done(struct bs_event_queue *eq);
void bs_event_queue_close(struct bs_event_queue *eq);
int bs_event_push(struct bs_event_queue *eq, int code, const void *data,
		  size_t size, gfp_t gfp);
struct bs_event *bs_event_wait(struct bs_event_queue *eq,
			       unsigned long timeout_ms);
void bs_event_free(struct bs_event *ev);

#endif /* __BLKSNAP_EVENT_QUEUE_H */
