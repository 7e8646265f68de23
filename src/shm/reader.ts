// Where records are decoded: drain the shared ring written by the (untrusted)
// guest. Every field is validated and bounded; anything odd is skipped and
// counted, never thrown, so a hostile guest can only cost itself its hints.
import {byRecordType, type DecodedRecord} from '../hints/index.js';
import {emptyCounters, saturatingAdd} from './counters.js';
import {Header, Record, recordPayload, recordSize, ringEntries, ringOffset} from './layout.js';
import type {ShmArea} from './area.js';

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

/** Heads from here on are implausible: the guest is lying (and Number loses precision past 2^53). */
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

	/** Records waiting (as the guest claims), without consuming them; repairs the area first (see check). */
	pending(): number {
		const head = this.check();
		return head === undefined ? 0 : Math.min(head - this.nextSeq, ringEntries);
	}

	/** Ask the guest agent to send a KICK frame on its next record. */
	armKick(): void {
		Atomics.store(this.area.u32, Header.kickWanted / 4, 1);
	}

	/** Read and validate everything the guest wrote since the last drain. */
	drain(limit = ringEntries): DecodedRecord[] {
		limit = Number.isInteger(limit) && limit > 0 ? Math.min(limit, ringEntries) : ringEntries;
		const head = this.check();
		if (head === undefined || head === this.nextSeq) return [];
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

	/** The head as the guest published it now, unchecked (for diagnostics). */
	get publishedHead(): number {
		return loadU64(this.area.u32, Header.ringHead);
	}

	/**
	 * Start over from where the guest's head is now, taking the loss counter
	 * and epoch as they are: after the area was restored from a saved VM
	 * (virsh managedsave, migration), its ring holds the old session's
	 * records, which another pvrun already acted on.
	 */
	skipToHead(): void {
		const head = loadU64(this.area.u32, Header.ringHead);
		if (head < maxSeq) this.nextSeq = head;
		this.writeTail();
		this.lastLost = loadU64(this.area.u32, Header.ringLost);
		this.lastEpoch = loadU64(this.area.u32, Header.guestEpoch);
	}

	/** Record that the host is alive (guest tools can read it); called off the hot path. */
	heartbeat(): void {
		this.area.view.setBigUint64(Header.hostHeartbeat, process.hrtime.bigint(), true);
	}

	/**
	 * Everything a poll relies on, checked on every poll (pending() and drain()), each fault
	 * counted when found and repaired at once, so that hints resume as soon as the guest
	 * writes sane records again: a host-owned header field changed (all are rewritten); the
	 * tail changed (rewritten); the head at 2^52 or beyond (put back at the tail, where the
	 * agent, which appends at the head it reads, goes on); the head behind the tail (the tail
	 * follows it). Returns the guest's head, or undefined when it was implausible.
	 */
	private check(): number | undefined {
		const {u32} = this.area;
		if (!this.area.headerIntact()) {
			this.counters.badHeader++;
			this.area.restoreHeader();
		}
		this.checkEpochAndLoss();
		if (loadU64(u32, Header.ringTail) !== this.nextSeq) {
			this.counters.badHeader++;
			this.writeTail();
		}
		const head = loadU64(u32, Header.ringHead);
		if (head >= maxSeq) {
			this.counters.badHeader++;
			storeU64(u32, Header.ringHead, this.nextSeq);
			return undefined;
		}
		if (head < this.nextSeq) {
			// The guest moved its head backwards: start over from where it is now.
			this.counters.headBackwards++;
			this.nextSeq = head;
			this.writeTail();
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
		const hint = byRecordType.get(type);
		if (!hint) {
			this.counters.unknownType++;
			return undefined;
		}
		return hint.decode(
			{view, offset: base + Record.payload, len, seq, relayTsNs: view.getBigUint64(base + Record.tsNs, true), nrVcpus: this.area.nrVcpus},
			this.counters,
		);
	}
}
