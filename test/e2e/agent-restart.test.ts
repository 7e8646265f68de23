// End to end, the agent restarting inside the guest: pvrun notices the port
// closing (hints reset), says hello to the new agent, pushes the affinity
// program again, and hints work as before.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {bootGuest, pvrunCommand} from '../../src/guest/boot.js';
import {threadCpusAllowed} from '../../src/host/cpus.js';
import {ensureImage} from '../../src/image/build.js';
import {readEventLog} from '../../src/vm/event-log.js';

t.test('a restarted agent gets its program again and hints keep working', async (t) => {
	const image = await ensureImage();
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-restart-'));
	const logFile = path.join(dir, 'events.jsonl');
	const guest = bootGuest({
		kernel: image.kernel,
		initrd: image.initrd,
		cpus: 2,
		run: 'sleep,3;kill,$(pidof,pvagent);sleep,1;pvagent&sleep,3;/usr/share/pvrun/pin-busy.sh,0x2,2',
		launcher: pvrunCommand('--pv-log', logFile),
	});
	t.teardown(async () => {
		await guest.stop();
		fs.rmSync(dir, {recursive: true, force: true});
	});
	await guest.waitFor('pin-busy: pinned', 60_000);
	const events = readEventLog(logFile);
	const sequence = events.filter((e) => e.event === 'agent' || e.event === 'program').map((e) => (e.event === 'agent' ? String(e['state']) : 'program'));
	t.same(sequence, ['hello', 'program', 'closed', 'hello', 'program'], 'hello, load; port closed; hello, load again');
	const qemuPid = Number(events.find((e) => e.event === 'start')?.['qemuPid']);
	const [vcpu0 = 0, vcpu1 = 0] = (events.find((e) => e.event === 'vcpus')?.['threads'] ?? []) as number[];
	let exclusive = false;
	for (let i = 0; i < 100 && !exclusive; i++) {
		const mine = threadCpusAllowed(qemuPid, vcpu1);
		exclusive = mine.length === 1 && !threadCpusAllowed(qemuPid, vcpu0).includes(mine[0] ?? -1);
		if (!exclusive) await new Promise((r) => setTimeout(r, 20));
	}
	t.ok(exclusive, 'the new agent\'s hint gives vCPU 1 a CPU of its own within 2 s');
	await guest.waitFor('pin-busy: done', 30_000);
	t.equal(await guest.exited, 0);
});
