/* hog CPU MS: become SCHED_FIFO 1, move to host CPU `CPU`, spin for MS ms, then
 * print the CLOCK_MONOTONIC ns at which it first ran there: the moment the
 * thread it displaced (a vCPU pinned to that CPU) was preempted at the latest. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct sched_param sp = {.sched_priority = 1};
	cpu_set_t set;
	long long t0, end;

	if (argc != 3)
		return 2;
	CPU_ZERO(&set);
	CPU_SET(atoi(argv[1]), &set);
	if (sched_setscheduler(0, SCHED_FIFO, &sp) || sched_setaffinity(0, sizeof(set), &set))
		return 1;
	t0 = now();
	end = t0 + atoll(argv[2]) * 1000000LL;
	while (now() < end)
		;
	printf("%lld\n", t0);
	return 0;
}
