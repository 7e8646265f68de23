// An affinity record's payload, decoded as the reader hands it over: the mask
// cut to the VM's vCPUs, every field checked, anything odd counted.
import t from 'tap';
import {decodeAffinity} from '../../../src/hints/affinity/record.js';
import {emptyCounters} from '../../../src/shm/counters.js';
import {AffinityEvent, AffinityKind} from '../../../src/shm/layout.js';

/** A payload of `len` bytes with the event's fields (mask words given as bigints). */
function payload(e: {kind?: number; tid?: number; tgid?: number; comm?: string; mask?: bigint[]; ts?: bigint}, len: number = AffinityEvent.size) {
	const view = new DataView(new ArrayBuffer(AffinityEvent.size));
	view.setBigUint64(AffinityEvent.tsNs, e.ts ?? 1000n, true);
	view.setUint32(AffinityEvent.kind, e.kind ?? AffinityKind.set, true);
	view.setUint32(AffinityEvent.tid, e.tid ?? 42, true);
	view.setUint32(AffinityEvent.tgid, e.tgid ?? 40, true);
	const comm = Buffer.from(e.comm ?? 'worker', 'latin1');
	comm.subarray(0, AffinityEvent.commLength).forEach((b, i) => view.setUint8(AffinityEvent.comm + i, b));
	(e.mask ?? [0b10n]).forEach((w, i) => view.setBigUint64(AffinityEvent.mask + i * 8, w, true));
	return {view, offset: 0, len, seq: 7, relayTsNs: 3000n, nrVcpus: 4};
}

t.test('a thread pinned to vCPU 1, and one that exited', async (t) => {
	const counters = emptyCounters();
	t.match(decodeAffinity(payload({}), counters), {type: 'affinity', seq: 7, kind: 'set', tid: 42, tgid: 40, comm: 'worker', vcpus: [1], relayUs: 2});
	t.match(decodeAffinity(payload({kind: AffinityKind.exit, mask: []}), counters), {kind: 'exit', vcpus: []});
	t.same(counters, emptyCounters(), 'nothing counted');
});

t.test('vCPUs beyond the VM are cut off and counted; odd fields refuse the record', async (t) => {
	const counters = emptyCounters();
	t.same(decodeAffinity(payload({mask: [0b10011n, 1n]}), counters)?.vcpus, [0, 1], 'vCPUs 0 and 1 kept; bit 4 (of a 4-vCPU VM) and word 1 cut');
	t.equal(counters.maskOutOfRange, 1);
	for (const bad of [{kind: 9}, {tid: 0}, {tgid: 1 << 22}, {mask: [1n << 5n]}])
		t.equal(
			decodeAffinity(payload(bad), counters),
			undefined,
			JSON.stringify(bad, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
		);
	t.equal(decodeAffinity(payload({}, AffinityEvent.size - 1), counters), undefined, 'a short payload');
	t.equal(counters.badAffinity, 5);
	t.equal(decodeAffinity(payload({comm: 'a\u0001b'}), emptyCounters())?.comm, 'a?b', 'unprintable name bytes shown as ?');
});
