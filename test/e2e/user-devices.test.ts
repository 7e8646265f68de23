// End to end, what a user's own command line brings: an IVSHMEM device of the
// user's own (the agent must take pvrun's, not the first one it finds, and
// leave the user's memory alone), and a guest without an agent (pvrun must
// say once that hints are inactive, counting only the time the guest runs,
// and pvrun status must show it).
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import t from 'tap';
import {pvrunCommand} from '../../src/guest/boot.js';
import {readEventLog} from '../../src/vm/event-log.js';
import {bootThroughPvrun, hasExclusiveCpu, vmFromLog, within} from '../helpers/pvrun-vm.js';
import {connectQmpLine} from '../helpers/qmp-line.js';
import {helperOf, killIfRunning} from '../helpers/host-view.js';

const [node = 'node', ...cli] = pvrunCommand();

t.test("a user's own IVSHMEM device: the agent takes pvrun's, hints work, the user's memory is untouched", async (t) => {
	const userShm = `/dev/shm/pvrun-test-user-${process.pid}`;
	const pattern = 0xab;
	fs.writeFileSync(userShm, Buffer.alloc(1024 * 1024, pattern));
	t.teardown(() => fs.rmSync(userShm, {force: true}));
	// The guest lists PCI devices in sysfs's order, which follows a hash of their names:
	// 0000:00:17.0 comes first of all (pvrun's at slot 0x1f, or at a low slot, come later).
	const qemuArgs = [
		'-object',
		`memory-backend-file,id=usermem,size=1M,share=on,mem-path=${userShm}`,
		'-device',
		'ivshmem-plain,id=userivshmem,memdev=usermem,addr=0x17',
	];
	const {guest, logFile} = await bootThroughPvrun(t, {run: '/usr/share/pvrun/pin-busy.sh,0x2,4', qemuArgs});
	await guest.waitFor('pin-busy: pinned', 90_000);
	const {qemuPid, threads} = await vmFromLog(logFile);
	const pinned = await within(3000, () => hasExclusiveCpu(qemuPid, threads, 1));
	t.ok(pinned >= 0, "vCPU 1 gets a CPU of its own: the agent found pvrun's shared memory");
	t.ok(
		readEventLog(logFile).some((e) => e.event === 'agent' && e['state'] === 'hello' && e['shm'] === true),
		'the agent said hello with the shared memory mapped',
	);
	t.notOk(
		guest.lines.some((l) => l.includes('not layout')),
		"the agent never took the user's device for pvrun's",
		{console: guest.lines.slice(-20)},
	);
	const bytes = fs.readFileSync(userShm);
	t.ok(
		bytes.every((b) => b === pattern),
		"the user's shared memory holds exactly what the user wrote",
	);
});

t.test('a guest without an agent: "hints inactive" once, after --pv-agent-wait of guest time; pvrun status shows it', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-e2e-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const qmp = path.join(dir, 'user.qmp');
	// No kernel: the firmware finds nothing to boot and the guest idles; no agent will ever answer.
	const child = spawn(node, [...cli, '--pv-agent-wait', '2', '-nodefaults', '-display', 'none', '-S', '-qmp', `unix:${qmp},server=on,wait=off`], {
		stdio: ['ignore', 'ignore', 'pipe'],
	});
	let stderr = '';
	child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
	const pid = child.pid ?? 0;
	const exited = new Promise((resolve) => child.once('exit', resolve));
	t.teardown(async () => {
		killIfRunning(pid);
		await exited;
	});
	await within(10_000, () => fs.existsSync(qmp) && helperOf(pid) > 0);
	const monitor = await connectQmpLine(qmp);
	t.teardown(() => monitor.close());
	await new Promise((r) => setTimeout(r, 3500));
	t.notMatch(stderr, /hints inactive/, 'nothing said while QEMU waits under -S (no guest time)');
	const status = async () => {
		const r = await execa(node, [...cli, 'status', '--json'], {reject: false});
		return (JSON.parse(r.stdout) as {vms: Array<{qemuPid: number; hints?: {state: string; reason?: string}}>}).vms.find((v) => v.qemuPid === pid)?.hints;
	};
	t.same(await status(), {state: 'waiting', reason: 'no guest agent has answered yet'}, 'pvrun status: waiting for an agent');
	await monitor.execute('cont');
	const said = await within(8000, () => /hints inactive/.test(stderr), 100);
	t.ok(said >= 0, `said ${Math.round(said)} ms after the guest started running`);
	t.match(
		stderr,
		/^pvrun: hints inactive: no pvrun guest agent answered within 2 s of guest time .*; the VM runs as plain QEMU would$/m,
		'one line on stderr saying what and what to check',
	);
	t.same(await status(), {state: 'inactive', reason: 'no guest agent answered within 2 s of guest time'}, 'pvrun status says the hints are inactive, and why');
	await new Promise((r) => setTimeout(r, 1500));
	t.equal(stderr.match(/hints inactive/g)?.length, 1, 'said once');
	await monitor.execute('quit');
	await exited;
});
