// Running a VM through pvrun: QEMU with the user's arguments first, then the
// hint channel (IVSHMEM area, agent virtio-serial port, QMP socket); the hint
// session runs beside it (src/vm/session.ts). QEMU owns the console and the
// descriptors pvrun inherited; pvrun ends as QEMU ends and removes its files
// on every way out (docs/lifecycle.md). A QEMU that daemonizes gets a
// detached pvrun (src/vm/daemon.ts).
import type {ChildProcess} from 'node:child_process';
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import {ownCpus, formatCpuList} from '../host/cpus.js';
import {chooseAccel} from '../qemu/accel.js';
import {ivshmemArgs, type ShmArea} from '../shm/area.js';
import {maxVcpus, shmSize} from '../shm/layout.js';
import {PvrunError, firstLine} from '../util/errors.js';
import {qemuOptions, usesStdio} from '../cli/qemu-options.js';
import {userChoseAccel, userSetDebugThreads, vcpuCount, type PvOptions} from '../cli/pv-options.js';
import {runDaemonized} from './daemon.js';
import {EventLog} from './event-log.js';
import {fastPathAvailable} from '../host/fastpath.js';
import {checkPrograms, childQemu, endLike, spawnQemu, waitForExit} from './qemu-process.js';
import {HintSession, createRunFiles, removeRunFiles} from './session.js';
import {removeStaleRuns} from './stale.js';
import {writeVmState} from './state.js';

export const agentPortName = 'org.pvrun.agent.0';
/** The port the agent writes its kick byte to, read by the native fast path (docs/fast-path.md). */
export const kickPortName = 'org.pvrun.kick.0';

/** Files and ids of one pvrun VM. */
export interface VmPlan {
	id: string;
	runDir: string;
	shmPath: string;
	qmpSocket: string;
	agentSocket: string;
	/** QEMU's end of the kick port, when the fast path can run (native/libpvfast.so is built). */
	kickSocket?: string;
	/** Why the fast path does not run, when it does not. */
	fastPathOff?: string;
	nrVcpus: number;
	allowed: number[];
	/** The user's QEMU arguments. */
	qemuArgs: string[];
	/** The complete QEMU argument list: the user's, then pvrun's. */
	args: string[];
	accelNote?: string;
	/** The user's arguments say -daemonize: a detached pvrun serves the VM (src/vm/daemon.ts). */
	daemonize: boolean;
	/** With -daemonize: where QEMU writes its pid, absolute (the user's -pidfile, or one pvrun adds in its run directory). */
	pidFile?: string;
}

/** Whose VM it is: the pvrun process that owns the run directory, and the directory relative paths are from. */
export interface PlanOwner {
	pid: number;
	cwd: string;
}

/** Decide ids, paths and the QEMU command line (nothing is created yet). */
export function planVm(qemuArgs: string[], options: PvOptions, runRoot = os.tmpdir(), owner: PlanOwner = {pid: process.pid, cwd: process.cwd()}): VmPlan {
	const id = `pvrun-${owner.pid}-${crypto.randomBytes(3).toString('hex')}`;
	const runDir = path.join(runRoot, id);
	const own = ownCpus();
	const allowed = options.cpus ?? own;
	const foreign = allowed.filter((c) => !own.includes(c));
	if (foreign.length) throw new PvrunError(`--pv-cpus names CPUs pvrun may not use: ${formatCpuList(foreign)} (allowed: ${formatCpuList(own)})`, {exitCode: 2});
	const nrVcpus = Math.min(vcpuCount(qemuArgs), maxVcpus);
	const given = qemuOptions(qemuArgs);
	const plan: VmPlan = {
		id,
		runDir,
		shmPath: `/dev/shm/${id}`,
		qmpSocket: path.join(runDir, 'qmp.sock'),
		agentSocket: path.join(runDir, 'agent.sock'),
		nrVcpus,
		allowed,
		qemuArgs: [...qemuArgs],
		args: [...qemuArgs],
		daemonize: given.some((o) => o.name === 'daemonize'),
	};
	if (!userChoseAccel(qemuArgs)) {
		const accel = chooseAccel(options.accel);
		plan.args.push(...accel.args);
		plan.accelNote = accel.reason;
	}
	// QEMU merges repeated -name options, so this keeps the user's guest name and adds readable thread names.
	if (!userSetDebugThreads(qemuArgs)) plan.args.push('-name', 'debug-threads=on');
	plan.args.push(
		...ivshmemArgs({path: plan.shmPath, size: shmSize}, id),
		'-chardev', `socket,id=${id}-agent,path=${plan.agentSocket},server=on,wait=off`,
		// ioeventfd=off: the agent's KICK is handled in the vCPU thread that writes it, not
		// handed to QEMU's main loop first (one thread wake-up less; hint p50 -30 % in A/B runs).
		'-device', `virtio-serial-pci,id=${id}-vser,ioeventfd=off`,
		'-device', `virtserialport,id=${id}-port,bus=${id}-vser.0,chardev=${id}-agent,name=${agentPortName}`,
		'-qmp', `unix:${plan.qmpSocket},server=on,wait=off`,
	);
	const fast = options.fastPath ? fastPathAvailable() : '--pv-fast-path off';
	if (fast !== true) plan.fastPathOff = fast;
	else {
		plan.kickSocket = path.join(runDir, 'kick.sock');
		plan.args.push(
			'-chardev', `socket,id=${id}-kick,path=${plan.kickSocket},server=on,wait=off`,
			'-device', `virtserialport,id=${id}-kport,bus=${id}-vser.0,chardev=${id}-kick,name=${kickPortName}`,
		);
	}
	if (plan.daemonize) {
		// The daemonized QEMU is nobody's child: its pid comes from the pidfile (QEMU takes the last -pidfile).
		const userPidFile = given.filter((o) => o.name === 'pidfile').at(-1)?.value;
		if (userPidFile !== undefined) plan.pidFile = path.resolve(owner.cwd, userPidFile);
		else {
			plan.pidFile = path.join(runDir, 'qemu.pid');
			plan.args.push('-pidfile', plan.pidFile);
		}
	}
	return plan;
}

/** Run QEMU exactly as given (--pv-off, and command lines that run no guest); resolves to its exit status. */
export async function runPlain(qemu: string, args: string[]): Promise<number> {
	const child = spawnQemu(qemu, args, {dieWithPvrun: true});
	return endLike(await waitForExit(child, () => {}));
}

/** Run a VM with the hint channel; resolves to QEMU's exit status (or ends by QEMU's signal). */
export async function runVm(plan: VmPlan, options: PvOptions): Promise<number> {
	// Left by a pvrun that was killed (SIGKILL cannot be cleaned up after): gone before we add ours.
	await removeStaleRuns(path.dirname(plan.runDir));
	if (plan.daemonize) return runDaemonized(options, (pid) => planVm(plan.qemuArgs, options, path.dirname(plan.runDir), {pid, cwd: process.cwd()}));
	checkPrograms(options.qemu, true);
	const log = openEventLog(options, plan);
	let area: ShmArea;
	try {
		area = createRunFiles(plan);
	} catch (error) {
		log.close();
		throw error;
	}
	if (plan.accelNote) process.stderr.write(`pvrun: accelerator: ${plan.accelNote}\n`);
	let child: ChildProcess;
	try {
		child = spawnQemu(options.qemu, plan.args, {dieWithPvrun: true});
	} catch (error) {
		removeRunFiles(plan, area);
		log.close();
		throw error;
	}
	if (child.pid !== undefined) writeVmState(plan, options, child.pid);
	const session = new HintSession(plan, area, childQemu(child), log);
	return endLike(await waitForExit(child, () => session.close()));
}

/**
 * The event log (--pv-log), or a PvrunError naming the file. Decision
 * summaries go to stderr when it is a terminal, but not when that terminal is
 * the guest's console: QEMU writes the guest's output there as it comes, and
 * a summary would cut one of the guest's lines in two (docs/cli.md).
 */
function openEventLog(options: PvOptions, plan: VmPlan): EventLog {
	const consoleHere = usesStdio(plan.qemuArgs) && process.stdout.isTTY === true;
	try {
		return new EventLog(options.log, process.stderr.isTTY === true && !consoleHere);
	} catch (error) {
		throw new PvrunError(`cannot open the event log ${options.log ?? ''} (--pv-log): ${(error as NodeJS.ErrnoException).code ?? firstLine(error)}`, {cause: error, exitCode: 2});
	}
}
