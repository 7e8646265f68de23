// Host CPUs no pvrun leases (docs/leases.md#taken-cpus): those the kernel keeps from the
// scheduler's balancing (isolcpus, nohz_full), and those another QEMU has threads pinned to (libvirt's <vcpupin> and cpuset cgroups, taskset on a plain QEMU: the kernel shows
// all of them as the threads' affinity). The QEMUs of the pvruns that share the lease directory
// place themselves through it and are left out; any other QEMU's pins are taken, a pvrun VM's
// whose pvrun died or that leases elsewhere included. `root` is where /proc and /sys are (a
// fixture folder in tests).
import fs from 'node:fs';
import path from 'node:path';
import {parseCpuList} from './cpus.js';

export interface TakenCpus {
	cpus: Set<number>;
	/** Why each is taken, for the log: "isolated", "nohz_full", "pinned by QEMU 1234 (vCPU 0)". */
	why: Map<number, string>;
}

/** The taken CPUs; `leasing`: the QEMU pids of the pvruns that share the lease directory. */
export function takenCpus(root = '/', leasing: ReadonlySet<number> = new Set(), online?: readonly number[]): TakenCpus {
	const cpus = new Set<number>();
	const why = new Map<number, string>();
	const add = (list: readonly number[], reason: string) => {
		for (const c of list) {
			if (cpus.has(c)) continue;
			cpus.add(c);
			why.set(c, reason);
		}
	};
	for (const file of ['isolated', 'nohz_full']) add(readCpuList(path.join(root, 'sys/devices/system/cpu', file)), file);
	const all = online ?? readCpuList(path.join(root, 'sys/devices/system/cpu/online'));
	const proc = path.join(root, 'proc');
	for (const pid of list(proc)) {
		if (!/^\d+$/.test(pid)) continue;
		const comm = read(path.join(proc, pid, 'comm'))?.trim() ?? '';
		if ((!comm.startsWith('qemu-system') && comm !== 'qemu-kvm') || leasing.has(Number(pid))) continue;
		// Every thread: vCPU threads carry names only with debug-threads=on (libvirt sets it), and an
		// operator may pin the emulator's threads too.
		for (const tid of list(path.join(proc, pid, 'task'))) {
			const task = path.join(proc, pid, 'task', tid);
			const allowed = /^Cpus_allowed_list:\s*(.*)$/m.exec(read(path.join(task, 'status')) ?? '')?.[1];
			let mask: number[];
			try {
				mask = allowed ? parseCpuList(allowed) : [];
			} catch {
				continue;
			}
			// A thread that may run everywhere is load, not a placement.
			if (mask.length === 0 || (all.length > 0 && all.every((c) => mask.includes(c)))) continue;
			const vcpu = /^CPU (\d+)\/(?:TCG|KVM)$/.exec(read(path.join(task, 'comm'))?.trim() ?? '');
			add(mask, `pinned by QEMU ${pid} (${vcpu ? `vCPU ${vcpu[1]}` : `thread ${tid}`})`);
		}
	}
	return {cpus, why};
}

function readCpuList(file: string): number[] {
	const text = read(file)?.trim() ?? '';
	if (text === '' || text === '(null)') return [];
	try {
		return parseCpuList(text);
	} catch {
		return [];
	}
}

function read(file: string): string | undefined {
	try {
		return fs.readFileSync(file, 'utf8');
	} catch {
		return undefined;
	}
}

function list(dir: string): string[] {
	try {
		return fs.readdirSync(dir);
	} catch {
		return [];
	}
}
