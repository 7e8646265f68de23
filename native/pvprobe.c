/* SPDX-License-Identifier: MIT */
/* pvprobe: this machine's floor for the move a sparse hint's pin needs, for
 * `pvrun bench hint-latency` (docs/benchmarks.md). When a guest thread pins
 * itself after a pause, its vCPU's host thread is usually runnable on the CPU
 * where pvrun's fast path wakes (the fast path preempted it) and the CPU to
 * grant is idle; the grant then moves a runnable thread onto an idle CPU, and
 * the kernel must wake that CPU. This measures exactly that from a SCHED_FIFO
 * thread: a busy thread runs on CPU A, the prober (also on A) sleeps, wakes,
 * preempts it, and times sched_setaffinity(busy, {B}). As a reference, the
 * same move of a thread that sleeps. Prints one JSON line of samples in µs.
 *
 *   pvprobe [-n SAMPLES] [-g GAP_US]      (CPUs: the lowest and highest allowed)
 *
 * Exit status 2 for bad arguments, 1 when it cannot measure (one CPU, no
 * SCHED_FIFO), with one line on stderr. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 10000

static atomic_int stop, busy_tid, sleep_tid;
static int wake_pipe[2];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int pin(pid_t tid, int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	return sched_setaffinity(tid, sizeof(s), &s);
}

/* Runs until told to stop, wherever it is pinned. */
static void *busy(void *arg)
{
	(void)arg;
	atomic_store(&busy_tid, (int)syscall(SYS_gettid));
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		;
	return NULL;
}

/* Sleeps in read() until the pipe is closed. */
static void *sleeper(void *arg)
{
	char c;

	(void)arg;
	atomic_store(&sleep_tid, (int)syscall(SYS_gettid));
	while (read(wake_pipe[0], &c, 1) > 0)
		;
	return NULL;
}

static void print_us(const char *name, const uint64_t *ns, int n, int last)
{
	printf("\"%s\":[", name);
	for (int i = 0; i < n; i++)
		printf("%s%.2f", i ? "," : "", (double)ns[i] / 1000.0);
	printf("]%s", last ? "" : ",");
}

static long arg_long(const char *s, long min, long max, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max) {
		fprintf(stderr, "pvprobe: %s must be an integer from %ld to %ld (got \"%s\")\n", what, min, max, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	int n = 300, gap_us = 5000, opt, a = -1, b = -1;
	static uint64_t runnable[MAX_SAMPLES], sleeping[MAX_SAMPLES];
	struct sched_param fifo = {.sched_priority = 1};
	pthread_t tb, ts;
	cpu_set_t allowed;
	struct timespec gap;

	opterr = 0; /* one line of our own instead of getopt's */
	while ((opt = getopt(argc, argv, "n:g:")) != -1) {
		if (opt == 'n')
			n = (int)arg_long(optarg, 1, MAX_SAMPLES, "-n SAMPLES");
		else if (opt == 'g')
			gap_us = (int)arg_long(optarg, 0, 1000000, "-g GAP_US");
		else {
			fprintf(stderr, "pvprobe: unknown option or missing value -%c; usage: pvprobe [-n SAMPLES] [-g GAP_US]\n", optopt);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: pvprobe [-n SAMPLES] [-g GAP_US]\n");
		return 2;
	}
	if (sched_getaffinity(0, sizeof(allowed), &allowed)) {
		fprintf(stderr, "pvprobe: sched_getaffinity: %s\n", strerror(errno));
		return 1;
	}
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &allowed)) {
			if (a < 0)
				a = c;
			b = c;
		}
	if (a == b) {
		fprintf(stderr, "pvprobe: needs two CPUs, this process may use one\n");
		return 1;
	}
	if (pipe(wake_pipe) || pthread_create(&tb, NULL, busy, NULL) || pthread_create(&ts, NULL, sleeper, NULL)) {
		fprintf(stderr, "pvprobe: cannot start its threads: %s\n", strerror(errno));
		return 1;
	}
	while (!atomic_load(&busy_tid) || !atomic_load(&sleep_tid))
		sched_yield();
	/* After the threads: they stay SCHED_OTHER, like a vCPU thread. */
	if (pin(0, a) || sched_setscheduler(0, SCHED_FIFO, &fifo)) {
		fprintf(stderr, "pvprobe: needs SCHED_FIFO on CPU %d: %s\n", a, strerror(errno));
		atomic_store(&stop, 1);
		return 1;
	}
	gap.tv_sec = gap_us / 1000000;
	gap.tv_nsec = (long)(gap_us % 1000000) * 1000;
	for (int i = 0; i < n; i++) {
		uint64_t t;

		pin(atomic_load(&busy_tid), a);
		nanosleep(&gap, NULL); /* the busy thread runs on A meanwhile; B goes idle */
		t = now_ns();          /* awake again, this thread preempted it */
		pin(atomic_load(&busy_tid), b);
		runnable[i] = now_ns() - t;
		nanosleep(&gap, NULL);
		t = now_ns();
		pin(atomic_load(&sleep_tid), i % 2 ? a : b);
		sleeping[i] = now_ns() - t;
	}
	atomic_store(&stop, 1);
	close(wake_pipe[1]);
	pthread_join(tb, NULL);
	pthread_join(ts, NULL);
	printf("pvprobe-result {\"from\":%d,\"to\":%d,\"gapUs\":%d,", a, b, gap_us);
	print_us("runnableToIdleUs", runnable, n, 0);
	print_us("sleepingUs", sleeping, n, 1);
	printf("}\n");
	return 0;
}
