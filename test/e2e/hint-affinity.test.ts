// End to end, the heart of pvrun: a guest process pinned with taskset to
// vCPU 1 gives that vCPU's host thread a CPU of its own within 2 s, and when
// the process exits the vCPU floats again. Everything is observed from the
// host: /proc/<qemu>/task/<tid>/status and the files pvrun leaves behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {bootGuest, pvrunCommand} from '../../src/guest/boot.js';
import {ownCpus, threadCpusAllowed} from '../../src/host/cpus.js';
import {ensureImage} from '../../src/image/build.js';
import {readEventLog} from '../../src/vm/event-log.js';



/** Poll `check` every 20 ms until it returns true or `ms` pass; resolves to the elapsed ms or -1. */
async function within(ms: number, check: () => boolean): Promise<number> {
	const started = performance.now();
	while (performance.now() - started < ms) {
		if (check()) return performance.now() - started;
		await new Promise((r) => setTimeout(r, 20));
	}
	return check() ? performance.now() - started : -1;
}

t.test('taskset in the guest re-pins the vCPU thread on the host, and releases it', async (t) => {
	const image = await ensureImage();
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-e2e-'));
	const logFile = path.join(dir, 'events.jsonl');
	const guest = bootGuest({
		kernel: image.kernel,
		initrd: image.initrd,
		cpus: 2,
		run: '/usr/share/pvrun/pin-busy.sh,0x2,4',
		launcher: pvrunCommand('--pv-log', logFile),
	});
	t.teardown(async () => {
		await guest.stop();
		fs.rmSync(dir, {recursive: true, force: true});
	});

	await guest.waitFor('pin-busy: pinned', 60_000);
	const events = readEventLog(logFile);
	const start = events.find((e) => e.event === 'start');
	const vcpus = events.find((e) => e.event === 'vcpus');
	t.ok(start && vcpus, 'pvrun logged its start and the vCPU threads');
	const qemuPid = Number(start?.['qemuPid']);
	const threads = (vcpus?.['threads'] ?? []) as number[];
	t.equal(threads.length, 2, 'two vCPU threads');
	const [vcpu0 = 0, vcpu1 = 0] = threads;
	t.same(threads.map((tid) => fs.readFileSync(`/proc/${qemuPid}/task/${tid}/comm`, 'utf8').trim()), ['CPU 0/TCG', 'CPU 1/TCG'], 'vCPU threads carry readable names (debug-threads=on)');
	const allowed = (id: number) => threadCpusAllowed(qemuPid, id);

	const pinnedAfter = await within(2000, () => {
		const mine = allowed(vcpu1);
		return mine.length === 1 && !allowed(vcpu0).includes(mine[0] ?? -1);
	});
	t.comment(`vCPU 1 exclusive ${pinnedAfter.toFixed(0)} ms after the guest's taskset line; vCPU 1: ${allowed(vcpu1).join(',')} vCPU 0: ${allowed(vcpu0).join(',')}`);
	t.ok(pinnedAfter >= 0, 'within 2 s vCPU 1 has exactly one CPU that no other vCPU thread has');
	t.ok(readEventLog(logFile).some((e) => e.event === 'pin' && e['vcpu'] === 1), 'the decision is in the event log');
	const exclusiveCpu = allowed(vcpu1)[0] ?? -1;
	t.notOk(threadCpusAllowed(guest.pid, guest.pid).includes(exclusiveCpu), `pvrun's own thread stays off the exclusive CPU ${exclusiveCpu}`);

	await guest.waitFor('pin-busy: stopped', 30_000);
	const floatAfter = await within(2000, () => allowed(vcpu1).length > 1);
	t.comment(`vCPU 1 floats ${floatAfter.toFixed(0)} ms after the process exited: ${allowed(vcpu1).join(',')}`);
	t.ok(floatAfter >= 0, 'after the guest process exits, vCPU 1 floats again');
	t.same(allowed(vcpu1), ownCpus(), 'floating on every CPU pvrun may use');

	await guest.waitFor('pin-busy: done', 30_000);
	t.equal(await guest.exited, 0, 'the guest powers off; pvrun exits 0 like QEMU');
	const leftovers = fs.readdirSync('/dev/shm').filter((n) => n.startsWith(`pvrun-${guest.pid}-`));
	t.same(leftovers, [], 'no shared-memory file left behind');
	const runDirs = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`pvrun-${guest.pid}-`));
	t.same(runDirs, [], 'no socket directory left behind');
	const exit = readEventLog(logFile).find((e) => e.event === 'exit');
	t.ok(exit, 'pvrun logged its exit');
});
