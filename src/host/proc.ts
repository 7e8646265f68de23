// /proc/<pid>/stat and /proc/<pid>/task/<tid>/stat, read once and split
// safely: the command name (field 2) is in parentheses and may contain spaces
// and ')', so the fields after it are split from the last ')'.
import fs from 'node:fs';

/**
 * The fields of a process's (or, with `tid`, a thread's) stat file, indexed by
 * their number in proc(5): [1] pid, [2] comm, [3] state, [14] utime, [15] stime,
 * [22] starttime, [41] policy. Undefined if the file cannot be read (gone).
 */
export function procStatFields(pid: number, tid?: number): string[] | undefined {
	let stat: string;
	try {
		stat = fs.readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
	} catch {
		return undefined;
	}
	const open = stat.indexOf('(');
	const close = stat.lastIndexOf(')');
	return [
		'',
		stat.slice(0, open).trim(),
		stat.slice(open + 1, close),
		...stat
			.slice(close + 2)
			.trim()
			.split(' '),
	];
}

/** The start time (field 22: clock ticks after boot) from a stat file's fields; with the pid, it names one process. */
export function startTicksField(fields: readonly string[]): number | undefined {
	const ticks = Number(fields[22]);
	return Number.isSafeInteger(ticks) ? ticks : undefined;
}

/** State (field 3), parent (field 4) and start time (field 22) of process `pid`, if its stat file is readable. */
export function processStat(pid: number): {state: string; ppid: number; startTicks: number | undefined} | undefined {
	const fields = procStatFields(pid);
	return fields && {state: fields[3] ?? '?', ppid: Number(fields[4]), startTicks: startTicksField(fields)};
}

/**
 * Whether process `pid` runs now: it exists and is not a zombie, and, when
 * `startTicks` is given, it is the process that started then (not another
 * one that reused the pid). A process /proc hides from us (another user's,
 * under hidepid) counts as running if it may be signalled or EPERM says so.
 */
export function processAlive(pid: number, startTicks?: number): boolean {
	if (!Number.isSafeInteger(pid) || pid <= 0) return false;
	const fields = procStatFields(pid);
	if (!fields) {
		try {
			process.kill(pid, 0);
			return true;
		} catch (error) {
			return (error as NodeJS.ErrnoException).code === 'EPERM';
		}
	}
	if (fields[3] === 'Z' || fields[3] === 'X') return false;
	return startTicks === undefined || startTicksField(fields) === startTicks;
}

/** Process `pid`'s start time (see startTicksField), if its stat file is readable. */
export function processStartTicks(pid: number): number | undefined {
	const fields = procStatFields(pid);
	return fields && startTicksField(fields);
}

/** The thread ids of process `pid`, from /proc (none if it is gone). */
export function processThreads(pid: number): number[] {
	try {
		return fs
			.readdirSync(`/proc/${pid}/task`)
			.map(Number)
			.filter((tid) => Number.isInteger(tid) && tid > 0);
	} catch {
		return [];
	}
}

/**
 * Thread `tid` of process `pid`: nanoseconds on a CPU, and runnable but waiting for one, from
 * /proc/<pid>/task/<tid>/schedstat (the kernel's CONFIG_SCHED_INFO). Undefined without that
 * file, or once the thread is gone.
 */
export function threadSchedstat(pid: number, tid: number): {runNs: number; waitNs: number} | undefined {
	try {
		const [run, wait] = fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
		if (Number.isFinite(run) && Number.isFinite(wait)) return {runNs: run ?? 0, waitNs: wait ?? 0};
	} catch {
		// no schedstat, or the thread is gone
	}
	return undefined;
}

/**
 * This machine's CPU time so far, from /proc/stat's first line, in clock ticks:
 * all of it, the part idle (with I/O wait), and the part stolen (when Linux itself runs in a virtual machine,
 * time its CPUs wanted to run and the hypervisor ran something else).
 */
export function machineCpuTicks(): {total: number; steal: number; idle: number} {
	const fields = (fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
	const at = (i: number): number => (Number.isFinite(fields[i]) ? (fields[i] ?? 0) : 0);
	// user nice system idle iowait irq softirq steal (guest time is counted in user already)
	return {total: fields.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0), steal: at(7), idle: at(3) + at(4)};
}

/** The share (0-1) of this machine's CPU time that was busy between two machineCpuTicks readings. */
export function busyShare(before: {total: number; idle: number}, after: {total: number; idle: number}): number {
	const total = after.total - before.total;
	return total > 0 ? Math.min(1, Math.max(0, 1 - (after.idle - before.idle) / total)) : 0;
}

/** The share of CPU time stolen between two `machineCpuTicks()` readings, in %. */
export function stolenPercent(before: {total: number; steal: number}, after: {total: number; steal: number}): number {
	const total = after.total - before.total;
	return total > 0 ? (100 * (after.steal - before.steal)) / total : 0;
}
