/* SPDX-License-Identifier: MIT */
/* Critical sections in the guest kernel (docs/critical-sections.md): the
 * record cs.bpf.c writes for each kernel lock wait that begins or ends. The
 * guest agent applies it to the vCPU's slot (the slot's guest part in
 * pvrun_shm.h); it does not go into the ring. */
#ifndef PVRUN_CS_H
#define PVRUN_CS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define PV_CS_LOCK_BEGIN 1 /* a task on this vCPU starts waiting for a contended kernel lock */
#define PV_CS_LOCK_END 2   /* it stopped waiting (took the lock, or gave up) */

/* A record wakes its CPU's relay at most once per PV_CS_RELAY_MS, and the end of a wait on
 * the CPU where it began does only after PV_CS_LONG_WAIT_MS; the relay picks up the records in
 * between on its own, PV_CS_RELAY_MS after its last drain, and as often while its slot shows a
 * wait younger than PV_CS_LONG_WAIT_MS. The host reads the slots once per 10 ms look, so the
 * slots are as fresh for it, and a lock-bound guest pays a wake-up (two context switches,
 * under TCG two flushes of the vCPU's TLB) per CPU and period instead of one per wait, none at
 * a lock's hand-over (docs/critical-sections.md). */
#define PV_CS_RELAY_MS 10
#define PV_CS_LONG_WAIT_MS 1000

struct pv_cs_event {
	__u64 ts_ns;     /*  0: guest CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 lock;      /*  8: the lock's guest kernel address */
	__u64 wait_ns;   /* 16: END: how long the wait lasted (0 if its BEGIN was not seen) */
	__u32 kind;      /* 24: PV_CS_LOCK_BEGIN / _END */
	__u32 cpu;       /* 28: the vCPU where the wait began (an END may come from another) */
	__u32 tid;       /* 32: the waiting task */
	__u32 owner_tid; /* 36: BEGIN: the owner, for a mutex or a writer-held rwsem; 0 = unknown */
	__s32 owner_cpu; /* 40: BEGIN: the owner's vCPU when last scheduled; -1 = unknown */
	__u32 flags;     /* 44: the tracepoint's LCB_F_* flags (spin, read, write, rt, percpu, mutex) */
};                       /* 48 */

#endif
