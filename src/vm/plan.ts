// Planning one VM, as a pure step: from the user's QEMU arguments, the typed
// configuration and what was probed of the host, decide the VM's id, its
// files, where pvrun's devices go and the complete QEMU command line. Nothing
// is created or probed here (launch.ts does that), so -daemonize can plan
// again for its detached pvrun's pid at no cost, and tests can plan from a
// table.
import type {HintScript} from './hint-scripts.js';
import crypto from 'node:crypto';
import path from 'node:path';
import {formatCpuList} from '../host/cpus.js';
import {qemuOptions, userChoseAccel, userSetDebugThreads, vcpuCount} from '../qemu/args.js';
import {maxVcpus, shmSize} from '../shm/layout.js';
import {UsageError} from '../util/errors.js';
import type {CsBoost, CsFeedback, CsMode, Placement, VmConfig} from './config.js';
import {channelArgs, checkNoClash, choosePlace, type ChannelFiles, type ChannelPlace} from './devices.js';
import type {HostFacts} from './probe.js';

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
	/** --pv-cs: critical sections off, observed or acted on. */
	cs: CsMode;
	/** --pv-cs-boost. */
	csBoost: CsBoost;
	/** --pv-cs-feedback: the source of the host's view of the vCPU threads. */
	csFeedback: CsFeedback;
	/** --pv-placement. */
	placement: Placement;
	/** --pv-share. */
	share: number;
	/** --pv-hint-script: sent to the agent after each handshake. */
	hintScripts?: HintScript[];
	/** --pv-metrics, absolute. */
	metrics?: string;
	/** --pv-guest-cpu, percent of one host CPU. */
	guestCpuPercent: number;
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

/** Whose VM it is: the process the run directory is named after, the directory relative paths are from, and (tests) the id's random part. */
export interface PlanOwner {
	pid: number;
	cwd: string;
	nonce?: string;
}

/** Decide ids, paths and the QEMU command line for a VM whose files go under `runRoot` (nothing is created). */
export function planVm(qemuArgs: string[], options: VmConfig, facts: HostFacts, runRoot: string, owner: PlanOwner): VmPlan {
	const id = `pvrun-${owner.pid}-${owner.nonce ?? crypto.randomBytes(3).toString('hex')}`;
	const runDir = path.join(runRoot, id);
	const own = facts.ownCpus;
	const allowed = options.cpus ?? own;
	const foreign = allowed.filter((c) => !own.includes(c));
	if (foreign.length) throw new UsageError(`--pv-cpus names CPUs pvrun may not use: ${formatCpuList(foreign)} (allowed: ${formatCpuList(own)})`);
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
		cs: options.cs,
		csBoost: options.csBoost,
		csFeedback: options.csFeedback,
		placement: options.placement,
		share: options.share,
		...(options.metrics !== undefined ? {metrics: path.resolve(options.metrics)} : {}),
		...(options.hintScripts?.length ? {hintScripts: options.hintScripts} : {}),
		guestCpuPercent: options.guestCpuPercent,
		incoming: given.some((o) => o.name === 'incoming'),
		daemonize: given.some((o) => o.name === 'daemonize'),
	};
	if (!userChoseAccel(qemuArgs)) {
		plan.args.push(...facts.accel.args);
		plan.accelNote = facts.accel.reason;
	}
	// QEMU merges repeated -name options, so this keeps the user's guest name and adds readable thread names.
	if (!userSetDebugThreads(qemuArgs)) plan.args.push('-name', 'debug-threads=on');
	const fast = facts.fastPath;
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
