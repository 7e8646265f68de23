/* SPDX-License-Identifier: MIT */
/* pvcs: the guest's tool for user critical sections (pvcs.h).
 *
 *   pvcs hold SECONDS [-u UID]   enter a section on this vCPU and stay busy in it
 *                                for SECONDS, while a second thread (on another
 *                                vCPU) samples the host's feedback for this one
 *   pvcs bench [-n N]            ns per enter/exit pair and per uncontended
 *                                lock/unlock, beside pthread_spin and pthread_mutex
 *   pvcs contend SECONDS [-t N]  N threads (default 4) that contend for kernel
 *                                locks: a pipe's mutex, and this process's
 *                                mmap lock (an rwsem)
 *
 * Lines are key=value, one per result, for tests and the benchmark. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "pvcs.h"

static int usage(void);

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct sampler {
	int cpu;            /* the holder's vCPU */
	volatile int stop;
	unsigned samples, preempted, overloaded;
};

/* Every 1 ms: the host's flags for the holder's vCPU. */
static void *sample(void *arg)
{
	struct sampler *s = arg;

	while (!s->stop) {
		s->samples++;
		s->preempted += pvcs_vcpu_preempted(s->cpu);
		s->overloaded += pvcs_pcpu_overloaded(s->cpu);
		usleep(1000);
	}
	return NULL;
}

static int hold(double seconds)
{
	struct sampler s = {.cpu = sched_getcpu()};
	pthread_attr_t attr;
	cpu_set_t others;
	pthread_t t;
	uint64_t end;
	int n = (int)sysconf(_SC_NPROCESSORS_ONLN);

	if (!pvcs_active()) {
		fprintf(stderr, "pvcs: no pvrun shared memory (is the agent running? %s)\n", PVCS_SOCKET);
		return 1;
	}
	/* The sampler runs on every vCPU but the holder's. */
	CPU_ZERO(&others);
	for (int c = 0; c < n && c < CPU_SETSIZE; c++)
		if (c != s.cpu)
			CPU_SET(c, &others);
	pthread_attr_init(&attr);
	if (CPU_COUNT(&others) > 0)
		pthread_attr_setaffinity_np(&attr, sizeof(others), &others);
	if (pthread_create(&t, &attr, sample, &s)) {
		fprintf(stderr, "pvcs: pthread_create failed\n");
		return 1;
	}
	pvcs_enter();
	printf("pvcs: holding cpu=%d cell=%u tid=%d\n", s.cpu,
	       (unsigned)(((uint8_t *)pvcs__cell - (uint8_t *)pvcs__area - PVSHM_CELLS_OFFSET) / PVSHM_CELL_SIZE),
	       (int)pvcs__gettid());
	fflush(stdout);
	end = now_ns() + (uint64_t)(seconds * 1e9);
	while (now_ns() < end)
		;
	pvcs_exit();
	s.stop = 1;
	pthread_join(t, NULL);
	printf("pvcs: held cpu=%d samples=%u preempted=%u overloaded=%u\n", s.cpu, s.samples, s.preempted, s.overloaded);
	return 0;
}

static double per_op(uint64_t start, long n)
{
	return (double)(now_ns() - start) / (double)n;
}

static void *idle(void *arg)
{
	(void)arg;
	pause();
	return NULL;
}

static int bench(long n)
{
	pvcs_lock_t l = PVCS_LOCK_INIT;
	pthread_spinlock_t spin;
	pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
	uint64_t t0;
	pthread_t other;

	/* A second thread, so that libc takes its multi-threaded paths as a real user would. */
	pthread_create(&other, NULL, idle, NULL);
	pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE);
	printf("pvcs: bench active=%d n=%ld\n", pvcs_active(), n);
	for (int rep = 0; rep < 3; rep++) {
		t0 = now_ns();
		for (long i = 0; i < n; i++) {
			pvcs_enter();
			pvcs_exit();
		}
		printf("pvcs: enter_exit_ns=%.1f", per_op(t0, n));
		t0 = now_ns();
		for (long i = 0; i < n; i++) {
			pvcs_lock(&l);
			pvcs_unlock(&l);
		}
		printf(" pvcs_lock_ns=%.1f", per_op(t0, n));
		t0 = now_ns();
		for (long i = 0; i < n; i++) {
			pthread_spin_lock(&spin);
			pthread_spin_unlock(&spin);
		}
		printf(" spin_lock_ns=%.1f", per_op(t0, n));
		t0 = now_ns();
		for (long i = 0; i < n; i++) {
			pthread_mutex_lock(&mutex);
			pthread_mutex_unlock(&mutex);
		}
		printf(" mutex_lock_ns=%.1f\n", per_op(t0, n));
	}
	return 0;
}

struct contender {
	int fd, index;
	uint64_t end;
	unsigned long ops;
};

/* Even threads write to the shared pipe (its mutex), odd ones map, touch and
 * unmap memory (the process's mmap lock, taken for writing and, by the page
 * fault, for reading). */
static void *contend_main(void *arg)
{
	struct contender *c = arg;
	char byte = 'x';

	while (now_ns() < c->end) {
		if (c->index % 2 == 0) {
			if (write(c->fd, &byte, 1) != 1)
				break;
		} else {
			char *p = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (p == MAP_FAILED)
				break;
			p[0] = 1;
			munmap(p, 1 << 16);
		}
		c->ops++;
	}
	return NULL;
}

static void *drain_main(void *arg)
{
	char buf[4096];
	int fd = *(int *)arg;

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

static int contend(double seconds, int n)
{
	struct contender c[64];
	pthread_t t[64], drainer;
	unsigned long ops = 0;
	int fds[2];

	if (n < 1 || n > 64 || pipe(fds))
		return usage();
	pthread_create(&drainer, NULL, drain_main, &fds[0]);
	for (int i = 0; i < n; i++) {
		c[i] = (struct contender){.fd = fds[1], .index = i, .end = now_ns() + (uint64_t)(seconds * 1e9)};
		pthread_create(&t[i], NULL, contend_main, &c[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		ops += c[i].ops;
	}
	close(fds[1]);
	pthread_join(drainer, NULL);
	close(fds[0]);
	printf("pvcs: contended threads=%d ops=%lu\n", n, ops);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: pvcs hold SECONDS [-u UID] | pvcs bench [-n N] | pvcs contend SECONDS [-t THREADS]\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "hold") == 0) {
		char *end;
		double seconds = strtod(argv[2], &end);

		if (*end || !(seconds > 0 && seconds <= 600))
			return usage();
		if (argc == 5 && strcmp(argv[3], "-u") == 0) {
			uid_t uid = (uid_t)strtoul(argv[4], &end, 10);

			if (*end || setgid(uid) || setuid(uid)) {
				fprintf(stderr, "pvcs: cannot become uid %s: %s\n", argv[4], strerror(errno));
				return 1;
			}
		} else if (argc != 3) {
			return usage();
		}
		return hold(seconds);
	}
	if (argc >= 3 && strcmp(argv[1], "contend") == 0) {
		char *end;
		double seconds = strtod(argv[2], &end);
		int threads = 4;

		if (*end || !(seconds > 0 && seconds <= 600))
			return usage();
		if (argc == 5 && strcmp(argv[3], "-t") == 0)
			threads = (int)strtol(argv[4], NULL, 10);
		else if (argc != 3)
			return usage();
		return contend(seconds, threads);
	}
	if (argc >= 2 && strcmp(argv[1], "bench") == 0) {
		long n = 1000000;

		if (argc == 4 && strcmp(argv[2], "-n") == 0)
			n = strtol(argv[3], NULL, 10);
		else if (argc != 2)
			return usage();
		if (n <= 0)
			return usage();
		return bench(n);
	}
	return usage();
}
