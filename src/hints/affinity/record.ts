// CPU affinity hints: the record bpf/affinity.bpf.c writes when a guest thread
// changes its CPU affinity or exits (struct pv_affinity_event,
// bpf/affinity.h), decoded and validated. The mask is cut to the VM's vCPUs.
import type {ShmCounters} from '../../shm/counters.js';
import {AffinityEvent, AffinityKind} from '../../shm/layout.js';
import type {RecordPayload} from '../types.js';

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

/** A NUL-terminated 16-byte name, printable ASCII kept, everything else as '?'. */
function decodeComm(view: DataView, offset: number): string {
	let comm = '';
	for (let i = 0; i < AffinityEvent.commLength; i++) {
		const c = view.getUint8(offset + i);
		if (c === 0) break;
		comm += c >= 0x20 && c <= 0x7e ? String.fromCharCode(c) : '?';
	}
	return comm;
}

/** struct pv_affinity_event → AffinityRecord, with the mask cut to this VM's vCPUs; invalid ones counted. */
export function decodeAffinity(r: RecordPayload, counters: ShmCounters): AffinityRecord | undefined {
	const {view, offset: p, len, seq, relayTsNs, nrVcpus} = r;
	const kindRaw = view.getUint32(p + AffinityEvent.kind, true);
	const tid = view.getUint32(p + AffinityEvent.tid, true);
	const tgid = view.getUint32(p + AffinityEvent.tgid, true);
	const kind = kindRaw === AffinityKind.set ? 'set' : kindRaw === AffinityKind.exit ? 'exit' : undefined;
	// Linux pids are below 2^22 (PID_MAX_LIMIT).
	if (len < AffinityEvent.size || !kind || tid === 0 || tid >= 1 << 22 || tgid === 0 || tgid >= 1 << 22) {
		counters.badAffinity++;
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
	if (outside) counters.maskOutOfRange++;
	if (kind === 'set' && vcpus.length === 0) {
		counters.badAffinity++;
		return undefined;
	}
	const guestTsNs = view.getBigUint64(p + AffinityEvent.tsNs, true);
	return {
		type: 'affinity',
		seq,
		kind,
		tid,
		tgid,
		comm: decodeComm(view, p + AffinityEvent.comm),
		vcpus,
		guestTsNs,
		relayUs: relayTsNs >= guestTsNs && relayTsNs - guestTsNs < 10n ** 12n ? Number(relayTsNs - guestTsNs) / 1000 : -1,
	};
}
