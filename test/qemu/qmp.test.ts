// The QMP client against a real, paused QEMU (TCG, 2 vCPUs, no guest): vCPU
// host threads, command errors, connect timeouts, events, and what happens to
// pending commands when the connection closes. Also times a QMP round trip.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {ConnectError, connectQmp, ExecInterruptedError, ExecuteError, parseVcpuThreads, QmpError, StateError} from '../../src/qemu/qmp.js';
import type {Qmp} from '../../src/qemu/qmp.js';

/** All the helpers need from a test: somewhere to register cleanup. */
type Test = Pick<typeof t, 'teardown'>;

interface Qemu {
	pid: number;
	socket: string;
	/** Resolves with QEMU's exit code (null when killed by a signal). */
	exited: Promise<number | null>;
	stderr: () => string;
}

/** Starts a paused 2-vCPU QEMU with a QMP socket in a temp dir; teardown kills it and removes the dir. */
function startQemu(t: Test): Qemu {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-qmp-'));
	const socket = path.join(dir, 'qmp.sock');
	const args = [
		'-nodefaults',
		'-no-user-config',
		'-accel',
		'tcg,thread=multi',
		'-M',
		'pc',
		'-smp',
		'2',
		'-m',
		'128',
		'-display',
		'none',
		'-S',
		'-name',
		'test,debug-threads=on',
		'-qmp',
		`unix:${socket},server=on,wait=off`,
	];
	const child = spawn('qemu-system-x86_64', args, {stdio: ['ignore', 'ignore', 'pipe']});
	let stderr = '';
	child.stderr.setEncoding('utf8').on('data', (chunk: string) => void (stderr += chunk));
	const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
	if (child.pid === undefined) throw new Error('qemu-system-x86_64 did not start');
	const pid = child.pid;
	t.teardown(async () => {
		if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
		await exited;
		fs.rmSync(dir, {recursive: true, force: true});
	});
	return {pid, socket, exited, stderr: () => stderr};
}

/** Starts QEMU and connects to it; teardown closes the client too. */
async function qemuWithQmp(t: Test): Promise<{qemu: Qemu; qmp: Qmp}> {
	const qemu = startQemu(t);
	const qmp = await connectQmp(qemu.socket, {timeoutMs: 10_000});
	t.teardown(() => qmp.close());
	return {qemu, qmp};
}

/** Rejects if `promise` takes longer than `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
	let timer: NodeJS.Timeout | undefined;
	const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)));
	return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** What `promise` rejected with, or undefined if it resolved. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
	try {
		await promise;
		return undefined;
	} catch (error) {
		return error;
	}
}

t.test('vcpuThreads lists real host threads, one per vCPU', async (t) => {
	const {qemu, qmp} = await qemuWithQmp(t);
	const threads = await qmp.vcpuThreads();
	t.equal(threads.length, 2, 'two vCPUs');
	t.same(
		threads.map((thread) => thread.index),
		[0, 1],
		'sorted by index',
	);
	for (const thread of threads) {
		const task = `/proc/${qemu.pid}/task/${thread.threadId}`;
		t.ok(fs.existsSync(task), `thread ${thread.threadId} is a task of QEMU ${qemu.pid}`);
		t.equal(fs.readFileSync(`${task}/comm`, 'utf8').trim(), `CPU ${thread.index}/TCG`, 'named by debug-threads');
		t.match(thread.qomPath, /^\/machine\//);
	}
	t.not(threads[0]?.threadId, threads[1]?.threadId, 'each vCPU has its own thread (multi-threaded TCG)');
});

t.test('round trip of query-cpus-fast', async (t) => {
	const {qmp} = await qemuWithQmp(t);
	await qmp.vcpuThreads();
	const calls = 200;
	const started = performance.now();
	const answers: unknown[] = [];
	for (let i = 0; i < calls; i++) answers.push(await qmp.execute('query-cpus-fast'));
	const mean = (performance.now() - started) / calls;
	t.comment(`mean QMP round trip of query-cpus-fast over ${calls} calls: ${(mean * 1000).toFixed(0)} µs`);
	t.ok(
		answers.every((a) => Array.isArray(a) && a.length === 2),
		`each of the ${calls} answers lists the two vCPUs (ids matched the requests)`,
	);
});

t.test('an unknown command is an ExecuteError with class CommandNotFound', async (t) => {
	const {qmp} = await qemuWithQmp(t);
	const error = await rejection(qmp.execute('no-such-command'));
	t.ok(error instanceof ExecuteError, 'ExecuteError');
	t.ok(error instanceof QmpError, 'a QmpError');
	if (!(error instanceof ExecuteError)) return;
	t.equal(error.errorClass, 'CommandNotFound');
	t.equal(error.command, 'no-such-command');
	t.ok(error.cause instanceof Error, 'keeps the cause');
	t.match(error.message, /^QMP command no-such-command failed: CommandNotFound: /);
	t.same(await qmp.execute('query-status'), {status: 'prelaunch', singlestep: false, running: false}, 'the session still works');
});

t.test('bad arguments are an ExecuteError with class GenericError', async (t) => {
	const {qmp} = await qemuWithQmp(t);
	const error = await rejection(qmp.execute('query-status', {bogus: 1}));
	t.ok(error instanceof ExecuteError && error.errorClass === 'GenericError', 'GenericError');
});

t.test('connecting to a socket that never appears is a ConnectError within the timeout', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-qmp-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const timeoutMs = 500;
	const started = performance.now();
	const error = await rejection(connectQmp(path.join(dir, 'never.sock'), {timeoutMs}));
	const elapsed = performance.now() - started;
	t.ok(error instanceof ConnectError, 'ConnectError');
	t.match(error instanceof Error ? error.message : '', /within 500 ms \(last: connect ENOENT/);
	t.ok(error instanceof Error && (error.cause as NodeJS.ErrnoException).code === 'ENOENT', 'keeps the last socket error as cause');
	t.ok(elapsed >= timeoutMs - 5 && elapsed < timeoutMs + 500, `gave up after ${elapsed.toFixed(0)} ms`);
});

t.test('QEMU closing the socket mid-handshake: an error, and no timer left to keep the process alive', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-qmp-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const socket = path.join(dir, 'qmp.sock');
	// A monitor that greets, then hangs up on the first command.
	const server = net.createServer((c) => {
		c.write(`${JSON.stringify({QMP: {version: {qemu: {major: 7, minor: 2, micro: 0}}, capabilities: []}})}\r\n`);
		c.once('data', () => c.destroy());
	});
	await new Promise<void>((resolve) => server.listen(socket, resolve));
	t.teardown(() => void server.close());
	const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
	const before = timers();
	const started = performance.now();
	const error = await rejection(connectQmp(socket, {timeoutMs: 30_000}));
	t.ok(error instanceof ConnectError, `ConnectError: ${String(error)}`);
	t.ok(performance.now() - started < 5_000, 'not at the deadline');
	t.equal(timers(), before, "the handshake's 30 s timer is cleared");
});

t.test('a path that is not a socket fails at once', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-qmp-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const file = path.join(dir, 'plain');
	fs.writeFileSync(file, '');
	const started = performance.now();
	t.ok((await rejection(connectQmp(file, {timeoutMs: 5_000}))) instanceof ConnectError, 'ConnectError');
	t.ok(performance.now() - started < 1_000, 'no retrying on a non-transient error');
});

t.test('connecting right after spawn waits for QEMU to create the socket', async (t) => {
	const qemu = startQemu(t);
	t.notOk(fs.existsSync(qemu.socket), 'no socket yet at spawn');
	const qmp = await connectQmp(qemu.socket, {timeoutMs: 10_000});
	t.teardown(() => qmp.close());
	t.equal((await qmp.vcpuThreads()).length, 2);
});

t.test('a second client while the monitor is busy gets no greeting: ConnectError at the deadline', async (t) => {
	const {qemu, qmp} = await qemuWithQmp(t);
	const started = performance.now();
	const error = await rejection(connectQmp(qemu.socket, {timeoutMs: 500}));
	const elapsed = performance.now() - started;
	t.ok(error instanceof ConnectError, 'ConnectError');
	t.match(error instanceof Error ? error.message : '', /no QMP greeting within/);
	t.ok(elapsed < 1_500, `gave up after ${elapsed.toFixed(0)} ms`);
	t.equal((await qmp.vcpuThreads()).length, 2, 'the first session is unaffected');
});

t.test('STOP and RESUME arrive as events', async (t) => {
	const {qmp} = await qemuWithQmp(t);
	const events: string[] = [];
	qmp.on('event', (name) => void events.push(name));
	const resumed = new Promise<unknown>((resolve) => qmp.on('event', (name, data) => name === 'RESUME' && resolve(data)));
	await qmp.execute('cont');
	t.same(await within(resumed, 5_000, 'RESUME'), {}, 'RESUME with empty data');
	const stopped = new Promise<void>((resolve) => qmp.on('event', (name) => name === 'STOP' && resolve()));
	await qmp.execute('stop');
	await within(stopped, 5_000, 'STOP');
	t.same(events, ['RESUME', 'STOP']);
});

t.test('quit gives SHUTDOWN then close; queued commands settle', async (t) => {
	const {qemu, qmp} = await qemuWithQmp(t);
	const events: Array<{name: string; data: unknown}> = [];
	qmp.on('event', (name, data) => void events.push({name, data}));
	const closed = new Promise<void>((resolve) => qmp.once('close', resolve));
	const quit = qmp.execute('quit');
	const queued = Array.from({length: 20}, () => rejection(qmp.execute('query-status')));
	t.same(await quit, {}, 'quit is acknowledged');
	await within(closed, 5_000, 'close after quit');
	t.ok(qmp.closed, 'closed');
	const shutdown = events.find((event) => event.name === 'SHUTDOWN');
	t.ok(shutdown, 'SHUTDOWN event before close');
	t.match(shutdown?.data, {guest: false, reason: 'host-qmp-quit'});
	const outcomes = await within(Promise.all(queued), 5_000, 'queued commands');
	const interrupted = outcomes.filter((outcome) => outcome instanceof ExecInterruptedError).length;
	t.ok(
		outcomes.every((outcome) => outcome === undefined || outcome instanceof ExecInterruptedError),
		'each answered or ExecInterruptedError',
	);
	t.comment(`${interrupted} of ${queued.length} commands queued behind quit were interrupted`);
	t.ok((await rejection(qmp.execute('query-status'))) instanceof StateError, 'commands after close are a StateError');
	t.equal(await within(qemu.exited, 5_000, 'QEMU exit'), 0, 'QEMU exits 0');
});

t.test('a pending command is rejected when QEMU dies', async (t) => {
	const {qemu, qmp} = await qemuWithQmp(t);
	const closed = new Promise<void>((resolve) => qmp.once('close', resolve));
	process.kill(qemu.pid, 'SIGSTOP');
	const pending = rejection(qmp.execute('query-status'));
	await new Promise((resolve) => setTimeout(resolve, 50));
	process.kill(qemu.pid, 'SIGKILL');
	const error = await within(pending, 5_000, 'rejection');
	t.ok(error instanceof ExecInterruptedError, 'ExecInterruptedError');
	t.match(error instanceof Error ? error.message : '', /^QEMU closed the QMP connection before QEMU answered query-status$/);
	await within(closed, 5_000, 'close');
});

t.test('close() rejects pending commands and emits close once', async (t) => {
	const {qemu, qmp} = await qemuWithQmp(t);
	let closes = 0;
	qmp.on('close', () => void closes++);
	process.kill(qemu.pid, 'SIGSTOP');
	const pending = rejection(qmp.execute('query-status'));
	await qmp.close();
	await qmp.close();
	t.ok((await within(pending, 5_000, 'rejection')) instanceof ExecInterruptedError, 'ExecInterruptedError');
	t.equal(closes, 1, "one 'close'");
	process.kill(qemu.pid, 'SIGCONT');
});

t.test('parseVcpuThreads validates the reply', async (t) => {
	const entry = (index: unknown, threadId: unknown, qomPath: unknown = '/machine/cpu'): unknown => ({
		'cpu-index': index,
		'thread-id': threadId,
		'qom-path': qomPath,
		target: 'x86_64',
	});
	t.same(parseVcpuThreads([entry(1, 11), entry(0, 10)]), [
		{index: 0, threadId: 10, qomPath: '/machine/cpu'},
		{index: 1, threadId: 11, qomPath: '/machine/cpu'},
	]);
	const bad: Array<[unknown, RegExp]> = [
		[{}, /not a list/],
		[[null], /entry 0 is not an object/],
		[[entry(-1, 10)], /cpu-index -1/],
		[[entry(0.5, 10)], /cpu-index 0\.5/],
		[[entry(0, 0)], /thread-id 0, not a positive integer/],
		[[entry(0, '10')], /thread-id "10"/],
		[[entry(0, 10, 7)], /no qom-path/],
		[[entry(0, 10), entry(0, 11)], /same cpu-index/],
	];
	for (const [reply, message] of bad) t.throws(() => parseVcpuThreads(reply), message);
	let thrown: unknown;
	try {
		parseVcpuThreads({});
	} catch (error) {
		thrown = error;
	}
	t.ok(thrown instanceof QmpError, 'a QmpError');
});
