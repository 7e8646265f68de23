// At most so many lines per window of time, for text an untrusted party sends
// (the guest agent's LOG frames): the lines over the budget are dropped and
// counted, and the count is handed over with the next line let through.

export class LineBudget {
	private windowStart = -Infinity;
	private lines = 0;
	private dropped = 0;

	constructor(
		private readonly perWindow: number,
		private readonly windowMs: number,
		private readonly now: () => number = () => performance.now(),
	) {}

	/** Whether a line may go now; if so, how many were dropped since the last one that went. */
	take(): {ok: true; dropped: number} | {ok: false} {
		const now = this.now();
		if (now - this.windowStart >= this.windowMs) {
			this.windowStart = now;
			this.lines = 0;
		}
		if (this.lines >= this.perWindow) {
			this.dropped++;
			return {ok: false};
		}
		this.lines++;
		const dropped = this.dropped;
		this.dropped = 0;
		return {ok: true, dropped};
	}
}
