// End to end, `-daemonize` and `-pidfile` through pvrun keep QEMU's meaning:
// the command returns once QEMU is initialised, with the status of QEMU's
// first process; the VM runs on detached with its hint channel served by a
// detached pvrun; the pidfile names QEMU itself, so `kill -TERM $(cat
// pidfile)` stops the VM, and then pvrun's files and processes go too.
// Everything is observed from the host: /proc, the pidfile, the console file.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import t, {type Test} from 'tap';
import {bootArgs, pvrunCommand} from '../../src/guest/boot.js';
import {ensureImage} from '../../src/image/build.js';
import {readEventLog} from '../../src/vm/event-log.js';
import {} from '../../src/vm/qemu-process.js';
import {processStat} from '../../src/host/proc.js';
import {hasExclusiveCpu, within} from '../helpers/pvrun-vm.js';
import {
	allRunNames,
	childrenOf,
	cmdline,
	detachedPvruns,
	fdTarget,
	fdTargets,
	killIfRunning,
	leftovers,
	runRoot,
	running,
	signalPid,
} from '../helpers/host-view.js';
import {connectQmpLine} from '../helpers/qmp-line.js';

const [node = 'node', ...cli] = pvrunCommand();

/** A private directory for one test's pidfile, console and event log, and the processes to stop in teardown. */
function workspace(t: Test): {dir: string; stopAtEnd(pid: number): void} {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-daemonize-'));
	const pids: number[] = [];
	t.teardown(() => {
		for (const pid of pids) killIfRunning(pid);
		for (const pid of pids)
			for (const name of leftovers(pid)) for (const root of ['/dev/shm', runRoot]) fs.rmSync(path.join(root, name), {recursive: true, force: true});
		fs.rmSync(dir, {recursive: true, force: true});
	});
	return {dir, stopAtEnd: (pid) => void pids.push(pid)};
}

/** The detached pvrun's pid: its run directory is named after it (the event log's start event). */
async function daemonPidFromLog(logFile: string): Promise<{daemonPid: number; qemuPid: number}> {
	let start: Record<string, unknown> | undefined;
	await within(10_000, () => (start = readEventLog(logFile).find((e) => e.event === 'start')) !== undefined);
	const daemonPid = Number(/^pvrun-(\d+)-/.exec(String(start?.['id']))?.[1] ?? 0);
	return {daemonPid, qemuPid: Number(start?.['qemuPid'] ?? 0)};
}

/** Poll a text file until a line contains `text` (within `ms`). */
async function fileShows(file: string, text: string, ms: number): Promise<boolean> {
	return (await within(ms, () => fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes(text))) >= 0;
}

t.test('-daemonize -pidfile: returns when QEMU is up, hints still re-pin, kill -TERM of the pidfile pid ends it all', async (t) => {
	const {dir, stopAtEnd} = workspace(t);
	const image = await ensureImage();
	const pidFile = path.join(dir, 'qemu.pid');
	const consoleFile = path.join(dir, 'console.txt');
	const logFile = path.join(dir, 'events.jsonl');
	// The default guest's command line, with its console in a file: a daemon has no stdio.
	const args = bootArgs({kernel: image.kernel, initrd: image.initrd, cpus: 2, run: '/usr/share/pvrun/pin-busy.sh,0x2,600', launcher: []}).map((arg, i, all) =>
		all[i - 1] === '-serial' && arg === 'mon:stdio' ? `file:${consoleFile}` : arg,
	);
	const started = performance.now();
	const command = execa(node, [...cli, '--pv-log', logFile, ...args, '-daemonize', '-pidfile', pidFile], {reject: false, timeout: 60_000});
	const run = await command;
	const returnedMs = performance.now() - started;
	const {daemonPid, qemuPid: loggedQemu} = await daemonPidFromLog(logFile);
	stopAtEnd(loggedQemu);
	stopAtEnd(daemonPid);
	t.equal(run.exitCode, 0, "the command exits 0, QEMU's first process's status");
	t.ok(returnedMs < 20_000, `it returns once QEMU is initialised (${returnedMs.toFixed(0)} ms), not when the VM ends`);
	t.equal(run.stderr.replace(/^pvrun: accelerator: .*\n?/m, ''), '', 'nothing else on stderr');

	const qemuPid = Number(fs.readFileSync(pidFile, 'utf8').trim());
	t.ok(qemuPid > 0 && running(qemuPid), 'the pidfile names a running process');
	t.equal(fs.readFileSync(`/proc/${qemuPid}/comm`, 'utf8').trim(), 'qemu-system-x86', 'which is QEMU itself');
	t.equal(loggedQemu, qemuPid, 'the process the detached pvrun serves');
	t.not(processStat(qemuPid)?.ppid, daemonPid, "QEMU daemonized: it is not pvrun's child");
	t.ok(running(daemonPid), 'a detached pvrun runs beside it');
	t.not(processStat(daemonPid)?.ppid, command.pid, 'detached: the command that started it is gone');
	t.ok(leftovers(daemonPid).length >= 2, 'with its shared memory and run directory');

	const status = await execa(node, [...cli, 'status', '--json'], {reject: false, timeout: 30_000});
	const listed = (JSON.parse(status.stdout) as {vms: Array<{pvrunPid: number; qemuPid: number}>}).vms.find((vm) => vm.pvrunPid === daemonPid);
	t.equal(listed?.qemuPid, qemuPid, 'pvrun status lists the VM with the daemonized QEMU');

	t.ok(await fileShows(consoleFile, 'pin-busy: pinned', 120_000), 'the guest pinned a busy process to vCPU 1 (console file)');
	const threads = (readEventLog(logFile)
		.filter((e) => e.event === 'vcpus')
		.at(-1)?.['threads'] ?? []) as number[];
	t.equal(threads.length, 2, 'pvrun knows both vCPU threads');
	const pinnedAfter = await within(2000, () => hasExclusiveCpu(qemuPid, threads, 1));
	t.ok(pinnedAfter >= 0, `the hint re-pinned the daemonized QEMU's vCPU 1 thread (${pinnedAfter.toFixed(0)} ms)`);

	signalPid(qemuPid, 'SIGTERM');
	t.ok((await within(10_000, () => !running(qemuPid))) >= 0, 'SIGTERM to the pidfile pid stops QEMU');
	t.ok((await within(5000, () => !running(daemonPid))) >= 0, 'the detached pvrun exits after it');
	t.same(leftovers(daemonPid), [], 'no /dev/shm file or socket directory of pvrun left');
	t.ok(
		readEventLog(logFile).some((e) => e.event === 'exit'),
		'pvrun logged the end',
	);
});

t.test('QEMU refusing to daemonize: its status and message, nothing left, no detached pvrun', async (t) => {
	const before = allRunNames();
	const daemonsBefore = detachedPvruns();
	const started = performance.now();
	const run = await execa(node, [...cli, '-nodefaults', '-daemonize', '-serial', 'stdio', '-display', 'none'], {reject: false, timeout: 30_000});
	t.equal(run.exitCode, 1, "QEMU's first process exits 1, so does pvrun");
	t.match(run.stderr, /cannot use stdio with -daemonize/, "QEMU's own message reaches the terminal");
	t.ok(performance.now() - started < 10_000, 'promptly');
	// Whatever appeared meanwhile belongs to a live pvrun (other VMs on this machine), not to a leftover of this one.
	const leaked = [...allRunNames()].filter((n) => !before.has(n) && !running(Number(n.split('-')[1])));
	t.same(leaked, [], 'the detached pvrun removed its files');
	t.same(
		[...detachedPvruns()].filter((p) => !daemonsBefore.has(p)),
		[],
		'and exited',
	);
});

t.test('a QEMU binary that cannot be started (bad interpreter): one line, status 127, nothing left', async (t) => {
	const {dir} = workspace(t);
	const broken = path.join(dir, 'qemu');
	fs.writeFileSync(broken, '#!/nonexistent/interpreter\n', {mode: 0o755});
	const before = allRunNames();
	const daemonsBefore = detachedPvruns();
	const run = await execa(node, [...cli, '--pv-qemu', broken, '-nodefaults', '-daemonize', '-display', 'none'], {reject: false, timeout: 30_000});
	t.equal(run.exitCode, 127);
	t.equal(run.stderr.replace(/^pvrun: accelerator: .*\n/m, ''), `pvrun: cannot start QEMU: spawn ${broken} ENOENT`, 'one line naming the binary');
	const leaked = [...allRunNames()].filter((n) => !before.has(n) && !running(Number(n.split('-')[1])));
	t.same(leaked, [], 'the detached pvrun removed its files before the command returned');
	t.same(
		[...detachedPvruns()].filter((p) => !daemonsBefore.has(p)),
		[],
		'and exited',
	);
});

t.test('the detached pvrun stopped (SIGTERM) or killed (SIGKILL): the daemonized QEMU runs on', async (t) => {
	for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
		const {dir, stopAtEnd} = workspace(t);
		const logFile = path.join(dir, 'events.jsonl');
		// No -pidfile: pvrun adds its own (in its run directory) to learn QEMU's pid.
		const run = await execa(node, [...cli, '--pv-log', logFile, '-nodefaults', '-display', 'none', '-S', '-daemonize'], {reject: false, timeout: 30_000});
		const {daemonPid, qemuPid} = await daemonPidFromLog(logFile);
		stopAtEnd(qemuPid);
		stopAtEnd(daemonPid);
		t.equal(run.exitCode, 0, 'the command exits 0');
		t.ok(running(qemuPid) && running(daemonPid), 'QEMU and the detached pvrun run');
		t.ok((await within(10_000, () => readEventLog(logFile).some((e) => e.event === 'vcpus'))) >= 0, 'pvrun talks QMP to QEMU');
		signalPid(daemonPid, signal);
		t.ok((await within(5000, () => !running(daemonPid))) >= 0, `${signal}: the detached pvrun is gone`);
		await new Promise((r) => setTimeout(r, 500));
		t.ok(running(qemuPid), `${signal}: QEMU runs on (the user asked for a daemon)`);
		if (signal === 'SIGTERM') t.same(leftovers(daemonPid), [], 'SIGTERM: pvrun removed its files first');
		else t.equal(leftovers(daemonPid).length, 2, 'SIGKILL: its files are left (the next pvrun removes them once QEMU is gone)');
		signalPid(qemuPid, 'SIGKILL');
	}
});

t.test('the front killed while QEMU initialises: the detached pvrun serves the VM anyway', async (t) => {
	const {dir, stopAtEnd} = workspace(t);
	const logFile = path.join(dir, 'events.jsonl');
	// A QEMU that takes 2 s before it starts: time to kill the front meanwhile.
	const slowQemu = path.join(dir, 'slow-qemu');
	fs.writeFileSync(slowQemu, '#!/bin/sh\nsleep 2\nexec qemu-system-x86_64 "$@"\n', {mode: 0o755});
	const front = spawn(node, [...cli, '--pv-qemu', slowQemu, '--pv-log', logFile, '-nodefaults', '-display', 'none', '-S', '-daemonize'], {stdio: 'ignore'});
	const frontPid = front.pid ?? 0;
	stopAtEnd(frontPid);
	const exited = new Promise((resolve) => front.once('exit', resolve));
	// The script itself (/bin/sh slow-qemu ...), not a child forked for the detached pvrun that has
	// not exec'd yet: that one still shows the front's arguments, slow-qemu among them.
	const isScript = (p: number): boolean => {
		try {
			return cmdline(p).indexOf(slowQemu) === 1 || cmdline(p)[0] === slowQemu;
		} catch {
			return false; // gone meanwhile
		}
	};
	const starting = await within(10_000, () => childrenOf(frontPid).some(isScript));
	t.ok(starting >= 0, "QEMU's first process is starting");
	signalPid(frontPid, 'SIGKILL');
	await exited;
	const {daemonPid, qemuPid} = await daemonPidFromLog(logFile);
	stopAtEnd(qemuPid);
	stopAtEnd(daemonPid);
	t.ok(qemuPid > 0 && running(qemuPid), 'QEMU came up and daemonized');
	t.ok(running(daemonPid), 'the detached pvrun took it over');
	// Without the pids, a signal below would go to pid 0: this test's whole process group.
	if (qemuPid <= 0 || daemonPid <= 0) return;
	t.ok((await within(10_000, () => readEventLog(logFile).some((e) => e.event === 'vcpus'))) >= 0, 'and talks QMP to it');
	signalPid(qemuPid, 'SIGTERM');
	t.ok((await within(10_000, () => !running(qemuPid) && !running(daemonPid))) >= 0, 'SIGTERM to QEMU ends both');
	t.same(leftovers(daemonPid), [], 'nothing of pvrun left');
});

t.test('inherited descriptors reach a daemonized QEMU, and the detached pvrun holds none of them', async (t) => {
	const {dir, stopAtEnd} = workspace(t);
	const logFile = path.join(dir, 'events.jsonl');
	const bound = path.join(dir, 'monitor.bound');
	const server = net.createServer();
	await new Promise<void>((resolve) => server.listen(bound, resolve));
	const fd = (server as unknown as {_handle: {fd: number}})._handle.fd;
	const socket = fdTarget('self', fd) ?? '?';
	// execa takes no descriptor numbers beyond stderr: plain spawn, as a process manager would.
	const front = spawn(
		node,
		[
			...cli,
			'--pv-log',
			logFile,
			'-nodefaults',
			'-display',
			'none',
			'-S',
			'-daemonize',
			'-chardev',
			'socket,id=m,fd=5,server=on,wait=off',
			'-mon',
			'chardev=m,mode=control',
		],
		{
			stdio: ['ignore', 'ignore', 'ignore', 'ignore', 'ignore', fd],
		},
	);
	const exitCode = await new Promise<number | string>((resolve) => front.once('exit', (code, signal) => resolve(signal ?? code ?? -1)));
	// Stop accepting here; closing a server unlinks its path, so move the path first.
	const file = path.join(dir, 'monitor.sock');
	fs.renameSync(bound, file);
	await new Promise<void>((resolve) => server.close(() => resolve()));
	const {daemonPid, qemuPid} = await daemonPidFromLog(logFile);
	stopAtEnd(qemuPid);
	stopAtEnd(daemonPid);
	t.equal(exitCode, 0, 'the command exits 0');
	t.equal(fdTarget(qemuPid, 5), socket, "the daemonized QEMU's fd 5 is the parent's socket");
	t.notOk(fdTargets(daemonPid).includes(socket), 'the detached pvrun does not hold it');
	const qmp = await connectQmpLine(file);
	t.match(await qmp.execute('query-status'), {status: 'prelaunch'}, 'QMP through it');
	await qmp.execute('quit');
	qmp.close();
	t.ok((await within(10_000, () => !running(qemuPid) && !running(daemonPid))) >= 0, 'quit ends QEMU, then the detached pvrun');
	t.same(leftovers(daemonPid), [], 'nothing of pvrun left');
});
