// The native fast path (native/pvfast.c) with real threads and a real kick
// socket, no QEMU: two `sleep` processes stand in for vCPU threads, the test
// writes records into a real /dev/shm area as the guest agent would, kicks
// through a unix socket as QEMU would, and reads the result where the host
// and the guest would see it (/proc, the vCPU slot's feedback).
import fs from 'node:fs';
import t, {type Test} from 'tap';
import {threadCpusAllowed} from '../../src/host/cpus.js';
import {setThreadAffinity, threadPolicy} from '../../src/host/libc.js';
import {procStatFields} from '../../src/host/proc.js';
import {FastPath, fastPathAvailable, type FastApplied} from '../../src/fast/binding.js';
import {Pinner} from '../../src/pin/pinner.js';
import {floatingOnly, noneHeld, type Assignment, type Hint} from '../../src/hints/affinity/policy.js';
import {AffinityKind} from '../../src/shm/layout.js';
import {buildFastTable, resolvedNext, type FastTable} from '../../src/fast/table.js';
import {connectedWithin, feedback, kickServer, sleeper, standIn, standInGroup} from '../helpers/fast.js';
import {Cpus, Group, Op, Sched} from '../../src/fast/format.js';
import {cpusetMount} from '../../src/pin/cpuset.js';
import {Guest, area, maskOf} from '../helpers/guest-ring.js';
import {guestBudget} from '../../src/util/guest-budget.js';

const allowed = [0, 1];
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Everything one test needs: the area, the fake guest, two fake vCPU threads,
 * the running fast path. The stand-in threads are processes, so the fast path
 * checks no process (`tgid` 0) unless the test names one.
 */
async function setUp(t: Test, tgid = 0, priority = false) {
	const shm = area(t, 2);
	const guest = new Guest(shm);
	const [a, b] = [sleeper(t), sleeper(t)];
	const tids = new Map([
		[0, a.pid ?? 0],
		[1, b.pid ?? 0],
	]);
	// Stand-ins are processes: their policy is in their own /proc entry.
	const pinner = new Pinner(tids, process.pid, false, standIn, undefined, (tid) => threadPolicy(tid, tid));
	if (priority) pinner.usePriority();
	let state: Assignment = floatingOnly(allowed);
	t.same(pinner.apply(state).errors, [], 'the stand-in vCPU threads float');
	const server = await kickServer(t);
	let wakes = 0;
	let waiter: (() => void) | undefined;
	const fast = FastPath.start(shm.path, server.path, tgid, () => {
		wakes++;
		waiter?.();
	});
	t.teardown(() => fast.stop());
	const socket = await connectedWithin(server.connected);
	let table: FastTable | undefined;
	const hints = new Map<number, Hint>();
	return {
		shm,
		guest,
		tids,
		pinner,
		fast,
		hints,
		socket,
		/** How many times the JavaScript side was woken so far. */
		wakes: () => wakes,
		state: () => state,
		/** Publish the table for the current state, based at the guest's head. */
		publish(): FastTable {
			table = buildFastTable({
				hints,
				assignment: state,
				nrVcpus: 2,
				allowed,
				idle: new Set(),
				held: noneHeld,
				basedSeq: guest.head,
				canAddHint: true,
				plan: (x, assumed) => pinner.plan(x, assumed),
				floatingCpus: (x) => pinner.floatingCpus(x),
			});
			if (!table) throw new Error('no table');
			fast.publish(table.bytes);
			return table;
		},
		/** One kick byte; resolves after the fast path has woken the JavaScript side. */
		async kick(): Promise<void> {
			const before = wakes;
			const woken = new Promise<void>((resolve, reject) => {
				const timer = setTimeout(() => reject(new Error('no wake-up within 2 s')), 2000);
				waiter = () => {
					if (wakes > before) {
						clearTimeout(timer);
						resolve();
					}
				};
			});
			socket.write('k');
			await woken;
		},
		/** Take what was applied and make it the state, as the engine does; `end` ends the table. */
		take(end = false): FastApplied[] {
			const taken = fast.take(end);
			for (const a of taken.applied) {
				const entry = table?.entries[a.entry];
				if (!table || !entry) throw new Error(`no entry ${a.entry}`);
				pinner.adopt(a.back ? entry.backOps : entry.ops, (i) => (((a.failedOps | a.movedOps) >> BigInt(i)) & 1n) === 1n);
				state = a.back ? table.base : resolvedNext(entry, a.tid, a.seq);
			}
			return taken.applied;
		},
	};
}

t.test('the library is built (make builds it; pvrun runs without it, but make test checks it)', async (t) => {
	t.equal(fastPathAvailable(), true);
});

const cpusOf = (tid: number) => threadCpusAllowed(tid, tid);

t.test('a new pin and its release are applied by the native thread, feedback included', async (t) => {
	const f = await setUp(t);
	const [a = 0, b = 0] = [f.tids.get(0), f.tids.get(1)];
	const table = f.publish();
	t.same(
		table.entries.map((e) => `${e.kind}:${e.key}:${e.backOps.length > 0}`),
		['pin:0:true', 'pin:1:true'],
		'with no hints: one entry per vCPU a thread could pin itself to, each with its way back',
	);
	const before = feedback(f.shm, 1);
	f.guest.append({tid: 4242, tgid: 4240, kind: AffinityKind.set, mask: maskOf(1)});
	await f.kick();
	t.same(cpusOf(b), [1], 'vCPU 1 got CPU 1, the highest allowed, to itself');
	t.same(cpusOf(a), [0], 'vCPU 0 floats on what is left');
	const fb = feedback(f.shm, 1);
	t.match(fb, {state: 1, pcpu: 1, hintTid: 4242, recordSeq: 0n}, "the guest sees the grant in vCPU 1's slot");
	t.equal(fb.seq, before.seq + 2n, 'one complete seqlock write (even, two more)');
	const taken = f.fast.take(false);
	t.match(taken, {valid: true, pinned: true, cursor: 1}, 'the table stays current while the thread holds its vCPU');
	t.match(taken.applied, [{entry: 1, back: false, tid: 4242, seq: 0, failedOps: 0n}], 'take reports the change once');
	const latency = taken.applied[0]?.latencyUs ?? -1;
	t.ok(latency > 0 && latency < 100_000, `latency measured: ${latency.toFixed(1)} µs`);
	t.same(f.fast.take(false).applied, [], 'and only once');

	f.guest.append({tid: 4242, tgid: 4240, kind: AffinityKind.exit, mask: maskOf()});
	await f.kick();
	t.same(cpusOf(b), [0, 1], 'the thread exits: vCPU 1 floats again');
	t.same(cpusOf(a), [0, 1], 'and vCPU 0 has every CPU back');
	t.match(feedback(f.shm, 1), {state: 0, pcpu: -1, hintTid: 0, recordSeq: 1n}, 'the slot says floating');
	t.match(
		f.fast.take(false),
		{valid: true, pinned: false, cursor: 2, applied: [{entry: 1, back: true, tid: 4242, seq: 1}]},
		'the way back, and the table is current again',
	);
	t.match(f.fast.stats(), {applied: 2, invalid: 0, pinErrors: 0});
});

t.test(
	'priority grants: the native thread pins and raises the granted thread alone, and lowers it on the way back',
	{skip: process.getuid?.() !== 0 && 'SCHED_FIFO needs root'},
	async (t) => {
		const f = await setUp(t, 0, true);
		const [a = 0, b = 0] = [f.tids.get(0), f.tids.get(1)];
		const policy = (pid: number) => Number(procStatFields(pid)?.[41]);
		const table = f.publish();
		t.same(
			table.entries.map((e) => e.ops.map((o) => `${o.vcpu}:${o.sched}`)),
			[['0:fifo'], ['1:fifo']],
			'each new pin has one op: its own thread',
		);
		f.guest.append({tid: 4242, tgid: 4240, kind: AffinityKind.set, mask: maskOf(1)});
		await f.kick();
		t.same(cpusOf(b), [1], 'vCPU 1 got CPU 1');
		t.equal(policy(b), 1, 'in SCHED_FIFO');
		t.same(cpusOf(a), [0, 1], 'vCPU 0 keeps every CPU');
		t.equal(policy(a), 0);
		f.guest.append({tid: 4242, tgid: 4240, kind: AffinityKind.exit, mask: maskOf()});
		await f.kick();
		t.same([cpusOf(b), policy(b)], [[0, 1], 0], 'the way back: SCHED_OTHER on every CPU');
		t.match(f.take(), [
			{back: false, failedOps: 0n},
			{back: true, failedOps: 0n},
		]);
		t.match(f.fast.stats(), {applied: 2, invalid: 0, pinErrors: 0});
		// SCHED_FIFO comes with one CPU in the same op, or the table is refused.
		const bytes = f.publish().bytes;
		const firstOp = 64 + 64;
		const bad = Buffer.from(bytes);
		bad.writeUInt32LE(Cpus.floating, firstOp + Op.cpus);
		t.throws(() => f.fast.publish(bad), /refused/, 'SCHED_FIFO without its one CPU');
		const unknown = Buffer.from(bytes);
		unknown.writeUInt32LE(Sched.fifo + 1, firstOp + Op.sched);
		t.throws(() => f.fast.publish(unknown), /refused/, 'a class of no known kind');
		// The VM ends right after the native thread raised a thread, before pvrun took the change.
		f.publish();
		f.guest.append({tid: 4243, tgid: 4240, kind: AffinityKind.set, mask: maskOf(1)});
		await f.kick();
		t.equal(policy(b), 1, 'raised again, not taken yet');
		t.same(f.pinner.lowerAll(), []);
		t.equal(policy(b), 0, 'lowerAll finds it all the same');
		f.take();
	},
);

t.test('a table replaces the current one; while a change is not taken, publish says so and no table is current', async (t) => {
	const f = await setUp(t);
	const b = f.tids.get(1) ?? 0;
	const first = f.publish();
	t.equal(f.fast.publish(first.bytes), true, 'in place of the current one, nothing applied: published');
	f.guest.append({tid: 4250, tgid: 4240, kind: AffinityKind.set, mask: maskOf(1)});
	await f.kick();
	t.same(cpusOf(b), [1], 'the replacement follows the pin');
	t.equal(f.fast.publish(first.bytes), false, 'applied, not taken: a new table is refused');
	t.match(f.fast.take(false), {valid: false, applied: [{tid: 4250}]}, 'no table is current, and the change is still there to take');
});

t.test('one table follows a thread that pins itself and lets go, again and again', async (t) => {
	const f = await setUp(t);
	const b = f.tids.get(1) ?? 0;
	f.publish();
	for (let i = 0; i < 5; i++) {
		f.guest.append({tid: 900, mask: maskOf(1)});
		await f.kick();
		t.same(cpusOf(b), [1], `round ${i}: pinned`);
		f.guest.append({tid: 900, mask: maskOf(0, 1)});
		await f.kick();
		t.same(cpusOf(b), [0, 1], `round ${i}: released (a wide mask)`);
	}
	// Both changes of a round in one batch (one kick).
	f.guest.append({tid: 901, mask: maskOf(0)}, {tid: 901, kind: AffinityKind.exit, mask: maskOf()});
	await f.kick();
	const applied = f.take();
	t.equal(applied.length, 12, 'twelve changes, in order');
	t.same(
		applied.map((a) => a.back),
		Array.from({length: 12}, (_, i) => i % 2 === 1),
	);
	t.match(f.fast.stats(), {applied: 12, noTable: 0, notCovered: 0});
});

t.test('what the table does not cover ends it', async (t) => {
	const f = await setUp(t);
	const [a = 0, b = 0] = [f.tids.get(0), f.tids.get(1)];
	f.publish();
	f.guest.append({tid: 500, mask: maskOf(1)});
	await f.kick();
	f.guest.append({tid: 501, mask: maskOf(0)});
	await f.kick();
	t.same(cpusOf(a), [0], "a second thread's pin while the first holds its vCPU waits for the JavaScript thread");
	t.same(cpusOf(b), [1], 'the first stays');
	t.match(f.fast.take(false), {valid: false, cursor: 1}, 'the table ended at the uncovered record');
	f.guest.append({tid: 500, kind: AffinityKind.exit, mask: maskOf()});
	await f.kick();
	t.same(cpusOf(b), [1], 'after that, nothing is applied');
	t.match(f.fast.stats(), {applied: 1, notCovered: 1, noTable: 1});
});

t.test('what the guest got wrong is left to the JavaScript thread', async (t) => {
	const f = await setUp(t);
	const b = f.tids.get(1) ?? 0;
	const cases: Array<[string, () => void, keyof ReturnType<FastPath['stats']>]> = [
		['tid 0', () => f.guest.append({tid: 0, mask: maskOf(1)}), 'invalid'],
		['a pid past the kernel limit', () => f.guest.append({tid: 2 ** 22, mask: maskOf(1)}), 'invalid'],
		['a mask naming only vCPUs that do not exist', () => f.guest.append({tid: 77, mask: maskOf(5, 200)}), 'invalid'],
		['a record whose seq field is wrong', () => f.guest.append({tid: 78, mask: maskOf(1), seqField: 99n}), 'invalid'],
		['an unknown record type', () => f.guest.append({tid: 79, mask: maskOf(1), type: 9}), 'invalid'],
		['a payload longer than a record', () => f.guest.append({tid: 80, mask: maskOf(1), len: 200}), 'invalid'],
		[
			'17 records at once',
			() => f.guest.append(...Array.from({length: 17}, (_, i) => ({tid: 1000 + i, kind: AffinityKind.exit, mask: maskOf()}))),
			'notCovered',
		],
		['a head that went backwards', () => f.guest.setHead(f.guest.head - 1), 'invalid'],
		['a head far ahead', () => f.guest.setHead(f.guest.head + 2 ** 40), 'notCovered'],
	];
	for (const [name, act, counter] of cases) {
		f.publish();
		const before = f.fast.stats()[counter];
		act();
		await f.kick();
		t.equal(f.fast.stats()[counter], before + 1, `${name}: counted as ${counter}`);
		t.same(cpusOf(b), [0, 1], `${name}: nothing pinned`);
		t.match(f.fast.take(false), {valid: false, applied: []}, `${name}: nothing applied, the table ended`);
	}
	// Records that change nothing come along with a pin: still covered.
	f.publish();
	f.guest.append({tid: 90, kind: AffinityKind.exit, mask: maskOf()}, {tid: 91, mask: maskOf(1)}, {tid: 92, mask: maskOf(0, 1)});
	await f.kick();
	t.same(cpusOf(b), [1], 'exits and wide masks of threads without hints do not stop a pin');
	t.match(f.take(), [{seq: f.guest.head - 2, tid: 91}], "the pin's record is the one reported");
});

t.test('a table pvrun got wrong is refused whole, and the old one is gone', async (t) => {
	const f = await setUp(t);
	const good = f.publish().bytes;
	const bad = (mutate: (b: Buffer) => void): Buffer => {
		const b = Buffer.from(good);
		mutate(b);
		return b;
	};
	const firstOp = 64 + 64; // struct pvf_table_hdr, no hinted threads, struct pvf_entry_hdr
	t.throws(() => f.fast.publish(new Uint8Array(8)), /refused a table/, 'too short');
	t.throws(() => f.fast.publish(bad((b) => b.writeUInt32LE(0, 0))), /refused/, 'bad magic');
	t.throws(() => f.fast.publish(bad((b) => b.writeUInt32LE(65, 8))), /refused/, 'too many vCPUs');
	t.throws(() => f.fast.publish(bad((b) => b.writeInt32LE(-5, firstOp + 8))), /refused/, 'an operation naming a CPU below 0');
	t.throws(() => f.fast.publish(bad((b) => b.writeInt32LE(0, firstOp))), /refused/, 'an operation on thread 0');
	t.throws(() => f.fast.publish(bad((b) => b.writeInt32LE(20, firstOp + 12))), /refused/, 'a nice value above 19');
	t.throws(() => f.fast.publish(bad((b) => b.writeUInt32LE(4, firstOp + 16))), /refused/, 'an expectation of no known kind');
	t.throws(() => f.fast.publish(bad((b) => b.writeUInt32LE(1, firstOp + 16) && b.writeInt32LE(256, firstOp + 20))), /refused/, 'expecting a CPU past 255');
	t.throws(() => f.fast.publish(bad((b) => b.writeUInt32LE(Group.leave, firstOp + Op.group))), /refused/, 'a float group op without a float group');
	t.throws(() => f.fast.publish(bad((b) => b.writeUInt32LE(Group.float + 1, firstOp + Op.group))), /refused/, 'a float group op of no known kind');
	t.throws(() => f.fast.publish(Buffer.concat([good, Buffer.alloc(4)])), /refused/, 'trailing bytes');
	// With a float group, its ops are checked too (the first op sets one CPU).
	const group = cpusetMount() ? standInGroup(t, f.tids.get(0) ?? 0, [], [0, 1]) : 'no cpuset hierarchy';
	if (typeof group !== 'string') {
		f.fast.group(group.paths());
		t.doesNotThrow(() => f.fast.publish(bad((b) => b.writeUInt32LE(Group.leave, firstOp + Op.group))), 'a leave that sets one CPU');
		t.throws(() => f.fast.publish(bad((b) => b.writeUInt32LE(Group.join, firstOp + Op.group))), /refused/, 'a join must take the floating set');
		t.throws(() => f.fast.publish(bad((b) => b.writeUInt32LE(Group.float, firstOp + Op.group))), /refused/, "the floating set's write names no thread");
		f.fast.group(undefined);
	} else t.comment(`float group ops not checked: ${group}`);
	f.guest.append({tid: 600, mask: maskOf(1)});
	await f.kick();
	t.match(f.fast.stats(), {applied: 0, noTable: 1}, 'after a refused table nothing is current');
	f.publish();
	f.guest.append({tid: 601, mask: maskOf(1)});
	await f.kick();
	t.equal(f.fast.publish(good), false, 'nor is a table published over changes pvrun has not taken: publish says so');
});

t.test("a thread placed by someone else since pvrun set it (an operator's taskset) is left alone and reported", async (t) => {
	const f = await setUp(t);
	const [a = 0, b = 0] = [f.tids.get(0), f.tids.get(1)];
	const table = f.publish();
	t.match(
		table.entries[1]?.ops.map((op) => op.from),
		[
			[0, 1],
			[0, 1],
		],
		'each op of the pin expects the floating set pvrun set',
	);
	setThreadAffinity(b, [0]); // the operator, between two looks of pvrun's
	f.guest.append({tid: 702, mask: maskOf(1)});
	await f.kick();
	const [applied] = f.take();
	t.match(applied, {failedOps: 0n, movedOps: 2n}, "vCPU 1's op (the second) left its thread alone, and is no failure");
	t.same(cpusOf(b), [0], "the operator's CPUs stay");
	t.same(cpusOf(a), [0], 'vCPU 0 moved off CPU 1 as planned');
	t.equal(f.fast.stats().moved, 1, 'counted');
	t.equal(f.fast.take(false).valid, false, 'and the table ends there: pvrun decides next');
	t.match(
		f.pinner.plan(f.state()).map((op) => [op.vcpu, op.cpus, op.from]),
		[[1, [1], [0, 1]]],
		'pvrun still has what it set last for vCPU 1 (its look at operators then holds it)',
	);
});

t.test('a vanished thread is reported per operation, the rest is applied', async (t) => {
	const f = await setUp(t);
	f.publish();
	const a = f.tids.get(0) ?? 0;
	process.kill(a, 'SIGKILL');
	await new Promise((r) => setTimeout(r, 200));
	f.guest.append({tid: 700, mask: maskOf(1)});
	await f.kick();
	const [applied] = f.fast.take(false).applied;
	t.ok(applied && applied.failedOps !== 0n, 'the failed operation is flagged');
	t.equal(applied?.errno, 3, 'ESRCH');
	const b = f.tids.get(1) ?? 0;
	t.same(cpusOf(b), [1], 'the live thread was pinned all the same');
});

t.test("a thread that is not QEMU's is left alone: an exited vCPU thread's id may be another process's", async (t) => {
	const qemu = sleeper(t); // the VM's process; the stand-in vCPU threads are not its
	const f = await setUp(t, qemu.pid ?? 0);
	const [a = 0, b = 0] = [f.tids.get(0), f.tids.get(1)];
	f.publish();
	f.guest.append({tid: 701, mask: maskOf(1)});
	await f.kick();
	const [applied] = f.fast.take(false).applied;
	t.equal(applied?.failedOps, 3n, 'both operations refused');
	t.equal(applied?.errno, 3, 'as ESRCH: the thread is gone as far as the VM goes');
	t.same(cpusOf(a), [0, 1], 'the foreign thread kept its CPUs');
	t.same(cpusOf(b), [0, 1], 'both of them');
	t.throws(() => FastPath.start(f.shm.path, '/nonexistent', -1, () => {}), /invalid process id -1/);
});

t.test('stop ends the thread', async (t) => {
	const f = await setUp(t);
	const named = () => fs.readdirSync('/proc/self/task').filter((tid) => fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'pvrun-fast').length;
	t.ok(named() >= 1, 'a thread named pvrun-fast runs');
	const before = named();
	f.fast.stop();
	t.equal(named(), before - 1, 'and is gone after stop()');
	t.doesNotThrow(() => f.fast.stop(), 'stop is idempotent');
	t.match(f.fast.take(true), {valid: false, applied: []}, 'a stopped fast path reports nothing');
});

/** CPU time (ns) of this process's thread named `name` (utime + stime, clock ticks). */
function threadCpuNs(name: string): number {
	for (const tid of fs.readdirSync('/proc/self/task')) {
		if (fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() !== name) continue;
		const f = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
		const after = f.slice(f.lastIndexOf(')') + 2).split(' ');
		return (Number(after[14 - 3]) + Number(after[15 - 3])) * 1e7;
	}
	return 0;
}

t.test("a kick flood is acted on at most once per empty kick's cost after a burst, and a kick after it still works", async (t) => {
	const f = await setUp(t);
	const b = guestBudget();
	f.fast.budget(b);
	const kicksBefore = f.fast.stats().kicks;
	const wakesBefore = f.wakes();
	const cpuBefore = threadCpuNs('pvrun-fast');
	// A guest writing zeros into its kick port as fast as it can, for 1.5 s.
	const zeros = Buffer.alloc(4096);
	const started = performance.now();
	let sent = 0;
	while (performance.now() - started < 1500) {
		if (!f.socket.write(zeros)) await new Promise((resolve) => f.socket.once('drain', resolve));
		sent += zeros.length;
		if (sent % (64 * 4096) === 0) await new Promise((resolve) => setImmediate(resolve));
	}
	const seconds = (performance.now() - started) / 1000;
	await sleep(50);
	const kicks = f.fast.stats().kicks - kicksBefore;
	const wakes = f.wakes() - wakesBefore;
	const cpu = (threadCpuNs('pvrun-fast') - cpuBefore) / 1e9 / seconds;
	t.ok(sent > 1e6, `the flood sent ${sent} bytes`);
	t.ok(kicks <= (b.burstMs + seconds * 1000) / b.emptyKickMs + 20, `acted on ${kicks} kicks in ${seconds.toFixed(2)} s`);
	t.ok(wakes <= kicks + 1, `woke the JavaScript side ${wakes} times`);
	t.ok(cpu < 0.2, `the native thread used ${Math.round(cpu * 100)} % of a CPU`);
	t.ok(f.fast.stats().creditWaits > 0, `the kicks waited for credit (${f.fast.stats().creditWaits} times)`);
	// After the flood a hint is applied as before.
	f.publish();
	f.guest.append({tid: 4242, tgid: 4240, kind: AffinityKind.set, mask: maskOf(1)});
	await f.kick();
	t.equal(f.take().length, 1, 'a hint after the flood is applied');
});

t.test('past the CPU allowance (pvrun over its share) a kick waits for the next, then is acted on', async (t) => {
	const f = await setUp(t);
	f.publish();
	const waitsBefore = f.fast.stats().creditWaits;
	f.fast.allow(0);
	const started = performance.now();
	setTimeout(() => f.fast.allow(1000), 300);
	f.guest.append({tid: 4242, tgid: 4240, kind: AffinityKind.set, mask: maskOf(1)});
	await f.kick();
	const waited = performance.now() - started;
	t.ok(waited >= 295, `the kick was acted on once allowed, ${waited.toFixed(0)} ms later`);
	t.equal(f.fast.stats().creditWaits, waitsBefore + 1, 'and counted as a wait');
	t.equal(f.take().length, 1, 'the hint was applied');
	const again = performance.now();
	f.guest.append({tid: 4242, tgid: 4240, kind: AffinityKind.exit, mask: maskOf()});
	await f.kick();
	t.ok(performance.now() - again < 300, 'within the allowance, a kick is acted on at once');
});
