// The QEMU process pvrun serves: pvrun itself after exec (src/vm/exec.ts),
// watched by its helper; or a daemonized QEMU that pvrun watches by pid, whose
// first process the front runs as a child, waits for, forwards signals to
// and ends like.
import {spawn, type ChildProcess} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {processAlive, processStartTicks} from '../host/proc.js';
import {QemuError} from '../util/errors.js';
import {inheritedFds, qemuStdio} from './fds.js';
import {disableCoreDumps} from '../host/libc.js';

/** How a process ended: an exit code, or the signal that killed it; both null when unknown (not our child). */
export interface ExitStatus {
	code: number | null;
	signal: NodeJS.Signals | null;
}

/** The QEMU process of a VM, as the hint session sees it. */
export interface QemuProcess {
	readonly pid: number;
	/** Settles once QEMU has exited. */
	readonly exited: Promise<ExitStatus>;
}

/** The signals a terminal or a process manager stops QEMU with; pvrun passes them on. */
export const forwardedSignals: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * `program`'s path if it can be run (a name is looked up in PATH as execvp
 * does), else a PvrunError naming what to fix.
 */
export function findProgram(program: string, missing: string): string {
	const candidates = program.includes('/')
		? [program]
		: (process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin').split(':').map((dir) => path.join(dir || '.', program));
	let denied: string | undefined;
	for (const file of candidates) {
		try {
			const stat = fs.statSync(file);
			// A path given whole that names a directory is what to fix, not a program missing from PATH.
			if (stat.isDirectory() && program.includes('/')) throw new QemuError(`${file} is a directory, not a program: check the path`, {exitCode: 126});
			if (!stat.isFile()) continue;
			fs.accessSync(file, fs.constants.X_OK);
			return file;
		} catch (error) {
			if (error instanceof QemuError) throw error;
			if ((error as NodeJS.ErrnoException).code === 'EACCES') denied = file;
		}
	}
	if (denied !== undefined) throw new QemuError(`${denied} is not executable: check its permissions`, {exitCode: 126});
	throw new QemuError(`${program} not found: ${missing}`, {exitCode: 127});
}

/**
 * Start QEMU as a child with the console and every inherited descriptor
 * under its own number: QEMU's first process under -daemonize, which exits
 * once the VM is up (every other VM is QEMU exec'd in place: src/vm/exec.ts).
 */
export function spawnQemu(qemu: string, args: readonly string[]): ChildProcess {
	checkPrograms(qemu);
	return spawn(qemu, args, {stdio: qemuStdio(inheritedFds)});
}

/** QEMU's path if it can run, checked before anything is created: else a PvrunError naming the fix. */
export function checkPrograms(qemu: string): string {
	return findProgram(qemu, qemu.includes('/') ? 'check the path given with --pv-qemu' : 'run make setup (or name the QEMU binary with --pv-qemu PATH)');
}

/**
 * Forward SIGINT/SIGTERM/SIGHUP to `child`, wait for it to exit, run
 * `cleanup`, then settle with its exit status (rejects if it could not start).
 */
export function waitForExit(child: ChildProcess, cleanup: () => void | Promise<void>): Promise<ExitStatus> {
	const forward = (signal: NodeJS.Signals) => child.kill(signal);
	for (const s of forwardedSignals) process.on(s, forward);
	// Stop forwarding and clean up, then settle.
	const finish = (settle: () => void): void => {
		for (const s of forwardedSignals) process.off(s, forward);
		void Promise.resolve(cleanup()).finally(settle);
	};
	return new Promise((resolve, reject) => {
		child.once('error', (error: NodeJS.ErrnoException) =>
			finish(() => reject(new QemuError(`cannot start QEMU: ${error.message}`, {cause: error, exitCode: error.code === 'ENOENT' ? 127 : 126}))),
		);
		child.once('exit', (code, signal) => finish(() => resolve({code, signal})));
	});
}

/** The status a shell reports for `status`: the exit code, or 128 + the signal number. */
export function shellStatus(status: ExitStatus): number {
	if (status.signal) return 128 + (os.constants.signals[status.signal] ?? 0);
	return status.code ?? 0;
}

/** Signals whose default action dumps core. */
const coreSignals: ReadonlySet<string> = new Set(['SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV', 'SIGXCPU', 'SIGXFSZ', 'SIGSYS']);

/**
 * End as QEMU ended: with `status`'s code, or, if a signal killed QEMU, by
 * the same signal (without a core dump of pvrun). Returns the code to exit
 * with; does not return when the signal kills pvrun. Call after cleaning up.
 */
export function endLike(status: ExitStatus): number {
	const code = shellStatus(status);
	const signal = status.signal;
	if (!signal) return code;
	if (coreSignals.has(signal)) disableCoreDumps();
	process.removeAllListeners(signal);
	try {
		process.kill(process.pid, signal);
	} catch {
		// pvrun cannot signal itself: exit with the shell's code for it
	}
	// Still here (the signal is ignored, as for a background job's SIGINT): the shell's code for it.
	return code;
}

/**
 * A QEMU that is not pvrun's child (it daemonized), watched by pid: it has
 * exited when its /proc entry is gone, a zombie, or another process's (the
 * pid was reused). Its exit status is its parent's to know, not pvrun's.
 */
export function watchPid(pid: number, intervalMs = 250): QemuProcess {
	const started = processStartTicks(pid);
	const exited = new Promise<ExitStatus>((resolve) => {
		const timer = setInterval(() => {
			if (!processAlive(pid, started)) {
				clearInterval(timer);
				resolve({code: null, signal: null});
			}
		}, intervalMs);
	});
	return {pid, exited};
}
