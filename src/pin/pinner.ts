// Where threads are pinned: apply an affinity assignment to the vCPU threads
// (and QEMU's other threads, which float) with sched_setaffinity, calling it
// only for threads whose CPU set changes. In shared mode the floating vCPU
// threads also run at a higher nice value, relative to what they had. vCPUs
// an operator pinned (held), and QEMU's other threads once an operator
// pinned them, are left alone; so is a vCPU thread whose CPUs are no longer
// what pvrun set last (an operator's taskset since pvrun last looked): the
// engine's look at operators then holds it.
//
// With a FloatGroup (src/pin/cpuset.ts) the floating vCPU threads are in one
// cpuset: a new floating set is one write of it, a grant moves its thread out
// and pins it, a release moves it back: a few system calls per decision
// whatever the vCPU count.
//
// With priority grants (usePriority) the floating vCPU threads keep every CPU
// the VM may use, granted ones included, and a grant pins its one thread and
// puts it in SCHED_FIFO 1: it runs whenever it wants to, and the kernel moves
// the floating threads off its CPU (whose capacity the real-time thread takes).
// A decision touches only the threads whose grant begins or ends, whatever the
// vCPU count. When every CPU is granted (crowded), grants stay SCHED_OTHER and
// the floating threads share them at the lower weight, as without.
import type {FloatGroup} from './cpuset.js';
import {sameCpus} from './operator.js';
import {getThreadAffinity, getThreadNice, setThreadAffinity, setThreadFifo, setThreadNice, threadInProcess, threadPolicy} from '../host/libc.js';
import {processThreads} from '../host/proc.js';
import type {Assignment} from '../hints/affinity/policy.js';
import {firstLine} from '../util/errors.js';

/** What applying an assignment would do to one vCPU thread (see Pinner.plan). */
export interface PinOp {
	vcpu: number;
	tid: number;
	/** The CPUs to set, or undefined when they stay. */
	cpus?: number[];
	/** The CPUs pvrun set last (as planned), which the thread must still have for `cpus` to be set; undefined: none yet. */
	from?: number[];
	/** The nice value to set (the thread's own base plus `niceOffset`), or undefined when it stays. */
	nice?: number;
	niceOffset?: number;
	/**
	 * With a float group: 'leave' moves the thread out of the floating set
	 * before its one CPU is set; 'join' widens it and moves it in; 'float'
	 * (vcpu -1, tid 0) writes `cpus` as the floating set, for every vCPU
	 * thread in it.
	 */
	group?: 'leave' | 'join' | 'float';
	/** Priority grants: 'fifo' after the thread's one CPU is set (with it, in the same op), 'normal' before its CPUs change. */
	sched?: 'normal' | 'fifo';
}

export interface PinResult {
	/** vCPU index → CPUs applied, for the vCPUs that changed. */
	changed: Map<number, number[]>;
	/** vCPUs left alone: their threads' CPUs were set outside pvrun since it set them. */
	moved: number[];
	errors: string[];
}

export class Pinner {
	private readonly applied = new Map<number, string>();
	/** Each vCPU thread's nice value when first seen (the user's choice), and the offset applied to it. */
	private readonly baseNice = new Map<number, number>();
	private readonly niceOffset = new Map<number, number>();
	/** The floating set last applied to QEMU's other threads. */
	private othersFloating: number[] | undefined;
	/** vCPUs an operator pinned: no pin, no nice value of pvrun's. */
	private readonly held = new Set<number>();
	/** An operator pinned QEMU's other threads (virsh emulatorpin): they are left alone. */
	private othersHeld = false;
	/** The floating vCPU threads' cpuset, when there is one (useGroup). */
	private group: FloatGroup | undefined;
	/** vCPU threads in the group's floating set. */
	private readonly grouped = new Set<number>();
	/** Grants raise their thread instead of narrowing the floating ones (usePriority). */
	private priority = false;
	/** Threads pvrun put in SCHED_FIFO (priority grants). */
	private readonly fifo = new Set<number>();
	/** Bumped by every method that may change what is applied (plan's index of resting threads follows it). */
	private version = 0;
	/** The vCPUs not at rest for a floating set and nice offset, as of `version` (see restless). */
	private restIndex: {version: number; floatKey: string; offset: number; restless: number[]; vcpuOf: Map<number, number>} | undefined;

	/** `vcpuThreads`: vCPU index → host thread id; `qemuPid`: the QEMU process. */
	constructor(
		private vcpuThreads: Map<number, number>,
		private readonly qemuPid: number,
		/** Also move the calling (pvrun's main) thread with the floating set. */
		private readonly includeSelf = false,
		/**
		 * Whether thread `tid` is process `tgid`'s now, asked right before each
		 * change: an exited vCPU thread's id may already be another process's
		 * (ids are reused) before pvrun hears of the exit, and pvrun never
		 * touches other processes. Tests whose stand-in "threads" are processes
		 * of their own say so here.
		 */
		private readonly owns: (tgid: number, tid: number) => boolean = threadInProcess,
		/** The CPUs the kernel lets thread `tid` use now. */
		private readonly affinityOf: (tid: number) => number[] = getThreadAffinity,
		/** Thread `tid`'s scheduling policy now (1: SCHED_FIFO). */
		private readonly policyOf: (tid: number) => number = (tid) => threadPolicy(qemuPid, tid),
	) {}

	/** vCPU index → host thread id, as last set. */
	threads(): ReadonlyMap<number, number> {
		return this.vcpuThreads;
	}

	/** New thread ids (after hot-plug or reset): everything is applied afresh (holds end: new threads, new look). */
	setThreads(vcpuThreads: Map<number, number>): void {
		this.version++;
		this.lowerAll();
		this.vcpuThreads = vcpuThreads;
		this.applied.clear();
		this.othersFloating = undefined;
		this.held.clear();
		this.grouped.clear();
	}

	/** Place the floating vCPU threads as one, in `group`, from the next apply on. */
	useGroup(group: FloatGroup): void {
		this.version++;
		this.group = group;
		this.grouped.clear();
		for (const tid of this.vcpuThreads.values()) this.applied.delete(tid);
	}

	/** Grant by priority from the next apply on (see the file's header); not with a float group. */
	usePriority(): void {
		this.version++;
		this.priority = true;
	}

	/** The CPUs the floating vCPU threads get under `a`: its floating set, and with priority grants the granted CPUs too. */
	floatingCpus(a: Assignment): number[] {
		if (!this.priority || a.exclusive.size === 0) return a.floating;
		return [...new Set([...a.floating, ...[...a.exclusive.values()].map((e) => e.pcpu)])].sort((x, y) => x - y);
	}

	/** The CPUs vCPU `v`'s thread gets under `a`: its own, or the floating threads'. */
	cpusOf(a: Assignment, v: number): number[] {
		const own = a.exclusive.get(v);
		return own ? [own.pcpu] : this.floatingCpus(a);
	}

	/** Whether vCPU `v`'s thread runs in SCHED_FIFO under `a`: a priority grant, unless the floating vCPUs share every CPU. */
	private raised(a: Assignment, v: number): boolean {
		return this.priority && a.exclusive.has(v) && a.floatNice === 0;
	}

	/** Every thread pvrun put in SCHED_FIFO back to SCHED_OTHER (the VM ends, its threads change); returns errors. */
	lowerAll(): string[] {
		this.version++;
		// With priority grants, also a vCPU thread the fast path raised in a change not taken yet.
		if (this.priority)
			for (const [v, tid] of this.vcpuThreads)
				try {
					if (!this.held.has(v) && this.policyOf(tid) === 1) this.fifo.add(tid);
				} catch {
					// gone
				}
		const errors: string[] = [];
		for (const tid of this.fifo) this.lower(tid, errors);
		return errors.filter((e) => !e.includes('ESRCH'));
	}

	/** Thread `tid` back to SCHED_OTHER if pvrun raised it. */
	private lower(tid: number, errors: string[]): void {
		if (!this.fifo.delete(tid)) return;
		try {
			this.checkOwned(tid, this.qemuPid);
			setThreadFifo(tid, false);
		} catch (error) {
			errors.push(firstLine(error));
		}
	}

	/** Thread `tid` (pinned to its one CPU by pvrun) to SCHED_FIFO 1, unless it is already. */
	private raise(tid: number, errors: string[]): void {
		if (this.fifo.has(tid)) return;
		try {
			this.checkOwned(tid, this.qemuPid);
			setThreadFifo(tid, true);
			this.fifo.add(tid);
		} catch (error) {
			errors.push(firstLine(error));
		}
	}

	/** The CPUs pvrun last set on thread `tid` (a vCPU's, or QEMU's main thread for the others), if any. */
	appliedCpus(tid: number): number[] | undefined {
		if (tid === this.qemuPid) return this.othersFloating && [...this.othersFloating];
		return this.applied.get(tid)?.split(',').map(Number);
	}

	/**
	 * Leave vCPU `vcpu` to the operator who pinned it: no pin, and its nice
	 * value back to its own (pvrun's offset taken off). Returns errors.
	 */
	hold(vcpu: number): string[] {
		this.version++;
		this.held.add(vcpu);
		const tid = this.vcpuThreads.get(vcpu);
		const errors: string[] = [];
		if (tid !== undefined) {
			this.applied.delete(tid);
			this.lower(tid, errors);
			this.renice(tid, 0, errors);
			// Out of the floating set, so that its changes never reach the operator's thread.
			if (this.group && this.grouped.delete(tid))
				try {
					const cpus = this.affinityOf(tid);
					this.group.leave(tid);
					setThreadAffinity(tid, cpus);
				} catch (error) {
					errors.push(firstLine(error));
				}
		}
		return errors;
	}

	/** vCPU `vcpu` is pvrun's again: the next apply pins it afresh. */
	release(vcpu: number): void {
		this.version++;
		this.held.delete(vcpu);
		const tid = this.vcpuThreads.get(vcpu);
		if (tid !== undefined) this.applied.delete(tid);
	}

	/** Thread `tid`'s CPUs were changed behind pvrun's back to a set it may widen: pin it afresh next time. */
	forget(tid: number): void {
		this.version++;
		if (tid === this.qemuPid) this.forgetOthers();
		else this.applied.delete(tid);
	}

	/** Leave QEMU's other threads to the operator (true), or take them back (false). */
	holdOthers(held: boolean): void {
		this.version++;
		this.othersHeld = held;
		this.forgetOthers();
	}

	/** Whether QEMU's other threads are left to the operator. */
	othersAreHeld(): boolean {
		return this.othersHeld;
	}

	/** Everything pvrun set on QEMU's other threads is forgotten: the next applyOthers pins them afresh. */
	private forgetOthers(): void {
		this.othersFloating = undefined;
		const vcpuTids = new Set(this.vcpuThreads.values());
		for (const tid of this.applied.keys()) if (!vcpuTids.has(tid)) this.applied.delete(tid);
	}

	/** The vCPUs held for the operator. */
	heldVcpus(): ReadonlySet<number> {
		return this.held;
	}

	/** Apply `a` to the vCPU threads; returns what changed. Threads that vanished are reported, not fatal. */
	apply(a: Assignment): PinResult {
		this.version++;
		if (this.group) return this.applyGrouped(a, this.group);
		const changed = new Map<number, number[]>();
		const moved: number[] = [];
		const errors: string[] = [];
		const floating = this.floatingCpus(a);
		for (const [v, tid] of this.vcpuThreads) {
			if (this.held.has(v)) continue;
			const own = a.exclusive.get(v);
			const cpus = own ? [own.pcpu] : floating;
			const last = this.applied.get(tid);
			const raised = this.raised(a, v);
			if (last !== undefined && last !== cpus.join(',') && this.movedAway(tid, last)) {
				moved.push(v);
				continue;
			}
			if (!raised) this.lower(tid, errors);
			if (this.pin(tid, cpus, errors)) changed.set(v, cpus);
			// Only on its one CPU: a SCHED_FIFO vCPU thread never runs on another.
			if (raised && this.applied.get(tid) === cpus.join(',')) this.raise(tid, errors);
		}
		// Weights after placement: the hint's own CPU first, the floating vCPUs' share second.
		for (const [v, tid] of this.vcpuThreads) if (!this.held.has(v) && !moved.includes(v)) this.renice(tid, a.exclusive.has(v) ? 0 : a.floatNice, errors);
		return {changed, moved, errors};
	}

	/**
	 * `apply` with a float group: grants leave the floating set first, then the
	 * set is written (once), then released or new threads join it. A floating
	 * thread in the group is not looked at one by one: the kernel keeps an
	 * operator's mask across the writes, and the engine's look finds it.
	 */
	private applyGrouped(a: Assignment, group: FloatGroup): PinResult {
		const changed = new Map<number, number[]>();
		const moved: number[] = [];
		const errors: string[] = [];
		const floatKey = a.floating.join(',');
		for (const [v, tid] of this.vcpuThreads) {
			const own = a.exclusive.get(v);
			if (this.held.has(v) || !own) continue;
			const last = this.applied.get(tid);
			if (last === String(own.pcpu)) continue;
			if (last !== undefined && this.movedAway(tid, last)) {
				moved.push(v);
				continue;
			}
			try {
				this.checkOwned(tid, this.qemuPid);
				if (this.grouped.has(tid)) group.leave(tid);
				this.grouped.delete(tid);
				setThreadAffinity(tid, [own.pcpu]);
				this.applied.set(tid, String(own.pcpu));
				changed.set(v, [own.pcpu]);
			} catch (error) {
				errors.push(firstLine(error));
			}
		}
		let written = true;
		try {
			group.setFloating(a.floating);
		} catch (error) {
			written = false;
			errors.push(`cannot set the floating CPUs ${floatKey} in ${group.floatDir}: ${firstLine(error)}`);
		}
		for (const [v, tid] of this.vcpuThreads) {
			if (this.held.has(v) || a.exclusive.has(v)) continue;
			const last = this.applied.get(tid);
			if (this.grouped.has(tid)) {
				if (written && last !== floatKey) {
					this.applied.set(tid, floatKey);
					changed.set(v, a.floating);
				}
				continue;
			}
			if (last !== undefined && last !== floatKey && this.movedAway(tid, last)) {
				moved.push(v);
				continue;
			}
			try {
				this.checkOwned(tid, this.qemuPid);
				group.join(tid);
				this.grouped.add(tid);
				const floating = group.floating();
				const key = floating.join(',');
				this.applied.set(tid, key);
				if (last !== key) changed.set(v, floating);
			} catch (error) {
				errors.push(firstLine(error));
			}
		}
		for (const [v, tid] of this.vcpuThreads) if (!this.held.has(v) && !moved.includes(v)) this.renice(tid, a.exclusive.has(v) ? 0 : a.floatNice, errors);
		return {changed, moved, errors};
	}

	/** Whether thread `tid` no longer has the CPUs pvrun set last (`last`, joined): someone else placed it. */
	private movedAway(tid: number, last: string): boolean {
		try {
			return !sameCpus(this.affinityOf(tid), last.split(',').map(Number));
		} catch {
			return false; // gone: pin() says so
		}
	}

	/**
	 * What `apply(a)` would do now, without doing it (or after `assumed` were
	 * applied): for the fast path, which applies it from native code later (or
	 * never). Reads a thread's base nice value the first time it is needed.
	 */
	plan(a: Assignment, assumed: readonly PinOp[] = []): PinOp[] {
		const before = lastOps(assumed);
		if (this.group) return this.planGrouped(a, before, this.group);
		const appliedKey = (tid: number) => before.cpus.get(tid)?.join(',') ?? this.applied.get(tid);
		const offsetOf = (tid: number) => before.niceOffset.get(tid) ?? this.niceOffset.get(tid) ?? 0;
		const ops: PinOp[] = [];
		const fifoNow = (tid: number) => before.fifo.get(tid) ?? this.fifo.has(tid);
		const floating = this.floatingCpus(a);
		const floatKey = floating.join(',');
		// Only the vCPUs that may need an op: granted under `a`, not at rest now, or named by `assumed`.
		// A table plans each of its entries (one per vCPU): a grant by priority then costs O(vCPUs), not O(vCPUs²).
		const index = this.restless(floatKey, a.floatNice);
		const candidates = new Set<number>([...a.exclusive.keys(), ...index.restless]);
		for (const op of assumed) {
			const v = index.vcpuOf.get(op.tid);
			if (v !== undefined) candidates.add(v);
		}
		for (const vcpu of [...candidates].sort((x, y) => x - y)) {
			const tid = this.vcpuThreads.get(vcpu);
			if (tid === undefined || this.held.has(vcpu)) continue;
			const op: PinOp = {vcpu, tid};
			const own = a.exclusive.get(vcpu);
			const cpus = own ? [own.pcpu] : floating;
			const last = appliedKey(tid);
			const raised = this.raised(a, vcpu);
			// SCHED_FIFO comes with its one CPU, in the same op.
			if (last !== (own ? String(own.pcpu) : floatKey) || (raised && !fifoNow(tid))) {
				op.cpus = cpus;
				if (last !== undefined) op.from = last.split(',').map(Number);
			}
			if (raised !== fifoNow(tid)) op.sched = raised ? 'fifo' : 'normal';
			const offset = a.exclusive.has(vcpu) ? 0 : a.floatNice;
			if (offsetOf(tid) !== offset) {
				op.nice = this.niceFor(tid, offset);
				op.niceOffset = offset;
			}
			if (op.cpus || op.nice !== undefined || op.sched) ops.push(op);
		}
		return ops;
	}

	/**
	 * The vCPUs whose threads are not at rest for floating set `floatKey` and nice offset `offset`
	 * (other CPUs than the floating set as applied, SCHED_FIFO, another offset), and each vCPU
	 * thread's vCPU: computed once per change of what is applied, for every plan of a table.
	 */
	private restless(floatKey: string, offset: number): {restless: number[]; vcpuOf: Map<number, number>} {
		const cached = this.restIndex;
		if (cached?.version === this.version && cached.floatKey === floatKey && cached.offset === offset) return cached;
		const restless: number[] = [];
		const vcpuOf = new Map<number, number>();
		for (const [v, tid] of this.vcpuThreads) {
			vcpuOf.set(tid, v);
			if (this.applied.get(tid) !== floatKey || this.fifo.has(tid) || (this.niceOffset.get(tid) ?? 0) !== offset) restless.push(v);
		}
		this.restIndex = {version: this.version, floatKey, offset, restless, vcpuOf};
		return this.restIndex;
	}

	/** `plan` with a float group, in `applyGrouped`'s order: grants leave, the floating set is written once, others join. */
	private planGrouped(a: Assignment, before: AssumedOps, group: FloatGroup): PinOp[] {
		const inGroup = (tid: number) => before.joined.get(tid) ?? this.grouped.has(tid);
		const floatNow = before.floating ?? group.floating();
		const appliedKey = (tid: number) => (inGroup(tid) ? floatNow.join(',') : (before.cpus.get(tid)?.join(',') ?? this.applied.get(tid)));
		const offsetOf = (tid: number) => before.niceOffset.get(tid) ?? this.niceOffset.get(tid) ?? 0;
		const leaving: PinOp[] = [];
		const rest: PinOp[] = [];
		for (const [vcpu, tid] of this.vcpuThreads) {
			if (this.held.has(vcpu)) continue;
			const op: PinOp = {vcpu, tid};
			const own = a.exclusive.get(vcpu);
			const last = appliedKey(tid);
			if (own ? last !== String(own.pcpu) : !inGroup(tid)) {
				op.cpus = own ? [own.pcpu] : [...a.floating];
				if (last !== undefined) op.from = last.split(',').map(Number);
				if (own && inGroup(tid)) op.group = 'leave';
				if (!own) op.group = 'join';
			}
			const offset = own ? 0 : a.floatNice;
			if (offsetOf(tid) !== offset) {
				op.nice = this.niceFor(tid, offset);
				op.niceOffset = offset;
			}
			if (op.cpus || op.nice !== undefined) (op.group === 'leave' ? leaving : rest).push(op);
		}
		const float: PinOp[] = sameCpus(floatNow, a.floating) ? [] : [{vcpu: -1, tid: 0, cpus: [...a.floating], group: 'float'}];
		return [...leaving, ...float, ...rest];
	}

	/** The fast path applied `ops` (from `plan`) except those `failed` names (failed, or left alone): remember them as applied. */
	adopt(ops: readonly PinOp[], failed: (index: number) => boolean): void {
		this.version++;
		ops.forEach((op, i) => {
			if (failed(i)) return;
			if (op.group === 'float' && op.cpus) {
				this.group?.adoptFloating(op.cpus);
				const key = op.cpus.join(',');
				for (const tid of this.grouped) this.applied.set(tid, key);
				return;
			}
			if (this.vcpuThreads.get(op.vcpu) !== op.tid) return;
			if (op.group === 'leave') this.grouped.delete(op.tid);
			if (op.group === 'join') this.grouped.add(op.tid);
			if (op.cpus) this.applied.set(op.tid, op.cpus.join(','));
			if (op.niceOffset !== undefined) this.niceOffset.set(op.tid, op.niceOffset);
			if (op.sched === 'fifo') this.fifo.add(op.tid);
			if (op.sched === 'normal') this.fifo.delete(op.tid);
		});
	}

	/**
	 * Move QEMU's other threads (and pvrun's, with `includeSelf`) to the
	 * floating set of `a`, off the exclusive CPUs. Not on the hint's critical
	 * path: it reads /proc, and only when the floating set changed. At once
	 * when the set loses a CPU (a new grant must be its vCPU's alone); when it
	 * only gains CPUs (a grant went away), only with `widen` (the engine's
	 * timer). A guest that pins a thread and lets it go again and again would
	 * otherwise have pvrun move some twenty threads twice per hint, for a CPU
	 * they lose again a moment later: profiled in back-to-back hints, half of
	 * pvrun's CPU time, past its SCHED_FIFO budget
	 * (bench/experiments/2026-11-23-follow-cost/).
	 */
	applyOthers(a: Assignment, widen = false): string[] {
		this.version++;
		const before = this.othersFloating;
		if (before && (before.join(',') === a.floating.join(',') || (!widen && before.every((c) => a.floating.includes(c))))) return [];
		this.othersFloating = [...a.floating];
		const transient: string[] = []; // worker threads come and go: a vanished one is no error
		if (!this.othersHeld) for (const tid of threadsExcept(this.qemuPid, [...this.vcpuThreads.values()])) this.pin(tid, a.floating, transient);
		// pvrun's own thread: on the lowest floating CPU, the housekeeping CPU that the policy
		// gives away last. Off the exclusive CPUs (it must not take time from them), and on one
		// CPU so that its caches stay warm between hints. Its other threads (V8's compiler and
		// collector helpers, libuv's pool) float: traced on 2 CPUs, they took up to 4 ms at a
		// time from a poller's exclusive CPU. Threads started later inherit the main thread's CPU.
		if (this.includeSelf) {
			try {
				setThreadAffinity(0, a.floating.slice(0, 1));
			} catch (error) {
				transient.push(firstLine(error));
			}
			for (const tid of ownOtherThreads()) this.pin(tid, a.floating, transient, process.pid);
		}
		return transient.filter((e) => !e.includes('ESRCH'));
	}

	/** Throws unless thread `tid` is still process `tgid`'s (its message names ESRCH: the thread is gone). */
	private checkOwned(tid: number, tgid: number): void {
		if (!this.owns(tgid, tid)) throw new Error(`thread ${tid} is no longer one of process ${tgid}'s: ESRCH; left alone`);
	}

	/** Set thread `tid`'s nice value to its own base plus `offset`, unless already done (attempted once per change). */
	private renice(tid: number, offset: number, errors: string[]): void {
		if ((this.niceOffset.get(tid) ?? 0) === offset) return;
		this.niceOffset.set(tid, offset);
		try {
			this.checkOwned(tid, this.qemuPid);
			setThreadNice(tid, this.niceFor(tid, offset));
		} catch (error) {
			errors.push(firstLine(error));
		}
	}

	/** Thread `tid`'s nice value at `offset` from its own base (read once, the first time). */
	private niceFor(tid: number, offset: number): number {
		let base = this.baseNice.get(tid);
		if (base === undefined) this.baseNice.set(tid, (base = getThreadNice(tid)));
		return Math.max(-20, Math.min(19, base + offset));
	}

	/** Pin one thread of process `tgid` unless it already has `cpus`; true if it changed. */
	private pin(tid: number, cpus: number[], errors: string[], tgid = this.qemuPid): boolean {
		const key = cpus.join(',');
		if (this.applied.get(tid) === key) return false;
		try {
			this.checkOwned(tid, tgid);
			setThreadAffinity(tid, cpus);
			this.applied.set(tid, key);
			return true;
		} catch (error) {
			errors.push(firstLine(error));
			return false;
		}
	}
}

/** What ops applied before a plan (its `assumed`) leave each thread with: the last of each kind, per thread. */
interface AssumedOps {
	cpus: Map<number, readonly number[]>;
	niceOffset: Map<number, number>;
	/** In the float group after them (joined) or out of it (left). */
	joined: Map<number, boolean>;
	/** The floating set they wrote, if any. */
	floating: readonly number[] | undefined;
	/** In SCHED_FIFO after them (true) or not (false). */
	fifo: Map<number, boolean>;
}

/** Index `ops` once: a plan looks up every vCPU thread in them (a table plans each of its entries). */
function lastOps(ops: readonly PinOp[]): AssumedOps {
	const last: AssumedOps = {cpus: new Map(), niceOffset: new Map(), joined: new Map(), floating: undefined, fifo: new Map()};
	for (const op of ops) {
		if (op.group === 'float') last.floating = op.cpus;
		else if (op.cpus) last.cpus.set(op.tid, op.cpus);
		if (op.niceOffset !== undefined) last.niceOffset.set(op.tid, op.niceOffset);
		if (op.group === 'leave' || op.group === 'join') last.joined.set(op.tid, op.group === 'join');
		if (op.sched) last.fifo.set(op.tid, op.sched === 'fifo');
	}
	return last;
}

/** The threads of process `pid` other than `except`, from /proc: QEMU's that are not vCPUs (main loop, I/O, RCU...), pvrun's helpers. */
export function threadsExcept(pid: number, except: readonly number[]): number[] {
	return processThreads(pid).filter((tid) => !except.includes(tid));
}

/** pvrun's own threads other than its main thread (whose id is the process id), from /proc. */
export function ownOtherThreads(): number[] {
	return threadsExcept(process.pid, [process.pid]);
}
