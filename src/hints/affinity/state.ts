// What the affinity hints know and have decided, in one typed object per VM
// (the engine keeps it; the policy reads it): each guest thread's hint, the
// assignment applied, the grants judged idle, the vCPUs an operator holds.
import {floatingOnly, type Assignment, type Hint} from './policy.js';

export interface AffinityState {
	/** Each guest thread's current hint, by thread id. */
	hints: Map<number, Hint>;
	/** Hints not kept because the most threads allowed already have one. */
	hintsRefused: number;
	/** The assignment applied now. */
	assignment: Assignment;
	/** The VM's vCPUs (hot-plug changes it). */
	nrVcpus: number;
	/** Granted vCPUs judged idle: they share their CPU with the floating vCPUs. */
	idle: Set<number>;
	/** vCPUs an operator pinned outside pvrun: vCPU → the CPUs the kernel had for it when last looked. */
	held: Map<number, number[]>;
	/** QEMU's other threads pinned by an operator: their CPUs then (QEMU's main thread's); undefined while pvrun places them. */
	othersHeld: number[] | undefined;
}

/** The state of a VM that has no hint yet: every vCPU floats on `allowed`. */
export function initialState(allowed: readonly number[], nrVcpus: number): AffinityState {
	return {hints: new Map(), hintsRefused: 0, assignment: floatingOnly(allowed), nrVcpus, idle: new Set(), held: new Map(), othersHeld: undefined};
}

/** Why the engine commits an assignment: the typed reason a decision carries. */
export type Cause =
	/** The initial placement. */
	| {kind: 'start'}
	/** Records drained from the ring (hints), seen waiting at `visible` (performance.now()); `seq` the last one's. */
	| {kind: 'records'; seq: number; visible: number}
	/** Not a hint: the agent stopped, a guest reset, a restore, hot-plug, a grant judged idle or busy, an operator's pin, another VM's leases. */
	| {kind: 'reset' | 'restored' | 'vcpus' | 'usage' | 'operator' | 'leases'};

/** The engine's counters of who decided (the native fast path or the JavaScript thread) and how often they differed. */
export interface DecisionCounts {
	/** Decisions the fast path applied. */
	fast: number;
	/** Decisions on records the JavaScript thread made. */
	slow: number;
	/** Records the fast path decided on that the policy, reading them again, decided otherwise. */
	disagreed: number;
	/** Times the engine found records past the fast path's cursor and had it look (pvf_scan). */
	scans: number;
}
