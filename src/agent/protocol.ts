// The agent protocol v1 (docs/agent-protocol.md, guest-agent/proto.h): frame
// encoding, a streaming frame parser that resynchronises on garbage, and
// decoders for every reply, each validating lengths and bounding strings.

export const frameMagic = 0x47415650; // "PVAG"
export const protocolVersion = 1;
export const frameHeaderSize = 16;
export const maxPayload = 4 << 20;
export const nameLength = 32;
/** PVAG_PORT_NAME: the virtio-serial port this protocol runs over (pvrun adds it: src/vm/devices.ts). */
export const agentPortName = 'org.pvrun.agent.0';
/** PVAG_KICK_PORT_NAME: the port the agent writes its kick byte to, read by the native fast path (docs/fast-path.md). */
export const kickPortName = 'org.pvrun.kick.0';
/** PVAG_LIVE_FILE: where the agent says in the guest that the host has loaded its programs (LIVE). */
export const liveFile = '/run/pvagent.live';

export const FrameType = {
	hello: 1,
	load: 2,
	unload: 3,
	list: 4,
	stats: 5,
	ping: 6,
	live: 7,
	snapshot: 8,
	reply: 0x100,
	error: 0x101,
	script: 9,
	kick: 0x200,
	log: 0x201,
	scriptOut: 0x202,
} as const;

/** PVAG_SCRIPT_MAX: a hint script's text, bytes. */
export const scriptMax = 64 << 10;
/** PVAG_SCRIPT_LINE_MAX: a line of a script's output the agent relays. */
export const scriptLineMax = 512;
/** PVAG_MAX_SCRIPTS: scripts running at once in the guest. */
export const maxScripts = 8;

/** enum pvag_script_stream: what a SCRIPT_OUT frame carries. */
export const ScriptStream = {stdout: 1, stderr: 2, exit: 3, refused: 4} as const;

export interface ScriptOut {
	/** The host's number for the script (pvag_script_req.script). */
	script: number;
	stream: 'stdout' | 'stderr' | 'exit' | 'refused';
	/** exit: bpftrace's exit status (128 + n: signal n); refused: the errno why the hint was not taken. */
	status: number;
	/** Hint records the script has given so far. */
	hints: number;
	/** The line (empty for exit), without control characters. */
	text: string;
}

export interface Frame {
	type: number;
	id: number;
	payload: Buffer;
}

/** One frame: 16-byte header, then the payload. */
export function encodeFrame(type: number, id: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
	const header = Buffer.alloc(frameHeaderSize);
	header.writeUInt32LE(frameMagic, 0);
	header.writeUInt16LE(protocolVersion, 4);
	header.writeUInt16LE(type, 6);
	header.writeUInt32LE(id >>> 0, 8);
	header.writeUInt32LE(payload.length, 12);
	return Buffer.concat([header, payload]);
}

/** The payload of every frame without one (never written to). */
const noPayload = Buffer.alloc(0);

/**
 * Splits a byte stream into frames; bytes that do not start a valid header are
 * skipped and counted. While a frame is incomplete, new chunks are only
 * queued: they are joined once the frame can be complete, so a guest that
 * drip-feeds a large frame costs linear, not quadratic, copying. With
 * `countKicks`, KICK frames are counted in `kicks` instead of returned: a
 * flood of them then costs no allocation per frame.
 */
export class FrameParser {
	/** KICK frames seen (with `countKicks`). */
	kicks = 0;

	constructor(private readonly countKicks = false) {}

	private buffer: Buffer = Buffer.alloc(0);
	private queued: Buffer[] = [];
	private queuedLength = 0;
	/** Bytes that `buffer` plus the queued chunks must reach before parsing is worth it. */
	private needed = 0;
	/** Bytes skipped while looking for a frame header. */
	skipped = 0;

	/** Feed bytes; returns the complete frames they finish. */
	push(chunk: Buffer): Frame[] {
		this.queued.push(chunk);
		this.queuedLength += chunk.length;
		if (this.buffer.length + this.queuedLength < this.needed) return [];
		this.buffer = this.buffer.length || this.queued.length > 1 ? Buffer.concat([this.buffer, ...this.queued]) : chunk;
		this.queued = [];
		this.queuedLength = 0;
		this.needed = 0;
		const frames: Frame[] = [];
		let off = 0;
		while (this.buffer.length - off >= frameHeaderSize) {
			const magic = this.buffer.readUInt32LE(off);
			const version = this.buffer.readUInt16LE(off + 4);
			const len = this.buffer.readUInt32LE(off + 12);
			if (magic !== frameMagic || version !== protocolVersion || len > maxPayload) {
				off++;
				this.skipped++;
				continue;
			}
			if (this.buffer.length - off < frameHeaderSize + len) {
				this.needed = frameHeaderSize + len;
				break;
			}
			const type = this.buffer.readUInt16LE(off + 6);
			if (type === FrameType.kick && this.countKicks) {
				this.kicks++;
				off += frameHeaderSize + len;
				continue;
			}
			frames.push({
				type,
				id: this.buffer.readUInt32LE(off + 8),
				// A copy: the buffer is reused. Most frames (KICK) have none, and share one empty buffer.
				payload: len === 0 ? noPayload : Buffer.from(this.buffer.subarray(off + frameHeaderSize, off + frameHeaderSize + len)),
			});
			off += frameHeaderSize + len;
		}
		this.buffer = this.buffer.subarray(off);
		return frames;
	}

	/** Forget any partial frame (the connection was reset). */
	reset(): void {
		this.buffer = Buffer.alloc(0);
		this.queued = [];
		this.queuedLength = 0;
		this.needed = 0;
	}
}

export interface HelloReply {
	version: number;
	shmOk: boolean;
	nrCpus: number;
	guestEpoch: bigint;
	programs: number;
	/** The shared-memory layout the agent speaks; 0 from agents before layout v2 (they spoke v1). */
	shmVersion: number;
	agentVersion: string;
	kernelRelease: string;
}

export interface ProgramInfo {
	id: number;
	recordType: number;
	name: string;
	records: bigint;
}

export interface AgentStats {
	records: bigint;
	dropped: bigint;
	kicks: bigint;
	framesIn: bigint;
	framesBad: bigint;
	programs: number;
	hostLinks: number;
}

/** A protocol-level defect in what the guest sent. */
export class ProtocolError extends Error {
	override readonly name = 'ProtocolError';
}

function need(payload: Buffer, size: number, what: string): void {
	if (payload.length < size) throw new ProtocolError(`${what}: ${payload.length} bytes, need ${size}`);
}

/** A NUL-terminated string from a fixed field, printable ASCII only. */
export function fixedString(buf: Buffer, offset: number, length: number): string {
	const field = buf.subarray(offset, offset + length);
	const end = field.indexOf(0);
	return field
		.subarray(0, end === -1 ? field.length : end)
		.toString('latin1')
		.replace(/[^\x20-\x7e]/g, '?');
}

export function encodeHello(shmSize: number): Buffer {
	const b = Buffer.alloc(8);
	b.writeUInt16LE(protocolVersion, 0);
	b.writeUInt32LE(shmSize, 4);
	return b;
}

export function decodeHello(p: Buffer): HelloReply {
	need(p, 120, 'hello reply');
	return {
		version: p.readUInt16LE(0),
		shmOk: p.readUInt16LE(2) === 1,
		nrCpus: p.readUInt32LE(4),
		guestEpoch: p.readBigUInt64LE(8),
		programs: p.readUInt32LE(16),
		shmVersion: p.readUInt32LE(20),
		agentVersion: fixedString(p, 24, 32),
		kernelRelease: fixedString(p, 56, 64),
	};
}

export function encodeLoad(recordType: number, name: string, object: Uint8Array): Buffer {
	return Buffer.concat([numberAndName(recordType, name), object]);
}

/** The fixed part of LOAD and SCRIPT requests: a u32, four bytes of padding, a NUL-padded name. */
function numberAndName(n: number, name: string): Buffer {
	const head = Buffer.alloc(8 + nameLength);
	head.writeUInt32LE(n >>> 0, 0);
	head.write(name.slice(0, nameLength - 1), 8, 'latin1');
	return head;
}

export function decodeLoad(p: Buffer): {id: number; links: number} {
	need(p, 8, 'load reply');
	return {id: p.readUInt32LE(0), links: p.readUInt32LE(4)};
}

export function decodeList(p: Buffer): ProgramInfo[] {
	need(p, 4, 'list reply');
	const count = p.readUInt32LE(0);
	if (count > 64) throw new ProtocolError(`list reply: ${count} programs is implausible`);
	need(p, 4 + count * 48, 'list reply');
	return Array.from({length: count}, (_, i) => {
		const o = 4 + i * 48;
		return {id: p.readUInt32LE(o), recordType: p.readUInt32LE(o + 4), name: fixedString(p, o + 8, nameLength), records: p.readBigUInt64LE(o + 40)};
	});
}

export function decodeStats(p: Buffer): AgentStats {
	need(p, 48, 'stats reply');
	return {
		records: p.readBigUInt64LE(0),
		dropped: p.readBigUInt64LE(8),
		kicks: p.readBigUInt64LE(16),
		framesIn: p.readBigUInt64LE(24),
		framesBad: p.readBigUInt64LE(32),
		programs: p.readUInt32LE(40),
		hostLinks: p.readUInt32LE(44),
	};
}

/** PVAG_SCRIPT's payload: the script's number and file name, then its text. */
export function encodeScript(script: number, name: string, text: string): Buffer {
	return Buffer.concat([numberAndName(script, name), Buffer.from(text, 'utf8')]);
}

export function decodeScriptReply(p: Buffer): number {
	need(p, 4, 'script reply');
	return p.readUInt32LE(0);
}

/** A SCRIPT_OUT frame from the guest: validated, its line bounded and stripped of control characters; undefined if malformed. */
export function decodeScriptOut(p: Buffer): ScriptOut | undefined {
	if (p.length < 16) return undefined;
	const kind = p.readUInt16LE(4);
	const stream = (Object.entries(ScriptStream).find(([, v]) => v === kind)?.[0] ?? undefined) as ScriptOut['stream'] | undefined;
	if (!stream) return undefined;
	const line = p.subarray(16, 16 + scriptLineMax).toString('utf8');
	// eslint-disable-next-line no-control-regex
	const text = line.replace(/[\x00-\x1f\x7f]/g, '?');
	return {script: p.readUInt32LE(0), stream, status: p.readInt32LE(8), hints: p.readUInt32LE(12), text};
}

/** An ERROR frame's errno and message (bounded to 64 KiB of text). */
export function decodeError(p: Buffer): {errno: number; message: string} {
	need(p, 8, 'error frame');
	// Control characters (terminal escapes) are dropped; newlines and tabs stay (verifier logs).
	const text = p.subarray(8, 8 + 65536).toString('utf8');
	// eslint-disable-next-line no-control-regex
	const message = text.replace(/\0+$/, '').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '?');
	return {errno: p.readInt32LE(0), message};
}
