// Cost of moving N sleeping threads between CPU sets: N sched_setaffinity calls, or one write
// of a cgroup v1 cpuset's cpuset.cpus holding the N threads.
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
static pid_t tids[256];
static void *sleeper(void *a) { tids[(long)a] = (pid_t)syscall(SYS_gettid); for (;;) pause(); return NULL; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static void wr(const char *p, const char *s) { int fd = open(p, O_WRONLY); if (fd < 0 || write(fd, s, strlen(s)) < 0) { perror(p); exit(1); } close(fd); }
int main(int argc, char **argv) {
	int n = atoi(argv[1]), reps = 200;
	for (long i = 0; i < n; i++) { pthread_t t; pthread_create(&t, NULL, sleeper, (void *)i); }
	usleep(100000);
	double a[400], b[400];
	cpu_set_t one, two; CPU_ZERO(&one); CPU_SET(0, &one); CPU_ZERO(&two); CPU_SET(0, &two); CPU_SET(1, &two);
	for (int r = 0; r < reps; r++) {
		double t0 = now();
		for (int i = 0; i < n; i++) sched_setaffinity(tids[i], sizeof(cpu_set_t), r % 2 ? &two : &one);
		a[r] = now() - t0;
	}
	for (int i = 0; i < n; i++) sched_setaffinity(tids[i], sizeof(cpu_set_t), &two);
	const char *dir = "/sys/fs/cgroup/cpuset/s30bench";
	mkdir(dir, 0755);
	wr("/sys/fs/cgroup/cpuset/s30bench/cpuset.mems", "0");
	wr("/sys/fs/cgroup/cpuset/s30bench/cpuset.cpus", "0-1");
	char buf[32];
	for (int i = 0; i < n; i++) { snprintf(buf, sizeof buf, "%d", tids[i]); wr("/sys/fs/cgroup/cpuset/s30bench/tasks", buf); }
	int fd = open("/sys/fs/cgroup/cpuset/s30bench/cpuset.cpus", O_WRONLY);
	for (int r = 0; r < reps; r++) {
		double t0 = now();
		const char *s = r % 2 ? "0-1" : "0";
		if (pwrite(fd, s, strlen(s), 0) < 0) perror("write");
		b[r] = now() - t0;
	}
	if (pwrite(fd, "1", 1, 0) < 0) perror("write");
	close(fd);
	cpu_set_t got; sched_getaffinity(tids[0], sizeof got, &got);
	printf("after writing \"1\": thread 0 may run on CPU 1 only: %s\n", CPU_COUNT(&got) == 1 && CPU_ISSET(1, &got) ? "yes" : "no");
	for (int i = 0; i < n; i++) { snprintf(buf, sizeof buf, "%d", tids[i]); wr("/sys/fs/cgroup/cpuset/tasks", buf); }
	rmdir(dir);
	qsort(a, reps, sizeof(double), cmp); qsort(b, reps, sizeof(double), cmp);
	printf("n=%d setaffinity x n: p50 %.1f us p99 %.1f us | cpuset.cpus write: p50 %.1f us p99 %.1f us (thread 0 then on %d CPUs)\n", n, a[reps/2], a[reps*99/100], b[reps/2], b[reps*99/100], CPU_COUNT(&got));
	return 0;
}
