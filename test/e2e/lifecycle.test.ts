// End to end, how a pvrun VM starts and ends, observed from the host: pvrun
// becomes QEMU (the pid its caller started is QEMU's, with QEMU's exit
// status or death by signal), QEMU's argv under --pv-off, the descriptors
// pvrun's parent hands QEMU, the helper that serves the hint channel, and
// that after every way out (guest poweroff, QEMU refusing its arguments,
// missing binary, QEMU killed or crashing, SIGTERM/SIGINT/SIGHUP, the helper
// killed) no helper, /dev/shm file or socket directory of pvrun's is left.
import {execFileSync, spawn, type ChildProcess, type StdioOptions} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import t, {type Test} from 'tap';
import {bootArgs, bootGuest, pvrunCommand, readyLine} from '../../src/guest/boot.js';
import {ensureImage} from '../../src/image/build.js';
import {bootThroughPvrun, vmFromLog, within} from '../helpers/pvrun-vm.js';
import {readEventLog} from '../../src/vm/event-log.js';
import {connectQmpLine} from '../helpers/qmp-line.js';
import {childrenOf, cmdline, fdTarget, fdTargets, helperOf, killIfRunning, leftovers, runRoot, running, signalPid} from '../helpers/host-view.js';

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
		killIfRunning(pid);
		await exited;
	});
	return {child, pid, stderr: () => stderr, exited};
}

/** Whether process `pid` runs QEMU (pvrun has exec'd it), waiting up to `ms`. */
async function becameQemu(pid: number, ms = 10_000): Promise<boolean> {
	const comm = () => {
		try {
			return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
		} catch {
			return '';
		}
	};
	return (await within(ms, () => comm().startsWith('qemu-system'))) >= 0;
}

/** pvrun running a paused VM, once QEMU is initialised (it answers pvrun's QMP: before, a signal kills QEMU outright). */
async function startPaused(t: Test): Promise<{pvrun: Started; qemuPid: number; helper: number}> {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-e2e-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const logFile = path.join(dir, 'events.jsonl');
	const pvrun = startPvrun(t, ['--pv-log', logFile, ...pausedVm]);
	const {qemuPid, threads} = await vmFromLog(logFile);
	t.ok(qemuPid > 0 && threads.length > 0, 'QEMU is up and pvrun talks QMP to it');
	t.equal(qemuPid, pvrun.pid, "QEMU is the process the caller started (pvrun exec'd it)");
	t.ok(leftovers(pvrun.pid).length >= 2, 'pvrun made its shared memory and run directory');
	const helper = helperOf(pvrun.pid);
	t.ok(helper > 0 && running(helper), "pvrun's helper serves the hint channel");
	return {pvrun, qemuPid, helper};
}

/**
 * Everything a VM whose QEMU was `qemuPid` could leave: its files, its
 * helper `helper` (0: not known) and QEMU running. The helper cleans up once
 * it sees QEMU gone: waited for, up to 5 s.
 */
async function assertNothingLeft(t: Test, qemuPid: number, helper = 0): Promise<void> {
	const clean = await within(5000, () => leftovers(qemuPid).length === 0 && (helper === 0 || !running(helper)));
	t.same(leftovers(qemuPid), [], 'no /dev/shm file or socket directory of pvrun left');
	if (helper > 0) t.notOk(running(helper), "pvrun's helper is gone");
	if (clean >= 0) t.comment(`cleaned up ${Math.round(clean)} ms after QEMU ended`);
	t.notOk(running(qemuPid), 'QEMU is gone');
}

t.test('QEMU refusing its arguments: its status, one line from QEMU, nothing left', async (t) => {
	const started = performance.now();
	const run = execa(node, [...cli, '-nodefaults', '-pvrun-no-such-option'], {reject: false, timeout: 30_000});
	const r = await run;
	t.equal(r.exitCode, 1, 'QEMU exits 1, so does pvrun');
	t.ok(performance.now() - started < 5000, 'pvrun does not linger after QEMU is gone');
	t.match(r.stderr, /qemu-system-x86_64: -pvrun-no-such-option: invalid option/);
	await assertNothingLeft(t, run.pid ?? 0);
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
	t.equal(qemuPid, guest.pid, "QEMU runs under the pid pvrun's caller started");
	const helper = helperOf(guest.pid);
	t.same(childrenOf(guest.pid), [helper], "QEMU's one child is pvrun's helper");
	t.equal(await guest.exited, 0, 'the guest powered off; QEMU (pvrun) exits 0');
	await assertNothingLeft(t, qemuPid, helper);
	t.ok(
		readEventLog(logFile).some((e) => e.event === 'exit'),
		'the helper logged its exit (it cleaned up, it was not killed)',
	);
});

/** Boot the default guest through pvrun, sleeping; resolve once the agent program is loaded. */
async function bootSleeping(t: Test) {
	const {guest, logFile} = await bootThroughPvrun(t, {run: 'sleep,600'});
	await guest.waitFor(readyLine, 90_000);
	const {qemuPid} = await vmFromLog(logFile);
	t.ok(qemuPid > 0 && running(qemuPid), 'QEMU runs');
	t.ok(leftovers(guest.pid).length >= 2, 'while it runs, pvrun has its shared memory and run directory');
	return {guest, qemuPid, helper: helperOf(guest.pid)};
}

t.test('kill -9 of QEMU: the caller sees QEMU die by SIGKILL (a shell says 137); the helper cleans up', async (t) => {
	const {guest, qemuPid, helper} = await bootSleeping(t);
	signalPid(qemuPid, 'SIGKILL');
	t.equal(await guest.exited, 'SIGKILL', 'the process the caller started ends by SIGKILL');
	await assertNothingLeft(t, qemuPid, helper);
});

t.test('QEMU crashing (SIGSEGV): the caller sees SIGSEGV; the helper cleans up', async (t) => {
	const {pvrun, qemuPid, helper} = await startPaused(t);
	signalPid(qemuPid, 'SIGSEGV');
	t.equal(await pvrun.exited, 'SIGSEGV');
	await assertNothingLeft(t, qemuPid, helper);
});

t.test('SIGTERM to pvrun is SIGTERM to QEMU: status 0, the helper cleans up', async (t) => {
	const {guest, qemuPid, helper} = await bootSleeping(t);
	signalPid(guest.pid, 'SIGTERM');
	const code = await guest.exited;
	t.equal(code, 0, 'QEMU stops on SIGTERM with status 0 ("terminating on signal 15")');
	await assertNothingLeft(t, qemuPid, helper);
});

t.test('SIGINT and SIGHUP the same way', async (t) => {
	for (const signal of ['SIGINT', 'SIGHUP'] as const) {
		const {pvrun, qemuPid, helper} = await startPaused(t);
		signalPid(pvrun.pid, signal);
		t.equal(await pvrun.exited, 0, `${signal}: QEMU terminates with status 0`);
		t.match(pvrun.stderr(), new RegExp(`terminating on signal ${os.constants.signals[signal]}`), 'QEMU got the signal');
		await assertNothingLeft(t, qemuPid, helper);
	}
});

t.test("the helper holds none of the caller's descriptors and is in a process group of its own in QEMU's session", async (t) => {
	const {pvrun, helper} = await startPaused(t);
	const stat = (pid: number): string[] => fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
	// Fields after the name: state, ppid, pgrp, session.
	t.equal(Number(stat(helper)[2]), helper, "its own process group: a terminal's Ctrl-C (to the foreground group) reaches QEMU alone");
	t.equal(stat(helper)[3], stat(pvrun.pid)[3], "QEMU's session, and so QEMU's scheduling group (autogroup)");
	const blocked = BigInt(`0x${/SigBlk:\s*([0-9a-f]+)/.exec(fs.readFileSync(`/proc/${helper}/status`, 'utf8'))?.[1] ?? '0'}`);
	t.equal((blocked >> BigInt(os.constants.signals.SIGTTOU - 1)) & 1n, 1n, 'SIGTTOU blocked: its warnings reach a terminal set to stop background writers');
	if (fs.existsSync('/proc/self/autogroup'))
		t.equal(fs.readFileSync(`/proc/${helper}/autogroup`, 'utf8'), fs.readFileSync(`/proc/${pvrun.pid}/autogroup`, 'utf8'), "QEMU's autogroup");
	const status = (): string | undefined => {
		const out = execFileSync(node, [...cli, 'status', '--json'], {encoding: 'utf8'});
		return (JSON.parse(out) as {vms: Array<{qemuPid: number; state: string}>}).vms.find((v) => v.qemuPid === pvrun.pid)?.state;
	};
	let state: string | undefined;
	await within(5000, () => (state = status()) === 'paused', 200);
	t.equal(state, 'paused', 'pvrun status: a VM started with -S is paused');
	t.equal(fdTarget(helper, 0), '/dev/null', 'stdin /dev/null');
	t.equal(fdTarget(helper, 1), '/dev/null', 'stdout /dev/null');
	t.equal(fdTarget(helper, 2), fdTarget(pvrun.pid, 2), "stderr the caller's (for pvrun's warnings)");
	t.match(fdTarget(helper, 3), /^pipe:/, 'fd 3: the pipe whose other end QEMU holds');
	t.ok(fdTargets(pvrun.pid).includes(fdTarget(helper, 3) ?? '-'), 'QEMU holds the other end');
});

t.test('the helper killed with SIGKILL: QEMU runs on; the next pvrun removes the files once QEMU is gone', async (t) => {
	const {pvrun, qemuPid, helper} = await startPaused(t);
	signalPid(helper, 'SIGKILL');
	t.ok((await within(5000, () => !running(helper))) >= 0, 'the helper is gone');
	await new Promise((r) => setTimeout(r, 500));
	t.ok(running(qemuPid), 'QEMU runs on, without hints');
	const left = leftovers(qemuPid);
	t.equal(left.length, 2, 'a SIGKILLed helper cannot clean up: the shared memory and run directory are left');
	t.teardown(() => {
		for (const name of left) for (const dir of ['/dev/shm', runRoot]) fs.rmSync(path.join(dir, name), {recursive: true, force: true});
	});
	const old = new Date(Date.now() - 120_000);
	const age = () => {
		for (const name of left) for (const dir of ['/dev/shm', runRoot]) if (fs.existsSync(path.join(dir, name))) fs.utimesSync(path.join(dir, name), old, old);
	};
	// Leftovers are removed only once a minute old (a pvrun in another pid namespace may be starting).
	age();
	const next = () => execa(node, [...cli, '-nodefaults', '-pvrun-no-such-option'], {reject: false, timeout: 30_000});
	t.equal((await next()).exitCode, 1, 'the next pvrun ran (its QEMU refused a made-up option)');
	t.equal(leftovers(qemuPid).length, 2, 'while QEMU runs, its files stay');
	signalPid(qemuPid, 'SIGTERM');
	t.equal(await pvrun.exited, 0, 'QEMU ends on SIGTERM');
	age();
	t.equal((await next()).exitCode, 1, 'another pvrun ran');
	t.same(leftovers(qemuPid), [], "that pvrun's start removed them");
});

t.test('--pv-off: the running QEMU has exactly the argv given', async (t) => {
	const image = await ensureImage();
	const options = {kernel: image.kernel, initrd: image.initrd, cpus: 2, run: 'sleep,600', launcher: pvrunCommand('--pv-off')};
	const guest = bootGuest(options);
	t.teardown(() => guest.stop());
	t.ok(await becameQemu(guest.pid), 'the process the caller started runs QEMU');
	t.same(cmdline(guest.pid), ['qemu-system-x86_64', ...bootArgs(options)], "/proc/<qemu>/cmdline is the user's command, nothing added or changed");
	t.same(childrenOf(guest.pid), [], 'no helper: nothing of pvrun runs');
	// QEMU must be up (its signal handlers set) before it is asked to stop: the guest is.
	await guest.waitFor(readyLine, 120_000);
	signalPid(guest.pid, 'SIGTERM');
	t.equal(await guest.exited, 0, 'SIGTERM reaches QEMU; status 0');
	await assertNothingLeft(t, guest.pid);
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
		const pvrun = startPvrun(
			t,
			[...pv, ...pausedVm, ...monitors],
			new Map([
				[5, low.fd],
				[40, high.fd],
			]),
		);
		await low.close();
		await high.close();
		t.ok(await becameQemu(pvrun.pid), `${mode}: QEMU runs`);
		const qemuPid = pvrun.pid;
		const helper = pv.length ? 0 : helperOf(pvrun.pid);
		if (helper)
			t.notOk(
				fdTargets(helper).some((f) => f === low.inode || f === high.inode),
				"the helper holds neither of the parent's sockets",
			);
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
		await assertNothingLeft(t, qemuPid, helper);
	}
});

t.test('an event log that cannot be written (full disk) stops logging, not the VM', async (t) => {
	const image = await ensureImage();
	const guest = bootGuest({
		kernel: image.kernel,
		initrd: image.initrd,
		cpus: 2,
		run: '/usr/share/pvrun/pin-busy.sh,0x2,1',
		launcher: pvrunCommand('--pv-log', '/dev/full'),
	});
	t.teardown(() => guest.stop());
	await guest.waitFor('pin-busy: done', 60_000);
	t.equal(await guest.exited, 0, 'the VM ran to its end and pvrun exited 0');
	t.match(guest.stderr(), /pvrun: event log stopped: .*ENOSPC/);
	t.equal(guest.stderr().match(/event log stopped/g)?.length, 1, 'said once');
});
