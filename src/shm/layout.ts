// Shared-memory layout v2, mirrored from bpf/pvrun_shm.h (docs/shm-layout.md).
// test/shm/layout.test.ts compiles the C header and checks every offset here.

export const shmMagic = 0x48535650; // "PVSH"
export const shmVersion = 2;
export const shmSize = 256 * 1024;
export const headerSize = 4096;
export const maxVcpus = 256;
export const slotSize = 128;
export const slotsOffset = 4096;
export const ringOffset = slotsOffset + maxVcpus * slotSize; // 36864
export const ringEntries = 1024;
export const recordSize = 128;
export const recordPayload = 104;
export const cellsOffset = ringOffset + ringEntries * recordSize; // 167936
export const cellCount = 1024;
export const cellSize = 64;

export const Feature = {affinity: 1 << 0, cs: 1 << 1} as const;
/** Record types: affinity records go into the ring; critical-section records (cs) the agent applies to the slots. */
export const RecordType = {affinity: 1, cs: 2} as const;
export const VcpuState = {floating: 0, exclusive: 1} as const;
/** slot.flags: host feedback bits. */
export const SlotFlag = {vcpuPreempted: 1 << 0, pcpuOverloaded: 1 << 1, boosted: 1 << 2} as const;

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
	cellsOffset: 48,
	cells: 52,
	cellSize: 56,
	guestEpoch: 64,
	ringHead: 72,
	ringLost: 80,
	agentPid: 88,
	agentFeatures: 92,
	cellsUsed: 96,
	ringTail: 128,
	kickWanted: 136,
	hostHeartbeat: 144,
} as const;

/** struct pvshm_vcpu_slot field offsets (within a slot). */
export const Slot = {
	guestSeq: 0,
	curTid: 4,
	klockWaiting: 8,
	klockOwnerTid: 12,
	klockSinceNs: 16,
	klockAddr: 24,
	klockWaits: 32,
	klockWaitNs: 40,
	klockOwnerCpu: 48,
	guestTsNs: 56,
	feedbackSeq: 64,
	state: 72,
	pcpu: 76,
	hintTid: 80,
	flags: 84,
	appliedNs: 88,
	recordSeq: 96,
	budgetLeftUs: 104,
	boosts: 108,
	preemptedNs: 112,
	flagsNs: 120,
} as const;

/** struct pvshm_cell field offsets (within a cell). */
export const Cell = {
	ownerTid: 0,
	ownerTgid: 4,
	depth: 8,
	cpu: 12,
	enters: 16,
	lockWaits: 24,
	parks: 32,
	waiting: 40,
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
