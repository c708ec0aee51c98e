// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/err.h>
#include <linux/jiffies.h>
#include <linux/sched/signal.h>
#include <linux/string.h>
#include "event_queue.h"
#include "memory.h"

void bs_event_queue_init(struct bs_event_queue *eq)
{
	spin_lock_init(&eq->lock);
	INIT_LIST_HEAD(&eq->list);
	eq->closed = false;
	init_waitqueue_head(&eq->wq);
}

/* Free every pending event; nobody may wait on @eq any more. */
void bs_event_queue_done(struct bs_event_queue *eq)
{
	struct bs_event *ev, *tmp;

	list_for_each_entry_safe(ev, tmp, &eq->list, link) {
		list_del(&ev->link);
		bs_event_free(ev);
	}
}

void bs_event_queue_close(struct bs_event_queue *eq)
{
	spin_lock(&eq->lock);
	eq->closed = true;
	spin_unlock(&eq->lock);
	wake_up_all(&eq->wq);
}

int bs_event_push(struct bs_event_queue *eq, int code, const void *data,
		  size_t size, gfp_t gfp)
{
	struct bs_event *ev;

	ev = bs_kzalloc(sizeof(*ev) + size, gfp);
	if (!ev)
		return -ENOMEM;
	ev->time = ktime_get_ns();
	ev->code = code;
	ev->size = size;
	memcpy(ev->data, data, size);

	spin_lock(&eq->lock);
	list_add_tail(&ev->link, &eq->list);
	spin_unlock(&eq->lock);
	wake_up(&eq->wq);
	return 0;
}

static bool bs_event_ready(struct bs_event_queue *eq)
{
	bool ready;

	spin_lock(&eq->lock);
	ready = !list_empty(&eq->list) || eq->closed;
	spin_unlock(&eq->lock);
	return ready;
}

/*
 * Wait up to @timeout_ms for the oldest event and dequeue it.
 * Return: the event, ERR_PTR(-ENOENT) on timeout, ERR_PTR(-EINTR) on a
 * signal, ERR_PTR(-ESRCH) when the snapshot went away.
 */
struct bs_event *bs_event_wait(struct bs_event_queue *eq,
			       unsigned long timeout_ms)
{
	struct bs_event *ev = NULL;
	long ret;

	ret = wait_event_interruptible_timeout(eq->wq, bs_event_ready(eq),
					       msecs_to_jiffies(timeout_ms));
	if (ret < 0)
		return ERR_PTR(-EINTR);

	spin_lock(&eq->lock);
	ev = list_first_entry_or_null(&eq->list, struct bs_event, link);
	if (ev)
		list_del(&ev->link);
	else if (eq->closed)
		ev = ERR_PTR(-ESRCH);
	else
		ev = ERR_PTR(-ENOENT);
	spin_unlock(&eq->lock);
	return ev;
}

void bs_event_free(struct bs_event *ev)
{
	bs_kfree(ev);
}
