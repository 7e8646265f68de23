// What pvrun runs beside one VM's QEMU (src/vm/session.ts), with no guest:
// the run files (createRunFiles, removeRunFiles) on a real /dev/shm, and the
// hint session against real stand-ins. QEMU is a process of its own (a node
// process whose two worker threads are its vCPU threads; or, where the
// threads do not matter, `sleep`, its one thread its one vCPU's); its
// QMP monitor is a unix-socket server in this process speaking QMP's JSON at
// plan.qmpSocket; the guest agent, behind QEMU's chardev at plan.agentSocket,
// is a server answering with the frames of docs/agent-protocol.md. What is
// checked is what a user or `pvrun status` sees: the event log, the state
// file, the files on disk, the threads' scheduling in the kernel.
import {spawn} from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t, {type Test} from 'tap';
import {cpusetMount, cpusetOf, tasksOf} from '../../src/pin/cpuset.js';
import type {Placement} from '../../src/vm/config.js';
import type {HintsStatus} from '../../src/agent/watch.js';
import {FrameParser, FrameType, encodeFrame, nameLength, protocolVersion, type Frame} from '../../src/agent/protocol.js';
import {threadCpusAllowed} from '../../src/host/cpus.js';
import {getThreadAffinity, getThreadNice, setThreadAffinity, setThreadLatency, threadPolicy} from '../../src/host/libc.js';
import {hintTypes} from '../../src/hints/index.js';
import {ownOtherThreads} from '../../src/pin/pinner.js';
import type {ShmArea} from '../../src/shm/area.js';
import {Feature, Header, RecordType, shmMagic, shmSize, shmVersion} from '../../src/shm/layout.js';
import {PvrunError, ShmError, firstLine} from '../../src/util/errors.js';
import {packageRoot} from '../../src/util/paths.js';
import {channelIds} from '../../src/vm/devices.js';
import {EventLog, readEventLog, type LoggedEvent} from '../../src/vm/event-log.js';
import {planVm, type VmPlan} from '../../src/vm/plan.js';
import type {HostFacts} from '../../src/vm/probe.js';
import type {ExitStatus, QemuProcess} from '../../src/vm/qemu-process.js';
import {HintSession, createRunFiles, removeRunFiles} from '../../src/vm/session.js';
import {readVmStates, writeVmState} from '../../src/vm/state.js';
import {sleeper, waitUntil} from '../helpers/fast.js';
import {Guest, maskOf} from '../helpers/guest-ring.js';
import {hasExclusiveCpu, within} from '../helpers/pvrun-vm.js';
import {vmConfig} from '../helpers/vm-config.js';

const ownCpus = getThreadAffinity(0);
// --pv-guest-cpu off: the sessions run in the test's process, whose CPU (the runner, the fake
// QMP and agent, each wait's polls, the garbage collector's threads) the governor would count
// as pvrun's, holding the hint path for seconds once that passes 4 % of a CPU. The budgets
// have their own tests (test/util) and bind a real pvrun in test/e2e/hostile-guest.test.ts.
const config = vmConfig({accel: 'tcg', fastPath: false, guestCpuPercent: 0});
const noFastPath = 'off in this test (no kick port)';
const facts: HostFacts = {ownCpus, accel: {accel: 'tcg', args: ['-accel', 'tcg'], reason: 'TCG as requested'}, fastPath: noFastPath};
const hex = (): string => crypto.randomBytes(4).toString('hex');
const isRoot = process.getuid?.() === 0;

/**
 * A teardown step that calls the code under test. If it throws, the file fails
 * (exit status 1) with the error on stderr, and the teardowns registered before
 * it still run: tap would skip them, leaving processes and files behind.
 */
function teardownStep(t: Test, what: string, step: () => void): void {
	t.teardown(() => {
		try {
			step();
		} catch (error) {
			process.exitCode = 1;
			fs.writeSync(2, `teardown: ${what} threw: ${firstLine(error)}\n`);
		}
	});
}

/**
 * A plan for `qemuArgs` whose run directory goes into a private root (removed
 * at teardown with everything in it); the shared memory gets a test's name
 * (as test/helpers/guest-ring.ts), one no pvrun looks at as a leftover of its own.
 */
function testPlan(t: Test, qemuArgs = ['-smp', '2']): VmPlan {
	const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-session-test-'));
	const plan = planVm(qemuArgs, config, facts, root, {pid: process.pid, cwd: root});
	plan.shmPath = `/dev/shm/pvrun-test-${process.pid}-${hex()}`;
	t.teardown(() => {
		fs.rmSync(root, {recursive: true, force: true});
		fs.rmSync(plan.shmPath, {force: true});
	});
	return plan;
}

// ---------------------------------------------------------------------------
// QEMU, its QMP monitor, the guest agent

interface StandIn extends QemuProcess {
	/** Host thread ids of its vCPUs, in vCPU order (what QMP's query-cpus-fast answers). */
	vcpuThreads: number[];
	kill(): void;
}

/** A child process as QemuProcess sees one: `exited` settles when it exits; killed at teardown if it still runs. */
function standIn(t: Test, child: ReturnType<typeof spawn>, vcpuThreads: number[] = []): StandIn {
	const pid = child.pid ?? 0;
	if (pid === 0) throw new Error('the stand-in for QEMU did not start');
	const exited = new Promise<ExitStatus>((resolve) => child.once('exit', (code, signal) => resolve({code, signal})));
	const kill = (): void => void child.kill('SIGKILL');
	t.teardown(async () => {
		kill();
		await exited;
	});
	return {pid, exited, vcpuThreads, kill};
}

/** QEMU with two vCPU threads: a node process (its main thread: QEMU's main loop) with two worker threads that say their thread ids. */
async function threadedQemu(t: Test): Promise<StandIn> {
	const vcpu = `require('node:worker_threads').parentPort.postMessage(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop()); setInterval(() => {}, 3600000);`;
	const main = `
const {Worker} = require('node:worker_threads');
Promise.all([0, 1].map(() => new Promise((resolve) => new Worker(${JSON.stringify(vcpu)}, {eval: true}).once('message', resolve))))
	.then((tids) => process.stdout.write('vcpus ' + tids.join(' ') + '\\n'));
setInterval(() => {}, 3600000);`;
	const env = {...process.env};
	delete env['NODE_OPTIONS']; // the test runner's preload stays out of the stand-in
	const child = spawn(process.execPath, ['-e', main], {stdio: ['ignore', 'pipe', 'ignore'], env});
	const s = standIn(t, child);
	let out = '';
	child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
	await waitUntil('the stand-in QEMU names its vCPU threads', () => /^vcpus \d+ \d+\n/.test(out), 5000);
	s.vcpuThreads.push(...(out.split('\n', 1)[0] ?? '').split(' ').slice(1).map(Number));
	return s;
}

/** QEMU that only sleeps: one vCPU, whose thread is its only one (its pid); it starts in a few ms, threadedQemu in 0.2 to 0.5 s on a busy 2-CPU machine. */
function sleepingQemu(t: Test): StandIn {
	const child = sleeper(t);
	return standIn(t, child, [child.pid ?? 0]);
}

interface QmpOptions {
	/** query-cpus-fast's thread ids, by cpu-index. */
	threads?: number[];
	/** query-status: the guest runs. */
	running?: boolean;
	/** query-chardev: the guest has opened the agent's port. */
	portOpen?: boolean;
	/** false: greet, then read nothing and answer nothing (a QEMU busy starting, or quitting). */
	answer?: boolean;
}

interface FakeQmp {
	/** The commands received, in order. */
	commands: string[];
	/** Send a QMP event to the connected clients. */
	event(name: string, data?: Record<string, unknown>): void;
	/** Connections accepted so far. */
	connections(): number;
	/** Connections still open. */
	open(): number;
	/** QEMU's end: the socket and its connections close. */
	close(): void;
}

/** QEMU's QMP monitor at `file`: a greeting, then one JSON answer per command line, as QEMU does. */
async function fakeQmp(t: Test, file: string, o: QmpOptions = {}): Promise<FakeQmp> {
	const commands: string[] = [];
	const sockets: net.Socket[] = [];
	let closed = 0;
	const answers: Record<string, () => unknown> = {
		qmp_capabilities: () => ({}),
		'query-version': () => ({qemu: {major: 7, minor: 2, micro: 0}, package: ''}),
		'query-cpus-fast': () =>
			(o.threads ?? []).map((tid, i) => ({'cpu-index': i, 'thread-id': tid, 'qom-path': `/machine/unattached/device[${i}]`, target: 'x86_64'})),
		'query-status': () => ({status: o.running === false ? 'prelaunch' : 'running', singlestep: false, running: o.running !== false}),
		'query-chardev': () => [
			{label: 'pvrun-qmp', filename: `unix:${file},server=on`, 'frontend-open': true},
			{label: channelIds.agentChardev, filename: 'unix:agent.sock,server=on', 'frontend-open': o.portOpen === true},
		],
	};
	// A QEMU that does not answer reads nothing either (pauseOnConnect: nothing is taken from the kernel's queue).
	const server = net.createServer({pauseOnConnect: o.answer === false}, (s) => {
		sockets.push(s);
		s.on('error', () => {});
		s.on('close', () => void closed++);
		s.write(`${JSON.stringify({QMP: {version: {qemu: {major: 7, minor: 2, micro: 0}, package: ''}, capabilities: ['oob']}})}\r\n`);
		if (o.answer === false) return;
		let partial = '';
		s.setEncoding('utf8').on('data', (chunk: string) => {
			const lines = (partial + chunk).split('\n');
			partial = lines.pop() ?? '';
			for (const line of lines.filter((l) => l.trim())) {
				const command = String((JSON.parse(line) as {execute?: unknown}).execute);
				commands.push(command);
				const answer = answers[command];
				const reply = answer ? {return: answer()} : {error: {class: 'CommandNotFound', desc: `The command ${command} has not been found`}};
				s.write(`${JSON.stringify(reply)}\r\n`);
			}
		});
	});
	await new Promise<void>((resolve) => server.listen(file, resolve));
	const close = (): void => {
		for (const s of sockets) s.destroy();
		server.close();
	};
	t.teardown(close);
	const event = (name: string, data: Record<string, unknown> = {}): void => {
		const now = Date.now();
		for (const s of sockets)
			s.write(`${JSON.stringify({event: name, data, timestamp: {seconds: Math.floor(now / 1000), microseconds: (now % 1000) * 1000}})}\r\n`);
	};
	return {commands, event, connections: () => sockets.length, open: () => sockets.length - closed, close};
}

interface HelloFields {
	version: number;
	shmOk: boolean;
	shmVersion: number;
	nrCpus: number;
	agentVersion: string;
	kernelRelease: string;
}

interface Program {
	id: number;
	recordType: number;
	name: string;
	object: Buffer;
}

interface FakeAgent {
	/** Every frame the host sent, in order. */
	received: Frame[];
	/** The programs loaded now (what HELLO's `programs` counts). */
	loaded: Program[];
	/** Every LOAD so far. */
	loads: Program[];
	/** Send a frame to the host (LOG, KICK). */
	send(type: number, payload?: Buffer): void;
	/** Send bytes as they are (a truncated frame). */
	sendRaw(bytes: Buffer): void;
	/** Called on SNAPSHOT before the reply: the records its task iterators would write. */
	onSnapshot?: () => void;
}

/** How many frames of `type` the host sent. */
const sent = (a: FakeAgent, type: number): number => a.received.filter((f) => f.type === type).length;

/** The guest agent behind QEMU's chardev at `file`, answering as guest-agent/pvagent.c does (proto.h's layouts). */
async function fakeAgent(
	t: Test,
	file: string,
	hello: Partial<HelloFields> = {},
	kept: Program[] = [],
	refuse: readonly string[] = [],
	unanswered = 0,
): Promise<FakeAgent> {
	let silent = unanswered;
	const received: Frame[] = [];
	const loaded = [...kept];
	const loads: Program[] = [];
	let nextId = 10 + kept.length;
	const sockets: net.Socket[] = [];
	const h: HelloFields = {
		version: protocolVersion,
		shmOk: true,
		shmVersion: shmVersion,
		nrCpus: 2,
		agentVersion: '0.1.0',
		kernelRelease: '6.1.0-test',
		...hello,
	};
	const reply = (s: net.Socket, id: number, payload: Buffer = Buffer.alloc(0)): void => void s.write(encodeFrame(FrameType.reply, id, payload));
	const self: FakeAgent = {
		received,
		loaded,
		loads,
		send: (type, payload) => {
			for (const s of sockets) s.write(encodeFrame(type, 0, payload));
		},
		sendRaw: (bytes) => {
			for (const s of sockets) s.write(bytes);
		},
	};
	const server = net.createServer((s) => {
		sockets.push(s);
		s.on('error', () => {});
		const parser = new FrameParser();
		s.on('data', (chunk: Buffer) => {
			for (const frame of parser.push(chunk)) {
				received.push(frame);
				const p = frame.payload;
				if (frame.type === FrameType.hello) {
					if (silent-- > 0) continue;
					const b = Buffer.alloc(120); // struct pvag_hello_reply
					b.writeUInt16LE(h.version, 0);
					b.writeUInt16LE(h.shmOk ? 1 : 0, 2);
					b.writeUInt32LE(h.nrCpus, 4);
					b.writeBigUInt64LE(7n, 8);
					b.writeUInt32LE(loaded.length, 16);
					b.writeUInt32LE(h.shmVersion, 20);
					b.write(h.agentVersion, 24, 31, 'latin1');
					b.write(h.kernelRelease, 56, 63, 'latin1');
					reply(s, frame.id, b);
				} else if (frame.type === FrameType.load) {
					// struct pvag_load_req, then the ELF object.
					const name = p
						.subarray(8, 8 + nameLength)
						.toString('latin1')
						.replace(/\0.*$/s, '');
					const program = {id: nextId++, recordType: p.readUInt32LE(0), name, object: p.subarray(8 + nameLength)};
					loads.push(program);
					if (refuse.includes(name)) {
						// struct pvag_error, then the message (as libbpf says it on a kernel without the hook)
						const e = Buffer.concat([Buffer.alloc(8), Buffer.from('libbpf: prog cs_begin: failed to find BTF for tracepoint contention_begin')]);
						e.writeInt32LE(2, 0);
						s.write(encodeFrame(FrameType.error, frame.id, e));
						continue;
					}
					loaded.push(program);
					const b = Buffer.alloc(8); // struct pvag_load_reply
					b.writeUInt32LE(program.id, 0);
					b.writeUInt32LE(3, 4);
					reply(s, frame.id, b);
				} else if (frame.type === FrameType.list) {
					const b = Buffer.alloc(4 + loaded.length * 48); // count, then struct pvag_prog_info each
					b.writeUInt32LE(loaded.length, 0);
					loaded.forEach((l, i) => {
						b.writeUInt32LE(l.id, 4 + i * 48);
						b.writeUInt32LE(l.recordType, 8 + i * 48);
						b.write(l.name, 12 + i * 48, nameLength - 1, 'latin1');
					});
					reply(s, frame.id, b);
				} else if (frame.type === FrameType.unload) {
					const at = loaded.findIndex((l) => l.id === p.readUInt32LE(0));
					if (at >= 0) loaded.splice(at, 1);
					reply(s, frame.id);
				} else if (frame.type === FrameType.live) reply(s, frame.id);
				else if (frame.type === FrameType.snapshot) {
					// The agent's iterators report the threads pinned now (the test writes their records).
					self.onSnapshot?.();
					const b = Buffer.alloc(4);
					b.writeUInt32LE(1, 0);
					reply(s, frame.id, b);
				}
			}
		});
	});
	await new Promise<void>((resolve) => server.listen(file, resolve));
	t.teardown(() => {
		for (const s of sockets) s.destroy();
		server.close();
	});
	return self;
}

// ---------------------------------------------------------------------------
// A session

interface Running {
	plan: VmPlan;
	/** The shared memory, as the session maps it (a test writes the guest's records into it). */
	area: ShmArea;
	qemu: StandIn;
	qmp: FakeQmp;
	agent: FakeAgent;
	session: HintSession;
	/** The event log so far. */
	events(): LoggedEvent[];
	/** The event log's events named `name`. */
	named(name: string): LoggedEvent[];
	/** The hints as `pvrun status` reads them from the state file. */
	/** The state file's hints, without since when they are active. */
	stateHints(): HintsStatus | undefined;
	/** Since when the state file says the hints are active. */
	stateSince(): number | undefined;
	/** The `hints` events, as {state, reason}. */
	hintLines(): HintsStatus[];
}

interface SessionOptions extends Omit<QmpOptions, 'threads'> {
	/** QEMU with two vCPU threads beside its main thread (threadedQemu), not one (sleepingQemu). */
	threads?: boolean;
	/** QEMU starts from a saved VM (-incoming). */
	incoming?: boolean;
	hello?: Partial<HelloFields>;
	/** Programs the agent has loaded already (it restarted its port, not itself). */
	kept?: Program[];
	/** --pv-placement (default auto). */
	placement?: Placement;
	/** --pv-cs observe. */
	cs?: boolean;
	/** Programs whose LOAD the agent answers with an error. */
	refuse?: string[];
	/** HELLOs the agent leaves unanswered before it answers one (a busy guest). */
	unanswered?: number;
}

/**
 * pvrun's own thread is one the session raises (nice -10, a short slice) and
 * places with QEMU's other threads: put it back as it was at teardown, so that
 * the next test starts as this one did.
 */
function restoreOwnThreads(t: Test): void {
	const nice = getThreadNice(0);
	t.teardown(() => {
		try {
			setThreadLatency(0, nice, 0);
		} catch {
			// not ours to lower (not root): it was not raised either
		}
		setThreadAffinity(0, ownCpus);
		for (const tid of ownOtherThreads()) {
			try {
				setThreadAffinity(tid, ownCpus);
			} catch {
				// gone meanwhile
			}
		}
	});
}

/** A session as pvrun's helper starts one: run files, state file, then HintSession; closed at teardown (first). */
async function startSession(t: Test, o: SessionOptions = {}): Promise<Running> {
	restoreOwnThreads(t);
	const qemu = o.threads ? await threadedQemu(t) : sleepingQemu(t);
	const plan = testPlan(t, ['-smp', String(qemu.vcpuThreads.length), ...(o.incoming ? ['-incoming', 'defer'] : [])]);
	if (o.cs) plan.cs = 'observe';
	if (o.placement) plan.placement = o.placement;
	const logFile = path.join(path.dirname(plan.runDir), 'events.jsonl');
	const area = createRunFiles(plan);
	teardownStep(t, 'removeRunFiles', () => removeRunFiles(plan, area));
	writeVmState(plan, {log: logFile}, {qemuPid: qemu.pid});
	const qmp = await fakeQmp(t, plan.qmpSocket, {...o, threads: qemu.vcpuThreads});
	const agent = await fakeAgent(t, plan.agentSocket, o.hello, o.kept, o.refuse, o.unanswered);
	const session = new HintSession(plan, area, qemu, new EventLog(logFile, false));
	teardownStep(t, 'HintSession.close', () => session.close());
	const events = (): LoggedEvent[] => readEventLog(logFile);
	const named = (name: string): LoggedEvent[] => events().filter((e) => e.event === name);
	return {
		plan,
		area,
		qemu,
		qmp,
		agent,
		session,
		events,
		named,
		stateHints: () => {
			const hints = readVmStates(path.dirname(plan.runDir)).vms.find((vm) => vm.id === plan.id)?.hints;
			if (!hints) return undefined;
			const rest = {...hints};
			delete rest.since; // stateSince
			return rest;
		},
		stateSince: () => readVmStates(path.dirname(plan.runDir)).vms.find((vm) => vm.id === plan.id)?.hints?.since,
		hintLines: () => named('hints').map((e) => (e['reason'] === undefined ? {state: e['state']} : {state: e['state'], reason: e['reason']}) as HintsStatus),
	};
}

/** Wait (2 s at most) until the hints are `state` (with `reason`) in the event log's last `hints` line and in the state file. */
async function hintsBecome(r: Running, state: HintsStatus['state'], reason?: string): Promise<void> {
	const want: HintsStatus = reason === undefined ? {state} : {state, reason};
	const same = (h: HintsStatus | undefined): boolean => JSON.stringify(h) === JSON.stringify(want);
	if ((await within(2000, () => same(r.hintLines().at(-1)) && same(r.stateHints()), 5)) < 0)
		throw new Error(`hints not ${JSON.stringify(want)} within 2 s: log ${JSON.stringify(r.hintLines())}, state file ${JSON.stringify(r.stateHints())}`);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The program file of each hint type, as pvrun ships it. */
const programFile = (program: string): Buffer => fs.readFileSync(path.join(packageRoot, 'bpf', program));

// ---------------------------------------------------------------------------
// The run files

t.test('createRunFiles makes the run directory (0700) and the shared memory; removeRunFiles removes both, and again is harmless', async (t) => {
	const plan = testPlan(t);
	const area = createRunFiles(plan);
	teardownStep(t, 'ShmArea.remove', () => area.remove());
	const dir = fs.statSync(plan.runDir);
	t.ok(dir.isDirectory(), 'the run directory exists');
	t.equal(dir.mode & 0o777, 0o700, "mode 0700: the sockets in it are the VM owner's alone");
	t.equal(area.path, plan.shmPath, 'the area is the plan shared memory');
	t.equal(fs.statSync(plan.shmPath).size, shmSize, `the shared memory is ${shmSize} bytes`);
	t.equal(area.view.getUint32(Header.magic, true), shmMagic, "with pvrun's header written before QEMU maps it");
	t.equal(area.nrVcpus, plan.nrVcpus);

	removeRunFiles(plan, area);
	t.notOk(fs.existsSync(plan.runDir), 'the run directory is gone');
	t.notOk(fs.existsSync(plan.shmPath), 'the shared memory is gone');
	t.doesNotThrow(() => removeRunFiles(plan, area), 'removing them again is harmless (every way out calls it)');
	t.notOk(fs.existsSync(plan.runDir) || fs.existsSync(plan.shmPath), 'and leaves nothing behind');
});

t.test('the shared memory cannot be created: no run directory is left, and the file in the way stays', async (t) => {
	const plan = testPlan(t);
	fs.writeFileSync(plan.shmPath, 'not pvrun-s');
	const error = t.throws(() => createRunFiles(plan), 'createRunFiles throws');
	t.ok(error instanceof ShmError, 'a ShmError');
	t.match(String((error as Error).message), `cannot create shared memory ${plan.shmPath}: EEXIST`);
	t.notOk(fs.existsSync(plan.runDir), 'the run directory it made is removed again');
	t.equal(fs.readFileSync(plan.shmPath, 'utf8'), 'not pvrun-s', 'the file that was in the way is not touched');
});

t.test('a run directory that cannot be made is one PvrunError line naming it; no shared memory is made', async (t) => {
	const plan = testPlan(t);
	const root = path.dirname(plan.runDir);
	// A runtime root that is a file: ENOTDIR for everyone, root too (root writes where permissions say no).
	const file = path.join(root, 'tmpdir-is-a-file');
	fs.writeFileSync(file, '');
	// A run directory that exists already (someone else's): not taken over.
	const taken = path.join(root, 'taken');
	fs.mkdirSync(taken);
	fs.writeFileSync(path.join(taken, 'theirs'), 'x');
	for (const [runDir, code] of [
		[path.join(file, plan.id), 'ENOTDIR'],
		[taken, 'EEXIST'],
	] as const) {
		const error = t.throws(() => createRunFiles({...plan, runDir}), code) as Error;
		t.ok(error instanceof PvrunError, `${code}: a PvrunError, which pvrun prints as one line`);
		t.equal(error.message, `cannot create pvrun's run directory ${runDir}: ${code}`, 'naming the directory and the errno');
		t.notOk(error.message.includes('\n'), 'one line');
		t.equal((error.cause as NodeJS.ErrnoException | undefined)?.code, code, 'keeping its cause');
		t.notOk(fs.existsSync(plan.shmPath), 'no shared memory was made');
	}
	t.equal(fs.readFileSync(path.join(taken, 'theirs'), 'utf8'), 'x', 'the directory that was there is left as it was');
});

// ---------------------------------------------------------------------------
// The session

t.test('a session: start, vcpus, HELLO, each hint type program loaded, hints active (log and state file)', async (t) => {
	const r = await startSession(t, {portOpen: true});
	await hintsBecome(r, 'active');

	const events = r.events();
	const at = (name: string): number => events.findIndex((e) => e.event === name);
	t.match(events[0], {event: 'start', id: r.plan.id, vcpus: 1, qemuPid: r.qemu.pid, shm: r.plan.shmPath, allowed: ownCpus}, 'start comes first');
	t.match(r.named('vcpus'), [{threads: r.qemu.vcpuThreads, allowed: ownCpus}], 'vcpus: the host thread QMP named');
	t.match(r.named('fast-path'), [{state: 'off', reason: noFastPath}], 'fast-path off, with the plan reason');
	t.match(r.named('agent'), [{state: 'hello', version: '0.1.0', kernel: '6.1.0-test', cpus: 2, shm: true, programs: 0}], 'the agent HELLO');
	t.equal(r.named('agent').length, 1, 'once');
	t.same(
		r.named('program').map((e) => e['name']),
		hintTypes.map((h) => h.name),
		'a program event for each hint type',
	);
	t.same(r.hintLines(), [{state: 'waiting', reason: 'no guest agent has answered yet'}, {state: 'active'}], 'hints: waiting for the agent, then active');
	t.ok(
		at('start') < at('vcpus') && at('vcpus') < at('agent') && at('agent') < at('program') && at('program') < events.findLastIndex((e) => e.event === 'hints'),
		'in that order',
	);
	t.same(r.stateHints(), {state: 'active'}, 'pvrun status reads active from the state file');
	const since = r.stateSince() ?? 0;
	t.ok(since > Date.now() - 60_000 && since <= Date.now(), `and since when (${new Date(since).toISOString()})`);
	t.same(r.named('warning'), [], 'no warning');

	t.same(r.qmp.commands.slice(0, 2), ['qmp_capabilities', 'query-version'], 'QMP: capabilities negotiated and checked first');
	t.ok(
		['query-cpus-fast', 'query-status', 'query-chardev'].every((c) => r.qmp.commands.includes(c)),
		`then the vCPUs, the run state, the chardevs: ${r.qmp.commands.join(' ')}`,
	);
	const hellos = r.agent.received.filter((f) => f.type === FrameType.hello);
	t.equal(hellos.length, 1, 'one HELLO: the port was open already (query-chardev)');
	t.equal(hellos[0]?.payload.readUInt16LE(0), protocolVersion, 'offering protocol version 1');
	t.equal(hellos[0]?.payload.readUInt32LE(4), shmSize, "and the area's size");
	t.same(
		r.agent.loads.map((l) => [l.name, l.recordType]),
		hintTypes.map((h) => [h.name, h.recordType]),
		'LOAD for each hint type, with its record type',
	);
	for (const [i, h] of hintTypes.entries()) t.ok(r.agent.loads[i]?.object.equals(programFile(h.program)), `the ${h.name} LOAD carries bpf/${h.program}`);
	t.match(r.named('program')[0], {id: r.agent.loads[0]?.id, links: 3}, 'the program event has the id and links the agent answered');
	await waitUntil('LIVE', () => sent(r.agent, FrameType.live) === 1);
	const types = r.agent.received.map((f) => f.type);
	t.equal(types.at(-1), FrameType.live, 'the handshake ends with LIVE (the default image is ready only then)');
	t.equal(r.agent.received.at(-1)?.payload.readUInt32LE(0), r.agent.loads.length, 'naming the programs loaded');
	if (isRoot) t.equal(getThreadNice(0), -10, "pvrun's own thread, on the hint path, runs at nice -10");
});

for (const c of [
	{what: 'another protocol version', hello: {version: 2}, reason: `the guest agent speaks protocol version 2, pvrun ${protocolVersion}`},
	{
		what: 'no shared memory in the guest',
		hello: {shmOk: false},
		reason: "the guest agent found no pvrun shared memory (IVSHMEM device with pvrun's header; the guest's console says why)",
	},
	{
		what: 'an agent from before layout v2 (shm_version 0: it speaks v1)',
		hello: {shmOk: false, shmVersion: 0},
		reason: `the guest agent speaks shared-memory layout v1, this pvrun writes v${shmVersion}: use the guest agent of this pvrun (make image)`,
	},
	{
		what: 'an agent of a later layout',
		hello: {shmOk: false, shmVersion: shmVersion + 1},
		reason: `the guest agent speaks shared-memory layout v${shmVersion + 1}, this pvrun writes v${shmVersion}: use the guest agent of this pvrun (make image)`,
	},
]) {
	t.test(`an agent HELLO with ${c.what}: hints inactive, saying why, and no program loaded`, async (t) => {
		const r = await startSession(t, {portOpen: true, hello: c.hello});
		await hintsBecome(r, 'inactive', c.reason);
		t.equal(r.named('agent').length, 1, 'the HELLO is logged');
		t.equal(sent(r.agent, FrameType.hello), 1, 'one HELLO');
		t.equal(sent(r.agent, FrameType.load), 0, 'no LOAD');
		t.same(r.named('program'), [], 'no program event');
		t.match(r.named('warning'), [{message: `hints inactive: ${c.reason}; the VM runs as plain QEMU would`}], 'a warning, which goes to stderr too');
		t.same(r.stateHints(), {state: 'inactive', reason: c.reason}, 'the state file says so');
		if (!('version' in c.hello)) {
			await waitUntil('LIVE', () => sent(r.agent, FrameType.live) === 1);
			t.equal(r.agent.received.at(-1)?.payload.readUInt32LE(0), 0, 'LIVE with no program: the guest need not wait for hints');
		} else t.equal(sent(r.agent, FrameType.live), 0, 'no LIVE to an agent of another protocol');
	});
}

t.test('--pv-cs observe: the kernel lock program goes to the agent too; the area says so; observation starts and ends', async (t) => {
	const r = await startSession(t, {portOpen: true, cs: true});
	await hintsBecome(r, 'active');
	t.same(
		r.agent.loads.map((l) => [l.name, l.recordType]),
		[...hintTypes.map((h) => [h.name, h.recordType]), ['cs', RecordType.cs]],
		'LOAD for each hint type, then cs with its record type',
	);
	t.ok(r.agent.loads.at(-1)?.object.equals(programFile('cs.bpf.o')), 'carrying bpf/cs.bpf.o');
	t.match(r.named('cs')[0], {state: 'observe', periodMs: 10}, 'a cs event says observation started');
	// The agent says which programs it has attached (agent_features); pvrun status shows them within a second or so.
	r.area.view.setUint32(Header.agentFeatures, Feature.affinity | Feature.cs | (1 << 9), true);
	t.ok(
		(await within(3000, () => r.stateHints()?.types?.join(',') === 'affinity,cs')) >= 0,
		'the state file names the attached hint types, only those pvrun knows',
	);
	t.match(r.named('hints').at(-1), {state: 'active', types: 'affinity,cs'}, 'and the event log');
	t.equal(r.area.view.getUint32(Header.features, true), Feature.affinity | Feature.cs, "the header's features include critical sections");
	r.session.close();
	t.match(r.named('cs').at(-1), {vcpus: [{vcpu: 0}], cells: 0}, 'and a last summary when the session ends');
});

t.test('--pv-cs observe on a guest kernel without the lock tracepoints: a warning; affinity hints and observation go on', async (t) => {
	const r = await startSession(t, {portOpen: true, cs: true, refuse: ['cs']});
	await hintsBecome(r, 'active');
	t.same(
		r.named('program').map((e) => e['name']),
		hintTypes.map((h) => h.name),
		'the hint types loaded; cs not',
	);
	t.match(r.named('warning'), [{message: /^kernel lock program: .*contention_begin/}], 'one warning, saying why');
	t.match(r.named('cs')[0], {state: 'observe'}, 'observation runs');
});

t.test('guest LOG frames: guest-log lines of at most 200 printable characters, at most 30 a minute, the dropped ones counted', async (t) => {
	const r = await startSession(t, {portOpen: true});
	await hintsBecome(r, 'active');
	const guestLogs = (): LoggedEvent[] => r.named('guest-log');
	// A terminal escape, a bell, a non-ASCII character, a tab; 316 characters.
	r.agent.send(FrameType.log, Buffer.from(`\x1b]0;pwned\x07 é\tok ${'x'.repeat(300)}`, 'utf8'));
	await waitUntil('the first line is logged', () => guestLogs().length === 1);
	const first = guestLogs()[0];
	t.equal(first?.['line'], `?]0;pwned? ??ok ${'x'.repeat(184)}`, 'every character outside printable ASCII is ?, and the line is cut at 200');
	t.equal(first?.['dropped'], 0, 'none dropped before it');

	for (let i = 2; i <= 35; i++) r.agent.send(FrameType.log, Buffer.from(`line ${i}`));
	await waitUntil('30 lines are logged', () => guestLogs().length === 30);
	await sleep(150); // the five over the budget would be logged by now
	t.equal(guestLogs().length, 30, 'the budget: 30 lines a minute');
	t.equal(guestLogs().at(-1)?.['line'], 'line 30', 'the first 30, in order');

	// A minute later (the clock moved on, for everyone here): the next line goes, with the count of those dropped.
	const now = performance.now.bind(performance);
	Object.defineProperty(performance, 'now', {value: () => now() + 61_000, configurable: true, writable: true});
	t.teardown(() => void Reflect.deleteProperty(performance, 'now'));
	r.agent.send(FrameType.log, Buffer.from('a minute later'));
	await waitUntil('the line after a minute is logged', () => guestLogs().length === 31);
	Reflect.deleteProperty(performance, 'now');
	t.match(guestLogs().at(-1), {line: 'a minute later', dropped: 5}, 'and says that 5 were dropped');
});

t.test("QMP events: the agent's port opening and closing, a reset", async (t) => {
	const r = await startSession(t, {portOpen: false});
	// The session asks about the chardevs once connected to the agent, and listening to QMP events.
	await waitUntil('the session asked QEMU about the chardevs', () => r.qmp.commands.includes('query-chardev') && r.hintLines().length === 1);
	r.qmp.event('VSERPORT_CHANGE', {id: 'channel0', open: true}); // a port of the user's
	r.qmp.event('VSERPORT_CHANGE', {id: 'channel0', open: false});
	await sleep(100);
	t.equal(sent(r.agent, FrameType.hello), 0, 'no HELLO while the guest has not opened the port');
	t.same(r.named('agent'), [], "another port's events are not the agent's");
	t.same(r.stateHints(), {state: 'waiting', reason: 'no guest agent has answered yet'}, 'waiting');

	r.qmp.event('VSERPORT_CHANGE', {id: channelIds.agentPort, open: true});
	await hintsBecome(r, 'active');
	t.equal(sent(r.agent, FrameType.hello), 1, 'the port opening: HELLO');
	t.equal(r.agent.loads.length, hintTypes.length, 'and LOAD');

	r.qmp.event('VSERPORT_CHANGE', {id: channelIds.agentPort, open: false});
	await hintsBecome(r, 'waiting', 'the guest agent closed its port');
	t.match(r.named('agent').at(-1), {state: 'closed'}, "the port closing: 'agent closed' in the log");

	// The agent opens its port again, with its programs still loaded: HELLO, no LOAD.
	r.qmp.event('VSERPORT_CHANGE', {id: channelIds.agentPort, open: true});
	await hintsBecome(r, 'active');
	t.equal(sent(r.agent, FrameType.hello), 2, 'HELLO again');
	t.equal(r.agent.loads.length, hintTypes.length, 'no second LOAD: the agent kept its programs');
	t.match(r.named('agent').at(-1), {state: 'hello', programs: hintTypes.length});

	r.qmp.event('RESET');
	await hintsBecome(r, 'waiting', 'the guest was reset');
	t.same(
		r.hintLines().map((h) => h.state),
		['waiting', 'active', 'waiting', 'active', 'waiting'],
		'each change logged once',
	);
	t.same(r.named('warning'), [], 'none of it is a warning');
});

t.test('an agent that does not answer its first HELLO in time is asked again, waiting longer: hints are not given up', async (t) => {
	const r = await startSession(t, {portOpen: true, unanswered: 1});
	await hintsBecome(r, 'waiting', 'no guest agent has answered yet');
	// The first HELLO waits 5 s; then the session says so, asks again, and the agent answers.
	await waitUntil('a second HELLO', () => sent(r.agent, FrameType.hello) === 2, 8000);
	t.match(r.named('warning'), [{message: 'guest agent: agent did not answer hello within 5000 ms; asking again, waiting up to 10 s'}], 'one warning line');
	await hintsBecome(r, 'active');
	t.same(
		r.hintLines().map((h) => h.state),
		['waiting', 'waiting', 'active'],
		'waiting (no answer yet, then asking again), then active: never inactive',
	);
	t.match(r.hintLines()[1], {reason: 'the guest agent has not answered yet: asking again'});
	t.equal(r.agent.loads.length, hintTypes.length, 'and the programs loaded');
});

t.test("a frame cut short before the agent closed its port does not swallow the next agent's HELLO", async (t) => {
	const r = await startSession(t, {portOpen: true});
	await hintsBecome(r, 'active');
	// The first 16 bytes of a frame that announces 4 MiB, then nothing: the agent died, or lied.
	r.agent.sendRaw(encodeFrame(FrameType.log, 0, Buffer.alloc(4 << 20)).subarray(0, 16));
	await sleep(100);
	r.qmp.event('VSERPORT_CHANGE', {id: channelIds.agentPort, open: false});
	await hintsBecome(r, 'waiting', 'the guest agent closed its port');
	r.qmp.event('VSERPORT_CHANGE', {id: channelIds.agentPort, open: true});
	await hintsBecome(r, 'active');
	t.equal(sent(r.agent, FrameType.hello), 2, 'the new HELLO was answered');
	t.same(r.named('warning'), [], 'no warning');
});

t.test(
	"records lost: once the losses stop, pvrun forgets every hint and the agent's snapshot reports the pins there are",
	{skip: ownCpus.length < 2 && 'needs two CPUs'},
	async (t) => {
		const r = await startSession(t, {portOpen: true, threads: true});
		await hintsBecome(r, 'active');
		const [vcpu0 = 0, vcpu1 = 0] = r.qemu.vcpuThreads;
		const guest = new Guest(r.area);
		// Thread 600 pins itself to vCPU 0, thread 601 to vCPU 1; 601's exit is lost in a flood.
		guest.append({tid: 600, tgid: 600, mask: maskOf(0)});
		guest.append({tid: 601, tgid: 601, mask: maskOf(1)});
		r.agent.send(FrameType.kick);
		await waitUntil('both vCPUs pinned', () => threadCpusAllowed(r.qemu.pid, vcpu0).length === 1 && threadCpusAllowed(r.qemu.pid, vcpu1).length === 1);
		r.agent.onSnapshot = () => guest.append({tid: 600, tgid: 600, mask: maskOf(0)}); // what the snapshot finds
		r.area.view.setBigUint64(Header.ringLost, 5n, true); // the agent's count of records it dropped
		await waitUntil('the snapshot asked for', () => sent(r.agent, FrameType.snapshot) === 1, 8000);
		t.match(r.named('reset').at(-1), {reason: '5 records lost'}, 'every hint forgotten, saying why');
		await waitUntil("vCPU 1 floats again: its thread's exit was lost", () => threadCpusAllowed(r.qemu.pid, vcpu1).length > 1);
		await waitUntil('the snapshot logged', () => r.named('agent').some((e) => e['state'] === 'snapshot'));
		r.agent.send(FrameType.kick);
		await waitUntil("vCPU 0 pinned again: the snapshot's record", () => threadCpusAllowed(r.qemu.pid, vcpu0).length === 1);
		await sleep(1500);
		t.equal(sent(r.agent, FrameType.snapshot), 1, 'once for those losses, not again while none come');
	},
);

t.test(
	'a KICK frame from the agent drains the ring at once, not at the next tick of the 250 ms fallback timer',
	{skip: ownCpus.length < 2 && 'needs two CPUs'},
	async (t) => {
		const r = await startSession(t, {portOpen: true});
		await hintsBecome(r, 'active');
		const vcpu0 = r.qemu.vcpuThreads[0] ?? 0;
		const pinned = (): boolean => threadCpusAllowed(r.qemu.pid, vcpu0).length === 1;
		// The engine's fallback timer drains the ring, then writes its heartbeat into the area, in one turn of the event loop.
		const heartbeat = (): bigint => r.area.view.getBigUint64(Header.hostHeartbeat, true);
		const before = heartbeat();
		await waitUntil('a tick of the fallback timer', () => heartbeat() !== before);
		const tick = heartbeat(); // the next one is some 250 ms away
		new Guest(r.area).append({tid: 500, tgid: 500, mask: maskOf(0)});
		r.agent.send(FrameType.kick);
		await waitUntil("vCPU 0's thread has a CPU of its own", pinned);
		t.equal(heartbeat(), tick, 'pinned before the next tick: the KICK drained the ring');
		t.match(r.named('pin'), [{vcpu: 0, tid: 500}]);
	},
);

for (const placement of ['auto', 'cpuset', 'priority'] as const)
	t.test(
		`QEMU's threads: its main loop raised; a hint pins a vCPU thread, the agent closing its port and a reset let it float again (--pv-placement ${placement})`,
		{
			skip:
				ownCpus.length < 2
					? 'needs two CPUs'
					: placement === 'cpuset' && !(isRoot && cpusetMount())
						? 'needs root and a cgroup v1 cpuset hierarchy'
						: placement === 'priority' && !isRoot
							? 'SCHED_FIFO needs root'
							: false,
		},
		async (t) => {
			const r = await startSession(t, {portOpen: true, threads: true, placement});
			await hintsBecome(r, 'active');
			const threads = r.qemu.vcpuThreads;
			// A VM of 2 vCPUs: one by one unless the float group is asked for; then it holds the floating vCPU threads.
			const [shown] = r.named('placement');
			t.match(shown, placement === 'auto' ? {mode: 'threads', reason: '2 vCPUs: below 16, one sched_setaffinity per thread costs less'} : {mode: placement});
			const groupDir = placement === 'cpuset' ? String(shown?.['dir']) : undefined;
			if (groupDir) t.same(tasksOf(path.join(groupDir, 'float')).sort(), [...threads].sort(), 'both vCPU threads in the floating cpuset');
			t.match(r.named('vcpus'), [{threads}], 'vcpus: the host threads QMP named, in vCPU order');
			// The hint path: QEMU's main loop (its threads other than the vCPUs') raised, its vCPU threads not.
			if (isRoot) {
				t.equal(getThreadNice(r.qemu.pid), -10, "QEMU's main thread runs at nice -10");
				t.same(threads.map(getThreadNice), [0, 0], 'its vCPU threads as they were');
			} else t.comment('not root: the raised priorities are not checked');
			const floating = (): boolean =>
				threads.every((tid) => threadCpusAllowed(r.qemu.pid, tid).join(',') === ownCpus.join(',') && threadPolicy(r.qemu.pid, tid) === 0);
			// By priority, the granted thread alone changes: its one CPU, SCHED_FIFO; the other keeps every CPU.
			const raised = (v: number): boolean =>
				threadCpusAllowed(r.qemu.pid, threads[v] ?? 0).length === 1 &&
				threadPolicy(r.qemu.pid, threads[v] ?? 0) === 1 &&
				threads.every((tid, i) => i === v || threadCpusAllowed(r.qemu.pid, tid).join(',') === ownCpus.join(','));
			const exclusive = (v: number): boolean => (placement === 'priority' ? raised(v) : hasExclusiveCpu(r.qemu.pid, threads, v));
			t.ok(floating(), 'every vCPU thread floats on the allowed CPUs at first');

			// A guest thread pins itself to vCPU 0; the agent relays the record and kicks.
			const guest = new Guest(r.area);
			guest.append({tid: 500, tgid: 500, comm: 'worker', mask: maskOf(0)});
			r.agent.send(FrameType.kick);
			await waitUntil('vCPU 0 has a CPU of its own (its thread in /proc)', () => exclusive(0));
			t.match(r.named('pin'), [{vcpu: 0, tid: 500, comm: 'worker'}], "the pin is logged, for the hint's guest thread");

			r.qmp.event('VSERPORT_CHANGE', {id: channelIds.agentPort, open: false});
			await waitUntil('the agent gone, vCPU 0 floats again', floating);
			t.match(r.named('reset'), [{reason: 'agent stopped'}], 'its hints are cleared');

			r.qmp.event('VSERPORT_CHANGE', {id: channelIds.agentPort, open: true});
			await hintsBecome(r, 'active');
			guest.append({tid: 501, tgid: 501, comm: 'other', mask: maskOf(1)});
			r.agent.send(FrameType.kick);
			await waitUntil('vCPU 1 has a CPU of its own', () => exclusive(1));

			if (groupDir) t.same(tasksOf(groupDir), [threads[1]], "vCPU 1's thread out of the floating cpuset");

			r.qmp.event('RESET');
			await waitUntil('the guest reset, vCPU 1 floats again', floating);
			t.match(r.named('reset').at(-1), {reason: 'guest reset'}, 'its hints are cleared');
			t.same(r.stateHints(), {state: 'waiting', reason: 'the guest was reset'});
			if (placement === 'priority') {
				guest.append({tid: 502, tgid: 502, comm: 'again', mask: maskOf(1)});
				r.agent.send(FrameType.kick);
				await waitUntil('vCPU 1 raised again', () => exclusive(1));
				r.session.close();
				t.same(
					threads.map((tid) => threadPolicy(r.qemu.pid, tid)),
					[0, 0],
					'the session closed (QEMU still running): no vCPU thread left in SCHED_FIFO',
				);
			}
			if (groupDir) {
				r.session.close();
				t.notOk(fs.existsSync(groupDir), 'the session closed (QEMU still running): its cpusets are gone');
				t.same(
					threads.map((tid) => cpusetOf(tid)),
					threads.map(() => cpusetOf(r.qemu.pid)),
					"the vCPU threads are back in QEMU's cpuset",
				);
			}
		},
	);

t.test('a VM that comes in (-incoming): once it runs (RESUME), its hints start afresh and the agent loads the program again', async (t) => {
	// The saved VM's agent kept its programs (they went on running in the guest that was saved).
	const kept = hintTypes.map((h, i) => ({id: 1 + i, recordType: h.recordType, name: h.name, object: Buffer.alloc(0)}));
	const r = await startSession(t, {incoming: true, running: false, portOpen: true, kept});
	await hintsBecome(r, 'active');
	t.equal(sent(r.agent, FrameType.load), 0, 'not running yet: HELLO, and the programs it has are kept');
	await waitUntil('LIVE, naming the programs kept', () => sent(r.agent, FrameType.live) === 1);
	const before = r.agent.received.length;

	r.qmp.event('RESUME');
	await waitUntil('hints are active again after the restore', () => r.hintLines().length === 4 && r.hintLines()[3]?.state === 'active');
	await waitUntil('LIVE again', () => sent(r.agent, FrameType.live) === 2);
	t.match(r.named('reset'), [{reason: 'restored'}], 'the engine starts afresh from what the area holds now');
	t.same(r.hintLines()[2], {state: 'waiting', reason: 'the VM was restored: waiting for the guest agent'}, 'hints waited for the agent meanwhile');
	const names = (type: number): string => Object.entries(FrameType).find(([, v]) => v === type)?.[0] ?? String(type);
	t.same(
		r.agent.received.slice(before).map((f) => names(f.type)),
		['hello', 'list', ...kept.map(() => 'unload'), ...hintTypes.map(() => 'load'), 'live'],
		'HELLO, the old programs unloaded, each hint type program loaded again, LIVE',
	);
	t.same(
		r.agent.loaded.map((p) => p.name),
		hintTypes.map((h) => h.name),
		'the agent has the new programs only',
	);

	const frames = r.agent.received.length;
	r.qmp.event('STOP');
	r.qmp.event('RESUME');
	await sleep(100);
	t.equal(r.agent.received.length, frames, 'a pause and a resume later: nothing more (the restore is done once)');
	t.equal(r.named('reset').length, 1);
});

t.test('QEMU exits during set-up, before QMP answers: no warning; close() writes exit and removes the run files, once', async (t) => {
	for (const qmpAnswers of ['no QMP socket yet', 'QMP greets, never answers'] as const) {
		const plan = testPlan(t);
		const logFile = path.join(path.dirname(plan.runDir), 'events.jsonl');
		const qemu = sleepingQemu(t);
		const area = createRunFiles(plan);
		teardownStep(t, 'removeRunFiles', () => removeRunFiles(plan, area));
		const qmp = qmpAnswers === 'no QMP socket yet' ? undefined : await fakeQmp(t, plan.qmpSocket, {answer: false});
		const session = new HintSession(plan, area, qemu, new EventLog(logFile, false));
		teardownStep(t, 'HintSession.close', () => session.close());
		if (qmp) await waitUntil('the session is connected to QMP', () => qmp.connections() === 1);
		await sleep(50); // the session sends qmp_capabilities (or tries to connect, again and again)
		qemu.kill();
		await qemu.exited;
		// Its sockets go with it. It read nothing (qmp_capabilities is unread): the session reads ECONNRESET. (After a
		// clean close, src/qemu/qmp.ts's handshake would leave its 15 s timer armed, keeping this process alive.)
		qmp?.close();
		await sleep(100); // what the set-up's failure leads to happens at once
		t.same(
			readEventLog(logFile).map((e) => e.event),
			['start'],
			`${qmpAnswers}: only start is logged, no warning (a warning goes to the log and stderr alike)`,
		);
		session.close();
		const events = readEventLog(logFile);
		t.equal(events.at(-1)?.event, 'exit', 'close() logs exit');
		t.match(events.at(-1), {counters: {}}, "with the reader's counters");
		t.notOk(fs.existsSync(plan.runDir), 'the run directory is removed');
		t.notOk(fs.existsSync(plan.shmPath), 'the shared memory is removed');
		session.close();
		t.same(
			readEventLog(logFile).map((e) => e.event),
			['start', 'exit'],
			'a second close() adds nothing',
		);
	}
});

t.test('close() while the set-up still connects: the connection made afterwards is closed too', async (t) => {
	const plan = testPlan(t);
	const logFile = path.join(path.dirname(plan.runDir), 'events.jsonl');
	const qemu = sleepingQemu(t);
	const area = createRunFiles(plan);
	teardownStep(t, 'removeRunFiles', () => removeRunFiles(plan, area));
	const session = new HintSession(plan, area, qemu, new EventLog(logFile, false));
	teardownStep(t, 'HintSession.close', () => session.close());
	await sleep(50); // the session tries to connect to QMP, again and again
	session.close();
	// QEMU's monitor comes up only now (in a run directory of the same name: close() removed the first).
	fs.mkdirSync(plan.runDir, {mode: 0o700});
	t.teardown(() => fs.rmSync(plan.runDir, {recursive: true, force: true}));
	const qmp = await fakeQmp(t, plan.qmpSocket);
	await waitUntil('the set-up connects to QMP', () => qmp.connections() === 1);
	await waitUntil('and, finding the session closed, hangs up', () => qmp.open() === 0);
	t.equal(qmp.open(), 0, 'no QMP connection is left open');
	t.same(
		qmp.commands.filter((c) => c === 'query-cpus-fast'),
		[],
		'nothing is asked of a VM whose session is closed',
	);
});
