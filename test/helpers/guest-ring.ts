// A test stand-in for the (untrusted) guest agent: a real /dev/shm area, and
// records written into its ring the way the agent writes them (or not).
import crypto from 'node:crypto';
import type {Test} from 'tap';
import {createShmArea, type ShmArea} from '../../src/shm/area.js';
import {AffinityEvent, AffinityKind, Header, Record, RecordType, recordSize, ringEntries, ringOffset} from '../../src/shm/layout.js';

// A fresh area under /dev/shm with a unique name, removed when the test ends.
export function area(t: Pick<Test, 'teardown'>, nrVcpus = 4): ShmArea {
	const a = createShmArea(`/dev/shm/pvrun-test-${process.pid}-${crypto.randomBytes(6).toString('hex')}`, nrVcpus);
	t.teardown(() => a.remove());
	return a;
}

export interface Event {
	/** Record header fields. */
	type?: number;
	len?: number;
	recordTs?: bigint;
	/** Value stored in the record's seq field (default: the correct s + 1). */
	seqField?: bigint;
	/** struct pv_affinity_event fields. */
	ts?: bigint;
	kind?: number;
	tid?: number;
	tgid?: number;
	comm?: string | Uint8Array;
	/** Up to four 64-bit mask words; bit n = vCPU n. */
	mask?: bigint[];
}

// The mask words naming exactly `vcpus`.
export function maskOf(...vcpus: number[]): bigint[] {
	const words = [0n, 0n, 0n, 0n];
	for (const v of vcpus) words[v >> 6] = (words[v >> 6] ?? 0n) | (1n << BigInt(v & 63));
	return words;
}

export const header = (a: ShmArea, field: number): bigint => a.view.getBigUint64(field, true);
export const setHeader = (a: ShmArea, field: number, value: bigint): void => {
	Atomics.store(a.u64, field / 8, value);
};

// Writes the record with sequence `s` the way the guest agent does: fields and
// payload first, then the seq field; does not move the head.
export function writeRecord(a: ShmArea, s: number, e: Event = {}): void {
	const {view} = a;
	const base = ringOffset + (s % ringEntries) * recordSize;
	new Uint8Array(view.buffer, base, recordSize).fill(0);
	view.setUint16(base + Record.type, e.type ?? RecordType.affinity, true);
	view.setUint16(base + Record.len, e.len ?? AffinityEvent.size, true);
	view.setBigUint64(base + Record.tsNs, e.recordTs ?? 1000n + BigInt(s), true);
	const p = base + Record.payload;
	view.setBigUint64(p + AffinityEvent.tsNs, e.ts ?? 5000n + BigInt(s), true);
	view.setUint32(p + AffinityEvent.kind, e.kind ?? AffinityKind.set, true);
	view.setUint32(p + AffinityEvent.tid, e.tid ?? 1234, true);
	view.setUint32(p + AffinityEvent.tgid, e.tgid ?? 1200, true);
	const comm = typeof e.comm === 'string' ? Buffer.from(e.comm, 'latin1') : (e.comm ?? Buffer.from('worker', 'latin1'));
	new Uint8Array(view.buffer, p + AffinityEvent.comm, AffinityEvent.commLength).set(comm.subarray(0, AffinityEvent.commLength));
	const mask = e.mask ?? ((e.kind ?? AffinityKind.set) === AffinityKind.set ? maskOf(0) : maskOf());
	for (let w = 0; w < AffinityEvent.maskWords; w++) view.setBigUint64(p + AffinityEvent.mask + w * 8, mask[w] ?? 0n, true);
	Atomics.store(a.u64, (base + Record.seq) / 8, e.seqField ?? BigInt(s + 1));
}

// The guest agent: appends records at its head and publishes the new head.
export class Guest {
	head = 0;
	constructor(private readonly a: ShmArea) {}

	append(...events: Event[]): void {
		for (const e of events) {
			writeRecord(this.a, this.head, e);
			this.head++;
			setHeader(this.a, Header.ringHead, BigInt(this.head));
		}
	}

	/** Moves the published head without writing records. */
	setHead(head: number | bigint): void {
		if (typeof head === 'number') this.head = head;
		setHeader(this.a, Header.ringHead, BigInt(head));
	}
}
