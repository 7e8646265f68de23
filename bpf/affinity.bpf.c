// SPDX-License-Identifier: GPL-2.0
/* Affinity hints: every successful sched_setaffinity() of a user thread, with
 * the mask the kernel actually applied, and the exit of such a thread (so the
 * host can expire its hint). A task iterator, run once by the agent right
 * after attaching, reports the threads that were pinned before the program
 * was loaded (a poller started at boot, before pvrun's agent). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "affinity.h"
#include "events.h"

#define PF_KTHREAD 0x00200000

char LICENSE[] SEC("license") = "GPL";

/* Bits of a cpumask past the last possible CPU are undefined (the kernel
 * leaves them set): the recorded mask is cut to the possible CPUs. */
extern const void __cpu_possible_mask __ksym;

/* The guest agent's own process (its relay threads pin themselves): its
 * threads are never hints. Read-only: the agent sets it before it loads the
 * object (guest-agent/progs.c, set_agent_tgid). */
const volatile __u32 agent_tgid = 0;

/* Records this program could not reserve (its ring buffer full): the agent adds them to the
 * shared ring's lost count, which makes pvrun start over from a snapshot (a lost exit or
 * release would leave a hint no thread holds). Mapped read-only by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pv_lost SEC(".maps");

/* Threads that set their affinity and have not exited: tid → 1. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} hinted SEC(".maps");

static __always_inline void fill_ids(struct pv_affinity_event *e, struct task_struct *p, __u32 kind)
{
	e->ts_ns = bpf_ktime_get_ns();
	e->kind = kind;
	e->tid = BPF_CORE_READ(p, pid);
	e->tgid = BPF_CORE_READ(p, tgid);
	e->_pad = 0;
	__builtin_memset(e->comm, 0, sizeof(e->comm));
	bpf_probe_read_kernel_str(e->comm, sizeof(e->comm), &p->comm);
}

/* A record of `kind` for thread `p` in this CPU's ring buffer, its ids filled
 * and its mask zeroed; NULL (the record is dropped) when there is no room. */
static __always_inline struct pv_affinity_event *reserve_event(struct task_struct *p, __u32 kind)
{
	struct pv_affinity_event *e;
	void *rb = cpu_ringbuf();

	if (!rb)
		return NULL;
	e = bpf_ringbuf_reserve(rb, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&pv_lost, &zero);

		if (lost)
			__sync_fetch_and_add(lost, 1);
		return NULL;
	}
	fill_ids(e, p, kind);
	__builtin_memset(e->mask, 0, sizeof(e->mask));
	return e;
}

/* Report thread p's affinity (cut to the possible CPUs) as a SET record.
 * With only_pinned, a thread that may run on every possible CPU is skipped. */
static __always_inline int report_affinity(struct task_struct *p, bool only_pinned)
{
	struct pv_affinity_event *e;
	__u64 possible[PV_AFFINITY_MASK_WORDS];
	bool narrower = false;
	__u8 one = 1;
	__u32 tid;

	if ((BPF_CORE_READ(p, flags) & PF_KTHREAD) || (agent_tgid && BPF_CORE_READ(p, tgid) == agent_tgid))
		return 0;
	e = reserve_event(p, PV_AFFINITY_SET);
	if (!e)
		return 0;
	bpf_core_read(e->mask, sizeof(e->mask), &p->cpus_mask.bits);
	if (bpf_probe_read_kernel(possible, sizeof(possible), &__cpu_possible_mask) == 0) {
		for (int i = 0; i < PV_AFFINITY_MASK_WORDS; i++) {
			e->mask[i] &= possible[i];
			if (e->mask[i] != possible[i])
				narrower = true;
		}
	}
	if (only_pinned && !narrower) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	tid = e->tid;
	bpf_map_update_elem(&hinted, &tid, &one, BPF_ANY);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("fexit/__sched_setaffinity")
int BPF_PROG(on_setaffinity, struct task_struct *p, const struct cpumask *mask, int ret)
{
	if (ret != 0)
		return 0;
	return report_affinity(p, false);
}

/* The snapshot: every user thread whose affinity is narrower than all CPUs. */
SEC("iter/task")
int snapshot(struct bpf_iter__task *ctx)
{
	struct task_struct *p = ctx->task;

	if (!p)
		return 0;
	return report_affinity(p, true);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	struct pv_affinity_event *e;
	__u32 tid = BPF_CORE_READ(p, pid);

	if (bpf_map_delete_elem(&hinted, &tid) != 0)
		return 0;
	e = reserve_event(p, PV_AFFINITY_EXIT);
	if (!e)
		return 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
