/* grant MODE N [hog]: N spinning threads on CPUs 0-1 (as root). 20 times: thread 0 is granted
 * CPU 1 the way MODE says, then released:
 *   threads  every other thread pinned to CPU 0, thread 0 to CPU 1, one sched_setaffinity each
 *            with the fast path's checks (tgkill, sched_getaffinity): what --pv-placement threads does
 *   weight   thread 0 alone is touched: pinned to CPU 1 and its nice value set to -20; the others
 *            keep CPUs 0-1 and nice 0
 *   fifo     thread 0 pinned to CPU 1 and made SCHED_FIFO 1
 * Prints the grant's and the release's system-call time (p50 / max of 20, µs) and thread 0's share of a
 * CPU, and the other threads' total, in the 100 ms after the grant and from 100 ms to 1 s.
 * With "hog", a process in a session of its own (another autogroup) spins on both CPUs meanwhile.
 * cc -O2 -pthread -o grant grant.c */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static volatile int stop;
static pid_t tids[256];
static clockid_t clk[256];
static void *spin(void *a)
{
	tids[(long)a] = (pid_t)syscall(SYS_gettid);
	pthread_getcpuclockid(pthread_self(), &clk[(long)a]);
	while (!stop)
		;
	return NULL;
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static double cpu(int i) { struct timespec t; clock_gettime(clk[i], &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static double others(int n) { double s = 0; for (int i = 1; i < n; i++) s += cpu(i); return s; }
static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
int main(int argc, char **argv)
{
	if (argc < 3) { fprintf(stderr, "usage: grant threads|weight|fifo N [hog]\n"); return 2; }
	const char *mode = argv[1];
	int n = atoi(argv[2]), reps = 20;
	pid_t hog = 0;
	if (argc > 3) {
		hog = fork();
		if (hog == 0) {
			setsid();
			if (fork() == 0) for (;;) ;
			for (;;) ;
		}
	}
	/* the measuring thread: SCHED_FIFO, as pvrun's fast path is */
	struct sched_param top = {.sched_priority = 10}, one_p = {.sched_priority = 1}, zero_p = {0};
	sched_setscheduler(0, SCHED_FIFO, &top);
	pthread_t th[256];
	pthread_attr_t at; pthread_attr_init(&at); pthread_attr_setinheritsched(&at, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&at, SCHED_OTHER); pthread_attr_setschedparam(&at, &zero_p);
	for (long i = 0; i < n; i++) pthread_create(&th[i], &at, spin, (void *)i);
	usleep(300000);
	cpu_set_t c0, c1, both, cur; CPU_ZERO(&c0); CPU_SET(0, &c0); CPU_ZERO(&c1); CPU_SET(1, &c1); CPU_ZERO(&both); CPU_SET(0, &both); CPU_SET(1, &both);
	double g[64], r[64], t_early[64], o_early[64], t_late[64], o_late[64];
	for (int k = 0; k < reps; k++) {
		double c_t0 = cpu(0), c_o0 = others(n), t0 = now();
		if (!strcmp(mode, "threads")) {
			for (int i = 1; i < n; i++) { syscall(SYS_tgkill, getpid(), tids[i], 0); sched_getaffinity(tids[i], sizeof cur, &cur); sched_setaffinity(tids[i], sizeof c0, &c0); }
			syscall(SYS_tgkill, getpid(), tids[0], 0); sched_getaffinity(tids[0], sizeof cur, &cur); sched_setaffinity(tids[0], sizeof c1, &c1);
		} else {
			syscall(SYS_tgkill, getpid(), tids[0], 0); sched_getaffinity(tids[0], sizeof cur, &cur); sched_setaffinity(tids[0], sizeof c1, &c1);
			if (!strcmp(mode, "weight")) setpriority(PRIO_PROCESS, tids[0], -20);
			else sched_setscheduler(tids[0], SCHED_FIFO, &one_p);
		}
		double t1 = now();
		g[k] = t1 - t0;
		usleep(100000);
		double c_t1 = cpu(0), c_o1 = others(n), t2 = now();
		usleep(900000);
		double c_t2 = cpu(0), c_o2 = others(n), t3 = now();
		t_early[k] = (c_t1 - c_t0) / (t2 - t0); o_early[k] = (c_o1 - c_o0) / (t2 - t0);
		t_late[k] = (c_t2 - c_t1) / (t3 - t2); o_late[k] = (c_o2 - c_o1) / (t3 - t2);
		double t4 = now();
		if (!strcmp(mode, "threads")) {
			for (int i = 0; i < n; i++) { syscall(SYS_tgkill, getpid(), tids[i], 0); sched_getaffinity(tids[i], sizeof cur, &cur); sched_setaffinity(tids[i], sizeof both, &both); }
		} else {
			if (!strcmp(mode, "weight")) setpriority(PRIO_PROCESS, tids[0], 0);
			else sched_setscheduler(tids[0], SCHED_OTHER, &zero_p);
			sched_setaffinity(tids[0], sizeof both, &both);
		}
		r[k] = now() - t4;
		usleep(300000);
	}
	stop = 1;
	if (hog) { kill(-hog, SIGKILL); kill(hog, SIGKILL); waitpid(hog, NULL, 0); }
	double mean[4] = {0};
	for (int k = 0; k < reps; k++) { mean[0] += t_early[k] / reps; mean[1] += o_early[k] / reps; mean[2] += t_late[k] / reps; mean[3] += o_late[k] / reps; }
	qsort(g, reps, 8, cmp); qsort(r, reps, 8, cmp);
	printf("%s n=%d%s: grant p50 %.1f max %.1f us; release p50 %.1f max %.1f us; "
	       "thread 0 %.0f%% others %.0f%% (first 100 ms), thread 0 %.0f%% others %.0f%% (100 ms-1 s)\n",
	       mode, n, hog ? " hog" : "", g[reps / 2], g[reps - 1], r[reps / 2], r[reps - 1], mean[0] * 100, mean[1] * 100, mean[2] * 100, mean[3] * 100);
	return 0;
}
