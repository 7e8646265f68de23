/* SPDX-License-Identifier: MIT */
/* pvwork: the guest workloads of pvrun's benchmark matrix (docs/benchmarks.md).
 * Each run prints exactly one result line, "pvwork-result " and a JSON object,
 * on stdout; errors are one line on stderr and exit status 2 (usage) or 1.
 *
 *   pvwork poll     [-c CPU] [-s SEC]          busy-poll worker pinned to CPU
 *   pvwork pingpong [-a CPU] [-c CPU] [-s SEC] two pinned threads bounce a token
 *   pvwork sleeper  [-p PERIOD_US] [-c CPU] [-s SEC] periodic wake-ups (pinned with -c)
 *   pvwork locks    [-t THREADS] [-s SEC]      threads contending on one mutex
 *   pvwork uspin    [-t THREADS] [-l LOCK,..] [-w WORK_US,..] [-s SEC]
 *                                              threads taking one lock for WORK_US of work each time,
 *                                              SEC per lock and length, one result line with a run each;
 *                                              (lists: commas or +, as the guest command line of pvrun's
 *                                              images has commas for spaces)
 *                                              LOCK: spin (pthread_spin_lock), spin-cs (the same,
 *                                              the section marked with pvcs_enter/exit), mutex, pvcs;
 *                                              each run reports the stalled sections (STALL_NS)
 *   pvwork klock    [-t THREADS] [-s SEC]      threads mapping and unmapping memory in one address
 *                                              space (bound by the guest kernel's mmap lock)
 *   pvwork phases   [-w WORK_US] [-s SEC]      a thread alternating WORK_US of busy work in
 *                                              pvwork_phase() (a uprobe's target) with as long idle
 *
 * With -b BURNERS, that many busy unpinned threads run beside the workload (the
 * VM's other work); their iterations per second are part of the result.
 *
 * Pinning is the hint: a thread that pins itself to one vCPU with
 * sched_setaffinity is what pvrun's affinity program sees. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pvcs.h"

#define MAX_THREADS 64
#define MAX_SAMPLES (1u << 20)

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "pvwork: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: pvwork poll [-c CPU] | pingpong [-a CPU] [-c CPU] | sleeper [-p PERIOD_US] [-c CPU] | "
			"locks [-t THREADS] | uspin [-t THREADS] [-l spin|spin-cs|mutex|pvcs,..] [-w WORK_US,..] | klock [-t THREADS] | phases [-w WORK_US]; "
			"all take [-s SEC] [-b BURNERS]; SEC may have a fraction (0.1 to 3600)\n");
	exit(2);
}

static long arg_long(const char *s, long min, long max, const char *name)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max) {
		fprintf(stderr, "pvwork: %s must be an integer from %ld to %ld (got \"%s\")\n", name, min, max, s);
		exit(2);
	}
	return v;
}

/* A duration in seconds, 0.1 to 3600, to the millisecond: in ns. */
static uint64_t arg_seconds(const char *s, const char *name)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0.1 && v <= 3600)) {
		fprintf(stderr, "pvwork: %s must be a number of seconds from 0.1 to 3600 (got \"%s\")\n", name, s);
		exit(2);
	}
	return (uint64_t)(v * 1000 + 0.5) * 1000000ull;
}

static struct timespec ns_to_timespec(uint64_t ns)
{
	return (struct timespec){.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
}

static void pin_self(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of n sorted values, in µs. */
static double pct_us(const uint64_t *sorted, size_t n, double q)
{
	if (n == 0) return 0;
	size_t i = (size_t)(q * (double)n);
	if (i >= n) i = n - 1;
	return (double)sorted[i] / 1000.0;
}

static atomic_int stop;

/* One iteration, the unit of work of poll's worker and of the burners, so that their counts
 * add up: a block of work on a "queue" (a volatile word), then the clock and the longest gap
 * between two iterations. The burners read the clock too; without it they did ~12 % more
 * iterations per CPU-second than the worker, so moving CPU time to the worker lowered the sum. */
struct iter {
	volatile uint64_t queue;
	uint64_t last, max_gap;
};

static inline uint64_t iterate(struct iter *it)
{
	for (int i = 0; i < 200; i++) it->queue += (uint64_t)i;
	uint64_t t = now_ns();
	if (t - it->last > it->max_gap) it->max_gap = t - it->last;
	it->last = t;
	return t;
}
static atomic_int burners_stop;

/* ---- poll: a DPDK-style worker, pinned, counting iterations and its longest stall ---- */

struct burner {
	pthread_t thread;
	uint64_t iterations;
	uint64_t max_gap; /* kept so that the burner's clock reads are not optimized away */
};

static void *burn(void *arg)
{
	struct burner *b = arg;
	uint64_t n = 0;
	struct iter it = {.last = now_ns()};
	while (!atomic_load_explicit(&burners_stop, memory_order_relaxed)) {
		iterate(&it);
		n++;
	}
	b->iterations = n;
	b->max_gap = it.max_gap;
	return NULL;
}

static struct burner burners[MAX_THREADS];
static int nburners;
static uint64_t burners_started;

static void start_burners(int n)
{
	nburners = n;
	burners_started = now_ns();
	for (int i = 0; i < n; i++)
		if ((errno = pthread_create(&burners[i].thread, NULL, burn, &burners[i]))) die("pthread_create");
}

/* Stop the burners: their iterations per second, all together. */
static double stop_burners(void)
{
	atomic_store(&burners_stop, 1);
	uint64_t total = 0;
	for (int i = 0; i < nburners; i++) {
		pthread_join(burners[i].thread, NULL);
		total += burners[i].iterations;
	}
	double secs = (double)(now_ns() - burners_started) / 1e9;
	return nburners ? (double)total / secs : 0;
}

static int run_poll(int cpu, uint64_t dur_ns)
{
	pin_self(cpu);
	uint64_t iterations = 0, start = now_ns(), end = start + dur_ns;
	struct iter it = {.last = start};
	for (;;) {
		uint64_t t = iterate(&it);
		iterations++;
		if (t >= end) break;
	}
	uint64_t last = it.last, max_gap = it.max_gap;
	double burned = stop_burners();
	double secs = (double)(last - start) / 1e9;
	printf("pvwork-result {\"workload\":\"poll\",\"cpu\":%d,\"seconds\":%.3f,\"iterations\":%llu,\"iterPerSec\":%.1f,"
	       "\"maxStallUs\":%.1f,\"burners\":%d,\"burnerIterPerSec\":%.1f}\n",
	       cpu, secs, (unsigned long long)iterations, (double)iterations / secs, (double)max_gap / 1000.0, nburners, burned);
	return 0;
}

/* ---- pingpong: two pinned threads hand a token back and forth through shared memory ---- */

static _Alignas(64) atomic_uint token;
static uint64_t *handoffs;
static size_t nhandoffs;

struct ponger {
	int cpu;
	unsigned mine; /* the token value this thread waits for */
};

static void *pong(void *arg)
{
	struct ponger *p = arg;
	pin_self(p->cpu);
	for (;;) {
		unsigned v;
		while ((v = atomic_load_explicit(&token, memory_order_acquire)) != p->mine)
			if (atomic_load_explicit(&stop, memory_order_relaxed)) return NULL;
		atomic_store_explicit(&token, p->mine ^ 1u, memory_order_release);
	}
}

static int run_pingpong(int cpu_a, int cpu_b, uint64_t dur_ns)
{
	handoffs = calloc(MAX_SAMPLES, sizeof *handoffs);
	if (!handoffs) die("calloc");
	struct ponger b = {.cpu = cpu_b, .mine = 1};
	pthread_t tb;
	pin_self(cpu_a);
	if ((errno = pthread_create(&tb, NULL, pong, &b))) die("pthread_create");
	uint64_t rounds = 0, start = now_ns(), t = start, end = start + dur_ns;
	/* Thread A owns token value 0: pass it (1), wait for it to come back (0). One round trip per loop. */
	while (t < end) {
		uint64_t sent = t;
		atomic_store_explicit(&token, 1u, memory_order_release);
		while (atomic_load_explicit(&token, memory_order_acquire) != 0u)
			;
		t = now_ns();
		if (nhandoffs < MAX_SAMPLES) handoffs[nhandoffs++] = t - sent;
		rounds++;
	}
	atomic_store(&stop, 1);
	pthread_join(tb, NULL);
	double burned = stop_burners();
	qsort(handoffs, nhandoffs, sizeof *handoffs, cmp_u64);
	double secs = (double)(t - start) / 1e9;
	printf("pvwork-result {\"workload\":\"pingpong\",\"cpus\":[%d,%d],\"seconds\":%.3f,\"roundTrips\":%llu,"
	       "\"roundTripsPerSec\":%.1f,\"p50Us\":%.2f,\"p99Us\":%.2f,\"maxUs\":%.1f,\"burners\":%d,\"burnerIterPerSec\":%.1f}\n",
	       cpu_a, cpu_b, secs, (unsigned long long)rounds, (double)rounds / secs, pct_us(handoffs, nhandoffs, 0.5),
	       pct_us(handoffs, nhandoffs, 0.99), pct_us(handoffs, nhandoffs, 1.0), nburners, burned);
	return 0;
}

/* ---- sleeper: a periodic wake-up probe; how late is each wake-up? ---- */

static int run_sleeper(long period_us, int cpu, uint64_t dur_ns)
{
	if (cpu >= 0) pin_self(cpu);
	size_t n = (size_t)(dur_ns / 1000ull / (uint64_t)period_us); /* 1..MAX_SAMPLES: checked in main */
	uint64_t *late = calloc(n, sizeof *late);
	if (!late) die("calloc");
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (size_t i = 0; i < n; i++) {
		next.tv_nsec += period_us * 1000;
		while (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		int r;
		while ((r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL)) == EINTR)
			;
		if (r) {
			errno = r;
			die("clock_nanosleep");
		}
		uint64_t due = (uint64_t)next.tv_sec * 1000000000ull + (uint64_t)next.tv_nsec, t = now_ns();
		late[i] = t > due ? t - due : 0;
	}
	double burned = stop_burners();
	qsort(late, n, sizeof *late, cmp_u64);
	printf("pvwork-result {\"workload\":\"sleeper\",\"cpu\":%d,\"periodUs\":%ld,\"wakeups\":%zu,\"p50Us\":%.1f,\"p99Us\":%.1f,"
	       "\"maxUs\":%.1f,\"burners\":%d,\"burnerIterPerSec\":%.1f}\n",
	       cpu, period_us, n, pct_us(late, n, 0.5), pct_us(late, n, 0.99), pct_us(late, n, 1.0), nburners, burned);
	free(late);
	return 0;
}

/* ---- locks: N threads contending on one mutex ---- */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile uint64_t shared_counter;

struct locker {
	pthread_t thread;
	uint64_t ops;
};

static void *contend(void *arg)
{
	struct locker *l = arg;
	uint64_t ops = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		pthread_mutex_lock(&lock);
		for (int i = 0; i < 50; i++) shared_counter++; /* a short critical section */
		pthread_mutex_unlock(&lock);
		for (int i = 0; i < 200; i++) __asm__ volatile("" ::: "memory"); /* work outside it */
		ops++;
	}
	l->ops = ops;
	return NULL;
}

/* `threads` threads running `fn` (each counting its operations in its struct locker) for
 * `dur_ns`; prints workload `name`'s result line. */
static int run_lockers(const char *name, void *(*fn)(void *), int threads, uint64_t dur_ns)
{
	static struct locker l[MAX_THREADS];
	uint64_t start = now_ns();
	for (int i = 0; i < threads; i++)
		if ((errno = pthread_create(&l[i].thread, NULL, fn, &l[i]))) die("pthread_create");
	struct timespec d = ns_to_timespec(dur_ns);
	while (nanosleep(&d, &d) == -1 && errno == EINTR)
		;
	atomic_store(&stop, 1);
	uint64_t ops = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(l[i].thread, NULL);
		ops += l[i].ops;
	}
	double secs = (double)(now_ns() - start) / 1e9;
	double burned = stop_burners();
	printf("pvwork-result {\"workload\":\"%s\",\"threads\":%d,\"seconds\":%.3f,\"ops\":%llu,\"opsPerSec\":%.1f,"
	       "\"burners\":%d,\"burnerIterPerSec\":%.1f}\n",
	       name, threads, secs, (unsigned long long)ops, (double)ops / secs, nburners, burned);
	return 0;
}

/* ---- uspin: threads taking one lock for a fixed amount of work, in four lock variants ---- */

/* Iterations of work() per µs of guest time on this kind of machine (TCG): a constant, so that
 * every configuration does the same work; the result reports the section's measured length. */
#define WORK_ITERS_PER_US 345

/* Work outside the lock: on the thread's own stack (no line shared with anyone). */
static inline void work_alone(uint32_t iters)
{
	volatile uint64_t sink = 0;
	for (uint32_t i = 0; i < iters; i++) sink += i;
}

/* Work inside: on the data the lock protects, which shares the lock's cache line, as in a
 * structure with its lock inside. A waiter spinning on the lock then slows the holder down (the
 * host's CPUs pass the line between them): the cost that a preempted or slowed holder
 * multiplies. */
static inline void work_on(volatile uint64_t *data, uint32_t iters)
{
	for (uint32_t i = 0; i < iters; i++) *data += i;
}

enum lock_kind { LOCK_SPIN, LOCK_SPIN_CS, LOCK_MUTEX, LOCK_PVCS };
static const char *const lock_names[] = {"spin", "spin-cs", "mutex", "pvcs"};

static enum lock_kind ulock_kind;
static uint32_t ulock_iters;
static uint64_t ustall_ns;
/* Each lock with the data it protects, on a cache line of its own. */
static _Alignas(64) struct {
	pthread_spinlock_t lock;
	volatile uint64_t data;
} uspin_lock;
static _Alignas(64) struct {
	pthread_mutex_t lock;
	volatile uint64_t data;
} umutex = {.lock = PTHREAD_MUTEX_INITIALIZER};
static _Alignas(64) struct {
	pvcs_lock_t lock;
	volatile uint64_t data;
} upvcs = {.lock = PVCS_LOCK_INIT};
_Static_assert(sizeof umutex <= 64, "the mutex and its data share a cache line");

#define USPIN_SAMPLES (1u << 17)
#define MAX_WORKS 8

/* A section that takes longer than this (ns) stalled: its holder lost its CPU (the host
 * preempted the vCPU, or the guest the thread). Far above a section's own length and a guest
 * interrupt under TCG, far below a host time slice. */
#define STALL_NS(work_us) (200000ull + 4000ull * (uint64_t)(work_us))

struct uspinner { /* one cache line each: the threads write their own counters */
	pthread_t thread;
	uint64_t ops, held_ns;
	uint64_t stalls, stalled_ns; /* sections longer than STALL_NS, and their summed length */
	uint64_t parks;              /* pvcs waits that parked (the thread's cell's count) */
	uint32_t nwaits;
	uint64_t *waits; /* acquisition times, ns */
} __attribute__((aligned(64)));

static void *uspin(void *arg)
{
	struct uspinner *u = arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		uint64_t t0 = now_ns();
		volatile uint64_t *data = NULL;
		switch (ulock_kind) {
		case LOCK_SPIN: pthread_spin_lock(&uspin_lock.lock); data = &uspin_lock.data; break;
		case LOCK_SPIN_CS: pthread_spin_lock(&uspin_lock.lock); pvcs_enter(); data = &uspin_lock.data; break;
		case LOCK_MUTEX: pthread_mutex_lock(&umutex.lock); data = &umutex.data; break;
		case LOCK_PVCS: pvcs_lock(&upvcs.lock); data = &upvcs.data; break;
		}
		uint64_t t1 = now_ns();
		work_on(data, ulock_iters);
		uint64_t t2 = now_ns();
		switch (ulock_kind) {
		case LOCK_SPIN: pthread_spin_unlock(&uspin_lock.lock); break;
		case LOCK_SPIN_CS: pvcs_exit(); pthread_spin_unlock(&uspin_lock.lock); break;
		case LOCK_MUTEX: pthread_mutex_unlock(&umutex.lock); break;
		case LOCK_PVCS: pvcs_unlock(&upvcs.lock); break;
		}
		if (u->nwaits < USPIN_SAMPLES) u->waits[u->nwaits++] = t1 - t0;
		u->held_ns += t2 - t1;
		if (t2 - t1 > ustall_ns) {
			u->stalls++;
			u->stalled_ns += t2 - t1;
		}
		u->ops++;
		work_alone(ulock_iters); /* as much work outside the lock as inside */
	}
	if (ulock_kind == LOCK_PVCS || ulock_kind == LOCK_SPIN_CS) u->parks = pvcs__thread_cell()->parks;
	return NULL;
}

/* One run of `dur_ns` with lock `kind` and `work_us` of work: its fields of the result's "runs". */
static void uspin_once(int threads, enum lock_kind kind, long work_us, uint64_t dur_ns, int first)
{
	static struct uspinner u[MAX_THREADS];
	ulock_kind = kind;
	ulock_iters = (uint32_t)(work_us * WORK_ITERS_PER_US);
	ustall_ns = STALL_NS(work_us);
	atomic_store(&stop, 0);
	memset(u, 0, sizeof u);
	uint64_t start = now_ns();
	for (int i = 0; i < threads; i++) {
		if (!(u[i].waits = calloc(USPIN_SAMPLES, sizeof *u[i].waits))) die("calloc");
		if ((errno = pthread_create(&u[i].thread, NULL, uspin, &u[i]))) die("pthread_create");
	}
	struct timespec d = ns_to_timespec(dur_ns);
	while (nanosleep(&d, &d) == -1 && errno == EINTR)
		;
	atomic_store(&stop, 1);
	uint64_t ops = 0, held = 0, stalls = 0, stalled = 0, parks = 0;
	size_t n = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(u[i].thread, NULL);
		ops += u[i].ops;
		held += u[i].held_ns;
		stalls += u[i].stalls;
		stalled += u[i].stalled_ns;
		parks += u[i].parks;
		n += u[i].nwaits;
	}
	double secs = (double)(now_ns() - start) / 1e9;
	/* Time a stalled holder kept the lock: each stalled section's length less an unstalled
	 * section's mean length, summed (only one thread holds the lock at a time). */
	double normal = ops > stalls ? (double)(held - stalled) / (double)(ops - stalls) : 0;
	double lost = (double)stalled - normal * (double)stalls;
	uint64_t *all = calloc(n ? n : 1, sizeof *all);
	if (!all) die("calloc");
	for (int i = 0, k = 0; i < threads; i++) {
		memcpy(all + k, u[i].waits, u[i].nwaits * sizeof *all);
		k += (int)u[i].nwaits;
		free(u[i].waits);
	}
	qsort(all, n, sizeof *all, cmp_u64);
	printf("%s{\"lock\":\"%s\",\"workUs\":%ld,\"seconds\":%.3f,\"ops\":%llu,\"opsPerSec\":%.1f,\"sectionUs\":%.2f,"
	       "\"p50WaitUs\":%.2f,\"p99WaitUs\":%.2f,\"maxWaitUs\":%.1f,\"stalls\":%llu,\"stalledMsPerSec\":%.3f,\"parks\":%llu}",
	       first ? "" : ",", lock_names[kind], work_us, secs, (unsigned long long)ops, (double)ops / secs,
	       ops ? (double)held / (double)ops / 1000.0 : 0, pct_us(all, n, 0.5), pct_us(all, n, 0.99), pct_us(all, n, 1.0),
	       (unsigned long long)stalls, lost > 0 ? lost / 1e6 / secs : 0, (unsigned long long)parks);
	free(all);
}

/* Every lock of `kinds` (a bit per enum lock_kind) with every length of `works`, in that order. */
static int run_uspin(int threads, unsigned kinds, const long *works, int nworks, uint64_t dur_ns)
{
	if ((errno = pthread_spin_init(&uspin_lock.lock, PTHREAD_PROCESS_PRIVATE))) die("pthread_spin_init");
	if (kinds & (1u << LOCK_SPIN_CS | 1u << LOCK_PVCS)) pvcs_init();
	printf("pvwork-result {\"workload\":\"uspin\",\"threads\":%d,\"runs\":[", threads);
	int first = 1;
	for (int w = 0; w < nworks; w++)
		for (int k = 0; k < (int)(sizeof lock_names / sizeof *lock_names); k++)
			if (kinds & (1u << k)) {
				uspin_once(threads, (enum lock_kind)k, works[w], dur_ns, first);
				first = 0;
			}
	double burned = stop_burners();
	printf("],\"pvcsActive\":%d,\"burners\":%d,\"burnerIterPerSec\":%.1f}\n",
	       (kinds & (1u << LOCK_SPIN_CS | 1u << LOCK_PVCS)) ? pvcs_active() : 0, nburners, burned);
	return 0;
}

/* ---- klock: threads mapping, touching and unmapping memory: the guest kernel's mmap lock ---- */

static void *klocker(void *arg)
{
	struct locker *l = arg;
	uint64_t ops = 0;
	long page = sysconf(_SC_PAGESIZE);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		char *p = mmap(NULL, (size_t)page * 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) die("mmap");
		for (int i = 0; i < 4; i++) p[(long)i * page] = 1; /* page faults: the lock taken for read */
		if (munmap(p, (size_t)page * 4) != 0) die("munmap");
		ops++;
	}
	l->ops = ops;
	return NULL;
}


/* ---- phases: a thread that alternates a latency-critical phase with idle time ---- */

/* One phase of work_us of busy work: a named, never-inlined function, so that a uprobe and a
 * uretprobe on it (docs/examples/hint-scripts/phase-uprobe.bt) see each phase begin and end. */
__attribute__((noinline, used)) uint64_t pvwork_phase(long work_us)
{
	uint64_t end = now_ns() + (uint64_t)work_us * 1000u, n = 0;
	while (now_ns() < end) n++;
	return n;
}

static int run_phases(long work_us, uint64_t dur_ns)
{
	uint64_t start = now_ns(), phases = 0;
	while (now_ns() - start < dur_ns) {
		pvwork_phase(work_us);
		phases++;
		struct timespec idle = ns_to_timespec((uint64_t)work_us * 1000u);
		nanosleep(&idle, NULL);
	}
	double burned = stop_burners();
	printf("pvwork-result {\"workload\":\"phases\",\"seconds\":%.3f,\"phases\":%llu,\"workUs\":%ld,\"burners\":%d,\"burnerIterPerSec\":%.1f}\n",
	       (double)(now_ns() - start) / 1e9, (unsigned long long)phases, work_us, nburners, burned);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) usage();
	const char *what = argv[1];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1) ncpu = 1;
	int cpu = 0, other = 1, nburn = 0, threads = 4, sleeper_cpu = -1;
	uint64_t dur_ns = 5000000000ull;
	long period_us = 1000, works[MAX_WORKS] = {10};
	int nworks = 1;
	unsigned kinds = 1u << LOCK_SPIN;
	int opt;
	optind = 2;
	while ((opt = getopt(argc, argv, "a:b:c:s:p:t:l:w:")) != -1) {
		switch (opt) {
		case 'a': cpu = (int)arg_long(optarg, 0, ncpu - 1, "-a CPU"); break;
		case 'c':
			if (strcmp(what, "pingpong") == 0) other = (int)arg_long(optarg, 0, ncpu - 1, "-c CPU");
			else cpu = sleeper_cpu = (int)arg_long(optarg, 0, ncpu - 1, "-c CPU");
			break;
		case 'b': nburn = (int)arg_long(optarg, 0, MAX_THREADS, "-b BURNERS"); break;
		case 's': dur_ns = arg_seconds(optarg, "-s SEC"); break;
		case 'p': period_us = arg_long(optarg, 50, 1000000, "-p PERIOD_US"); break;
		case 't': threads = (int)arg_long(optarg, 1, MAX_THREADS, "-t THREADS"); break;
		case 'w': {
			/* A comma-separated list of lengths. */
			char *save = NULL;
			nworks = 0;
			for (char *tok = strtok_r(optarg, ",+", &save); tok; tok = strtok_r(NULL, ",+", &save)) {
				if (nworks == MAX_WORKS) {
					fprintf(stderr, "pvwork: -w takes at most %d lengths\n", MAX_WORKS);
					return 2;
				}
				works[nworks++] = arg_long(tok, 0, 100000, "-w WORK_US");
			}
			if (nworks == 0) usage();
			break;
		}
		case 'l': {
			/* A comma-separated list of locks. */
			char *save = NULL;
			kinds = 0;
			for (char *tok = strtok_r(optarg, ",+", &save); tok; tok = strtok_r(NULL, ",+", &save)) {
				size_t k = 0;
				while (k < sizeof lock_names / sizeof *lock_names && strcmp(tok, lock_names[k])) k++;
				if (k == sizeof lock_names / sizeof *lock_names) {
					fprintf(stderr, "pvwork: -l LOCK must be spin, spin-cs, mutex or pvcs (got \"%s\")\n", tok);
					return 2;
				}
				kinds |= 1u << k;
			}
			if (kinds == 0) usage();
			break;
		}
		default: usage();
		}
	}
	if (optind != argc) usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	int known = !strcmp(what, "poll") || !strcmp(what, "pingpong") || !strcmp(what, "sleeper") || !strcmp(what, "locks") ||
		    !strcmp(what, "uspin") || !strcmp(what, "klock") || !strcmp(what, "phases");
	if (!known) usage();
	if (!strcmp(what, "pingpong") && cpu == other) {
		fprintf(stderr, "pvwork: pingpong needs two different CPUs (-a %d -c %d)\n", cpu, other);
		return 2;
	}
	if (!strcmp(what, "sleeper") && (dur_ns / 1000ull / (uint64_t)period_us == 0 || dur_ns / 1000ull / (uint64_t)period_us > MAX_SAMPLES)) {
		fprintf(stderr, "pvwork: %.3f s at %ld µs per wake-up is too many or too few wake-ups (1..%u)\n", (double)dur_ns / 1e9, period_us, MAX_SAMPLES);
		return 2;
	}
	start_burners(nburn);
	if (!strcmp(what, "poll")) return run_poll(cpu, dur_ns);
	if (!strcmp(what, "pingpong")) return run_pingpong(cpu, other, dur_ns);
	if (!strcmp(what, "sleeper")) return run_sleeper(period_us, sleeper_cpu, dur_ns);
	if (!strcmp(what, "uspin")) return run_uspin(threads, kinds, works, nworks, dur_ns);
	if (!strcmp(what, "klock")) return run_lockers("klock", klocker, threads, dur_ns);
	if (!strcmp(what, "phases")) return run_phases(works[0] ? works[0] : 1, dur_ns);
	return run_lockers("locks", contend, threads, dur_ns);
}
