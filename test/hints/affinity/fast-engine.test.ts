// The hint engine with the real native fast path: no QEMU, but real threads
// (sleep processes stand in for vCPU threads and for QEMU's process), a real
// /dev/shm area written as the guest agent writes it, a real kick socket, and
// the event log as pvrun writes it. Checks what the host and the guest would
// see: pins in /proc, feedback in the slots, decisions in the log.
import fs, {readFileSync} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, {type Test} from 'tap';
import {threadCpusAllowed} from '../../../src/host/cpus.js';
import {Pinner} from '../../../src/pin/pinner.js';
import {AffinityEvent, AffinityKind, Record, recordSize, ringOffset} from '../../../src/shm/layout.js';
import {RingReader} from '../../../src/shm/reader.js';
import {EventLog, readEventLog, type LoggedEvent} from '../../../src/vm/event-log.js';
import {AffinityEngine} from '../../../src/hints/affinity/engine.js';
import {attachFastPath, feedback, sleeper, standIn, standInGroup, waitUntil} from '../../helpers/fast.js';
import {cpusetMount, tasksOf} from '../../../src/pin/cpuset.js';
import {Guest, area, maskOf} from '../../helpers/guest-ring.js';

const cpusOf = (tid: number) => threadCpusAllowed(tid, tid);

/** With `grouped`, the floating vCPU threads are in a float group (src/pin/cpuset.ts), which the fast path writes. */
async function setUp(t: Test, fallbackMs = 60_000, grouped = false) {
	const shm = area(t, 2);
	const guest = new Guest(shm);
	const [a, b, qemu] = [sleeper(t), sleeper(t), sleeper(t)];
	const tids = [a.pid ?? 0, b.pid ?? 0];
	const pinner = new Pinner(new Map(tids.map((tid, v) => [v, tid])), qemu.pid ?? 0, false, standIn);
	const group = grouped ? standInGroup(t, qemu.pid ?? 0, tids, [0, 1]) : undefined;
	if (typeof group === 'string') throw new Error(group);
	if (group) pinner.useGroup(group);
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-fast-engine-'));
	const logFile = path.join(dir, 'events.jsonl');
	const log = new EventLog(logFile, false);
	const engine = new AffinityEngine(shm, new RingReader(shm), pinner, [0, 1], 2, log);
	t.teardown(() => {
		engine.stop();
		log.close();
		fs.rmSync(dir, {recursive: true, force: true});
	});
	const {fast, socket, kick} = await attachFastPath(t, shm, engine, group);
	engine.start(fallbackMs);
	const events = (): LoggedEvent[] => readEventLog(logFile);
	/** Wait (2 s at most) until `ok()`, letting the event loop run the engine. */
	const until = (what: string, ok: () => boolean): Promise<void> => waitUntil(what, ok);
	return {
		shm,
		guest,
		tids,
		group,
		engine,
		fast,
		events,
		until,
		/** A kick byte, then wait until the engine has been woken for it. */
		kick,
		/** A kick byte, blocking the event loop until the fast path applied something (the engine has not seen it yet). */
		kickAndHold(): void {
			const applied = fast.stats().applied;
			socket.write('k');
			const started = Date.now();
			while (fast.stats().applied === applied && Date.now() - started < 2000) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
		},
	};
}

const groupSkip = process.getuid?.() !== 0 ? 'needs root' : cpusetMount() ? false : 'needs a cgroup v1 cpuset hierarchy';
for (const grouped of [false, true])
	t.test(
		`the fast path decides, the engine follows: pins adopted, feedback kept, everything logged${grouped ? ' (float group)' : ''}`,
		{skip: grouped && groupSkip},
		async (t) => {
			const f = await setUp(t, 60_000, grouped);
			const [a = 0, b = 0] = f.tids;
			f.guest.append({tid: 300, tgid: 300, comm: 'worker', mask: maskOf(1)});
			await f.kick();
			await f.until('the pin is logged', () => f.events().some((e) => e.event === 'pin'));
			t.same(cpusOf(b), [1], 'vCPU 1 on CPU 1 alone');
			t.same(cpusOf(a), [0], 'vCPU 0 floats on CPU 0');
			if (f.group) {
				t.same(tasksOf(f.group.dir), [b], "vCPU 1's thread left the floating cpuset");
				t.same(tasksOf(f.group.floatDir), [a], "vCPU 0's is in it");
				t.equal(readFileSync(path.join(f.group.floatDir, 'cpuset.cpus'), 'utf8').trim(), '0', 'which the fast path narrowed');
			}
			t.match(feedback(f.shm, 1), {state: 1, pcpu: 1, hintTid: 300});
			const seqAfterPin = feedback(f.shm, 1).seq;
			let events = f.events();
			t.match(
				events.find((e) => e.event === 'applied'),
				{fast: true, changed: 2, seq: 0},
				'logged as the fast path’s decision',
			);
			t.match(
				events.find((e) => e.event === 'pin'),
				{vcpu: 1, pcpu: 1, tid: 300, comm: 'worker'},
			);
			t.match(
				events.find((e) => e.event === 'hint'),
				{tid: 300, vcpus: [1]},
				'and the record that asked for it',
			);
			t.equal(feedback(f.shm, 1).seq, seqAfterPin, 'the engine did not write the feedback again');

			f.guest.append({tid: 300, tgid: 300, kind: AffinityKind.exit, mask: maskOf()});
			await f.kick();
			await f.until('the release is logged', () => f.events().some((e) => e.event === 'float'));
			t.same(cpusOf(b), [0, 1], 'the thread exits: vCPU 1 floats');
			if (f.group) t.same(tasksOf(f.group.floatDir).sort(), [a, b].sort(), 'in the floating cpuset again');
			events = f.events();
			t.equal(events.filter((e) => e.event === 'applied' && e['fast'] === true).length, 2, 'both by the fast path');
			t.equal(f.engine.decisions.fast, 2);
			t.equal(f.engine.decisions.slow, 0);
			t.equal(f.engine.hostLatenciesUs.length, 2, 'their latencies are the benchmark’s samples');
		},
	);

t.test('a record the guest rewrites after the fast path read it: the policy decides over it', async (t) => {
	const f = await setUp(t);
	const [a = 0, b = 0] = f.tids;
	f.guest.append({tid: 310, mask: maskOf(1)});
	f.kickAndHold();
	t.same(cpusOf(b), [1], 'the fast path pinned vCPU 1');
	// The (hostile) guest now says the thread asked for vCPU 0 instead.
	const payload = ringOffset + 0 * recordSize + Record.payload;
	f.shm.view.setBigUint64(payload + AffinityEvent.mask, 1n, true);
	await f.until('the engine corrected it', () => f.engine.decisions.disagreed === 1 && cpusOf(a).length === 1 && cpusOf(a)[0] === 1);
	t.same(cpusOf(a), [1], 'vCPU 0, what the record now says, has CPU 1');
	t.same(cpusOf(b), [0], 'vCPU 1 floats');
	t.match(feedback(f.shm, 1), {state: 0, pcpu: -1}, "vCPU 1's slot says so");
	t.match(feedback(f.shm, 0), {state: 1, pcpu: 1, hintTid: 310}, "and vCPU 0's");
});

t.test("the engine decides on its own right after a fast pin: the pin's record is read first, and the pin stays", async (t) => {
	const f = await setUp(t);
	const b = f.tids[1] ?? 0;
	f.guest.append({tid: 360, mask: maskOf(1)});
	f.kickAndHold();
	t.same(cpusOf(b), [1], 'the fast path pinned vCPU 1');
	// Before the engine has looked, it decides for a reason of its own (the vCPU threads changed, as at hot-plug).
	f.engine.setVcpuCount(2);
	t.same(cpusOf(b), [1], 'vCPU 1 keeps its CPU');
	await new Promise((r) => setTimeout(r, 100));
	const events = f.events();
	t.notOk(
		events.some((e) => e.event === 'float'),
		'it never floated meanwhile',
	);
	t.equal(events.filter((e) => e.event === 'applied').length, 1, 'the pin applied once: the next table starts after its record');
	t.match(feedback(f.shm, 1), {state: 1, pcpu: 1, hintTid: 360}, "vCPU 1's slot says so");
});

t.test('a reset takes back what the fast path applied', async (t) => {
	const f = await setUp(t);
	const b = f.tids[1] ?? 0;
	f.guest.append({tid: 320, mask: maskOf(1)});
	f.kickAndHold();
	t.same(cpusOf(b), [1]);
	f.engine.reset('test');
	t.same(cpusOf(b), [0, 1], 'vCPU 1 floats at once');
	t.match(feedback(f.shm, 1), {state: 0, pcpu: -1}, 'and its slot says so');
	t.ok(
		f.events().some((e) => e.event === 'reset'),
		'the reset is logged',
	);
});

t.test("a pin the fast path follows gets a table of its own once it has lasted four of the engine's ticks", async (t) => {
	const f = await setUp(t, 50);
	const [a = 0, b = 0] = f.tids;
	f.guest.append({tid: 330, mask: maskOf(1)});
	await f.kick();
	await f.until('the pin is applied', () => cpusOf(b).length === 1);
	await new Promise((r) => setTimeout(r, 400)); // eight timer ticks
	f.guest.append({tid: 331, mask: maskOf(0)});
	await f.kick();
	await f.until('the second pin is applied', () => cpusOf(a).length === 1);
	t.same([cpusOf(a), cpusOf(b)], [[0], [1]], 'each vCPU has a CPU of its own');
	const applied = f.events().filter((e) => e.event === 'applied');
	t.same(
		applied.map((e) => e['fast']),
		[true, true],
		'the second pin, which the first table did not cover, took the fast path too',
	);
});

t.test('a pin let go within four ticks keeps its way back: no new table, the next pin on the fast path', async (t) => {
	const f = await setUp(t, 50);
	const b = f.tids[1] ?? 0;
	let published = 0;
	const publish = f.fast.publish.bind(f.fast);
	f.fast.publish = (bytes: Uint8Array): boolean => {
		published++;
		return publish(bytes);
	};
	for (let round = 0; round < 3; round++) {
		f.guest.append({tid: 340, mask: maskOf(1)});
		await f.kick();
		await f.until('the pin is applied', () => cpusOf(b).length === 1);
		await new Promise((r) => setTimeout(r, 110)); // two timer ticks
		f.guest.append({tid: 340, mask: maskOf(0, 1)});
		await f.kick();
		await f.until('the release is applied', () => cpusOf(b).length === 2);
	}
	t.equal(published, 0, 'the table published before the first pin followed all of them');
	t.same(
		f
			.events()
			.filter((e) => e.event === 'applied')
			.map((e) => e['fast']),
		[true, true, true, true, true, true],
		'three pins and their releases, each on the fast path',
	);
});

t.test('a fresh table refused over a change the fast path applied meanwhile: the engine takes it, decides, publishes', async (t) => {
	const f = await setUp(t, 50);
	const [a = 0, b = 0] = f.tids;
	f.guest.append({tid: 350, mask: maskOf(1)});
	await f.kick();
	await f.until('the pin is applied', () => cpusOf(b).length === 1);
	// The timer's fresh table is published in place of the current one; just before, the pin's
	// thread exits and the fast path applies the way back, which the engine has not taken.
	const publish = f.fast.publish.bind(f.fast);
	let raced: boolean | undefined;
	f.fast.publish = (bytes: Uint8Array): boolean => {
		if (raced === undefined) {
			f.guest.append({tid: 350, kind: AffinityKind.exit, mask: maskOf()});
			f.kickAndHold();
			raced = publish(bytes);
			return raced;
		}
		return publish(bytes);
	};
	await f.until('the way back is adopted', () => f.events().some((e) => e.event === 'float' && e['vcpu'] === 1));
	t.equal(raced, false, 'the fresh table was refused');
	t.same(cpusOf(b), [0, 1], 'vCPU 1 floats again');
	t.same(
		f.events().filter((e) => e.event === 'internal-error'),
		[],
		'no internal error',
	);
	f.guest.append({tid: 351, mask: maskOf(0)});
	await f.kick();
	await f.until('a later pin is applied', () => cpusOf(a).length === 1);
	t.equal(
		f
			.events()
			.filter((e) => e.event === 'applied')
			.at(-1)?.['fast'],
		true,
		'by the fast path: a table is current again',
	);
});

t.test('records the table does not cover go to the engine, which decides and publishes the next table', async (t) => {
	const f = await setUp(t);
	const [a = 0, b = 0] = f.tids;
	// A pin and, in the same batch, the same thread moving to another vCPU: the fast path applies the first and leaves the second.
	f.guest.append({tid: 340, mask: maskOf(1)}, {tid: 340, mask: maskOf(0)});
	await f.kick();
	await f.until('the move applied', () => cpusOf(a).length === 1 && cpusOf(a)[0] === 1);
	t.same(cpusOf(b), [0], 'vCPU 1 floats on what is left');
	t.same(
		f
			.events()
			.filter((e) => e.event === 'applied')
			.map((e) => e['fast']),
		[true, false],
		'the pin by the fast path, the move by the engine',
	);
	t.match(f.fast.stats(), {notCovered: 1});
	t.match(
		f.events().find((e) => e.event === 'pin'),
		{vcpu: 1, tid: 340, comm: 'worker'},
		"the fast path's pin is logged with the thread's name, though its table ended",
	);
	// The engine's table covers the next change again.
	f.guest.append({tid: 340, kind: AffinityKind.exit, mask: maskOf()});
	await f.kick();
	await f.until('the release applied', () => cpusOf(a).length === 2);
	t.equal(
		f
			.events()
			.filter((e) => e.event === 'applied')
			.at(-1)?.['fast'],
		true,
		'the release took the fast path',
	);
});

t.test('records no kick announced to the fast path are not left waiting', async (t) => {
	const f = await setUp(t, 50);
	const b = f.tids[1] ?? 0;
	// The guest's kick took the agent channel (a KICK frame): the engine is woken, not the fast path.
	f.guest.append({tid: 350, mask: maskOf(1)});
	f.engine.kick();
	t.same(cpusOf(b), [1], 'the engine had the fast path look at once');
	t.equal(f.engine.decisions.scans, 1);
	t.equal(
		f
			.events()
			.filter((e) => e.event === 'applied')
			.at(-1)?.['fast'],
		true,
		'and the fast path applied it',
	);
	// No kick at all: the engine's timer finds the record.
	f.guest.append({tid: 350, kind: AffinityKind.exit, mask: maskOf()});
	await f.until('the release applied without any kick', () => cpusOf(b).length === 2);
	t.equal(f.engine.decisions.scans, 2);
});
