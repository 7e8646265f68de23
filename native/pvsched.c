/* SPDX-License-Identifier: MIT */
/* The host's view of a VM's vCPU threads, exact to the context switch
 * (docs/critical-sections.md): load bpf/vcpusched.bpf.o on the host, tell it
 * which host threads are the VM's vCPUs, and run a thread that sleeps until
 * the program says a vCPU's feedback flags changed, then writes them into
 * that vCPU's slot of the shared memory. pvrun's TypeScript observer reads
 * the program's totals through pvs_read (src/fast/sched.ts).
 *
 * The slot's `flags` word is the host's: this thread writes it whole (one
 * atomic store) with `preempted_ns` and `flags_ns` beside it; the guest may
 * scribble on them, and the next change overwrites it. Nothing here comes from
 * the guest: the program watches host threads that pvrun names. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "cspolicy.h"
#include "pvrun_shm.h"
#include "pvsched.h"
#include "rt.h"

_Static_assert(PV_SCHED_MAX_VCPUS == PVSHM_MAX_VCPUS, "one vCPU entry per slot");
_Static_assert(sizeof(struct pv_sched_area) % 4096 == 0, "the map is mapped whole");

#define MAX_LINKS 8
#define READ_TRIES 8
/* The slots are checked at least this often: a guest's scribble on a flags word lasts no longer. */
#define RESYNC_MS 250
/* While a boost or a payback is under way, or owed, the policy runs at least this often. */
#define POLICY_MS 10
/* pvrun-sched's SCHED_FIFO priority: above a boosted vCPU thread's (1), so that it can always end the boost. */
#define SCHED_THREAD_PRIO 2

struct sched_instance {
	int used;
	pthread_t thread;
	pthread_mutex_t lock; /* n_vcpus, tids, written, stats */
	struct bpf_object *obj;
	struct bpf_link *links[MAX_LINKS];
	int n_links, vcpu_of_fd, stats_fd, stop_pipe[2];
	struct ring_buffer *rb;
	struct pv_sched_area *area;
	uint8_t *shm;
	uint32_t n_vcpus;
	int32_t tids[PV_SCHED_MAX_VCPUS];
	uint32_t written[PV_SCHED_MAX_VCPUS];
	struct pvs_stats stats;
	struct rt_budget rt;
	/* Acting (cspolicy.h): the configuration, each vCPU's state, and the mode applied to its thread. */
	struct pvb_config boost;
	struct pvb_vcpu pol[PV_SCHED_MAX_VCPUS];
	uint32_t applied[PV_SCHED_MAX_VCPUS];
	uint8_t holder_watch[PV_SCHED_MAX_VCPUS]; /* update_holder_watch */
	uint64_t looked_at[PV_SCHED_MAX_VCPUS];   /* 1 + the vCPU's preemption count when a pass last saw it wait inside a section */
	struct pvs_boost_stats bstats;
};

static struct sched_instance sched_instances[PVS_MAX_INSTANCES];
static pthread_mutex_t sched_instances_lock = PTHREAD_MUTEX_INITIALIZER;

static struct sched_instance *sched_get(int h)
{
	return h >= 0 && h < PVS_MAX_INSTANCES && sched_instances[h].used ? &sched_instances[h] : NULL;
}

/* libbpf would print to pvrun's stderr, which is the VM's console. */
static int quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	(void)level;
	(void)fmt;
	(void)args;
	return 0;
}

/* One vCPU's entry as one consistent copy (the program changes `seq` around each update). */
static void read_vcpu(const struct pv_sched_area *a, uint32_t v, struct pv_vcpu_sched *out)
{
	const struct pv_vcpu_sched *src = &a->vcpu[v];

	for (int i = 0; i < READ_TRIES; i++) {
		uint32_t seq = __atomic_load_n(&src->seq, __ATOMIC_ACQUIRE);

		memcpy(out, src, sizeof(*out));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&src->seq, __ATOMIC_RELAXED) == seq && !(seq & 1))
			return;
	}
}

static struct pvshm_vcpu_slot *slot_of(struct sched_instance *in, uint32_t v)
{
	return (struct pvshm_vcpu_slot *)(in->shm + PVSHM_SLOTS_OFFSET + (size_t)v * PVSHM_SLOT_SIZE);
}

/* Write slot v's flags (and the wait total and the time beside them); `woken`:
 * the thread woke for it, and its delay counts. Called with the lock held. */
static void write_slot(struct sched_instance *in, uint32_t v, uint32_t flags, uint64_t flags_ns, uint64_t wait_ns, uint64_t now, int woken)
{
	struct pvshm_vcpu_slot *s = slot_of(in, v);

	s->preempted_ns = wait_ns;
	s->flags_ns = flags_ns;
	__atomic_store_n(&s->flags, flags, __ATOMIC_RELEASE);
	in->written[v] = flags;
	in->stats.writes++;
	if (woken && flags_ns && flags_ns <= now) {
		uint64_t d = now - flags_ns;

		in->stats.lat_n++;
		in->stats.lat_sum_ns += d;
		if (d > in->stats.lat_max_ns)
			in->stats.lat_max_ns = d;
	}
}

/* The flags the guest sees for vCPU v, from the program's `flags`: while pvrun boosts the
 * vCPU, BOOSTED instead of PREEMPTED. A boosted vCPU runs at once, so a waiter for a lock it
 * holds should spin, not park: parking and waking cost more than the boost leaves to wait.
 * Called with the lock held. */
static uint32_t guest_flags(const struct sched_instance *in, uint32_t v, uint32_t flags)
{
	if (in->applied[v] == PVB_BOOSTED)
		return (flags & ~PVSHM_FLAG_VCPU_PREEMPTED) | PVSHM_FLAG_BOOSTED;
	return flags;
}

/* Bring every slot's flags to what the program and the policy say now. */
static void sync_slots(struct sched_instance *in, int woken)
{
	uint64_t now = rt_clock_ns(CLOCK_MONOTONIC);
	struct pv_vcpu_sched e;

	pthread_mutex_lock(&in->lock);
	for (uint32_t v = 0; v < in->n_vcpus; v++) {
		uint32_t f = guest_flags(in, v, __atomic_load_n(&in->area->vcpu[v].flags, __ATOMIC_RELAXED));

		if (f == in->written[v] && f == __atomic_load_n(&slot_of(in, v)->flags, __ATOMIC_RELAXED))
			continue;
		read_vcpu(in->area, v, &e);
		if (e.state == PV_VS_PREEMPTED || e.state == PV_VS_WOKEN)
			e.wait_ns += now > e.since_ns ? now - e.since_ns : 0;
		write_slot(in, v, guest_flags(in, v, e.flags), e.flags_ns, e.wait_ns, now, woken);
	}
	pthread_mutex_unlock(&in->lock);
}

/* A guest thread id is below the kernel's pid limit (2^22). */
#define TID_LIMIT (1u << 22)

/* The vCPU each guest thread runs on, from the slots' cur_tid: open addressing over twice
 * as many entries as vCPUs, so a lookup ends at an empty entry within the table. */
#define TID_MAP_SIZE (2 * PV_SCHED_MAX_VCPUS)
struct tid_map {
	uint32_t tid[TID_MAP_SIZE];
	uint16_t vcpu[TID_MAP_SIZE];
};

static uint32_t tid_hash(uint32_t tid)
{
	return (tid * 2654435761u) % TID_MAP_SIZE;
}

/* The guest writes cur_tid: a thread named by two slots keeps the first (the lowest vCPU). */
static void tid_map_build(struct sched_instance *in, struct tid_map *m)
{
	memset(m->tid, 0, sizeof(m->tid));
	for (uint32_t v = 0; v < in->n_vcpus; v++) {
		uint32_t tid = __atomic_load_n(&slot_of(in, v)->cur_tid, __ATOMIC_RELAXED), h;

		if (tid == 0 || tid >= TID_LIMIT)
			continue;
		for (h = tid_hash(tid); m->tid[h] != 0 && m->tid[h] != tid; h = (h + 1) % TID_MAP_SIZE)
			;
		if (m->tid[h] == 0) {
			m->tid[h] = tid;
			m->vcpu[h] = (uint16_t)v;
		}
	}
}

static int32_t tid_map_find(const struct tid_map *m, uint32_t tid)
{
	for (uint32_t h = tid_hash(tid); m->tid[h] != 0; h = (h + 1) % TID_MAP_SIZE)
		if (m->tid[h] == tid)
			return m->vcpu[h];
	return -1;
}

/* Which vCPUs run a guest thread inside a user section now (`inside`), and which run
 * a thread that holds a cell at all (`users`, may be NULL), from the cells (the guest's,
 * so each value is checked): a cell is on the vCPU whose slot names its thread as the
 * one running (cur_tid), else where its last section began. Returns whether any vCPU
 * runs a cell's thread. One pass over the cells and one over the slots, whatever the
 * guest writes in them. */
static int cells_inside(struct sched_instance *in, uint8_t *inside, uint8_t *users)
{
	const struct pvshm_header *hdr = (const struct pvshm_header *)in->shm;
	uint32_t used = __atomic_load_n(&hdr->cells_used, __ATOMIC_ACQUIRE);
	struct tid_map map;
	int any = 0;

	memset(inside, 0, in->n_vcpus);
	if (users)
		memset(users, 0, in->n_vcpus);
	if (used > PVSHM_CELLS)
		used = PVSHM_CELLS;
	if (used == 0)
		return 0;
	tid_map_build(in, &map);
	for (uint32_t i = 0; i < used; i++) {
		const struct pvshm_cell *c = (const struct pvshm_cell *)(in->shm + PVSHM_CELLS_OFFSET + (size_t)i * PVSHM_CELL_SIZE);
		uint32_t tid = __atomic_load_n(&c->owner_tid, __ATOMIC_RELAXED);
		int32_t cpu = __atomic_load_n(&c->cpu, __ATOMIC_RELAXED), on;
		int depth;

		if (tid == 0 || tid >= TID_LIMIT)
			continue;
		depth = __atomic_load_n(&c->depth, __ATOMIC_ACQUIRE) != 0;
		if (!depth && !users)
			continue;
		on = tid_map_find(&map, tid);
		if (on >= 0)
			cpu = on;
		if (cpu >= 0 && (uint32_t)cpu < in->n_vcpus) {
			inside[cpu] |= (uint8_t)depth;
			if (users)
				users[cpu] = 1;
			any = 1;
		}
	}
	return any;
}

/* The watch bits of vCPU v: a section open on it (the observer's look), and a guest
 * thread holding a cell on it (holder_watch). */
static uint32_t watch_bits(struct sched_instance *in, uint32_t v, int changes)
{
	return (changes ? PV_WATCH_CHANGES : 0) | (in->holder_watch[v] ? PV_WATCH_HOLDER : 0);
}

/* Wake at each change of "preempted" on the vCPUs that run a guest thread holding a cell:
 * acting, the policy reads the cells itself at a preemption; observing or acting, the flag
 * the guest's waiters read for the holder's vCPU is then never stale (the look's period is
 * 10 ms, a section's a few µs). A vCPU that runs none costs no wake-up. Called at each of
 * pvrun's looks (pvs_sync), when the configuration changes, and at each of this thread's
 * passes while acting (a holder that moved to another vCPU is found without a look), the
 * lock held. Fills `inside` (cells_inside) and returns whether any vCPU runs a holder. */
static int update_holder_watch(struct sched_instance *in, uint8_t *inside)
{
	uint8_t users[PV_SCHED_MAX_VCPUS] = {0};
	int any = cells_inside(in, inside, users);

	for (uint32_t v = 0; v < PV_SCHED_MAX_VCPUS; v++) {
		uint8_t want = v < in->n_vcpus && users[v];

		if (want == in->holder_watch[v])
			continue;
		in->holder_watch[v] = want;
		if (want)
			__atomic_or_fetch(&in->area->vcpu[v].watched, PV_WATCH_HOLDER, __ATOMIC_RELAXED);
		else
			__atomic_and_fetch(&in->area->vcpu[v].watched, ~(uint32_t)PV_WATCH_HOLDER, __ATOMIC_RELAXED);
	}
	return any;
}

/* Put thread `tid`, now in mode `from`, in policy mode `mode`; 0 or -errno. NORMAL is
 * SCHED_OTHER with the thread's nice value kept (sched_setscheduler leaves it). */
static int apply_mode(int32_t tid, uint32_t from, uint32_t mode)
{
	struct sched_param sp = {.sched_priority = mode == PVB_BOOSTED ? 1 : 0};
	int policy = mode == PVB_BOOSTED ? SCHED_FIFO : mode == PVB_PAYBACK ? SCHED_IDLE : SCHED_OTHER;

	/* From SCHED_FIFO straight to SCHED_IDLE, Linux (6.18) leaves the thread's load average at
	 * 10^13 or more: the load balancer can no longer move it, and it gets about half its fair
	 * share while paying back. Through SCHED_OTHER it stays right. */
	if (from == PVB_BOOSTED && mode == PVB_PAYBACK) {
		struct sched_param other = {.sched_priority = 0};

		if (sched_setscheduler(tid, SCHED_OTHER | SCHED_RESET_ON_FORK, &other) != 0)
			return -errno;
	}
	return sched_setscheduler(tid, policy | SCHED_RESET_ON_FORK, &sp) == 0 ? 0 : -errno;
}

/* Put every vCPU thread pvrun changed back to NORMAL, charging what ran (the lock held). */
static void policy_release(struct sched_instance *in, uint64_t now)
{
	for (uint32_t v = 0; v < PV_SCHED_MAX_VCPUS; v++) {
		struct pvb_input i = {.now_ns = now, .host_state = PVB_HOST_SLEEPING};
		struct pvb_config off = in->boost;

		if (in->applied[v] == PVB_NORMAL && in->pol[v].mode == PVB_NORMAL)
			continue;
		off.max_ns = 0;
		off.payback_pct = 0;
		i.busy_ns = in->pol[v].busy_at_ns;
		pvb_step(&off, &in->pol[v], &i);
		if (in->applied[v] != PVB_NORMAL && in->tids[v] > 0)
			apply_mode(in->tids[v], in->applied[v], PVB_NORMAL);
		in->applied[v] = PVB_NORMAL;
	}
}

/* Run the policy for every vCPU and apply the modes that changed (the lock held).
 * Returns the nearest deadline, or 0 when nothing is under way or owed. */
static uint64_t policy_pass(struct sched_instance *in)
{
	uint64_t now = rt_clock_ns(CLOCK_MONOTONIC), next = 0;
	struct pv_vcpu_sched e;
	uint8_t inside[PV_SCHED_MAX_VCPUS];

	if (in->boost.max_ns == 0 && in->boost.payback_pct == 0)
		return 0;
	/* Without its real-time priority this thread could not end a boost in time: none now. */
	if (!in->rt.in_fifo) {
		policy_release(in, now);
		return 0;
	}
	in->bstats.passes++;
	/* A holder that moved to another vCPU since pvrun's last look is watched from now on,
	 * and while any vCPU runs one this thread looks again within POLICY_MS: a preemption
	 * that began before its vCPU was watched woke nothing, and is acted on here. */
	if (update_holder_watch(in, inside))
		next = now + POLICY_MS * 1000000ull;
	for (uint32_t v = 0; v < in->n_vcpus; v++) {
		struct pvb_vcpu *s = &in->pol[v];
		struct pvb_input i;
		uint32_t mode;
		int err, first;

		if (in->tids[v] <= 0)
			continue;
		read_vcpu(in->area, v, &e);
		i.now_ns = now;
		i.busy_ns = e.run_ns + e.wait_ns + (e.state != PV_VS_SLEEPING && now > e.since_ns ? now - e.since_ns : 0);
		i.preemptions = e.preemptions;
		i.host_state = e.state;
		i.in_section = inside[v];
		/* The first pass to see this preemption inside a section: the one that acts on it. */
		first = (e.state == PV_VS_PREEMPTED || e.state == PV_VS_WOKEN) && inside[v] && in->looked_at[v] != e.preemptions + 1;
		if (first)
			in->looked_at[v] = e.preemptions + 1;
		mode = pvb_step(&in->boost, s, &i);
		if (mode != in->applied[v]) {
			err = apply_mode(in->tids[v], in->applied[v], mode);
			if (err) {
				in->bstats.errors++;
				in->bstats.last_error = (uint32_t)-err;
				if (err == -ESRCH) {
					/* The thread is gone (pvrun names the new one at its next look). */
					memset(s, 0, sizeof(*s));
					in->applied[v] = PVB_NORMAL;
					continue;
				}
				/* This process may not change it: no acting from now on. */
				policy_release(in, now);
				in->boost.max_ns = 0;
				in->boost.payback_pct = 0;
				return 0;
			}
			/* The delay from a preemption to the boost decided when it was first seen; a later
			 * grant (the budget refilled, or a boost ran out while its thread still waited for
			 * a CPU) is a boost, not the reaction to the preemption. */
			if (mode == PVB_BOOSTED && first) {
				uint64_t d = now > e.since_ns ? now - e.since_ns : 0;

				in->bstats.act_n++;
				in->bstats.act_sum_ns += d;
				if (d > in->bstats.act_max_ns)
					in->bstats.act_max_ns = d;
			}
			in->applied[v] = mode;
		}
		if (s->mode != PVB_NORMAL && (next == 0 || s->until_ns < next))
			next = s->until_ns;
		else if (s->mode == PVB_NORMAL && s->debt_ns > 0 && (next == 0 || now + POLICY_MS * 1000000ull < next))
			next = now + POLICY_MS * 1000000ull;
	}
	return next;
}

static int on_notice(void *ctx, void *data, size_t size)
{
	struct sched_instance *in = ctx;

	(void)data;
	(void)size;
	in->stats.notices++;
	return 0;
}

static void *sched_run(void *arg)
{
	struct sched_instance *in = arg;
	uint64_t next = 0;

	in->rt.prio = SCHED_THREAD_PRIO;
	rt_begin(&in->rt);
	for (;;) {
		struct pollfd p[2] = {{.fd = in->stop_pipe[0], .events = POLLIN}, {.fd = ring_buffer__epoll_fd(in->rb), .events = POLLIN}};
		uint64_t now = rt_clock_ns(CLOCK_MONOTONIC), wait = RESYNC_MS * 1000000ull;
		struct timespec ts;
		int n;

		if (next > 0)
			wait = next > now ? pvb_min(wait, next - now) : 0;
		ts.tv_sec = (time_t)(wait / 1000000000ull);
		ts.tv_nsec = (long)(wait % 1000000000ull);
		n = ppoll(p, 2, &ts, NULL);
		if (n < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (p[1].revents) {
			pthread_mutex_lock(&in->lock);
			in->stats.wakeups++;
			pthread_mutex_unlock(&in->lock);
			ring_buffer__consume(in->rb);
		}
		/* Act first: a preempted lock holder gets its CPU before the guest is told. */
		pthread_mutex_lock(&in->lock);
		next = policy_pass(in);
		pthread_mutex_unlock(&in->lock);
		sync_slots(in, p[1].revents != 0);
		rt_check(&in->rt);
	}
	pthread_mutex_lock(&in->lock);
	policy_release(in, rt_clock_ns(CLOCK_MONOTONIC));
	pthread_mutex_unlock(&in->lock);
	return NULL;
}

/* Release what start made, in any state. */
static void sched_free(struct sched_instance *in)
{
	ring_buffer__free(in->rb);
	for (int i = 0; i < in->n_links; i++)
		bpf_link__destroy(in->links[i]);
	if (in->area)
		munmap(in->area, sizeof(*in->area));
	bpf_object__close(in->obj);
	if (in->shm)
		munmap(in->shm, PVSHM_SIZE);
	for (int i = 0; i < 2; i++)
		if (in->stop_pipe[i] >= 0)
			close(in->stop_pipe[i]);
	if (in->stats_fd >= 0)
		close(in->stats_fd);
	pthread_mutex_lock(&sched_instances_lock);
	in->used = 0;
	pthread_mutex_unlock(&sched_instances_lock);
}

/* Set the program's `self_tgid` (its only read-only global) before load. */
static int set_self(struct bpf_object *obj)
{
	struct bpf_map *rodata = bpf_object__find_map_by_name(obj, ".rodata");
	uint32_t self = (uint32_t)getpid();

	/* Fails unless the section is exactly that one variable. */
	return rodata ? bpf_map__set_initial_value(rodata, &self, sizeof(self)) : -EINVAL;
}

int pvs_start(const char *obj_path, const char *shm_path)
{
	struct sched_instance *in;
	struct bpf_program *prog;
	struct bpf_map *map;
	int h, fd, err;

	if (!obj_path || !shm_path)
		return -EINVAL;
	pthread_mutex_lock(&sched_instances_lock);
	for (h = 0; h < PVS_MAX_INSTANCES && sched_instances[h].used; h++)
		;
	if (h == PVS_MAX_INSTANCES) {
		pthread_mutex_unlock(&sched_instances_lock);
		return -EMFILE;
	}
	in = &sched_instances[h];
	memset(in, 0, sizeof(*in));
	in->used = 1;
	pthread_mutex_unlock(&sched_instances_lock);
	in->stop_pipe[0] = in->stop_pipe[1] = in->vcpu_of_fd = -1;
	in->stats_fd = -1;
	libbpf_set_print(quiet);

	fd = open(shm_path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		goto fail;
	}
	in->shm = mmap(NULL, PVSHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (in->shm == MAP_FAILED) {
		in->shm = NULL;
		err = -errno;
		goto fail;
	}
	in->obj = bpf_object__open_file(obj_path, NULL);
	if (!in->obj) {
		err = -errno;
		goto fail;
	}
	err = set_self(in->obj);
	if (err)
		goto fail;
	err = bpf_object__load(in->obj);
	if (err)
		goto fail;
	map = bpf_object__find_map_by_name(in->obj, "area");
	in->vcpu_of_fd = bpf_object__find_map_fd_by_name(in->obj, "vcpu_of");
	if (!map || in->vcpu_of_fd < 0) {
		err = -EINVAL;
		goto fail;
	}
	in->area = mmap(NULL, sizeof(*in->area), PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0);
	if (in->area == MAP_FAILED) {
		in->area = NULL;
		err = -errno;
		goto fail;
	}
	for (int c = 0; c < PV_SCHED_MAX_CPUS; c++)
		in->area->cpu[c].vcpu = in->area->cpu[c].self_victim = -1;
	for (int v = 0; v < PV_SCHED_MAX_VCPUS; v++)
		in->area->vcpu[v].cpu = -1;
	in->rb = ring_buffer__new(bpf_object__find_map_fd_by_name(in->obj, "notify"), on_notice, in, NULL);
	if (!in->rb) {
		err = -errno;
		goto fail;
	}
	bpf_object__for_each_program(prog, in->obj)
	{
		struct bpf_link *link = in->n_links < MAX_LINKS ? bpf_program__attach(prog) : NULL;

		if (!link) {
			err = in->n_links < MAX_LINKS ? -errno : -E2BIG;
			goto fail;
		}
		in->links[in->n_links++] = link;
	}
	/* The program's own cost, for pvs_stats (needs CAP_SYS_ADMIN; without it, 0). */
	in->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (pipe2(in->stop_pipe, O_CLOEXEC)) {
		err = -errno;
		goto fail;
	}
	pthread_mutex_init(&in->lock, NULL);
	err = pthread_create(&in->thread, NULL, sched_run, in);
	if (err) {
		pthread_mutex_destroy(&in->lock);
		err = -err;
		goto fail;
	}
	pthread_setname_np(in->thread, "pvrun-sched");
	return h;
fail:
	sched_free(in);
	return err < 0 ? err : -EINVAL;
}

int pvs_set_vcpus(int h, const int32_t *tids, uint32_t n)
{
	struct sched_instance *in = sched_get(h);
	int err = 0;

	if (!in || !tids || n > PV_SCHED_MAX_VCPUS)
		return -EINVAL;
	pthread_mutex_lock(&in->lock);
	for (uint32_t v = 0; v < in->n_vcpus; v++) {
		uint32_t tid = (uint32_t)in->tids[v];

		if (tid && (v >= n || tids[v] != in->tids[v]))
			bpf_map_delete_elem(in->vcpu_of_fd, &tid);
	}
	for (uint32_t v = 0; v < PV_SCHED_MAX_VCPUS; v++) {
		int32_t tid = v < n ? tids[v] : 0;

		if (tid == in->tids[v])
			continue;
		/* Another thread (or none): its history is not this one's, nor its boost. */
		if (in->applied[v] != PVB_NORMAL && in->tids[v] > 0)
			apply_mode(in->tids[v], in->applied[v], PVB_NORMAL);
		in->applied[v] = PVB_NORMAL;
		memset(&in->pol[v], 0, sizeof(in->pol[v]));
		memset(&in->area->vcpu[v], 0, sizeof(in->area->vcpu[v]));
		in->area->vcpu[v].cpu = -1;
		in->tids[v] = tid;
		if (tid > 0 && bpf_map_update_elem(in->vcpu_of_fd, &tid, &v, BPF_ANY) != 0 && !err)
			err = -errno;
	}
	in->n_vcpus = n;
	pthread_mutex_unlock(&in->lock);
	return err;
}

int pvs_sync(int h)
{
	struct sched_instance *in = sched_get(h);
	uint8_t inside[PV_SCHED_MAX_VCPUS];

	if (!in)
		return -EINVAL;
	pthread_mutex_lock(&in->lock);
	update_holder_watch(in, inside);
	pthread_mutex_unlock(&in->lock);
	sync_slots(in, 0);
	return 0;
}

int pvs_watch(int h, const uint64_t *mask, uint32_t words)
{
	struct sched_instance *in = sched_get(h);

	if (!in || !mask || words > PV_SCHED_MAX_VCPUS / 64)
		return -EINVAL;
	pthread_mutex_lock(&in->lock);
	for (uint32_t v = 0; v < PV_SCHED_MAX_VCPUS; v++)
		__atomic_store_n(&in->area->vcpu[v].watched, watch_bits(in, v, v / 64 < words && (mask[v / 64] >> (v % 64) & 1)), __ATOMIC_RELAXED);
	pthread_mutex_unlock(&in->lock);
	return 0;
}

int pvs_read(int h, struct pv_vcpu_sched *out, uint32_t n)
{
	struct sched_instance *in = sched_get(h);

	if (!in || !out || n > PV_SCHED_MAX_VCPUS)
		return -EINVAL;
	for (uint32_t v = 0; v < n; v++)
		read_vcpu(in->area, v, &out[v]);
	return (int)n;
}

int pvs_stats(int h, struct pvs_stats *out)
{
	struct sched_instance *in = sched_get(h);
	struct bpf_program *prog;
	clockid_t cid;

	if (!in || !out)
		return -EINVAL;
	pthread_mutex_lock(&in->lock);
	*out = in->stats;
	pthread_mutex_unlock(&in->lock);
	out->demotions = __atomic_load_n(&in->rt.demotions, __ATOMIC_RELAXED);
	if (pthread_getcpuclockid(in->thread, &cid) == 0)
		out->thread_cpu_ns = rt_clock_ns(cid);
	bpf_object__for_each_program(prog, in->obj)
	{
		struct bpf_prog_info info;
		uint32_t len = sizeof(info);

		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0) {
			out->prog_run_ns += info.run_time_ns;
			out->prog_runs += info.run_cnt;
		}
	}
	return 0;
}

int pvs_boost(int h, const struct pvb_config *config)
{
	struct sched_instance *in = sched_get(h);
	uint8_t inside[PV_SCHED_MAX_VCPUS];

	if (!in || !config || (config->max_ns > 0 && (config->window_ns == 0 || config->budget_ns == 0)) ||
	    config->max_ns > 1000000000ull || config->payback_pct > 10000)
		return -EINVAL;
	pthread_mutex_lock(&in->lock);
	if (config->max_ns == 0 && config->payback_pct == 0)
		policy_release(in, rt_clock_ns(CLOCK_MONOTONIC));
	in->boost = *config;
	update_holder_watch(in, inside);
	pthread_mutex_unlock(&in->lock);
	return 0;
}

int pvs_boosts(int h, struct pvs_boost_stats *stats, struct pvb_vcpu *out, uint32_t n)
{
	struct sched_instance *in = sched_get(h);

	if (!in || n > PV_SCHED_MAX_VCPUS || (n > 0 && !out))
		return -EINVAL;
	pthread_mutex_lock(&in->lock);
	if (stats)
		*stats = in->bstats;
	if (n > 0)
		memcpy(out, in->pol, n * sizeof(*out));
	pthread_mutex_unlock(&in->lock);
	return (int)n;
}

uint32_t pvs_policy_step(const struct pvb_config *config, struct pvb_vcpu *state, const struct pvb_input *input)
{
	return pvb_step(config, state, input);
}

void pvs_stop(int h)
{
	struct sched_instance *in = sched_get(h);

	if (!in)
		return;
	if (write(in->stop_pipe[1], "s", 1) < 0) {
		/* cannot happen with an empty pipe; the join below would wait */
	}
	pthread_join(in->thread, NULL);
	for (int i = 0; i < in->n_links; i++)
		bpf_link__destroy(in->links[i]);
	in->n_links = 0;
	/* No thread writes them now: the guest sees no feedback rather than a stale one. */
	for (uint32_t v = 0; v < in->n_vcpus; v++)
		__atomic_store_n(&slot_of(in, v)->flags, 0, __ATOMIC_RELEASE);
	pthread_mutex_destroy(&in->lock);
	sched_free(in);
}
