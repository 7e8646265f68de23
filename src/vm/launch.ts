// Running a VM through pvrun: QEMU with the user's arguments first, then the
// hint channel (IVSHMEM area, agent virtio-serial port, QMP socket); the hint
// loop runs beside it. QEMU owns the console; pvrun exits with its status.
import {spawn, type ChildProcess} from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {AgentClient} from '../agent/client.js';
import {protocolVersion} from '../agent/protocol.js';
import {ownCpus, formatCpuList} from '../host/cpus.js';
import {SectionBoost} from '../host/boost.js';
import {prepareScheduling, setThreadLatency} from '../host/libc.js';
import {Pinner, qemuOtherThreads} from '../pin/pinner.js';
import {chooseAccel} from '../qemu/accel.js';
import {connectQmp, type Qmp, type VcpuThread} from '../qemu/qmp.js';
import {createShmArea, ivshmemArgs, type ShmArea} from '../shm/area.js';
import {RecordType, maxVcpus, shmSize} from '../shm/layout.js';
import {RingReader} from '../shm/reader.js';
import {PvrunError, firstLine} from '../util/errors.js';
import {packageRoot} from '../util/paths.js';
import {userChoseAccel, userSetDebugThreads, vcpuCount, type PvOptions} from '../cli/pv-options.js';
import {EventLog} from './event-log.js';
import {HintEngine} from './hints.js';
import {writeVmState} from './state.js';

export const agentPortName = 'org.pvrun.agent.0';
/** Nice value of the threads on the hint path (pvrun's own, QEMU's main loop). */
const channelNice = -10;
/**
 * Their time slice: short, so that on an EEVDF kernel (6.6+, custom slices
 * 6.12+) they preempt a busy vCPU thread when they wake rather than wait for
 * its slice to end. With the default slice the hint round trip's p99 was
 * ~3 ms on the 2-core development machine, with 100 µs ~1.1 ms.
 */
const channelSliceNs = 100_000;
/** pvrun's thread during a hint decision: the lowest real-time priority (see SectionBoost). */
const decisionPriority = 1;

/** Files and ids of one pvrun VM. */
export interface VmPlan {
	id: string;
	runDir: string;
	shmPath: string;
	qmpSocket: string;
	agentSocket: string;
	nrVcpus: number;
	allowed: number[];
	/** The complete QEMU argument list: the user's, then pvrun's. */
	args: string[];
	accelNote?: string;
}

/** Decide ids, paths and the QEMU command line (nothing is created yet). */
export function planVm(qemuArgs: string[], options: PvOptions, runRoot = os.tmpdir()): VmPlan {
	const id = `pvrun-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
	const runDir = path.join(runRoot, id);
	const own = ownCpus();
	const allowed = options.cpus ?? own;
	const foreign = allowed.filter((c) => !own.includes(c));
	if (foreign.length) throw new PvrunError(`--pv-cpus names CPUs pvrun may not use: ${formatCpuList(foreign)} (allowed: ${formatCpuList(own)})`, {exitCode: 2});
	const nrVcpus = Math.min(vcpuCount(qemuArgs), maxVcpus);
	const plan: VmPlan = {
		id,
		runDir,
		shmPath: `/dev/shm/${id}`,
		qmpSocket: path.join(runDir, 'qmp.sock'),
		agentSocket: path.join(runDir, 'agent.sock'),
		nrVcpus,
		allowed,
		args: [...qemuArgs],
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
	return plan;
}

/** Run QEMU exactly as given (--pv-off); resolves to its exit status. */
export async function runPlain(qemu: string, args: string[]): Promise<number> {
	const child = spawnQemu(qemu, args);
	return waitForExit(child, () => {});
}

/** Run a VM with the hint channel; resolves to QEMU's exit status. */
export async function runVm(plan: VmPlan, options: PvOptions): Promise<number> {
	const log = new EventLog(options.log, process.stderr.isTTY === true);
	fs.mkdirSync(plan.runDir, {mode: 0o700});
	let area: ShmArea | undefined;
	try {
		area = createShmArea(plan.shmPath, plan.nrVcpus);
	} catch (error) {
		fs.rmSync(plan.runDir, {recursive: true, force: true});
		throw error;
	}
	if (plan.accelNote) process.stderr.write(`pvrun: accelerator: ${plan.accelNote}\n`);
	const child = spawnQemu(options.qemu, plan.args);
	if (child.pid !== undefined) writeVmState(plan, options, child.pid);
	const session = new HintSession(plan, area, child, log);
	return waitForExit(child, () => session.close());
}

/** Start QEMU with the console inherited; it dies with pvrun (parent-death signal). */
function spawnQemu(qemu: string, args: string[]): ChildProcess {
	return spawn('setpriv', ['--pdeathsig', 'KILL', '--', qemu, ...args], {stdio: 'inherit'});
}

/** Forward signals to QEMU, wait for it, clean up; resolves to an exit code (128+n for a signal). */
function waitForExit(child: ChildProcess, cleanup: () => void | Promise<void>): Promise<number> {
	const forward = (signal: NodeJS.Signals) => child.kill(signal);
	const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
	for (const s of signals) process.on(s, forward);
	// Stop forwarding and clean up, then settle.
	const finish = (settle: () => void): void => {
		for (const s of signals) process.off(s, forward);
		void Promise.resolve(cleanup()).finally(settle);
	};
	return new Promise((resolve, reject) => {
		child.once('error', (error: NodeJS.ErrnoException) =>
			finish(() =>
				reject(new PvrunError(error.code === 'ENOENT' ? 'setpriv or QEMU not found: run make setup' : `cannot start QEMU: ${error.message}`, {cause: error, exitCode: 127})),
			),
		);
		child.once('exit', (code, signal) => finish(() => resolve(code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0))));
	});
}

/** Everything beside QEMU for one VM: QMP, the agent channel, the hint engine. Never fatal to the VM. */
class HintSession {
	private qmp: Qmp | undefined;
	private agent: AgentClient | undefined;
	private engine: HintEngine | undefined;
	private closed = false;
	private agentSeen = false;
	/** The guest's end of the agent port is open (from VSERPORT_CHANGE). */
	private portOpen = false;
	private handshaking = false;
	private vcpuKey = '';
	private refresher: NodeJS.Timeout | undefined;
	private readonly reader: RingReader;

	constructor(
		private readonly plan: VmPlan,
		private readonly area: ShmArea,
		private readonly child: ChildProcess,
		private readonly log: EventLog,
	) {
		this.reader = new RingReader(area);
		log.write('start', {id: plan.id, vcpus: plan.nrVcpus, allowed: plan.allowed, qemuPid: child.pid ?? 0, shm: plan.shmPath});
		this.start().catch((error: unknown) => {
			if (!this.closed) this.warn(`hint channel unavailable: ${firstLine(error)}; the VM runs without hints`);
		});
	}

	/** Connect QMP and the agent channel, then start the hint loop. */
	private async start(): Promise<void> {
		// QEMU exiting stops the connection attempts (they retry until QEMU listens).
		const gone = new AbortController();
		const exited = new Promise<never>((_, reject) =>
			this.child.once('exit', () => {
				gone.abort('QEMU exited');
				reject(new PvrunError('QEMU exited'));
			}),
		);
		exited.catch(() => {});
		this.qmp = await Promise.race([connectQmp(this.plan.qmpSocket, {timeoutMs: 15_000, signal: gone.signal}), exited]);
		if (this.closed) return;
		const threads = await this.qmp.vcpuThreads();
		const raised = this.raiseChannelPriority(threads.map((t) => t.threadId));
		const pinner = new Pinner(new Map(), this.child.pid ?? 0, true);
		this.adoptVcpus(threads, pinner);
		this.engine = new HintEngine(this.area, this.reader, pinner, this.plan.allowed, Math.min(threads.length, this.plan.nrVcpus), this.log, this.decisionBoost(raised));
		this.engine.start();
		this.qmp.on('event', (name, data) => this.onQmpEvent(name, data, pinner));
		// Not every QEMU version announces CPU hot-plug with an event: look every 5 s too (~0.2 ms).
		this.refresher = setInterval(() => void this.refreshVcpus(pinner), 5000);
		this.refresher.unref();
		this.agent = await Promise.race([AgentClient.connect(this.plan.agentSocket, 15_000, gone.signal), exited]);
		this.agent.on('kick', () => this.engine?.kick());
		// The guest may have opened its port before we connected: ask QEMU, so no handshake is missed.
		const chardevs = await this.qmp.execute<Array<{label?: unknown; 'frontend-open'?: unknown}>>('query-chardev');
		if (this.portOpen || chardevs.some((c) => c.label === `${this.plan.id}-agent` && c['frontend-open'] === true)) void this.handshake();
		const noAgent = setTimeout(() => {
			if (!this.agentSeen && !this.closed) this.warn('no pvrun agent answered in the guest: the VM runs as plain QEMU would');
		}, 120_000);
		noAgent.unref();
	}

	/** React to QMP events: the agent port opening/closing, guest resets, CPU hot-plug. */
	private onQmpEvent(name: string, data: unknown, pinner: Pinner): void {
		const d = (data ?? {}) as {id?: unknown; open?: unknown};
		if (name === 'VSERPORT_CHANGE' && d.id === `${this.plan.id}-port`) {
			this.portOpen = d.open === true;
			if (d.open === true) void this.handshake();
			else {
				this.log.write('agent', {state: 'closed'}, 'guest agent closed its port');
				this.engine?.reset('agent stopped');
			}
		} else if (name === 'RESET') {
			this.engine?.reset('guest reset');
		} else if (name === 'DEVICE_ADDED' || name === 'DEVICE_DELETED' || name === 'ACPI_DEVICE_OST') {
			void this.refreshVcpus(pinner);
		}
	}

	/** Make `threads` the VM's vCPU threads (pinner, engine, log), unless they are the ones already known. */
	private adoptVcpus(threads: VcpuThread[], pinner: Pinner, summary?: string): void {
		const key = threads.map((t) => `${t.index}:${t.threadId}`).join(',');
		if (key === this.vcpuKey) return;
		this.vcpuKey = key;
		pinner.setThreads(new Map(threads.map((t) => [t.index, t.threadId])));
		this.engine?.setVcpuCount(threads.length);
		this.log.write('vcpus', {threads: threads.map((t) => t.threadId), allowed: this.plan.allowed}, summary);
	}

	/** Re-read the vCPU threads from QMP; on a change (hot-plug), re-apply everything. */
	private async refreshVcpus(pinner: Pinner): Promise<void> {
		try {
			const threads = await this.qmp?.vcpuThreads();
			if (threads && !this.closed) this.adoptVcpus(threads, pinner, `vCPUs now ${threads.length}`);
		} catch (error) {
			if (!this.closed) this.log.write('warning', {message: `cannot refresh the vCPU threads: ${firstLine(error)}`});
		}
	}

	/** Hello, then load the affinity program if the agent has none (one handshake at a time). */
	private async handshake(): Promise<void> {
		const agent = this.agent;
		if (!agent || agent.isClosed || this.handshaking) return;
		this.handshaking = true;
		try {
			const hello = await agent.hello(shmSize, 5000);
			this.agentSeen = true;
			this.log.write('agent', {state: 'hello', version: hello.agentVersion, kernel: hello.kernelRelease, cpus: hello.nrCpus, shm: hello.shmOk, programs: hello.programs}, `guest agent ${hello.agentVersion} on ${hello.kernelRelease}${hello.shmOk ? '' : ' (no shared memory!)'}`);
			if (hello.version !== protocolVersion) {
				this.warn(`guest agent speaks protocol version ${hello.version}, pvrun ${protocolVersion}: no hints`);
				return;
			}
			if (!hello.shmOk) return;
			if (hello.programs > 0) return;
			const object = fs.readFileSync(path.join(packageRoot, 'bpf', 'affinity.bpf.o'));
			const started = performance.now();
			const loaded = await agent.load('affinity', RecordType.affinity, object);
			this.log.write('program', {name: 'affinity', id: loaded.id, links: loaded.links, loadMs: Math.round(performance.now() - started)}, `affinity hints on (BPF program loaded in ${Math.round(performance.now() - started)} ms)`);
		} catch (error) {
			this.warn(`guest agent: ${firstLine(error)}`);
		} finally {
			this.handshaking = false;
		}
	}

	/**
	 * The hint path runs through pvrun's own thread and QEMU's main loop (which
	 * relays the agent's KICK): both mostly sleep, but when they wake they must
	 * not wait behind busy vCPU threads. Raise them (nice -10, short slice) when
	 * allowed; true if pvrun's own thread was raised.
	 */
	private raiseChannelPriority(vcpuTids: number[]): boolean {
		const tids = [0, ...qemuOtherThreads(this.child.pid ?? 0, vcpuTids)];
		let self = false;
		for (const tid of tids) {
			try {
				setThreadLatency(tid, channelNice, channelSliceNs);
				if (tid === 0) self = true;
			} catch (error) {
				this.log.write('warning', {message: `cannot raise priority of thread ${tid}: ${firstLine(error)}`});
			}
		}
		return self;
	}

	/**
	 * SCHED_FIFO for pvrun's own thread while it decides, and back to the class it
	 * had (raised or not) after; if even that fails, to plain SCHED_OTHER, which
	 * any thread may always return to.
	 */
	private decisionBoost(raised: boolean): SectionBoost {
		const fifo = prepareScheduling({policy: 'fifo', priority: decisionPriority});
		const plain = prepareScheduling({policy: 'other', nice: 0, sliceNs: 0});
		const normal = raised ? prepareScheduling({policy: 'other', nice: channelNice, sliceNs: channelSliceNs}) : plain;
		return new SectionBoost({enter: () => fifo.apply(0), leave: () => (normal.apply(0) === 0 ? 0 : plain.apply(0))}, (reason) => this.log.write('warning', {message: reason}));
	}

	private warn(message: string): void {
		if (this.closed) return;
		this.log.write('warning', {message});
		process.stderr.write(`pvrun: ${message}\n`);
	}

	/** The VM is gone: stop everything and remove our files. */
	close(): void {
		if (this.closed) return;
		this.closed = true;
		clearInterval(this.refresher);
		this.engine?.stop();
		this.agent?.close();
		void this.qmp?.close().catch(() => {});
		if (this.engine && this.engine.hostLatenciesUs.length) {
			const s = [...this.engine.hostLatenciesUs].sort((a, b) => a - b);
			const pct = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
			this.log.write('host-latency', {n: s.length, p50Us: pct(0.5), p99Us: pct(0.99), maxUs: s[s.length - 1] ?? 0});
		}
		this.log.write('exit', {counters: {...this.reader.counters}});
		this.area.remove();
		fs.rmSync(this.plan.runDir, {recursive: true, force: true});
		this.log.close();
	}
}
