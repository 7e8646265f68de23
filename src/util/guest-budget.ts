// What a guest can make pvrun spend (--pv-guest-cpu): a share of one host CPU, turned into
// the budgets of everything the guest drives. Kicks and the polls they cause spend a credit
// that time refills one for one up to `burstMs`; each costs the host CPU time it is
// estimated to take divided by the share, so that a guest that kicks or writes records
// without pause keeps pvrun within the share. Bytes read from the agent's port scale with
// the share too. docs/cli.md gives the measurements behind the estimates.

/** The default share, percent of one host CPU. */
export const defaultGuestCpuPercent = 5;

/** Host CPU time, ms, estimated for each thing a guest can make pvrun do (this machine: docs/cli.md). */
export const hostCostMs = {
	/** A kick that finds no new record: the fast path's read and look (a guest has no reason to send one). */
	emptyKick: 0.6,
	/** A kick that finds new records: the fast path's look and the JavaScript thread's wake-up and drain. */
	newsKick: 0.5,
	/** Each record the JavaScript thread decodes. */
	record: 0.006,
	/** Each change of placement: pins, feedback, the fast path's next table, the log. */
	decision: 1.8,
};

export interface GuestBudget {
	/** Share of one host CPU, percent. */
	percent: number;
	/** Credit for kicks and polls, ms of time (it refills one for one). */
	burstMs: number;
	/** Credit a kick that finds no new record costs, ms. */
	emptyKickMs: number;
	/** Credit a kick that finds new records costs, ms. */
	newsKickMs: number;
	/** Credit each record read costs on top, ms. */
	recordMs: number;
	/** Credit each change of placement costs on top, ms. */
	decisionMs: number;
	/** Bytes read from the agent's port per `inputWindowMs`; the rest waits in QEMU. */
	inputBytes: number;
	inputWindowMs: number;
	/**
	 * The measured CPU's bound (cpu-governor.ts): the whole process held to `percent`, with
	 * `burstCpuMs` at once. Below the share, so that over any 10 s the burst and what a flood
	 * adds between two samples still leave the average under it. Absent: no bound.
	 */
	governor?: {percent: number; burstCpuMs: number};
}

/** The budgets for a share of `percent` (0 < percent ≤ 100) of one host CPU; 0 for none (`--pv-guest-cpu off`). */
export function guestBudget(percent = defaultGuestCpuPercent): GuestBudget {
	if (percent === 0) return {percent, burstMs: 1000, emptyKickMs: 0, newsKickMs: 0, recordMs: 0, decisionMs: 0, inputBytes: Infinity, inputWindowMs: 100};
	if (!(percent > 0 && percent <= 100)) throw new RangeError(`a guest CPU share must be above 0 and at most 100 %, not ${percent}`);
	const over = (ms: number): number => (ms * 100) / percent;
	return {
		percent,
		// A second of credit: a burst costs at most that times the share, 0.5 % of a CPU over 10 s at 5 %.
		burstMs: 1000,
		emptyKickMs: over(hostCostMs.emptyKick),
		newsKickMs: over(hostCostMs.newsKick),
		recordMs: over(hostCostMs.record),
		decisionMs: over(hostCostMs.decision),
		// At 5 %: a flood of KICK frames parsed at 64 KiB per 100 ms costs ~1.5 % of a CPU.
		inputBytes: Math.round(64 * 1024 * (percent / defaultGuestCpuPercent)),
		inputWindowMs: 100,
		// At 5 %: 4 % on average and 80 ms at once (0.8 % of a CPU over 10 s), room for pvrun's
		// own bursts (a critical-section summary, a program load) beside a busy guest's hints.
		governor: {percent: percent * 0.8, burstCpuMs: percent * 16},
	};
}
