/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_CTRL_H
#define __BLKSNAP_CTRL_H

int bs_ctrl_init(void);
void bs_ctrl_exit(void);

#endif /* __BLKSNAP_CTRL_H */
