// SPDX-License-Identifier: GPL-2.0
/* The host's view of one VM's vCPU threads, exact to the context switch: runs
 * on the host (loaded by native/pvsched.c), not in the guest. For each vCPU
 * thread it keeps its state (running, preempted, woken, sleeping), its time on
 * and off a CPU, and the feedback flags the guest should see now: "your vCPU
 * is preempted" (runnable but not on a CPU: switched out while runnable, or
 * woken and still waiting) and "your CPU is overloaded" (other threads wait
 * for the CPU it runs on, or it waits itself). When a
 * vCPU that pvrun watches (a guest thread on it is inside a critical section)
 * becomes preempted or runs again, it wakes pvrun's native thread, which
 * writes the flags into the vCPU's slot at once. Every other change (a vCPU
 * with no section preempted for a moment by one of QEMU's threads; another
 * thread waking on a vCPU's CPU: thousands a second under load) wakes nobody
 * and reaches the slot with the next wake-up or pvrun's next look, within
 * 10 ms (docs/critical-sections.md).
 *
 * pvrun's own threads are invisible: the native thread that wakes to write
 * the flags preempts some thread, often a vCPU; counting that would wake it
 * again, for ever. A vCPU preempted by one of pvrun's threads keeps its flags
 * until that thread leaves the CPU; if another thread then takes the CPU, the
 * preemption becomes a real one. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "pvrun_shm.h"
#include "vcpusched.h"

char LICENSE[] SEC("license") = "GPL";

#define TASK_RUNNING 0
#define NONE -1

/* pvrun's process: its threads are invisible (set before load). */
const volatile __u32 self_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pv_sched_area);
} area SEC(".maps");

/* Host thread id -> vCPU index, written by pvrun. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PV_SCHED_MAX_VCPUS);
	__type(key, __u32);
	__type(value, __u32);
} vcpu_of SEC(".maps");

/* Wakes pvrun's native thread; the record is a vCPU index, the state is in `area`. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} notify SEC(".maps");

static __always_inline struct pv_sched_area *the_area(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&area, &zero);
}

/* The vCPU that host thread `p` runs, or NULL. */
static __always_inline struct pv_vcpu_sched *vcpu_for(struct pv_sched_area *a, struct task_struct *p, __s32 *index)
{
	__u32 tid = p->pid;
	__u32 *v = bpf_map_lookup_elem(&vcpu_of, &tid);

	if (!v || *v >= PV_SCHED_MAX_VCPUS)
		return NULL;
	*index = (__s32)*v;
	return &a->vcpu[*v];
}

static __always_inline struct pv_vcpu_sched *vcpu_at(struct pv_sched_area *a, __s32 index)
{
	if (index < 0 || index >= PV_SCHED_MAX_VCPUS)
		return NULL;
	return &a->vcpu[index];
}

static __always_inline struct pv_cpu_sched *cpu_at(struct pv_sched_area *a, __s32 cpu)
{
	if (cpu < 0 || cpu >= PV_SCHED_MAX_CPUS)
		return NULL;
	return &a->cpu[cpu];
}

static __always_inline int is_self(struct task_struct *p)
{
	return self_tgid && p->tgid == self_tgid;
}

/* Runnable threads on the CPU whose queue task `p` is on. Through the task's
 * CFS queue (every task has one, idle and real-time ones too): the per-CPU
 * `runqueues` symbol is not resolvable on kernels built without
 * CONFIG_KALLSYMS_ALL. */
static __always_inline __u32 nr_running(struct task_struct *p)
{
	struct cfs_rq *cfs = BPF_CORE_READ(p, se.cfs_rq);
	struct rq *rq;

	if (!cfs)
		return 0;
	if (bpf_core_field_exists(cfs->rq))
		rq = BPF_CORE_READ(cfs, rq);
	else /* without group scheduling, the one CFS queue is inside the CPU's queue */
		rq = (struct rq *)((char *)cfs - bpf_core_field_offset(struct rq, cfs));
	return rq ? BPF_CORE_READ(rq, nr_running) : 0;
}

/* Close the state in progress into the totals, and begin `state`. */
static __always_inline void set_state(struct pv_vcpu_sched *v, __u32 state, __s32 cpu, __u64 now)
{
	__u64 spent = now > v->since_ns ? now - v->since_ns : 0;

	if (v->since_ns) {
		if (v->state == PV_VS_RUNNING)
			v->run_ns += spent;
		else if (v->state == PV_VS_PREEMPTED || v->state == PV_VS_WOKEN)
			v->wait_ns += spent;
	}
	v->state = state;
	v->cpu = cpu;
	v->since_ns = now;
}

/* The flags vCPU `v` should show, from its state and its CPU's queue. A vCPU
 * that one of pvrun's threads preempted keeps what it showed. */
static __always_inline __u32 flags_of(struct pv_sched_area *a, struct pv_vcpu_sched *v)
{
	struct pv_cpu_sched *c;

	if (v->by_self)
		return v->flags;
	switch (v->state) {
	case PV_VS_PREEMPTED:
	case PV_VS_WOKEN: /* a vCPU thread woken (from the BQL, a halt) that cannot run is as stuck */
		return PVSHM_FLAG_VCPU_PREEMPTED | PVSHM_FLAG_PCPU_OVERLOADED;
	case PV_VS_RUNNING:
		c = cpu_at(a, v->cpu);
		return c && c->nr_running > 1 ? PVSHM_FLAG_PCPU_OVERLOADED : 0;
	}
	return 0;
}

/* Recompute vCPU `index`'s flags; wake pvrun if "preempted" changed on a watched vCPU. */
static __always_inline void publish(struct pv_sched_area *a, __s32 index, __u64 now)
{
	struct pv_vcpu_sched *v = vcpu_at(a, index);
	__u32 f, i, old;

	if (!v)
		return;
	f = flags_of(a, v);
	old = v->flags;
	if (f == old)
		return;
	v->flags = f;
	v->flags_ns = now;
	if (((f ^ old) & PVSHM_FLAG_VCPU_PREEMPTED) && (v->watched & (PV_WATCH_CHANGES | PV_WATCH_HOLDER))) {
		i = (__u32)index;
		bpf_ringbuf_output(&notify, &i, sizeof(i), 0);
	}
}

/* Around each update of a vCPU's entry: a reader retries while `seq` moves. */
static __always_inline void bump_seq(struct pv_vcpu_sched *v)
{
	if (v)
		__sync_fetch_and_add(&v->seq, 1);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(vs_switch, bool preempt, struct task_struct *prev, struct task_struct *next, unsigned int prev_state)
{
	struct pv_sched_area *a = the_area();
	__s32 cpu = (__s32)bpf_get_smp_processor_id(), pi = NONE, ni = NONE, victim = NONE;
	struct pv_vcpu_sched *p, *n, *vv = NULL;
	struct pv_cpu_sched *c;
	__u64 now = bpf_ktime_get_ns();

	if (!a)
		return 0;
	c = cpu_at(a, cpu);
	if (!c)
		return 0;
	p = vcpu_for(a, prev, &pi);
	n = vcpu_for(a, next, &ni);
	/* Most switches on a host are between threads of no interest: no vCPU ran
	 * here before (it would be `prev`) or runs now. */
	if (pi == NONE && ni == NONE && !is_self(prev))
		return 0;
	c->nr_running = nr_running(next);
	if (p) {
		bump_seq(p);
		if (prev_state == TASK_RUNNING) {
			set_state(p, PV_VS_PREEMPTED, cpu, now);
			p->by_self = is_self(next);
			if (!p->by_self)
				p->preemptions++;
		} else {
			set_state(p, PV_VS_SLEEPING, cpu, now);
			p->by_self = 0;
		}
		bump_seq(p);
	}
	if (n) {
		bump_seq(n);
		set_state(n, PV_VS_RUNNING, cpu, now);
		n->by_self = 0;
		bump_seq(n);
	}
	/* One of pvrun's threads leaves the CPU: the vCPU it preempted, if another
	 * thread takes the CPU, is preempted for real from now on. */
	if (is_self(prev)) {
		victim = c->self_victim;
		c->self_victim = NONE;
		vv = victim != ni ? vcpu_at(a, victim) : NULL;
		if (vv && vv->by_self && vv->state == PV_VS_PREEMPTED) {
			bump_seq(vv);
			vv->by_self = 0;
			vv->preemptions++;
			bump_seq(vv);
		} else {
			victim = NONE;
		}
	}
	if (p && p->by_self)
		c->self_victim = pi;
	c->vcpu = ni;
	publish(a, pi, now);
	publish(a, ni, now);
	publish(a, victim, now);
	return 0;
}

/* A thread becomes runnable on `cpu`: a vCPU woken waits for it; the vCPU
 * running there now has company. */
static __always_inline void woken(struct task_struct *p)
{
	struct pv_sched_area *a;
	struct pv_vcpu_sched *v;
	struct pv_cpu_sched *c;
	__s32 cpu, vi = NONE;
	__u64 now;

	if (is_self(p))
		return;
	a = the_area();
	if (!a)
		return;
	cpu = (__s32)BPF_CORE_READ(p, thread_info.cpu);
	c = cpu_at(a, cpu);
	if (!c)
		return;
	v = vcpu_for(a, p, &vi);
	if (!v && c->vcpu < 0)
		return; /* no vCPU involved, here or woken */
	now = bpf_ktime_get_ns();
	c->nr_running = nr_running(p);
	if (v && v->state == PV_VS_SLEEPING) {
		bump_seq(v);
		set_state(v, PV_VS_WOKEN, cpu, now);
		v->by_self = 0;
		bump_seq(v);
		publish(a, vi, now);
	}
	publish(a, c->vcpu, now);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(vs_wakeup, struct task_struct *p)
{
	woken(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(vs_wakeup_new, struct task_struct *p)
{
	woken(p);
	return 0;
}

/* The load balancer moves a waiting vCPU thread to another CPU's queue. */
SEC("tp_btf/sched_migrate_task")
int BPF_PROG(vs_migrate, struct task_struct *p, int dest_cpu)
{
	struct pv_sched_area *a = the_area();
	struct pv_vcpu_sched *v;
	__s32 vi = NONE;

	if (!a)
		return 0;
	v = vcpu_for(a, p, &vi);
	if (v && v->state != PV_VS_RUNNING) {
		bump_seq(v);
		v->cpu = dest_cpu;
		bump_seq(v);
	}
	return 0;
}
