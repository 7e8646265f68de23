/* SPDX-License-Identifier: MIT */
/* pvrun's fast path (docs/fast-path.md): a native thread inside pvrun that
 * waits for the guest agent's kick byte, reads the new records in the shared
 * ring, and applies a decision the TypeScript policy computed in advance
 * ("a thread with no hint pins itself to vCPU v alone → these masks",
 * "hinted thread T lets go → these"). It then writes the host feedback and
 * wakes pvrun's JavaScript thread, which drains the same records as always:
 * it stays the only decoder of record for the log, and decides everything the
 * table does not cover (the slow path).
 *
 * The guest is untrusted: every record is copied once, then validated; the
 * thread ids and CPU masks this code applies come only from the table (that
 * is, from pvrun), never from the guest. A table describes one state and
 * the changes that can follow it; a new pin's way back returns to that state,
 * so a thread that pins itself and lets go is followed again and again, and
 * anything else the table does not cover ends it until the next publish.
 * Everything runs under one mutex per instance, which pvrun's JavaScript
 * thread holds only inside this library's calls. The mutex inherits
 * priority: this thread rests in SCHED_FIFO and pvrun's JavaScript thread
 * never does (docs/architecture.md), so a kick that finds the lock taken
 * lends the holder this thread's priority instead of waiting behind the
 * threads that preempted it.
 *
 * Loaded with koffi (src/fast/binding.ts); the binary formats of the table
 * and of the results are in pvfast.h and docs/fast-path.md. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "pvrun_shm.h"
#include "affinity.h"
#include "pvfast.h"
#include "rt.h"

#define PVF_MAX_INSTANCES 8
#define RECONNECT_MS 100
/* Kicks acted on, from a credit refilled with time up to a burst: a kick that finds no new
 * record since the last look costs more than one that finds some. A guest that floods its
 * kick port gets its ring looked at a few hundred times a second, not once per read (the
 * thread's CPU, and the JavaScript thread's wake-ups, stay bounded); an agent kicks when it
 * wrote records and the host asked (kick_wanted). pvrun sets the costs from --pv-guest-cpu
 * (pvf_budget); these are its defaults, for 5 % of a CPU. */
#define KICK_EMPTY_NS 12000000ull
#define KICK_NEWS_NS 10000000ull
#define KICK_DECISION_NS 36000000ull
#define KICK_BURST_NS 1000000000ull
/* How often a kick held for pvrun's CPU share looks whether pvf_allow allows it now. */
#define ALLOWANCE_LOOK_MS 10

struct ops {
	uint32_t n_ops, n_fb;
	struct pvf_op ops[PVF_MAX_VCPUS];
	struct pvf_feedback fb[PVF_MAX_VCPUS];
};

struct entry {
	struct pvf_entry_hdr h;
	cpu_set_t floating;
	struct ops fwd, back;
};

struct instance {
	int used;
	pthread_t thread;
	pthread_mutex_t lock;
	uint8_t *shm;
	pid_t tgid; /* QEMU: every thread changed must still be one of its (0: not checked) */
	char kick_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int kick_fd, stop_pipe[2], wake_pipe[2];
	/* The float group's files (pvf_group), -1 without one; under lock. */
	int vm_tasks_fd, float_tasks_fd, float_cpus_fd;
	/* Under lock. */
	int table_valid;
	struct pvf_table_hdr table;
	cpu_set_t base_floating;
	uint32_t hinted[PVF_MAX_HINTED];
	struct entry *entries; /* PVF_MAX_ENTRIES */
	uint64_t cursor;
	int phase, pinned_entry;
	uint32_t pinned_tid, pinned_vcpu;
	struct pvf_applied applied[PVF_MAX_APPLIED];
	uint32_t n_applied;
	struct pvf_stats stats;
	/* The kicks' costs and burst, ns (pvf_budget; read by the thread without the lock). */
	uint64_t empty_ns, news_ns, decision_ns, burst_ns;
	/* No kick is acted on once the process's CPU time (CLOCK_PROCESS_CPUTIME_ID) reaches this, ns
	 * (pvf_allow; read without the lock). */
	uint64_t cpu_limit;
	/* The thread's own: SCHED_FIFO within a budget (a guest flooding kicks gets a normal thread, not a CPU). */
	struct rt_budget rt;
};

static struct instance instances[PVF_MAX_INSTANCES];
static pthread_mutex_t instances_lock = PTHREAD_MUTEX_INITIALIZER;

static struct instance *get(int h)
{
	return h >= 0 && h < PVF_MAX_INSTANCES && instances[h].used ? &instances[h] : NULL;
}

/* ---- the guest's records ---- */

static uint64_t load_u64(const void *p)
{
	return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE);
}

/* One new record as the fast path sees it. */
struct seen {
	uint32_t tid;
	int single;      /* a SET whose mask names exactly one existing vCPU */
	uint32_t vcpu;   /* that vCPU */
};

/* Copy record `seq` once and validate the copy like the TypeScript decoder
 * (src/shm/reader.ts); 0 if it is one the decoder would accept. */
static int read_record(const struct instance *in, uint64_t seq, struct seen *out)
{
	const uint8_t *base = in->shm + PVSHM_RING_OFFSET + (seq % PVSHM_RING_ENTRIES) * PVSHM_RECORD_SIZE;
	struct pvshm_record r;
	struct pv_affinity_event e;
	uint32_t n = 0, last = 0;

	if (load_u64(base) != seq + 1)
		return -1;
	memcpy(&r, base, sizeof(r));
	if (r.seq != seq + 1 || r.type != PVSHM_REC_AFFINITY || r.len > PVSHM_RECORD_PAYLOAD || r.len < sizeof(e))
		return -1;
	memcpy(&e, r.payload, sizeof(e));
	if ((e.kind != PV_AFFINITY_SET && e.kind != PV_AFFINITY_EXIT) || e.tid == 0 || e.tid >= (1u << 22) || e.tgid == 0 || e.tgid >= (1u << 22))
		return -1;
	for (uint32_t v = 0; v < in->table.nr_vcpus; v++) {
		if (e.mask[v / 64] >> (v % 64) & 1) {
			n++;
			last = v;
		}
	}
	if (e.kind == PV_AFFINITY_SET && n == 0)
		return -1;
	out->tid = e.tid;
	out->single = e.kind == PV_AFFINITY_SET && n == 1;
	out->vcpu = last;
	return 0;
}

static int is_hinted(const struct instance *in, uint32_t tid)
{
	for (uint32_t i = 0; i < in->table.n_hinted; i++)
		if (in->hinted[i] == tid)
			return 1;
	return 0;
}

static int find_entry(const struct instance *in, uint32_t kind, uint32_t key)
{
	for (uint32_t i = 0; i < in->table.n_entries; i++)
		if (in->entries[i].h.kind == kind && in->entries[i].h.key == key)
			return (int)i;
	return -1;
}

/* ---- applying an entry ---- */

static void write_feedback(struct instance *in, const struct pvf_feedback *f, uint32_t tid, uint64_t seq)
{
	struct pvshm_vcpu_slot *s = (struct pvshm_vcpu_slot *)(in->shm + PVSHM_SLOTS_OFFSET + f->vcpu * PVSHM_SLOT_SIZE);
	/* The guest may have scribbled on the sequence: continue from an even value. */
	uint64_t fs = __atomic_load_n(&s->feedback_seq, __ATOMIC_RELAXED) & ~1ull;

	__atomic_store_n(&s->feedback_seq, fs + 1, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	s->state = f->exclusive ? PVSHM_VCPU_EXCLUSIVE : PVSHM_VCPU_FLOATING;
	s->pcpu = f->exclusive ? f->pcpu : -1;
	s->hint_tid = f->hint_tid == PVF_RECORD_TID ? tid : f->hint_tid;
	s->applied_ns = rt_clock_ns(CLOCK_MONOTONIC);
	s->record_seq = seq;
	__atomic_store_n(&s->feedback_seq, fs + 2, __ATOMIC_RELEASE);
}

/* Write thread `tid` to a cpuset's `tasks` (moves it there). 0, or -1 with errno. */
static int write_tid(int fd, int32_t tid)
{
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "%d\n", tid);

	return pwrite(fd, buf, (size_t)n, 0) == n ? 0 : -1;
}

/* Write `cpus` as a CPU list ("0,2,5") to a cpuset's `cpuset.cpus`. 0, or -1 with errno. */
static int write_cpus(int fd, const cpu_set_t *cpus)
{
	char buf[PVF_MAX_CPUS * 4 + 2];
	size_t n = 0;

	for (int c = 0; c < PVF_MAX_CPUS; c++)
		if (CPU_ISSET(c, cpus))
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, n ? ",%d" : "%d", c);
	buf[n++] = '\n';
	return pwrite(fd, buf, n, 0) == (ssize_t)n ? 0 : -1;
}

/* Whether op's thread has other CPUs than pvrun set last (op->was): someone else
 * placed it (an operator's taskset, between two of pvrun's looks), and it is theirs. */
static int moved_away(const struct instance *in, const struct entry *e, const struct pvf_op *op)
{
	cpu_set_t now, was;

	if (op->was == PVF_WAS_ANY || sched_getaffinity(op->tid, sizeof(now), &now) != 0)
		return 0;
	if (op->was == PVF_WAS_ONE) {
		CPU_ZERO(&was);
		CPU_SET(op->was_pcpu, &was);
	} else {
		/* The base state's floating set, or the entry's own (where its way back starts). */
		was = op->was == PVF_WAS_BASE ? in->base_floating : e->floating;
	}
	return !CPU_EQUAL(&now, &was);
}

/* Thread tid to SCHED_FIFO 1 (fifo) or SCHED_OTHER, its nice value kept; not inherited by its children. */
static int set_sched(pid_t tid, int fifo)
{
	struct sched_param sp = {.sched_priority = fifo ? 1 : 0};

	return sched_setscheduler(tid, (fifo ? SCHED_FIFO : SCHED_OTHER) | SCHED_RESET_ON_FORK, &sp);
}

/* Apply one entry's operations (or its way back), publish the feedback, and
 * queue the change for pvrun. */
static void apply(struct instance *in, int index, int back, uint32_t tid, uint64_t seq, uint64_t seen_at)
{
	struct entry *e = &in->entries[index];
	const struct ops *o = back ? &e->back : &e->fwd;
	const cpu_set_t *floating = back ? &in->base_floating : &e->floating;
	struct pvf_applied a = {.entry = index, .back = (uint32_t)back, .tid = tid, .seq = seq};
	cpu_set_t one;

	for (uint32_t i = 0; i < o->n_ops; i++) {
		const struct pvf_op *op = &o->ops[i];
		int failed = 0;

		if (op->group == PVF_GROUP_FLOAT) {
			/* Names no thread: the floating cpuset's CPUs, for every thread in it. */
			failed = write_cpus(in->float_cpus_fd, floating) != 0;
		} else if (in->tgid > 0 && syscall(SYS_tgkill, in->tgid, op->tid, 0) != 0 && errno != EPERM) {
			/* An exited vCPU thread's id may already be another process's (ids are
			 * reused) before pvrun hears of the exit: never touch it (ESRCH). */
			failed = 1;
			errno = ESRCH;
		} else if (op->cpus != PVF_CPUS_KEEP && moved_away(in, e, op)) {
			a.moved_ops |= 1ull << i;
			in->stats.moved++;
			continue;
		} else if (op->sched == PVF_SCHED_NORMAL && set_sched(op->tid, 0) != 0) {
			failed = 1;
		} else if (op->group == PVF_GROUP_LEAVE && write_tid(in->vm_tasks_fd, op->tid) != 0) {
			failed = 1;
		} else if (op->group == PVF_GROUP_JOIN) {
			/* Every CPU as the thread's own mask: the floating cpuset's later widenings reach it. */
			memset(&one, 0xff, sizeof(one));
			failed = sched_setaffinity(op->tid, sizeof(one), &one) != 0 || write_tid(in->float_tasks_fd, op->tid) != 0;
		} else if (op->cpus == PVF_CPUS_ONE) {
			CPU_ZERO(&one);
			CPU_SET(op->pcpu, &one);
			failed = sched_setaffinity(op->tid, sizeof(one), &one) != 0;
		} else if (op->cpus == PVF_CPUS_FLOATING) {
			failed = sched_setaffinity(op->tid, sizeof(*floating), floating) != 0;
		}
		if (!failed && op->nice != PVF_NICE_KEEP)
			failed = setpriority(PRIO_PROCESS, (id_t)op->tid, op->nice) != 0;
		/* Only once the thread is on its one CPU: a SCHED_FIFO vCPU thread never runs elsewhere. */
		if (!failed && op->sched == PVF_SCHED_FIFO)
			failed = set_sched(op->tid, 1) != 0;
		if (failed) {
			a.failed_ops |= 1ull << i;
			a.last_errno = errno;
			in->stats.pin_errors++;
		}
	}
	a.latency_ns = rt_clock_ns(CLOCK_MONOTONIC) - seen_at;
	for (uint32_t i = 0; i < o->n_fb; i++)
		write_feedback(in, &o->fb[i], tid, seq);
	in->applied[in->n_applied++] = a;
	in->stats.applied++;
	/* A thread left alone is the operator's: the table's states are no longer pvrun's to reach. */
	if (a.moved_ops)
		in->table_valid = 0;
}

/* Why a scan stops: the table no longer describes the state (pvrun decides). */
static void give_up(struct instance *in, uint64_t *counter)
{
	(*counter)++;
	in->table_valid = 0;
}

/* Decide the records from the cursor on, as far as the table covers them.
 * Records that change nothing (a thread with no hint exits or widens its
 * mask) pass; a new pin by a thread with no hint takes its entry (and, if the
 * entry has a way back, the table stays current while that thread holds its
 * vCPU: its release takes the way back); a hinted thread's release takes its
 * entry. Anything else ends the table. Called with the lock held. */
static void scan(struct instance *in, uint64_t head, uint64_t seen_at)
{
	struct seen r;

	for (; in->table_valid && in->cursor < head; in->cursor++) {
		uint64_t seq = in->cursor;
		int index;

		if (in->n_applied == PVF_MAX_APPLIED || head - seq > PVF_MAX_BATCH) {
			give_up(in, &in->stats.not_covered);
			return;
		}
		if (read_record(in, seq, &r)) {
			give_up(in, &in->stats.invalid);
			return;
		}
		if (in->phase == PVF_PINNED && r.tid == in->pinned_tid) {
			if (r.single && r.vcpu == in->pinned_vcpu)
				continue; /* pinned again where it is */
			if (r.single) {
				give_up(in, &in->stats.not_covered);
				return;
			}
			apply(in, in->pinned_entry, 1, r.tid, seq, seen_at);
			in->phase = PVF_BASE;
			continue;
		}
		if (is_hinted(in, r.tid)) {
			index = r.single || in->phase != PVF_BASE ? -1 : find_entry(in, PVF_RELEASE, r.tid);
			if (index < 0) {
				give_up(in, &in->stats.not_covered);
				return;
			}
			apply(in, index, 0, r.tid, seq, seen_at);
			in->table_valid = 0; /* a release ends the table */
			in->cursor++;
			return;
		}
		if (!r.single)
			continue; /* changes nothing */
		index = in->phase == PVF_BASE ? find_entry(in, PVF_NEW_PIN, r.vcpu) : -1;
		if (index < 0) {
			give_up(in, &in->stats.not_covered);
			return;
		}
		apply(in, index, 0, r.tid, seq, seen_at);
		if (in->entries[index].h.n_back_ops + in->entries[index].h.n_back_feedback == 0) {
			in->table_valid = 0;
			in->cursor++;
			return;
		}
		in->phase = PVF_PINNED;
		in->pinned_entry = index;
		in->pinned_tid = r.tid;
		in->pinned_vcpu = r.vcpu;
	}
}

/* The kick: decide what the table covers, ask the guest for the next kick,
 * and look once more (a record that came meanwhile sent no kick). */
static void on_kick(struct instance *in)
{
	uint64_t seen_at = rt_clock_ns(CLOCK_MONOTONIC);
	struct pvshm_header *hdr = (struct pvshm_header *)in->shm;

	/* pvrun's JavaScript thread holds the lock only inside this library's calls (microseconds). */
	pthread_mutex_lock(&in->lock);
	if (!in->table_valid) {
		in->stats.no_table++;
		goto out;
	}
	if (__atomic_load_n(&hdr->magic, __ATOMIC_RELAXED) != PVSHM_MAGIC || hdr->version != PVSHM_VERSION) {
		give_up(in, &in->stats.invalid);
		goto out;
	}
	for (int round = 0; round < 2 && in->table_valid; round++) {
		uint64_t head = load_u64(&hdr->ring_head);

		if (head < in->cursor) {
			give_up(in, &in->stats.invalid);
			break;
		}
		scan(in, head, seen_at);
		if (round == 0 && in->table_valid)
			__atomic_store_n(&hdr->kick_wanted, 1, __ATOMIC_SEQ_CST);
	}
out:
	pthread_mutex_unlock(&in->lock);
}

/* ---- the thread ---- */

static void try_connect(struct instance *in)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	memcpy(a.sun_path, in->kick_path, sizeof(a.sun_path));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return;
	}
	in->kick_fd = fd;
	__atomic_add_fetch(&in->stats.connects, 1, __ATOMIC_RELAXED);
}

/* Wait until `until_ns` (CLOCK_MONOTONIC) unless stopped; false when stopped. */
static int wait_until(struct instance *in, uint64_t until_ns)
{
	for (;;) {
		struct pollfd p = {.fd = in->stop_pipe[0], .events = POLLIN};
		uint64_t now = rt_clock_ns(CLOCK_MONOTONIC);
		struct timespec ts;

		if (now >= until_ns)
			return 1;
		ts.tv_sec = (time_t)((until_ns - now) / 1000000000ull);
		ts.tv_nsec = (long)((until_ns - now) % 1000000000ull);
		if (ppoll(&p, 1, &ts, NULL) > 0 && p.revents)
			return 0;
	}
}

/* The kicks' credit (ns; below zero after changes it could not foresee), refilled with time
 * up to the burst, and the head at the last look. */
struct kick_credit {
	int64_t credit;
	uint64_t refilled, last_head;
};

/* Wait while the process has used the CPU allowance pvf_allow gave it: pvrun as a whole used its
 * share, and its next sample of its CPU (at most 100 ms away) allows more; this looks every
 * ALLOWANCE_LOOK_MS meanwhile. 1 when allowed, 0 when the thread is told to stop meanwhile. */
static int wait_for_allowance(struct instance *in)
{
	if (rt_clock_ns(CLOCK_PROCESS_CPUTIME_ID) < __atomic_load_n(&in->cpu_limit, __ATOMIC_RELAXED))
		return 1;
	__atomic_fetch_add(&in->stats.credit_waits, 1, __ATOMIC_RELAXED);
	do {
		if (!wait_until(in, rt_clock_ns(CLOCK_MONOTONIC) + ALLOWANCE_LOOK_MS * 1000000ull))
			return 0;
	} while (rt_clock_ns(CLOCK_PROCESS_CPUTIME_ID) >= __atomic_load_n(&in->cpu_limit, __ATOMIC_RELAXED));
	return 1;
}

/* Pay for the kick just read (waiting for the CPU allowance, then for credit if there is none):
 * 1 if the ring has new records since the last look, 0 if not, -1 when the thread is told to
 * stop meanwhile. */
static int pay_kick(struct instance *in, struct kick_credit *k)
{
	const struct pvshm_header *hdr = (const struct pvshm_header *)in->shm;
	uint64_t now, head;
	int64_t burst, cost;
	int news;

	if (!wait_for_allowance(in))
		return -1;
	now = rt_clock_ns(CLOCK_MONOTONIC);
	head = load_u64(&hdr->ring_head);
	burst = (int64_t)__atomic_load_n(&in->burst_ns, __ATOMIC_RELAXED);
	cost = (int64_t)__atomic_load_n(head != k->last_head ? &in->news_ns : &in->empty_ns, __ATOMIC_RELAXED);
	k->credit = k->credit + (int64_t)(now - k->refilled) > burst ? burst : k->credit + (int64_t)(now - k->refilled);
	k->refilled = now;
	if (k->credit < cost) {
		/* Out of credit: act once the kick's cost has come back (that look covers every record
		 * the kicks read meanwhile announced). What else is queued waits in the socket: a full
		 * socket holds the guest's writes back in QEMU (virtio-serial), where they cost nothing. */
		__atomic_fetch_add(&in->stats.credit_waits, 1, __ATOMIC_RELAXED);
		if (!wait_until(in, now + (uint64_t)(cost - k->credit)))
			return -1;
		k->refilled = rt_clock_ns(CLOCK_MONOTONIC);
		k->credit = cost;
		head = load_u64(&hdr->ring_head);
	}
	k->credit -= cost;
	news = head != k->last_head;
	k->last_head = head;
	return news;
}

static void *run(void *arg)
{
	struct instance *in = arg;
	char buf[65536];
	struct kick_credit kicks = {.credit = (int64_t)in->burst_ns, .refilled = rt_clock_ns(CLOCK_MONOTONIC)};
	uint64_t applied;
	int news;

	rt_begin(&in->rt);
	for (;;) {
		struct pollfd p[2] = {{.fd = in->stop_pipe[0], .events = POLLIN}, {.fd = in->kick_fd, .events = POLLIN}};
		ssize_t got;

		if (in->kick_fd < 0)
			try_connect(in);
		p[1].fd = in->kick_fd;
		if (poll(p, 2, in->kick_fd < 0 ? RECONNECT_MS : -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (in->kick_fd < 0 || !p[1].revents)
			continue;
		got = read(in->kick_fd, buf, sizeof(buf));
		if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
			/* QEMU closed the socket: connect again (it listens until it exits). */
			close(in->kick_fd);
			in->kick_fd = -1;
			continue;
		}
		if (got < 0)
			continue;
		news = pay_kick(in, &kicks);
		if (news < 0)
			break;
		__atomic_add_fetch(&in->stats.kicks, 1, __ATOMIC_RELAXED);
		applied = __atomic_load_n(&in->stats.applied, __ATOMIC_RELAXED);
		on_kick(in);
		/* Each change applied costs on top: the next kick waits for that debt. */
		kicks.credit -= (int64_t)((__atomic_load_n(&in->stats.applied, __ATOMIC_RELAXED) - applied) *
					  __atomic_load_n(&in->decision_ns, __ATOMIC_RELAXED));
		/* Wake the JavaScript thread: it drains, logs and publishes the next table. A kick that
		 * found no record since the last look leaves it nothing to do. */
		if (news && write(in->wake_pipe[1], "k", 1) < 0 && errno != EAGAIN)
			__atomic_add_fetch(&in->stats.wake_errors, 1, __ATOMIC_RELAXED);
		rt_check(&in->rt);
	}
	return NULL;
}

/* ---- the API (pvfast.h) ---- */

/* Map the shared file, connect to the kick socket (retrying until QEMU
 * listens) and start the thread, which changes only threads of process
 * `tgid` (QEMU; 0 for tests whose stand-in threads are processes). A handle
 * >= 0, or -errno. */
int pvf_start(const char *shm_path, const char *kick_path, int tgid)
{
	struct instance *in = NULL;
	int h, fd, err;
	void *shm;

	if (!shm_path || !kick_path || strlen(kick_path) >= sizeof(in->kick_path) || tgid < 0)
		return -EINVAL;
	pthread_mutex_lock(&instances_lock);
	for (h = 0; h < PVF_MAX_INSTANCES && instances[h].used; h++)
		;
	if (h == PVF_MAX_INSTANCES) {
		pthread_mutex_unlock(&instances_lock);
		return -EMFILE;
	}
	in = &instances[h];
	memset(in, 0, sizeof(*in));
	in->used = 1;
	pthread_mutex_unlock(&instances_lock);
	in->kick_fd = in->stop_pipe[0] = in->stop_pipe[1] = in->wake_pipe[0] = in->wake_pipe[1] = -1;
	in->vm_tasks_fd = in->float_tasks_fd = in->float_cpus_fd = -1;
	strcpy(in->kick_path, kick_path);
	in->tgid = tgid;
	in->empty_ns = KICK_EMPTY_NS;
	in->news_ns = KICK_NEWS_NS;
	in->decision_ns = KICK_DECISION_NS;
	in->burst_ns = KICK_BURST_NS;
	in->cpu_limit = UINT64_MAX;
	fd = open(shm_path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		goto fail;
	shm = mmap(NULL, PVSHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (shm == MAP_FAILED)
		goto fail;
	in->shm = shm;
	in->entries = calloc(PVF_MAX_ENTRIES, sizeof(*in->entries));
	if (!in->entries || pipe2(in->stop_pipe, O_CLOEXEC) || pipe2(in->wake_pipe, O_CLOEXEC | O_NONBLOCK))
		goto fail;
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
	err = pthread_mutex_init(&in->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	if (err) {
		errno = err;
		goto fail;
	}
	err = pthread_create(&in->thread, NULL, run, in);
	if (err) {
		errno = err;
		goto fail;
	}
	pthread_setname_np(in->thread, "pvrun-fast"); /* how /proc and the tests know it */
	return h;
fail:
	err = errno ? errno : ENOMEM;
	if (in->shm)
		munmap(in->shm, PVSHM_SIZE);
	free(in->entries);
	for (int i = 0; i < 2; i++) {
		if (in->stop_pipe[i] >= 0)
			close(in->stop_pipe[i]);
		if (in->wake_pipe[i] >= 0)
			close(in->wake_pipe[i]);
	}
	in->used = 0;
	return -err;
}

static void close_group(struct instance *in)
{
	int *fds[] = {&in->vm_tasks_fd, &in->float_tasks_fd, &in->float_cpus_fd};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

/* The float group's files, or none (all NULL); the current table ends either way (its ops
 * were checked against the group that was). 0 or -errno. */
int pvf_group(int h, const char *vm_tasks, const char *float_tasks, const char *float_cpus)
{
	struct instance *in = get(h);
	int fds[3] = {-1, -1, -1}, err = 0;
	const char *paths[3] = {vm_tasks, float_tasks, float_cpus};

	if (!in || !vm_tasks != !float_tasks || !vm_tasks != !float_cpus)
		return -EINVAL;
	for (int i = 0; vm_tasks && i < 3; i++)
		if ((fds[i] = open(paths[i], O_WRONLY | O_CLOEXEC)) < 0) {
			err = -errno;
			for (int k = 0; k < i; k++)
				close(fds[k]);
			return err;
		}
	pthread_mutex_lock(&in->lock);
	in->table_valid = 0;
	close_group(in);
	in->vm_tasks_fd = fds[0];
	in->float_tasks_fd = fds[1];
	in->float_cpus_fd = fds[2];
	pthread_mutex_unlock(&in->lock);
	return 0;
}

/* The read end of the wake pipe (a byte arrives after each kick); from now on
 * the caller owns it and closes it. */
int pvf_wake_fd(int h)
{
	struct instance *in = get(h);

	return in ? in->wake_pipe[0] : -EBADF;
}

/* Copy and check `n_ops` operations and `n_fb` feedback records from buf at *off. */
static int parse_ops(struct ops *o, uint32_t n_ops, uint32_t n_fb, const cpu_set_t *floating, uint32_t nr_vcpus, int has_group, const uint8_t *buf, size_t len,
		     size_t *off)
{
	if (n_ops > PVF_MAX_VCPUS || n_fb > nr_vcpus || len < *off + n_ops * sizeof(struct pvf_op) + n_fb * sizeof(struct pvf_feedback))
		return -1;
	o->n_ops = n_ops;
	o->n_fb = n_fb;
	memcpy(o->ops, buf + *off, n_ops * sizeof(struct pvf_op));
	*off += n_ops * sizeof(struct pvf_op);
	memcpy(o->fb, buf + *off, n_fb * sizeof(struct pvf_feedback));
	*off += n_fb * sizeof(struct pvf_feedback);
	for (uint32_t k = 0; k < n_ops; k++) {
		const struct pvf_op *op = &o->ops[k];

		if (op->cpus > PVF_CPUS_FLOATING || (op->cpus == PVF_CPUS_ONE && (op->pcpu < 0 || op->pcpu >= PVF_MAX_CPUS)) ||
		    (op->cpus == PVF_CPUS_FLOATING && CPU_COUNT(floating) == 0) || (op->nice != PVF_NICE_KEEP && (op->nice < -20 || op->nice > 19)) ||
		    op->was > PVF_WAS_ENTRY || (op->was == PVF_WAS_ONE && (op->was_pcpu < 0 || op->was_pcpu >= PVF_MAX_CPUS)) || op->group > PVF_GROUP_FLOAT ||
		    (op->group != PVF_GROUP_NONE && !has_group) || op->sched > PVF_SCHED_FIFO ||
		    (op->sched == PVF_SCHED_FIFO && (op->cpus != PVF_CPUS_ONE || op->group != PVF_GROUP_NONE)))
			return -1;
		/* The floating set's write names no thread; every other op names one. */
		if (op->group == PVF_GROUP_FLOAT ? op->tid != 0 || op->cpus != PVF_CPUS_FLOATING || op->nice != PVF_NICE_KEEP || op->was != PVF_WAS_ANY
						 : op->tid <= 0 || (op->group == PVF_GROUP_LEAVE && op->cpus != PVF_CPUS_ONE) ||
							   (op->group == PVF_GROUP_JOIN && op->cpus != PVF_CPUS_FLOATING))
			return -1;
	}
	for (uint32_t k = 0; k < n_fb; k++)
		if (o->fb[k].vcpu >= nr_vcpus || (o->fb[k].exclusive && (o->fb[k].pcpu < 0 || o->fb[k].pcpu >= PVF_MAX_CPUS)))
			return -1;
	return 0;
}

static void mask_to_set(const uint64_t *mask, cpu_set_t *set)
{
	CPU_ZERO(set);
	for (int c = 0; c < PVF_MAX_CPUS; c++)
		if (mask[c / 64] >> (c % 64) & 1)
			CPU_SET(c, set);
}

/* Check a serialized table completely, then make it current: 0, -EINVAL,
 * or -EBUSY while changes are applied that pvrun has not taken yet. */
int pvf_publish(int h, const uint8_t *buf, size_t len)
{
	struct instance *in = get(h);
	struct pvf_table_hdr t;
	size_t off = sizeof(t);
	int err = -EINVAL;

	if (!in || !buf || len < sizeof(t))
		return -EINVAL;
	memcpy(&t, buf, sizeof(t));
	if (t.magic != PVF_TABLE_MAGIC || t.version != PVF_TABLE_VERSION || t.nr_vcpus == 0 || t.nr_vcpus > PVF_MAX_VCPUS ||
	    t.n_entries > PVF_MAX_ENTRIES || t.n_hinted > PVF_MAX_HINTED || len < off + t.n_hinted * 4ull)
		return -EINVAL;
	pthread_mutex_lock(&in->lock);
	in->table_valid = 0;
	if (in->n_applied) {
		err = -EBUSY;
		goto bad;
	}
	mask_to_set(t.base_floating, &in->base_floating);
	memcpy(in->hinted, buf + off, t.n_hinted * 4ull);
	off += t.n_hinted * 4ull;
	for (uint32_t i = 0; i < t.n_entries; i++) {
		struct entry *e = &in->entries[i];

		if (len < off + sizeof(e->h))
			goto bad;
		memcpy(&e->h, buf + off, sizeof(e->h));
		off += sizeof(e->h);
		mask_to_set(e->h.floating, &e->floating);
		if ((e->h.kind != PVF_NEW_PIN && e->h.kind != PVF_RELEASE) || (e->h.kind == PVF_RELEASE && e->h.n_back_ops + e->h.n_back_feedback) ||
		    parse_ops(&e->fwd, e->h.n_ops, e->h.n_feedback, &e->floating, t.nr_vcpus, in->float_cpus_fd >= 0, buf, len, &off) ||
		    parse_ops(&e->back, e->h.n_back_ops, e->h.n_back_feedback, &in->base_floating, t.nr_vcpus, in->float_cpus_fd >= 0, buf, len, &off))
			goto bad;
	}
	if (off != len)
		goto bad;
	in->table = t;
	in->cursor = t.based_seq;
	in->phase = PVF_BASE;
	in->table_valid = 1;
	pthread_mutex_unlock(&in->lock);
	return 0;
bad:
	pthread_mutex_unlock(&in->lock);
	return err;
}

/* Take the changes applied since the last call (at most `max`, which must be
 * PVF_MAX_APPLIED) with the table's state; `end` also ends the table (pvrun's
 * JavaScript thread is about to decide itself). The count taken, or -EINVAL. */
int pvf_take(int h, int end, struct pvf_take_hdr *hdr, struct pvf_applied *list, uint32_t max)
{
	struct instance *in = get(h);

	if (!in || !hdr || !list || max < PVF_MAX_APPLIED)
		return -EINVAL;
	pthread_mutex_lock(&in->lock);
	if (end)
		in->table_valid = 0;
	hdr->valid = (uint32_t)in->table_valid;
	hdr->phase = (uint32_t)in->phase;
	hdr->cursor = in->cursor;
	hdr->count = in->n_applied;
	memcpy(list, in->applied, in->n_applied * sizeof(*list));
	in->n_applied = 0;
	pthread_mutex_unlock(&in->lock);
	return (int)hdr->count;
}

int pvf_budget(int h, uint64_t burst_ns, uint64_t empty_ns, uint64_t news_ns, uint64_t decision_ns)
{
	struct instance *in = get(h);

	if (!in || burst_ns == 0 || burst_ns > INT64_MAX / 2 || empty_ns > burst_ns || news_ns > burst_ns || decision_ns > burst_ns)
		return -EINVAL;
	__atomic_store_n(&in->burst_ns, burst_ns, __ATOMIC_RELAXED);
	__atomic_store_n(&in->empty_ns, empty_ns, __ATOMIC_RELAXED);
	__atomic_store_n(&in->news_ns, news_ns, __ATOMIC_RELAXED);
	__atomic_store_n(&in->decision_ns, decision_ns, __ATOMIC_RELAXED);
	return 0;
}

int pvf_allow(int h, uint64_t ns)
{
	struct instance *in = get(h);
	uint64_t now;

	if (!in)
		return -EINVAL;
	now = rt_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	__atomic_store_n(&in->cpu_limit, ns > UINT64_MAX - now ? UINT64_MAX : now + ns, __ATOMIC_RELAXED);
	return 0;
}

/* Look at the ring now, as on a kick, in the caller's thread: pvrun calls it
 * when it finds records past the cursor that no kick announced to this thread
 * (the guest's kick took the agent channel, or none came). 0 or -EINVAL. */
int pvf_scan(int h)
{
	struct instance *in = get(h);

	if (!in)
		return -EINVAL;
	on_kick(in);
	return 0;
}

int pvf_stats(int h, struct pvf_stats *out)
{
	struct instance *in = get(h);

	if (!in || !out)
		return -EINVAL;
	pthread_mutex_lock(&in->lock);
	*out = in->stats;
	pthread_mutex_unlock(&in->lock);
	out->demotions = __atomic_load_n(&in->rt.demotions, __ATOMIC_RELAXED);
	return 0;
}

/* Stop the thread and release everything but the wake fd's read end, which
 * belongs to the caller from pvf_wake_fd on (it closes it). */
void pvf_stop(int h)
{
	struct instance *in = get(h);

	if (!in)
		return;
	if (write(in->stop_pipe[1], "s", 1) < 0) {
		/* cannot happen with an empty pipe; the join below would wait */
	}
	pthread_join(in->thread, NULL);
	if (in->kick_fd >= 0)
		close(in->kick_fd);
	close_group(in);
	close(in->stop_pipe[0]);
	close(in->stop_pipe[1]);
	close(in->wake_pipe[1]);
	munmap(in->shm, PVSHM_SIZE);
	free(in->entries);
	pthread_mutex_destroy(&in->lock);
	pthread_mutex_lock(&instances_lock);
	in->used = 0;
	pthread_mutex_unlock(&instances_lock);
}
