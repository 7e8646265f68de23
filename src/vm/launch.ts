// Running a VM through pvrun: QEMU with the user's arguments first, then the
// hint channel (IVSHMEM area, agent virtio-serial port, QMP socket). pvrun
// becomes QEMU (exec in place: the caller's pid is QEMU's, with the console
// and the descriptors pvrun inherited) and a helper process it started just
// before serves the hint channel (src/vm/helper.ts, src/vm/session.ts) and
// removes the files when QEMU ends (docs/lifecycle.md). A QEMU that
// daemonizes gets a detached pvrun instead (src/vm/daemon.ts).
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import tty from 'node:tty';
import {ownCpus, formatCpuList} from '../host/cpus.js';
import {chooseAccel} from '../qemu/accel.js';
import {maxVcpus, shmSize} from '../shm/layout.js';
import {PvrunError, firstLine} from '../util/errors.js';
import {qemuOptions, usesStdio} from '../cli/qemu-options.js';
import {userChoseAccel, userSetDebugThreads, vcpuCount, type PvOptions} from '../cli/pv-options.js';
import {runDaemonized} from './daemon.js';
import {channelArgs, checkNoClash, choosePlace, type ChannelFiles, type ChannelPlace} from './devices.js';
import {EventLog, writeStderr} from './event-log.js';
import {execQemu} from './exec.js';
import {startHelper, type HelperOrders, type StartedHelper} from './helper.js';
import {fastPathAvailable} from '../host/fastpath.js';
import {checkPrograms} from './qemu-process.js';
import {createRunFiles, removeRunFiles} from './session.js';
import {removeStaleRuns} from './stale.js';
import {writeVmState} from './state.js';

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
	/** Guest run time after which a missing agent is reported (--pv-agent-wait). */
	agentWaitMs: number;
	nrVcpus: number;
	allowed: number[];
	/** The user's QEMU arguments. */
	qemuArgs: string[];
	/** The complete QEMU argument list: the user's, then pvrun's. */
	args: string[];
	accelNote?: string;
	/** Where pvrun's PCI devices go (src/vm/devices.ts). */
	place: ChannelPlace;
	/** QEMU starts from a saved VM or an incoming migration (-incoming): the area's contents will be the old session's. */
	incoming: boolean;
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
	checkNoClash(qemuArgs);
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
		place: choosePlace(qemuArgs),
		agentWaitMs: options.agentWaitS * 1000,
		incoming: given.some((o) => o.name === 'incoming'),
		daemonize: given.some((o) => o.name === 'daemonize'),
	};
	if (!userChoseAccel(qemuArgs)) {
		const accel = chooseAccel(options.accel);
		plan.args.push(...accel.args);
		plan.accelNote = accel.reason;
	}
	// QEMU merges repeated -name options, so this keeps the user's guest name and adds readable thread names.
	if (!userSetDebugThreads(qemuArgs)) plan.args.push('-name', 'debug-threads=on');
	const fast = options.fastPath ? fastPathAvailable() : '--pv-fast-path off';
	if (fast !== true) plan.fastPathOff = fast;
	else plan.kickSocket = path.join(runDir, 'kick.sock');
	const files: ChannelFiles = {shmPath: plan.shmPath, shmSize, agentSocket: plan.agentSocket};
	if (plan.kickSocket !== undefined) files.kickSocket = plan.kickSocket;
	plan.args.push(...channelArgs(files, plan.place), '-qmp', `unix:${plan.qmpSocket},server=on,wait=off`);
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

/** Run QEMU exactly as given (--pv-off, and command lines that run no guest): pvrun becomes QEMU. */
export function runPlain(qemu: string, args: string[]): never {
	return execQemu(qemu, args);
}

/**
 * Run a VM with the hint channel. Without -daemonize pvrun becomes QEMU
 * (QEMU keeps the pid the caller started) and a helper process serves the
 * hint channel (src/vm/helper.ts); then this never returns. With -daemonize,
 * resolves to the status of QEMU's first process (src/vm/daemon.ts).
 */
export async function runVm(plan: VmPlan, options: PvOptions): Promise<number> {
	// Left by a pvrun that was killed (SIGKILL cannot be cleaned up after): gone before we add ours.
	await removeStaleRuns(path.dirname(plan.runDir));
	if (plan.daemonize) return runDaemonized(options, (pid) => planVm(plan.qemuArgs, options, path.dirname(plan.runDir), {pid, cwd: process.cwd()}));
	checkPrograms(options.qemu);
	const summaries = showSummaries(options, plan);
	const area = createRunFiles(plan);
	let helper: StartedHelper;
	try {
		const orders: HelperOrders = {plan, summaries, qemuPid: process.pid, hostEpoch: area.hostEpoch.toString()};
		if (options.log !== undefined) orders.log = path.resolve(options.log);
		helper = startHelper(orders);
	} catch (error) {
		removeRunFiles(plan, area);
		throw error;
	}
	area.unmap();
	writeVmState(plan, options, {qemuPid: process.pid, pvrunPid: helper.pid});
	if (plan.accelNote) writeStderr(`pvrun: accelerator: ${plan.accelNote}\n`);
	// Fails only if QEMU vanished since checkPrograms: the helper sees this process end and removes the files.
	return execQemu(options.qemu, plan.args, [helper.qemuEnd]);
}

/**
 * Whether decision summaries go to stderr: when it is a terminal, but not
 * when that terminal is the guest's console (QEMU writes the guest's output
 * there as it comes, and a summary would cut one of the guest's lines in
 * two: docs/cli.md). Checks that the event log (--pv-log) opens: a PvrunError
 * naming the file if not.
 */
function showSummaries(options: PvOptions, plan: VmPlan): boolean {
	// tty.isatty, not process.stdout: creating Node's stream on a pipe would make it non-blocking for QEMU too.
	const consoleHere = usesStdio(plan.qemuArgs) && tty.isatty(1);
	try {
		new EventLog(options.log, false).close();
	} catch (error) {
		throw new PvrunError(`cannot open the event log ${options.log ?? ''} (--pv-log): ${(error as NodeJS.ErrnoException).code ?? firstLine(error)}`, {cause: error, exitCode: 2});
	}
	return tty.isatty(2) && !consoleHere;
}
