import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, {type Test} from 'tap';
import {LeaseTable} from '../../../src/host/leases.js';
import {VmLeases, leaseLingerMs} from '../../../src/hints/affinity/leasing.js';
import {decideAffinity, floatingOnly, sharedFloatNice, type Assignment, type Hint} from '../../../src/hints/affinity/policy.js';
import {readLeases} from '../../../src/host/leases.js';

/** One VM's side: its leases, its hints, its assignment, deciding as the engine does. */
class Vm {
	hints: Hint[] = [];
	assignment: Assignment;
	readonly leases: VmLeases;
	constructor(
		dir: string,
		pid: number,
		readonly nrVcpus: number,
		allowed: number[],
		share = 1,
		taken: number[] = [],
	) {
		this.leases = new VmLeases(LeaseTable.open(dir, {pid, qemuPid: 0, share, cpus: allowed}), allowed, share, () => new Set(taken));
		this.leases.refresh();
		this.assignment = floatingOnly(this.leases.placeable);
	}
	pin(tid: number, vcpu: number): this {
		this.hints = [...this.hints.filter((h) => h.tid !== tid), {tid, tgid: tid, comm: 'w', vcpus: [vcpu], seq: tid}];
		return this.decide();
	}
	unpin(tid: number): this {
		this.hints = this.hints.filter((h) => h.tid !== tid);
		return this.decide();
	}
	/** What the engine does on a file event: look again, decide. */
	look(now?: number): this {
		this.leases.refresh();
		return this.decide(now);
	}
	decide(now = performance.now()): this {
		const a = this.leases.decide((placeable, floatOnly, crowded) =>
			decideAffinity(this.hints, this.nrVcpus, placeable, this.assignment, new Set(), undefined, floatOnly, undefined, crowded),
		);
		if (a) this.assignment = a;
		this.leases.settle(this.assignment, now);
		return this;
	}
	get grants(): Array<[number, number]> {
		return [...this.assignment.exclusive].map(([v, e]) => [v, e.pcpu]);
	}
}

const dirFor = (t: Test): string => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-leasing-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	return path.join(dir, 'leases');
};

t.test('alone on the host: the policy decides as without leases, and every grant is leased', async (t) => {
	const dir = dirFor(t);
	const a = new Vm(dir, 2001, 4, [0, 1]);
	t.teardown(() => a.leases.close());
	a.pin(10, 0).pin(11, 2);
	t.same(a.grants, [
		[0, 1],
		[2, 0],
	]);
	t.equal(a.assignment.shared, true, 'crowded: both CPUs granted, shared, as without leases');
	t.same([...a.leases.held()], [0, 1]);
});

t.test('two VMs on two CPUs: one asks, its CPU is its own; both ask, both lease one shared, the floating vCPUs at the lower weight', async (t) => {
	const dir = dirFor(t);
	const a = new Vm(dir, 2101, 2, [0, 1]);
	const b = new Vm(dir, 2102, 2, [0, 1]);
	t.teardown(() => (a.leases.close(), b.leases.close()));
	a.pin(10, 1);
	t.same(a.grants, [[1, 1]], 'A’s vCPU 1 gets CPU 1');
	t.same([a.assignment.floating, a.assignment.shared, a.leases.crowdedHost], [[0], false, false], 'to itself: one asker, a CPU to spare');
	b.look().pin(20, 0);
	t.same(b.grants, [[0, 0]], 'B asks too: more asking than CPUs to spare, so B leases CPU 0 shared');
	t.equal(b.leases.crowdedHost, true);
	t.same([b.assignment.floating, b.assignment.floatNice], [[0], sharedFloatNice], 'B floats off A’s CPU (still A’s alone), at the lower weight');
	a.look();
	t.same(a.grants, [[1, 1]], 'A keeps CPU 1...');
	t.same(
		[a.assignment.shared, a.assignment.floating, a.assignment.floatNice],
		[true, [0, 1], sharedFloatNice],
		'...shared now: its floating vCPU runs on both CPUs at the lower weight',
	);
	b.look();
	t.same([b.assignment.floating, b.assignment.floatNice], [[0, 1], sharedFloatNice], 'and B’s on both too');
	t.same(
		readLeases(dir).leases.map((l) => [l.cpu, l.pid, l.shared]),
		[
			[0, 2102, true],
			[1, 2101, true],
		],
		'two shared leases',
	);
	t.equal(a.leases.table.waiting, undefined);
	t.equal(b.leases.table.waiting, undefined, 'nobody waits');
	// A lets go: B alone asks, so its CPU is its own again, and it floats off A's lingering lease.
	a.unpin(10);
	b.look();
	t.equal(b.leases.crowdedHost, false);
	t.same(b.grants, [[0, 0]]);
	t.same([b.assignment.shared, b.assignment.floatNice], [false, 0], 'B’s grant exclusive again, its floating vCPU at the usual weight');
	t.equal(readLeases(dir).leases.find((l) => l.cpu === 0)?.shared, undefined, 'its lease rewritten exclusive');
});

t.test('three VMs on two CPUs, all asking: two shared leases, the third waits and gets the first CPU freed', async (t) => {
	const dir = dirFor(t);
	const [a, b, c] = [2501, 2502, 2503].map((pid) => new Vm(dir, pid, 2, [0, 1]));
	if (!a || !b || !c) throw new Error('three VMs');
	t.teardown(() => [a, b, c].forEach((vm) => vm.leases.close()));
	a.pin(10, 1);
	b.look().pin(20, 1);
	a.look();
	c.look().pin(30, 1);
	t.same([a.grants, b.grants, c.grants], [[[1, 1]], [[1, 0]], []], 'A and B lease one each, C none');
	t.ok(c.leases.table.waiting !== undefined, 'C waits');
	t.same([c.assignment.floating, c.assignment.floatNice], [[0, 1], sharedFloatNice], 'on the shared CPUs, at the lower weight');
	a.look().unpin(10);
	t.same([...a.leases.held()], [], 'A gives CPU 1 back at once: C waits');
	c.look();
	t.same(c.grants, [[1, 1]], 'C leases it');
	const all = [a, b, c].flatMap((vm) => [...vm.leases.held()]);
	t.equal(new Set(all).size, all.length, 'no CPU leased twice');
});

t.test('a lease outlives its grant for a while when nobody waits, and the same vCPU takes it back without the lock', async (t) => {
	const dir = dirFor(t);
	const a = new Vm(dir, 2201, 2, [0, 1]);
	t.teardown(() => a.leases.close());
	const t0 = performance.now();
	a.pin(10, 1).unpin(10);
	t.same([...a.leases.held()], [1], 'kept after the grant ended');
	t.ok(a.leases.lingers);
	a.decide(t0 + leaseLingerMs + 1);
	t.same([...a.leases.held()], [], 'given back after leaseLingerMs');
});

t.test('three VMs on four CPUs: no exclusive lease leaves another VM nowhere to float; asking more than the host spares, all share', async (t) => {
	const dir = dirFor(t);
	const a = new Vm(dir, 2301, 4, [0, 1, 2, 3]);
	const b = new Vm(dir, 2302, 4, [0, 1, 2, 3]);
	const c = new Vm(dir, 2303, 2, [2, 3]);
	t.teardown(() => (a.leases.close(), b.leases.close(), c.leases.close()));
	a.pin(10, 0).pin(11, 1);
	t.same(
		a.grants,
		[
			[0, 3],
			[1, 1],
		],
		'A takes 3, and 1 rather than 2: C may use only 2 and 3',
	);
	t.same(a.assignment.floating, [0, 2]);
	c.look().pin(30, 0);
	t.same(c.grants, [], 'C gets none: its last unleased CPU stays so');
	t.same(c.assignment.floating, [2]);
	t.ok(c.leases.table.waiting !== undefined, 'C waits');
	b.look().pin(20, 0);
	t.same(b.grants, [[0, 0]], 'B takes 0, leaving 2 to float on');
	t.same(b.assignment.floating, [0, 2], 'four asking, three CPUs to spare: B’s lease is shared, and it floats on it too');
	t.equal(b.leases.crowdedHost, true);
	a.look();
	t.same(
		[a.assignment.floating, a.assignment.floatNice],
		[[0, 1, 2, 3], sharedFloatNice],
		'A’s leases shared too: its floating vCPUs on every CPU, at the lower weight',
	);
	const all = [a, b, c].flatMap((vm) => [...vm.leases.held()]);
	t.equal(new Set(all).size, all.length, 'no CPU leased twice');
	t.notOk(all.includes(2), 'CPU 2 stays unleased');
	// A's grant on 3 ends; C waits for 3 and gets it, and CPU 2 is still nobody's.
	a.unpin(10);
	c.look();
	t.same(c.grants, [[0, 3]], 'C gets CPU 3 once A lets go of it');
	t.same([a, b, c].flatMap((vm) => [...vm.leases.held()]).sort(), [0, 1, 3]);
});

t.test('taken CPUs are never granted, but floated on', async (t) => {
	const dir = dirFor(t);
	const a = new Vm(dir, 2401, 2, [0, 1], 1, [1]);
	t.teardown(() => a.leases.close());
	a.pin(10, 1);
	t.same(a.grants, [[1, 0]], 'CPU 1 is pinned to by a plain QEMU: vCPU 1 gets CPU 0');
	t.same(a.assignment.floating, [1], 'the others float on CPU 1');
	t.same([...a.leases.held()], [0]);
});

t.test('alone, a grant the fast path made is leased when followed; if another VM was first, it is refused', async (t) => {
	const dir = dirFor(t);
	const a = new Vm(dir, 2601, 2, [0, 1]);
	t.teardown(() => a.leases.close());
	t.equal(a.leases.othersHere, false, 'alone in the directory: the table may grant unleased CPUs');
	const granted = decideAffinity([{tid: 10, tgid: 10, comm: 'w', vcpus: [1], seq: 10}], 2, [0, 1], a.assignment);
	t.equal(a.leases.lease(granted), true);
	t.same([...a.leases.held()], [1], 'CPU 1 leased');
	const b = new Vm(dir, 2602, 2, [0, 1]);
	t.teardown(() => b.leases.close());
	a.look();
	t.equal(a.leases.othersHere, true, 'another VM here: the table grants only leased CPUs');
	a.leases.settle(floatingOnly([0, 1]), performance.now() + 10_000);
	t.same([...a.leases.held()], [], 'given back');
	b.pin(20, 1);
	t.same(b.grants, [[1, 1]]);
	t.equal(a.leases.lease(granted), false, 'B holds CPU 1 now: the fast path’s grant cannot be leased');
});
