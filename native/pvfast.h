/* SPDX-License-Identifier: MIT */
/* The binary formats between pvrun (TypeScript: src/fast/format.ts mirrors
 * this header, test/fast/format.test.ts compares every offset) and its native
 * fast path (native/pvfast.c): the table pvrun publishes, what pvf_take
 * reports, the counters, and the library's API. Little-endian, fixed width;
 * specified in docs/fast-path.md. */
#ifndef PVFAST_H
#define PVFAST_H

#include <stddef.h>
#include <stdint.h>

#define PVF_TABLE_MAGIC 0x54465650u /* "PVFT" */
#define PVF_TABLE_VERSION 4
#define PVF_MAX_VCPUS 64    /* vCPUs a table covers */
#define PVF_MAX_HINTED 64   /* hinted guest threads a table covers */
#define PVF_MAX_CPUS 256    /* host CPUs a table's masks name */
#define PVF_MAX_ENTRIES (PVF_MAX_VCPUS + PVF_MAX_HINTED)
#define PVF_MAX_BATCH 16    /* records looked at per kick before leaving the rest to pvrun */
#define PVF_MAX_APPLIED 64  /* changes applied before pvrun has taken them */
#define PVF_NICE_KEEP 0x7fffffff
#define PVF_RECORD_TID 0xffffffffu /* feedback's hint_tid: the matched record's tid */

enum { PVF_NEW_PIN = 1, PVF_RELEASE = 2 };
enum { PVF_CPUS_KEEP = 0, PVF_CPUS_ONE = 1, PVF_CPUS_FLOATING = 2 };
/* What an op expects the thread's CPUs to be before it changes them (pvrun set them last):
 * not checked, one CPU (was_pcpu), the table's base floating set, or the entry's floating set.
 * A thread whose CPUs are otherwise was placed by someone else (an operator's taskset): the op
 * leaves it alone and says so (moved_ops). */
enum { PVF_WAS_ANY = 0, PVF_WAS_ONE = 1, PVF_WAS_BASE = 2, PVF_WAS_ENTRY = 3 };
/* With a float group (pvf_group: the floating vCPU threads in one cpuset): LEAVE moves the
 * thread to the VM's cpuset before its one CPU is set; JOIN widens the thread's mask to every
 * CPU and moves it into the floating cpuset; FLOAT (tid 0, PVF_CPUS_FLOATING) writes the
 * floating set (the entry's, or the base's on a way back) to the floating cpuset's CPUs. */
enum { PVF_GROUP_NONE = 0, PVF_GROUP_LEAVE = 1, PVF_GROUP_JOIN = 2, PVF_GROUP_FLOAT = 3 };
/* The thread's scheduling class (--pv-placement priority: a grant raises its thread rather than
 * moving the floating ones): kept; SCHED_OTHER, set before the CPUs change; SCHED_FIFO 1, set
 * after the thread's one CPU (PVF_CPUS_ONE, in the same op) and only if that succeeded. */
enum { PVF_SCHED_KEEP = 0, PVF_SCHED_NORMAL = 1, PVF_SCHED_FIFO = 2 };
enum { PVF_BASE = 0, PVF_PINNED = 1 };

/* The table as pvrun serializes it (little-endian; docs/fast-path.md). */
struct pvf_table_hdr {
	uint32_t magic, version, nr_vcpus, n_entries, n_hinted, _pad;
	uint64_t based_seq;
	uint64_t base_floating[PVF_MAX_CPUS / 64]; /* the floating CPUs of the state the table starts from */
};
struct pvf_entry_hdr {
	uint32_t kind, key, n_ops, n_feedback;
	uint32_t n_back_ops, n_back_feedback, _pad[2]; /* a new pin's way back to the table's state, when its thread lets go */
	uint64_t floating[PVF_MAX_CPUS / 64];
};
struct pvf_op {
	int32_t tid;
	uint32_t cpus;
	int32_t pcpu;
	int32_t nice;
	uint32_t was;     /* PVF_WAS_*: checked before the CPUs change */
	int32_t was_pcpu; /* with PVF_WAS_ONE */
	uint32_t group;   /* PVF_GROUP_* */
	uint32_t sched;   /* PVF_SCHED_* */
};
struct pvf_feedback {
	uint32_t vcpu, exclusive;
	int32_t pcpu;
	uint32_t hint_tid;
};

/* One change the fast path applied (what pvf_take reports; docs/fast-path.md). */
struct pvf_applied {
	int32_t entry;       /* index in the table */
	uint32_t back;       /* 1: the entry's way back (its thread let go) */
	uint32_t tid;        /* guest thread of the record */
	uint32_t _pad;
	uint64_t seq;        /* ring sequence of the record */
	uint64_t latency_ns; /* records seen → last op applied */
	uint64_t failed_ops; /* bit i: op i failed (its errno in last_errno) */
	int32_t last_errno;
	uint32_t _pad2;
	uint64_t moved_ops;  /* bit i: op i left its thread alone: its CPUs were not what op i expected */
};

/* What pvf_take reports before the list. */
struct pvf_take_hdr {
	uint32_t valid;   /* the table is still current */
	uint32_t phase;   /* PVF_BASE, or PVF_PINNED (a new pin's thread holds its vCPU) */
	uint64_t cursor;  /* records before this sequence are decided */
	uint32_t count;   /* struct pvf_applied that follow */
	uint32_t _pad;
};

/* The fast path's counters (what pvf_stats reports). credit_waits: kicks that waited for
 * the guest budget's credit (pvf_budget) or CPU allowance (pvf_allow) before the ring was looked at;
 * moved: ops that left a thread alone whose CPUs someone else had set (moved_ops). */
struct pvf_stats {
	uint64_t kicks, applied, no_table, not_covered, invalid, pin_errors, demotions, connects, wake_errors, credit_waits, moved;
};

/* ---- the API (loaded with koffi: src/fast/binding.ts) ---- */

/* Map the shared file, connect to the kick socket (retrying until QEMU
 * listens) and start the thread, which changes only threads of process
 * `tgid` (QEMU; 0 for tests whose stand-in threads are processes). A handle
 * >= 0, or -errno. */
int pvf_start(const char *shm_path, const char *kick_path, int tgid);
/* The float group's files (cgroup v1 cpusets, src/pin/cpuset.ts): the VM's cpuset's `tasks`,
 * the floating cpuset's `tasks` and `cpuset.cpus`; all NULL: none (tables with group ops are
 * then refused). 0 or -errno (none is kept then). */
int pvf_group(int h, const char *vm_tasks, const char *float_tasks, const char *float_cpus);
/* The read end of the wake pipe (a byte arrives after each kick); from now on
 * the caller owns it and closes it. */
int pvf_wake_fd(int h);
/* Check a serialized table completely, then make it current: 0, -EINVAL,
 * or -EBUSY while changes are applied that pvrun has not taken yet. */
int pvf_publish(int h, const uint8_t *buf, size_t len);
/* Take the changes applied since the last call (at most `max`, which must be
 * PVF_MAX_APPLIED) with the table's state; `end` also ends the table. The
 * count taken, or -EINVAL. */
int pvf_take(int h, int end, struct pvf_take_hdr *hdr, struct pvf_applied *list, uint32_t max);
/* What kicks cost the thread's credit, which time refills 1:1 up to `burst_ns`: one that
 * finds no new record `empty_ns`, one that finds some `news_ns`, and each change it applies
 * `decision_ns` on top (each at most the burst). 0 or -EINVAL. */
int pvf_budget(int h, uint64_t burst_ns, uint64_t empty_ns, uint64_t news_ns, uint64_t decision_ns);
/* Act on kicks only while this process (all its threads) has used less than `ns` more CPU
 * time than it has now (CLOCK_PROCESS_CPUTIME_ID): pvrun's measured CPU against the guest's
 * share (src/util/cpu-governor.ts), renewed at each of its samples; 0 lets no kick through
 * until the next. A kick past it waits (counted in credit_waits). Until the first call, kicks
 * are not held. 0 or -EINVAL. */
int pvf_allow(int h, uint64_t ns);
/* Look at the ring now, as on a kick, in the caller's thread. 0 or -EINVAL. */
int pvf_scan(int h);
/* The counters. 0 or -EINVAL. */
int pvf_stats(int h, struct pvf_stats *out);
/* Stop the thread and release everything but the wake fd's read end. */
void pvf_stop(int h);

#endif
