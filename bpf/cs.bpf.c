// SPDX-License-Identifier: GPL-2.0
/* Critical sections in the guest kernel: each wait for a contended kernel lock
 * (the lock:contention_begin/end tracepoints, Linux 5.19 and later), with the
 * owner where the lock records one (a mutex; an rwsem held by a writer). One
 * record when a wait begins and one when it ends; the guest agent keeps the
 * vCPU's slot up to date from them. And the thread each vCPU runs, from
 * sched_switch: one store in a memory-mappable map per switch, no record; the
 * agent copies it into the slots (docs/critical-sections.md). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "cs.h"
#include "events.h"
#include "pvrun_shm.h"

char LICENSE[] SEC("license") = "GPL";

/* include/trace/events/lock.h */
#define LCB_F_SPIN (1U << 0)
#define LCB_F_READ (1U << 1)
#define LCB_F_WRITE (1U << 2)
#define LCB_F_RT (1U << 3)
#define LCB_F_PERCPU (1U << 4)
#define LCB_F_MUTEX (1U << 5)
/* The low bits of a mutex's or an rwsem's owner word are flags. */
#define OWNER_FLAGS 0x7UL
#define RWSEM_READER_OWNED 0x1UL

/* The wait a task is in: when it began and on which CPU (a mutex waiter may
 * sleep and end its wait on another CPU). */
struct wait {
	__u64 since;
	__u32 cpu;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct wait);
} waits SEC(".maps");

/* A u64 per vCPU that the agent maps (guest-agent/progs.c, map_u64s: it takes this shape
 * only). 64-bit values: a mapped array keeps its elements 8 bytes apart anyway. */
struct vcpu_u64s {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, PVSHM_MAX_VCPUS);
	__type(key, __u32);
	__type(value, __u64);
};

/* The thread each vCPU runs now (0: its idle task), by vCPU. */
struct vcpu_u64s current SEC(".maps");

/* When a record may next wake this CPU's relay, by CPU (bpf_ktime_get_ns): the program
 * moves it PV_CS_RELAY_MS on when it wakes the relay, and the agent when the relay drains
 * (PV_CS_RELAY_MS in cs.h). */
struct vcpu_u64s relay_after SEC(".maps");

/* The guest agent's process: its own waits are not reported (they would wake it). */
const volatile __u32 agent_tgid = 0;

static __always_inline struct pv_cs_event *reserve(__u32 kind, void *lock, __u32 flags)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct task_struct *me = (struct task_struct *)bpf_get_current_task_btf();
	struct pv_cs_event *e;
	void *rb;

	if (agent_tgid && me->tgid == agent_tgid)
		return NULL;
	rb = cpu_ringbuf();
	if (!rb)
		return NULL;
	e = bpf_ringbuf_reserve(rb, sizeof(*e), 0);
	if (!e)
		return NULL;
	e->ts_ns = bpf_ktime_get_ns();
	e->lock = (__u64)lock;
	e->wait_ns = 0;
	e->kind = kind;
	e->cpu = cpu;
	e->tid = me->pid;
	e->owner_tid = 0;
	e->owner_cpu = -1;
	e->flags = flags;
	return e;
}

/* Hand the record to this CPU's relay, waking it only when it has not been woken, nor
 * drained, within the last PV_CS_RELAY_MS: it drains the others at its own next look. The end
 * of a wait on the CPU where it began does not wake it (its task has just taken the lock: a
 * relay that ran now would preempt the lock's new holder); that relay looks every
 * PV_CS_RELAY_MS while its slot shows the wait, for up to PV_CS_LONG_WAIT_MS, and the end of
 * a longer wait wakes it. */
static __always_inline void submit(struct pv_cs_event *e)
{
	__u32 cpu = bpf_get_smp_processor_id();
	__u64 *after = bpf_map_lookup_elem(&relay_after, &cpu);

	if ((e->kind == PV_CS_LOCK_END && e->cpu == cpu && e->wait_ns < PV_CS_LONG_WAIT_MS * 1000000ull) ||
	    (after && e->ts_ns < *after)) {
		bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
		return;
	}
	if (after)
		*after = e->ts_ns + PV_CS_RELAY_MS * 1000000ull;
	bpf_ringbuf_submit(e, 0);
}

/* The task a mutex's or a writer-held rwsem's owner word names, or NULL. */
static __always_inline struct task_struct *owner_of(void *lock, __u32 flags)
{
	unsigned long word;

	if (flags & LCB_F_MUTEX) {
		word = BPF_CORE_READ((struct mutex *)lock, owner.counter);
	} else if ((flags & (LCB_F_READ | LCB_F_WRITE)) && !(flags & (LCB_F_SPIN | LCB_F_RT | LCB_F_PERCPU))) {
		word = BPF_CORE_READ((struct rw_semaphore *)lock, owner.counter);
		if (word & RWSEM_READER_OWNED)
			return NULL;
	} else {
		return NULL;
	}
	return (struct task_struct *)(word & ~OWNER_FLAGS);
}

SEC("tp_btf/contention_begin")
int BPF_PROG(cs_begin, void *lock, unsigned int flags)
{
	struct task_struct *me = (struct task_struct *)bpf_get_current_task_btf(), *owner;
	struct wait *w = bpf_task_storage_get(&waits, me, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	struct pv_cs_event *e;

	/* A mutex reports a second begin when its waiter stops spinning and sleeps: one wait. */
	if (!w || w->since)
		return 0;
	e = reserve(PV_CS_LOCK_BEGIN, lock, flags);
	if (!e)
		return 0;
	w->since = e->ts_ns;
	w->cpu = e->cpu;
	owner = owner_of(lock, flags);
	if (owner) {
		e->owner_tid = BPF_CORE_READ(owner, pid);
		if (bpf_core_field_exists(owner->thread_info.cpu))
			e->owner_cpu = BPF_CORE_READ(owner, thread_info.cpu);
	}
	submit(e);
	return 0;
}

SEC("tp_btf/contention_end")
int BPF_PROG(cs_end, void *lock, int ret)
{
	struct task_struct *me = (struct task_struct *)bpf_get_current_task_btf();
	struct wait *w = bpf_task_storage_get(&waits, me, 0, 0);
	struct pv_cs_event *e;

	if (!w || !w->since)
		return 0;
	e = reserve(PV_CS_LOCK_END, lock, 0);
	if (e) {
		if (e->ts_ns > w->since)
			e->wait_ns = e->ts_ns - w->since;
		e->cpu = w->cpu; /* the slot whose wait this ends */
		submit(e);
	}
	w->since = 0;
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(cs_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 cpu = bpf_get_smp_processor_id();
	__u64 *tid = bpf_map_lookup_elem(&current, &cpu);

	/* The agent's own threads (its relays, its copy of this map) are not what the vCPU runs
	 * for the guest: the slot keeps the thread they interrupted. */
	if (tid && !(agent_tgid && next->tgid == agent_tgid))
		*tid = next->pid;
	return 0;
}
