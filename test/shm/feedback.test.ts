// Host feedback into a vCPU slot (src/shm/feedback.ts), on a real area in
// /dev/shm: what writeFeedback writes at the offsets of src/shm/layout.ts's
// Slot, that every field is written while the sequence is odd and that it
// grows by two (even when done) from whatever even value is there, and that
// nothing outside the vCPU's slot, or for a vCPU the VM does not have, is
// written.
import t from 'tap';
import type {ShmArea} from '../../src/shm/area.js';
import {writeFeedback} from '../../src/shm/feedback.js';
import {Slot, VcpuState, shmSize, slotSize, slotsOffset} from '../../src/shm/layout.js';
import {area} from '../helpers/guest-ring.js';

/** vCPU `v`'s slot, every field the host writes, and the ones it must not. */
function slot(a: ShmArea, v: number) {
	const base = slotsOffset + v * slotSize;
	const view = a.view;
	return {
		seq: view.getBigUint64(base + Slot.feedbackSeq, true),
		state: view.getUint32(base + Slot.state, true),
		pcpu: view.getInt32(base + Slot.pcpu, true),
		hintTid: view.getUint32(base + Slot.hintTid, true),
		flags: view.getUint32(base + Slot.flags, true),
		appliedNs: view.getBigUint64(base + Slot.appliedNs, true),
		recordSeq: view.getBigUint64(base + Slot.recordSeq, true),
	};
}

/** A copy of the whole area. */
const snapshot = (a: ShmArea) => Buffer.from(new Uint8Array(a.view.buffer, 0, shmSize));

t.test('an exclusive CPU: state, pcpu, the hint thread, when, and the record', async (t) => {
	const a = area(t, 4);
	const before = process.hrtime.bigint();
	writeFeedback(a, 2, {exclusive: true, pcpu: 3, hintTid: 4321, recordSeq: 2 ** 40 + 7});
	const after = process.hrtime.bigint();
	const s = slot(a, 2);
	t.same(
		{...s, appliedNs: undefined},
		{seq: 2n, state: VcpuState.exclusive, pcpu: 3, hintTid: 4321, flags: 0, appliedNs: undefined, recordSeq: BigInt(2 ** 40 + 7)},
		'every field at its offset; flags left alone',
	);
	t.ok(s.appliedNs >= before && s.appliedNs <= after, `applied_ns is the host's monotonic clock when it was written (${s.appliedNs})`);
});

t.test('floating: state 0 and pcpu -1 whatever pcpu says', async (t) => {
	const a = area(t, 2);
	writeFeedback(a, 1, {exclusive: true, pcpu: 1, hintTid: 77, recordSeq: 5});
	writeFeedback(a, 1, {exclusive: false, pcpu: 1, hintTid: 0, recordSeq: 6});
	t.same(
		{...slot(a, 1), appliedNs: undefined},
		{seq: 4n, state: VcpuState.floating, pcpu: -1, hintTid: 0, flags: 0, appliedNs: undefined, recordSeq: 6n},
		'the grant is gone from the slot',
	);
	writeFeedback(a, 0, {exclusive: false, pcpu: 1, hintTid: 0, recordSeq: 0});
	t.equal(slot(a, 0).pcpu, -1, 'a floating vCPU never names a CPU');
});

t.test('the sequence grows by two with each write and is even when done, from whatever the guest left', async (t) => {
	const a = area(t, 2);
	const seqs: bigint[] = [slot(a, 0).seq];
	for (let i = 0; i < 3; i++) {
		writeFeedback(a, 0, {exclusive: i % 2 === 0, pcpu: 1, hintTid: 10 + i, recordSeq: i});
		seqs.push(slot(a, 0).seq);
	}
	t.same(seqs, [0n, 2n, 4n, 6n], 'every write publishes a new even sequence');
	t.equal(slot(a, 1).seq, 0n, "another vCPU's sequence is its own");

	const base = slotsOffset + Slot.feedbackSeq;
	a.view.setBigUint64(base, 7n, true); // a guest scribbled an odd value (or a host died mid-write)
	writeFeedback(a, 0, {exclusive: false, pcpu: -1, hintTid: 0, recordSeq: 9});
	t.equal(slot(a, 0).seq, 8n, 'an odd value: continued from the even value below it');
	a.view.setBigUint64(base, 100n, true);
	writeFeedback(a, 0, {exclusive: false, pcpu: -1, hintTid: 0, recordSeq: 10});
	t.equal(slot(a, 0).seq, 102n, 'an even value: continued from it');
	a.view.setBigUint64(base, 2n ** 64n - 1n, true);
	writeFeedback(a, 0, {exclusive: false, pcpu: -1, hintTid: 0, recordSeq: 11});
	t.equal(slot(a, 0).seq, 0n, 'the largest value: wraps around to an even value');
});

t.test("only the vCPU's own slot is written; a vCPU the VM does not have writes nothing", async (t) => {
	const a = area(t, 3);
	const start = snapshot(a);
	writeFeedback(a, 1, {exclusive: true, pcpu: 2, hintTid: 99, recordSeq: 3});
	const after = snapshot(a);
	const from = slotsOffset + slotSize + Slot.feedbackSeq;
	const to = slotsOffset + slotSize + Slot.recordSeq + 8;
	t.ok(start.subarray(0, from).equals(after.subarray(0, from)), "nothing before slot 1's host part changed");
	t.ok(start.subarray(to).equals(after.subarray(to)), 'nothing after it');
	for (const v of [-1, 3, 256]) {
		writeFeedback(a, v, {exclusive: true, pcpu: 0, hintTid: 1, recordSeq: 1});
		t.ok(snapshot(a).equals(after), `vCPU ${v}: nothing written`);
	}
});

t.test('seqlock: every field is written while the sequence is odd, and it is even again after', async (t) => {
	const a = area(t, 2);
	const seqIndex = (slotsOffset + slotSize + Slot.feedbackSeq) / 8;
	const writes: {at: number; seq: bigint}[] = [];
	const note = (at: number) => void writes.push({at, seq: Atomics.load(a.u64, seqIndex)});
	// The area's own bytes, through a view that notes the sequence at each field write.
	const view = new DataView(a.view.buffer);
	const watched: ShmArea = {
		...a,
		view: Object.assign(view, {
			setUint32(at: number, value: number, le?: boolean): void {
				note(at);
				DataView.prototype.setUint32.call(view, at, value, le);
			},
			setInt32(at: number, value: number, le?: boolean): void {
				note(at);
				DataView.prototype.setInt32.call(view, at, value, le);
			},
			setBigUint64(at: number, value: bigint, le?: boolean): void {
				note(at);
				DataView.prototype.setBigUint64.call(view, at, value, le);
			},
		}),
	};
	writeFeedback(watched, 1, {exclusive: true, pcpu: 1, hintTid: 5, recordSeq: 8});
	const base = slotsOffset + slotSize;
	t.same(
		writes.map((w) => w.at - base).sort((x, y) => x - y),
		[Slot.state, Slot.pcpu, Slot.hintTid, Slot.appliedNs, Slot.recordSeq],
		'the fields a guest reads under the sequence',
	);
	t.ok(
		writes.every((w) => w.seq === 1n),
		`each written while the sequence is odd (${writes.map((w) => w.seq).join(', ')})`,
	);
	t.equal(Atomics.load(a.u64, seqIndex), 2n, 'even once done');
});
