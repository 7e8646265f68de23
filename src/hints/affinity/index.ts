// CPU affinity hints as a hint type: a guest thread pinned to one vCPU alone
// gets that vCPU's host thread a CPU of its own (policy.ts decides, engine.ts
// drives it and the native fast path, src/pin applies).
import {Feature, RecordType} from '../../shm/layout.js';
import type {HintType} from '../types.js';
import {decodeAffinity, type AffinityRecord} from './record.js';

export const affinityHint: HintType<AffinityRecord> = {
	name: 'affinity',
	recordType: RecordType.affinity,
	feature: Feature.affinity,
	program: 'affinity.bpf.o',
	decode: decodeAffinity,
};
