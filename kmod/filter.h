/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_FILTER_H
#define __BLKSNAP_FILTER_H

struct bio;

/*
 * Interception of bio submission. The backend calls bs_tracker_filter()
 * for every bio entering the block layer, except the module's own; when
 * it returns false the bio continues as if nothing happened.
 *
 * filter_ftrace.c serves stock kernels (an ftrace hook on
 * submit_bio_noacct); a kernel with a block-filter hook gets its own file
 * implementing these three calls.
 */
int bs_filter_register(void);
void bs_filter_unregister(void);
/* Submit a bio the filter took earlier, past the filter. */
void bs_filter_resubmit(struct bio *bio);

#endif /* __BLKSNAP_FILTER_H */
