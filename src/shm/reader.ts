// Where records are decoded: drain the shared ring written by the (untrusted)
// guest. Every field is validated and bounded; anything odd is skipped and
// counted, never thrown, so a hostile guest can only cost itself its hints.
import {AffinityEvent, AffinityKind, Header, Record, RecordType, recordPayload, recordSize, ringEntries, ringOffset, shmMagic, shmVersion} from './layout.js';
import type {ShmArea} from './area.js';

export interface AffinityRecord {
	type: 'affinity';
	seq: number;
	kind: 'set' | 'exit';
	tid: number;
	tgid: number;
	comm: string;
	/** vCPUs in the thread's mask that exist in this VM, ascending. */
	vcpus: number[];
	guestTsNs: bigint;
	/** Guest time from the BPF program seeing the change to the agent relaying it, µs (diagnostic). */
	relayUs: number;
}

export type DecodedRecord = AffinityRecord;

/** Why records or header values were rejected; reported in the event log. */
export interface ShmCounters {
	badHeader: number;
	headBackwards: number;
	overrun: number;
	badSeq: number;
	badLength: number;
	unknownType: number;
	badAffinity: number;
	maskOutOfRange: number;
	guestLost: number;
	agentRestarts: number;
}

export function emptyCounters(): ShmCounters {
	return {badHeader: 0, headBackwards: 0, overrun: 0, badSeq: 0, badLength: 0, unknownType: 0, badAffinity: 0, maskOutOfRange: 0, guestLost: 0, agentRestarts: 0};
}

/** Counters stop at the largest exact integer instead of losing precision. */
function saturatingAdd(a: number, b: number): number {
	return Math.min(a + b, Number.MAX_SAFE_INTEGER);
}

/** Largest sequence we accept: beyond it the guest is lying (and Number loses precision). */
const maxSeq = 2 ** 52;

export class RingReader {
	readonly counters = emptyCounters();
	private tail = 0;
	private lastLost = 0n;
	private lastEpoch = 0n;

	constructor(private readonly area: ShmArea) {
		this.tail = 0;
		this.writeTail();
	}

	/** Records waiting (as the guest claims), without consuming them. */
	pending(): number {
		const head = this.readHead();
		return head === undefined ? 0 : Math.max(0, Math.min(head - this.tail, ringEntries));
	}

	/** Ask the guest agent to send a KICK frame on its next record. */
	armKick(): void {
		Atomics.store(this.area.u32, Header.kickWanted / 4, 1);
	}

	/** Read and validate everything the guest wrote since the last drain. */
	drain(limit = ringEntries): DecodedRecord[] {
		limit = Number.isInteger(limit) && limit > 0 ? Math.min(limit, ringEntries) : ringEntries;
		const {view} = this.area;
		if (view.getUint32(Header.magic, true) !== shmMagic || view.getUint16(Header.version, true) !== shmVersion) {
			this.counters.badHeader++;
			this.area.restoreHeader();
		}
		this.checkEpochAndLoss();
		const head = this.readHead();
		if (head === undefined) return [];
		if (head < this.tail) {
			// The guest moved its head backwards: start over from where it is now.
			this.counters.headBackwards++;
			this.tail = head;
			this.writeTail();
			return [];
		}
		if (head - this.tail > ringEntries) {
			this.counters.overrun = saturatingAdd(this.counters.overrun, head - this.tail - ringEntries);
			this.tail = head - ringEntries;
		}
		const out: DecodedRecord[] = [];
		const end = Math.min(head, this.tail + limit);
		for (let seq = this.tail; seq < end; seq++) {
			const rec = this.decodeAt(seq);
			if (rec) out.push(rec);
		}
		this.tail = end;
		this.writeTail();
		view.setBigUint64(Header.hostHeartbeat, process.hrtime.bigint(), true);
		return out;
	}

	/** The guest's head, or undefined when it is implausible. */
	private readHead(): number | undefined {
		const head = Atomics.load(this.area.u64, Header.ringHead / 8);
		if (head > BigInt(maxSeq)) {
			this.counters.badHeader++;
			return undefined;
		}
		return Number(head);
	}

	private writeTail(): void {
		Atomics.store(this.area.u64, Header.ringTail / 8, BigInt(this.tail));
	}

	/** Count records the guest dropped and agent restarts (epoch changes). */
	private checkEpochAndLoss(): void {
		const lost = Atomics.load(this.area.u64, Header.ringLost / 8);
		if (lost > this.lastLost) this.counters.guestLost = saturatingAdd(this.counters.guestLost, Number(lost - this.lastLost > BigInt(maxSeq) ? BigInt(maxSeq) : lost - this.lastLost));
		this.lastLost = lost;
		const epoch = Atomics.load(this.area.u64, Header.guestEpoch / 8);
		if (epoch !== this.lastEpoch) {
			if (this.lastEpoch !== 0n) this.counters.agentRestarts++;
			this.lastEpoch = epoch;
		}
	}

	/** Decode the record with sequence `seq`, or undefined (counted) if invalid. */
	private decodeAt(seq: number): DecodedRecord | undefined {
		const {view} = this.area;
		const base = ringOffset + (seq % ringEntries) * recordSize;
		if (Atomics.load(this.area.u64, (base + Record.seq) / 8) !== BigInt(seq + 1)) {
			this.counters.badSeq++;
			return undefined;
		}
		const type = view.getUint16(base + Record.type, true);
		const len = view.getUint16(base + Record.len, true);
		if (len > recordPayload) {
			this.counters.badLength++;
			return undefined;
		}
		if (type !== RecordType.affinity) {
			this.counters.unknownType++;
			return undefined;
		}
		return this.decodeAffinity(seq, base + Record.payload, len, view.getBigUint64(base + Record.tsNs, true));
	}

	/** struct pv_affinity_event → AffinityRecord, with the mask cut to this VM's vCPUs. */
	private decodeAffinity(seq: number, p: number, len: number, relayTsNs: bigint): AffinityRecord | undefined {
		const {view, nrVcpus} = this.area;
		const kindRaw = view.getUint32(p + AffinityEvent.kind, true);
		const tid = view.getUint32(p + AffinityEvent.tid, true);
		const tgid = view.getUint32(p + AffinityEvent.tgid, true);
		const kind = kindRaw === AffinityKind.set ? 'set' : kindRaw === AffinityKind.exit ? 'exit' : undefined;
		// Linux pids are below 2^22 (PID_MAX_LIMIT).
		if (len < AffinityEvent.size || !kind || tid === 0 || tid >= 1 << 22 || tgid === 0 || tgid >= 1 << 22) {
			this.counters.badAffinity++;
			return undefined;
		}
		const vcpus: number[] = [];
		let outside = false;
		for (let w = 0; w < AffinityEvent.maskWords; w++) {
			let word = view.getBigUint64(p + AffinityEvent.mask + w * 8, true);
			for (let bit = 0; word !== 0n; bit++, word >>= 1n) {
				if ((word & 1n) === 0n) continue;
				const cpu = w * 64 + bit;
				if (cpu < nrVcpus) vcpus.push(cpu);
				else outside = true;
			}
		}
		if (outside) this.counters.maskOutOfRange++;
		if (kind === 'set' && vcpus.length === 0) {
			this.counters.badAffinity++;
			return undefined;
		}
		const guestTsNs = view.getBigUint64(p + AffinityEvent.tsNs, true);
		const comm = Buffer.from(view.buffer, p + AffinityEvent.comm, AffinityEvent.commLength);
		const end = comm.indexOf(0);
		return {
			type: 'affinity',
			seq,
			kind,
			tid,
			tgid,
			comm: comm.subarray(0, end === -1 ? comm.length : end).toString('latin1').replace(/[^\x20-\x7e]/g, '?'),
			vcpus,
			guestTsNs,
			relayUs: relayTsNs >= guestTsNs && relayTsNs - guestTsNs < 10n ** 12n ? Number(relayTsNs - guestTsNs) / 1000 : -1,
		};
	}
}
