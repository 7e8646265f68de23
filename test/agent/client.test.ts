// The host end of the agent channel (src/agent/client.ts) against a stand-in
// for QEMU's chardev and the guest agent: a real unix-socket server in this
// process that parses the client's frames and answers with the encoders of
// src/agent/protocol.ts as docs/agent-protocol.md says the agent does.
// Connecting (retries, timeout, abort), every request's round trip, ERROR
// frames, timeouts, a connection that drops, and KICK and LOG frames.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t, {type Test} from 'tap';
import {AgentClient, AgentPortClosedError, AgentReplyError, AgentTimeoutError} from '../../src/agent/client.js';
import {guestBudget} from '../../src/util/guest-budget.js';
import {FrameParser, FrameType, encodeFrame, encodeHello, encodeLoad, type Frame} from '../../src/agent/protocol.js';
import {AgentError} from '../../src/util/errors.js';
import {within} from '../helpers/within.js';

/** A socket path nobody listens on yet, removed when the test ends. */
function socketPath(t: Pick<Test, 'teardown'>): string {
	const file = path.join(os.tmpdir(), `pvrun-test-agent-${process.pid}-${crypto.randomBytes(4).toString('hex')}.sock`);
	t.teardown(() => fs.rmSync(file, {force: true}));
	return file;
}

/** What the stand-in agent does with a request: answer (send frames back), or not. */
type Handler = (frame: Frame, send: (type: number, id: number, payload?: Uint8Array) => void) => void;

interface Agent {
	path: string;
	/** Every frame the client sent, in order. */
	received: Frame[];
	/** The connection, once the client is connected. */
	socket: () => net.Socket;
	/** Stop listening and drop the connection. */
	close: () => void;
}

/** A listening stand-in agent at `file` that answers each request with `handler`. */
async function agent(t: Pick<Test, 'teardown'>, file: string, handler: Handler): Promise<Agent> {
	const received: Frame[] = [];
	const sockets: net.Socket[] = [];
	const server = net.createServer((s) => {
		sockets.push(s);
		const parser = new FrameParser();
		const send = (type: number, id: number, payload?: Uint8Array) => void s.write(encodeFrame(type, id, payload));
		s.on('data', (chunk: Buffer) => {
			for (const frame of parser.push(chunk)) {
				received.push(frame);
				handler(frame, send);
			}
		});
		s.on('error', () => {});
	});
	await new Promise<void>((resolve) => server.listen(file, resolve));
	const close = (): void => {
		for (const s of sockets) s.destroy();
		server.close();
	};
	t.teardown(close);
	return {
		path: file,
		received,
		socket: () => {
			const s = sockets[0];
			if (!s) throw new Error('the client is not connected');
			return s;
		},
		close,
	};
}

/** A connected client, closed when the test ends. */
async function client(t: Pick<Test, 'teardown'>, a: Agent): Promise<AgentClient> {
	const c = await AgentClient.connect(a.path, 2000);
	t.teardown(() => c.close());
	return c;
}

/** A stand-in agent's connection: resolves once the server side has it. */
async function serverSide(a: Agent): Promise<net.Socket> {
	for (let i = 0; i < 200; i++) {
		try {
			return a.socket();
		} catch {
			await new Promise((r) => setTimeout(r, 5));
		}
	}
	throw new Error('the server saw no connection within 1 s');
}

/** A payload of `size` zero bytes, then filled in by `fill`. */
function payload(size: number, fill: (b: Buffer) => void): Buffer {
	const b = Buffer.alloc(size);
	fill(b);
	return b;
}

const reply = (id: number, p?: Uint8Array) => [FrameType.reply, id, p] as const;

t.test('connect retries until the socket exists', async (t) => {
	const file = socketPath(t);
	const started = performance.now();
	const connecting = AgentClient.connect(file, 5000);
	await new Promise((r) => setTimeout(r, 150));
	await agent(t, file, () => {});
	const c = await connecting;
	t.teardown(() => c.close());
	const ms = performance.now() - started;
	t.ok(ms >= 150, `connected only once the server listened (${ms.toFixed(0)} ms)`);
	t.ok(ms < 2000, `and soon after, retrying every 20 ms (${ms.toFixed(0)} ms)`);
	t.equal(c.isClosed, false, 'the client is open');
});

t.test('connect gives up with an AgentError after its timeout', async (t) => {
	const file = socketPath(t);
	const started = performance.now();
	const error = await AgentClient.connect(file, 150).then(
		() => undefined,
		(e: unknown) => e,
	);
	const ms = performance.now() - started;
	t.type(error, AgentError, 'an AgentError');
	t.match(String((error as Error | undefined)?.message), `cannot connect to the agent channel ${file}`, 'naming the socket');
	t.equal((error as {cause?: NodeJS.ErrnoException} | undefined)?.cause?.code, 'ENOENT', 'its cause is the last attempt (no socket)');
	t.ok(ms >= 150, `not before the timeout (${ms.toFixed(0)} ms)`);
	t.ok(ms < 1500, `not long after it (${ms.toFixed(0)} ms)`);
});

t.test('connect gives up when its AbortSignal aborts, long before its timeout', async (t) => {
	const file = socketPath(t);
	const abort = new AbortController();
	setTimeout(() => abort.abort('the VM ended'), 100);
	const started = performance.now();
	const error = await AgentClient.connect(file, 30_000, abort.signal).then(
		() => undefined,
		(e: unknown) => e,
	);
	const ms = performance.now() - started;
	t.type(error, AgentError, 'an AgentError');
	t.match(String((error as Error | undefined)?.message), /gave up connecting to the agent channel .*: the VM ended/, 'with the reason');
	t.ok(ms < 2000, `at the abort, not the 30 s timeout (${ms.toFixed(0)} ms)`);

	const aborted = AbortSignal.abort('already');
	await t.rejects(
		AgentClient.connect(file, 30_000, aborted),
		{constructor: AgentError, message: /gave up .*: already/},
		'a signal aborted before the call: no attempt',
	);
});

t.test('hello, load, list, unload, stats and ping: requests as the protocol says, replies decoded', async (t) => {
	const helloReply = payload(120, (b) => {
		b.writeUInt16LE(1, 0);
		b.writeUInt16LE(1, 2);
		b.writeUInt32LE(4, 4);
		b.writeBigUInt64LE(0x1122334455667789n, 8);
		b.writeUInt32LE(2, 16);
		b.write('0.1.0', 24, 'latin1');
		b.write('6.1.0-28-cloud-amd64\x1b[31m', 56, 'latin1');
	});
	const loadReply = payload(8, (b) => {
		b.writeUInt32LE(9, 0);
		b.writeUInt32LE(2, 4);
	});
	const listReply = payload(4 + 2 * 48, (b) => {
		b.writeUInt32LE(2, 0);
		b.writeUInt32LE(1, 4);
		b.writeUInt32LE(1, 8);
		b.write('affinity', 12, 'latin1');
		b.writeBigUInt64LE(42n, 44);
		b.writeUInt32LE(3, 52);
		b.writeUInt32LE(7, 56);
		b.write('other', 60, 'latin1');
		b.writeBigUInt64LE(0n, 92);
	});
	const statsReply = payload(48, (b) => {
		[10n, 2n, 5n, 9n, 1n].forEach((v, i) => b.writeBigUInt64LE(v, i * 8));
		b.writeUInt32LE(1, 40);
		b.writeUInt32LE(3, 44);
	});
	const a = await agent(t, socketPath(t), (f, send) => {
		if (f.type === FrameType.hello) send(...reply(f.id, helloReply));
		else if (f.type === FrameType.load) send(...reply(f.id, loadReply));
		else if (f.type === FrameType.list) send(...reply(f.id, listReply));
		else if (f.type === FrameType.unload) send(...reply(f.id));
		else if (f.type === FrameType.stats) send(...reply(f.id, statsReply));
		else if (f.type === FrameType.ping) send(...reply(f.id, f.payload));
	});
	const c = await client(t, a);
	const object = crypto.randomBytes(300);

	t.same(
		await c.hello(262144),
		{
			version: 1,
			shmOk: true,
			nrCpus: 4,
			guestEpoch: 0x1122334455667789n,
			programs: 2,
			shmVersion: 0,
			agentVersion: '0.1.0',
			kernelRelease: '6.1.0-28-cloud-amd64?[31m',
		},
		'hello reply decoded (the escape in a fixed string sanitised)',
	);
	t.same(await c.load('affinity', 1, object), {id: 9, links: 2}, 'load reply decoded');
	t.same(
		await c.list(),
		[
			{id: 1, recordType: 1, name: 'affinity', records: 42n},
			{id: 3, recordType: 7, name: 'other', records: 0n},
		],
		'list reply decoded',
	);
	t.equal(await c.unload(9), undefined, 'unload resolves on an empty reply');
	t.same(await c.stats(), {records: 10n, dropped: 2n, kicks: 5n, framesIn: 9n, framesBad: 1n, programs: 1, hostLinks: 3}, 'stats reply decoded');
	const ms = await c.ping();
	t.ok(ms >= 0 && ms < 2000, `ping gives the round trip in ms (${ms.toFixed(3)})`);

	t.same(
		a.received.map((f) => [f.type, f.id]),
		[
			[FrameType.hello, 1],
			[FrameType.load, 2],
			[FrameType.list, 3],
			[FrameType.unload, 4],
			[FrameType.stats, 5],
			[FrameType.ping, 6],
		],
		'each request its type, numbered from 1',
	);
	const [hello, load, list, unload, stats, ping] = a.received;
	t.same(hello?.payload, encodeHello(262144), 'HELLO carries the version and the area size');
	t.same(load?.payload, encodeLoad(1, 'affinity', object), 'LOAD carries the record type, the name and the object');
	t.equal(list?.payload.length, 0, 'LIST is empty');
	t.same(unload?.payload, Buffer.from([9, 0, 0, 0]), 'UNLOAD carries the id as a u32');
	t.equal(stats?.payload.length, 0, 'STATS is empty');
	t.equal(ping?.payload.toString(), 'pvrun', 'PING carries a few bytes');
});

t.test('snapshot: an empty request, a u32 reply (task iterators run); a reply of another length is refused', async (t) => {
	let size = 4;
	const a = await agent(t, socketPath(t), (f, send) => {
		const b = Buffer.alloc(size);
		if (size === 4) b.writeUInt32LE(2, 0);
		send(...reply(f.id, b));
	});
	const c = await client(t, a);
	t.equal(await c.snapshot(), 2);
	t.equal(a.received.at(-1)?.type, FrameType.snapshot, 'SNAPSHOT');
	t.equal(a.received.at(-1)?.payload.length, 0, 'no payload');
	size = 8;
	await t.rejects(c.snapshot(), {name: 'ProtocolError', message: 'snapshot reply is 8 bytes, not 4'});
});

t.test('a ping whose echo differs rejects', async (t) => {
	const a = await agent(t, socketPath(t), (f, send) => send(...reply(f.id, Buffer.from('other'))));
	const c = await client(t, a);
	await t.rejects(c.ping(), {constructor: AgentError, message: 'agent ping: echo differs'}, 'an AgentError');
});

t.test('a reply too short for its request rejects with a ProtocolError', async (t) => {
	const a = await agent(t, socketPath(t), (f, send) => send(...reply(f.id, Buffer.alloc(10))));
	const c = await client(t, a);
	await t.rejects(c.stats(), {name: 'ProtocolError', message: 'stats reply: 10 bytes, need 48'}, 'stats');
	await t.rejects(c.hello(1), {name: 'ProtocolError', message: 'hello reply: 10 bytes, need 120'}, 'hello');
});

t.test('an ERROR frame rejects with AgentReplyError: errno, message, the whole log', async (t) => {
	const log = '\nlibbpf: prog affinity: BPF program load failed: Permission denied\n0: (b7) r0 = 0\n';
	const a = await agent(t, socketPath(t), (f, send) => {
		const b = Buffer.alloc(8);
		b.writeInt32LE(f.type === FrameType.load ? 13 : 2, 0);
		send(FrameType.error, f.id, Buffer.concat([b, Buffer.from(f.type === FrameType.load ? log : 'no such program')]));
	});
	const c = await client(t, a);
	const error = await c.load('affinity', 1, Buffer.alloc(100)).then(
		() => undefined,
		(e: unknown) => e,
	);
	t.type(error, AgentReplyError, 'an AgentReplyError');
	t.type(error, AgentError, 'which is an AgentError');
	const e = error as AgentReplyError;
	t.equal(e.errno, 13, 'carrying the errno');
	t.equal(e.log, log, 'and the whole message (the verifier log)');
	t.equal(
		e.message,
		'load: agent error 13: libbpf: prog affinity: BPF program load failed: Permission denied',
		'its message: the request and the first line that is not blank',
	);
	await t.rejects(
		c.unload(5),
		{constructor: AgentReplyError, errno: 2, log: 'no such program', message: 'unload: agent error 2: no such program'},
		'another request, another errno',
	);
});

t.test('an ERROR frame too short to decode rejects with a ProtocolError', async (t) => {
	const a = await agent(t, socketPath(t), (f, send) => send(FrameType.error, f.id, Buffer.alloc(4)));
	const c = await client(t, a);
	await t.rejects(c.list(), {name: 'ProtocolError', message: 'error frame: 4 bytes, need 8'}, 'the request fails');
});

t.test('a frame other than REPLY or ERROR with a pending id rejects that request', async (t) => {
	const a = await agent(t, socketPath(t), (f, send) => send(FrameType.hello, f.id));
	const c = await client(t, a);
	await t.rejects(c.stats(), {constructor: AgentError, message: 'agent sent frame type 1 in reply to stats'}, 'an AgentError naming both');
});

t.test('a request with no answer times out; a late reply is ignored and the channel goes on', async (t) => {
	let held: number | undefined;
	const a = await agent(t, socketPath(t), (f, send) => {
		if (f.type === FrameType.stats)
			held = f.id; // never answered in time
		else send(...reply(f.id, f.payload));
	});
	const c = await client(t, a);
	const started = performance.now();
	const error = await c.stats(80).catch((e: unknown) => e);
	t.ok(error instanceof AgentTimeoutError && error instanceof AgentError, 'an AgentTimeoutError, an AgentError');
	t.equal((error as Error).message, 'agent did not answer stats within 80 ms');
	const ms = performance.now() - started;
	t.ok(ms >= 75 && ms < 1500, `after its timeout (${ms.toFixed(0)} ms)`);
	t.equal(held, 1, 'the request did reach the agent');
	(await serverSide(a)).write(encodeFrame(FrameType.reply, held ?? 0, Buffer.alloc(48)));
	t.ok((await c.ping()) >= 0, 'the next request is answered');
	t.equal(c.isClosed, false, 'the channel stays open');
});

t.test('the server closing rejects every pending request, and later ones at once', async (t) => {
	const a = await agent(t, socketPath(t), () => {});
	const c = await client(t, a);
	let closes = 0;
	c.on('close', () => closes++);
	const pending = [c.stats(10_000), c.list(10_000), c.load('affinity', 1, Buffer.alloc(64), 10_000)];
	for (const p of pending) p.catch(() => {}); // handled below
	while (a.received.length < 3) await new Promise((r) => setTimeout(r, 5));
	const started = performance.now();
	a.close();
	const results = await Promise.allSettled(pending);
	t.ok(performance.now() - started < 2000, 'at once, not at their timeouts');
	t.same(
		results.map((r) => (r.status === 'rejected' && r.reason instanceof AgentError ? (r.reason as Error).message : r.status)),
		['agent channel closed while waiting for stats', 'agent channel closed while waiting for list', 'agent channel closed while waiting for load'],
		'each with an AgentError naming its request',
	);
	t.equal(closes, 1, "'close' emitted once");
	t.equal(c.isClosed, true, 'the client says it is closed');
	await t.rejects(c.ping(), {constructor: AgentError, message: 'agent channel is closed'}, 'a request after the close');
});

t.test("the guest's end closing rejects the requests its agent was asked, at once; the channel goes on", async (t) => {
	let answering = false;
	const a = await agent(t, socketPath(t), (f, send) => {
		if (answering) send(...reply(f.id, f.payload));
	});
	const c = await client(t, a);
	const pending = [c.live(1, 10_000), c.load('affinity', 1, Buffer.alloc(64), 10_000)];
	for (const p of pending) p.catch(() => {}); // handled below
	while (a.received.length < 2) await new Promise((r) => setTimeout(r, 5));
	const started = performance.now();
	c.streamRestarted(false);
	const results = await Promise.allSettled(pending);
	t.ok(performance.now() - started < 1000, 'at once, not at their timeouts');
	t.same(
		results.map((r) => (r.status === 'rejected' && r.reason instanceof AgentPortClosedError ? (r.reason as Error).message : r.status)),
		['the guest agent closed its port while pvrun waited for live', 'the guest agent closed its port while pvrun waited for load'],
		'each with an AgentPortClosedError naming its request',
	);
	t.equal(c.isClosed, false, 'the channel stays open for the next agent');
	answering = true;
	c.streamRestarted(true);
	t.ok((await c.ping(2000)) >= 0, 'whose requests are answered');
});

t.test("KICK frames emit 'kick' and LOG frames emit 'log' (bounded); neither settles a request", async (t) => {
	let stats: number | undefined;
	const a = await agent(t, socketPath(t), (f) => {
		if (f.type === FrameType.stats) stats = f.id;
	});
	const c = await client(t, a);
	let kicks = 0;
	const logs: string[] = [];
	c.on('kick', () => kicks++);
	c.on('log', (line) => logs.push(line));
	const pending = c.stats(2000);
	while (stats === undefined) await new Promise((r) => setTimeout(r, 5));
	const s = await serverSide(a);
	const long = 'x'.repeat(2000);
	// A KICK and a LOG carrying the pending request's id, split across writes with garbage in between.
	const bytes = Buffer.concat([
		encodeFrame(FrameType.kick, 0),
		Buffer.from('garbage'),
		encodeFrame(FrameType.log, 0, Buffer.from('agent: hello from the guest')),
		encodeFrame(FrameType.kick, stats),
		encodeFrame(FrameType.log, stats, Buffer.from(long)),
	]);
	s.write(bytes.subarray(0, 20));
	s.write(bytes.subarray(20));
	s.write(encodeFrame(FrameType.reply, stats, Buffer.alloc(48)));
	const answered = await pending;
	t.ok(kicks >= 1 && kicks <= 2, `the KICKs emitted 'kick' (${kicks}: one per read that held any)`);
	t.same(logs, ['agent: hello from the guest', 'x'.repeat(1024)], "each LOG emitted 'log', cut at 1024 bytes");
	t.equal(answered.records, 0n, 'the pending request was settled by its REPLY only');
});

t.test('from a close of the guest end to the next open, what is read is dropped unparsed', async (t) => {
	const a = await agent(t, socketPath(t), (f, send) => send(...reply(f.id, f.payload)));
	const c = await client(t, a);
	let kicks = 0;
	c.on('kick', () => kicks++);
	const s = await serverSide(a);
	c.streamRestarted(false);
	s.write(Buffer.concat(Array.from({length: 1000}, () => encodeFrame(FrameType.kick, 0))));
	await new Promise((r) => setTimeout(r, 100));
	t.equal(kicks, 0, "the old stream's KICK frames were dropped");
	c.streamRestarted(true);
	t.ok((await c.ping(2000)) >= 0, 'after the open, a request is answered');
	s.write(encodeFrame(FrameType.kick, 0));
	await new Promise((r) => setTimeout(r, 50));
	t.equal(kicks, 1, 'and frames are read again');
});

t.test('one read larger than the budget is parsed a window at a time, and what follows it waits its turn', async (t) => {
	const a = await agent(t, socketPath(t), (f, send) => send(...reply(f.id, f.payload)));
	const budget = {...guestBudget(), inputBytes: 16 * 1024, inputWindowMs: 100};
	const c = await AgentClient.connect(a.path, 2000, undefined, budget);
	t.teardown(() => c.close());
	const kickTimes: number[] = [];
	c.on('kick', () => kickTimes.push(performance.now()));
	const s = await serverSide(a);
	// 64 KiB of KICK frames in one write: four windows' worth.
	const started = performance.now();
	s.write(Buffer.concat(Array.from({length: 4096}, () => encodeFrame(FrameType.kick, 0))));
	const rtt = await c.ping(5000);
	const took = performance.now() - started;
	t.ok(
		took >= 3 * budget.inputWindowMs - 20,
		`a request behind them was answered after ${took.toFixed(0)} ms (rtt ${rtt.toFixed(1)} ms): the frames before it were parsed over four windows`,
	);
	t.ok(kickTimes.length >= 4 && kickTimes.length <= 6, `${kickTimes.length} kick events, one per slice parsed`);
	const spread = (kickTimes.at(-1) ?? 0) - (kickTimes[0] ?? 0);
	t.ok(spread >= 2 * budget.inputWindowMs, `the slices ${spread.toFixed(0)} ms apart from first to last`);
	t.ok(c.inputWaits >= 3, `the bytes beyond the first window waited (counted ${c.inputWaits} times)`);
});

t.test("while pvrun's measured CPU is over the share, the guest's bytes wait for the hold's end, unless pvrun awaits an answer", async (t) => {
	const a = await agent(t, socketPath(t), (f, send) => send(...reply(f.id, f.payload)));
	let holdUntil = 0;
	const c = await AgentClient.connect(a.path, 2000, undefined, guestBudget(), () => Math.max(0, holdUntil - performance.now()));
	t.teardown(() => c.close());
	const kicks: number[] = [];
	c.on('kick', () => kicks.push(performance.now()));
	// Unsolicited frames (a KICK) during a hold: read once it ends.
	const started = performance.now();
	holdUntil = started + 300;
	(await serverSide(a)).write(encodeFrame(FrameType.kick, 0, Buffer.alloc(0)));
	t.ok((await within(2000, () => kicks.length === 1)) >= 0, 'the KICK was read');
	t.ok((kicks[0] ?? 0) - started >= 295, `after the hold (${((kicks[0] ?? 0) - started).toFixed(0)} ms)`);
	t.equal(c.inputWaits, 1, 'one wait counted');
	// An answer pvrun waits for, during a hold: read at once.
	const during = performance.now();
	holdUntil = during + 5000;
	await c.ping(2000);
	t.ok(performance.now() - during < 1000, `a request's answer is read at once, hold or not (${(performance.now() - during).toFixed(0)} ms)`);
	holdUntil = 0;
});

t.test('a flood of KICK frames: read within the input budget, one kick per read, and the channel goes on', async (t) => {
	const a = await agent(t, socketPath(t), (f, send) => send(...reply(f.id, f.payload)));
	const c = await client(t, a);
	let kicks = 0;
	c.on('kick', () => kicks++);
	const s = await serverSide(a);
	const kicksChunk = Buffer.concat(Array.from({length: 4096}, () => encodeFrame(FrameType.kick, 0)));
	const started = performance.now();
	let sent = 0;
	while (performance.now() - started < 1000) {
		if (!s.write(kicksChunk)) await Promise.race([new Promise((r) => s.once('drain', r)), new Promise((r) => setTimeout(r, 50))]);
		sent += kicksChunk.length;
	}
	const seconds = (performance.now() - started) / 1000;
	const b = guestBudget();
	const allowed = (b.inputBytes * seconds * 1000) / b.inputWindowMs;
	// What the kernel and the stand-in buffered (a few MB at most) is on top of what the client read.
	t.ok(
		s.bytesWritten < allowed + 8 * 2 ** 20,
		`the flood got ${(s.bytesWritten / 2 ** 20).toFixed(1)} MB into the socket in ${seconds.toFixed(1)} s (budget ${(allowed / 2 ** 20).toFixed(1)} MB)`,
	);
	t.ok(kicks > 0 && kicks < s.bytesWritten / 16 / 100, `${kicks} kick events for ${Math.round(s.bytesWritten / 16)} KICK frames`);
	// The flood has stopped; what is queued drains at the budget's pace, then the reply comes.
	t.ok((await c.ping(20_000)) >= 0, 'a request after the flood is answered');
	t.equal(c.isClosed, false, 'the channel stays open');
	t.ok(sent > 0);
});
