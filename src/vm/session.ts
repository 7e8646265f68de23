// Everything pvrun runs beside one VM's QEMU: its run directory and shared
// memory, and the hint session (QMP, the agent channel, the hint engine).
// The same for QEMU exec'd in place (served by pvrun's helper) and for one that daemonized.
import fs from 'node:fs';
import path from 'node:path';
import {AgentClient, AgentPortClosedError, AgentReplyError, AgentTimeoutError} from '../agent/client.js';
import {ScriptRuns, type ScriptNews} from './hint-scripts.js';
import {AgentWatch, type HintsStatus} from '../agent/watch.js';
import {protocolVersion} from '../agent/protocol.js';
import {FastPath} from '../fast/binding.js';
import {LeaseTable, leaseDir} from '../host/leases.js';
import {getThreadAffinity, setThreadLatency, threadInProcess} from '../host/libc.js';
import {priorityUnavailable} from '../pin/priority.js';
import {takenCpus} from '../host/taken.js';
import {memoryNode, readTopology} from '../host/topology.js';
import {FloatGroup} from '../pin/cpuset.js';
import {Pinner, threadsExcept} from '../pin/pinner.js';
import {VcpuUsage} from '../pin/usage.js';
import {connectQmp, type Qmp, type VcpuThread} from '../qemu/qmp.js';
import {createShmArea, type ShmArea} from '../shm/area.js';
import {Header, shmSize, shmVersion} from '../shm/layout.js';
import {hintTypes, hostFeatures} from '../hints/index.js';
import {CsObserver, csIdlePeriodMs, csPeriodMs, csProgram} from '../hints/cs/observer.js';
import {HostSched} from '../fast/sched.js';
import {RingReader} from '../shm/reader.js';
import {PvrunError, firstLine} from '../util/errors.js';
import {packageRoot} from '../util/paths.js';
import {LineBudget} from '../util/line-budget.js';
import {percentiles} from '../util/stats.js';
import {channelIds} from './devices.js';
import type {EventLog} from './event-log.js';
import {AffinityEngine} from '../hints/affinity/engine.js';
import {VmLeases} from '../hints/affinity/leasing.js';
import {guestName} from '../qemu/args.js';
import {MetricsFile} from './metrics.js';
import {updateCs, updateGuest, updateHints, updatePlacement, type HintActivity, type VcpuPlacement} from './state.js';
import type {VmPlan} from './plan.js';
import type {QemuProcess} from './qemu-process.js';
import {guestBudget, type GuestBudget} from '../util/guest-budget.js';
import {CpuGovernor} from '../util/cpu-governor.js';

/** Nice value of the threads on the hint path (pvrun's own, QEMU's main loop). */
const channelNice = -10;
/**
 * Their time slice: short, so that on an EEVDF kernel (6.6+, custom slices
 * 6.12+) they preempt a busy vCPU thread when they wake rather than wait for
 * its slice to end. With the default slice the hint round trip's p99 was
 * ~3 ms on the 2-core development machine, with 100 µs ~1.1 ms.
 */
const channelSliceNs = 100_000;
/** How long a failed channel set-up waits to see whether QEMU is simply quitting before it warns. */
/** How long a HELLO waits for the agent's answer at first, and at most after answers that came late, ms. */
const firstHelloWaitMs = 5000;
const maxHelloWaitMs = 40_000;
const quitGraceMs = 2000;
/** A move between cpusets slower than this (ms) makes `--pv-placement auto` pin threads one by one: it waited for an RCU grace period. */
const slowMoveMs = 2;
/**
 * `--pv-placement auto` grants by priority (else moves the floating vCPU threads as one) from
 * this many vCPUs on: with busy vCPU threads, a grant one thread at a time costs about as much as
 * either at 16, less below, more above (bench/experiments/2026-12-06-placement-flat/,
 * 2026-12-06-placement-priority/).
 */
const bigVmVcpus = 16;

/** How often --pv-metrics rewrites its file: a textfile collector reads it when scraped (every 15 s or more). */
const metricsPeriodMs = 5000;

/** Create the VM's run directory (sockets, state file) and shared memory; nothing is left if this throws. */
export function createRunFiles(plan: Pick<VmPlan, 'runDir' | 'shmPath' | 'nrVcpus' | 'cs'>): ShmArea {
	try {
		fs.mkdirSync(plan.runDir, {mode: 0o700});
	} catch (error) {
		throw new PvrunError(`cannot create pvrun's run directory ${plan.runDir}: ${(error as NodeJS.ErrnoException).code ?? firstLine(error)}`, {cause: error});
	}
	try {
		return createShmArea(plan.shmPath, plan.nrVcpus, hostFeatures(plan.cs));
	} catch (error) {
		fs.rmSync(plan.runDir, {recursive: true, force: true});
		throw error;
	}
}

/** Remove what createRunFiles made (idempotent). */
export function removeRunFiles(plan: Pick<VmPlan, 'runDir'>, area: ShmArea): void {
	area.remove();
	fs.rmSync(plan.runDir, {recursive: true, force: true});
}

export class HintSession {
	private qmp: Qmp | undefined;
	private agent: AgentClient | undefined;
	private engine: AffinityEngine | undefined;
	/** Critical sections observed (--pv-cs observe). */
	private cs: CsObserver | undefined;
	private fast: FastPath | undefined;
	/** The floating vCPU threads' cpuset (--pv-placement). */
	private group: FloatGroup | undefined;
	private leases: VmLeases | undefined;
	private metrics: MetricsFile | undefined;
	private metricsTimer: NodeJS.Timeout | undefined;
	/** The placement and activity the engine published last. */
	private published: {placement: VcpuPlacement[]; activity: HintActivity} | undefined;
	/** KICK frames on the agent channel (with the fast path on, kicks the kick port did not take). */
	private agentKicks = 0;
	private closed = false;
	/** Whether hints are active, and why not (pvrun status, stderr). */
	private readonly watch: AgentWatch;
	private watchTimer: NodeJS.Timeout | undefined;
	/** The guest's end of the agent port is open (from VSERPORT_CHANGE). */
	private portOpen = false;
	private handshaking = false;
	private vcpuKey = '';
	private refresher: NodeJS.Timeout | undefined;
	private readonly reader: RingReader;
	/** What the guest may make pvrun spend (--pv-guest-cpu). */
	private readonly budget: GuestBudget;
	/** pvrun's measured CPU held within the guest's share, from the end of set-up on (absent with --pv-guest-cpu off). */
	private governor: CpuGovernor | undefined;
	private readonly cpuHoldMs = (): number => this.governor?.holdMs() ?? 0;

	constructor(
		private readonly plan: VmPlan,
		private readonly area: ShmArea,
		private readonly qemu: QemuProcess,
		private readonly log: EventLog,
	) {
		this.reader = new RingReader(area);
		this.budget = guestBudget(plan.guestCpuPercent);
		this.watch = new AgentWatch(plan.agentWaitMs);
		const pci = plan.place.slot === undefined ? 'auto' : `${plan.place.bus ?? ''}:0x${plan.place.slot.toString(16)}`;
		log.write('start', {
			id: plan.id,
			vcpus: plan.nrVcpus,
			allowed: plan.allowed,
			qemuPid: qemu.pid,
			shm: plan.shmPath,
			pci,
			guestCpuPercent: plan.guestCpuPercent,
		});
		this.start().catch(async (error: unknown) => {
			// A QEMU that is quitting closes its monitor mid-setup: that is the VM ending, not news for the terminal.
			if (await this.quitsWithin(quitGraceMs)) return;
			this.warn(`hint channel unavailable: ${firstLine(error)}; the VM runs without hints`);
		});
	}

	/** True if QEMU exits (or this session closes) within `ms`; the wait keeps nothing alive. */
	private async quitsWithin(ms: number): Promise<boolean> {
		if (this.closed) return true;
		let timer: NodeJS.Timeout | undefined;
		const late = new Promise<false>((resolve) => {
			timer = setTimeout(() => resolve(false), ms);
			timer.unref();
		});
		const quit = await Promise.race([this.qemu.exited.then(() => true as const), late]);
		clearTimeout(timer);
		return quit || this.closed;
	}

	/** Connect QMP and the agent channel, then start the hint loop. */
	private async start(): Promise<void> {
		// QEMU exiting stops the connection attempts (they retry until QEMU listens).
		const gone = new AbortController();
		const exited = this.qemu.exited.then((): never => {
			gone.abort('QEMU exited');
			throw new PvrunError('QEMU exited');
		});
		exited.catch(() => {});
		this.qmp = await Promise.race([connectQmp(this.plan.qmpSocket, {timeoutMs: 15_000, signal: gone.signal}), exited]);
		// close() ran while we connected: it could not close what was not there yet.
		if (this.closed) return void this.qmp.close().catch(() => {});
		const threads = await this.qmp.vcpuThreads();
		if (this.closed) return;
		this.raiseChannelPriority(threads.map((t) => t.threadId));
		const pinner = new Pinner(new Map(), this.qemu.pid, true);
		this.adoptVcpus(threads, pinner);
		this.openPlacement(pinner, threads);
		this.engine = new AffinityEngine(
			this.area,
			this.reader,
			pinner,
			this.plan.allowed,
			Math.min(threads.length, this.plan.nrVcpus),
			this.log,
			new VcpuUsage(this.qemu.pid),
			getThreadAffinity,
			this.qemu.pid,
			this.budget,
			this.cpuHoldMs,
		);
		this.openLeases(this.engine);
		this.startFastPath(this.engine);
		// pvrun status shows where the vCPUs run (the state file is in the run directory).
		this.engine.placementListener = (placement, activity) => {
			this.published = {placement, activity};
			void updatePlacement(this.plan.runDir, placement, activity);
		};
		this.startMetrics();
		this.engine.start();
		if (this.plan.cs !== 'off') this.startCs(threads);
		// Set-up (QMP, the host BPF program) is pvrun's own and happens once; from here on the
		// guest drives the work.
		if (this.budget.governor) {
			this.governor = new CpuGovernor({...this.budget.governor, ownCpuMs: () => this.cs?.ownCpuMs ?? 0});
			this.governor.onAllowance = (ms) => this.fast?.allow(ms);
			this.governor.onHold = (debtMs) => this.cpuHeld(debtMs);
			this.governor.start();
		}
		this.qmp.on('event', (name, data) => this.onQmpEvent(name, data, pinner));
		// Not every QEMU version announces CPU hot-plug with an event: look every 5 s too (~0.2 ms).
		this.refresher = setInterval(() => void this.refreshVcpus(pinner), 5000);
		this.refresher.unref();
		// The wait for an agent counts guest time: not while QEMU waits (-S) or the VM is paused.
		const status = await this.qmp.execute<{running?: unknown}>('query-status');
		this.guestRunning(status.running === true);
		if (status.running === true) this.afterIncoming();
		// Each second: the wait for an agent, the hint types it has attached, records lost.
		this.watchTimer = setInterval(() => {
			this.hintsChanged(this.watch.check());
			this.checkLosses();
		}, 1000);
		this.watchTimer.unref();
		this.publishHints();
		this.agent = await Promise.race([AgentClient.connect(this.plan.agentSocket, 15_000, gone.signal, this.budget, this.cpuHoldMs), exited]);
		if (this.closed) return this.agent.close();
		this.agent.on('kick', () => {
			this.agentKicks++;
			this.engine?.kick();
		});
		this.agent.on('log', (line) => this.guestLog(line));
		this.agent.on('script', (out) => this.scriptNews(this.scripts.output(out)));
		// The guest may have opened its port before we connected: ask QEMU, so no handshake is missed.
		const chardevs = await this.qmp.execute<Array<{label?: unknown; 'frontend-open'?: unknown}>>('query-chardev');
		if (this.portOpen || chardevs.some((c) => c.label === channelIds.agentChardev && c['frontend-open'] === true)) void this.handshake();
	}

	/**
	 * Records lost (the guest's ring was full, or pvrun read too late) may have been a thread's
	 * exit or release: its hint would stay with no thread behind it. Once the losses stop (a
	 * second without one), and at most every 5 s, start over: forget every hint, and have the
	 * agent report the threads pinned now (SNAPSHOT). An agent without SNAPSHOT is told once.
	 */
	private checkLosses(): void {
		const c = this.reader.counters;
		const lost = c.guestLost + c.overrun;
		const growing = lost !== this.losses.seen;
		this.losses.seen = lost;
		const agent = this.agent;
		const now = performance.now();
		if (growing || lost === this.losses.synced || !agent || agent.isClosed || this.handshaking || !this.engine) return;
		if (this.watch.status.state !== 'active' || this.losses.unsupported || now - this.losses.at < 5000 || this.cpuHoldMs() > 0) return;
		this.losses.at = now;
		this.losses.synced = lost;
		this.engine.startOver(lost);
		agent.snapshot().then(
			(iterators) => this.log.write('agent', {state: 'snapshot', iterators}),
			(error: unknown) => {
				if (agent.isClosed || error instanceof AgentPortClosedError) return;
				if (error instanceof AgentReplyError) this.losses.unsupported = true;
				this.log.write('warning', {message: `guest agent: snapshot: ${firstLine(error)}`});
			},
		);
	}
	private readonly losses = {seen: 0, synced: 0, at: -Infinity, unsupported: false};

	/** A LOG frame from the guest agent, into the event log: one line of at most 200 printable characters, within a budget (the guest is untrusted). */
	private guestLog(line: string): void {
		const go = this.guestLogBudget.take();
		if (go.ok) this.log.write('guest-log', {line: line.replace(/[^\x20-\x7e]/g, '?').slice(0, 200), dropped: go.dropped});
	}
	/** Guest agent LOG lines written to the event log: at most 30 a minute. */
	private readonly guestLogBudget = new LineBudget(30, 60_000);

	/**
	 * The hints' state may have changed: log it, publish it for pvrun status,
	 * and print `line` (a change a user should hear of) on stderr.
	 */
	private hintsChanged(line?: string): void {
		if (this.closed) return;
		if (line !== undefined) this.log.warn(line);
		this.publishHints();
	}

	/** The hints' state in the event log (on a change) and the state file. */
	private publishHints(): void {
		const status: HintsStatus = {...this.watch.status};
		const types = this.attachedTypes();
		if (types.length) status.types = types;
		if (status.state === 'active') status.since = this.activeSince ??= Date.now();
		else this.activeSince = undefined;
		const key = `${status.state}:${status.reason ?? ''}:${types.join(',')}`;
		if (key === this.publishedHints) return;
		this.publishedHints = key;
		this.log.write('hints', {
			state: status.state,
			...(status.reason === undefined ? {} : {reason: status.reason}),
			...(types.length ? {types: types.join(',')} : {}),
		});
		updateHints(this.plan.runDir, status);
	}

	private activeSince: number | undefined;

	/** The hint types the agent says it has attached (the header's agent_features; only bits pvrun knows). */
	private attachedTypes(): string[] {
		const bits = this.area.view.getUint32(Header.agentFeatures, true);
		return [...hintTypes, csProgram].filter((h) => (bits & h.feature) !== 0).map((h) => h.name);
	}
	private publishedHints = '';

	/** The guest runs or is paused: the agent watch counts guest time, and `pvrun status` shows it (a rare event, one small file). */
	private guestRunning(running: boolean): void {
		this.watch.guestRunning(running);
		updateGuest(this.plan.runDir, running);
	}

	/** React to QMP events: the agent port opening/closing, guest resets, CPU hot-plug. */
	private onQmpEvent(name: string, data: unknown, pinner: Pinner): void {
		const d = (data ?? {}) as {id?: unknown; open?: unknown};
		if (name === 'VSERPORT_CHANGE' && d.id === channelIds.agentPort) {
			this.portOpen = d.open === true;
			this.agent?.streamRestarted(d.open === true);
			if (d.open === true) void this.handshake();
			else {
				this.log.write('agent', {state: 'closed'}, 'guest agent closed its port');
				this.engine?.reset('agent stopped');
				this.watch.gone('the guest agent closed its port');
				this.hintsChanged();
			}
		} else if (name === 'RESET') {
			this.agent?.streamRestarted(false);
			this.engine?.reset('guest reset');
			this.watch.gone('the guest was reset');
			this.hintsChanged();
		} else if (name === 'STOP' || name === 'RESUME') {
			this.guestRunning(name === 'RESUME');
			if (name === 'RESUME') this.afterIncoming();
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
		this.cs?.setThreads(threads.map((t) => t.threadId));
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

	/**
	 * A VM that came in (-incoming: virsh managedsave then start, a
	 * migration) runs for the first time: the shared memory now holds the old
	 * session's bytes, and the guest's agent and programs went on running.
	 * Start afresh from the guest's head, and have the agent load the program
	 * again, so that its task iterator reports every thread pinned now.
	 */
	private afterIncoming(): void {
		if (!this.plan.incoming || this.incomingDone) return;
		this.incomingDone = true;
		this.engine?.restored();
		this.watch.gone('the VM was restored: waiting for the guest agent');
		this.hintsChanged();
		this.reload = true;
		void this.handshake();
	}
	private incomingDone = false;
	/** The next handshake loads the program again even if the agent has it (after a restore). */
	private reload = false;

	/** Hello, then load the affinity program if the agent has none (one handshake at a time). */
	private async handshake(): Promise<void> {
		const agent = this.agent;
		if (!agent || agent.isClosed || this.handshaking) return;
		this.handshaking = true;
		let again = false;
		try {
			const hello = await agent.hello(shmSize, this.helloWaitMs);
			this.helloWaitMs = firstHelloWaitMs;
			this.log.write(
				'agent',
				{
					state: 'hello',
					version: hello.agentVersion,
					kernel: hello.kernelRelease,
					cpus: hello.nrCpus,
					shm: hello.shmOk,
					shmVersion: hello.shmVersion,
					programs: hello.programs,
				},
				`guest agent ${hello.agentVersion} on ${hello.kernelRelease}${hello.shmOk ? '' : ' (no shared memory!)'}`,
			);
			if (hello.version !== protocolVersion) {
				this.hintsChanged(this.watch.hello(`the guest agent speaks protocol version ${hello.version}, pvrun ${protocolVersion}`));
				return;
			}
			if (!hello.shmOk && hello.shmVersion !== shmVersion) {
				this.hintsChanged(
					this.watch.hello(
						`the guest agent speaks shared-memory layout v${hello.shmVersion === 0 ? 1 : hello.shmVersion}, this pvrun writes v${shmVersion}: use the guest agent of this pvrun (make image)`,
					),
				);
				await this.sayLive(agent, 0);
				return;
			}
			if (!hello.shmOk) {
				this.hintsChanged(this.watch.hello("the guest agent found no pvrun shared memory (IVSHMEM device with pvrun's header; the guest's console says why)"));
				await this.sayLive(agent, 0);
				return;
			}
			if (hello.programs > 0 && this.reload) {
				for (const p of await agent.list()) await agent.unload(p.id);
				hello.programs = 0;
			}
			this.reload = false;
			// Each hint type's program (an agent that has programs already kept them: it restarted its port, not itself).
			let programs = hello.programs;
			if (hello.programs === 0) {
				for (const hint of hintTypes) {
					await this.loadProgram(agent, hint);
					programs++;
				}
				// The kernel lock program needs tracepoints a kernel before 5.19 lacks: without it,
				// the hints and the user-space sections still work.
				if (this.plan.cs !== 'off') {
					try {
						await this.loadProgram(agent, csProgram);
						programs++;
					} catch (error) {
						if (agent.isClosed) throw error;
						this.log.say(
							'warning',
							{message: `kernel lock program: ${firstLine(error)}`},
							`critical sections: the guest kernel's locks are not observed (${firstLine(error)}); user sections are`,
						);
					}
				}
			}
			this.hintsChanged(this.watch.hello());
			await this.sayLive(agent, programs);
			await this.startScripts(agent);
		} catch (error) {
			// The channel closes only with QEMU: a VM ending mid-handshake is no news for the terminal;
			// an agent that goes mid-handshake is followed by the next one's.
			if (agent.isClosed || error instanceof AgentPortClosedError) this.log.write('warning', {message: `guest agent: ${firstLine(error)}`});
			else if (error instanceof AgentTimeoutError) {
				// A busy guest (or host) answers late, not never: ask again, waiting longer each time.
				// --pv-agent-wait's clock goes on, and reports an agent that never answers.
				this.helloWaitMs = Math.min(this.helloWaitMs * 2, maxHelloWaitMs);
				this.log.write('warning', {message: `guest agent: ${firstLine(error)}; asking again, waiting up to ${this.helloWaitMs / 1000} s`});
				this.watch.slow('the guest agent has not answered yet: asking again');
				this.hintsChanged();
				again = true;
			} else {
				this.hintsChanged(this.watch.hello(`guest agent: ${firstLine(error)}`));
				await this.sayLive(agent, 0);
			}
		} finally {
			this.handshaking = false;
		}
		if (again && !this.closed) void this.handshake();
	}
	/** How long the next HELLO (and what follows it) waits for its answer, ms: longer after each one unanswered. */
	private helloWaitMs = firstHelloWaitMs;

	/**
	 * The hint path runs through pvrun's own thread and QEMU's main loop (which
	 * relays the agent's KICK): both mostly sleep, but when they wake they must
	 * not wait behind busy vCPU threads. Raise them (nice -10, short slice) when
	 * allowed. Never into a real-time class: pvrun's thread runs V8, whose
	 * garbage collector waits for helper threads that float on the same CPUs,
	 * and a SCHED_FIFO main thread kept them from running. Traced, one such
	 * collection held a CPU for 0.35 s, and with it QEMU's main loop, so that
	 * no guest timer fired (bench/experiments/2026-12-01-sleeper-stall/). Only
	 * the native fast path's thread, which runs no JavaScript, uses SCHED_FIFO.
	 */
	private raiseChannelPriority(vcpuTids: number[]): void {
		for (const tid of [0, ...threadsExcept(this.qemu.pid, vcpuTids)]) {
			try {
				if (tid !== 0 && !threadInProcess(this.qemu.pid, tid)) continue; // exited since /proc was read
				setThreadLatency(tid, channelNice, channelSliceNs);
			} catch (error) {
				this.log.write('warning', {message: `cannot raise priority of thread ${tid}: ${firstLine(error)}`});
			}
		}
	}

	/**
	 * How grants are made (--pv-placement, docs/placement.md): with `auto` in
	 * VMs of 16 vCPUs or more, by priority where it can be used, else the
	 * floating vCPU threads as one, in a cpuset of the VM's, where a thread's
	 * move between cpusets is quick; elsewhere one by one (the `placement`
	 * event says why).
	 */
	private openPlacement(pinner: Pinner, threads: readonly VcpuThread[]): void {
		const mode = this.plan.placement;
		const tids = threads.map((t) => t.threadId);
		// One sched_setaffinity per thread, and why: a warning when another way was asked for.
		const oneByOne = (reason: string): void => {
			if (mode === 'priority' || mode === 'cpuset') this.warn(`--pv-placement ${mode}: ${reason}; each vCPU thread is pinned on its own instead`);
			this.log.write('placement', {mode: 'threads', reason});
		};
		if (mode === 'threads') return oneByOne('--pv-placement threads');
		if (mode === 'auto' && tids.length < bigVmVcpus) return oneByOne(`${tids.length} vCPUs: below ${bigVmVcpus}, one sched_setaffinity per thread costs less`);
		if (mode !== 'cpuset') {
			const why = priorityUnavailable(this.plan.cs, this.qemu.pid, tids[0]);
			if (why === undefined) {
				pinner.usePriority();
				this.log.write('placement', {mode: 'priority'});
				return;
			}
			if (mode === 'priority') return oneByOne(why);
		}
		let group: FloatGroup | string = FloatGroup.open(this.qemu.pid, tids, this.plan.allowed);
		const moveMs = typeof group === 'string' ? undefined : group.moveMs;
		const slow =
			moveMs !== undefined && moveMs > slowMoveMs
				? `a thread's move between cpusets took ${moveMs.toFixed(1)} ms (the kernel waits for an RCU grace period unless a cgroup hierarchy is mounted with favordynmods)`
				: undefined;
		if (typeof group !== 'string' && slow && mode === 'auto') {
			group.close();
			group = slow;
		}
		if (typeof group === 'string') return oneByOne(group);
		if (slow) this.warn(`--pv-placement cpuset: ${slow}; each grant and release waits as long`);
		this.group = group;
		pinner.useGroup(group);
		this.log.write('placement', {mode: 'cpuset', dir: group.dir, ...(moveMs === undefined ? {} : {moveMs: Math.round(moveMs * 1000) / 1000})});
	}

	/** --pv-metrics: the VM's numbers in a Prometheus text file, every 5 s (src/vm/metrics.ts). */
	private startMetrics(): void {
		if (!this.plan.metrics) return;
		const file = new MetricsFile(this.plan.metrics, (message) => this.warn(message));
		this.metrics = file;
		const write = () =>
			file.write({
				id: this.plan.id,
				name: guestName(this.plan.args),
				qemuPid: this.qemu.pid,
				vcpus: this.plan.nrVcpus,
				placement: this.published?.placement,
				activity: this.published?.activity,
				leases: this.leases?.table.records() ?? [],
				waiting: this.leases?.table.waiting !== undefined,
				decisions: {fast: this.engine?.decisions.fast ?? 0, slow: this.engine?.decisions.slow ?? 0},
				hintsActive: this.watch.status.state === 'active',
			});
		write();
		this.metricsTimer = setInterval(write, metricsPeriodMs);
		this.metricsTimer.unref();
	}

	/**
	 * Host-wide CPU leases (docs/leases.md): this VM's file in the lease directory, and the engine
	 * leasing through it. A directory pvrun cannot use costs the VM nothing but the coordination
	 * (one warning).
	 */
	private openLeases(engine: AffinityEngine): void {
		let table: LeaseTable;
		const dir = leaseDir(path.dirname(this.plan.runDir));
		try {
			const name = guestName(this.plan.args);
			table = LeaseTable.open(dir, {
				pid: process.pid,
				qemuPid: this.qemu.pid,
				...(name !== undefined ? {name} : {}),
				share: this.plan.share,
				cpus: this.plan.allowed,
			});
		} catch (error) {
			this.warn(`no host-wide CPU leases: ${firstLine(error)}; other pvrun VMs on this host may be given the same CPUs`);
			return;
		}
		const hostRoot = process.env['PVRUN_HOST_ROOT'] || '/';
		let scanned = {at: -Infinity, leasing: '', cpus: new Set<number>()};
		// Looked at again at most every 5 s, or when the VMs leasing here change: a scan reads /proc
		// (~1 ms). PVRUN_HOST_ROOT: where /proc and /sys are read from (docs/leases.md; the test
		// suite's VMs ignore each other's QEMUs).
		const taken = (leasing: ReadonlySet<number> = new Set([this.qemu.pid])) => {
			const now = performance.now();
			const key = [...leasing].sort((a, b) => a - b).join();
			if (now - scanned.at > 5000 || key !== scanned.leasing) scanned = {at: now, leasing: key, cpus: takenCpus(hostRoot, leasing).cpus};
			return scanned.cpus;
		};
		this.leases = new VmLeases(table, this.plan.allowed, this.plan.share, taken, {cpus: readTopology(hostRoot), memNode: memoryNode(this.qemu.pid, hostRoot)});
		engine.setLeases(this.leases);
		this.log.write('leases', {dir, share: this.plan.share, placeable: this.leases.placeable, taken: [...taken()].sort((a, b) => a - b)});
	}

	/**
	 * The native fast path, when the plan has a kick port: started before the
	 * engine so that pvrun's thread placement (floating, off granted CPUs)
	 * covers its thread too. Without it, the agent's KICK frames drive the
	 * engine as before.
	 */
	private startFastPath(engine: AffinityEngine): void {
		if (!this.plan.kickSocket) {
			this.log.write('fast-path', {state: 'off', reason: this.plan.fastPathOff ?? 'no kick port'});
			return;
		}
		try {
			this.fast = FastPath.start(this.area.path, this.plan.kickSocket, this.qemu.pid, () => engine.kick());
			this.fast.budget(this.budget);
			this.fast.group(this.group?.paths());
			engine.setFastPath(this.fast);
			this.log.write('fast-path', {state: 'on'});
		} catch (error) {
			this.fast?.stop();
			this.fast = undefined;
			this.log.write('warning', {message: `fast path off: ${firstLine(error)}`});
		}
	}

	/**
	 * A hold began, `debtMs` of CPU over the share: one line at most every 10 s, with the holds
	 * since the last and the largest debt among them (the exit line has all the holds).
	 */
	private cpuHeld(debtMs: number): void {
		const now = performance.now();
		const holds = this.governor?.holds ?? 0;
		this.cpuHoldLine.debtMs = Math.max(this.cpuHoldLine.debtMs, debtMs);
		if (now - this.cpuHoldLine.at < 10_000) return;
		const n = holds - this.cpuHoldLine.holds;
		const maxDebtMs = Math.round(this.cpuHoldLine.debtMs * 10) / 10;
		this.cpuHoldLine = {at: now, holds, debtMs: 0};
		this.log.write(
			'cpu-hold',
			{holds: n, percent: this.plan.guestCpuPercent, maxDebtMs},
			`pvrun is over its CPU share (--pv-guest-cpu ${this.plan.guestCpuPercent}): what the guest asks waits (${n} time${n === 1 ? '' : 's'} since the last such line)`,
		);
	}
	private cpuHoldLine = {at: -Infinity, holds: 0, debtMs: 0};

	private warn(message: string): void {
		if (!this.closed) this.log.warn(message);
	}

	/**
	 * The handshake is over (LIVE): the agent says so in the guest, where the default image's
	 * /init waits for it before it is ready. An agent that does not know LIVE (another image's)
	 * answers with an error, and nothing there waits for it.
	 */
	private async sayLive(agent: AgentClient, programs: number): Promise<void> {
		if (agent.isClosed) return;
		try {
			await agent.live(programs);
		} catch (error) {
			if (!agent.isClosed && !(error instanceof AgentPortClosedError)) this.log.write('warning', {message: `guest agent: live: ${firstLine(error)}`});
		}
	}

	private readonly scripts = new ScriptRuns();

	/** The hint scripts (--pv-hint-script), after the handshake: the agent runs them with the guest's bpftrace. */
	private async startScripts(agent: AgentClient): Promise<void> {
		this.scripts.reset(); // the agent stops the scripts of an earlier handshake at its hello
		for (const script of this.plan.hintScripts ?? []) {
			const id = this.scripts.begin(script.name);
			try {
				this.scriptNews(this.scripts.started(script.name, await agent.script(id, script.name, script.text)));
			} catch (error) {
				if (agent.isClosed) throw error;
				this.scriptNews(this.scripts.failed(id, script.name, error instanceof AgentReplyError ? error.log : firstLine(error)));
			}
		}
	}

	private scriptNews(news: ScriptNews | undefined): void {
		if (!news || this.closed) return;
		if (news.event === 'script-output') this.log.write('script-output', news.fields);
		else if (news.warn !== undefined) this.log.say('script', news.fields, news.warn);
		else this.log.write('script', news.fields, news.summary);
	}

	/** Send one BPF object to the agent and log it. */
	private async loadProgram(agent: AgentClient, hint: {name: string; recordType: number; program: string}): Promise<void> {
		const object = fs.readFileSync(path.join(packageRoot, 'bpf', hint.program));
		const started = performance.now();
		const loaded = await agent.load(hint.name, hint.recordType, object);
		const ms = Math.round(performance.now() - started);
		this.log.write('program', {name: hint.name, id: loaded.id, links: loaded.links, loadMs: ms}, `${hint.name} hints on (BPF program loaded in ${ms} ms)`);
	}

	/** Observe critical sections: feedback flags into the slots, time in sections per vCPU (src/hints/cs/). */
	private startCs(threads: readonly VcpuThread[]): void {
		const {sched, why} = this.startHostSched();
		const act = this.plan.cs === 'act' && sched !== undefined && this.startActing(sched);
		this.cs = new CsObserver(
			this.area,
			this.qemu.pid,
			this.reader.counters,
			(s) => {
				const busy = s.vcpus.filter((v) => v.csMs > 0);
				this.log.write(
					'cs',
					{...s, vcpus: s.vcpus.map((v) => ({...v}))},
					busy.length ? `critical sections: ${busy.map((v) => `vCPU ${v.vcpu} ${v.csMs} ms in, ${v.csPreemptedMs} ms of it preempted`).join('; ')}` : undefined,
				);
			},
			undefined,
			sched,
			act,
		);
		const us = (ms: number) => Math.round(ms * 1000);
		this.cs.listener = (s) =>
			void updateCs(this.plan.runDir, {
				cells: s.cells,
				vcpus: s.vcpus.map((v) => ({
					vcpu: v.vcpu,
					csMs: v.csMs,
					csPreemptedMs: v.csPreemptedMs,
					preemptedMs: v.preemptedMs,
					...('boosts' in v ? {act: {boosts: v.boosts, boostedUs: us(v.boostedMs), budgetUs: us(v.budgetMs), debtUs: us(v.debtMs), paidUs: us(v.paidMs)}} : {}),
				})),
			});
		this.cs.setThreads(threads.map((t) => t.threadId));
		this.cs.start();
		this.log.write('cs', {
			state: act ? 'act' : 'observe',
			periodMs: csPeriodMs,
			idlePeriodMs: csIdlePeriodMs,
			feedback: this.cs.feedback,
			...(why ? {why} : {}),
		});
		if (this.plan.cs === 'act' && !sched) this.warn(`--pv-cs act: ${why ?? 'no host BPF program'}; observing only`);
	}

	/** Hand the policy its configuration (--pv-cs-boost); false, with a warning, when the library refuses. */
	private startActing(sched: HostSched): boolean {
		const b = this.plan.csBoost;
		try {
			sched.boost({maxNs: b.maxUs * 1e3, windowNs: b.windowMs * 1e6, budgetNs: (b.windowMs * 1e6 * b.sharePct) / 100, paybackPct: b.paybackPct});
			return true;
		} catch (error) {
			this.warn(`--pv-cs act: ${firstLine(error)}; observing only`);
			return false;
		}
	}

	/**
	 * The host's view of the vCPU threads from a host BPF program, unless
	 * --pv-cs-feedback proc; where the host does not allow it (not root, no BTF),
	 * /proc instead, and why (a warning if the user asked for bpf).
	 */
	private startHostSched(): {sched?: HostSched; why?: string} {
		if (this.plan.csFeedback === 'proc') return {why: '--pv-cs-feedback proc'};
		try {
			return {sched: HostSched.start(this.area.path)};
		} catch (error) {
			const why = firstLine(error);
			if (this.plan.csFeedback === 'bpf') this.warn(`--pv-cs-feedback bpf: ${why}; reading /proc every ${csPeriodMs} ms instead`);
			return {why};
		}
	}

	/** The VM is gone: stop everything and remove our files. */
	close(): void {
		if (this.closed) return;
		this.closed = true;
		clearInterval(this.refresher);
		clearInterval(this.watchTimer);
		this.governor?.stop();
		this.engine?.stop();
		this.cs?.stop();
		const fastStats = this.fast?.stats();
		if (this.fast) {
			this.log.write('fast-path', {
				state: 'off',
				...fastStats,
				fastDecisions: this.engine?.decisions.fast ?? 0,
				slowDecisions: this.engine?.decisions.slow ?? 0,
				fastDisagreed: this.engine?.decisions.disagreed ?? 0,
				fastScans: this.engine?.decisions.scans ?? 0,
				agentKicks: this.agentKicks,
			});
			this.fast.stop();
		}
		// After the fast path: nothing writes the group's files or raises a thread any more.
		for (const e of this.group?.close() ?? []) this.log.write('warning', {message: e});
		for (const e of this.engine?.lowerThreads() ?? []) this.log.write('warning', {message: e});
		this.leases?.close();
		clearInterval(this.metricsTimer);
		this.metrics?.remove();
		this.agent?.close();
		void this.qmp?.close().catch(() => {});
		if (this.engine && this.engine.hostLatenciesUs.length) {
			const p = percentiles(this.engine.hostLatenciesUs);
			this.log.write('host-latency', {n: p.n, p50Us: p.p50, p99Us: p.p99, maxUs: p.max});
		}
		// How often the guest budget made what the guest asked for wait (0 for a well-behaved guest).
		const budgetWaits = {
			kicks: this.engine?.creditWaits ?? 0,
			fastKicks: fastStats?.creditWaits ?? 0,
			port: this.agent?.inputWaits ?? 0,
			cpuHolds: this.governor?.holds ?? 0,
		};
		this.log.write('exit', {counters: {...this.reader.counters}, budgetWaits});
		removeRunFiles(this.plan, this.area);
		this.log.close();
	}
}
