// A small typed QMP client: connect to QEMU's monitor socket (retrying while
// QEMU starts up), run commands, list the vCPU host threads, and report QMP
// events and the connection closing. Errors follow python qemu.qmp's tree.
//
// Built on node-qemu's QMPClient, which does the unix-socket connection, line
// framing, greeting + qmp_capabilities and serial (one-in-flight) dispatch, so
// replies are matched by order and QMP request ids are not needed. Its gaps are
// filled here: connect() has no timeout, retry, or rejection when QEMU drops
// the socket before the handshake finishes; it loses every pending request
// once its socket is gone (later calls queue forever); it ignores an error
// reply to qmp_capabilities; and it throws an unhandled 'error' event for
// transport errors after the handshake unless someone listens.
import {EventEmitter} from 'node:events';
import fs from 'node:fs';
import {setTimeout as sleep} from 'node:timers/promises';
import {QMPClient, QmpCommandError, QmpError as NodeQmpError} from 'node-qemu';
import type {RawQmpEvent} from 'node-qemu';
import {firstLine, PvrunError} from '../util/errors.js';

/** How long to wait between attempts while QEMU has not created the socket yet. */
const RETRY_MS = 20;

/** Socket errors that mean "QEMU is not listening yet", worth retrying. */
const NOT_YET = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);

/** Any QMP failure (python qemu.qmp's QMPError). */
export class QmpError extends PvrunError {}

/** The socket never accepted, or the greeting/capabilities handshake failed. */
export class ConnectError extends QmpError {}

/** QEMU answered a command with an error; `errorClass` is QMP's `class`. */
export class ExecuteError extends QmpError {
	readonly command: string;
	readonly errorClass: string;
	readonly description: string;

	/** The failed `command` and QEMU's error `class` and `desc`. */
	constructor(command: string, errorClass: string, description: string, options: {cause?: unknown} = {}) {
		super(`QMP command ${command} failed: ${errorClass}: ${description}`, options);
		this.command = command;
		this.errorClass = errorClass;
		this.description = description;
	}
}

/** The connection closed while a command was waiting for its reply. */
export class ExecInterruptedError extends QmpError {}

/** A command was issued on a connection that is already closed. */
export class StateError extends QmpError {}

/** One vCPU and the host thread that runs it. */
export interface VcpuThread {
	index: number;
	threadId: number;
	qomPath: string;
}

/** Events a Qmp emits: every QMP event by name, and the connection closing (once). */
export interface QmpEvents {
	event: [name: string, data: unknown];
	close: [];
}

/** A connected QMP session; get one from connectQmp. */
export class Qmp extends EventEmitter<QmpEvents> {
	readonly socketPath: string;
	readonly #client: QMPClient;
	readonly #pending = new Set<(why: string) => void>();
	#closed = false;
	#transportError: Error | undefined;

	/** Wraps a node-qemu client before its handshake, so no event or close is missed (connectQmp does this). */
	constructor(client: QMPClient, socketPath: string) {
		super();
		this.#client = client;
		this.socketPath = socketPath;
		client.on('rawEvent', (event: RawQmpEvent) => this.emit('event', event.event, event.data));
		client.on('error', (error: Error) => void (this.#transportError = error));
		client.on('disconnected', () =>
			this.#finish(this.#transportError ? `QMP connection failed (${firstLine(this.#transportError)})` : 'QEMU closed the QMP connection'),
		);
	}

	/** Whether the connection has closed (no further commands will run). */
	get closed(): boolean {
		return this.#closed;
	}

	/** Runs `command` with `args` and resolves to QEMU's `return` value. */
	execute<T = unknown>(command: string, args?: object): Promise<T> {
		if (this.#closed) return Promise.reject(new StateError(`QMP connection to ${this.socketPath} is closed; cannot run ${command}`));
		return new Promise<T>((resolve, reject) => {
			const interrupt = (why: string): void => reject(new ExecInterruptedError(`${why} before QEMU answered ${command}`));
			this.#pending.add(interrupt);
			this.#client.execute<T>(command, args as Record<string, unknown> | undefined).then(
				(value) => {
					this.#pending.delete(interrupt);
					resolve(value);
				},
				(error: unknown) => {
					this.#pending.delete(interrupt);
					reject(toQmpError(command, error));
				},
			);
		});
	}

	/** The vCPUs' host threads from query-cpus-fast, validated and sorted by index. */
	async vcpuThreads(): Promise<VcpuThread[]> {
		return parseVcpuThreads(await this.execute<unknown>('query-cpus-fast'));
	}

	/** Closes the connection; pending commands reject with ExecInterruptedError. */
	async close(): Promise<void> {
		this.#finish('the QMP connection was closed');
		await this.#client.close();
	}

	/** Marks the session closed once: rejects every pending command and emits 'close'. */
	#finish(why: string): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const interrupt of this.#pending) interrupt(why);
		this.#pending.clear();
		this.emit('close');
	}
}

/** Connects to QEMU's QMP socket, retrying until QEMU listens, within `timeoutMs`. */
export async function connectQmp(socketPath: string, options: {timeoutMs: number; signal?: AbortSignal}): Promise<Qmp> {
	const deadline = performance.now() + options.timeoutMs;
	let last: unknown;
	for (;;) {
		if (options.signal?.aborted) throw new ConnectError(`gave up connecting to ${socketPath}: ${String(options.signal.reason)}`);
		const left = deadline - performance.now();
		if (left <= 0)
			throw new ConnectError(
				`QEMU did not open its QMP socket ${socketPath} within ${options.timeoutMs} ms (last: ${last === undefined ? 'no attempt' : firstLine(last)})`,
				{cause: last},
			);
		const client = new QMPClient({socketPath});
		const qmp = new Qmp(client, socketPath);
		try {
			await handshake(client, left);
			return await checkCapabilities(qmp);
		} catch (error) {
			await qmp.close();
			if (!notYet(socketPath, error)) throw new ConnectError(`cannot start a QMP session on ${socketPath}: ${firstLine(error)}`, {cause: error});
			last = error;
			await sleep(Math.min(RETRY_MS, Math.max(0, deadline - performance.now())));
		}
	}
}

/**
 * node-qemu's greeting + qmp_capabilities, bounded by `ms` and failing if QEMU
 * drops the socket. node-qemu's connect() never settles when the socket closes
 * mid-handshake, so every way out clears the timer here (it would keep the
 * process alive).
 */
function handshake(client: QMPClient, ms: number): Promise<void> {
	return new Promise<void>((resolve, reject) => {
		const done = (error?: unknown): void => {
			clearTimeout(timer);
			client.off('disconnected', dropped);
			if (error === undefined) resolve();
			else reject(error instanceof Error ? error : new Error(String(error)));
		};
		const timer = setTimeout(() => done(new Error(`no QMP greeting within ${Math.round(ms)} ms`)), ms);
		const dropped = (): void => done(new Error('QEMU closed the socket during the QMP handshake'));
		client.once('disconnected', dropped);
		client.connect().then(
			() => done(),
			(error: unknown) => done(error ?? new Error('QMP handshake failed')),
		);
	});
}

/** Confirms command mode, since node-qemu accepts any reply to qmp_capabilities. */
async function checkCapabilities(qmp: Qmp): Promise<Qmp> {
	await qmp.execute('query-version');
	return qmp;
}

/** Checks a query-cpus-fast reply and returns its vCPU threads sorted by index. */
export function parseVcpuThreads(reply: unknown): VcpuThread[] {
	if (!Array.isArray(reply)) throw malformed('the reply is not a list');
	const threads = reply.map((entry: unknown, position) => vcpuThread(entry, position));
	const indices = new Set(threads.map((thread) => thread.index));
	if (indices.size !== threads.length) throw malformed('two entries have the same cpu-index');
	return threads.sort((a, b) => a.index - b.index);
}

/** One validated query-cpus-fast entry. */
function vcpuThread(entry: unknown, position: number): VcpuThread {
	if (typeof entry !== 'object' || entry === null) throw malformed(`entry ${position} is not an object`);
	const fields = entry as Record<string, unknown>;
	const index = fields['cpu-index'];
	const threadId = fields['thread-id'];
	const qomPath = fields['qom-path'];
	if (!isIntegerAtLeast(index, 0)) throw malformed(`entry ${position} has cpu-index ${JSON.stringify(index)}, not an integer >= 0`);
	if (!isIntegerAtLeast(threadId, 1)) throw malformed(`entry ${position} has thread-id ${JSON.stringify(threadId)}, not a positive integer`);
	if (typeof qomPath !== 'string' || qomPath === '') throw malformed(`entry ${position} has no qom-path`);
	return {index, threadId, qomPath};
}

/** Whether `value` is a safe integer no smaller than `min`. */
function isIntegerAtLeast(value: unknown, min: number): value is number {
	return typeof value === 'number' && Number.isSafeInteger(value) && value >= min;
}

/** The error for a query-cpus-fast reply that does not have the documented shape. */
function malformed(what: string): QmpError {
	return new QmpError(`QEMU sent a malformed query-cpus-fast reply: ${what}`);
}

/** Maps whatever node-qemu rejected with onto this module's error tree. */
function toQmpError(command: string, error: unknown): QmpError {
	if (error instanceof QmpCommandError) return new ExecuteError(command, error.qmpClass, error.description, {cause: error});
	if (error instanceof NodeQmpError && error.code === 'CONNECTION_CLOSED')
		return new ExecInterruptedError(`the QMP connection closed before QEMU answered ${command}`, {cause: error});
	if (error instanceof NodeQmpError && error.code === 'CLIENT_CLOSED') return new StateError(`QMP connection is closed; cannot run ${command}`, {cause: error});
	return new QmpError(`QMP command ${command} failed: ${firstLine(error)}`, {cause: error});
}

/** Whether `error` means QEMU may still be starting (connecting to a plain file is ECONNREFUSED too). */
function notYet(socketPath: string, error: unknown): boolean {
	const code = errnoCode(error);
	if (code === 'ECONNREFUSED') return !isNonSocket(socketPath);
	return NOT_YET.has(code);
}

/** Whether `file` exists and is something other than a socket. */
function isNonSocket(file: string): boolean {
	try {
		return !fs.lstatSync(file).isSocket();
	} catch {
		return false;
	}
}

/** The errno code of a socket error, or '' for anything else. */
function errnoCode(error: unknown): string {
	const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
	return typeof code === 'string' ? code : '';
}
