// The hint decision as a short real-time section. Traced on the 2-core
// development machine, nearly all of the host-side tail (p99 ~1.3 ms) was
// pvrun's thread being preempted, runnable, by a busy TCG vCPU thread in the
// middle of a decision. Under SCHED_FIFO (priority 1, the lowest) for just
// the drain → decide → pin section, no normal thread can preempt it there.
//
// The section is bounded twice, because the guest decides how often it runs:
// the caller only boosts small drains, and the time spent boosted is capped
// per window (a guest flooding the ring gets normal scheduling, not the CPU).
// Without the right to use SCHED_FIFO (not root, no CAP_SYS_NICE, RLIMIT_RTPRIO
// 0) the boost turns itself off once and everything runs as before.

/** Switch the calling thread into and out of the boosted class: 0, or the errno's name. */
export interface BoostSwitch {
	enter(): 0 | string;
	leave(): 0 | string;
}

export interface BoostBudget {
	/** Accounting window. */
	windowMs: number;
	/** Boosted time allowed per window; once used up, sections run unboosted until the next window. */
	maxMs: number;
}

/**
 * 30 % of one CPU at most. With 10 %, a guest hinting back to back (pvhint: a pin
 * and a release every ~0.6 ms, ~40 µs per section) used the budget up, and a
 * third of its decisions ran unboosted; host-side p99 went from 234 to 136 µs
 * with 30 % (alternating runs, bench/results/2026-11-23-vm-boost-budget/). The
 * boost only lifts what the thread would get anyway at nice -10 (about 90 % of
 * a CPU against one busy nice-0 thread) to real-time priority; other threads
 * still run between sections.
 */
export const defaultBudget: BoostBudget = {windowMs: 100, maxMs: 30};

export class SectionBoost {
	private disabled = false;
	private enteredAt = -1;
	private windowStart = -Infinity;
	private usedMs = 0;
	/** Sections that ran unboosted because the budget was used up. */
	overBudget = 0;

	constructor(
		private readonly sw: BoostSwitch,
		/** Told once, when the boost turns itself off (the reason, one line). */
		private readonly onDisabled: (reason: string) => void,
		private readonly budget: BoostBudget = defaultBudget,
		private readonly now: () => number = () => performance.now(),
	) {}

	/** Whether sections can still be boosted (false once the switch failed). */
	get enabled(): boolean {
		return !this.disabled;
	}

	/** Start a section: true if it runs boosted (then `leave()` must follow). */
	enter(): boolean {
		if (this.disabled || this.enteredAt >= 0) return false;
		const t = this.now();
		if (t - this.windowStart >= this.budget.windowMs) {
			this.windowStart = t;
			this.usedMs = 0;
		}
		if (this.usedMs >= this.budget.maxMs) {
			this.overBudget++;
			return false;
		}
		const error = this.sw.enter();
		if (error !== 0) {
			this.disable(`cannot use SCHED_FIFO for the hint decision (${error}): it runs at normal priority`);
			return false;
		}
		this.enteredAt = t;
		return true;
	}

	/** End the section started by a successful `enter()`; a no-op otherwise. */
	leave(): void {
		if (this.enteredAt < 0) return;
		const error = this.sw.leave();
		this.usedMs += this.now() - this.enteredAt;
		this.enteredAt = -1;
		// Lowering one's own priority cannot normally fail; if it did, never boost again.
		if (error !== 0) this.disable(`cannot leave SCHED_FIFO after a hint decision (${error}): boosting turned off`);
	}

	private disable(reason: string): void {
		if (this.disabled) return;
		this.disabled = true;
		this.onDisabled(reason);
	}
}
