// SPDX-License-Identifier: MIT
// BPF programs sent by the host: each is a CO-RE object whose ring-buffer map
// carries records that the agent copies into the shared ring, tagged with the
// record type the host chose when loading it.
//
// Two shapes are relayed. A plain BPF_MAP_TYPE_RINGBUF is drained by the main
// thread. An ARRAY_OF_MAPS named "events" holding one ring buffer per CPU is
// drained by one relay thread per CPU, pinned to that CPU with real-time
// priority: the wake-up after bpf_ringbuf_submit() is then local to the CPU
// that produced the record, with no cross-CPU IPI to a possibly idle vCPU
// (whose host thread may first have to be scheduled) on the hint's path.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "cs.h"
#include "progs.h"

#define MAX_CPUS 256
#define PERCPU_RINGBUF_SIZE (64 * 1024)

struct prog;

/* One relay thread: drains the ring buffer of one CPU for one program. */
struct relay {
	struct prog *prog;
	int cpu;
	int ringbuf_fd;
	int stop_fd;
	pthread_t thread;
	int running;
	/* Start-up: the outer map the thread stores its ring buffer in, the error, and who waits. */
	int outer_fd, store_err;
	sem_t *stored;
};

struct prog {
	uint32_t id;
	uint32_t record_type;
	char name[PVAG_NAME_LEN];
	struct bpf_object *obj;
	struct bpf_link *links[16];
	unsigned nr_links;
	uint64_t records;
	int ringbuf_fd;
	struct relay *relays;
	int nr_relays;
	/* The program's `current` map (the thread each vCPU runs), mapped read-only; NULL if it has none. */
	const volatile uint64_t *current;
	uint32_t current_n;
	size_t current_len;
	/* The program's `relay_after` map (when a record may next wake a CPU's relay), mapped
	 * read-write; NULL if it has none: then every record wakes its relay. */
	volatile uint64_t *relay_after;
	uint32_t relay_after_n;
	size_t relay_after_len;
	/* The program's `pv_lost` map (records it could not reserve), mapped read-only; NULL if it
	 * has none; and how much of it was counted in the ring's lost count. */
	const volatile uint64_t *lost;
	uint32_t lost_n;
	size_t lost_len;
	uint64_t lost_counted;
};

/* Producers into the shared ring: the main thread and the relay threads. */
static pthread_mutex_t append_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*after_relay)(void);

static struct prog progs[PVAGENT_MAX_PROGS];
static uint32_t next_id = 1;
static struct ring_buffer *rb;
static unsigned rb_generation; /* bumped whenever rb is rebuilt: its epoll fd must be re-registered */
static struct pvshm *out_shm;
static struct pvagent_stats_counters *counters;

/* libbpf's messages for the current load go here, so errors carry the verifier log. */
static char *log_buf;
static size_t log_len, log_cap;

static int log_to_buf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	int n;

	if (level == LIBBPF_DEBUG || !log_buf || log_len + 1 >= log_cap)
		return 0;
	n = vsnprintf(log_buf + log_len, log_cap - log_len, fmt, ap);
	if (n > 0)
		log_len += (size_t)n < log_cap - log_len ? (size_t)n : log_cap - log_len - 1;
	return n;
}

void progs_init(struct pvshm *shm, struct pvagent_stats_counters *c, void (*after)(void))
{
	out_shm = shm;
	counters = c;
	after_relay = after;
	libbpf_set_print(log_to_buf);
}

/* A kernel lock wait begins or ends on a vCPU: keep the guest part of its slot
 * current (seqlock-style, guest_seq odd while written). The host reads slots
 * on its own clock, so this is no ring record and no kick. */
static int apply_cs(const void *data, size_t size)
{
	const struct pv_cs_event *e = data;
	volatile struct pvshm_vcpu_slot *s;
	uint32_t seq;

	if (size < sizeof(*e) || !(s = pvshm_slot(out_shm, e->cpu)))
		return -1;
	/* A wait whose end, relayed from another CPU's ring, is already applied: it is over. */
	if (e->kind == PV_CS_LOCK_BEGIN && e->ts_ns < s->guest_ts_ns)
		return 0;
	seq = __atomic_load_n(&s->guest_seq, __ATOMIC_RELAXED) & ~1u;
	__atomic_store_n(&s->guest_seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	if (e->kind == PV_CS_LOCK_BEGIN) {
		s->klock_owner_tid = e->owner_tid;
		s->klock_owner_cpu = e->owner_cpu;
		s->klock_since_ns = e->ts_ns;
		s->klock_addr = e->lock;
		s->klock_waiting = 1;
	} else {
		s->klock_waiting = 0;
		s->klock_owner_tid = 0;
		s->klock_owner_cpu = -1;
		s->klock_waits = s->klock_waits + 1;
		s->klock_wait_ns = s->klock_wait_ns + e->wait_ns;
	}
	if (e->ts_ns > s->guest_ts_ns)
		s->guest_ts_ns = e->ts_ns;
	__atomic_store_n(&s->guest_seq, seq + 2, __ATOMIC_RELEASE);
	return 0;
}

/* Ring-buffer callback: one BPF record → one shared-ring record (or, for
 * critical sections, an update of the vCPU's slot). */
static int relay(void *ctx, void *data, size_t size)
{
	struct prog *p = ctx;
	int err = -1;

	pthread_mutex_lock(&append_lock);
	if (out_shm && out_shm->base && p->record_type == PVSHM_REC_CS)
		err = apply_cs(data, size);
	else if (out_shm && out_shm->base && size <= PVSHM_RECORD_PAYLOAD)
		err = pvshm_append(out_shm, (uint16_t)p->record_type, data, (uint16_t)size, pvshm_now_ns());
	/* Records the program itself dropped since: counted as the ring's lost ones. */
	if (p->lost && out_shm && out_shm->base) {
		uint64_t lost = __atomic_load_n(p->lost, __ATOMIC_RELAXED);

		if (lost > p->lost_counted) {
			pvshm_count_lost(out_shm, lost - p->lost_counted);
			counters->dropped += lost - p->lost_counted;
			p->lost_counted = lost;
		}
	}
	if (err) {
		counters->dropped++;
	} else {
		p->records++;
		counters->records++;
	}
	pthread_mutex_unlock(&append_lock);
	return 0;
}

int progs_append(uint16_t type, const void *payload, uint16_t len)
{
	int err = -ENODEV;

	pthread_mutex_lock(&append_lock);
	if (out_shm && out_shm->base)
		err = pvshm_append(out_shm, type, payload, len, pvshm_now_ns());
	if (err)
		counters->dropped++;
	else
		counters->records++;
	pthread_mutex_unlock(&append_lock);
	if (!err && after_relay)
		after_relay();
	return err;
}

/* Whether vCPU cpu's slot shows a kernel lock wait younger than PV_CS_LONG_WAIT_MS (apply_cs). */
static int slot_waiting(int cpu)
{
	volatile struct pvshm_vcpu_slot *s = out_shm ? pvshm_slot(out_shm, (uint32_t)cpu) : NULL;

	return s && __atomic_load_n(&s->klock_waiting, __ATOMIC_RELAXED) &&
	       pvshm_now_ns() - s->klock_since_ns < PV_CS_LONG_WAIT_MS * 1000000ull;
}

/* A relay thread: pinned to its CPU, real-time, blocked until its ring has data or it is told to stop. */
static void *relay_main(void *arg)
{
	struct relay *r = arg;
	struct sched_param sp = {.sched_priority = 50};
	struct ring_buffer *rb = ring_buffer__new(r->ringbuf_fd, relay, r->prog, NULL);
	struct epoll_event ev, got[2];
	cpu_set_t one;
	int ep = epoll_create1(EPOLL_CLOEXEC), timeout = -1;
	volatile uint64_t *after = r->prog->relay_after && (uint32_t)r->cpu < r->prog->relay_after_n ? &r->prog->relay_after[r->cpu] : NULL;
	uint32_t key = (uint32_t)r->cpu;

	/* First, before it moves to its CPU: start_relays waits for every thread's store. */
	r->store_err = bpf_map_update_elem(r->outer_fd, &key, &r->ringbuf_fd, BPF_ANY) ? -errno : 0;
	sem_post(r->stored);
	if (r->store_err)
		goto cleanup;
	CPU_ZERO(&one);
	CPU_SET(r->cpu, &one);
	pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
	pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
	if (!rb || ep < 0)
		goto cleanup;
	ev = (struct epoll_event){.events = EPOLLIN, .data.fd = ring_buffer__epoll_fd(rb)};
	epoll_ctl(ep, EPOLL_CTL_ADD, ring_buffer__epoll_fd(rb), &ev);
	ev = (struct epoll_event){.events = EPOLLIN, .data.fd = r->stop_fd};
	epoll_ctl(ep, EPOLL_CTL_ADD, r->stop_fd, &ev);
	for (;;) {
		int n = epoll_wait(ep, got, 2, timeout), i, drained = 0;

		for (i = 0; i < n; i++) {
			if (got[i].data.fd == r->stop_fd)
				goto cleanup;
			drained = ring_buffer__consume(rb);
			/* Critical-section records update slots, which the host reads on its own clock: no kick. */
			if (drained > 0 && after_relay && r->prog->record_type != PVSHM_REC_CS)
				after_relay();
		}
		if (n < 0 && errno != EINTR)
			break;
		if (!after)
			continue;
		/* Rate-limited (cs.h): the records that did not wake this thread are drained at its
		 * next look, PV_CS_RELAY_MS from now, and until then no record wakes it; it looks as
		 * often while its slot shows a wait younger than PV_CS_LONG_WAIT_MS (whose end, here,
		 * wakes nobody). A look that finds neither ends the looks: the next record wakes it. */
		if (n == 0)
			drained = ring_buffer__consume(rb);
		if (drained > 0)
			__atomic_store_n(after, pvshm_now_ns() + PV_CS_RELAY_MS * 1000000ull, __ATOMIC_RELAXED);
		if (drained > 0 || slot_waiting(r->cpu))
			timeout = PV_CS_RELAY_MS;
		else if (n == 0)
			timeout = -1;
	}
cleanup:
	ring_buffer__free(rb);
	if (ep >= 0)
		close(ep);
	return NULL;
}

static void stop_relays(struct prog *p)
{
	int i;

	for (i = 0; i < p->nr_relays; i++) {
		struct relay *r = &p->relays[i];

		if (r->running) {
			uint64_t one = 1;

			if (write(r->stop_fd, &one, sizeof(one)) != sizeof(one)) { /* cannot happen with an eventfd */
			}
			pthread_join(r->thread, NULL);
		}
		if (r->stop_fd >= 0)
			close(r->stop_fd);
		if (r->ringbuf_fd >= 0)
			close(r->ringbuf_fd);
	}
	free(p->relays);
	p->relays = NULL;
	p->nr_relays = 0;
}

/* Per-CPU mode: create one ring buffer per CPU and start its relay thread, which puts the ring
 * buffer in the outer map at its CPU; returns once every thread has. Linux (6.1) waits for an
 * RCU grace period after each update of a map of maps (a batch too): one by one, 64 updates took
 * 1.1 s of a 64-vCPU TCG guest's start-up; from 64 threads at once, the waits overlap. */
static int start_relays(struct prog *p, struct bpf_map *outer, char *log, size_t cap)
{
	int ncpu = libbpf_num_possible_cpus(), cpu, err = 0, started = 0;
	sem_t stored;

	if (ncpu <= 0 || ncpu > MAX_CPUS) {
		snprintf(log, cap, "cannot count possible CPUs (%d)", ncpu);
		return -EINVAL;
	}
	p->relays = calloc((size_t)ncpu, sizeof(*p->relays));
	if (!p->relays)
		return -ENOMEM;
	p->nr_relays = ncpu;
	for (cpu = 0; cpu < ncpu; cpu++) /* so that a failure part-way closes only what was opened */
		p->relays[cpu].stop_fd = p->relays[cpu].ringbuf_fd = -1;
	for (cpu = 0; cpu < ncpu; cpu++) {
		struct relay *r = &p->relays[cpu];

		r->prog = p;
		r->cpu = cpu;
		r->stop_fd = eventfd(0, EFD_CLOEXEC);
		r->ringbuf_fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "pv_cpu_rb", 0, 0, PERCPU_RINGBUF_SIZE, NULL);
		if (r->stop_fd < 0 || r->ringbuf_fd < 0) {
			snprintf(log, cap, "per-CPU ring buffer %d: %s", cpu, strerror(errno));
			return -errno;
		}
	}
	if (sem_init(&stored, 0, 0))
		return -errno;
	for (cpu = 0; cpu < ncpu; cpu++) {
		struct relay *r = &p->relays[cpu];

		r->outer_fd = bpf_map__fd(outer);
		r->stored = &stored;
		if (pthread_create(&r->thread, NULL, relay_main, r)) {
			snprintf(log, cap, "relay thread %d: cannot start", cpu);
			err = -EAGAIN;
			break;
		}
		r->running = 1;
		started++;
	}
	for (int i = 0; i < started; i++)
		while (sem_wait(&stored) && errno == EINTR)
			;
	sem_destroy(&stored);
	for (cpu = 0; cpu < started && !err; cpu++)
		if (p->relays[cpu].store_err) {
			snprintf(log, cap, "per-CPU ring buffer %d: %s", cpu, strerror(-p->relays[cpu].store_err));
			err = p->relays[cpu].store_err;
		}
	return err;
}

/* Rebuild the ring-buffer manager over every loaded program (libbpf 1.1 cannot remove one). */
static int rebuild_rb(void)
{
	int i, err;

	ring_buffer__free(rb);
	rb = NULL;
	rb_generation++;
	for (i = 0; i < PVAGENT_MAX_PROGS; i++) {
		if (!progs[i].id || progs[i].ringbuf_fd < 0)
			continue;
		if (!rb) {
			rb = ring_buffer__new(progs[i].ringbuf_fd, relay, &progs[i], NULL);
			if (!rb)
				return -errno;
		} else if ((err = ring_buffer__add(rb, progs[i].ringbuf_fd, relay, &progs[i]))) {
			return err;
		}
	}
	return 0;
}

static void destroy(struct prog *p)
{
	unsigned i;

	stop_relays(p);
	for (i = 0; i < p->nr_links; i++)
		bpf_link__destroy(p->links[i]);
	if (p->current)
		munmap((void *)p->current, p->current_len);
	if (p->relay_after)
		munmap((void *)p->relay_after, p->relay_after_len);
	if (p->lost)
		munmap((void *)p->lost, p->lost_len);
	bpf_object__close(p->obj);
	memset(p, 0, sizeof(*p));
	p->ringbuf_fd = -1;
}

/* Run an attached iterator program once to its end (its records go to the ring buffers). */
static int run_iter(struct bpf_link *l, char *log, size_t cap)
{
	char buf[256];
	ssize_t n;
	int fd = bpf_iter_create(bpf_link__fd(l));

	if (fd < 0) {
		int e = errno;
		snprintf(log, cap, "cannot start the program's task iterator: %s", strerror(e));
		return -e;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		;
	int err = n < 0 ? -errno : 0;
	if (err)
		snprintf(log, cap, "task iterator failed: %s", strerror(-err));
	close(fd);
	return err;
}

/*
 * A program may declare `const volatile __u32 agent_tgid` (read-only data):
 * this agent's process, whose threads (the relays pin themselves) are never
 * hints. Set it, through the object's BTF, before the object is loaded.
 */
static void set_agent_tgid(struct bpf_object *obj)
{
	const struct btf *btf = bpf_object__btf(obj);
	const struct btf_var_secinfo *v;
	const struct btf_type *sec;
	struct bpf_map *m, *rodata = NULL;
	const void *initial;
	size_t size = 0;
	char *data;
	int id, i;

	bpf_object__for_each_map(m, obj)
		if (strstr(bpf_map__name(m), ".rodata"))
			rodata = m;
	id = btf ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -1;
	if (!rodata || id < 0 || !(initial = bpf_map__initial_value(rodata, &size)) || !(data = malloc(size)))
		return;
	memcpy(data, initial, size);
	sec = btf__type_by_id(btf, id);
	for (i = 0, v = btf_var_secinfos(sec); i < btf_vlen(sec); i++, v++) {
		const struct btf_type *var = btf__type_by_id(btf, v->type);

		if (strcmp(btf__name_by_offset(btf, var->name_off), "agent_tgid") == 0 && v->size == sizeof(uint32_t) &&
		    v->offset + sizeof(uint32_t) <= size) {
			uint32_t tgid = (uint32_t)getpid();

			memcpy(data + v->offset, &tgid, sizeof(tgid));
			bpf_map__set_initial_value(rodata, data, size);
		}
	}
	free(data);
}

/* Map the program's mmap-able u64 array `name` (after load); NULL if it has none. */
static void *map_u64s(struct prog *p, const char *name, int prot, uint32_t *n, size_t *len)
{
	struct bpf_map *m = bpf_object__find_map_by_name(p->obj, name);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *mem;

	if (!m || bpf_map__type(m) != BPF_MAP_TYPE_ARRAY || !(bpf_map__map_flags(m) & BPF_F_MMAPABLE) ||
	    bpf_map__value_size(m) != sizeof(uint64_t))
		return NULL;
	*len = ((size_t)bpf_map__max_entries(m) * sizeof(uint64_t) + page - 1) / page * page;
	mem = mmap(NULL, *len, prot, MAP_SHARED, bpf_map__fd(m), 0);
	if (mem == MAP_FAILED)
		return NULL;
	*n = bpf_map__max_entries(m);
	return mem;
}

/* With PVAGENT_TIMES set in its environment, the agent prints each LOAD's phases on stderr
 * (guest time, ms): what a program's start-up goes on, by vCPU count (issue 30). */
static void print_times(const char *name, const uint64_t *t)
{
	if (!getenv("PVAGENT_TIMES"))
		return;
	fprintf(stderr, "pvagent: times %s: open+load %.1f ms, relays %.1f ms, attach %.1f ms, iterators+ring %.1f ms\n", name,
		(double)(t[1] - t[0]) / 1e6, (double)(t[2] - t[1]) / 1e6, (double)(t[3] - t[2]) / 1e6, (double)(t[4] - t[3]) / 1e6);
}

int progs_load(const char *name, uint32_t record_type, const void *obj, size_t len, uint32_t *links, char *log,
	       size_t cap)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name);
	struct bpf_program *bp;
	struct bpf_map *map, *outer;
	struct prog *p = NULL;
	uint64_t t[5] = {pvshm_now_ns(), 0, 0, 0, 0};
	int i, err;

	log_buf = log;
	log_len = 0;
	log_cap = cap;
	log[0] = '\0';
	for (i = 0; i < PVAGENT_MAX_PROGS; i++)
		if (!progs[i].id) {
			p = &progs[i];
			break;
		}
	if (!p) {
		snprintf(log, cap, "too many programs loaded (%d)", PVAGENT_MAX_PROGS);
		err = -ENOSPC;
		goto out;
	}
	memset(p, 0, sizeof(*p));
	p->ringbuf_fd = -1;
	/* Before the relays start: a record relayed before this would go out untyped (dropped by the host). */
	p->record_type = record_type;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->obj = bpf_object__open_mem(obj, len, &opts);
	if (!p->obj) {
		err = -errno;
		p->obj = NULL;
		goto cleanup;
	}
	/* Per-CPU mode: size the outer map for the CPUs this guest can have. */
	outer = bpf_object__find_map_by_name(p->obj, "events");
	if (outer && bpf_map__type(outer) != BPF_MAP_TYPE_ARRAY_OF_MAPS)
		outer = NULL;
	if (outer && (err = bpf_map__set_max_entries(outer, (uint32_t)libbpf_num_possible_cpus())))
		goto cleanup;
	set_agent_tgid(p->obj);
	err = bpf_object__load(p->obj);
	if (err)
		goto cleanup;
	/* The thread each vCPU runs (an array `current` written at each switch), for
	 * progs_publish_current; and when a record may wake its relay (cs.h). */
	p->current = map_u64s(p, "current", PROT_READ, &p->current_n, &p->current_len);
	p->relay_after = map_u64s(p, "relay_after", PROT_READ | PROT_WRITE, &p->relay_after_n, &p->relay_after_len);
	p->lost = map_u64s(p, "pv_lost", PROT_READ, &p->lost_n, &p->lost_len);
	p->lost_counted = 0;
	t[1] = pvshm_now_ns();
	if (outer && (err = start_relays(p, outer, log, cap)))
		goto cleanup;
	t[2] = pvshm_now_ns();
	bpf_object__for_each_program(bp, p->obj) {
		struct bpf_link *l;

		if (p->nr_links >= sizeof(p->links) / sizeof(p->links[0])) {
			err = -E2BIG;
			goto cleanup;
		}
		l = bpf_program__attach(bp);
		if (!l) {
			err = -errno;
			goto cleanup;
		}
		p->links[p->nr_links++] = l;
	}
	t[3] = pvshm_now_ns();
	/* Task iterators run once, now that the other programs are attached: they report
	 * the state that existed before the load (nothing falls between the two). */
	i = 0;
	bpf_object__for_each_program(bp, p->obj) {
		struct bpf_link *l = p->links[i++];

		if (bpf_program__expected_attach_type(bp) != BPF_TRACE_ITER)
			continue;
		if ((err = run_iter(l, log, cap)))
			goto cleanup;
	}
	bpf_object__for_each_map(map, p->obj) {
		if (bpf_map__type(map) == BPF_MAP_TYPE_RINGBUF) {
			p->ringbuf_fd = bpf_map__fd(map);
			break;
		}
	}
	p->id = next_id++;
	err = rebuild_rb();
	if (err) {
		snprintf(log + log_len, cap - log_len, "ring buffer: %s", strerror(-err));
		goto cleanup;
	}
	*links = p->nr_links;
	err = (int)p->id;
	t[4] = pvshm_now_ns();
	print_times(name, t);
	goto out;
cleanup:
	if (p) {
		destroy(p);
		rebuild_rb();
	}
out:
	log_buf = NULL;
	return err;
}

int progs_snapshot(char *log, size_t log_len)
{
	int ran = 0;

	for (int i = 0; i < PVAGENT_MAX_PROGS; i++) {
		struct bpf_program *bp;
		unsigned k = 0;

		if (!progs[i].id)
			continue;
		bpf_object__for_each_program(bp, progs[i].obj) {
			struct bpf_link *l = k < progs[i].nr_links ? progs[i].links[k] : NULL;
			int err;

			k++;
			if (!l || bpf_program__expected_attach_type(bp) != BPF_TRACE_ITER)
				continue;
			if ((err = run_iter(l, log, log_len)))
				return err;
			ran++;
		}
	}
	return ran;
}

int progs_unload(uint32_t id)
{
	int i;

	for (i = 0; i < PVAGENT_MAX_PROGS; i++) {
		if (progs[i].id == id && id) {
			destroy(&progs[i]);
			return rebuild_rb();
		}
	}
	return -ENOENT;
}

unsigned progs_list(struct pvag_prog_info *out, unsigned max)
{
	unsigned n = 0;
	int i;

	for (i = 0; i < PVAGENT_MAX_PROGS; i++) {
		if (!progs[i].id)
			continue;
		if (n < max) {
			memset(&out[n], 0, sizeof(out[n]));
			out[n].id = progs[i].id;
			out[n].record_type = progs[i].record_type;
			memcpy(out[n].name, progs[i].name, sizeof(out[n].name));
			out[n].records = progs[i].records;
		}
		n++;
	}
	return n;
}

int progs_have_current(void)
{
	for (int i = 0; i < PVAGENT_MAX_PROGS; i++)
		if (progs[i].id && progs[i].current)
			return 1;
	return 0;
}

void progs_publish_current(void)
{
	for (int i = 0; i < PVAGENT_MAX_PROGS; i++) {
		const struct prog *p = &progs[i];

		if (!p->id || !p->current)
			continue;
		for (uint32_t cpu = 0; cpu < p->current_n; cpu++) {
			volatile struct pvshm_vcpu_slot *s = pvshm_slot(out_shm, cpu);
			uint32_t tid;

			if (!s)
				break;
			tid = (uint32_t)p->current[cpu];
			if (__atomic_load_n(&s->cur_tid, __ATOMIC_RELAXED) != tid)
				__atomic_store_n(&s->cur_tid, tid, __ATOMIC_RELAXED);
		}
	}
}

int progs_epoll_fd(unsigned *generation)
{
	*generation = rb_generation;
	return rb ? ring_buffer__epoll_fd(rb) : -1;
}

int progs_drain(void)
{
	return rb ? ring_buffer__consume(rb) : 0;
}
