// The fast path's table (docs/fast-path.md): after each decision, the policy
// decides in advance what the next change would lead to: any thread without a
// hint pinning itself to vCPU v alone, and each hinted thread letting go
// (exit, or a mask that is no longer one vCPU). Each outcome that moves
// something becomes an entry: the pin operations (from Pinner.plan) and the
// feedback to publish. A new pin's entry also carries its way back, when its
// thread's release leads back to the table's own state: then the native thread
// can follow a thread that pins itself and lets go, again and again, without
// waiting for the JavaScript thread; every other change ends the table.
import {decideAffinity, type Assignment, type Exclusive, type Held, type Hint} from '../policy/affinity.js';
import type {PinOp} from '../pin/pinner.js';

export const tableMagic = 0x54465650; // "PVFT"
export const tableVersion = 1;
/** Limits of one table (native/pvfast.c): beyond them, every decision takes the slow path. */
export const tableMaxVcpus = 64;
export const tableMaxHinted = 64;
export const tableMaxCpus = 256;
/** The placeholder thread of a "new pin" entry: the record's own thread fills it in (tid 0 never comes from a valid record). */
export const recordTid = 0;
const feedbackRecordTid = 0xffffffff;
const niceKeep = 0x7fffffff;
const Cpus = {keep: 0, one: 1, floating: 2} as const;
const Kind = {pin: 1, release: 2} as const;
/** struct pvf_table_hdr and struct pvf_entry_hdr. */
const headerSize = 64;
const entryHeaderSize = 64;

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
}

/** The vCPUs whose slot changes from `prev` to `next`: their grant's CPU, thread or sharing (HintEngine.commit writes their feedback). */
export function movedVcpus(prev: Assignment, next: Assignment, nrVcpus: number): number[] {
	const moved: number[] = [];
	for (let v = 0; v < nrVcpus; v++) {
		const b = prev.exclusive.get(v);
		const a = next.exclusive.get(v);
		if (b?.pcpu !== a?.pcpu || b?.tid !== a?.tid || b?.shared !== a?.shared) moved.push(v);
	}
	return moved;
}

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
	const {hints, assignment, nrVcpus, allowed, idle, held} = input;
	if (nrVcpus < 1 || nrVcpus > tableMaxVcpus || hints.size > tableMaxHinted || allowed.some((c) => c >= tableMaxCpus)) return undefined;
	const entries: FastEntry[] = [];
	const consider = (kind: FastEntry['kind'], key: number, nextHints: Iterable<Hint>): void => {
		const next = decideAffinity(nextHints, nrVcpus, allowed, assignment, idle, held);
		const ops = input.plan(next);
		const feedback = movedVcpus(assignment, next, nrVcpus);
		if ((!ops.length && !feedback.length) || ops.length > tableMaxVcpus) return;
		const entry: FastEntry = {kind, key, next, ops, feedback, backOps: [], backFeedback: []};
		if (kind === 'pin') {
			// The new pin's thread lets go: back where the table started?
			const back = decideAffinity(hints.values(), nrVcpus, allowed, next, idle, held);
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

/** The table's bytes, little-endian (docs/fast-path.md). */
function serialize(input: TableInput, entries: FastEntry[]): Uint8Array {
	const ops = (e: FastEntry) => e.ops.length + e.feedback.length + e.backOps.length + e.backFeedback.length;
	const size = headerSize + input.hints.size * 4 + entries.reduce((n, e) => n + entryHeaderSize + ops(e) * 16, 0);
	const b = Buffer.alloc(size);
	let o = 0;
	const u32 = (x: number) => (o = b.writeUInt32LE(x >>> 0, o));
	const i32 = (x: number) => (o = b.writeInt32LE(x, o));
	const mask = (cpus: readonly number[]) => {
		const words = [0n, 0n, 0n, 0n];
		for (const c of cpus) words[c >> 6] = (words[c >> 6] ?? 0n) | (1n << BigInt(c & 63));
		for (const w of words) o = b.writeBigUInt64LE(w, o);
	};
	const pinOps = (list: readonly PinOp[]) => {
		for (const op of list) {
			i32(op.tid);
			const cpus = op.cpus;
			// cpusFor gives a vCPU either its own CPU or the floating set.
			u32(!cpus ? Cpus.keep : cpus.length === 1 ? Cpus.one : Cpus.floating);
			i32(cpus?.length === 1 ? (cpus[0] ?? -1) : -1);
			i32(op.nice ?? niceKeep);
		}
	};
	const feedback = (vcpus: readonly number[], a: Assignment) => {
		for (const v of vcpus) {
			const x: Exclusive | undefined = a.exclusive.get(v);
			u32(v);
			u32(x ? 1 : 0);
			i32(x ? x.pcpu : -1);
			u32(x ? (x.tid === recordTid ? feedbackRecordTid : x.tid) : 0);
		}
	};
	u32(tableMagic);
	u32(tableVersion);
	u32(input.nrVcpus);
	u32(entries.length);
	u32(input.hints.size);
	u32(0);
	o = b.writeBigUInt64LE(BigInt(input.basedSeq), o);
	mask(input.assignment.floating);
	for (const tid of input.hints.keys()) u32(tid);
	for (const e of entries) {
		u32(Kind[e.kind]);
		u32(e.key);
		u32(e.ops.length);
		u32(e.feedback.length);
		u32(e.backOps.length);
		u32(e.backFeedback.length);
		u32(0);
		u32(0);
		mask(e.next.floating);
		pinOps(e.ops);
		feedback(e.feedback, e.next);
		pinOps(e.backOps);
		feedback(e.backFeedback, input.assignment);
	}
	return b;
}

/** `entry.next` with the record's thread and sequence in place of the placeholder. */
export function resolvedNext(entry: FastEntry, tid: number, seq: number): Assignment {
	const exclusive = new Map<number, Exclusive>();
	for (const [v, x] of entry.next.exclusive) exclusive.set(v, x.tid === recordTid ? {...x, tid, seq} : x);
	return {...entry.next, exclusive};
}
