// The critical-section observer over a real shared-memory area and a host
// reader the test drives: flags in the slots, time in sections, the log.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {CsObserver, ProcHostReader, csProgram, type CsSummary, type HostReader, type SchedSource} from '../../../src/hints/cs/observer.js';
import {VcpuState, type VcpuSched} from '../../../src/fast/sched.js';
import {createShmArea} from '../../../src/shm/area.js';
import {emptyCounters} from '../../../src/shm/counters.js';
import {Cell, cellsOffset, Feature, Header, RecordType, Slot, SlotFlag, slotSize, slotsOffset} from '../../../src/shm/layout.js';

/** A host whose threads' run delays and CPUs, and CPUs' waits, the test sets; time moves 10 ms a look. */
type Thread = {execNs: number; runDelayNs: number; runnable: boolean; cpu: number};
function fakeHost(): HostReader & {threads: Map<number, Thread>; waits: Map<number, number>; clock: number} {
	const h = {
		threads: new Map<number, Thread>(),
		waits: new Map<number, number>(),
		clock: 0,
		thread: (_pid: number, tid: number) => h.threads.get(tid),
		cpuWaits: () => new Map(h.waits),
		now: () => h.clock,
	};
	return h;
}

t.test('flags, run delay and time in sections follow what the host and the cells say', async (t) => {
	const file = path.join('/dev/shm', `pvrun-cs-test-${process.pid}`);
	const area = createShmArea(file, 2);
	t.teardown(() => area.remove());
	const host = fakeHost();
	const logged: CsSummary[] = [];
	const counters = emptyCounters();
	const obs = new CsObserver(area, 1, counters, (s) => logged.push(s), host);
	obs.setThreads([11, 12]);
	host.threads.set(11, {execNs: 0, runDelayNs: 0, runnable: true, cpu: 0});
	host.threads.set(12, {execNs: 0, runDelayNs: 0, runnable: true, cpu: 1});
	host.waits.set(0, 0).set(1, 0);
	obs.look();
	t.equal(obs.nextLookMs, 100, 'no cell held: the next look in 100 ms');
	// A thread on vCPU 1 enters a section; vCPU 1's host thread then runs 2 of the next 10 ms and waits the rest, while vCPU 0's runs; others wait on vCPU 1's CPU.
	area.view.setUint32(Header.cellsUsed, 1, true);
	area.view.setUint32(cellsOffset + Cell.ownerTid, 500, true);
	area.view.setUint32(cellsOffset + Cell.depth, 1, true);
	area.view.setInt32(cellsOffset + Cell.cpu, 1, true);
	host.clock += 10e6;
	host.threads.set(11, {execNs: 10e6, runDelayNs: 0, runnable: true, cpu: 0});
	host.threads.set(12, {execNs: 2e6, runDelayNs: 8e6, runnable: true, cpu: 1});
	host.waits.set(1, 8e6 + 3e6);
	obs.look();
	t.equal(obs.nextLookMs, 10, 'a cell held: in 10 ms');
	const flags = (v: number): number => area.view.getUint32(slotsOffset + v * slotSize + Slot.flags, true);
	t.equal(flags(1), SlotFlag.vcpuPreempted | SlotFlag.pcpuOverloaded, 'vCPU 1: preempted, and its CPU overloaded');
	t.equal(flags(0), 0, 'vCPU 0: neither');
	t.equal(area.view.getBigUint64(slotsOffset + slotSize + Slot.preemptedNs, true), 8_000_000n, "vCPU 1's run delay since the first look");
	t.equal(area.view.getBigUint64(slotsOffset + slotSize + Slot.flagsNs, true), 10_000_000n, 'when the flags were written');
	let s = obs.summary();
	t.match(s.vcpus, [
		{vcpu: 0, csMs: 0, csPreemptedMs: 0, preemptedMs: 0, preempted: false},
		{vcpu: 1, csMs: 10, csPreemptedMs: 8, preemptedMs: 8, preempted: true, overloaded: true},
	]);
	t.equal(s.cells, 1);
	// The section ends; the thread runs again.
	area.view.setUint32(cellsOffset + Cell.depth, 0, true);
	host.clock += 10e6;
	host.threads.set(11, {execNs: 20e6, runDelayNs: 0, runnable: true, cpu: 0});
	host.threads.set(12, {execNs: 12e6, runDelayNs: 8e6, runnable: true, cpu: 1});
	obs.look();
	t.equal(flags(1), 0, 'running again: no flag');
	s = obs.summary();
	t.match(s.vcpus[1], {csMs: 10, csPreemptedMs: 8}, 'time outside sections is not counted');
	t.equal(s.looks, 3);
	// The guest writes the flags word: the host's next look rewrites it.
	area.view.setUint32(slotsOffset + Slot.flags, 0xffffffff, true);
	host.clock += 10e6;
	host.threads.set(11, {execNs: 30e6, runDelayNs: 0, runnable: true, cpu: 0});
	obs.look();
	t.equal(flags(0), 0, "a guest's scribble on flags lasts one look at most");
	const last = obs.stop();
	t.equal(flags(1), 0, 'stop clears the flags');
	t.same(logged.at(-1), last, 'and logs the summary');
	t.equal(counters.badCell, 0);
});

t.test('on its own timer: every 100 ms while nothing is in play, every 10 ms once a cell is held', async (t) => {
	const file = path.join('/dev/shm', `pvrun-cs-timer-test-${process.pid}`);
	const area = createShmArea(file, 2);
	t.teardown(() => area.remove());
	const host = fakeHost();
	const obs = new CsObserver(area, 1, emptyCounters(), () => {}, host);
	obs.setThreads([11, 12]);
	obs.start();
	t.teardown(() => void obs.stop());
	const looks = (): number => obs.summary().looks;
	await new Promise((resolve) => setTimeout(resolve, 500));
	t.ok(looks() >= 1 && looks() <= 7, `idle: ${looks()} looks in 500 ms`);
	area.view.setUint32(Header.cellsUsed, 1, true);
	area.view.setUint32(cellsOffset + Cell.ownerTid, 500, true);
	const from = looks();
	const started = performance.now();
	while (looks() - from < 25 && performance.now() - started < 1500) await new Promise((resolve) => setTimeout(resolve, 20));
	t.ok(looks() - from >= 25, `a cell held: ${looks() - from} looks in ${Math.round(performance.now() - started)} ms (at 100 ms, 15 at most in 1.5 s)`);
	obs.stop();
	const stopped = looks();
	await new Promise((resolve) => setTimeout(resolve, 50));
	t.equal(looks(), stopped, 'no look after stop');
});

t.test("a vCPU whose lock another vCPU waits for is inside a (kernel) section; the guest's lock counters are counted from the first look", async (t) => {
	const file = path.join('/dev/shm', `pvrun-cs-test3-${process.pid}`);
	const area = createShmArea(file, 2);
	t.teardown(() => area.remove());
	const host = fakeHost();
	const obs = new CsObserver(area, 1, emptyCounters(), () => {}, host);
	obs.setThreads([31, 32]);
	const slot = (v: number, waiting: number, ownerCpu: number, waits: bigint, waitNs: bigint): void => {
		const base = slotsOffset + v * slotSize;
		area.view.setUint32(base + Slot.klockWaiting, waiting, true);
		area.view.setInt32(base + Slot.klockOwnerCpu, ownerCpu, true);
		area.view.setBigUint64(base + Slot.klockWaits, waits, true);
		area.view.setBigUint64(base + Slot.klockWaitNs, waitNs, true);
	};
	slot(0, 0, -1, 10n, 1_000_000n);
	host.threads.set(31, {execNs: 0, runDelayNs: 0, runnable: true, cpu: 0});
	host.threads.set(32, {execNs: 0, runDelayNs: 0, runnable: true, cpu: 1});
	obs.look();
	t.equal(obs.nextLookMs, 100, 'no cell held, no kernel lock wait: the next look in 100 ms');
	// vCPU 0 waits for a mutex that vCPU 1's thread holds; vCPU 1's host thread does not run.
	slot(0, 1, 1, 10n, 1_000_000n);
	host.clock += 10e6;
	host.threads.set(31, {execNs: 10e6, runDelayNs: 0, runnable: true, cpu: 0});
	obs.look();
	t.equal(obs.nextLookMs, 10, 'a kernel lock wait: in 10 ms');
	// The wait ends: two more waits, 3 ms in all.
	slot(0, 0, -1, 12n, 4_000_000n);
	host.clock += 10e6;
	host.threads.set(31, {execNs: 20e6, runDelayNs: 0, runnable: true, cpu: 0});
	host.threads.set(32, {execNs: 10e6, runDelayNs: 0, runnable: true, cpu: 1});
	obs.look();
	t.equal(obs.nextLookMs, 100, 'the wait over: in 100 ms again');
	// A scribble sends the counter back: nothing is added, and counting goes on from there.
	slot(0, 0, -1, 1n, 0n);
	host.clock += 10e6;
	obs.look();
	slot(0, 0, -1, 2n, 1_000_000n);
	host.clock += 10e6;
	obs.look();
	const s = obs.stop();
	t.match(s.vcpus[1], {csMs: 10, csPreemptedMs: 10}, 'vCPU 1 held the lock for one interval, preempted all of it');
	t.match(s.vcpus[0], {csMs: 0, klockWaits: 3, klockWaitMs: 4}, "vCPU 0's waits since the first look");
});

t.test('a vCPU thread that is gone is skipped; hot-plug keeps what kept vCPUs counted', async (t) => {
	const file = path.join('/dev/shm', `pvrun-cs-test2-${process.pid}`);
	const area = createShmArea(file, 3);
	t.teardown(() => area.remove());
	const host = fakeHost();
	const obs = new CsObserver(area, 1, emptyCounters(), () => {}, host);
	obs.setThreads([21]);
	host.threads.set(21, {execNs: 0, runDelayNs: 0, runnable: true, cpu: 0});
	obs.look();
	host.clock += 10e6;
	host.threads.set(21, {execNs: 4e6, runDelayNs: 6e6, runnable: true, cpu: 0});
	obs.look();
	obs.setThreads([21, 22, 23]);
	t.equal(obs.summary().vcpus.length, 3);
	t.equal(obs.summary().vcpus[0]?.preemptedMs, 6, 'vCPU 0 keeps its count');
	host.clock += 10e6;
	obs.look();
	t.equal(obs.summary().vcpus[1]?.preemptedMs, 0, 'vCPU 1, not in /proc: nothing counted');
	obs.stop();
});

t.test('the /proc reader: this thread, again and again from open files, and the CPUs', async (t) => {
	const reader = new ProcHostReader();
	t.teardown(() => reader.close());
	const fds = (): number => fs.readdirSync('/proc/self/fd').length;
	const self = reader.thread(process.pid, process.pid);
	if (fs.existsSync(`/proc/${process.pid}/task/${process.pid}/schedstat`)) {
		t.ok(self && self.execNs > 0 && self.runDelayNs >= 0 && self.cpu >= 0 && self.cpu < os.availableParallelism() + 64, `this thread: ${JSON.stringify(self)}`);
		t.equal(self?.runnable, true, 'running: state R');
		const open = fds();
		let spin = 0;
		for (let i = 0; i < 2e7; i++) spin += i;
		const later = reader.thread(process.pid, process.pid);
		t.ok(spin > 0 && later && self && later.execNs > self.execNs, 'read again: its CPU time grew');
		t.equal(fds(), open, 'from the files already open');
		reader.forget(process.pid);
		t.equal(fds(), open - 2, 'forget closes both');
		const waits = reader.cpuWaits();
		if (fs.existsSync('/proc/schedstat'))
			t.ok(waits.size >= 1 && [...waits.values()].every((w) => Number.isFinite(w) && w >= 0), `CPU waits: ${JSON.stringify([...waits])}`);
		else t.equal(waits.size, 0, 'no /proc/schedstat (no CONFIG_SCHEDSTATS): no CPU waits');
	} else t.equal(self, undefined, 'no schedstat: nothing');
	t.equal(reader.thread(process.pid, 0x3fffffff), undefined, 'a thread that does not exist');
	t.ok(reader.now() > 0);
	// This thread's CPU clock: it moves with work on this thread, not with sleep.
	const before = reader.threadCpuNs();
	let spin = 0;
	for (let i = 0; i < 2e7; i++) spin += i;
	const worked = reader.threadCpuNs();
	await new Promise((resolve) => setTimeout(resolve, 100));
	const slept = reader.threadCpuNs();
	t.ok(spin > 0 && worked - before > 1e6, `a busy loop costs this thread CPU time (${Math.round((worked - before) / 1e3)} µs)`);
	t.ok(slept - worked < 50e6, `100 ms asleep costs it far less (${Math.round((slept - worked) / 1e3)} µs)`);
});

t.test("the looks' own CPU time, for the governor to leave out of the guest's share", async (t) => {
	const file = path.join('/dev/shm', `pvrun-cs-own-test-${process.pid}`);
	const area = createShmArea(file, 2);
	t.teardown(() => area.remove());
	let cpuNs = 0;
	const host = {...fakeHost(), threadCpuNs: () => (cpuNs += 150e3)};
	const obs = new CsObserver(area, 1, emptyCounters(), () => {}, host);
	obs.setThreads([11, 12]);
	t.equal(obs.ownCpuMs, 0, 'none before a look');
	for (let i = 0; i < 10; i++) obs.look();
	t.equal(obs.ownCpuMs, 1.5, '10 looks at 150 µs of CPU each: 1.5 ms');
	t.equal(obs.summary().lookUs, 1500, 'the cs event gives the same cost');
});

t.test('the kernel lock program: its record type, and the feature bit the agent sets for it (1 << (type - 1))', async (t) => {
	t.equal(csProgram.recordType, RecordType.cs);
	t.equal(csProgram.feature, 1 << (csProgram.recordType - 1));
	t.equal(csProgram.feature, Feature.cs);
});

t.test('with the host BPF source: its flags and exact waits, and the observer writes no flag', async (t) => {
	const file = path.join('/dev/shm', `pvrun-cs-test-bpf-${process.pid}`);
	const area = createShmArea(file, 2);
	t.teardown(() => area.remove());
	const host = fakeHost();
	const samples: VcpuSched[] = [
		{state: VcpuState.running, cpu: 0, flags: 0, sinceNs: 0, runNs: 0, waitNs: 0, preemptions: 0},
		{state: VcpuState.running, cpu: 1, flags: 0, sinceNs: 0, runNs: 0, waitNs: 5e6, preemptions: 0},
	];
	const calls: string[] = [];
	const sched: SchedSource = {
		setVcpus: (tids) => calls.push(`set ${tids.join(',')}`),
		sync: () => calls.push('sync'),
		watch: (v) => calls.push(`watch ${v.map(Number).join('')}`),
		read: (n) => samples.slice(0, n).map((s) => ({...s})),
		stats: () => ({
			wakeups: 4,
			notices: 4,
			writes: 4,
			latN: 2,
			latSumNs: 300e3,
			latMaxNs: 200e3,
			threadCpuNs: 50e3,
			progRunNs: 20e3,
			progRuns: 100,
			demotions: 0,
		}),
		stop: () => calls.push('stop'),
	};
	const obs = new CsObserver(area, 1, emptyCounters(), () => {}, host, sched);
	t.equal(obs.feedback, 'bpf');
	obs.setThreads([41, 42]);
	t.same(calls, ['set 41,42'], 'the program follows the vCPU threads');
	obs.look();
	// vCPU 1 enters a section; 4 ms later its thread is preempted (and stays so): 6 ms of the 10 waited.
	area.view.setUint32(Header.cellsUsed, 1, true);
	area.view.setUint32(cellsOffset + Cell.ownerTid, 500, true);
	area.view.setUint32(cellsOffset + Cell.depth, 1, true);
	area.view.setInt32(cellsOffset + Cell.cpu, 1, true);
	samples[1] = {
		state: VcpuState.preempted,
		cpu: 1,
		flags: SlotFlag.vcpuPreempted | SlotFlag.pcpuOverloaded,
		sinceNs: 4e6,
		runNs: 4e6,
		waitNs: 5e6,
		preemptions: 1,
	};
	host.clock += 10e6;
	area.view.setUint32(slotsOffset + slotSize + Slot.flags, 0x40, true); // the native thread's word: left alone
	obs.look();
	const s = obs.summary();
	t.match(s.vcpus[1], {csMs: 10, csPreemptedMs: 6, preemptedMs: 6, preempted: true, overloaded: true});
	t.match(s.vcpus[0], {csMs: 0, preemptedMs: 0, preempted: false});
	t.equal(area.view.getUint32(slotsOffset + slotSize + Slot.flags, true), 0x40, 'the observer does not write the flags');
	t.same(s.bpf, {wakeups: 4, writes: 4, delayMeanUs: 150, delayMaxUs: 200, threadUs: 50, programRuns: 100, programUs: 20});
	t.equal(s.feedback, 'bpf');
	t.equal(calls.filter((c) => c === 'sync').length, 2, 'each look brings the slots up to date through the source');
	t.same(
		calls.filter((c) => c.startsWith('watch')),
		['watch 00', 'watch 01'],
		'and watches the vCPUs inside a section',
	);
	const last = obs.stop();
	t.same(calls.at(-1), 'stop', 'stop stops the source (its thread clears the flags)');
	t.equal(area.view.getUint32(slotsOffset + slotSize + Slot.flags, true), 0x40, 'not the observer');
	t.equal(last.feedback, 'bpf');
});
