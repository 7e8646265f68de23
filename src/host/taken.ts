// Host CPUs no pvrun leases (docs/leases.md#taken-cpus): those the kernel keeps from the
// scheduler's balancing (isolcpus, nohz_full), and those a plain QEMU has threads pinned to
// (libvirt's <vcpupin> and cpuset cgroups, taskset: the kernel shows all of them as the
// threads' affinity). pvrun VMs are left out: those that share the lease directory place
// themselves through it, and a pvrun VM's floating vCPUs are narrowed too, which says nothing
// of what the CPUs are for; a QEMU is a pvrun VM when its command line has pvrun's agent port.
// `root` is where /proc and /sys are (a fixture folder in tests).
import path from 'node:path';
import {agentPortName} from '../agent/protocol.js';
import {parseCpuList} from './cpus.js';
import {listDir, readCpuListFile, readText} from './sysfs.js';

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
	for (const file of ['isolated', 'nohz_full']) add(readCpuListFile(path.join(root, 'sys/devices/system/cpu', file)), file);
	const all = online ?? readCpuListFile(path.join(root, 'sys/devices/system/cpu/online'));
	const proc = path.join(root, 'proc');
	for (const pid of listDir(proc)) {
		if (!/^\d+$/.test(pid)) continue;
		const comm = readText(path.join(proc, pid, 'comm'))?.trim() ?? '';
		if ((!comm.startsWith('qemu-system') && comm !== 'qemu-kvm') || leasing.has(Number(pid))) continue;
		if ((readText(path.join(proc, pid, 'cmdline')) ?? '').includes(agentPortName)) continue;
		// Every thread: vCPU threads carry names only with debug-threads=on (libvirt sets it), and an
		// operator may pin the emulator's threads too.
		for (const tid of listDir(path.join(proc, pid, 'task'))) {
			const task = path.join(proc, pid, 'task', tid);
			const allowed = /^Cpus_allowed_list:\s*(.*)$/m.exec(readText(path.join(task, 'status')) ?? '')?.[1];
			let mask: number[];
			try {
				mask = allowed ? parseCpuList(allowed) : [];
			} catch {
				continue;
			}
			// A thread that may run everywhere is load, not a placement.
			if (mask.length === 0 || (all.length > 0 && all.every((c) => mask.includes(c)))) continue;
			const vcpu = /^CPU (\d+)\/(?:TCG|KVM)$/.exec(readText(path.join(task, 'comm'))?.trim() ?? '');
			add(mask, `pinned by QEMU ${pid} (${vcpu ? `vCPU ${vcpu[1]}` : `thread ${tid}`})`);
		}
	}
	return {cpus, why};
}
