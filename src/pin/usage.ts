// How much each vCPU thread wants to run, from /proc: a vCPU whose guest idles
// (a pinned thread that mostly sleeps) leaves its host thread asleep, and a
// CPU given to it alone would mostly sit idle.
import {procStatFields, threadSchedstat} from '../host/proc.js';

/**
 * The fraction of the time a thread wanted a CPU (ran, or was runnable and
 * waited for one), over a window of samples. Waiting counts: a granted vCPU
 * judged idle shares its CPU with the floating vCPUs, and a busy one sharing
 * it with busy neighbours runs only about half the time however busy its guest
 * is, so by CPU time alone it was never seen busy again and shared for good
 * (beside three busy floating vCPUs on two CPUs: test/vm/idle-grant.test.ts).
 * A sleeping (halted) vCPU neither runs nor waits.
 */
export class VcpuUsage {
	/** tid → samples of [time ms, demand ns], oldest first. */
	private readonly samples = new Map<number, Array<[number, number]>>();

	constructor(
		private readonly qemuPid: number,
		/**
		 * How far back the fraction looks: one turn of the hint engine's slow
		 * timer, so a new grant is judged 250-500 ms after it was made. With
		 * 1000 ms, a pinned sleeper kept its CPU for over a second and its busy
		 * neighbours did 0.85x the work of plain QEMU; with 250 ms, 1.03x
		 * (scenario a, 3 repetitions each, same machine, back to back;
		 * bench/experiments/2026-11-23-usage-window/).
		 */
		private readonly windowMs = 250,
		/** The thread's demand so far in ns (on a CPU plus waiting for one), or undefined if it is gone. */
		private readonly readDemand: (pid: number, tid: number) => number | undefined = threadDemandNs,
	) {}

	/** Record the demand of `tids` now (forgetting threads not among them). */
	sample(tids: Iterable<number>, now = performance.now()): void {
		const seen = new Set<number>();
		for (const tid of tids) {
			seen.add(tid);
			const ns = this.readDemand(this.qemuPid, tid);
			if (ns === undefined) continue;
			const list = this.samples.get(tid) ?? [];
			list.push([now, ns]);
			while (list.length > 2 && now - (list[1]?.[0] ?? now) >= this.windowMs) list.shift();
			this.samples.set(tid, list);
		}
		for (const tid of this.samples.keys()) if (!seen.has(tid)) this.samples.delete(tid);
	}

	/** Forget `tid`'s samples: its use is judged afresh from now (a vCPU just granted a CPU). */
	reset(tid: number): void {
		this.samples.delete(tid);
	}

	/** The fraction of the last window thread `tid` wanted a CPU (0..1), or undefined until a window is covered. */
	busy(tid: number): number | undefined {
		const list = this.samples.get(tid);
		const first = list?.[0];
		const last = list?.at(-1);
		if (!first || !last || last[0] - first[0] < this.windowMs * 0.9) return undefined;
		return Math.min(1, Math.max(0, (last[1] - first[1]) / 1e6 / (last[0] - first[0])));
	}
}

/**
 * Thread `tid` of process `pid`: nanoseconds on a CPU plus nanoseconds
 * runnable but waiting for one, from /proc/<pid>/task/<tid>/schedstat (the
 * kernel's CONFIG_SCHED_INFO). Without that file, CPU time alone (utime +
 * stime, 10 ms ticks). Undefined if the thread is gone.
 */
export function threadDemandNs(pid: number, tid: number): number | undefined {
	const sched = threadSchedstat(pid, tid);
	if (sched) return sched.runNs + sched.waitNs;
	// no schedstat (or the thread is gone): CPU time
	const ticks = threadTicks(pid, tid);
	return ticks === undefined ? undefined : ticks * 10_000_000;
}

/** utime + stime of thread `tid` of process `pid`, in clock ticks (USER_HZ, 100 on Linux); undefined if it is gone. */
export function threadTicks(pid: number, tid: number): number | undefined {
	const fields = procStatFields(pid, tid);
	return fields && Number(fields[14]) + Number(fields[15]);
}
