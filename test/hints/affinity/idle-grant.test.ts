// An idle grant that gets busy again, with real processes standing in for
// vCPU threads and the engine's real usage sampling: vCPU 0's thread first
// sleeps (its grant is judged idle and shared), then spins beside three busy
// floating vCPUs on the same two CPUs. Sharing, it runs about half the time,
// so judged by CPU time alone it never looked busy again and kept sharing for
// good; judged by the time it wants a CPU, it gets its CPU back.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, {type Test} from 'tap';
import {ownCpus, threadCpusAllowed} from '../../../src/host/cpus.js';
import {Pinner} from '../../../src/pin/pinner.js';
import {VcpuUsage, threadDemandNs} from '../../../src/pin/usage.js';
import type {ShmArea} from '../../../src/shm/area.js';
import {AffinityKind} from '../../../src/shm/layout.js';
import {RingReader} from '../../../src/shm/reader.js';
import {EventLog, readEventLog} from '../../../src/vm/event-log.js';
import {AffinityEngine} from '../../../src/hints/affinity/engine.js';
import {attachFastPath, sleeper, standIn, waitUntil} from '../../helpers/fast.js';
import {Guest, area, maskOf} from '../../helpers/guest-ring.js';

const cpus = ownCpus().slice(0, 2);

/**
 * A hint engine over real stand-ins: `vcpus` are the vCPU "threads" (processes),
 * a sleeper stands in for QEMU, the usage is sampled for real; stopped and
 * cleaned up with the test.
 */
function engineFor(t: Test, vcpus: number[]): {guest: Guest; shm: ShmArea; engine: AffinityEngine; logFile: string} {
	const qemu = sleeper(t).pid ?? 0;
	const shm = area(t, vcpus.length);
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-idle-grant-'));
	const logFile = path.join(dir, 'events.jsonl');
	const log = new EventLog(logFile, false);
	const pinner = new Pinner(new Map(vcpus.map((tid, v) => [v, tid])), qemu, false, standIn);
	// The stand-ins are processes: each one's demand is its own (pid = tid).
	const engine = new AffinityEngine(
		shm,
		new RingReader(shm),
		pinner,
		cpus,
		vcpus.length,
		log,
		new VcpuUsage(qemu, 250, (_pid, tid) => threadDemandNs(tid, tid)),
	);
	t.teardown(() => {
		engine.stop();
		log.close();
		fs.rmSync(dir, {recursive: true, force: true});
	});
	return {guest: new Guest(shm), shm, engine, logFile};
}

/** vCPU 0's thread may run on one CPU only, and no other vCPU thread may run there. */
function ownsItsCpu(vcpus: number[]): boolean {
	const own = threadCpusAllowed(vcpus[0] ?? 0, vcpus[0] ?? 0);
	return own.length === 1 && vcpus.slice(1).every((tid) => !threadCpusAllowed(tid, tid).includes(own[0] ?? -1));
}

const waitFor = (what: string, ok: () => boolean, ms: number): Promise<void> => waitUntil(what, ok, ms, 10);

t.test("a grant judged idle is its vCPU's own again once that vCPU is busy, even while it shares", {skip: cpus.length < 2 && 'needs two CPUs'}, async (t) => {
	const spawnSh = (script: string): number => {
		const child = spawn('sh', ['-c', script], {stdio: 'ignore'});
		t.teardown(() => void child.kill('SIGKILL'));
		return child.pid ?? 0;
	};
	// vCPU 0: asleep for 1.5 s (sh waits for its sleep child), then busy in sh itself.
	const vcpus = [spawnSh('sleep 1.5; while :; do :; done'), ...[1, 2, 3].map(() => spawnSh('while :; do :; done'))];
	const {guest, engine, logFile} = engineFor(t, vcpus);
	engine.start(250);
	guest.append({tid: 500, mask: maskOf(0)}); // a guest thread pins itself to vCPU 0
	engine.kick();
	const usage = () => readEventLog(logFile).filter((e) => e.event === 'usage');
	const granted = () => ownsItsCpu(vcpus);
	await waitFor('vCPU 0 gets a CPU of its own', granted, 2000);
	await waitFor('its grant is judged idle while its thread sleeps', () => usage().some((e) => e['idle'] === true), 1500);
	t.notOk(granted(), 'the floating vCPUs share its CPU');
	await waitFor('it is judged busy again once it spins', () => usage().some((e) => e['idle'] === false), 3500);
	t.ok(granted(), 'and the CPU is its own again: no other vCPU thread may run there');
	t.match(usage().at(-1), {vcpu: 0, idle: false});
	const judged = usage().length;
	await new Promise((r) => setTimeout(r, 800)); // three more turns of the engine's timer
	t.equal(usage().length, judged, 'and keeps it: spinning on a CPU of its own, it is not judged idle again');
	t.ok(granted(), 'still its own');
});

// The benchmark's pattern: a warm-up process pins itself to vCPU 0 and exits,
// and within a turn of the slow timer the measured one pins itself there. The
// warm-up's grant was judged idle; that judgement must not carry over, or the
// measured worker starts out sharing its CPU with the busy floating vCPUs.
for (const withFastPath of [false, true]) {
	t.test(
		`a released idle grant's judgement does not carry over to the vCPU's next grant (${withFastPath ? 'the fast path decides' : 'the JavaScript thread decides'})`,
		{skip: cpus.length < 2 && 'needs two CPUs'},
		async (t) => {
			const vcpus = [sleeper(t), sleeper(t), sleeper(t)].map((c) => c.pid ?? 0); // vCPU 0 sleeps: its grant idles
			const {guest, shm, engine, logFile} = engineFor(t, vcpus);
			const kick = withFastPath ? (await attachFastPath(t, shm, engine)).kick : async (): Promise<void> => engine.kick();
			engine.start(250);
			const events = () => readEventLog(logFile);
			const own = () => threadCpusAllowed(vcpus[0] ?? 0, vcpus[0] ?? 0);
			const exclusive = () => ownsItsCpu(vcpus);
			guest.append({tid: 500, tgid: 500, mask: maskOf(0)}); // the warm-up pins itself
			await kick();
			await waitFor('the warm-up gets a CPU of its own', exclusive, 2000);
			await waitFor('its grant is judged idle (its vCPU sleeps)', () => events().some((e) => e.event === 'usage' && e['idle'] === true), 1500);
			t.notOk(exclusive(), 'and shared');
			guest.append({tid: 500, tgid: 500, kind: AffinityKind.exit, mask: maskOf()}); // the warm-up exits
			await kick();
			await waitFor('vCPU 0 floats', () => own().length === cpus.length, 2000);
			const repinned = performance.now();
			guest.append({tid: 501, tgid: 501, mask: maskOf(0)}); // the measured worker pins itself
			await kick();
			await waitFor('vCPU 0 is pinned again', () => own().length === 1, 2000);
			// A fresh grant is judged 250-500 ms after it is made (VcpuUsage's window): look well before.
			t.ok(performance.now() - repinned < 200, 'checked before the new grant can be judged');
			t.ok(exclusive(), 'the new grant starts with the CPU to itself');
			const pin = events()
				.filter((e) => e.event === 'pin')
				.at(-1);
			t.match(pin, {vcpu: 0, tid: 501, shared: false}, 'and the log says so');
			if (withFastPath)
				t.match(
					events()
						.filter((e) => e.event === 'applied')
						.at(-1),
					{fast: true},
					'the fast path applied it',
				);
			const judged = events().filter((e) => e.event === 'usage').length;
			await waitFor('the new grant is judged on its own (its vCPU sleeps too)', () => events().filter((e) => e.event === 'usage').length > judged, 1500);
			t.match(
				events()
					.filter((e) => e.event === 'usage')
					.at(-1),
				{vcpu: 0, idle: true},
			);
			t.notOk(exclusive(), 'and shares, judged idle afresh');
		},
	);
}
