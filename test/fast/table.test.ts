// The fast path's table (src/fast/table.ts) built from small states with the
// real policy and a real Pinner's plan: which entries there are (a new pin per
// vCPU while hints may be added, a release per hinted thread, only those that
// move something), a new pin's way back exactly when its release returns to
// the table's state, the native limits, and the bytes read back at the
// offsets of src/fast/format.ts. Also movedVcpus, sameAssignment, resolvedNext.
import t from 'tap';
import {getThreadNice} from '../../src/host/libc.js';
import {decideAffinity, floatingOnly, noneHeld, type Assignment, type Exclusive, type Hint} from '../../src/hints/affinity/policy.js';
import {Pinner, type PinOp} from '../../src/pin/pinner.js';
import {
	buildFastTable,
	movedVcpus,
	recordTid,
	resolvedNext,
	sameAssignment,
	tableMaxReweighVcpus,
	type FastEntry,
	type FastTable,
} from '../../src/fast/table.js';
import {
	Cpus,
	EntryHeader,
	Feedback,
	Kind,
	Op,
	TableHeader,
	feedbackRecordTid,
	maskWords,
	niceKeep,
	tableMagic,
	tableMaxHinted,
	tableMaxVcpus,
	tableVersion,
} from '../../src/fast/format.js';
import {sleeper} from '../helpers/fast.js';

/** The seq of a new pin's hint: newer than every other. */
const newest = Number.MAX_SAFE_INTEGER;

const hint = (tid: number, vcpus: number[], seq: number): Hint => ({tid, tgid: tid, comm: 'worker', vcpus, seq});

/** Fake vCPU thread ids: vCPU v is thread 1000 + v (nothing is pinned: only Pinner.plan runs). */
const fakeThreads = (nrVcpus: number) => new Map(Array.from({length: nrVcpus}, (_, v) => [v, 1000 + v]));

interface Scenario {
	nrVcpus: number;
	allowed: number[];
	hints?: Hint[];
	/** The idle set the table is built with. */
	idle?: number[];
	/** The idle set the base was decided with (default: `idle`). */
	baseIdle?: number[];
	canAddHint?: boolean;
	basedSeq?: number;
	/** vCPU → thread id (default: fakeThreads). */
	threads?: Map<number, number>;
	/** With host-wide leases: the CPUs leased, and those none may have (docs/leases.md). */
	leased?: number[];
	floatOnly?: number[];
}

/**
 * The table for a scenario: the base decided by the policy from the hints (twice, as the engine
 * decides again and again: a grant that goes on), and a Pinner that has applied the base.
 */
function build(s: Scenario): {table: FastTable | undefined; base: Assignment; hints: Map<number, Hint>; pinner: Pinner} {
	const hints = new Map((s.hints ?? []).map((h) => [h.tid, h]));
	const baseIdle = new Set(s.baseIdle ?? s.idle ?? []);
	const first = decideAffinity(hints.values(), s.nrVcpus, s.allowed, floatingOnly(s.allowed), baseIdle);
	const base = decideAffinity(hints.values(), s.nrVcpus, s.allowed, first, baseIdle);
	const pinner = new Pinner(s.threads ?? fakeThreads(s.nrVcpus), 999, false, () => true);
	pinner.adopt(pinner.plan(base), () => false);
	const table = buildFastTable({
		hints,
		assignment: base,
		nrVcpus: s.nrVcpus,
		allowed: s.allowed,
		idle: new Set(s.idle ?? []),
		held: noneHeld,
		basedSeq: s.basedSeq ?? 0,
		canAddHint: s.canAddHint ?? true,
		plan: (a, assumed) => pinner.plan(a, assumed),
		...(s.leased ? {leased: new Set(s.leased)} : {}),
		...(s.floatOnly ? {floatOnly: new Set(s.floatOnly)} : {}),
	});
	return {table, base, hints, pinner};
}

function must(table: FastTable | undefined): FastTable {
	if (!table) throw new Error('no table');
	return table;
}

/** An entry in short: kind:key, then whether it has a way back. */
const short = (e: FastEntry) => `${e.kind}:${e.key}${e.backOps.length || e.backFeedback.length ? ' back' : ''}`;
/** Ops in short: thread, CPUs, nice. */
const ops = (list: readonly PinOp[]) => list.map((op) => ({tid: op.tid, cpus: op.cpus, nice: op.nice}));

t.test('no hints: a new pin per vCPU, each with its way back', async (t) => {
	const {table: maybe, base} = build({nrVcpus: 2, allowed: [0, 1]});
	const table = must(maybe);
	t.equal(recordTid, 0, 'the placeholder thread of a new pin is 0');
	t.equal(table.base, base, "the table's base is the assignment it was built from");
	t.same(table.entries.map(short), ['pin:0 back', 'pin:1 back'], 'a new pin for each vCPU, each with a way back');
	const [pin0, pin1] = table.entries;
	t.same(
		[...(pin0?.next.exclusive ?? [])],
		[[0, {pcpu: 1, tid: recordTid, seq: newest, shared: false}]],
		"vCPU 0 gets CPU 1, the highest, for the record's thread",
	);
	t.same(pin0?.next.floating, [0], 'the rest float on CPU 0');
	t.same(
		ops(pin0?.ops ?? []),
		[
			{tid: 1000, cpus: [1], nice: undefined},
			{tid: 1001, cpus: [0], nice: undefined},
		],
		'its ops move both threads',
	);
	t.same(pin0?.feedback, [0], "vCPU 0's slot changes");
	t.same(
		ops(pin0?.backOps ?? []),
		[
			{tid: 1000, cpus: [0, 1], nice: undefined},
			{tid: 1001, cpus: [0, 1], nice: undefined},
		],
		'the way back floats both again',
	);
	t.same(pin0?.backFeedback, [0], "and rewrites vCPU 0's slot");
	t.same([...(pin1?.next.exclusive.keys() ?? [])], [1], 'the pin of vCPU 1 grants vCPU 1');
	t.same(
		ops(pin1?.ops ?? []),
		[
			{tid: 1000, cpus: [0], nice: undefined},
			{tid: 1001, cpus: [1], nice: undefined},
		],
		'its ops, in vCPU order',
	);
});

t.test('with host-wide leases: no entry grants a CPU this VM does not lease, or a float-only one', async (t) => {
	t.same(must(build({nrVcpus: 2, allowed: [0, 1], leased: []}).table).entries.map(short), [], 'nothing leased: every new pin is left to the JavaScript thread');
	const leased = must(build({nrVcpus: 2, allowed: [0, 1], leased: [1]}).table);
	t.same(leased.entries.map(short), ['pin:0 back', 'pin:1 back'], 'CPU 1 leased: the new pins that grant it');
	const three = must(build({nrVcpus: 3, allowed: [0, 1, 2], leased: [1, 2], floatOnly: [2]}).table);
	t.same(
		three.entries.map((e) => [...e.next.exclusive.values()].map((x) => x.pcpu)),
		[[1], [1], [1]],
		'CPU 2 is float-only: each new pin grants CPU 1',
	);
	t.same(three.entries[0]?.next.floating, [0, 2]);
});

t.test('no new pins when no hint may be added: a table with no entries', async (t) => {
	const table = must(build({nrVcpus: 2, allowed: [0, 1], canAddHint: false}).table);
	t.same(table.entries, [], 'no entries');
	t.equal(table.bytes.length, TableHeader.size, 'the header alone');
});

t.test('a hinted thread: its release entry; a pin on its vCPU changes nothing and has no entry', async (t) => {
	const {table: maybe, base} = build({nrVcpus: 2, allowed: [0, 1], hints: [hint(500, [1], 7)]});
	const table = must(maybe);
	t.same([...base.exclusive], [[1, {pcpu: 1, tid: 500, seq: 7, shared: false}]], 'the base: vCPU 1 has CPU 1');
	t.same(table.entries.map(short), ['pin:0 back', 'release:500'], 'the older hint keeps vCPU 1: no pin:1');
	const [pin0, release] = table.entries;
	t.same(pin0?.ops, [], "vCPU 0 gets CPU 0, where it already was: no op (the guest's feedback alone changes)");
	t.same(pin0?.feedback, [0], "vCPU 0's slot says CPU 0 is its own");
	t.same(release?.next, floatingOnly([0, 1]), 'the release floats everything');
	t.same(
		ops(release?.ops ?? []),
		[
			{tid: 1000, cpus: [0, 1], nice: undefined},
			{tid: 1001, cpus: [0, 1], nice: undefined},
		],
		'on every CPU',
	);
	t.same(release?.feedback, [1], "vCPU 1's slot changes");
	t.same([release?.backOps, release?.backFeedback], [[], []], 'a release has no way back');
});

t.test("a new pin's way back exists exactly when its release returns to the table's state", async (t) => {
	const scenarios: Record<string, Scenario> = {
		plain: {nrVcpus: 3, allowed: [0, 1, 2, 3], hints: [hint(500, [2], 3)]},
		'a grant judged idle since the base was decided': {nrVcpus: 3, allowed: [0, 1, 2, 3], hints: [hint(500, [2], 3)], idle: [2], baseIdle: []},
		'an idle grant, judged so before': {nrVcpus: 3, allowed: [0, 1, 2, 3], hints: [hint(500, [2], 3)], idle: [2]},
		'a thread on several vCPUs': {nrVcpus: 4, allowed: [0, 1, 2, 3, 4], hints: [hint(500, [0], 1), hint(600, [1, 2], 2)]},
		'a denied vCPU': {nrVcpus: 2, allowed: [0], hints: [hint(500, [1], 1)]},
	};
	const found: Record<string, string[]> = {};
	for (const [name, s] of Object.entries(scenarios)) {
		const {table: maybe, base, hints} = build(s);
		const table = must(maybe);
		found[name] = table.entries.map(short);
		for (const e of table.entries) {
			const back = decideAffinity(hints.values(), s.nrVcpus, s.allowed, e.next, new Set(s.idle ?? []), noneHeld);
			const returns = e.kind === 'pin' && sameAssignment(back, base);
			t.equal(
				e.backOps.length + e.backFeedback.length > 0,
				returns,
				e.kind === 'release'
					? `${name}: release:${e.key} has no way back`
					: `${name}: pin:${e.key} ${returns ? 'has a way back: its release returns' : 'has no way back: its release does not return'} to the base`,
			);
		}
	}
	t.same(
		found,
		{
			plain: ['pin:0 back', 'pin:1 back', 'release:500'],
			// Each pin shares vCPU 2's idle grant, which the base had to itself; the pin of vCPU 2 too (the older hint keeps it).
			'a grant judged idle since the base was decided': ['pin:0', 'pin:1', 'pin:2', 'release:500'],
			'an idle grant, judged so before': ['pin:0 back', 'pin:1 back', 'release:500'],
			'a thread on several vCPUs': ['pin:1 back', 'pin:2 back', 'pin:3 back', 'release:500'],
			// No CPU to spare: a pin moves nothing, and the release of a denied vCPU neither.
			'a denied vCPU': [],
		},
		'the entries: only the changes that move something (releasing thread 600, on two vCPUs, moves nothing)',
	);
});

t.test('beyond the native limits: no table', async (t) => {
	const wide = Array.from({length: 256}, (_, c) => c);
	t.ok(build({nrVcpus: tableMaxVcpus, allowed: [0, 1]}).table, `${tableMaxVcpus} vCPUs`);
	t.equal(build({nrVcpus: tableMaxVcpus + 1, allowed: [0, 1]}).table, undefined, `${tableMaxVcpus + 1} vCPUs`);
	t.equal(build({nrVcpus: 0, allowed: [0, 1]}).table, undefined, 'no vCPU');
	const hints = (n: number) => Array.from({length: n}, (_, i) => hint(2000 + i, [i % tableMaxVcpus], i));
	const most = build({nrVcpus: tableMaxVcpus, allowed: wide.slice(0, 255), hints: hints(tableMaxHinted)}).table;
	t.equal(most?.entries.filter((e) => e.kind === 'release').length, tableMaxHinted, `${tableMaxHinted} hinted threads: a release each`);
	t.equal(
		build({nrVcpus: tableMaxVcpus, allowed: wide.slice(0, 255), hints: hints(tableMaxHinted + 1)}).table,
		undefined,
		`${tableMaxHinted + 1} hinted threads`,
	);
	t.ok(build({nrVcpus: 2, allowed: [0, 255]}).table, 'CPU 255');
	t.equal(build({nrVcpus: 2, allowed: [0, 256]}).table, undefined, 'CPU 256');
});

t.test('at 1, 2 and 64 vCPUs a table covers a new pin per vCPU; at 256 the JavaScript thread decides', async (t) => {
	for (const n of [1, 2, tableMaxVcpus]) {
		const table = must(build({nrVcpus: n, allowed: [0, 1]}).table);
		t.equal(table.entries.filter((e) => e.kind === 'pin').length, n, `${n} vCPUs: ${n} new pins`);
		t.comment(`${n} vCPUs: a table of ${table.bytes.length} bytes`);
	}
	t.equal(build({nrVcpus: 256, allowed: [0, 1]}).table, undefined, '256 vCPUs: no table (pvrun decides every record itself)');
});

/** A table's bytes read back at the offsets of src/fast/format.ts. */
function parse(bytes: Uint8Array) {
	const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
	const mask = (at: number): number[] => {
		const cpus: number[] = [];
		for (let w = 0; w < maskWords; w++) {
			const word = b.readBigUInt64LE(at + w * 8);
			for (let bit = 0; bit < 64; bit++) if ((word >> BigInt(bit)) & 1n) cpus.push(w * 64 + bit);
		}
		return cpus;
	};
	const list = <T>(at: number, n: number, size: number, read: (o: number) => T): [T[], number] => [
		Array.from({length: n}, (_, i) => read(at + i * size)),
		at + n * size,
	];
	const op = (o: number) => ({
		tid: b.readInt32LE(o + Op.tid),
		cpus: b.readUInt32LE(o + Op.cpus),
		pcpu: b.readInt32LE(o + Op.pcpu),
		nice: b.readInt32LE(o + Op.nice),
	});
	const fb = (o: number) => ({
		vcpu: b.readUInt32LE(o + Feedback.vcpu),
		exclusive: b.readUInt32LE(o + Feedback.exclusive),
		pcpu: b.readInt32LE(o + Feedback.pcpu),
		hintTid: b.readUInt32LE(o + Feedback.hintTid),
	});
	const header = {
		magic: b.readUInt32LE(TableHeader.magic),
		version: b.readUInt32LE(TableHeader.version),
		nrVcpus: b.readUInt32LE(TableHeader.nrVcpus),
		nEntries: b.readUInt32LE(TableHeader.nEntries),
		nHinted: b.readUInt32LE(TableHeader.nHinted),
		basedSeq: b.readBigUInt64LE(TableHeader.basedSeq),
		baseFloating: mask(TableHeader.baseFloating),
	};
	const [hinted, entriesAt] = list(TableHeader.size, header.nHinted, 4, (at) => b.readUInt32LE(at));
	let o = entriesAt;
	const entries = [];
	for (let i = 0; i < header.nEntries; i++) {
		const e = {
			kind: b.readUInt32LE(o + EntryHeader.kind),
			key: b.readUInt32LE(o + EntryHeader.key),
			nOps: b.readUInt32LE(o + EntryHeader.nOps),
			nFeedback: b.readUInt32LE(o + EntryHeader.nFeedback),
			nBackOps: b.readUInt32LE(o + EntryHeader.nBackOps),
			nBackFeedback: b.readUInt32LE(o + EntryHeader.nBackFeedback),
			floating: mask(o + EntryHeader.floating),
		};
		o += EntryHeader.size;
		let opsRead, feedbackRead, backOps, backFeedback;
		[opsRead, o] = list(o, e.nOps, Op.size, op);
		[feedbackRead, o] = list(o, e.nFeedback, Feedback.size, fb);
		[backOps, o] = list(o, e.nBackOps, Op.size, op);
		[backFeedback, o] = list(o, e.nBackFeedback, Feedback.size, fb);
		entries.push({...e, ops: opsRead, feedback: feedbackRead, backOps, backFeedback});
	}
	return {header, hinted, entries, end: o};
}

t.test('the bytes: header, hinted threads, each entry with its ops and feedback, at the offsets of format.ts', async (t) => {
	const basedSeq = 2 ** 33 + 5;
	const table = must(build({nrVcpus: 3, allowed: [0, 1, 2, 3], hints: [hint(500, [2], 3)], basedSeq}).table);
	t.same(table.entries.map(short), ['pin:0 back', 'pin:1 back', 'release:500'], 'the entries');
	const read = parse(table.bytes);
	t.equal(read.end, table.bytes.length, 'the entries end where the bytes do');
	t.same(
		read.header,
		{magic: tableMagic, version: tableVersion, nrVcpus: 3, nEntries: 3, nHinted: 1, basedSeq: BigInt(basedSeq), baseFloating: [0, 1, 2]},
		'the header',
	);
	t.same(read.hinted, [500], 'the hinted threads');
	t.same(
		read.entries[0],
		{
			kind: Kind.pin,
			key: 0,
			nOps: 2,
			nFeedback: 1,
			nBackOps: 2,
			nBackFeedback: 1,
			floating: [0, 1],
			ops: [
				{tid: 1000, cpus: Cpus.one, pcpu: 2, nice: niceKeep},
				{tid: 1001, cpus: Cpus.floating, pcpu: -1, nice: niceKeep},
			],
			feedback: [{vcpu: 0, exclusive: 1, pcpu: 2, hintTid: feedbackRecordTid}],
			backOps: [
				{tid: 1000, cpus: Cpus.floating, pcpu: -1, nice: niceKeep},
				{tid: 1001, cpus: Cpus.floating, pcpu: -1, nice: niceKeep},
			],
			backFeedback: [{vcpu: 0, exclusive: 0, pcpu: -1, hintTid: 0}],
		},
		"the first entry: vCPU 0 pinned to CPU 2 for the record's thread, vCPU 1 floating on 0-1, and back",
	);
	t.same(
		read.entries[2],
		{
			kind: Kind.release,
			key: 500,
			nOps: 3,
			nFeedback: 1,
			nBackOps: 0,
			nBackFeedback: 0,
			floating: [0, 1, 2, 3],
			ops: [1000, 1001, 1002].map((tid) => ({tid, cpus: Cpus.floating, pcpu: -1, nice: niceKeep})),
			feedback: [{vcpu: 2, exclusive: 0, pcpu: -1, hintTid: 0}],
			backOps: [],
			backFeedback: [],
		},
		"the release: every vCPU floats on every CPU, vCPU 2's slot says so",
	);
});

t.test('crowded: nice values for the floating threads, an op that keeps the CPUs, the hinted thread in feedback', async (t) => {
	// Real threads (sleeping processes): Pinner.plan reads a thread's own nice value once.
	const threads = new Map([0, 1, 2].map((v) => [v, sleeper(t).pid ?? 0]));
	const [a = 0, b = 0, c = 0] = [0, 1, 2].map((v) => threads.get(v));
	const niced = (tid: number) => Math.min(19, getThreadNice(tid) + 5);
	const own = (tid: number) => getThreadNice(tid);

	// vCPU 1 has CPU 1 to itself; a pin of vCPU 0 leaves no CPU over: every grant is shared, the floating vCPU 2 niced.
	const plain = must(build({nrVcpus: 3, allowed: [0, 1], hints: [hint(500, [1], 3)], threads}).table);
	t.same(plain.entries.map(short), ['pin:0 back', 'pin:2 back', 'release:500'], 'the entries');
	const pin0 = parse(plain.bytes).entries[0];
	t.same(pin0?.ops, [{tid: c, cpus: Cpus.floating, pcpu: -1, nice: niced(c)}], 'vCPU 2 floats on both CPUs at a higher nice value; vCPU 0 stays on CPU 0');
	t.same(
		pin0?.feedback,
		[
			{vcpu: 0, exclusive: 1, pcpu: 0, hintTid: feedbackRecordTid},
			{vcpu: 1, exclusive: 1, pcpu: 1, hintTid: 500},
		],
		"vCPU 0's new grant, and vCPU 1's (now shared), with its thread",
	);
	t.same(
		pin0?.backOps,
		[{tid: c, cpus: Cpus.one, pcpu: 0, nice: own(c)}],
		'the way back: vCPU 2 back on CPU 0 (a floating set of one CPU is written as that CPU) at its own nice value',
	);
	t.same(
		pin0?.backFeedback,
		[
			{vcpu: 0, exclusive: 0, pcpu: -1, hintTid: 0},
			{vcpu: 1, exclusive: 1, pcpu: 1, hintTid: 500},
		],
		'and the slots: vCPU 0 floats, vCPU 1 has CPU 1 unshared again',
	);
	t.equal(plain.entries[0]?.next.floatNice, 5, 'the entry is crowded');

	// vCPU 1's grant idles and is shared already: vCPU 2 floats on both CPUs before and after, only its nice value changes.
	const idle = must(build({nrVcpus: 3, allowed: [0, 1], hints: [hint(500, [1], 3)], idle: [1], threads}).table);
	t.same(idle.entries.map(short), ['pin:0 back', 'pin:2 back', 'release:500'], 'the entries');
	const entry = parse(idle.bytes).entries[0];
	t.same(
		entry?.ops,
		[
			{tid: a, cpus: Cpus.one, pcpu: 0, nice: niceKeep},
			{tid: c, cpus: Cpus.keep, pcpu: -1, nice: niced(c)},
		],
		'vCPU 0 to CPU 0; vCPU 2 keeps its CPUs, at a higher nice value',
	);
	t.same(
		entry?.backOps,
		[
			{tid: a, cpus: Cpus.floating, pcpu: -1, nice: niceKeep},
			{tid: c, cpus: Cpus.keep, pcpu: -1, nice: own(c)},
		],
		'and back',
	);
	t.notOk(
		parse(idle.bytes).entries.some((e) => e.kind === Kind.pin && [...e.ops, ...e.backOps].some((op) => op.tid === b)),
		'vCPU 1 keeps its CPU in every new pin and its way back',
	);
});

t.test("a big VM: a change of the floating threads' weight is left to the JavaScript thread", async (t) => {
	// vCPU 1 has CPU 1 to itself; a pin of any other vCPU leaves no CPU over: shared mode, every floating thread reniced.
	const n = tableMaxReweighVcpus;
	const threads = new Map(Array.from({length: n}, (_, v) => [v, sleeper(t).pid ?? 0]));
	const at = must(build({nrVcpus: n, allowed: [0, 1], hints: [hint(500, [1], 3)], threads}).table);
	const pins = at.entries.filter((e) => e.kind === 'pin');
	t.equal(pins.length, n - 1, `${n} vCPUs: a new pin for each other vCPU`);
	t.ok(
		pins.every((e) => e.next.floatNice === 5 && e.ops.length === n - 2),
		'each renices every floating thread',
	);
	// One more vCPU: the thread ids are no process's, and none is read (no entry plans a nice value).
	const above = must(build({nrVcpus: n + 1, allowed: [0, 1], hints: [hint(500, [1], 3)]}).table);
	t.same(above.entries.map(short), ['release:500'], `${n + 1} vCPUs: only the release; new pins are the JavaScript thread's`);
	// Without the change of weight (no grant yet), every new pin is still covered.
	t.equal(must(build({nrVcpus: 64, allowed: [0, 1]}).table).entries.length, 64, '64 vCPUs with no grant: a new pin per vCPU');
});

t.test('movedVcpus: the vCPUs whose grant, thread or sharing changes', async (t) => {
	const grant = (pcpu: number, tid: number, shared = false): Exclusive => ({pcpu, tid, seq: 1, shared});
	const with_ = (entries: [number, Exclusive][]): Assignment => ({...floatingOnly([0, 1, 2, 3]), exclusive: new Map(entries)});
	const base = with_([[1, grant(3, 500)]]);
	t.same(movedVcpus(base, with_([[1, grant(3, 500)]]), 4), [], 'nothing');
	t.same(movedVcpus(base, with_([[1, {...grant(3, 500), seq: 9}]]), 4), [], 'a new seq alone moves nothing');
	t.same(movedVcpus(base, with_([]), 4), [1], 'a grant ends');
	t.same(movedVcpus(base, with_([[1, grant(2, 500)]]), 4), [1], 'another CPU');
	t.same(movedVcpus(base, with_([[1, grant(3, 600)]]), 4), [1], 'another thread');
	t.same(movedVcpus(base, with_([[1, grant(3, 500, true)]]), 4), [1], 'shared now');
	t.same(
		movedVcpus(
			base,
			with_([
				[0, grant(2, 600)],
				[1, grant(3, 500)],
				[3, grant(1, 700)],
			]),
			4,
		),
		[0, 3],
		'new grants, in vCPU order',
	);
	t.same(
		movedVcpus(
			with_([
				[3, grant(1, 700)],
				[1, grant(3, 500)],
			]),
			with_([[0, grant(2, 600)]]),
			4,
		),
		[0, 1, 3],
		"grants that end and begin, in vCPU order whatever the maps' order",
	);
	t.same(
		movedVcpus(
			base,
			with_([
				[1, grant(3, 500)],
				[3, grant(1, 700)],
			]),
			3,
		),
		[],
		'only vCPUs below nrVcpus',
	);
});

t.test('sameAssignment: same grants to the same threads, same floating set, denied and weight', async (t) => {
	const a: Assignment = {exclusive: new Map([[1, {pcpu: 3, tid: 500, seq: 1, shared: false}]]), floating: [0, 1, 2], denied: [2], shared: false, floatNice: 0};
	const copy = (over: Partial<Assignment> = {}): Assignment => ({...a, exclusive: new Map(a.exclusive), ...over});
	t.ok(sameAssignment(a, copy()), 'a copy');
	t.ok(sameAssignment(a, copy({exclusive: new Map([[1, {pcpu: 3, tid: 500, seq: 99, shared: false}]])})), 'the seq of a grant does not count');
	const differ: Record<string, Partial<Assignment>> = {
		'another CPU': {exclusive: new Map([[1, {pcpu: 2, tid: 500, seq: 1, shared: false}]])},
		'another thread': {exclusive: new Map([[1, {pcpu: 3, tid: 501, seq: 1, shared: false}]])},
		'shared grant': {exclusive: new Map([[1, {pcpu: 3, tid: 500, seq: 1, shared: true}]])},
		'another vCPU': {exclusive: new Map([[0, {pcpu: 3, tid: 500, seq: 1, shared: false}]])},
		'no grant': {exclusive: new Map()},
		'floating set': {floating: [0, 1]},
		denied: {denied: []},
		'shared mode': {shared: true},
		weight: {floatNice: 5},
	};
	for (const [what, over] of Object.entries(differ)) {
		t.notOk(sameAssignment(a, copy(over)), `differs: ${what}`);
		t.notOk(sameAssignment(copy(over), a), `differs: ${what} (the other way)`);
	}
});

t.test("resolvedNext: the record's thread and seq in place of the placeholder, the entry untouched", async (t) => {
	const table = must(build({nrVcpus: 3, allowed: [0, 1, 2, 3], hints: [hint(500, [2], 3)]}).table);
	const entry = table.entries.find((e) => e.kind === 'pin' && e.key === 0);
	if (!entry) throw new Error('no pin:0');
	const next = resolvedNext(entry, 4242, 17);
	t.same(
		[...next.exclusive],
		[
			[0, {pcpu: 2, tid: 4242, seq: 17, shared: false}],
			[2, {pcpu: 3, tid: 500, seq: 3, shared: false}],
		],
		"the new grant is the record thread's; the other grant is as it was",
	);
	t.same(next.floating, entry.next.floating, 'the same floating set');
	t.equal(entry.next.exclusive.get(0)?.tid, recordTid, 'the entry still has the placeholder');
	t.ok(sameAssignment(next, resolvedNext(entry, 4242, 99)), 'the seq does not change the placement');
	t.notOk(sameAssignment(next, resolvedNext(entry, 4343, 17)), 'the thread does');
});
