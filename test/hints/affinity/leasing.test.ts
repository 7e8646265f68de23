import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, {type Test} from 'tap';
import {LeaseTable} from '../../../src/host/leases.js';
import {VmLeases, leaseLingerMs} from '../../../src/hints/affinity/leasing.js';
import {decideAffinity, floatingOnly, type Assignment, type Hint} from '../../../src/hints/affinity/policy.js';

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
		const a = this.leases.decide((placeable, floatOnly) =>
			decideAffinity(this.hints, this.nrVcpus, placeable, this.assignment, new Set(), undefined, floatOnly),
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

t.test('two VMs on two CPUs: one lease between them, first come; a freed CPU goes to the one that waits', async (t) => {
	const dir = dirFor(t);
	const a = new Vm(dir, 2101, 2, [0, 1]);
	const b = new Vm(dir, 2102, 2, [0, 1]);
	t.teardown(() => (a.leases.close(), b.leases.close()));
	a.pin(10, 1);
	t.same(a.grants, [[1, 1]], 'A’s vCPU 1 gets CPU 1');
	t.same(a.assignment.floating, [0]);
	b.look().pin(20, 0);
	t.same(b.grants, [], 'B gets none: CPU 1 is A’s, CPU 0 is the last either may float on');
	t.same(b.assignment.floating, [0], 'B floats off A’s CPU');
	t.same(b.assignment.denied, [0]);
	t.ok(b.leases.table.waiting !== undefined, 'B waits');
	// A lets go: B waits, so A gives the lease back at once rather than keeping it for a while.
	a.look().unpin(10);
	t.same(a.grants, []);
	t.same([...a.leases.held()], [], 'A gave CPU 1 back at once');
	// A asks again before B looked: B waits since earlier, so A leaves CPU 1 to it.
	a.look().pin(10, 1);
	t.same(a.grants, [], 'A does not take the CPU B waits for');
	b.look();
	t.same(b.grants, [[0, 1]], 'B has it');
	t.equal(b.leases.table.waiting, undefined, 'B no longer waits');
	a.look();
	t.same(a.assignment.floating, [0], 'A floats off B’s CPU');
	t.ok(a.leases.table.waiting !== undefined, 'now A waits');
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

t.test('three VMs on four CPUs: no lease leaves another VM nowhere to float', async (t) => {
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
	t.same(b.assignment.floating, [2]);
	a.look();
	t.same(a.assignment.floating, [2], 'A floats off B’s new lease');
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
