// pvrun's thread in the real-time class, bounded. Traced on the 2-core
// development machine, the host side of a hint waited on two things: busy
// TCG vCPU threads preempting pvrun's thread in the middle of a decision,
// and pvrun's thread, woken by the agent's KICK, waiting runnable behind
// other threads before the decision even started. SCHED_FIFO (priority 1,
// the lowest) removes both: pvrun's thread rests in it, waiting included, so
// that a KICK runs it at once. Its own CPU time is capped per window, and past
// the cap it runs as a normal thread until the next window. (Before, only the
// drain → decide → pin section ran in SCHED_FIFO, one switch in and one out
// per decision; resting, the round trip's p99 fell from 2.4 to 1.1 ms in
// alternating runs: docs/benchmarks.md.)
//
// It is bounded because the guest decides how often pvrun works: a guest
// flooding the channel gets pvrun at normal priority past the cap, not a CPU.
// Without the right to use SCHED_FIFO (not root, no CAP_SYS_NICE,
// RLIMIT_RTPRIO 0) the boost turns itself off once and everything runs as
// before.

import {firstLine} from '../util/errors.js';

/** What the hint engine needs: a decision may run boosted. */
export interface DecisionBoost {
	/** Start a decision: true if it runs in SCHED_FIFO (then `leave()` must follow). */
	enter(): boolean;
	/** End the decision started by `enter()`. */
	leave(): void;
	/** Decisions that ran at normal priority because the budget was used up. */
	readonly overBudget: number;
	/** Back to normal scheduling for good (idempotent). */
	stop(): void;
}

/** Switch the calling thread into and out of the boosted class: 0, or the errno's name. */
export interface BoostSwitch {
	enter(): 0 | string;
	leave(): 0 | string;
}

export interface BoostBudget {
	/** Accounting window. */
	windowMs: number;
	/** The thread's CPU time allowed in SCHED_FIFO per window; past it, normal scheduling until the next window. */
	maxMs: number;
}

/**
 * How often the timer looks when no decision does: each look wakes pvrun, so
 * not every window (while the guest idles, 10 looks a second cost ~0.15 % of a
 * core); a window the timer judges late is judged by its share all the same.
 */
const tickMs = 250;

/** Half of one CPU at most, counted in the thread's own CPU time. */
export const restingBudget: BoostBudget = {windowMs: 100, maxMs: 50};

export class RestingBoost implements DecisionBoost {
	private disabled = false;
	private inFifo = false;
	private windowStart = -Infinity;
	private cpuAtWindowStart = 0;
	/** Out of SCHED_FIFO until then (the last window used more than its share). */
	private outUntil = -Infinity;
	private timer: NodeJS.Timeout | undefined;
	overBudget = 0;
	/** Times the thread left SCHED_FIFO because its budget was used up. */
	demotions = 0;

	constructor(
		private readonly sw: BoostSwitch,
		/** Told once, when the boost turns itself off (the reason, one line). */
		private readonly onDisabled: (reason: string) => void,
		/** The calling thread's CPU time, ms. */
		private readonly cpuNowMs: () => number,
		private readonly budget: BoostBudget = restingBudget,
		private readonly now: () => number = () => performance.now(),
	) {}

	get enabled(): boolean {
		return !this.disabled;
	}

	/** Whether the thread is in SCHED_FIFO now. */
	get resting(): boolean {
		return this.inFifo;
	}

	/** Enter SCHED_FIFO, and look at the budget every `tickMs` from now on (the timer keeps nothing alive). */
	start(): void {
		this.tick();
		if (this.timer || this.disabled) return;
		this.timer = setInterval(() => this.tick(), Math.max(this.budget.windowMs, tickMs));
		this.timer.unref();
	}

	/** Back to normal scheduling for good (the hint loop stopped). */
	stop(): void {
		clearInterval(this.timer);
		this.timer = undefined;
		if (this.inFifo) this.switchOut();
		this.disabled = true;
	}

	enter(): boolean {
		this.tick();
		if (!this.inFifo && !this.disabled) this.overBudget++;
		return this.inFifo;
	}

	leave(): void {
		this.tick();
	}

	/**
	 * Account the thread's CPU time and set its class: out of SCHED_FIFO once this
	 * window's CPU time reaches the budget, and for all of the next window when
	 * the window that just ended used more than its share without a check
	 * catching it (use between two checks, e.g. a burst of channel traffic, lands
	 * in the window that ends); back in when neither holds. Runs at each decision
	 * and every `tickMs` (timer). Never throws.
	 */
	tick(): void {
		if (this.disabled) return;
		const t = this.now();
		let cpu: number;
		try {
			cpu = this.cpuNowMs();
		} catch (error) {
			// Without the thread's CPU time there is no budget: no SCHED_FIFO either.
			if (this.inFifo) this.switchOut();
			this.disable(`cannot read the CPU time of pvrun's thread (${firstLine(error)}): SCHED_FIFO turned off`);
			return;
		}
		const elapsed = t - this.windowStart;
		if (elapsed >= this.budget.windowMs) {
			const used = cpu - this.cpuAtWindowStart;
			// Over its share while still in SCHED_FIFO: no check caught it in time.
			if (this.inFifo && Number.isFinite(elapsed) && used >= (this.budget.maxMs * elapsed) / this.budget.windowMs) this.outUntil = t + this.budget.windowMs;
			this.windowStart = t;
			this.cpuAtWindowStart = cpu;
		}
		const allowed = t >= this.outUntil && cpu - this.cpuAtWindowStart < this.budget.maxMs;
		if (this.inFifo && !allowed) {
			this.demotions++;
			this.switchOut();
		} else if (!this.inFifo && allowed) {
			const error = this.sw.enter();
			if (error !== 0) this.disable(`cannot use SCHED_FIFO for the hint decisions (${error}): they run at normal priority`);
			else this.inFifo = true;
		}
	}

	private switchOut(): void {
		this.inFifo = false;
		const error = this.sw.leave();
		// Lowering one's own priority cannot normally fail; if it did, never boost again.
		if (error !== 0) this.disable(`cannot leave SCHED_FIFO (${error}): boosting turned off`);
	}

	private disable(reason: string): void {
		if (this.disabled) return;
		this.disabled = true;
		clearInterval(this.timer);
		this.timer = undefined;
		this.onDisabled(reason);
	}
}
