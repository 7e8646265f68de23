/* grant N LB: N spinning threads in a cgroup v1 cpuset s31cg/float (cpuset.sched_load_balance LB),
 * on a host with CPUs 0-1, as root. 100 times each: a grant as --pv-placement cpuset makes it
 * (the granted thread's move to s31cg, its sched_setaffinity to CPU 1, the floating set narrowed
 * to CPU 0 by one write) and its release (widened by one write, the thread's mask widened and
 * its move back); then the same threads in the root cpuset, a grant and a release one
 * sched_setaffinity at a time with the fast path's checks (tgkill, sched_getaffinity).
 * Prints p50 / p99 in microseconds. cc -O2 -pthread -o grant grant.c */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static volatile int stop;
static pid_t tids[256];
static void *spin(void *a) { tids[(long)a] = (pid_t)syscall(SYS_gettid); while (!stop) ; return NULL; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static void wr(const char *p, const char *s) { int fd = open(p, O_WRONLY); if (write(fd, s, strlen(s)) < 0) perror(p); close(fd); }
static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
int main(int argc, char **argv)
{
	int n = atoi(argv[1]), lb = atoi(argv[2]), reps = 100;
	const char *G = "/sys/fs/cgroup/cpuset/s31cg", *F = "/sys/fs/cgroup/cpuset/s31cg/float";
	char p[256], b[32];
	mkdir(G, 0755); snprintf(p, sizeof p, "%s/cpuset.cpus", G); wr(p, "0-1"); snprintf(p, sizeof p, "%s/cpuset.mems", G); wr(p, "0");
	mkdir(F, 0755); snprintf(p, sizeof p, "%s/cpuset.cpus", F); wr(p, "0-1"); snprintf(p, sizeof p, "%s/cpuset.mems", F); wr(p, "0");
	snprintf(p, sizeof p, "%s/cpuset.sched_load_balance", F); wr(p, lb ? "1" : "0");
	snprintf(p, sizeof p, "%s/cpuset.sched_load_balance", G); wr(p, lb ? "1" : "0");
	pthread_t th[256];
	for (long i = 0; i < n; i++) pthread_create(&th[i], NULL, spin, (void *)i);
	usleep(100000);
	char ft[256], fc[256], gt[256];
	snprintf(ft, sizeof ft, "%s/tasks", F); snprintf(fc, sizeof fc, "%s/cpuset.cpus", F); snprintf(gt, sizeof gt, "%s/tasks", G);
	int ftfd = open(ft, O_WRONLY), fcfd = open(fc, O_WRONLY), gtfd = open(gt, O_WRONLY);
	for (int i = 0; i < n; i++) { snprintf(b, sizeof b, "%d\n", tids[i]); pwrite(ftfd, b, strlen(b), 0); }
	double *lv = calloc(reps, 8), *nw = calloc(reps, 8), *wd = calloc(reps, 8), *jn = calloc(reps, 8);
	cpu_set_t one, all; CPU_ZERO(&one); CPU_SET(1, &one); memset(&all, 0xff, sizeof all);
	for (int r = 0; r < reps; r++) {
		double t0 = now();
		snprintf(b, sizeof b, "%d\n", tids[0]); pwrite(gtfd, b, strlen(b), 0); sched_setaffinity(tids[0], sizeof one, &one);
		double t1 = now();
		pwrite(fcfd, "0\n", 2, 0);
		double t2 = now();
		usleep(20000);
		double t3 = now();
		pwrite(fcfd, "0-1\n", 4, 0);
		double t4 = now();
		sched_setaffinity(tids[0], sizeof all, &all); pwrite(ftfd, b, strlen(b), 0);
		double t5 = now();
		lv[r] = t1 - t0; nw[r] = t2 - t1; wd[r] = t4 - t3; jn[r] = t5 - t4;
		usleep(20000);
	}
	/* the same grant and release, one thread at a time, in QEMU's cpuset (the parent) */
	double *tg = calloc(reps, 8), *tr = calloc(reps, 8), *cg = calloc(reps, 8), *cr = calloc(reps, 8);
	for (int r = 0; r < reps; r++) { cg[r] = lv[r] + nw[r]; cr[r] = wd[r] + jn[r]; }
	char pt[256]; snprintf(pt, sizeof pt, "/sys/fs/cgroup/cpuset/tasks");
	int ptfd = open(pt, O_WRONLY);
	for (int i = 0; i < n; i++) { snprintf(b, sizeof b, "%d\n", tids[i]); pwrite(ptfd, b, strlen(b), 0); }
	cpu_set_t zero, both, cur; CPU_ZERO(&zero); CPU_SET(0, &zero); CPU_ZERO(&both); CPU_SET(0, &both); CPU_SET(1, &both);
	for (int r = 0; r < reps; r++) {
		double t0 = now();
		for (int i = 1; i < n; i++) { syscall(SYS_tgkill, getpid(), tids[i], 0); sched_getaffinity(tids[i], sizeof cur, &cur); sched_setaffinity(tids[i], sizeof zero, &zero); }
		syscall(SYS_tgkill, getpid(), tids[0], 0); sched_getaffinity(tids[0], sizeof cur, &cur); sched_setaffinity(tids[0], sizeof one, &one);
		double t1 = now();
		usleep(20000);
		double t2 = now();
		for (int i = 0; i < n; i++) { syscall(SYS_tgkill, getpid(), tids[i], 0); sched_getaffinity(tids[i], sizeof cur, &cur); sched_setaffinity(tids[i], sizeof both, &both); }
		double t3 = now();
		tg[r] = t1 - t0; tr[r] = t3 - t2;
		usleep(20000);
	}
	double *a[] = {cg, cr, tg, tr}; const char *nm[] = {"cpuset grant", "cpuset release", "threads grant", "threads release"};
	printf("n=%d lb=%d:", n, lb);
	for (int k = 0; k < 4; k++) { qsort(a[k], reps, 8, cmp); printf(" %s p50 %.1f p99 %.1f;", nm[k], a[k][reps / 2], a[k][reps * 99 / 100]); }
	printf("\n");
	stop = 1;
	for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
	rmdir(F); rmdir(G);
	return 0;
}
