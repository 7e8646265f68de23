// The fast path's table (docs/fast-path.md): after each decision, the policy
// decides in advance what the next change would lead to: any thread without a
// hint pinning itself to vCPU v alone, and each hinted thread letting go
// (exit, or a mask that is no longer one vCPU). Each outcome that moves
// something becomes an entry: the pin operations (from Pinner.plan) and the
// feedback to publish. A new pin's entry also carries its way back, when its
// thread's release leads back to the table's own state: then the native thread
// can follow a thread that pins itself and lets go, again and again, without
// waiting for the JavaScript thread; every other change ends the table.
import {decideAffinity, type Assignment, type Exclusive, type Held, type Hint} from '../hints/affinity/policy.js';
import {sameCpus} from '../pin/operator.js';
import type {PinOp} from '../pin/pinner.js';
import {
	Cpus,
	EntryHeader,
	Feedback,
	Group,
	Sched,
	Kind,
	Op,
	TableHeader,
	feedbackRecordTid,
	maskWords,
	niceKeep,
	tableMagic,
	tableMaxCpus,
	tableMaxHinted,
	tableMaxVcpus,
	tableVersion,
	Was,
} from './format.js';

/** The placeholder thread of a "new pin" entry: the record's own thread fills it in (tid 0 never comes from a valid record). */
export const recordTid = 0;

export interface FastEntry {
	kind: 'pin' | 'release';
	/** The vCPU (pin) or the hinted guest thread (release). */
	key: number;
	/** The assignment the entry leads to; for a pin, the new grant's tid is `recordTid` until the record says. */
	next: Assignment;
	ops: PinOp[];
	/** vCPUs whose feedback changes. */
	feedback: number[];
	/** A new pin's way back to the table's state, when its thread lets go (empty: none). */
	backOps: PinOp[];
	backFeedback: number[];
}

export interface FastTable {
	bytes: Uint8Array;
	entries: FastEntry[];
	/** The state the table starts from (where each way back leads). */
	base: Assignment;
}

export interface TableInput {
	hints: ReadonlyMap<number, Hint>;
	/** The current assignment. */
	assignment: Assignment;
	nrVcpus: number;
	allowed: readonly number[];
	idle: ReadonlySet<number>;
	/** vCPUs an operator pinned, and their CPUs. */
	held: Held;
	/** Sequence of the first record not yet decided on (the reader's tail). */
	basedSeq: number;
	/** Whether a new hint would be kept (the engine keeps at most so many). */
	canAddHint: boolean;
	plan: (a: Assignment, assumed?: readonly PinOp[]) => PinOp[];
	/** Allowed CPUs no vCPU may have as its own (the policy's floatOnly; docs/leases.md). */
	floatOnly?: ReadonlySet<number>;
	/** With host-wide leases: the CPUs this VM leases. An entry granting another is left out (the JavaScript thread leases it first). */
	leased?: ReadonlySet<number>;
	/** The order new grants take free CPUs in (the policy's prefer). */
	prefer?: (cpu: number, granted: readonly number[]) => number;
	/** The host's VMs ask for more CPUs than it has (the policy's crowdedHost). */
	crowdedHost?: boolean;
	/** The CPUs the floating vCPU threads get under an assignment (Pinner.floatingCpus); without it, its floating set. */
	floatingCpus?: (a: Assignment) => number[];
}

/**
 * The vCPUs whose slot changes from `prev` to `next`: their grant's CPU, thread or sharing
 * (AffinityEngine.commit writes their feedback), ascending. Only a vCPU granted in one of them
 * can differ: a table calls this twice per entry, so it looks at the grants, not every vCPU.
 */
export function movedVcpus(prev: Assignment, next: Assignment, nrVcpus: number): number[] {
	const moved: number[] = [];
	const differs = (v: number): boolean => {
		const b = prev.exclusive.get(v);
		const a = next.exclusive.get(v);
		return b?.pcpu !== a?.pcpu || b?.tid !== a?.tid || b?.shared !== a?.shared;
	};
	for (const v of prev.exclusive.keys()) if (v >= 0 && v < nrVcpus && differs(v)) moved.push(v);
	for (const v of next.exclusive.keys()) if (v >= 0 && v < nrVcpus && !prev.exclusive.has(v) && differs(v)) moved.push(v);
	return moved.sort((x, y) => x - y);
}

/**
 * Above this many vCPUs, a change of the floating vCPU threads' weight (shared mode begins or
 * ends) is left to the JavaScript thread: it touches every floating thread whoever makes it,
 * and such entries, one per vCPU, made a 64-vCPU table 260 KB and 5 ms to build.
 */
export const tableMaxReweighVcpus = 16;

/** Whether `a` and `b` place every vCPU alike (same grants to the same threads, same floating set and weight). */
export function sameAssignment(a: Assignment, b: Assignment): boolean {
	if (a.exclusive.size !== b.exclusive.size || a.shared !== b.shared || a.floatNice !== b.floatNice) return false;
	if (a.floating.join(',') !== b.floating.join(',') || a.denied.join(',') !== b.denied.join(',')) return false;
	for (const [v, x] of a.exclusive) {
		const y = b.exclusive.get(v);
		if (!y || y.pcpu !== x.pcpu || y.tid !== x.tid || y.shared !== x.shared) return false;
	}
	return true;
}

/** The table for the state in `input`, or undefined when it is beyond the native limits. */
export function buildFastTable(input: TableInput): FastTable | undefined {
	const {hints, assignment, nrVcpus, allowed, idle, held, floatOnly, leased, prefer, crowdedHost} = input;
	if (nrVcpus < 1 || nrVcpus > tableMaxVcpus || hints.size > tableMaxHinted || allowed.some((c) => c >= tableMaxCpus)) return undefined;
	const entries: FastEntry[] = [];
	const consider = (kind: FastEntry['kind'], key: number, nextHints: Iterable<Hint>): void => {
		const next = decideAffinity(nextHints, nrVcpus, allowed, assignment, idle, held, floatOnly, prefer, crowdedHost);
		if (leased && [...next.exclusive.values()].some((e) => !leased.has(e.pcpu))) return;
		if (nrVcpus > tableMaxReweighVcpus && next.floatNice !== assignment.floatNice) return;
		const ops = input.plan(next);
		const feedback = movedVcpus(assignment, next, nrVcpus);
		if ((!ops.length && !feedback.length) || ops.length > tableMaxVcpus) return;
		const entry: FastEntry = {kind, key, next, ops, feedback, backOps: [], backFeedback: []};
		if (kind === 'pin') {
			// The new pin's thread lets go: back where the table started?
			const back = decideAffinity(hints.values(), nrVcpus, allowed, next, idle, held, floatOnly, prefer, crowdedHost);
			if (sameAssignment(back, assignment)) {
				entry.backOps = input.plan(back, ops);
				entry.backFeedback = movedVcpus(next, back, nrVcpus);
			}
		}
		entries.push(entry);
	};
	if (input.canAddHint) {
		const newest = Number.MAX_SAFE_INTEGER; // the record is newer than every hint: older hints win ties
		for (let v = 0; v < nrVcpus; v++) consider('pin', v, [...hints.values(), {tid: recordTid, tgid: 0, comm: '', vcpus: [v], seq: newest}]);
	}
	for (const tid of hints.keys())
		consider(
			'release',
			tid,
			[...hints.values()].filter((h) => h.tid !== tid),
		);
	return {bytes: serialize(input, entries), entries, base: assignment};
}

/**
 * The table's bytes (docs/fast-path.md): struct pvf_table_hdr, the hinted
 * threads (u32 each), then per entry struct pvf_entry_hdr followed by its ops
 * and feedback, its way back's ops and feedback. Every field is written at
 * its offset from native/pvfast.h (src/fast/format.ts).
 */
function serialize(input: TableInput, entries: FastEntry[]): Uint8Array {
	const items = (e: FastEntry) => (e.ops.length + e.backOps.length) * Op.size + (e.feedback.length + e.backFeedback.length) * Feedback.size;
	const size = TableHeader.size + input.hints.size * 4 + entries.reduce((n, e) => n + EntryHeader.size + items(e), 0);
	const b = Buffer.alloc(size);
	// The floating vCPU threads' CPUs: the policy's floating set, or more (Pinner.floatingCpus).
	const floatingOf = input.floatingCpus ?? ((a: Assignment) => a.floating);
	const baseFloating = floatingOf(input.assignment);
	const mask = (at: number, cpus: readonly number[]) => {
		const words = Array.from({length: maskWords}, () => 0n);
		for (const c of cpus) words[c >> 6] = (words[c >> 6] ?? 0n) | (1n << BigInt(c & 63));
		words.forEach((w, i) => b.writeBigUInt64LE(w, at + i * 8));
	};
	/**
	 * Write `list` as struct pvf_op from `at`; returns the offset after them. What an op
	 * expects its thread to have (`from`) is one CPU, the base state's floating set or the
	 * entry's (`entryFloating`), or left unchecked.
	 */
	const pinOps = (at: number, list: readonly PinOp[], entryFloating: readonly number[]): number => {
		for (const op of list) {
			const {cpus, from} = op;
			b.writeInt32LE(op.tid, at + Op.tid);
			// A vCPU gets either its own CPU or the floating vCPU threads' CPUs.
			// A float group's join and write are the floating set's, whatever its size.
			const one = cpus?.length === 1 && op.group !== 'join' && op.group !== 'float';
			b.writeUInt32LE(!cpus ? Cpus.keep : one ? Cpus.one : Cpus.floating, at + Op.cpus);
			b.writeInt32LE(one ? (cpus[0] ?? -1) : -1, at + Op.pcpu);
			b.writeInt32LE(op.nice ?? niceKeep, at + Op.nice);
			const was =
				!cpus || !from || op.group === 'float'
					? Was.any
					: from.length === 1
						? Was.one
						: sameCpus(from, baseFloating)
							? Was.base
							: sameCpus(from, entryFloating)
								? Was.entry
								: Was.any;
			b.writeUInt32LE(was, at + Op.was);
			b.writeInt32LE(was === Was.one ? (from?.[0] ?? -1) : -1, at + Op.wasPcpu);
			b.writeUInt32LE(Group[op.group ?? 'none'], at + Op.group);
			b.writeUInt32LE(Sched[op.sched ?? 'keep'], at + Op.sched);
			at += Op.size;
		}
		return at;
	};
	/** Write the feedback of `vcpus` under `a` as struct pvf_feedback from `at`; returns the offset after them. */
	const feedback = (at: number, vcpus: readonly number[], a: Assignment): number => {
		for (const v of vcpus) {
			const x: Exclusive | undefined = a.exclusive.get(v);
			b.writeUInt32LE(v, at + Feedback.vcpu);
			b.writeUInt32LE(x ? 1 : 0, at + Feedback.exclusive);
			b.writeInt32LE(x ? x.pcpu : -1, at + Feedback.pcpu);
			b.writeUInt32LE(x ? (x.tid === recordTid ? feedbackRecordTid : x.tid) : 0, at + Feedback.hintTid);
			at += Feedback.size;
		}
		return at;
	};
	b.writeUInt32LE(tableMagic, TableHeader.magic);
	b.writeUInt32LE(tableVersion, TableHeader.version);
	b.writeUInt32LE(input.nrVcpus, TableHeader.nrVcpus);
	b.writeUInt32LE(entries.length, TableHeader.nEntries);
	b.writeUInt32LE(input.hints.size, TableHeader.nHinted);
	b.writeBigUInt64LE(BigInt(input.basedSeq), TableHeader.basedSeq);
	mask(TableHeader.baseFloating, baseFloating);
	let o: number = TableHeader.size;
	for (const tid of input.hints.keys()) o = b.writeUInt32LE(tid >>> 0, o);
	for (const e of entries) {
		b.writeUInt32LE(Kind[e.kind], o + EntryHeader.kind);
		b.writeUInt32LE(e.key >>> 0, o + EntryHeader.key);
		b.writeUInt32LE(e.ops.length, o + EntryHeader.nOps);
		b.writeUInt32LE(e.feedback.length, o + EntryHeader.nFeedback);
		b.writeUInt32LE(e.backOps.length, o + EntryHeader.nBackOps);
		b.writeUInt32LE(e.backFeedback.length, o + EntryHeader.nBackFeedback);
		const entryFloating = floatingOf(e.next);
		mask(o + EntryHeader.floating, entryFloating);
		o += EntryHeader.size;
		o = pinOps(o, e.ops, entryFloating);
		o = feedback(o, e.feedback, e.next);
		o = pinOps(o, e.backOps, entryFloating);
		o = feedback(o, e.backFeedback, input.assignment);
	}
	return b;
}

/** `entry.next` with the record's thread and sequence in place of the placeholder. */
export function resolvedNext(entry: FastEntry, tid: number, seq: number): Assignment {
	const exclusive = new Map<number, Exclusive>();
	for (const [v, x] of entry.next.exclusive) exclusive.set(v, x.tid === recordTid ? {...x, tid, seq} : x);
	return {...entry.next, exclusive};
}
