// Shared-memory layout v1, mirrored from bpf/pvrun_shm.h (docs/shm-layout.md).
// test/shm/layout.test.ts compiles the C header and checks every offset here.

export const shmMagic = 0x48535650; // "PVSH"
export const shmVersion = 1;
export const shmSize = 256 * 1024;
export const headerSize = 4096;
export const maxVcpus = 256;
export const slotSize = 128;
export const slotsOffset = 4096;
export const ringOffset = slotsOffset + maxVcpus * slotSize; // 36864
export const ringEntries = 1024;
export const recordSize = 128;
export const recordPayload = 104;

export const Feature = {affinity: 1 << 0} as const;
export const RecordType = {affinity: 1} as const;
export const VcpuState = {floating: 0, exclusive: 1} as const;

/** struct pvshm_header field offsets. */
export const Header = {
	magic: 0,
	version: 4,
	headerSize: 6,
	size: 8,
	features: 12,
	nrVcpus: 16,
	slotSize: 20,
	slotsOffset: 24,
	ringOffset: 28,
	ringEntries: 32,
	recordSize: 36,
	hostEpoch: 40,
	guestEpoch: 64,
	ringHead: 72,
	ringLost: 80,
	agentPid: 88,
	ringTail: 128,
	kickWanted: 136,
	hostHeartbeat: 144,
} as const;

/** struct pvshm_vcpu_slot field offsets (within a slot). */
export const Slot = {
	guest: 0,
	feedbackSeq: 64,
	state: 72,
	pcpu: 76,
	hintTid: 80,
	flags: 84,
	appliedNs: 88,
	recordSeq: 96,
} as const;

/** struct pvshm_record field offsets (within a record). */
export const Record = {
	seq: 0,
	type: 8,
	len: 10,
	tsNs: 16,
	payload: 24,
} as const;

/** struct pv_affinity_event (bpf/affinity.h) offsets, within a record's payload. */
export const AffinityEvent = {
	size: 72,
	tsNs: 0,
	kind: 8,
	tid: 12,
	tgid: 16,
	comm: 24,
	commLength: 16,
	mask: 40,
	maskWords: 4,
} as const;

export const AffinityKind = {set: 1, exit: 2} as const;
