// End to end, how a pvrun VM ends: QEMU refusing its arguments, QEMU killed
// with SIGKILL, and pvrun asked to stop with SIGTERM. Each time pvrun exits
// with QEMU's status and leaves no QEMU, /dev/shm file or socket directory.
import fs from 'node:fs';
import os from 'node:os';
import {execa} from 'execa';
import t, {type Test} from 'tap';
import {bootGuest, pvrunCommand, readyLine} from '../../src/guest/boot.js';
import {ensureImage} from '../../src/image/build.js';
import {bootThroughPvrun, vmFromLog} from '../helpers/pvrun-vm.js';

/** pvrun's files for the pvrun process `pid`: shared memory and run directories. */
const leftovers = (pid: number) => [
	...fs.readdirSync('/dev/shm').filter((n) => n.startsWith(`pvrun-${pid}-`)),
	...fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`pvrun-${pid}-`)),
];

const alive = (pid: number) => {
	try {
		process.kill(pid, 0);
		return true;
	} catch {
		return false;
	}
};

t.test('QEMU refusing its arguments: its status, one line from QEMU, nothing left', async (t) => {
	const [node = 'node', ...cli] = pvrunCommand();
	const started = performance.now();
	const run = execa(node, [...cli, '-nodefaults', '-pvrun-no-such-option'], {reject: false, timeout: 30_000});
	const r = await run;
	t.equal(r.exitCode, 1, 'QEMU exits 1, so does pvrun');
	t.ok(performance.now() - started < 5000, 'pvrun does not linger after QEMU is gone');
	t.match(r.stderr, /qemu-system-x86_64: -pvrun-no-such-option: invalid option/);
	t.same(leftovers(run.pid ?? 0), []);
});

/** Boot the default guest through pvrun, sleeping; resolve once the agent program is loaded. */
async function bootSleeping(t: Test) {
	const {guest, logFile} = await bootThroughPvrun(t, {run: 'sleep,600'});
	await guest.waitFor(readyLine, 60_000);
	const {qemuPid} = await vmFromLog(logFile);
	t.ok(qemuPid > 0 && alive(qemuPid), 'QEMU runs');
	t.ok(leftovers(guest.pid).length >= 2, 'while it runs, pvrun has its shared memory and run directory');
	return {guest, qemuPid};
}

t.test('kill -9 of QEMU: pvrun reports 137 and cleans up', async (t) => {
	const {guest, qemuPid} = await bootSleeping(t);
	process.kill(qemuPid, 'SIGKILL');
	t.equal(await guest.exited, 137, 'exit status 128 + 9, as a shell reports a SIGKILLed QEMU');
	t.same(leftovers(guest.pid), [], 'no /dev/shm file or socket directory left');
});

t.test('SIGTERM to pvrun reaches QEMU; pvrun exits with its status and cleans up', async (t) => {
	const {guest, qemuPid} = await bootSleeping(t);
	process.kill(guest.pid, 'SIGTERM');
	const code = await guest.exited;
	t.equal(code, 0, 'QEMU stops on SIGTERM with status 0 ("terminating on signal 15"), so does pvrun');
	t.notOk(alive(qemuPid), 'QEMU is gone');
	t.same(leftovers(guest.pid), []);
});

t.test('an event log that cannot be written (full disk) stops logging, not the VM', async (t) => {
	const image = await ensureImage();
	const guest = bootGuest({kernel: image.kernel, initrd: image.initrd, cpus: 2, run: '/usr/share/pvrun/pin-busy.sh,0x2,1', launcher: pvrunCommand('--pv-log', '/dev/full')});
	t.teardown(() => guest.stop());
	await guest.waitFor('pin-busy: done', 60_000);
	t.equal(await guest.exited, 0, 'the VM ran to its end and pvrun exited 0');
	t.match(guest.stderr(), /pvrun: event log stopped: .*ENOSPC/);
	t.equal(guest.stderr().match(/event log stopped/g)?.length, 1, 'said once');
});
