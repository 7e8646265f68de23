// Host feedback into a vCPU slot, seqlock-style: the sequence is odd while
// the host writes and even when done, so a guest reader never sees a mix.
import type {ShmArea} from './area.js';
import {Slot, VcpuState, slotSize, slotsOffset} from './layout.js';

export interface Feedback {
	exclusive: boolean;
	pcpu: number;
	hintTid: number;
	recordSeq: number;
}

/** Publish what the host applied to vCPU `v`. */
export function writeFeedback(area: ShmArea, v: number, f: Feedback): void {
	if (v < 0 || v >= area.nrVcpus) return;
	const base = slotsOffset + v * slotSize;
	const seqIndex = (base + Slot.feedbackSeq) / 8;
	// The guest may have scribbled on the sequence: continue from an even value.
	const seq = Atomics.load(area.u64, seqIndex) & ~1n;
	Atomics.store(area.u64, seqIndex, seq + 1n);
	area.view.setUint32(base + Slot.state, f.exclusive ? VcpuState.exclusive : VcpuState.floating, true);
	area.view.setInt32(base + Slot.pcpu, f.exclusive ? f.pcpu : -1, true);
	area.view.setUint32(base + Slot.hintTid, f.hintTid, true);
	area.view.setBigUint64(base + Slot.appliedNs, process.hrtime.bigint(), true);
	area.view.setBigUint64(base + Slot.recordSeq, BigInt(f.recordSeq), true);
	Atomics.store(area.u64, seqIndex, seq + 2n);
}
