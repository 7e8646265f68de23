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
	P("cellsOffset", PVSHM_CELLS_OFFSET); P("cellCount", PVSHM_CELLS); P("cellSize", PVSHM_CELL_SIZE);
	P("sizeof.cell", sizeof(struct pvshm_cell)); P("sizeof.header", sizeof(struct pvshm_header));
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
	P("H.cellsOffset", offsetof(struct pvshm_header, cells_offset)); P("H.cells", offsetof(struct pvshm_header, cells));
	P("H.cellSize", offsetof(struct pvshm_header, cell_size)); P("H.agentFeatures", offsetof(struct pvshm_header, agent_features));
	P("H.cellsUsed", offsetof(struct pvshm_header, cells_used));
	P("S.feedbackSeq", offsetof(struct pvshm_vcpu_slot, feedback_seq)); P("S.state", offsetof(struct pvshm_vcpu_slot, state));
	P("S.pcpu", offsetof(struct pvshm_vcpu_slot, pcpu)); P("S.hintTid", offsetof(struct pvshm_vcpu_slot, hint_tid));
	P("S.flags", offsetof(struct pvshm_vcpu_slot, flags)); P("S.appliedNs", offsetof(struct pvshm_vcpu_slot, applied_ns));
	P("S.recordSeq", offsetof(struct pvshm_vcpu_slot, record_seq));
	P("S.guestSeq", offsetof(struct pvshm_vcpu_slot, guest_seq)); P("S.curTid", offsetof(struct pvshm_vcpu_slot, cur_tid));
	P("S.klockWaiting", offsetof(struct pvshm_vcpu_slot, klock_waiting)); P("S.klockOwnerTid", offsetof(struct pvshm_vcpu_slot, klock_owner_tid));
	P("S.klockSinceNs", offsetof(struct pvshm_vcpu_slot, klock_since_ns)); P("S.klockAddr", offsetof(struct pvshm_vcpu_slot, klock_addr));
	P("S.klockWaits", offsetof(struct pvshm_vcpu_slot, klock_waits)); P("S.klockWaitNs", offsetof(struct pvshm_vcpu_slot, klock_wait_ns));
	P("S.klockOwnerCpu", offsetof(struct pvshm_vcpu_slot, klock_owner_cpu)); P("S.guestTsNs", offsetof(struct pvshm_vcpu_slot, guest_ts_ns));
	P("S.budgetLeftUs", offsetof(struct pvshm_vcpu_slot, budget_left_us)); P("S.boosts", offsetof(struct pvshm_vcpu_slot, boosts));
	P("S.preemptedNs", offsetof(struct pvshm_vcpu_slot, preempted_ns)); P("S.flagsNs", offsetof(struct pvshm_vcpu_slot, flags_ns));
	P("C.ownerTid", offsetof(struct pvshm_cell, owner_tid)); P("C.ownerTgid", offsetof(struct pvshm_cell, owner_tgid));
	P("C.depth", offsetof(struct pvshm_cell, depth)); P("C.cpu", offsetof(struct pvshm_cell, cpu));
	P("C.enters", offsetof(struct pvshm_cell, enters)); P("C.lockWaits", offsetof(struct pvshm_cell, lock_waits));
	P("C.parks", offsetof(struct pvshm_cell, parks)); P("C.waiting", offsetof(struct pvshm_cell, waiting));
	P("flag.vcpuPreempted", PVSHM_FLAG_VCPU_PREEMPTED); P("flag.pcpuOverloaded", PVSHM_FLAG_PCPU_OVERLOADED);
	P("flag.boosted", PVSHM_FLAG_BOOSTED); P("feat.cs", PVSHM_FEAT_CS); P("rec.cs", PVSHM_REC_CS);
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
		cellsOffset: L.cellsOffset,
		cellCount: L.cellCount,
		cellSize: L.cellSize,
		'sizeof.cell': L.cellSize,
		'sizeof.header': 152,
		'feat.cs': L.Feature.cs,
		'rec.cs': L.RecordType.cs,
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
	for (const [k, v] of Object.entries(L.Slot)) expect[`S.${k}`] = v;
	for (const [k, v] of Object.entries(L.Cell)) expect[`C.${k}`] = v;
	for (const [k, v] of Object.entries(L.SlotFlag)) expect[`flag.${k}`] = v;
	for (const [k, v] of Object.entries(L.Record)) expect[`R.${k}`] = v;
	for (const k of ['tsNs', 'kind', 'tid', 'tgid', 'comm', 'mask'] as const) expect[`E.${k}`] = L.AffinityEvent[k];
	for (const [k, v] of Object.entries(expect)) t.equal(c.get(k), v, k);
	t.equal(c.size, Object.keys(expect).length, 'every C value is checked');
	t.ok(L.cellsOffset + L.cellCount * L.cellSize <= L.shmSize, 'the cells fit in the area');
});
