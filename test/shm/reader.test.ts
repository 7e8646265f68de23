// The host's reader of the shared ring, fed by a test stand-in for the
// (untrusted) guest agent writing into a real /dev/shm area: valid records
// decode, every kind of malformed record or header is skipped and counted,
// and random garbage never makes drain() throw or return an implausible record.
import t from 'tap';
import {fuzzSeed, xorshift32} from '../helpers/fuzz.js';
import type {ShmArea} from '../../src/shm/area.js';
import {Guest, area, header, maskOf, setHeader, writeRecord} from '../helpers/guest-ring.js';
import {
	AffinityEvent,
	AffinityKind,
	Header,
	RecordType,
	recordPayload,
	recordSize,
	ringEntries,
	ringOffset,
	shmMagic,
	shmVersion,
} from '../../src/shm/layout.js';
import type {DecodedRecord} from '../../src/hints/index.js';
import {emptyCounters, type ShmCounters} from '../../src/shm/counters.js';
import {RingReader} from '../../src/shm/reader.js';

const pidLimit = 2 ** 22;

// Everything except the named counters is zero.
function only(counts: Partial<ShmCounters>): ShmCounters {
	return {...emptyCounters(), ...counts};
}

t.test('valid set and exit records decode', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	const guest = new Guest(a);
	guest.append(
		{kind: AffinityKind.set, tid: 4321, tgid: 4300, comm: 'pg-worker', mask: maskOf(0, 2), ts: 777n},
		{kind: AffinityKind.exit, tid: 4321, tgid: 4300, comm: 'pg-worker', mask: maskOf(), ts: 888n},
		{kind: AffinityKind.set, tid: 1, tgid: 1, comm: 'init', mask: maskOf(3), len: recordPayload},
	);
	t.equal(reader.pending(), 3);
	const records = reader.drain();
	t.ok(
		records.every((r) => typeof r.relayUs === 'number'),
		'relay delay is a number',
	);
	t.same(
		records.map(({relayUs: _, ...r}) => r),
		[
			{type: 'affinity', seq: 0, kind: 'set', tid: 4321, tgid: 4300, comm: 'pg-worker', vcpus: [0, 2], guestTsNs: 777n},
			{type: 'affinity', seq: 1, kind: 'exit', tid: 4321, tgid: 4300, comm: 'pg-worker', vcpus: [], guestTsNs: 888n},
			{type: 'affinity', seq: 2, kind: 'set', tid: 1, tgid: 1, comm: 'init', vcpus: [3], guestTsNs: 5002n},
		],
	);
	t.same(reader.counters, only({}));
	t.equal(reader.pending(), 0);
	t.same(reader.drain(), [], 'nothing new');
	reader.heartbeat();
	t.ok(header(a, Header.hostHeartbeat) > 0n, 'heartbeat written');
});

t.test('comm is cut at NUL, bounded to 16 bytes and sanitised', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	const guest = new Guest(a);
	guest.append(
		{comm: Uint8Array.from([0x41, 0x1b, 0x5b, 0x7f, 0xff, 0x0a, 0x42, 0x00, 0x43, 0x44])},
		{comm: 'abcdefghijklmnop'}, // 16 bytes, no NUL
		{comm: Uint8Array.from([0xe2, 0x80, 0xae, 0x09, 0x20, 0x7e])}, // U+202E, tab
		{comm: new Uint8Array(16)},
	);
	const comms = reader.drain().map((r) => r.comm);
	t.same(comms, ['A?[???B', 'abcdefghijklmnop', '???? ~', '']);
});

t.test('vCPUs are limited to the VM; bits beyond count maskOutOfRange', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	const guest = new Guest(a);
	guest.append({mask: maskOf(1, 3, 63, 200)});
	t.same(
		reader.drain().map((r) => r.vcpus),
		[[1, 3]],
	);
	t.same(reader.counters, only({maskOutOfRange: 1}));
	guest.append({mask: [1n << 4n, 0n, 0n, 0n]}); // vCPU 4 on a 4-vCPU VM: only outside bits
	guest.append({kind: AffinityKind.exit, mask: maskOf(2, 255)});
	const records = reader.drain();
	t.same(
		records.map((r) => [r.kind, r.vcpus]),
		[['exit', [2]]],
		'a set naming no existing vCPU is rejected',
	);
	t.equal(reader.counters.badAffinity, 1);
	t.equal(reader.counters.maskOutOfRange, 3);
});

t.test('a set record naming only non-existent vCPUs is rejected', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	new Guest(a).append({mask: maskOf(63, 200)});
	t.same(reader.drain(), []);
	t.equal(reader.counters.badAffinity, 1);
	t.equal(header(a, Header.ringTail), 1n, 'consumed anyway');
});

t.test('a 256-vCPU VM gets every mask bit, ascending', async (t) => {
	const a = area(t, 256);
	const reader = new RingReader(a);
	const all = (1n << 64n) - 1n;
	new Guest(a).append({mask: [all, all, all, all]}, {mask: maskOf(255, 64, 0, 191)});
	const records = reader.drain();
	t.same(
		records[0]?.vcpus,
		Array.from({length: 256}, (_, i) => i),
	);
	t.same(records[1]?.vcpus, [0, 64, 191, 255]);
	t.same(reader.counters, only({}));
});

t.test('bad magic or version is counted and the header restored', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	const guest = new Guest(a);
	guest.append({});
	a.view.setUint32(Header.magic, 0xdeadbeef, true);
	a.view.setUint32(Header.nrVcpus, 200, true);
	a.view.setUint32(Header.ringEntries, 7, true);
	t.equal(reader.drain().length, 1, 'records still read after restoring');
	t.equal(reader.counters.badHeader, 1);
	t.equal(a.view.getUint32(Header.magic, true), shmMagic);
	t.equal(a.view.getUint32(Header.nrVcpus, true), 4);
	t.equal(a.view.getUint32(Header.ringEntries, true), ringEntries);

	guest.append({});
	a.view.setUint16(Header.version, shmVersion + 1, true);
	t.equal(reader.drain().length, 1);
	t.equal(reader.counters.badHeader, 2);
	t.equal(a.view.getUint16(Header.version, true), shmVersion);

	a.view.setUint16(Header.version, 0, true);
	a.view.setUint32(Header.magic, 0, true);
	t.same(reader.drain(), []);
	t.equal(reader.counters.badHeader, 3, 'one count per drain');
	t.equal(a.view.getUint32(Header.magic, true), shmMagic);
	t.equal(a.view.getUint16(Header.version, true), shmVersion);
	t.equal(reader.drain().length, 0);
	t.equal(reader.counters.badHeader, 3, 'a restored header is not counted again');
});

t.test('malformed records are skipped and counted, the rest decoded', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	const guest = new Guest(a);
	guest.append(
		{tid: 10}, //                                     0 ok
		{seqField: 0n}, //                                1 never written (torn: seq not yet stored)
		{seqField: 2n + BigInt(ringEntries) + 1n}, //     2 from a later lap
		{seqField: 3n}, //                                3 stale (seq - 1 + 1 - 1)
		{len: recordPayload + 1}, //                      4 too long
		{len: 0xffff}, //                                 5 too long
		{type: 2}, //                                     6 unknown type
		{type: 0}, //                                     7 unknown type
		{tid: 0}, //                                      8
		{tid: pidLimit + 1}, //                           9
		{tid: 0xffffffff}, //                            10
		{tgid: 0}, //                                    11
		{tgid: pidLimit + 1}, //                         12
		{kind: 7}, //                                    13
		{kind: 0}, //                                    14
		{len: AffinityEvent.size - 1}, //                15 payload too short for the event
		{tid: 11, len: recordPayload}, //                16 ok
	);
	const records = reader.drain();
	t.same(
		records.map((r) => [r.seq, r.tid]),
		[
			[0, 10],
			[16, 11],
		],
	);
	t.same(reader.counters, only({badSeq: 3, badLength: 2, unknownType: 2, badAffinity: 8}));
	t.equal(header(a, Header.ringTail), 17n, 'bad records are consumed too');
});

t.test('tids up to PID_MAX_LIMIT', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	new Guest(a).append({tid: pidLimit - 1, tgid: pidLimit - 1}, {tid: pidLimit, tgid: 1});
	const records = reader.drain();
	t.same(records.map((r) => r.tid).slice(0, 1), [pidLimit - 1], 'the largest possible Linux tid is accepted');
	// Linux pids are < PID_MAX_LIMIT (2^22).
	t.equal(records.length, 1, 'tid 2^22 (no Linux thread can have it) is rejected');
});

t.test('head moved backwards: counted, no records, tail follows', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	const guest = new Guest(a);
	guest.append({}, {}, {}, {}, {});
	t.equal(reader.drain().length, 5);
	guest.setHead(2);
	t.same(reader.drain(), []);
	t.equal(reader.counters.headBackwards, 1);
	t.equal(header(a, Header.ringTail), 2n);
	t.equal(reader.pending(), 0);
	guest.append({tid: 77});
	t.same(
		reader.drain().map((r) => [r.seq, r.tid]),
		[[2, 77]],
		'reading resumes from the new head',
	);
	t.equal(reader.counters.headBackwards, 1);
});

t.test('a flooded ring: overrun counted, at most ringEntries records', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	const guest = new Guest(a);
	const total = 3 * ringEntries - 72;
	for (let s = 0; s < total; s++) guest.append({tid: s + 1});
	t.equal(reader.pending(), ringEntries);
	const records = reader.drain();
	t.equal(records.length, ringEntries);
	t.equal(reader.counters.overrun, total - ringEntries);
	t.equal(records[0]?.seq, total - ringEntries, 'the newest ringEntries records');
	t.equal(records.at(-1)?.seq, total - 1);
	t.ok(records.every((r, i) => r.seq === total - ringEntries + i && r.tid === r.seq + 1));
	t.equal(header(a, Header.ringTail), BigInt(total));
	t.equal(reader.counters.badSeq, 0);
});

t.test('a head far ahead with nothing written: bounded work', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	const guest = new Guest(a);
	guest.append({}, {});
	guest.setHead(1e12);
	const records = reader.drain();
	t.ok(records.length <= ringEntries);
	t.same(records, [], 'slots hold older sequences');
	t.equal(reader.counters.overrun, 1e12 - ringEntries);
	t.equal(reader.counters.badSeq, ringEntries);
	t.equal(header(a, Header.ringTail), BigInt(1e12));
});

t.test('drain(limit) consumes at most limit records', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	const guest = new Guest(a);
	guest.append({}, {}, {}, {}, {});
	t.same(
		reader.drain(2).map((r) => r.seq),
		[0, 1],
	);
	t.equal(header(a, Header.ringTail), 2n);
	t.equal(reader.pending(), 3);
	t.same(
		reader.drain(10).map((r) => r.seq),
		[2, 3, 4],
	);
	t.equal(header(a, Header.ringTail), 5n);
});

t.test('implausible heads (2^52 and up) are badHeader, no records, no throw; the head is put back at the tail', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	const guest = new Guest(a);
	guest.append({}, {});
	for (const head of [2n ** 52n, 2n ** 52n + 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n]) {
		guest.setHead(head);
		t.same(reader.drain(), [], `head ${head}`);
		t.equal(header(a, Header.ringTail), 0n, 'tail unchanged');
		t.equal(header(a, Header.ringHead), 0n, 'the head put back at the tail');
	}
	t.equal(reader.counters.badHeader, 5, 'each counted once');
	t.equal(reader.counters.overrun, 0);
	t.equal(reader.counters.headBackwards, 0);
	t.equal(reader.pending(), 0);
	t.equal(reader.counters.badHeader, 5, 'a repaired head is not counted again');
	guest.setHead(2);
	t.equal(reader.drain().length, 2, 'a sane head is read again');
});

t.test('a head of exactly 2^52, seen by pending(): repaired, and the records the agent writes next are read', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	const guest = new Guest(a);
	guest.append({}, {}, {});
	t.equal(reader.drain().length, 3);
	guest.setHead(2n ** 52n);
	t.equal(reader.pending(), 0, 'nothing to read');
	t.equal(reader.counters.badHeader, 1);
	// The agent appends at the head it reads back from the area.
	guest.head = Number(header(a, Header.ringHead));
	t.equal(guest.head, 3, 'at the tail');
	guest.append({tid: 90});
	t.equal(reader.pending(), 1);
	t.same(
		reader.drain().map((r) => [r.seq, r.tid]),
		[[3, 90]],
		'hints resume',
	);
	t.equal(reader.counters.badHeader, 1);
});

t.test('a head moved back by 7, seen by pending(): counted once, and the records written from there are read', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	const guest = new Guest(a);
	for (let i = 0; i < 10; i++) guest.append({tid: 100 + i});
	t.equal(reader.drain().length, 10);
	guest.setHead(3);
	// How the engine polls: pending() first, drain() only when something waits.
	t.equal(reader.pending(), 0);
	t.equal(reader.counters.headBackwards, 1, 'counted');
	t.equal(header(a, Header.ringTail), 3n, 'the tail follows the head');
	guest.append({tid: 77}, {tid: 78});
	t.equal(reader.pending(), 2, 'the new records wait');
	t.same(
		reader.drain().map((r) => [r.seq, r.tid]),
		[
			[3, 77],
			[4, 78],
		],
		'and are read, none lost',
	);
	t.equal(reader.counters.headBackwards, 1, 'counted once');
});

t.test('a scribbled header, tail or epoch is restored on every poll, even while the head is invalid', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	const guest = new Guest(a);
	guest.append({}, {});
	t.equal(reader.drain().length, 2);
	a.view.setUint32(Header.magic, 0xdeadbeef, true);
	guest.setHead(2n ** 60n);
	t.equal(reader.pending(), 0);
	t.equal(a.view.getUint32(Header.magic, true), shmMagic, 'magic restored by pending()');
	t.equal(reader.counters.badHeader, 2, 'the header and the head, once each');
	// Fields the guest has no business writing, one at a time: each found and rewritten.
	const scribbles: Array<[string, () => void, () => unknown, unknown]> = [
		['nr_vcpus', () => a.view.setUint32(Header.nrVcpus, 200, true), () => a.view.getUint32(Header.nrVcpus, true), 4],
		['ring_entries', () => a.view.setUint32(Header.ringEntries, 7, true), () => a.view.getUint32(Header.ringEntries, true), ringEntries],
		['host_epoch', () => a.view.setBigUint64(Header.hostEpoch, 12345n, true), () => a.view.getBigUint64(Header.hostEpoch, true), a.hostEpoch],
		['ring_tail', () => setHeader(a, Header.ringTail, 999n), () => header(a, Header.ringTail), 2n],
	];
	for (const [name, scribble, read, want] of scribbles) {
		const before = reader.counters.badHeader;
		scribble();
		t.equal(reader.pending(), 0, name);
		t.equal(read(), want, `${name} rewritten`);
		t.equal(reader.counters.badHeader, before + 1, `${name} counted once`);
	}
	guest.append({tid: 55});
	t.same(
		reader.drain().map((r) => r.tid),
		[55],
		'hints resume',
	);
});

t.test('guest ring_lost increases are counted as guestLost', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	reader.drain();
	t.equal(reader.counters.guestLost, 0);
	setHeader(a, Header.ringLost, 5n);
	reader.drain();
	t.equal(reader.counters.guestLost, 5);
	setHeader(a, Header.ringLost, 12n);
	reader.drain();
	reader.drain();
	t.equal(reader.counters.guestLost, 12, 'delta, counted once');
	setHeader(a, Header.ringLost, 0n); // agent restarted, its counter too
	reader.drain();
	t.equal(reader.counters.guestLost, 12, 'a decrease is not a loss');
	setHeader(a, Header.ringLost, 3n);
	reader.drain();
	t.equal(reader.counters.guestLost, 15);
	setHeader(a, Header.ringLost, 2n ** 64n - 1n);
	reader.drain();
	t.equal(reader.counters.guestLost, 15 + 2 ** 52, 'one huge jump is capped at 2^52');
});

t.test('a hostile guest cannot push counters past exact integers', async (t) => {
	// Each drain caps one jump (ring_lost, and the head's overrun) near 2^52, but
	// nothing bounds the sum: a guest that alternates ring_lost 0 / 2^64-1, or
	// ring_head 0 / 2^52-1, gets the counters past 2^53 in a few drains, after
	// which they would stop being exact.
	const a = area(t, 4);
	const reader = new RingReader(a);
	for (let i = 0; i < 3; i++) {
		setHeader(a, Header.ringLost, 2n ** 64n - 1n);
		setHeader(a, Header.ringHead, 2n ** 52n - 1n);
		reader.drain();
		setHeader(a, Header.ringLost, 0n);
		setHeader(a, Header.ringHead, 0n);
		reader.drain();
	}
	t.equal(reader.counters.headBackwards, 3);
	t.ok(Number.isSafeInteger(reader.counters.guestLost), `guestLost ${reader.counters.guestLost} is exact`);
	t.ok(Number.isSafeInteger(reader.counters.overrun), `overrun ${reader.counters.overrun} is exact`);
});

t.test('guest_epoch changes count agent restarts; the first epoch does not', async (t) => {
	const a = area(t, 4);
	const reader = new RingReader(a);
	reader.drain();
	setHeader(a, Header.guestEpoch, 0x1111n);
	reader.drain();
	t.equal(reader.counters.agentRestarts, 0, 'first epoch seen');
	reader.drain();
	t.equal(reader.counters.agentRestarts, 0, 'unchanged');
	setHeader(a, Header.guestEpoch, 0x2222n);
	reader.drain();
	t.equal(reader.counters.agentRestarts, 1);
	setHeader(a, Header.guestEpoch, 0x3333n);
	reader.drain();
	reader.drain();
	t.equal(reader.counters.agentRestarts, 2);
});

t.test('ring_tail written back equals the records consumed', async (t) => {
	const a = area(t, 4);
	setHeader(a, Header.ringTail, 99n);
	const reader = new RingReader(a);
	t.equal(header(a, Header.ringTail), 0n, 'reset on construction');
	const guest = new Guest(a);
	guest.append({}, {}, {});
	reader.drain();
	t.equal(header(a, Header.ringTail), 3n);
	guest.append({}, {tid: 0}, {type: 9}, {});
	setHeader(a, Header.ringTail, 12345n); // the guest scribbles on it
	t.equal(reader.drain().length, 2);
	t.equal(header(a, Header.ringTail), 7n);
	reader.drain();
	t.equal(header(a, Header.ringTail), 7n, 'an empty drain keeps it');
	for (let i = 0; i < ringEntries + 10; i++) guest.append({});
	t.equal(reader.drain().length, ringEntries, 'a wrapped ring');
	t.equal(header(a, Header.ringTail), BigInt(7 + ringEntries + 10));
	t.equal(reader.counters.overrun, 10);
});

const seed = fuzzSeed(0x5eed1234);

t.test('random guest writes never break drain()', async (t) => {
	t.comment(`seed ${seed} (0x${seed.toString(16)}); rerun with PVRUN_TEST_SEED=${seed}`);
	const next = xorshift32(seed);
	const below = (n: number): number => next() % n;
	const chance = (p: number): boolean => next() / 2 ** 32 < p;
	const u64 = (): bigint => (BigInt(next()) << 32n) | BigInt(next());
	const randomBytes = (into: Uint8Array): void => {
		for (let i = 0; i < into.length; i += 4) {
			const r = next();
			for (let k = 0; k < 4 && i + k < into.length; k++) into[i + k] = (r >>> (8 * k)) & 0xff;
		}
	};
	const plausibleId = (): number => [0, 1, 2, below(pidLimit) + 1, pidLimit - 1, pidLimit, pidLimit + 1, next()][below(8)] ?? 1;

	const areas = [1, 4, 64, 256].map((n) => area(t, n));
	const readers = areas.map((a) => new RingReader(a));
	const problems: string[] = [];
	const counterProblems = new Set<string>();
	let returned = 0;
	for (let iter = 0; iter < 300; iter++) {
		const which = below(areas.length);
		const a = areas[which] as ShmArea;
		if (chance(0.1)) readers[which] = new RingReader(a);
		const reader = readers[which] as RingReader;
		const tailBefore = Number(header(a, Header.ringTail));

		// Guest-owned header fields: random bytes, then a head from some distribution.
		randomBytes(new Uint8Array(a.view.buffer, Header.guestEpoch, Header.ringTail - Header.guestEpoch));
		const headChoices = [
			(): bigint => BigInt(tailBefore + below(ringEntries + 1)),
			(): bigint => BigInt(tailBefore + below(4 * ringEntries)),
			(): bigint => BigInt(Math.max(0, tailBefore - below(50))),
			(): bigint => BigInt(below(1 << 20)),
			(): bigint => 2n ** 52n - BigInt(below(3 * ringEntries)),
			(): bigint => 2n ** 52n + BigInt(below(3)),
			(): bigint => u64(),
		];
		const head = (headChoices[below(headChoices.length)] as () => bigint)();
		setHeader(a, Header.ringHead, head);
		if (chance(0.05)) a.view.setUint32(Header.magic, next(), true);
		if (chance(0.05)) a.view.setUint16(Header.version, next() & 0xffff, true);
		if (chance(0.05)) setHeader(a, Header.ringTail, u64());

		// The ring: sometimes pure noise, sometimes random-but-plausible records for the sequences about to be read.
		if (chance(0.4)) randomBytes(new Uint8Array(a.view.buffer, ringOffset, ringEntries * recordSize));
		if (head <= 2n ** 52n && chance(0.7)) {
			const h = Number(head);
			const from = Math.max(0, h - ringEntries);
			for (let s = from; s < h; s++) {
				if (chance(0.1)) continue;
				writeRecord(a, s, {
					type: chance(0.9) ? RecordType.affinity : below(4),
					len: chance(0.8) ? AffinityEvent.size + below(recordPayload - AffinityEvent.size + 1) : below(0x10000),
					seqField: chance(0.9) ? BigInt(s + 1) : BigInt(s + 1 + (chance(0.5) ? ringEntries : -1)),
					ts: u64(),
					kind: chance(0.9) ? 1 + below(2) : next(),
					tid: plausibleId(),
					tgid: plausibleId(),
					comm: ((): Uint8Array => {
						const c = new Uint8Array(16);
						randomBytes(c);
						return c;
					})(),
					mask: [u64(), u64(), u64(), u64()].map((w) => (chance(0.5) ? w & BigInt(next()) : chance(0.5) ? 0n : w)),
				});
			}
		}

		let records: DecodedRecord[];
		const limit = chance(0.2) ? below(ringEntries + 100) : ringEntries;
		try {
			records = reader.drain(limit);
		} catch (error) {
			problems.push(`iteration ${iter}: drain threw ${String(error)}`);
			continue;
		}
		returned += records.length;
		const nrVcpus = a.nrVcpus;
		if (records.length > ringEntries) problems.push(`iteration ${iter}: ${records.length} records`);
		if (records.length > limit) problems.push(`iteration ${iter}: ${records.length} records for limit ${limit}`);
		let lastSeq = -1;
		for (const r of records) {
			const bad: string[] = [];
			if (!Number.isInteger(r.tid) || r.tid < 1 || r.tid > pidLimit) bad.push('tid');
			if (!Number.isInteger(r.tgid) || r.tgid < 1 || r.tgid > pidLimit) bad.push('tgid');
			if (r.kind !== 'set' && r.kind !== 'exit') bad.push('kind');
			if (r.kind === 'set' && r.vcpus.length === 0) bad.push('empty set');
			if (!r.vcpus.every((v, i) => Number.isInteger(v) && v >= 0 && v < nrVcpus && (i === 0 || v > (r.vcpus[i - 1] ?? -1)))) bad.push('vcpus');
			if (r.comm.length > 16 || !/^[\x20-\x7e]*$/.test(r.comm)) bad.push('comm');
			if (!Number.isSafeInteger(r.seq) || r.seq <= lastSeq || BigInt(r.seq) >= head) bad.push('seq');
			if (bad.length) problems.push(`iteration ${iter}: record ${JSON.stringify({...r, guestTsNs: String(r.guestTsNs)})} bad ${bad.join(',')}`);
			lastSeq = r.seq;
		}
		if (a.view.getUint32(Header.magic, true) !== shmMagic || a.view.getUint16(Header.version, true) !== shmVersion)
			problems.push(`iteration ${iter}: header not restored`);
		const tailAfter = header(a, Header.ringTail);
		if (head <= 2n ** 52n && tailAfter > head) problems.push(`iteration ${iter}: tail ${tailAfter} beyond head ${head}`);
		for (const [name, value] of Object.entries(reader.counters)) {
			if (!Number.isInteger(value) || value < 0) problems.push(`iteration ${iter}: counter ${name} = ${value}`);
			else if (!Number.isSafeInteger(value)) counterProblems.add(name);
		}
	}
	t.comment(`${returned} records returned over 300 drains`);
	t.ok(returned > 0, 'some random-but-plausible records got through');
	t.same(problems.slice(0, 20), [], 'no throw, every record plausible');
	// See 'a hostile guest cannot push counters past exact integers' above.
	t.same([...counterProblems], [], 'counters stay exact integers');
});
