// The agent protocol as the host sees it: frames round-trip through the
// streaming parser however the bytes are chunked, garbage and implausible
// headers are skipped and counted, and every reply decoder refuses short or
// implausible payloads from the (untrusted) guest.
import t from 'tap';
import {fuzzSeed, xorshift32} from '../helpers/fuzz.js';
import {
	FrameParser,
	FrameType,
	ProtocolError,
	decodeError,
	decodeHello,
	decodeList,
	decodeLoad,
	decodeStats,
	encodeFrame,
	encodeHello,
	encodeLoad,
	fixedString,
	frameHeaderSize,
	frameMagic,
	maxPayload,
	nameLength,
	protocolVersion,
	type Frame,
} from '../../src/agent/protocol.js';

// A frame header with any fields, valid or not.
function rawHeader(fields: {magic?: number; version?: number; type?: number; id?: number; len: number}): Buffer {
	const b = Buffer.alloc(frameHeaderSize);
	b.writeUInt32LE(fields.magic ?? frameMagic, 0);
	b.writeUInt16LE(fields.version ?? protocolVersion, 4);
	b.writeUInt16LE(fields.type ?? FrameType.reply, 6);
	b.writeUInt32LE(fields.id ?? 0, 8);
	b.writeUInt32LE(fields.len, 12);
	return b;
}

const plain = (frames: Frame[]): Array<{type: number; id: number; payload: string}> =>
	frames.map((f) => ({type: f.type, id: f.id, payload: f.payload.toString('hex')}));

// Bytes that cannot contain the frame magic ("PVAG").
const garbage = (n: number): Buffer => Buffer.alloc(n, 0xee);

t.test('encodeFrame writes the 16-byte header', async (t) => {
	const f = encodeFrame(FrameType.load, 0x12345678, Buffer.from('abc'));
	t.equal(f.length, frameHeaderSize + 3);
	t.equal(f.readUInt32LE(0), frameMagic);
	t.equal(f.subarray(0, 4).toString('latin1'), 'PVAG');
	t.equal(f.readUInt16LE(4), protocolVersion);
	t.equal(f.readUInt16LE(6), FrameType.load);
	t.equal(f.readUInt32LE(8), 0x12345678);
	t.equal(f.readUInt32LE(12), 3);
	t.equal(f.subarray(16).toString(), 'abc');
	t.equal(encodeFrame(FrameType.ping, 1).length, frameHeaderSize, 'empty payload by default');
	t.equal(encodeFrame(FrameType.ping, -1).readUInt32LE(8), 0xffffffff, 'id as u32');
});

t.test('frames round-trip through the parser', async (t) => {
	const sent: Frame[] = [
		{type: FrameType.hello, id: 1, payload: encodeHello(256 * 1024)},
		{type: FrameType.ping, id: 2, payload: Buffer.alloc(0)},
		{type: FrameType.reply, id: 0xffffffff, payload: Buffer.from('hello world')},
		{type: FrameType.kick, id: 0, payload: Buffer.alloc(0)},
		{type: FrameType.load, id: 7, payload: encodeLoad(1, 'affinity', Buffer.alloc(3000, 0x7f))},
	];
	const stream = Buffer.concat(sent.map((f) => encodeFrame(f.type, f.id, f.payload)));
	const whole = new FrameParser();
	t.same(plain(whole.push(stream)), plain(sent), 'one chunk');
	t.equal(whole.skipped, 0);

	const bytewise = new FrameParser();
	const got: Frame[] = [];
	for (let i = 0; i < stream.length; i++) got.push(...bytewise.push(stream.subarray(i, i + 1)));
	t.same(plain(got), plain(sent), 'byte by byte');
	t.equal(bytewise.skipped, 0);

	for (const size of [2, 3, 7, 15, 16, 17, 31, 1000]) {
		const p = new FrameParser();
		const frames: Frame[] = [];
		for (let i = 0; i < stream.length; i += size) frames.push(...p.push(stream.subarray(i, i + size)));
		t.same(plain(frames), plain(sent), `chunks of ${size}`);
		t.equal(p.skipped, 0);
	}
});

t.test('a frame is returned only when complete, and its payload is a copy', async (t) => {
	const p = new FrameParser();
	const frame = encodeFrame(FrameType.reply, 9, Buffer.from('0123456789'));
	t.same(p.push(frame.subarray(0, 10)), [], 'partial header');
	t.same(p.push(frame.subarray(10, 20)), [], 'header, partial payload');
	const [f, extra] = p.push(frame.subarray(20));
	t.equal(extra, undefined);
	t.equal(f?.payload.toString(), '0123456789');
	frame.fill(0);
	t.equal(f?.payload.toString(), '0123456789', 'not a view into the input');
});

t.test('garbage before and between frames is skipped and counted', async (t) => {
	const a = encodeFrame(FrameType.reply, 1, Buffer.from('a'));
	const b = encodeFrame(FrameType.log, 0, Buffer.from('line'));
	const p = new FrameParser();
	const frames = p.push(Buffer.concat([garbage(5), a, garbage(40), b, garbage(3)]));
	t.same(
		frames.map((f) => f.payload.toString()),
		['a', 'line'],
	);
	t.equal(p.skipped, 45, 'the trailing 3 bytes may still start a header');
	t.same(p.push(garbage(13)), []);
	t.equal(p.skipped, 46, 'counted once 16 bytes are there');

	const q = new FrameParser();
	const got: Frame[] = [];
	const stream = Buffer.concat([garbage(21), Buffer.from('PVA'), a, Buffer.from('PVAGPV'), b]);
	for (const byte of stream) got.push(...q.push(Buffer.from([byte])));
	t.same(
		got.map((f) => f.payload.toString()),
		['a', 'line'],
		'partial magics resynchronise',
	);
	t.equal(q.skipped, 21 + 3 + 6);
});

t.test('a header claiming more than 4 MiB is skipped', async (t) => {
	const good = encodeFrame(FrameType.reply, 2, Buffer.from('ok'));
	const p = new FrameParser();
	t.same(plain(p.push(Buffer.concat([rawHeader({len: maxPayload + 1}), good]))), plain([{type: FrameType.reply, id: 2, payload: Buffer.from('ok')}]));
	t.equal(p.skipped, frameHeaderSize);
	const q = new FrameParser();
	t.same(q.push(Buffer.concat([rawHeader({len: 0xffffffff}), good])).length, 1);
	t.equal(q.skipped, frameHeaderSize);

	// Exactly 4 MiB is allowed.
	const big = Buffer.alloc(maxPayload, 0x5a);
	const r = new FrameParser();
	const frames = r.push(encodeFrame(FrameType.reply, 3, big));
	t.equal(frames.length, 1);
	t.equal(frames[0]?.payload.length, maxPayload);
	t.equal(r.skipped, 0);
});

t.test('a header with the wrong version is skipped', async (t) => {
	const good = encodeFrame(FrameType.reply, 4, Buffer.from('v1'));
	for (const version of [0, 2, 0xffff]) {
		const p = new FrameParser();
		const frames = p.push(Buffer.concat([rawHeader({version, len: 0}), good]));
		t.same(
			frames.map((f) => f.payload.toString()),
			['v1'],
			`version ${version}`,
		);
		t.equal(p.skipped, frameHeaderSize);
	}
});

t.test('reset() forgets a partial frame', async (t) => {
	const p = new FrameParser();
	p.push(encodeFrame(FrameType.reply, 1, Buffer.from('lost')).subarray(0, 18));
	p.reset();
	t.same(
		p.push(encodeFrame(FrameType.reply, 2, Buffer.from('kept'))).map((f) => f.id),
		[2],
	);
});

// A reply buffer of `size` bytes with `fill` applied.
function payload(size: number, fill: (b: Buffer) => void = () => undefined): Buffer {
	const b = Buffer.alloc(size);
	fill(b);
	return b;
}

t.test('decodeHello', async (t) => {
	const p = payload(120, (b) => {
		b.writeUInt16LE(1, 0);
		b.writeUInt16LE(1, 2);
		b.writeUInt32LE(8, 4);
		b.writeBigUInt64LE(0xfeedfacecafebeefn, 8);
		b.writeUInt32LE(2, 16);
		b.writeUInt32LE(2, 20);
		b.write('pvagent 0.1.0', 24, 'latin1');
		b.write('6.8.0-pvrun\x1b[31m', 56, 'latin1');
	});
	t.same(decodeHello(p), {
		version: 1,
		shmOk: true,
		nrCpus: 8,
		guestEpoch: 0xfeedfacecafebeefn,
		programs: 2,
		shmVersion: 2,
		agentVersion: 'pvagent 0.1.0',
		kernelRelease: '6.8.0-pvrun?[31m',
	});
	t.equal(decodeHello(payload(120, (b) => b.writeUInt16LE(2, 2))).shmOk, false, 'shm_ok must be exactly 1');
	t.equal(decodeHello(payload(120, () => undefined)).shmVersion, 0, 'an agent before layout v2 leaves shm_version zero');
	const long = payload(120, (b) => b.fill(0x41, 24, 120));
	t.equal(decodeHello(long).agentVersion, 'A'.repeat(32), 'agent_version bounded to its 32-byte field');
	t.equal(decodeHello(long).kernelRelease, 'A'.repeat(64), 'kernel_release bounded to its 64-byte field');
	for (const size of [0, 1, 24, 119]) t.throws(() => decodeHello(Buffer.alloc(size)), ProtocolError, `${size} bytes`);
});

t.test('decodeLoad', async (t) => {
	t.same(
		decodeLoad(
			payload(8, (b) => {
				b.writeUInt32LE(5, 0);
				b.writeUInt32LE(3, 4);
			}),
		),
		{id: 5, links: 3},
	);
	for (const size of [0, 4, 7]) t.throws(() => decodeLoad(Buffer.alloc(size)), ProtocolError, `${size} bytes`);
});

t.test('encodeLoad', async (t) => {
	const b = encodeLoad(1, 'x'.repeat(40), Buffer.from('ELF'));
	t.equal(b.length, 8 + nameLength + 3);
	t.equal(b.readUInt32LE(0), 1);
	t.equal(fixedString(b, 8, nameLength), 'x'.repeat(nameLength - 1), 'name NUL-terminated within its field');
	t.equal(b.subarray(8 + nameLength).toString(), 'ELF');
});

t.test('decodeList', async (t) => {
	const entry = (b: Buffer, i: number, id: number, name: Buffer | string, records: bigint): void => {
		const o = 4 + i * 48;
		b.writeUInt32LE(id, o);
		b.writeUInt32LE(1, o + 4);
		(typeof name === 'string' ? Buffer.from(name, 'latin1') : name).copy(b, o + 8, 0, nameLength);
		b.writeBigUInt64LE(records, o + 40);
	};
	const two = payload(4 + 2 * 48, (b) => {
		b.writeUInt32LE(2, 0);
		entry(b, 0, 10, 'affinity', 42n);
		entry(b, 1, 11, Buffer.alloc(nameLength, 0x07), 2n ** 64n - 1n);
	});
	t.same(decodeList(two), [
		{id: 10, recordType: 1, name: 'affinity', records: 42n},
		{id: 11, recordType: 1, name: '?'.repeat(nameLength), records: 2n ** 64n - 1n},
	]);
	t.same(decodeList(payload(4)), [], 'no programs');
	t.equal(decodeList(payload(4 + 64 * 48, (b) => b.writeUInt32LE(64, 0))).length, 64, '64 is the limit');
	t.throws(() => decodeList(payload(4 + 65 * 48, (b) => b.writeUInt32LE(65, 0))), ProtocolError, '65 programs');
	t.throws(() => decodeList(payload(4, (b) => b.writeUInt32LE(0xffffffff, 0))), {name: 'ProtocolError', message: /implausible/});
	t.throws(() => decodeList(payload(4 + 2 * 48 - 1, (b) => b.writeUInt32LE(2, 0))), ProtocolError, 'one byte short');
	t.throws(() => decodeList(payload(4 + 48, (b) => b.writeUInt32LE(2, 0))), ProtocolError, 'one entry short');
	for (const size of [0, 3]) t.throws(() => decodeList(Buffer.alloc(size)), ProtocolError, `${size} bytes`);
});

t.test('decodeStats', async (t) => {
	const p = payload(48, (b) => {
		for (let i = 0; i < 5; i++) b.writeBigUInt64LE(BigInt(i + 1) * 1000n, i * 8);
		b.writeUInt32LE(2, 40);
		b.writeUInt32LE(3, 44);
	});
	t.same(decodeStats(p), {records: 1000n, dropped: 2000n, kicks: 3000n, framesIn: 4000n, framesBad: 5000n, programs: 2, hostLinks: 3});
	for (const size of [0, 8, 40, 47]) t.throws(() => decodeStats(Buffer.alloc(size)), ProtocolError, `${size} bytes`);
});

t.test('decodeError', async (t) => {
	const p = Buffer.concat([payload(8, (b) => b.writeInt32LE(22, 0)), Buffer.from('invalid argument: verifier says no\n\0\0\0')]);
	t.same(decodeError(p), {errno: 22, message: 'invalid argument: verifier says no\n'});
	t.same(decodeError(payload(8, (b) => b.writeInt32LE(-1, 0))), {errno: -1, message: ''});
	const huge = Buffer.concat([payload(8), Buffer.alloc(200_000, 0x61)]);
	t.equal(decodeError(huge).message.length, 65536, 'message bounded to 64 KiB');
	for (const size of [0, 4, 7]) t.throws(() => decodeError(Buffer.alloc(size)), ProtocolError, `${size} bytes`);
});

t.test('ProtocolError', async (t) => {
	const error = t.throws(() => decodeStats(Buffer.alloc(3)));
	t.ok(error instanceof ProtocolError);
	t.ok(error instanceof Error);
	t.equal((error as Error).name, 'ProtocolError');
	t.match((error as Error).message, /stats reply: 3 bytes, need 48/);
});

t.test('fixedString bounds and sanitises', async (t) => {
	const b = Buffer.from('abc\0def\x01\x7f\xff ~ghij', 'latin1');
	t.equal(fixedString(b, 0, 16), 'abc', 'stops at NUL');
	t.equal(fixedString(b, 4, 6), 'def???', 'non-printable bytes become ?');
	t.equal(fixedString(b, 4, 100), 'def??? ~ghij', 'a field past the end stops at the end');
	t.equal(fixedString(b, 4, 2), 'de', 'bounded by length without a NUL');
	t.equal(fixedString(b, 100, 10), '', 'a field entirely past the end is empty');
	t.equal(fixedString(b, 0, 0), '');
	t.equal(fixedString(Buffer.from('\t\n\r', 'latin1'), 0, 3), '???');
	t.equal(fixedString(Buffer.from('h\u00e9llo', 'utf8'), 0, 16), 'h??llo', 'UTF-8 is not decoded');
	for (let byte = 0; byte < 256; byte++) {
		const s = fixedString(Buffer.from([byte, 0x41]), 0, 2);
		const expected = byte === 0 ? '' : byte >= 0x20 && byte <= 0x7e ? `${String.fromCharCode(byte)}A` : '?A';
		if (s !== expected) t.fail(`byte ${byte}: ${JSON.stringify(s)}`);
	}
});

const seed = fuzzSeed(0xc0ffee42);

t.test('random streams never break the parser', async (t) => {
	t.comment(`seed ${seed} (0x${seed.toString(16)}); rerun with PVRUN_TEST_SEED=${seed}`);
	const next = xorshift32(seed);
	const below = (n: number): number => next() % n;
	const chance = (p: number): boolean => next() / 2 ** 32 < p;
	const bytes = (n: number): Buffer => {
		const b = Buffer.alloc(n);
		for (let i = 0; i < n; i++) b[i] = next() & 0xff;
		return b;
	};
	const problems: string[] = [];
	let framesSeen = 0;
	let validSent = 0;
	let validReceived = 0;
	for (let iter = 0; iter < 300; iter++) {
		const parser = new FrameParser();
		// A stream of random bytes, valid frames, and headers with random (often bad) fields.
		const parts: Buffer[] = [];
		const ids = new Set<number>();
		for (let k = below(12); k >= 0; k--) {
			const choice = below(5);
			if (choice === 0) parts.push(bytes(below(200)));
			else if (choice === 1) {
				const id = 0x10000 + iter * 100 + k;
				ids.add(id);
				parts.push(encodeFrame(FrameType.reply, id, bytes(below(300))));
			} else if (choice === 2) {
				const len = [below(64), maxPayload, maxPayload + 1 + below(1000), next(), 0xffffffff][below(5)] ?? 0;
				parts.push(rawHeader({version: chance(0.5) ? protocolVersion : below(4), type: below(0x10000), id: next(), len}));
			} else if (choice === 3) parts.push(Buffer.from('PVAGPVA'.slice(0, 1 + below(7)), 'latin1'));
			else parts.push(rawHeader({len: below(32)}), bytes(below(40)));
		}
		const stream = Buffer.concat(parts);
		const frames: Frame[] = [];
		try {
			for (let off = 0; off < stream.length;) {
				const size = chance(0.3) ? 1 : 1 + below(64);
				frames.push(...parser.push(stream.subarray(off, off + size)));
				off += size;
			}
		} catch (error) {
			problems.push(`iteration ${iter}: push threw ${String(error)}`);
			continue;
		}
		framesSeen += frames.length;
		validSent += ids.size;
		validReceived += frames.filter((f) => ids.has(f.id) && f.type === FrameType.reply).length;
		for (const f of frames) {
			if (f.payload.length > maxPayload) problems.push(`iteration ${iter}: payload of ${f.payload.length} bytes`);
			if (!Number.isInteger(f.type) || f.type < 0 || f.type > 0xffff) problems.push(`iteration ${iter}: type ${f.type}`);
			if (!Number.isInteger(f.id) || f.id < 0 || f.id > 0xffffffff) problems.push(`iteration ${iter}: id ${f.id}`);
		}
		if (!Number.isSafeInteger(parser.skipped) || parser.skipped < 0 || parser.skipped > stream.length)
			problems.push(`iteration ${iter}: skipped ${parser.skipped} of ${stream.length}`);
	}
	t.comment(`${framesSeen} frames parsed; ${validReceived} of ${validSent} well-formed frames recovered`);
	t.ok(framesSeen > 0, 'some frames came through');
	t.same(problems.slice(0, 20), [], 'never throws, never an oversized payload');
});

t.test('random streams: a frame split anywhere parses the same', async (t) => {
	const next = xorshift32(seed ^ 0x9e3779b9);
	const differ: number[] = [];
	for (let iter = 0; iter < 50; iter++) {
		const sent: Frame[] = Array.from({length: 1 + (next() % 6)}, () => ({
			type: next() & 0xffff,
			id: next(),
			payload: Buffer.from(Array.from({length: next() % 100}, () => next() & 0xff)),
		}));
		// Payload bytes are never searched for headers, whatever they hold.
		const stream = Buffer.concat(sent.map((f) => encodeFrame(f.type, f.id, f.payload)));
		const p = new FrameParser();
		const got: Frame[] = [];
		for (let off = 0; off < stream.length;) {
			const size = 1 + (next() % 40);
			got.push(...p.push(stream.subarray(off, off + size)));
			off += size;
		}
		if (JSON.stringify(plain(got)) !== JSON.stringify(plain(sent)) || p.skipped !== 0) differ.push(iter);
	}
	t.same(differ, [], '50 random streams split at random points parse to the frames sent');
});

t.test('a 4 MiB frame fed in 16-byte pieces costs linear time', async (t) => {
	const payload = Buffer.alloc(maxPayload, 0x5a);
	const frame = encodeFrame(FrameType.ping, 9, payload);
	const parser = new FrameParser();
	const started = performance.now();
	let got: Frame[] = [];
	for (let i = 0; i < frame.length; i += 16) got = got.concat(parser.push(frame.subarray(i, i + 16)));
	const ms = performance.now() - started;
	t.comment(`4 MiB frame in 16-byte chunks: ${ms.toFixed(0)} ms`);
	t.equal(got.length, 1);
	t.ok(got[0]?.payload.equals(payload), 'payload intact');
	t.ok(ms < 5000, 'no quadratic copying (it took minutes before)');
});

t.test('counting KICK frames: counted, not returned, and the frames around them still are', async (t) => {
	const p = new FrameParser(true);
	const bytes = Buffer.concat([
		encodeFrame(FrameType.kick, 0),
		encodeFrame(FrameType.log, 1, Buffer.from('a')),
		...Array.from({length: 1000}, () => encodeFrame(FrameType.kick, 0)),
		encodeFrame(FrameType.reply, 7, Buffer.from('b')),
	]);
	const frames = [...p.push(bytes.subarray(0, 30)), ...p.push(bytes.subarray(30))];
	t.same(
		frames.map((f) => [f.type, f.id, f.payload.toString()]),
		[
			[FrameType.log, 1, 'a'],
			[FrameType.reply, 7, 'b'],
		],
	);
	t.equal(p.kicks, 1001);
	t.equal(new FrameParser().push(encodeFrame(FrameType.kick, 0)).length, 1, 'without counting, a KICK is a frame like any');
});
