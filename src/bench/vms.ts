// What the benchmarks set up around a measured VM, shared by pvrun's own
// matrix (matrix.ts) and a matrix file's (run-matrix.ts): static pinning
// through QMP, busy neighbour VMs, busy host processes, and the host's
// description and load before the run that results carry.
import {spawn, type ChildProcess} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import {bootGuest, readyLine} from '../guest/boot.js';
import {ownCpus} from '../host/cpus.js';
import {busyShare, machineCpuTicks} from '../host/proc.js';
import {setThreadAffinity, setThreadNice} from '../host/libc.js';
import {chooseAccel} from '../qemu/accel.js';
import {connectQmp} from '../qemu/qmp.js';
import {packageRoot} from '../util/paths.js';

export type Placement = Array<{cpus: number[]; nice: number}>;

/** libvirt's <vcpupin> done by hand: vCPU i on host CPU i mod N, for the whole run. */
export function staticPlace(vcpus: number, cpus: readonly number[] = ownCpus()): Placement {
	return Array.from({length: vcpus}, (_, v) => ({cpus: [cpus[v % cpus.length] ?? 0], nice: 0}));
}

/** Put each vCPU's thread where `place` says, for the whole run. */
export async function placeVcpus(qmpSocket: string, place: Placement): Promise<void> {
	const qmp = await connectQmp(qmpSocket, {timeoutMs: 10_000});
	try {
		for (const t of await qmp.vcpuThreads()) {
			const p = place[t.index];
			if (!p) continue;
			setThreadAffinity(t.threadId, p.cpus);
			if (p.nice !== 0) setThreadNice(t.threadId, p.nice);
		}
	} finally {
		await qmp.close().catch(() => {});
	}
}

/**
 * A VM under plain QEMU whose vCPUs are all busy (default 2, on `hostCpus` if given); resolves
 * once they are. Returns its stop function.
 */
export async function startNeighbourVm(
	image: {kernel: string; initrd: string},
	options: {vcpus?: number; hostCpus?: readonly number[]} = {},
): Promise<() => Promise<void>> {
	const vcpus = options.vcpus ?? 2;
	const neighbour = bootGuest({
		kernel: image.kernel,
		initrd: image.initrd,
		cpus: vcpus,
		run: `pvwork,locks,-t,${vcpus},-s,3600`,
		...(options.hostCpus ? {hostCpus: options.hostCpus} : {}),
	});
	try {
		await neighbour.waitFor(readyLine, 60_000 + vcpus * 2000);
	} catch (error) {
		await neighbour.stop();
		throw error;
	}
	return () => neighbour.stop();
}

/** Busy host processes (on `cpus` if given): their stop function and their CPU time so far. pvrun never touches them. */
export function startHostHogs(count: number, cpus?: readonly number[]): {stop: () => void; cpuNs: () => number} {
	const hogs: ChildProcess[] = [];
	const loop = ['sh', '-c', 'while :; do :; done'];
	const command = cpus ? ['taskset', '-c', cpus.join(','), ...loop] : loop;
	for (let i = 0; i < count; i++) hogs.push(spawn(command[0] ?? 'sh', command.slice(1), {stdio: 'ignore'}));
	const tick = 1e9 / 100; // USER_HZ
	return {
		stop: () => {
			for (const h of hogs) h.kill('SIGKILL');
		},
		cpuNs: () =>
			hogs.reduce((sum, h) => {
				try {
					const stat = fs.readFileSync(`/proc/${h.pid ?? 0}/stat`, 'utf8');
					const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
					return sum + (Number(f[11]) + Number(f[12])) * tick;
				} catch {
					return sum;
				}
			}, 0),
	};
}

export interface Environment {
	host: string;
	cpus: number;
	cpuModel: string;
	kernel: string;
	qemu: string;
	accel: string;
	pvrun: string;
	commit: string;
	node: string;
}

/**
 * What else the host runs before a benchmark starts: its load average (1, 5, 15 minutes) and
 * the busy share of its CPUs over one second (the load average still counts a build that ended
 * a minute ago).
 */
export async function hostBefore(): Promise<{loadBefore: [number, number, number]; busyBefore: number}> {
	const loadBefore = os.loadavg().map((l) => Math.round(l * 100) / 100) as [number, number, number];
	const ticks = machineCpuTicks();
	await new Promise((resolve) => setTimeout(resolve, 1000));
	return {loadBefore, busyBefore: Math.round(busyShare(ticks, machineCpuTicks()) * 1000) / 1000};
}

/** The host and software a benchmark ran on. */
export async function environment(commit: string): Promise<Environment> {
	const version = (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as {version: string}).version;
	const qemu = await execa('qemu-system-x86_64', ['--version'], {reject: false});
	return {
		host: os.hostname(),
		cpus: os.cpus().length,
		cpuModel: os.cpus()[0]?.model ?? '',
		kernel: os.release(),
		qemu: String(qemu.stdout ?? '').split('\n')[0] ?? '',
		accel: chooseAccel('auto').accel,
		pvrun: version,
		commit,
		node: process.version,
	};
}
