// How busy each vCPU thread is, from its CPU time in /proc: a vCPU whose
// guest idles (a pinned thread that mostly sleeps) leaves its host thread
// asleep, and a CPU given to it alone would mostly sit idle.
import {procStatFields} from '../host/proc.js';

/** Fraction of one CPU a thread used, over a window of samples. */
export class VcpuUsage {
	/** tid → samples of [time ms, CPU ticks], oldest first. */
	private readonly samples = new Map<number, Array<[number, number]>>();

	constructor(
		private readonly qemuPid: number,
		/**
		 * How far back the fraction looks: one turn of the hint engine's slow
		 * timer, so a new grant is judged 250-500 ms after it was made. With
		 * 1000 ms, a pinned sleeper kept its CPU for over a second and its busy
		 * neighbours did 0.85x the work of plain QEMU; with 250 ms, 1.03x
		 * (scenario a, 3 repetitions each, same machine, alternating; docs/benchmarks.md).
		 */
		private readonly windowMs = 250,
		/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
		private readonly ticksPerSecond = 100,
		private readonly readTicks: (pid: number, tid: number) => number | undefined = threadTicks,
	) {}

	/** Record the CPU time of `tids` now (forgetting threads not among them). */
	sample(tids: Iterable<number>, now = performance.now()): void {
		const seen = new Set<number>();
		for (const tid of tids) {
			seen.add(tid);
			const ticks = this.readTicks(this.qemuPid, tid);
			if (ticks === undefined) continue;
			const list = this.samples.get(tid) ?? [];
			list.push([now, ticks]);
			while (list.length > 2 && now - (list[1]?.[0] ?? now) >= this.windowMs) list.shift();
			this.samples.set(tid, list);
		}
		for (const tid of this.samples.keys()) if (!seen.has(tid)) this.samples.delete(tid);
	}

	/** Forget `tid`'s samples: its use is judged afresh from now (a vCPU just granted a CPU). */
	reset(tid: number): void {
		this.samples.delete(tid);
	}

	/** The fraction of one CPU thread `tid` used over the last window, or undefined until a window is covered. */
	busy(tid: number): number | undefined {
		const list = this.samples.get(tid);
		const first = list?.[0];
		const last = list?.at(-1);
		if (!first || !last || last[0] - first[0] < this.windowMs * 0.9) return undefined;
		return (last[1] - first[1]) / this.ticksPerSecond / ((last[0] - first[0]) / 1000);
	}
}

/** utime + stime of thread `tid` of process `pid`, in clock ticks; undefined if it is gone. */
export function threadTicks(pid: number, tid: number): number | undefined {
	const fields = procStatFields(pid, tid);
	return fields && Number(fields[14]) + Number(fields[15]);
}
