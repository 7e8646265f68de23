// pvrun's measured CPU held within the guest's share (--pv-guest-cpu). The guest budget
// (guest-budget.ts) charges what each kick, record and decision is estimated to cost; the
// estimates come from one machine, and a slower or loaded host makes them low. This governor
// reads what the whole process has used (every thread: JavaScript, the fast path, the garbage
// collector, the critical-section scheduler) and, when that is more than the share allows,
// holds the work a guest drives (kicks, the fallback poll's records, the agent port's bytes)
// until the share has paid it back. What pvrun does on its own at a rate no guest changes (timers,
// QMP) is counted too, except its largest such cost, which the user chose: the looks of
// `--pv-cs` (`ownCpuMs`), which beside a busy guest would leave the guest's work 1-2 % of the share.

import {TokenBucket} from './token-bucket.js';

/** CPU time this process has used, ms (user and system, all threads). */
export function processCpuMs(): number {
	const u = process.cpuUsage();
	return (u.user + u.system) / 1000;
}

export interface CpuGovernorOptions {
	/** Share of one CPU the process may use on average, percent (0 < percent ≤ 100). */
	percent: number;
	/** CPU time the process may use at once beyond the share, ms. */
	burstCpuMs: number;
	/** CPU time used so far, ms (tests give their own). */
	cpuMs?: () => number;
	/** A monotonic clock, ms (tests give their own). */
	now?: () => number;
	/** Samples closer together than this reuse the last one, ms. */
	minSampleMs?: number;
	/** CPU time, ms, of pvrun's own work that the guest does not drive, so far: left out of the share. */
	ownCpuMs?: () => number;
}

export class CpuGovernor {
	private readonly bucket: TokenBucket;
	private readonly cpuMs: () => number;
	private readonly ownCpuMs: () => number;
	private readonly now: () => number;
	private readonly minSampleMs: number;
	private lastCpu: number;
	private lastOwn: number;
	private lastSample: number;
	private holdUntil = 0;
	private timer: NodeJS.Timeout | undefined;

	/** Times a hold began (the process was over its share). */
	holds = 0;
	/**
	 * Told at each sample how much more CPU, ms, the process may use before the next one (0:
	 * none): the native fast path stops acting on kicks there (pvf_allow), without waiting for
	 * the JavaScript thread to look.
	 */
	onAllowance: ((cpuMs: number) => void) | undefined;
	/** Told when a hold begins: how far over the share the process is, ms of CPU (the hold lasts that over the share). */
	onHold: ((debtMs: number) => void) | undefined;
	private resample: NodeJS.Timeout | undefined;

	constructor(options: CpuGovernorOptions) {
		const {percent, burstCpuMs} = options;
		if (!(percent > 0 && percent <= 100)) throw new RangeError(`a CPU share must be above 0 and at most 100 %, not ${percent}`);
		if (!(burstCpuMs >= 0)) throw new RangeError(`a CPU burst must be at least 0 ms, not ${burstCpuMs}`);
		this.cpuMs = options.cpuMs ?? processCpuMs;
		this.ownCpuMs = options.ownCpuMs ?? ((): number => 0);
		this.now = options.now ?? ((): number => performance.now());
		this.minSampleMs = options.minSampleMs ?? 1;
		this.bucket = new TokenBucket(burstCpuMs, percent / 100, this.now);
		this.lastCpu = this.cpuMs();
		this.lastOwn = this.ownCpuMs();
		this.lastSample = this.now();
	}

	/** How long guest-driven work must wait from now, ms (0: go on). */
	holdMs(): number {
		const now = this.now();
		if (now - this.lastSample >= this.minSampleMs) this.sample(now);
		return Math.max(0, this.holdUntil - now);
	}

	/** Sample every `intervalMs` even when nothing asks (a flood the JavaScript thread never sees). */
	start(intervalMs = 100): void {
		this.stop();
		this.timer = setInterval(() => this.holdMs(), intervalMs);
		this.timer.unref();
	}

	stop(): void {
		if (this.timer) clearInterval(this.timer);
		this.timer = undefined;
		clearTimeout(this.resample);
		this.resample = undefined;
	}

	private sample(now: number): void {
		const cpu = this.cpuMs();
		const own = this.ownCpuMs();
		// The process's CPU since the last sample less what pvrun's own work grew by; never below
		// 0 (the process's figure moves in clock ticks, the own work's in nanoseconds) and never
		// more than the process's (own work counted anew from 0 takes nothing back).
		const charged = Math.max(0, cpu - this.lastCpu - Math.max(0, own - this.lastOwn));
		void this.bucket.tokens; // refilled up to now, then charged
		this.bucket.spend(charged);
		this.lastCpu = cpu;
		this.lastOwn = own;
		this.lastSample = now;
		const tokens = this.bucket.tokens;
		this.onAllowance?.(Math.max(0, tokens));
		if (tokens >= 0) return;
		if (now >= this.holdUntil) {
			this.holds++;
			this.onHold?.(-tokens);
		}
		this.holdUntil = now + this.bucket.msUntil(0);
		// Look again as the hold ends, so that what waits for the allowance goes on at once.
		if (this.timer && !this.resample) {
			this.resample = setTimeout(
				() => {
					this.resample = undefined;
					this.holdMs();
				},
				Math.ceil(this.holdUntil - now) + 1,
			);
			this.resample.unref();
		}
	}
}
