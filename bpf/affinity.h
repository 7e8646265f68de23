/* SPDX-License-Identifier: MIT */
/* Records of the affinity hint program (affinity.bpf.c), shared with the
 * guest agent. Fixed-width fields, explicit padding: decodable by offset. */
#ifndef PVRUN_AFFINITY_H
#define PVRUN_AFFINITY_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define PV_AFFINITY_MASK_WORDS 4 /* masks cover vCPUs 0..255 */
#define PV_COMM_LEN 16

enum pv_affinity_kind {
	PV_AFFINITY_SET = 1,  /* a user thread's CPU affinity changed */
	PV_AFFINITY_EXIT = 2, /* a thread that had set its affinity exited */
};

struct pv_affinity_event {
	__u64 ts_ns;                           /*  0: guest CLOCK_MONOTONIC */
	__u32 kind;                            /*  8: enum pv_affinity_kind */
	__u32 tid;                             /* 12 */
	__u32 tgid;                            /* 16 */
	__u32 _pad;                            /* 20 */
	char comm[PV_COMM_LEN];                /* 24 */
	__u64 mask[PV_AFFINITY_MASK_WORDS];    /* 40: bit n = vCPU n (zero for EXIT) */
};                                             /* 72 bytes */

#endif
