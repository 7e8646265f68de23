// The pinner on real threads (two `sleep` processes stand in for vCPU threads):
// affinity follows the assignment, and in shared mode the floating vCPU runs at
// its own nice value plus the policy's offset, back to its own value after.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import t, {type Test} from 'tap';
import {ownCpus, threadCpusAllowed} from '../../src/host/cpus.js';
import {setThreadAffinity, threadInProcess} from '../../src/host/libc.js';
import {procStatFields} from '../../src/host/proc.js';
import {Pinner} from '../../src/pin/pinner.js';
import {decideAffinity, floatingOnly, sharedFloatNice, type Hint} from '../../src/hints/affinity/policy.js';
import {standIn} from '../helpers/fast.js';

function sleeper(t: Pick<Test, 'teardown'>, nice = 0): number {
	const child = spawn('nice', ['-n', String(nice), 'sleep', '30'], {stdio: 'ignore'});
	t.teardown(() => {
		child.kill('SIGKILL');
	});
	if (child.pid === undefined) throw new Error('could not spawn sleep');
	return child.pid;
}

const statNice = (pid: number) => Number(procStatFields(pid)?.[19]);

/** Three `sleep` processes as vCPUs 0-2 (vCPU 1 started at nice `nice1`), and a pinner over them. */
async function threeVcpus(t: Pick<Test, 'teardown'>, nice1 = 0): Promise<{pinner: Pinner; tids: number[]}> {
	const tids = [sleeper(t), sleeper(t, nice1), sleeper(t)];
	await new Promise((r) => setTimeout(r, 100)); // `nice` has exec'd `sleep`
	return {pinner: new Pinner(new Map(tids.map((tid, v) => [v, tid])), process.pid, false, standIn), tids};
}
/** The CPUs this process may use, before any test moves its threads. */
const startCpus = ownCpus();
const hint = (tid: number, vcpus: number[]): Hint => ({tid, tgid: tid, comm: 'w', vcpus, seq: tid});

t.test(
	'shared mode lowers the floating vCPU thread relative to its own nice value, and undoes it',
	{skip: ownCpus().length < 2 && 'needs two CPUs'},
	async (t) => {
		const cpus = ownCpus().slice(0, 2);
		const vcpu0 = sleeper(t);
		const vcpu1 = sleeper(t, 3); // the user started this one niced: pvrun keeps that as its base
		await new Promise((r) => setTimeout(r, 100)); // `nice` has exec'd `sleep`
		const pinner = new Pinner(
			new Map([
				[0, vcpu0],
				[1, vcpu1],
			]),
			process.pid,
			false,
			standIn,
		);
		// Two vCPUs, one asks, two CPUs: vCPU 0 alone on a CPU, vCPU 1 on the other.
		const exclusive = decideAffinity([hint(10, [0])], 2, cpus, floatingOnly(cpus));
		t.equal(exclusive.shared, false);
		t.same([...pinner.apply(exclusive).changed.keys()], [0, 1]);
		t.same(threadCpusAllowed(vcpu0, vcpu0).length, 1);
		t.equal(statNice(vcpu1), 3, 'no change of weight outside shared mode');

		// Three vCPUs (a third thread joins), two ask: shared mode, vCPU 2 floats at +5.
		const vcpu2 = sleeper(t);
		await new Promise((r) => setTimeout(r, 100));
		pinner.setThreads(
			new Map([
				[0, vcpu0],
				[1, vcpu1],
				[2, vcpu2],
			]),
		);
		const shared = decideAffinity([hint(10, [0]), hint(11, [1])], 3, cpus, exclusive);
		t.equal(shared.shared, true);
		t.same(pinner.apply(shared).errors, []);
		t.equal(statNice(vcpu2), sharedFloatNice, 'the floating vCPU runs at +5');
		t.equal(statNice(vcpu1), 3, 'a granted vCPU keeps its own value');
		t.same(threadCpusAllowed(vcpu2, vcpu2), cpus, 'and floats on every CPU');

		// vCPU 1's hint goes away: exclusive mode again, and vCPU 2 returns to its own value.
		const back = decideAffinity([hint(10, [0])], 3, cpus, shared);
		const result = pinner.apply(back);
		if (process.getuid?.() === 0) {
			t.same(result.errors, []);
			t.equal(statNice(vcpu2), 0, 'back to its own value');
		} else t.match(result.errors, [/EACCES|EPERM/], 'without privileges the weight cannot come back: reported');
		t.equal(statNice(vcpu1), 3);
	},
);

t.test(
	"pvrun's own threads leave the exclusive CPUs: the main thread on the first floating CPU, the others on all",
	{skip: ownCpus().length < 2 && 'needs two CPUs'},
	async (t) => {
		const cpus = ownCpus().slice(0, 2);
		const everyThread = () => fs.readdirSync('/proc/self/task').map(Number);
		t.teardown(() => {
			for (const tid of everyThread()) setThreadAffinity(tid === process.pid ? 0 : tid, ownCpus());
		});
		const qemu = sleeper(t);
		const pinner = new Pinner(new Map([[0, qemu]]), qemu, true);
		// vCPU 0 (the sleep process) has a CPU to itself; everything else floats on the other.
		const exclusive = decideAffinity([hint(10, [0])], 2, cpus, floatingOnly(cpus));
		t.same(pinner.apply(exclusive).errors, []);
		t.same(pinner.applyOthers(exclusive), []);
		const granted = exclusive.exclusive.get(0)?.pcpu;
		t.ok(everyThread().length > 1, 'this process has helper threads (V8, libuv)');
		for (const tid of everyThread()) {
			const allowed = threadCpusAllowed(process.pid, tid);
			t.notOk(allowed.includes(granted ?? -1), `thread ${tid} is off the granted CPU ${granted} (${allowed.join(',')})`);
			if (tid === process.pid) t.same(allowed, exclusive.floating.slice(0, 1), 'the main thread: the first floating CPU');
			else t.same(allowed, exclusive.floating, `helper ${tid}: every floating CPU`);
		}
	},
);

t.test('plan says what apply would do without doing it; adopt records what another applied', {skip: startCpus.length < 2 && 'needs two CPUs'}, async (t) => {
	const cpus = startCpus.slice(0, 2);
	const {pinner, tids} = await threeVcpus(t, 2);
	const [vcpu0 = 0] = tids;
	const start = floatingOnly(cpus);
	t.same(pinner.apply(start).errors, []);
	t.same(pinner.plan(start), [], 'nothing to do for the state applied');
	const one = decideAffinity([hint(10, [0])], 3, cpus, start);
	const ops = pinner.plan(one);
	t.same(
		ops.map((o) => [o.vcpu, o.cpus]),
		[
			[0, [cpus[1]]],
			[1, [cpus[0]]],
			[2, [cpus[0]]],
		],
		'every vCPU moves: 0 to its own CPU, the others off it',
	);
	t.same(threadCpusAllowed(vcpu0, vcpu0), cpus, 'planning changed nothing');
	// Two ask, three vCPUs: shared mode, the floating one at its own nice + 5 (planned from its base).
	const two = decideAffinity([hint(10, [0]), hint(11, [1])], 3, cpus, one);
	const after = pinner.plan(two, ops);
	t.match(
		after.find((o) => o.vcpu === 2),
		{nice: sharedFloatNice, niceOffset: sharedFloatNice},
		'planned as if the first ops were applied',
	);
	t.notOk(
		after.some((o) => o.vcpu === 0),
		'vCPU 0 keeps its CPU',
	);
	// Someone else (the fast path) applies the first plan: adopt it, except a failed op.
	for (const op of ops) if (op.cpus && op.vcpu !== 2) setThreadAffinity(op.tid, op.cpus);
	pinner.adopt(ops, (i) => ops[i]?.vcpu === 2);
	t.same(
		pinner.plan(one).map((o) => o.vcpu),
		[2],
		'only the failed op is still to do',
	);
	t.same([...pinner.apply(one).changed.keys()], [2], 'and apply does just that');
});

t.test(
	"QEMU's other threads leave a new grant at once, and get a released one back only when the timer says",
	{skip: startCpus.length < 2 && 'needs two CPUs'},
	async (t) => {
		const cpus = startCpus.slice(0, 2);
		const [vcpu0, vcpu1, qemu] = [sleeper(t), sleeper(t), sleeper(t)];
		const pinner = new Pinner(
			new Map([
				[0, vcpu0],
				[1, vcpu1],
			]),
			qemu,
		);
		const granted = decideAffinity([hint(10, [1])], 2, cpus, floatingOnly(cpus));
		const released = decideAffinity([], 2, cpus, granted);
		t.same(pinner.applyOthers(floatingOnly(cpus)), []);
		t.same(threadCpusAllowed(qemu, qemu), cpus, 'at first every CPU');
		pinner.applyOthers(granted);
		t.same(threadCpusAllowed(qemu, qemu), granted.floating, 'a grant: off its CPU at once');
		pinner.applyOthers(released);
		t.same(threadCpusAllowed(qemu, qemu), granted.floating, 'released: still off it (the guest may pin again at once)');
		pinner.applyOthers(released, true);
		t.same(threadCpusAllowed(qemu, qemu), cpus, "the engine's timer widens");
		pinner.applyOthers(granted);
		t.same(threadCpusAllowed(qemu, qemu), granted.floating, 'and a new grant narrows at once again');
	},
);

t.test(
	"a vCPU thread placed by someone else since pvrun set it (an operator's taskset) is left alone, and said",
	{skip: startCpus.length < 2 && 'needs two CPUs'},
	async (t) => {
		const cpus = startCpus.slice(0, 2);
		const [vcpu0, vcpu1] = [sleeper(t), sleeper(t)];
		const pinner = new Pinner(
			new Map([
				[0, vcpu0],
				[1, vcpu1],
			]),
			process.pid,
			false,
			standIn,
		);
		const start = floatingOnly(cpus);
		t.same(pinner.apply(start), {
			changed: new Map([
				[0, cpus],
				[1, cpus],
			]),
			moved: [],
			errors: [],
		});
		const operators = [cpus[0] ?? 0];
		setThreadAffinity(vcpu1, operators);
		const granted = decideAffinity([hint(10, [1])], 2, cpus, start);
		t.same(pinner.plan(granted).find((op) => op.vcpu === 1)?.from, cpus, 'the plan says what vCPU 1 must still have');
		const result = pinner.apply(granted);
		t.same(result.moved, [1], 'vCPU 1 is reported, not pinned');
		t.same([...result.changed.keys()], [0], 'vCPU 0 is placed as planned');
		t.same(threadCpusAllowed(vcpu1, vcpu1), operators, "the operator's CPUs stay");
		t.same(pinner.appliedCpus(vcpu1), cpus, 'pvrun still has what it set last (its look at operators holds the vCPU)');
		t.same(pinner.apply(start).moved, [], 'a set pvrun would not change is not looked at');
		setThreadAffinity(vcpu1, cpus);
		t.same([...pinner.apply(granted).changed.keys()].sort(), [0, 1], 'back to what pvrun set: placed again');
	},
);

t.test("a vCPU thread id that is no longer QEMU's is left alone (thread ids are reused)", {skip: startCpus.length < 2 && 'needs two CPUs'}, async (t) => {
	const cpus = startCpus.slice(0, 2);
	const [qemu, other] = [sleeper(t), sleeper(t)];
	t.equal(threadInProcess(qemu, qemu), true, "QEMU's own thread is QEMU's");
	t.equal(threadInProcess(qemu, other), false, "another process's thread is not");
	t.equal(threadInProcess(process.pid, process.pid), true);
	// The id pvrun has for vCPU 1 now names another process's thread: pvrun's real check.
	setThreadAffinity(other, cpus); // not what it inherited from this process, which earlier tests moved
	const pinner = new Pinner(
		new Map([
			[0, qemu],
			[1, other],
		]),
		qemu,
	);
	const granted = decideAffinity([hint(10, [1])], 2, cpus, floatingOnly(cpus));
	const result = pinner.apply(granted);
	t.same([...result.changed.keys()], [0], "only the thread that is still QEMU's changed");
	t.match(result.errors, [/thread \d+ is no longer one of process \d+'s: ESRCH/]);
	t.same(threadCpusAllowed(other, other), cpus, 'the other process kept its CPUs');
	t.equal(statNice(other), 0, 'and its weight');
});

const statPolicy = (pid: number) => Number(procStatFields(pid)?.[41]);

t.test(
	'priority grants: the granted thread alone is pinned and put in SCHED_FIFO; release, hold and the end lower it',
	{skip: (startCpus.length < 2 && 'needs two CPUs') || (process.getuid?.() !== 0 && 'SCHED_FIFO needs root')},
	async (t) => {
		const cpus = startCpus.slice(0, 2);
		const {pinner, tids} = await threeVcpus(t);
		const [vcpu0 = 0, vcpu1 = 0, vcpu2 = 0] = tids;
		pinner.usePriority();
		const start = floatingOnly(cpus);
		t.same(pinner.apply(start).errors, []);
		const one = decideAffinity([hint(10, [1])], 3, cpus, start);
		const pcpu = one.exclusive.get(1)?.pcpu ?? -1;
		t.same(pinner.floatingCpus(one), cpus, 'the floating vCPU threads keep every CPU, the granted one too');
		t.same(
			pinner.plan(one).map((o) => [o.vcpu, o.cpus, o.sched]),
			[[1, [pcpu], 'fifo']],
			'the plan touches the granted thread alone',
		);
		const result = pinner.apply(one);
		t.same([...result.changed.keys()], [1], 'and so does apply');
		t.same(result.errors, []);
		t.same(threadCpusAllowed(vcpu1, vcpu1), [pcpu], 'vCPU 1 on its CPU');
		t.equal(statPolicy(vcpu1), 1, 'in SCHED_FIFO');
		t.same(threadCpusAllowed(vcpu0, vcpu0), cpus, 'vCPU 0 still floats on every CPU');
		t.same([statPolicy(vcpu0), statPolicy(vcpu2)], [0, 0], 'the floating threads stay SCHED_OTHER');

		// The release: SCHED_OTHER, then every CPU again.
		const none = decideAffinity([], 3, cpus, one);
		t.same(
			pinner.plan(none).map((o) => [o.vcpu, o.cpus, o.sched]),
			[[1, cpus, 'normal']],
			'a release is one op too',
		);
		t.same(pinner.apply(none).errors, []);
		t.equal(statPolicy(vcpu1), 0, 'released: SCHED_OTHER');
		t.same(threadCpusAllowed(vcpu1, vcpu1), cpus);

		// Crowded (every CPU granted, a vCPU left to float): the grants share, so none is raised.
		const crowded = decideAffinity([hint(10, [0]), hint(11, [1])], 3, cpus, none);
		t.ok(crowded.floatNice > 0, 'crowded');
		t.same(pinner.apply(crowded).errors, []);
		t.same([statPolicy(vcpu0), statPolicy(vcpu1)], [0, 0], 'crowded grants stay SCHED_OTHER');
		t.equal(statNice(vcpu2), sharedFloatNice, 'and the floating thread shares them at the lower weight');
		t.same(pinner.apply(none).errors, []);

		// An operator takes the granted vCPU: pvrun lets go of its class too.
		t.same(pinner.apply(one).errors, []);
		t.equal(statPolicy(vcpu1), 1);
		t.same(pinner.hold(1), []);
		t.equal(statPolicy(vcpu1), 0, 'held: SCHED_OTHER');
		pinner.release(1);

		// The VM ends (or its threads change) with a grant: lowered.
		t.same(pinner.apply(one).errors, []);
		t.equal(statPolicy(vcpu1), 1);
		t.same(pinner.lowerAll(), []);
		t.equal(statPolicy(vcpu1), 0, 'lowerAll: SCHED_OTHER');
	},
);

t.test('threads touched by a grant and its release, by vCPU count: all of them one by one, the granted one by priority', async (t) => {
	const cpus = [0, 1];
	for (const n of [2, 16, 64, 256]) {
		const counts: Record<string, number[]> = {};
		for (const mode of ['threads', 'priority'] as const) {
			// Thread ids that are no process's: plan and adopt make no system call here.
			const pinner = new Pinner(new Map(Array.from({length: n}, (_, v) => [v, 1_000_000 + v])), process.pid, false, () => true);
			if (mode === 'priority') pinner.usePriority();
			const start = floatingOnly(cpus);
			pinner.adopt(pinner.plan(start), () => false);
			const grant = decideAffinity([hint(10, [n - 1])], n, cpus, start);
			const ops = pinner.plan(grant);
			const back = pinner.plan(start, ops);
			counts[mode] = [ops.length, back.length];
		}
		t.same(counts['threads'], [n, n], `${n} vCPUs one by one: every thread, both ways`);
		t.same(counts['priority'], [1, 1], `${n} vCPUs by priority: one thread, both ways`);
	}
});
