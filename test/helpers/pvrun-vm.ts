// The default guest booted through pvrun for end-to-end tests: a private
// directory for its event log, cleaned up (and QEMU stopped) in teardown, and
// the host-side views the tests assert on.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type {Test} from 'tap';
import {bootGuest, pvrunCommand, type Guest} from '../../src/guest/boot.js';
import {threadCpusAllowed} from '../../src/host/cpus.js';
import {ensureImage} from '../../src/image/build.js';
import {loggedVm, readEventLog} from '../../src/vm/event-log.js';
import {within} from './within.js';

export {within};

export interface PvrunVm {
	guest: Guest;
	/** pvrun's --pv-log file. */
	logFile: string;
}

/** Boot the default guest (or an image flavour) through pvrun running `run`; stopped and cleaned up when `t` ends. */
export async function bootThroughPvrun(
	t: Pick<Test, 'teardown'>,
	options: {run: string; cpus?: number; memoryMiB?: number; pvArgs?: string[]; qemuArgs?: string[]; flavour?: string},
): Promise<PvrunVm> {
	const image = await ensureImage(options.flavour === undefined ? {} : {flavour: options.flavour});
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-e2e-'));
	const logFile = path.join(dir, 'events.jsonl');
	const guest = bootGuest({
		kernel: image.kernel,
		initrd: image.initrd,
		cpus: options.cpus ?? 2,
		...(options.memoryMiB === undefined ? {} : {memoryMiB: options.memoryMiB}),
		run: options.run,
		launcher: pvrunCommand('--pv-log', logFile, ...(options.pvArgs ?? [])),
		...(options.qemuArgs ? {qemuArgs: options.qemuArgs} : {}),
	});
	t.teardown(async () => {
		await guest.stop();
		fs.rmSync(dir, {recursive: true, force: true});
	});
	return {guest, logFile};
}

/** The QEMU pid and vCPU threads from pvrun's log, waiting up to `ms` for pvrun to log them. */
export async function vmFromLog(logFile: string, ms = 10_000): Promise<{qemuPid: number; threads: number[]}> {
	let vm = loggedVm(readEventLog(logFile));
	await within(ms, () => (vm = loggedVm(readEventLog(logFile))) !== undefined);
	return vm ?? {qemuPid: 0, threads: []};
}

/** Whether vCPU `v`'s thread has exactly one CPU and no other vCPU thread of the VM has it. */
export function hasExclusiveCpu(qemuPid: number, threads: readonly number[], v: number): boolean {
	const mine = threadCpusAllowed(qemuPid, threads[v] ?? 0);
	const cpu = mine[0];
	return mine.length === 1 && threads.every((tid, i) => i === v || !threadCpusAllowed(qemuPid, tid).includes(cpu ?? -1));
}
