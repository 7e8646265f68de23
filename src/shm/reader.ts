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
	return {
		badHeader: 0,
		headBackwards: 0,
		overrun: 0,
		badSeq: 0,
		badLength: 0,
		unknownType: 0,
		badAffinity: 0,
		maskOutOfRange: 0,
		guestLost: 0,
		agentRestarts: 0,
	};
}

/**
 * A little-endian u64 at byte `offset` as a Number, from two 32-bit atomic
 * loads (no BigInt on the hot path); values past 2^53 come out inexact, and
 * every caller bounds them far below that.
 */
function loadU64(u32: Uint32Array, offset: number): number {
	const i = offset / 4;
	return Atomics.load(u32, i + 1) * 2 ** 32 + Atomics.load(u32, i);
}

/** Store a Number (< 2^53) as a little-endian u64 with two 32-bit atomic stores, high half first. */
function storeU64(u32: Uint32Array, offset: number, value: number): void {
	const i = offset / 4;
	Atomics.store(u32, i + 1, Math.floor(value / 2 ** 32));
	Atomics.store(u32, i, value >>> 0);
}

/** Counters stop at the largest exact integer instead of losing precision. */
function saturatingAdd(a: number, b: number): number {
	return Math.min(a + b, Number.MAX_SAFE_INTEGER);
}

/** Largest sequence we accept: beyond it the guest is lying (and Number loses precision). */
const maxSeq = 2 ** 52;

export class RingReader {
	readonly counters = emptyCounters();
	private nextSeq = 0;
	private lastLost = 0;
	private lastEpoch = 0;

	constructor(private readonly area: ShmArea) {
		this.nextSeq = 0;
		this.writeTail();
	}

	/** Sequence of the next record to read. */
	get tail(): number {
		return this.nextSeq;
	}

	/** Records waiting (as the guest claims), without consuming them. */
	pending(): number {
		const head = this.readHead();
		return head === undefined ? 0 : Math.max(0, Math.min(head - this.nextSeq, ringEntries));
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
		if (head < this.nextSeq) {
			// The guest moved its head backwards: start over from where it is now.
			this.counters.headBackwards++;
			this.nextSeq = head;
			this.writeTail();
			return [];
		}
		if (head - this.nextSeq > ringEntries) {
			this.counters.overrun = saturatingAdd(this.counters.overrun, head - this.nextSeq - ringEntries);
			this.nextSeq = head - ringEntries;
		}
		const out: DecodedRecord[] = [];
		const end = Math.min(head, this.nextSeq + limit);
		for (let seq = this.nextSeq; seq < end; seq++) {
			const rec = this.decodeAt(seq);
			if (rec) out.push(rec);
		}
		this.nextSeq = end;
		this.writeTail();
		return out;
	}

	/**
	 * Start over from where the guest's head is now, taking the loss counter
	 * and epoch as they are: after the area was restored from a saved VM
	 * (virsh managedsave, migration), its ring holds the old session's
	 * records, which another pvrun already acted on.
	 */
	skipToHead(): void {
		const head = this.readHead();
		if (head !== undefined) this.nextSeq = head;
		this.writeTail();
		this.lastLost = loadU64(this.area.u32, Header.ringLost);
		this.lastEpoch = loadU64(this.area.u32, Header.guestEpoch);
	}

	/** Record that the host is alive (guest tools can read it); called off the hot path. */
	heartbeat(): void {
		this.area.view.setBigUint64(Header.hostHeartbeat, process.hrtime.bigint(), true);
	}

	/** The guest's head, or undefined when it is implausible. */
	private readHead(): number | undefined {
		const head = loadU64(this.area.u32, Header.ringHead);
		if (head > maxSeq) {
			this.counters.badHeader++;
			return undefined;
		}
		return head;
	}

	private writeTail(): void {
		storeU64(this.area.u32, Header.ringTail, this.nextSeq);
	}

	/** Count records the guest dropped and agent restarts (epoch changes). */
	private checkEpochAndLoss(): void {
		const lost = loadU64(this.area.u32, Header.ringLost);
		if (lost > this.lastLost) this.counters.guestLost = saturatingAdd(this.counters.guestLost, Math.min(lost - this.lastLost, maxSeq));
		this.lastLost = lost;
		const epoch = loadU64(this.area.u32, Header.guestEpoch);
		if (epoch !== this.lastEpoch) {
			if (this.lastEpoch !== 0) this.counters.agentRestarts++;
			this.lastEpoch = epoch;
		}
	}

	/** Decode the record with sequence `seq`, or undefined (counted) if invalid. */
	private decodeAt(seq: number): DecodedRecord | undefined {
		const {view} = this.area;
		const base = ringOffset + (seq % ringEntries) * recordSize;
		if (loadU64(this.area.u32, base + Record.seq) !== seq + 1) {
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

	/** A NUL-terminated 16-byte name, printable ASCII kept, everything else as '?'. */
	private decodeComm(offset: number): string {
		let comm = '';
		for (let i = 0; i < AffinityEvent.commLength; i++) {
			const c = this.area.view.getUint8(offset + i);
			if (c === 0) break;
			comm += c >= 0x20 && c <= 0x7e ? String.fromCharCode(c) : '?';
		}
		return comm;
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
		// The mask as 32-bit halves, lowest first; each set bit from the bottom up.
		for (let w = 0; w < AffinityEvent.maskWords * 2; w++) {
			let word = view.getUint32(p + AffinityEvent.mask + w * 4, true);
			while (word !== 0) {
				const bit = 31 - Math.clz32(word & -word);
				word = (word & (word - 1)) >>> 0;
				const cpu = w * 32 + bit;
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
		return {
			type: 'affinity',
			seq,
			kind,
			tid,
			tgid,
			comm: this.decodeComm(p + AffinityEvent.comm),
			vcpus,
			guestTsNs,
			relayUs: relayTsNs >= guestTsNs && relayTsNs - guestTsNs < 10n ** 12n ? Number(relayTsNs - guestTsNs) / 1000 : -1,
		};
	}
}
