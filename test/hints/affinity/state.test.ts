// The affinity state of a VM before any hint (src/hints/affinity/state.ts):
// every vCPU floats on the allowed CPUs; nothing granted, denied, idle or held.
import t from 'tap';
import {initialState, type AffinityState} from '../../../src/hints/affinity/state.js';

/** What the state before any hint must be, written out. */
const expected = (allowed: number[], nrVcpus: number): AffinityState => ({
	hints: new Map(),
	hintsRefused: 0,
	assignment: {exclusive: new Map(), floating: allowed, denied: [], shared: false, floatNice: 0},
	nrVcpus,
	idle: new Set(),
	held: new Map(),
	othersHeld: undefined,
});

t.test('no hint yet: the vCPUs float on every allowed CPU', async (t) => {
	const cases: Array<[number[], number]> = [
		[[0, 1], 2],
		[[0, 1, 2, 3], 4],
		[[3], 1],
		[[2, 5, 7], 8], // more vCPUs than CPUs, and CPUs with gaps
		[[0, 1, 2, 3], 1],
	];
	for (const [allowed, nrVcpus] of cases) {
		t.strictSame(initialState(allowed, nrVcpus), expected(allowed, nrVcpus), `CPUs ${allowed.join(',')}, ${nrVcpus} vCPUs`);
	}
});

t.test('each state is its own: nothing shared with the caller or another VM', async (t) => {
	const allowed = [0, 1, 2];
	const a = initialState(allowed, 2);
	const b = initialState(allowed, 2);
	allowed.push(3);
	t.strictSame(a.assignment.floating, [0, 1, 2], "a copy of the caller's list");
	a.hints.set(7, {tid: 7, tgid: 7, comm: 'w', vcpus: [1], seq: 1});
	a.assignment.exclusive.set(1, {pcpu: 2, tid: 7, seq: 1, shared: false});
	a.assignment.floating.pop();
	a.assignment.denied.push(0);
	a.idle.add(1);
	a.held.set(0, [1]);
	t.strictSame(b, expected([0, 1, 2], 2), "another VM's state is untouched");
});
