// The hint types pvrun knows, one line each. Adding one means: a folder under
// src/hints/ (its record decoder, state, policy, engine: see affinity/), its
// BPF program under bpf/ with its record type and feature bit in
// bpf/pvrun_shm.h (and src/shm/layout.ts), and a line here (docs/architecture.md).
import {affinityHint} from './affinity/index.js';
import type {AffinityRecord} from './affinity/record.js';
import type {HintType} from './types.js';
import {Feature} from '../shm/layout.js';
import type {CsMode} from '../vm/config.js';

export const hintTypes = [affinityHint] as const;

/** A record of any hint type, as the reader decodes it (`type` tells which). */
export type DecodedRecord = AffinityRecord;

/** Each hint type by its record type in the ring. */
export const byRecordType: ReadonlyMap<number, HintType<DecodedRecord>> = new Map(hintTypes.map((h) => [h.recordType, h]));

/** The header's feature bits: the hint types the host acts on. */
export const hintFeatures = hintTypes.reduce((bits, h) => bits | h.feature, 0);

/** The header's feature bits for a VM: its hint types, and critical sections unless --pv-cs off. */
export function hostFeatures(cs: CsMode): number {
	return hintFeatures | (cs === 'off' ? 0 : Feature.cs);
}
