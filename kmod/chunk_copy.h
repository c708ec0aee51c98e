/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_CHUNK_COPY_H
#define __BLKSNAP_CHUNK_COPY_H

struct work_struct;

/* Work function of &bs_diff_area.copy_work. */
void bs_copy_queue_work(struct work_struct *work);
void bs_copy_pool_trim(void);

#endif /* __BLKSNAP_CHUNK_COPY_H */
