// The host's CPU topology from sysfs (docs/leases.md#topology): each CPU's SMT siblings, its
// last-level cache and its NUMA node, and the node that holds most of a process's memory; and
// the order in which a VM's new grants should take free CPUs. `root` is where /sys and /proc
// are (a fixture folder in tests).
import path from 'node:path';
import {listDir, readCpuListFile, readText} from './sysfs.js';

export interface CpuTopology {
	/** CPU → its SMT siblings (itself left out). */
	siblings: Map<number, number[]>;
	/** CPU → its last-level cache, named by the lowest CPU that shares it. */
	llc: Map<number, number>;
	/** CPU → its NUMA node. */
	node: Map<number, number>;
}

/** The topology of the online CPUs; what sysfs does not say is left out (a CPU alone, one cache, one node). */
export function readTopology(root = '/'): CpuTopology {
	const sys = path.join(root, 'sys/devices/system');
	const topo: CpuTopology = {siblings: new Map(), llc: new Map(), node: new Map()};
	for (const cpu of readCpuListFile(path.join(sys, 'cpu/online'))) {
		const dir = path.join(sys, 'cpu', `cpu${cpu}`);
		topo.siblings.set(
			cpu,
			readCpuListFile(path.join(dir, 'topology/thread_siblings_list')).filter((c) => c !== cpu),
		);
		// The cache of the highest level that is not an instruction cache.
		let best: {level: number; shared: number[]} | undefined;
		for (const index of listDir(path.join(dir, 'cache'))) {
			if (!/^index\d+$/.test(index)) continue;
			const level = Number(readText(path.join(dir, 'cache', index, 'level')));
			if (!Number.isInteger(level) || readText(path.join(dir, 'cache', index, 'type'))?.trim() === 'Instruction') continue;
			const shared = readCpuListFile(path.join(dir, 'cache', index, 'shared_cpu_list'));
			if (shared.length && (!best || level > best.level)) best = {level, shared};
		}
		if (best) topo.llc.set(cpu, Math.min(...best.shared));
	}
	for (const name of listDir(path.join(sys, 'node'))) {
		const m = /^node(\d+)$/.exec(name);
		if (m) for (const cpu of readCpuListFile(path.join(sys, 'node', name, 'cpulist'))) topo.node.set(cpu, Number(m[1]));
	}
	return topo;
}

/** The NUMA node holding most of process `pid`'s memory (/proc/<pid>/numa_maps), if there is more than one node. */
export function memoryNode(pid: number, root = '/'): number | undefined {
	const text = readText(path.join(root, 'proc', String(pid), 'numa_maps'));
	if (!text) return undefined;
	const pages = new Map<number, number>();
	for (const [, node = '', n = ''] of text.matchAll(/\bN(\d+)=(\d+)/g)) pages.set(Number(node), (pages.get(Number(node)) ?? 0) + Number(n));
	if (pages.size < 2) return undefined;
	return [...pages].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]?.[0];
}

/** How much a VM would rather not take `cpu` for a new grant, given the CPUs it grants already (lower is better). */
export type CpuPreference = (cpu: number, granted: readonly number[]) => number;

/**
 * The order of a VM's new grants on a shared host: a CPU whose SMT sibling another VM leases or
 * another program is pinned to shares its core with strangers (last); then, once the VM has a
 * grant, a CPU outside that grant's last-level cache (its vCPUs that talk to each other would
 * go through memory); then a CPU outside the node that holds the VM's memory.
 */
export function cpuPreference(topo: CpuTopology, others: {leased: ReadonlySet<number>; taken: ReadonlySet<number>}, memNode?: number): CpuPreference {
	return (cpu, granted) => {
		let score = 0;
		if ((topo.siblings.get(cpu) ?? []).some((s) => others.leased.has(s) || others.taken.has(s))) score += 100;
		const first = granted[0];
		if (first !== undefined && topo.llc.has(cpu) && topo.llc.get(cpu) !== topo.llc.get(first)) score += 10;
		if (memNode !== undefined && topo.node.has(cpu) && topo.node.get(cpu) !== memNode) score += 1;
		return score;
	};
}
