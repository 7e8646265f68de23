// End to end, how a pvrun VM starts and ends, observed from the host: the
// exit status (QEMU's, or death by QEMU's signal), QEMU's argv under
// --pv-off, the descriptors pvrun's parent hands QEMU, and that after every
// way out (guest poweroff, QEMU refusing its arguments, missing binary,
// QEMU killed or crashing, SIGTERM/SIGINT/SIGHUP to pvrun, pvrun killed) no
// QEMU, /dev/shm file or socket directory of pvrun's is left.
import {spawn, type ChildProcess, type StdioOptions} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import t, {type Test} from 'tap';
import {bootArgs, bootGuest, pvrunCommand, readyLine} from '../../src/guest/boot.js';
import {ensureImage} from '../../src/image/build.js';
import {bootThroughPvrun, vmFromLog, within} from '../helpers/pvrun-vm.js';
import {connectQmpLine} from '../vm/qmp-line.js';
import {childrenOf, cmdline, fdTarget, killIfRunning, leftovers, running} from '../vm/host-view.js';

const [node = 'node', ...cli] = pvrunCommand();
/** A VM that never runs a guest (-S): QEMU, QMP and pvrun's hint channel, in a second. */
const pausedVm = ['-nodefaults', '-display', 'none', '-S'];

interface Started {
	child: ChildProcess;
	pid: number;
	stderr(): string;
	/** The exit code, or the name of the signal that killed pvrun. */
	exited: Promise<number | string>;
}

/** Start pvrun with `args`; `handOver` maps a descriptor number in pvrun to one of this process's. Stopped in teardown. */
function startPvrun(t: Pick<Test, 'teardown'>, args: string[], handOver = new Map<number, number>()): Started {
	const stdio: StdioOptions = ['ignore', 'ignore', 'pipe'];
	for (let n = 3; n <= Math.max(2, ...handOver.keys()); n++) stdio.push(handOver.get(n) ?? 'ignore');
	const child = spawn(node, [...cli, ...args], {stdio});
	let stderr = '';
	child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
	const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code ?? -1)));
	const pid = child.pid ?? 0;
	t.teardown(async () => {
		const qemus = childrenOf(pid);
		killIfRunning(pid);
		for (const q of qemus) killIfRunning(q);
		await exited;
	});
	return {child, pid, stderr: () => stderr, exited};
}

/** The QEMU process pvrun `pid` started (its child, once setpriv has exec'd QEMU), waiting up to `ms`. */
async function qemuOf(pid: number, ms = 10_000): Promise<number> {
	let qemu = 0;
	const comm = (p: number) => fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim();
	await within(ms, () => (qemu = childrenOf(pid).find((p) => comm(p).startsWith('qemu-system')) ?? 0) > 0);
	return qemu;
}

/** pvrun running a paused VM, once QEMU is initialised (it answers pvrun's QMP: before, a signal kills QEMU outright). */
async function startPaused(t: Test): Promise<{pvrun: Started; qemuPid: number}> {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-e2e-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const logFile = path.join(dir, 'events.jsonl');
	const pvrun = startPvrun(t, ['--pv-log', logFile, ...pausedVm]);
	const {qemuPid, threads} = await vmFromLog(logFile);
	t.ok(qemuPid > 0 && threads.length > 0, 'QEMU is up and pvrun talks QMP to it');
	t.ok(leftovers(pvrun.pid).length >= 2, 'pvrun made its shared memory and run directory');
	return {pvrun, qemuPid};
}

/** Everything pvrun `pid` could leave: its files, and QEMU `qemuPid` running. */
function assertNothingLeft(t: Test, pid: number, qemuPid: number): void {
	t.same(leftovers(pid), [], 'no /dev/shm file or socket directory of pvrun left');
	if (qemuPid > 0) t.notOk(running(qemuPid), 'QEMU is gone');
}

t.test('QEMU refusing its arguments: its status, one line from QEMU, nothing left', async (t) => {
	const started = performance.now();
	const run = execa(node, [...cli, '-nodefaults', '-pvrun-no-such-option'], {reject: false, timeout: 30_000});
	const r = await run;
	t.equal(r.exitCode, 1, 'QEMU exits 1, so does pvrun');
	t.ok(performance.now() - started < 5000, 'pvrun does not linger after QEMU is gone');
	t.match(r.stderr, /qemu-system-x86_64: -pvrun-no-such-option: invalid option/);
	t.same(leftovers(run.pid ?? 0), []);
});

t.test('a QEMU binary that is not there: one line naming the fix, status 127, nothing created', async (t) => {
	for (const pv of [[], ['--pv-off'], ['--pv-log', '/dev/null']]) {
		const run = execa(node, [...cli, ...pv, '--pv-qemu', '/nonexistent/qemu-system-x86_64', ...pausedVm], {reject: false, timeout: 30_000});
		const r = await run;
		t.equal(r.exitCode, 127, `${pv.join(' ') || 'hint channel'}: status 127, as a shell for a missing command`);
		t.equal(r.stderr, 'pvrun: /nonexistent/qemu-system-x86_64 not found: check the path given with --pv-qemu', 'one line naming what to fix');
		t.same(leftovers(run.pid ?? 0), []);
	}
});

t.test('guest poweroff: pvrun exits 0 like QEMU, leaves nothing', async (t) => {
	const {guest, logFile} = await bootThroughPvrun(t, {run: 'true'});
	await guest.waitFor('command exited with status 0', 90_000);
	const {qemuPid} = await vmFromLog(logFile);
	t.equal(await guest.exited, 0, 'the guest powered off; QEMU and pvrun exit 0');
	assertNothingLeft(t, guest.pid, qemuPid);
	t.same(childrenOf(guest.pid), [], 'no child process of pvrun left');
});

/** Boot the default guest through pvrun, sleeping; resolve once the agent program is loaded. */
async function bootSleeping(t: Test) {
	const {guest, logFile} = await bootThroughPvrun(t, {run: 'sleep,600'});
	await guest.waitFor(readyLine, 90_000);
	const {qemuPid} = await vmFromLog(logFile);
	t.ok(qemuPid > 0 && running(qemuPid), 'QEMU runs');
	t.ok(leftovers(guest.pid).length >= 2, 'while it runs, pvrun has its shared memory and run directory');
	return {guest, qemuPid};
}

t.test('kill -9 of QEMU: pvrun dies by SIGKILL as QEMU did (a shell says 137) and cleans up', async (t) => {
	const {guest, qemuPid} = await bootSleeping(t);
	process.kill(qemuPid, 'SIGKILL');
	t.equal(await guest.exited, 'SIGKILL', 'pvrun ends by the signal that ended QEMU');
	assertNothingLeft(t, guest.pid, qemuPid);
});

t.test('QEMU crashing (SIGSEGV): pvrun dies by SIGSEGV too, after cleaning up', async (t) => {
	const {pvrun, qemuPid} = await startPaused(t);
	process.kill(qemuPid, 'SIGSEGV');
	t.equal(await pvrun.exited, 'SIGSEGV');
	assertNothingLeft(t, pvrun.pid, qemuPid);
});

t.test('SIGTERM to pvrun reaches QEMU; pvrun exits with its status and cleans up', async (t) => {
	const {guest, qemuPid} = await bootSleeping(t);
	process.kill(guest.pid, 'SIGTERM');
	const code = await guest.exited;
	t.equal(code, 0, 'QEMU stops on SIGTERM with status 0 ("terminating on signal 15"), so does pvrun');
	assertNothingLeft(t, guest.pid, qemuPid);
});

t.test('SIGINT and SIGHUP to pvrun reach QEMU the same way', async (t) => {
	for (const signal of ['SIGINT', 'SIGHUP'] as const) {
		const {pvrun, qemuPid} = await startPaused(t);
		process.kill(pvrun.pid, signal);
		t.equal(await pvrun.exited, 0, `${signal}: QEMU terminates with status 0, so does pvrun`);
		t.match(pvrun.stderr(), new RegExp(`terminating on signal ${os.constants.signals[signal]}`), 'QEMU got the signal');
		assertNothingLeft(t, pvrun.pid, qemuPid);
	}
});

t.test('pvrun killed with SIGKILL: QEMU dies with it; the next pvrun removes what it left', async (t) => {
	const {pvrun, qemuPid} = await startPaused(t);
	process.kill(pvrun.pid, 'SIGKILL');
	await pvrun.exited;
	t.ok(await within(5000, () => !running(qemuPid)) >= 0, 'QEMU does not outlive pvrun (parent-death signal)');
	const left = leftovers(pvrun.pid);
	t.equal(left.length, 2, 'a SIGKILLed pvrun cannot clean up: its shared memory and run directory are left');
	t.teardown(() => {
		for (const name of left) for (const dir of ['/dev/shm', os.tmpdir()]) fs.rmSync(path.join(dir, name), {recursive: true, force: true});
	});
	// Leftovers are removed only once a minute old (a pvrun in another pid namespace may be starting).
	const old = new Date(Date.now() - 120_000);
	for (const name of left) for (const dir of ['/dev/shm', os.tmpdir()]) if (fs.existsSync(path.join(dir, name))) fs.utimesSync(path.join(dir, name), old, old);
	const next = await execa(node, [...cli, '-nodefaults', '-pvrun-no-such-option'], {reject: false, timeout: 30_000});
	t.equal(next.exitCode, 1, 'the next pvrun ran (its QEMU refused a made-up option)');
	t.same(leftovers(pvrun.pid), [], "the next pvrun's start removed them");
});

t.test('--pv-off: the running QEMU has exactly the argv given', async (t) => {
	const image = await ensureImage();
	const options = {kernel: image.kernel, initrd: image.initrd, cpus: 2, run: 'sleep,600', launcher: pvrunCommand('--pv-off')};
	const guest = bootGuest(options);
	t.teardown(() => guest.stop());
	const qemuPid = await qemuOf(guest.pid);
	t.ok(qemuPid > 0, 'QEMU runs as the child of pvrun');
	t.same(cmdline(qemuPid), ['qemu-system-x86_64', ...bootArgs(options)], "/proc/<qemu>/cmdline is the user's command, nothing added or changed");
	// QEMU must be up (its signal handlers set) before it is asked to stop: the guest is.
	await guest.waitFor(readyLine, 120_000);
	process.kill(guest.pid, 'SIGTERM');
	t.equal(await guest.exited, 0, 'SIGTERM reaches QEMU; pvrun exits with its status');
	assertNothingLeft(t, guest.pid, qemuPid);
});

/** A listening unix socket of this process, as a parent like libvirt opens one for QEMU's monitor. */
async function listeningSocket(t: Test, dir: string, name: string): Promise<{fd: number; path: string; inode: string; close(): Promise<void>}> {
	const bound = path.join(dir, `${name}.bound`);
	const server = net.createServer();
	await new Promise<void>((resolve) => server.listen(bound, resolve));
	// Node's own handle; a test may look: the descriptor to hand over.
	const fd = (server as unknown as {_handle: {fd: number}})._handle.fd;
	const inode = fdTarget('self', fd) ?? '?';
	const file = path.join(dir, `${name}.sock`);
	t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
	return {
		fd,
		path: file,
		inode,
		// Once handed over, this process must stop accepting on it, and closing a server unlinks its path: move the path first.
		async close() {
			fs.renameSync(bound, file);
			await new Promise<void>((resolve) => server.close(() => resolve()));
		},
	};
}

t.test("descriptors pvrun's parent hands it reach QEMU under the same numbers", async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-fds-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	// 5: in the range Node marks close-on-exec at start-up (looks like Node's own); 40: beyond it.
	for (const pv of [[], ['--pv-off']]) {
		const mode = pv.length ? '--pv-off' : 'hint channel';
		const low = await listeningSocket(t, dir, `low${pv.length}`);
		const high = await listeningSocket(t, dir, `high${pv.length}`);
		const monitors = [
			['-chardev', 'socket,id=low,fd=5,server=on,wait=off', '-mon', 'chardev=low,mode=control'],
			['-chardev', 'socket,id=high,fd=40,server=on,wait=off', '-mon', 'chardev=high,mode=control'],
		].flat();
		const pvrun = startPvrun(t, [...pv, ...pausedVm, ...monitors], new Map([[5, low.fd], [40, high.fd]]));
		await low.close();
		await high.close();
		const qemuPid = await qemuOf(pvrun.pid);
		t.ok(qemuPid > 0, `${mode}: QEMU runs`);
		t.equal(fdTarget(qemuPid, 5), low.inode, `${mode}: QEMU's fd 5 is the parent's socket`);
		t.equal(fdTarget(qemuPid, 40), high.inode, `${mode}: QEMU's fd 40 is the parent's socket`);
		const viaLow = await connectQmpLine(low.path);
		const viaHigh = await connectQmpLine(high.path);
		t.match(await viaHigh.execute('query-status'), {status: 'prelaunch'}, `${mode}: QMP through fd 40`);
		t.match(await viaLow.execute('query-status'), {status: 'prelaunch'}, `${mode}: QMP through fd 5`);
		viaHigh.close();
		await viaLow.execute('quit');
		viaLow.close();
		t.equal(await pvrun.exited, 0, `${mode}: quit through the inherited monitor ends QEMU and pvrun with status 0`);
		t.equal(pvrun.stderr().match(/^(?!pvrun: accelerator:).+$/gm), null, `${mode}: nothing but the accelerator line on stderr`, {stderr: pvrun.stderr()});
		assertNothingLeft(t, pvrun.pid, qemuPid);
	}
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
