import t from 'tap';
import {cpusFor, decideAffinity, floatingOnly, sharedFloatNice, type Hint} from '../../../src/hints/affinity/policy.js';

const hint = (tid: number, vcpus: number[], seq = tid): Hint => ({tid, tgid: tid, comm: 'w', vcpus, seq});

t.test('a thread pinned to one vCPU gets it a CPU of its own; the rest float', async (t) => {
	const a = decideAffinity([hint(10, [1])], 2, [0, 1], floatingOnly([0, 1]));
	t.same([...a.exclusive], [[1, {pcpu: 1, tid: 10, seq: 10, shared: false}]]);
	t.same(a.floating, [0]);
	t.same(cpusFor(a, 0), [0]);
	t.same(cpusFor(a, 1), [1]);
	t.same(a.denied, []);
});

t.test('masks of several vCPUs are no hint', async (t) => {
	const a = decideAffinity([hint(10, [0, 1]), hint(11, [0, 1, 2, 3])], 4, [0, 1], floatingOnly([0, 1]));
	t.equal(a.exclusive.size, 0);
	t.same(a.floating, [0, 1]);
});

t.test('one CPU stays for the floating vCPUs while that leaves a CPU for every asker', async (t) => {
	const a = decideAffinity([hint(12, [3]), hint(10, [0])], 4, [0, 1, 2], floatingOnly([0, 1, 2]));
	t.same([...a.exclusive.keys()], [0, 3]);
	t.same(a.exclusive.get(0)?.pcpu, 2, 'highest free CPU first');
	t.same(a.exclusive.get(3)?.pcpu, 1);
	t.same(a.floating, [0]);
	t.same({shared: a.shared, floatNice: a.floatNice, denied: a.denied}, {shared: false, floatNice: 0, denied: []});
});

t.test('shared mode: askers that need every CPU get them, the others float on all CPUs at a lower weight', async (t) => {
	const a = decideAffinity([hint(12, [3]), hint(10, [0]), hint(11, [2])], 4, [0, 1, 2], floatingOnly([0, 1, 2]));
	t.same(
		[...a.exclusive].map(([v, e]) => [v, e.pcpu]),
		[
			[0, 2],
			[2, 1],
			[3, 0],
		],
	);
	t.equal(a.shared, true);
	t.equal(a.floatNice, sharedFloatNice);
	t.same(a.floating, [0, 1, 2]);
	t.same(cpusFor(a, 1), [0, 1, 2], 'vCPU 1 floats everywhere');
	t.same(a.denied, []);
});

t.test('shared mode: askers beyond the number of CPUs are denied in index order', async (t) => {
	const a = decideAffinity([hint(14, [4]), hint(10, [0]), hint(13, [3]), hint(11, [1])], 6, [0, 1, 2], floatingOnly([0, 1, 2]));
	t.same([...a.exclusive.keys()], [0, 1, 3]);
	t.same(a.denied, [4]);
	t.equal(a.shared, true);
});

t.test('a granted vCPU that idles shares its CPU with the floating vCPUs; busy ones keep theirs', async (t) => {
	const cpus = [0, 1, 2, 3];
	const granted = decideAffinity([hint(10, [0]), hint(11, [1])], 6, cpus, floatingOnly(cpus));
	const a = decideAffinity([hint(10, [0]), hint(11, [1])], 6, cpus, granted, new Set([0]));
	t.same(
		[...a.exclusive].map(([v, e]) => [v, e.pcpu, e.shared]),
		[
			[0, 3, true],
			[1, 2, false],
		],
	);
	t.same(a.floating, [0, 1, 3], "the idle vCPU's CPU 3 floats too; CPU 2 stays vCPU 1's");
	t.equal(a.floatNice, 0, 'an idle grant needs no protection: the floating vCPUs keep their weight');
	const busyAgain = decideAffinity([hint(10, [0]), hint(11, [1])], 6, cpus, a);
	t.same(
		[...busyAgain.exclusive].map(([v, e]) => [v, e.pcpu, e.shared]),
		[
			[0, 3, false],
			[1, 2, false],
		],
		'same CPUs, exclusive again',
	);
	t.same({floating: busyAgain.floating, floatNice: busyAgain.floatNice}, {floating: [0, 1], floatNice: 0});
});

t.test("the idle judgement is the grant's: a new grant of the same vCPU starts with the CPU to itself", async (t) => {
	const cpus = [0, 1, 2, 3];
	const idle = new Set([0]);
	const first = decideAffinity([hint(10, [0])], 4, cpus, floatingOnly(cpus));
	t.equal(first.exclusive.get(0)?.shared, false, 'a first grant never starts shared, whatever the idle set says');
	t.equal(decideAffinity([hint(10, [0])], 4, cpus, first, idle).exclusive.get(0)?.shared, true, 'the grant goes on and idles: shared');
	const released = decideAffinity([], 4, cpus, first, idle);
	const again = decideAffinity([hint(20, [0], 20)], 4, cpus, released, idle);
	t.same(again.exclusive.get(0), {pcpu: 3, tid: 20, seq: 20, shared: false}, 'released, then another thread pins itself there: exclusive');
	t.same(again.floating, [0, 1, 2]);
	const otherThread = decideAffinity([hint(20, [0], 20)], 4, cpus, first, idle);
	t.equal(otherThread.exclusive.get(0)?.shared, false, 'a grant handed from one thread to another in one step is new too');
});

t.test('two CPUs, two pinned threads of four vCPUs (a ping-pong): shared mode', async (t) => {
	const a = decideAffinity([hint(10, [0]), hint(11, [1])], 4, [0, 1], floatingOnly([0, 1]));
	t.same(
		[...a.exclusive].map(([v, e]) => [v, e.pcpu]),
		[
			[0, 1],
			[1, 0],
		],
	);
	t.same({shared: a.shared, floating: a.floating}, {shared: true, floating: [0, 1]});
});

t.test('when every vCPU asks, every allowed CPU can be given', async (t) => {
	const a = decideAffinity([hint(10, [0]), hint(11, [1])], 2, [0, 1], floatingOnly([0, 1]));
	t.equal(a.exclusive.size, 2);
	t.same(a.floating, [0, 1], 'nothing floats: the floating set falls back to all allowed');
	t.not(a.exclusive.get(0)?.pcpu, a.exclusive.get(1)?.pcpu);
});

t.test('placements are stable across decisions', async (t) => {
	const first = decideAffinity([hint(10, [2])], 4, [0, 1, 2, 3], floatingOnly([0, 1, 2, 3]));
	t.equal(first.exclusive.get(2)?.pcpu, 3);
	const second = decideAffinity([hint(10, [2]), hint(11, [1])], 4, [0, 1, 2, 3], first);
	t.equal(second.exclusive.get(2)?.pcpu, 3, 'vCPU 2 keeps CPU 3');
	t.equal(second.exclusive.get(1)?.pcpu, 2);
});

t.test('oldest hint for a vCPU wins; out-of-range vCPUs are ignored; only allowed CPUs are used', async (t) => {
	const a = decideAffinity([hint(20, [1], 5), hint(21, [1], 3), hint(22, [9])], 2, [4, 6], floatingOnly([4, 6]));
	t.equal(a.exclusive.get(1)?.tid, 21);
	t.equal(a.exclusive.size, 1);
	for (const v of [0, 1]) for (const c of cpusFor(a, v)) t.ok([4, 6].includes(c), `vCPU ${v} on allowed CPU ${c}`);
});

t.test('a single allowed CPU cannot be given away', async (t) => {
	const a = decideAffinity([hint(10, [1])], 2, [0], floatingOnly([0]));
	t.equal(a.exclusive.size, 0);
	t.same(a.denied, [1]);
	t.same(a.floating, [0]);
});

t.test('randomized: never outside the allowed set, never two vCPUs on one exclusive CPU', async (t) => {
	let seed = 0x9e3779b9;
	const rand = (n: number) => {
		seed ^= seed << 13;
		seed ^= seed >>> 17;
		seed ^= seed << 5;
		return (seed >>> 0) % n;
	};
	let prev = floatingOnly([0, 1]);
	const broken: string[] = [];
	for (let i = 0; i < 500; i++) {
		const nr = 1 + rand(8);
		const allowed = [...new Set(Array.from({length: 1 + rand(4)}, () => rand(8)))];
		const hints = Array.from({length: rand(6)}, (_, k) =>
			hint(
				1 + k,
				Array.from({length: 1 + rand(2)}, () => rand(10)).sort((a, b) => a - b),
				rand(100),
			),
		);
		const a = decideAffinity(hints, nr, allowed, prev);
		const pcpus = [...a.exclusive.values()].map((e) => e.pcpu);
		if (new Set(pcpus).size !== pcpus.length) broken.push(`iteration ${i}: shared exclusive CPU`);
		for (let v = 0; v < nr; v++) for (const c of cpusFor(a, v)) if (!allowed.includes(c)) broken.push(`iteration ${i}: CPU ${c} not allowed`);
		const idle = new Set(Array.from({length: rand(3)}, () => rand(nr)));
		const b = decideAffinity(hints, nr, allowed, prev, idle);
		for (const [v, e] of b.exclusive) {
			if (b.floating.includes(e.pcpu) && !e.shared && b.exclusive.size < nr) broken.push(`iteration ${i}: floating on vCPU ${v}'s unshared CPU`);
			const goesOn = prev.exclusive.get(v)?.tid === e.tid && prev.exclusive.get(v)?.pcpu === e.pcpu;
			if (idle.has(v) && goesOn && !e.shared && b.exclusive.size < nr) broken.push(`iteration ${i}: idle vCPU ${v} does not share`);
			if (!goesOn && e.shared && !b.floatNice) broken.push(`iteration ${i}: vCPU ${v}'s new grant starts shared`);
		}
		if (b.shared !== [...b.exclusive.values()].some((e) => e.shared)) broken.push(`iteration ${i}: shared flag`);
		if (a.exclusive.size && a.exclusive.size < nr && [...a.exclusive.values()].some((e) => !e.shared && a.floating.includes(e.pcpu)))
			broken.push(`iteration ${i}: floating on an exclusive CPU`);
		if (a.shared && allowed.length < 2) broken.push(`iteration ${i}: shared mode needs two CPUs`);
		if (a.floatNice !== 0 && (!a.shared || a.floatNice !== sharedFloatNice || [...a.exclusive.values()].some((e) => !e.shared)))
			broken.push(`iteration ${i}: lower weight only when crowded`);
		if (a.exclusive.size > allowed.length) broken.push(`iteration ${i}: more grants than CPUs`);
		// An operator pinned some vCPUs: they get nothing, and nobody gets their CPUs.
		const heldVcpus = new Set(Array.from({length: rand(3)}, () => rand(nr)));
		const held = {vcpus: heldVcpus, cpus: new Set(Array.from({length: rand(3)}, () => rand(8)))};
		const c = decideAffinity(hints, nr, allowed, prev, idle, held);
		for (const [v, e] of c.exclusive) {
			if (heldVcpus.has(v)) broken.push(`iteration ${i}: held vCPU ${v} granted`);
			if (held.cpus.has(e.pcpu)) broken.push(`iteration ${i}: a held vCPU's CPU ${e.pcpu} granted`);
			if (!allowed.includes(e.pcpu)) broken.push(`iteration ${i}: CPU ${e.pcpu} not allowed`);
		}
		if (c.denied.some((v) => heldVcpus.has(v))) broken.push(`iteration ${i}: a held vCPU listed as denied`);
		if (c.floating.length === 0 || c.floating.some((x) => !allowed.includes(x))) broken.push(`iteration ${i}: floating set`);
		prev = a;
	}
	t.same(broken, [], '500 random decisions hold the invariants');
});

t.test('every vCPU asking with fewer CPUs: the granted CPUs are shared with the vCPU left over', async (t) => {
	const a = decideAffinity([hint(10, [0]), hint(11, [1]), hint(12, [2])], 3, [0, 1], floatingOnly([0, 1]));
	t.equal(a.exclusive.size, 2);
	t.same(a.denied, [2]);
	t.ok([...a.exclusive.values()].every((e) => e.shared) && a.floatNice === sharedFloatNice, 'vCPU 2 floats on them at the lower weight, as in crowded mode');
	const one = decideAffinity([hint(10, [0]), hint(11, [1])], 2, [6], floatingOnly([6]));
	t.equal(one.exclusive.size, 0, 'a single CPU is not given to one vCPU while the other floats on it');
});

t.test("an operator's pin wins: the vCPU gets no grant, its CPU goes to nobody else", async (t) => {
	const cpus = [0, 1, 2, 3];
	const held = {vcpus: new Set([1]), cpus: new Set([0])};
	const a = decideAffinity([hint(10, [1]), hint(11, [2])], 4, cpus, floatingOnly(cpus), new Set(), held);
	t.same([...a.exclusive.keys()], [2], 'only the vCPU pvrun places gets a CPU of its own');
	t.equal(a.exclusive.get(2)?.pcpu, 3, 'the highest free CPU, as usual');
	t.same(a.floating, [0, 1, 2], "the floating vCPUs may still run on the held vCPU's CPU (it is not that vCPU's own)");
	t.same(a.denied, [], "a held vCPU is not denied: it is not pvrun's to place");
	const before = decideAffinity([hint(11, [2])], 4, cpus, floatingOnly(cpus));
	t.equal(before.exclusive.get(2)?.pcpu, 3);
	const moved = decideAffinity([hint(11, [2])], 4, cpus, before, new Set(), {vcpus: new Set([0]), cpus: new Set([3])});
	t.equal(moved.exclusive.get(2)?.pcpu, 2, 'a grant on the CPU an operator pinned another vCPU to moves off it');
	const rest = decideAffinity([hint(10, [0])], 2, [0, 1], floatingOnly([0, 1]), new Set(), {vcpus: new Set([1]), cpus: new Set([1])});
	t.equal(rest.exclusive.get(0)?.pcpu, 0, "the only other vCPU asks: nothing of pvrun's floats, so it may have the CPU left");
	const crowded = decideAffinity([hint(10, [0])], 3, [0, 1], floatingOnly([0, 1]), new Set(), {vcpus: new Set([1]), cpus: new Set([1])});
	t.equal(crowded.exclusive.size, 0, 'with a vCPU floating, the one grantable CPU is kept for it: no grant');
	t.same(crowded.denied, [0]);
});

// The vCPU counts pvrun supports, from one to the shared memory's 256 slots (src/shm/layout.ts).
for (const n of [1, 2, 64, 256])
	for (const allowed of [
		[0, 1],
		[0, 1, 2, 3, 4, 5, 6, 7],
	])
		t.test(`${n} vCPUs on ${allowed.length} CPUs: one asker granted, every asker within the CPUs`, async (t) => {
			const start = floatingOnly(allowed);
			t.same(
				Array.from({length: n}, (_, v) => cpusFor(start, v)),
				Array.from({length: n}, () => allowed),
				'no hint: every vCPU floats on every CPU',
			);
			const last = n - 1;
			const one = decideAffinity([hint(10, [last])], n, allowed, start);
			t.same([...one.exclusive.keys()], [last], 'a thread pinned to the last vCPU: a CPU of its own');
			const own = one.exclusive.get(last)?.pcpu ?? -1;
			t.ok(allowed.includes(own) && !one.floating.includes(own), `CPU ${own}, allowed, off the floating set`);
			t.ok(
				Array.from({length: n}, (_, v) => v)
					.filter((v) => v !== last)
					.every((v) => cpusFor(one, v).every((c) => c !== own && allowed.includes(c))),
				'the other vCPUs float on the other CPUs',
			);
			const all = decideAffinity(
				Array.from({length: n}, (_, v) => hint(100 + v, [v])),
				n,
				allowed,
				start,
			);
			const cpus = [...all.exclusive.values()].map((x) => x.pcpu);
			t.ok(cpus.length >= 1 && cpus.length <= allowed.length, `every vCPU asks: ${cpus.length} granted, no more than the CPUs`);
			t.ok(
				cpus.every((c) => allowed.includes(c)),
				'each grant an allowed CPU',
			);
			t.equal(all.exclusive.size + all.denied.length, n, 'the others denied, each said');
			t.ok(
				Array.from({length: n}, (_, v) => cpusFor(all, v)).every((list) => list.length > 0 && list.every((c) => allowed.includes(c))),
				'every vCPU can run somewhere allowed',
			);
		});

t.test('floatOnly (CPUs other VMs need, docs/leases.md): floated on, never granted; with one, every other CPU can be granted', async (t) => {
	const a = decideAffinity([hint(10, [0]), hint(11, [1])], 3, [0, 1, 2], floatingOnly([0, 1, 2]), new Set(), undefined, new Set([2]));
	t.same(
		[...a.exclusive].map(([v, e]) => [v, e.pcpu, e.shared]),
		[
			[0, 1, false],
			[1, 0, false],
		],
		'both askers get a CPU of their own: the floating vCPU has CPU 2',
	);
	t.same(a.floating, [2]);
	t.same({shared: a.shared, floatNice: a.floatNice, denied: a.denied}, {shared: false, floatNice: 0, denied: []});
	const none = decideAffinity([hint(10, [0])], 2, [0], floatingOnly([0]), new Set(), undefined, new Set([0]));
	t.same([none.exclusive.size, none.floating, none.denied], [0, [0], [0]], 'a VM left only floatOnly CPUs grants nothing');
	const crowdedBefore = decideAffinity([hint(10, [0]), hint(11, [1])], 4, [0, 1], floatingOnly([0, 1]));
	t.equal(crowdedBefore.shared, true, 'without it, two askers on two CPUs share them (crowded)');
	const notCrowded = decideAffinity([hint(10, [0]), hint(11, [1])], 4, [0, 1], floatingOnly([0, 1]), new Set(), undefined, new Set([0]));
	t.same(
		[[...notCrowded.exclusive].map(([v, e]) => [v, e.pcpu, e.shared]), notCrowded.denied],
		[[[0, 1, false]], [1]],
		'with CPU 0 float-only: one exclusive grant, the other asker denied',
	);
});
