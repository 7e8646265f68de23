// The native fast path (native/pvfast.c, docs/fast-path.md), bound through
// koffi: a thread inside pvrun that waits for the guest agent's kick byte and
// applies a decision the policy computed in advance, without waiting for the
// JavaScript thread. This module only loads the library and moves bytes (in
// the formats of native/pvfast.h, mirrored in format.ts); the table's content
// comes from table.ts.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import koffi, {type KoffiFunc} from 'koffi';
import {packageRoot} from '../util/paths.js';
import type {GuestBudget} from '../util/guest-budget.js';
import {Applied, Phase, TakeHeader, maxApplied, readCounters, statFields} from './format.js';

/** Where `make` builds the library. */
export const fastLibraryPath = path.join(packageRoot, 'native', 'libpvfast.so');

export interface FastLib {
	pvf_start: KoffiFunc<(shmPath: string, kickPath: string, tgid: number) => number>;
	pvf_wake_fd: KoffiFunc<(h: number) => number>;
	pvf_publish: KoffiFunc<(h: number, buf: Uint8Array, len: number) => number>;
	pvf_take: KoffiFunc<(h: number, end: number, hdr: Uint8Array, list: Uint8Array, max: number) => number>;
	pvf_stats: KoffiFunc<(h: number, out: Uint8Array) => number>;
	pvf_scan: KoffiFunc<(h: number) => number>;
	pvf_allow: KoffiFunc<(h: number, ns: number) => number>;
	pvf_budget: KoffiFunc<(h: number, burstNs: number, emptyNs: number, newsNs: number, decisionNs: number) => number>;
	pvf_group: KoffiFunc<(h: number, vmTasks: string | null, floatTasks: string | null, floatCpus: string | null) => number>;
	pvf_stop: KoffiFunc<(h: number) => void>;
	pvs_start: KoffiFunc<(objPath: string, shmPath: string) => number>;
	pvs_set_vcpus: KoffiFunc<(h: number, tids: Int32Array, n: number) => number>;
	pvs_sync: KoffiFunc<(h: number) => number>;
	pvs_watch: KoffiFunc<(h: number, mask: BigUint64Array, words: number) => number>;
	pvs_read: KoffiFunc<(h: number, out: Uint8Array, n: number) => number>;
	pvs_stats: KoffiFunc<(h: number, out: Uint8Array) => number>;
	pvs_stop: KoffiFunc<(h: number) => void>;
	pvs_boost: KoffiFunc<(h: number, config: Uint8Array) => number>;
	pvs_boosts: KoffiFunc<(h: number, stats: Uint8Array, out: Uint8Array, n: number) => number>;
	pvs_policy_step: KoffiFunc<(config: Uint8Array, state: Uint8Array, input: Uint8Array) => number>;
}

let loaded: FastLib | string | undefined;

/** The library, or why it cannot be used (loaded once); sched.ts uses its pvs_* part. */
export function fastLib(): FastLib | string {
	if (loaded !== undefined) return loaded;
	if (!fs.existsSync(fastLibraryPath)) return (loaded = `${path.relative(process.cwd(), fastLibraryPath) || fastLibraryPath} is not built (run make)`);
	try {
		const lib = koffi.load(fastLibraryPath);
		const fn = <T extends (...args: never[]) => unknown>(decl: string): KoffiFunc<T> => lib.func(decl) as KoffiFunc<T>;
		loaded = {
			pvf_start: fn('int pvf_start(const char *shm_path, const char *kick_path, int tgid)'),
			pvf_wake_fd: fn('int pvf_wake_fd(int h)'),
			pvf_publish: fn('int pvf_publish(int h, const uint8_t *buf, size_t len)'),
			pvf_take: fn('int pvf_take(int h, int end, _Out_ uint8_t *hdr, _Out_ uint8_t *list, uint32_t max)'),
			pvf_stats: fn('int pvf_stats(int h, _Out_ uint8_t *out)'),
			pvf_scan: fn('int pvf_scan(int h)'),
			pvf_allow: fn('int pvf_allow(int h, uint64_t ns)'),
			pvf_budget: fn('int pvf_budget(int h, uint64_t burst_ns, uint64_t empty_ns, uint64_t news_ns, uint64_t decision_ns)'),
			pvf_group: fn('int pvf_group(int h, const char *vm_tasks, const char *float_tasks, const char *float_cpus)'),
			pvf_stop: fn('void pvf_stop(int h)'),
			pvs_start: fn('int pvs_start(const char *obj_path, const char *shm_path)'),
			pvs_set_vcpus: fn('int pvs_set_vcpus(int h, const int32_t *tids, uint32_t n)'),
			pvs_sync: fn('int pvs_sync(int h)'),
			pvs_watch: fn('int pvs_watch(int h, const uint64_t *mask, uint32_t words)'),
			pvs_read: fn('int pvs_read(int h, _Out_ uint8_t *out, uint32_t n)'),
			pvs_stats: fn('int pvs_stats(int h, _Out_ uint8_t *out)'),
			pvs_stop: fn('void pvs_stop(int h)'),
			pvs_boost: fn('int pvs_boost(int h, const uint8_t *config)'),
			pvs_boosts: fn('int pvs_boosts(int h, _Out_ uint8_t *stats, _Out_ uint8_t *out, uint32_t n)'),
			pvs_policy_step: fn('uint32_t pvs_policy_step(const uint8_t *config, _Inout_ uint8_t *state, const uint8_t *input)'),
		};
	} catch (error) {
		loaded = `cannot load ${fastLibraryPath}: ${error instanceof Error ? error.message : String(error)}`;
	}
	return loaded;
}

/** Whether the fast path can run here, or why not. */
export function fastPathAvailable(): true | string {
	const lib = fastLib();
	return typeof lib === 'string' ? lib : true;
}

/** One change the fast path applied (struct pvf_applied). */
export interface FastApplied {
	/** Index of the entry in the table that was current. */
	entry: number;
	/** The entry's way back (the new pin's thread let go), not the entry itself. */
	back: boolean;
	/** Guest thread of the record it matched. */
	tid: number;
	/** Ring sequence of that record. */
	seq: number;
	/** Records seen → last operation applied, µs. */
	latencyUs: number;
	/** Bit i set: operation i failed. */
	failedOps: bigint;
	/** errno of the last failed operation. */
	errno: number;
	/** Bit i set: operation i left its thread alone, whose CPUs someone else had set. */
	movedOps: bigint;
}

/** What `take` reports (struct pvf_take_hdr and the list). */
export interface FastTake {
	/** The table is still current (the fast path follows the records). */
	valid: boolean;
	/** A new pin's thread holds its vCPU (the table's state plus that pin). */
	pinned: boolean;
	/** Records before this sequence are decided by the changes reported (so far). */
	cursor: number;
	/** The changes applied since the last take, in order. */
	applied: FastApplied[];
}

/** The fast path's counters (struct pvf_stats). */
export interface FastStats {
	kicks: number;
	applied: number;
	noTable: number;
	notCovered: number;
	invalid: number;
	pinErrors: number;
	demotions: number;
	connects: number;
	wakeErrors: number;
	/** Kicks that waited for the guest budget's credit. */
	creditWaits: number;
	/** Operations that left a thread alone whose CPUs someone else had set. */
	moved: number;
}

const statNames: ReadonlyArray<keyof FastStats> = statFields;
/** pvf_publish's answer while changes it applied are not taken yet. */
const EBUSY = 16;

/** The part of the fast path the hint engine uses. */
export interface FastLink {
	/**
	 * Make `table` current (a serialized table, docs/fast-path.md), in place of the current one if
	 * there is one; false, and no table current, when the fast path applied a change not taken yet.
	 */
	publish(table: Uint8Array): boolean;
	/** What was applied since the last call; `end` also ends the current table. */
	take(end: boolean): FastTake;
	/** Decide the records past the cursor now, in the calling thread, as a kick would. */
	scan(): void;
}

export class FastPath implements FastLink {
	private readonly takeHeader = Buffer.alloc(TakeHeader.size);
	private readonly takeList = Buffer.alloc(maxApplied * Applied.size);
	private readonly statsBuf = Buffer.alloc(statNames.length * 8);
	private stopped = false;

	private constructor(
		private readonly lib: FastLib,
		private readonly handle: number,
		private readonly wake: net.Socket,
	) {}

	/**
	 * Start the thread on the VM's shared memory (`shmPath`) and kick socket
	 * (QEMU's end of the kick port; the thread connects when QEMU listens).
	 * `onWake` runs on the JavaScript thread after each kick. It changes only
	 * threads of process `tgid` (QEMU), checked before each change; 0 leaves
	 * that unchecked, for tests whose stand-in threads are processes. Throws
	 * with the reason when the fast path cannot run.
	 */
	static start(shmPath: string, kickSocket: string, tgid: number, onWake: () => void): FastPath {
		const lib = fastLib();
		if (typeof lib === 'string') throw new Error(lib);
		if (!Number.isInteger(tgid) || tgid < 0) throw new Error(`cannot start the fast path: invalid process id ${tgid}`);
		const h = lib.pvf_start(shmPath, kickSocket, tgid);
		if (h < 0) throw new Error(`cannot start the fast path: errno ${-h}`);
		const fd = lib.pvf_wake_fd(h);
		let wake: net.Socket;
		try {
			wake = new net.Socket({fd, readable: true, writable: false});
		} catch (error) {
			lib.pvf_stop(h);
			fs.closeSync(fd);
			throw error;
		}
		wake.on('data', () => onWake());
		wake.on('error', () => {});
		wake.unref();
		return new FastPath(lib, h, wake);
	}

	publish(table: Uint8Array): boolean {
		if (this.stopped) return true;
		const rc = this.lib.pvf_publish(this.handle, table, table.length);
		if (rc === -EBUSY) return false;
		if (rc !== 0) throw new Error(`the fast path refused a table (errno ${-rc}): a bug in pvrun`);
		return true;
	}

	take(end: boolean): FastTake {
		const h = this.takeHeader;
		const b = this.takeList;
		if (this.stopped || this.lib.pvf_take(this.handle, end ? 1 : 0, h, b, maxApplied) < 0) return {valid: false, pinned: false, cursor: 0, applied: []};
		const count = Math.min(h.readUInt32LE(TakeHeader.count), maxApplied);
		const applied: FastApplied[] = [];
		for (let i = 0, o = 0; i < count; i++, o += Applied.size) {
			applied.push({
				entry: b.readInt32LE(o + Applied.entry),
				back: b.readUInt32LE(o + Applied.back) === 1,
				tid: b.readUInt32LE(o + Applied.tid),
				seq: Number(b.readBigUInt64LE(o + Applied.seq)),
				latencyUs: Number(b.readBigUInt64LE(o + Applied.latencyNs)) / 1000,
				failedOps: b.readBigUInt64LE(o + Applied.failedOps),
				errno: b.readInt32LE(o + Applied.lastErrno),
				movedOps: b.readBigUInt64LE(o + Applied.movedOps),
			});
		}
		return {
			valid: h.readUInt32LE(TakeHeader.valid) === 1,
			pinned: h.readUInt32LE(TakeHeader.phase) === Phase.pinned,
			cursor: Number(h.readBigUInt64LE(TakeHeader.cursor)),
			applied,
		};
	}

	scan(): void {
		if (!this.stopped) this.lib.pvf_scan(this.handle);
	}

	/** What kicks cost the thread's credit (--pv-guest-cpu). */
	budget(b: GuestBudget): void {
		const ns = (ms: number): number => Math.round(ms * 1e6);
		if (this.stopped) return;
		const most = (ms: number): number => ns(Math.min(ms, b.burstMs));
		const rc = this.lib.pvf_budget(this.handle, ns(b.burstMs), most(b.emptyKickMs), most(b.newsKickMs), most(b.decisionMs));
		if (rc !== 0) throw new Error(`the fast path refused a budget (errno ${-rc}): a bug in pvrun`);
	}

	/** The float group's files the ops of its tables write (src/pin/cpuset.ts), or none. Throws with the errno. */
	group(paths: {vmTasks: string; floatTasks: string; floatCpus: string} | undefined): void {
		if (this.stopped) return;
		const rc = this.lib.pvf_group(this.handle, paths?.vmTasks ?? null, paths?.floatTasks ?? null, paths?.floatCpus ?? null);
		if (rc !== 0) throw new Error(`the fast path cannot open the float group's files: errno ${-rc}`);
	}

	/** Act on kicks only until this process has used `cpuMs` more CPU (pvrun's share: cpu-governor.ts). */
	allow(cpuMs: number): void {
		if (!this.stopped) this.lib.pvf_allow(this.handle, Math.round(Math.max(cpuMs, 0) * 1e6));
	}

	stats(): FastStats {
		const ok = !this.stopped && this.lib.pvf_stats(this.handle, this.statsBuf) === 0;
		return readCounters(statNames, ok ? this.statsBuf : undefined);
	}

	/** Stop the thread (it joins at once) and close everything (idempotent). */
	stop(): void {
		if (this.stopped) return;
		this.stopped = true;
		this.lib.pvf_stop(this.handle);
		this.wake.destroy();
	}
}
