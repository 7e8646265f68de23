// What one kind of hint brings to pvrun, behind one small interface: the
// record type its BPF program writes into the shared ring, the program the
// guest agent loads for it, and how its records are decoded (every field
// validated: the guest is untrusted). Its state, its policy and how its
// decisions are applied live in its own folder (src/hints/affinity/ for CPU
// affinity), driven by an engine with the HintTypeEngine methods.
import type {ShmCounters} from '../shm/counters.js';

/** One record's payload in the ring, as the reader hands it to the hint type that owns its record type. */
export interface RecordPayload {
	view: DataView;
	/** Offset of the payload in `view`. */
	offset: number;
	/** Payload bytes the record claims (at most the ring's payload size). */
	len: number;
	/** The record's ring sequence. */
	seq: number;
	/** When the agent relayed it (guest clock, ns). */
	relayTsNs: bigint;
	/** The VM's vCPUs: masks are cut to them. */
	nrVcpus: number;
}

export interface HintType<R> {
	/** Its name, as the agent and the event log know it ('affinity'). */
	name: string;
	/** PVSHM_REC_*: the type of its records in the ring. */
	recordType: number;
	/** PVSHM_FEAT_*: the header's feature bit saying the host acts on it. */
	feature: number;
	/** Its BPF object, under bpf/ (built by make), which the guest agent loads. */
	program: string;
	/** The record, or undefined (counted in `counters`) when a field is invalid. */
	decode(payload: RecordPayload, counters: ShmCounters): R | undefined;
}

/** What the session asks of a hint type's engine, whatever the type. */
export interface HintTypeEngine {
	/** Start deciding (the initial placement, the slow timer). */
	start(): void;
	/** No more decisions. */
	stop(): void;
	/** The agent said records are waiting. */
	kick(): void;
	/** Forget every hint (the agent stopped, the guest reset). */
	reset(reason: string): void;
	/** The shared memory was restored from a saved VM: start afresh from the guest's head. */
	restored(): void;
	/** The vCPU threads changed (hot-plug). */
	setVcpuCount(nrVcpus: number): void;
}
