// The host's judgement of a vCPU between two looks, and the reading of the
// guest's critical-section cells, hostile values included.
import t from 'tap';
import {judge, readCells, readKernelWaits, readRunningThreads, type ThreadSample} from '../../../src/hints/cs/sample.js';
import {emptyCounters} from '../../../src/shm/counters.js';
import {Cell, cellCount, cellSize, cellsOffset, Header, shmSize, Slot, slotSize, slotsOffset} from '../../../src/shm/layout.js';

/** A runnable thread at `atNs` that has run `execNs` and waited `runDelayNs` in all. */
const at = (atNs: number, execNs: number, runDelayNs = 0, runnable = true): ThreadSample => ({atNs, execNs, runDelayNs, runnable, cpu: 0});

t.test('judge: preempted when a runnable thread ran less than half the interval', async (t) => {
	t.same(judge(at(0, 0), at(10e6, 10e6), 0), {preempted: false, overloaded: false, waited: 0}, 'ran all the time, nobody waited');
	t.match(judge(at(0, 0), at(10e6, 8e6), 0), {preempted: false, overloaded: false}, 'ran 8 of 10 ms (a tick short)');
	t.ok(Math.abs(judge(at(0, 0), at(10e6, 8e6), 0).waited - 0.2) < 1e-9, 'and waited the rest');
	t.same(judge(at(0, 0), at(10e6, 0), 0), {preempted: true, overloaded: false, waited: 1}, 'runnable and its CPU time stood still: preempted');
	t.same(judge(at(0, 0), at(10e6, 5e6), 0).preempted, false, 'ran half: not preempted');
	t.same(judge(at(0, 0), at(10e6, 4e6), 0).preempted, true, 'ran less than half: preempted');
	t.same(judge(at(0, 0, 0, false), at(10e6, 0), 0), {preempted: false, overloaded: false, waited: 0}, 'asleep at the first look: not preempted');
	t.same(judge(at(0, 0), at(10e6, 0, 0, false), 0).preempted, false, 'asleep at the second look: not preempted');
	t.same(judge(at(0, 0), at(10e6, 30e6), 0).waited, 0, 'more CPU time than the interval (a late look): capped');
	t.same(judge(at(0, 5e6), at(10e6, 1e6), 0).waited, 1, 'CPU time that went back counts as none');
	t.same(judge(at(10e6, 0), at(10e6, 0), 5e6), {preempted: false, overloaded: false, waited: 0}, 'no time passed: nothing said');
});

t.test("judge: overloaded when others waited for its CPU a quarter of the interval, or, without the CPU's figure, it did", async (t) => {
	t.same(judge(at(0, 0), at(10e6, 10e6), 2.5e6).overloaded, true, 'others waited 2.5 of 10 ms on its CPU');
	t.same(judge(at(0, 0), at(10e6, 10e6), 2.4e6).overloaded, false);
	t.same(judge(at(0, 0, 0), at(10e6, 10e6, 3e6), 3e6).overloaded, false, "its own wait is not others'");
	t.same(judge(at(0, 0), at(10e6, 7e6), undefined).overloaded, true, 'no CPU figure: it waited 3 of 10 ms');
	t.same(judge(at(0, 0), at(10e6, 8e6), undefined).overloaded, false, 'no CPU figure: it waited 2 of 10 ms');
});

/** An area's view with cells set by `cells` (index → fields) and cells_used. */
function area(used: number, cells: Record<number, Partial<Record<keyof typeof Cell, number>>>): DataView {
	const view = new DataView(new ArrayBuffer(shmSize));
	view.setUint32(Header.cellsUsed, used, true);
	for (const [i, c] of Object.entries(cells)) {
		const base = cellsOffset + Number(i) * cellSize;
		view.setUint32(base + Cell.ownerTid, c.ownerTid ?? 0, true);
		view.setUint32(base + Cell.ownerTgid, c.ownerTgid ?? 0, true);
		view.setUint32(base + Cell.depth, c.depth ?? 0, true);
		view.setInt32(base + Cell.cpu, c.cpu ?? -1, true);
		view.setBigUint64(base + Cell.enters, BigInt(c.enters ?? 0), true);
		view.setBigUint64(base + Cell.lockWaits, BigInt(c.lockWaits ?? 0), true);
		view.setBigUint64(base + Cell.parks, BigInt(c.parks ?? 0), true);
		view.setUint32(base + Cell.waiting, c.waiting ?? 0, true);
	}
	return view;
}

t.test('readCells: sections and waiters per vCPU, sums over owned cells', async (t) => {
	const counters = emptyCounters();
	const v = area(4, {
		0: {ownerTid: 100, ownerTgid: 100, depth: 1, cpu: 1, enters: 5, lockWaits: 2, parks: 1},
		1: {ownerTid: 101, ownerTgid: 100, depth: 0, cpu: 0, enters: 3, waiting: 1},
		2: {},
		3: {ownerTid: 102, ownerTgid: 100, depth: 2, cpu: 1, enters: 1},
	});
	t.same(readCells(v, 2, counters), {inSection: [false, true], waiting: [1, 0], used: 3, enters: 9, lockWaits: 2, parks: 1});
	t.equal(counters.badCell, 0);
});

t.test('readRunningThreads: the thread each vCPU runs; a section counts where its thread runs now', async (t) => {
	const v = area(1, {0: {ownerTid: 100, ownerTgid: 100, depth: 1, cpu: 1}});
	const cur = (vcpu: number, tid: number) => v.setUint32(slotsOffset + vcpu * slotSize + Slot.curTid, tid, true);
	t.same([...readRunningThreads(v, 3)], [], 'nothing published: all idle or unknown');
	cur(0, 100);
	cur(1, 7);
	cur(2, 1 << 22);
	t.same(
		[...readRunningThreads(v, 3)],
		[
			[100, 0],
			[7, 1],
		],
		'thread id → vCPU; an impossible id is left out',
	);
	t.same(
		readCells(v, 3, emptyCounters(), readRunningThreads(v, 3)).inSection,
		[true, false, false],
		'the section began on vCPU 1; its thread runs on vCPU 0 now',
	);
	t.same(readCells(v, 3, emptyCounters()).inSection, [false, true, false], 'without the running threads: where it began');
	cur(1, 100);
	t.same([...readRunningThreads(v, 3)], [], 'one thread on two vCPUs (a scribble): neither is believed');
	t.same(readCells(v, 3, emptyCounters(), readRunningThreads(v, 3)).inSection, [false, true, false], 'and the section stays where it began');
});

t.test('readCells: hostile cells change nothing but the badCell counter', async (t) => {
	const counters = emptyCounters();
	const v = area(5, {
		0: {ownerTid: 1 << 22, depth: 1, cpu: 0},
		1: {ownerTid: 7, depth: 1, cpu: 2},
		2: {ownerTid: 8, depth: 0xffffffff, cpu: -5},
		3: {ownerTid: 9, depth: 1, cpu: 0x7fffffff},
		4: {ownerTid: 10, depth: 0, cpu: 99, waiting: 1},
	});
	const r = readCells(v, 2, counters);
	t.same(r.inSection, [false, false], 'no vCPU is in a section');
	t.same(r.waiting, [0, 0], 'nor has waiters');
	t.equal(counters.badCell, 5, 'each bad cell counted');
	t.equal(r.used, 4, 'the four cells with a plausible owner are in use');

	const huge = area(1, {0: {ownerTid: 5, depth: 1, cpu: 0}});
	huge.setBigUint64(cellsOffset + Cell.enters, 0xffffffffffffffffn, true);
	t.equal(readCells(huge, 1, emptyCounters()).enters, Number.MAX_SAFE_INTEGER, 'a counter beyond 2^53 saturates');

	const beyond = area(0xffffffff, {[cellCount - 1]: {ownerTid: 5, depth: 1, cpu: 0}});
	t.same(readCells(beyond, 1, emptyCounters()).inSection, [true], 'cells_used beyond 1024 reads the 1024 cells and no further');
	t.same(readCells(area(0, {0: {ownerTid: 5, depth: 1, cpu: 0}}), 1, emptyCounters()).inSection, [false], 'cells at or above cells_used are not read');
});

t.test("readKernelWaits: each slot's guest part under its sequence; an owner outside the VM is unknown and counted", async (t) => {
	const view = new DataView(new ArrayBuffer(shmSize));
	const slot = (v: number, f: {seq?: number; waiting?: number; ownerCpu?: number; waits?: bigint; waitNs?: bigint}): void => {
		const base = slotsOffset + v * slotSize;
		view.setUint32(base + Slot.guestSeq, f.seq ?? 2, true);
		view.setUint32(base + Slot.klockWaiting, f.waiting ?? 0, true);
		view.setInt32(base + Slot.klockOwnerCpu, f.ownerCpu ?? -1, true);
		view.setBigUint64(base + Slot.klockWaits, f.waits ?? 0n, true);
		view.setBigUint64(base + Slot.klockWaitNs, f.waitNs ?? 0n, true);
	};
	slot(0, {waiting: 1, ownerCpu: 2, waits: 5n, waitNs: 7000n});
	slot(1, {seq: 3, waiting: 1, ownerCpu: 0});
	slot(2, {waiting: 1, ownerCpu: 77, waits: 0xffffffffffffffffn});
	slot(3, {waiting: 0, ownerCpu: 1, waits: 1n});
	const counters = emptyCounters();
	t.same(readKernelWaits(view, 4, counters), [
		{waiting: true, ownerCpu: 2, waits: 5, waitNs: 7000},
		undefined,
		{waiting: true, ownerCpu: -1, waits: Number.MAX_SAFE_INTEGER, waitNs: 0},
		{waiting: false, ownerCpu: -1, waits: 1, waitNs: 0},
	]);
	t.equal(counters.badSlot, 1, 'the owner on vCPU 77 of 4');
});
