// A fault inside the hint loop costs the hints, never the VM: the engine logs
// and counts it instead of throwing (an exception would end pvrun, and QEMU
// with it), and stops its loop after repeated faults.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, {type Test} from 'tap';
import {Pinner} from '../../../src/pin/pinner.js';
import type {Assignment} from '../../../src/hints/affinity/policy.js';
import {createShmArea} from '../../../src/shm/area.js';
import {RingReader} from '../../../src/shm/reader.js';
import {EventLog, readEventLog} from '../../../src/vm/event-log.js';
import {AffinityEngine} from '../../../src/hints/affinity/engine.js';
import {guestBudget, type GuestBudget} from '../../../src/util/guest-budget.js';
import type {HintActivity} from '../../../src/vm/state.js';
import {sleeper} from '../../helpers/fast.js';
import {Guest, maskOf} from '../../helpers/guest-ring.js';

/** A pinner with a bug: every apply throws. */
class FaultyPinner extends Pinner {
	override apply(_a: Assignment): never {
		throw new Error('injected fault');
	}
}

/** A hint engine on a real 2-vCPU shared-memory area, logging to a file; removed when `t` ends. */
function engineWith(t: Test, pinner: Pinner): {engine: AffinityEngine; logFile: string} {
	const area = createShmArea(`/dev/shm/pvrun-test-${process.pid}-${crypto.randomBytes(3).toString('hex')}`, 2);
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-engine-'));
	const logFile = path.join(dir, 'events.jsonl');
	const log = new EventLog(logFile, false);
	t.teardown(() => {
		area.remove();
		log.close();
		fs.rmSync(dir, {recursive: true, force: true});
	});
	return {engine: new AffinityEngine(area, new RingReader(area), pinner, [0], 2, log), logFile};
}

t.test('faults in the hint loop are logged and counted; after 20 the loop stops', async (t) => {
	const {engine, logFile} = engineWith(t, new FaultyPinner(new Map(), process.pid));
	t.doesNotThrow(() => engine.start(10_000), 'start survives a fault');
	for (let i = 0; i < 25; i++) t.doesNotThrow(() => (i % 2 ? engine.setVcpuCount(2) : engine.kick()));
	engine.reset('test'); // nothing to reset; must not throw either
	engine.stop();
	const events = readEventLog(logFile);
	const faults = events.filter((e) => e.event === 'internal-error');
	t.ok(faults.length >= 1 && faults.length <= 20, `faults logged (${faults.length}), at most 20`);
	t.match(faults[0], {message: /injected fault/, count: 1});
	t.equal(engine.internalErrors, faults.length);
});

t.test('without faults nothing is logged as one', async (t) => {
	const {engine, logFile} = engineWith(t, new Pinner(new Map(), process.pid));
	engine.start(10_000);
	engine.kick();
	engine.setVcpuCount(2);
	engine.stop();
	t.equal(engine.internalErrors, 0);
	t.notOk(readEventLog(logFile).some((e) => e.event === 'internal-error'));
});

t.test('the loop stops for good at the 20th fault', async (t) => {
	const {engine} = engineWith(t, new FaultyPinner(new Map(), process.pid));
	engine.start(10_000);
	for (let i = 0; i < 25; i++) engine.kick();
	t.ok(engine.internalErrors >= 1, 'faults counted');
	for (let i = 0; engine.internalErrors < 20 && i < 40; i++) engine.setVcpuCount(2);
	t.equal(engine.internalErrors, 20, 'the loop stopped at 20');
	for (let i = 0; i < 5; i++) engine.setVcpuCount(2);
	t.equal(engine.internalErrors, 20, 'and no fault is counted after it');
	engine.stop();
});

/** A reader that counts the polls it answers. */
class CountingReader extends RingReader {
	polls = 0;
	override pending(): number {
		this.polls++;
		return super.pending();
	}
}

/** A started engine on a 2-vCPU area whose reader counts its polls; stopped and removed when `t` ends. */
function countingEngine(t: Test, budget = guestBudget()): {area: ReturnType<typeof createShmArea>; reader: CountingReader; engine: AffinityEngine} {
	const area = createShmArea(`/dev/shm/pvrun-test-${process.pid}-${crypto.randomBytes(3).toString('hex')}`, 2);
	t.teardown(() => area.remove());
	const reader = new CountingReader(area);
	const engine = new AffinityEngine(area, reader, new Pinner(new Map(), process.pid), [0], 2, new EventLog(undefined, false), undefined, undefined, 0, budget);
	engine.start(10_000);
	t.teardown(() => engine.stop());
	return {area, reader, engine};
}

t.test("a flood of kicks polls at most once per empty kick's cost after a burst, and the last kick is answered", async (t) => {
	const {area, reader, engine} = countingEngine(t);
	const before = reader.polls;
	const started = performance.now();
	let kicks = 0;
	while (performance.now() - started < 100) {
		engine.kick();
		kicks++;
	}
	const ms = performance.now() - started;
	// Each poll asks pending() once or twice (drain, then re-arm the kick and look again).
	const polls = reader.polls - before;
	const b = guestBudget();
	t.ok(polls <= 2 * ((b.burstMs + ms) / b.emptyKickMs + 1), `${kicks} kicks in ${ms.toFixed(0)} ms: ${polls} looks`);
	t.ok(engine.creditWaits > 0, `the flood waited for credit (${engine.creditWaits} times)`);
	// A record that comes during the gap is seen by the poll at its end.
	new Guest(area).append({tid: 300, tgid: 300, mask: maskOf(1)});
	engine.kick();
	await new Promise((resolve) => setTimeout(resolve, 20));
	t.equal(reader.tail, 1, 'the record after the flood was drained');
});

t.test('kicks that each bring a record: the first answered at once, a flood of them within the credit, and all read', async (t) => {
	const {area, reader, engine} = countingEngine(t);
	const guest = new Guest(area);
	const b = guestBudget();
	guest.append({tid: 300, tgid: 300, mask: maskOf(1)});
	engine.kick();
	t.equal(reader.tail, 1, 'a record and its kick: drained at once');
	const before = reader.polls;
	const started = performance.now();
	const hints = 5000;
	for (let i = 0; i < hints; i++) {
		guest.append({tid: 300 + (i % 50), tgid: 300, mask: maskOf(i % 2)});
		engine.kick();
	}
	const ms = performance.now() - started;
	const polls = reader.polls - before;
	t.ok(polls <= 2 * ((b.burstMs + ms) / b.newsKickMs + 1), `${hints} records, each with a kick, in ${ms.toFixed(0)} ms: ${polls} looks`);
	// Past the credit, the next poll reads everything written meanwhile.
	const deadline = performance.now() + 3 * b.newsKickMs + 1000;
	while (reader.tail < hints + 1 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
	t.equal(reader.tail, hints + 1, 'every record was read');
});

t.test('a head moved far ahead costs the records decoded, not the jump: the next records are read at once', async (t) => {
	const {area, reader, engine} = countingEngine(t);
	const guest = new Guest(area);
	guest.append({tid: 300, tgid: 300, mask: maskOf(1)});
	engine.kick();
	t.equal(reader.tail, 1);
	// An overrun of 2^40 records: the tail jumps to the head less a ring's worth.
	guest.setHead(2 ** 40);
	engine.kick();
	await new Promise((resolve) => setTimeout(resolve, 50));
	t.ok(reader.tail >= 2 ** 40 - 1024, `the tail followed (${reader.tail})`);
	guest.append({tid: 301, tgid: 301, mask: maskOf(0)});
	const deadline = performance.now() + 500;
	while (reader.tail !== 2 ** 40 + 1 && performance.now() < deadline) {
		engine.kick();
		await new Promise((resolve) => setTimeout(resolve, 10));
	}
	t.equal(reader.tail, 2 ** 40 + 1, 'the record after the jump was read within half a second');
});

t.test('with --pv-guest-cpu off, kicks that each bring a record are all answered at once, thousands of them', async (t) => {
	const {area, reader, engine} = countingEngine(t, guestBudget(0));
	const guest = new Guest(area);
	const hints = 1000;
	for (let i = 0; i < hints; i++) {
		guest.append({tid: 300 + (i % 50), tgid: 300, mask: maskOf(i % 2)});
		engine.kick();
		if (reader.tail !== i + 1) break;
	}
	t.equal(reader.tail, hints, 'each record drained by its own kick, none left waiting for credit');
	t.equal(engine.creditWaits, 0, 'no wait counted');
});

t.test("while pvrun's measured CPU is over the share, a kick waits for the hold's end, then reads what came meanwhile", async (t) => {
	const area = createShmArea(`/dev/shm/pvrun-test-${process.pid}-${crypto.randomBytes(3).toString('hex')}`, 2);
	t.teardown(() => area.remove());
	const reader = new RingReader(area);
	let holdUntil = performance.now() + 300;
	const hold = (): number => Math.max(0, holdUntil - performance.now());
	const engine = new AffinityEngine(
		area,
		reader,
		new Pinner(new Map(), process.pid),
		[0],
		2,
		new EventLog(undefined, false),
		undefined,
		undefined,
		0,
		guestBudget(),
		hold,
	);
	engine.start(50);
	t.teardown(() => engine.stop());
	const guest = new Guest(area);
	guest.append({tid: 300, tgid: 300, mask: maskOf(1)});
	engine.kick();
	engine.kick();
	t.equal(reader.tail, 0, 'not read during the hold');
	await new Promise((resolve) => setTimeout(resolve, 150));
	t.equal(reader.tail, 0, 'nor by the fallback poll');
	guest.append({tid: 301, tgid: 301, mask: maskOf(0)});
	const deadline = performance.now() + 1000;
	while (reader.tail < 2 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
	t.ok(performance.now() - (holdUntil - 300) >= 295, 'read after the hold');
	t.equal(reader.tail, 2, 'both records read, by one poll after it');
	t.equal(engine.creditWaits, 1, 'the kicks waited once');
	holdUntil = 0;
	guest.append({tid: 302, tgid: 302, mask: maskOf(0)});
	engine.kick();
	t.equal(reader.tail, 3, 'with no hold, a kick reads at once');
});

/** A started engine (fallback every 50 ms) on a 2-vCPU area, logging to a file; all removed when `t` ends. */
function loggedEngine(
	t: Test,
	logOptions: ConstructorParameters<typeof EventLog>[2],
	budget: GuestBudget,
	cpuHoldMs?: () => number,
): {area: ReturnType<typeof createShmArea>; engine: AffinityEngine; logFile: string} {
	const area = createShmArea(`/dev/shm/pvrun-test-${process.pid}-${crypto.randomBytes(3).toString('hex')}`, 2);
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-engine-'));
	const logFile = path.join(dir, 'events.jsonl');
	const log = new EventLog(logFile, false, logOptions);
	const engine = new AffinityEngine(area, new RingReader(area), new Pinner(new Map(), process.pid), [0], 2, log, undefined, undefined, 0, budget, cpuHoldMs);
	t.teardown(() => {
		engine.stop();
		area.remove();
		log.close();
		fs.rmSync(dir, {recursive: true, force: true});
	});
	engine.start(50);
	return {area, engine, logFile};
}

t.test('records left unread for a second: one stall line with what the engine holds, then none until the next', async (t) => {
	const holdUntil = performance.now() + 1600;
	const {area, logFile} = loggedEngine(t, undefined, guestBudget(), () => Math.max(0, holdUntil - performance.now()));
	new Guest(area).append({tid: 300, tgid: 300, mask: maskOf(1)});
	await new Promise((resolve) => setTimeout(resolve, 1900));
	const stalls = readEventLog(logFile).filter((e) => e.event === 'stall');
	t.equal(stalls.length, 1, 'one line for the episode');
	t.match(stalls[0], {tail: 0, head: 1, kickTimer: false, fastTable: false}, 'with the reader, the kick and the fast path as they were');
	t.ok(Number(stalls[0]?.['waitedMs']) >= 1000 && Number(stalls[0]?.['cpuHoldMs']) > 0, 'how long, and that a CPU hold was on');
});

t.test('a record flood past the log budget: one hint-summary a second with the exact counts, not one line each', async (t) => {
	const {area, engine, logFile} = loggedEngine(t, {perSecond: 1}, guestBudget(0));
	const guest = new Guest(area);
	const valid = 3000;
	const bad = 7;
	for (let i = 0; i < valid; i++) {
		guest.append({tid: 300 + (i % 50), tgid: 300, mask: maskOf(i % 2)});
		if (i % 500 === 0) guest.append(...Array.from({length: i === 0 ? 2 : 1}, () => ({tid: 300, tgid: 300, len: 200})));
		engine.kick();
	}
	await new Promise((resolve) => setTimeout(resolve, 1300));
	const events = readEventLog(logFile);
	const summaries = events.filter((e) => e.event === 'hint-summary');
	const hintLines = events.filter((e) => e.event === 'hint').length;
	t.ok(hintLines <= 100 + 2, `${hintLines} hint lines (the log's burst), not ${valid}`);
	t.equal(summaries.length, 1, 'one summary');
	t.match(summaries[0], {records: valid + bad, refused: bad});
	t.ok(Number(summaries[0]?.['leftOut']) > 0, 'it says how many lines were left out');
});

t.test('the placement listener gets the decisions too: counts and the newest eight (pvrun top)', async (t) => {
	// Two vCPUs, vCPU 0's thread a sleeping process's (a placement changes only where there is a thread).
	const area = createShmArea(`/dev/shm/pvrun-test-${process.pid}-${crypto.randomBytes(3).toString('hex')}`, 2);
	t.teardown(() => area.remove());
	const vcpu0 = sleeper(t).pid ?? 0;
	// --pv-guest-cpu off: each kick is answered at once, so each record is a decision of its own.
	const engine = new AffinityEngine(
		area,
		new RingReader(area),
		new Pinner(new Map([[0, vcpu0]]), vcpu0),
		[0, 1],
		2,
		new EventLog(undefined, false),
		undefined,
		undefined,
		0,
		guestBudget(0),
	);
	const told: HintActivity[] = [];
	engine.placementListener = (_placement, activity) => told.push(activity);
	engine.start(10_000);
	t.teardown(() => engine.stop());
	const guest = new Guest(area);
	const before = Date.now();
	// Five rounds of a pin and its release: ten decisions, of which the listener keeps the newest eight.
	for (let i = 0; i < 5; i++) {
		guest.append({tid: 300 + i, tgid: 300, comm: `worker-${i}`, mask: maskOf(0)});
		engine.kick();
		guest.append({tid: 300 + i, tgid: 300, comm: `worker-${i}`, mask: maskOf(0, 1)});
		engine.kick();
	}
	await new Promise((resolve) => setTimeout(resolve, 700)); // the listener is told at most every 500 ms
	const last = told.at(-1);
	t.match(last, {records: 10, pins: 5, floats: 5, denies: 0}, 'the counts since the start');
	t.equal(last?.recent.length, 8, 'the newest eight decisions');
	t.match(last?.recent.at(-2), {kind: 'pin', vcpus: [0], cpus: [1], tid: 304, comm: 'worker-4', shared: false});
	t.match(last?.recent.at(-1), {kind: 'float', vcpus: [0], cpus: [0, 1], tid: 304});
	t.ok(
		last?.recent.every((d) => d.at >= before && d.at <= Date.now()),
		'each with its time',
	);
});
