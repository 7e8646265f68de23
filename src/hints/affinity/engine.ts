// The affinity hints' engine for one VM: drain the shared ring when the agent
// kicks (or a slow fallback timer fires), keep each guest thread's hint in the
// typed state (state.ts), decide (policy.ts), pin (src/pin/pinner.ts), and
// publish feedback; let the native fast path apply what it can (src/fast/) and
// follow it; look for operators' pins and idle grants on the slow timer. Each
// commit carries its typed cause. Measures the host-side latency (records
// visible → affinity applied) of every decision on records that changed a pin.
import type {ShmArea} from '../../shm/area.js';
import {writeFeedback} from '../../shm/feedback.js';
import {emptyCounters, type ShmCounters} from '../../shm/counters.js';
import type {RingReader} from '../../shm/reader.js';
import type {AffinityRecord} from './record.js';
import {formatCpuList} from '../../host/cpus.js';
import {firstLine} from '../../util/errors.js';
import {TokenBucket} from '../../util/token-bucket.js';
import {guestBudget, type GuestBudget} from '../../util/guest-budget.js';
import type {VmLeases} from './leasing.js';
import {decideAffinity, floatingOnly, type Assignment, type Held, type Hint} from './policy.js';
import {initialState, type AffinityState, type Cause, type DecisionCounts} from './state.js';
import type {HintTypeEngine} from '../types.js';
import {getThreadAffinity} from '../../host/libc.js';
import {covers, placer, sameCpus} from '../../pin/operator.js';
import type {HintActivity, RecentDecision, VcpuPlacement} from '../../vm/state.js';
import type {PinOp, PinResult, Pinner} from '../../pin/pinner.js';
import type {VcpuUsage} from '../../pin/usage.js';
import type {EventLog, LogFields} from '../../vm/event-log.js';
import {HintTally, summaryLine} from './tally.js';
import type {FastApplied, FastLink, FastTake} from '../../fast/binding.js';
import {buildFastTable, movedVcpus, resolvedNext, sameAssignment, type FastTable} from '../../fast/table.js';

function failedOp(a: FastApplied, i: number): boolean {
	return ((a.failedOps >> BigInt(i)) & 1n) === 1n;
}

function movedOp(a: FastApplied, i: number): boolean {
	return ((a.movedOps >> BigInt(i)) & 1n) === 1n;
}

/**
 * What the fast path did, as Pinner.apply would have reported it. A float
 * group's write changed every vCPU that floats in `next` (`floating`).
 */
function fastResult(ops: readonly PinOp[], a: FastApplied, floating: () => number[]): PinResult {
	const changed = new Map<number, number[]>();
	const moved: number[] = [];
	const errors: string[] = [];
	ops.forEach((op, i) => {
		if (movedOp(a, i)) moved.push(op.vcpu);
		else if (failedOp(a, i))
			errors.push(
				op.group === 'float'
					? `fast path: cannot set the floating CPUs ${op.cpus?.join(',')}: errno ${a.errno}`
					: `fast path: cannot apply to thread ${op.tid} (vCPU ${op.vcpu}): errno ${a.errno}`,
			);
		else if (op.group === 'float') for (const v of floating()) changed.set(v, op.cpus ?? []);
		else if (op.cpus) changed.set(op.vcpu, op.cpus);
	});
	return {changed, moved, errors};
}

/** What the fast path applied, with the table its entries index. */
interface Taken {
	take: FastTake;
	table: FastTable;
}

/** Hints kept at most (a guest cannot grow host memory without bound). */
const maxHints = 4096;
/** The reader's counter names, in a fixed order. */
const counterNames = Object.keys(emptyCounters()) as Array<keyof ShmCounters>;
/** Records decoded per drain before yielding to the event loop. */
const drainBudget = 1024;
/** A granted vCPU that wants a CPU less than this fraction of the time (VcpuUsage's window: running or waiting to run) shares it... */
const idleBelow = 0.4;
/** ...until it wants one more than this again (sharing, a busy vCPU may run only half the time but waits the rest). */
const busyAbove = 0.6;
/** Errors inside the hint loop after which it stops for good. */
const maxInternalErrors = 20;
/**
 * `pvrun status` sees a change of placement within this long (see
 * publishPlacement). Each rewrite of the state file took ~1.7 ms of pvrun's
 * thread in a profile of back-to-back hints: at 100 ms, 1.7 % of that
 * thread's time.
 */
const placementDelayMs = 500;
/**
 * A pin the fast path follows gets a fresh table once it has lasted this many timer ticks (1 s).
 * The fresh table is the pinned state's: it covers other threads' pins, but the pin's release
 * then ends it (the base table's way back is gone), and a pin that comes right after falls to
 * this thread. A thread that pins itself and lets go within a second keeps the way back.
 */
const refreshAfterTicks = 4;
/** Decisions `pvrun top` shows (the state file keeps as many). */
const recentDecisions = 8;

export class AffinityEngine implements HintTypeEngine {
	/** Hints, assignment, idle grants, operators' holds (state.ts). */
	private readonly state: AffinityState;
	/** The counters as last logged (all start at zero and only grow). */
	private readonly loggedCounters: Record<string, number> = {...emptyCounters(), hintsRefused: 0};
	private fallback: NodeJS.Timeout | undefined;
	private stopped = false;
	/** Host-side latencies in µs (records visible → affinity applied, on either path), for the benchmark. */
	readonly hostLatenciesUs: number[] = [];
	/** Who decided, and how often the fast path and the policy differed. */
	readonly decisions: DecisionCounts = {fast: 0, slow: 0, disagreed: 0, scans: 0};
	/** The native fast path, when it runs (see setFastPath). */
	private fast: FastLink | undefined;
	/** The host-wide CPU leases, when the host has a lease directory (see setLeases). */
	private leases: VmLeases | undefined;
	private leaseRetry: NodeJS.Timeout | undefined;
	/** Following the fast path: its current table, whether it follows a new pin, and what it applied that is not adopted yet. */
	private readonly follow: {
		table: FastTable | undefined;
		pinned: boolean;
		/** Timer ticks the pin has been followed through (refreshAfterTicks). */
		pinnedTicks: number;
		untaken: Taken | undefined;
	} = {table: undefined, pinned: false, pinnedTicks: 0, untaken: undefined};

	constructor(
		private readonly area: ShmArea,
		private readonly reader: RingReader,
		private readonly pinner: Pinner,
		private readonly allowed: number[],
		nrVcpus: number,
		private readonly log: EventLog,
		/** How busy granted vCPUs are; without it, a grant is never judged idle. */
		private readonly usage?: VcpuUsage,
		/** The CPUs the kernel lets thread `tid` run on now (tests give their own). */
		private readonly kernelCpus: (tid: number) => number[] = getThreadAffinity,
		/** QEMU's pid, whose main thread stands for its other threads (0: none to watch). */
		private readonly qemuPid = 0,
		/** What the guest's kicks may cost (--pv-guest-cpu). */
		private readonly budget: GuestBudget = guestBudget(),
		/** How long guest-driven work must wait for pvrun's measured CPU (cpu-governor.ts), ms. */
		private readonly cpuHoldMs: () => number = () => 0,
	) {
		this.state = initialState(allowed, nrVcpus);
		this.kickCredit = new TokenBucket(budget.burstMs, 1);
	}

	/**
	 * Let the native fast path (docs/fast-path.md) apply the decisions this
	 * engine precomputes; it wakes the engine with `kick()` after each kick.
	 */
	setFastPath(fast: FastLink): void {
		this.fast = fast;
		this.guarded(() => this.publishFast());
	}

	/**
	 * Lease every CPU a vCPU gets as its own (docs/leases.md), and place nothing on the CPUs
	 * other VMs lease. Before start().
	 */
	setLeases(leases: VmLeases): void {
		this.leases = leases;
		leases.refresh();
		this.state.assignment = floatingOnly(leases.placeable);
		leases.watch(() => this.guarded(() => this.onLeases()));
	}

	/**
	 * Another VM's leases may have changed (or a lease of this one outlived its grant): decide
	 * again. `force`: decide whatever the look finds (a decision the leases kept from being made).
	 */
	private onLeases(force = false): void {
		if (this.stopped || !this.leases) return;
		const changed = this.leases.refresh();
		if (changed) {
			const {placeable, floatOnly} = this.leases;
			this.log.write('leases', {
				placeable,
				floatOnly: [...floatOnly].sort((a, b) => a - b),
				held: [...this.leases.held()],
				waiting: this.leases.table.waiting !== undefined,
			});
		}
		// Nothing new for this VM, no lease to give back, nothing waited for: the fast path's table stays.
		if (!force && !changed && !this.leases.due() && this.leases.table.waiting === undefined) return;
		this.endFast();
		this.decide({kind: 'leases'});
		this.publishFast();
	}

	/** Apply the initial (all floating) placement and start listening. */
	start(fallbackMs = 250): void {
		this.guarded(() => {
			this.adoptFast(this.takeFast(true));
			this.commit(this.state.assignment, {kind: 'start'});
			this.publishFast();
		});
		this.reader.armKick();
		this.fallback = setInterval(() => {
			// Over its CPU share, pvrun leaves the records for later (the ring keeps the newest).
			if (this.cpuHoldMs() === 0) this.poll();
			// Other threads' new pins while the fast path follows one are not in its table's entries:
			// once the pin has lasted, a fresh table covers them.
			if (this.follow.pinned && ++this.follow.pinnedTicks >= refreshAfterTicks) this.guarded(() => this.refreshTable());
			this.guarded(() => this.judgeUse());
			this.guarded(() => this.checkOperator());
			// QEMU's and pvrun's other threads get back the CPUs a released grant left (Pinner.applyOthers).
			this.guarded(() => {
				for (const e of this.pinner.applyOthers(this.state.assignment, true)) this.log.write('pin-error', {error: e});
			});
			if (this.fallback) this.reader.heartbeat();
			this.summarise();
			this.guarded(() => this.watchStall(performance.now()));
		}, fallbackMs);
		this.fallback.unref();
	}

	/** Stop the loop: no more decisions, the fast path's table ended. */
	stop(): void {
		this.stopped = true;
		this.follow.table = undefined;
		this.fast?.take(true);
		if (this.fallback) clearInterval(this.fallback);
		this.fallback = undefined;
		clearTimeout(this.kickTimer);
		this.kickTimer = undefined;
		clearTimeout(this.leaseRetry);
	}

	/** Every vCPU thread a priority grant raised back to SCHED_OTHER (the VM ends; after the fast path stopped); returns errors. */
	lowerThreads(): string[] {
		return this.pinner.lowerAll();
	}

	/**
	 * The agent said records are waiting (a KICK frame, or the fast path after its kick). Polls
	 * spend a credit (`budget.burstMs`, refilled with time) as the fast path's kicks do: a poll
	 * that finds no record costs `budget.emptyKickMs`, one that finds some
	 * `budget.newsKickMs`, and each record it reads and each change of placement it makes cost
	 * `budget.recordMs` and `budget.decisionMs` on top. Out of credit, a kick is answered by one poll when the credit is
	 * back, which sees every record the kicks in between announced: a guest that kicks or
	 * writes records without pause gets a bounded number of polls, each covering all it wrote.
	 * While pvrun's measured CPU is over the share (`cpuHoldMs`), kicks wait the same way.
	 */
	kick(): void {
		const cost = Math.max(this.budget.emptyKickMs, this.budget.newsKickMs);
		const held = this.cpuHoldMs();
		if (held === 0 && this.kickCredit.tokens >= cost) {
			const records = this.recordsRead;
			const changes = this.changes;
			this.poll();
			// Records decoded, not the tail's move: a guest that moves its head far makes the tail jump.
			const read = this.recordsRead - records;
			// What the poll read and changed past the credit is a debt the next poll waits for.
			const b = this.budget;
			this.kickCredit.spend((read !== 0 ? b.newsKickMs + read * b.recordMs : b.emptyKickMs) + (this.changes - changes) * b.decisionMs);
		} else if (!this.kickTimer) {
			this.creditWaits++;
			this.kickTimer = setTimeout(
				() => {
					this.kickTimer = undefined;
					this.kick();
				},
				// A timer may fire up to a millisecond early on the clock the credit reads.
				Math.ceil(Math.max(held, this.kickCredit.msUntil(cost))) + 1,
			);
			this.kickTimer.unref();
		}
	}
	/** The polls kicks may cause (budget). */
	private readonly kickCredit: TokenBucket;
	/** Kicks that waited for the credit (or the measured CPU's hold) before their poll. */
	creditWaits = 0;
	/** Commits that changed a vCPU's placement, on either path, and records decoded (for the budget). */
	private changes = 0;
	private recordsRead = 0;
	/** What the hint path did since the last `hint-summary` (tally.ts). */
	private readonly tally = new HintTally();
	/** The reader's record rejections, and those with the hints refused, as last tallied. */
	private refusedSeen = {rejected: 0, refused: 0};

	/** A line of the hint path: within the log's budget, or counted for the next `hint-summary`. */
	private hintLine(event: string, fields: LogFields, summary?: string): void {
		if (!this.log.write(event, fields, summary)) this.tally.leftOut++;
	}

	/** Tally the records just read (`n` decoded; the reader counts those it rejected) and what was refused of them. */
	private tallyRecords(n: number): void {
		const c = this.reader.counters;
		const rejected = c.badSeq + c.badLength + c.unknownType + c.badAffinity;
		const refused = rejected + this.state.hintsRefused;
		this.tally.records += n + rejected - this.refusedSeen.rejected;
		this.recordsRead += n + rejected - this.refusedSeen.rejected;
		this.tally.refused += refused - this.refusedSeen.refused;
		this.refusedSeen = {rejected, refused};
	}

	/**
	 * Records the guest published that no poll has read for a second or more, though the tail
	 * could move: one `stall` line per episode with what the reader and the fast path hold, so
	 * that a stall can be explained. (A timer that does not fire, as when pvrun's thread is not
	 * scheduled, writes none: bench/experiments/2026-12-05-helper-autogroup/.)
	 */
	private watchStall(now: number): void {
		const head = this.reader.publishedHead;
		const tail = this.reader.tail;
		if (head <= tail || tail !== this.stall.tail) {
			this.stall = {tail, since: now, said: false};
			return;
		}
		if (this.stall.said || now - this.stall.since < 1000) return;
		this.stall.said = true;
		this.log.write('stall', {
			tail,
			head,
			waitedMs: Math.round(now - this.stall.since),
			cpuHoldMs: Math.round(this.cpuHoldMs()),
			kickTimer: this.kickTimer !== undefined,
			followPinned: this.follow.pinned,
			fastTable: this.follow.table !== undefined,
		});
	}
	private stall = {tail: 0, since: 0, said: false};

	/** The `hint-summary` line, once a second while the log leaves hint lines out. */
	private summarise(): void {
		const s = this.tally.take();
		if (s) this.log.write('hint-summary', {...s}, summaryLine(s));
	}
	private kickTimer: NodeJS.Timeout | undefined;

	/** Told the placement and the decisions after changes (for `pvrun status` and `top`), off the hint path (placementDelayMs later). */
	placementListener: ((placement: VcpuPlacement[], activity: HintActivity) => void) | undefined;
	private placementPending = false;
	/** Decisions so far, and the newest `recentDecisions` of them (for `pvrun top`). */
	private readonly activity: HintActivity = {records: 0, pins: 0, floats: 0, denies: 0, recent: []};

	/** Count decision `d` and keep it among the recent ones. */
	private remember(d: RecentDecision): void {
		if (d.kind === 'pin') this.activity.pins++;
		else if (d.kind === 'float') this.activity.floats++;
		else this.activity.denies++;
		this.activity.recent.push(d);
		if (this.activity.recent.length > recentDecisions) this.activity.recent.shift();
	}

	/** Errors inside the hint loop so far; past `maxInternalErrors` the loop stops (the VM runs on). */
	internalErrors = 0;

	/** Forget every hint (agent restart, guest reset): all vCPUs float again. */
	reset(reason: string): void {
		this.guarded(() => {
			this.adoptFast(this.takeFast(true)); // what the fast path applied is part of what is reset
			if (this.state.hints.size === 0 && this.state.assignment.exclusive.size === 0) return this.publishFast();
			this.state.hints.clear();
			this.log.write('reset', {reason}, `hints cleared (${reason})`);
			this.decide({kind: 'reset'});
			this.publishFast();
		});
	}

	/**
	 * Records were lost (a full ring): a lost exit or release leaves a hint that no thread
	 * holds. Read past what the ring holds now (counted, not followed), then forget every
	 * hint; the agent's snapshot, asked next, reports the threads pinned now (their records
	 * follow these).
	 */
	startOver(lost: number): void {
		this.guarded(() => {
			this.adoptFast(this.takeFast(true));
			this.tallyRecords(this.reader.drain().length);
			this.state.hints.clear();
			this.log.write('reset', {reason: `${lost} records lost`}, `hints cleared (${lost} records lost: asking the guest for its pins now)`);
			this.decide({kind: 'reset'});
			this.publishFast();
			this.reader.armKick();
		});
	}

	/**
	 * The area was restored from a saved VM: its feedback and ring are the old
	 * session's. Forget every hint, start reading at the guest's head, and
	 * write every vCPU's feedback as it is now.
	 */
	restored(): void {
		this.guarded(() => {
			this.adoptFast(this.takeFast(true));
			this.area.restoreHeader();
			this.reader.skipToHead();
			this.state.hints.clear();
			this.log.write('reset', {reason: 'restored'}, 'hints cleared (the VM was restored from a saved state)');
			this.decide({kind: 'restored'});
			const a = this.state.assignment;
			for (let v = 0; v < this.state.nrVcpus; v++) {
				const x = a.exclusive.get(v);
				writeFeedback(this.area, v, {exclusive: x !== undefined, pcpu: x?.pcpu ?? -1, hintTid: x?.tid ?? 0, recordSeq: 0});
			}
			this.publishFast();
		});
	}

	/** vCPU threads changed (hot-plug, reset): new threads, looked at afresh (the Pinner forgets its holds too). */
	setVcpuCount(nrVcpus: number): void {
		this.guarded(() => {
			this.endFast();
			this.state.held.clear();
			this.state.nrVcpus = Math.min(nrVcpus, this.area.nrVcpus);
			this.decide({kind: 'vcpus'});
			this.publishFast();
		});
	}

	/**
	 * One round of the hint loop. A bug here (or a failing syscall we did not
	 * foresee) must cost the hints, never the VM: it is logged, and after
	 * `maxInternalErrors` the loop stops.
	 */
	private poll(): void {
		this.guarded(() => this.drainAndDecide());
	}

	/** Run a step of the hint loop; an exception is logged and counted, never thrown. */
	private guarded(step: () => void): void {
		if (this.stopped) return;
		try {
			step();
		} catch (error) {
			this.internalErrors++;
			this.log.write('internal-error', {message: firstLine(error), count: this.internalErrors});
			if (this.internalErrors >= maxInternalErrors) {
				this.stop();
				this.log.warn(`hint loop stopped after ${this.internalErrors} internal errors: the VM runs without hints`);
			}
		}
	}

	/** Drain, then re-arm the kick and drain once more so no record waits for the timer. */
	private drainAndDecide(): void {
		if (!this.followFast()) {
			for (let round = 0; round < 2; round++) {
				if (this.reader.pending() === 0) {
					if (round === 0) this.reader.armKick();
					continue;
				}
				this.decideRound(performance.now());
			}
			// Changes whose records are gone (a guest that moved its head back) are adopted all the same.
			this.adoptFast(this.follow.untaken);
			this.follow.untaken = undefined;
		}
		this.reportCounters();
	}

	/**
	 * The JavaScript thread decides: end the fast path's table (adopting what
	 * it applied), drain, decide and pin, give the fast path its next table,
	 * and ask the guest for the next kick. `visible`: when the records were
	 * seen waiting (the timed section starts there; logging waits until after it).
	 */
	private decideRound(visible: number): void {
		const taken = this.follow.untaken ?? this.takeFast(true);
		this.follow.untaken = undefined;
		const records = this.reader.drain(drainBudget);
		const changedHints = records.filter((r) => this.onAffinity(r));
		this.tallyRecords(records.length);
		this.adoptFast(taken);
		this.decide({kind: 'records', seq: records.at(-1)?.seq ?? 0, visible});
		// The next kick must find the next table: publish before asking for it.
		this.publishFast();
		this.reader.armKick();
		for (const r of changedHints) this.logHint(r);
	}

	private logHint(r: AffinityRecord): void {
		this.hintLine('hint', {kind: r.kind, tid: r.tid, tgid: r.tgid, comm: r.comm, vcpus: r.vcpus, seq: r.seq, relayUs: r.relayUs});
	}

	/** Update the hint of one guest thread; true if it is worth logging. */
	private onAffinity(r: AffinityRecord): boolean {
		if (r.kind === 'exit' || r.vcpus.length !== 1) return this.state.hints.delete(r.tid) || r.kind === 'exit';
		if (!this.state.hints.has(r.tid) && this.state.hints.size >= maxHints) {
			this.state.hintsRefused++;
			return false;
		}
		this.state.hints.set(r.tid, {tid: r.tid, tgid: r.tgid, comm: r.comm, vcpus: r.vcpus, seq: r.seq});
		return true;
	}

	/** The held vCPUs and their CPUs, for the policy. */
	private heldInput(): Held {
		return {vcpus: new Set(this.state.held.keys()), cpus: new Set([...this.state.held.values()].flat())};
	}

	/**
	 * The operator wins: a vCPU thread whose CPUs were narrowed behind pvrun's
	 * back is left alone (held) until the kernel lets it run on every CPU
	 * pvrun may use again; one widened to those is placed again. The same for
	 * QEMU's other threads (virsh emulatorpin), seen through its main thread.
	 * On the slow timer: one sched_getaffinity per vCPU. A suspect is looked at
	 * again after taking what the fast path applied (it may have moved the
	 * thread since), so pvrun never takes its own change for an operator's.
	 */
	private checkOperator(): void {
		if (this.suspects().length === 0) return;
		this.endFast();
		let replan = false;
		for (const s of this.suspects()) {
			replan = true;
			if (s.vcpu === undefined) this.onOthers(s.kernel);
			else this.onVcpu(s.vcpu, s.tid, s.kernel);
		}
		if (!replan) {
			this.publishFast();
			return;
		}
		this.decide({kind: 'operator'});
		this.publishFast();
		this.publishPlacement();
	}

	/**
	 * vCPUs whose threads pvrun was about to move but found placed by someone else since it set
	 * them (an operator's taskset between two looks): handed over as the look would have.
	 */
	private yieldMoved(vcpus: readonly number[]): void {
		for (const v of vcpus) {
			const tid = this.pinner.threads().get(v);
			let kernel: number[] | undefined;
			try {
				kernel = tid === undefined ? undefined : this.kernelCpus(tid);
			} catch {
				kernel = undefined; // gone: the next apply says so
			}
			if (tid !== undefined && kernel && placer(kernel, this.pinner.appliedCpus(tid), this.allowed) !== 'pvrun') this.onVcpu(v, tid, kernel);
		}
	}

	/** Threads whose kernel affinity calls for a change of hands (vcpu undefined: QEMU's other threads). */
	private suspects(): Array<{vcpu?: number; tid: number; kernel: number[]}> {
		const found: Array<{vcpu?: number; tid: number; kernel: number[]}> = [];
		const look = (tid: number): number[] | undefined => {
			try {
				return this.kernelCpus(tid);
			} catch {
				return undefined; // gone: hot-unplug or QEMU quitting
			}
		};
		for (const [vcpu, tid] of this.pinner.threads()) {
			if (vcpu >= this.state.nrVcpus) continue;
			const kernel = look(tid);
			if (!kernel) continue;
			const held = this.state.held.get(vcpu);
			if (held ? covers(kernel, this.allowed) || !sameCpus(kernel, held) : placer(kernel, this.pinner.appliedCpus(tid), this.allowed) !== 'pvrun')
				found.push({vcpu, tid, kernel});
		}
		const main = this.qemuPid > 0 ? look(this.qemuPid) : undefined;
		if (main) {
			const held = this.state.othersHeld;
			if (held ? covers(main, this.allowed) || !sameCpus(main, held) : placer(main, this.pinner.appliedCpus(this.qemuPid), this.allowed) !== 'pvrun')
				found.push({tid: this.qemuPid, kernel: main});
		}
		return found;
	}

	/** vCPU `v`'s thread has `kernel` as its CPUs, not what pvrun set: hold it, hand it back, or place it again. */
	private onVcpu(v: number, tid: number, kernel: number[]): void {
		const cpus = formatCpuList(kernel);
		const all = formatCpuList(this.allowed);
		if (this.state.held.has(v)) {
			if (covers(kernel, this.allowed)) {
				this.state.held.delete(v);
				this.pinner.release(v);
				this.log.say('operator', {vcpu: v, tid, cpus: kernel, held: false}, `vCPU ${v} may run on all of CPUs ${all} again: pvrun places it again`);
			} else {
				this.state.held.set(v, kernel);
				this.log.write('operator', {vcpu: v, tid, cpus: kernel, held: true});
			}
			return;
		}
		if (placer(kernel, this.pinner.appliedCpus(tid), this.allowed) === 'widened') {
			this.pinner.forget(tid);
			return;
		}
		this.state.held.set(v, kernel);
		for (const e of this.pinner.hold(v)) this.log.write('pin-error', {error: e});
		this.log.say(
			'operator',
			{vcpu: v, tid, cpus: kernel, held: true},
			`vCPU ${v}'s CPUs were set outside pvrun (now ${cpus}): pvrun leaves vCPU ${v} alone until it may run on all of CPUs ${all} again`,
		);
	}

	/** QEMU's main thread has `kernel` as its CPUs, not what pvrun set: the same for QEMU's other threads. */
	private onOthers(kernel: number[]): void {
		const all = formatCpuList(this.allowed);
		if (this.state.othersHeld) {
			if (covers(kernel, this.allowed)) {
				this.state.othersHeld = undefined;
				this.pinner.holdOthers(false);
				this.log.say(
					'operator',
					{threads: 'emulator', cpus: kernel, held: false},
					`QEMU's other threads may run on all of CPUs ${all} again: pvrun places them again`,
				);
			} else this.state.othersHeld = kernel;
			return;
		}
		if (placer(kernel, this.pinner.appliedCpus(this.qemuPid), this.allowed) === 'widened') {
			this.pinner.forget(this.qemuPid);
			return;
		}
		this.state.othersHeld = kernel;
		this.pinner.holdOthers(true);
		this.log.say(
			'operator',
			{threads: 'emulator', cpus: kernel, held: true},
			`QEMU's other threads' CPUs were set outside pvrun (now ${formatCpuList(kernel)}): pvrun leaves them alone until they may run on all of CPUs ${all} again`,
		);
	}

	/**
	 * Look at how busy each granted vCPU keeps its CPU: one that idles (its pinned
	 * thread mostly sleeps) shares the CPU with the floating vCPUs, one that is
	 * busy again gets it back. Runs on the slow timer, not on the hint path.
	 */
	private judgeUse(): void {
		if (!this.usage) return;
		const threads = this.pinner.threads();
		let changed = false;
		for (const v of this.state.idle) {
			if (!this.state.assignment.exclusive.has(v)) {
				this.state.idle.delete(v);
				changed = true;
			}
		}
		const granted = [...this.state.assignment.exclusive.keys()];
		this.usage.sample(granted.map((v) => threads.get(v)).filter((tid): tid is number => tid !== undefined));
		for (const v of granted) {
			const tid = threads.get(v);
			const busy = tid === undefined ? undefined : this.usage.busy(tid);
			if (busy === undefined) continue;
			const wasIdle = this.state.idle.has(v);
			if (wasIdle ? busy <= busyAbove : busy >= idleBelow) continue;
			if (wasIdle) this.state.idle.delete(v);
			else this.state.idle.add(v);
			changed = true;
			const pcpu = this.state.assignment.exclusive.get(v)?.pcpu ?? -1;
			const pct = Math.round(busy * 100);
			this.log.write(
				'usage',
				{vcpu: v, pcpu, busyPercent: pct, idle: !wasIdle},
				wasIdle ? `vCPU ${v} busy again (${pct} %): CPU ${pcpu} is its own again` : `vCPU ${v} idles (${pct} % busy): floating vCPUs share CPU ${pcpu}`,
			);
		}
		if (!changed) return;
		this.endFast();
		this.decide({kind: 'usage'});
		this.publishFast();
	}

	/** Recompute the assignment and apply it if it changed. */
	private decide(cause: Cause): void {
		this.commit(this.redecide(), cause);
	}

	/**
	 * The policy's assignment for the current hints, holds and idle grants, on the CPUs other VMs
	 * do not lease and with the leases its grants need taken. If the lease directory is busy, the
	 * current assignment, and a new decision in a moment.
	 */
	private redecide(): Assignment {
		if (!this.leases) return this.policy();
		const a = this.leases.decide((placeable, floatOnly, crowdedHost) => this.policy(this.state.hints.values(), placeable, floatOnly, crowdedHost));
		if (a) return a;
		this.retryLeases();
		return this.state.assignment;
	}

	/** Look at the leases and decide again in a moment (the directory's lock was busy, or another VM took a CPU first). */
	private retryLeases(): void {
		this.leaseRetry ??= setTimeout(() => {
			this.leaseRetry = undefined;
			this.guarded(() => this.onLeases(true));
		}, 20);
	}

	/** The policy alone: `hints` on the CPUs this VM may use now, from the current assignment. */
	private policy(
		hints: Iterable<Hint> = this.state.hints.values(),
		placeable: readonly number[] = this.leases?.placeable ?? this.allowed,
		floatOnly: ReadonlySet<number> | undefined = this.leases?.floatOnly,
		crowdedHost = this.leases?.crowdedHost ?? false,
	): Assignment {
		return decideAffinity(
			hints,
			this.state.nrVcpus,
			placeable,
			this.state.assignment,
			this.state.idle,
			this.heldInput(),
			floatOnly,
			this.leases?.prefer,
			crowdedHost,
		);
	}

	/**
	 * Pin, publish feedback and log whatever differs from the current assignment.
	 * The guest waits on the feedback, so every slot is written before anything
	 * is logged (a log line is a file write, and a summary a terminal write).
	 */
	private commit(next: Assignment, cause: Cause | {kind: 'fast'; seq: number; ops: readonly PinOp[]; applied: FastApplied}, depth = 0): void {
		const prev = this.state.assignment;
		const fast = cause.kind === 'fast' ? cause : undefined;
		const seq = cause.kind === 'records' || cause.kind === 'fast' ? cause.seq : 0;
		const start = cause.kind === 'start';
		// The fast path's decision is applied already: only what follows the pinning is left.
		const floaters = () => [...this.pinner.threads().keys()].filter((v) => !next.exclusive.has(v) && !this.pinner.heldVcpus().has(v));
		const result = fast ? fastResult(fast.ops, fast.applied, floaters) : this.pinner.apply(next);
		// A vCPU thread placed by someone else since pvrun set it is theirs: decide again without it
		// (the pins just applied to the others are corrected from what the pinner has as applied).
		if (result.moved.length > 0 && !fast && depth < 2) {
			this.yieldMoved(result.moved);
			return this.commit(this.redecide(), cause, depth + 1);
		}
		const appliedAt = performance.now();
		this.state.assignment = next;
		const moved = start ? Array.from({length: this.state.nrVcpus}, (_, v) => v) : movedVcpus(prev, next, this.state.nrVcpus);
		if (moved.length > 0) {
			this.changes++;
			this.tally.changes++;
		}
		// The fast path wrote its own feedback.
		if (!fast)
			for (const v of moved) {
				const after = next.exclusive.get(v);
				writeFeedback(this.area, v, {exclusive: after !== undefined, pcpu: after?.pcpu ?? -1, hintTid: after?.tid ?? 0, recordSeq: seq});
			}
		for (const v of moved) {
			const before = prev.exclusive.get(v);
			const after = next.exclusive.get(v);
			// A new grant: judge its use afresh, from now. A released one's judgement goes with it:
			// kept, it would make the vCPU's next grant start shared (decideAffinity ignores it, the log would not).
			const newGrant = after !== undefined && (before?.pcpu !== after.pcpu || before.tid !== after.tid);
			if (!after || newGrant) this.state.idle.delete(v);
			if (newGrant) {
				const tid = this.pinner.threads().get(v);
				if (tid !== undefined) this.usage?.reset(tid);
			}
			if (start) continue;
			const hint = after ? this.state.hints.get(after.tid) : undefined;
			const at = Date.now();
			if (after) this.remember({at, kind: 'pin', vcpus: [v], cpus: [after.pcpu], tid: after.tid, comm: hint?.comm ?? '', shared: after.shared});
			else
				this.remember({at, kind: 'float', vcpus: [v], cpus: next.floating, tid: before?.tid ?? 0, comm: this.state.hints.get(before?.tid ?? -1)?.comm ?? ''});
			if (after)
				this.hintLine(
					'pin',
					{vcpu: v, pcpu: after.pcpu, tid: after.tid, comm: hint?.comm ?? '', seq, shared: after.shared},
					`vCPU ${v} → CPU ${after.pcpu} ${after.shared ? `(shared: floating vCPUs at nice +${next.floatNice})` : 'exclusive'} (guest thread ${after.tid} ${hint?.comm ?? ''})`,
				);
			else this.hintLine('float', {vcpu: v, cpus: next.floating, seq}, `vCPU ${v} floats on CPUs ${formatCpuList(next.floating)}`);
		}
		const deniedNow = next.denied.filter((v) => !prev.denied.includes(v));
		if (deniedNow.length && !start) this.remember({at: Date.now(), kind: 'deny', vcpus: deniedNow, cpus: this.allowed});
		if (deniedNow.length)
			this.hintLine('deny', {vcpus: deniedNow, allowed: this.allowed}, `no free CPU for vCPUs ${deniedNow.join(',')} (allowed ${formatCpuList(this.allowed)})`);
		for (const e of [...result.errors, ...this.pinner.applyOthers(next)]) this.log.write('pin-error', {error: e});
		if (start || result.changed.size > 0 || prev.shared !== next.shared) this.publishPlacement();
		// A grant the fast path made while the VM was alone is leased now; if another VM was
		// quicker, decide again in a moment (without it). Then the leases its grants no longer need,
		// after the threads moved off them and the guest was told.
		if (fast && this.leases && !this.leases.lease(next)) this.retryLeases();
		this.leases?.settle(next);
		if (fast) {
			this.decisions.fast++;
			const us = fast.applied.latencyUs;
			if (this.hostLatenciesUs.length < 100_000) this.hostLatenciesUs.push(us);
			this.hintLine('applied', {hostUs: Math.round(us * 10) / 10, changed: result.changed.size, seq, fast: true});
		} else if (cause.kind === 'records' && result.changed.size > 0) {
			this.decisions.slow++;
			const us = (appliedAt - cause.visible) * 1000;
			if (this.hostLatenciesUs.length < 100_000) this.hostLatenciesUs.push(us);
			this.hintLine('applied', {hostUs: Math.round(us * 10) / 10, changed: result.changed.size, seq, fast: false});
		}
	}

	/**
	 * Take what the fast path applied since the last look; `end` ends its
	 * table (the JavaScript thread decides next). `adoptFast` then makes the
	 * changes the current state.
	 */
	private takeFast(end: boolean): Taken | undefined {
		const table = this.follow.table;
		if (!this.fast || !table) return undefined;
		const take = this.fast.take(end);
		if (end || !take.valid) {
			this.follow.table = undefined;
			this.follow.pinned = false;
			this.follow.pinnedTicks = 0;
		}
		return {take, table};
	}

	/**
	 * Make each change the fast path applied the current state, logged like
	 * any decision. Runs after the records that asked for them are drained,
	 * so that the log names the threads.
	 */
	private adoptFast(taken: Taken | undefined): void {
		if (!taken) return;
		const {take, table} = taken;
		for (const a of take.applied) {
			const entry = table.entries[a.entry];
			if (!entry) throw new Error(`the fast path reports entry ${a.entry} of a table of ${table.entries.length}`);
			const ops = a.back ? entry.backOps : entry.ops;
			this.pinner.adopt(ops, (i) => failedOp(a, i) || movedOp(a, i));
			if (a.movedOps === 0n) {
				this.commit(a.back ? table.base : resolvedNext(entry, a.tid, a.seq), {kind: 'fast', seq: a.seq, ops, applied: a});
				continue;
			}
			// A thread the entry would have moved was placed by someone else: that vCPU is theirs,
			// and the rest is decided again from what was applied. The fast path told the guest
			// about the entry already: its slots are written again from the decision.
			this.yieldMoved(ops.filter((_, i) => movedOp(a, i)).map((op) => op.vcpu));
			this.commit(this.redecide(), {kind: 'operator'});
			for (const v of a.back ? entry.backFeedback : entry.feedback) {
				const x = this.state.assignment.exclusive.get(v);
				writeFeedback(this.area, v, {exclusive: x !== undefined, pcpu: x?.pcpu ?? -1, hintTid: x?.tid ?? 0, recordSeq: a.seq});
			}
		}
	}

	/**
	 * Drain the records the fast path decided on (up to its cursor: their hints are the state's
	 * too), then adopt what it applied; returns the records.
	 */
	private adoptDecided(taken: Taken | undefined): AffinityRecord[] {
		const n = taken ? taken.take.cursor - this.reader.tail : 0;
		const records = n > 0 ? this.reader.drain(Math.min(n, drainBudget)) : [];
		const changedHints = records.filter((r) => this.onAffinity(r));
		this.tallyRecords(records.length);
		this.adoptFast(taken);
		for (const r of changedHints) this.logHint(r);
		return records;
	}

	/**
	 * End the fast path's table before a decision of the engine's own (leases, vCPU threads, an
	 * operator, an idle grant). What it applied and the records it applied it for are read
	 * first: a decision from hints without them would undo its pins, and the next table would
	 * start before their records, so the fast path would apply them again.
	 */
	private endFast(): void {
		this.adoptDecided(this.takeFast(true));
	}

	/**
	 * While the fast path's table is current, the fast path decides: take its
	 * changes, then drain the records it decided on (for the hints and the
	 * log). True if it still follows the ring (or the JavaScript thread had to
	 * decide over it: the guest may rewrite a record after the fast path read
	 * it); false when the JavaScript thread decides (no table, or it ended).
	 */
	private followFast(): boolean {
		let taken = this.takeFast(false);
		// Records past its cursor came without a kick it saw (the guest's kick took the agent
		// channel, or was lost): it looks now, or nobody would before the next kick.
		if (taken?.take.valid && this.reader.tail + this.reader.pending() > taken.take.cursor) {
			this.fast?.scan();
			this.decisions.scans++;
			const again = this.takeFast(false);
			if (again) taken = {table: again.table, take: {...again.take, applied: [...taken.take.applied, ...again.take.applied]}};
		}
		if (!taken?.take.valid) {
			this.follow.untaken = taken; // the JavaScript thread decides next: it adopts these after draining
			return false;
		}
		const {take} = taken;
		this.follow.pinned = take.pinned;
		// Pinned anew (the fast path applied something since the last look), or no longer: the age starts again.
		if (!take.pinned || take.applied.length > 0) this.follow.pinnedTicks = 0;
		const records = this.adoptDecided(taken);
		// Only what was followed can disagree (a timer tick with nothing new checks nothing).
		if ((records.length > 0 || take.applied.length > 0) && !sameAssignment(this.policy(), this.state.assignment)) {
			this.decisions.disagreed++;
			this.decideRound(performance.now());
		}
		return true;
	}

	/**
	 * A fresh table while the fast path follows a pin, with no moment without one (a kick then
	 * would fall to this thread): what it applied is taken without ending its table, and the next
	 * table replaces it. Records it has not decided, or a change it applies meanwhile (the
	 * replacement is refused), and this thread decides as before.
	 */
	private refreshTable(): void {
		// The pin may have been let go, or this thread decided, meanwhile: then the table is fresh.
		if (!this.followFast() || !this.follow.table || !this.follow.pinned) return;
		if (this.reader.pending() > 0 || !this.publishFast(true)) this.decideRound(performance.now());
	}

	/**
	 * Give the fast path the decisions that follow from the current state (nothing beyond its
	 * limits). `replace`: in place of a table that is current (see refreshTable); false when the
	 * fast path refused it for a change not taken yet.
	 */
	private publishFast(replace = false): boolean {
		if (!this.fast || this.stopped) return true;
		const table = buildFastTable({
			hints: this.state.hints,
			assignment: this.state.assignment,
			nrVcpus: this.state.nrVcpus,
			allowed: this.leases?.placeable ?? this.allowed,
			idle: this.state.idle,
			held: this.heldInput(),
			...(this.leases
				? {
						floatOnly: this.leases.floatOnly,
						// Alone in the lease directory, the table may grant any CPU: the grant is leased when followed.
						...(this.leases.othersHere ? {leased: this.leases.held()} : {}),
						crowdedHost: this.leases.crowdedHost,
						...(this.leases.prefer ? {prefer: this.leases.prefer} : {}),
					}
				: {}),
			basedSeq: this.reader.tail,
			canAddHint: this.state.hints.size < maxHints,
			plan: (a, assumed) => this.pinner.plan(a, assumed),
			floatingCpus: (a) => this.pinner.floatingCpus(a),
		});
		// Beyond the native limits: nothing to publish (a table being replaced goes on as it is).
		if (!table) return true;
		// Refused over a change the fast path applied since the take: the current table stays ours
		// to take from (its entries are what the change names); the caller ends it and decides.
		if (!this.fast.publish(table.bytes)) {
			if (!replace) throw new Error('the fast path refused a table after its last one ended: a bug in pvrun');
			return false;
		}
		this.follow.table = table;
		this.follow.pinned = false;
		this.follow.pinnedTicks = 0;
		return true;
	}

	/**
	 * Tell the placement listener, at most once per `placementDelayMs`, with the
	 * placement as it is then. The listener writes a file: right after each
	 * decision (a hint and its release come ~1 ms apart) it delayed the next
	 * decision; in A/B runs the release's round trip p50 went from ~0.4 to ~0.8 ms.
	 */
	private publishPlacement(): void {
		if (!this.placementListener || this.placementPending) return;
		this.placementPending = true;
		setTimeout(() => {
			this.placementPending = false;
			const a = this.state.assignment;
			const threads = this.pinner.threads();
			const placement = Array.from({length: this.state.nrVcpus}, (_, vcpu): VcpuPlacement => {
				const tid = threads.get(vcpu);
				const held = this.state.held.get(vcpu);
				const p: VcpuPlacement = held
					? {vcpu, cpus: held, exclusive: false, operator: true}
					: {vcpu, cpus: this.pinner.cpusOf(a, vcpu), exclusive: a.exclusive.has(vcpu)};
				if (tid !== undefined) p.tid = tid;
				return p;
			});
			const activity = {...this.activity, records: this.recordsRead, recent: [...this.activity.recent]};
			this.guarded(() => this.placementListener?.(placement, activity));
		}, placementDelayMs).unref();
	}

	/**
	 * Log the counters when any changed. Runs after every drain: it compares
	 * field by field and allocates nothing unless something changed (garbage
	 * on the hint path ends in collections that stall a later decision).
	 */
	private reportCounters(): void {
		const counters = this.reader.counters;
		let changed = this.loggedCounters['hintsRefused'] !== this.state.hintsRefused;
		for (const k of counterNames) if (this.loggedCounters[k] !== counters[k]) changed = true;
		if (!changed) return;
		const c: Record<string, number> = {...counters, hintsRefused: this.state.hintsRefused};
		Object.assign(this.loggedCounters, c);
		const anomalies = counterNames.filter((k) => counters[k] > 0);
		this.hintLine('counters', c, anomalies.length ? `shared-memory anomalies: ${anomalies.map((k) => `${k}=${counters[k]}`).join(' ')}` : undefined);
	}
}
