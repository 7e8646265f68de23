// What the host can say about a vCPU between two looks at /proc, and what the
// guest's critical-section cells say about each vCPU. Pure: the observer
// (observer.ts) does the reading and the writing.
import {saturatingAdd, type ShmCounters} from '../../shm/counters.js';
import {Cell, cellCount, cellSize, cellsOffset, Header, Slot, slotSize, slotsOffset} from '../../shm/layout.js';

/** A vCPU thread as /proc shows it at one moment. */
export interface ThreadSample {
	/** Host CLOCK_MONOTONIC ns when it was read. */
	atNs: number;
	/** Nanoseconds it has run on a CPU, in all (schedstat's first field; the kernel adds to it at each tick). */
	execNs: number;
	/** Nanoseconds it has waited for a CPU while runnable, in all (schedstat's second field, added when a wait ends). */
	runDelayNs: number;
	/** Runnable or running (stat's state R). */
	runnable: boolean;
	/** The host CPU it ran on last (stat's field 39). */
	cpu: number;
}

export interface HostFeedback {
	/** Runnable at both looks, and it ran for less than half of the interval. */
	preempted: boolean;
	/** Other threads waited for its CPU for at least a quarter of the interval (or, when the CPU's figure is unknown, it did). */
	overloaded: boolean;
	/** The part of the interval it was runnable but did not run, 0-1. */
	waited: number;
}

/** A runnable thread that waited for more than this part of an interval (ran for less than half) counts as preempted. */
export const preemptedShare = 0.5;
/** Others waiting on its CPU for at least this part of an interval make the CPU overloaded. */
export const overloadedShare = 0.25;

/**
 * The feedback for a vCPU over the interval from `prev` to `cur`, where
 * `cpuWaitNs` is how long all threads together waited for the CPU the vCPU
 * ran on (its /proc/schedstat line) over about the same interval, if known.
 *
 * The run delay cannot say that a thread waits *now*: the kernel adds a wait
 * to it when the wait ends. A runnable thread whose CPU time stands still
 * does: it waits for a CPU. The kernel adds CPU time at each tick (4 ms at
 * 250 Hz), so a thread that runs through a 10 ms interval gains 8-12 ms.
 */
export function judge(prev: ThreadSample, cur: ThreadSample, cpuWaitNs: number | undefined): HostFeedback {
	const interval = cur.atNs - prev.atNs;
	if (!(interval > 0)) return {preempted: false, overloaded: false, waited: 0};
	const ran = Math.min(1, Math.max(0, cur.execNs - prev.execNs) / interval);
	const waited = prev.runnable && cur.runnable ? 1 - ran : 0;
	// Without the CPU's figure (no /proc/schedstat: a kernel without CONFIG_SCHEDSTATS), the
	// thread's own wait says its CPUs had other runnable threads.
	const own = Math.max(0, cur.runDelayNs - prev.runDelayNs);
	const others = cpuWaitNs === undefined ? waited : Math.max(0, cpuWaitNs - own) / interval;
	return {preempted: waited > preemptedShare, overloaded: others >= overloadedShare, waited};
}

/** What the cells say, per vCPU and in all. */
export interface CellsView {
	/** Per vCPU: a thread whose cell names it is inside a section. */
	inSection: boolean[];
	/** Per vCPU: threads waiting for a pvcs lock there. */
	waiting: number[];
	/** Cells with an owner. */
	used: number;
	/** Sums over the owned cells. */
	enters: number;
	lockWaits: number;
	parks: number;
}

/** Guest thread ids are below PID_MAX_LIMIT. */
const pidLimit = 1 << 22;

/** A u64 counter from the guest, as a Number no larger than 2^53 - 1. */
function counter(view: DataView, offset: number): number {
	const v = view.getBigUint64(offset, true);
	return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

/**
 * The guest thread each vCPU runs now, as the guest agent copies it from the
 * guest's sched_switch into the slots' `cur_tid` (every 10 ms): thread id →
 * vCPU. Ids that are no thread id (0 is idle) are left out, and so is an id
 * that two slots name (a guest's scribble: neither is believed).
 */
export function readRunningThreads(view: DataView, nrVcpus: number): Map<number, number> {
	const running = new Map<number, number>();
	const twice = new Set<number>();
	for (let v = 0; v < nrVcpus; v++) {
		const tid = view.getUint32(slotsOffset + v * slotSize + Slot.curTid, true);
		if (tid === 0 || tid >= pidLimit) continue;
		if (running.has(tid)) twice.add(tid);
		running.set(tid, v);
	}
	for (const tid of twice) running.delete(tid);
	return running;
}

/**
 * Read the cells below the header's `cells_used` (at most 1024). A cell whose
 * owner is not a thread id, or whose thread is inside a section on a vCPU the
 * VM does not have, is counted in `badCell` and otherwise ignored. A thread
 * that `running` (readRunningThreads) places on a vCPU counts there, wherever
 * its section began: it may have migrated inside it.
 */
export function readCells(view: DataView, nrVcpus: number, counters: ShmCounters, running?: ReadonlyMap<number, number>): CellsView {
	const out: CellsView = {
		inSection: new Array<boolean>(nrVcpus).fill(false),
		waiting: new Array<number>(nrVcpus).fill(0),
		used: 0,
		enters: 0,
		lockWaits: 0,
		parks: 0,
	};
	const used = Math.min(view.getUint32(Header.cellsUsed, true), cellCount);
	let bad = 0;
	for (let i = 0; i < used; i++) {
		const base = cellsOffset + i * cellSize;
		const tid = view.getUint32(base + Cell.ownerTid, true);
		if (tid === 0) continue;
		if (tid >= pidLimit) {
			bad++;
			continue;
		}
		out.used++;
		out.enters = saturatingAdd(out.enters, counter(view, base + Cell.enters));
		out.lockWaits = saturatingAdd(out.lockWaits, counter(view, base + Cell.lockWaits));
		out.parks = saturatingAdd(out.parks, counter(view, base + Cell.parks));
		const depth = view.getUint32(base + Cell.depth, true);
		const waiting = view.getUint32(base + Cell.waiting, true) !== 0;
		if (depth === 0 && !waiting) continue;
		const began = view.getInt32(base + Cell.cpu, true);
		if (began < 0 || began >= nrVcpus) {
			bad++;
			continue;
		}
		const cpu = running?.get(tid) ?? began;
		if (depth > 0) out.inSection[cpu] = true;
		if (waiting) out.waiting[cpu] = (out.waiting[cpu] ?? 0) + 1;
	}
	if (bad > 0) counters.badCell = saturatingAdd(counters.badCell, bad);
	return out;
}

/** A vCPU slot's guest part: the kernel lock wait the guest agent last reported there. */
export interface KernelWait {
	/** A wait is in progress on the vCPU. */
	waiting: boolean;
	/** The lock owner's vCPU, when the kernel records the owner and it is one of the VM's; else -1. */
	ownerCpu: number;
	/** Waits ended on the vCPU, and their total time (the guest's counters, saturating). */
	waits: number;
	waitNs: number;
}

/**
 * The guest part of each slot below `nrVcpus`, read under its sequence (the
 * agent writes it seqlock-style): undefined for a slot that stays mid-write
 * for three tries. An owner vCPU outside the VM is counted in `badSlot` and
 * read as unknown.
 */
export function readKernelWaits(view: DataView, nrVcpus: number, counters: ShmCounters): (KernelWait | undefined)[] {
	const out: (KernelWait | undefined)[] = [];
	let bad = 0;
	for (let v = 0; v < nrVcpus; v++) {
		const base = slotsOffset + v * slotSize;
		let got: KernelWait | undefined;
		for (let tries = 0; tries < 3 && !got; tries++) {
			const seq = view.getUint32(base + Slot.guestSeq, true);
			if (seq & 1) continue;
			const waiting = view.getUint32(base + Slot.klockWaiting, true) !== 0;
			const ownerCpu = view.getInt32(base + Slot.klockOwnerCpu, true);
			const waits = counter(view, base + Slot.klockWaits);
			const waitNs = counter(view, base + Slot.klockWaitNs);
			if (view.getUint32(base + Slot.guestSeq, true) !== seq) continue;
			const known = ownerCpu >= 0 && ownerCpu < nrVcpus;
			if (waiting && ownerCpu !== -1 && !known) bad++;
			got = {waiting, ownerCpu: waiting && known ? ownerCpu : -1, waits, waitNs};
		}
		out.push(got);
	}
	if (bad > 0) counters.badSlot = saturatingAdd(counters.badSlot, bad);
	return out;
}
