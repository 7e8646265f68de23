/* SPDX-License-Identifier: MIT */
/* The critical-section policy (docs/critical-sections.md, "Acting"): what one
 * vCPU's host thread should be now, from what the host program saw of it and
 * whether a guest thread on it is inside a critical section. Pure: no system
 * call, no clock; native/pvsched.c runs it at every notice and deadline and
 * applies the mode it returns, and test/fast/cspolicy.test.ts fuzzes it
 * through pvs_policy_step. src/fast/sched.ts mirrors the structs.
 *
 *   NORMAL   the thread's own policy (SCHED_OTHER, its nice value)
 *   BOOSTED  SCHED_FIFO 1 for at most max_ns: the vCPU was preempted inside a
 *            section; a real-time thread takes a CPU at once
 *   PAYBACK  SCHED_IDLE until it has been runnable for payback_pct % of the
 *            boost time it owes, outside sections only: what a boost took
 *            from the other threads is given back
 *
 * Bounds, whatever the guest does: a boost lasts at most max_ns; boost time
 * comes from a bucket that holds budget_ns and refills at budget_ns per
 * window_ns (over any interval T, at most budget_ns + T * budget_ns /
 * window_ns); no boost while the debt is at least budget_ns * payback_pct /
 * 100 (a guest that never leaves its sections gets a few boosts, then none). */
#ifndef PVRUN_CSPOLICY_H
#define PVRUN_CSPOLICY_H

#include <stdint.h>

#define PVB_NORMAL 0
#define PVB_BOOSTED 1
#define PVB_PAYBACK 2

/* A host thread state (PV_VS_* of bpf/vcpusched.h). */
#define PVB_HOST_SLEEPING 0
#define PVB_HOST_PREEMPTED 2
#define PVB_HOST_WOKEN 3

struct pvb_config {
	uint64_t max_ns;      /*  0: longest boost; 0 = boosts off */
	uint64_t window_ns;   /*  8: the budget's window */
	uint64_t budget_ns;   /* 16: boost time per vCPU per window */
	uint32_t payback_pct; /* 24: payback owed, % of boost time; 0 = none */
	uint32_t _pad;        /* 28 */
};                            /* 32 */

struct pvb_input {
	uint64_t now_ns;      /*  0: host CLOCK_MONOTONIC */
	uint64_t busy_ns;     /*  8: the thread's time runnable (on a CPU or waiting for one), up to now */
	uint64_t preemptions; /* 16: its preemptions so far (a refusal counts once per preemption) */
	uint32_t host_state;  /* 24: PV_VS_* */
	uint32_t in_section;  /* 28: a guest thread on the vCPU is inside a section */
};                            /* 32 */

struct pvb_vcpu {
	uint32_t mode;        /*  0: PVB_* */
	uint32_t _pad;        /*  4 */
	uint64_t began_ns;    /*  8: when the boost or payback began */
	uint64_t until_ns;    /* 16: when the boost ends; for a payback, the earliest it can end */
	uint64_t granted_ns;  /* 24: the boost's length, taken from the bucket when it began */
	uint64_t busy_at_ns;  /* 32: busy_ns when the payback began */
	uint64_t tokens_ns;   /* 40: boost time left in the bucket */
	uint64_t refilled_ns; /* 48: when the bucket was last refilled (0: never: it starts full) */
	uint64_t debt_ns;     /* 56: payback owed */
	uint64_t refused_at;  /* 64: preemptions when a boost was last refused */
	uint64_t boosts;      /* 72: boosts given */
	uint64_t boosted_ns;  /* 80: their total length */
	uint64_t refused;     /* 88: preemptions inside a section that got no boost (no budget, or debt) */
	uint64_t paid_ns;     /* 96: payback given */
};                            /* 104 */

static inline uint64_t pvb_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Refill the bucket up to now (a clock that goes back refills nothing). */
static inline void pvb_refill(const struct pvb_config *c, struct pvb_vcpu *s, uint64_t now)
{
	if (s->refilled_ns == 0 || c->window_ns == 0) {
		s->tokens_ns = c->budget_ns;
	} else if (now > s->refilled_ns) {
		uint64_t dt = now - s->refilled_ns;

		/* dt * budget / window without overflow: a whole window refills all. */
		if (dt >= c->window_ns)
			s->tokens_ns = c->budget_ns;
		else
			s->tokens_ns = pvb_min(c->budget_ns, s->tokens_ns + (uint64_t)((unsigned __int128)dt * c->budget_ns / c->window_ns));
	}
	if (now > s->refilled_ns || s->refilled_ns == 0)
		s->refilled_ns = now;
}

/* The most debt a vCPU may carry and still be boosted. */
static inline uint64_t pvb_debt_cap(const struct pvb_config *c)
{
	return (uint64_t)((unsigned __int128)c->budget_ns * c->payback_pct / 100);
}

/* Advance vCPU state `s` to input `in`; returns the mode its thread must be in now. */
static inline uint32_t pvb_step(const struct pvb_config *c, struct pvb_vcpu *s, const struct pvb_input *in)
{
	uint64_t now = in->now_ns;
	int waiting = in->host_state == PVB_HOST_PREEMPTED || in->host_state == PVB_HOST_WOKEN;

	pvb_refill(c, s, now);
	if (s->mode == PVB_BOOSTED &&
	    (now >= s->until_ns || !in->in_section || in->host_state == PVB_HOST_SLEEPING || c->max_ns == 0)) {
		uint64_t used = now > s->began_ns ? pvb_min(now - s->began_ns, s->granted_ns) : 0;

		/* What it did not use goes back to the bucket. */
		s->tokens_ns = pvb_min(c->budget_ns, s->tokens_ns + (s->granted_ns - used));
		s->boosted_ns += used;
		s->debt_ns += (uint64_t)((unsigned __int128)used * c->payback_pct / 100);
		s->granted_ns = 0;
		s->mode = PVB_NORMAL;
	}
	if (s->mode == PVB_PAYBACK) {
		uint64_t paid = in->busy_ns > s->busy_at_ns ? in->busy_ns - s->busy_at_ns : 0;

		if (paid >= s->debt_ns || in->in_section || c->payback_pct == 0) {
			paid = pvb_min(paid, s->debt_ns);
			s->debt_ns -= paid;
			s->paid_ns += paid;
			s->mode = PVB_NORMAL;
		} else {
			s->until_ns = now + (s->debt_ns - paid);
		}
	}
	if (s->mode == PVB_NORMAL) {
		if (in->in_section && waiting && c->max_ns > 0) {
			/* A boost shorter than a tenth of max_ns is not worth two system calls. */
			if (s->tokens_ns >= c->max_ns / 10 && s->tokens_ns > 0 && s->debt_ns < pvb_debt_cap(c) + (c->payback_pct == 0)) {
				s->granted_ns = pvb_min(c->max_ns, s->tokens_ns);
				s->tokens_ns -= s->granted_ns;
				s->began_ns = now;
				s->until_ns = now + s->granted_ns;
				s->boosts++;
				s->mode = PVB_BOOSTED;
			} else if (s->refused_at != in->preemptions) {
				s->refused_at = in->preemptions;
				s->refused++;
			}
		} else if (!in->in_section && s->debt_ns > 0 && c->payback_pct > 0) {
			s->began_ns = now;
			s->busy_at_ns = in->busy_ns;
			s->until_ns = now + s->debt_ns;
			s->mode = PVB_PAYBACK;
		}
	}
	return s->mode;
}

#endif
