// SPDX-License-Identifier: GPL-2.0
/*
 * Bio interception with an ftrace hook on submit_bio_noacct (exported,
 * fentry-patched on x86-64). The ftrace callback redirects the call to
 * bs_ftrace_submit() unless the caller is this module itself: the
 * module's own submissions, including the pass-through from the handler,
 * reach the original function.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/blkdev.h>
#include <linux/ftrace.h>
#include <linux/module.h>
#include "common.h"
#include "filter.h"
#include "tracker.h"

static void notrace bs_ftrace_submit(struct bio *bio)
{
	int idx = srcu_read_lock(&bs_srcu);

	if (!bs_tracker_filter(bio))
		submit_bio_noacct(bio);
	srcu_read_unlock(&bs_srcu, idx);
}

static void notrace bs_ftrace_callback(unsigned long ip,
				       unsigned long parent_ip,
				       struct ftrace_ops *ops,
				       struct ftrace_regs *fregs)
{
	if (!within_module(parent_ip, THIS_MODULE))
		ftrace_instruction_pointer_set(fregs,
					       (unsigned long)bs_ftrace_submit);
}

static struct ftrace_ops bs_ftrace_ops = {
	.func = bs_ftrace_callback,
	.flags = FTRACE_OPS_FL_DYNAMIC | FTRACE_OPS_FL_IPMODIFY |
		 FTRACE_OPS_FL_PERMANENT,
};

int bs_filter_register(void)
{
	int ret;

	ret = ftrace_set_filter_ip(&bs_ftrace_ops,
				   (unsigned long)submit_bio_noacct, 0, 0);
	if (ret) {
		pr_err("cannot filter submit_bio_noacct: %d\n", ret);
		return ret;
	}
	ret = register_ftrace_function(&bs_ftrace_ops);
	if (ret) {
		/* -EBUSY: another IPMODIFY user (livepatch, a backup agent). */
		pr_err("cannot hook submit_bio_noacct: %d\n", ret);
		ftrace_free_filter(&bs_ftrace_ops);
		return ret;
	}
	return 0;
}

void bs_filter_unregister(void)
{
	unregister_ftrace_function(&bs_ftrace_ops);
	ftrace_free_filter(&bs_ftrace_ops);
	/* Handlers still inside bs_ftrace_submit() run under bs_srcu. */
	synchronize_srcu(&bs_srcu);
}

void bs_filter_resubmit(struct bio *bio)
{
	submit_bio_noacct(bio);
}
