#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
struct attr { uint32_t size, policy; uint64_t flags; int32_t nice; uint32_t prio; uint64_t runtime, deadline, period; uint32_t umin, umax; };
int main(int c, char **v) {
	uint64_t us = strtoull(v[1], 0, 10);
	for (int i = 2; i < c; i++) {
		int tid = atoi(v[i]);
		struct attr a; memset(&a, 0, sizeof a); a.size = sizeof a;
		if (syscall(SYS_sched_getattr, tid, &a, sizeof a, 0)) { perror("getattr"); return 1; }
		a.size = sizeof a; a.runtime = us * 1000; a.flags = 0;
		if (syscall(SYS_sched_setattr, tid, &a, 0)) { perror("setattr"); return 1; }
	}
	return 0;
}
