// The host end of the agent channel: a unix-socket client of QEMU's chardev
// behind the virtio-serial port. Requests carry ids; replies settle them;
// every pending request is rejected when the connection drops. KICK and LOG
// frames from the guest are emitted as events.
import {EventEmitter} from 'node:events';
import net from 'node:net';
import {AgentError} from '../util/errors.js';
import {guestBudget, type GuestBudget} from '../util/guest-budget.js';
import {
	FrameParser,
	FrameType,
	ProtocolError,
	decodeError,
	decodeHello,
	decodeList,
	decodeLoad,
	decodeScriptOut,
	decodeScriptReply,
	decodeStats,
	encodeFrame,
	encodeHello,
	encodeLoad,
	encodeScript,
	type AgentStats,
	type Frame,
	type HelloReply,
	type ProgramInfo,
	type ScriptOut,
} from './protocol.js';

/** The agent answered a request with an error (errno and, for loads, the verifier log). */
export class AgentReplyError extends AgentError {
	readonly errno: number;
	readonly log: string;

	constructor(what: string, errno: number, log: string) {
		super(`${what}: agent error ${errno}: ${log.split('\n').find((l) => l.trim()) ?? ''}`);
		this.errno = errno;
		this.log = log;
	}
}

/** The agent did not answer a request in time: it may be slow (a busy guest or host), not gone. */
export class AgentTimeoutError extends AgentError {}

/** The guest's end of the channel closed while a request waited: that agent will never answer it. */
export class AgentPortClosedError extends AgentError {}

interface Pending {
	type: number;
	resolve: (payload: Buffer) => void;
	reject: (error: Error) => void;
	timer: NodeJS.Timeout;
}

export interface AgentClientEvents {
	kick: [];
	log: [line: string];
	/** A line, an error line, a refused hint or the end of a hint script (SCRIPT_OUT). */
	script: [out: ScriptOut];
	close: [];
}

export class AgentClient extends EventEmitter<AgentClientEvents> {
	private readonly parser = new FrameParser(true);
	private readonly pending = new Map<number, Pending>();
	private nextId = 1;
	private closed = false;

	private constructor(
		private readonly socket: net.Socket,
		/**
		 * What the host reads from the agent's port: at most `inputBytes` per `inputWindowMs`.
		 * The agent's own frames (replies, a few KICKs per hint, LOG lines at most 30 a minute)
		 * stay far below it.
		 */
		private readonly input: Pick<GuestBudget, 'inputBytes' | 'inputWindowMs'>,
		/** How long the guest's bytes must wait for pvrun's measured CPU (cpu-governor.ts), ms. */
		private readonly cpuHoldMs: () => number,
	) {
		super();
		socket.setNoDelay(true);
		socket.on('data', (chunk: Buffer) => this.onData(chunk));
		socket.on('close', () => this.onClose());
		socket.on('error', () => {
			// 'close' follows and rejects what is pending
		});
	}

	/** Connect to the chardev socket, retrying until QEMU listens or `timeoutMs` passes. */
	static async connect(
		path: string,
		timeoutMs: number,
		signal?: AbortSignal,
		budget: GuestBudget = guestBudget(),
		cpuHoldMs: () => number = () => 0,
	): Promise<AgentClient> {
		const deadline = Date.now() + timeoutMs;
		for (;;) {
			if (signal?.aborted) throw new AgentError(`gave up connecting to the agent channel ${path}: ${String(signal.reason)}`);
			try {
				const socket = await new Promise<net.Socket>((resolve, reject) => {
					const s = net.createConnection(path);
					s.once('connect', () => resolve(s));
					s.once('error', reject);
				});
				return new AgentClient(socket, budget, cpuHoldMs);
			} catch (error) {
				if (Date.now() > deadline) throw new AgentError(`cannot connect to the agent channel ${path}`, {cause: error});
				await new Promise((r) => setTimeout(r, 20));
			}
		}
	}

	get isClosed(): boolean {
		return this.closed;
	}

	/** Handshake: the agent's versions, CPUs, epoch and whether it mapped the shared memory. */
	async hello(shmSize: number, timeoutMs = 2000): Promise<HelloReply> {
		return decodeHello(await this.request(FrameType.hello, encodeHello(shmSize), timeoutMs));
	}

	/** Load and attach a BPF object; its ring-buffer records are tagged `recordType`. */
	async load(name: string, recordType: number, object: Uint8Array, timeoutMs = 20_000): Promise<{id: number; links: number}> {
		return decodeLoad(await this.request(FrameType.load, encodeLoad(recordType, name, object), timeoutMs));
	}

	async unload(id: number, timeoutMs = 5000): Promise<void> {
		const b = Buffer.alloc(4);
		b.writeUInt32LE(id, 0);
		await this.request(FrameType.unload, b, timeoutMs);
	}

	async list(timeoutMs = 2000): Promise<ProgramInfo[]> {
		return decodeList(await this.request(FrameType.list, Buffer.alloc(0), timeoutMs));
	}

	async stats(timeoutMs = 2000): Promise<AgentStats> {
		return decodeStats(await this.request(FrameType.stats, Buffer.alloc(0), timeoutMs));
	}

	/** Run a bpftrace hint script in the guest; resolves to bpftrace's pid there. */
	async script(script: number, name: string, text: string, timeoutMs = 10_000): Promise<number> {
		return decodeScriptReply(await this.request(FrameType.script, encodeScript(script, name, text), timeoutMs));
	}

	/**
	 * The handshake's last request: the host has loaded the `programs` it will (0: it gives no
	 * hints). The agent says so in the guest (PVAG_LIVE_FILE), where the default image waits for it.
	 */
	async live(programs: number, timeoutMs = 2000): Promise<void> {
		const b = Buffer.alloc(4);
		b.writeUInt32LE(programs >>> 0, 0);
		await this.request(FrameType.live, b, timeoutMs);
	}

	/**
	 * Have the agent run its programs' task iterators again (records were lost: the host
	 * starts over from the state now); the number of iterators run.
	 */
	async snapshot(timeoutMs = 5000): Promise<number> {
		const reply = await this.request(FrameType.snapshot, Buffer.alloc(0), timeoutMs);
		if (reply.length !== 4) throw new ProtocolError(`snapshot reply is ${reply.length} bytes, not 4`);
		return reply.readUInt32LE(0);
	}

	/** Round trip of a small frame through the guest agent, in ms. */
	async ping(timeoutMs = 2000): Promise<number> {
		const started = performance.now();
		const payload = Buffer.from('pvrun');
		const echo = await this.request(FrameType.ping, payload, timeoutMs);
		if (!echo.equals(payload)) throw new AgentError('agent ping: echo differs');
		return performance.now() - started;
	}

	close(): void {
		this.socket.destroy();
	}

	/**
	 * The guest's end of the channel closed (`open` false; a guest reset too) or opened: forget
	 * any partial frame, whose rest will never come, and what was held back for the budget. QEMU's
	 * socket stays connected across those, so nothing else tells this client. From a close to
	 * the next open, what is read is the old stream's (a flood the budget held back, say): it is
	 * dropped unparsed, so a new agent's replies do not wait behind it.
	 */
	streamRestarted(open = true): void {
		this.parser.reset();
		this.held = undefined;
		this.discarding = !open;
		// What the agent that went was asked is not waited for: the next one gets its own requests.
		if (!open)
			for (const [id, p] of this.pending) {
				clearTimeout(p.timer);
				p.reject(new AgentPortClosedError(`the guest agent closed its port while pvrun waited for ${typeName(p.type)}`));
				this.pending.delete(id);
			}
		if (this.paused && !this.closed) {
			this.paused = false;
			this.socket.resume();
		}
	}
	/** Between a close of the guest's end and the next open: bytes read are dropped. */
	private discarding = false;

	/** Send one request and wait for its REPLY or ERROR. */
	private request(type: number, payload: Buffer, timeoutMs: number): Promise<Buffer> {
		if (this.closed) return Promise.reject(new AgentError('agent channel is closed'));
		const id = this.nextId++;
		if (this.nextId > 0xffffffff) this.nextId = 1;
		return new Promise((resolve, reject) => {
			const timer = setTimeout(() => {
				this.pending.delete(id);
				reject(new AgentTimeoutError(`agent did not answer ${typeName(type)} within ${timeoutMs} ms`));
			}, timeoutMs);
			this.pending.set(id, {type, resolve, reject, timer});
			this.socket.write(encodeFrame(type, id, payload));
		});
	}

	/**
	 * A guest that floods its port would keep this thread busy parsing: at most `inputBytes` are
	 * parsed per window, and none while pvrun is over its CPU share and awaits no answer; the rest of a read waits
	 * here, and the socket is paused meanwhile, so QEMU holds the guest's further writes back
	 * (virtio-serial).
	 */
	private onData(chunk: Buffer): void {
		if (this.discarding) return;
		this.held = this.held ? Buffer.concat([this.held, chunk]) : chunk;
		this.parseHeld();
	}

	/** Parse what the window allows of the bytes held; pause the socket while bytes wait, resume when none do. */
	private parseHeld(): void {
		const held = this.held;
		if (!held || this.closed) return;
		const now = performance.now();
		if (now - this.windowStart >= this.input.inputWindowMs) {
			this.windowStart = now;
			this.windowBytes = 0;
		}
		// Over pvrun's CPU share, nothing is parsed until the hold ends, unless pvrun waits for an
		// answer: those are as many as pvrun's own requests, and a HELLO answer held back while pvrun
		// was over its share (a loaded host) kept a VM from its hints. The window still bounds what
		// a guest sends meanwhile.
		const hold = this.pending.size > 0 ? 0 : this.cpuHoldMs();
		const room = hold > 0 ? 0 : Math.max(0, this.input.inputBytes - this.windowBytes);
		const take = room >= held.length ? held : held.subarray(0, room);
		this.held = take === held ? undefined : held.subarray(take.length);
		this.windowBytes += take.length;
		if (take.length > 0) this.parse(take);
		if (!this.held) {
			if (this.paused) {
				this.paused = false;
				this.socket.resume();
			}
			return;
		}
		if (!this.paused) {
			this.paused = true;
			this.socket.pause();
		}
		if (!this.heldTimer) {
			this.inputWaits++;
			this.heldTimer = setTimeout(
				() => {
					this.heldTimer = undefined;
					this.parseHeld();
				},
				Math.ceil(Math.max(hold, this.windowStart + this.input.inputWindowMs - now)) + 1,
			);
			this.heldTimer.unref();
		}
	}
	private held: Buffer | undefined;
	private heldTimer: NodeJS.Timeout | undefined;
	/** Times bytes from the guest waited for the next window of the input budget. */
	inputWaits = 0;
	private windowStart = 0;
	private windowBytes = 0;
	private paused = false;

	private parse(bytes: Buffer): void {
		const kicks = this.parser.kicks;
		for (const frame of this.parser.push(bytes)) this.onFrame(frame);
		// One kick per slice parsed, however many KICK frames it held.
		if (this.parser.kicks !== kicks) this.emit('kick');
	}

	private onFrame(frame: Frame): void {
		if (frame.type === FrameType.log) {
			this.emit('log', frame.payload.subarray(0, 1024).toString('utf8'));
			return;
		}
		if (frame.type === FrameType.scriptOut) {
			const out = decodeScriptOut(frame.payload);
			if (out) this.emit('script', out);
			return;
		}
		const pending = this.pending.get(frame.id);
		if (!pending) return; // a late reply to a request that timed out
		this.pending.delete(frame.id);
		clearTimeout(pending.timer);
		if (frame.type === FrameType.reply) pending.resolve(frame.payload);
		else if (frame.type === FrameType.error) {
			try {
				const {errno, message} = decodeError(frame.payload);
				pending.reject(new AgentReplyError(typeName(pending.type), errno, message));
			} catch (error) {
				pending.reject(error as Error);
			}
		} else pending.reject(new AgentError(`agent sent frame type ${frame.type} in reply to ${typeName(pending.type)}`));
	}

	private onClose(): void {
		this.closed = true;
		for (const [id, p] of this.pending) {
			clearTimeout(p.timer);
			p.reject(new AgentError(`agent channel closed while waiting for ${typeName(p.type)}`));
			this.pending.delete(id);
		}
		this.emit('close');
	}
}

function typeName(type: number): string {
	return Object.entries(FrameType).find(([, v]) => v === type)?.[0] ?? `type ${type}`;
}
