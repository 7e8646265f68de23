// What the host shows of a pvrun run, for the lifecycle tests: pvrun's files
// in /dev/shm and the runtime root, processes and their descriptors.
import fs from 'node:fs';
import {processAlive, processStat} from '../../src/host/proc.js';
import {runtimeRoot} from '../../src/vm/runtime-dir.js';

/** Where a pvrun started with this process's user and environment puts its run directories. */
export const runRoot = runtimeRoot().dir;

/** The names in `root` (none before the first pvrun made it). */
export function runDirNames(root = runRoot): string[] {
	return fs.existsSync(root) ? fs.readdirSync(root) : [];
}

/** pvrun's files for the pvrun process `pid`: shared memory and run directories. */
export function leftovers(pid: number): string[] {
	return [...fs.readdirSync('/dev/shm').filter((n) => n.startsWith(`pvrun-${pid}-`)), ...runDirNames().filter((n) => n.startsWith(`pvrun-${pid}-`))];
}

/**
 * The helper serving the VM whose QEMU is `qemuPid` (the pid the caller
 * started: pvrun became QEMU), from its state file; 0 if none is found.
 */
export function helperOf(qemuPid: number, root = runRoot): number {
	for (const name of runDirNames(root).filter((n) => n.startsWith(`pvrun-${qemuPid}-`))) {
		try {
			const state = JSON.parse(fs.readFileSync(`${root}/${name}/state.json`, 'utf8')) as {pvrunPid?: unknown};
			if (typeof state.pvrunPid === 'number') return state.pvrunPid;
		} catch {
			// not written yet, or gone
		}
	}
	return 0;
}

/** Every pvrun-<pid>-<hex> name in /dev/shm and the runtime root now. */
export function allRunNames(): Set<string> {
	const names = [...fs.readdirSync('/dev/shm'), ...runDirNames()];
	return new Set(names.filter((n) => /^pvrun-\d+-[0-9a-f]+$/.test(n)));
}

/** Whether `pid` runs (a zombie does not: nothing here reaps orphans when PID 1 does not). */
export const running = (pid: number): boolean => pid > 0 && processAlive(pid);

/** The processes whose parent is `pid`. */
export function childrenOf(pid: number): number[] {
	return fs
		.readdirSync('/proc')
		.filter((n) => /^\d+$/.test(n))
		.map(Number)
		.filter((p) => processStat(p)?.ppid === pid);
}

/** The command line of process `pid` as its arguments. */
export function cmdline(pid: number): string[] {
	return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0$/, '').split('\0');
}

/** What descriptor `fd` of process `pid` is ('socket:[123]'...), or undefined if it has none there. */
export function fdTarget(pid: number | 'self', fd: number): string | undefined {
	try {
		return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
	} catch {
		return undefined;
	}
}

/** Every descriptor target process `pid` holds. */
export function fdTargets(pid: number): string[] {
	try {
		return fs.readdirSync(`/proc/${pid}/fd`).map((fd) => fdTarget(pid, Number(fd)) ?? '');
	} catch {
		return [];
	}
}

/** Kill `pid` with SIGKILL if it still runs (teardown). */
/**
 * process.kill for a pid the test found: one that is not a positive integer is
 * refused with an error, never sent (pid 0 would signal the test's whole
 * process group, tap included; -1, every process the user may signal).
 */
export function signalPid(pid: number, signal: NodeJS.Signals): void {
	if (!Number.isInteger(pid) || pid <= 0) throw new Error(`refusing to send ${signal} to pid ${pid}`);
	process.kill(pid, signal);
}

export function killIfRunning(pid: number): void {
	if (!running(pid)) return;
	try {
		process.kill(pid, 'SIGKILL');
	} catch {
		// gone meanwhile
	}
}

/** The running processes whose /proc `file` (cmdline, environ) passes `ok`; processes that end meanwhile are skipped. */
export function processesWhere(file: 'cmdline' | 'environ', ok: (text: string) => boolean): number[] {
	return fs
		.readdirSync('/proc')
		.filter((n) => /^\d+$/.test(n))
		.map(Number)
		.filter((pid) => {
			try {
				return ok(fs.readFileSync(`/proc/${pid}/${file}`, 'utf8')) && running(pid);
			} catch {
				return false;
			}
		});
}

/** The detached pvrun processes running now (dist/vm/daemon-entry.js). */
export function detachedPvruns(): Set<number> {
	return new Set(processesWhere('cmdline', (cmdline) => cmdline.includes('daemon-entry.js')));
}
