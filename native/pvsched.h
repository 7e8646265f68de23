/* SPDX-License-Identifier: MIT */
/* The host's view of a VM's vCPU threads from a host BPF program
 * (bpf/vcpusched.bpf.c; its map's format is bpf/vcpusched.h): the API of
 * native/pvsched.c, part of libpvfast.so, and its counters. The thread it
 * starts writes the feedback flags into the vCPU slots of the shared memory
 * when the program says they changed (docs/critical-sections.md).
 * src/fast/sched.ts mirrors this header; test/fast/sched.test.ts compares it. */
#ifndef PVSCHED_H
#define PVSCHED_H

#include <stdint.h>
#include "../bpf/vcpusched.h"
#include "cspolicy.h"

#define PVS_MAX_INSTANCES 8

/* What pvs_stats reports. */
struct pvs_stats {
	uint64_t wakeups;      /* times the thread woke for the program's notices */
	uint64_t notices;      /* notices read (one per vCPU whose flags changed) */
	uint64_t writes;       /* slot flag words written */
	uint64_t lat_n;        /* writes after a wake-up: their delay from the switch that caused them */
	uint64_t lat_sum_ns;   /* (the program's clock at the switch to the slot's write) */
	uint64_t lat_max_ns;
	uint64_t thread_cpu_ns; /* the thread's own CPU time */
	uint64_t prog_run_ns;  /* the program's run time on the host's CPUs (kernel BPF stats; 0 if unavailable) */
	uint64_t prog_runs;    /* its runs */
	uint64_t demotions;    /* the thread used up its real-time budget (rt.h) */
};

/* What acting on critical sections did (pvs_boosts). */
struct pvs_boost_stats {
	uint64_t passes;     /* policy passes */
	uint64_t act_n;      /* boosts decided at a preemption's first sight: their delay from the preemption to the thread's new policy */
	uint64_t act_sum_ns;
	uint64_t act_max_ns;
	uint64_t errors;     /* a thread's policy could not be changed (acting then stops) */
	uint32_t last_error; /* its errno */
	uint32_t _pad;
};

/* Load the program (the object at obj_path), map the shared file, and start
 * the thread. A handle >= 0, or -errno (-EPERM: this process may not load
 * BPF; -ENOENT: no such object or hook). */
int pvs_start(const char *obj_path, const char *shm_path);
/* vCPU i is the host thread tids[i] (0: none), for i < n <= PV_SCHED_MAX_VCPUS;
 * replaces the previous set (after a hot-plug). 0 or -errno. */
int pvs_set_vcpus(int h, const int32_t *tids, uint32_t n);
/* Bring the slots' flags to the program's now, in the caller's thread: pvrun
 * calls it at each look, for the changes that wake nobody ("overloaded"
 * alone). Acting, it also chooses whose preemptions wake the thread: the vCPUs
 * that run a guest thread holding a cell. 0 or -EINVAL. */
int pvs_sync(int h);
/* Watch vCPU i (a change of "preempted" wakes the thread at once) where bit i
 * of `mask` is set; the others' flags reach the slots at the next pvs_sync.
 * `words` 64-bit words. 0 or -EINVAL. */
int pvs_watch(int h, const uint64_t *mask, uint32_t words);
/* Copy vCPUs 0..n-1, each as one consistent struct pv_vcpu_sched. n or -EINVAL. */
int pvs_read(int h, struct pv_vcpu_sched *out, uint32_t n);
/* The counters. 0 or -EINVAL. */
int pvs_stats(int h, struct pvs_stats *out);
/* Act on critical sections with `config` (cspolicy.h; max_ns and payback_pct 0:
 * not at all, and every thread pvrun changed goes back). 0 or -EINVAL. */
int pvs_boost(int h, const struct pvb_config *config);
/* The acting counters and vCPUs 0..n-1's policy states. n or -EINVAL. */
int pvs_boosts(int h, struct pvs_boost_stats *stats, struct pvb_vcpu *out, uint32_t n);
/* cspolicy.h's pvb_step, for tests. */
uint32_t pvs_policy_step(const struct pvb_config *config, struct pvb_vcpu *state, const struct pvb_input *input);
/* Stop the thread, clear the flags it wrote, detach the program. */
void pvs_stop(int h);

#endif
