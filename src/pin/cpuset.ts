// The floating vCPU threads as one: a cgroup v1 cpuset of the VM's
// (`pvrun.<QEMU pid>`, in QEMU's own cpuset, its CPUs the allowed set) with a
// child `float` that holds every vCPU thread without a CPU of its own. Changing
// the floating CPUs is one write of `float/cpuset.cpus`, whatever the vCPU
// count; a grant moves its one thread out to the VM's cpuset (one write) and
// pins it; a release widens it and moves it back. The kernel (6.2+: a task's
// user-requested mask) keeps an operator's taskset across the writes.
//
// A move between cpusets takes the kernel's cgroup lock for threads
// (cgroup_threadgroup_rwsem): unless a cgroup hierarchy is mounted with
// `favordynmods`, that waits for an RCU grace period, ~8 ms here, and pvrun
// uses the group only when the first move was quick (FloatGroup.moveMs).
//
// Used only where nobody else placed the threads: QEMU and its vCPU threads in
// the same cpuset, not a libvirt machine's (`/machine...`), cgroup v1 with the
// cpuset controller mounted and writable. cgroup v2 (threaded cpusets) is not
// built: the threads are then pinned one by one (Pinner without a group).
// docs/placement.md.
import fs from 'node:fs';
import path from 'node:path';
import {formatCpuList, parseCpuList} from '../host/cpus.js';
import {setThreadAffinity} from '../host/libc.js';
import {firstLine} from '../util/errors.js';

/** Where the cpuset hierarchy is mounted (cgroup v1), from /proc/mounts; undefined when none is. */
export function cpusetMount(mounts = '/proc/mounts'): string | undefined {
	let text: string;
	try {
		text = fs.readFileSync(mounts, 'utf8');
	} catch {
		return undefined;
	}
	for (const line of text.split('\n')) {
		const [, dir, type, options] = line.split(' ');
		if (type === 'cgroup' && dir && options?.split(',').includes('cpuset')) return dir.replace(/\\040/g, ' ');
	}
	return undefined;
}

/** Thread `tid`'s cpuset cgroup, relative to the hierarchy's root; undefined when it has none (v1). */
export function cpusetOf(tid: number): string | undefined {
	let text: string;
	try {
		text = fs.readFileSync(`/proc/${tid}/task/${tid}/cgroup`, 'utf8');
	} catch {
		return undefined;
	}
	for (const line of text.split('\n')) {
		const m = /^\d+:([^:]*):(.*)$/.exec(line);
		if (m?.[1]?.split(',').includes('cpuset')) return m[2];
	}
	return undefined;
}

/** The directory name of QEMU `pid`'s cpuset. */
export function groupName(pid: number): string {
	return `pvrun.${pid}`;
}

/**
 * Remove what crashed pvruns left in `parent`: `pvrun.<pid>` cpusets whose
 * QEMU is gone and that hold no thread (the kernel refuses to remove others).
 */
export function removeStaleGroups(parent: string, alive: (pid: number) => boolean = (pid) => fs.existsSync(`/proc/${pid}`)): string[] {
	const removed: string[] = [];
	let names: string[];
	try {
		names = fs.readdirSync(parent);
	} catch {
		return removed;
	}
	for (const name of names) {
		const m = /^pvrun\.(\d+)$/.exec(name);
		if (!m || alive(Number(m[1]))) continue;
		// One that still holds threads stays: they are not ours to move.
		const dir = path.join(parent, name);
		if (!removeDirs(dir)) removed.push(dir);
	}
	return removed;
}

/** The pause between the two timed moves at open: a few RCU grace periods at HZ 100. */
const probeGapMs = 60;

/** Attempts at removing the cpusets at close, 10 ms apart. */
const closeTries = 50;

/** Block the thread for `ms` (set-up and clean-up only: a measured pause, and waiting for exiting threads). */
function pause(ms: number): void {
	Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Options of FloatGroup.open, for tests: another hierarchy root, or other names. */
export interface GroupOptions {
	/** The cpuset hierarchy's root (default: from /proc/mounts). */
	mount?: string;
	/** The group's directory name (default `pvrun.<QEMU pid>`). */
	name?: string;
}

/** A VM's cpusets, open: see the file's comment. */
export class FloatGroup {
	private floatingCpus: string;
	/**
	 * How long the first move of a thread into the group took, ms (undefined: no thread yet).
	 * Where the kernel takes its cgroup lock the slow way, each move waits for an RCU grace
	 * period (~8 ms at HZ 250) unless a hierarchy is mounted with `favordynmods`.
	 */
	moveMs: number | undefined;
	private readonly fds: {vmTasks: number; floatTasks: number; floatCpus: number; parentTasks: number};
	/** The files the group writes: the VM's cpuset's `tasks`, the floating cpuset's `tasks` and `cpuset.cpus`. */
	private readonly files: {vmTasks: string; floatTasks: string; floatCpus: string};
	private closed = false;

	private constructor(
		/** The VM's cpuset: granted (and held) vCPU threads. */
		readonly dir: string,
		/** The parent: QEMU's own cpuset, where the threads go back on close. */
		readonly parent: string,
		readonly allowed: readonly number[],
	) {
		this.floatingCpus = formatCpuList(allowed);
		this.files = {vmTasks: path.join(dir, 'tasks'), floatTasks: path.join(this.floatDir, 'tasks'), floatCpus: path.join(this.floatDir, 'cpuset.cpus')};
		const open = (file: string) => fs.openSync(file, fs.constants.O_WRONLY); // Node opens with O_CLOEXEC
		this.fds = {
			vmTasks: open(this.files.vmTasks),
			floatTasks: open(this.files.floatTasks),
			floatCpus: open(this.files.floatCpus),
			parentTasks: open(path.join(parent, 'tasks')),
		};
	}

	/** The floating vCPU threads' cpuset. */
	get floatDir(): string {
		return path.join(this.dir, 'float');
	}

	/**
	 * QEMU `qemuPid`'s group, created (its vCPU threads `vcpuTids` join it at
	 * their first placement), or why there is none (one line).
	 */
	static open(qemuPid: number, vcpuTids: readonly number[], allowed: readonly number[], options: GroupOptions = {}): FloatGroup | string {
		const mount = options.mount ?? cpusetMount();
		if (!mount) return fs.existsSync('/sys/fs/cgroup/cgroup.controllers') ? 'cgroup v2 (threaded cpusets are not built)' : 'no cpuset hierarchy';
		const own = cpusetOf(qemuPid);
		if (own === undefined) return "QEMU's cpuset is unknown";
		if (/^\/machine(\.slice)?(\/|$)/.test(own)) return `QEMU is in ${own}, a libvirt machine's cpuset: the operator's`;
		const other = vcpuTids.find((tid) => cpusetOf(tid) !== own);
		if (other !== undefined) return `vCPU thread ${other} is in another cpuset than QEMU's: someone else's layout`;
		const parent = path.join(mount, own);
		removeStaleGroups(parent);
		const dir = path.join(parent, options.name ?? groupName(qemuPid));
		try {
			const parentCpus = parseCpuList(fs.readFileSync(path.join(parent, 'cpuset.effective_cpus'), 'utf8').trim());
			const outside = allowed.filter((c) => !parentCpus.includes(c));
			if (outside.length) return `CPUs ${formatCpuList(outside)} are outside QEMU's cpuset (${formatCpuList(parentCpus)})`;
			const mems = fs.readFileSync(path.join(parent, 'cpuset.effective_mems'), 'utf8').trim();
			for (const d of [dir, path.join(dir, 'float')]) {
				fs.mkdirSync(d);
				fs.writeFileSync(path.join(d, 'cpuset.cpus'), formatCpuList(allowed));
				fs.writeFileSync(path.join(d, 'cpuset.mems'), mems);
			}
			const group = new FloatGroup(dir, parent, allowed);
			const first = vcpuTids[0];
			if (first !== undefined)
				try {
					// Twice, the second time after the kernel's lock has had time to go cold again
					// (another move just before, of anyone's, makes one quick).
					const timed = (move: () => void): number => {
						const start = performance.now();
						move();
						return performance.now() - start;
					};
					const once = timed(() => group.join(first));
					pause(probeGapMs);
					group.moveMs = Math.max(
						once,
						timed(() => group.leave(first)),
					);
					group.join(first);
				} catch (error) {
					group.close();
					return `cannot move vCPU thread ${first} into ${group.floatDir}: ${firstLine(error)}`;
				}
			return group;
		} catch (error) {
			removeDirs(dir);
			return `cannot make a cpuset in ${parent}: ${firstLine(error)}`;
		}
	}

	/** The floating CPUs last written. */
	floating(): number[] {
		return parseCpuList(this.floatingCpus);
	}

	/** Make `cpus` the floating set: one write, unless it is already. Throws (the set stays). */
	setFloating(cpus: readonly number[]): boolean {
		const list = formatCpuList(cpus);
		if (list === this.floatingCpus) return false;
		fs.writeSync(this.fds.floatCpus, list, 0);
		this.floatingCpus = list;
		return true;
	}

	/** The fast path wrote `cpus` itself. */
	adoptFloating(cpus: readonly number[]): void {
		this.floatingCpus = formatCpuList(cpus);
	}

	/** Move thread `tid` out of the floating set, to the VM's cpuset (it may run on any allowed CPU until pinned). Throws. */
	leave(tid: number): void {
		fs.writeSync(this.fds.vmTasks, `${tid}\n`, 0);
	}

	/**
	 * Move thread `tid` into the floating set: first its own mask widened to
	 * every allowed CPU (the floating set's later widenings then reach it:
	 * the kernel keeps the intersection with it), then the move. Throws.
	 */
	join(tid: number): void {
		setThreadAffinity(tid, this.allowed);
		fs.writeSync(this.fds.floatTasks, `${tid}\n`, 0);
	}

	/** Paths the native fast path writes (pvf_group). */
	paths(): {vmTasks: string; floatTasks: string; floatCpus: string} {
		return {...this.files};
	}

	/**
	 * Threads still in the group go back to QEMU's own cpuset (pvrun ends
	 * before QEMU: they may run on every CPU of it again), and the cpusets are
	 * removed. Errors are returned, not thrown (QEMU's threads may be exiting).
	 */
	close(): string[] {
		if (this.closed) return [];
		this.closed = true;
		const errors = new Set<string>();
		// QEMU's threads may be exiting: until the last is gone, the kernel refuses the removal (EBUSY).
		let left: string | undefined;
		for (let tries = 0; tries < closeTries; tries++) {
			if (tries) pause(10);
			for (const d of [this.floatDir, this.dir])
				for (const tid of tasksOf(d))
					try {
						fs.writeSync(this.fds.parentTasks, `${tid}\n`, 0);
					} catch (error) {
						if (!String(error).includes('ESRCH')) errors.add(`cannot move thread ${tid} back to ${this.parent}: ${firstLine(error)}`);
					}
			left = removeDirs(this.dir);
			if (!left) break;
		}
		for (const fd of Object.values(this.fds)) fs.closeSync(fd);
		if (left) errors.add(left);
		return [...errors];
	}
}

/** The thread ids in cpuset `dir`. */
export function tasksOf(dir: string): number[] {
	try {
		return fs.readFileSync(path.join(dir, 'tasks'), 'utf8').split('\n').filter(Boolean).map(Number);
	} catch {
		return [];
	}
}

/** Remove `dir` and its `float` child; why not, if it is still there. */
function removeDirs(dir: string): string | undefined {
	let why: string | undefined;
	for (const d of [path.join(dir, 'float'), dir])
		try {
			fs.rmdirSync(d);
		} catch (error) {
			if ((error as NodeJS.ErrnoException).code !== 'ENOENT') why = `cannot remove ${d}: ${firstLine(error)}`;
		}
	return why;
}
