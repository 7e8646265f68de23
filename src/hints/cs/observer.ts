// Critical sections, observed (--pv-cs observe; docs/critical-sections.md):
// every 10 ms, look at the guest's critical-section cells and at each vCPU
// thread's wait for a CPU, and count, per vCPU, time inside sections and time
// preempted while inside one. The host's view of the threads comes from one of
// two sources: a host BPF program (src/fast/sched.ts), exact to the switch,
// whose native thread writes the feedback flags into the slots itself; or,
// where the host does not allow BPF, /proc, read at each look, and then the
// observer writes the flags. Logged as `cs` events and shown by `pvrun status`.
import fs from 'node:fs';
import {threadCpuNs} from '../../host/libc.js';
import type {ShmArea} from '../../shm/area.js';
import {saturatingAdd, type ShmCounters} from '../../shm/counters.js';
import {Feature, RecordType, Slot, SlotFlag, slotSize, slotsOffset} from '../../shm/layout.js';
import {waitedNs, type BoostStats, type BoostVcpu, type SchedStats, type VcpuSched} from '../../fast/sched.js';
import {judge, readCells, readKernelWaits, readRunningThreads, type ThreadSample} from './sample.js';

/** The kernel lock program (bpf/cs.bpf.c): its records update the slots' guest part, through the agent. */
export const csProgram = {name: 'cs', recordType: RecordType.cs, feature: Feature.cs, program: 'cs.bpf.o'} as const;

/** How often the observer looks while a guest thread holds a cell or a vCPU waits for a kernel lock. */
export const csPeriodMs = 10;
/**
 * How often it looks otherwise: no section can begin on a vCPU without a cell, so nothing needs
 * the 10 ms, and a JavaScript timer 100 times a second costs this machine about 1.3 % of a CPU
 * by itself, even with nothing to do.
 */
export const csIdlePeriodMs = 100;
/** How often a `cs` event is logged while something changed. */
export const csLogEveryMs = 5000;

/** Where the observer reads the host's view of threads and CPUs (tests give their own). */
export interface HostReader {
	/** A vCPU thread's CPU time, run delay, state and last CPU, or undefined if it is gone. */
	thread(pid: number, tid: number): Omit<ThreadSample, 'atNs'> | undefined;
	/** Per host CPU: ns that all threads together have waited for it (/proc/schedstat). */
	cpuWaits(): Map<number, number>;
	/** Host CLOCK_MONOTONIC ns. */
	now(): number;
	/** CPU time the calling thread has used, ns: what each look costs (absent: its wall time). */
	threadCpuNs?(): number;
	/** Let go of what is kept for thread `tid` (no longer a vCPU thread). */
	forget?(tid: number): void;
	/** Let go of everything (the observer stopped). */
	close?(): void;
}

/**
 * The host's view from /proc. Each thread's two files stay open between looks
 * and are read again from offset 0 (a /proc file is generated at each read):
 * opening them anew every 10 ms cost more than the reading.
 */
export class ProcHostReader implements HostReader {
	private readonly files = new Map<number, {schedstat: number; stat: number}>();
	private readonly buf = Buffer.alloc(1024);
	/** /proc/schedstat, or null once it is known to be missing (a kernel without CONFIG_SCHEDSTATS). */
	private schedstat: number | null | undefined;

	thread(pid: number, tid: number): Omit<ThreadSample, 'atNs'> | undefined {
		let f = this.files.get(tid);
		try {
			if (!f) {
				const schedstat = fs.openSync(`/proc/${pid}/task/${tid}/schedstat`, 'r');
				try {
					f = {schedstat, stat: fs.openSync(`/proc/${pid}/task/${tid}/stat`, 'r')};
				} catch (error) {
					fs.closeSync(schedstat);
					throw error;
				}
				this.files.set(tid, f);
			}
			const sched = this.read(f.schedstat).split(' ');
			const stat = this.read(f.stat);
			// After the command name, which may hold spaces and ')': state is field 3, processor field 39.
			const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
			const execNs = Number(sched[0]);
			const runDelayNs = Number(sched[1]);
			const cpu = Number(after[39 - 3]);
			if (!Number.isFinite(execNs) || !Number.isFinite(runDelayNs) || !Number.isInteger(cpu)) return undefined;
			return {execNs, runDelayNs, runnable: after[0] === 'R', cpu};
		} catch {
			this.forget(tid);
			return undefined;
		}
	}

	cpuWaits(): Map<number, number> {
		const waits = new Map<number, number>();
		if (this.schedstat === null) return waits;
		try {
			this.schedstat ??= fs.openSync('/proc/schedstat', 'r');
			// "cpuN yld_count 0 sched_count sched_goidle ttwu_count ttwu_local rq_cpu_time rq_run_delay rq_timeslices"
			for (const line of fs.readFileSync(this.schedstat, 'utf8').split('\n')) {
				const m = /^cpu(\d+) (?:\d+ ){7}(\d+) /.exec(line);
				if (m) waits.set(Number(m[1]), Number(m[2]));
			}
			fs.closeSync(this.schedstat);
			this.schedstat = undefined;
		} catch {
			this.schedstat = null;
		}
		return waits;
	}

	threadCpuNs(): number {
		return threadCpuNs();
	}

	now(): number {
		return Number(process.hrtime.bigint());
	}

	/** Close what is open for thread `tid` (it is gone, or no longer a vCPU). */
	forget(tid: number): void {
		const f = this.files.get(tid);
		if (!f) return;
		this.files.delete(tid);
		fs.closeSync(f.schedstat);
		fs.closeSync(f.stat);
	}

	/** Close everything. */
	close(): void {
		for (const tid of [...this.files.keys()]) this.forget(tid);
	}

	private read(fd: number): string {
		const n = fs.readSync(fd, this.buf, 0, this.buf.length, 0);
		return this.buf.toString('latin1', 0, n);
	}
}

/** The host BPF source as the observer uses it (HostSched; tests give their own). */
export interface SchedSource {
	setVcpus(tids: readonly number[]): void;
	watch(vcpus: readonly boolean[]): void;
	sync(): void;
	read(n: number): VcpuSched[];
	stats(): SchedStats;
	stop(): void;
	/** Acting (--pv-cs act): what the policy did. */
	boosts?(n: number): {stats: BoostStats; vcpus: BoostVcpu[]};
}

/** What acting did, over all vCPUs (the `cs` event's `act`). */
export type ActSummary = {
	/** Boosts applied, and their delay from the preemption, µs: mean and max. */
	boosts: number;
	delayMeanUs: number;
	delayMaxUs: number;
	/** Policy changes the kernel refused (acting stops at the first that is not a thread gone), and the last errno. */
	errors: number;
	lastError: number;
};

/** What acting did on one vCPU (its `cs` event entry, pvrun status). */
export interface ActVcpu {
	/** BoostMode: normal, boosted or paying back, now. */
	mode: number;
	boosts: number;
	boostedMs: number;
	/** Preemptions inside a section that got no boost (no budget, or payback owed). */
	refused: number;
	/** Boost time left in the budget, payback owed and given. */
	budgetMs: number;
	debtMs: number;
	paidMs: number;
}

/** Where the host's view of the vCPU threads comes from. */
export type FeedbackSource = 'bpf' | 'proc';

/** What the host BPF source cost and how fast its flags reached the slots (the `cs` event's `bpf`). */
export type SchedCost = {
	/** Its native thread's wake-ups and slot writes. */
	wakeups: number;
	writes: number;
	/** From the switch that changed a vCPU's flags to their write in the slot: mean and max, µs. */
	delayMeanUs: number;
	delayMaxUs: number;
	/** CPU time of its native thread, and of the program on the host's CPUs (runs and µs). */
	threadUs: number;
	programRuns: number;
	programUs: number;
};

/** Per vCPU, what the observer has counted; acting, what the policy did there too. */
export type CsVcpu = CsVcpuCounts | (CsVcpuCounts & ActVcpu);

interface CsVcpuCounts {
	vcpu: number;
	/** Time a guest thread on it was inside a critical section (sampled every 10 ms). */
	csMs: number;
	/** Of that, time its host thread waited for a CPU: the waste acting must cut. */
	csPreemptedMs: number;
	/** Time its host thread waited for a CPU, in all. */
	preemptedMs: number;
	/** Kernel lock waits that ended on it, and their time (the guest agent's counts, since observation began). */
	klockWaits: number;
	klockWaitMs: number;
	preempted: boolean;
	overloaded: boolean;
}

export interface CsSummary {
	vcpus: CsVcpu[];
	/** Cells the guest's threads hold now. */
	cells: number;
	/** Sums over those cells: outermost sections entered, lock acquisitions that waited, waits that parked. */
	sections: number;
	lockWaits: number;
	parks: number;
	/** Looks taken, and the CPU time they used (µs, on pvrun's thread: the observer's own cost). */
	looks: number;
	lookUs: number;
	/** Where the host's view came from; with `bpf`, what that source cost. */
	feedback: FeedbackSource;
	bpf?: SchedCost;
	act?: ActSummary;
}

interface Vcpu {
	tid: number;
	last?: ThreadSample;
	/** BPF source: when the last look was, and the thread's wait total then. */
	lastAtNs?: number;
	lastWaitNs?: number;
	lastCpuWait?: number | undefined;
	csNs: number;
	csPreemptedNs: number;
	preempted: boolean;
	overloaded: boolean;
	firstRunDelayNs?: number;
	runDelayNs: number;
	/** The guest's kernel lock counters at the last look, and what they grew by since the first. */
	klockLast?: {waits: number; waitNs: number} | undefined;
	klockWaits: number;
	klockWaitNs: number;
}

/** The acting counters as the `cs` event reports them. */
function actTotals(s: BoostStats): ActSummary {
	return {
		boosts: s.actN,
		delayMeanUs: s.actN ? Math.round(s.actSumNs / s.actN / 1e3) : 0,
		delayMaxUs: Math.round(s.actMaxNs / 1e3),
		errors: s.errors,
		lastError: s.lastError,
	};
}

export class CsObserver {
	private vcpus: Vcpu[] = [];
	private timer: NodeJS.Timeout | undefined;
	private cellsNow = {used: 0, enters: 0, lockWaits: 0, parks: 0};
	private looks = 0;
	private lookNs = 0;
	private lastLogged = '';
	private lastLogAt = 0;
	/** Called after each look that changed the summary's figures (pvrun status). */
	listener: ((s: CsSummary) => void) | undefined;

	constructor(
		private readonly area: ShmArea,
		private readonly qemuPid: number,
		private readonly counters: ShmCounters,
		private readonly log: (summary: CsSummary) => void,
		private readonly host: HostReader = new ProcHostReader(),
		private readonly sched?: SchedSource,
		/** Acting: the native policy decides at each preemption; the observer reports what it did. */
		private readonly act = false,
	) {}

	/** Where the host's view of the vCPU threads comes from. */
	get feedback(): FeedbackSource {
		return this.sched ? 'bpf' : 'proc';
	}

	/** The vCPU threads, by vCPU index (after hot-plug too); what was counted for a kept vCPU stays. */
	setThreads(tids: readonly number[]): void {
		for (const old of this.vcpus) if (!tids.includes(old.tid)) this.host.forget?.(old.tid);
		this.vcpus = tids.slice(0, this.area.nrVcpus).map((tid, v) => {
			const old = this.vcpus[v];
			return old && old.tid === tid ? old : {tid, csNs: 0, csPreemptedNs: 0, preempted: false, overloaded: false, runDelayNs: 0, klockWaits: 0, klockWaitNs: 0};
		});
		this.sched?.setVcpus(this.vcpus.map((x) => x.tid));
	}

	start(): void {
		if (this.timer) return;
		const tick = (): void => {
			this.look();
			if (!this.timer) return; // stopped meanwhile
			this.timer = setTimeout(tick, this.nextLookMs);
			this.timer.unref();
		};
		this.timer = setTimeout(tick, csPeriodMs);
		this.timer.unref();
	}

	/** When the next look is due, ms: every 10 ms while the guest has sections or kernel lock waits in play, else every 100 ms. */
	get nextLookMs(): number {
		return this.quiet ? csIdlePeriodMs : csPeriodMs;
	}
	private quiet = false;

	/** Stop looking, clear the flags the guest sees, and log the last summary. */
	stop(): CsSummary {
		clearTimeout(this.timer);
		this.timer = undefined;
		const s = this.summary();
		// The BPF source's thread clears the flags it wrote when it stops.
		if (this.sched) this.sched.stop();
		else for (let v = 0; v < this.vcpus.length; v++) this.writeFlags(v, 0, this.vcpus[v]?.runDelayNs ?? 0);
		this.host.close?.();
		this.log(s);
		return s;
	}

	/** One look: the host's view of each vCPU thread, the guest's cells, the flags. */
	look(): void {
		const started = this.cpuNow();
		const cells = readCells(this.area.view, this.area.nrVcpus, this.counters, readRunningThreads(this.area.view, this.area.nrVcpus));
		this.cellsNow = cells;
		// A vCPU is inside a kernel critical section when another vCPU waits for a lock it holds.
		const kernel = readKernelWaits(this.area.view, this.area.nrVcpus, this.counters);
		const holds = new Array<boolean>(this.area.nrVcpus).fill(false);
		kernel.forEach((k, v) => {
			if (k?.waiting && k.ownerCpu >= 0 && k.ownerCpu !== v) holds[k.ownerCpu] = true;
		});
		const inside = this.vcpus.map((_, v) => Boolean(cells.inSection[v] || holds[v]));
		this.quiet = cells.used === 0 && !kernel.some((k) => k?.waiting);
		// The BPF source wakes at once for the vCPUs inside a section; the rest waits for this look.
		// (Acting, it also wakes at the preemption of every vCPU that runs a thread holding a
		// cell: the policy reads the cells itself then.)
		this.sched?.watch(inside);
		this.sched?.sync();
		const samples = this.sched?.read(this.vcpus.length);
		// /proc/schedstat only for the /proc source: the BPF source reads no /proc file.
		const cpuWaits = samples ? undefined : this.host.cpuWaits();
		for (let v = 0; v < this.vcpus.length; v++) {
			const x = this.vcpus[v];
			if (!x) continue;
			// The part of the interval since the last look that its thread waited for a CPU (ns), when known.
			const interval = samples ? this.fromSched(x, samples[v]) : this.fromProc(x, cpuWaits ?? new Map<number, number>());
			if (interval && inside[v]) {
				x.csNs += interval.ns;
				x.csPreemptedNs += interval.waitedNs;
			}
			const k = kernel[v];
			if (k) {
				// What the guest's counters grew by since the last look; a counter that went back (an
				// agent restarted, a scribble) adds nothing and is the new base.
				if (x.klockLast) {
					x.klockWaits = saturatingAdd(x.klockWaits, Math.max(0, k.waits - x.klockLast.waits));
					x.klockWaitNs = saturatingAdd(x.klockWaitNs, Math.max(0, k.waitNs - x.klockLast.waitNs));
				}
				x.klockLast = {waits: k.waits, waitNs: k.waitNs};
			}
			if (!samples) this.writeFlags(v, (x.preempted ? SlotFlag.vcpuPreempted : 0) | (x.overloaded ? SlotFlag.pcpuOverloaded : 0), x.runDelayNs);
		}
		this.looks++;
		this.maybeLog();
		this.lookNs += this.cpuNow() - started;
	}

	/**
	 * CPU time the looks have used, ms: pvrun's own work at a fixed rate, whatever the guest
	 * does, which the CPU governor leaves out of the guest's share (cpu-governor.ts).
	 */
	get ownCpuMs(): number {
		return this.lookNs / 1e6;
	}

	private cpuNow(): number {
		return this.host.threadCpuNs ? this.host.threadCpuNs() : this.host.now();
	}

	/** vCPU x from /proc: judge the interval since the last look (the flags follow). */
	private fromProc(x: Vcpu, cpuWaits: Map<number, number>): {ns: number; waitedNs: number} | undefined {
		const t = this.host.thread(this.qemuPid, x.tid);
		if (!t) return undefined;
		const cur: ThreadSample = {atNs: this.host.now(), ...t};
		const cpuWait = cpuWaits.get(t.cpu);
		x.firstRunDelayNs ??= t.runDelayNs;
		x.runDelayNs = t.runDelayNs - x.firstRunDelayNs;
		let interval: {ns: number; waitedNs: number} | undefined;
		if (x.last) {
			// Others' wait on its CPU, when it stayed on one CPU whose figure is known at both looks.
			const cpuWaitNs = x.last.cpu === cur.cpu && x.lastCpuWait !== undefined && cpuWait !== undefined ? cpuWait - x.lastCpuWait : undefined;
			const f = judge(x.last, cur, cpuWaitNs);
			x.preempted = f.preempted;
			x.overloaded = f.overloaded;
			const ns = cur.atNs - x.last.atNs;
			interval = {ns, waitedNs: ns * f.waited};
		}
		x.last = cur;
		x.lastCpuWait = cpuWait;
		return interval;
	}

	/** vCPU x from the BPF source: its flags as the program set them, its wait exact. */
	private fromSched(x: Vcpu, s: VcpuSched | undefined): {ns: number; waitedNs: number} | undefined {
		if (!s) return undefined;
		const now = this.host.now();
		const waited = waitedNs(s, now);
		x.preempted = (s.flags & SlotFlag.vcpuPreempted) !== 0;
		x.overloaded = (s.flags & SlotFlag.pcpuOverloaded) !== 0;
		x.firstRunDelayNs ??= waited;
		x.runDelayNs = Math.max(0, waited - x.firstRunDelayNs);
		let interval: {ns: number; waitedNs: number} | undefined;
		if (x.lastAtNs !== undefined && x.lastWaitNs !== undefined) {
			const ns = Math.max(0, now - x.lastAtNs);
			interval = {ns, waitedNs: Math.min(ns, Math.max(0, waited - x.lastWaitNs))};
		}
		x.lastAtNs = now;
		x.lastWaitNs = waited;
		return interval;
	}

	/** What the BPF source cost so far. */
	private schedCost(sched: SchedSource): SchedCost {
		const s = sched.stats();
		return {
			wakeups: s.wakeups,
			writes: s.writes,
			delayMeanUs: s.latN ? Math.round(s.latSumNs / s.latN / 1e3) : 0,
			delayMaxUs: Math.round(s.latMaxNs / 1e3),
			threadUs: Math.round(s.threadCpuNs / 1e3),
			programRuns: s.progRuns,
			programUs: Math.round(s.progRunNs / 1e3),
		};
	}

	summary(): CsSummary {
		const acted = this.act ? this.sched?.boosts?.(this.vcpus.length) : undefined;
		const ms = (ns: number) => Math.round(ns / 1e5) / 10;
		const actOf = (b: BoostVcpu | undefined): ActVcpu | undefined =>
			b && {
				mode: b.mode,
				boosts: b.boosts,
				boostedMs: ms(b.boostedNs),
				refused: b.refused,
				budgetMs: ms(b.tokensNs),
				debtMs: ms(b.debtNs),
				paidMs: ms(b.paidNs),
			};
		return {
			vcpus: this.vcpus.map((x, vcpu) => ({
				vcpu,
				csMs: Math.round(x.csNs / 1e6),
				csPreemptedMs: Math.round(x.csPreemptedNs / 1e6),
				preemptedMs: Math.round(x.runDelayNs / 1e6),
				klockWaits: x.klockWaits,
				klockWaitMs: Math.round(x.klockWaitNs / 1e6),
				preempted: x.preempted,
				overloaded: x.overloaded,
				...actOf(acted?.vcpus[vcpu]),
			})),
			cells: this.cellsNow.used,
			sections: this.cellsNow.enters,
			lockWaits: this.cellsNow.lockWaits,
			parks: this.cellsNow.parks,
			looks: this.looks,
			lookUs: Math.round(this.lookNs / 1e3),
			feedback: this.feedback,
			...(this.sched ? {bpf: this.schedCost(this.sched)} : {}),
			...(acted ? {act: actTotals(acted.stats)} : {}),
		};
	}

	/** A `cs` event at most every 5 s, when the counted figures changed. */
	private maybeLog(): void {
		const now = this.host.now();
		if (now - this.lastLogAt < csLogEveryMs * 1e6) return;
		const s = this.summary();
		const key = JSON.stringify({...s, looks: 0, lookUs: 0, bpf: undefined, vcpus: s.vcpus.map((x) => [x.csMs, x.csPreemptedMs, x.preemptedMs, x.klockWaits])});
		this.lastLogAt = now;
		if (key === this.lastLogged) return;
		this.lastLogged = key;
		this.log(s);
		this.listener?.(s);
	}

	/** Slot v's flags (one atomic store: the host owns the word) and its run delay. */
	private writeFlags(v: number, flags: number, runDelayNs: number): void {
		if (v < 0 || v >= this.area.nrVcpus) return;
		const base = slotsOffset + v * slotSize;
		Atomics.store(this.area.u32, (base + Slot.flags) / 4, flags);
		this.area.view.setBigUint64(base + Slot.preemptedNs, BigInt(Math.max(0, Math.round(runDelayNs))), true);
		this.area.view.setBigUint64(base + Slot.flagsNs, BigInt(Math.round(this.host.now())), true);
	}
}
