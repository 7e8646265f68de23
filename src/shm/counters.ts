// What the reader rejected of what the guest wrote, by kind: reported in the
// event log's 'counters' line (docs/shm-layout.md). A hint type's decoder
// counts its own kinds here too.

/** Why records or header values were rejected; reported in the event log. */
export interface ShmCounters {
	badHeader: number;
	headBackwards: number;
	overrun: number;
	badSeq: number;
	badLength: number;
	unknownType: number;
	badAffinity: number;
	maskOutOfRange: number;
	guestLost: number;
	agentRestarts: number;
	/** A critical-section cell whose owner is not a thread id, or whose section names a vCPU the VM lacks (each look). */
	badCell: number;
	/** A slot's guest part naming a lock owner's vCPU the VM lacks (each look). */
	badSlot: number;
}

export function emptyCounters(): ShmCounters {
	return {
		badHeader: 0,
		headBackwards: 0,
		overrun: 0,
		badSeq: 0,
		badLength: 0,
		unknownType: 0,
		badAffinity: 0,
		maskOutOfRange: 0,
		guestLost: 0,
		agentRestarts: 0,
		badCell: 0,
		badSlot: 0,
	};
}

/** Counters stop at the largest exact integer instead of losing precision. */
export function saturatingAdd(a: number, b: number): number {
	return Math.min(a + b, Number.MAX_SAFE_INTEGER);
}
