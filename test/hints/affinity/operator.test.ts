// The operator wins: with real processes standing in for vCPU threads (and a
// third for QEMU's main thread), an affinity set behind the engine's back
// (as `taskset` or `virsh vcpupin --live` set it) makes the engine leave that
// vCPU alone, grant nobody its CPU, and say so once; setting it back to every
// allowed CPU hands it back; a thread merely widened is placed again. The
// same for QEMU's other threads (virsh emulatorpin), with the fast path on.
// An operator's taskset just before a hint for that vCPU is not overwritten.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, {type Test} from 'tap';
import {ownCpus, threadCpusAllowed} from '../../../src/host/cpus.js';
import {getThreadAffinity, setThreadAffinity} from '../../../src/host/libc.js';
import {Pinner} from '../../../src/pin/pinner.js';
import {covers} from '../../../src/pin/operator.js';
import {RingReader} from '../../../src/shm/reader.js';
import {EventLog, readEventLog, type LoggedEvent} from '../../../src/vm/event-log.js';
import {AffinityEngine} from '../../../src/hints/affinity/engine.js';
import {attachFastPath, feedback, sleeper, standIn, waitUntil} from '../../helpers/fast.js';
import {within} from '../../helpers/pvrun-vm.js';
import {Guest, area, maskOf} from '../../helpers/guest-ring.js';

const cpus = ownCpus().slice(0, 2);
const skip = cpus.length < 2 ? 'needs two CPUs' : false;
const [c0 = 0, c1 = 1] = cpus;

/** An engine over stand-in processes for two vCPU threads and QEMU's main thread; cleaned up with `t`. */
async function engineFor(t: Test, fast: boolean, lookMs = 50) {
	const vcpus = [sleeper(t).pid ?? 0, sleeper(t).pid ?? 0];
	const qemu = sleeper(t).pid ?? 0;
	const shm = area(t, 2);
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-operator-'));
	const logFile = path.join(dir, 'events.jsonl');
	const log = new EventLog(logFile, false);
	// QEMU's "other threads" are the stand-in's own: its main thread.
	const pinner = new Pinner(new Map(vcpus.map((tid, v) => [v, tid])), qemu, false, standIn);
	const engine = new AffinityEngine(shm, new RingReader(shm), pinner, cpus, 2, log, undefined, getThreadAffinity, qemu);
	t.teardown(() => {
		engine.stop();
		log.close();
		fs.rmSync(dir, {recursive: true, force: true});
	});
	if (fast) await attachFastPath(t, shm, engine);
	engine.start(lookMs);
	const events = (name: string): LoggedEvent[] => readEventLog(logFile).filter((e) => e.event === name);
	return {vcpus, qemu, shm, guest: new Guest(shm), engine, events};
}

for (const fast of [false, true])
	t.test(`a vCPU pinned outside pvrun is left alone until it may run everywhere again (fast path ${fast ? 'on' : 'off'})`, {skip}, async (t) => {
		const {vcpus, guest, engine, events} = await engineFor(t, fast);
		const [v0 = 0, v1 = 0] = vcpus;
		const cpusOf = (tid: number) => threadCpusAllowed(tid, tid);
		await waitUntil('both vCPUs float on both CPUs', () => vcpus.every((tid) => cpusOf(tid).length === 2), 2000);

		setThreadAffinity(v1, [c0]); // taskset -p, or virsh vcpupin --live 1 0
		await waitUntil("the engine notices the operator's pin", () => events('operator').some((e) => e['vcpu'] === 1 && e['held'] === true), 2000);
		t.same(
			events('operator').map((e) => [e['vcpu'], e['cpus'], e['held']]),
			[[1, [c0], true]],
			'logged once, with the CPUs the kernel has',
		);

		// A guest thread asks for vCPU 0 alone, then one for vCPU 1.
		guest.append({tid: 100, mask: maskOf(0)});
		engine.kick();
		await waitUntil('vCPU 0 gets a CPU of its own', () => cpusOf(v0).length === 1, 2000);
		t.same(cpusOf(v0), [c1], "vCPU 0's own CPU is not the one the operator put vCPU 1 on");
		guest.append({tid: 101, mask: maskOf(1)});
		engine.kick();
		await new Promise((r) => setTimeout(r, 300));
		t.same(cpusOf(v1), [c0], "vCPU 1 stays where the operator put it: no grant, no pin of pvrun's");
		t.notOk(
			events('pin').some((e) => e['vcpu'] === 1),
			'no pin for the held vCPU',
		);
		t.equal(events('operator').length, 1, 'said once, not at every look');

		setThreadAffinity(v1, cpus); // virsh vcpupin --live 1 0-1
		await waitUntil('handed back', () => events('operator').some((e) => e['vcpu'] === 1 && e['held'] === false), 2000);
		await waitUntil('vCPU 1 gets the CPU its hint asked for... or floats beside vCPU 0', () => !(cpusOf(v1).length === 2), 2000);
		t.ok(events('pin').some((e) => e['vcpu'] === 1) || events('deny').length > 0, 'its hint is served again (granted or denied by the policy)');

		// Someone widens vCPU 0's thread (every CPU): not an operator's pin: pvrun puts its grant back.
		setThreadAffinity(v0, cpus);
		const exclusive = (tid: number) => cpusOf(tid).length === 1;
		await waitUntil("vCPU 0's grant put back", () => exclusive(v0), 2000);
		t.notOk(
			events('operator').some((e) => e['vcpu'] === 0),
			'a widened thread is no operator pin',
		);
	});

for (const fast of [false, true])
	t.test(`a taskset between two looks, just before a hint for that vCPU, is kept (fast path ${fast ? 'on' : 'off'})`, {skip}, async (t) => {
		// No look at operators on the timer while the test runs: only the hint's own check can see it.
		const {vcpus, shm, guest, engine, events} = await engineFor(t, fast, 60_000);
		const v1 = vcpus[1] ?? 0;
		const cpusOf = (tid: number) => threadCpusAllowed(tid, tid);
		t.same(cpusOf(v1), cpus, 'vCPU 1 floats');
		setThreadAffinity(v1, [c0]);
		guest.append({tid: 102, mask: maskOf(1)});
		engine.kick();
		await waitUntil('the engine holds vCPU 1 for the operator', () => events('operator').some((e) => e['vcpu'] === 1 && e['held'] === true), 2000);
		t.same(cpusOf(v1), [c0], "the operator's CPUs stay");
		t.notOk(
			events('pin').some((e) => e['vcpu'] === 1),
			'no pin of vCPU 1 logged',
		);
		t.match(feedback(shm, 1), {state: 0, pcpu: -1}, 'and the guest is told vCPU 1 has no CPU of its own');
	});

t.test("QEMU's other threads pinned outside pvrun (emulatorpin) are left alone, then taken back", {skip}, async (t) => {
	const {qemu, guest, engine, events} = await engineFor(t, false);
	const cpusOf = (tid: number) => threadCpusAllowed(tid, tid);
	guest.append({tid: 100, mask: maskOf(0)});
	engine.kick();
	await waitUntil("QEMU's main thread off vCPU 0's CPU", () => cpusOf(qemu).length === 1, 2000);
	const floating = cpusOf(qemu)[0] ?? -1;
	const other = floating === c0 ? c1 : c0;
	setThreadAffinity(qemu, [other]); // virsh emulatorpin --live: onto the granted CPU, even
	await waitUntil('noticed', () => events('operator').some((e) => e['threads'] === 'emulator' && e['held'] === true), 2000);
	guest.append({tid: 100, kind: 2, mask: maskOf()});
	guest.append({tid: 101, mask: maskOf(1)});
	engine.kick();
	await new Promise((r) => setTimeout(r, 400));
	t.same(cpusOf(qemu), [other], "pvrun does not move QEMU's other threads while the operator holds them");
	setThreadAffinity(qemu, cpus);
	await waitUntil('taken back', () => events('operator').some((e) => e['threads'] === 'emulator' && e['held'] === false), 2000);
	const placedAgain = await within(2000, () => !covers(cpusOf(qemu), cpus));
	t.ok(placedAgain >= 0, "pvrun places QEMU's other threads again: off vCPU 1's granted CPU");
});
