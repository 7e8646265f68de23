// pvrun's helper: the process that serves one VM's hint channel while the
// pvrun the caller started has become QEMU (src/vm/exec.ts). The front
// creates the run directory and shared memory, starts the helper (a process
// group of its own in the caller's session, so a terminal's Ctrl-C reaches
// QEMU alone; stdin and stdout on /dev/null; stderr the caller's, for pvrun's
// warnings), and execs QEMU. The helper learns that QEMU has ended when the
// pipe whose write end QEMU holds reports end-of-file (QEMU, and any process
// it forked, closed it: exited), then removes the VM's files and exits: it
// never outlives QEMU for longer than its clean-up. Its SIGTERM/SIGINT/SIGHUP
// stop the hint channel only.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {openShmArea, type ShmArea} from '../shm/area.js';
import {hostFeatures} from '../hints/index.js';
import {PvrunError, firstLine} from '../util/errors.js';
import {packageRoot} from '../util/paths.js';
import {EventLog, writeStderr} from './event-log.js';
import {keepFromChildren} from './fds.js';
import type {VmPlan} from './plan.js';
import {blockSigttou, closeOnExecPipe} from '../host/libc.js';
import {procStatFields} from '../host/proc.js';
import {forwardedSignals, watchPid, type ExitStatus, type QemuProcess} from './qemu-process.js';
import {HintSession} from './session.js';

/** What the front tells the helper (environment variable `helperEnv`, JSON). */
export interface HelperOrders {
	plan: VmPlan;
	/** The event log (--pv-log), absolute. */
	log?: string;
	/** Decision summaries on stderr (a terminal that is not the guest's console). */
	summaries: boolean;
	/** QEMU's pid: the front's own, which QEMU keeps. */
	qemuPid: number;
	/** The shared memory's host epoch (a bigint, in decimal). */
	hostEpoch: string;
}

export const helperEnv = 'PVRUN_HELPER';
/** The helper's entry script (built next to this module). */
const helperEntry = path.join(packageRoot, 'dist', 'vm', 'helper-entry.js');
/** Starts the helper in a process group of its own (native/pvgroup.c). */
const pvgroup = path.join(packageRoot, 'native', 'pvgroup');
/** The descriptor number at which the helper holds the pipe's read end. */
const qemuEndFd = 3;
/** The helper's last resort after QEMU is gone: clean-up that hangs must not keep it alive. */
const exitDeadlineMs = 5000;

/** A started helper: its pid, and the pipe end QEMU must hold (kept across exec). */
export interface StartedHelper {
	pid: number;
	qemuEnd: number;
}

/**
 * Start the helper for `orders` (in the front, right before it execs QEMU).
 * The descriptors pvrun inherited are marked close-on-exec first: the helper
 * must not hold libvirt's monitor socket or a tap device (execQemu clears
 * the mark again for QEMU).
 */
export function startHelper(orders: HelperOrders): StartedHelper {
	const [readEnd, writeEnd] = closeOnExecPipe();
	try {
		keepFromChildren();
		// In QEMU's session, not one of its own (Node's detached: setsid): the kernel gives each
		// session a scheduling group (autogroup), and on one CPU with a busy vCPU thread the
		// helper's group was seen runnable and not run for 5 to 7 s
		// (bench/experiments/2026-12-05-helper-autogroup/). In QEMU's group it competes as a
		// thread beside QEMU's, at its own nice value. pvgroup (native/) makes it a process group
		// of its own before Node starts; without pvgroup, a session of its own as before.
		const grouped = fs.existsSync(pvgroup);
		const child = spawn(grouped ? pvgroup : process.execPath, grouped ? [process.execPath, helperEntry] : [helperEntry], {
			detached: !grouped,
			stdio: ['ignore', 'ignore', 'inherit', readEnd],
			cwd: '/',
			env: {...process.env, [helperEnv]: JSON.stringify(orders)},
		});
		child.on('error', () => {}); // reported below through the missing pid
		child.unref();
		if (child.pid === undefined) throw new PvrunError(`cannot start pvrun's helper process (${process.execPath} ${helperEntry})`);
		awaitOwnGroup(child.pid, ownGroupWaitMs);
		return {pid: child.pid, qemuEnd: writeEnd};
	} catch (error) {
		fs.closeSync(writeEnd);
		throw error;
	} finally {
		fs.closeSync(readEnd);
	}
}

/** How long the front waits for the helper to leave the foreground process group, at most. */
const ownGroupWaitMs = 1000;

/**
 * Wait (blocking: the front is about to become QEMU) until process `pid` leads a process group
 * of its own (pvgroup's first step, microseconds after the spawn), has exited, or `ms` have passed. Until
 * then a terminal's Ctrl-C, or the hang-up when QEMU leads the terminal's session and ends,
 * would reach the helper too and end it before it could remove the VM's files.
 */
function awaitOwnGroup(pid: number, ms: number): void {
	const nap = new Int32Array(new SharedArrayBuffer(4));
	const until = performance.now() + ms;
	for (;;) {
		const f = procStatFields(pid);
		if (!f || f[3] === 'Z' || Number(f[5]) === pid || performance.now() >= until) return;
		Atomics.wait(nap, 0, 0, 2);
	}
}

/** The helper (src/vm/helper-entry.ts runs this). */
export function serveHelper(): void {
	// Out of the foreground group, its warnings still reach the terminal (Node starts with no
	// signal blocked, whatever pvgroup's mask was).
	blockSigttou();
	const orders = JSON.parse(process.env[helperEnv] ?? '{}') as HelperOrders;
	delete process.env[helperEnv];
	const held: {session?: HintSession; area?: ShmArea; log?: EventLog} = {};
	const exit = (code: number): never => {
		if (held.session) held.session.close();
		else {
			held.area?.remove();
			fs.rmSync(orders.plan.runDir, {recursive: true, force: true});
			fs.rmSync(orders.plan.shmPath, {force: true});
			held.log?.close();
		}
		process.exit(code);
	};
	process.on('uncaughtException', (error) => {
		if (held.log) held.log.warn(`internal error: ${firstLine(error)}`);
		else writeStderr(`pvrun: internal error: ${firstLine(error)}; the VM runs without hints\n`);
		exit(70);
	});
	// Asked to stop: the hint channel stops, QEMU runs on.
	for (const s of forwardedSignals) process.on(s, () => exit(0));
	const qemu = qemuProcess(orders.qemuPid);
	void qemu.exited.then(() => {
		setTimeout(() => process.exit(0), exitDeadlineMs).unref();
		exit(0);
	});
	held.log = new EventLog(orders.log, orders.summaries, {vm: orders.plan.id});
	held.area = openShmArea(orders.plan.shmPath, orders.plan.nrVcpus, BigInt(orders.hostEpoch), hostFeatures(orders.plan.cs));
	held.session = new HintSession(orders.plan, held.area, qemu, held.log);
}

/**
 * QEMU, as the helper sees it: ended when the pipe's write end is closed
 * everywhere, or (should something QEMU started keep it open) when the pid
 * is gone, which is checked every second.
 */
function qemuProcess(pid: number): QemuProcess {
	const byPid = watchPid(pid, 1000);
	const byPipe = new Promise<ExitStatus>((resolve) => {
		const end = new net.Socket({fd: qemuEndFd, readable: true, writable: false});
		const done = () => resolve({code: null, signal: null});
		end.on('data', () => {}); // nobody writes; reading is how end-of-file shows
		end.once('end', done);
		end.once('close', done);
		end.once('error', done);
	});
	return {pid, exited: Promise.race([byPipe, byPid.exited])};
}
