// A budget that comes back with time: at most `capacity` units, `perMs` of them back each
// millisecond. Unlike LineBudget's fixed windows, a burst up to the capacity goes at once and
// the rate holds after it; what a unit stands for (a log line, a poll) is the caller's.

export class TokenBucket {
	private level: number;
	private at: number;

	constructor(
		private readonly capacity: number,
		private readonly perMs: number,
		private readonly now: () => number = () => performance.now(),
	) {
		this.level = capacity;
		this.at = now();
	}

	/** The units there are now. */
	get tokens(): number {
		const now = this.now();
		this.level = Math.min(this.capacity, this.level + (now - this.at) * this.perMs);
		this.at = now;
		return this.level;
	}

	/** Take `cost` units (check `tokens` first). */
	spend(cost: number): void {
		this.level -= cost;
	}

	/** Milliseconds until there are `units`. */
	msUntil(units: number): number {
		return Math.max(0, (units - this.tokens) / this.perMs);
	}
}
