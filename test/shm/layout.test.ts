// The TypeScript mirror of the shared-memory layout must match the C header
// the guest is built with: compile a probe against bpf/pvrun_shm.h and
// bpf/affinity.h and compare every offset and constant.
import t from 'tap';
import {cProbeNumbers} from '../helpers/c-probe.js';
import * as L from '../../src/shm/layout.js';

const probe = `
#include <stdio.h>
#include <stddef.h>
#include <linux/types.h>
#include "pvrun_shm.h"
#include "affinity.h"
#define P(name, value) printf("%s %lld\\n", name, (long long)(value))
int main(void) {
	P("magic", PVSHM_MAGIC); P("version", PVSHM_VERSION); P("size", PVSHM_SIZE);
	P("headerSize", PVSHM_HEADER_SIZE); P("maxVcpus", PVSHM_MAX_VCPUS); P("slotSize", PVSHM_SLOT_SIZE);
	P("slotsOffset", PVSHM_SLOTS_OFFSET); P("ringOffset", PVSHM_RING_OFFSET); P("ringEntries", PVSHM_RING_ENTRIES);
	P("recordSize", PVSHM_RECORD_SIZE); P("recordPayload", PVSHM_RECORD_PAYLOAD);
	P("sizeof.slot", sizeof(struct pvshm_vcpu_slot)); P("sizeof.record", sizeof(struct pvshm_record));
	P("sizeof.event", sizeof(struct pv_affinity_event));
	P("H.magic", offsetof(struct pvshm_header, magic)); P("H.version", offsetof(struct pvshm_header, version));
	P("H.headerSize", offsetof(struct pvshm_header, header_size)); P("H.size", offsetof(struct pvshm_header, size));
	P("H.features", offsetof(struct pvshm_header, features)); P("H.nrVcpus", offsetof(struct pvshm_header, nr_vcpus));
	P("H.slotSize", offsetof(struct pvshm_header, slot_size)); P("H.slotsOffset", offsetof(struct pvshm_header, slots_offset));
	P("H.ringOffset", offsetof(struct pvshm_header, ring_offset)); P("H.ringEntries", offsetof(struct pvshm_header, ring_entries));
	P("H.recordSize", offsetof(struct pvshm_header, record_size)); P("H.hostEpoch", offsetof(struct pvshm_header, host_epoch));
	P("H.guestEpoch", offsetof(struct pvshm_header, guest_epoch)); P("H.ringHead", offsetof(struct pvshm_header, ring_head));
	P("H.ringLost", offsetof(struct pvshm_header, ring_lost)); P("H.agentPid", offsetof(struct pvshm_header, agent_pid));
	P("H.ringTail", offsetof(struct pvshm_header, ring_tail)); P("H.kickWanted", offsetof(struct pvshm_header, kick_wanted));
	P("H.hostHeartbeat", offsetof(struct pvshm_header, host_heartbeat));
	P("S.feedbackSeq", offsetof(struct pvshm_vcpu_slot, feedback_seq)); P("S.state", offsetof(struct pvshm_vcpu_slot, state));
	P("S.pcpu", offsetof(struct pvshm_vcpu_slot, pcpu)); P("S.hintTid", offsetof(struct pvshm_vcpu_slot, hint_tid));
	P("S.flags", offsetof(struct pvshm_vcpu_slot, flags)); P("S.appliedNs", offsetof(struct pvshm_vcpu_slot, applied_ns));
	P("S.recordSeq", offsetof(struct pvshm_vcpu_slot, record_seq));
	P("R.seq", offsetof(struct pvshm_record, seq)); P("R.type", offsetof(struct pvshm_record, type));
	P("R.len", offsetof(struct pvshm_record, len)); P("R.tsNs", offsetof(struct pvshm_record, ts_ns));
	P("R.payload", offsetof(struct pvshm_record, payload));
	P("E.tsNs", offsetof(struct pv_affinity_event, ts_ns)); P("E.kind", offsetof(struct pv_affinity_event, kind));
	P("E.tid", offsetof(struct pv_affinity_event, tid)); P("E.tgid", offsetof(struct pv_affinity_event, tgid));
	P("E.comm", offsetof(struct pv_affinity_event, comm)); P("E.mask", offsetof(struct pv_affinity_event, mask));
	P("E.maskWords", PV_AFFINITY_MASK_WORDS); P("E.commLength", PV_COMM_LEN);
	P("rec.affinity", PVSHM_REC_AFFINITY); P("feat.affinity", PVSHM_FEAT_AFFINITY);
	P("kind.set", PV_AFFINITY_SET); P("kind.exit", PV_AFFINITY_EXIT);
	return 0;
}
`;

t.test('src/shm/layout.ts matches bpf/pvrun_shm.h and bpf/affinity.h', async (t) => {
	const c = await cProbeNumbers(t, probe, 'bpf');
	const expect: Record<string, number> = {
		magic: L.shmMagic,
		version: L.shmVersion,
		size: L.shmSize,
		headerSize: L.headerSize,
		maxVcpus: L.maxVcpus,
		slotSize: L.slotSize,
		slotsOffset: L.slotsOffset,
		ringOffset: L.ringOffset,
		ringEntries: L.ringEntries,
		recordSize: L.recordSize,
		recordPayload: L.recordPayload,
		'sizeof.slot': L.slotSize,
		'sizeof.record': L.recordSize,
		'sizeof.event': L.AffinityEvent.size,
		'E.maskWords': L.AffinityEvent.maskWords,
		'E.commLength': L.AffinityEvent.commLength,
		'rec.affinity': L.RecordType.affinity,
		'feat.affinity': L.Feature.affinity,
		'kind.set': L.AffinityKind.set,
		'kind.exit': L.AffinityKind.exit,
	};
	for (const [k, v] of Object.entries(L.Header)) expect[`H.${k}`] = v;
	for (const [k, v] of Object.entries(L.Slot)) if (k !== 'guest') expect[`S.${k}`] = v;
	for (const [k, v] of Object.entries(L.Record)) expect[`R.${k}`] = v;
	for (const k of ['tsNs', 'kind', 'tid', 'tgid', 'comm', 'mask'] as const) expect[`E.${k}`] = L.AffinityEvent[k];
	for (const [k, v] of Object.entries(expect)) t.equal(c.get(k), v, k);
	t.equal(c.size, Object.keys(expect).length, 'every C value is checked');
});
