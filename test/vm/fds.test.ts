// Which descriptors pvrun counts as inherited from its parent: the rule on
// made-up /proc views, then on real Node processes started with descriptors
// at low numbers (which Node's start-up marks close-on-exec) and high ones.
// Needs `make build` (the real processes import dist/vm/fds.js).
import {spawn, type StdioOptions} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {classifyFds, qemuStdio, readFdEntries, type FdEntry} from '../../src/vm/fds.js';
import {packageRoot} from '../../src/util/paths.js';

/** What a Node process holds of its own at start-up (numbers as on Node 20). */
const nodeOwn = (from: number): FdEntry[] => [
	{fd: from, cloexec: true, target: 'anon_inode:[eventpoll]'},
	{fd: from + 1, cloexec: true, target: 'pipe:[900]'},
	{fd: from + 2, cloexec: true, target: 'pipe:[900]'},
	{fd: from + 3, cloexec: true, target: 'anon_inode:[eventfd]'},
	{fd: from + 4, cloexec: true, target: '/dev/null'},
];
const stdio: FdEntry[] = [0, 1, 2].map((fd) => ({fd, cloexec: true, target: '/dev/pts/0'}));

t.test('beyond the range Node marks, inherited means not close-on-exec', async (t) => {
	const entries = [...stdio, ...nodeOwn(3), {fd: 23, cloexec: false, target: 'socket:[1]'}, {fd: 30, cloexec: true, target: '/etc/hosts'}];
	t.same(classifyFds(entries), [23]);
});

t.test('in the range Node marks close-on-exec (0-15, then up to the first gap), the kind decides', async (t) => {
	const entries = [
		...stdio,
		{fd: 3, cloexec: true, target: 'socket:[11]'}, // libvirt's monitor socket, marked by Node
		...nodeOwn(4),
		{fd: 9, cloexec: true, target: 'pipe:[12]'}, // one end of a pipe: the parent's
		{fd: 10, cloexec: true, target: '/dev/net/tun'},
		{fd: 16, cloexec: true, target: 'socket:[13]'}, // 16.. without a gap: marked too
		{fd: 17, cloexec: true, target: 'anon_inode:[eventfd]'},
		// 18 closed: the range ends there
		{fd: 19, cloexec: true, target: 'socket:[14]'}, // Node's own (opened later, close-on-exec)
		{fd: 40, cloexec: false, target: 'socket:[15]'},
	];
	t.same(classifyFds(entries), [3, 9, 10, 16, 40]);
});

t.test("stdin, stdout, stderr and Node's IPC channel are not counted", async (t) => {
	const entries = [...stdio, {fd: 3, cloexec: true, target: 'socket:[20]'}, {fd: 4, cloexec: false, target: 'socket:[21]'}];
	t.same(classifyFds(entries, 3), [4]);
});

t.test("spawn's stdio puts each descriptor at its own number", async (t) => {
	t.same(qemuStdio([]), ['inherit', 'inherit', 'inherit']);
	t.same(qemuStdio([3, 6]), ['inherit', 'inherit', 'inherit', 3, 'ignore', 'ignore', 6]);
});

/** The inherited descriptors a fresh Node process finds, handed `handOver` (number in the child → descriptor here). */
function childFinds(handOver: Map<number, number>, ipc = false): Promise<number[]> {
	const stdio: StdioOptions = ['ignore', 'pipe', 'inherit'];
	for (let n = 3; n <= Math.max(2, ...handOver.keys()); n++) stdio.push(handOver.get(n) ?? 'ignore');
	if (ipc) stdio.push('ipc');
	const module = path.join(packageRoot, 'dist', 'vm', 'fds.js');
	const code = `import(${JSON.stringify(module)}).then((m) => { process.stdout.write(JSON.stringify(m.inheritedFds)); process.channel?.unref(); })`;
	const child = spawn(process.execPath, ['-e', code], {stdio});
	let out = '';
	child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
	return new Promise((resolve, reject) => {
		child.once('error', reject);
		child.once('exit', () => {
			try {
				resolve(JSON.parse(out) as number[]);
			} catch (error) {
				reject(error instanceof Error ? error : new Error(String(error)));
			}
		});
	});
}

t.test('a real Node process finds what its parent handed it, at low and high numbers', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-fds-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const server = net.createServer();
	await new Promise<void>((resolve) => server.listen(path.join(dir, 'a.sock'), resolve));
	t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
	const socketFd = (server as unknown as {_handle: {fd: number}})._handle.fd;
	const fileFd = fs.openSync(path.join(dir, 'f'), 'w');
	t.teardown(() => fs.closeSync(fileFd));
	const [readEnd, writeEnd] = await pipePair();
	// A child also gets whatever this process holds without close-on-exec (libuv closes nothing): those count too.
	const leaking = readFdEntries()
		.filter((e) => e.fd > 2 && !e.cloexec)
		.map((e) => e.fd);
	const plus = (...fds: number[]) => [...new Set([...leaking, ...fds])].sort((a, b) => a - b);
	t.same(await childFinds(new Map()), plus(), "nothing handed over: only what leaks from this process (Node's own are not counted)");
	t.same(
		await childFinds(
			new Map([
				[3, socketFd],
				[5, fileFd],
				[7, writeEnd],
			]),
		),
		plus(3, 5, 7),
		'in the range Node marks: a socket, a file, a pipe end',
	);
	t.same(
		await childFinds(
			new Map([
				[23, socketFd],
				[40, fileFd],
			]),
		),
		plus(23, 40),
		'libvirt-like numbers',
	);
	t.same(await childFinds(new Map([[4, socketFd]]), true), plus(4), 'started with an IPC channel: the channel is not counted');
	fs.closeSync(readEnd);
	fs.closeSync(writeEnd);
});

/** A pipe as two descriptors of this process (a FIFO opened both ways). */
async function pipePair(): Promise<[number, number]> {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-fifo-'));
	const fifo = path.join(dir, 'p');
	const {execFileSync} = await import('node:child_process');
	execFileSync('mkfifo', [fifo]);
	const readEnd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
	const writeEnd = fs.openSync(fifo, fs.constants.O_WRONLY);
	fs.rmSync(dir, {recursive: true, force: true});
	return [readEnd, writeEnd];
}
