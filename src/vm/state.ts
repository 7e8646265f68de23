// The state file of one running pvrun VM: state.json in its run directory
// (<runtime root>/pvrun-<pid>-<hex>/, removed with it when the VM ends), so that
// `pvrun status` can list the VMs of this machine. Written whole and renamed
// into place, so a reader never sees half a file. Read defensively: anything
// in a temporary directory may be stale (pvrun was SIGKILLed), truncated,
// someone else's, or not written by pvrun at all.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {processAlive, processStartTicks} from '../host/proc.js';
import {guestName} from '../qemu/args.js';
import {MAX_CPU, threadCpusAllowed} from '../host/cpus.js';
import type {VmConfig} from './config.js';
import type {HintsStatus} from '../agent/watch.js';
import {firstLine} from '../util/errors.js';
import {writeStderr} from './event-log.js';
import type {VmPlan} from './plan.js';
import {runtimeRoot} from './runtime-dir.js';

export const stateFileName = 'state.json';
const stateVersion = 1;
/** A state file is a few hundred bytes; anything much larger is not ours. */
const maxStateBytes = 256 * 1024;
/** Run directories are named pvrun-<pvrun's pid>-<random hex> (see planVm). */
const runDirPattern = /^pvrun-(\d+)-[0-9a-f]+$/;

/** Where one vCPU may run: its own CPU (exclusive) or a floating set. */
export interface VcpuPlacement {
	vcpu: number;
	/** Where pvrun placed it (or, held, where the operator did). */
	cpus: number[];
	exclusive: boolean;
	/** Its host thread (pvrun status reads the kernel's affinity of it from /proc). */
	tid?: number;
	/** An operator pinned it outside pvrun: pvrun leaves it alone (src/pin/operator.ts). */
	operator?: boolean;
}

/** A decision of the hint engine, as `pvrun top` lists it. */
export interface RecentDecision {
	/** When, ms since the epoch. */
	at: number;
	/** pin: a vCPU got a CPU of its own; float: it lost it; deny: no free CPU for these vCPUs. */
	kind: 'pin' | 'float' | 'deny';
	vcpus: number[];
	/** pin: its CPU; float: the CPUs it floats on; deny: the CPUs pvrun may use. */
	cpus: number[];
	/** The guest thread whose hint it followed (pin), or whose hint ended (float; 0 if unknown). */
	tid?: number;
	/** That thread's name, as the guest reported it (printable ASCII). */
	comm?: string;
	/** pin: the floating vCPUs may run on the CPU too (shared mode, or the vCPU idles). */
	shared?: boolean;
}

/** What the hint engine has done since the VM started. */
export interface HintActivity {
	/** Ring records read (those rejected too). */
	records: number;
	pins: number;
	floats: number;
	denies: number;
	/** The newest decisions, oldest first (at most 8). */
	recent: RecentDecision[];
}

/** What state.json holds. */
export interface VmState {
	version: typeof stateVersion;
	/** The run directory's name (pvrun-<pid>-<hex>). */
	id: string;
	pvrunPid: number;
	/** pvrun's start time in clock ticks after boot (/proc/<pid>/stat field 22): tells a reused pid apart. */
	pvrunStart?: number;
	qemuPid: number;
	/** The guest name from the user's -name. */
	name?: string;
	/** The event log (--pv-log), absolute. */
	log?: string;
	qmpSocket: string;
	startedAt: string;
	/** Whether hints are active, and why not (src/agent/watch.ts). */
	hints?: HintsStatus;
	/** The current vCPU → host CPU placement, when the hint engine has published one. */
	placement?: VcpuPlacement[];
	placementAt?: string;
	/** The hint engine's decisions, published with the placement. */
	activity?: HintActivity;
	/** Critical sections observed or acted on (--pv-cs), as of the last `cs` event. */
	cs?: CsStatus;
	/** Whether the guest runs or is paused (QMP's STOP and RESUME), and since when. */
	guest?: GuestRunState;
}

export interface GuestRunState {
	state: 'running' | 'paused';
	since: string;
}

/** What `pvrun status` says of a VM: the guest's run state, `starting` before pvrun has asked QEMU, `exited` once QEMU is gone. */
export type VmRunState = GuestRunState['state'] | 'starting' | 'exited';

/** What `pvrun status` shows of critical sections, per vCPU (src/hints/cs/observer.ts). */
export interface CsStatus {
	vcpus: CsVcpuStatus[];
	/** Guest threads holding a critical-section cell. */
	cells: number;
	at: string;
}

/** One vCPU's critical sections; with --pv-cs act, its boosts too (whole µs). */
export interface CsVcpuStatus {
	vcpu: number;
	csMs: number;
	csPreemptedMs: number;
	preemptedMs: number;
	act?: {boosts: number; boostedUs: number; budgetUs: number; debtUs: number; paidUs: number};
}

/** A VM found by readVmStates. */
export interface VmStatus extends VmState {
	runDir: string;
	/** Whose VM it is: the state file's owner. */
	uid: number;
	qemuRunning: boolean;
	/** running, paused, starting or exited. */
	state: VmRunState;
	/** Seconds since pvrun started the VM (startedAt), as read. */
	uptimeSeconds: number;
	/** vCPU → the CPUs the kernel lets its thread run on now (from /proc), where known. */
	kernelCpus?: Record<string, number[]>;
	/** The host CPUs its pvrun leases (docs/leases.md), from the lease directory. */
	leases?: Array<{cpu: number; vcpu: number; since: number}>;
	/** Since when (ms since the epoch) it waits for a CPU of its own that other VMs lease. */
	leaseWaitingSince?: number;
}

/** A pvrun-* directory readVmStates did not list, and why. */
export interface SkippedRunDir {
	dir: string;
	reason: string;
}

/**
 * Record that QEMU (pid `qemuPid`) started for `plan`, served by the pvrun
 * process `pvrunPid` (this one unless said). Never throws: without a state
 * file the VM runs on, only `pvrun status` does not list it (said on stderr).
 */
export function writeVmState(
	plan: Pick<VmPlan, 'id' | 'runDir' | 'qmpSocket' | 'args'>,
	options: Pick<VmConfig, 'log'>,
	pids: {qemuPid: number; pvrunPid?: number},
): void {
	const pvrunPid = pids.pvrunPid ?? process.pid;
	const state: VmState = {version: stateVersion, id: plan.id, pvrunPid, qemuPid: pids.qemuPid, qmpSocket: plan.qmpSocket, startedAt: new Date().toISOString()};
	const start = processStartTicks(pvrunPid);
	if (start !== undefined) state.pvrunStart = start;
	const name = guestName(plan.args);
	if (name !== undefined) state.name = name;
	if (options.log !== undefined) state.log = path.resolve(options.log);
	try {
		writeAtomically(plan.runDir, state);
	} catch (error) {
		writeStderr(`pvrun: cannot write ${path.join(plan.runDir, stateFileName)}: ${firstLine(error)}; pvrun status will not list this VM\n`);
	}
}

/**
 * Publish the VM's current vCPU placement for `pvrun status` (the hint
 * engine calls it at most every 100 ms after changes). Returns false (never throws) when the state file
 * is gone (the VM ended) or cannot be rewritten.
 */
export function updatePlacement(runDir: string, placement: readonly VcpuPlacement[], activity?: HintActivity): boolean {
	return updateState(runDir, (state) => {
		state.placement = placement.map((p) => checkedPlacement(p, 'placement'));
		if (activity) state.activity = checkedActivity(activity);
		state.placementAt = new Date().toISOString();
	});
}

/** Publish whether hints are active (for `pvrun status`); false (never throws) when the VM ended. */
export function updateHints(runDir: string, hints: HintsStatus): boolean {
	return updateState(runDir, (state) => {
		state.hints = checkedHints(hints);
	});
}

/** Publish what critical-section observation counted (for `pvrun status`); false (never throws) when the VM ended. */
export function updateCs(runDir: string, cs: Omit<CsStatus, 'at'>): boolean {
	return updateState(runDir, (state) => {
		state.cs = checkedCs({...cs, at: new Date().toISOString()});
	});
}

/** Publish whether the guest runs or is paused (for `pvrun status`); false (never throws) when the VM ended. */
export function updateGuest(runDir: string, running: boolean): boolean {
	return updateState(runDir, (state) => {
		const now: GuestRunState['state'] = running ? 'running' : 'paused';
		if (state.guest?.state !== now) state.guest = {state: now, since: new Date().toISOString()};
	});
}

/** Read the state file, change it, write it back; false (never throws) if any step fails. */
function updateState(runDir: string, change: (state: VmState) => void): boolean {
	try {
		const state = parseVmState(JSON.parse(readStateFile(runDir).text));
		change(state);
		writeAtomically(runDir, state);
		return true;
	} catch {
		return false;
	}
}

/**
 * The pvrun VMs whose run directories are in `root` (the runtime root of a pvrun
 * started with the same user and environment: runtime-dir.ts), oldest first, and the directories skipped:
 * left by a pvrun that is gone, unreadable, or with a state file that is not
 * a valid one. Nothing is removed.
 */
export function readVmStates(root: string = runtimeRoot().dir): {vms: VmStatus[]; skipped: SkippedRunDir[]} {
	const vms: VmStatus[] = [];
	const skipped: SkippedRunDir[] = [];
	let entries: fs.Dirent[];
	try {
		entries = fs.readdirSync(root, {withFileTypes: true});
	} catch (error) {
		// No runtime root yet: no VM has run there.
		if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {vms, skipped};
		return {vms, skipped: [{dir: root, reason: `cannot list it: ${firstLine(error)}`}]};
	}
	for (const entry of entries) {
		const match = runDirPattern.exec(entry.name);
		// Symbolic links and files are not run directories pvrun made (it makes them with mkdir).
		if (!match || !entry.isDirectory()) continue;
		const runDir = path.join(root, entry.name);
		const dirPid = Number(match[1]);
		const result = readRunDir(runDir, entry.name, dirPid);
		if ('reason' in result) skipped.push({dir: runDir, reason: result.reason});
		else vms.push(result);
	}
	vms.sort(byStart);
	skipped.sort((a, b) => a.dir.localeCompare(b.dir));
	return {vms, skipped};
}

/** Oldest first (ties: the lower pvrun pid), as pvrun status lists VMs. */
export const byStart = (a: VmStatus, b: VmStatus): number => a.startedAt.localeCompare(b.startedAt) || a.pvrunPid - b.pvrunPid;

/** Whether `wanted` names the VM as pvrun's commands take it: its id, its -name, or its QEMU or pvrun pid. */
export function isVmNamed(vm: Pick<VmState, 'id' | 'name' | 'qemuPid' | 'pvrunPid'>, wanted: string): boolean {
	return vm.id === wanted || vm.name === wanted || String(vm.qemuPid) === wanted || String(vm.pvrunPid) === wanted;
}

/** The VM whose QEMU is `qemuPid` (pvrun became QEMU: its run directory is named after that pid), if listed in `root`. */
export function vmOfQemu(qemuPid: number, root: string = runtimeRoot().dir): VmStatus | undefined {
	return readVmStates(root).vms.find((vm) => vm.qemuPid === qemuPid);
}

/** One run directory: its VM, or why it is skipped. */
function readRunDir(runDir: string, id: string, dirPid: number): VmStatus | {reason: string} {
	let text: string;
	let uid: number;
	try {
		({text, uid} = readStateFile(runDir));
	} catch (error) {
		const code = (error as NodeJS.ErrnoException).code;
		if (!processAlive(dirPid)) return {reason: `process ${dirPid} is not running: left over from a pvrun that was killed (safe to remove)`};
		if (code === 'ENOENT') return {reason: `no ${stateFileName} yet (pvrun ${dirPid} is starting, or is an older pvrun)`};
		if (code === 'EACCES' || code === 'EPERM') return {reason: `${stateFileName} is not readable (another user's VM?)`};
		if (code === 'ELOOP') return {reason: `${stateFileName} is a symbolic link (not followed)`};
		return {reason: firstLine(error)};
	}
	let state: VmState;
	try {
		state = parseVmState(JSON.parse(text));
		if (state.id !== id) throw new Error(`its id ${JSON.stringify(state.id)} is not the directory's name`);
		if (state.pvrunPid !== dirPid && state.qemuPid !== dirPid)
			throw new Error(`neither its pvrun pid ${state.pvrunPid} nor its QEMU pid ${state.qemuPid} is the one in the directory's name`);
	} catch (error) {
		return {reason: `${stateFileName} is not a valid pvrun state file: ${firstLine(error)}`};
	}
	if (!processAlive(state.pvrunPid, state.pvrunStart)) {
		if (processAlive(state.qemuPid))
			return {reason: `pvrun ${state.pvrunPid} is gone (killed): QEMU ${state.qemuPid} runs on without hints; its files stay until it ends`};
		return {reason: `pvrun ${state.pvrunPid} is not running: left over from a pvrun that was killed (safe to remove)`};
	}
	const qemuRunning = processAlive(state.qemuPid);
	const vm: VmStatus = {
		...state,
		runDir,
		uid,
		qemuRunning,
		state: qemuRunning ? (state.guest?.state ?? 'starting') : 'exited',
		uptimeSeconds: Math.max(0, Math.round((Date.now() - Date.parse(state.startedAt)) / 1000)),
	};
	// What the kernel has, not only what pvrun planned: an operator may have pinned a vCPU since.
	const kernel: Record<string, number[]> = {};
	for (const p of state.placement ?? []) {
		if (p.tid === undefined || !vm.qemuRunning) continue;
		try {
			kernel[String(p.vcpu)] = threadCpusAllowed(state.qemuPid, p.tid);
		} catch {
			// the thread is gone (hot-unplug, QEMU quitting)
		}
	}
	if (Object.keys(kernel).length) vm.kernelCpus = kernel;
	return vm;
}

/** state.json's text and owner, if it is a regular file of plausible size (symbolic links are not followed). */
function readStateFile(runDir: string): {text: string; uid: number} {
	const file = path.join(runDir, stateFileName);
	const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
	try {
		const stat = fs.fstatSync(fd);
		if (!stat.isFile()) throw new Error(`${file} is not a regular file`);
		if (stat.size > maxStateBytes) throw new Error(`${file} is ${stat.size} bytes, too large for a state file`);
		return {text: fs.readFileSync(fd, 'utf8'), uid: stat.uid};
	} finally {
		fs.closeSync(fd);
	}
}

/** Write `state` to runDir/state.json through a temporary file and a rename. */
function writeAtomically(runDir: string, state: VmState): void {
	const file = path.join(runDir, stateFileName);
	const temporary = path.join(runDir, `.${stateFileName}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`);
	try {
		fs.writeFileSync(temporary, `${JSON.stringify(state)}\n`, {mode: 0o600, flag: 'wx'});
		fs.renameSync(temporary, file);
	} catch (error) {
		fs.rmSync(temporary, {force: true});
		throw error;
	}
}

/** Check a parsed state file field by field; throws naming the first field that is wrong. */
export function parseVmState(data: unknown): VmState {
	if (!isRecord(data)) throw new Error('it is not a JSON object');
	if (data['version'] !== stateVersion) throw new Error(`version ${JSON.stringify(data['version'])} is not ${stateVersion}`);
	const state: VmState = {
		version: stateVersion,
		id: stringField(data, 'id'),
		pvrunPid: pidField(data, 'pvrunPid'),
		qemuPid: pidField(data, 'qemuPid'),
		qmpSocket: stringField(data, 'qmpSocket'),
		startedAt: dateField(data, 'startedAt'),
	};
	if (data['pvrunStart'] !== undefined) state.pvrunStart = integerField(data, 'pvrunStart', 0);
	if (data['name'] !== undefined) state.name = stringField(data, 'name');
	if (data['log'] !== undefined) state.log = stringField(data, 'log');
	if (data['placement'] !== undefined) {
		const placement = data['placement'];
		if (!Array.isArray(placement)) throw new Error('placement is not a list');
		state.placement = placement.map((p: unknown, i) => checkedPlacement(p, `placement[${i}]`));
	}
	if (data['placementAt'] !== undefined) state.placementAt = dateField(data, 'placementAt');
	if (data['hints'] !== undefined) state.hints = checkedHints(data['hints']);
	if (data['activity'] !== undefined) state.activity = checkedActivity(data['activity']);
	if (data['cs'] !== undefined) state.cs = checkedCs(data['cs']);
	if (data['guest'] !== undefined) {
		const g = data['guest'];
		if (!isRecord(g) || (g['state'] !== 'running' && g['state'] !== 'paused')) throw new Error('guest.state is not running or paused');
		state.guest = {state: g['state'], since: dateField(g, 'since')};
	}
	return state;
}

function checkedCs(c: unknown): CsStatus {
	if (!isRecord(c)) throw new Error('cs is not an object');
	const vcpus = c['vcpus'];
	if (!Array.isArray(vcpus) || vcpus.length > 256) throw new Error('cs.vcpus is not a list of at most 256');
	return {
		vcpus: vcpus.map((v: unknown, i) => {
			const where = `cs.vcpus[${i}]`;
			if (!isRecord(v)) throw new Error(`${where} is not an object`);
			const out: CsVcpuStatus = {
				vcpu: integerField(v, 'vcpu', 0, where),
				csMs: integerField(v, 'csMs', 0, where),
				csPreemptedMs: integerField(v, 'csPreemptedMs', 0, where),
				preemptedMs: integerField(v, 'preemptedMs', 0, where),
			};
			const act = v['act'];
			if (act !== undefined) {
				if (!isRecord(act)) throw new Error(`${where}.act is not an object`);
				const f = (k: string) => integerField(act, k, 0, `${where}.act`);
				out.act = {boosts: f('boosts'), boostedUs: f('boostedUs'), budgetUs: f('budgetUs'), debtUs: f('debtUs'), paidUs: f('paidUs')};
			}
			return out;
		}),
		cells: integerField(c, 'cells', 0, 'cs'),
		at: dateField(c, 'at'),
	};
}

function checkedHints(h: unknown): HintsStatus {
	if (!isRecord(h)) throw new Error('hints is not an object');
	const state = h['state'];
	if (state !== 'waiting' && state !== 'active' && state !== 'inactive') throw new Error('hints.state is not waiting, active or inactive');
	const out: HintsStatus = h['reason'] === undefined ? {state} : {state, reason: stringField(h, 'reason')};
	if (h['types'] !== undefined) {
		const types = h['types'];
		if (!Array.isArray(types) || types.length > 32 || !types.every((x) => typeof x === 'string' && /^[a-z][a-z0-9-]{0,31}$/.test(x)))
			throw new Error('hints.types is not a list of hint type names');
		out.types = types as string[];
	}
	if (h['since'] !== undefined) out.since = integerField(h, 'since', 0, 'hints');
	return out;
}

/** A host CPU number pvrun can name. */
const isCpu = (c: unknown): boolean => Number.isInteger(c) && (c as number) >= 0 && (c as number) <= MAX_CPU;

function checkedPlacement(p: unknown, where: string): VcpuPlacement {
	if (!isRecord(p)) throw new Error(`${where} is not an object`);
	const cpus = p['cpus'];
	if (!Array.isArray(cpus) || cpus.length > MAX_CPU + 1 || !cpus.every(isCpu)) throw new Error(`${where}.cpus is not a list of CPU numbers`);
	if (typeof p['exclusive'] !== 'boolean') throw new Error(`${where}.exclusive is not true or false`);
	const placed: VcpuPlacement = {vcpu: integerField(p, 'vcpu', 0, where), cpus: [...(cpus as number[])], exclusive: p['exclusive']};
	if (p['tid'] !== undefined) placed.tid = integerField(p, 'tid', 1, where);
	if (p['operator'] !== undefined) {
		if (typeof p['operator'] !== 'boolean') throw new Error(`${where}.operator is not true or false`);
		placed.operator = p['operator'];
	}
	return placed;
}

function checkedActivity(a: unknown): HintActivity {
	if (!isRecord(a)) throw new Error('activity is not an object');
	const recent = a['recent'];
	if (!Array.isArray(recent) || recent.length > 8) throw new Error('activity.recent is not a list of at most 8');
	return {
		records: integerField(a, 'records', 0, 'activity'),
		pins: integerField(a, 'pins', 0, 'activity'),
		floats: integerField(a, 'floats', 0, 'activity'),
		denies: integerField(a, 'denies', 0, 'activity'),
		recent: recent.map((d: unknown, i): RecentDecision => {
			const where = `activity.recent[${i}]`;
			if (!isRecord(d)) throw new Error(`${where} is not an object`);
			const kind = d['kind'];
			if (kind !== 'pin' && kind !== 'float' && kind !== 'deny') throw new Error(`${where}.kind is not pin, float or deny`);
			const list = (key: string, ok: (n: unknown) => boolean): number[] => {
				const v = d[key];
				if (!Array.isArray(v) || v.length > MAX_CPU + 1 || !v.every(ok)) throw new Error(`${where}.${key} is not a list of numbers`);
				return [...(v as number[])];
			};
			const out: RecentDecision = {
				at: integerField(d, 'at', 0, where),
				kind,
				vcpus: list('vcpus', (v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < 4096),
				cpus: list('cpus', isCpu),
			};
			if (d['tid'] !== undefined) out.tid = integerField(d, 'tid', 0, where);
			if (d['comm'] !== undefined) {
				const comm = stringField(d, 'comm');
				if (comm.length > 16) throw new Error(`${where}.comm is longer than a thread name`);
				out.comm = comm;
			}
			if (d['shared'] !== undefined) {
				if (typeof d['shared'] !== 'boolean') throw new Error(`${where}.shared is not true or false`);
				out.shared = d['shared'];
			}
			return out;
		}),
	};
}

function isRecord(value: unknown): value is Record<string, unknown> {
	return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Strings are one line and bounded: they end up on a terminal.
function stringField(data: Record<string, unknown>, key: string): string {
	const value = data[key];
	// C1 controls too: some terminals take U+009B as the start of an escape sequence.
	// eslint-disable-next-line no-control-regex
	if (typeof value !== 'string' || value.length > 4096 || /[\u0000-\u001f\u007f-\u009f]/.test(value)) throw new Error(`${key} is not a one-line string`);
	return value;
}

function integerField(data: Record<string, unknown>, key: string, min: number, where = ''): number {
	const value = data[key];
	if (!Number.isSafeInteger(value) || (value as number) < min) throw new Error(`${where ? `${where}.` : ''}${key} is not an integer >= ${min}`);
	return value as number;
}

function pidField(data: Record<string, unknown>, key: string): number {
	return integerField(data, key, 1);
}

function dateField(data: Record<string, unknown>, key: string): string {
	const value = stringField(data, key);
	if (Number.isNaN(Date.parse(value))) throw new Error(`${key} is not a date`);
	return value;
}
