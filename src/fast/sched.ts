// The host's view of the vCPU threads from a host BPF program
// (bpf/vcpusched.bpf.c, loaded by native/pvsched.c in the fast-path library):
// exact to the context switch, where /proc is sampled. The library's thread
// writes the feedback flags into the slots itself; this module starts it,
// names the vCPU threads, and reads the program's totals for the observer
// (src/hints/cs/observer.ts). Formats mirror bpf/vcpusched.h and
// native/pvsched.h (test/fast/sched.test.ts compares them).
import os from 'node:os';
import path from 'node:path';
import {packageRoot} from '../util/paths.js';
import {fastLib, type FastLib} from './binding.js';
import {readCounters} from './format.js';

/** The program's object, built by `make` beside the guest's. */
export const schedObjectPath = path.join(packageRoot, 'bpf', 'vcpusched.bpf.o');

/** PV_SCHED_MAX_VCPUS. */
export const schedMaxVcpus = 256;
/** PV_VS_*: what a vCPU thread is doing on the host. */
export const VcpuState = {sleeping: 0, running: 1, preempted: 2, woken: 3} as const;
/** struct pv_vcpu_sched: offsets and size. */
export const VcpuSchedLayout = {
	seq: 0,
	state: 4,
	cpu: 8,
	flags: 12,
	sinceNs: 16,
	runNs: 24,
	waitNs: 32,
	preemptions: 40,
	flagsNs: 48,
	bySelf: 56,
	watched: 60,
	size: 64,
} as const;
/** struct pvs_stats: its fields, each a u64, in order. */
export const schedStatFields = ['wakeups', 'notices', 'writes', 'latN', 'latSumNs', 'latMaxNs', 'threadCpuNs', 'progRunNs', 'progRuns', 'demotions'] as const;

/** One vCPU thread as the program saw it (struct pv_vcpu_sched). */
export interface VcpuSched {
	state: number;
	/** Host CPU it runs on, last ran on, or waits for; -1 unknown. */
	cpu: number;
	/** The feedback flags as they should be now (SlotFlag bits). */
	flags: number;
	/** Host CLOCK_MONOTONIC ns when the state began. */
	sinceNs: number;
	/** Time on a CPU, and runnable but not on one, up to sinceNs. */
	runNs: number;
	waitNs: number;
	/** Switched out while runnable, for a thread other than pvrun's. */
	preemptions: number;
}

export type SchedStats = Record<(typeof schedStatFields)[number], number>;

/** PVB_*: what the critical-section policy (native/cspolicy.h) has a vCPU's thread be. */
export const BoostMode = {normal: 0, boosted: 1, payback: 2} as const;
/** struct pvb_config. */
export const BoostConfigLayout = {maxNs: 0, windowNs: 8, budgetNs: 16, paybackPct: 24, size: 32} as const;
/** struct pvb_input. */
export const BoostInputLayout = {nowNs: 0, busyNs: 8, preemptions: 16, hostState: 24, inSection: 28, size: 32} as const;
/** struct pvb_vcpu: mode (u32) and padding, then u64 fields in this order. */
export const boostVcpuFields = [
	'beganNs',
	'untilNs',
	'grantedNs',
	'busyAtNs',
	'tokensNs',
	'refilledNs',
	'debtNs',
	'refusedAt',
	'boosts',
	'boostedNs',
	'refused',
	'paidNs',
] as const;
export const boostVcpuSize = 8 + boostVcpuFields.length * 8;
/** struct pvs_boost_stats: u64 fields in this order, then last_error (u32) and padding. */
export const boostStatFields = ['passes', 'actN', 'actSumNs', 'actMaxNs', 'errors'] as const;
export const boostStatsSize = boostStatFields.length * 8 + 8;

/** How pvrun acts on critical sections (--pv-cs act; --pv-cs-boost). */
export interface BoostConfig {
	/** Longest boost (0: none). */
	maxNs: number;
	/** Boost time per vCPU per window. */
	budgetNs: number;
	windowNs: number;
	/** Payback owed, % of boost time (0: none). */
	paybackPct: number;
}

export type BoostVcpu = {mode: number} & Record<(typeof boostVcpuFields)[number], number>;
export type BoostStats = Record<(typeof boostStatFields)[number], number> & {lastError: number};
export interface BoostInput {
	nowNs: number;
	busyNs: number;
	preemptions: number;
	hostState: number;
	inSection: boolean;
}

/** struct pvb_config's bytes. */
export function encodeBoostConfig(c: BoostConfig): Buffer {
	const b = Buffer.alloc(BoostConfigLayout.size);
	b.writeBigUInt64LE(BigInt(Math.round(c.maxNs)), BoostConfigLayout.maxNs);
	b.writeBigUInt64LE(BigInt(Math.round(c.windowNs)), BoostConfigLayout.windowNs);
	b.writeBigUInt64LE(BigInt(Math.round(c.budgetNs)), BoostConfigLayout.budgetNs);
	b.writeUInt32LE(c.paybackPct, BoostConfigLayout.paybackPct);
	return b;
}

/** struct pvb_input's bytes. */
export function encodeBoostInput(i: BoostInput): Buffer {
	const b = Buffer.alloc(BoostInputLayout.size);
	b.writeBigUInt64LE(BigInt(i.nowNs), BoostInputLayout.nowNs);
	b.writeBigUInt64LE(BigInt(i.busyNs), BoostInputLayout.busyNs);
	b.writeBigUInt64LE(BigInt(i.preemptions), BoostInputLayout.preemptions);
	b.writeUInt32LE(i.hostState, BoostInputLayout.hostState);
	b.writeUInt32LE(i.inSection ? 1 : 0, BoostInputLayout.inSection);
	return b;
}

/** One struct pvb_vcpu at `offset`. */
export function decodeBoostVcpu(b: Buffer, offset = 0): BoostVcpu {
	const out = {mode: b.readUInt32LE(offset)} as BoostVcpu;
	boostVcpuFields.forEach((k, i) => (out[k] = Number(b.readBigUInt64LE(offset + 8 + i * 8))));
	return out;
}

/** "EPERM" for -1 (a negative errno's name). */
function errnoText(rc: number): string {
	const name = Object.entries(os.constants.errno).find(([, n]) => n === -rc)?.[0];
	return name ? name : `errno ${-rc}`;
}

export class HostSched {
	private readonly buf = Buffer.alloc(schedMaxVcpus * VcpuSchedLayout.size);
	private readonly statsBuf = Buffer.alloc(schedStatFields.length * 8);
	private readonly boostBuf = Buffer.alloc(schedMaxVcpus * boostVcpuSize);
	private readonly boostStatsBuf = Buffer.alloc(boostStatsSize);
	private stopped = false;

	private constructor(
		private readonly lib: FastLib,
		private readonly handle: number,
	) {}

	/**
	 * Load the program on the host and start the thread that writes the flags
	 * into the slots of the shared file at `shmPath`. Throws with the reason
	 * when the host does not allow it (not root, no BTF, the library not built).
	 */
	static start(shmPath: string, objectPath = schedObjectPath): HostSched {
		const lib = fastLib();
		if (typeof lib === 'string') throw new Error(lib);
		const h = lib.pvs_start(objectPath, shmPath);
		if (h < 0) throw new Error(`cannot load the host scheduler program: ${errnoText(h)}`);
		return new HostSched(lib, h);
	}

	/** vCPU i is host thread tids[i] (after a hot-plug too). */
	setVcpus(tids: readonly number[]): void {
		if (this.stopped) return;
		const list = Int32Array.from(tids.slice(0, schedMaxVcpus));
		const rc = this.lib.pvs_set_vcpus(this.handle, list, list.length);
		if (rc !== 0) throw new Error(`cannot follow the vCPU threads: ${errnoText(rc)}`);
	}

	/**
	 * The vCPUs whose preemption must reach their slot at once (a guest thread on
	 * each is inside a critical section); the others' at the next sync.
	 */
	watch(vcpus: readonly boolean[]): void {
		if (!this.stopped) this.lib.pvs_watch(this.handle, vcpuMask(vcpus), schedMaxVcpus / 64);
	}

	/** Write the flags that changed without waking the thread into the slots now. */
	sync(): void {
		if (!this.stopped) this.lib.pvs_sync(this.handle);
	}

	/** vCPUs 0..n-1 as the program sees them now. */
	read(n: number): VcpuSched[] {
		const count = Math.max(0, Math.min(n, schedMaxVcpus));
		if (this.stopped || this.lib.pvs_read(this.handle, this.buf, count) !== count) return [];
		const b = this.buf;
		const L = VcpuSchedLayout;
		const out: VcpuSched[] = [];
		for (let v = 0, o = 0; v < count; v++, o += L.size) {
			out.push({
				state: b.readUInt32LE(o + L.state),
				cpu: b.readInt32LE(o + L.cpu),
				flags: b.readUInt32LE(o + L.flags),
				sinceNs: Number(b.readBigUInt64LE(o + L.sinceNs)),
				runNs: Number(b.readBigUInt64LE(o + L.runNs)),
				waitNs: Number(b.readBigUInt64LE(o + L.waitNs)),
				preemptions: Number(b.readBigUInt64LE(o + L.preemptions)),
			});
		}
		return out;
	}

	stats(): SchedStats {
		const ok = !this.stopped && this.lib.pvs_stats(this.handle, this.statsBuf) === 0;
		return readCounters(schedStatFields, ok ? this.statsBuf : undefined);
	}

	/** Act on critical sections with `config` (maxNs and paybackPct 0: not at all). */
	boost(config: BoostConfig): void {
		if (this.stopped) return;
		const rc = this.lib.pvs_boost(this.handle, encodeBoostConfig(config));
		if (rc !== 0) throw new Error(`cannot act on critical sections: ${errnoText(rc)}`);
	}

	/** What acting did: the counters, and vCPUs 0..n-1's policy states. */
	boosts(n: number): {stats: BoostStats; vcpus: BoostVcpu[]} {
		const count = Math.max(0, Math.min(n, schedMaxVcpus));
		const ok = !this.stopped && this.lib.pvs_boosts(this.handle, this.boostStatsBuf, this.boostBuf, count) === count;
		const stats = {
			...readCounters(boostStatFields, ok ? this.boostStatsBuf : undefined),
			lastError: ok ? this.boostStatsBuf.readUInt32LE(boostStatFields.length * 8) : 0,
		};
		const vcpus: BoostVcpu[] = [];
		for (let v = 0; ok && v < count; v++) vcpus.push(decodeBoostVcpu(this.boostBuf, v * boostVcpuSize));
		return {stats, vcpus};
	}

	/** Stop the thread, clear the flags it wrote, detach the program (idempotent). */
	stop(): void {
		if (this.stopped) return;
		this.stopped = true;
		this.lib.pvs_stop(this.handle);
	}
}

/** One bit per vCPU, in 64-bit words. */
function vcpuMask(vcpus: readonly boolean[]): BigUint64Array {
	const mask = new BigUint64Array(schedMaxVcpus / 64);
	vcpus.slice(0, schedMaxVcpus).forEach((on, v) => {
		if (on) mask[v >> 6] = (mask[v >> 6] ?? 0n) | (1n << BigInt(v & 63));
	});
	return mask;
}

/**
 * The critical-section policy's step (native/cspolicy.h, pure) on `state`
 * (updated in place): the mode the vCPU's thread must be in. For tests.
 */
export function policyStep(config: BoostConfig, state: Buffer, input: BoostInput): number {
	const lib = fastLib();
	if (typeof lib === 'string') throw new Error(lib);
	return lib.pvs_policy_step(encodeBoostConfig(config), state, encodeBoostInput(input));
}

/** A vCPU's time runnable but not on a CPU, up to `nowNs` (the state in progress included). */
export function waitedNs(v: VcpuSched, nowNs: number): number {
	const ongoing = v.state === VcpuState.preempted || v.state === VcpuState.woken ? Math.max(0, nowNs - v.sinceNs) : 0;
	return v.waitNs + ongoing;
}
