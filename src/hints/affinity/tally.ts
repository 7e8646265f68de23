// What the hint path did since the last summary, counted exactly: when the event log leaves
// out lines of a flood (its budget), a `hint-summary` line at most once a second says how
// many records came, how many were refused, and how many changes of placement they made.

export interface HintSummary {
	seconds: number;
	/** Records read from the ring. */
	records: number;
	/** Of those, rejected by validation (shm-layout.md#host-validation) or beyond the hints kept. */
	refused: number;
	/** Changes of placement, on either path. */
	changes: number;
	/** Hint-path log lines the event log left out. */
	leftOut: number;
}

export class HintTally {
	records = 0;
	refused = 0;
	changes = 0;
	leftOut = 0;
	private since: number;

	constructor(private readonly now: () => number = () => performance.now()) {
		this.since = now();
	}

	/**
	 * Once `everyMs` has passed since the last: the counts if lines were left out meanwhile
	 * (else undefined), and the tally starts again.
	 */
	take(everyMs = 1000): HintSummary | undefined {
		const now = this.now();
		if (now - this.since < everyMs) return undefined;
		const s: HintSummary = {
			seconds: Math.round(now - this.since) / 1000,
			records: this.records,
			refused: this.refused,
			changes: this.changes,
			leftOut: this.leftOut,
		};
		this.since = now;
		this.records = this.refused = this.changes = this.leftOut = 0;
		return s.leftOut > 0 ? s : undefined;
	}
}

/** The summary's one line for a terminal. */
export function summaryLine(s: HintSummary): string {
	return `${s.records} hint record${s.records === 1 ? '' : 's'} in the last ${s.seconds === 1 ? 'second' : `${s.seconds} s`}, ${s.refused} refused, ${s.changes} changes of placement (${s.leftOut} log lines left out)`;
}
