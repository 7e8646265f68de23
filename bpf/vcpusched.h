/* SPDX-License-Identifier: MIT */
/* The host's view of a VM's vCPU threads (docs/critical-sections.md), kept by
 * vcpusched.bpf.c, which runs on the host, not in the guest: one
 * memory-mappable array map holds a struct pv_vcpu_sched per vCPU and a struct
 * pv_cpu_sched per host CPU. pvrun's native library (native/pvsched.c) reads
 * it, writes the feedback flags into the shared memory's slots, and copies it
 * for the TypeScript observer (src/fast/sched.ts mirrors this header;
 * test/fast/sched.test.ts compares every offset). */
#ifndef PVRUN_VCPUSCHED_H
#define PVRUN_VCPUSCHED_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define PV_SCHED_MAX_VCPUS 256 /* = PVSHM_MAX_VCPUS */
#define PV_SCHED_MAX_CPUS 1024 /* host CPUs followed; a thread on a higher one counts as on none */

/* What a vCPU thread is doing on the host. */
#define PV_VS_SLEEPING 0  /* not runnable (or not seen yet) */
#define PV_VS_RUNNING 1   /* on a CPU */
#define PV_VS_PREEMPTED 2 /* switched out while runnable: waits for a CPU */
#define PV_VS_WOKEN 3     /* woken, waits for a CPU it has not had since */

/* What wakes pvrun's thread about a vCPU (pv_vcpu_sched.watched): any change of "preempted"
 * while either bit is set. Waking when it clears matters as much as when it sets: a waiter in
 * the guest parks while the lock holder's vCPU reads "preempted", so a flag left set after the
 * vCPU runs again parks waiters for a holder that runs. */
#define PV_WATCH_CHANGES 1 /* a guest thread on it is inside a section (the observer's look) */
#define PV_WATCH_HOLDER 2  /* it runs a guest thread that holds a cell (pvrun acts on its preemption) */

struct pv_vcpu_sched {
	__u32 seq;          /*  0: changes around every update (a reader retries while it moves) */
	__u32 state;        /*  4: PV_VS_* */
	__s32 cpu;          /*  8: host CPU it runs on, last ran on, or waits for; -1 = unknown */
	__u32 flags;        /* 12: PVSHM_FLAG_VCPU_PREEMPTED | PVSHM_FLAG_PCPU_OVERLOADED, as they should be now */
	__u64 since_ns;     /* 16: host CLOCK_MONOTONIC when the state began */
	__u64 run_ns;       /* 24: time on a CPU, up to since_ns */
	__u64 wait_ns;      /* 32: time runnable but not on a CPU (PREEMPTED or WOKEN), up to since_ns */
	__u64 preemptions;  /* 40: switched out while runnable, for a thread other than pvrun's */
	__u64 flags_ns;     /* 48: when flags last changed */
	__u32 by_self;      /* 56: 1 while preempted by one of pvrun's own threads (not published) */
	__u32 watched;      /* 60: set by pvrun: PV_WATCH_* */
};                          /* 64 */

struct pv_cpu_sched {
	__u32 nr_running;   /*  0: runnable threads on the CPU at its last switch or wakeup */
	__s32 vcpu;         /*  4: the vCPU running there, -1 = none */
	__s32 self_victim;  /*  8: the vCPU one of pvrun's threads preempted there, -1 = none */
	__u32 _pad;         /* 12 */
};                          /* 16 */

struct pv_sched_area {
	struct pv_vcpu_sched vcpu[PV_SCHED_MAX_VCPUS];
	struct pv_cpu_sched cpu[PV_SCHED_MAX_CPUS];
};

#endif
