/* SPDX-License-Identifier: MIT */
/* A native thread of pvrun that rests in SCHED_FIFO (priority `prio`, 1 unless
 * set: pvsched.c's is 2, above the vCPU threads it boosts) while it uses at most
 * RT_BUDGET_NS of its own CPU time per RT_WINDOW_NS; past that, SCHED_OTHER
 * until the window after (a guest that floods it gets a normal thread, not a
 * CPU). Shared by the fast path (pvfast.c) and the vCPU feedback (pvsched.c);
 * each thread keeps its own struct rt_budget. */
#ifndef PVRUN_RT_H
#define PVRUN_RT_H

#include <sched.h>
#include <stdint.h>
#include <time.h>

#define RT_WINDOW_NS 100000000ull
#define RT_BUDGET_NS 50000000ull

struct rt_budget {
	int fifo_ok, in_fifo;
	int prio; /* SCHED_FIFO priority; 0 means 1 */
	uint64_t window_start, cpu_at_window;
	uint64_t demotions;
};

static inline uint64_t rt_clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void rt_set_fifo(struct rt_budget *b, int on)
{
	struct sched_param sp = {.sched_priority = on ? (b->prio > 0 ? b->prio : 1) : 0};

	if (!b->fifo_ok || b->in_fifo == on)
		return;
	if (sched_setscheduler(0, (on ? SCHED_FIFO : SCHED_OTHER) | SCHED_RESET_ON_FORK, &sp) == 0)
		b->in_fifo = on;
	else if (on)
		b->fifo_ok = 0;
}

/* Called by the thread itself when it starts. */
static inline void rt_begin(struct rt_budget *b)
{
	b->fifo_ok = 1;
	b->window_start = rt_clock_ns(CLOCK_MONOTONIC);
	b->cpu_at_window = rt_clock_ns(CLOCK_THREAD_CPUTIME_ID);
	rt_set_fifo(b, 1);
}

/* After each piece of work: a new window restores SCHED_FIFO, a used-up one ends it. */
static inline void rt_check(struct rt_budget *b)
{
	uint64_t now = rt_clock_ns(CLOCK_MONOTONIC), cpu = rt_clock_ns(CLOCK_THREAD_CPUTIME_ID);

	if (now - b->window_start >= RT_WINDOW_NS) {
		int over = cpu - b->cpu_at_window > RT_BUDGET_NS;

		b->window_start = now;
		b->cpu_at_window = cpu;
		if (over && b->in_fifo)
			__atomic_add_fetch(&b->demotions, 1, __ATOMIC_RELAXED);
		rt_set_fifo(b, !over);
	} else if (b->in_fifo && cpu - b->cpu_at_window > RT_BUDGET_NS) {
		rt_set_fifo(b, 0);
		__atomic_add_fetch(&b->demotions, 1, __ATOMIC_RELAXED);
	}
}

#endif
