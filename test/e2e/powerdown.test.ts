// End to end: the ACPI power button (QMP system_powerdown, what `virsh
// shutdown` sends) powers the default guest off; pvrun exits 0 like QEMU and
// leaves nothing behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {connectQmp} from '../../src/qemu/qmp.js';
import {runDirNames} from '../helpers/host-view.js';
import {bootThroughPvrun} from '../helpers/pvrun-vm.js';

t.test('system_powerdown powers the guest off; pvrun exits 0', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-powerdown-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const qmpSocket = path.join(dir, 'user-qmp.sock');
	const {guest} = await bootThroughPvrun(t, {run: 'sleep,600', qemuArgs: ['-qmp', `unix:${qmpSocket},server=on,wait=off`]});
	await guest.waitFor('pvrun-guest: ready', 60_000);
	await new Promise((r) => setTimeout(r, 1000)); // acpid started before the ready line; let it open its devices
	const qmp = await connectQmp(qmpSocket, {timeoutMs: 10_000});
	const started = performance.now();
	try {
		await qmp.execute('system_powerdown');
	} finally {
		await qmp.close().catch(() => {});
	}
	await guest.waitFor('pvrun-guest: power button: powering off', 20_000);
	const code = await Promise.race([guest.exited, new Promise((r) => setTimeout(() => r('still running'), 20_000).unref())]);
	t.equal(code, 0, 'QEMU (and so pvrun) exit 0 after the guest powers off');
	t.comment(`powered off ${((performance.now() - started) / 1000).toFixed(1)} s after system_powerdown`);
	t.same(
		fs.readdirSync('/dev/shm').filter((n) => n.startsWith(`pvrun-${guest.pid}-`)),
		[],
		'no shared memory left',
	);
	t.same(
		runDirNames().filter((n) => n.startsWith(`pvrun-${guest.pid}-`)),
		[],
		'no run directory left',
	);
});
