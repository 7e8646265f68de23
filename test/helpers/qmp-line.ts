// A minimal QMP client for tests that talk to QEMU through a socket of their
// own (not pvrun's): one command at a time, events skipped, bounded waits.
import net from 'node:net';

export interface QmpLine {
	/** The greeting's QEMU version ("7.2.22"). */
	version: string;
	/** Run `command`; resolves to its `return` value, rejects with its `error`. */
	execute(command: string): Promise<unknown>;
	close(): void;
}

/**
 * A connection to the unix socket `file`, retried while it is refused: QEMU
 * creates the socket's file (bind) a moment before it listens.
 */
async function connectListening(file: string, timeoutMs: number): Promise<net.Socket> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const socket = net.connect(file);
		const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
			socket.once('connect', () => resolve(undefined));
			socket.once('error', resolve);
		});
		if (!error) return socket;
		socket.destroy();
		if ((error.code !== 'ECONNREFUSED' && error.code !== 'ENOENT') || Date.now() > deadline) throw error;
		await new Promise((r) => setTimeout(r, 20));
	}
}

/** Connect to a QMP monitor on the unix socket `file` and leave capabilities negotiation done. */
export async function connectQmpLine(file: string, timeoutMs = 10_000): Promise<QmpLine> {
	const socket = await connectListening(file, timeoutMs);
	socket.setEncoding('utf8');
	const lines: unknown[] = [];
	let waiter: (() => void) | undefined;
	let partial = '';
	let failure: Error | undefined;
	socket.on('data', (chunk: string) => {
		partial += chunk;
		const parts = partial.split('\n');
		partial = parts.pop() ?? '';
		for (const part of parts) if (part.trim()) lines.push(JSON.parse(part));
		waiter?.();
	});
	socket.on('error', (error) => {
		failure = error;
		waiter?.();
	});
	socket.on('close', () => {
		failure ??= new Error('QMP socket closed');
		waiter?.();
	});
	const next = (): Promise<Record<string, unknown>> =>
		new Promise((resolve, reject) => {
			const timer = setTimeout(() => reject(new Error(`no QMP message within ${timeoutMs} ms`)), timeoutMs);
			const check = () => {
				const line = lines.shift();
				if (line !== undefined) {
					clearTimeout(timer);
					waiter = undefined;
					resolve(line as Record<string, unknown>);
				} else if (failure) {
					clearTimeout(timer);
					waiter = undefined;
					reject(failure);
				}
			};
			waiter = check;
			check();
		});
	const greeting = (await next())['QMP'] as {version?: {qemu?: {major: number; minor: number; micro: number}}} | undefined;
	const v = greeting?.version?.qemu;
	const execute = async (command: string): Promise<unknown> => {
		socket.write(`${JSON.stringify({execute: command})}\n`);
		for (;;) {
			const reply = await next();
			if ('event' in reply) continue;
			if ('error' in reply) throw new Error(`${command}: ${JSON.stringify(reply['error'])}`);
			return reply['return'];
		}
	};
	await execute('qmp_capabilities');
	return {version: v ? `${v.major}.${v.minor}.${v.micro}` : '?', execute, close: () => socket.destroy()};
}
